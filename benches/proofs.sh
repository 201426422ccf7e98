#!/usr/bin/env bash
# Proof latency against a running release build on an existing (large) database, such as the one
# examples/seed_ledger.rs fills: inclusion proofs of random leaves (and a tenth consistency
# proofs) in the whole tree, with 64 connections, then the time `assent verify` takes over it.
#
#   ASSENT_DATABASE_URL=sqlite:///tmp/big.db benches/proofs.sh
#
# Loopback only; bounded in time (ASSENT_LOAD_SECONDS, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
: "${ASSENT_DATABASE_URL:?set ASSENT_DATABASE_URL to the database to measure}"
export ASSENT_POLICIES=${ASSENT_POLICIES:-./policies} ASSENT_LOG=warn
seconds=${ASSENT_LOAD_SECONDS:-10}

cargo build --release --quiet
bin=./target/release/assent
export ASSENT_LOAD_KEY=$($bin keys create "proofs-$(date +%s)-$$" --scope read 2>/dev/null)
export ASSENT_LOG_SIZE=$($bin log checkpoint | sed -n 2p)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$bin serve --bind "127.0.0.1:$port" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "database: ${ASSENT_DATABASE_URL%%:*}, $ASSENT_LOG_SIZE leaves, 64 connections, ${seconds}s, $(nproc) cores shared by client and server"
out=$(wrk -t2 -c64 -d"${seconds}s" --latency -s benches/load/proof.lua "http://127.0.0.1:$port")
awk '/Requests\/sec/ {print "requests/s " $2} $1 == "50%" {print "p50 " $2} $1 == "99%" {print "p99 " $2} /Non-2xx/ {print "non-2xx " $5}' <<<"$out"
one=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $ASSENT_LOAD_KEY" \
  "http://127.0.0.1:$port/api/v1/log/proof/inclusion?index=$((ASSENT_LOG_SIZE / 3))&size=$ASSENT_LOG_SIZE")
echo "one inclusion proof alone: ${one}s"
kill "$server"; wait "$server" 2>/dev/null || true
TIMEFORMAT='assent verify: %R s wall, %U s user, %S s system'
time ($bin verify | tail -n 1)

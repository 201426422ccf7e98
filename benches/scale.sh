#!/usr/bin/env bash
# The figures of a ledger at a given size (issue 13, "flat to 10 M events"), on a database that
# examples/seed_ledger.rs filled. Run it at two sizes and compare:
#
#   cargo build --release --example seed_ledger --bin assent
#   ASSENT_DATABASE_URL=sqlite:///tmp/small.db target/release/examples/seed_ledger 100000 10000
#   ASSENT_SCALE_DATABASE_URL=sqlite:///tmp/small.db ASSENT_SCALE_SUBJECTS=10000 benches/scale.sh
#   ASSENT_DATABASE_URL=sqlite:///tmp/big.db target/release/examples/seed_ledger 10000000 1000000
#   ASSENT_SCALE_DATABASE_URL=sqlite:///tmp/big.db ASSENT_SCALE_SUBJECTS=1000000 benches/scale.sh
#
# (PostgreSQL: postgres://postgres@127.0.0.1:5432/NAME, a database of its own.) The seeder prints
# the audit queries' times (a filtered events page, one subject's events, coverage, a full
# export); this adds what needs the server or the command line:
#   - bytes per event on disk, indexes included (the SQLite file and its WAL, or the
#     PostgreSQL database's size, over the events);
#   - start-up: from `assent serve` until /healthz answers;
#   - status and a subject's history under load (benches/load.sh, 64 connections, with
#     /healthz in the same run to compare with);
#   - publishing a new material version of the service agreement (`assent sync` of the shipped
#     folder with one more version), beside a `sync` that finds nothing new: once per database,
#     since a published version stays;
#   - `assent verify` end to end: wall time and peak memory (GNU time).
# Needs sqlite3 or psql (to count events), wrk, curl and /usr/bin/time.
set -euo pipefail
url=${ASSENT_SCALE_DATABASE_URL:?set ASSENT_SCALE_DATABASE_URL to a database that examples/seed_ledger.rs filled}
subjects=${ASSENT_SCALE_SUBJECTS:?set ASSENT_SCALE_SUBJECTS to the number of subjects seeded}
bin=${ASSENT_BIN:-./target/release/assent}
export ASSENT_DATABASE_URL=$url ASSENT_POLICIES=${ASSENT_POLICIES:-./policies} ASSENT_LOG=warn
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

case $url in
  sqlite://*)
    file=${url#sqlite://}
    query() { sqlite3 "$file" "$1"; }
    bytes() { stat -c %s "$file" "$file-wal" 2>/dev/null | awk '{t += $1} END {print t}'; }
    ;;
  postgres://*)
    query() { psql -At "$url" -c "$1"; }
    bytes() { query "SELECT pg_database_size(current_database())"; }
    ;;
  *) echo "ASSENT_SCALE_DATABASE_URL: sqlite:// or postgres://" >&2; exit 2 ;;
esac
events=$(query "SELECT count(*) FROM events")
echo "database: ${url%%:*}, $events events, $subjects subjects, $(nproc) cores"
echo "on disk: $(bytes) bytes, $(( $(bytes) / events )) bytes per event"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
started=$(date +%s%N)
$bin serve --bind "127.0.0.1:$port" &
server=$!
until curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.005; done
echo "start-up until /healthz answers: $(ms "$started") ms"
kill "$server"; wait "$server" 2>/dev/null || true; server=

ASSENT_LOAD_SUBJECTS="user-%07d:$subjects" ASSENT_LOAD_ONLY=${ASSENT_SCALE_LOAD:-healthz status history} \
  ASSENT_LOAD_VERIFY=0 ASSENT_BIN=$bin ASSENT_LOAD_DATABASE_URL=$url benches/load.sh

cp -r "$ASSENT_POLICIES" "$work/policies"
export ASSENT_POLICIES=$work/policies
next=$(( $(find "$work/policies/service-agreement" -name 'v*.md' ! -name 'v*.*.md' | wc -l) + 1 ))
if [ "$(query "SELECT count(*) FROM versions v JOIN documents d ON d.id = v.document_id WHERE d.slug = 'service-agreement' AND v.version = $next")" != 0 ]; then
  echo "publishing: service-agreement v$next is already published here (seed again to measure it)"
else
  started=$(date +%s%N)
  $bin sync >/dev/null
  nothing=$(ms "$started")
  sed -e 's/^material: .*/material: true/' -e "s/^summary: .*/summary: Measured by benches\/scale.sh./" \
    -e 's/^effective: .*/effective: 2030-01-01/' "$work/policies/service-agreement/v$((next - 1)).md" \
    >"$work/policies/service-agreement/v$next.md"
  echo "A sentence that version $next adds." >>"$work/policies/service-agreement/v$next.md"
  started=$(date +%s%N)
  $bin sync >/dev/null
  echo "publishing a material version (assent sync): $(ms "$started") ms; a sync with nothing new: $nothing ms"
fi

/usr/bin/time -f "verify: %e s wall, %U s user, %S s system, peak %M KiB" $bin verify 2>&1 | tail -n 2

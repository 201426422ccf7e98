#!/usr/bin/env bash
# Load test against a running release build: requests/s and latency percentiles for /healthz,
# the status check, a subject's history, acceptances and pages, with 64 connections. Uses wrk (Debian package `wrk`).
#
#   benches/load.sh                         # SQLite in a temporary folder
#   ASSENT_LOAD_DATABASE_URL=postgres://postgres@127.0.0.1:5432/assent_load benches/load.sh
#   ASSENT_BIN=/path/to/an/older/assent benches/load.sh   # the same load against another build
#   ASSENT_LOAD_WEBHOOK=slow benches/load.sh   # with one endpoint subscribed to acceptances that
#                                              # answers after 1 s (fast: at once, and the delivery
#                                              # latency under load and at 50 acceptances/s)
#
#   ASSENT_LOAD_ONLY=accept benches/load.sh    # only these runs, of: healthz accept status
#                                              # history page page-br (a policy page,
#                                              # ASSENT_LOAD_PAGE, default
#                                              # /policies/privacy-policy: as is, and asked for as
#                                              # a browser does, Accept-Encoding: gzip, deflate, br)
#                                              # (status and history, a subject's events, ask
#                                              # about the subjects the acceptance run created:
#                                              # without it, about unknown ones)
#   ASSENT_LOAD_SUBJECTS=user-%07d:1000000 ASSENT_LOAD_ONLY="healthz status history" \
#     ASSENT_LOAD_DATABASE_URL=… benches/load.sh  # status and history of a ledger that
#                                              # examples/seed_ledger.rs filled (its subjects);
#                                              # ASSENT_LOAD_VERIFY=0 leaves out the closing verify
#   ASSENT_LOAD_SERVERS=3 ASSENT_LOAD_DATABASE_URL=postgres://… benches/load.sh
#                                              # three servers on one database, a wrk each with a
#                                              # third of the connections: the sum of requests/s,
#                                              # the highest p50 and p99, CPU per request of all
#
# Besides requests/s and latency, each row gives the server's CPU time per request (user and
# system, from /proc), which moves far less between runs on a shared machine than requests/s.
# Loopback only; every run is bounded in time (ASSENT_LOAD_SECONDS, default 10 per endpoint).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
  else
    echo "wrk is missing: apt-get install wrk" >&2; exit 1
  fi
fi

seconds=${ASSENT_LOAD_SECONDS:-10}
connections=${ASSENT_LOAD_CONNECTIONS:-64}
only=${ASSENT_LOAD_ONLY:-healthz accept status}
for name in $only; do
  case $name in healthz|accept|status|history|page|page-br) ;; *) echo "ASSENT_LOAD_ONLY: \`$name\` is not one of healthz accept status history page page-br" >&2; exit 2 ;; esac
done
work=$(mktemp -d)
stop() {
  for pid in ${server:-} ${receiver:-}; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap stop EXIT

export ASSENT_DATABASE_URL=${ASSENT_LOAD_DATABASE_URL:-sqlite://$work/load.db}
export ASSENT_POLICIES=${ASSENT_POLICIES:-./policies}
export ASSENT_LOG=warn

if [ -n "${ASSENT_BIN:-}" ]; then
  bin=$ASSENT_BIN
else
  cargo build --release --quiet
  bin=./target/release/assent
fi
$bin sync >/dev/null
export ASSENT_LOAD_KEY=$($bin keys create "load-$(date +%s)-$$" --scope write 2>/dev/null)
webhook=${ASSENT_LOAD_WEBHOOK:-none}
if [ "$webhook" != none ]; then
  delay=0
  [ "$webhook" = slow ] && delay=1
  hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  python3 benches/webhooks.py receive "$hport" "$delay" "$work/latency" &
  receiver=$!
  export ASSENT_WEBHOOK_ALLOW_PRIVATE=1
  $bin webhooks add "http://127.0.0.1:$hport/" --events accepted >/dev/null
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# ASSENT_LOAD_SERVERS servers on the one database (for PostgreSQL: several servers), each with
# its share of the connections and a wrk of its own; the figures are their sum (requests/s),
# the highest of their p50 and p99, and their CPU time together per request.
servers=${ASSENT_LOAD_SERVERS:-1}
ports=() pids=()
for _ in $(seq 1 "$servers"); do
  port=$(free_port)
  $bin serve --bind "127.0.0.1:$port" &
  pids+=($!) ports+=("$port")
  server=${pids[*]}
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
done
port=${ports[0]}

# The servers' CPU time so far, in clock ticks (utime + stime of /proc/PID/stat, counted after
# the command name, which may hold spaces).
ticks() { for pid in "${pids[@]}"; do sed 's/.*) //' "/proc/$pid/stat"; done | awk '{t += $12 + $13} END {print t}'; }
# A wrk latency (800.00us, 5.30ms, 1.20s) in ms.
to_ms() { awk '{v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[0-9]s$/ && $1 !~ /ms$/) v *= 1000; printf "%.2fms\n", v}'; }
run() {
  local name=$1 key=$2 path=$3; shift 3
  case " $only " in *" $key "*) ;; *) return 0 ;; esac
  local before after n=0 threads=2 each=$((connections / servers)) clients=()
  [ "$servers" -gt 1 ] && threads=1
  [ "$each" -lt 1 ] && each=1
  before=$(ticks)
  for port in "${ports[@]}"; do
    n=$((n + 1))
    wrk -t"$threads" -c"$each" -d"${seconds}s" --latency "$@" "http://127.0.0.1:$port$path" >"$work/wrk.$n" &
    clients+=($!)
  done
  wait "${clients[@]}"
  after=$(ticks)
  local rps requests p50 p99 errors cpu
  rps=$(awk '/Requests\/sec/ {t += $2} END {printf "%.2f", t}' "$work"/wrk.*)
  requests=$(awk '/requests in/ {t += $1} END {print t}' "$work"/wrk.*)
  p50=$(awk '$1 == "50%" {print $2}' "$work"/wrk.* | to_ms | sort -n | tail -n 1)
  p99=$(awk '$1 == "99%" {print $2}' "$work"/wrk.* | to_ms | sort -n | tail -n 1)
  errors=$(awk '/Non-2xx/ {t += $5} END {print t + 0}' "$work"/wrk.*)
  rm -f "$work"/wrk.*
  cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "%.0f µs", n ? t / hz * 1e6 / n : 0 }')
  printf '| %-24s | %10s | %8s | %8s | %8s | %s\n' "$name" "$rps" "$p50" "$p99" "$cpu" "${errors:-0} non-2xx"
}

echo "database: ${ASSENT_DATABASE_URL%%:*}, $servers server(s), $connections connections, ${seconds}s each, $(nproc) cores shared by client and server, webhook endpoint: $webhook"
printf '| %-24s | %10s | %8s | %8s | %8s |\n' "endpoint" "requests/s" "p50" "p99" "CPU/req"
run "GET /healthz" healthz /healthz
run "POST .../acceptances" accept "" -s benches/load/accept.lua
run "GET .../status" status "" -s benches/load/status.lua
ASSENT_LOAD_READ=events run "GET .../events" history "" -s benches/load/status.lua
page=${ASSENT_LOAD_PAGE:-/policies/privacy-policy}
run "GET $page" page "$page"
run "GET $page (br)" page-br "$page" -H "Accept-Encoding: gzip, deflate, br"
if [ "$webhook" = fast ]; then
  # Wait for the backlog of the acceptance run to drain, then measure at a steady 50/s.
  for _ in $(seq 1 120); do
    [ "$($bin webhooks list | awk 'NR > 1 {print $NF}' | head -n 1)" = 0 ] && break
    sleep 1
  done
  echo "delivery latency under the acceptance load: $(python3 benches/webhooks.py summary "$work/latency")"
  before=$(wc -l <"$work/latency")
  python3 benches/webhooks.py pace "http://127.0.0.1:$port" "$ASSENT_LOAD_KEY" 500 0.02
  sleep 2
  echo "delivery latency at 50 acceptances/s: $(python3 benches/webhooks.py summary "$work/latency" "$before")"
fi
echo "server peak RSS: $(for pid in "${pids[@]}"; do awk '/VmHWM/ {printf "%.1f MiB ", $2 / 1024}' "/proc/$pid/status"; done)"
[ "${ASSENT_LOAD_VERIFY:-1}" = 0 ] || $bin verify | tail -n 1

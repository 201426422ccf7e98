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
#     folder with one more version), beside a `sync` that finds nothing new. This publishes into
#     the database for good: the folder with that version is kept beside it
#     (ASSENT_SCALE_POLICIES, default /tmp/assent-scale-policies-<hash of the URL>), and a later
#     run serves that folder and measures publishing no more;
#   - `assent verify` end to end: wall time and peak memory (GNU time).
# Needs sqlite3 or psql (to count events), wrk, curl and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
url=${ASSENT_SCALE_DATABASE_URL:?set ASSENT_SCALE_DATABASE_URL to a database that examples/seed_ledger.rs filled}
subjects=${ASSENT_SCALE_SUBJECTS:?set ASSENT_SCALE_SUBJECTS to the number of subjects seeded}
bin=${ASSENT_BIN:-./target/release/assent}
shipped=${ASSENT_POLICIES:-./policies}
folder=${ASSENT_SCALE_POLICIES:-/tmp/assent-scale-policies-$(printf %s "$url" | sha256sum | cut -c1-12)}
export ASSENT_DATABASE_URL=$url ASSENT_POLICIES=$folder ASSENT_LOG=warn
trap 'kill "${server:-}" 2>/dev/null || true' EXIT
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
[ "$events" -gt 0 ] || { echo "$url holds no events: run examples/seed_ledger.rs first" >&2; exit 2; }
echo "database: ${url%%:*}, $events events, $subjects subjects, $(nproc) cores"
echo "on disk: $(bytes) bytes (the whole database), $(( $(bytes) / events )) bytes per event"

# The version to publish: the next of the shipped folder's, made from the one before it (front
# matter only is rewritten), the same text every time.
next=$(( $(find "$shipped/service-agreement" -name 'v*.md' ! -name 'v*.*.md' | wc -l) + 1 ))
new_version() {
  awk -v n="$next" 'NR == 1 || /^---$/ { fences++ }
    fences == 1 && /^material:/ { print "material: true"; next }
    fences == 1 && /^summary:/ { print "summary: Measured by benches/scale.sh."; next }
    fences == 1 && /^effective:/ { print "effective: 2030-01-01"; next }
    { print } END { print ""; print "A sentence that version " n " adds." }' \
    "$shipped/service-agreement/v$((next - 1)).md"
}
published=$(query "SELECT count(*) FROM versions v JOIN documents d ON d.id = v.document_id WHERE d.slug = 'service-agreement' AND v.version = $next")
rm -rf "$folder"
cp -r "$shipped" "$folder"
[ "$published" = 0 ] || new_version >"$folder/service-agreement/v$next.md"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
started=$(date +%s%N)
"$bin" serve --bind "127.0.0.1:$port" &
server=$!
deadline=$(( $(date +%s) + 60 ))
until curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { echo "assent serve stopped before it answered" >&2; exit 1; }
  [ "$(date +%s)" -lt "$deadline" ] || { echo "assent serve did not answer within 60 s" >&2; exit 1; }
  sleep 0.005
done
echo "start-up until /healthz answers: $(ms "$started") ms"
kill "$server"; wait "$server" 2>/dev/null || true; server=

ASSENT_LOAD_SUBJECTS="user-%07d:$subjects" ASSENT_LOAD_ONLY=${ASSENT_SCALE_LOAD:-healthz status history} \
  ASSENT_LOAD_VERIFY=0 ASSENT_BIN=$bin ASSENT_LOAD_DATABASE_URL=$url benches/load.sh

if [ "$published" != 0 ]; then
  echo "publishing: service-agreement v$next was published here by an earlier run (seed a fresh database to measure it)"
else
  started=$(date +%s%N)
  "$bin" sync >/dev/null
  nothing=$(ms "$started")
  new_version >"$folder/service-agreement/v$next.md"
  started=$(date +%s%N)
  "$bin" sync >/dev/null
  echo "publishing a material version (assent sync): $(ms "$started") ms; a sync with nothing new: $nothing ms"
fi

/usr/bin/time -f "verify: %e s wall, %U s user, %S s system, peak %M KiB" "$bin" verify 2>&1 | tail -n 2

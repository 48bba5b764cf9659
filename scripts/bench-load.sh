#!/usr/bin/env bash
# Load benchmark (not a test): 100 concurrent connections doing submit and
# status against the Worker in the local runtime, with wrk (Debian). Prints
# p50/p99, the error count, and checks every 202 has its row.
#   DURATION=30s CONNECTIONS=100 bash scripts/bench-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null || sudo apt-get install -y wrk >/dev/null; }
tsp_install
tsp_build
trap tsp_down EXIT
tsp_up "$PWD/.state/load"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
api() { curl -fsS -H "authorization: Bearer $TSP_TOKEN" "$@"; }
JOB_ID=$(api -X POST -H 'content-type: application/json' \
  -d '{"site":"load-status","points":["p1"],"days":1}' "$TSP_URL/v1/jobs" | json 'd["job_id"]')
export JOB_ID TSP_TOKEN
before=$(api "$TSP_URL/v1/stats" | json 'sum(d["counts"].values())')
log "wrk: ${CONNECTIONS:-100} connections, 2 threads, ${DURATION:-30s}, submit + status"
out=$(wrk -t2 -c"${CONNECTIONS:-100}" -d"${DURATION:-30s}" --latency -s scripts/load/submit-status.lua "$TSP_URL")
echo "$out"
result=$(echo "$out" | grep '^RESULT')
accepted=$(echo "$result" | sed -E 's/.*accepted_202=([0-9]+).*/\1/')
after=$(api "$TSP_URL/v1/stats" | json 'sum(d["counts"].values())')
rows=$((after - before))
log "202 responses: $accepted; new rows: $rows"
[ "$rows" -eq "$accepted" ] || { log "MISMATCH: every 202 must have exactly its row"; exit 1; }
log "every 202 has its row"

#!/usr/bin/env bash
# Load benchmark (not a test): 100 concurrent connections doing submit and
# status against the Worker in the local runtime, with wrk (Debian). Prints
# p50/p99, the error count, and checks every 202 has its row. Then a
# status-only run. For both it reports the CPU time workerd used per request
# (user + system, from /proc): an upper bound on the Worker's CPU per
# request, since it also counts the runtime, the local D1/R2 simulations and,
# in the mixed run, the consumer processing the submitted jobs.
#   DURATION=30s CONNECTIONS=100 bash scripts/bench-load.sh
# STATUS_ONLY=1 skips the mixed submit + status run (and its row check), for
# quick side-by-side comparisons of the status route; ROUNDS (default 2) sets
# how many status/baseline pairs run. BASELINE_PLAIN=1 also measures the
# earlier baseline (no auth, `WHERE id = ?`) in each round. CONCURRENT_ROUNDS=N
# adds N rounds that load the status route and the baseline at the same time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null || sudo apt-get install -y wrk >/dev/null; }
tsp_install
tsp_build
trap tsp_down EXIT
# VARIANT_BUILD=DIR (another build's build/producer/) runs that build beside this
# one in the same runtime (dev.mjs TSP_VARIANT_MAIN), and each round also
# measures it: an A/B of two builds under the same load.
if [ -n "${VARIANT_BUILD:-}" ]; then
  rm -rf "$PWD/.state/load/variant-build" && mkdir -p "$PWD/.state/load"
  cp -r "$VARIANT_BUILD" "$PWD/.state/load/variant-build"
  export TSP_VARIANT_MAIN="$PWD/.state/load/variant-build/index.js"
fi
# Every submit is a new job: lift the per-owner active-job limit (429).
TSP_BASELINE=1 TSP_VARS="MAX_ACTIVE_JOBS=0
DAILY_CHUNK_QUOTA=0" tsp_up "$PWD/.state/load"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
api() { curl -fsS -H "authorization: Bearer $TSP_TOKEN" "$@"; }
JOB_ID=$(api -X POST -H 'content-type: application/json' \
  -d '{"site":"load-status","points":["p1"],"days":1}' "$TSP_URL/v1/jobs" | json 'd["job_id"]')
export JOB_ID TSP_TOKEN
export IDS_DIR="$TSP_STATE/ids"
rm -rf "$IDS_DIR" && mkdir -p "$IDS_DIR"
cpu_per_request() { # ticks-before ticks-after requests label
  python3 -c "import sys; b,a,n,hz=map(int,sys.argv[1:5]); print(f'[tsp] workerd CPU, {sys.argv[5]}: {(a-b)/hz*1000:.0f} ms over {n} requests = {(a-b)/hz*1000/max(n,1):.2f} ms per request')" \
    "$1" "$2" "$3" "$(getconf CLK_TCK)" "$4"
}

if [ "${STATUS_ONLY:-0}" != 1 ]; then
  log "wrk: ${CONNECTIONS:-100} connections, 2 threads, ${DURATION:-30s}, submit + status"
  t0=$(workerd_ticks)
  out=$(wrk -t2 -c"${CONNECTIONS:-100}" -d"${DURATION:-30s}" --latency -s scripts/load/submit-status.lua "$TSP_URL")
  t1=$(workerd_ticks)
  echo "$out"
  accepted=$(echo "$out" | grep '^RESULT' | sed -E 's/.*accepted_202=([0-9]+).*/\1/')
  requests=$(echo "$out" | grep '^RESULT' | sed -E 's/.*requests=([0-9]+).*/\1/')
  cpu_per_request "$t0" "$t1" "$requests" "submit + status (and the consumer running the new jobs)"

  # Status only: no new jobs, so the consumer is idle once the backlog drains.
  log "waiting for the consumer to drain the submitted jobs"
  for _ in $(seq 600); do
    busy=$(api "$TSP_URL/v1/stats" | json 'd["counts"]["queued"] + d["counts"]["processing"] + d["counts"]["failed"]')
    [ "$busy" = 0 ] && break
    sleep 1
  done
fi
# Side by side, alternating, under the same load: the status route, and a
# baseline Worker in the same runtime that answers with one indexed D1 read.
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
pct() { echo "$1" | awk -v p="$2" '$1 == p {print $2}'; }
# measure LABEL URL [wrk args...]: one wrk run; prints its summary and the
# workerd CPU per request; leaves the wrk output in $out.
measure() {
  local label=$1 url=$2 t0 t1 n
  shift 2
  t0=$(workerd_ticks)
  out=$(wrk -t2 -c"${CONNECTIONS:-100}" -d"${STATUS_DURATION:-10s}" --latency "$@" "$url")
  t1=$(workerd_ticks)
  echo "$out" | grep -E "Latency|50%|99%|Requests/sec|requests in|Non-2xx"
  n=$(echo "$out" | grep -E '^ +[0-9]+ requests in' | awk '{print $1}')
  cpu_per_request "$t0" "$t1" "$n" "$label"
}
summary() { echo "$1 $(rps "$2") req/s (p50 $(pct "$2" 50%), p99 $(pct "$2" 99%))"; }
ratio() { awk -v a="$(rps "$1")" -v b="$(rps "$2")" 'BEGIN { printf "%.2f", a / b }'; }
auth=(-H "authorization: Bearer $TSP_TOKEN")
for round in $(seq "${ROUNDS:-2}"); do
  log "round $round: wrk ${CONNECTIONS:-100} connections, ${STATUS_DURATION:-10s}, status route"
  measure "status route, round $round" "$TSP_URL/v1/jobs/$JOB_ID" "${auth[@]}"; sout=$out
  if [ -n "${VARIANT_BUILD:-}" ]; then
    log "round $round: the same load on the variant build (Host: variant.localhost)"
    measure "variant, round $round" "$TSP_URL/v1/jobs/$JOB_ID" "${auth[@]}" -H "Host: variant.localhost"; vout=$out
  fi
  log "round $round: the same load on the baseline Worker (auth, one indexed D1 read)"
  measure "baseline, round $round" "$TSP_URL/__baseline?id=$JOB_ID" "${auth[@]}"; bout=$out
  line="[tsp] round $round: $(summary status "$sout"); $(summary baseline "$bout"); ratio $(ratio "$sout" "$bout")"
  if [ -n "${VARIANT_BUILD:-}" ]; then
    line="$line; $(summary variant "$vout"); variant/baseline $(ratio "$vout" "$bout"); status/variant $(ratio "$sout" "$vout")"
  fi
  if [ "${BASELINE_PLAIN:-0}" = 1 ]; then
    log "round $round: the same load on the plain baseline (no auth, WHERE id = ?)"
    measure "plain baseline, round $round" "$TSP_URL/__baseline/plain?id=$JOB_ID"; pout=$out
    line="$line; $(summary "plain baseline" "$pout"); status/plain $(ratio "$sout" "$pout")"
  fi
  echo "$line"
done
# Both at once: half the connections on the status route and half on the
# baseline, in the same seconds. The runtime's one event loop shares its CPU
# between the requests in flight, so with equal connections each side's
# throughput goes as 1 / its cost, whatever CPU share the runtime gets from a
# busy machine: the ratio holds up under load that swings the alternating
# rounds above by 2x from one round to the next.
for round in $(seq "${CONCURRENT_ROUNDS:-0}"); do
  half=$(( ${CONNECTIONS:-100} / 2 ))
  log "concurrent round $round: $half connections on each, ${STATUS_DURATION:-10s}"
  t0=$(workerd_ticks)
  wrk -t1 -c"$half" -d"${STATUS_DURATION:-10s}" --latency "${auth[@]}" "$TSP_URL/v1/jobs/$JOB_ID" > "$TSP_STATE/c-status.txt" &
  wpid=$!
  bout=$(wrk -t1 -c"$half" -d"${STATUS_DURATION:-10s}" --latency "${auth[@]}" "$TSP_URL/__baseline?id=$JOB_ID")
  wait "$wpid"
  t1=$(workerd_ticks)
  sout=$(cat "$TSP_STATE/c-status.txt")
  n=$(( $(echo "$sout" | grep -E '^ +[0-9]+ requests in' | awk '{print $1}') + $(echo "$bout" | grep -E '^ +[0-9]+ requests in' | awk '{print $1}') ))
  cpu_per_request "$t0" "$t1" "$n" "both at once, round $round"
  echo "$sout$bout" | grep -E "Non-2xx" || true
  echo "[tsp] concurrent round $round: $(summary status "$sout"); $(summary baseline "$bout"); ratio $(ratio "$sout" "$bout")"
done
[ "${STATUS_ONLY:-0}" = 1 ] && exit 0
# Every job id a 202 returned must have its row in D1 (read once the local
# runtime has stopped and released the database).
tsp_down
npx wrangler d1 execute tsp --local --persist-to "$TSP_STATE/persist" -c "$TSP_STATE/producer/wrangler.toml" \
  --json --command "SELECT id FROM queue_jobs" > "$TSP_STATE/rows.json" 2>/dev/null
python3 - "$IDS_DIR" "$TSP_STATE/rows.json" "$accepted" <<'PY'
import glob, json, sys
ids_dir, rows_path, accepted = sys.argv[1], sys.argv[2], int(sys.argv[3])
ids = [l.strip() for f in glob.glob(f"{ids_dir}/accepted-*.txt") for l in open(f) if l.strip()]
rows = {r["id"] for r in json.load(open(rows_path))[0]["results"]}
missing = [i for i in ids if i not in rows]
print(f"[tsp] 202 responses: {accepted}; job ids recorded: {len(ids)}; rows in D1: {len(rows)}; 202s without a row: {len(missing)}")
sys.exit(1 if missing or len(ids) != accepted else 0)
PY
log "every 202 has its row"

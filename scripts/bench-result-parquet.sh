#!/usr/bin/env bash
# What the consumer's Parquet costs (issue 21): the same 365-day × 10-point
# job (5-min data, a 50-point site, site walk) on a fresh stack with
# PARQUET_RESULTS=1 and with 0, in alternating order, ROUNDS times. Per
# run: wall time from submit to `completed`, and the workerd process
# group's CPU time (user + system, from /proc; the producer's answers to
# the polling are in it too, the same in both). Then, on a Parquet stack,
# the DuckDB pruning figure for that year (scripts/check-duckdb.sh): the
# bytes a one-point query fetches against the file's size.
#
#   bash scripts/bench-result-parquet.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
ROUNDS=${1:-3}

tsp_install
tsp_build
trap tsp_down EXIT
trap 'exit 130' INT TERM
OUT="$PWD/.state/bench-result-parquet.jsonl"
: > "$OUT"
py() { python3 -c "$1" "${@:2}"; }
api() { curl -fsS -m 60 -H "authorization: Bearer $TSP_TOKEN" "$@"; }

one() { # parquet(0|1) round
  TSP_VARS="PARQUET_RESULTS=$1" tsp_up "$PWD/.state/bench-result-parquet"
  local site=bench-pq points body id job t0 t1 c0 c1
  points=$(curl -fsS -H "authorization: Bearer dev-token" "$TSP_SIM_URL/sites/$site/configured_points?per_page=10000" | py '
import json, sys
items = [i["name"] for i in json.load(sys.stdin)["items"]]
print(json.dumps(items[: len(items) * 3 // 4][:10]))')
  body=$(py 'import json,sys; print(json.dumps({"site": sys.argv[1], "points": json.loads(sys.argv[2]), "start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}))' "$site" "$points")
  c0=$(workerd_ticks); t0=$(date +%s.%N)
  id=$(api -X POST -H 'content-type: application/json' -d "$body" "$TSP_URL/v1/jobs" | py 'import json,sys; print(json.load(sys.stdin)["job_id"])')
  while :; do
    job=$(api "$TSP_URL/v1/jobs/$id")
    case "$(echo "$job" | py 'import json,sys; print(json.load(sys.stdin)["status"])')" in
      completed) break ;;
      failed_permanent|cancelled) log "job ended: $job"; exit 1 ;;
    esac
    sleep 0.2
  done
  t1=$(date +%s.%N); c1=$(workerd_ticks)
  echo "$job" | py '
import json, sys
j = json.loads(sys.stdin.read())
r = j["result"]
print(json.dumps({"parquet": sys.argv[1] == "1", "round": int(sys.argv[2]),
    "seconds": round(float(sys.argv[3]), 2), "cpu_seconds": int(sys.argv[4]) / 100,
    "samples": j["progress"]["samples"], "chunks": j["progress"]["chunks_total"],
    "object_bytes": r["bytes"], "parquet_bytes": (r["parquet"] or {}).get("bytes")}))' \
    "$1" "$2" "$(py "print($t1 - $t0)")" "$((c1 - c0))" | tee -a "$OUT"
  if [ "$1" = 1 ] && [ "$2" = "$ROUNDS" ]; then
    log "DuckDB: one point of the year's Parquet"
    bash scripts/check-duckdb.sh bench-pq-duckdb 365 10 1 | tee -a "$OUT"
  fi
  tsp_down
}

for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then one 1 "$r"; one 0 "$r"; else one 0 "$r"; one 1 "$r"; fi
done
py '
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"parquet\"")]
on = [r for r in rows if r["parquet"]]; off = [r for r in rows if not r["parquet"]]
med = lambda rs, k: statistics.median(r[k] for r in rs)
samples = on[0]["samples"]
print(json.dumps({"median_seconds_on": med(on, "seconds"), "median_seconds_off": med(off, "seconds"),
    "wall_ratio": round(med(on, "seconds") / med(off, "seconds"), 3),
    "median_cpu_on": med(on, "cpu_seconds"), "median_cpu_off": med(off, "cpu_seconds"),
    "extra_cpu_ms_per_million_samples": round((med(on, "cpu_seconds") - med(off, "cpu_seconds")) * 1e9 / samples),
    "samples": samples, "parquet_bytes": on[0]["parquet_bytes"], "object_bytes": on[0]["object_bytes"]}))' "$OUT"

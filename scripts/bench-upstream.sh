#!/usr/bin/env bash
# Upstream benchmark (issue 18): jobs against the faithful simulator (the
# real ACE's behaviour: whole-site pages, naive times, its cursor bug), one
# after another on one fresh stack. For each job: wall time from submit to
# `completed`, samples, the plan, the upstream bytes and requests the job
# view reports, the simulator's own byte count for the site, and the
# largest wasm memory any consumer invocation logged while it ran.
#
#   bash scripts/bench-upstream.sh            # every job below
#   JOBS="a c" bash scripts/bench-upstream.sh # some of them
#
#   a  365 days × 10 points of a 50-point site, plan auto
#   b  365 days × 100 points of a 200-point site, plan site
#   c  365 days × 10 points of a 2,000-point site, plan auto
#   d  365 days × 10 points of a 200-point site, plan site
#   e  365 days × all 200 points of that site, plan site: one full pass of
#      the site's year through the consumer (what the seed's queue path does)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh

JOBS="${JOBS:-a b c d e}"
tsp_install
tsp_build
trap tsp_down EXIT
trap 'exit 130' INT TERM
TSP_VARS="MAX_POINTS=200" tsp_up "$PWD/.state/bench-upstream"

py() { python3 -c "$1" "${@:2}"; }
api() { curl -fsS -m 60 -H "authorization: Bearer $TSP_TOKEN" "$@"; }
sim() { curl -fsS -m 60 -H "authorization: Bearer dev-token" "$TSP_SIM_URL$1"; }

# The reporting points of SITE (the catalogue's first 75 %), N of them
# (all = the whole catalogue, silent points too).
points() {
  sim "/sites/$1/configured_points?per_page=10000" | py '
import json, sys
items = [i["name"] for i in json.load(sys.stdin)["items"]]
n = sys.argv[1]
pts = items if n == "all" else items[: len(items) * 3 // 4][: int(n)]
print(json.dumps(pts))' "$2"
}

site_bytes() { sim /__stats | py 'import json,sys; print(json.load(sys.stdin)["by_site"].get(sys.argv[1], {}).get("bytes", 0))' "$1"; }

# The bytes of the job's own points: each point's year from the per-point
# endpoint, once (the least any client can download for them).
own_bytes() {
  local site=$1 pts=$2 start=$3 end=$4
  py '
import json, sys, urllib.parse, urllib.request
base, start, end = sys.argv[1], sys.argv[3], sys.argv[4]
total = 0
for p in json.loads(sys.argv[2]):
    url = f"{base}/points/{urllib.parse.quote(p, safe=str())}/timeseries?start_time={start}&end_time={end}"
    req = urllib.request.Request(url, headers={"authorization": "Bearer dev-token"})
    total += len(urllib.request.urlopen(req, timeout=120).read())
print(total)' "$TSP_SIM_URL" "$pts" "$start" "$end"
}

run() { # name site n plan
  local name=$1 site=$2 n=$3 plan=$4 pts body created id job t0 t1 before after lines
  pts=$(points "$site" "$n")
  body=$(py 'import json,sys; print(json.dumps({"site": sys.argv[1], "points": json.loads(sys.argv[2]), "days": 365, "plan": sys.argv[3]}))' "$site" "$pts" "$plan")
  before=$(site_bytes "$site")
  lines=$(wc -l < "$TSP_STATE/worker.log")
  t0=$(date +%s.%N)
  created=$(api -X POST -H 'content-type: application/json' -d "$body" "$TSP_URL/v1/jobs")
  id=$(echo "$created" | py 'import json,sys; print(json.load(sys.stdin)["job_id"])')
  while :; do
    job=$(api "$TSP_URL/v1/jobs/$id")
    case "$(echo "$job" | py 'import json,sys; print(json.load(sys.stdin)["status"])')" in
      completed) break ;;
      failed_permanent|cancelled) log "job $name ended: $job"; exit 1 ;;
    esac
    sleep 0.5
  done
  t1=$(date +%s.%N)
  after=$(site_bytes "$site")
  local mem
  mem=$(tail -n +"$lines" "$TSP_STATE/worker.log" | py '
import json, sys
best = 0
for line in sys.stdin:
    i = line.find("{\"")
    if i < 0: continue
    try: v = json.loads(line[i:])
    except ValueError: continue
    if v.get("event") == "consumer_batch": best = max(best, v.get("wasm_memory_bytes", 0))
print(best)')
  local own=""
  if [ "$name" = c ] || [ "$name" = a ]; then
    own=$(own_bytes "$site" "$pts" "$(echo "$job" | py 'import json,sys; print(json.load(sys.stdin)["start"])')" \
      "$(echo "$job" | py 'import json,sys; print(json.load(sys.stdin)["end"])')")
  fi
  echo "$job" | py '
import json, sys
j = json.loads(sys.stdin.read())
name, site, secs, sim_bytes, mem, own = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
n = j["progress"]["samples"]
u = j["upstream"]
out = {"job": name, "site": site, "points": len(j["points"]), "plan": u["plan"], "asked": u["plan_requested"],
       "seconds": round(secs, 1), "samples": n, "samples_per_s": round(n / secs),
       "upstream_bytes": u["bytes"], "upstream_requests": u["requests"], "sim_bytes_for_site": sim_bytes,
       "chunks": j["progress"]["chunks_total"], "wasm_memory_mib": round(mem / 2**20, 1),
       "points_without_data": len(j["points_without_data"] or []), "result_bytes": j["result"]["bytes"]}
if own:
    out["own_points_bytes"] = int(own)
    out["bytes_over_own"] = round(u["bytes"] / int(own), 3)
print(json.dumps(out))' "$name" "$site" "$(py "print($t1 - $t0)")" "$((after - before))" "$mem" "$own" \
    | tee -a "$TSP_STATE/bench.jsonl"
}

: > "$TSP_STATE/bench.jsonl"
for j in $JOBS; do
  case "$j" in
    a) run a bench-a-50pts 10 auto ;;
    b) run b bench-b-200pts 100 site ;;
    c) run c bench-c-2000pts 10 auto ;;
    d) run d bench-d-200pts 10 site ;;
    e) run e bench-d-200pts all site ;;
  esac
done
if grep -q '"job": "d"' "$TSP_STATE/bench.jsonl" && grep -q '"job": "e"' "$TSP_STATE/bench.jsonl"; then
  py '
import json, sys
rows = {r["job"]: r for r in map(json.loads, open(sys.argv[1]))}
d, e = rows["d"], rows["e"]
print(json.dumps({"site_walk_of_10_points_over_one_full_pass": round(d["upstream_bytes"] / e["upstream_bytes"], 3)}))' \
    "$TSP_STATE/bench.jsonl"
fi

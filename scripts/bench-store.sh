#!/usr/bin/env bash
# Sample-store benchmark (issue 20): the same and shifted jobs, one after
# another on one fresh stack against the faithful simulator. Per job: wall
# time from submit to `completed`, and what the job view says it fetched
# from the upstream (bytes, requests, samples, windows) and read from the
# store (samples, windows).
#
#   bash scripts/bench-store.sh
#
#   fresh    365 days × 10 points of a 50-point site, settled (2025), owner A
#   second   the same request by owner B: served from the store
#   roll14a  14 days × 10 points ending 2026-11-20 (settled), owner A
#   roll14b  the same shifted one day later (ending 2026-11-21), owner A
#   today14a / today14b  `days: 14` (ending at today's midnight), owners A
#            then B: the second fetches the unsettled days again
#   roll365  `days: 365` by owner A, then owner B: windows fetched per point
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh

tsp_install
tsp_build
trap tsp_down EXIT
trap 'exit 130' INT TERM
tsp_up "$PWD/.state/bench-store"

B="other-tenant-token"
py() { python3 -c "$1" "${@:2}"; }
api() { curl -fsS -m 60 -H "authorization: Bearer $1" "${@:2}"; }
sim() { curl -fsS -m 60 -H "authorization: Bearer dev-token" "$TSP_SIM_URL$1"; }

points() { # SITE N: the first N reporting points
  sim "/sites/$1/configured_points?per_page=10000" | py '
import json, sys
items = [i["name"] for i in json.load(sys.stdin)["items"]]
print(json.dumps(items[: len(items) * 3 // 4][: int(sys.argv[1])]))' "$2"
}

run() { # name token body-json
  local name=$1 token=$2 body=$3 created id job t0 t1
  t0=$(date +%s.%N)
  created=$(api "$token" -X POST -H 'content-type: application/json' -d "$body" "$TSP_URL/v1/jobs")
  id=$(echo "$created" | py 'import json,sys; print(json.load(sys.stdin)["job_id"])')
  while :; do
    job=$(api "$token" "$TSP_URL/v1/jobs/$id")
    case "$(echo "$job" | py 'import json,sys; print(json.load(sys.stdin)["status"])')" in
      completed) break ;;
      failed_permanent|cancelled) log "job $name ended: $job"; exit 1 ;;
    esac
    sleep 0.2
  done
  t1=$(date +%s.%N)
  echo "$job" | py '
import json, sys
j = json.loads(sys.stdin.read())
u, s = j["upstream"], j["store"]
print(json.dumps({"job": sys.argv[1], "seconds": round(float(sys.argv[2]), 2), "points": len(j["points"]),
    "chunks": j["progress"]["chunks_total"], "samples": j["progress"]["samples"], "plan": u["plan"],
    "upstream_bytes": u["bytes"], "upstream_requests": u["requests"], "upstream_samples": u["samples"],
    "upstream_windows": u["windows"], "store_samples": s["samples"], "store_windows": s["windows"],
    "sha256": j["result"]["sha256"]}))' "$name" "$(py "print($t1 - $t0)")" | tee -a "$TSP_STATE/bench.jsonl"
}

body() { # site points start end
  py 'import json,sys; print(json.dumps({"site": sys.argv[1], "points": json.loads(sys.argv[2]), "start": sys.argv[3], "end": sys.argv[4]}))' "$@"
}
days() { # site points days
  py 'import json,sys; print(json.dumps({"site": sys.argv[1], "points": json.loads(sys.argv[2]), "days": int(sys.argv[3])}))' "$@"
}

: > "$TSP_STATE/bench.jsonl"
P=$(points bench-store-year 10)
run fresh "$TSP_TOKEN" "$(body bench-store-year "$P" 2025-01-01T00:00:00Z 2026-01-01T00:00:00Z)"
run second "$B" "$(body bench-store-year "$P" 2025-01-01T00:00:00Z 2026-01-01T00:00:00Z)"
P=$(points bench-store-roll 10)
run roll14a "$TSP_TOKEN" "$(body bench-store-roll "$P" 2026-11-06T00:00:00Z 2026-11-20T00:00:00Z)"
run roll14b "$TSP_TOKEN" "$(body bench-store-roll "$P" 2026-11-07T00:00:00Z 2026-11-21T00:00:00Z)"
P=$(points bench-store-today 10)
run today14a "$TSP_TOKEN" "$(days bench-store-today "$P" 14)"
run today14b "$B" "$(days bench-store-today "$P" 14)"
P=$(points bench-store-365 10)
run roll365a "$TSP_TOKEN" "$(days bench-store-365 "$P" 365)"
run roll365b "$B" "$(days bench-store-365 "$P" 365)"
py '
import json, sys
r = {x["job"]: x for x in map(json.loads, open(sys.argv[1]))}
ratio = lambda a, b, k: round(r[a][k] / max(r[b][k], 1e-9), 3)
print(json.dumps({
  "second_over_fresh_bytes": ratio("second", "fresh", "upstream_bytes"),
  "second_over_fresh_seconds": ratio("second", "fresh", "seconds"),
  "second_object_identical": r["second"]["sha256"] == r["fresh"]["sha256"],
  "roll14_shifted_over_first_bytes": ratio("roll14b", "roll14a", "upstream_bytes"),
  "today14_second_over_first_bytes": ratio("today14b", "today14a", "upstream_bytes"),
  "roll365_second_windows_per_point": r["roll365b"]["upstream_windows"],
}))' "$TSP_STATE/bench.jsonl" | tee -a "$TSP_STATE/bench.jsonl"

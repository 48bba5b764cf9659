#!/usr/bin/env bash
# Outage recovery (issue 22): ten jobs of one site (a single-site
# deployment) are running when the whole upstream goes down for OUTAGE_SECS
# (the simulator's `POST /faults/outage`). Per job: how long after the
# outage ended its progress moved again (a window committed, or it
# completed), and whether it completed; plus the circuit alerts the
# simulator's receiver got.
#
#   bash scripts/bench-outage.sh [OUTAGE_SECS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
OUTAGE=${1:-60}

tsp_install
tsp_build
trap tsp_down EXIT
trap 'exit 130' INT TERM
tsp_up "$PWD/.state/bench-outage"
py() { python3 -c "$1" "${@:2}"; }
api() { curl -fsS -m 60 -H "authorization: Bearer $TSP_TOKEN" "$@"; }

SITE=bench-outage
PTS=$(curl -fsS -H "authorization: Bearer dev-token" "$TSP_SIM_URL/sites/$SITE/configured_points?per_page=10000" | py '
import json, sys
items = [i["name"] for i in json.load(sys.stdin)["items"]]
print(json.dumps(items[: len(items) * 3 // 4][:20]))')
IDS=()
for i in $(seq 0 9); do
  body=$(py 'import json,sys; p=json.loads(sys.argv[1]); i=int(sys.argv[2]); print(json.dumps({"site": sys.argv[3], "points": p[2*i:2*i+2], "start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}))' "$PTS" "$i" "$SITE")
  IDS+=("$(api -X POST -H 'content-type: application/json' -d "$body" "$TSP_URL/v1/jobs" | py 'import json,sys; print(json.load(sys.stdin)["job_id"])')")
done
log "10 jobs submitted; the upstream goes down for $OUTAGE s once they run"
sleep 2
curl -fsS -X POST "$TSP_SIM_URL/faults/outage?secs=$OUTAGE" >/dev/null
END=$(py "import time; print(time.time() + $OUTAGE)")
python3 - "$TSP_URL" "$TSP_TOKEN" "$END" "$TSP_SIM_URL" "$OUTAGE" "${IDS[@]}" <<'PY'
import json, statistics, sys, time, urllib.request
url, token, end, sim, outage, *ids = sys.argv[1:]
end = float(end)
def view(i):
    req = urllib.request.Request(f"{url}/v1/jobs/{i}", headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req, timeout=30))
at_end = {}
back = {}
status = {}
deadline = end + 900
while time.time() < deadline:
    now = time.time()
    for i in ids:
        v = view(i)
        status[i] = v["status"]
        done = v["progress"]["chunks_done"]
        if now < end:
            at_end[i] = done
        elif i not in back and (done > at_end.get(i, 0) or v["status"] == "completed"):
            back[i] = now - end
    if now > end and all(s in ("completed", "failed_permanent", "cancelled") for s in status.values()):
        break
    time.sleep(0.5)
alerts = json.load(urllib.request.urlopen(f"{sim}/alerts", timeout=30))
circuit = [a.get("event") for a in alerts if str(a.get("event", "")).startswith("circuit")]
waits = sorted(back.values())
print(json.dumps({"outage_s": int(outage), "jobs": len(ids),
    "completed": sum(s == "completed" for s in status.values()),
    "back_after_outage_s": {"median": round(statistics.median(waits), 1) if waits else None,
                            "max": round(max(waits), 1) if waits else None, "all": [round(w, 1) for w in waits]},
    "circuit_alerts": circuit}))
PY

#!/usr/bin/env bash
# The run command: installs what is missing, builds once, starts the local
# stack (simulator + Worker in the local Workers runtime with fresh D1, R2
# and Queues), submits a 365-day job for 10 points, shows its progress, and
# prints a summary. Everything it starts is stopped on exit or Ctrl-C.
#
#   POINTS=10 DAYS=365 bash scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh

POINTS="${POINTS:-10}"
DAYS="${DAYS:-365}"
SITE="${SITE:-demo-building}"

tsp_install
tsp_build
trap tsp_down EXIT
trap 'exit 130' INT TERM
tsp_up "$PWD/.state/run"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
api() { curl -fsS -m 30 -H "authorization: Bearer $TSP_TOKEN" "$@"; }

points_json=$(python3 - "$SITE" "$POINTS" <<'PY'
import json, sys
site, n = sys.argv[1], int(sys.argv[2])
# The simulator's naming scheme, as ace_sim::default_points builds it.
kinds = ["AHU{k}.points.Supply_Air_Temp", "AHU{k}.points.Return_Air_Humidity",
         "VAV{k}.points.Zone_Temp", "AHU{k}.points.Supply_Fan_Status",
         "VAV{k}.points.Damper_Position", "CHW{k}.points.Flow_Rate"]
pts = [f"ses/ses_{site}/192.168.96.3/n4/Demo_Campus/C.Drivers.BacnetNetwork." + kinds[i % len(kinds)].format(k=i // len(kinds) + 1)
       for i in range(n)]
print(json.dumps(pts))
PY
)
body="{\"site\":\"$SITE\",\"points\":$points_json,\"days\":$DAYS}"
log "submitting a $DAYS-day job for $POINTS points of site $SITE"
t0=$(date +%s.%N)
created=$(api -X POST -H 'content-type: application/json' -d "$body" "$TSP_URL/v1/jobs")
id=$(echo "$created" | json 'd["job_id"]')
log "job $id accepted: $(echo "$created" | json 'd["status"]'), status at $TSP_URL/v1/jobs/$id"

while :; do
  job=$(api "$TSP_URL/v1/jobs/$id")
  status=$(echo "$job" | json 'd["status"]')
  line=$(echo "$job" | json '"%-10s chunks %s/%s  samples %s  %5.1f%%" % (d["status"], d["progress"]["chunks_done"], d["progress"]["chunks_total"], d["progress"]["samples"], d["progress"]["percent"])')
  printf '\r[tsp] %s   ' "$line" >&2
  case "$status" in completed|failed_permanent|cancelled) break ;; esac
  # The local runtime fires crons only when asked; do what the platform's
  # every-minute trigger does, so the reaper covers anything lost.
  polls=$((${polls:-0} + 1))
  [ $((polls % 30)) -eq 0 ] && curl -fsS -m 30 -o /dev/null "$TSP_URL/cdn-cgi/handler/scheduled?cron=*+*+*+*+*" || true
  sleep 1
done
printf '\n' >&2
t1=$(date +%s.%N)
if [ "$status" != completed ]; then
  log "job ended $status: $(echo "$job" | json 'd["last_error"]')"
  exit 1
fi

# Summary: samples, aggregate rows (through the API), object size, elapsed.
start=$(echo "$job" | json 'd["start"]'); end=$(echo "$job" | json 'd["end"]')
rows=$(python3 - "$TSP_URL" "$TSP_TOKEN" "$SITE" "$start" "$end" "$points_json" <<'PY'
import json, sys, urllib.parse, urllib.request
url, token, site, start, end, points = sys.argv[1:7]
total = {"1h": 0, "1d": 0}
for p in json.loads(points):
    for res in total:
        frm = start
        while frm:
            q = urllib.parse.urlencode({"site": site, "point": p, "resolution": res, "from": frm, "to": end})
            req = urllib.request.Request(f"{url}/v1/aggregates?{q}", headers={"authorization": f"Bearer {token}"})
            page = json.load(urllib.request.urlopen(req))
            total[res] += len(page["rows"])
            frm = page["next_from"]
print(f'{total["1d"]} daily + {total["1h"]} hourly')
PY
)
curl -fsS --connect-timeout 10 -y 60 -Y 1 -o "$TSP_STATE/result.msgpack.gz" -H "authorization: Bearer $TSP_TOKEN" "$TSP_URL/v1/jobs/$id/result"
samples=$(echo "$job" | json 'd["progress"]["samples"]')
# Every consumer batch logs the D1 statements it ran.
statements=$( (grep -o '"d1_statements":[0-9]*' "$TSP_STATE/worker.log" || true) | awk -F: '{s+=$2} END {print s+0}')
bytes=$(echo "$job" | json 'd["result"]["bytes"]')
python3 - "$samples" "$bytes" "$t0" "$t1" "$rows" "$TSP_STATE/result.msgpack.gz" "$statements" <<'PY'
import sys
samples, size, t0, t1, rows, path, stmts = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
el = t1 - t0
print("")
print("  job summary")
print(f"  samples          {samples:,}")
print(f"  aggregate rows   {rows}")
print(f"  result object    {size:,} bytes ({size / max(samples, 1):.2f} B/sample), saved to {path}")
print(f"  elapsed          {el:.1f} s ({samples / el:,.0f} samples/s end to end)")
print(f"  D1 statements    {stmts:,} by the consumer")
PY

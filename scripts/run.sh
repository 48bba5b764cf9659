#!/usr/bin/env bash
# The run command: installs what is missing, builds once, starts the local
# stack (simulator + the three Workers in the local Workers runtime with fresh D1, R2
# and Queues), submits a 365-day job for 10 points of a 50-point site,
# shows its progress, and prints a summary (with the upstream plan the
# consumer chose and what it downloaded). Everything it starts is stopped
# on exit or Ctrl-C.
#
#   POINTS=10 DAYS=365 SITE=bldg-50pts PLAN=auto bash scripts/run.sh
#
# The job asks for the first POINTS reporting points of SITE's catalogue,
# as the simulator lists them (like ACE, a site's last quarter of points
# report nothing; a site named ...-<N>pts has N points, any other 50).
# SITE defaults to a site five times the job's size (bldg-<5 x POINTS>pts).
# PLAN (auto, site or point) picks how the consumer fetches its windows;
# unset, the Worker's UPSTREAM_PLAN decides.
# TSP_RUN_STATE moves the state dir (default .state/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh

POINTS="${POINTS:-10}"
DAYS="${DAYS:-365}"
SITE="${SITE:-bldg-$((POINTS * 5))pts}"
PLAN="${PLAN:-}"

tsp_install
tsp_build
trap tsp_down EXIT
trap 'exit 130' INT TERM
tsp_up "${TSP_RUN_STATE:-$PWD/.state/run}"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
api() { curl -fsS -m 30 -H "authorization: Bearer $TSP_TOKEN" "$@"; }

# The first POINTS reporting points of the site's catalogue, from the
# simulator's configured_points (the first 75 % of a catalogue report).
points_json=$(python3 - "$TSP_SIM_URL" "$SITE" "$POINTS" <<'PY'
import json, sys, urllib.parse, urllib.request
url, site, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
req = urllib.request.Request(
    f"{url}/sites/{urllib.parse.quote(site, safe='')}/configured_points?per_page=100",
    headers={"Authorization": "Bearer dev-token"})
page = json.load(urllib.request.urlopen(req, timeout=30))
reporting = page["total"] - page["total"] // 4
if not 1 <= n <= min(reporting, 100):
    sys.exit(f"POINTS={n}: site {site} has {reporting} reporting points (of {page['total']}); ask for 1 to {min(reporting, 100)}")
print(json.dumps([p["name"] for p in page["items"][:n]]))
PY
)
body=$(python3 - "$SITE" "$points_json" "$DAYS" "$PLAN" <<'PY'
import json, sys
site, points, days, plan = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
body = {"site": site, "points": points, "days": days}
if plan:
    body["plan"] = plan
print(json.dumps(body))
PY
)
log "submitting a $DAYS-day job for $POINTS points of site $SITE${PLAN:+ (plan $PLAN)}"
t0=$(date +%s.%N)
created=$(api -X POST -H 'content-type: application/json' -d "$body" "$TSP_URL/v1/jobs")
id=$(echo "$created" | json 'd["job_id"]')
log "job $id accepted: $(echo "$created" | json 'd["status"]'), status at $TSP_URL/v1/jobs/$id"

while :; do
  job=$(api "$TSP_URL/v1/jobs/$id")
  status=$(echo "$job" | json 'd["status"]')
  line=$(echo "$job" | json '"%-10s chunks %s/%s  samples %s  %5.1f%%  plan %s, %.1f MB upstream" % (d["status"], d["progress"]["chunks_done"], d["progress"]["chunks_total"], d["progress"]["samples"], d["progress"]["percent"], d["upstream"]["plan"] or d["upstream"]["plan_requested"], d["upstream"]["bytes"] / 1e6)')
  printf '\r[tsp] %s   ' "$line" >&2
  case "$status" in completed|failed_permanent|cancelled) break ;; esac
  # The local runtime fires crons only when asked; do what the platform's
  # every-minute trigger does, so the reaper covers anything lost.
  polls=$((${polls:-0} + 1))
  [ $((polls % 30)) -eq 0 ] && curl -fsS -m 30 -o /dev/null "$TSP_DLQ_URL/cdn-cgi/handler/scheduled?cron=*+*+*+*+*" || true
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
python3 - "$samples" "$bytes" "$t0" "$t1" "$rows" "$TSP_STATE/result.msgpack.gz" "$statements" "$job" <<'PY'
import json, sys
samples, size, t0, t1, rows, path, stmts = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
job = json.loads(sys.argv[8])
up = job["upstream"]
silent = job.get("points_without_data") or []
el = t1 - t0
print("")
print("  job summary")
print(f"  samples          {samples:,}")
print(f"  aggregate rows   {rows}")
print(f"  result object    {size:,} bytes ({size / max(samples, 1):.2f} B/sample), saved to {path}")
print(f"  elapsed          {el:.1f} s ({samples / el:,.0f} samples/s end to end)")
print(f"  D1 statements    {stmts:,} by the consumer")
print(f"  upstream plan    {up['plan']} (asked {up['plan_requested']})")
print(f"  upstream         {up['bytes']:,} bytes in {up['requests']:,} requests ({up['bytes'] / max(samples, 1):.1f} B/sample)")
print(f"  without data     {len(silent)} of {len(job['points'])} points" + "".join(f"\n                   {p}" for p in silent))
PY

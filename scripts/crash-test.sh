#!/usr/bin/env bash
# Crash test under the local Workers runtime: SIGKILL the whole stack
# mid-job (D1 and R2 persist in the state dir; the local queue is in memory
# and loses the in-flight message), start it again on the same state,
# trigger the cron, and check the reaper resumes the job to the same result
# as an uninterrupted run. Then, past the stack's short retention period,
# the cron purges both finished jobs. Called by scripts/test.sh after tsp_build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
api() { curl -fsS -m 30 -H "authorization: Bearer $TSP_TOKEN" "$@"; }
fail() { log "crash test FAILED: $*"; tsp_diagnose; exit 1; }
# fire_cron REGEX: runs the cron (the local runtime runs crons only when
# asked) and waits for REGEX (grep -E) in the Worker's log, which reaches the file a
# moment after the cron's response.
fire_cron() {
  curl -fsS -m 30 "$TSP_DLQ_URL/cdn-cgi/handler/scheduled?cron=*+*+*+*+*" >/dev/null
  for _ in $(seq 50); do
    grep -qE "$1" "$state/worker.log" && return 0
    sleep 0.2
  done
  return 1
}

# TSP_CRASH_STATE: another state dir (the default is the test command's).
state="${TSP_CRASH_STATE:-$PWD/.state/crash}"
# A short lease so the reaper may take the job soon after the restart, a
# slower upstream so the kill lands mid-job, and a 20 s retention period.
export TSP_VARS="LEASE_MS=3000
CHUNKS_PER_INVOCATION=4
JOB_RETENTION_MS=20000"
export TSP_SIM_ARGS="--latency-ms 150"
trap tsp_down EXIT
tsp_up "$state"

# Four reporting points of a 50-point site's catalogue (the simulator lists
# it like ACE; its first 75 % report), over a year: twelve monthly windows
# of every point, so the kill, on the first checkpoint, leaves most of the
# job to the reaper.
SITE=crash-site
points=$(python3 - "$TSP_SIM_URL" "$SITE" <<'PY'
import json, sys, urllib.request
url, site = sys.argv[1:3]
req = urllib.request.Request(f"{url}/sites/{site}/configured_points?per_page=100",
                             headers={"Authorization": "Bearer dev-token"})
page = json.load(urllib.request.urlopen(req, timeout=30))
reporting = page["items"][: page["total"] - page["total"] // 4]
print(json.dumps([p["name"] for p in reporting[:4]]))
PY
)
body="{\"site\":\"$SITE\",\"points\":$points,\"start\":\"2025-01-01T00:00:00Z\",\"end\":\"2026-01-01T00:00:00Z\"}"
id=$(api -X POST -H 'content-type: application/json' -d "$body" "$TSP_URL/v1/jobs" | json 'd["job_id"]')
done_=0 total=0
for _ in $(seq 600); do
  read -r done_ total < <(api "$TSP_URL/v1/jobs/$id" | json '"%s %s" % (d["progress"]["chunks_done"], d["progress"]["chunks_total"])')
  [ "$done_" -ge 1 ] && break
  sleep 0.1
done
[ "$done_" -ge 1 ] || fail "no chunk of job $id was done within a minute"
[ "$done_" -lt "$total" ] || fail "job finished before the crash ($done_/$total)"
log "crash: SIGKILL the stack with job $id at $done_/$total chunks"
tsp_crash

TSP_KEEP_STATE=1 tsp_up "$state"
job=$(api "$TSP_URL/v1/jobs/$id")
status=$(echo "$job" | json 'd["status"]')
kept=$(echo "$job" | json 'd["progress"]["chunks_done"]')
# The checkpoints seen before the kill persisted, and nothing ran the rest.
[ "$kept" -ge "$done_" ] && [ "$kept" -lt "$total" ] \
  || fail "after the restart $kept/$total chunks are done (before the kill: $done_)"
log "after restart: $status, $kept/$total chunks; waiting for the lease to lapse"
# LEASE_MS=3000, and the reaper allows a lapsed lease 30 s of grace.
sleep 35
fire_cron '"event":"reaper_resend"' || fail "the reaper did not resend the job"
for _ in $(seq 600); do
  status=$(api "$TSP_URL/v1/jobs/$id" | json 'd["status"]')
  [ "$status" = completed ] && break
  sleep 0.2
done
[ "$status" = completed ] || fail "job ended $status after the restart"
crashed=$(api "$TSP_URL/v1/jobs/$id")
# Timeseries requests the simulator (restarted with the stack) has served.
sim_requests() { curl -fsS -m 30 "$TSP_SIM_URL/__stats" | json "d['by_site'].get('$SITE', {}).get('requests', 0)"; }
resumed_requests=$(sim_requests)

# The same request, uninterrupted (force bypasses coalescing).
forced=$(echo "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["force"]=True; print(json.dumps(d))')
id2=$(api -X POST -H 'content-type: application/json' -d "$forced" "$TSP_URL/v1/jobs" | json 'd["job_id"]')
for _ in $(seq 600); do
  status=$(api "$TSP_URL/v1/jobs/$id2" | json 'd["status"]')
  [ "$status" = completed ] && break
  sleep 0.2
done
[ "$status" = completed ] || fail "the uninterrupted job ended $status"
clean=$(api "$TSP_URL/v1/jobs/$id2")
clean_requests=$(( $(sim_requests) - resumed_requests ))
# The reaper resumed the job: after the restart it fetched only the windows
# not yet done, fewer than a whole run.
[ "$resumed_requests" -gt 0 ] && [ "$resumed_requests" -lt "$clean_requests" ] \
  || fail "after the restart the job made $resumed_requests upstream requests, a whole run $clean_requests"
# The result object (its SHA-256 and size), the sample count, the points
# without data and the plan; not the job's upstream traffic: the first job
# also paid for the site's configured_points, which the second finds cached.
same='(d["progress"]["samples"], d["result"]["sha256"], d["result"]["bytes"], d["points_without_data"], d["upstream"]["plan"])'
a=$(echo "$crashed" | json "$same")
b=$(echo "$clean" | json "$same")
[ "$a" = "$b" ] || fail "resumed $a differs from uninterrupted $b"
# Every sample of the four points, and each of them reported.
want=$((365 * 288 * 4))
[ "$(echo "$crashed" | json 'd["progress"]["samples"]')" = "$want" ] || fail "samples differ from $want"
[ "$(echo "$crashed" | json 'd["points_without_data"]')" = "[]" ] || fail "points without data: $(echo "$crashed" | json 'd["points_without_data"]')"
log "upstream: $(echo "$crashed" | json 'd["upstream"]["plan"]') plan; after the restart $resumed_requests timeseries requests, an uninterrupted run $clean_requests"
log "crash test passed: resumed job equals the uninterrupted run $a"

# Retention: once both have been finished for over 20 s, a cron purges them.
sleep 21
fire_cron '"event":"reaper_purge".*"jobs":2[,}]' || fail "the reaper did not purge the two finished jobs"
for j in "$id" "$id2"; do
  code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TSP_TOKEN" "$TSP_URL/v1/jobs/$j")
  [ "$code" = 404 ] || fail "job $j answers $code after the purge"
done
log "retention passed: both finished jobs purged by the cron"

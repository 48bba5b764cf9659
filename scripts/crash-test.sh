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
  curl -fsS -m 30 "$TSP_URL/cdn-cgi/handler/scheduled?cron=*+*+*+*+*" >/dev/null
  for _ in $(seq 50); do
    grep -qE "$1" "$state/worker.log" && return 0
    sleep 0.2
  done
  return 1
}

state="$PWD/.state/crash"
# A short lease so the reaper may take the job soon after the restart, a
# slower upstream so the kill lands mid-job, and a 20 s retention period.
export TSP_VARS="LEASE_MS=3000
CHUNKS_PER_INVOCATION=4
JOB_RETENTION_MS=20000"
export TSP_SIM_ARGS="--latency-ms 150"
trap tsp_down EXIT
tsp_up "$state"

body='{"site":"crash-site","points":["p1","p2","p3","p4"],"start":"2025-01-01T00:00:00Z","end":"2025-07-01T00:00:00Z"}'
id=$(api -X POST -H 'content-type: application/json' -d "$body" "$TSP_URL/v1/jobs" | json 'd["job_id"]')
total=0
for _ in $(seq 600); do
  job=$(api "$TSP_URL/v1/jobs/$id")
  done_=$(echo "$job" | json 'd["progress"]["chunks_done"]')
  total=$(echo "$job" | json 'd["progress"]["chunks_total"]')
  [ "$done_" -ge 3 ] && break
  sleep 0.1
done
[ "$done_" -lt "$total" ] || fail "job finished before the crash ($done_/$total)"
log "crash: SIGKILL the stack with job $id at $done_/$total chunks"
tsp_crash

TSP_KEEP_STATE=1 tsp_up "$state"
job=$(api "$TSP_URL/v1/jobs/$id")
status=$(echo "$job" | json 'd["status"]')
log "after restart: $status, $(echo "$job" | json 'd["progress"]["chunks_done"]')/$total chunks; waiting for the lease to lapse"
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

# The same request, uninterrupted (force bypasses coalescing).
forced=$(echo "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["force"]=True; print(json.dumps(d))')
id2=$(api -X POST -H 'content-type: application/json' -d "$forced" "$TSP_URL/v1/jobs" | json 'd["job_id"]')
for _ in $(seq 600); do
  status=$(api "$TSP_URL/v1/jobs/$id2" | json 'd["status"]')
  [ "$status" = completed ] && break
  sleep 0.2
done
clean=$(api "$TSP_URL/v1/jobs/$id2")
a=$(echo "$crashed" | json '(d["progress"]["samples"], d["result"]["sha256"], d["result"]["bytes"])')
b=$(echo "$clean" | json '(d["progress"]["samples"], d["result"]["sha256"], d["result"]["bytes"])')
[ "$a" = "$b" ] || fail "resumed $a differs from uninterrupted $b"
want=$((181 * 288 * 4))
[ "$(echo "$crashed" | json 'd["progress"]["samples"]')" = "$want" ] || fail "samples differ from $want"
log "crash test passed: resumed job equals the uninterrupted run $a"

# Retention: once both have been finished for over 20 s, a cron purges them.
sleep 21
fire_cron '"event":"reaper_purge".*"jobs":2[,}]' || fail "the reaper did not purge the two finished jobs"
for j in "$id" "$id2"; do
  code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TSP_TOKEN" "$TSP_URL/v1/jobs/$j")
  [ "$code" = 404 ] || fail "job $j answers $code after the purge"
done
log "retention passed: both finished jobs purged by the cron"

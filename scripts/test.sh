#!/usr/bin/env bash
# The test command: installs what is missing, runs the native tests, then
# builds the Worker and runs the end-to-end tests against it in the local
# Workers runtime (wrangler 4.86 / workerd, local D1, R2 and Queues).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
mkdir -p .state

tsp_install

log "native tests (cargo test --workspace)"
cargo test --workspace --quiet

tsp_build
for role in producer consumer dlq; do
  config=wrangler.toml
  [ "$role" = producer ] || config="$role/wrangler.toml"
  log "wrangler deploy --dry-run -c $config (the $role Worker builds and validates)"
  npx wrangler deploy --dry-run -c "$config" --outdir "$PWD/.state/dry-run/$role" \
    >"$PWD/.state/dry-run-$role.log" 2>&1 \
    || { cat "$PWD/.state/dry-run-$role.log" >&2; exit 1; }
done
# A ten-minute full outage of a single-site deployment, on a stack of its
# own (the simulator's outage is global), beside the other steps: it is
# mostly waiting. Its log is .state/outage.log; the run waits for it last.
outage_step() {
  trap 'tsp_down; exit 1' INT TERM
  trap tsp_down EXIT
  tsp_up "$PWD/.state/outage" || exit 1
  echo "$TSP_DEV_PID $TSP_SIM_PID" > "$PWD/.state/outage.pids"
  bounded 1800 cargo test --quiet --test pipeline -- --ignored --nocapture \
    faults::outage_of_ten_minutes || { tsp_diagnose; exit 1; }
}
log "a 10-minute outage on a stack of its own, in the background (.state/outage.log)"
rm -f "$PWD/.state/outage.pids"
( outage_step ) >"$PWD/.state/outage.log" 2>&1 &
OUTAGE_PID=$!
# On any exit: the outage step's test (GNU timeout passes the signal on),
# the step, and its stack's process groups (a trap in the step would only
# run once its test returned).
outage_down() {
  pkill -TERM -P "$OUTAGE_PID" 2>/dev/null || true
  kill "$OUTAGE_PID" 2>/dev/null || true
  local p
  for p in $(cat "$PWD/.state/outage.pids" 2>/dev/null); do
    kill -KILL -- "-$p" 2>/dev/null || true
  done
}
trap 'tsp_down; outage_down' EXIT INT TERM
# Each step has a deadline well above its usual time (e2e ~4 min, CLI ~1,
# Parquet ~0.5 (~1.5 with a first install), DuckDB ~0.2 (~1 with a first
# install), schemathesis ~2,
# browser ~1, crash ~2), far inside CI's 90 minutes.
# Results over 1 MiB (the 365-day e2e job's) take the multipart upload path;
# an always-failing site's job gives up after a minute of upstream failures
# (MAX_UPSTREAM_WAIT_MS; 24 h by default).
TSP_VARS="SINGLE_PUT_MAX_BYTES=1048576
MAX_UPSTREAM_WAIT_MS=60000" tsp_up "$PWD/.state/test"
log "e2e tests against the Worker at $TSP_URL"
bounded 1200 cargo test --quiet --test pipeline -- --ignored --test-threads 4 e2e_ \
  || { tsp_diagnose; exit 1; }
tsp_down
# The site walk in pages of ten rows: every timestamp bucket of a 50-point
# site spans pages, so ACE's cursor bug meets almost every page. The same
# small stack holds a low active-job limit for the limits test, and runs
# the batch-fairness test while nothing else is queued (each test as its
# own owner).
TSP_VARS="UPSTREAM_PAGE_SIZE=10
MAX_ACTIVE_JOBS=2" tsp_up "$PWD/.state/paging"
log "small stack, one test at a time: a batch's fairness; a retry past MAX_ACTIVE_JOBS; a 50-point site walked ten rows a page (ACE's cursor bug)"
bounded 600 cargo test --quiet --test pipeline -- --ignored --test-threads 1 fairness_ limits_ paging_ \
  || { tsp_diagnose; exit 1; }
tsp_down
# The clients' tests get a fresh stack of their own, so they neither see
# nor wait behind what the e2e suite left in the local queue.
tsp_up "$PWD/.state/clients"
log "CLI end to end (tsp submit --wait, fetch to CSV, aggregates)"
bounded 600 cargo test --quiet -p tsp-cli --test e2e -- --ignored || { tsp_diagnose; exit 1; }
log "Parquet: tsp fetch/aggregates --format parquet read back by DuckDB, pyarrow, pandas, polars"
bounded 420 bash scripts/check-parquet.sh || { tsp_diagnose; exit 1; }
log "DuckDB 1.4.4 + httpfs: result.parquet queried in place over HTTP with a bearer token"
bounded 420 bash scripts/check-duckdb.sh || { tsp_diagnose; exit 1; }
log "schemathesis against the served OpenAPI spec"
bounded 900 bash scripts/schemathesis.sh || { tsp_diagnose; exit 1; }
log "/v1/metrics through a real OpenMetrics parser (prometheus_client)"
bounded 300 bash scripts/check-metrics.sh || { tsp_diagnose; exit 1; }
log "status page in headless Chromium (playwright-core)"
bounded 900 bash tests/browser/run.sh || { tsp_diagnose; exit 1; }
tsp_down
# Upstream faults get a stack of their own: 20 % of each site's 5-second
# windows fail (503, or 429 with Retry-After), pages hold 1,000 samples,
# and one test takes the whole upstream down for 90 s.
TSP_SIM_ARGS="--window-fault-rate 0.2 --fault-window-secs 5 --seed 7" \
  TSP_VARS="UPSTREAM_PAGE_SIZE=1000" tsp_up "$PWD/.state/faults"
log "faults end to end (windowed faults, a 30 s single-site and a 90 s outage, a backlog, concurrent submits)"
bounded 1500 cargo test --quiet --test pipeline -- --ignored --test-threads 1 faults:: --skip outage_ \
  || { tsp_diagnose; exit 1; }
tsp_down
log "crash test: kill the stack mid-job, restart, the reaper resumes"
bounded 900 bash scripts/crash-test.sh
log "waiting for the 10-minute outage (started in the background)"
wait "$OUTAGE_PID" || { tail -60 "$PWD/.state/outage.log" >&2; log "the 10-minute outage failed"; exit 1; }
grep -h "outage of 600 s" "$PWD/.state/outage.log" >&2 || true
log "all tests passed"

#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh. Source it.
#
#   tsp_install        clang, wasm target, worker-build, wasm-bindgen-cli, npm ci
#   tsp_build          the simulator (native) and the Worker (wasm), once
#   tsp_up DIR         fresh local state in DIR, migrations, simulator, Worker
#   tsp_down           stops what tsp_up started, by PID / process group
#
# After tsp_up: TSP_URL (the producer Worker, the API), TSP_DLQ_URL (where
# the dead-letter Worker's cron handler answers: the same origin, whose
# `/cdn-cgi/handler/` paths route to it), TSP_SIM_URL (the simulator),
# TSP_TOKEN (an API token), TSP_STATE (the state dir).

TSP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORKER_BUILD_VERSION="0.8.7"
export WRANGLER_SEND_METRICS=false
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m[tsp]\033[0m %s\n' "$*" >&2; }

# bounded SECS CMD...: runs CMD with a deadline, so one stalled step fails
# the run with its name instead of eating CI's whole time budget.
bounded() {
  local secs=$1 rc=0
  shift
  timeout --kill-after=15 "$secs" "$@" || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    log "TIMED OUT after ${secs} s: $*"
  fi
  return "$rc"
}

# tsp_diagnose: what a failed step leaves for the reader: the Worker's log
# tail, whether the runtime still answers, and its processes and open fds.
tsp_diagnose() {
  [ -n "${TSP_STATE:-}" ] || return 0
  log "worker log (last 80 lines of $TSP_STATE/worker.log)"
  tail -80 "$TSP_STATE/worker.log" >&2 || true
  log "healthz: $(curl -sS -m 5 -o /dev/null -w '%{http_code}' "${TSP_URL:-}/healthz" 2>&1)"
  ps -eo pid,pgid,rss,etime,args | grep -E '[w]orkerd|[d]ev\.mjs|[a]ce-sim' >&2 || true
  local p
  for p in $(pgrep -f workerd 2>/dev/null); do
    log "pid $p has $(ls "/proc/$p/fd" 2>/dev/null | wc -l) open fds"
  done
}

tsp_install() {
  # The Worker links zstd (C) for its Parquet: building it for wasm32 needs clang.
  if ! command -v clang >/dev/null; then
    log "installing clang (zstd for wasm32)"
    { apt-get install -y -q clang || sudo apt-get install -y -q clang; } >/dev/null
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "installing the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(worker-build --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)" != "$WORKER_BUILD_VERSION" ]; then
    log "installing worker-build $WORKER_BUILD_VERSION (about 4 min)"
    cargo install worker-build --version "$WORKER_BUILD_VERSION"
  fi
  # wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock.
  local want
  want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3; exit}' "$TSP_ROOT/Cargo.lock")
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    log "installing wasm-bindgen-cli $want (about 2 min)"
    cargo install wasm-bindgen-cli --version "$want"
  fi
  if [ ! -x "$TSP_ROOT/node_modules/.bin/wrangler" ] \
     || [ "$(cd "$TSP_ROOT" && node -p 'require("wrangler/package.json").version' 2>/dev/null)" != "4.86.0" ]; then
    log "npm ci (wrangler 4.86.0 from package-lock.json)"
    (cd "$TSP_ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

tsp_build() {
  log "building the simulator (native, release)"
  (cd "$TSP_ROOT" && cargo build --release -q -p ace-sim)
  log "building the Worker (wasm, release)"
  (cd "$TSP_ROOT" && bash scripts/build.sh >/dev/null)
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_http() { # url seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  log "timed out waiting for $1"
  return 1
}

# tsp_role_config ROLE CONFIG: the role's wrangler config for this stack,
# in $TSP_STATE/ROLE/: no [build] (the Workers are built once, above),
# absolute paths, and the simulator as the upstream.
tsp_role_config() {
  mkdir -p "$TSP_STATE/$1"
  sed -e '/^\[build\]/,/^$/d' \
      -e "s|^main = .*|main = \"$TSP_STATE/build/$1/index.js\"|" \
      -e "s|^migrations_dir = .*|migrations_dir = \"$TSP_ROOT/schema\"|" \
      -e "s|^ACE_API_URL = .*|ACE_API_URL = \"$TSP_SIM_URL\"|" \
      "$2" > "$TSP_STATE/$1/wrangler.toml"
}

# tsp_role_vars ROLE KEY=VALUE...: the role's .dev.vars (its secrets), with
# the base URL and the stack's extra knobs (TSP_VARS) that every role reads.
tsp_role_vars() {
  local role=$1
  shift
  {
    printf '%s\n' "$@"
    echo "PUBLIC_BASE_URL=$TSP_URL"
    printf '%s\n' "${TSP_VARS:-}"
  } > "$TSP_STATE/$role/.dev.vars"
}

# tsp_up STATE_DIR — extra simulator flags in TSP_SIM_ARGS, extra Worker
# vars ("KEY=VALUE" lines) in TSP_VARS. TSP_KEEP_STATE=1 keeps the D1/R2
# state already in STATE_DIR (a restart after a crash).
tsp_up() {
  TSP_STATE="$(mkdir -p "$1" && cd "$1" && pwd)"
  if [ "${TSP_KEEP_STATE:-0}" != 1 ]; then
    rm -rf "$TSP_STATE/persist" "$TSP_STATE/worker.log" "$TSP_STATE/sim.log"
  fi
  mkdir -p "$TSP_STATE/persist"
  local sim_port dev_port
  sim_port=$(free_port)
  dev_port=$(free_port)
  TSP_SIM_URL="http://127.0.0.1:$sim_port"
  TSP_URL="http://127.0.0.1:$dev_port"
  TSP_DLQ_URL="$TSP_URL"
  TSP_TOKEN="local-dev-token"
  export TSP_STATE TSP_SIM_URL TSP_URL TSP_DLQ_URL TSP_TOKEN

  # The stack runs its own copy of the build, so a rebuild elsewhere can't
  # change what it (or its restart in the crash test) serves.
  rm -rf "$TSP_STATE/build" && cp -r "$TSP_ROOT/build" "$TSP_STATE/build"
  tsp_role_config producer "$TSP_ROOT/wrangler.toml"
  tsp_role_config consumer "$TSP_ROOT/consumer/wrangler.toml"
  tsp_role_config dlq "$TSP_ROOT/dlq/wrangler.toml"
  # Each Worker gets only its own secrets (least privilege, as deployed).
  tsp_role_vars producer \
    "API_TOKENS=$TSP_TOKEN=local,other-tenant-token=other,third-tenant-token=third,fourth-tenant-token=fourth,granted-tenant-token=granted:e2e-granted,granted-all-token=granted" \
    "ADMIN_TOKENS=ops-token=ops" \
    "CORS_ALLOWED_ORIGINS=https://app.example" \
    "CALLBACK_ALLOWED_ORIGINS=$TSP_SIM_URL"
  tsp_role_vars consumer "ACE_API_TOKEN=dev-token"
  # Callbacks to the simulator's receiver (an http origin, listed as such).
  tsp_role_vars dlq "ALERT_WEBHOOK_URL=$TSP_SIM_URL/alerts" \
    "CALLBACK_SIGNING_KEY=local-callback-key"

  log "applying migrations to local D1 in $TSP_STATE/persist"
  (cd "$TSP_ROOT" && npx wrangler d1 migrations apply tsp --local \
      --persist-to "$TSP_STATE/persist" -c "$TSP_STATE/producer/wrangler.toml" >"$TSP_STATE/migrate.log" 2>&1) \
    || { cat "$TSP_STATE/migrate.log" >&2; return 1; }

  log "starting the ACE simulator on $TSP_SIM_URL"
  setsid "$TSP_ROOT/target/release/ace-sim" --port "$sim_port" ${TSP_SIM_ARGS:-} \
    >>"$TSP_STATE/sim.log" 2>&1 &
  TSP_SIM_PID=$!
  wait_http "$TSP_SIM_URL/healthz" 20 || return 1

  log "starting the three Workers in the local runtime (the API on $TSP_URL)"
  # setsid makes node the leader of a new process group (this script has
  # no job control, so setsid execs in place and $! is that leader).
  setsid node "$TSP_ROOT/scripts/dev.mjs" --config "$TSP_STATE/producer/wrangler.toml" \
     --config "$TSP_STATE/consumer/wrangler.toml" --config "$TSP_STATE/dlq/wrangler.toml" \
     --port "$dev_port" --persist "$TSP_STATE/persist" \
     --bindings-out "$TSP_STATE/bindings.json" ${TSP_BASELINE:+--baseline} \
     >>"$TSP_STATE/worker.log" 2>&1 &
  TSP_DEV_PID=$!
  wait_http "$TSP_URL/healthz" 60 || { tail -30 "$TSP_STATE/worker.log" >&2; return 1; }
  export TSP_SIM_PID TSP_DEV_PID
}

# tsp_crash: SIGKILL the whole stack, as a machine failure would.
tsp_crash() {
  [ -n "${TSP_DEV_PID:-}" ] && kill -KILL -- "-$TSP_DEV_PID" 2>/dev/null || true
  [ -n "${TSP_SIM_PID:-}" ] && kill -KILL -- "-$TSP_SIM_PID" 2>/dev/null || true
  wait "${TSP_DEV_PID:-}" "${TSP_SIM_PID:-}" 2>/dev/null || true
  TSP_DEV_PID="" TSP_SIM_PID=""
}

# CPU ticks (user + system) of the stack's workerd processes (benchmarks).
workerd_ticks() {
  local t=0 p f
  for p in $(pgrep -g "$TSP_DEV_PID" workerd); do
    read -r -a f < "/proc/$p/stat" || continue
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}

tsp_down() {
  if [ -n "${TSP_DEV_PID:-}" ]; then
    # The whole process group: node, wrangler and workerd.
    kill -INT -- "-$TSP_DEV_PID" 2>/dev/null || kill -INT "$TSP_DEV_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$TSP_DEV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$TSP_DEV_PID" 2>/dev/null || true
    TSP_DEV_PID=""
  fi
  if [ -n "${TSP_SIM_PID:-}" ]; then
    kill -TERM -- "-$TSP_SIM_PID" 2>/dev/null || kill -TERM "$TSP_SIM_PID" 2>/dev/null || true
    wait "$TSP_SIM_PID" 2>/dev/null || true
    TSP_SIM_PID=""
  fi
}

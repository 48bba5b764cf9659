#!/usr/bin/env bash
# Runs the status-page browser test against a running stack.
#
#   source scripts/stack.sh; tsp_build; tsp_up /tmp/state   # exports TSP_URL, TSP_TOKEN, TSP_SIM_URL
#   bash tests/browser/run.sh
#   tsp_down
#
# Installs Debian's chromium if /usr/bin/chromium is missing and runs
# `npm ci` if playwright-core is missing; the screenshot goes to
# tests/browser/artifacts/status-page.png.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${TSP_URL:?TSP_URL must point at a running Worker (scripts/stack.sh tsp_up)}"
: "${TSP_TOKEN:?TSP_TOKEN must be an API token of that Worker}"
: "${TSP_SIM_URL:?TSP_SIM_URL must point at the simulator of that Worker (tsp_up)}"

if [ ! -x /usr/bin/chromium ]; then
  echo "[browser] installing chromium (apt-get)" >&2
  SUDO=""
  [ "$(id -u)" != 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq chromium >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }
fi

if [ ! -f "$ROOT/node_modules/playwright-core/package.json" ]; then
  echo "[browser] npm ci (playwright-core from package-lock.json)" >&2
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$ROOT"
exec node tests/browser/page.test.mjs

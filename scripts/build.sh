#!/usr/bin/env bash
# Builds the Worker once: wasm (release) + JS shim into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
export WRANGLER_SEND_METRICS=false
# worker-build would download binaryen from GitHub; skip wasm-opt instead.
exec "$HOME/.cargo/bin/worker-build" --release --no-opt "$@"

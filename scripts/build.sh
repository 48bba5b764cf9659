#!/usr/bin/env bash
# Builds the three Workers in one go: the one crate, once per role, into
# build/producer, build/consumer and build/dlq (wasm, release, + JS shim).
# Each module holds only its role's entry points (the crate's features).
#
#   bash scripts/build.sh            the three roles
#   bash scripts/build.sh all        also build/all: every role in one
#                                    module (the earlier single Worker,
#                                    for the size and cold-start bench)
set -euo pipefail
cd "$(dirname "$0")/.."
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
export WRANGLER_SEND_METRICS=false
roles=(producer consumer dlq)
[ "${1:-}" = all ] && roles+=(all)
for role in "${roles[@]}"; do
  features=(--no-default-features --features "$role")
  [ "$role" = all ] && features=()
  # worker-build would download binaryen from GitHub; skip wasm-opt instead.
  "$HOME/.cargo/bin/worker-build" --release --no-opt --out-dir "build/$role" . "${features[@]}"
done

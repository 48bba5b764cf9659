#!/usr/bin/env bash
# Does a Parquet writer fit the Worker? Builds the wasm modules the README's
# "Why the Worker does not serve Parquet" measures, into out/, and prints
# their sizes; then converts OBJECT (if given) in each under Node.
#
#   bash bench/parquet-wasm/build-all.sh [OBJECT]
#
# zstd needs clang for wasm32 (apt-get install clang); without it that
# variant fails and the others still build. OBJECT: e.g. one made by
# `cargo run --release -p tsp-cli --example make_object -- OUT 50 365 300`.
set -uo pipefail
cd "$(dirname "$0")"; mkdir -p out
export CARGO_TARGET_DIR="$PWD/target"
for v in zstd snappy lz4 none; do
  ./gen.sh "$v"
  case "$v" in zstd) f=zstd ;; snappy) f=snap ;; lz4) f=lz4 ;; none) f="" ;; esac
  if cargo build -q --release --target wasm32-unknown-unknown ${f:+--features $f} 2>"out/$v.log"; then
    cp target/wasm32-unknown-unknown/release/pq_wasm.wasm "out/$v.wasm"
  else
    echo "$v: build failed (out/$v.log)"
  fi
done
(cd baseline && cargo build -q --release --target wasm32-unknown-unknown) \
  && cp target/wasm32-unknown-unknown/release/pq_base.wasm out/baseline.wasm
for m in out/*.wasm; do
  echo "$m: $(stat -c %s "$m") B raw, $(gzip -9 -c "$m" | wc -c) B gzip -9"
  [ -n "${1:-}" ] && node run.mjs "$m" "$1"
done

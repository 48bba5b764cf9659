#!/usr/bin/env bash
# Three Workers against the single Worker they replace (issue 22): the
# deploy size of each (wrangler's dry run: upload and gzip), and the cold
# start of the producer in the local runtime against the all-roles module
# and a one-line JS Worker, the runtime's floor (scripts/bench-cold.mjs,
# alternating, ROUNDS each).
#
#   bash scripts/bench-workers.sh [ROUNDS]   (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
ROUNDS=${1:-7}

tsp_install
log "building the three roles and the all-roles module (build/all)"
bash scripts/build.sh all >/dev/null
out="$PWD/.state/bench-workers"
rm -rf "$out" && mkdir -p "$out"
# The single Worker of before: every role in one module, the producer's
# config with the consumer's and dead-letter Worker's bindings beside it is
# what it deployed; for its size only the module counts.
sed -e '/^\[build\]/,/^$/d' -e 's|^main = .*|main = "build/all/index.js"|' \
  wrangler.toml > "$out/all.toml"
size() { # name config
  npx wrangler deploy --dry-run -c "$2" --outdir "$out/$1" 2>&1 \
    | grep -o 'Total Upload: .*' | sed "s/^/$1: /"
}
size producer wrangler.toml
size consumer consumer/wrangler.toml
size dlq dlq/wrangler.toml
cp "$out/all.toml" ./.bench-all.toml && trap 'rm -f ./.bench-all.toml' EXIT
size "single (all roles)" ./.bench-all.toml
for r in producer consumer dlq all; do
  printf '%s: %s bytes of wasm\n' "$r" "$(stat -c %s "build/$r/index_bg.wasm")"
done
log "cold start in the local runtime, $ROUNDS alternating rounds each"
sed -e '/^\[build\]/,/^$/d' wrangler.toml > "$out/producer.toml"
# The runtime's own floor: a JS module that answers /healthz and nothing else.
mkdir -p "$out/floor"
echo 'export default { fetch() { return new Response("ok"); } };' > "$out/floor/index.js"
node scripts/bench-cold.mjs "$out/producer.toml" "$ROUNDS" \
  producer=build/producer/index.js single=build/all/index.js floor="$out/floor/index.js"

#!/usr/bin/env bash
# Core throughput, side by side in one run, on one set of generated pages:
#   - the chunk path (parse, sort/dedup, aggregates, encoded block) natively
#     and in wasm32 under node, for this tree and for BASE (the commit
#     before issue 14, built from `git archive` with this tree's bench/);
#   - the wasm build with flate2's zlib-rs backend instead of miniz_oxide;
#   - DuckDB (PyPI, single thread) doing the same work on the same pages;
# then the peak heap of 30-s months at 1, 12 and 120 chunks, both trees.
# Prints samples/s (every round and the best), the ratios, and the blocks'
# SHA-256 per build (the same bytes everywhere for the same backend).
#
#   bash scripts/bench-core.sh            # 12 points x Nov 2025, 5-minute data
#   POINTS=4 INTERVAL_S=30 bash scripts/bench-core.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=$ROOT/.state/bench-core
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
POINTS=${POINTS:-12}
INTERVAL_S=${INTERVAL_S:-300}
REPS=${REPS:-10}
ROUNDS=${ROUNDS:-3}
BASE=${BASE:-73e56d4}
DUCKDB_VERSION=2.0.1
WASM=wasm32-unknown-unknown
OUT=$CARGO_TARGET_DIR/release
WOUT=$CARGO_TARGET_DIR/$WASM/release
mkdir -p "$STATE/bin"

VENV=$ROOT/.state/venv-bench
if ! "$VENV/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "duckdb==$DUCKDB_VERSION"
fi

# build TREE TAG [FEATURES]: native bins (unless zlib-rs) and the wasm package.
build() {
  local tree=$1 tag=$2 features=${3:-}
  echo "== build $tag" >&2
  if [[ $tag != *zlib* ]]; then
    (cd "$tree" && cargo build -q --release -p tsp-bench --bins ${features:+--features $features})
    cp "$OUT/tsp-bench" "$STATE/bin/tsp-bench-$tag"
    cp "$OUT/tsp-bench-mem" "$STATE/bin/tsp-bench-mem-$tag"
  fi
  (cd "$tree" && cargo build -q --release -p tsp-bench --lib --target $WASM ${features:+--features $features})
  wasm-bindgen --target nodejs --out-dir "$STATE/wasm-$tag" "$WOUT/tsp_bench.wasm"
}

BASE_TREE=$STATE/base
rm -rf "$BASE_TREE" && mkdir -p "$BASE_TREE"
git -C "$ROOT" archive "$BASE" | tar -x -C "$BASE_TREE"
cp -r "$ROOT/bench" "$BASE_TREE/bench"
sed -i 's/"sim", "cli"\]/"sim", "cli", "bench"]/' "$BASE_TREE/Cargo.toml"

build "$ROOT" new
build "$ROOT" new-zlib zlib-rs
build "$BASE_TREE" base baseline-api

"$STATE/bin/tsp-bench-new" gen "$STATE/pages.bin" "$STATE/json" "$POINTS" "$INTERVAL_S" >&2

# Rounds of every runner in turn, so a burst of load from other work on
# the box hits all of them alike; each runner's best round counts.
echo "== run: $ROUNDS rounds, each runner best of $REPS per round" >&2
{
  for _ in $(seq "$ROUNDS"); do
    echo "native new $("$STATE/bin/tsp-bench-new" run "$STATE/pages.bin" "$REPS")"
    echo "native base $("$STATE/bin/tsp-bench-base" run "$STATE/pages.bin" "$REPS")"
    echo "wasm new $(node "$ROOT/bench/run-wasm.mjs" "$STATE/wasm-new" "$STATE/pages.bin" "$REPS")"
    echo "wasm base $(node "$ROOT/bench/run-wasm.mjs" "$STATE/wasm-base" "$STATE/pages.bin" "$REPS")"
    echo "wasm new-zlib-rs $(node "$ROOT/bench/run-wasm.mjs" "$STATE/wasm-new-zlib" "$STATE/pages.bin" "$REPS")"
    echo "duckdb - $("$VENV/bin/python" "$ROOT/bench/duckdb_chunk.py" "$STATE/json" "$STATE" 5)"
  done
  for tag in new base; do
    "$STATE/bin/tsp-bench-mem-$tag" | sed "s/^/mem $tag /"
  done
} > "$STATE/results.txt"

"$VENV/bin/python" - "$STATE/results.txt" "$POINTS" "$INTERVAL_S" <<'PY'
import json, sys
rows = [l.split(" ", 2) for l in open(sys.argv[1]) if l.strip()]
speed, rounds = {}, {}
for a, b, c in rows:
    if a != "mem":
        r = json.loads(c)
        rounds.setdefault((a, b), []).append(r["msps"])
        if (a, b) not in speed or r["msps"] > speed[(a, b)]["msps"]:
            speed[(a, b)] = r
print(f"pages: {sys.argv[2]} points x November 2025, {sys.argv[3]}-s data, "
      f"{speed[('native', 'new')]['samples']:,} samples; one thread; best round")
duck = speed[("duckdb", "-")]["msps"]
print(f"{'path':<20}{'M samples/s':>12}{'x DuckDB':>10}  {'rounds':<22}sha256 of blocks")
for (where, tag), r in speed.items():
    every = " ".join(f"{x:.2f}" for x in rounds[(where, tag)])
    sha = r.get("sha256", "duckdb " + r.get("version", ""))[:16]
    print(f"{where + ' ' + tag:<20}{r['msps']:>12.2f}{r['msps'] / duck:>10.2f}  {every:<22}{sha}")
for where in ("native", "wasm"):
    print(f"{where}: new / base = {speed[(where, 'new')]['msps'] / speed[(where, 'base')]['msps']:.2f}")
print(f"wasm: zlib-rs / miniz_oxide = {speed[('wasm', 'new-zlib-rs')]['msps'] / speed[('wasm', 'new')]['msps']:.2f}")
print("peak heap, 30-s months (10 points x 12 months, chunk::plan order):")
for a, b, c in rows:
    if a == "mem":
        m = json.loads(c)
        print(f"  {b:<5} {m['chunks']:>4} chunks {m['samples']:>10,} samples  {m['peak_mib']:.2f} MiB")
PY

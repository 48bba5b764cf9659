#!/usr/bin/env bash
# The analyst's path against the running stack: a completed job fetched as
# Parquet (`tsp fetch --format parquet`) and its aggregates
# (`tsp aggregates --format parquet`), read back by DuckDB's CLI, pyarrow,
# pandas and polars (pinned, from PyPI, into .state/venv) and checked
# against the result object (decoded in Python, independently of core) and
# /v1/aggregates row for row. The README's analyst commands run verbatim.
# Needs TSP_URL, TSP_TOKEN and TSP_SIM_URL (tsp_up).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.state/venv"
PINS=("duckdb-cli==1.5.6" "pyarrow==26.0.1" "pandas==3.1.1" "numpy==2.4.6" "polars==2.1.0" "msgpack==1.2.4")
: "${TSP_URL:?TSP_URL must point at the running Worker (tsp_up)}"
: "${TSP_TOKEN:?TSP_TOKEN must hold an API token (tsp_up)}"
: "${TSP_SIM_URL:?TSP_SIM_URL must point at the simulator (tsp_up)}"

source "$ROOT/scripts/venv.sh"
pinned_venv "$VENV" parquet "${PINS[@]}"
export PATH="$VENV/bin:$PATH"

(cd "$ROOT" && cargo build -q -p tsp-cli)
TSP="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tsp"
WORK="$ROOT/.state/parquet-check"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"

# Three reporting points of the site's catalogue (the simulator's
# configured_points, in ACE's shape; the first 75 % of a catalogue report):
# two numeric ones and a fan status, a state point (text samples
# "active"/"inactive"), over two UTC months; starting at 12:00 makes the
# first daily bucket partial. A point's kind is read off one hour of its
# samples (some points of any name are state points).
SITE=parquet-check
mapfile -t POINTS < <(python3 - "$TSP_SIM_URL" "$SITE" <<'PY'
import itertools, json, sys, urllib.parse, urllib.request
url, site = sys.argv[1:3]
def get(path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer dev-token"})
    return json.load(urllib.request.urlopen(req, timeout=30))
def numeric(p):
    q = "start_time=2025-09-28T12:00:00&end_time=2025-09-28T13:00:00"
    rows = get(f"/points/{urllib.parse.quote(p, safe='')}/timeseries?{q}")["point_samples"]
    try:
        return bool(rows) and all(float(r["value"]) == float(r["value"]) for r in rows)
    except ValueError:
        return False
page = get(f"/sites/{site}/configured_points?per_page=100")
reporting = [p["name"] for p in page["items"][: page["total"] - page["total"] // 4]]
status = next(p for p in reporting if p.endswith("_Status"))
nums = list(itertools.islice((p for p in reporting if p != status and numeric(p)), 2))
print("\n".join([nums[0], status, nums[1]]))
PY
)
[ "${#POINTS[@]}" = 3 ] || { echo "[parquet] no catalogue points from $TSP_SIM_URL" >&2; exit 1; }
START=2025-09-28T12:00:00Z END=2025-11-04T00:00:00Z
args=()
for p in "${POINTS[@]}"; do args+=(--point "$p"); done
ID=$("$TSP" submit --site "$SITE" "${args[@]}" --start "$START" --end "$END" --wait --wait-timeout 300 | head -1)
echo "[parquet] job $ID completed" >&2

"$TSP" fetch "$ID" --format parquet -o out.parquet
"$TSP" fetch "$ID" --format raw -o out.msgpack.gz
for p in "${POINTS[@]}"; do
  n=$(printf '%s' "$p" | tr -c 'A-Za-z0-9' _)
  # Hourly in pages of 100 (the pagination), daily in one page.
  "$TSP" aggregates --site "$SITE" --point "$p" --from 2025-09-28T00:00:00Z --to "$END" \
    --resolution 1h --page-size 100 --format parquet -o "agg-$n.parquet"
  "$TSP" aggregates --site "$SITE" --point "$p" --from 2025-09-28T00:00:00Z --to "$END" \
    --resolution 1d --format parquet -o "agg-$n-1d.parquet"
done

# The README's analyst commands, as written there.
duckdb -c "select point, count(*), avg(value) from 'out.parquet' group by point"
python -c 'import pandas as pd; df = pd.read_parquet("out.parquet"); print(df.groupby("point", observed=True).value.agg(["count", "mean"]))'
python -c 'import polars as pl; print(pl.read_parquet("out.parquet").group_by("point").agg(pl.len(), pl.col("value").mean()))'

python "$ROOT/scripts/check_parquet.py" "$SITE" "$START" "$END" "${POINTS[@]}"

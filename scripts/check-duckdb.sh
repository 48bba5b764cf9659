#!/usr/bin/env bash
# The analyst's in-place path against the running stack: DuckDB 1.4.4 with
# its httpfs extension (both pinned, from PyPI, into .state/venv-duckdb:
# httpfs is normally downloaded at run time, which a closed network cannot
# do) queries a job's `result.parquet` over HTTP with a bearer token
# (scripts/check_duckdb.py says what it checks).
# Needs TSP_URL, TSP_TOKEN and TSP_SIM_URL (tsp_up).
# usage: check-duckdb.sh [SITE DAYS POINTS MAX_SHARE]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.state/venv-duckdb"
PINS=("duckdb==1.4.4" "duckdb-ext-httpfs==1.4.4.20260205" "msgpack==1.2.4")
: "${TSP_URL:?TSP_URL must point at the running Worker (tsp_up)}"
: "${TSP_TOKEN:?TSP_TOKEN must hold an API token (tsp_up)}"
: "${TSP_SIM_URL:?TSP_SIM_URL must point at the simulator (tsp_up)}"

source "$ROOT/scripts/venv.sh"
pinned_venv "$VENV" duckdb "${PINS[@]}"
HTTPFS=$("$VENV/bin/python" -c 'import pathlib, sysconfig; print(next(pathlib.Path(sysconfig.get_paths()["purelib"]).glob("duckdb_ext/extensions/v1.4.4/*/httpfs.duckdb_extension")))')
export HTTPFS
"$VENV/bin/python" "$ROOT/scripts/check_duckdb.py" "${1:-duckdb-check}" "${2:-62}" "${3:-10}" "${4:-0.25}"

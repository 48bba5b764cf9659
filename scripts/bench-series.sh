#!/usr/bin/env bash
# Chart-series benchmark (issue 21): a year of 10 points at width 1,000 in
# the local runtime. One job fills the owner's buckets; then
#   - the body of /v1/series as MessagePack and as JSON;
#   - the same year through /v1/aggregates pages (hourly, 1,000 rows a
#     page), one after another: calls, bytes, seconds;
#   - one client: ten widths, each asked twice (a miss, then a hit);
#   - one client: ten 2-day ranges drawn from the samples (raw), each a miss;
#   - wrk, 10 connections, 15 s each: uncached (a width of its own per
#     request, 990..1009; each misses at first) and cached (one URL):
#     p50 / p95 / p99, and the workerd CPU per request (user + system from
#     /proc: an upper bound on the Worker's CPU, since it also counts the
#     runtime and the local D1).
#   bash scripts/bench-series.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null || sudo apt-get install -y wrk >/dev/null; }
tsp_install
tsp_build
trap tsp_down EXIT
tsp_up "$PWD/.state/bench-series"

py() { python3 -c "$1" "${@:2}"; }
api() { curl -fsS -m 120 -H "authorization: Bearer $TSP_TOKEN" "$@"; }
SITE=bench-series
PTS=$(curl -fsS -H "authorization: Bearer dev-token" "$TSP_SIM_URL/sites/$SITE/configured_points?per_page=10000" | py '
import json, sys
items = [i["name"] for i in json.load(sys.stdin)["items"]]
print(json.dumps(items[: len(items) * 3 // 4][:10]))')
BODY=$(py 'import json,sys; print(json.dumps({"site": sys.argv[1], "points": json.loads(sys.argv[2]), "start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}))' "$SITE" "$PTS")
ID=$(api -X POST -H 'content-type: application/json' -d "$BODY" "$TSP_URL/v1/jobs" | py 'import json,sys; print(json.load(sys.stdin)["job_id"])')
until [ "$(api "$TSP_URL/v1/jobs/$ID" | py 'import json,sys; print(json.load(sys.stdin)["status"])')" = completed ]; do sleep 1; done
log "job $ID completed"

SERIES_PATH=$(py '
import json, sys, urllib.parse
q = [("site", sys.argv[1])] + [("point", p) for p in json.loads(sys.argv[2])]
q += [("from", "2025-01-01T00:00:00Z"), ("to", "2026-01-01T00:00:00Z"), ("width", "1000")]
print("/v1/series?" + urllib.parse.urlencode(q))' "$SITE" "$PTS")
export SERIES_PATH TSP_TOKEN
mp=$(api -H 'accept: application/msgpack' "$TSP_URL$SERIES_PATH" | wc -c)
js=$(api "$TSP_URL$SERIES_PATH" | wc -c)
echo "[tsp] /v1/series, a year of 10 points, width 1000: MessagePack $mp B, JSON $js B"

t0=$(date +%s.%N); calls=0; bytes=0
for p in $(echo "$PTS" | py 'import json,sys,urllib.parse; [print(urllib.parse.quote(p, safe="")) for p in json.load(sys.stdin)]'); do
  from=2025-01-01T00:00:00Z
  while [ -n "$from" ]; do
    page=$(api "$TSP_URL/v1/aggregates?site=$SITE&point=$p&resolution=1h&from=$from&to=2026-01-01T00:00:00Z&limit=1000")
    calls=$((calls + 1)); bytes=$((bytes + ${#page}))
    from=$(echo "$page" | py 'import json,sys; print(json.load(sys.stdin)["next_from"] or "")')
  done
done
t1=$(date +%s.%N)
echo "[tsp] the same year through /v1/aggregates (1h, 1000 rows a page): $calls calls, $bytes B, $(py "print(round($t1 - $t0, 2))") s one after another"

# One client, one request at a time: each width asked once (a miss), then again (a hit).
for w in 901 902 903 904 905 906 907 908 909 910; do
  p=${SERIES_PATH/width=1000/width=$w}
  miss=$(curl -fsS -o /dev/null -w '%{time_total}' -H "authorization: Bearer $TSP_TOKEN" -H 'accept: application/msgpack' "$TSP_URL$p")
  hit=$(curl -fsS -o /dev/null -w '%{time_total}' -H "authorization: Bearer $TSP_TOKEN" -H 'accept: application/msgpack' "$TSP_URL$p")
  echo "$miss $hit"
done | py '
import statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin]
m = sorted(r[0] * 1000 for r in rows); h = sorted(r[1] * 1000 for r in rows)
print(f"[tsp] one client, 10 widths: uncached median {statistics.median(m):.1f} ms (max {m[-1]:.1f}), cached median {statistics.median(h):.1f} ms (max {h[-1]:.1f})")'

# Short ranges from the samples (resolution raw): ten 2-day ranges of the
# 10 points at width 1000, each a miss, one request at a time.
for d in 10 11 12 13 14 15 16 17 18 19; do
  p=${SERIES_PATH/from=2025-01-01T00%3A00%3A00Z/from=2025-03-${d}T00%3A00%3A00Z}
  p=${p/to=2026-01-01T00%3A00%3A00Z/to=2025-03-$((d + 2))T00%3A00%3A00Z}
  curl -fsS -o "$TSP_STATE/raw.mp" -w '%{time_total} %{size_download}\n' -H "authorization: Bearer $TSP_TOKEN" -H 'accept: application/msgpack' "$TSP_URL$p"
  grep -q raw "$TSP_STATE/raw.mp" || { log "not a raw series: $p"; exit 1; }
done | py '
import statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin]
m = sorted(r[0] * 1000 for r in rows)
print(f"[tsp] raw, 2 days of 10 points at width 1000 (samples by block range reads): uncached median {statistics.median(m):.1f} ms (max {m[-1]:.1f}), {int(statistics.median(r[1] for r in rows))} B")'

for mode in uncached cached; do
  t0=$(workerd_ticks)
  out=$(UNCACHED=$([ $mode = uncached ] && echo 1 || echo 0) wrk -t2 -c10 -d15s -s scripts/load/series.lua "$TSP_URL")
  t1=$(workerd_ticks)
  n=$(echo "$out" | grep '^RESULT' | sed -E 's/.*requests=([0-9]+).*/\1/')
  echo "[tsp] $mode: $(echo "$out" | grep '^RESULT'); workerd CPU $(py "print(round(($t1 - $t0) / $(getconf CLK_TCK) * 1000 / max($n, 1), 2))") ms per request"
done

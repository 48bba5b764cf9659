"""DuckDB on the same pages as tsp-bench: read the JSON pages, keep the
point's samples in range, one per timestamp, hourly and daily aggregates,
and the sorted series written out as zstd Parquet (the columnar result).
Single-threaded, like the chunk path. Prints one JSON line: samples,
best of REPS seconds, M samples/s.

usage: python bench/duckdb_chunk.py JSON_DIR OUT_DIR [REPS]
"""

import json
import sys
import time

import duckdb

QUERY = """
CREATE OR REPLACE TEMP TABLE s AS
SELECT DISTINCT ON (name, t) name, t, value,
       TRY_CAST(value AS DOUBLE) AS x
FROM (
  SELECT p.name, p.value, CAST(p.time AS TIMESTAMP) AS t
  FROM (SELECT unnest(point_samples) AS p
        FROM read_json('{dir}/*.json',
             columns = {{point_samples: 'STRUCT(name VARCHAR, value VARCHAR, time VARCHAR)[]',
                         next_cursor: 'VARCHAR', has_more: 'BOOLEAN'}}))
)
WHERE t >= TIMESTAMP '2025-11-01' AND t < TIMESTAMP '2025-12-01';
CREATE OR REPLACE TEMP TABLE agg AS
SELECT name, r, b, count(x) AS n, min(x), max(x), sum(x), stddev_pop(x),
       arg_min(x, t) FILTER (WHERE x IS NOT NULL) AS first,
       arg_max(x, t) FILTER (WHERE x IS NOT NULL) AS last,
       count(*) FILTER (WHERE x IS NULL) AS non_numeric
FROM (SELECT *, '1h' AS r, date_trunc('hour', t) AS b FROM s
      UNION ALL SELECT *, '1d' AS r, date_trunc('day', t) AS b FROM s)
GROUP BY ALL;
COPY (SELECT name, t, value FROM s ORDER BY name, t)
  TO '{out}/series.parquet' (FORMAT parquet, COMPRESSION zstd);
"""


def main():
    json_dir, out_dir = sys.argv[1], sys.argv[2]
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    con = duckdb.connect()
    con.execute("SET threads = 1")
    sql = QUERY.format(dir=json_dir, out=out_dir)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        con.execute(sql)
        best = min(best, time.perf_counter() - t)
    n = con.execute("SELECT count(*) FROM s").fetchone()[0]
    print(json.dumps({"samples": n, "best_s": best, "msps": n / best / 1e6,
                      "version": duckdb.__version__}))


if __name__ == "__main__":
    main()

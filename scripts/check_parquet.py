"""Checks what scripts/check-parquet.sh wrote into its working directory.

out.parquet (tsp fetch --format parquet) against out.msgpack.gz (the same
job's object, decoded here with the Python reader of docs/DESIGN.md,
Result format, independently of core): the schema, zstd, every row
exactly (float bits, text, nulls), and DuckDB's, pandas' and polars' counts and sums per point.
agg-*.parquet (tsp aggregates --format parquet) against /v1/aggregates,
row for row and column by column.

usage: check_parquet.py SITE START END POINT...
"""
import json
import math
import os
import struct
import subprocess
import sys
import urllib.parse
import urllib.request

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from result_format import decode  # noqa: E402

SITE, START, END, *POINTS = sys.argv[1:]


def say(msg):
    print(f"[parquet] {msg}", file=sys.stderr)


def bits(x):
    return struct.pack("<d", x)


def check_samples():
    header, want = decode("out.msgpack.gz")
    assert sorted(header["points"]) == sorted(POINTS), header["points"]
    table = pq.read_table("out.parquet")
    expect = pa.schema([
        pa.field("point", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),
    ])
    assert table.schema.remove_metadata() == expect, table.schema
    meta = pq.ParquetFile("out.parquet").metadata
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            assert meta.row_group(g).column(c).compression == "ZSTD"
    point = table.column("point").to_pylist()
    time = table.column("time").cast(pa.int64()).to_pylist()
    value = table.column("value").to_pylist()
    text = table.column("text").to_pylist()
    assert len(point) == len(want), (len(point), len(want))
    for i, (p, t, v) in enumerate(want):
        assert (point[i], time[i]) == (p, t), (i, point[i], time[i], p, t)
        if isinstance(v, str):
            assert value[i] is None and text[i] == v, (i, value[i], text[i], v)
        else:
            assert text[i] is None and bits(value[i]) == bits(v), (i, value[i], text[i], v)
    texts = sum(isinstance(v, str) for _, _, v in want)
    assert texts > 0, "the job has text samples"
    say(f"{len(want)} rows equal the decoded object exactly ({texts} text samples)")
    return want


def per_point(want):
    out = {}
    for p, _, v in want:
        n, nums, texts = out.get(p, (0, [], 0))
        if isinstance(v, str):
            texts += 1
        else:
            nums.append(v)
        out[p] = (n + 1, nums, texts)
    return out


def check_readers(want):
    expect = per_point(want)
    q = ("select point, count(*) as n, count(value) as nv, count(text) as nt, fsum(value) as s, "
         "epoch_ms(min(time)) as t0, epoch_ms(max(time)) as t1 "
         "from 'out.parquet' group by point order by point")
    rows = json.loads(subprocess.run(["duckdb", "-json", "-c", q], check=True,
                                     capture_output=True, text=True).stdout)
    assert [r["point"] for r in rows] == sorted(expect), rows
    for r in rows:
        n, nums, texts = expect[r["point"]]
        times = [t for p, t, _ in want if p == r["point"]]
        assert (r["n"], r["nv"], r["nt"]) == (n, len(nums), texts), (r, n, len(nums), texts)
        assert (r["t0"], r["t1"]) == (min(times), max(times)), r
        if nums:
            assert math.isclose(r["s"], math.fsum(nums), rel_tol=1e-12), (r["s"], math.fsum(nums))
        else:
            assert r["s"] is None, r
    say(f"duckdb: count, numeric and text counts, time range and sum per point match ({len(rows)} points)")

    df = pd.read_parquet("out.parquet")
    assert len(df) == len(want) and str(df["time"].dtype) == "datetime64[ms, UTC]", df.dtypes
    counts = df.groupby("point", observed=True)["value"].agg(["size", "count"])
    for p, (n, nums, _) in expect.items():
        assert (counts.loc[p, "size"], counts.loc[p, "count"]) == (n, len(nums)), counts
    assert df["value"].isna().sum() == df["text"].notna().sum()
    say("pandas: rows, dtypes and per-point counts match")

    lf = pl.read_parquet("out.parquet")
    got = {r["point"]: (r["len"], r["nv"]) for r in
           lf.group_by("point").agg(pl.len(), pl.col("value").count().alias("nv")).to_dicts()}
    assert got == {p: (n, len(nums)) for p, (n, nums, _) in expect.items()}, got
    say("polars: per-point counts match")


def api_rows(point, resolution):
    rows, frm = [], "2025-09-28T00:00:00Z"
    while frm:
        q = urllib.parse.urlencode({"site": SITE, "point": point, "from": frm, "to": END,
                                    "resolution": resolution})
        req = urllib.request.Request(f"{os.environ['TSP_URL']}/v1/aggregates?{q}",
                                     headers={"Authorization": f"Bearer {os.environ['TSP_TOKEN']}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            page = json.load(r)
        rows += page["rows"]
        frm = page["next_from"]
    return rows


COLUMNS = [("bucket_start", "bucket_start", "t"), ("count", "count", "i"), ("min", "min", "f"),
           ("max", "max", "f"), ("mean", "mean", "f"), ("stddev", "stddev", "f"), ("sum", "sum", "f"),
           ("first_time", "first_ts", "t"), ("first_value", "first_value", "f"),
           ("last_time", "last_ts", "t"), ("last_value", "last_value", "f"),
           ("non_numeric", "non_numeric", "i"), ("non_finite", "non_finite", "i"),
           ("partial", "partial", "b")]


def check_aggregates(point, resolution, path):
    table = pq.read_table(path)
    assert table.column_names == [c[0] for c in COLUMNS], table.column_names
    for name, _, kind in COLUMNS:
        if kind == "t":
            assert table.schema.field(name).type == pa.timestamp("ms", tz="UTC")
            table = table.set_column(table.column_names.index(name), name,
                                     table.column(name).cast(pa.int64()))
    got = table.to_pylist()
    want = api_rows(point, resolution)
    assert len(got) == len(want) > 0, (len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        for name, key, kind in COLUMNS:
            a, b = g[name], w.get(key)
            if b is None:
                assert a is None, (i, name, a)
            elif kind == "f":
                assert bits(a) == bits(float(b)), (i, name, a, b)
            elif kind == "b":
                assert a is bool(b), (i, name, a, b)
            else:
                assert a == int(b), (i, name, a, b)
    return got


def main():
    want = check_samples()
    check_readers(want)
    partial = 0
    for p in POINTS:
        n = "".join(c if c.isascii() and c.isalnum() else "_" for c in p)
        hours = check_aggregates(p, "1h", f"agg-{n}.parquet")
        days = check_aggregates(p, "1d", f"agg-{n}-1d.parquet")
        partial += sum(r["partial"] for r in days)
        say(f"aggregates of {p}: {len(hours)} hourly and {len(days)} daily rows equal /v1/aggregates")
    assert partial == len(POINTS), f"the first daily bucket of each point is partial, got {partial}"


main()

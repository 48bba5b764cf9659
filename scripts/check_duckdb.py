"""The real DuckDB, through the real httpfs, against the Worker's Parquet.

A job of POINTS points over DAYS days is submitted and waited for; then:
- `CREATE SECRET (TYPE http, BEARER_TOKEN ...)` and an aggregate query over
  the Worker's `result.parquet` URL, per point, equal to the result object
  (decoded here with docs/DESIGN.md's reader, independently of core);
- a query for one point, through a counting proxy: the bytes DuckDB
  fetched, against the file's size (at most MAX_SHARE);
- a wrong token gets 401 (DuckDB's error names it);
- a range past the end gets 416, and `?format=parquet` is the same file.

Env: TSP_URL, TSP_TOKEN, TSP_SIM_URL, HTTPFS (the extension file).
usage: check_duckdb.py SITE DAYS POINTS [MAX_SHARE]
"""
import http.client
import http.server
import json
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import duckdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from result_format import decode  # noqa: E402

URL, TOKEN, SIM = os.environ["TSP_URL"], os.environ["TSP_TOKEN"], os.environ["TSP_SIM_URL"]
SITE, DAYS, NPOINTS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
MAX_SHARE = float(sys.argv[4]) if len(sys.argv) > 4 else 0.25
START = "2025-01-01T00:00:00Z"


def say(msg):
    print(f"[duckdb] {msg}", file=sys.stderr, flush=True)


def api(path, method="GET", body=None, headers=None, token=TOKEN, base=URL):
    h = {"Authorization": f"Bearer {token}", **(headers or {})}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def points():
    """The first NPOINTS reporting points of the site's catalogue."""
    _, _, body = api(f"/sites/{SITE}/configured_points?per_page=500", token="dev-token", base=SIM)
    page = json.loads(body)
    reporting = [p["name"] for p in page["items"][: page["total"] - page["total"] // 4]]
    assert len(reporting) >= NPOINTS, f"{SITE} has {len(reporting)} reporting points"
    return reporting[:NPOINTS]


def run_job(names):
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1735689600 + DAYS * 86400))
    status, _, body = api("/v1/jobs", "POST", {"site": SITE, "points": names, "start": START, "end": end})
    assert status in (200, 202), (status, body)
    job_id = json.loads(body)["job_id"]
    started = time.time()
    while time.time() - started < 600:
        view = json.loads(api(f"/v1/jobs/{job_id}")[2])
        if view["status"] == "completed":
            return job_id, view
        assert view["status"] in ("queued", "processing", "failed"), view
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not complete: {view}")


class Counter(http.server.BaseHTTPRequestHandler):
    """A proxy to the Worker that counts the body bytes it hands DuckDB."""

    fetched = 0
    requests = []
    protocol_version = "HTTP/1.1"

    def forward(self, method):
        target = urllib.parse.urlsplit(URL)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        keep = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "range", "if-range")}
        conn.request(method, self.path, headers=keep)
        r = conn.getresponse()
        body = r.read()
        Counter.fetched += len(body)
        Counter.requests.append((method, self.headers.get("range"), r.status, len(body)))
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)
        conn.close()

    def do_GET(self):
        self.forward("GET")

    def do_HEAD(self):
        self.forward("HEAD")

    def log_message(self, *args):
        pass


def connect(token):
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{os.environ['HTTPFS']}'")
    con.execute(f"CREATE SECRET (TYPE http, BEARER_TOKEN '{token}')")
    return con


def per_point(rows):
    out = {}
    for point, t, v in rows:
        o = out.setdefault(point, {"n": 0, "sum": 0.0, "texts": 0, "first": t, "last": t})
        o["n"] += 1
        o["first"], o["last"] = min(o["first"], t), max(o["last"], t)
        if isinstance(v, str):
            o["texts"] += 1
        else:
            o["sum"] += v
    return out


def check_aggregates(url, want):
    got = connect(TOKEN).execute(
        f"SELECT point, count(*), coalesce(sum(value), 0), count(text), "
        f"epoch_ms(min(time)), epoch_ms(max(time)) FROM '{url}' GROUP BY point").fetchall()
    assert {g[0] for g in got} == set(want), (sorted(g[0] for g in got), sorted(want))
    for point, n, total, texts, first, last in got:
        w = want[point]
        assert (n, texts, first, last) == (w["n"], w["texts"], w["first"], w["last"]), (point, w)
        assert math.isclose(total, w["sum"], rel_tol=1e-9, abs_tol=1e-6), (point, total, w["sum"])
    say(f"aggregates of {len(got)} points over the Worker's URL equal the object's")


def check_pruning(path, point, want, size):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        n, = connect(TOKEN).execute(f"SELECT count(*) FROM '{url}' WHERE point = '{point}'").fetchone()
    finally:
        server.shutdown()
    assert n == want[point]["n"], (n, want[point])
    share = Counter.fetched / size
    say(f"one point of {NPOINTS}: DuckDB fetched {Counter.fetched} of {size} bytes "
        f"({share:.1%}) in {len(Counter.requests)} requests")
    assert share <= MAX_SHARE, f"{share:.1%} of the file for one point: {Counter.requests}"
    return share


def check_refusals(url, path, size):
    try:
        connect("wrong-token").execute(f"SELECT count(*) FROM '{url}'").fetchone()
        raise AssertionError("a wrong token was accepted")
    except duckdb.Error as e:
        assert "401" in str(e), f"not a 401: {e}"
    status, headers, _ = api(path, headers={"Range": f"bytes={size}-"})
    assert status == 416 and headers.get("Content-Range") == f"bytes */{size}", (status, headers)
    say("a wrong token gets 401, a range past the end 416")


def main():
    names = points()
    job_id, view = run_job(names)
    link = view["result"]["parquet"]
    path = link["url"]
    assert path == f"/v1/jobs/{job_id}/result.parquet", link
    status, _, obj = api(f"/v1/jobs/{job_id}/result")
    assert status == 200, status
    want = per_point(decode(obj)[1])
    status, headers, body = api(path, "HEAD")
    size = int(headers["Content-Length"])
    assert status == 200 and size == link["bytes"], (status, headers, link)
    for h in ("ETag", "Last-Modified", "Accept-Ranges"):
        assert h in headers, (h, headers)
    same = api(f"/v1/jobs/{job_id}/result?format=parquet")
    assert same[0] == 200 and len(same[2]) == size and same[1]["ETag"] == headers["ETag"]
    url = URL + path
    check_aggregates(url, want)
    share = check_pruning(path, names[len(names) // 2], want, size)
    check_refusals(url, path, size)
    print(json.dumps({"job": job_id, "points": NPOINTS, "days": DAYS, "parquet_bytes": size,
                      "object_bytes": len(obj), "one_point_share": round(share, 4)}))


if __name__ == "__main__":
    main()

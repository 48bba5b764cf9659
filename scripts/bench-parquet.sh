#!/usr/bin/env bash
# Parquet conversion figures without the stack: a full-size result object
# made locally (cli/examples/make_object.rs: the simulator's samples, core's
# encoder, the consumer's chunk order), served from a file over loopback as
# /v1/jobs/{id}/result with its X-Content-SHA256, and fetched by the release
# `tsp` under /usr/bin/time -v: wall time, samples/s, peak RSS, Parquet
# bytes per sample next to the object's (and the same for CSV). The
# Parquet file stays in .state/bench-parquet/out.parquet.
#
#   bash scripts/bench-parquet.sh [POINTS] [DAYS] [INTERVAL_SECS]   # default 50 365 30
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POINTS=${1:-50} DAYS=${2:-365} SECS=${3:-30}
OUT="$ROOT/.state/bench-parquet"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
mkdir -p "$OUT"
command -v /usr/bin/time >/dev/null || apt-get install -y -q time >/dev/null
(cd "$ROOT" && cargo build -q --release -p tsp-cli --bin tsp --example make_object)
OBJ="$OUT/object-$POINTS-$DAYS-$SECS.msgpack.gz"
[ -s "$OBJ" ] || "$BIN/examples/make_object" "$OBJ" "$POINTS" "$DAYS" "$SECS"
SAMPLES=$(( POINTS * DAYS * 86400 / SECS ))

PORT_FILE="$OUT/port"; rm -f "$PORT_FILE"
python3 - "$OBJ" "$PORT_FILE" <<'PY' &
import hashlib, http.server, os, sys
path, port_file = sys.argv[1:]
sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.send_header("X-Content-SHA256", sha)
        self.end_headers()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                self.wfile.write(chunk)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(port_file, "w").write(str(s.server_address[1]))
s.serve_forever()
PY
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$PORT_FILE" ] && break; sleep 0.1; done
export TSP_URL="http://127.0.0.1:$(cat "$PORT_FILE")" TSP_TOKEN=bench

obj_bytes=$(stat -c %s "$OBJ")
echo "object: $SAMPLES samples, $obj_bytes bytes ($(python3 -c "print(f'{$obj_bytes/$SAMPLES:.3f}')") B/sample)"
# Parquet to a file (-o, as an analyst would); CSV, for comparison, to a
# pipe that counts it (the full-size CSV is over 3 GB).
for fmt in parquet csv; do
  if [ "$fmt" = parquet ]; then
    /usr/bin/time -v "$BIN/tsp" fetch bench --format parquet -o "$OUT/out.parquet" 2>"$OUT/time-$fmt.txt"
    bytes=$(stat -c %s "$OUT/out.parquet")
  else
    bytes=$( { /usr/bin/time -v "$BIN/tsp" fetch bench --format csv 2>"$OUT/time-$fmt.txt"; } | wc -c)
  fi
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$OUT/time-$fmt.txt")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$OUT/time-$fmt.txt")
  python3 - "$fmt" "$wall" "$rss" "$bytes" "$SAMPLES" "$obj_bytes" <<'PY'
import sys
fmt, wall, rss, size, n, obj = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
print(f"{fmt}: {secs:.1f} s wall, {n / secs / 1e6:.2f} M samples/s, peak RSS {rss / 1024:.1f} MiB, "
      f"{size} bytes = {size / n:.3f} B/sample ({size / obj:.2f}x the object)")
PY
done

"""docs/DESIGN.md's reader of the result object, independently of core.

decode(path_or_bytes) -> (header, rows): one (point, epoch ms, float or str)
per sample, in the object's order.
"""
import gzip
import io

import msgpack


def decode(source):
    """docs/DESIGN.md's reader: (point, epoch ms, float or str) per sample."""
    rows = []
    raw = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
    with raw, gzip.open(raw) as f:
        u = msgpack.Unpacker(f, raw=False)
        header = next(u)
        for b in u:
            kind = {}
            for key, k in (("fi", "f"), ("si", "s")):
                at = 0
                for j, g in enumerate(b[key]):
                    at = g if j == 0 else at + g
                    kind[at] = k
            t, m, fk, sk, mi = b["t0"], 0, 0, 0, 0
            for i in range(b["n"]):
                if i:
                    t += b["dt"][i - 1]
                if kind.get(i) == "f":
                    v = b["fv"][fk]
                    fk += 1
                elif kind.get(i) == "s":
                    v = b["sd"][b["sc"][sk]]
                    sk += 1
                else:
                    m += b["m"][mi]
                    mi += 1
                    v = m / 10 ** b["s"]
                rows.append((header["points"][b["p"]], t, v))
    return header, rows

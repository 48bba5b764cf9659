-- Each UTC hour's consumer invocations: how many, the most D1 statements,
-- subrequests, wasm memory and wall time any one of them used, and how
-- many warned of nearing a platform limit (one operator alert per hour
-- once they repeat). `/v1/stats` and `/v1/metrics` read the last day.
CREATE TABLE invocation_maxima (
    hour         INTEGER PRIMARY KEY,
    invocations  INTEGER NOT NULL DEFAULT 0,
    statements   INTEGER NOT NULL DEFAULT 0,
    subrequests  INTEGER NOT NULL DEFAULT 0,
    memory_bytes INTEGER NOT NULL DEFAULT 0,
    wall_ms      INTEGER NOT NULL DEFAULT 0,
    warnings     INTEGER NOT NULL DEFAULT 0,
    alerted      INTEGER NOT NULL DEFAULT 0
);

-- Jobs, their chunk checkpoints, their event history, and the aggregates.
-- Applied by `wrangler d1 migrations apply` (migrations_dir = "schema") and,
-- file for file, by the native tests through rusqlite.

CREATE TABLE queue_jobs (
    id            TEXT    PRIMARY KEY,
    owner         TEXT    NOT NULL,
    site          TEXT    NOT NULL,
    -- JSON array of point names, sorted and unique.
    points        TEXT    NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    -- Full SHA-256 hex of the canonical request.
    fingerprint   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN
                      ('queued', 'processing', 'completed', 'failed', 'failed_permanent', 'cancelled')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    chunks_total  INTEGER NOT NULL DEFAULT 0,
    chunks_done   INTEGER NOT NULL DEFAULT 0,
    sample_count  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    -- Outbox: NULL until the queue has accepted the job's message.
    sent_at       INTEGER,
    -- A processing job whose lease has passed is presumed dead; the reaper resends it.
    lease_until   INTEGER,
    last_error    TEXT,
    result_key    TEXT,
    result_bytes  INTEGER,
    result_sha256 TEXT,
    -- Set once the dead-letter alert went out, so it goes out once.
    alerted_at    INTEGER,
    CHECK (end_ms > start_ms)
);

CREATE INDEX queue_jobs_owner_created ON queue_jobs (owner, created_at DESC);
CREATE INDEX queue_jobs_owner_fingerprint ON queue_jobs (owner, fingerprint, created_at DESC);
CREATE INDEX queue_jobs_status_lease ON queue_jobs (status, lease_until);

-- One row per finished chunk: the checkpoint. Progress is recomputed from it,
-- so a chunk committed twice is counted once.
CREATE TABLE job_chunks (
    job_id   TEXT    NOT NULL REFERENCES queue_jobs (id),
    idx      INTEGER NOT NULL,
    samples  INTEGER NOT NULL,
    bytes    INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;

-- Every state transition, with its error if any: the job's history.
CREATE TABLE job_events (
    job_id  TEXT    NOT NULL REFERENCES queue_jobs (id),
    at      INTEGER NOT NULL,
    status  TEXT    NOT NULL,
    attempt INTEGER NOT NULL,
    detail  TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, at);

CREATE TABLE timeseries_agg (
    site         TEXT    NOT NULL,
    point        TEXT    NOT NULL,
    resolution   TEXT    NOT NULL CHECK (resolution IN ('1h', '1d')),
    bucket_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    min          REAL,
    max          REAL,
    sum          REAL,
    mean         REAL,
    stddev       REAL,
    first_ts     INTEGER,
    first_value  REAL,
    last_ts      INTEGER,
    last_value   REAL,
    non_numeric  INTEGER NOT NULL,
    non_finite   INTEGER NOT NULL,
    PRIMARY KEY (site, point, resolution, bucket_start)
) WITHOUT ROWID;

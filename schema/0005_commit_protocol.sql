-- The commit protocol: fenced leases, progress kept by the checkpoints,
-- and aggregates that belong to their owner and say when they are partial.

-- A claim writes a fresh random token; every later write of that holder
-- (chunk commit, heartbeat, hand-over, failure, completion) is guarded in
-- the same statement by `status = 'processing' AND lease_token = ?`, so a
-- holder that lost its lease, or whose job was cancelled, writes nothing.
ALTER TABLE queue_jobs ADD COLUMN lease_token TEXT;

-- Progress follows the checkpoints in the same transaction as the chunk
-- commit, without a statement of its own. `INSERT OR IGNORE` of a chunk
-- that is already checkpointed inserts nothing, so nothing counts twice.
CREATE TRIGGER job_chunks_progress_insert AFTER INSERT ON job_chunks
BEGIN
    UPDATE queue_jobs
       SET chunks_done = chunks_done + 1, sample_count = sample_count + NEW.samples
     WHERE id = NEW.job_id;
END;

-- A checkpoint dropped by finalize (its part was missing) takes its
-- progress with it, so the chunk runs again and is counted once.
CREATE TRIGGER job_chunks_progress_delete AFTER DELETE ON job_chunks
BEGIN
    UPDATE queue_jobs
       SET chunks_done = chunks_done - 1, sample_count = sample_count - OLD.samples
     WHERE id = OLD.job_id;
END;

-- Aggregates keyed by their owner. `partial` = 1 for a bucket the writing
-- job's range covered only in part; such a row never replaces a complete one.
CREATE TABLE timeseries_agg_v2 (
    owner        TEXT    NOT NULL,
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
    partial      INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1)),
    PRIMARY KEY (owner, site, point, resolution, bucket_start)
) WITHOUT ROWID;

-- Existing rows go to every owner with a job (in any state) that covered
-- the row's point and bucket: the rows were written by such jobs. A row is
-- partial for an owner unless one of that owner's jobs covered its whole
-- bucket.
INSERT INTO timeseries_agg_v2
SELECT j.owner, a.site, a.point, a.resolution, a.bucket_start, a.count, a.min, a.max,
       a.sum, a.mean, a.stddev, a.first_ts, a.first_value, a.last_ts, a.last_value,
       a.non_numeric, a.non_finite,
       MIN(CASE WHEN j.start_ms <= a.bucket_start
                 AND j.end_ms >= a.bucket_start
                     + (CASE a.resolution WHEN '1h' THEN 3600000 ELSE 86400000 END)
                THEN 0 ELSE 1 END)
  FROM queue_jobs j
 CROSS JOIN json_each(j.points) p
 CROSS JOIN timeseries_agg a
 WHERE a.site = j.site AND a.point = p.value AND a.resolution IN ('1h', '1d')
   AND a.bucket_start > j.start_ms - 86400000 AND a.bucket_start < j.end_ms
   AND a.bucket_start
       + (CASE a.resolution WHEN '1h' THEN 3600000 ELSE 86400000 END) > j.start_ms
 GROUP BY j.owner, a.site, a.point, a.resolution, a.bucket_start;

-- (A temporary index makes the orphan lookup below a point query.)
CREATE INDEX timeseries_agg_v2_key ON timeseries_agg_v2 (site, point, resolution, bucket_start);

-- Rows whose jobs were all purged (retention) keep their data under the
-- empty owner, which no token maps to: nothing is lost, nobody reads it,
-- and an operator can hand them to an owner with one UPDATE.
INSERT INTO timeseries_agg_v2
SELECT '', a.site, a.point, a.resolution, a.bucket_start, a.count, a.min, a.max,
       a.sum, a.mean, a.stddev, a.first_ts, a.first_value, a.last_ts, a.last_value,
       a.non_numeric, a.non_finite, 0
  FROM timeseries_agg a
 WHERE NOT EXISTS (
       SELECT 1 FROM timeseries_agg_v2 b
        WHERE b.site = a.site AND b.point = a.point AND b.resolution = a.resolution
          AND b.bucket_start = a.bucket_start);

DROP INDEX timeseries_agg_v2_key;
DROP TABLE timeseries_agg;
ALTER TABLE timeseries_agg_v2 RENAME TO timeseries_agg;

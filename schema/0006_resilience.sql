-- Resilience: retries count lack of progress, the reaper judges a job by
-- when its next delivery is due, identical live submissions share one job
-- under any concurrency, and a webhook that refuses an alert is recorded.

-- Consecutive deliveries that made no progress; a job dies of transient
-- errors only after MAX_STALLED_DELIVERIES of them. Progress resets it.
ALTER TABLE queue_jobs ADD COLUMN stalls INTEGER NOT NULL DEFAULT 0;
-- When the job's next delivery is due (a delayed retry or continuation);
-- the reaper resends only jobs whose delivery is overdue.
ALTER TABLE queue_jobs ADD COLUMN next_attempt_at INTEGER;
-- The fingerprint of a job created from now on (NULL for older rows): at
-- most one live job per owner and fingerprint, enforced by the index below,
-- so the lookup-then-insert race cannot make two.
ALTER TABLE queue_jobs ADD COLUMN live_key TEXT;
CREATE UNIQUE INDEX queue_jobs_live_key ON queue_jobs (owner, live_key)
    WHERE status IN ('queued', 'processing', 'failed');
-- The webhook refused the dead-letter alert (a 4xx): a permanent alert
-- failure, logged and counted, never retried.
ALTER TABLE queue_jobs ADD COLUMN alert_error TEXT;

-- Progress resets the stall count and the reaper's resend count: a job
-- that keeps checkpointing never dies of either.
DROP TRIGGER job_chunks_progress_insert;
CREATE TRIGGER job_chunks_progress_insert AFTER INSERT ON job_chunks
BEGIN
    UPDATE queue_jobs
       SET chunks_done = chunks_done + 1, sample_count = sample_count + NEW.samples,
           stalls = 0, resends = 0
     WHERE id = NEW.job_id;
END;

-- The reaper's selections: overdue deliveries, and dead jobs still owed an alert.
CREATE INDEX queue_jobs_status_next ON queue_jobs (status, next_attempt_at);

-- A job waiting for something outside it (the upstream's circuit is
-- open): until when, and why. The job view shows it; a claim clears it.
ALTER TABLE queue_jobs ADD COLUMN waiting_until INTEGER;
ALTER TABLE queue_jobs ADD COLUMN waiting_for TEXT;

-- The upstream's health, shared by every invocation: one row. `closed`
-- lets requests through and counts consecutive failures; past the
-- threshold it is `open` until `open_until` (consumers delay their
-- messages, burning no attempt); then one invocation takes the probe
-- (`half_open`, `probe_until` bounds it) and its first page closes the
-- circuit or opens it again. Failures open it only when they span two
-- sites or more, or at once when the credentials are rejected. Transitions are compare-and-set, so exactly
-- one invocation alerts on opening and one on closing.
CREATE TABLE upstream_circuit (
    id          TEXT    PRIMARY KEY,
    state       TEXT    NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    failures    INTEGER NOT NULL DEFAULT 0,
    open_until  INTEGER,
    probe_until INTEGER,
    reason      TEXT,
    changed_at  INTEGER NOT NULL DEFAULT 0,
    -- The site of the last failure, and whether the current run of
    -- failures spans more than one site: one broken site alone never opens
    -- the circuit (its jobs die of stalls instead of holding others back).
    last_site   TEXT,
    multi_site  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO upstream_circuit (id, state) VALUES ('ace', 'closed');

-- Each owner's chunks ordered per UTC day (`DAILY_CHUNK_QUOTA`), `force`
-- included: the check and the count are in the submit's one batch.
CREATE TABLE owner_usage (
    owner  TEXT    NOT NULL,
    day    INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    PRIMARY KEY (owner, day)
) WITHOUT ROWID;

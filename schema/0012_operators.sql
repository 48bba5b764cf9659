-- Issue 22: operators in control, and retries that respect the limits.

-- Retries of dead jobs per owner and UTC minute (the retry rate limit).
CREATE TABLE IF NOT EXISTS owner_retries (
    owner  TEXT NOT NULL,
    minute INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (owner, minute)
) WITHOUT ROWID;

-- When the webhook last took an alert for the job: survives a retry, so a
-- job that dies again within the hour is archived but not alerted again.
ALTER TABLE queue_jobs ADD COLUMN last_alert_at INTEGER;

-- Waiting is bounded by time, not by stalls: when the job last made
-- progress (a window committed); NULL until its first, then its claim
-- (`started_at`) counts.
ALTER TABLE queue_jobs ADD COLUMN progress_at INTEGER;
-- The circuit opens on failures spread over time (one site or many):
-- when the current run of failures began.
ALTER TABLE upstream_circuit ADD COLUMN first_failure_at INTEGER;

-- Sites an operator paused: their jobs are not claimed (they wait, and no
-- upstream call is made for them) until the site is resumed.
CREATE TABLE IF NOT EXISTS site_pauses (
    site      TEXT PRIMARY KEY,
    paused_at INTEGER NOT NULL,
    paused_by TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- Results pushed: an optional per-job callback, POSTed (signed) when the
-- job reaches a terminal state. `callback_state`: pending (due at
-- `callback_next_at`), sent, or failed (a 4xx, or its tries spent).
ALTER TABLE queue_jobs ADD COLUMN callback_url TEXT;
ALTER TABLE queue_jobs ADD COLUMN callback_state TEXT
    CHECK (callback_state IS NULL OR callback_state IN ('pending', 'sent', 'failed'));
ALTER TABLE queue_jobs ADD COLUMN callback_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_jobs ADD COLUMN callback_next_at INTEGER;
ALTER TABLE queue_jobs ADD COLUMN callback_error TEXT;
CREATE INDEX IF NOT EXISTS queue_jobs_callback_due
    ON queue_jobs (callback_next_at) WHERE callback_state = 'pending';
-- Every way into a terminal state (completion, death, cancel) makes the
-- callback due: one mechanism, whoever wrote the status.
CREATE TRIGGER IF NOT EXISTS queue_jobs_callback_due_on_terminal
AFTER UPDATE OF status ON queue_jobs
WHEN NEW.callback_url IS NOT NULL AND NEW.status != OLD.status
     AND NEW.status IN ('completed', 'failed_permanent', 'cancelled')
BEGIN
    UPDATE queue_jobs SET callback_state = 'pending', callback_attempts = 0,
        callback_next_at = NEW.updated_at, callback_error = NULL
    WHERE id = NEW.id;
END;

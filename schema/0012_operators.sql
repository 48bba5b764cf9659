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

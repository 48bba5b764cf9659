-- Issue 22: three Workers, least privilege. The consumer Worker holds no
-- webhook URL and no callback signing key: the operator alerts it raises
-- (a dead job, the upstream circuit, a budget warning) wait here until the
-- dead-letter Worker sends them (nudged on the notify queue, and every
-- minute by the reaper). Callbacks need no row: the job row makes them due.
CREATE TABLE IF NOT EXISTS notices (
    key        TEXT PRIMARY KEY,   -- the alert's Idempotency-Key
    job_id     TEXT,               -- the dead job it is about, if any
    payload    TEXT NOT NULL,      -- the webhook's JSON body
    created_at INTEGER NOT NULL,
    next_at    INTEGER NOT NULL,   -- due (or held by a sender) until then
    attempts   INTEGER NOT NULL DEFAULT 0,
    sent_at    INTEGER,
    error      TEXT                -- refused (4xx) or its tries spent
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notices_due ON notices (next_at)
    WHERE sent_at IS NULL AND error IS NULL;

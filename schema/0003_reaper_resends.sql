-- How many times the reaper has resent a job. A job that keeps stalling is
-- taken down the terminal path after a bound (continuations of a long job
-- do not count: they are progress, not stalls).
ALTER TABLE queue_jobs ADD COLUMN resends INTEGER NOT NULL DEFAULT 0;

-- The reaper purges terminal jobs past the retention period, oldest first
-- (JOB_RETENTION_MS); this index makes that a range scan.
CREATE INDEX queue_jobs_finished ON queue_jobs (finished_at, id) WHERE finished_at IS NOT NULL;

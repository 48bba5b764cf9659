-- Listing an owner's jobs by status (dead letters, stats) without scanning
-- the owner's whole history.
CREATE INDEX queue_jobs_owner_status ON queue_jobs (owner, status, created_at DESC);

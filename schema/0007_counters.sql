-- Cheap reads for stats and listings: job counts per owner and status kept
-- by triggers (a stats read no longer scans the owner's history), and an
-- index for the time-windowed figures (completed or dead in the last hour
-- or day): a range scan of the window, not of every finished job.

CREATE TABLE owner_counts (
    owner  TEXT    NOT NULL,
    status TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (owner, status)
) WITHOUT ROWID;

INSERT INTO owner_counts (owner, status, n)
SELECT owner, status, COUNT(*) FROM queue_jobs GROUP BY owner, status;

CREATE TRIGGER queue_jobs_count_insert AFTER INSERT ON queue_jobs
BEGIN
    INSERT OR IGNORE INTO owner_counts (owner, status, n) VALUES (NEW.owner, NEW.status, 0);
    UPDATE owner_counts SET n = n + 1 WHERE owner = NEW.owner AND status = NEW.status;
END;

CREATE TRIGGER queue_jobs_count_update AFTER UPDATE OF status ON queue_jobs
WHEN OLD.status != NEW.status
BEGIN
    UPDATE owner_counts SET n = n - 1 WHERE owner = OLD.owner AND status = OLD.status;
    INSERT OR IGNORE INTO owner_counts (owner, status, n) VALUES (NEW.owner, NEW.status, 0);
    UPDATE owner_counts SET n = n + 1 WHERE owner = NEW.owner AND status = NEW.status;
END;

CREATE TRIGGER queue_jobs_count_delete AFTER DELETE ON queue_jobs
BEGIN
    UPDATE owner_counts SET n = n - 1 WHERE owner = OLD.owner AND status = OLD.status;
END;

CREATE INDEX queue_jobs_owner_status_finished ON queue_jobs (owner, status, finished_at);

-- The upstream plan (issue 18): ACE ignores `point_names`, so a job's unit
-- of work is a time window that fetches every point of the job at once,
-- either with one time-major walk of the site's pages ('site') or with one
-- request per point ('point').

-- Days per window, fixed at submission from the job's point count, so the
-- plan (and `chunks_total`) is a pure function of the row.
ALTER TABLE queue_jobs ADD COLUMN window_days INTEGER NOT NULL DEFAULT 31;
-- What the request asked for: 'auto', 'site' or 'point'.
ALTER TABLE queue_jobs ADD COLUMN plan_requested TEXT NOT NULL DEFAULT 'auto'
    CHECK (plan_requested IN ('auto', 'site', 'point'));
-- What the consumer chose at its first claim ('site' or 'point'), with the
-- page size of a site walk and the site's size; NULL until then.
ALTER TABLE queue_jobs ADD COLUMN plan TEXT CHECK (plan IS NULL OR plan IN ('site', 'point'));
ALTER TABLE queue_jobs ADD COLUMN page_size INTEGER;
ALTER TABLE queue_jobs ADD COLUMN site_points INTEGER;
-- Upstream traffic of the job's committed windows: body bytes and requests.
ALTER TABLE queue_jobs ADD COLUMN upstream_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_jobs ADD COLUMN upstream_requests INTEGER NOT NULL DEFAULT 0;
-- JSON array of the job's points that yielded no sample over the whole
-- range, written when the job completes.
ALTER TABLE queue_jobs ADD COLUMN points_without_data TEXT;

-- Per window: JSON array of sample counts, one per point of the job.
ALTER TABLE job_chunks ADD COLUMN point_samples TEXT;

-- What the upstream says about a site (`configured_points`), cached with a
-- TTL: how many points it has, and the longest name (a site page's rows).
CREATE TABLE upstream_sites (
    site           TEXT    PRIMARY KEY,
    points         INTEGER NOT NULL,
    enabled        INTEGER NOT NULL,
    max_name_bytes INTEGER NOT NULL,
    fetched_at     INTEGER NOT NULL
) WITHOUT ROWID;

-- Jobs in flight when this migration runs were cut point by month; their
-- checkpoints mean nothing under windows. Drop them (the progress trigger
-- takes their counts along): those jobs run again from the start.
DELETE FROM job_chunks WHERE job_id IN
    (SELECT id FROM queue_jobs WHERE status IN ('queued', 'processing', 'failed'));
-- Their plan was points × months; under month windows (`window_days` 31,
-- the default above) it is the months alone.
UPDATE queue_jobs SET chunks_total = chunks_total / json_array_length(points)
 WHERE status IN ('queued', 'processing', 'failed') AND json_array_length(points) > 0;

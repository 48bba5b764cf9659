-- The settled-sample store (issue 20): what jobs fetched from the upstream,
-- kept in R2 and shared by every owner of the deployment, so settled data
-- is fetched about once. An entry is one R2 object holding one block per
-- point (the result object's own block encoding) over the span it covers;
-- its rows here are written only after the object, so a row never names an
-- object that was not written (a missing or altered object is refetched).

-- One R2 object: the site, the span [from_ms, to_ms) it covers, its size,
-- hash and what fetching it cost, when it was fetched and last read.
CREATE TABLE store_entries (
    key            TEXT    PRIMARY KEY,
    site           TEXT    NOT NULL,
    from_ms        INTEGER NOT NULL,
    to_ms          INTEGER NOT NULL,
    points         INTEGER NOT NULL,
    samples        INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    sha256         TEXT    NOT NULL,
    upstream_bytes INTEGER NOT NULL,
    fetched_at     INTEGER NOT NULL,
    last_used      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX store_entries_lru ON store_entries (last_used);
CREATE INDEX store_entries_site ON store_entries (site, from_ms);

-- Where each point's block sits in an entry's object. A newer entry that
-- covers a point's older span replaces its row, so a lookup finds the
-- newest data; an entry no row names any more is evicted first.
CREATE TABLE store_points (
    site     TEXT    NOT NULL,
    point    TEXT    NOT NULL,
    from_ms  INTEGER NOT NULL,
    to_ms    INTEGER NOT NULL,
    key      TEXT    NOT NULL,
    at_byte  INTEGER NOT NULL,
    byte_len INTEGER NOT NULL,
    samples  INTEGER NOT NULL,
    PRIMARY KEY (site, point, from_ms, to_ms)
) WITHOUT ROWID;
CREATE INDEX store_points_key ON store_points (key);

-- The store's running figures: windows that read it (hits) or that had a
-- settled span and did not (misses), the upstream bytes those reads saved,
-- and the entries eviction removed.
CREATE TABLE store_counters (
    id          TEXT    PRIMARY KEY CHECK (id = 'store'),
    hits        INTEGER NOT NULL DEFAULT 0,
    misses      INTEGER NOT NULL DEFAULT 0,
    bytes_saved INTEGER NOT NULL DEFAULT 0,
    evicted     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO store_counters (id) VALUES ('store');

-- A `force` job bypasses the store and refreshes it.
ALTER TABLE queue_jobs ADD COLUMN force INTEGER NOT NULL DEFAULT 0;
-- Where a job's samples came from, over its committed windows: samples and
-- windows read from the store, and fetched from the upstream (a window
-- that did both counts once in each).
ALTER TABLE queue_jobs ADD COLUMN store_samples INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_jobs ADD COLUMN store_windows INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_jobs ADD COLUMN upstream_samples INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_jobs ADD COLUMN upstream_windows INTEGER NOT NULL DEFAULT 0;

-- The names of a site's collecting points (a JSON array), from the same
-- `configured_points` read as its size: a site walk that sees them all
-- keeps them all in the store, not only the job's.
ALTER TABLE upstream_sites ADD COLUMN names TEXT;

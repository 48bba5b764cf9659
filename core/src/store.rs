//! Every SQL statement the system runs, one function each.
//!
//! Statements are built here and executed through [`SqlDb`], so D1 in the
//! Worker and SQLite in the native tests run the very same text. Every status
//! UPDATE is compare-and-set on the status it expects.

use std::borrow::Cow;

use serde::de::DeserializeOwned;

use crate::aggregate::Aggregate;
use crate::domain::{EpochMs, JobId, PointName};
use crate::error::StoreError;
use crate::job::{Job, JobStatus};
use crate::ports::{Row, SqlDb, SqlValue, Statement};

pub mod notices;
pub mod series;
pub mod settled;

/// D1 allows 100 bound parameters per statement.
pub const MAX_PARAMS: usize = 100;

/// The fence every write of a lease holder carries, in the same statement:
/// the job (`?1`) is still `processing` and still holds the holder's token
/// (`?2`). A holder that lost its lease, or whose job was cancelled or
/// died, changes nothing.
macro_rules! held {
    () => {
        "EXISTS (SELECT 1 FROM queue_jobs WHERE id = ?1 AND status = 'processing' \
         AND lease_token = ?2)"
    };
}

/// Who holds a job: its id and the token its claim wrote.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    /// The job.
    pub id: &'a JobId,
    /// The claim's random token.
    pub token: &'a str,
}

impl Holder<'_> {
    fn params(&self) -> Vec<SqlValue> {
        vec![self.id.as_str().into(), self.token.into()]
    }
}

fn stmt(sql: &'static str, params: Vec<SqlValue>) -> Statement {
    Statement {
        sql: Cow::Borrowed(sql),
        params,
    }
}

/// Decodes rows into a type.
pub fn decode<T: DeserializeOwned>(rows: Vec<Row>) -> Result<Vec<T>, StoreError> {
    rows.into_iter()
        .map(|r| {
            serde_json::from_value(serde_json::Value::Object(r))
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

pub use crate::job::NewJob;

/// Inserts a `queued` job, unless its owner already has `max_active` (> 0)
/// queued, processing or failed jobs, or already has a live job with this
/// fingerprint (the unique `queue_jobs_live_key` index: identical live
/// submissions share one job under any concurrency). The checks and the
/// insert are one statement, so concurrent submits cannot overshoot. 0 rows
/// changed means one of the two held. The count stops at the limit (an
/// index range scan of at most `max_active` rows).
pub fn insert_job(j: &NewJob<'_>, max_active: i64, quota: Quota) -> Statement {
    stmt(
        "INSERT INTO queue_jobs (id, owner, site, points, start_ms, end_ms, fingerprint, status, \
         chunks_total, created_at, updated_at, live_key, window_days, plan_requested, force, \
         callback_url) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?9, ?7, ?14, ?15, ?16, ?17 \
         WHERE (?10 <= 0 OR (SELECT COUNT(*) FROM (SELECT 1 FROM queue_jobs WHERE owner = ?2 \
         AND status IN ('queued', 'processing', 'failed') LIMIT ?10)) < ?10) \
         AND (?11 <= 0 OR COALESCE((SELECT chunks FROM owner_usage WHERE owner = ?2 AND day = ?12), 0) \
              + ?13 <= ?11) \
         ON CONFLICT DO NOTHING",
        vec![
            j.id.as_str().into(),
            j.owner.into(),
            j.site.as_str().into(),
            j.points_json.clone().into(),
            j.start_ms.into(),
            j.end_ms.into(),
            j.fingerprint.into(),
            j.chunks_total.into(),
            j.now.into(),
            max_active.into(),
            quota.chunks_per_day.into(),
            quota.day.into(),
            j.quota_units.into(),
            i64::from(j.window_days).into(),
            j.plan_requested.as_str().into(),
            i64::from(j.force).into(),
            j.callback_url.into(),
        ],
    )
}

/// An owner's daily chunk quota: the limit (0: none) and the UTC day.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    /// Chunks per UTC day.
    pub chunks_per_day: i64,
    /// Days since the epoch.
    pub day: i64,
}

/// Counts a new job's chunks against its owner's day, if the job was
/// inserted (batched after [`insert_job`]).
pub fn count_usage(id: &JobId, owner: &str, day: i64, chunks: i64) -> Statement {
    stmt(
        "INSERT INTO owner_usage (owner, day, chunks) \
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM queue_jobs WHERE id = ?4) \
         ON CONFLICT (owner, day) DO UPDATE SET chunks = chunks + excluded.chunks",
        vec![owner.into(), day.into(), chunks.into(), id.as_str().into()],
    )
}

/// An owner's chunks ordered on a day.
pub fn select_usage(owner: &str, day: i64) -> Statement {
    stmt(
        "SELECT COALESCE((SELECT chunks FROM owner_usage WHERE owner = ?1 AND day = ?2), 0) \
         AS chunks",
        vec![owner.into(), day.into()],
    )
}

/// Appends to a job's history.
pub fn insert_event(
    id: &JobId,
    at: EpochMs,
    status: JobStatus,
    attempt: i64,
    detail: Option<&str>,
) -> Statement {
    stmt(
        "INSERT INTO job_events (job_id, at, status, attempt, detail) VALUES (?, ?, ?, ?, ?)",
        vec![
            id.as_str().into(),
            at.into(),
            status.as_str().into(),
            attempt.into(),
            detail.into(),
        ],
    )
}

/// Appends to a job's history only if the job is now in `status`: batched
/// after a compare-and-set, it records the transition only when it happened.
pub fn insert_event_if(
    id: &JobId,
    at: EpochMs,
    status: JobStatus,
    attempt: i64,
    detail: Option<&str>,
) -> Statement {
    stmt(
        "INSERT INTO job_events (job_id, at, status, attempt, detail) \
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS \
         (SELECT 1 FROM queue_jobs WHERE id = ?1 AND status = ?3 AND updated_at = ?2)",
        vec![
            id.as_str().into(),
            at.into(),
            status.as_str().into(),
            attempt.into(),
            detail.into(),
        ],
    )
}

/// One job, whoever owns it (consumer and dead-letter roles).
pub fn select_job(id: &JobId) -> Statement {
    stmt(
        "SELECT * FROM queue_jobs WHERE id = ?",
        vec![id.as_str().into()],
    )
}

/// One job of one owner (the API: another owner's job does not exist).
pub fn select_owned_job(id: &JobId, owner: &str) -> Statement {
    stmt(
        "SELECT * FROM queue_jobs WHERE id = ? AND owner = ?",
        vec![id.as_str().into(), owner.into()],
    )
}

/// The owner's newest job with this fingerprint that is live (queued,
/// processing, failed-and-retrying) or completed after `fresh_since`.
pub fn select_reusable_job(owner: &str, fingerprint: &str, fresh_since: EpochMs) -> Statement {
    stmt(
        "SELECT * FROM queue_jobs WHERE owner = ? AND fingerprint = ? \
         AND (status IN ('queued', 'processing', 'failed') \
              OR (status = 'completed' AND finished_at >= ?)) \
         ORDER BY created_at DESC LIMIT 1",
        vec![owner.into(), fingerprint.into(), fresh_since.into()],
    )
}

/// Records that the queue accepted the job's message.
pub fn mark_sent(id: &JobId, now: EpochMs) -> Statement {
    stmt(
        "UPDATE queue_jobs SET sent_at = ? WHERE id = ? AND sent_at IS NULL",
        vec![now.into(), id.as_str().into()],
    )
}

/// Claims a job for processing: compare-and-set from `queued` or `failed`,
/// or from `processing` whose lease has lapsed, writing the holder's fresh
/// token (which fences off any earlier holder). Returns the row if claimed.
/// A claim from `queued` or `failed` is an attempt; a continuation's claim
/// (from a released lease) is the same run going on, unless
/// `counts_as_attempt` says otherwise (a redelivery, a lapsed lease).
pub fn claim_job(
    holder: Holder<'_>,
    now: EpochMs,
    lease_until: EpochMs,
    counts_as_attempt: bool,
) -> Statement {
    stmt(
        "UPDATE queue_jobs SET status = 'processing', \
         attempts = attempts + (CASE WHEN ?4 = 1 OR status IN ('queued', 'failed') THEN 1 ELSE 0 END), \
         started_at = COALESCE(started_at, ?1), sent_at = COALESCE(sent_at, ?1), \
         lease_until = ?2, updated_at = ?1, lease_token = ?5, next_attempt_at = NULL, \
         waiting_until = NULL, waiting_for = NULL \
         WHERE id = ?3 AND (status IN ('queued', 'failed') \
               OR (status = 'processing' AND (lease_until IS NULL OR lease_until <= ?1))) \
         AND NOT EXISTS (SELECT 1 FROM site_pauses p WHERE p.site = queue_jobs.site) \
         RETURNING *",
        vec![
            now.into(),
            lease_until.into(),
            holder.id.as_str().into(),
            i64::from(counts_as_attempt).into(),
            holder.token.into(),
        ],
    )
}

/// A job's finished chunks: index, samples, and their parts' bytes.
pub fn select_done_chunks(id: &JobId) -> Statement {
    stmt(
        "SELECT idx, samples, bytes, parquet_bytes FROM job_chunks WHERE job_id = ? ORDER BY idx",
        vec![id.as_str().into()],
    )
}

/// One row while the holder still holds the job (a liveness check).
pub fn select_held(holder: Holder<'_>) -> Statement {
    stmt(
        "SELECT 1 AS held FROM queue_jobs WHERE id = ?1 AND status = 'processing' AND lease_token = ?2",
        holder.params(),
    )
}

/// The status of a job (cancellation checks).
pub fn select_status(id: &JobId) -> Statement {
    stmt(
        "SELECT status FROM queue_jobs WHERE id = ?",
        vec![id.as_str().into()],
    )
}

/// An `f64` as integers SQLite turns back into exactly that `f64`:
/// `m`, `r`, `q` with `x = m · 2^r · 2^(62·q)`, `|m| < 2^53`,
/// `-20 <= r <= 61`, `-17 <= q <= 15`.
///
/// SQLite's own text-to-double conversion is not correctly rounded
/// (measured: SQLite 3.46 misreads about 1 in 5,000 random doubles written
/// in shortest round-trip form), so floats never travel as decimal text.
/// Integers convert to REAL exactly, and multiplying by a power of two is
/// exact while the result is representable, which `x` is by construction.
/// `-0.0` becomes `0`, as it would in any REAL column.
pub fn exact_parts(x: f64) -> (i64, i64, i64) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = (bits & ((1 << 52) - 1)) as i64;
    let (mut m, mut e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp - 1075)
    };
    if m == 0 {
        return (0, 0, 0);
    }
    // Shorter JSON: drop the trailing zero bits.
    let tz = m.trailing_zeros() as i64;
    m >>= tz;
    e += tz;
    let q = e.div_euclid(62).max(-17);
    let sign = if x.is_sign_negative() { -1 } else { 1 };
    (sign * m, e - 62 * q, q)
}

/// One aggregate row as a JSON array, in the column order
/// [`upsert_aggregates`] reads; each float as its [`exact_parts`].
fn agg_json(a: &Aggregate, range: (EpochMs, EpochMs)) -> serde_json::Value {
    use serde_json::Value as V;
    let mut row = vec![
        V::from(a.resolution.as_str()),
        V::from(a.bucket_start),
        V::from(a.count),
    ];
    let floats = [
        a.min,
        a.max,
        a.sum,
        a.mean,
        a.stddev,
        a.first.map(|f| f.1),
        a.last.map(|f| f.1),
    ];
    for f in floats {
        match f.filter(|x| x.is_finite()) {
            Some(x) => {
                let (m, r, q) = exact_parts(x);
                row.extend([V::from(m), V::from(r), V::from(q)]);
            }
            None => row.extend([V::Null, V::Null, V::Null]),
        }
    }
    row.extend([
        V::from(a.first.map(|f| f.0)),
        V::from(a.last.map(|f| f.0)),
        V::from(a.non_numeric),
        V::from(a.non_finite),
        V::from(u8::from(!a.covered_by(range.0, range.1))),
    ]);
    V::Array(row)
}

/// The SQL that rebuilds float `k` (0-based) of an aggregate row from its
/// [`exact_parts`] at JSON positions `3 + 3k ..`.
fn exact_real(k: usize) -> String {
    let (m, r, q) = (3 + 3 * k, 4 + 3 * k, 5 + 3 * k);
    format!(
        "(CAST(json_extract(r.value, '$[{m}]') AS REAL) \
         * CASE WHEN json_extract(r.value, '$[{r}]') >= 0 \
           THEN (1 << json_extract(r.value, '$[{r}]')) \
           ELSE 1.0 / (1 << -json_extract(r.value, '$[{r}]')) END \
         * (SELECT v FROM p2 WHERE p2.q = json_extract(r.value, '$[{q}]')))"
    )
}

/// The set-based aggregate upsert (see [`upsert_aggregates`]), built once.
fn upsert_aggregates_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let floats: Vec<String> = (0..7).map(exact_real).collect();
        format!(
            "WITH RECURSIVE \
             up(q, v) AS (SELECT 0, CAST(1 AS REAL) UNION ALL \
                          SELECT q + 1, v * 4611686018427387904 FROM up WHERE q < 15), \
             down(q, v) AS (SELECT -1, 1.0 / 4611686018427387904 UNION ALL \
                            SELECT q - 1, v / 4611686018427387904 FROM down WHERE q > -17), \
             p2(q, v) AS (SELECT q, v FROM up UNION ALL SELECT q, v FROM down) \
             INSERT INTO timeseries_agg (owner, site, point, resolution, bucket_start, count, \
             min, max, sum, mean, stddev, first_value, last_value, first_ts, last_ts, \
             non_numeric, non_finite, partial) \
             SELECT ?3, ?4, json_extract(?5, '$[' || json_extract(r.value, '$[29]') || ']'), \
             json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'), \
             json_extract(r.value, '$[2]'), {}, \
             json_extract(r.value, '$[24]'), json_extract(r.value, '$[25]'), \
             json_extract(r.value, '$[26]'), json_extract(r.value, '$[27]'), \
             json_extract(r.value, '$[28]') \
             FROM json_each(?6) AS r WHERE {} \
             ON CONFLICT (owner, site, point, resolution, bucket_start) DO UPDATE SET \
             count = excluded.count, min = excluded.min, max = excluded.max, \
             sum = excluded.sum, mean = excluded.mean, stddev = excluded.stddev, \
             first_ts = excluded.first_ts, first_value = excluded.first_value, \
             last_ts = excluded.last_ts, last_value = excluded.last_value, \
             non_numeric = excluded.non_numeric, non_finite = excluded.non_finite, \
             partial = excluded.partial \
             WHERE excluded.partial = 0 OR timeseries_agg.partial = 1",
            floats.join(", "),
            held!()
        )
    })
}

/// Where a window's aggregates go: the owner's rows of the job's points.
#[derive(Debug, Clone, Copy)]
pub struct AggTarget<'a> {
    /// Owning tenant.
    pub owner: &'a str,
    /// Site.
    pub site: &'a str,
    /// The job's points; a row names its point by index.
    pub points: &'a [PointName],
    /// The writing job's range: buckets it covers only in part are partial.
    pub range: (EpochMs, EpochMs),
}

/// Aggregate rows per upsert statement: about 250 bytes of JSON each, so
/// a statement's one parameter stays well under D1's 2 MB per value.
pub const AGG_ROWS_PER_STATEMENT: usize = 4_000;

/// Aggregate rows of a window (each with its point's index) in one
/// set-based upsert: the rows travel as one JSON parameter (`json_each`),
/// at most [`AGG_ROWS_PER_STATEMENT`] of them, so the statement count
/// grows with the window's rows by one per 4,000; floats travel as exact
/// integer parts ([`exact_parts`]), never as decimal text. Fenced by the
/// holder. A partial bucket (the job covered it only in part) never
/// replaces a complete one; a complete one replaces anything. Rewriting the
/// same rows leaves the table unchanged.
pub fn upsert_aggregates(
    holder: Holder<'_>,
    to: AggTarget<'_>,
    rows: &[(u32, &Aggregate)],
) -> Result<Statement, crate::error::Error> {
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|(p, a)| {
            let mut row = agg_json(a, to.range);
            if let serde_json::Value::Array(v) = &mut row {
                v.push((*p).into());
            }
            row
        })
        .collect();
    let json =
        serde_json::to_string(&json).map_err(|e| crate::error::Error::Codec(e.to_string()))?;
    let names =
        serde_json::to_string(to.points).map_err(|e| crate::error::Error::Codec(e.to_string()))?;
    let mut params = holder.params();
    params.extend([to.owner.into(), to.site.into(), names.into(), json.into()]);
    Ok(Statement {
        sql: Cow::Borrowed(upsert_aggregates_sql()),
        params,
    })
}

/// Records a finished window, fenced by the holder: its samples, its
/// parts' bytes (the object part, and the Parquet part or 0), and each
/// point's sample count and block size (JSON arrays in the job's point
/// order); the progress columns follow by trigger (`schema/0005`).
/// Changes 0 rows when the holder lost the job (or the chunk is already
/// recorded).
pub fn insert_chunk(
    holder: Holder<'_>,
    idx: u32,
    (bytes, parquet_bytes): (u64, u64),
    (point_samples, point_bytes): (&[u64], &[u64]),
) -> Statement {
    let mut params = holder.params();
    params.extend([
        i64::from(idx).into(),
        (point_samples.iter().sum::<u64>() as i64).into(),
        (bytes as i64).into(),
        serde_json::json!(point_samples).to_string().into(),
        (parquet_bytes as i64).into(),
        serde_json::json!(point_bytes).to_string().into(),
    ]);
    stmt(
        concat!(
            "INSERT OR IGNORE INTO job_chunks \
             (job_id, idx, samples, bytes, point_samples, parquet_bytes, point_bytes) \
             SELECT ?1, ?3, ?4, ?5, ?6, ?7, ?8 WHERE ",
            held!()
        ),
        params,
    )
}

/// Adds a window's upstream traffic and where its samples came from to
/// the job's counters, fenced.
pub fn add_traffic(
    holder: Holder<'_>,
    (bytes, requests): (u64, u64),
    from: &crate::job::Sources,
    now: EpochMs,
) -> Statement {
    let mut params = holder.params();
    params.extend([
        now.into(),
        (bytes as i64).into(),
        (requests as i64).into(),
        from.store_samples.into(),
        from.store_windows.into(),
        from.upstream_samples.into(),
        from.upstream_windows.into(),
    ]);
    stmt(
        "UPDATE queue_jobs SET progress_at = ?3, upstream_bytes = upstream_bytes + ?4, \
         upstream_requests = upstream_requests + ?5, store_samples = store_samples + ?6, \
         store_windows = store_windows + ?7, upstream_samples = upstream_samples + ?8, \
         upstream_windows = upstream_windows + ?9 \
         WHERE id = ?1 AND status = 'processing' AND lease_token = ?2",
        params,
    )
}

/// Records the plan the holder chose (with the site walk's page size and
/// the site's size) and the traffic it took to choose. Fenced, and only
/// while no plan is recorded: a plan, once chosen, stays.
pub fn set_plan(
    holder: Holder<'_>,
    plan: crate::plan::Plan,
    page_size: u32,
    site_points: u64,
    traffic: (u64, u64),
) -> Statement {
    let mut params = holder.params();
    params.extend([
        plan.as_str().into(),
        i64::from(page_size).into(),
        (site_points as i64).into(),
        (traffic.0 as i64).into(),
        (traffic.1 as i64).into(),
    ]);
    stmt(
        "UPDATE queue_jobs SET plan = ?3, page_size = ?4, site_points = ?5, \
         upstream_bytes = upstream_bytes + ?6, upstream_requests = upstream_requests + ?7 \
         WHERE id = ?1 AND status = 'processing' AND lease_token = ?2 AND plan IS NULL",
        params,
    )
}

/// A site's cached `configured_points` summary, if fetched since `fresh_since`.
pub fn select_site_info(site: &str, fresh_since: EpochMs) -> Statement {
    stmt(
        "SELECT points, enabled, max_name_bytes FROM upstream_sites \
         WHERE site = ?1 AND fetched_at >= ?2",
        vec![site.into(), fresh_since.into()],
    )
}

/// The cached names of a site's collecting points, if any.
pub fn select_site_names(site: &str) -> Statement {
    stmt(
        "SELECT names FROM upstream_sites WHERE site = ?1 AND names IS NOT NULL",
        vec![site.into()],
    )
}

/// Caches a site's `configured_points` summary, with the names of its
/// collecting points (a JSON array; a site walk keeps them all for the
/// sample store).
pub fn upsert_site_info(
    site: &str,
    info: &crate::plan::SiteInfo,
    names_json: Option<&str>,
    now: EpochMs,
) -> Statement {
    stmt(
        "INSERT INTO upstream_sites (site, points, enabled, max_name_bytes, fetched_at, names) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (site) DO UPDATE SET \
         points = excluded.points, enabled = excluded.enabled, \
         max_name_bytes = excluded.max_name_bytes, fetched_at = excluded.fetched_at, \
         names = excluded.names",
        vec![
            site.into(),
            (info.points as i64).into(),
            (info.enabled as i64).into(),
            (info.max_name_bytes as i64).into(),
            now.into(),
            names_json.into(),
        ],
    )
}

/// Drops the checkpoints of chunks whose parts are missing or unreadable,
/// so they run again (progress follows by trigger). Fenced by the holder.
pub fn drop_chunks(holder: Holder<'_>, idxs: &[u32]) -> Statement {
    let mut params = holder.params();
    params.push(serde_json::json!(idxs).to_string().into());
    stmt(
        concat!(
            "DELETE FROM job_chunks WHERE job_id = ?1 \
             AND idx IN (SELECT value FROM json_each(?3)) AND ",
            held!()
        ),
        params,
    )
}

/// Renews the holder's lease (the heartbeat while pages are fetched).
/// Changes 0 rows when the holder lost the job.
pub fn renew_lease(holder: Holder<'_>, now: EpochMs, lease_until: EpochMs) -> Statement {
    let mut params = holder.params();
    params.extend([lease_until.into(), now.into()]);
    stmt(
        "UPDATE queue_jobs SET lease_until = ?3, updated_at = ?4 \
         WHERE id = ?1 AND status = 'processing' AND lease_token = ?2",
        params,
    )
}

/// Ends the holder's lease now, so a continuation message can claim at
/// once — and, should that message be lost, the reaper sees a lapsed lease
/// and resends. `next_at` is when the continuation is due.
pub fn release_lease(holder: Holder<'_>, now: EpochMs, next_at: EpochMs) -> Statement {
    let mut params = holder.params();
    params.extend([now.into(), next_at.into()]);
    stmt(
        "UPDATE queue_jobs SET lease_until = ?3, updated_at = ?3, next_attempt_at = ?4 \
         WHERE id = ?1 AND status = 'processing' AND lease_token = ?2",
        params,
    )
}

/// `processing` → `completed`, with the result object (and its Parquet
/// file, when there is one); fenced by the holder.
pub fn complete_job(
    holder: Holder<'_>,
    now: EpochMs,
    result: (&str, u64, &str, u64),
    parquet: Option<(&str, u64)>,
) -> Statement {
    let (result_key, result_bytes, result_sha256, header_bytes) = result;
    let mut params = holder.params();
    params.extend([
        now.into(),
        result_key.into(),
        (result_bytes as i64).into(),
        result_sha256.into(),
        parquet.map(|p| p.0).into(),
        parquet.map(|p| p.1 as i64).into(),
        (header_bytes as i64).into(),
    ]);
    // The points no window found a sample of, from the checkpoints.
    stmt(
        "UPDATE queue_jobs SET status = 'completed', finished_at = ?3, updated_at = ?3, \
         lease_until = NULL, lease_token = NULL, last_error = NULL, result_key = ?4, \
         result_bytes = ?5, result_sha256 = ?6, parquet_key = ?7, parquet_bytes = ?8, \
         result_header_bytes = ?9, \
         points_without_data = (SELECT json_group_array(p.value) FROM json_each(queue_jobs.points) p \
           WHERE COALESCE((SELECT SUM(json_extract(c.point_samples, '$[' || p.key || ']')) \
                           FROM job_chunks c WHERE c.job_id = ?1), 0) = 0) \
         WHERE id = ?1 AND status = 'processing' AND lease_token = ?2",
        params,
    )
}

/// `processing` → `failed` after a transient failure, fenced by the holder
/// (a message that never held the job cannot fail it); the retry due at
/// `next_at` will claim it. A delivery without progress (`stalled`) adds
/// to the job's stall count; progress already reset it (trigger).
pub fn fail_job_transient(
    holder: Holder<'_>,
    now: EpochMs,
    error: &str,
    next_at: EpochMs,
    stalled: bool,
) -> Statement {
    let mut params = holder.params();
    params.extend([
        error.into(),
        now.into(),
        next_at.into(),
        i64::from(stalled).into(),
    ]);
    stmt(
        "UPDATE queue_jobs SET status = 'failed', last_error = ?3, lease_until = NULL, \
         lease_token = NULL, updated_at = ?4, next_attempt_at = ?5, stalls = stalls + ?6 \
         WHERE id = ?1 AND status = 'processing' AND lease_token = ?2",
        params,
    )
}

/// Any non-terminal status → `failed_permanent`, keeping the previous error
/// beside the final reason. With a `token` (the consumer's own permanent
/// failure) only while that holder still holds the job; without one (the
/// dead-letter queue, the reaper) from any non-terminal status. Returns the
/// row when this call made the transition, so only one caller alerts.
pub fn fail_job_permanent(id: &JobId, now: EpochMs, error: &str, token: Option<&str>) -> Statement {
    stmt(
        "UPDATE queue_jobs SET status = 'failed_permanent', \
         last_error = CASE WHEN last_error IS NULL OR last_error = ?1 THEN ?1 \
                      ELSE ?1 || ' (last error: ' || last_error || ')' END, \
         finished_at = ?2, updated_at = ?2, lease_until = NULL, lease_token = NULL \
         WHERE id = ?3 AND status IN ('queued', 'processing', 'failed') \
         AND (?4 IS NULL OR (status = 'processing' AND lease_token = ?4)) RETURNING *",
        vec![error.into(), now.into(), id.as_str().into(), token.into()],
    )
}

/// Records that the webhook refused a dead job's alert (a 4xx): a permanent
/// alert failure, never retried.
pub fn mark_alert_refused(id: &JobId, error: &str) -> Statement {
    stmt(
        "UPDATE queue_jobs SET alert_error = ?1 \
         WHERE id = ?2 AND status = 'failed_permanent' AND alerted_at IS NULL",
        vec![error.into(), id.as_str().into()],
    )
}

/// Marks the dead-letter alert as sent, once.
pub fn mark_alerted(id: &JobId, now: EpochMs) -> Statement {
    stmt(
        "UPDATE queue_jobs SET alerted_at = ?1, last_alert_at = ?1 \
         WHERE id = ?2 AND status = 'failed_permanent' AND alerted_at IS NULL",
        vec![now.into(), id.as_str().into()],
    )
}

/// Marks a dead job handled without an alert (one was sent for it within
/// the hour): `alerted_at` only, so the hour still counts from the last
/// alert sent.
pub fn mark_alert_spared(id: &JobId, now: EpochMs) -> Statement {
    stmt(
        "UPDATE queue_jobs SET alerted_at = ?1 \
         WHERE id = ?2 AND status = 'failed_permanent' AND alerted_at IS NULL",
        vec![now.into(), id.as_str().into()],
    )
}

/// A job's history, oldest first.
pub fn select_events(id: &JobId) -> Statement {
    stmt(
        "SELECT at, status, attempt, detail FROM job_events WHERE job_id = ? ORDER BY at, rowid",
        vec![id.as_str().into()],
    )
}

/// Reads one job, if any.
pub async fn get_job<D: SqlDb>(db: &D, q: Statement) -> Result<Option<Job>, StoreError> {
    Ok(decode::<Job>(db.query(&q).await?)?.into_iter().next())
}

/// An owner's aggregates of one point and resolution in `[from, to)`, at
/// most `limit` rows: one primary-key range scan. `partial` is 0 or 1.
pub fn select_aggregates(
    owner: &str,
    site: &str,
    point: &str,
    resolution: &str,
    from: EpochMs,
    to: EpochMs,
    limit: i64,
) -> Statement {
    stmt(
        "SELECT bucket_start, count, min, max, sum, mean, stddev, first_ts, first_value, \
         last_ts, last_value, non_numeric, non_finite, partial FROM timeseries_agg \
         WHERE owner = ? AND site = ? AND point = ? AND resolution = ? AND bucket_start >= ? \
         AND bucket_start < ? ORDER BY bucket_start LIMIT ?",
        vec![
            owner.into(),
            site.into(),
            point.into(),
            resolution.into(),
            from.into(),
            to.into(),
            limit.into(),
        ],
    )
}

/// Jobs whose next delivery is overdue, oldest first: `processing` with a
/// lease lapsed for over 30 s (a handed-over lease lapses at once, and
/// its continuation normally claims it within a second or two); `failed`
/// whose scheduled retry is over `grace` late; `queued` never accepted by
/// the queue (the outbox) for over `grace`; and `queued` that the queue
/// accepted but that has waited `backlog` (a deep backlog is not a loss,
/// so that wait is long). Each is a range scan of `(status, …)` indexes.
pub fn select_overdue(now: EpochMs, grace: i64, backlog: i64, limit: i64) -> Statement {
    stmt(
        "SELECT * FROM queue_jobs WHERE \
         (status = 'processing' AND lease_until IS NOT NULL AND lease_until < ?1 - 30000) \
         OR (status = 'failed' AND COALESCE(next_attempt_at, updated_at) < ?1 - ?2) \
         OR (status = 'queued' AND ((sent_at IS NULL AND updated_at < ?1 - ?2) \
             OR updated_at < ?1 - ?3)) \
         ORDER BY updated_at LIMIT ?4",
        vec![now.into(), grace.into(), backlog.into(), limit.into()],
    )
}

/// Dead jobs still owed their alert (it failed transiently), untouched
/// since `idle_before`, at most `limit`: a selection of its own, so a
/// webhook that keeps failing cannot crowd out overdue jobs.
pub fn select_unalerted(idle_before: EpochMs, limit: i64) -> Statement {
    stmt(
        "SELECT * FROM queue_jobs WHERE status = 'failed_permanent' AND alerted_at IS NULL \
         AND alert_error IS NULL AND updated_at < ?1 \
         AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.job_id = queue_jobs.id \
                         AND n.sent_at IS NULL AND n.error IS NULL) \
         ORDER BY updated_at LIMIT ?2",
        vec![idle_before.into(), limit.into()],
    )
}

/// The ids of the oldest terminal jobs finished before `before` (dead
/// ones only once alerted, or once their alert was refused), at most
/// `limit`: one range scan of the `(finished_at, id)` index.
pub fn select_expired(before: EpochMs, limit: i64) -> Statement {
    stmt(
        "SELECT id FROM queue_jobs WHERE finished_at IS NOT NULL AND finished_at < ?1 \
         AND (status IN ('completed', 'cancelled') \
              OR (status = 'failed_permanent' \
                  AND (alerted_at IS NOT NULL OR alert_error IS NOT NULL))) \
         ORDER BY finished_at, id LIMIT ?2",
        vec![before.into(), limit.into()],
    )
}

/// Deletes these jobs with their checkpoints and events: one batch,
/// children first. The ids travel as one JSON parameter. (The number
/// purged is the number of ids: D1's change counts include the rows its
/// triggers touch.)
pub fn purge_jobs(ids: &[String]) -> Vec<Statement> {
    let ids = serde_json::json!(ids).to_string();
    let one = |sql: &'static str| stmt(sql, vec![ids.clone().into()]);
    vec![
        one("DELETE FROM job_chunks WHERE job_id IN (SELECT value FROM json_each(?1))"),
        one("DELETE FROM job_events WHERE job_id IN (SELECT value FROM json_each(?1))"),
        one("DELETE FROM queue_jobs WHERE id IN (SELECT value FROM json_each(?1))"),
    ]
}

/// Marks a job as just resent, compare-and-set on the row version the
/// reaper read, so two reapers never both resend it.
pub fn touch_for_resend(id: &JobId, seen_updated_at: EpochMs, now: EpochMs) -> Statement {
    stmt(
        "UPDATE queue_jobs SET updated_at = ?, resends = resends + 1 WHERE id = ? AND updated_at = ? \
         AND status IN ('queued', 'processing', 'failed')",
        vec![now.into(), id.as_str().into(), seen_updated_at.into()],
    )
}

/// An owner's jobs, newest first, optionally of one status, strictly after
/// the page cursor `(before_created, before_id)` in `(created_at, id)`
/// descending order, so jobs created in the same millisecond are neither
/// skipped nor repeated: one index range scan.
pub fn select_owner_jobs(
    owner: &str,
    status: Option<JobStatus>,
    before: (EpochMs, &str),
    limit: i64,
    sites: Option<&[String]>,
) -> Statement {
    // Two shapes, so each uses its index: `(owner, status, created_at)`
    // with a status, `(owner, created_at)` without. `sites` (a token's
    // grant) keeps only those sites' jobs.
    let sql = match status {
        Some(_) => {
            "SELECT * FROM queue_jobs WHERE owner = ?1 AND status = ?3 \
             AND (created_at < ?2 OR (created_at = ?2 AND id < ?5)) \
             AND (?6 IS NULL OR site IN (SELECT value FROM json_each(?6))) \
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        }
        None => {
            "SELECT * FROM queue_jobs WHERE owner = ?1 AND ?3 IS NULL \
             AND (created_at < ?2 OR (created_at = ?2 AND id < ?5)) \
             AND (?6 IS NULL OR site IN (SELECT value FROM json_each(?6))) \
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        }
    };
    let sites = sites.map(|s| serde_json::Value::from(s).to_string());
    stmt(
        sql,
        vec![
            owner.into(),
            before.0.into(),
            status.map(JobStatus::as_str).into(),
            limit.into(),
            before.1.into(),
            sites.into(),
        ],
    )
}

/// Cancels an owner's live job: any non-terminal status → `cancelled`.
/// Returns the row when this call made the transition.
pub fn cancel_job(id: &JobId, owner: &str, now: EpochMs) -> Statement {
    stmt(
        "UPDATE queue_jobs SET status = 'cancelled', finished_at = ?1, updated_at = ?1, \
         lease_until = NULL WHERE id = ?2 AND owner = ?3 \
         AND status IN ('queued', 'processing', 'failed') RETURNING *",
        vec![now.into(), id.as_str().into(), owner.into()],
    )
}

/// What a retry must stay within: the owner's active jobs, the day's
/// quota (the job's units count as a new job's would), and the minute's
/// retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryLimits {
    /// Unfinished jobs per owner (0: none).
    pub max_active: i64,
    /// The day's quota.
    pub quota: Quota,
    /// The job's quota units.
    pub units: i64,
    /// Retries per owner and minute (0: none).
    pub per_minute: i64,
}

/// `failed_permanent` → `queued` for its owner's retry, fenced to that
/// status, and only within [`RetryLimits`]: the checks and the update are
/// one statement, so concurrent retries cannot overshoot. `OR IGNORE`: an
/// identical live job holds the live key, and this changes nothing.
pub fn requeue_dead_job(id: &JobId, owner: &str, now: EpochMs, l: RetryLimits) -> Statement {
    stmt(
        "UPDATE OR IGNORE queue_jobs SET status = 'queued', finished_at = NULL, \
         alerted_at = NULL, alert_error = NULL, lease_until = NULL, sent_at = NULL, \
         updated_at = ?1, resends = 0, stalls = 0, next_attempt_at = NULL, live_key = fingerprint \
         WHERE id = ?2 AND owner = ?3 AND status = 'failed_permanent' \
         AND (?4 <= 0 OR (SELECT COUNT(*) FROM (SELECT 1 FROM queue_jobs WHERE owner = ?3 \
              AND status IN ('queued', 'processing', 'failed') LIMIT ?4)) < ?4) \
         AND (?5 <= 0 OR COALESCE((SELECT chunks FROM owner_usage WHERE owner = ?3 AND day = ?6), 0) \
              + ?7 <= ?5) \
         AND (?8 <= 0 OR COALESCE((SELECT n FROM owner_retries WHERE owner = ?3 AND minute = ?9), 0) \
              < ?8)",
        vec![
            now.into(),
            id.as_str().into(),
            owner.into(),
            l.max_active.into(),
            l.quota.chunks_per_day.into(),
            l.quota.day.into(),
            l.units.into(),
            l.per_minute.into(),
            now.ms().div_euclid(60_000).into(),
        ],
    )
}

/// Counts a retry just made (batched after [`requeue_dead_job`], so only
/// if it requeued the job at `now`): its units against the day's quota,
/// and one against the minute's retries.
pub fn count_retry(id: &JobId, owner: &str, now: EpochMs, l: RetryLimits) -> [Statement; 2] {
    let requeued =
        "EXISTS (SELECT 1 FROM queue_jobs WHERE id = ?4 AND status = 'queued' AND updated_at = ?5)";
    let params = |key: i64, n: i64| -> Vec<SqlValue> {
        vec![
            owner.into(),
            key.into(),
            n.into(),
            id.as_str().into(),
            now.into(),
        ]
    };
    [
        Statement {
            sql: format!(
                "INSERT INTO owner_usage (owner, day, chunks) SELECT ?1, ?2, ?3 WHERE {requeued} \
                 ON CONFLICT (owner, day) DO UPDATE SET chunks = chunks + excluded.chunks"
            )
            .into(),
            params: params(l.quota.day, l.units),
        },
        Statement {
            sql: format!(
                "INSERT INTO owner_retries (owner, minute, n) SELECT ?1, ?2, ?3 WHERE {requeued} \
                 ON CONFLICT (owner, minute) DO UPDATE SET n = n + excluded.n"
            )
            .into(),
            params: params(now.ms().div_euclid(60_000), 1),
        },
    ]
}

/// Forgets the retry counts of minutes an hour or more before `now`.
pub fn purge_retries(now: EpochMs) -> Statement {
    stmt(
        "DELETE FROM owner_retries WHERE minute < ?1",
        vec![(now.ms().div_euclid(60_000) - 60).into()],
    )
}

/// An owner's retries in the minute of `now`.
pub fn select_retries(owner: &str, now: EpochMs) -> Statement {
    stmt(
        "SELECT COALESCE((SELECT n FROM owner_retries WHERE owner = ?1 AND minute = ?2), 0) AS n",
        vec![owner.into(), now.ms().div_euclid(60_000).into()],
    )
}

/// Everything `GET /v1/stats` shows, in one query, none of it a scan of
/// the owner's history: the counts come from `owner_counts` (kept by
/// triggers), the oldest queued job from the `(owner, status, created_at)`
/// index, and the windowed figures (last hour, last day, and the nearest-
/// rank p50/p95 of the day's durations) from range scans of the
/// `(owner, status, finished_at)` index over the window.
pub fn select_stats(owner: &str, now: EpochMs) -> Statement {
    stmt(
        "WITH c AS (SELECT status, n FROM owner_counts WHERE owner = ?1), \
         d AS (SELECT finished_at - started_at AS ms FROM queue_jobs \
               WHERE owner = ?1 AND status = 'completed' AND finished_at >= ?2 - 86400000 \
               AND started_at IS NOT NULL), \
         dn AS (SELECT COUNT(*) AS n FROM d) \
         SELECT \
         (SELECT n FROM c WHERE status = 'queued') AS queued, \
         (SELECT n FROM c WHERE status = 'processing') AS processing, \
         (SELECT n FROM c WHERE status = 'completed') AS completed, \
         (SELECT n FROM c WHERE status = 'failed') AS failed, \
         (SELECT n FROM c WHERE status = 'failed_permanent') AS failed_permanent, \
         (SELECT n FROM c WHERE status = 'cancelled') AS cancelled, \
         (SELECT MIN(created_at) FROM queue_jobs WHERE owner = ?1 AND status = 'queued') \
           AS oldest_queued_at, \
         (SELECT COUNT(*) FROM queue_jobs WHERE owner = ?1 AND status = 'completed' \
           AND finished_at >= ?2 - 3600000) AS completed_last_hour, \
         (SELECT COALESCE(SUM(sample_count), 0) FROM queue_jobs WHERE owner = ?1 \
           AND status = 'completed' AND finished_at >= ?2 - 3600000) AS samples_last_hour, \
         (SELECT COUNT(*) FROM queue_jobs WHERE owner = ?1 AND status = 'failed_permanent' \
           AND finished_at >= ?2 - 3600000) AS failed_last_hour, \
         (SELECT COUNT(*) FROM queue_jobs WHERE owner = ?1 AND status = 'failed_permanent' \
           AND finished_at >= ?2 - 86400000) AS dead_last_day, \
         (SELECT COUNT(*) FROM queue_jobs WHERE owner = ?1 AND status = 'failed_permanent' \
           AND alert_error IS NOT NULL) AS alerts_refused, \
         (SELECT n FROM dn) AS durations, \
         (SELECT ms FROM d ORDER BY ms LIMIT 1 \
           OFFSET MAX(((SELECT n FROM dn) * 50 + 99) / 100 - 1, 0)) AS p50, \
         (SELECT ms FROM d ORDER BY ms LIMIT 1 \
           OFFSET MAX(((SELECT n FROM dn) * 95 + 99) / 100 - 1, 0)) AS p95, \
         (SELECT COALESCE(SUM(invocations), 0) FROM invocation_maxima WHERE hour >= ?2 / 3600000 - 23) \
           AS inv_count, \
         (SELECT MAX(statements) FROM invocation_maxima WHERE hour >= ?2 / 3600000 - 23) AS inv_statements, \
         (SELECT MAX(subrequests) FROM invocation_maxima WHERE hour >= ?2 / 3600000 - 23) AS inv_subrequests, \
         (SELECT MAX(memory_bytes) FROM invocation_maxima WHERE hour >= ?2 / 3600000 - 23) AS inv_memory, \
         (SELECT MAX(wall_ms) FROM invocation_maxima WHERE hour >= ?2 / 3600000 - 23) AS inv_wall_ms, \
         (SELECT COALESCE(SUM(warnings), 0) FROM invocation_maxima WHERE hour >= ?2 / 3600000 - 23) \
           AS inv_warnings",
        vec![owner.into(), now.into()],
    )
}

/// The upstream circuit's row.
pub fn select_circuit() -> Statement {
    stmt("SELECT * FROM upstream_circuit WHERE id = 'ace'", vec![])
}

/// Takes the half-open probe once the cool-down has passed (or a probe's
/// own time ran out): 1 row changed means this invocation is the probe.
pub fn circuit_take_probe(now: EpochMs, probe_until: EpochMs) -> Statement {
    stmt(
        "UPDATE upstream_circuit SET state = 'half_open', probe_until = ?2, changed_at = ?1 \
         WHERE id = 'ace' AND ((state = 'open' AND open_until <= ?1) \
                               OR (state = 'half_open' AND probe_until <= ?1))",
        vec![now.into(), probe_until.into()],
    )
}

/// One message's upstream failure, in a closed circuit: counted, and the
/// run's start noted; the second statement opens the circuit when the run
/// holds `threshold` failures spread over at least `spread_ms` (from one
/// site or many: a success anywhere ends the run, so a site failing while
/// others answer never opens it), or at once for a missing credential
/// (`force`). Its change count says whether this call opened it.
pub fn circuit_failure(
    (now, open_until): (EpochMs, EpochMs),
    (threshold, spread_ms): (i64, i64),
    reason: &str,
    site: &str,
    force: bool,
) -> Vec<Statement> {
    vec![
        stmt(
            "UPDATE upstream_circuit SET failures = failures + 1, last_site = ?1, \
             first_failure_at = CASE WHEN failures = 0 OR first_failure_at IS NULL \
                 THEN ?2 ELSE first_failure_at END \
             WHERE id = 'ace' AND state = 'closed'",
            vec![site.into(), now.into()],
        ),
        stmt(
            "UPDATE upstream_circuit SET state = 'open', open_until = ?2, reason = ?3, \
             changed_at = ?1, probe_until = NULL \
             WHERE id = 'ace' AND state = 'closed' \
             AND ((failures >= ?4 AND ?1 - COALESCE(first_failure_at, ?1) >= ?6) OR ?5 = 1)",
            vec![
                now.into(),
                open_until.into(),
                reason.into(),
                threshold.into(),
                i64::from(force).into(),
                spread_ms.into(),
            ],
        ),
    ]
}

/// A failed probe: half-open goes back to open for another cool-down
/// (no new alert: the outage goes on).
pub fn circuit_reopen(now: EpochMs, open_until: EpochMs, reason: &str) -> Statement {
    stmt(
        "UPDATE upstream_circuit SET state = 'open', open_until = ?2, reason = ?3, \
         changed_at = ?1, probe_until = NULL WHERE id = 'ace' AND state = 'half_open'",
        vec![now.into(), open_until.into(), reason.into()],
    )
}

/// A page came back: the failure count resets, and an open or half-open
/// circuit closes. The second statement's change count says whether this
/// call closed it (that caller alerts).
pub fn circuit_success(now: EpochMs) -> Vec<Statement> {
    vec![
        stmt(
            "UPDATE upstream_circuit SET failures = 0, multi_site = 0, first_failure_at = NULL \
             WHERE id = 'ace' AND state = 'closed' AND failures > 0",
            vec![],
        ),
        stmt(
            "UPDATE upstream_circuit SET state = 'closed', failures = 0, multi_site = 0, \
             first_failure_at = NULL, open_until = NULL, \
             probe_until = NULL, changed_at = ?1 WHERE id = 'ace' AND state != 'closed'",
            vec![now.into()],
        ),
    ]
}

/// Marks a job as waiting for the upstream until `until` (its message was
/// delayed because the circuit is open). Only a job no one holds.
pub fn mark_waiting(id: &JobId, until: EpochMs, what: &str) -> Statement {
    stmt(
        "UPDATE queue_jobs SET waiting_until = ?1, waiting_for = ?2, next_attempt_at = ?1 \
         WHERE id = ?3 AND status IN ('queued', 'failed')",
        vec![until.into(), what.into(), id.as_str().into()],
    )
}

/// Folds one invocation's usage into its hour's maxima.
pub fn record_usage(hour: i64, u: &crate::budget::Usage, warned: bool) -> Statement {
    stmt(
        "INSERT INTO invocation_maxima (hour, invocations, statements, subrequests, \
         memory_bytes, wall_ms, warnings) VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (hour) DO UPDATE SET invocations = invocations + 1, \
         statements = MAX(statements, excluded.statements), \
         subrequests = MAX(subrequests, excluded.subrequests), \
         memory_bytes = MAX(memory_bytes, excluded.memory_bytes), \
         wall_ms = MAX(wall_ms, excluded.wall_ms), warnings = warnings + excluded.warnings",
        vec![
            hour.into(),
            (u.statements as i64).into(),
            (u.subrequests as i64).into(),
            (u.memory_bytes as i64).into(),
            (u.wall_ms as i64).into(),
            i64::from(warned).into(),
        ],
    )
}

/// Takes the hour's one "limits" alert once its warnings reach `repeats`:
/// 1 row changed means this caller alerts.
pub fn claim_limits_alert(hour: i64, repeats: i64) -> Statement {
    stmt(
        "UPDATE invocation_maxima SET alerted = 1 \
         WHERE hour = ?1 AND warnings >= ?2 AND alerted = 0",
        vec![hour.into(), repeats.into()],
    )
}

/// Pauses a site (or updates the reason of its pause; the time it began
/// stays).
pub fn pause_site(site: &str, now: EpochMs, by: &str, reason: &str) -> Statement {
    stmt(
        "INSERT INTO site_pauses (site, paused_at, paused_by, reason) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (site) DO UPDATE SET paused_by = excluded.paused_by, reason = excluded.reason",
        vec![site.into(), now.into(), by.into(), reason.into()],
    )
}

/// Resumes a site; changes 0 rows if it was not paused.
pub fn resume_site(site: &str) -> Statement {
    stmt("DELETE FROM site_pauses WHERE site = ?1", vec![site.into()])
}

/// One site's pause, or none.
pub fn select_pause(site: &str) -> Statement {
    stmt(
        "SELECT site, paused_at, paused_by, reason FROM site_pauses WHERE site = ?1",
        vec![site.into()],
    )
}

/// Every paused site, oldest pause first (at most 1,000).
pub fn select_pauses() -> Statement {
    stmt(
        "SELECT site, paused_at, paused_by, reason FROM site_pauses ORDER BY paused_at LIMIT 1000",
        vec![],
    )
}

/// Dead jobs of every owner that an operator's filter matches, oldest
/// death first: the site, a piece of the last error, and when they died
/// (`[from, to)`), each optional.
pub fn select_dead_matching(
    site: Option<&str>,
    error: Option<&str>,
    (from, to): (Option<EpochMs>, Option<EpochMs>),
    limit: i64,
) -> Statement {
    stmt(
        "SELECT * FROM queue_jobs WHERE status = 'failed_permanent' \
         AND (?1 IS NULL OR site = ?1) \
         AND (?2 IS NULL OR instr(COALESCE(last_error, ''), ?2) > 0) \
         AND (?3 IS NULL OR finished_at >= ?3) AND (?4 IS NULL OR finished_at < ?4) \
         ORDER BY finished_at, id LIMIT ?5",
        vec![
            site.into(),
            error.into(),
            from.into(),
            to.into(),
            limit.into(),
        ],
    )
}

/// A job held back by a paused site: time waiting for an operator does not
/// count towards `MAX_UPSTREAM_WAIT_MS`, so its clock restarts. Only a
/// job no one holds.
pub fn restart_wait_clock(id: &JobId, now: EpochMs) -> Statement {
    stmt(
        "UPDATE queue_jobs SET progress_at = ?1 WHERE id = ?2 AND status IN ('queued', 'failed')",
        vec![now.into(), id.as_str().into()],
    )
}

/// Jobs whose callback is due at `now`, oldest first (at most `limit`).
pub fn select_due_callbacks(now: EpochMs, limit: i64) -> Statement {
    stmt(
        "SELECT * FROM queue_jobs WHERE callback_state = 'pending' AND callback_next_at <= ?1 \
         ORDER BY callback_next_at LIMIT ?2",
        vec![now.into(), limit.into()],
    )
}

/// Takes a due callback for one delivery: compare-and-set on its due time,
/// moved `hold_ms` on, so two senders never send it at once. 0 rows: not
/// due, or someone else took it.
pub fn take_callback(id: &JobId, due: EpochMs, now: EpochMs, hold_ms: i64) -> Statement {
    stmt(
        "UPDATE queue_jobs SET callback_next_at = ?3 \
         WHERE id = ?1 AND callback_state = 'pending' AND callback_next_at = ?2 \
         AND callback_next_at <= ?4",
        vec![
            id.as_str().into(),
            due.into(),
            (now + hold_ms).into(),
            now.into(),
        ],
    )
}

/// Records a callback delivery: `sent`, `failed` for good, or `pending`
/// again at `next_at` after a transient failure.
pub fn callback_outcome(
    id: &JobId,
    state: &str,
    next_at: Option<EpochMs>,
    error: Option<&str>,
) -> Statement {
    stmt(
        "UPDATE queue_jobs SET callback_state = ?2, callback_next_at = ?3, callback_error = ?4, \
         callback_attempts = callback_attempts + 1 \
         WHERE id = ?1 AND callback_state = 'pending'",
        vec![
            id.as_str().into(),
            state.into(),
            next_at.into(),
            error.into(),
        ],
    )
}

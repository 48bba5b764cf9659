//! `POST /v1/jobs`: validate, deduplicate, record, enqueue.

use crate::auth::Grant;
use crate::chunk;
use crate::config::Config;
use crate::domain::DAY_MS;
use crate::domain::{check_callback_url, EpochMs, JobId, JobRequest, PointName};
use crate::error::Error;
use crate::fingerprint::fingerprint;
use crate::job::{Job, JobStatus};
use crate::ports::{BlobStore, Clock, JobMessage, JobQueue, Platform, SqlDb};
use crate::service::Deps;
use crate::store::{self, NewJob};

/// What a submission led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A new job was recorded (202). `enqueued` is false when the queue send
    /// failed: the row stays `queued` and the reaper sends it (outbox).
    Created {
        /// The job.
        job: Job,
        /// Whether the queue accepted the message now.
        enqueued: bool,
    },
    /// An identical live or fresh job of the same owner was returned (200).
    Existing(Job),
}

/// Submits a job: at most two D1 round trips (a lookup, then one batch),
/// three when a concurrent identical submit won the insert. Identical live
/// submissions of one owner share one job under any concurrency: the
/// insert is refused by a unique index, not by the lookup.
/// A completed job is reused only while its object is still in R2 (one
/// object HEAD, no extra D1 query). A site outside `grant` is a 403.
pub async fn submit<P: Platform>(
    deps: &Deps<'_, P>,
    owner: &str,
    grant: &Grant,
    body: &[u8],
) -> Result<Submitted, Error> {
    let Deps {
        db,
        blobs,
        queue,
        clock,
        cfg,
        ..
    } = *deps;
    let now = clock.now_ms();
    let mut req = JobRequest::parse(body, now, cfg.max_points)?;
    if let Some(url) = &req.callback_url {
        req.callback_url = Some(check_callback_url(url, &cfg.callback_allowed_origins)?);
    }
    // A site outside the token's grant is refused before anything is read.
    grant.check(req.site.as_str())?;
    let fp = fingerprint(&req);
    if !req.force {
        if let Some(job) = reusable(db, blobs, owner, &fp, now - cfg.freshness_ms).await? {
            return Ok(Submitted::Existing(job));
        }
    }
    let id = JobId::from_bytes(clock.random_bytes());
    let new = new_job(&req, &id, owner, &fp, cfg, now);
    let max_active = i64::try_from(cfg.max_active_jobs).unwrap_or(i64::MAX);
    let quota = store::Quota {
        chunks_per_day: i64::try_from(cfg.daily_chunk_quota).unwrap_or(i64::MAX),
        day: now.div_euclid(DAY_MS),
    };
    let changed = db
        .batch(&[
            store::insert_job(&new, max_active, quota),
            // Recorded only if the insert happened.
            store::insert_event_if(&id, now, JobStatus::Queued, 0, None),
            store::count_usage(&id, owner, quota.day, new.quota_units),
        ])
        .await?;
    // D1 counts rows changed by triggers too (`owner_counts`), so "inserted"
    // is "changed anything", not "changed exactly one".
    if changed.first().copied().unwrap_or(0) == 0 {
        return refused(db, owner, &fp, &new, quota, cfg.max_active_jobs).await;
    }
    let enqueued = queue
        .send(
            &JobMessage {
                job_id: id.clone(),
                hop: 0,
            },
            0,
        )
        .await
        .is_ok();
    // The row is what we just wrote; build it rather than read it back.
    let job = Job::queued(&new, req.points.clone());
    Ok(Submitted::Created { job, enqueued })
}

/// The row a parsed request becomes: its chunk plan, quota units and plan.
fn new_job<'a>(
    req: &'a JobRequest,
    id: &'a JobId,
    owner: &'a str,
    fp: &'a str,
    cfg: &Config,
    now: EpochMs,
) -> NewJob<'a> {
    let points: Vec<&str> = req.points.iter().map(PointName::as_str).collect();
    let (start, end) = (req.range.start(), req.range.end());
    let window_days = chunk::window_days(
        points.len(),
        cfg.upstream_sample_secs,
        cfg.window_max_samples,
    );
    NewJob {
        id,
        owner,
        site: &req.site,
        points_json: serde_json::to_string(&points).unwrap_or_else(|_| "[]".to_owned()),
        start_ms: start,
        end_ms: end,
        fingerprint: fp,
        chunks_total: chunk::plan(start, end, window_days).len() as i64,
        quota_units: chunk::quota_units(start, end, points.len()),
        window_days,
        plan_requested: req.plan.unwrap_or(cfg.upstream_plan),
        force: req.force,
        callback_url: req.callback_url.as_deref(),
        now,
    }
}

/// An identical job of the owner's that is live, or completed since
/// `fresh_since` with its object still in R2.
async fn reusable<D: SqlDb, B: BlobStore>(
    db: &D,
    blobs: &B,
    owner: &str,
    fp: &str,
    fresh_since: EpochMs,
) -> Result<Option<Job>, Error> {
    let q = store::select_reusable_job(owner, fp, fresh_since);
    let Some(job) = store::get_job(db, q).await? else {
        return Ok(None);
    };
    let object_gone = match (&job.status, &job.result_key) {
        (JobStatus::Completed, Some(key)) => blobs.head(key).await?.is_none(),
        _ => false,
    };
    Ok((!object_gone).then_some(job))
}

/// Why the insert changed nothing: an identical live job holds the live key
/// (a concurrent submit won the race, or `force` met a running job: it
/// shares it), the day's quota would be passed, or the owner is at the
/// active-job limit.
async fn refused<D: SqlDb>(
    db: &D,
    owner: &str,
    fp: &str,
    new: &NewJob<'_>,
    quota: store::Quota,
    max_active: u64,
) -> Result<Submitted, Error> {
    let q = store::select_reusable_job(owner, fp, EpochMs::MAX);
    if let Some(job) = store::get_job(db, q).await? {
        return Ok(Submitted::Existing(job));
    }
    if quota.chunks_per_day > 0 {
        let rows = db.query(&store::select_usage(owner, quota.day)).await?;
        let used = rows
            .first()
            .and_then(|r| r.get("chunks"))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0) as i64;
        if used + new.quota_units > quota.chunks_per_day {
            let reset = (quota.day + 1) * DAY_MS;
            return Err(Error::QuotaExceeded {
                limit: quota.chunks_per_day,
                need: new.quota_units,
                left: (quota.chunks_per_day - used).max(0),
                retry_after_s: ((reset - new.now.ms() + 999) / 1000).max(1),
            });
        }
    }
    Err(Error::TooManyActiveJobs(max_active))
}

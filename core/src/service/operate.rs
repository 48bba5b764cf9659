//! Operator controls (`/v1/admin/…`, under an `ADMIN_TOKENS` token):
//! pausing and resuming a site, and retrying dead jobs in bulk.
//!
//! **Pause.** A paused site's jobs are not claimed (the claim statement
//! skips them), so no upstream call is made for them: a message that finds
//! its job's site paused marks the job `waiting` and comes back in
//! [`PAUSE_RECHECK_SECONDS`]. Waiting for an operator is no failure: it
//! burns no attempt, no stall, and does not count towards
//! `MAX_UPSTREAM_WAIT_MS`. A window already running when the pause comes
//! finishes (at most one invocation's work).
//!
//! **Bulk retry.** Dead jobs of every owner, matched by site, a piece of
//! the last error and when they died, listed first with `dry_run`. Each is
//! requeued like an owner's retry (from its checkpoints, its history kept)
//! but outside the owner's limits: the operator is fixing a cause.

use serde::Deserialize;

use crate::api::{BulkRetry, DeadMatch, SitePause};
use crate::domain::{format_rfc3339, EpochMs, JobId};
use crate::error::Error;
use crate::job::{Job, JobStatus};
use crate::ports::{Clock, JobMessage, JobQueue, SqlDb};
use crate::service::transition_log;
use crate::store;

/// How often a paused site's job looks again.
pub const PAUSE_RECHECK_SECONDS: u32 = 60;
/// Most jobs one bulk retry takes.
pub const MAX_BULK_RETRY: i64 = 100;

#[derive(Deserialize)]
struct PauseRow {
    site: String,
    #[serde(deserialize_with = "crate::job::de::int")]
    paused_at: EpochMs,
    paused_by: String,
    reason: String,
}

impl From<PauseRow> for SitePause {
    fn from(r: PauseRow) -> Self {
        SitePause {
            site: r.site,
            paused_at: format_rfc3339(r.paused_at),
            paused_by: r.paused_by,
            reason: r.reason,
        }
    }
}

/// Pauses a site; returns its pause.
pub async fn pause<D: SqlDb, C: Clock>(
    db: &D,
    clock: &C,
    site: &str,
    (by, reason): (&str, &str),
) -> Result<SitePause, Error> {
    db.execute(&store::pause_site(site, clock.now_ms(), by, reason))
        .await?;
    paused(db, site)
        .await?
        .ok_or_else(|| Error::Conflict("the pause did not hold; try again".to_owned()))
}

/// Resumes a site; says whether it was paused. Its waiting jobs come back
/// within [`PAUSE_RECHECK_SECONDS`].
pub async fn resume<D: SqlDb>(db: &D, site: &str) -> Result<bool, Error> {
    Ok(db.execute(&store::resume_site(site)).await? > 0)
}

/// A site's pause, if it is paused.
pub async fn paused<D: SqlDb>(db: &D, site: &str) -> Result<Option<SitePause>, Error> {
    let rows: Vec<PauseRow> = store::decode(db.query(&store::select_pause(site)).await?)?;
    Ok(rows.into_iter().next().map(SitePause::from))
}

/// Every paused site.
pub async fn pauses<D: SqlDb>(db: &D) -> Result<Vec<SitePause>, Error> {
    let rows: Vec<PauseRow> = store::decode(db.query(&store::select_pauses()).await?)?;
    Ok(rows.into_iter().map(SitePause::from).collect())
}

/// Which dead jobs a bulk retry takes.
#[derive(Debug, Clone, Default)]
pub struct DeadFilter {
    /// The site.
    pub site: Option<String>,
    /// A piece of the last error.
    pub error_contains: Option<String>,
    /// Died at or after.
    pub from: Option<EpochMs>,
    /// Died before.
    pub to: Option<EpochMs>,
    /// At most this many (1 to [`MAX_BULK_RETRY`]).
    pub limit: i64,
}

/// Lists the dead jobs `filter` matches and, unless `dry_run`, requeues
/// each and sends its message (a failed send leaves it to the reaper's
/// outbox pass).
pub async fn retry_dead<D: SqlDb, Q: JobQueue, C: Clock>(
    (db, queue, clock): (&D, &Q, &C),
    filter: &DeadFilter,
    dry_run: bool,
    log: &dyn Fn(&str),
) -> Result<BulkRetry, Error> {
    let stmt = store::select_dead_matching(
        filter.site.as_deref(),
        filter.error_contains.as_deref(),
        (filter.from, filter.to),
        filter.limit.clamp(1, MAX_BULK_RETRY),
    );
    let jobs: Vec<Job> = store::decode(db.query(&stmt).await?)?;
    let matched = jobs.iter().map(dead_match).collect();
    let mut retried = 0;
    if !dry_run {
        for job in &jobs {
            retried += u64::from(requeue(db, queue, clock, job, log).await?);
        }
    }
    Ok(BulkRetry {
        dry_run,
        matched,
        retried,
    })
}

fn dead_match(j: &Job) -> DeadMatch {
    DeadMatch {
        job_id: j.id.clone(),
        owner: j.owner.clone(),
        site: j.site.to_string(),
        last_error: j.last_error.clone(),
        finished_at: j.finished_at.map(format_rfc3339),
    }
}

/// One dead job back to `queued`, outside its owner's limits; false when
/// it changed meanwhile or an identical job is live.
async fn requeue<D: SqlDb, Q: JobQueue, C: Clock>(
    db: &D,
    queue: &Q,
    clock: &C,
    job: &Job,
    log: &dyn Fn(&str),
) -> Result<bool, Error> {
    let now = clock.now_ms();
    let none = store::RetryLimits {
        max_active: 0,
        quota: store::Quota {
            chunks_per_day: 0,
            day: 0,
        },
        units: 0,
        per_minute: 0,
    };
    if db
        .execute(&store::requeue_dead_job(&job.id, &job.owner, now, none))
        .await?
        == 0
    {
        return Ok(false);
    }
    let detail = Some("retried from dead by an operator");
    db.execute(&store::insert_event(
        &job.id,
        now,
        JobStatus::Queued,
        job.attempts,
        detail,
    ))
    .await?;
    log(&transition_log(
        job.id.as_str(),
        "failed_permanent",
        "queued",
        Some("bulk retry by an operator"),
    ));
    send(queue, &job.id).await;
    Ok(true)
}

async fn send<Q: JobQueue>(queue: &Q, id: &JobId) {
    let msg = JobMessage {
        job_id: id.clone(),
        hop: 0,
    };
    // The row is queued either way; the reaper sends what was not sent.
    let _ = queue.send(&msg, 0).await;
}

//! The reaper (cron): no accepted job sits forever in `queued`,
//! `processing` or `failed`.
//!
//! It resends only jobs whose next delivery is overdue, judged from the
//! lease and the scheduled retry time, not from idleness: a lapsed lease
//! (its invocation died), a scheduled retry that never arrived, a row the
//! queue never accepted (the outbox), or a queued job far past any backlog.
//! It resumes from its checkpoint. A job resent too many times without
//! progress takes the terminal path. Dead jobs still owed their alert get a
//! selection of their own, so they cannot crowd out the others. Each run
//! touches a bounded number of rows.
//!
//! It keeps the sample store under `STORE_MAX_BYTES` ([`settled::evict`]).
//!
//! It also applies the retention period (`JOB_RETENTION_MS`): up to
//! [`REAP_LIMIT`] terminal jobs past it are deleted per run, with their
//! events and checkpoints, in one batch. Result and archive objects in R2
//! are left to the bucket's lifecycle rules (a result may be shared by
//! identical requests of several jobs).

use crate::domain::EpochMs;
use crate::error::Error;
use crate::job::{Job, JobStatus};
use crate::ports::{Clock, JobMessage, JobQueue, Platform, SqlDb};
use crate::service::{dead_letter, notices, settled, Deps};
use crate::store;

/// Rows one run looks at, per selection.
pub const REAP_LIMIT: i64 = 50;
/// Dead jobs whose alert is retried per run: a bound of its own, so a
/// webhook that keeps failing can never crowd out overdue jobs.
pub const ALERT_RETRY_LIMIT: i64 = 10;
/// How late a delivery may be (a lapsed lease, a scheduled retry, an
/// unsent outbox row) before the reaper resends it.
pub const GRACE_MS: i64 = 120_000;
/// How long a queued job whose message the queue accepted may wait before
/// it is resent: a deep backlog is waiting, not a loss, so this is long.
pub const BACKLOG_MS: i64 = 1_800_000;
/// Idle time before a dead job's failed alert is retried.
pub const IDLE_MS: i64 = 120_000;
/// Resends without progress after which a job is declared dead, once
/// `MAX_UPSTREAM_WAIT_MS` has also passed since its last progress (the
/// consumer's rule). Progress (a checkpoint) and an owner's retry reset
/// the count; a queued job that never ran is never killed for it.
pub const MAX_RESENDS: i64 = 10;

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// Jobs sent again.
    pub resent: Vec<String>,
    /// Jobs taken down the terminal path.
    pub dead: Vec<String>,
    /// Terminal jobs deleted for being past the retention period.
    pub purged: u64,
    /// Sample-store entries evicted to keep it under `STORE_MAX_BYTES`.
    pub evicted: u64,
    /// Job callbacks delivered (cancels, and retries of earlier failures).
    pub callbacks: u64,
    /// Notices the consumer handed off, sent.
    pub notices: u64,
}

/// Runs the reaper once.
pub async fn reap<P: Platform>(deps: &Deps<'_, P>) -> Result<Reaped, Error> {
    let now = deps.clock.now_ms();
    let mut out = Reaped::default();
    let overdue = store::select_overdue(now, GRACE_MS, BACKLOG_MS, REAP_LIMIT);
    for job in store::decode::<Job>(deps.db.query(&overdue).await?)? {
        // Like the consumer's rule: a job is given up on for want of
        // progress only past `MAX_UPSTREAM_WAIT_MS` since its last progress.
        let waited = now - job.last_progress();
        let given_up = job.resends >= MAX_RESENDS && waited >= deps.cfg.max_upstream_wait_ms;
        if job.status != JobStatus::Queued && given_up {
            let reason = format!(
                "stalled: resent {} times by the reaper, no progress in {} min",
                job.resends,
                waited / 60_000
            );
            finish_dead(deps, &job, &reason, &mut out).await;
        } else {
            resend(deps, &job, now, &mut out).await?;
        }
    }
    let unalerted = store::select_unalerted(now - IDLE_MS, ALERT_RETRY_LIMIT);
    for job in store::decode::<Job>(deps.db.query(&unalerted).await?)? {
        let reason = job.last_error.clone().unwrap_or_default();
        finish_dead(deps, &job, &reason, &mut out).await;
    }
    (out.callbacks, out.notices) = notices::deliver_all(deps).await;
    if let Err(e) = deps.db.execute(&store::purge_retries(now)).await {
        (deps.log)(&format!("reaper could not purge retry counts: {e}"));
    }
    out.purged = purge(deps, now).await?;
    out.evicted = settled::evict(deps).await?;
    if out.evicted > 0 {
        (deps.log)(
            &serde_json::json!({"event": "store_evict", "entries": out.evicted}).to_string(),
        );
    }
    Ok(out)
}

/// The terminal path for a stalled job, or a dead one still owed its
/// alert. A failing webhook must not stop the rest of the run.
async fn finish_dead<P: Platform>(deps: &Deps<'_, P>, job: &Job, reason: &str, out: &mut Reaped) {
    let msg = serde_json::json!({"job_id": job.id, "reaper": true});
    match dead_letter::dead_letter(deps, Some(&job.id), reason, &msg).await {
        Ok(_) => out.dead.push(job.id.to_string()),
        Err(e) => (deps.log)(&format!("reaper could not dead-letter {}: {e}", job.id)),
    }
}

/// Sends an overdue job's message again, compare-and-set on the row
/// version read, so two reapers never both resend it.
async fn resend<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    now: EpochMs,
    out: &mut Reaped,
) -> Result<(), Error> {
    let touched = deps
        .db
        .execute(&store::touch_for_resend(&job.id, job.updated_at, now))
        .await?;
    if touched == 0 {
        return Ok(());
    }
    let why = match job.status {
        JobStatus::Processing => "lease expired",
        JobStatus::Failed => "scheduled retry overdue",
        _ if job.sent_at.is_none() => "never sent",
        _ => "queued too long",
    };
    let msg = JobMessage {
        job_id: job.id.clone(),
        hop: 0,
    };
    match deps.queue.send(&msg, 0).await {
        Ok(()) => {
            (deps.log)(&serde_json::json!({"event": "reaper_resend", "job_id": job.id, "status": job.status, "why": why}).to_string());
            out.resent.push(job.id.to_string());
        }
        Err(e) => (deps.log)(&format!("reaper could not resend {}: {e}", job.id)),
    }
    Ok(())
}

/// Applies the retention period: one bounded batch per run.
async fn purge<P: Platform>(deps: &Deps<'_, P>, now: EpochMs) -> Result<u64, Error> {
    if deps.cfg.job_retention_ms <= 0 {
        return Ok(0);
    }
    let before = now - deps.cfg.job_retention_ms;
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    let ids: Vec<String> = store::decode::<Id>(
        deps.db
            .query(&store::select_expired(before, REAP_LIMIT))
            .await?,
    )?
    .into_iter()
    .map(|r| r.id)
    .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    deps.db.batch(&store::purge_jobs(&ids)).await?;
    let purged = ids.len() as u64;
    (deps.log)(
        &serde_json::json!({"event": "reaper_purge", "jobs": purged, "finished_before": before})
            .to_string(),
    );
    Ok(purged)
}

//! The reaper (cron): no accepted job sits forever in `queued`,
//! `processing` or `failed`.
//!
//! A job whose lease lapsed (its invocation died) or that was never sent
//! (the outbox: the queue send failed after the row was written) is sent
//! again; it resumes from its checkpoint. A job resent too many times takes
//! the terminal path, as does a dead job whose alert never went out. Each
//! run touches a bounded number of rows.
//!
//! It also applies the retention period (`JOB_RETENTION_MS`): up to
//! [`REAP_LIMIT`] terminal jobs past it are deleted per run, with their
//! events and checkpoints, in one batch. Result and archive objects in R2
//! are left to the bucket's lifecycle rules (a result may be shared by
//! identical requests of several jobs).

use crate::error::Error;
use crate::job::JobStatus;
use crate::ports::{BlobStore, Clock, HttpClient, JobMessage, JobQueue, SqlDb};
use crate::service::{dead_letter, Deps};
use crate::store;

/// Rows one run looks at.
pub const REAP_LIMIT: i64 = 50;
/// A queued or failed job untouched this long may have lost its message.
pub const IDLE_MS: i64 = 120_000;
/// Resends after which a job that keeps stalling is declared dead.
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
}

/// Runs the reaper once.
pub async fn reap<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    log: &dyn Fn(&str),
) -> Result<Reaped, Error>
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    let now = deps.clock.now_ms();
    let rows = deps
        .db
        .query(&store::select_reapable(now, now - IDLE_MS, REAP_LIMIT))
        .await?;
    let jobs: Vec<crate::job::Job> = store::decode(rows)?;
    let mut out = Reaped::default();
    for job in jobs {
        // A dead job whose alert never went out finishes the terminal path;
        // a job that keeps stalling takes it.
        let terminal = if job.status == JobStatus::FailedPermanent {
            Some(job.last_error.clone().unwrap_or_default())
        } else if job.resends >= MAX_RESENDS {
            Some(format!(
                "stalled: resent {} times by the reaper",
                job.resends
            ))
        } else {
            None
        };
        if let Some(reason) = terminal {
            let msg = serde_json::json!({"job_id": job.id, "reaper": true});
            // A failing webhook must not stop the rest of the run.
            match dead_letter::dead_letter(deps, Some(&job.id), &reason, &msg, log).await {
                Ok(_) => out.dead.push(job.id.to_string()),
                Err(e) => log(&format!("reaper could not dead-letter {}: {e}", job.id)),
            }
            continue;
        }
        let touched = deps
            .db
            .execute(&store::touch_for_resend(&job.id, job.updated_at, now))
            .await?;
        if touched != 1 {
            continue;
        }
        let why = match job.status {
            JobStatus::Processing => "lease expired",
            _ => "no message in flight",
        };
        match deps
            .queue
            .send(
                &JobMessage {
                    job_id: job.id.clone(),
                    hop: 0,
                },
                0,
            )
            .await
        {
            Ok(()) => {
                log(&serde_json::json!({"event": "reaper_resend", "job_id": job.id, "status": job.status, "why": why}).to_string());
                out.resent.push(job.id.to_string());
            }
            Err(e) => log(&format!("reaper could not resend {}: {e}", job.id)),
        }
    }
    if deps.cfg.job_retention_ms > 0 {
        let before = now - deps.cfg.job_retention_ms;
        let changed = deps
            .db
            .batch(&store::purge_expired(before, REAP_LIMIT))
            .await?;
        out.purged = changed.last().copied().unwrap_or(0);
        if out.purged > 0 {
            log(&serde_json::json!({"event": "reaper_purge", "jobs": out.purged, "finished_before": before}).to_string());
        }
    }
    Ok(out)
}

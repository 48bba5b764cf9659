//! Owner actions on existing jobs: cancel, retry from dead, and stats.

use serde_json::Value;

use crate::api::{
    Durations, InvocationMaxima, LastHour, SampleStore, Stats, StatusCounts, UsageToday,
};

use crate::chunk;
use crate::config::Config;
use crate::domain::{EpochMs, JobId, DAY_MS};
use crate::error::Error;
use crate::job::{Job, JobStatus};
use crate::ports::{Clock, JobMessage, JobQueue, SqlDb};
use crate::service::transition_log;
use crate::store;

/// Why an action did not apply: the job is missing (404) or in the wrong
/// state (409).
async fn explain<D: SqlDb>(db: &D, id: &JobId, owner: &str, action: &str) -> Error {
    match store::get_job(db, store::select_owned_job(id, owner)).await {
        Ok(Some(job)) if job.status == JobStatus::FailedPermanent && action == "retry" => {
            Error::Conflict(
                "an identical job is already queued or running; follow that one".to_owned(),
            )
        }
        Ok(Some(job)) => Error::Conflict(format!("cannot {action} a job that is {}", job.status)),
        Ok(None) => Error::NotFound,
        Err(e) => e.into(),
    }
}

/// `DELETE /v1/jobs/{id}`: a queued, processing or failed job becomes
/// `cancelled`; the consumer notices between pages and chunks and stops.
pub async fn cancel<D: SqlDb, C: Clock>(
    db: &D,
    clock: &C,
    owner: &str,
    id: &JobId,
    log: &dyn Fn(&str),
) -> Result<Job, Error> {
    let now = clock.now_ms();
    let Some(job) = store::get_job(db, store::cancel_job(id, owner, now)).await? else {
        return Err(explain(db, id, owner, "cancel").await);
    };
    db.execute(&store::insert_event(
        id,
        now,
        JobStatus::Cancelled,
        job.attempts,
        Some("cancelled by owner"),
    ))
    .await?;
    log(&transition_log(
        id.as_str(),
        "active",
        "cancelled",
        Some("by owner"),
    ));
    Ok(job)
}

/// `POST /v1/jobs/{id}/retry`: a `failed_permanent` job goes back to
/// `queued` and is sent again. Its attempts, checkpoints and event history
/// stay, so the earlier failures remain visible. A retry is a new order:
/// it counts against `MAX_ACTIVE_JOBS` and `DAILY_CHUNK_QUOTA` as the job
/// did at submission, and an owner may retry `RETRIES_PER_MINUTE` jobs a
/// minute; the checks and the update are one statement. If the send fails
/// the row stays `queued` and the reaper sends it (the outbox).
pub async fn retry<D: SqlDb, Q: JobQueue, C: Clock>(
    (db, queue, clock): (&D, &Q, &C),
    cfg: &Config,
    owner: &str,
    id: &JobId,
    log: &dyn Fn(&str),
) -> Result<(Job, bool), Error> {
    let now = clock.now_ms();
    let Some(dead) = store::get_job(db, store::select_owned_job(id, owner)).await? else {
        return Err(Error::NotFound);
    };
    let limits = store::RetryLimits {
        max_active: i64::try_from(cfg.max_active_jobs).unwrap_or(i64::MAX),
        quota: store::Quota {
            chunks_per_day: i64::try_from(cfg.daily_chunk_quota).unwrap_or(i64::MAX),
            day: now.div_euclid(DAY_MS),
        },
        units: chunk::quota_units(dead.start_ms, dead.end_ms, dead.points.len()),
        per_minute: i64::try_from(cfg.retries_per_minute).unwrap_or(i64::MAX),
    };
    let [usage, retries] = store::count_retry(id, owner, now, limits);
    let requeue = store::requeue_dead_job(id, owner, now, limits);
    let changed = db.batch(&[requeue, usage, retries]).await?;
    if changed.first().copied().unwrap_or(0) == 0 {
        return Err(retry_refused(db, &dead, owner, now, limits).await);
    }
    let job = store::get_job(db, store::select_owned_job(id, owner))
        .await?
        .ok_or(Error::NotFound)?;
    let detail = Some("retried from dead by owner");
    db.execute(&store::insert_event(
        id,
        now,
        JobStatus::Queued,
        job.attempts,
        detail,
    ))
    .await?;
    log(&transition_log(
        id.as_str(),
        "failed_permanent",
        "queued",
        Some("retry by owner"),
    ));
    let msg = JobMessage {
        job_id: id.clone(),
        hop: 0,
    };
    let sent = queue.send(&msg, 0).await.is_ok();
    Ok((job, sent))
}

/// Why a retry changed nothing: the job is not dead (409), an identical
/// job is live (409), or a limit held (429).
async fn retry_refused<D: SqlDb>(
    db: &D,
    dead: &Job,
    owner: &str,
    now: EpochMs,
    l: store::RetryLimits,
) -> Error {
    if dead.status != JobStatus::FailedPermanent {
        return explain(db, &dead.id, owner, "retry").await;
    }
    let live = store::select_reusable_job(owner, &dead.fingerprint, EpochMs::MAX);
    match store::get_job(db, live).await {
        Ok(Some(_)) => return explain(db, &dead.id, owner, "retry").await,
        Ok(None) => {}
        Err(e) => return e.into(),
    }
    let first = |rows: Result<Vec<crate::ports::Row>, _>, k: &str| -> i64 {
        rows.ok()
            .and_then(|r| r.first().and_then(|r| r.get(k)).and_then(Value::as_f64))
            .unwrap_or(0.0) as i64
    };
    let used = first(
        db.query(&store::select_usage(owner, l.quota.day)).await,
        "chunks",
    );
    if l.quota.chunks_per_day > 0 && used + l.units > l.quota.chunks_per_day {
        let reset = (l.quota.day + 1) * DAY_MS;
        return Error::QuotaExceeded {
            limit: l.quota.chunks_per_day,
            need: l.units,
            left: (l.quota.chunks_per_day - used).max(0),
            retry_after_s: ((reset - now.ms() + 999) / 1000).max(1),
        };
    }
    let retries = first(db.query(&store::select_retries(owner, now)).await, "n");
    if l.per_minute > 0 && retries >= l.per_minute {
        return Error::TooManyRetries(l.per_minute as u64);
    }
    Error::TooManyActiveJobs(l.max_active as u64)
}

/// `GET /v1/stats` for one owner: two queries, neither a scan of the
/// owner's history.
pub async fn stats<D: SqlDb, C: Clock>(
    db: &D,
    clock: &C,
    owner: &str,
    (quota, max_bytes): (u64, u64),
) -> Result<Stats, Error> {
    let now = clock.now_ms();
    let day = now.ms().div_euclid(crate::domain::DAY_MS);
    let used = db
        .query(&store::select_usage(owner, day))
        .await?
        .first()
        .and_then(|r| r.get("chunks"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0) as i64;
    let row = db
        .query(&store::select_stats(owner, now))
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    let c = Cols(&row);
    let measured = c.n("durations");
    Ok(Stats {
        counts: c.counts(),
        oldest_queued_age_ms: c.opt("oldest_queued_at").map(|t| now - EpochMs(t)),
        last_hour: c.last_hour(),
        dead_letters_last_24h: c.n("dead_last_day"),
        alerts_refused: c.n("alerts_refused"),
        invocations_last_24h: c.invocations(),
        usage_today: UsageToday {
            chunks: used,
            quota: (quota > 0).then_some(quota),
        },
        duration_ms_last_24h: Durations {
            jobs: measured,
            p50: c.opt("p50").filter(|_| measured > 0),
            p95: c.opt("p95").filter(|_| measured > 0),
        },
        sample_store: sample_store(db, max_bytes).await?,
    })
}

/// The shared sample store's figures.
async fn sample_store<D: SqlDb>(db: &D, max_bytes: u64) -> Result<SampleStore, Error> {
    let f = crate::service::settled::figures(db).await?;
    let tried = f.hits + f.misses;
    Ok(SampleStore {
        entries: f.entries,
        bytes: f.bytes,
        max_bytes,
        hits: f.hits,
        misses: f.misses,
        hit_ratio: if tried > 0 {
            f.hits as f64 / tried as f64
        } else {
            0.0
        },
        upstream_bytes_saved: f.bytes_saved,
        evicted: f.evicted,
    })
}

/// The stats row's columns, as integers (D1 answers floats).
struct Cols<'a>(&'a crate::ports::Row);

impl Cols<'_> {
    fn n(&self, k: &str) -> i64 {
        self.opt(k).unwrap_or(0)
    }

    fn opt(&self, k: &str) -> Option<i64> {
        self.0.get(k).and_then(Value::as_f64).map(|v| v as i64)
    }

    fn counts(&self) -> StatusCounts {
        StatusCounts {
            queued: self.n("queued"),
            processing: self.n("processing"),
            completed: self.n("completed"),
            failed: self.n("failed"),
            failed_permanent: self.n("failed_permanent"),
            cancelled: self.n("cancelled"),
        }
    }

    fn last_hour(&self) -> LastHour {
        let (done, failed) = (self.n("completed_last_hour"), self.n("failed_last_hour"));
        LastHour {
            completed: done,
            failed_permanent: failed,
            samples: self.n("samples_last_hour"),
            failure_rate: if done + failed > 0 {
                failed as f64 / (done + failed) as f64
            } else {
                0.0
            },
        }
    }

    fn invocations(&self) -> InvocationMaxima {
        InvocationMaxima {
            invocations: self.n("inv_count"),
            max_d1_statements: self.n("inv_statements"),
            max_subrequests: self.n("inv_subrequests"),
            max_wasm_memory_bytes: self.n("inv_memory"),
            max_wall_ms: self.n("inv_wall_ms"),
            limit_warnings: self.n("inv_warnings"),
        }
    }
}

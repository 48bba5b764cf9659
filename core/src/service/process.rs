//! The consumer: claim a job, process its pending chunks within the
//! invocation's budget, checkpoint each, and finish with the result object.
//!
//! Each chunk is fetched, sorted, deduplicated, aggregated and encoded on
//! its own, then written as an R2 part and committed to D1 in one batch of
//! two statements: every aggregate row in one set-based upsert, and the
//! checkpoint (progress follows by trigger). Peak memory is therefore a few
//! chunks (one per concurrent fetch), whatever the job's size.
//!
//! **Fencing.** A claim writes a fresh random token, and every later write
//! of that holder (chunk commit, heartbeat, hand-over, failure record,
//! completion) is guarded by it in the same statement. A holder that lost
//! its lease, or whose job was cancelled, writes nothing and stops at its
//! next write ([`Error::Fenced`]). The lease is renewed while pages are
//! fetched, not only when a chunk commits.
//!
//! **Budgets.** One [`Budget`] per invocation is shared by every message of
//! the batch ([`handle_batch`]); a message that finds it spent is sent
//! again as it is ("deferred") for a fresh invocation. The messages run
//! together, each with an equal share of the invocation's window slots
//! ([`Budget::window_share`]) and its own control reserve, so one site's
//! retries never delay another's message, and memory and connections stay
//! those of `UPSTREAM_CONCURRENCY` windows.

use std::cell::Cell;
use std::collections::HashSet;

use futures::stream::{self, StreamExt};

use crate::aggregate::{aggregate, Aggregate};
use crate::api::PARQUET_MEDIA_TYPE;
use crate::backoff::Jitter;
use crate::budget::{Budget, Cost, Limits, Metered};
use crate::chunk::{self, Chunk};
use crate::codec;
use crate::domain::{EpochMs, JobId, PointName};
use crate::error::{Disposition, Error};
use crate::job::{Job, JobStatus, Sources};
use crate::plan::{self, JobShape, Plan, SiteInfo};
use crate::ports::{
    BlobMeta, BlobStore, Clock, JobMessage, JobQueue, Platform, Ports, SqlDb, Statement,
};
use crate::sample::{sort_dedup, PointSet, Samples};
use crate::service::lease::parquet_part_key;
use crate::service::lease::{fenced, Lease};
pub use crate::service::lease::{part_key, DoneChunk};
use crate::service::{assemble, circuit, dead_letter, operate, settled, transition_log, Deps};
use crate::store::{self, AggTarget, AGG_ROWS_PER_STATEMENT};
use crate::upstream::{Ace, Source, Traffic, WindowQuery};
use tsp_parquet::stitch::PartWriter;

/// Where a message left its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The result object is written and the job is `completed`.
    Completed,
    /// A transient failure: the job was rescheduled with a delayed message
    /// (acked, not retried through the queue). A delivery that made
    /// progress does not count towards the job's death.
    Retrying {
        /// Delay of the next delivery.
        delay_seconds: u32,
        /// Whether this delivery checkpointed chunks before the failure.
        progressed: bool,
        /// The failure.
        error: String,
    },
    /// The upstream's circuit is open: the message was delayed until then
    /// without claiming the job (no attempt burned).
    Waiting {
        /// Epoch ms of the next delivery.
        until: EpochMs,
    },
    /// The budget ran out; a continuation message carries on.
    Continued {
        /// Chunks finished so far.
        done: usize,
        /// Chunks in the plan.
        total: usize,
    },
    /// The invocation's budget was spent before this message started; the
    /// same message was sent again for a fresh invocation.
    Deferred,
    /// Nothing to do: the job is terminal, unknown, or leased by another
    /// live invocation (which will finish it, or the reaper will resend it).
    Skipped(String),
    /// The job was cancelled; work stopped.
    Cancelled,
    /// A permanent failure took the terminal path.
    DeadLettered(String),
}

/// The result of handling one message: the outcome and what to do with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// What happened.
    pub outcome: Result<Outcome, Error>,
    /// Ack or retry.
    pub disposition: Disposition,
}

impl Handled {
    fn ack(outcome: Outcome) -> Self {
        Self {
            outcome: Ok(outcome),
            disposition: Disposition::Ack,
        }
    }
}

/// What one invocation did and spent.
#[derive(Debug)]
pub struct BatchReport {
    /// Each message's result, in order.
    pub handled: Vec<Handled>,
    /// D1 statements run (each statement of a batch counts).
    pub statements: u64,
    /// Subrequests made.
    pub subrequests: u64,
    /// Everything the invocation used (memory left at 0: the caller knows it).
    pub usage: crate::budget::Usage,
}

/// A platform's ports, each storage and network call counted against the
/// invocation's [`Budget`].
type MeteredPorts<'b, P> = Ports<
    Metered<'b, <P as Platform>::Db>,
    Metered<'b, <P as Platform>::Blobs>,
    Metered<'b, <P as Platform>::Queue>,
    Metered<'b, <P as Platform>::Http>,
    <P as Platform>::Clock,
>;

/// Handles the messages of one invocation under one shared [`Budget`],
/// all at once; the results are in message order.
pub async fn handle_batch<P: Platform>(
    deps: &Deps<'_, P>,
    messages: &[(JobMessage, u32)],
) -> BatchReport {
    let budget =
        Budget::new(Limits::from_config(deps.cfg), deps.clock.now_ms()).shared_by(messages.len());
    let (db, blobs) = (
        Metered::new(deps.db, &budget),
        Metered::new(deps.blobs, &budget),
    );
    let (queue, http) = (
        Metered::new(deps.queue, &budget),
        Metered::new(deps.http, &budget),
    );
    let metered: Deps<'_, MeteredPorts<'_, P>> = Deps {
        db: &db,
        blobs: &blobs,
        queue: &queue,
        http: &http,
        clock: deps.clock,
        cfg: deps.cfg,
        log: deps.log,
    };
    // The messages run together: one site's waits (in-place page retries,
    // a slow upstream) never hold back another's message.
    let runs = messages
        .iter()
        .map(|(msg, attempt)| handle_one(&metered, &budget, msg, *attempt));
    let handled = futures::future::join_all(runs).await;
    let usage = budget.usage(deps.clock.now_ms(), 0);
    for w in usage.warnings() {
        (deps.log)(
            &serde_json::json!({"event": "limit_warning", "level": "warn", "detail": w})
                .to_string(),
        );
    }
    BatchReport {
        handled,
        statements: budget.statements_used(),
        subrequests: budget.subrequests_used(),
        usage,
    }
}

/// Handles one message as an invocation of its own (tests, tools).
/// `attempt` is the 1-based delivery count of this message.
pub async fn handle<P: Platform>(deps: &Deps<'_, P>, msg: &JobMessage, attempt: u32) -> Handled {
    let mut report = handle_batch(deps, &[(msg.clone(), attempt)]).await;
    report.handled.pop().unwrap_or(Handled {
        outcome: Err(Error::Queue("no message was handled".to_owned())),
        disposition: Disposition::Retry { delay_seconds: 1 },
    })
}

/// What a message costs before its first chunk, at least: the circuit
/// read, the claim, the checkpoint read and the smallest window (one
/// aggregate statement, its commit, the store's and the liveness checks),
/// with the control reserve behind it. Below it a message is deferred
/// rather than claiming a job it cannot move.
const MESSAGE_FLOOR: Cost = Cost {
    statements: crate::budget::CONTROL_STATEMENTS + 3 + 3 + STORE_STATEMENTS + LIVENESS_STATEMENTS,
    subrequests: crate::budget::CONTROL_SUBREQUESTS + 2,
};

async fn handle_one<P: Platform>(
    deps: &Deps<'_, P>,
    budget: &Budget,
    msg: &JobMessage,
    attempt: u32,
) -> Handled {
    if budget.expired(deps.clock.now_ms()) || !budget.can_afford(MESSAGE_FLOOR) {
        return defer(deps.queue, msg).await;
    }
    let (dirty, probe) = match circuit::gate(deps.db, deps.clock).await {
        Ok(circuit::Gate::Pass { dirty, probe }) => (dirty, probe),
        Ok(circuit::Gate::Wait { until, reason }) => {
            return wait_for_upstream(deps, msg, until, &reason).await
        }
        Err(e) => return settle(deps, None, msg, attempt, Err(e)).await,
    };
    let mut bytes = deps.clock.random_bytes();
    bytes[0] |= 1; // never all zero
    let lease = Lease {
        id: &msg.job_id,
        token: hex::encode(bytes),
        renewed: Cell::new(deps.clock.now_ms()),
        checked: Cell::new(deps.clock.now_ms()),
        progressed: Cell::new(false),
        circuit: circuit::Tracker::new(dirty, probe),
    };
    let job = match claim(deps, &lease, msg, attempt).await {
        Ok(Claimed::Job(job)) => job,
        Ok(Claimed::Not(outcome)) => return Handled::ack(outcome),
        Ok(Claimed::Paused(p)) => {
            let now = deps.clock.now_ms();
            let restart = store::restart_wait_clock(&msg.job_id, now);
            if let Err(e) = deps.db.execute(&restart).await {
                (deps.log)(&format!(
                    "could not restart the wait clock of {}: {e}",
                    msg.job_id
                ));
            }
            let until = now + i64::from(operate::PAUSE_RECHECK_SECONDS) * 1000;
            let why = format!("site {} paused by an operator: {}", p.site, p.reason);
            return wait_for_upstream(deps, msg, until, &why).await;
        }
        Err(e) => return settle(deps, None, msg, attempt, Err(e)).await,
    };
    let outcome = work(deps, budget, &job, &lease, msg).await;
    settle(deps, Some((&lease, &*job)), msg, attempt, outcome).await
}

/// The circuit is open (or the job's site is paused): mark the job as waiting and send the message again,
/// unchanged, for when it may let requests through. Nothing is claimed.
async fn wait_for_upstream<P: Platform>(
    deps: &Deps<'_, P>,
    msg: &JobMessage,
    until: EpochMs,
    reason: &str,
) -> Handled {
    let now = deps.clock.now_ms();
    let delay = seconds_until(until, now);
    let marked = deps
        .db
        .execute(&store::mark_waiting(&msg.job_id, until, reason))
        .await;
    let sent = match marked {
        Ok(_) => deps.queue.send(msg, delay.min(MAX_DELAY_SECONDS)).await,
        Err(e) => Err(e.into()),
    };
    match sent {
        Ok(()) => Handled::ack(Outcome::Waiting { until }),
        Err(e) => Handled {
            disposition: Disposition::Retry {
                delay_seconds: delay,
            },
            outcome: Err(e),
        },
    }
}

/// Sends the message again, unchanged, for a fresh invocation's budget.
async fn defer<Q: JobQueue>(queue: &Q, msg: &JobMessage) -> Handled {
    match queue.send(msg, 1).await {
        Ok(()) => Handled::ack(Outcome::Deferred),
        Err(e) => Handled {
            disposition: Disposition::for_error(&e, 1, Jitter::NONE),
            outcome: Err(e),
        },
    }
}

enum Claimed {
    Job(Box<Job>),
    Not(Outcome),
    /// Its site is paused: it waits, and no upstream call is made.
    Paused(crate::api::SitePause),
}

/// Claims the job for this message, or says why not.
async fn claim<P: Platform>(
    deps: &Deps<'_, P>,
    lease: &Lease<'_>,
    msg: &JobMessage,
    attempt: u32,
) -> Result<Claimed, Error> {
    let now = deps.clock.now_ms();
    // A continuation's first claim is the same run going on, not an attempt.
    let counts = msg.hop == 0 || attempt > 1;
    let stmt = store::claim_job(lease.holder(), now, now + deps.cfg.lease_ms, counts);
    if let Some(job) = store::get_job(deps.db, stmt).await? {
        if counts {
            let from = if job.attempts <= 1 {
                "queued"
            } else {
                "failed"
            };
            let detail = format!("attempt {}", job.attempts);
            (deps.log)(&transition_log(
                msg.job_id.as_str(),
                from,
                "processing",
                Some(&detail),
            ));
        }
        return Ok(Claimed::Job(Box::new(job)));
    }
    let id = &msg.job_id;
    Ok(Claimed::Not(
        match store::get_job(deps.db, store::select_job(id)).await? {
            None => Outcome::Skipped("unknown job".to_owned()),
            // Dead but not yet alerted (the alert failed last time): finish
            // the terminal path rather than dropping the alert.
            Some(j) if j.status == JobStatus::FailedPermanent && j.alerted_at.is_none() => {
                let reason = j.last_error.clone().unwrap_or_default();
                let raw = serde_json::to_value(msg).unwrap_or_default();
                dead_letter::dead_letter(deps, Some(id), &reason, &raw).await?;
                Outcome::DeadLettered(reason)
            }
            // Cancelled while no one held it: its parts go now.
            Some(j) if j.status == JobStatus::Cancelled => {
                remove_parts(deps, &j).await;
                Outcome::Skipped("job is cancelled".to_owned())
            }
            Some(j) if j.status.is_terminal() => Outcome::Skipped(format!("job is {}", j.status)),
            // Its site is paused by an operator: wait, nothing claimed.
            Some(j) => match operate::paused(deps.db, j.site.as_str()).await? {
                Some(p) => return Ok(Claimed::Paused(p)),
                None => Outcome::Skipped("job is leased by another invocation".to_owned()),
            },
        },
    ))
}

/// Turns a message's outcome into its disposition. A holder's transient
/// failure reschedules the job itself ([`reschedule`]); an error before the
/// claim leaves the message to the queue's retry; a permanent one takes the
/// terminal path.
async fn settle<P: Platform>(
    deps: &Deps<'_, P>,
    held: Option<(&Lease<'_>, &Job)>,
    msg: &JobMessage,
    attempt: u32,
    outcome: Result<Outcome, Error>,
) -> Handled {
    let err = match outcome {
        Ok(o) => return Handled::ack(o),
        Err(Error::Fenced) => return Handled::ack(why_fenced(deps, &msg.job_id).await),
        Err(e) => e,
    };
    let lease = held.map(|(l, _)| l);
    match (Disposition::for_error(&err, attempt, jitter(deps)), held) {
        (Disposition::DeadLetter, _) => dead_end(deps, lease, msg, attempt, &err.to_string()).await,
        (_, Some((lease, job))) => reschedule(deps, lease, job, msg, err).await,
        (disposition, None) => Handled {
            outcome: Err(err),
            disposition,
        },
    }
}

/// Whole seconds from `now` until `until`, at least one (a delayed send's unit).
fn seconds_until(until: EpochMs, now: EpochMs) -> u32 {
    ((until - now).max(1000) as u64).div_ceil(1000) as u32
}

/// Longest delay of a rescheduled delivery: the queue's limit for a delayed send.
const MAX_DELAY_SECONDS: u32 = 43_200;

/// A holder's transient failure. The job is rescheduled with a delayed
/// message of its own and this one is acked: a delivery that checkpointed
/// chunks hands over (after the upstream's `Retry-After`, if it gave one)
/// and resets the stall count; one that made no progress backs off and
/// counts a stall. What ends a job that makes no progress depends on whose
/// fault it is: the upstream's (5xx, 429, timeouts, dropped connections,
/// an open circuit) only `MAX_UPSTREAM_WAIT_MS` after its last progress,
/// meanwhile it shows `waiting`; anything else (storage, the queue)
/// `MAX_STALLED_DELIVERIES` stalls in a row.
async fn reschedule<P: Platform>(
    deps: &Deps<'_, P>,
    lease: &Lease<'_>,
    job: &Job,
    msg: &JobMessage,
    err: Error,
) -> Handled {
    let progressed = lease.progressed.get();
    // Waiting out an open circuit is not a stall: no attempt is burned.
    let waiting = matches!(err, Error::UpstreamUnavailable { .. });
    let upstream = waiting || circuit::upstream_fault(&err).is_some();
    let stalls = stall_count(job.stalls, progressed, waiting);
    let now = deps.clock.now_ms();
    if let Some(reason) = gives_up(deps.cfg, job, (progressed, upstream, stalls), now, &err) {
        return dead_end(deps, Some(lease), msg, stalls as u32, &reason).await;
    }
    let delay = match &err {
        Error::UpstreamUnavailable { until, .. } => seconds_until(*until, now),
        _ => next_delay(&err, progressed, stalls, jitter(deps)),
    }
    .min(MAX_DELAY_SECONDS);
    let stalled = !progressed && !waiting;
    if let Err(e) = record_failure(deps, lease, msg, &err, delay, stalled).await {
        return match e {
            Error::Fenced => Handled::ack(why_fenced(deps, lease.id).await),
            e => Handled {
                disposition: Disposition::for_error(&e, 1, jitter(deps)),
                outcome: Err(e),
            },
        };
    }
    if upstream && !progressed {
        // The job view says what it waits for, and until when.
        let (until, what) = match &err {
            Error::UpstreamUnavailable { until, reason } => (*until, reason.clone()),
            e => (now + i64::from(delay) * 1000, format!("the upstream: {e}")),
        };
        let mark = store::mark_waiting(lease.id, until, &what);
        if let Err(e) = deps.db.execute(&mark).await {
            (deps.log)(&format!("could not mark {} as waiting: {e}", lease.id));
        }
    }
    requeue(deps, msg, delay, progressed, &err).await
}

/// Whether a job without progress is given up on, and why: the upstream's
/// trouble after `MAX_UPSTREAM_WAIT_MS` since its last progress, anything
/// else after `MAX_STALLED_DELIVERIES` stalls in a row.
fn gives_up(
    cfg: &crate::config::Config,
    job: &Job,
    (progressed, upstream, stalls): (bool, bool, i64),
    now: EpochMs,
    err: &Error,
) -> Option<String> {
    if progressed {
        return None;
    }
    if upstream {
        let since = job.last_progress();
        let waited = now - since;
        return (waited >= cfg.max_upstream_wait_ms.max(0)).then(|| {
            format!(
                "the upstream failed for {} min without progress (MAX_UPSTREAM_WAIT_MS): {err}",
                waited / 60_000
            )
        });
    }
    (stalls >= i64::from(cfg.max_stalled_deliveries.max(1)))
        .then(|| format!("no progress in {stalls} deliveries in a row: {err}"))
}

/// The stall count after a failure: progress resets it, waiting out an
/// open circuit keeps it, anything else adds one.
fn stall_count(stalls: i64, progressed: bool, waiting: bool) -> i64 {
    match (progressed, waiting) {
        (true, _) => 0,
        (false, true) => stalls,
        (false, false) => stalls + 1,
    }
}

/// Sends the job's next message, `delay` seconds out, and acks this one.
async fn requeue<P: Platform>(
    deps: &Deps<'_, P>,
    msg: &JobMessage,
    delay: u32,
    progressed: bool,
    err: &Error,
) -> Handled {
    let next = JobMessage {
        job_id: msg.job_id.clone(),
        hop: msg.hop + 1,
    };
    match deps.queue.send(&next, delay).await {
        Ok(()) => Handled::ack(Outcome::Retrying {
            delay_seconds: delay,
            progressed,
            error: err.to_string(),
        }),
        // The queue retries this message instead (and the reaper resends
        // the job once its retry is overdue).
        Err(e) => Handled {
            disposition: Disposition::Retry {
                delay_seconds: delay.max(1),
            },
            outcome: Err(e),
        },
    }
}

/// A draw of `RETRY_JITTER` for one backoff wait.
fn jitter<P: Platform>(deps: &Deps<'_, P>) -> Jitter {
    Jitter::draw(deps.cfg.retry_jitter, deps.clock.random_bytes())
}

/// After progress: the upstream's `Retry-After`, or at once. Without
/// progress: backoff by the stall count, never under `Retry-After`.
fn next_delay(err: &Error, progressed: bool, stalls: i64, jitter: Jitter) -> u32 {
    let hint = match err.class() {
        crate::error::ErrorClass::Transient { retry_after_ms } => retry_after_ms.unwrap_or(0),
        crate::error::ErrorClass::Permanent => 0,
    };
    let delay = match (
        progressed,
        Disposition::for_error(err, stalls.max(1) as u32, jitter),
    ) {
        (true, _) => hint.div_ceil(1000).min(u64::from(MAX_DELAY_SECONDS)) as u32,
        (false, Disposition::Retry { delay_seconds }) => delay_seconds,
        (false, _) => 1,
    };
    delay.min(MAX_DELAY_SECONDS)
}

/// Permanent: straight to the terminal path, no more retries. A holder
/// takes it only while it still holds the job.
async fn dead_end<P: Platform>(
    deps: &Deps<'_, P>,
    lease: Option<&Lease<'_>>,
    msg: &JobMessage,
    attempt: u32,
    reason: &str,
) -> Handled {
    let reason = reason.to_owned();
    let raw = serde_json::to_value(msg).unwrap_or_default();
    let token = lease.map(|l| l.token.as_str());
    let id = Some(&msg.job_id);
    match dead_letter::dead_letter_as(deps, id, token, &reason, &raw).await {
        Ok(dead_letter::DeadOutcome::NotApplicable(s)) => {
            Handled::ack(Outcome::Skipped(format!("job is {s}")))
        }
        Ok(_) => Handled::ack(Outcome::DeadLettered(reason)),
        // The terminal path itself failed transiently: retry it.
        Err(e2) => Handled {
            disposition: Disposition::for_error(&e2, attempt, jitter(deps)),
            outcome: Err(e2),
        },
    }
}

async fn record_failure<P: Platform>(
    deps: &Deps<'_, P>,
    lease: &Lease<'_>,
    msg: &JobMessage,
    err: &Error,
    delay: u32,
    stalled: bool,
) -> Result<(), Error> {
    let now = deps.clock.now_ms();
    let kind = if stalled {
        "no progress"
    } else {
        "after progress"
    };
    let detail = format!(
        "hop {}: {err} ({kind}); next delivery in {delay} s",
        msg.hop
    );
    let next_at = now + i64::from(delay) * 1000;
    let fail = store::fail_job_transient(lease.holder(), now, &err.to_string(), next_at, stalled);
    let attempt = i64::from(msg.hop);
    let event = store::insert_event_if(lease.id, now, JobStatus::Failed, attempt, Some(&detail));
    let changed = deps.db.batch(&[fail, event]).await?;
    fenced(changed.first().copied().unwrap_or(0))?;
    (deps.log)(&transition_log(
        lease.id.as_str(),
        "processing",
        "failed",
        Some(&detail),
    ));
    Ok(())
}

/// After a fenced write: cancelled, or someone else's now.
async fn why_fenced<P: Platform>(deps: &Deps<'_, P>, id: &JobId) -> Outcome {
    match store::get_job(deps.db, store::select_job(id)).await {
        Ok(Some(j)) if j.status == JobStatus::Cancelled => {
            (deps.log)(&transition_log(
                id.as_str(),
                "processing",
                "cancelled",
                None,
            ));
            remove_parts(deps, &j).await;
            Outcome::Cancelled
        }
        Ok(Some(j)) => Outcome::Skipped(format!("lease lost (job is {})", j.status)),
        _ => Outcome::Skipped("lease lost".to_owned()),
    }
}

/// A cancelled job's parts (object and Parquet, every window of its
/// plan, whether written or not: absent keys are no error), in bulk
/// deletes. What a failure here leaves, the `parts/` lifecycle rule takes.
async fn remove_parts<P: Platform>(deps: &Deps<'_, P>, job: &Job) {
    let n = u32::try_from(job.chunks_total).unwrap_or(0);
    let keys: Vec<String> = (0..n)
        .flat_map(|i| [part_key(&job.id, i), parquet_part_key(&job.id, i)])
        .collect();
    for batch in keys.chunks(crate::ports::MAX_DELETE_KEYS) {
        if let Err(e) = deps.blobs.delete(batch).await {
            (deps.log)(&format!(
                "could not remove the parts of cancelled {}: {e}",
                job.id
            ));
        }
    }
}

async fn done_chunks<D: SqlDb>(db: &D, id: &JobId) -> Result<Vec<DoneChunk>, Error> {
    Ok(store::decode(
        db.query(&store::select_done_chunks(id)).await?,
    )?)
}

/// Runs the job's pending chunks within the budget, then hands over or
/// finalizes.
async fn work<P: Platform>(
    deps: &Deps<'_, P>,
    budget: &Budget,
    job: &Job,
    lease: &Lease<'_>,
    msg: &JobMessage,
) -> Result<Outcome, Error> {
    let started = deps.clock.now_ms();
    let plan = chunk::plan(job.start_ms, job.end_ms, job.window_days);
    let mut done = done_chunks(deps.db, &job.id).await?;
    let have: HashSet<u32> = done.iter().map(|c| c.idx).collect();
    let pending: Vec<Chunk> = plan
        .iter()
        .copied()
        .filter(|c| !have.contains(&c.idx))
        .collect();
    let fetch = if pending.is_empty() {
        None
    } else {
        Some(resolve_plan(deps, job, lease, plan.len()).await?)
    };
    let run = match &fetch {
        Some(f) => run_chunks(deps, budget, job, lease, f, &pending).await,
        None => ChunkRun::default(),
    };
    done.extend(run.committed.iter().copied());
    (deps.log)(
        &serde_json::json!({
            "event": "invocation",
            "job_id": job.id,
            "hop": msg.hop,
            "plan": fetch.as_ref().map(|f| f.plan.as_str()),
            "chunks_started": run.started,
            "chunks_done": done.len(),
            "chunks_total": plan.len(),
            "ms": deps.clock.now_ms() - started,
        })
        .to_string(),
    );
    if let Some(e) = run.failure {
        return Err(e);
    }
    if done.len() < plan.len() {
        return hand_over(deps, lease, msg, done.len(), plan.len()).await;
    }
    done.sort_by_key(|c| c.idx);
    match assemble::finalize(deps, budget, job, lease, &done).await? {
        assemble::Finalized::Completed => Ok(Outcome::Completed),
        assemble::Finalized::OutOfBudget => {
            hand_over(deps, lease, msg, done.len(), plan.len()).await
        }
        assemble::Finalized::Healed(n) => {
            hand_over(deps, lease, msg, done.len() - n, plan.len()).await
        }
    }
}

/// How this job's windows are fetched: the plan, the walk's page size and
/// the site's size, with the job's points ready for the page parser.
struct Fetch {
    plan: Plan,
    page_size: u32,
    site_points: u64,
    points: PointSet,
    /// Every collecting point of the site, when a site walk keeps them all.
    wide: Option<Wide>,
}

/// What a site walk keeps for the sample store when the site's collecting
/// points fit a window's memory: all of them, not only the job's (the walk
/// downloads them anyway).
struct Wide {
    /// The site's collecting points and the job's, sorted.
    names: Vec<PointName>,
    /// The same, for the page parser.
    points: PointSet,
    /// Where each of the job's points is in `names`.
    job_at: Vec<usize>,
}

/// The [`Wide`] set of a site walk: none unless the store is on, the site's
/// names are known, they add to the job's, and a window of all of them
/// (at `UPSTREAM_SAMPLE_SECS`) stays under a quarter of
/// `CHUNK_MAX_SAMPLES`, so a site denser than assumed still fits.
async fn wide_set<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    plan: Plan,
) -> Result<Option<Wide>, Error> {
    if plan != Plan::Site || deps.cfg.store_max_bytes == 0 {
        return Ok(None);
    }
    let rows = deps
        .db
        .query(&store::select_site_names(job.site.as_str()))
        .await?;
    let names: Vec<String> = rows
        .first()
        .and_then(|r| r.get("names"))
        .and_then(serde_json::Value::as_str)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut all: Vec<PointName> = names
        .iter()
        .filter_map(|n| PointName::parse(n).ok())
        .collect();
    all.extend(job.points.iter().cloned());
    all.sort();
    all.dedup();
    let per_day = (86_400 / deps.cfg.upstream_sample_secs.max(1)).max(1);
    let window = all.len() as u64 * per_day * u64::from(job.window_days);
    if all.len() <= job.points.len() || window > deps.cfg.chunk_max_samples / 4 {
        return Ok(None);
    }
    let job_at: Option<Vec<usize>> = job
        .points
        .iter()
        .map(|p| all.binary_search(p).ok())
        .collect();
    Ok(job_at.map(|job_at| Wide {
        points: PointSet::new(&all),
        names: all,
        job_at,
    }))
}

/// The job's plan: the one recorded, or (at its first claim) the one
/// [`plan::choose`] picks from the site's size, recorded for good. The
/// site's size comes from D1's cache or from the upstream, which also
/// proves the site exists: ACE's 403 for an unknown site fails the job
/// here, before any window, and never touches the circuit.
async fn resolve_plan<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    lease: &Lease<'_>,
    windows: usize,
) -> Result<Fetch, Error> {
    let points = PointSet::new(&job.points);
    if let (Some(plan), Some(page_size)) = (job.plan, job.page_size) {
        let site_points = job.site_points.unwrap_or(0).max(0) as u64;
        let page_size = u32::try_from(page_size).unwrap_or(plan::PAGE_SIZES[0]);
        return Ok(Fetch {
            plan,
            page_size,
            site_points,
            points,
            wide: wide_set(deps, job, plan).await?,
        });
    }
    let mut traffic = Traffic::default();
    let info = site_info(deps, job, lease, &mut traffic).await?;
    let shape = JobShape {
        points: job.points.len() as u64,
        max_name_bytes: job
            .points
            .iter()
            .map(|p| p.as_str().len() as u64)
            .max()
            .unwrap_or(0),
        days: ((job.end_ms - job.start_ms) as u64).div_ceil(crate::domain::DAY_MS as u64),
        windows: windows as u64,
    };
    let chosen = plan::choose(deps.cfg, job.plan_requested, &info, &shape);
    let page_size = plan::page_size(deps.cfg, &info);
    let stmt = store::set_plan(
        lease.holder(),
        chosen,
        page_size,
        info.points,
        (traffic.bytes, traffic.requests),
    );
    fenced(deps.db.execute(&stmt).await?)?;
    (deps.log)(
        &serde_json::json!({
            "event": "plan", "job_id": job.id, "plan": chosen.as_str(),
            "asked": job.plan_requested.as_str(), "site_points": info.points,
            "job_points": job.points.len(), "page_size": page_size,
        })
        .to_string(),
    );
    Ok(Fetch {
        plan: chosen,
        page_size,
        site_points: info.points,
        points,
        wide: wide_set(deps, job, chosen).await?,
    })
}

/// The site's size: D1's cached copy while fresh, else the upstream's
/// catalogue (through the circuit, like any upstream call), cached.
async fn site_info<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    lease: &Lease<'_>,
    traffic: &mut Traffic,
) -> Result<SiteInfo, Error> {
    let now = deps.clock.now_ms();
    let cached = store::select_site_info(job.site.as_str(), now - deps.cfg.site_info_ttl_ms);
    let rows: Vec<SiteInfo> = store::decode(deps.db.query(&cached).await?)?;
    if let Some(info) = rows.into_iter().next() {
        return Ok(info);
    }
    let ace = Ace::new(deps.http, deps.clock, deps.cfg);
    let (info, names) = upstream_result(
        deps,
        job,
        lease,
        ace.site_info(job.site.as_str(), traffic).await,
    )
    .await?;
    let names = serde_json::to_string(&names).map_err(|e| Error::Codec(e.to_string()))?;
    let cache = store::upsert_site_info(job.site.as_str(), &info, Some(&names), now);
    deps.db.execute(&cache).await?;
    Ok(info)
}

/// An upstream call's result, told to the circuit: a success resets it,
/// a failure of the upstream itself counts (and may open it).
async fn upstream_result<P: Platform, T>(
    deps: &Deps<'_, P>,
    job: &Job,
    lease: &Lease<'_>,
    result: Result<T, Error>,
) -> Result<T, Error> {
    match result {
        Ok(v) => {
            lease.circuit.success(deps).await?;
            Ok(v)
        }
        Err(e) => {
            let opened = lease.circuit.failure(deps, job.site.as_str(), &e).await?;
            Err(match opened {
                Some((until, reason)) => Error::UpstreamUnavailable { until, reason },
                None => e,
            })
        }
    }
}

/// Out of budget: hand over to a fresh invocation. Release the lease first
/// so the continuation can claim at once; if the send fails the message is
/// retried and resumes from the same checkpoint.
async fn hand_over<P: Platform>(
    deps: &Deps<'_, P>,
    lease: &Lease<'_>,
    msg: &JobMessage,
    done: usize,
    total: usize,
) -> Result<Outcome, Error> {
    let now = deps.clock.now_ms();
    let release = store::release_lease(lease.holder(), now, now);
    fenced(deps.db.execute(&release).await?)?;
    let next = JobMessage {
        job_id: msg.job_id.clone(),
        hop: msg.hop + 1,
    };
    deps.queue.send(&next, 0).await?;
    Ok(Outcome::Continued { done, total })
}

/// What a run of chunks did.
#[derive(Default)]
struct ChunkRun {
    started: u32,
    committed: Vec<DoneChunk>,
    failure: Option<Error>,
}

/// What one window costs in D1 statements at most: its aggregate rows
/// (25 a day per point) in statements of [`AGG_ROWS_PER_STATEMENT`], the
/// traffic and the checkpoint.
fn window_statements(job: &Job, c: &Chunk) -> u64 {
    let days = ((c.end - c.start) as u64).div_ceil(crate::domain::DAY_MS as u64);
    let rows = days * 25 * job.points.len() as u64;
    rows.div_ceil(AGG_ROWS_PER_STATEMENT as u64) + 2 + STORE_STATEMENTS + LIVENESS_STATEMENTS
}

/// A window's liveness reads: before its part is written, and before its
/// pages about once a second (shared by the windows in flight).
const LIVENESS_STATEMENTS: u64 = 2;

/// A window's sample-store statements at most: the lookup, forgetting a
/// lost entry, its index rows, and marking and counting its use.
const STORE_STATEMENTS: u64 = 8;

/// A window's sample-store R2 calls besides its reads (one per entry it
/// reads, at most one per point): writing its own entry.
const STORE_SUBREQUESTS: u64 = 3;

/// Runs up to six chunks at once while the budget lasts. Each chunk
/// reserves its statements and subrequests when it starts. After a failure
/// no new chunk starts, but those in flight finish and checkpoint.
async fn run_chunks<P: Platform>(
    deps: &Deps<'_, P>,
    budget: &Budget,
    job: &Job,
    lease: &Lease<'_>,
    fetch: &Fetch,
    pending: &[Chunk],
) -> ChunkRun {
    // `CHUNKS_PER_INVOCATION`, 0 for no cap.
    let cap = Some(deps.cfg.chunks_per_invocation)
        .filter(|&n| n > 0)
        .unwrap_or(u32::MAX);
    // A window's requests, as the largest one so far took.
    let requests = Cell::new(first_guess(job, fetch));
    let started = Cell::new(0u32);
    let failed = Cell::new(false);
    let mut out = ChunkRun::default();
    {
        let mut runs = stream::iter(pending.iter().copied())
            .map(|c| {
                let cost = Cost {
                    statements: window_statements(job, &c),
                    subrequests: requests.get()
                        + 1
                        + u64::from(deps.cfg.parquet_results)
                        + STORE_SUBREQUESTS
                        + job.points.len() as u64,
                };
                let ok = !failed.get() && started.get() < cap;
                (
                    c,
                    ok.then(|| budget.reserve(cost, deps.clock.now_ms()))
                        .flatten(),
                )
            })
            .take_while(|(_, r)| futures::future::ready(r.is_some()))
            .map(|(c, reservation)| {
                started.set(started.get() + 1);
                let requests = &requests;
                async move {
                    let r = run_chunk(deps, job, lease, fetch, c).await;
                    drop(reservation);
                    if let Ok((_, n)) = &r {
                        requests.set(requests.get().max(*n));
                    }
                    r.map(|(d, _)| d)
                }
            })
            .buffer_unordered(budget.window_share(deps.cfg.upstream_concurrency.clamp(1, 6)));
        collect(&mut runs, &failed, &mut out).await;
    }
    out.started = started.get();
    out
}

/// Takes each finished chunk's result: commits in `out`, the first failure
/// kept and `failed` set, so no new chunk starts. A fence ends the run at
/// once: this invocation no longer holds the job.
async fn collect(
    runs: &mut (impl stream::Stream<Item = Result<DoneChunk, Error>> + Unpin),
    failed: &Cell<bool>,
    out: &mut ChunkRun,
) {
    while let Some(r) = runs.next().await {
        match r {
            Ok(d) => out.committed.push(d),
            Err(e) => {
                failed.set(true);
                let fenced = matches!(e, Error::Fenced);
                out.failure.get_or_insert(e);
                if fenced {
                    break;
                }
            }
        }
    }
}

/// A window's requests before any ran: one per point under the point
/// plan, one page under the site walk.
fn first_guess(job: &Job, fetch: &Fetch) -> u64 {
    match fetch.plan {
        Plan::Point => job.points.len() as u64,
        Plan::Site => 1,
    }
}

/// A window's output: its part (one block per point, in point order),
/// its Parquet part (when results are written as Parquet too), its
/// aggregates, each point's sample count, and the blocks of its settled
/// span for the sample store (when it writes an entry).
struct Window {
    part: Vec<u8>,
    /// Each point's block size in `part`.
    block_bytes: Vec<u64>,
    parquet: Option<Vec<u8>>,
    aggregates: Vec<(u32, Aggregate)>,
    counts: Vec<u64>,
    stored: Vec<(Vec<u8>, u64)>,
}

/// Sorts, deduplicates, aggregates and encodes each point's samples,
/// dropping each as soon as its block is written. With `store_until`, each
/// point's samples before it are encoded for the store too (the window's
/// own block when that is the whole window). With `parquet` (the job's
/// point names), each block's samples, decoded as a reader of the object
/// decodes them, become the point's row group of the Parquet part.
fn encode_window(
    c: &Chunk,
    outs: Vec<Samples>,
    store_until: Option<EpochMs>,
    parquet: Option<&[PointName]>,
) -> Result<Window, Error> {
    let mut w = Window {
        part: Vec::new(),
        block_bytes: Vec::with_capacity(outs.len()),
        parquet: None,
        aggregates: Vec::new(),
        counts: Vec::with_capacity(outs.len()),
        stored: Vec::new(),
    };
    let mut rows = parquet
        .map(|_| PartWriter::new())
        .transpose()
        .map_err(parquet_err)?;
    for (p, mut samples) in outs.into_iter().enumerate() {
        let p = p as u32;
        let codec_err =
            |e: codec::CodecError| Error::Codec(format!("chunk {} point {p}: {e}", c.idx));
        sort_dedup(&mut samples);
        w.aggregates
            .extend(aggregate(&samples).into_iter().map(|a| (p, a)));
        let built = codec::build_block(p, &samples);
        let block = codec::gzip_block(&built).map_err(codec_err)?;
        if let (Some(rows), Some(names)) = (rows.as_mut(), parquet) {
            let decoded = codec::expand_block(&built).map_err(codec_err)?;
            rows.push_point(names[p as usize].as_str(), decoded)
                .map_err(parquet_err)?;
        }
        if let Some(stored) = stored_block(p, &samples, &block, c, store_until) {
            w.stored.push(stored.map_err(codec_err)?);
        }
        w.part.extend_from_slice(&block);
        w.block_bytes.push(block.len() as u64);
        w.counts.push(samples.len() as u64);
    }
    w.parquet = rows
        .map(PartWriter::finish)
        .transpose()
        .map_err(parquet_err)?;
    Ok(w)
}

/// A point's block for the store: the window's own when the entry covers
/// it, its samples before `until` otherwise, none without an entry.
fn stored_block(
    p: u32,
    samples: &Samples,
    block: &[u8],
    c: &Chunk,
    until: Option<EpochMs>,
) -> Option<Result<(Vec<u8>, u64), codec::CodecError>> {
    match until {
        Some(until) if until < c.end => {
            let n = samples.partition_point(|s| s.ts < until);
            Some(codec::encode_block(p, &samples.prefix(n)).map(|b| (b, n as u64)))
        }
        Some(_) => Some(Ok((block.to_vec(), samples.len() as u64))),
        None => None,
    }
}

fn parquet_err(e: anyhow::Error) -> Error {
    Error::Codec(format!("writing the Parquet part: {e:#}"))
}

/// A window's samples, every point's, from the store and the upstream.
struct Gathered<'f> {
    outs: Vec<Samples>,
    read: settled::Read,
    traffic: Traffic,
    /// A site walk's other points (for the store), when it kept them.
    wide: Option<(&'f Wide, Vec<Samples>)>,
    /// Where the window's new store entry ends, if it writes one.
    until: Option<EpochMs>,
    now: EpochMs,
}

/// Reads what the store holds of the window and fetches the rest: a site
/// walk from one instant for every point, per point from where its own
/// stored span ends.
async fn gather<'f, P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    lease: &Lease<'_>,
    fetch: &'f Fetch,
    c: &Chunk,
) -> Result<Gathered<'f>, Error> {
    let mut outs: Vec<Samples> = job.points.iter().map(|_| Samples::new()).collect();
    let shared = fetch.plan == Plan::Site;
    let read = settled::read(deps, job, c, &mut outs, shared).await?;
    let now = deps.clock.now_ms();
    let until = settled::store_until(deps.cfg, c, now, &read);
    // A walk of the whole window that will be stored keeps every point it sees.
    let wide = fetch
        .wide
        .as_ref()
        .filter(|_| until.is_some() && !read.any(c));
    let (traffic, wide) = match wide {
        Some(w) => {
            let (traffic, others) = fetch_wide(deps, job, lease, fetch, w, c, &mut outs).await?;
            (traffic, Some((w, others)))
        }
        None => {
            let span = (&read.upto[..], c.end);
            (
                fetch_rest(deps, job, lease, fetch, span, &mut outs).await?,
                None,
            )
        }
    };
    Ok(Gathered {
        outs,
        read,
        traffic,
        wide,
        until,
        now,
    })
}

/// Fetches, aggregates, encodes and checkpoints one window of every point;
/// returns its checkpoint and the upstream requests it took.
async fn run_chunk<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    lease: &Lease<'_>,
    fetch: &Fetch,
    c: Chunk,
) -> Result<(DoneChunk, u64), Error> {
    lease.heartbeat(deps).await?;
    let g = gather(deps, job, lease, fetch, &c).await?;
    let (read, traffic) = (&g.read, g.traffic);
    let parquet = deps.cfg.parquet_results.then_some(&job.points[..]);
    let mut w = encode_window(&c, g.outs, g.until, parquet)?;
    let total: u64 = w.counts.iter().sum();
    let sources = Sources {
        store_samples: read.samples as i64,
        store_windows: i64::from(read.any(&c)),
        upstream_samples: (total - read.samples.min(total)) as i64,
        upstream_windows: i64::from(read.fetches(&c)),
    };
    let mut store_rows = store_use(deps, job, &c, read, g.now);
    if let Some(until) = g.until {
        let mine = std::mem::take(&mut w.stored);
        let (names, blocks) = match g.wide {
            Some((wide, others)) => (
                &wide.names[..],
                merge_blocks(&c, wide, mine, others, until)?,
            ),
            None => (&job.points[..], mine),
        };
        let entry = settled::NewEntry {
            until,
            names,
            blocks,
        };
        let cost = entry_cost(&entry, read, traffic, sources.upstream_samples);
        store_rows.extend(settled::write(deps, job, &c, entry, cost).await?);
    }
    let done = DoneChunk {
        idx: c.idx,
        samples: total,
        bytes: w.part.len() as u64,
        parquet_bytes: w.parquet.as_ref().map_or(0, |p| p.len() as u64),
    };
    // No part for a job cancelled (or taken over) while this window ran.
    lease.alive(deps).await?;
    write_parts(deps.blobs, &job.id, c.idx, w.part, w.parquet).await?;
    let commit = Commit {
        at: deps.clock.now_ms(),
        aggregates: &w.aggregates,
        counts: &w.counts,
        block_bytes: &w.block_bytes,
        done,
        traffic,
        sources,
        store: store_rows,
    };
    commit_chunk(deps.db, job, lease, commit).await?;
    lease.progressed.set(true);
    Ok((done, traffic.requests))
}

/// Writes a window's part, and its Parquet part when it has one.
async fn write_parts<B: BlobStore>(
    blobs: &B,
    id: &JobId,
    idx: u32,
    part: Vec<u8>,
    parquet: Option<Vec<u8>>,
) -> Result<(), Error> {
    let meta = |content_type: &str| BlobMeta {
        content_type: content_type.to_owned(),
        custom: vec![],
    };
    blobs
        .put(&part_key(id, idx), part, &meta("application/gzip"))
        .await?;
    if let Some(rows) = parquet {
        let key = parquet_part_key(id, idx);
        blobs.put(&key, rows, &meta(PARQUET_MEDIA_TYPE)).await?;
    }
    Ok(())
}

/// Fetches each point of the window from where the store left it
/// (`from[i]`) to `to`, appending to `outs`: one query per distinct start,
/// none when the store gave the whole window.
async fn fetch_rest<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    lease: &Lease<'_>,
    fetch: &Fetch,
    (from, to): (&[EpochMs], EpochMs),
    outs: &mut [Samples],
) -> Result<Traffic, Error> {
    let mut traffic = Traffic::default();
    let mut starts: Vec<EpochMs> = from.iter().copied().filter(|s| *s < to).collect();
    starts.sort_unstable();
    starts.dedup();
    for start in starts {
        let group: Vec<usize> = (0..from.len()).filter(|i| from[*i] == start).collect();
        let names: Vec<PointName> = group.iter().map(|i| job.points[*i].clone()).collect();
        let subset = (group.len() < job.points.len()).then(|| PointSet::new(&names));
        let q = WindowQuery {
            site: job.site.as_str(),
            names: &names,
            points: subset.as_ref().unwrap_or(&fetch.points),
            start,
            end: to,
            plan: fetch.plan,
            page_size: fetch.page_size,
            site_points: fetch.site_points,
        };
        let mut mine: Vec<Samples> = group
            .iter()
            .map(|i| std::mem::take(&mut outs[*i]))
            .collect();
        let ace = Ace::new(deps.http, deps.clock, deps.cfg);
        let fetched = ace
            .fetch_window(&q, &mut mine, &mut traffic, || lease.heartbeat(deps))
            .await;
        for (i, samples) in group.iter().zip(mine) {
            outs[*i] = samples;
        }
        upstream_result(deps, job, lease, fetched).await?;
    }
    Ok(traffic)
}

/// Walks the whole window for every point of the site ([`Wide`]): the
/// job's points go to `outs`, the others come back for the store.
async fn fetch_wide<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    lease: &Lease<'_>,
    fetch: &Fetch,
    wide: &Wide,
    c: &Chunk,
    outs: &mut [Samples],
) -> Result<(Traffic, Vec<Samples>), Error> {
    let mut all: Vec<Samples> = wide.names.iter().map(|_| Samples::new()).collect();
    let mut traffic = Traffic::default();
    let q = WindowQuery {
        site: job.site.as_str(),
        names: &wide.names,
        points: &wide.points,
        start: c.start,
        end: c.end,
        plan: fetch.plan,
        page_size: fetch.page_size,
        site_points: fetch.site_points,
    };
    let ace = Ace::new(deps.http, deps.clock, deps.cfg);
    let fetched = ace
        .fetch_window(&q, &mut all, &mut traffic, || lease.heartbeat(deps))
        .await;
    upstream_result(deps, job, lease, fetched).await?;
    for (out, &at) in outs.iter_mut().zip(&wide.job_at) {
        *out = std::mem::take(&mut all[at]);
    }
    Ok((traffic, all))
}

/// The entry's blocks in [`Wide`] order: the job's own (already encoded)
/// where its points are, the others' encoded here, each over the settled
/// span `[c.start, until)`.
fn merge_blocks(
    c: &Chunk,
    wide: &Wide,
    mine: Vec<(Vec<u8>, u64)>,
    others: Vec<Samples>,
    until: EpochMs,
) -> Result<Vec<(Vec<u8>, u64)>, Error> {
    let mut mine = mine.into_iter();
    let mut blocks = Vec::with_capacity(others.len());
    for (i, mut samples) in others.into_iter().enumerate() {
        if wide.job_at.contains(&i) {
            blocks.push(mine.next().unwrap_or_default());
            continue;
        }
        sort_dedup(&mut samples);
        let n = samples.partition_point(|s| s.ts < until);
        let block = codec::encode_block(i as u32, &samples.prefix(n))
            .map_err(|e| Error::Codec(format!("chunk {} point {i}: {e}", c.idx)))?;
        blocks.push((block, n as u64));
    }
    Ok(blocks)
}

/// What a new entry cost upstream: what its stored samples cost when they
/// were fetched, plus this window's traffic pro rata of the samples it
/// stores of those fetched (all of it for a walk that kept every point).
fn entry_cost(
    entry: &settled::NewEntry<'_>,
    read: &settled::Read,
    traffic: Traffic,
    fetched: i64,
) -> u64 {
    let samples: u64 = entry.blocks.iter().map(|b| b.1).sum();
    let fresh = u128::from(samples.saturating_sub(read.samples));
    let fetched = u128::from(fetched.max(1) as u64);
    let share = u128::from(traffic.bytes) * fresh.min(fetched) / fetched;
    read.saved_bytes + share as u64
}

/// A window's use of the store, for its commit batch: the entries it read
/// are marked used, and the store's hit and miss counts move.
fn store_use<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    c: &Chunk,
    read: &settled::Read,
    now: EpochMs,
) -> Vec<Statement> {
    let mut out = Vec::new();
    if !read.keys.is_empty() {
        let keys = serde_json::json!(read.keys).to_string();
        out.push(store::settled::touch(&keys, now));
    }
    let settled_span = c.start < settled::settled_until(deps.cfg.settle_ms, now);
    let hit = read.any(c);
    if hit || (settled_span && !job.force && deps.cfg.store_max_bytes > 0) {
        out.push(store::settled::count_use(hit, !hit, read.saved_bytes));
    }
    out
}

/// What one window's commit batch writes.
struct Commit<'a> {
    /// When it commits (the job's progress time).
    at: EpochMs,
    aggregates: &'a [(u32, Aggregate)],
    counts: &'a [u64],
    block_bytes: &'a [u64],
    done: DoneChunk,
    traffic: Traffic,
    sources: Sources,
    /// The sample store's statements (index rows, use), before the checkpoint.
    store: Vec<Statement>,
}

/// One batch: the window's aggregate rows (one statement per
/// [`AGG_ROWS_PER_STATEMENT`]), its traffic, the store's rows and its
/// checkpoint, the job's rows fenced. A cancel or a takeover before it
/// writes nothing of the job's.
async fn commit_chunk<D: SqlDb>(
    db: &D,
    job: &Job,
    lease: &Lease<'_>,
    commit: Commit<'_>,
) -> Result<(), Error> {
    let Commit {
        at,
        aggregates,
        counts,
        block_bytes,
        done,
        traffic,
        sources,
        store: store_rows,
    } = commit;
    let target = AggTarget {
        owner: &job.owner,
        site: job.site.as_str(),
        points: &job.points,
        range: (job.start_ms, job.end_ms),
    };
    let mut stmts = Vec::new();
    for rows in aggregates.chunks(AGG_ROWS_PER_STATEMENT) {
        let rows: Vec<(u32, &Aggregate)> = rows.iter().map(|(p, a)| (*p, a)).collect();
        stmts.push(store::upsert_aggregates(lease.holder(), target, &rows)?);
    }
    stmts.push(store::add_traffic(
        lease.holder(),
        (traffic.bytes, traffic.requests),
        &sources,
        at,
    ));
    stmts.extend(store_rows);
    stmts.push(store::insert_chunk(
        lease.holder(),
        done.idx,
        (done.bytes, done.parquet_bytes),
        (counts, block_bytes),
    ));
    let changed = db.batch(&stmts).await?;
    fenced(changed.last().copied().unwrap_or(0))
}

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
//! again as it is ("deferred") for a fresh invocation.

use std::cell::Cell;
use std::collections::HashSet;

use futures::stream::{self, StreamExt};

use crate::aggregate::aggregate;
use crate::budget::{Budget, Cost, Limits, Metered};
use crate::chunk::{self, Chunk};
use crate::codec;
use crate::domain::{EpochMs, JobId};
use crate::error::{Disposition, Error, StoreError};
use crate::job::{Job, JobStatus};
use crate::ports::{BlobMeta, BlobStore, Clock, HttpClient, JobMessage, JobQueue, SqlDb};
use crate::sample::{sort_dedup, Samples};
use crate::service::lease::{fenced, Lease};
pub use crate::service::lease::{part_key, DoneChunk};
use crate::service::{assemble, circuit, dead_letter, transition_log, Deps};
use crate::store::{self, AggTarget};
use crate::upstream::{fetch_chunk, ChunkQuery};

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

/// Handles the messages of one invocation under one shared [`Budget`].
pub async fn handle_batch<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    messages: &[(JobMessage, u32)],
    log: &dyn Fn(&str),
) -> BatchReport
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    let budget = Budget::new(Limits::from_config(deps.cfg), deps.clock.now_ms());
    let (db, blobs) = (
        Metered::new(deps.db, &budget),
        Metered::new(deps.blobs, &budget),
    );
    let (queue, http) = (
        Metered::new(deps.queue, &budget),
        Metered::new(deps.http, &budget),
    );
    let metered = Deps {
        db: &db,
        blobs: &blobs,
        queue: &queue,
        http: &http,
        clock: deps.clock,
        cfg: deps.cfg,
    };
    let mut handled = Vec::with_capacity(messages.len());
    for (msg, attempt) in messages {
        handled.push(handle_one(&metered, &budget, msg, *attempt, log).await);
    }
    let usage = budget.usage(deps.clock.now_ms(), 0);
    for w in usage.warnings() {
        log(
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
pub async fn handle<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    msg: &JobMessage,
    attempt: u32,
    log: &dyn Fn(&str),
) -> Handled
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    let mut report = handle_batch(deps, &[(msg.clone(), attempt)], log).await;
    report.handled.pop().unwrap_or(Handled {
        outcome: Err(Error::Queue("no message was handled".to_owned())),
        disposition: Disposition::Retry { delay_seconds: 1 },
    })
}

/// What a message costs before its first chunk, at least: the circuit
/// read, the claim, the checkpoint read and one chunk, with the control
/// reserve behind it.
const MESSAGE_FLOOR: Cost = Cost {
    statements: crate::budget::CONTROL_STATEMENTS + 5,
    subrequests: crate::budget::CONTROL_SUBREQUESTS + 2,
};

async fn handle_one<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    budget: &Budget,
    msg: &JobMessage,
    attempt: u32,
    log: &dyn Fn(&str),
) -> Handled
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    if budget.expired(deps.clock.now_ms()) || !budget.can_afford(MESSAGE_FLOOR) {
        return defer(deps.queue, msg).await;
    }
    let (dirty, probe) = match circuit::gate(deps.db, deps.clock).await {
        Ok(circuit::Gate::Pass { dirty, probe }) => (dirty, probe),
        Ok(circuit::Gate::Wait { until, reason }) => {
            return wait_for_upstream(deps, msg, until, &reason).await
        }
        Err(e) => return settle(deps, None, msg, attempt, Err(e), log).await,
    };
    let mut bytes = deps.clock.random_bytes();
    bytes[0] |= 1; // never all zero
    let lease = Lease {
        id: &msg.job_id,
        token: hex::encode(bytes),
        renewed: Cell::new(deps.clock.now_ms()),
        progressed: Cell::new(false),
        circuit: circuit::Tracker::new(dirty, probe),
        log,
    };
    let job = match claim(deps, &lease, msg, attempt, log).await {
        Ok(Claimed::Job(job)) => job,
        Ok(Claimed::Not(outcome)) => return Handled::ack(outcome),
        Err(e) => return settle(deps, None, msg, attempt, Err(e), log).await,
    };
    let outcome = work(deps, budget, &job, &lease, msg, log).await;
    settle(deps, Some((&lease, &*job)), msg, attempt, outcome, log).await
}

/// The circuit is open: mark the job as waiting and send the message again,
/// unchanged, for when it may let requests through. Nothing is claimed.
async fn wait_for_upstream<D: SqlDb, B, Q: JobQueue, H, C: Clock>(
    deps: &Deps<'_, D, B, Q, H, C>,
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
            disposition: Disposition::for_error(&e, 1),
            outcome: Err(e),
        },
    }
}

enum Claimed {
    Job(Box<Job>),
    Not(Outcome),
}

/// Claims the job for this message, or says why not.
async fn claim<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    lease: &Lease<'_>,
    msg: &JobMessage,
    attempt: u32,
    log: &dyn Fn(&str),
) -> Result<Claimed, Error>
where
    D: SqlDb,
    B: BlobStore,
    H: HttpClient,
    C: Clock,
{
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
            log(&transition_log(
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
                dead_letter::dead_letter(deps, Some(id), &reason, &raw, log).await?;
                Outcome::DeadLettered(reason)
            }
            Some(j) if j.status.is_terminal() => Outcome::Skipped(format!("job is {}", j.status)),
            Some(_) => Outcome::Skipped("job is leased by another invocation".to_owned()),
        },
    ))
}

/// Turns a message's outcome into its disposition. A holder's transient
/// failure reschedules the job itself ([`reschedule`]); an error before the
/// claim leaves the message to the queue's retry; a permanent one takes the
/// terminal path.
async fn settle<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    held: Option<(&Lease<'_>, &Job)>,
    msg: &JobMessage,
    attempt: u32,
    outcome: Result<Outcome, Error>,
    log: &dyn Fn(&str),
) -> Handled
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    let err = match outcome {
        Ok(o) => return Handled::ack(o),
        Err(Error::Fenced) => return Handled::ack(why_fenced(deps, &msg.job_id, log).await),
        Err(e) => e,
    };
    let lease = held.map(|(l, _)| l);
    match (Disposition::for_error(&err, attempt), held) {
        (Disposition::DeadLetter, _) => {
            dead_end(deps, lease, msg, attempt, &err.to_string(), log).await
        }
        (_, Some((lease, job))) => reschedule(deps, lease, job, msg, err, log).await,
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
/// counts a stall, and `MAX_STALLED_DELIVERIES` stalls in a row kill the job.
async fn reschedule<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    lease: &Lease<'_>,
    job: &Job,
    msg: &JobMessage,
    err: Error,
    log: &dyn Fn(&str),
) -> Handled
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    let progressed = lease.progressed.get();
    // Waiting out an open circuit is not a stall: no attempt is burned.
    let waiting = matches!(err, Error::UpstreamUnavailable { .. });
    let stalls = if progressed || waiting {
        job.stalls * i64::from(!progressed)
    } else {
        job.stalls + 1
    };
    if !progressed && stalls >= i64::from(deps.cfg.max_stalled_deliveries.max(1)) {
        let reason = format!("no progress in {stalls} deliveries in a row: {err}");
        return dead_end(deps, Some(lease), msg, stalls as u32, &reason, log).await;
    }
    let delay = match &err {
        Error::UpstreamUnavailable { until, .. } => seconds_until(*until, deps.clock.now_ms()),
        _ => next_delay(&err, progressed, stalls),
    }
    .min(MAX_DELAY_SECONDS);
    let stalled = !progressed && !waiting;
    if let Err(e) = record_failure(deps, lease, msg, &err, delay, stalled, log).await {
        return match e {
            Error::Fenced => Handled::ack(why_fenced(deps, lease.id, log).await),
            e => Handled {
                disposition: Disposition::for_error(&e, 1),
                outcome: Err(e),
            },
        };
    }
    if let Error::UpstreamUnavailable { until, reason } = &err {
        // The job view says what it waits for, and until when.
        let mark = store::mark_waiting(lease.id, *until, reason);
        if let Err(e) = deps.db.execute(&mark).await {
            log(&format!("could not mark {} as waiting: {e}", lease.id));
        }
    }
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

/// After progress: the upstream's `Retry-After`, or at once. Without
/// progress: backoff by the stall count, never under `Retry-After`.
fn next_delay(err: &Error, progressed: bool, stalls: i64) -> u32 {
    let hint = match err.class() {
        crate::error::ErrorClass::Transient { retry_after_ms } => retry_after_ms.unwrap_or(0),
        crate::error::ErrorClass::Permanent => 0,
    };
    let delay = match (
        progressed,
        Disposition::for_error(err, stalls.max(1) as u32),
    ) {
        (true, _) => hint.div_ceil(1000).min(u64::from(MAX_DELAY_SECONDS)) as u32,
        (false, Disposition::Retry { delay_seconds }) => delay_seconds,
        (false, _) => 1,
    };
    delay.min(MAX_DELAY_SECONDS)
}

/// Permanent: straight to the terminal path, no more retries. A holder
/// takes it only while it still holds the job.
async fn dead_end<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    lease: Option<&Lease<'_>>,
    msg: &JobMessage,
    attempt: u32,
    reason: &str,
    log: &dyn Fn(&str),
) -> Handled
where
    D: SqlDb,
    B: BlobStore,
    H: HttpClient,
    C: Clock,
{
    let reason = reason.to_owned();
    let raw = serde_json::to_value(msg).unwrap_or_default();
    let token = lease.map(|l| l.token.as_str());
    let id = Some(&msg.job_id);
    match dead_letter::dead_letter_as(deps, id, token, &reason, &raw, log).await {
        Ok(dead_letter::DeadOutcome::NotApplicable(s)) => {
            Handled::ack(Outcome::Skipped(format!("job is {s}")))
        }
        Ok(_) => Handled::ack(Outcome::DeadLettered(reason)),
        // The terminal path itself failed transiently: retry it.
        Err(e2) => Handled {
            disposition: Disposition::for_error(&e2, attempt),
            outcome: Err(e2),
        },
    }
}

async fn record_failure<D: SqlDb, B, Q, H, C: Clock>(
    deps: &Deps<'_, D, B, Q, H, C>,
    lease: &Lease<'_>,
    msg: &JobMessage,
    err: &Error,
    delay: u32,
    stalled: bool,
    log: &dyn Fn(&str),
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
    log(&transition_log(
        lease.id.as_str(),
        "processing",
        "failed",
        Some(&detail),
    ));
    Ok(())
}

/// After a fenced write: cancelled, or someone else's now.
async fn why_fenced<D: SqlDb, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    id: &JobId,
    log: &dyn Fn(&str),
) -> Outcome {
    match store::get_job(deps.db, store::select_job(id)).await {
        Ok(Some(j)) if j.status == JobStatus::Cancelled => {
            log(&transition_log(
                id.as_str(),
                "processing",
                "cancelled",
                None,
            ));
            Outcome::Cancelled
        }
        Ok(Some(j)) => Outcome::Skipped(format!("lease lost (job is {})", j.status)),
        _ => Outcome::Skipped("lease lost".to_owned()),
    }
}

async fn done_chunks<D: SqlDb>(db: &D, id: &JobId) -> Result<Vec<DoneChunk>, Error> {
    Ok(store::decode(
        db.query(&store::select_done_chunks(id)).await?,
    )?)
}

/// Runs the job's pending chunks within the budget, then hands over or
/// finalizes.
async fn work<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    budget: &Budget,
    job: &Job,
    lease: &Lease<'_>,
    msg: &JobMessage,
    log: &dyn Fn(&str),
) -> Result<Outcome, Error>
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    let started = deps.clock.now_ms();
    let plan = chunk::plan(job.start_ms, job.end_ms, job.points.len());
    let mut done = done_chunks(deps.db, &job.id).await?;
    let have: HashSet<u32> = done.iter().map(|c| c.idx).collect();
    let pending: Vec<Chunk> = plan
        .iter()
        .copied()
        .filter(|c| !have.contains(&c.idx))
        .collect();
    let run = run_chunks(deps, budget, job, lease, &pending).await;
    done.extend(run.committed.iter().copied());
    log(&serde_json::json!({
        "event": "invocation",
        "job_id": job.id,
        "hop": msg.hop,
        "chunks_started": run.started,
        "chunks_done": done.len(),
        "chunks_total": plan.len(),
        "ms": deps.clock.now_ms() - started,
    })
    .to_string());
    if let Some(e) = run.failure {
        return Err(e);
    }
    if done.len() < plan.len() {
        return hand_over(deps, lease, msg, done.len(), plan.len()).await;
    }
    done.sort_by_key(|c| c.idx);
    match assemble::finalize(deps, budget, job, lease, &done, log).await? {
        assemble::Finalized::Completed => Ok(Outcome::Completed),
        assemble::Finalized::OutOfBudget => {
            hand_over(deps, lease, msg, done.len(), plan.len()).await
        }
        assemble::Finalized::Healed(n) => {
            hand_over(deps, lease, msg, done.len() - n, plan.len()).await
        }
    }
}

/// Out of budget: hand over to a fresh invocation. Release the lease first
/// so the continuation can claim at once; if the send fails the message is
/// retried and resumes from the same checkpoint.
async fn hand_over<D: SqlDb, B, Q: JobQueue, H, C: Clock>(
    deps: &Deps<'_, D, B, Q, H, C>,
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
struct ChunkRun {
    started: u32,
    committed: Vec<DoneChunk>,
    failure: Option<Error>,
}

/// Runs up to six chunks at once while the budget lasts. Each chunk
/// reserves its statements and subrequests when it starts. After a failure
/// no new chunk starts, but those in flight finish and checkpoint.
async fn run_chunks<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    budget: &Budget,
    job: &Job,
    lease: &Lease<'_>,
    pending: &[Chunk],
) -> ChunkRun
where
    D: SqlDb,
    B: BlobStore,
    H: HttpClient,
    C: Clock,
{
    let cap = match deps.cfg.chunks_per_invocation {
        0 => u32::MAX,
        n => n,
    };
    let pages = Cell::new(1u64);
    let started = Cell::new(0u32);
    let failed = Cell::new(false);
    let mut out = ChunkRun {
        started: 0,
        committed: Vec::new(),
        failure: None,
    };
    {
        let mut runs = stream::iter(pending.iter().copied())
            .map(|c| {
                let cost = Cost {
                    statements: 2,
                    subrequests: pages.get() + 1,
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
                let pages = &pages;
                async move {
                    let r = run_chunk(deps, job, lease, c).await;
                    drop(reservation);
                    if let Ok((_, n)) = &r {
                        pages.set(pages.get().max(*n));
                    }
                    r.map(|(d, _)| d)
                }
            })
            .buffer_unordered(deps.cfg.upstream_concurrency.clamp(1, 6));
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
    out.started = started.get();
    out
}

/// Fetches, aggregates, encodes and checkpoints one chunk; returns its
/// checkpoint and the pages it took.
async fn run_chunk<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    job: &Job,
    lease: &Lease<'_>,
    c: Chunk,
) -> Result<(DoneChunk, u64), Error>
where
    D: SqlDb,
    B: BlobStore,
    H: HttpClient,
    C: Clock,
{
    lease.heartbeat(deps).await?;
    let point = job
        .points
        .get(c.point as usize)
        .ok_or_else(|| StoreError::Corrupt(format!("chunk {} has no point", c.idx)))?;
    let q = ChunkQuery {
        site: &job.site,
        point,
        start: c.start,
        end: c.end,
    };
    let mut samples = Samples::new();
    let fetched = fetch_chunk(deps.http, deps.clock, deps.cfg, &q, &mut samples, || {
        lease.heartbeat(deps)
    })
    .await;
    let pages = match fetched {
        Ok(pages) => {
            lease.circuit.success(deps, lease.log).await?;
            pages
        }
        Err(e) => {
            return Err(
                match lease
                    .circuit
                    .failure(deps, &job.site, &e, lease.log)
                    .await?
                {
                    Some((until, reason)) => Error::UpstreamUnavailable { until, reason },
                    None => e,
                },
            )
        }
    };
    sort_dedup(&mut samples);
    let aggregates = aggregate(&samples);
    let block = codec::encode_block(c.point, &samples)
        .map_err(|e| StoreError::Corrupt(format!("encode chunk {}: {e}", c.idx)))?;
    let done = DoneChunk {
        idx: c.idx,
        samples: samples.len() as u64,
        bytes: block.len() as u64,
    };
    drop(samples);
    let meta = BlobMeta {
        content_type: "application/gzip".to_owned(),
        custom: vec![],
    };
    deps.blobs
        .put(&part_key(&job.id, c.idx), block, &meta)
        .await?;
    commit_chunk(deps.db, job, lease, point, &aggregates, done).await?;
    lease.progressed.set(true);
    Ok((done, pages))
}

/// One batch: the chunk's aggregate rows (one statement) and its
/// checkpoint, both fenced. A cancel or a takeover before it writes nothing.
async fn commit_chunk<D: SqlDb>(
    db: &D,
    job: &Job,
    lease: &Lease<'_>,
    point: &str,
    aggregates: &[crate::aggregate::Aggregate],
    done: DoneChunk,
) -> Result<(), Error> {
    let target = AggTarget {
        owner: &job.owner,
        site: &job.site,
        point,
        range: (job.start_ms, job.end_ms),
    };
    let mut stmts = Vec::with_capacity(2);
    if !aggregates.is_empty() {
        stmts.push(store::upsert_aggregates(
            lease.holder(),
            target,
            aggregates,
        )?);
    }
    stmts.push(store::insert_chunk(
        lease.holder(),
        done.idx,
        done.samples,
        done.bytes,
    ));
    let changed = db.batch(&stmts).await?;
    fenced(changed.last().copied().unwrap_or(0))
}

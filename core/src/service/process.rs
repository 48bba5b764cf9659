//! The consumer: claim a job, process its pending chunks within a budget,
//! checkpoint each, and finish with the result object.
//!
//! Each chunk is fetched, sorted, deduplicated, aggregated and encoded on
//! its own, then written as an R2 part and committed to D1 in one batch
//! (aggregate upserts + checkpoint row + progress). Peak memory is therefore
//! a few chunks (one per concurrent fetch), whatever the job's size. A
//! redelivered or continued message re-plans the job, skips the chunks that
//! have a checkpoint, and carries on; rewriting a chunk rewrites the same
//! rows and the same part.

use std::cell::Cell;
use std::collections::HashSet;

use futures::stream::{self, StreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::aggregate::aggregate;
use crate::chunk::{self, Chunk};
use crate::codec::{self, Header, FORMAT_NAME, FORMAT_VERSION};
use crate::domain::JobId;
use crate::error::{Disposition, Error, StoreError};
use crate::fingerprint::result_key;
use crate::job::{Job, JobStatus};
use crate::parts::EqualParts;
use crate::ports::{
    BlobMeta, BlobStore, Clock, HttpClient, JobMessage, JobQueue, SqlDb, MAX_DELETE_KEYS,
};
use crate::sample::sort_dedup;
use crate::service::{dead_letter, transition_log, Deps};
use crate::store;
use crate::upstream::{fetch_chunk, ChunkQuery};

/// Minimum time between cancellation checks while fetching pages.
const CANCEL_CHECK_INTERVAL_MS: i64 = 2_000;
/// D1 statements one invocation may run (the platform allows 1,000 queries
/// per invocation, each statement of a batch counting).
const STATEMENT_BUDGET: u64 = 900;

/// The D1 statements a chunk costs, at most: its hourly and daily rows in
/// 6-row upserts, plus the checkpoint, the progress update and the
/// cancellation checks around it.
fn chunk_statements(c: &Chunk) -> u64 {
    let span = (c.end - c.start).max(0) as u64;
    let (hour, day) = (crate::domain::HOUR_MS as u64, crate::domain::DAY_MS as u64);
    let rows = span.div_ceil(hour) + span.div_ceil(day);
    rows.div_ceil(store::AGG_ROWS_PER_STATEMENT as u64) + 4
}

/// Where a message left its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The result object is written and the job is `completed`.
    Completed,
    /// The budget ran out; a continuation message carries on.
    Continued {
        /// Chunks finished so far.
        done: usize,
        /// Chunks in the plan.
        total: usize,
    },
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

/// The R2 key of a chunk's encoded block.
pub fn part_key(id: &JobId, idx: u32) -> String {
    format!("parts/{id}/{idx:06}.gz")
}

#[derive(Debug, Deserialize)]
struct DoneChunk {
    #[serde(deserialize_with = "crate::job::de::int")]
    idx: i64,
    #[serde(deserialize_with = "crate::job::de::int")]
    samples: i64,
    #[serde(deserialize_with = "crate::job::de::int")]
    bytes: i64,
}

async fn done_chunks<D: SqlDb>(db: &D, id: &JobId) -> Result<Vec<DoneChunk>, Error> {
    Ok(store::decode(
        db.query(&store::select_done_chunks(id)).await?,
    )?)
}

/// Checks, at most every couple of seconds, that the job is still ours to run.
struct CancelCheck<'a, D, C> {
    db: &'a D,
    clock: &'a C,
    id: &'a JobId,
    last: Cell<i64>,
}

impl<D: SqlDb, C: Clock> CancelCheck<'_, D, C> {
    async fn check(&self, force: bool) -> Result<(), Error> {
        let now = self.clock.now_ms();
        if !force && now - self.last.get() < CANCEL_CHECK_INTERVAL_MS {
            return Ok(());
        }
        self.last.set(now);
        #[derive(Deserialize)]
        struct S {
            status: JobStatus,
        }
        let rows: Vec<S> = store::decode(self.db.query(&store::select_status(self.id)).await?)?;
        match rows.first().map(|r| r.status) {
            Some(JobStatus::Processing) => Ok(()),
            _ => Err(Error::Cancelled),
        }
    }
}

/// Handles one jobs-queue message end to end and decides its disposition.
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
    let outcome = process(deps, msg, attempt, log).await;
    let disposition = match &outcome {
        Ok(_) => Disposition::Ack,
        Err(e) => Disposition::for_error(e, attempt),
    };
    match (&outcome, disposition) {
        (Err(e), Disposition::DeadLetter) => {
            // Permanent: straight to the terminal path, no more retries.
            let reason = e.to_string();
            let raw = serde_json::to_value(msg).unwrap_or_default();
            match dead_letter::dead_letter(deps, Some(&msg.job_id), &reason, &raw, log).await {
                Ok(_) => Handled {
                    outcome: Ok(Outcome::DeadLettered(reason)),
                    disposition: Disposition::Ack,
                },
                // The terminal path itself failed transiently: retry it.
                Err(e2) => Handled {
                    disposition: Disposition::for_error(&e2, attempt),
                    outcome: Err(e2),
                },
            }
        }
        (Err(e), Disposition::Retry { delay_seconds }) => {
            let now = deps.clock.now_ms();
            let detail = format!("attempt {attempt}: {e}; retry in {delay_seconds} s");
            let recorded = deps
                .db
                .batch(&[
                    store::fail_job_transient(&msg.job_id, now, &e.to_string()),
                    store::insert_event_if(
                        &msg.job_id,
                        now,
                        JobStatus::Failed,
                        attempt.into(),
                        Some(&detail),
                    ),
                ])
                .await;
            match recorded {
                Ok(ch) if ch.first() == Some(&1) => log(&transition_log(
                    msg.job_id.as_str(),
                    "processing",
                    "failed",
                    Some(&detail),
                )),
                Ok(_) => {}
                Err(db) => log(&format!("could not record failure of {}: {db}", msg.job_id)),
            }
            Handled {
                outcome,
                disposition,
            }
        }
        _ => Handled {
            outcome,
            disposition,
        },
    }
}

async fn process<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    msg: &JobMessage,
    attempt: u32,
    log: &dyn Fn(&str),
) -> Result<Outcome, Error>
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    let Deps { db, clock, cfg, .. } = *deps;
    let started = clock.now_ms();
    let id = &msg.job_id;
    let claim = store::claim_job(
        id,
        started,
        started + cfg.lease_ms,
        msg.hop == 0 || attempt > 1,
    );
    let Some(job) = store::get_job(db, claim).await? else {
        return Ok(match store::get_job(db, store::select_job(id)).await? {
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
        });
    };
    if msg.hop == 0 || attempt > 1 {
        // A continuation's first claim is the same run going on, not a transition.
        let from = if job.attempts <= 1 {
            "queued"
        } else {
            "failed"
        };
        let detail = format!("attempt {}", job.attempts);
        log(&transition_log(
            id.as_str(),
            from,
            "processing",
            Some(&detail),
        ));
    }

    let plan = chunk::plan(job.start_ms, job.end_ms, job.points.len());
    let done: HashSet<u32> = done_chunks(db, id)
        .await?
        .into_iter()
        .map(|c| c.idx as u32)
        .collect();
    let pending: Vec<Chunk> = plan
        .iter()
        .copied()
        .filter(|c| !done.contains(&c.idx))
        .collect();

    let cancel = CancelCheck {
        db,
        clock,
        id,
        last: Cell::new(started),
    };
    let statements = Cell::new(2u64);
    let launched = Cell::new(0u32);
    let cap = if cfg.chunks_per_invocation == 0 {
        u32::MAX
    } else {
        cfg.chunks_per_invocation
    };
    let deadline = started + cfg.invocation_budget_ms as i64;
    let mut finished = done.len();
    let mut failure = None;
    {
        let mut runs = stream::iter(pending.iter().copied())
            .take_while(|c| {
                // Time, D1 statements and chunk count: whichever runs out
                // first ends this invocation's share of the job. A chunk's
                // statements are reserved when it starts, since up to six
                // run at once and commit later.
                let need = chunk_statements(c);
                let in_budget = clock.now_ms() < deadline
                    && (launched.get() == 0 || statements.get() + need <= STATEMENT_BUDGET)
                    && launched.get() < cap;
                if in_budget {
                    launched.set(launched.get() + 1);
                    statements.set(statements.get() + need);
                }
                futures::future::ready(in_budget)
            })
            .map(|c| run_chunk(deps, &job, c, &cancel))
            .buffer_unordered(cfg.upstream_concurrency.clamp(1, 6));
        while let Some(r) = runs.next().await {
            match r {
                Ok(()) => finished += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    log(&serde_json::json!({
        "event": "invocation",
        "job_id": id,
        "hop": msg.hop,
        "chunks_started": launched.get(),
        "chunks_done": finished,
        "chunks_total": plan.len(),
        "ms": clock.now_ms() - started,
    })
    .to_string());
    match failure {
        Some(Error::Cancelled) => {
            log(&transition_log(
                id.as_str(),
                "processing",
                "cancelled",
                None,
            ));
            return Ok(Outcome::Cancelled);
        }
        Some(e) => return Err(e),
        None => {}
    }
    if finished < plan.len() {
        // Out of budget: hand over to a fresh invocation. Release the lease
        // first so the continuation can claim at once; if the send fails the
        // message is retried and resumes from the same checkpoint.
        db.execute(&store::release_lease(id, clock.now_ms()))
            .await?;
        let next = JobMessage {
            job_id: id.clone(),
            hop: msg.hop + 1,
        };
        deps.queue.send(&next, 0).await?;
        return Ok(Outcome::Continued {
            done: finished,
            total: plan.len(),
        });
    }
    match finalize(deps, &job, plan.len()).await {
        Err(Error::Cancelled) => return Ok(Outcome::Cancelled),
        other => other?,
    }
    log(&transition_log(
        id.as_str(),
        "processing",
        "completed",
        None,
    ));
    Ok(Outcome::Completed)
}

/// Fetches, aggregates, encodes and checkpoints one chunk.
async fn run_chunk<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    job: &Job,
    c: Chunk,
    cancel: &CancelCheck<'_, D, C>,
) -> Result<(), Error>
where
    D: SqlDb,
    B: BlobStore,
    H: HttpClient,
    C: Clock,
{
    cancel.check(false).await?;
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
    let mut samples = Vec::new();
    fetch_chunk(deps.http, deps.clock, deps.cfg, &q, &mut samples, || {
        cancel.check(false)
    })
    .await?;
    sort_dedup(&mut samples);
    let aggregates = aggregate(&samples);
    let block = codec::encode_block(c.point, &samples)
        .map_err(|e| StoreError::Corrupt(format!("encode chunk {}: {e}", c.idx)))?;
    let (n_samples, n_bytes) = (samples.len() as u64, block.len() as u64);
    drop(samples);
    let meta = BlobMeta {
        content_type: "application/gzip".to_owned(),
        custom: vec![],
    };
    deps.blobs
        .put(&part_key(&job.id, c.idx), block, &meta)
        .await?;
    // Nothing more is written once the job is cancelled.
    cancel.check(true).await?;
    let now = deps.clock.now_ms();
    let mut stmts = store::upsert_aggregates(&job.site, point, &aggregates);
    stmts.push(store::insert_chunk(&job.id, c.idx, n_samples, n_bytes));
    stmts.push(store::refresh_progress(
        &job.id,
        now,
        now + deps.cfg.lease_ms,
    ));
    deps.db.batch(&stmts).await?;
    Ok(())
}

/// Custom metadata stays under R2's 8 KB; the point list goes in only if small.
const MAX_POINTS_METADATA: usize = 4_096;
/// R2's limit on the parts of one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// Assembles the result object from the header and the chunk parts, in
/// chunk order, and marks the job completed.
async fn finalize<D, B, Q, H, C>(
    deps: &Deps<'_, D, B, Q, H, C>,
    job: &Job,
    total_chunks: usize,
) -> Result<(), Error>
where
    D: SqlDb,
    B: BlobStore,
    C: Clock,
{
    let Deps {
        db,
        blobs,
        clock,
        cfg,
        ..
    } = *deps;
    // Nothing is written once the job is cancelled.
    CancelCheck {
        db,
        clock,
        id: &job.id,
        last: Cell::new(0),
    }
    .check(true)
    .await?;
    let chunks = done_chunks(db, &job.id).await?;
    if chunks.len() != total_chunks {
        return Err(StoreError::Corrupt(format!(
            "{} of {total_chunks} chunks have checkpoints at finalize",
            chunks.len()
        ))
        .into());
    }
    let samples: i64 = chunks.iter().map(|c| c.samples).sum();
    let header = codec::encode_header(&Header {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        site: job.site.clone(),
        start_ms: job.start_ms,
        end_ms: job.end_ms,
        points: job.points.clone(),
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let total_bytes = header.len() as u64 + chunks.iter().map(|c| c.bytes as u64).sum::<u64>();
    let key = result_key(&job.fingerprint);
    let mut meta = BlobMeta {
        content_type: "application/vnd.tsp.columnar+msgpack".to_owned(),
        custom: vec![
            ("job_id".to_owned(), job.id.to_string()),
            ("sample_count".to_owned(), samples.to_string()),
            ("format_version".to_owned(), FORMAT_VERSION.to_string()),
            ("site".to_owned(), job.site.clone()),
            ("point_count".to_owned(), job.points.len().to_string()),
        ],
    };
    let points_json = serde_json::to_string(&job.points).unwrap_or_default();
    if points_json.len() <= MAX_POINTS_METADATA {
        meta.custom.push(("points".to_owned(), points_json));
    }
    let read_part = |idx: u32| async move {
        blobs
            .get(&part_key(&job.id, idx))
            .await?
            .ok_or_else(|| Error::from(StoreError::Corrupt(format!("part {idx} is missing"))))
    };

    let sha = if total_bytes <= cfg.single_put_max_bytes {
        let mut buf = header;
        buf.reserve(total_bytes as usize);
        for idx in 0..total_chunks as u32 {
            buf.extend(read_part(idx).await?);
        }
        let sha = hex::encode(Sha256::digest(&buf));
        meta.custom.push(("sha256".to_owned(), sha.clone()));
        blobs.put(&key, buf, &meta).await?;
        sha
    } else {
        // Large: one pass to hash (metadata is fixed when the upload
        // starts), one to upload in equal parts (see `parts`).
        let mut hasher = Sha256::new();
        hasher.update(&header);
        for idx in 0..total_chunks as u32 {
            hasher.update(read_part(idx).await?);
        }
        let sha = hex::encode(hasher.finalize());
        meta.custom.push(("sha256".to_owned(), sha.clone()));
        let upload = blobs.multipart_begin(&key, &meta).await?;
        // R2 wants every part but the last the same size, and at most
        // 10,000 parts.
        let part_bytes = cfg
            .multipart_part_bytes
            .max(total_bytes.div_ceil(MAX_PARTS));
        let mut cutter = EqualParts::new(part_bytes as usize, header);
        let mut parts = Vec::new();
        for idx in 0..total_chunks as u32 {
            for part in cutter.push(&read_part(idx).await?) {
                let n = parts.len() as u16 + 1;
                parts.push(blobs.multipart_part(&key, &upload, n, part).await?);
            }
        }
        for part in cutter.finish() {
            let n = parts.len() as u16 + 1;
            parts.push(blobs.multipart_part(&key, &upload, n, part).await?);
        }
        blobs.multipart_complete(&key, &upload, parts).await?;
        sha
    };

    let now = clock.now_ms();
    let changed = db
        .batch(&[
            store::complete_job(&job.id, now, &key, total_bytes, &sha),
            store::insert_event_if(&job.id, now, JobStatus::Completed, job.attempts, None),
        ])
        .await?;
    if changed.first() != Some(&1) {
        // Cancelled (or dead-lettered) between the check and now.
        return Err(Error::Cancelled);
    }
    // The parts are no longer needed; a failure here leaves garbage, not
    // harm. Bulk deletes: one subrequest per 1,000 parts, not one per part.
    let keys: Vec<String> = (0..total_chunks as u32)
        .map(|idx| part_key(&job.id, idx))
        .collect();
    for batch in keys.chunks(MAX_DELETE_KEYS) {
        let _ = blobs.delete(batch).await;
    }
    Ok(())
}

//! Finalize: the header and the chunk parts, in chunk order, become the
//! result object, and the job becomes `completed`.
//!
//! [`Assembly`] is the one interface over the two ways an object is
//! written: [`SinglePut`] (buffered, one PUT) and [`Multipart`] (equal-size
//! parts uploaded as they fill). Either way each part is read once, and the
//! SHA-256 of the content is computed as it streams through.
//!
//! A part that is missing (a lifecycle rule removed it) or whose size is
//! not its checkpoint's is not a reason to fail the job: its checkpoint is
//! dropped, the chunk runs again on the next message, and finalize repeats.

use sha2::{Digest, Sha256};

use crate::api::{PARQUET_MEDIA_TYPE, RESULT_MEDIA_TYPE};
use crate::budget::{Budget, Cost};
use crate::codec::{self, Header, FORMAT_NAME, FORMAT_VERSION};
use crate::error::{Error, StoreError};
use crate::fingerprint::{parquet_key, result_key};
use crate::job::{Job, JobStatus};
use crate::parts::EqualParts;
use crate::ports::{BlobMeta, BlobStore, Clock, Platform, SqlDb, UploadedPart, MAX_DELETE_KEYS};
use crate::service::lease::{fenced, parquet_part_key, part_key, DoneChunk, Lease};
use crate::service::{transition_log, Deps};
use crate::store;
use tsp_parquet::stitch::Stitcher;

/// Custom metadata stays under R2's 8 KB; the point list goes in only if small.
const MAX_POINTS_METADATA: usize = 4_096;
/// R2's limit on the parts of one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// How finalize ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalized {
    /// The object is written and the job completed.
    Completed,
    /// The invocation's budget cannot pay for the assembly; a fresh one will.
    OutOfBudget,
    /// This many chunks had bad parts; their checkpoints were dropped.
    Healed(usize),
}

/// Where the bytes of a result object go.
pub trait Assembly {
    /// Appends the next bytes.
    async fn push(&mut self, bytes: Vec<u8>) -> Result<(), Error>;
    /// Writes what is left; returns the SHA-256 (hex) of the whole object.
    async fn finish(self) -> Result<String, Error>;
}

/// The whole object in memory, written with one PUT (small results).
pub struct SinglePut<'a, B> {
    blobs: &'a B,
    key: String,
    meta: BlobMeta,
    buf: Vec<u8>,
}

impl<B: BlobStore> Assembly for SinglePut<'_, B> {
    async fn push(&mut self, bytes: Vec<u8>) -> Result<(), Error> {
        self.buf.extend_from_slice(&bytes);
        Ok(())
    }

    async fn finish(mut self) -> Result<String, Error> {
        let sha = hex::encode(Sha256::digest(&self.buf));
        self.meta.custom.push(("sha256".to_owned(), sha.clone()));
        self.blobs.put(&self.key, self.buf, &self.meta).await?;
        Ok(sha)
    }
}

/// A multipart upload in equal-size parts (R2's rule), hashed as it goes.
/// Its metadata is fixed when the upload starts, so it carries no
/// `sha256`; the job row does.
pub struct Multipart<'a, B> {
    blobs: &'a B,
    key: String,
    upload: String,
    cutter: EqualParts,
    parts: Vec<UploadedPart>,
    hasher: Sha256,
}

impl<'a, B: BlobStore> Multipart<'a, B> {
    async fn begin(
        blobs: &'a B,
        key: String,
        meta: &BlobMeta,
        part_bytes: u64,
        header: Vec<u8>,
    ) -> Result<Self, Error> {
        let upload = blobs.multipart_begin(&key, meta).await?;
        let mut hasher = Sha256::new();
        hasher.update(&header);
        Ok(Self {
            blobs,
            key,
            upload,
            cutter: EqualParts::new(part_bytes as usize, header),
            parts: Vec::new(),
            hasher,
        })
    }

    async fn upload(&mut self, parts: Vec<Vec<u8>>) -> Result<(), Error> {
        for part in parts {
            let n = self.parts.len() as u16 + 1;
            let up = self.blobs.multipart_part(&self.key, &self.upload, n, part);
            self.parts.push(up.await?);
        }
        Ok(())
    }
}

impl<B: BlobStore> Assembly for Multipart<'_, B> {
    async fn push(&mut self, bytes: Vec<u8>) -> Result<(), Error> {
        self.hasher.update(&bytes);
        let full = self.cutter.push(&bytes);
        self.upload(full).await
    }

    async fn finish(mut self) -> Result<String, Error> {
        let cutter = std::mem::replace(&mut self.cutter, EqualParts::new(1, Vec::new()));
        self.upload(cutter.finish()).await?;
        let parts = std::mem::take(&mut self.parts);
        self.blobs
            .multipart_complete(&self.key, &self.upload, parts)
            .await?;
        Ok(hex::encode(self.hasher.finalize()))
    }
}

/// The object's size, the multipart part size, and the subrequests and
/// statements the assembly (the object's, and the Parquet file's when the
/// job has one) costs at most.
struct Shape {
    total_bytes: u64,
    part_bytes: u64,
    multipart: bool,
    parquet: bool,
    cost: Cost,
}

/// How one file is written: its multipart part size (`None`: one PUT),
/// and the writes that take.
fn writes(cfg: &crate::config::Config, total: u64) -> (Option<u64>, u64) {
    if total <= cfg.single_put_max_bytes {
        return (None, 1);
    }
    // R2 wants every part but the last the same size, and at most 10,000.
    let part = cfg.multipart_part_bytes.max(total.div_ceil(MAX_PARTS));
    (Some(part), total.div_ceil(part.max(1)) + 2)
}

fn shape(cfg: &crate::config::Config, header: u64, chunks: &[DoneChunk]) -> Shape {
    let total_bytes = header + chunks.iter().map(|c| c.bytes).sum::<u64>();
    let (part, mut subrequests) = writes(cfg, total_bytes);
    let parquet = has_parquet(chunks);
    let mut parts = chunks.len() as u64;
    if parquet {
        subrequests += writes(cfg, parquet_bytes(chunks)).1;
        parts *= 2;
    }
    Shape {
        total_bytes,
        part_bytes: part.unwrap_or(cfg.multipart_part_bytes),
        multipart: part.is_some(),
        parquet,
        cost: Cost {
            statements: 3,
            subrequests: subrequests + parts + parts.div_ceil(MAX_DELETE_KEYS as u64),
        },
    }
}

/// Whether every window wrote a Parquet part (a job that ran partly with
/// `PARQUET_RESULTS=0` gets none).
fn has_parquet(chunks: &[DoneChunk]) -> bool {
    !chunks.is_empty() && chunks.iter().all(|c| c.parquet_bytes > 0)
}

/// The Parquet parts' bytes: the spliced file is this less each part's
/// footer, plus one footer, so about this.
fn parquet_bytes(chunks: &[DoneChunk]) -> u64 {
    chunks.iter().map(|c| c.parquet_bytes).sum()
}

fn metadata(job: &Job, samples: u64) -> BlobMeta {
    let mut meta = BlobMeta {
        content_type: RESULT_MEDIA_TYPE.to_owned(),
        custom: vec![
            ("job_id".to_owned(), job.id.to_string()),
            ("sample_count".to_owned(), samples.to_string()),
            ("format_version".to_owned(), FORMAT_VERSION.to_string()),
            ("site".to_owned(), job.site.to_string()),
            ("point_count".to_owned(), job.points.len().to_string()),
        ],
    };
    let points_json = serde_json::to_string(&job.points).unwrap_or_default();
    if points_json.len() <= MAX_POINTS_METADATA {
        meta.custom.push(("points".to_owned(), points_json));
    }
    meta
}

fn header(job: &Job) -> Result<Vec<u8>, Error> {
    codec::encode_header(&Header {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        site: job.site.to_string(),
        start_ms: job.start_ms,
        end_ms: job.end_ms,
        points: crate::job::names(&job.points),
    })
    .map_err(Error::from)
}

/// Assembles the result from every chunk's part (`chunks` in plan order,
/// all of them) and completes the job.
pub(crate) async fn finalize<P: Platform>(
    deps: &Deps<'_, P>,
    budget: &Budget,
    job: &Job,
    lease: &Lease<'_>,
    chunks: &[DoneChunk],
) -> Result<Finalized, Error> {
    let header = header(job)?;
    let shape = shape(deps.cfg, header.len() as u64, chunks);
    if !budget.can_afford(shape.cost) {
        if !budget.could_ever_afford(shape.cost) {
            return Err(StoreError::Corrupt(format!(
                "assembling this result needs {} subrequests; SUBREQUEST_BUDGET allows {}",
                shape.cost.subrequests,
                budget.limits().subrequests
            ))
            .into());
        }
        return Ok(Finalized::OutOfBudget);
    }
    let key = result_key(&job.fingerprint, &job.id);
    let header_bytes = header.len() as u64;
    let written = write_object(deps.blobs, job, chunks, &shape, (key.clone(), header)).await?;
    let sha = match written {
        Ok(sha) => sha,
        Err(bad) => return heal(deps.db, lease, &bad, deps.log).await,
    };
    let parquet = match shape.parquet {
        true => match write_parquet(deps, job, chunks).await? {
            Ok(written) => Some(written),
            Err(bad) => return heal(deps.db, lease, &bad, deps.log).await,
        },
        false => None,
    };
    let parquet_ref = parquet.as_ref().map(|(k, n)| (k.as_str(), *n));
    let object = (key.as_str(), shape.total_bytes, sha.as_str(), header_bytes);
    complete(deps, job, lease, object, parquet_ref).await?;
    // The parts are no longer needed; a failure here leaves garbage, not
    // harm. Bulk deletes: one subrequest per 1,000 parts, not one per part.
    let mut keys: Vec<String> = chunks.iter().map(|c| part_key(&job.id, c.idx)).collect();
    if shape.parquet {
        keys.extend(chunks.iter().map(|c| parquet_part_key(&job.id, c.idx)));
    }
    for batch in keys.chunks(MAX_DELETE_KEYS) {
        let _ = deps.blobs.delete(batch).await;
    }
    Ok(Finalized::Completed)
}

/// The header and every part, in plan order, as the result object.
async fn write_object<B: BlobStore>(
    blobs: &B,
    job: &Job,
    chunks: &[DoneChunk],
    shape: &Shape,
    (key, header): (String, Vec<u8>),
) -> Result<Result<String, Vec<u32>>, Error> {
    let meta = metadata(job, chunks.iter().map(|c| c.samples).sum());
    let parts: Vec<_> = chunks
        .iter()
        .map(|c| (c.idx, part_key(&job.id, c.idx), c.bytes))
        .collect();
    let same = |bytes: Vec<u8>| Ok(bytes);
    if shape.multipart {
        let m = Multipart::begin(blobs, key, &meta, shape.part_bytes, header).await?;
        finish(stream_parts(m, blobs, &parts, same).await?).await
    } else {
        let mut buf = Vec::with_capacity(shape.total_bytes as usize);
        buf.extend_from_slice(&header);
        let single = SinglePut {
            blobs,
            key,
            meta,
            buf,
        };
        finish(stream_parts(single, blobs, &parts, same).await?).await
    }
}

async fn finish<A: Assembly>(
    streamed: Result<(A, u64), Vec<u32>>,
) -> Result<Result<String, Vec<u32>>, Error> {
    match streamed {
        Ok((asm, _)) => Ok(Ok(asm.finish().await?)),
        Err(bad) => Ok(Err(bad)),
    }
}

/// Every Parquet part, in plan order, spliced into the job's Parquet file
/// ([`Stitcher`]): its key and size.
async fn write_parquet<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    chunks: &[DoneChunk],
) -> Result<Result<(String, u64), Vec<u32>>, Error> {
    let key = parquet_key(&job.fingerprint, &job.id);
    let meta = BlobMeta {
        content_type: PARQUET_MEDIA_TYPE.to_owned(),
        custom: vec![("job_id".to_owned(), job.id.to_string())],
    };
    let parts: Vec<_> = chunks
        .iter()
        .map(|c| (c.idx, parquet_part_key(&job.id, c.idx), c.parquet_bytes))
        .collect();
    let blobs = deps.blobs;
    let stitcher = std::cell::RefCell::new(Stitcher::new());
    let splice = |part: Vec<u8>| stitcher.borrow_mut().append(part).map_err(parquet_err);
    let size = match writes(deps.cfg, parquet_bytes(chunks)).0 {
        Some(part) => {
            let m = Multipart::begin(blobs, key.clone(), &meta, part, Vec::new()).await?;
            spliced(stream_parts(m, blobs, &parts, splice).await?, stitcher).await?
        }
        None => {
            let single = SinglePut {
                blobs,
                key: key.clone(),
                meta,
                buf: Vec::new(),
            };
            spliced(stream_parts(single, blobs, &parts, splice).await?, stitcher).await?
        }
    };
    Ok(size.map(|n| (key, n)))
}

/// Appends the Parquet footer and finishes the file; returns its size.
async fn spliced<A: Assembly>(
    streamed: Result<(A, u64), Vec<u32>>,
    stitcher: std::cell::RefCell<Stitcher>,
) -> Result<Result<u64, Vec<u32>>, Error> {
    let (mut asm, body) = match streamed {
        Ok(s) => s,
        Err(bad) => return Ok(Err(bad)),
    };
    let footer = stitcher.into_inner().finish().map_err(parquet_err)?;
    let size = body + footer.len() as u64;
    asm.push(footer).await?;
    asm.finish().await?;
    Ok(Ok(size))
}

fn parquet_err(e: anyhow::Error) -> Error {
    StoreError::Corrupt(format!("splicing the Parquet parts: {e:#}")).into()
}

/// Streams every part (`(chunk, key, size)`), through `map`, into the
/// assembly, reading each once. Returns the assembly and the bytes pushed,
/// or the chunks whose parts are missing or the wrong size (once one is
/// bad, the rest are only checked, and nothing more is written; an
/// unfinished multipart upload is left to the bucket's abort rule).
async fn stream_parts<A: Assembly, B: BlobStore>(
    mut asm: A,
    blobs: &B,
    parts: &[(u32, String, u64)],
    map: impl Fn(Vec<u8>) -> Result<Vec<u8>, Error>,
) -> Result<Result<(A, u64), Vec<u32>>, Error> {
    let mut bad = Vec::new();
    let mut pushed = 0;
    for (idx, key, size) in parts {
        if !bad.is_empty() {
            if blobs.head(key).await? != Some(*size) {
                bad.push(*idx);
            }
            continue;
        }
        match blobs.get(key).await? {
            Some(bytes) if bytes.len() as u64 == *size => {
                let out = map(bytes)?;
                pushed += out.len() as u64;
                asm.push(out).await?;
            }
            _ => bad.push(*idx),
        }
    }
    if !bad.is_empty() {
        return Ok(Err(bad));
    }
    Ok(Ok((asm, pushed)))
}

async fn heal<D: SqlDb>(
    db: &D,
    lease: &Lease<'_>,
    bad: &[u32],
    log: &dyn Fn(&str),
) -> Result<Finalized, Error> {
    fenced(db.execute(&store::drop_chunks(lease.holder(), bad)).await?)?;
    log(&serde_json::json!({
        "event": "parts_missing",
        "job_id": lease.id,
        "chunks": bad,
        "action": "checkpoints dropped; the chunks run again",
    })
    .to_string());
    Ok(Finalized::Healed(bad.len()))
}

async fn complete<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    lease: &Lease<'_>,
    object: (&str, u64, &str, u64),
    parquet: Option<(&str, u64)>,
) -> Result<(), Error> {
    let now = deps.clock.now_ms();
    let changed = deps
        .db
        .batch(&[
            store::complete_job(lease.holder(), now, object, parquet),
            store::insert_event_if(&job.id, now, JobStatus::Completed, job.attempts, None),
        ])
        .await?;
    fenced(changed.first().copied().unwrap_or(0))?;
    (deps.log)(&transition_log(
        job.id.as_str(),
        "processing",
        "completed",
        None,
    ));
    crate::service::callback::deliver_now(deps, job).await;
    Ok(())
}

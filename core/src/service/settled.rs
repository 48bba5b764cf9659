//! The settled-sample store: what jobs fetched, kept in R2 and read by
//! later jobs of any owner, so settled upstream data is fetched about once
//! per deployment.
//!
//! - **Settled** means older than `SETTLE_MS` (floored to the hour): late
//!   data past that is rare, and a request's `force` bypasses and
//!   refreshes the store. Later spans are always fetched.
//! - **An entry** is one R2 object under `store/`: one block per point of
//!   the job that fetched it (the result object's own block encoding), over
//!   the span `[from, to)` it covers, never more than the job's window held.
//!   D1 indexes it (`schema/0010`): span, samples, bytes, SHA-256, what it
//!   cost upstream, fetched and last read.
//! - **A window reads** the longest stored span its points share from its
//!   start, and fetches only the rest ([`read`]). Samples read back encode
//!   to the same bytes as fresh ones, so aggregates and objects do not
//!   depend on where samples came from.
//! - **A window writes** its settled span as a new entry ([`write`]): the
//!   object first, its index rows in the window's commit batch after it.
//!   A crash in between leaves an object nothing names, never a row naming
//!   nothing; an object that is missing or not what its row says is
//!   forgotten and refetched.
//! - **Eviction** ([`evict`], from the reaper) keeps the store under
//!   `STORE_MAX_BYTES`: entries no row names first, then the least recently
//!   read. An operator's refresh ([`invalidate`]) forgets a site's range.

use sha2::{Digest, Sha256};

use crate::chunk::Chunk;
use crate::codec;
use crate::domain::{EpochMs, PointName, HOUR_MS};
use crate::error::Error;
use crate::job::Job;
use crate::ports::{BlobMeta, BlobStore, Clock, Platform, SqlDb, Statement, MAX_DELETE_KEYS};
use crate::sample::Samples;
use crate::service::Deps;
use crate::store::{self, settled};

/// What the store gave one window.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// Per job point: its samples of `[window start, upto[i])` came from
    /// the store, and the rest is fetched (`upto[i]` is the start: nothing).
    pub upto: Vec<EpochMs>,
    /// Samples read.
    pub samples: u64,
    /// Entries read.
    pub keys: Vec<String>,
    /// Upstream bytes those samples cost when they were fetched.
    pub saved_bytes: u64,
}

impl Read {
    /// Nothing from the store, for `points` points.
    fn none(c: &Chunk, points: usize) -> Self {
        Read {
            upto: vec![c.start; points],
            ..Read::default()
        }
    }

    /// Where the first point's stored span ends (the window's end if none).
    pub fn first_gap(&self, c: &Chunk) -> EpochMs {
        self.upto.iter().copied().min().unwrap_or(c.end)
    }

    /// Whether some point read something.
    pub fn any(&self, c: &Chunk) -> bool {
        self.upto.iter().any(|u| *u > c.start)
    }

    /// Whether some point still fetches something.
    pub fn fetches(&self, c: &Chunk) -> bool {
        self.upto.iter().any(|u| *u < c.end)
    }
}

/// The end of the settled past at `now`.
pub fn settled_until(settle_ms: i64, now: EpochMs) -> EpochMs {
    (now - settle_ms).floor(HOUR_MS)
}

fn enabled(deps_cfg: &crate::config::Config, job: &Job) -> bool {
    deps_cfg.store_max_bytes > 0 && !job.force
}

/// Fills `outs` (empty, one per job point) with the window's samples the
/// store holds from its start: each point's longest stored span, or with
/// `shared` the span they all have (a site walk fetches every point from
/// one instant). Anything missing or damaged reads as nothing.
pub async fn read<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    c: &Chunk,
    outs: &mut [Samples],
    shared: bool,
) -> Result<Read, Error> {
    let none = Read::none(c, job.points.len());
    let now = deps.clock.now_ms();
    if !enabled(deps.cfg, job) || c.start >= settled_until(deps.cfg.settle_ms, now) {
        return Ok(none);
    }
    let names = serde_json::to_string(&job.points).map_err(|e| Error::Codec(e.to_string()))?;
    let rows = deps
        .db
        .query(&settled::lookup(job.site.as_str(), &names, c.start))
        .await?;
    let found: Vec<settled::Found> = store::decode(rows)?;
    // Per point, the row reaching furthest (rows come newest end first).
    let mut best: Vec<Option<&settled::Found>> = vec![None; job.points.len()];
    for f in &found {
        if let Ok(i) = job.points.binary_search_by(|p| p.as_str().cmp(&f.point)) {
            best[i].get_or_insert(f);
        }
    }
    let mut upto: Vec<EpochMs> = best
        .iter()
        .map(|f| f.map_or(c.start, |f| f.to_ms.min(c.end)))
        .collect();
    if shared {
        let first = upto.iter().copied().min().unwrap_or(c.start);
        upto.iter_mut().for_each(|u| *u = first);
    }
    if upto.iter().all(|u| *u <= c.start) {
        return Ok(none);
    }
    match fill(deps, &best, c.start, upto, outs).await? {
        Some(read) => Ok(read),
        None => {
            for s in outs.iter_mut() {
                *s = Samples::new();
            }
            Ok(none)
        }
    }
}

/// Reads each entry's object once and takes each point's block from it.
/// `None` when an object is missing or not what its row says (forgotten).
async fn fill<P: Platform>(
    deps: &Deps<'_, P>,
    best: &[Option<&settled::Found>],
    from: EpochMs,
    upto: Vec<EpochMs>,
    outs: &mut [Samples],
) -> Result<Option<Read>, Error> {
    let wanted = |i: usize| best[i].filter(|_| upto[i] > from);
    let mut keys: Vec<&str> = (0..best.len())
        .filter_map(|i| wanted(i).map(|f| f.key.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut read = Read::default();
    for key in keys {
        let object = deps.blobs.get(key).await?;
        let intact = object.as_deref().filter(|o| {
            let f = best.iter().flatten().find(|f| f.key == key);
            f.is_some_and(|f| o.len() as u64 == f.bytes && sha256_hex(o) == f.sha256)
        });
        let Some(object) = intact else {
            (deps.log)(&serde_json::json!({"event": "store_entry_lost", "key": key}).to_string());
            deps.db.batch(&settled::forget(key)).await?;
            return Ok(None);
        };
        for i in (0..best.len()).filter(|i| wanted(*i).is_some_and(|f| f.key == key)) {
            let Some(f) = best[i] else { continue };
            let Some(samples) = block_of(object, f, from, upto[i]) else {
                deps.db.batch(&settled::forget(key)).await?;
                return Ok(None);
            };
            read.samples += samples.len() as u64;
            read.saved_bytes += f.upstream_bytes * samples.len() as u64 / f.entry_samples.max(1);
            outs[i] = samples;
        }
        read.keys.push(key.to_owned());
    }
    read.upto = upto;
    Ok(Some(read))
}

/// A point's samples of `[from, upto)` from its block in an entry's object.
fn block_of(object: &[u8], f: &settled::Found, from: EpochMs, upto: EpochMs) -> Option<Samples> {
    let at = usize::try_from(f.at_byte).ok()?;
    let end = at.checked_add(usize::try_from(f.byte_len).ok()?)?;
    let block = codec::decode_block(object.get(at..end)?).ok()?;
    codec::block_samples(&block, from, upto).ok()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where a window's new entry ends, if it should write one: at the end of
/// the settled past (or the window's end), when the window fetched some of
/// that span or refreshes it (`force`).
pub fn store_until(
    cfg: &crate::config::Config,
    c: &Chunk,
    now: EpochMs,
    read: &Read,
) -> Option<EpochMs> {
    if cfg.store_max_bytes == 0 {
        return None;
    }
    let until = settled_until(cfg.settle_ms, now).min(c.end);
    (until > c.start && read.first_gap(c) < until).then_some(until)
}

/// The object key of an entry: its site, points and span.
pub fn entry_key(site: &str, points: &[PointName], from: EpochMs, to: EpochMs) -> String {
    let mut h = Sha256::new();
    h.update(site.as_bytes());
    for p in points {
        h.update([0]);
        h.update(p.as_str().as_bytes());
    }
    h.update(format!("\0{}\0{}", from.ms(), to.ms()).as_bytes());
    format!("store/{}", hex::encode(h.finalize()))
}

/// A window's new entry over `[c.start, until)`: its points (the job's, or
/// every point a site walk saw) and, for each, its block and samples.
pub struct NewEntry<'a> {
    /// Where it ends.
    pub until: EpochMs,
    /// The points, sorted.
    pub names: &'a [PointName],
    /// Per point, in that order: the block and its samples.
    pub blocks: Vec<(Vec<u8>, u64)>,
}

/// Writes a window's entry object and returns its index statements, for
/// the window's commit batch (which runs after this put).
pub async fn write<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    c: &Chunk,
    entry: NewEntry<'_>,
    upstream_bytes: u64,
) -> Result<Vec<Statement>, Error> {
    let key = entry_key(job.site.as_str(), entry.names, c.start, entry.until);
    let mut object = Vec::new();
    let mut points = Vec::with_capacity(entry.blocks.len());
    for (p, (block, samples)) in entry.names.iter().zip(entry.blocks) {
        points.push((p.as_str(), object.len() as u64, block.len() as u64, samples));
        object.extend_from_slice(&block);
    }
    let index = settled::Entry {
        key: &key,
        site: job.site.as_str(),
        span: (c.start, entry.until),
        points,
        sha256: sha256_hex(&object),
        bytes: object.len() as u64,
        upstream_bytes,
        now: deps.clock.now_ms(),
    };
    let stmts = settled::index(&index);
    let meta = BlobMeta {
        content_type: "application/gzip".to_owned(),
        custom: vec![("site".to_owned(), job.site.as_str().to_owned())],
    };
    deps.blobs.put(&key, object, &meta).await?;
    Ok(stmts)
}

/// Entries one eviction pass looks at.
const EVICT_SCAN: i64 = 1_000;

/// Evicts entries no row names, then the least recently read, until the
/// store is under `STORE_MAX_BYTES`: index rows first, objects after (a
/// crash in between leaves objects nothing names, for the bucket's
/// lifecycle rule). Returns the entries evicted.
pub async fn evict<P: Platform>(deps: &Deps<'_, P>) -> Result<u64, Error> {
    let figures = figures(deps.db).await?;
    let cap = deps.cfg.store_max_bytes;
    let rows = deps.db.query(&settled::eviction_order(EVICT_SCAN)).await?;
    let mut size = figures.bytes;
    let mut keys = Vec::new();
    for e in store::decode::<settled::Evictable>(rows)? {
        if e.named && size <= cap {
            break;
        }
        size = size.saturating_sub(e.bytes);
        keys.push(e.key);
    }
    remove(deps, keys).await
}

/// Forgets `site`'s entries that overlap `[from, to)`, so jobs fetch that
/// range again. Returns the entries removed.
pub async fn invalidate<P: Platform>(
    deps: &Deps<'_, P>,
    site: &str,
    from: EpochMs,
    to: EpochMs,
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        let rows = deps
            .db
            .query(&settled::overlapping(
                site,
                from,
                to,
                MAX_DELETE_KEYS as i64,
            ))
            .await?;
        let keys: Vec<String> = store::decode::<settled::Evictable>(rows)?
            .into_iter()
            .map(|e| e.key)
            .collect();
        if keys.is_empty() {
            return Ok(total);
        }
        total += remove(deps, keys).await?;
    }
}

async fn remove<P: Platform>(deps: &Deps<'_, P>, keys: Vec<String>) -> Result<u64, Error> {
    let mut n = 0;
    for batch in keys.chunks(MAX_DELETE_KEYS) {
        let json = serde_json::to_string(batch).map_err(|e| Error::Codec(e.to_string()))?;
        deps.db
            .batch(&settled::evict(&json, batch.len() as u64))
            .await?;
        deps.blobs.delete(batch).await?;
        n += batch.len() as u64;
    }
    Ok(n)
}

/// The store's size and running figures.
pub async fn figures<D: SqlDb>(db: &D) -> Result<settled::Figures, Error> {
    let rows = db.query(&settled::figures()).await?;
    Ok(store::decode(rows)?.into_iter().next().unwrap_or_default())
}

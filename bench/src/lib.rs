//! The consumer's chunk path (pages → samples → sort/dedup → aggregates +
//! encoded block) over a file of pre-generated upstream pages, so one set
//! of pages can be timed natively, in wasm under node, and against DuckDB
//! (`scripts/bench-core.sh`).
//!
//! # Layout
//! - this file: the pages file format and the chunk path.
//! - `wasm`: the exports node calls (wasm32 only).
//! - `src/bin/tsp-bench.rs`: `gen` (write the pages) and `run` (time them natively).
//! - `src/bin/tsp-bench-mem.rs`: peak heap of 30-s months at 1, 12 and 120 chunks.
#![deny(missing_docs)]

use sha2::{Digest, Sha256};
use tsp_format::aggregate::aggregate;
use tsp_format::codec::encode_block;
use tsp_format::sample::{parse_page, sort_dedup, PointSet, TimeParser};
use tsp_format::time::EpochMs;

#[cfg(target_arch = "wasm32")]
mod wasm;

/// One chunk's query and the upstream pages that answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Index of the point in the job.
    pub point_idx: u32,
    /// The point name.
    pub point: String,
    /// First millisecond.
    pub start: EpochMs,
    /// First millisecond after.
    pub end: EpochMs,
    /// Page bodies, in order.
    pub pages: Vec<Vec<u8>>,
}

/// What one chunk produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOut {
    /// Samples kept after dedup.
    pub samples: usize,
    /// Aggregate rows.
    pub rows: usize,
}

const MAGIC: &[u8; 8] = b"TSPPAGE1";

/// Serialises chunks: a magic, then per chunk its point index, name,
/// range and length-prefixed pages (little-endian).
pub fn encode_chunks(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let len = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u64).to_le_bytes());
    len(&mut out, chunks.len());
    for c in chunks {
        out.extend_from_slice(&c.point_idx.to_le_bytes());
        len(&mut out, c.point.len());
        out.extend_from_slice(c.point.as_bytes());
        out.extend_from_slice(&c.start.ms().to_le_bytes());
        out.extend_from_slice(&c.end.ms().to_le_bytes());
        len(&mut out, c.pages.len());
        for p in &c.pages {
            len(&mut out, p.len());
            out.extend_from_slice(p);
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("pages file is truncated".to_owned());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "short")?))
    }

    fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|e| e.to_string())
    }
}

/// Reads what [`encode_chunks`] wrote.
pub fn decode_chunks(bytes: &[u8]) -> Result<Vec<Chunk>, String> {
    let mut r = Reader(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return Err("not a pages file".to_owned());
    }
    let n = r.len()?;
    let mut chunks = Vec::new();
    for _ in 0..n {
        let idx = r.take(4)?;
        let point_idx = u32::from_le_bytes(idx.try_into().map_err(|_| "short")?);
        let name_len = r.len()?;
        let point = String::from_utf8(r.take(name_len)?.to_vec()).map_err(|e| e.to_string())?;
        let start = r.u64()? as i64;
        let end = r.u64()? as i64;
        let pages = (0..r.len()?)
            .map(|_| r.len().and_then(|l| r.take(l)).map(<[u8]>::to_vec))
            .collect::<Result<_, _>>()?;
        chunks.push(Chunk {
            point_idx,
            point,
            start: EpochMs(start),
            end: EpochMs(end),
            pages,
        });
    }
    Ok(chunks)
}

/// The chunk path as `service::process` runs it, returning the encoded
/// block. With `fresh_bodies`, each page is first copied into a buffer of
/// its own and dropped after parsing, as an HTTP body would be.
pub fn chunk_path(c: &Chunk, fresh_bodies: bool) -> Result<(ChunkOut, Vec<u8>), String> {
    let mut times = TimeParser::default();
    let one = PointSet::new(std::slice::from_ref(&c.point));
    let mut samples = [new_samples()];
    for page in &c.pages {
        let copy = fresh_bodies.then(|| page.clone());
        let body = copy.as_deref().unwrap_or(page);
        parse_page(body, &one, c.start, c.end, &mut times, &mut samples)?;
    }
    let [mut samples] = samples;
    sort_dedup(&mut samples);
    let rows = aggregate(&samples).len();
    let block = encode_block(c.point_idx, &samples).map_err(|e| e.to_string())?;
    let out = ChunkOut {
        samples: samples.len(),
        rows,
    };
    Ok((out, block))
}

#[cfg(not(feature = "baseline-api"))]
fn new_samples() -> tsp_format::sample::Samples {
    tsp_format::sample::Samples::new()
}

#[cfg(feature = "baseline-api")]
fn new_samples() -> Vec<tsp_format::sample::Sample> {
    Vec::new()
}

/// Runs every chunk once: total samples, and the SHA-256 of the blocks
/// in order (the same on every platform and build for the same pages).
pub fn run_all(chunks: &[Chunk]) -> Result<(u64, String), String> {
    let mut hash = Sha256::new();
    let mut n = 0u64;
    for c in chunks {
        let (out, block) = chunk_path(c, false)?;
        hash.update(&block);
        n += out.samples as u64;
    }
    Ok((n, hex::encode(hash.finalize())))
}

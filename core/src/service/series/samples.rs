//! A short range's series from the samples themselves.
//!
//! A completed job's object is its header, then every window's part in
//! plan order, each its points' blocks in point order; the checkpoints
//! keep each block's size (`job_chunks.point_bytes`). So each point of the
//! query is read from the newest completed job of the caller that holds it
//! and overlaps the range, with one R2 range read per window of that job
//! the range touches (covering every asked point's block in it), and only
//! those blocks are decoded. Per pixel bucket the first, lowest, highest
//! and last sample are kept with their own times, and a text point's
//! states as they change (at most the first and last change of each pixel
//! bucket, so the state after each bucket is always right).

use crate::api::{PointSeries, Series, SeriesResolution, States};
use crate::chunk;
use crate::codec::{self, Decoded};
use crate::domain::{format_rfc3339, EpochMs};
use crate::error::{Error, StoreError};
use crate::ports::{BlobStore, SqlDb};
use crate::store::{self, series::PartBlocks, series::SourceJob};

use super::{empty, SeriesQuery};

/// The series of `q` from samples; always cacheable (completed results
/// never change).
pub(super) async fn series<D: SqlDb, B: BlobStore>(
    db: &D,
    blobs: &B,
    owner: &str,
    q: &SeriesQuery,
) -> Result<(Series, bool), Error> {
    let range = (q.from, q.to);
    // Whole seconds: every `t` is seconds after `t0`.
    let per_pixel = (q.to - q.from + q.pixels() - 1) / q.pixels();
    let pixel_ms = (per_pixel + 999) / 1000 * 1000;
    let stmt = store::series::sample_jobs(owner, q.site.as_str(), range);
    let jobs: Vec<SourceJob> = store::decode(db.query(&stmt).await?)?;
    let mut m4: Vec<M4> = empty(q)
        .into_iter()
        .map(|s| M4::new(s, (q.from, pixel_ms), q.width < 2))
        .collect();
    for (job, wanted) in assign(&jobs, q) {
        let parts: Vec<PartBlocks> =
            store::decode(db.query(&store::series::part_blocks(&job.id)).await?)?;
        read_job(blobs, job, &parts, &wanted, range, &mut m4).await?;
    }
    let out = Series {
        site: q.site.as_str().to_owned(),
        from: format_rfc3339(q.from),
        to: format_rfc3339(q.to),
        width: q.width,
        resolution: SeriesResolution::Raw,
        pixel_ms,
        t0: q.from.ms(),
        series: m4.into_iter().map(M4::finish).collect(),
    };
    Ok((out, true))
}

/// Each asked point goes to the newest job holding it: per job, pairs of
/// (the point's index in the job, its index in the query).
fn assign<'j>(jobs: &'j [SourceJob], q: &SeriesQuery) -> Vec<(&'j SourceJob, Vec<(usize, usize)>)> {
    let mut out: Vec<(&SourceJob, Vec<(usize, usize)>)> = Vec::new();
    for (qi, p) in q.points.iter().enumerate() {
        let found = jobs.iter().find_map(|j| {
            let at = j.points.iter().position(|n| n == p.as_str())?;
            Some((j, at))
        });
        let Some((job, at)) = found else { continue };
        match out.iter_mut().find(|(j, _)| j.id == job.id) {
            Some((_, wanted)) => wanted.push((at, qi)),
            None => out.push((job, vec![(at, qi)])),
        }
    }
    out
}

/// Reads the asked blocks of every window of `job` that `range` touches,
/// feeding each point's samples in the range to its collector in time
/// order (windows in plan order, a block sorted).
async fn read_job<B: BlobStore>(
    blobs: &B,
    job: &SourceJob,
    parts: &[PartBlocks],
    wanted: &[(usize, usize)],
    (from, to): (EpochMs, EpochMs),
    m4: &mut [M4],
) -> Result<(), Error> {
    let plan = chunk::plan(job.start_ms, job.end_ms, job.window_days);
    let corrupt = |what: &str| Error::from(StoreError::Corrupt(format!("job {}: {what}", job.id)));
    let first = wanted.iter().map(|w| w.0).min().unwrap_or(0);
    let last = wanted.iter().map(|w| w.0).max().unwrap_or(0);
    let mut offset = job.result_header_bytes;
    for part in parts {
        let window = plan
            .get(part.idx as usize)
            .ok_or_else(|| corrupt("a part outside its plan"))?;
        let here = offset;
        offset += part.bytes;
        if window.end <= from || window.start >= to {
            continue;
        }
        let sizes = part
            .point_bytes
            .as_deref()
            .ok_or_else(|| corrupt("no block sizes"))?;
        if sizes.len() != job.points.len() {
            return Err(corrupt("block sizes of another point list"));
        }
        let start = here + sizes[..first].iter().sum::<u64>();
        let len = sizes[first..=last].iter().sum::<u64>();
        let Some(bytes) = blobs.get_range(&job.result_key, start, len).await? else {
            return Err(Error::Gone(
                "the result object behind this series no longer exists".to_owned(),
            ));
        };
        for &(jp, qi) in wanted {
            let at = sizes[first..jp].iter().sum::<u64>() as usize;
            let member = bytes
                .get(at..at + sizes[jp] as usize)
                .ok_or_else(|| corrupt("a short read"))?;
            let block = codec::decode_block(member)?;
            for (t, v) in codec::expand_block(&block)? {
                if t >= from && t < to {
                    m4[qi].push(t, v);
                }
            }
        }
    }
    Ok(())
}

/// One pixel bucket's first, lowest, highest and last numeric samples.
#[derive(Clone, Copy)]
struct Px {
    first: (EpochMs, f64),
    lo: (EpochMs, f64),
    hi: (EpochMs, f64),
    last: (EpochMs, f64),
}

/// One point's M4 over its samples in time order, and its text states.
struct M4 {
    out: PointSeries,
    /// `from` and the pixel bucket's width.
    grid: (EpochMs, i64),
    minmax: bool,
    px: Option<(i64, Px)>,
    /// The state now, the pixel bucket of its last change, and a change
    /// held back (the last of its bucket so far).
    state: Option<String>,
    state_px: i64,
    held: Option<(EpochMs, String)>,
    states: States,
}

impl M4 {
    fn new(out: PointSeries, grid: (EpochMs, i64), minmax: bool) -> Self {
        let states = States {
            t: Vec::new(),
            v: Vec::new(),
        };
        Self {
            out,
            grid,
            minmax,
            px: None,
            state: None,
            state_px: -1,
            held: None,
            states,
        }
    }

    fn pixel(&self, t: EpochMs) -> i64 {
        (t - self.grid.0) / self.grid.1
    }

    fn secs(&self, t: EpochMs) -> u32 {
        ((t - self.grid.0).max(0) / 1000) as u32
    }

    fn push(&mut self, t: EpochMs, v: Decoded) {
        match v {
            Decoded::Number(x) => self.number(t, x),
            Decoded::Text(s) => self.text(t, s),
        }
    }

    fn number(&mut self, t: EpochMs, x: f64) {
        let n = self.pixel(t);
        match &mut self.px {
            Some((at, px)) if *at == n => {
                if x < px.lo.1 {
                    px.lo = (t, x);
                }
                if x > px.hi.1 {
                    px.hi = (t, x);
                }
                px.last = (t, x);
            }
            _ => {
                self.flush();
                let one = (t, x);
                self.px = Some((
                    n,
                    Px {
                        first: one,
                        lo: one,
                        hi: one,
                        last: one,
                    },
                ));
            }
        }
    }

    /// Emits the pixel bucket's values in time order, without repeats.
    fn flush(&mut self) {
        let Some((_, px)) = self.px.take() else {
            return;
        };
        let keep_ends = !self.minmax;
        let mut four = [
            (px.first, keep_ends),
            (px.lo, true),
            (px.hi, true),
            (px.last, keep_ends),
        ];
        four.sort_by_key(|((t, _), _)| *t);
        let mut prev: Option<(EpochMs, f32)> = None;
        for ((t, v), keep) in four {
            let value = (t, v as f32);
            if !keep || prev == Some(value) {
                continue;
            }
            prev = Some(value);
            self.out.t.push(self.secs(t));
            self.out.v.push(value.1);
        }
    }

    fn text(&mut self, t: EpochMs, s: String) {
        if self.state.as_deref() == Some(s.as_str()) {
            return;
        }
        self.state = Some(s.clone());
        let n = self.pixel(t);
        if n != self.state_px {
            self.release();
            self.state_px = n;
            self.states.t.push(self.secs(t));
            self.states.v.push(s);
        } else {
            self.held = Some((t, s));
        }
    }

    fn release(&mut self) {
        if let Some((t, s)) = self.held.take() {
            self.states.t.push(self.secs(t));
            self.states.v.push(s);
        }
    }

    fn finish(mut self) -> PointSeries {
        self.flush();
        self.release();
        if !self.states.t.is_empty() {
            self.out.states = Some(self.states);
        }
        self.out
    }
}

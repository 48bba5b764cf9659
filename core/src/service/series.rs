//! `GET /v1/series`: chart-ready series from stored aggregate buckets,
//! or from the samples when the range is short.
//!
//! Per point, at most `2·width` values: the range is cut into `width / 2`
//! pixel buckets and each keeps its first, lowest, highest and last value
//! (M4), so every extreme and the line between pixels survive. The
//! coarsest source that still gives every pixel bucket data is used:
//! daily buckets when the range has as many days as pixel buckets, hourly
//! when it has as many hours, and otherwise (a range of at most
//! [`RAW_MAX_MS`]) the samples themselves, read block by block from the
//! caller's result objects ([`samples`]), where text points also give
//! their state changes. Over buckets the reduction runs in SQL
//! ([`store::series::m4`]) and a point's buckets of text only are left out.

mod samples;

use crate::aggregate::Resolution;
use crate::api::{PointSeries, Series, SeriesResolution};
use crate::domain::{format_rfc3339, EpochMs, PointName, Site, DAY_MS, HOUR_MS};
use crate::error::{Error, ValidationError};
use crate::ports::{BlobStore, SqlDb};
use crate::store;

/// Longest range drawn from samples: 31 days (at most two month windows,
/// or four 8-day ones, of reads per job).
pub const RAW_MAX_MS: i64 = 31 * DAY_MS;

/// Most points one request may ask for.
pub const MAX_SERIES_POINTS: usize = 20;
/// Widest chart, in pixels.
pub const MAX_WIDTH: u32 = 10_000;

/// A parsed series query.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    /// The site.
    pub site: Site,
    /// The points, in the order asked.
    pub points: Vec<PointName>,
    /// Range start.
    pub from: EpochMs,
    /// Range end (exclusive).
    pub to: EpochMs,
    /// Pixels.
    pub width: u32,
    /// A resolution asked for, or the coarsest that fits.
    pub resolution: Option<SeriesResolution>,
}

impl SeriesQuery {
    /// Checks what the parameters say; each error names its field.
    pub fn check(self) -> Result<Self, ValidationError> {
        if self.points.is_empty() || self.points.len() > MAX_SERIES_POINTS {
            let msg = format!("must name 1 to {MAX_SERIES_POINTS} points");
            return Err(ValidationError::single("points", &msg));
        }
        if !(1..=MAX_WIDTH).contains(&self.width) {
            return Err(ValidationError::single("width", "must be 1 to 10000"));
        }
        if self.to <= self.from || self.to - self.from > 366 * DAY_MS {
            return Err(ValidationError::single(
                "to",
                "must be after from, at most 366 days",
            ));
        }
        if self.resolution == Some(SeriesResolution::Raw) && self.to - self.from > RAW_MAX_MS {
            let msg = "raw needs a range of at most 31 days";
            return Err(ValidationError::single("resolution", msg));
        }
        Ok(self)
    }

    /// Pixel buckets: two pixels each, at least one.
    fn pixels(&self) -> i64 {
        i64::from((self.width / 2).max(1))
    }

    /// What the series is drawn from: asked for, or the coarsest that
    /// gives every pixel bucket data.
    pub fn resolution(&self) -> SeriesResolution {
        let span = self.to - self.from;
        self.resolution.unwrap_or({
            if span / DAY_MS >= self.pixels() {
                SeriesResolution::Day
            } else if span / HOUR_MS >= self.pixels() || span > RAW_MAX_MS {
                SeriesResolution::Hour
            } else {
                SeriesResolution::Raw
            }
        })
    }
}

/// The owner's series, and whether it may be cached (every bucket behind
/// it complete, or samples of completed jobs).
pub async fn series<D: SqlDb, B: BlobStore>(
    db: &D,
    blobs: &B,
    owner: &str,
    q: &SeriesQuery,
) -> Result<(Series, bool), Error> {
    match q.resolution() {
        SeriesResolution::Day => buckets(db, owner, q, Resolution::Day).await,
        SeriesResolution::Hour => buckets(db, owner, q, Resolution::Hour).await,
        SeriesResolution::Raw => samples::series(db, blobs, owner, q).await,
    }
}

/// Empty series, one per point asked for, in the order asked.
fn empty(q: &SeriesQuery) -> Vec<PointSeries> {
    q.points
        .iter()
        .map(|p| PointSeries {
            point: p.as_str().to_owned(),
            t: Vec::new(),
            v: Vec::new(),
            states: None,
        })
        .collect()
}

/// M4 over the owner's stored buckets of one resolution.
async fn buckets<D: SqlDb>(
    db: &D,
    owner: &str,
    q: &SeriesQuery,
    res: Resolution,
) -> Result<(Series, bool), Error> {
    let bucket = res.width_ms();
    let from = q.from.floor(bucket);
    let span = (q.to - from).max(1);
    // Whole buckets per pixel bucket, enough to cover the range.
    let per_pixel = (span + q.pixels() - 1) / q.pixels();
    let pixel_ms = (per_pixel + bucket - 1) / bucket * bucket;
    let names = serde_json::to_string(&q.points).map_err(|e| Error::Codec(e.to_string()))?;
    let stmt = store::series::m4(
        owner,
        q.site.as_str(),
        (&names, res.as_str()),
        (from, q.to),
        pixel_ms,
    );
    let pixels: Vec<store::series::Pixel> = store::decode(db.query(&stmt).await?)?;
    let complete = pixels.iter().all(|p| !p.partial);
    let mut series = empty(q);
    for px in &pixels {
        if let Some(s) = series.iter_mut().find(|s| s.point == px.point) {
            push_pixel(s, px, (from, bucket / 2), q.width < 2);
        }
    }
    let out = Series {
        site: q.site.as_str().to_owned(),
        from: format_rfc3339(from),
        to: format_rfc3339(q.to),
        width: q.width,
        resolution: res.into(),
        pixel_ms,
        t0: from.ms(),
        series,
    };
    Ok((out, complete))
}

/// Appends one pixel's M4 values in time order (min and max only when
/// the chart is one pixel wide). An extreme is placed at the middle of the
/// bucket that held it (buckets keep no time for their min and max), kept
/// between the pixel's first and last sample.
fn push_pixel(
    s: &mut PointSeries,
    px: &store::series::Pixel,
    (t0, half): (EpochMs, i64),
    minmax: bool,
) {
    let inside = |t: EpochMs| (t + half).max(px.ft).min(px.lt);
    let mut four = [
        (px.ft, px.fv, !minmax),
        (inside(px.lo_t), px.lo, true),
        (inside(px.hi_t), px.hi, true),
        (px.lt, px.lv, !minmax),
    ];
    four.sort_by_key(|(t, _, _)| *t);
    let mut last: Option<(EpochMs, f32)> = None;
    for (t, v, keep) in four {
        let (Some(v), true) = (v, keep) else { continue };
        let point = (t, v as f32);
        if last == Some(point) {
            continue;
        }
        last = Some(point);
        s.t.push(((t - t0).max(0) / 1000) as u32);
        s.v.push(point.1);
    }
}

//! `GET /v1/series`: chart-ready series from stored aggregate buckets.
//!
//! Per point, at most `2·width` values: the range is cut into `width / 2`
//! pixel buckets (whole hours or days, aligned to UTC bucket starts) and
//! each keeps its first, lowest, highest and last value (M4), so every
//! extreme and the line between pixels survive. The reduction runs in SQL
//! ([`store::series::m4`]); the Worker only shapes the answer. The coarsest
//! stored resolution that still gives every pixel a bucket is used (daily
//! when the range has as many days as pixel buckets, else hourly). A
//! point's buckets of text only have no numeric value and are left out.

use crate::aggregate::Resolution;
use crate::api::{PointSeries, Series};
use crate::domain::{format_rfc3339, EpochMs, PointName, Site, DAY_MS};
use crate::error::{Error, ValidationError};
use crate::ports::SqlDb;
use crate::store;

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
    pub resolution: Option<Resolution>,
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
        Ok(self)
    }

    /// Pixel buckets: two pixels each, at least one.
    fn pixels(&self) -> i64 {
        i64::from((self.width / 2).max(1))
    }

    /// The resolution drawn from.
    pub fn resolution(&self) -> Resolution {
        self.resolution.unwrap_or({
            if (self.to - self.from) / DAY_MS >= self.pixels() {
                Resolution::Day
            } else {
                Resolution::Hour
            }
        })
    }
}

/// The owner's series, and whether every bucket behind it was complete
/// (then it may be cached).
pub async fn series<D: SqlDb>(
    db: &D,
    owner: &str,
    q: &SeriesQuery,
) -> Result<(Series, bool), Error> {
    let res = q.resolution();
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
    let mut series: Vec<PointSeries> = q
        .points
        .iter()
        .map(|p| PointSeries {
            point: p.as_str().to_owned(),
            t: Vec::new(),
            v: Vec::new(),
        })
        .collect();
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
        resolution: res,
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

//! Splitting a job into chunks: time windows of whole UTC days inside a
//! UTC month, each holding every point of the job.
//!
//! The upstream cannot filter by point (ACE ignores `point_names`), so the
//! unit of work is a window that fetches all of the job's points at once
//! (`tsp_core::plan` decides how). Chunk boundaries fall on UTC midnights,
//! so no hourly or daily bucket spans two chunks and each chunk's
//! aggregates are final on their own. The plan is a pure function of the
//! job row (its range, its point count and its `window_days`, fixed at
//! submission), so it is never stored: only `chunks_total` and the
//! finished chunk indexes are. It does not depend on the fetch plan, so a
//! job's result is the same whichever endpoint fed it.

use chrono::{Datelike, NaiveDate};

use crate::time::{EpochMs, DAY_MS};

/// Longest window: a month never holds more days.
pub const MAX_WINDOW_DAYS: u32 = 31;
/// The upstream's sample interval a deployment assumes by default when it
/// sizes windows (`UPSTREAM_SAMPLE_SECS`): ACE serves 5-minute data.
pub const DEFAULT_SAMPLE_SECS: u64 = 300;
/// The samples one window holds at most by default, all its points
/// together (`WINDOW_MAX_SAMPLES`).
pub const DEFAULT_WINDOW_MAX_SAMPLES: u64 = 250_000;

/// One unit of work: every point of the job over a span of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the plan, 0-based; also the order of its blocks in the result.
    pub idx: u32,
    /// First millisecond.
    pub start: EpochMs,
    /// First millisecond after.
    pub end: EpochMs,
}

fn next_month_start(ms: EpochMs) -> EpochMs {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms.ms()) else {
        return EpochMs::MAX;
    };
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(EpochMs::MAX, |d| EpochMs(d.and_utc().timestamp_millis()))
}

/// The next boundary after `ms`: the next UTC midnight `days` days on
/// (counted from the month's first day, so windows are the same for every
/// job of the same month), or the next month, whichever comes first.
fn next_boundary(ms: EpochMs, days: u32) -> EpochMs {
    let month_end = next_month_start(ms);
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms.ms()) else {
        return month_end;
    };
    let day0 = ms.floor(DAY_MS) - i64::from(t.day0()) * DAY_MS;
    let days = i64::from(days.clamp(1, MAX_WINDOW_DAYS));
    let k = (ms - day0) / (days * DAY_MS) + 1;
    (day0 + k * days * DAY_MS).min(month_end)
}

/// Days per window for a job of `points` points: as many as keep a
/// window's samples (at one sample per `sample_secs`) under `max_samples`,
/// between 1 and a month.
pub fn window_days(points: usize, sample_secs: u64, max_samples: u64) -> u32 {
    let per_day = (86_400 / sample_secs.max(1)).max(1) * (points.max(1) as u64);
    (max_samples / per_day).clamp(1, u64::from(MAX_WINDOW_DAYS)) as u32
}

/// The chunks of `[start, end)` in windows of at most `days` days.
pub fn plan(start: EpochMs, end: EpochMs, days: u32) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut cur = start;
    while cur < end {
        let next = next_boundary(cur, days).min(end);
        chunks.push(Chunk {
            idx: chunks.len() as u32,
            start: cur,
            end: next,
        });
        cur = next;
    }
    chunks
}

/// The daily quota's unit, which predates windows: a point over a UTC
/// month touched by the range.
pub fn quota_units(start: EpochMs, end: EpochMs, points: usize) -> i64 {
    (plan(start, end, MAX_WINDOW_DAYS).len() * points) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    #[test]
    fn month_windows_when_few_points() {
        let start = parse_rfc3339("2024-11-15T00:00:00Z").unwrap();
        let end = start + 365 * DAY_MS;
        let chunks = plan(start, end, MAX_WINDOW_DAYS);
        assert_eq!(chunks.len(), 13);
        assert_eq!(chunks[0].start, start);
        assert_eq!(chunks[12].end, end);
        for w in chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert_eq!(w[0].end.ms() % DAY_MS, 0, "boundary not at midnight");
        }
        assert_eq!(quota_units(start, end, 2), 26);
    }

    #[test]
    fn windows_cut_months_into_day_spans_aligned_to_the_month() {
        let start = parse_rfc3339("2025-01-03T12:00:00Z").unwrap();
        let end = parse_rfc3339("2025-02-20T00:00:00Z").unwrap();
        let c = plan(start, end, 8);
        let at = |s: &str| parse_rfc3339(s).unwrap();
        let bounds: Vec<EpochMs> = c.iter().map(|c| c.end).collect();
        assert_eq!(
            bounds,
            vec![
                at("2025-01-09T00:00:00Z"),
                at("2025-01-17T00:00:00Z"),
                at("2025-01-25T00:00:00Z"),
                at("2025-02-01T00:00:00Z"),
                at("2025-02-09T00:00:00Z"),
                at("2025-02-17T00:00:00Z"),
                end,
            ]
        );
        assert!(c.iter().all(|c| c.end - c.start <= 8 * DAY_MS));
    }

    #[test]
    fn window_days_bound_samples() {
        // 100 points at 5 min: 28,800 samples a day.
        assert_eq!(window_days(100, 300, 250_000), 8);
        assert_eq!(window_days(10, 300, 250_000), 31);
        assert_eq!(window_days(100, 30, 250_000), 1);
        assert_eq!(window_days(0, 0, 0), 1);
    }

    #[test]
    fn a_short_range_is_one_chunk() {
        let start = parse_rfc3339("2025-03-03T00:00:00Z").unwrap();
        assert_eq!(plan(start, start + DAY_MS, 1).len(), 1);
        assert_eq!(plan(start, start + 3_600_000, 31).len(), 1);
    }
}

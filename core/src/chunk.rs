//! Splitting a job into chunks: one point × one UTC calendar month.
//!
//! Chunk boundaries fall on UTC midnights, so no hourly or daily bucket
//! spans two chunks and each chunk's aggregates are final on their own. The
//! plan is a pure function of the job, so it is never stored: only
//! `chunks_total` and the finished chunk indexes are.

use chrono::{Datelike, NaiveDate};

use crate::domain::EpochMs;

/// One unit of work: a point over a span of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the plan, 0-based; also the order of blocks in the result.
    pub idx: u32,
    /// Index into the job's sorted points.
    pub point: u32,
    /// First millisecond.
    pub start: EpochMs,
    /// First millisecond after.
    pub end: EpochMs,
}

/// The UTC month boundaries that split `[start, end)`.
fn month_spans(start: EpochMs, end: EpochMs) -> Vec<(EpochMs, EpochMs)> {
    let mut spans = Vec::new();
    let mut cur = start;
    while cur < end {
        let next = next_month_start(cur).min(end);
        spans.push((cur, next));
        cur = next;
    }
    spans
}

fn next_month_start(ms: EpochMs) -> EpochMs {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return EpochMs::MAX;
    };
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(EpochMs::MAX, |d| d.and_utc().timestamp_millis())
}

/// The chunks of a job over `points` points, point-major.
pub fn plan(start: EpochMs, end: EpochMs, points: usize) -> Vec<Chunk> {
    let spans = month_spans(start, end);
    let mut chunks = Vec::with_capacity(spans.len() * points);
    for p in 0..points {
        for &(s, e) in &spans {
            chunks.push(Chunk {
                idx: chunks.len() as u32,
                point: p as u32,
                start: s,
                end: e,
            });
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{parse_rfc3339, DAY_MS};

    #[test]
    fn a_year_is_thirteen_months_per_point_when_unaligned() {
        let start = parse_rfc3339("2024-11-15T00:00:00Z").unwrap();
        let end = start + 365 * DAY_MS;
        let chunks = plan(start, end, 2);
        assert_eq!(chunks.len(), 26);
        assert_eq!(chunks[0].start, start);
        assert_eq!(chunks[12].end, end);
        assert_eq!(chunks[13].point, 1);
        for w in chunks[..13].windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert_eq!(w[0].end % DAY_MS, 0, "boundary not at midnight");
        }
    }

    #[test]
    fn a_short_range_is_one_chunk_per_point() {
        let start = parse_rfc3339("2025-03-03T00:00:00Z").unwrap();
        assert_eq!(plan(start, start + DAY_MS, 3).len(), 3);
    }
}

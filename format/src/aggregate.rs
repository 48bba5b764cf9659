//! Hourly and daily aggregates per point, in one streaming pass.
//!
//! Input is one chunk's samples for one point, sorted and deduplicated
//! ([`crate::sample::sort_dedup`]), so first/last are simply the first and
//! last numeric samples of a bucket and the result does not depend on the
//! order the upstream delivered them in. Non-numeric and non-finite values
//! are counted and otherwise skipped. `stddev` is the population standard
//! deviation, from Welford's update; `sum` is Neumaier-compensated. A
//! statistic that overflows `f64` is NULL rather than infinite.

use serde::{Deserialize, Serialize};

use crate::sample::{Sample, Value};
use crate::time::{EpochMs, DAY_MS, HOUR_MS};

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    /// One UTC hour.
    #[serde(rename = "1h")]
    Hour,
    /// One UTC day.
    #[serde(rename = "1d")]
    Day,
}

impl Resolution {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Hour => "1h",
            Resolution::Day => "1d",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1h" => Some(Resolution::Hour),
            "1d" => Some(Resolution::Day),
            _ => None,
        }
    }

    /// Bucket width in milliseconds.
    pub fn width_ms(self) -> i64 {
        match self {
            Resolution::Hour => HOUR_MS,
            Resolution::Day => DAY_MS,
        }
    }

    /// The start of the bucket holding `ts`.
    pub fn bucket_start(self, ts: EpochMs) -> EpochMs {
        ts.floor(self.width_ms())
    }
}

/// One finished bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Bucket width.
    pub resolution: Resolution,
    /// Bucket start, epoch ms.
    pub bucket_start: EpochMs,
    /// Finite numeric samples.
    pub count: u64,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Sum of values.
    pub sum: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub stddev: Option<f64>,
    /// Earliest numeric sample: time and value.
    pub first: Option<(EpochMs, f64)>,
    /// Latest numeric sample: time and value.
    pub last: Option<(EpochMs, f64)>,
    /// Samples whose value is not a number.
    pub non_numeric: u64,
    /// Samples whose value is NaN or infinite.
    pub non_finite: u64,
}

impl Aggregate {
    /// Whether `[start, end)` covers this bucket whole. A job that covers a
    /// bucket only in part writes it as partial.
    pub fn covered_by(&self, start: EpochMs, end: EpochMs) -> bool {
        start <= self.bucket_start && self.bucket_start + self.resolution.width_ms() <= end
    }
}

/// A bucket being filled.
#[derive(Debug, Clone)]
struct Acc {
    start: EpochMs,
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    comp: f64,
    mean: f64,
    m2: f64,
    first: Option<(EpochMs, f64)>,
    last: Option<(EpochMs, f64)>,
    non_numeric: u64,
    non_finite: u64,
}

impl Acc {
    fn new(start: EpochMs) -> Self {
        Self {
            start,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            comp: 0.0,
            mean: 0.0,
            m2: 0.0,
            first: None,
            last: None,
            non_numeric: 0,
            non_finite: 0,
        }
    }

    #[inline]
    fn push(&mut self, ts: EpochMs, value: &Value) {
        let x = match value.as_f64() {
            Some(x) => x,
            None => {
                match value {
                    Value::NonFinite(_) => self.non_finite += 1,
                    _ => self.non_numeric += 1,
                }
                return;
            }
        };
        self.count += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        // Neumaier's compensated sum.
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
        // Welford.
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        if self.first.is_none() {
            self.first = Some((ts, x));
        }
        self.last = Some((ts, x));
    }

    fn finish(self, resolution: Resolution) -> Aggregate {
        let has = self.count > 0;
        let sum = self.sum + self.comp;
        // Statistics that overflowed f64 are stored as NULL, never ±inf.
        let finite = |v: f64| v.is_finite().then_some(v);
        Aggregate {
            resolution,
            bucket_start: self.start,
            count: self.count,
            min: has.then_some(self.min),
            max: has.then_some(self.max),
            sum: has.then_some(sum).and_then(finite),
            mean: has.then(|| sum / self.count as f64).and_then(finite),
            stddev: has
                .then(|| (self.m2 / self.count as f64).max(0.0).sqrt())
                .and_then(finite),
            first: self.first,
            last: self.last,
            non_numeric: self.non_numeric,
            non_finite: self.non_finite,
        }
    }
}

/// Streams sorted samples into hourly and daily buckets.
#[derive(Debug, Default)]
pub struct Aggregator {
    hour: Option<Acc>,
    day: Option<Acc>,
    out: Vec<Aggregate>,
}

impl Aggregator {
    /// A new aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn roll(slot: &mut Option<Acc>, res: Resolution, ts: EpochMs, out: &mut Vec<Aggregate>) {
        let start = res.bucket_start(ts);
        match slot {
            Some(acc) if acc.start == start => {}
            _ => {
                if let Some(done) = slot.replace(Acc::new(start)) {
                    out.push(done.finish(res));
                }
            }
        }
    }

    /// Adds the next sample; timestamps must not decrease.
    #[inline]
    pub fn push(&mut self, s: &Sample) {
        Self::roll(&mut self.hour, Resolution::Hour, s.ts, &mut self.out);
        Self::roll(&mut self.day, Resolution::Day, s.ts, &mut self.out);
        if let Some(h) = self.hour.as_mut() {
            h.push(s.ts, &s.value);
        }
        if let Some(d) = self.day.as_mut() {
            d.push(s.ts, &s.value);
        }
    }

    /// Finishes the open buckets and returns every bucket, daily rows after
    /// hourly rows within each day.
    pub fn finish(mut self) -> Vec<Aggregate> {
        if let Some(h) = self.hour.take() {
            self.out.push(h.finish(Resolution::Hour));
        }
        if let Some(d) = self.day.take() {
            self.out.push(d.finish(Resolution::Day));
        }
        self.out
    }
}

/// Aggregates sorted, deduplicated samples.
pub fn aggregate(samples: &[Sample]) -> Vec<Aggregate> {
    let mut agg = Aggregator::new();
    for s in samples {
        agg.push(s);
    }
    agg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Samples;

    fn s(ts: i64, v: &str) -> (EpochMs, &str) {
        (EpochMs(ts), v)
    }

    #[test]
    fn buckets_and_stats() {
        let samples = [
            s(0, "1"),
            s(HOUR_MS / 2, "3"),
            s(HOUR_MS, "on"),
            s(HOUR_MS + 1, "NaN"),
            s(HOUR_MS + 2, "10"),
            s(DAY_MS, "5"),
        ];
        let rows = aggregate(&Samples::from_raw(samples));
        let hours: Vec<_> = rows
            .iter()
            .filter(|r| r.resolution == Resolution::Hour)
            .collect();
        let days: Vec<_> = rows
            .iter()
            .filter(|r| r.resolution == Resolution::Day)
            .collect();
        assert_eq!(hours.len(), 3);
        assert_eq!(days.len(), 2);
        assert_eq!(hours[0].count, 2);
        assert_eq!(hours[0].mean, Some(2.0));
        assert_eq!(hours[0].stddev, Some(1.0));
        assert_eq!(hours[1].non_numeric, 1);
        assert_eq!(hours[1].non_finite, 1);
        assert_eq!(hours[1].first, Some((EpochMs(HOUR_MS + 2), 10.0)));
        assert_eq!(days[0].count, 3);
        assert_eq!(days[0].min, Some(1.0));
        assert_eq!(days[0].max, Some(10.0));
        assert_eq!(days[0].last, Some((EpochMs(HOUR_MS + 2), 10.0)));
        assert_eq!(days[1].bucket_start, EpochMs(DAY_MS));
    }

    #[test]
    fn a_bucket_of_only_states_has_no_numeric_stats() {
        let rows = aggregate(&Samples::from_raw([s(0, "active"), s(1, "inactive")]));
        assert_eq!(rows[0].count, 0);
        assert_eq!(rows[0].non_numeric, 2);
        assert_eq!(rows[0].mean, None);
    }
}

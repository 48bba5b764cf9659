//! The chart series' statement: M4 over stored aggregate buckets.

use serde::Deserialize;

use super::stmt;
use crate::domain::EpochMs;
use crate::job::de;
use crate::ports::Statement;

/// One pixel bucket of one point: its first, lowest, highest and last
/// values with their times, and whether a partial bucket fed it.
#[derive(Debug, Clone, Deserialize)]
pub struct Pixel {
    /// The point.
    pub point: String,
    /// First sample.
    #[serde(deserialize_with = "de::int")]
    pub ft: EpochMs,
    /// Its value.
    pub fv: Option<f64>,
    /// Start of the bucket holding the lowest value.
    #[serde(deserialize_with = "de::int")]
    pub lo_t: EpochMs,
    /// The lowest value.
    pub lo: Option<f64>,
    /// Start of the bucket holding the highest value.
    #[serde(deserialize_with = "de::int")]
    pub hi_t: EpochMs,
    /// The highest value.
    pub hi: Option<f64>,
    /// Last sample.
    #[serde(deserialize_with = "de::int")]
    pub lt: EpochMs,
    /// Its value.
    pub lv: Option<f64>,
    /// Whether any bucket in it is partial.
    #[serde(deserialize_with = "super::super::job::de::flag")]
    pub partial: bool,
}

/// The owner's buckets of `points` (a JSON array) at `resolution` in
/// `[from, to)`, reduced in SQL to one row per point and pixel of
/// `pixel_ms`: the first, min, max and last (M4). Buckets without a
/// numeric value are left out. D1 binds numbers as floats, so the pixel
/// index is cast to an integer, never left to integer division.
pub fn m4(
    owner: &str,
    site: &str,
    (points_json, resolution): (&str, &str),
    (from, to): (EpochMs, EpochMs),
    pixel_ms: i64,
) -> Statement {
    stmt(
        "WITH r AS (SELECT point, CAST((bucket_start - ?5) / ?7 AS INTEGER) AS px, \
           bucket_start, min, max, \
           first_ts, first_value, last_ts, last_value, partial FROM timeseries_agg \
           WHERE owner = ?1 AND site = ?2 AND resolution = ?4 \
           AND point IN (SELECT value FROM json_each(?3)) \
           AND bucket_start >= ?5 AND bucket_start < ?6 AND min IS NOT NULL), \
         w AS (SELECT point, px, \
           FIRST_VALUE(first_ts) OVER t AS ft, FIRST_VALUE(first_value) OVER t AS fv, \
           FIRST_VALUE(last_ts) OVER rt AS lt, FIRST_VALUE(last_value) OVER rt AS lv, \
           FIRST_VALUE(bucket_start) OVER l AS lo_t, FIRST_VALUE(min) OVER l AS lo, \
           FIRST_VALUE(bucket_start) OVER h AS hi_t, FIRST_VALUE(max) OVER h AS hi, \
           MAX(partial) OVER (PARTITION BY point, px) AS partial, \
           ROW_NUMBER() OVER t AS n FROM r \
           WINDOW t AS (PARTITION BY point, px ORDER BY bucket_start), \
             rt AS (PARTITION BY point, px ORDER BY bucket_start DESC), \
             l AS (PARTITION BY point, px ORDER BY min, bucket_start), \
             h AS (PARTITION BY point, px ORDER BY max DESC, bucket_start)) \
         SELECT point, ft, fv, lo_t, lo, hi_t, hi, lt, lv, partial FROM w \
         WHERE n = 1 ORDER BY point, px",
        vec![
            owner.into(),
            site.into(),
            points_json.into(),
            resolution.into(),
            from.into(),
            to.into(),
            pixel_ms.into(),
        ],
    )
}

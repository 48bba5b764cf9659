//! Time as the pipeline counts it: UTC milliseconds since the Unix epoch.

/// Milliseconds in one UTC day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;

/// An instant: UTC milliseconds since the Unix epoch. Adding or taking a
/// span (an `i64` of milliseconds) gives an instant; two instants differ
/// by a span. On the wire and in the databases it is the plain number.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct EpochMs(pub i64);

impl EpochMs {
    /// The earliest instant.
    pub const MIN: EpochMs = EpochMs(i64::MIN);
    /// The latest instant.
    pub const MAX: EpochMs = EpochMs(i64::MAX);

    /// The milliseconds.
    pub const fn ms(self) -> i64 {
        self.0
    }

    /// The start of the `unit`-long span (a day, an hour) holding it.
    pub const fn floor(self, unit: i64) -> EpochMs {
        EpochMs(self.0 - self.0.rem_euclid(unit))
    }

    /// Which `unit`-long span since the epoch holds it (the day number for
    /// [`DAY_MS`]).
    pub const fn div_euclid(self, unit: i64) -> i64 {
        self.0.div_euclid(unit)
    }

    /// `self + span`, stopping at the ends of the range.
    pub const fn saturating_add(self, span: i64) -> EpochMs {
        EpochMs(self.0.saturating_add(span))
    }

    /// `self + span`, or `None` past the range.
    pub fn checked_add(self, span: i64) -> Option<EpochMs> {
        self.0.checked_add(span).map(EpochMs)
    }
}

impl std::ops::Add<i64> for EpochMs {
    type Output = EpochMs;
    fn add(self, span: i64) -> EpochMs {
        EpochMs(self.0 + span)
    }
}

impl std::ops::AddAssign<i64> for EpochMs {
    fn add_assign(&mut self, span: i64) {
        self.0 += span;
    }
}

impl std::ops::Sub<i64> for EpochMs {
    type Output = EpochMs;
    fn sub(self, span: i64) -> EpochMs {
        EpochMs(self.0 - span)
    }
}

impl std::ops::Sub for EpochMs {
    type Output = i64;
    fn sub(self, earlier: EpochMs) -> i64 {
        self.0 - earlier.0
    }
}

/// An instant equals the number of milliseconds it is (a row's or a
/// document's plain number).
impl PartialEq<i64> for EpochMs {
    fn eq(&self, ms: &i64) -> bool {
        self.0 == *ms
    }
}

impl From<i64> for EpochMs {
    fn from(ms: i64) -> Self {
        EpochMs(ms)
    }
}

impl From<EpochMs> for i64 {
    fn from(t: EpochMs) -> Self {
        t.0
    }
}

impl From<EpochMs> for serde_json::Value {
    fn from(t: EpochMs) -> Self {
        t.0.into()
    }
}

impl std::fmt::Display for EpochMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC (`2025-10-16T00:05:00Z`).
pub fn format_rfc3339(t: impl Into<EpochMs>) -> String {
    let ms = t.into().0;
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) if ms % 1000 == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// An HTTP date (RFC 9110 §5.6.7, IMF-fixdate), as `Last-Modified` carries it.
pub fn http_date(t: impl Into<EpochMs>) -> String {
    let ms = t.into().0;
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        None => String::new(),
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<EpochMs> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| EpochMs(t.timestamp_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_take_spans_and_differ_by_spans() {
        let t = EpochMs(DAY_MS + 5 * HOUR_MS + 7);
        assert_eq!(t.floor(DAY_MS), EpochMs(DAY_MS));
        assert_eq!(EpochMs(-1).floor(DAY_MS), EpochMs(-DAY_MS));
        assert_eq!(t.div_euclid(HOUR_MS), 29);
        assert_eq!((t + HOUR_MS) - t, HOUR_MS);
        assert_eq!(t - 7, EpochMs(DAY_MS + 5 * HOUR_MS));
        assert_eq!(EpochMs::MAX.saturating_add(1), EpochMs::MAX);
        assert_eq!(EpochMs::MAX.checked_add(1), None);
        assert_eq!(t, DAY_MS + 5 * HOUR_MS + 7);
    }

    #[test]
    fn an_instant_is_a_plain_number_on_the_wire() {
        let t = EpochMs(1_700_000_000_000);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000000");
        assert_eq!(serde_json::from_str::<EpochMs>("1700000000000").unwrap(), t);
        assert_eq!(format_rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(t));
    }
}

//! Domain newtypes, parsed once at the edge.
//!
//! Past [`JobRequest::parse`], nothing re-checks a site, a point or a range:
//! the types carry the proof.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, ValidationError};

/// Milliseconds in one UTC day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// The longest range a job may cover.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The longest point name accepted, in bytes.
pub const MAX_POINT_BYTES: usize = 512;

/// UTC milliseconds since the Unix epoch.
pub type EpochMs = i64;

/// A job identifier: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// Parses an identifier as it appears in a URL or a message.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::single(
                "id",
                "must be 32 lowercase hex characters",
            ))
        }
    }

    /// Builds an identifier from 16 random bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant a job belongs to, resolved from its bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner(pub String);

/// A site name: letters, digits, `_`, `-` and `.`, starting with a letter or
/// digit, at most 128 bytes and never containing `..`, so it is safe in a URL
/// path segment and an object key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site(String);

impl Site {
    /// Parses a site name.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        let first_ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if s.is_empty() || s.len() > 128 {
            Err("must be 1 to 128 characters")
        } else if !ok_chars || !first_ok || s.contains("..") {
            Err("must start with a letter or digit and contain only letters, digits, '_', '-' and single '.'")
        } else {
            Ok(Self(s.to_owned()))
        }
    }

    /// The site as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A point name: 1 to 512 bytes with no control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PointName(String);

impl PointName {
    /// Parses a point name.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() || s.len() > MAX_POINT_BYTES {
            Err("must be 1 to 512 bytes")
        } else if s.chars().any(char::is_control) {
            Err("must not contain control characters")
        } else {
            Ok(Self(s.to_owned()))
        }
    }

    /// The point as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// OpenAPI schemas of the newtypes: the rules their `parse` enforces, as
/// far as a JSON Schema can say them.
mod schemas {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};

    fn string(min: usize, max: Option<usize>, pattern: &str, doc: &str) -> RefOr<Schema> {
        let mut b = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(min))
            .max_length(max)
            .pattern(Some(pattern));
        if !doc.is_empty() {
            b = b.description(Some(doc));
        }
        b.build().into()
    }

    impl PartialSchema for super::JobId {
        fn schema() -> RefOr<Schema> {
            string(32, Some(32), "^[0-9a-f]{32}$", "")
        }
    }
    impl ToSchema for super::JobId {}

    impl PartialSchema for super::Site {
        fn schema() -> RefOr<Schema> {
            string(
                1,
                Some(128),
                "^[A-Za-z0-9](?:[A-Za-z0-9_-]|\\.[A-Za-z0-9_-])*\\.?$",
                "Letters, digits, `_`, `-` and `.`, starting with a letter or digit, never `..`.",
            )
        }
    }
    impl ToSchema for super::Site {}

    impl PartialSchema for super::PointName {
        fn schema() -> RefOr<Schema> {
            // maxLength counts characters, the rule bytes: 512 bounds both.
            string(
                1,
                Some(super::MAX_POINT_BYTES),
                "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
                "1 to 512 bytes (UTF-8) without control characters.",
            )
        }
    }
    impl ToSchema for super::PointName {}
}

/// A half-open UTC range `[start, end)` of at most 366 days, not in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    start: EpochMs,
    end: EpochMs,
}

impl TimeRange {
    /// Checks a range against the rules, with `now` as the present.
    pub fn new(start: EpochMs, end: EpochMs, now: EpochMs) -> Result<Self, &'static str> {
        if start < 0 {
            Err("start must not be before 1970-01-01")
        } else if end <= start {
            Err("end must be after start")
        } else if end - start > MAX_RANGE_DAYS * DAY_MS {
            Err("the range must span at most 366 days")
        } else if end > now {
            Err("the range must not end in the future")
        } else {
            Ok(Self { start, end })
        }
    }

    /// The first millisecond in the range.
    pub fn start(&self) -> EpochMs {
        self.start
    }

    /// The first millisecond after the range.
    pub fn end(&self) -> EpochMs {
        self.end
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC (`2025-10-16T00:05:00Z`).
pub fn format_rfc3339(ms: EpochMs) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) if ms % 1000 == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<EpochMs> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// What a request (or `UPSTREAM_PLAN`) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanChoice {
    /// Whichever costs less for this site and job.
    #[default]
    Auto,
    /// Always the site walk.
    Site,
    /// Always per-point requests.
    Point,
}

impl PlanChoice {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanChoice::Auto => "auto",
            PlanChoice::Site => "site",
            PlanChoice::Point => "point",
        }
    }
}

impl std::str::FromStr for PlanChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(PlanChoice::Auto),
            "site" => Ok(PlanChoice::Site),
            "point" => Ok(PlanChoice::Point),
            _ => Err(format!("must be auto, site or point, not {s:?}")),
        }
    }
}

/// The wire form of a job submission, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobRequest {
    site: Option<String>,
    points: Option<Vec<String>>,
    start: Option<String>,
    end: Option<String>,
    days: Option<i64>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    plan: Option<PlanChoice>,
}

/// A validated job submission.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    /// The site to read.
    pub site: Site,
    /// Sorted, unique points.
    pub points: Vec<PointName>,
    /// The range to read.
    pub range: TimeRange,
    /// Bypass deduplication and coalescing.
    pub force: bool,
    /// How to fetch, if the request says (not part of the fingerprint: the
    /// result does not depend on it).
    pub plan: Option<PlanChoice>,
}

impl JobRequest {
    /// Parses and validates a JSON body.
    ///
    /// `days` means the `days` whole UTC days before today (today excluded), so
    /// two such requests on one day coalesce.
    pub fn parse(body: &[u8], now: EpochMs, max_points: usize) -> Result<Self, ValidationError> {
        let raw: RawJobRequest = serde_json::from_slice(body)
            .map_err(|e| ValidationError::single("body", &format!("invalid JSON: {e}")))?;
        let mut errors = Vec::new();

        let site = match raw.site.as_deref().map(Site::parse) {
            None => {
                errors.push(FieldError::new("site", "is required"));
                None
            }
            Some(Err(msg)) => {
                errors.push(FieldError::new("site", msg));
                None
            }
            Some(Ok(s)) => Some(s),
        };

        let mut points = Vec::new();
        match &raw.points {
            None => errors.push(FieldError::new("points", "is required")),
            Some(list) if list.is_empty() => {
                errors.push(FieldError::new("points", "must hold at least one point"))
            }
            Some(list) => {
                for (i, p) in list.iter().enumerate() {
                    match PointName::parse(p) {
                        Ok(p) => points.push(p),
                        Err(msg) => errors.push(FieldError::new(&format!("points[{i}]"), msg)),
                    }
                }
                points.sort();
                points.dedup();
                if points.len() > max_points {
                    errors.push(FieldError::new(
                        "points",
                        &format!("must hold at most {max_points} distinct points"),
                    ));
                }
            }
        }

        let range = match Self::parse_range(&raw, now) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push(e);
                None
            }
        };

        match (site, range, errors.is_empty()) {
            (Some(site), Some(range), true) => Ok(Self {
                site,
                points,
                range,
                force: raw.force,
                plan: raw.plan,
            }),
            _ => Err(ValidationError { errors }),
        }
    }

    fn parse_range(raw: &RawJobRequest, now: EpochMs) -> Result<TimeRange, FieldError> {
        let parse = |field: &str, v: &str| {
            parse_rfc3339(v).ok_or_else(|| FieldError::new(field, "must be an RFC 3339 timestamp"))
        };
        match (&raw.start, &raw.end, raw.days) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(FieldError::new(
                "days",
                "give either start and end, or days, not both",
            )),
            (None, None, Some(days)) => {
                if !(1..=MAX_RANGE_DAYS).contains(&days) {
                    return Err(FieldError::new("days", "must be between 1 and 366"));
                }
                let end = now - now.rem_euclid(DAY_MS);
                TimeRange::new(end - days * DAY_MS, end, now)
                    .map_err(|msg| FieldError::new("days", msg))
            }
            (Some(s), Some(e), None) => {
                let start = parse("start", s)?;
                let end = parse("end", e)?;
                TimeRange::new(start, end, now).map_err(|msg| FieldError::new("end", msg))
            }
            (Some(_), None, None) => Err(FieldError::new("end", "is required with start")),
            (None, Some(_), None) => Err(FieldError::new("start", "is required with end")),
            (None, None, None) => Err(FieldError::new(
                "start",
                "give start and end (RFC 3339), or days (1 to 366)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: EpochMs = 1_763_000_000_000;

    fn parse(body: &str) -> Result<JobRequest, ValidationError> {
        JobRequest::parse(body.as_bytes(), NOW, 100)
    }

    #[test]
    fn days_range_ends_at_start_of_today() {
        let r = parse(r#"{"site":"s1","points":["b","a","b"],"days":365}"#).unwrap();
        assert_eq!(r.range.end() % DAY_MS, 0);
        assert!(r.range.end() <= NOW);
        assert_eq!(r.range.end() - r.range.start(), 365 * DAY_MS);
        assert_eq!(
            r.points.iter().map(PointName::as_str).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn rejects_range_over_366_days() {
        let e = parse(r#"{"site":"s1","points":["a"],"start":"2023-01-01T00:00:00Z","end":"2024-01-03T00:00:00Z"}"#)
            .unwrap_err();
        assert_eq!(e.errors[0].field, "end");
        assert!(e.errors[0].message.contains("366"));
    }

    #[test]
    fn rejects_future_end_and_reversed_range() {
        assert!(parse(r#"{"site":"s1","points":["a"],"start":"2025-01-01T00:00:00Z","end":"2099-01-01T00:00:00Z"}"#).is_err());
        assert!(parse(r#"{"site":"s1","points":["a"],"start":"2025-01-02T00:00:00Z","end":"2025-01-01T00:00:00Z"}"#).is_err());
    }

    #[test]
    fn rejects_unknown_fields_and_missing_fields() {
        let e = parse(r#"{"site":"s1","points":["a"],"days":1,"colour":"red"}"#).unwrap_err();
        assert!(e.errors[0].message.contains("unknown field"));
        let e = parse(r#"{"points":["a"],"days":1}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "site");
    }

    #[test]
    fn rejects_path_tricks_in_site() {
        for bad in ["../etc", "a/b", "", ".hidden", "a..b", "a b"] {
            assert!(Site::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Site::parse("demo-site_1.b").is_ok());
    }

    #[test]
    fn rejects_control_characters_and_long_points() {
        assert!(PointName::parse("a\nb").is_err());
        assert!(PointName::parse(&"x".repeat(513)).is_err());
        assert!(PointName::parse(&"x".repeat(512)).is_ok());
    }

    #[test]
    fn rejects_too_many_points() {
        let points: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
        let body = serde_json::json!({"site":"s","points":points,"days":1}).to_string();
        assert!(JobRequest::parse(body.as_bytes(), NOW, 4).is_err());
        assert!(JobRequest::parse(body.as_bytes(), NOW, 5).is_ok());
    }

    #[test]
    fn rfc3339_round_trip() {
        let ms = parse_rfc3339("2025-10-16T00:05:00Z").unwrap();
        assert_eq!(format_rfc3339(ms), "2025-10-16T00:05:00Z");
    }
}

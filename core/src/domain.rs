//! Domain newtypes, parsed once at the edge.
//!
//! Past [`JobRequest::parse`], nothing re-checks a site, a point or a range:
//! the types carry the proof.

use serde::{Deserialize, Serialize};

use tsp_api::{FieldError, ValidationError};

pub use tsp_api::{JobId, PlanChoice, PointName, Site, MAX_POINT_BYTES};
pub use tsp_format::time::{format_rfc3339, parse_rfc3339, EpochMs, DAY_MS, HOUR_MS};

/// The longest range a job may cover.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The tenant a job belongs to, resolved from its bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner(pub String);

/// A half-open UTC range `[start, end)` of at most 366 days, not in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    start: EpochMs,
    end: EpochMs,
}

impl TimeRange {
    /// Checks a range against the rules, with `now` as the present.
    pub fn new(start: EpochMs, end: EpochMs, now: EpochMs) -> Result<Self, &'static str> {
        if start < EpochMs(0) {
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
    #[serde(default)]
    callback_url: Option<String>,
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
    /// Where to POST the job view when it ends, as given (checked against
    /// the deployment's allow-list by [`check_callback_url`]; not part of
    /// the fingerprint).
    pub callback_url: Option<String>,
}

/// Longest callback URL.
pub const MAX_CALLBACK_URL: usize = 2048;

/// Checks a callback URL: `https`, no credentials, its origin (scheme,
/// host, port) in `allowed` (comma separated). An `http` origin passes
/// only when listed as such (local testing). Returns the URL normalised.
pub fn check_callback_url(raw: &str, allowed: &str) -> Result<String, ValidationError> {
    let bad = |m: &str| ValidationError::single("callback_url", m);
    if allowed.trim().is_empty() {
        return Err(bad("callbacks are not enabled on this deployment"));
    }
    if raw.len() > MAX_CALLBACK_URL {
        return Err(bad("must be at most 2048 bytes"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("must be an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    let origin = url.origin().ascii_serialization();
    let listed = allowed
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
        .any(|o| o == origin);
    match (url.scheme(), listed) {
        (_, false) => Err(bad(
            "its host is not on this deployment's callback allow-list",
        )),
        ("https", true) | ("http", true) => Ok(url.to_string()),
        _ => Err(bad("must be https")),
    }
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
                callback_url: raw.callback_url.clone(),
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
                let end = now.floor(DAY_MS);
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

    const NOW: EpochMs = EpochMs(1_763_000_000_000);

    fn parse(body: &str) -> Result<JobRequest, ValidationError> {
        JobRequest::parse(body.as_bytes(), NOW, 100)
    }

    #[test]
    fn a_callback_must_be_an_allowed_https_origin() {
        let allowed = "https://hooks.example.com, http://127.0.0.1:9100";
        let ok = check_callback_url("https://hooks.example.com/a/b?x=1", allowed).unwrap();
        assert_eq!(ok, "https://hooks.example.com/a/b?x=1");
        assert!(
            check_callback_url("http://127.0.0.1:9100/cb", allowed).is_ok(),
            "listed as http"
        );
        for bad in [
            "http://hooks.example.com/a",
            "https://evil.example.com/a",
            "https://hooks.example.com:8443/a",
            "https://user:pw@hooks.example.com/a",
            "ftp://hooks.example.com/a",
            "hooks.example.com/a",
        ] {
            let e = check_callback_url(bad, allowed).unwrap_err();
            assert_eq!(e.errors[0].field, "callback_url", "{bad}");
        }
        assert!(
            check_callback_url("https://hooks.example.com/", "").is_err(),
            "off"
        );
    }

    #[test]
    fn days_range_ends_at_start_of_today() {
        let r = parse(r#"{"site":"s1","points":["b","a","b"],"days":365}"#).unwrap();
        assert_eq!(r.range.end().ms() % DAY_MS, 0);
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

//! Parsing the paginated endpoint's query string.
//!
//! Done by hand rather than with serde's form decoding because `point_names`
//! has two shapes: one value holding a comma-separated list, or the key
//! repeated once per point (needed when a name itself contains a comma).
//! Rule: a single `point_names` value is split on commas; when the key is
//! repeated, each value is taken verbatim as one name.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use percent_encoding::percent_decode_str;

/// Page sizes the real API accepts; anything else is a 422 there too.
pub(crate) const PAGE_SIZES: [u64; 12] = [
    3, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000, 300_000, 500_000,
];
/// The API's default page size.
pub(crate) const DEFAULT_PAGE_SIZE: u64 = 10_000;

/// A validated request for one page.
#[derive(Debug, PartialEq)]
pub(crate) struct PageQuery {
    pub start_ms: i64,
    pub end_ms: i64,
    pub page_size: u64,
    /// Position from the cursor; 0 for the first page.
    pub offset: u64,
    /// Requested points in request order, duplicates dropped; `None` means
    /// the site's default list.
    pub points: Option<Vec<String>>,
}

/// One `key=value` pair with form decoding, plus the value decoded without
/// turning `+` into a space (see [`parse_time`]).
struct Pair<'a> {
    key: Cow<'a, str>,
    value: Cow<'a, str>,
    value_plus_kept: Cow<'a, str>,
}

fn decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, String> {
    let spaced: Cow<'_, str> = if plus_is_space && raw.contains('+') {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    let decoded = percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| "query string is not valid UTF-8".to_owned())?;
    Ok(Cow::Owned(decoded.into_owned()))
}

fn pairs(raw: &str) -> Result<Vec<Pair<'_>>, String> {
    raw.split('&')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            Ok(Pair {
                key: decode(k, true)?,
                value: decode(v, true)?,
                value_plus_kept: decode(v, false)?,
            })
        })
        .collect()
}

/// Parses RFC 3339 (any offset), or a naive ISO 8601 date-time or date taken
/// as UTC. Tries the `+`-kept decoding too, because hand-written URLs often
/// leave the `+` of `+00:00` unescaped and form decoding turns it into a space.
fn parse_time(name: &str, pair: &Pair<'_>) -> Result<i64, String> {
    for s in [pair.value.as_ref(), pair.value_plus_kept.as_ref()] {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(t.timestamp_millis());
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(t.and_utc().timestamp_millis());
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                return Ok(t.and_utc().timestamp_millis());
            }
        }
    }
    Err(format!("{name}: invalid datetime {:?}", pair.value))
}

/// Parses and validates the query string (`None` = no query at all).
pub(crate) fn parse(raw: Option<&str>) -> Result<PageQuery, String> {
    let pairs = pairs(raw.unwrap_or(""))?;
    let first = |name: &str| pairs.iter().find(|p| p.key == name);

    let start_ms = parse_time(
        "start_time",
        first("start_time").ok_or("start_time: field required")?,
    )?;
    let end_ms = parse_time(
        "end_time",
        first("end_time").ok_or("end_time: field required")?,
    )?;
    if end_ms < start_ms {
        return Err("end_time must not be before start_time".to_owned());
    }

    let page_size = match first("page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(p) => p
            .value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| PAGE_SIZES.contains(n))
            .ok_or_else(|| {
                format!(
                    "page_size: must be one of {PAGE_SIZES:?}, got {:?}",
                    p.value
                )
            })?,
    };

    let offset = match first("cursor") {
        None => 0,
        Some(c) if c.value.is_empty() => 0,
        Some(c) => crate::cursor::decode(&c.value).ok_or("cursor: invalid cursor")?,
    };

    let values: Vec<&str> = pairs
        .iter()
        .filter(|p| p.key == "point_names")
        .map(|p| p.value.as_ref())
        .collect();
    let names: Vec<&str> = match values.as_slice() {
        [] => Vec::new(),
        [one] => one.split(',').collect(),
        many => many.to_vec(),
    };
    let mut points: Vec<String> = Vec::with_capacity(names.len());
    for n in names.into_iter().filter(|n| !n.is_empty()) {
        // Linear scan: point lists are short, and order must be kept.
        if !points.iter().any(|p| p == n) {
            points.push(n.to_owned());
        }
    }
    Ok(PageQuery {
        start_ms,
        end_ms,
        page_size,
        offset,
        points: if points.is_empty() {
            None
        } else {
            Some(points)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "start_time=2025-10-16T00%3A00%3A00Z&end_time=2025-10-17T00:00:00Z";

    #[test]
    fn defaults() {
        let q = parse(Some(BASE)).unwrap();
        assert_eq!(q.start_ms, 1_760_572_800_000);
        assert_eq!(q.end_ms, q.start_ms + 86_400_000);
        assert_eq!(q.page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(q.offset, 0);
        assert_eq!(q.points, None);
    }

    #[test]
    fn point_names_shapes() {
        let q = parse(Some(&format!("{BASE}&point_names=a%2Fb%20c,d.e+f,a%2Fb+c"))).unwrap();
        assert_eq!(q.points.unwrap(), vec!["a/b c", "d.e f"]);
        let q = parse(Some(&format!("{BASE}&point_names=x%2Cy&point_names=z"))).unwrap();
        assert_eq!(q.points.unwrap(), vec!["x,y", "z"]);
        let q = parse(Some(&format!("{BASE}&point_names=solo"))).unwrap();
        assert_eq!(q.points.unwrap(), vec!["solo"]);
    }

    #[test]
    fn errors() {
        assert!(parse(None).is_err());
        assert!(parse(Some("start_time=2025-10-16T00:00:00Z")).is_err());
        assert!(parse(Some(&format!("{BASE}&page_size=7"))).is_err());
        assert!(parse(Some(&format!("{BASE}&page_size=abc"))).is_err());
        assert!(parse(Some(&format!("{BASE}&cursor=zzz"))).is_err());
        assert!(parse(Some("start_time=2025-10-17&end_time=2025-10-16")).is_err());
        assert!(parse(Some("start_time=yesterday&end_time=2025-10-16")).is_err());
    }

    #[test]
    fn time_forms() {
        let q = parse(Some(
            "start_time=2025-10-16T00:00:00+00:00&end_time=2025-10-16T02:00:00%2B02:00",
        ))
        .unwrap();
        assert_eq!(q.start_ms, q.end_ms);
        let q = parse(Some("start_time=2025-10-16&end_time=2025-10-16T00:00:00.5")).unwrap();
        assert_eq!(q.end_ms - q.start_ms, 500);
    }
}

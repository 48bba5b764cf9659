//! Parsing the endpoints' query strings.
//!
//! Kind mode ([`parse`]): done by hand rather than with serde's form decoding
//! because `point_names` has two shapes: one value holding a comma-separated
//! list, or the key repeated once per point (needed when a name itself
//! contains a comma). Rule: a single `point_names` value is split on commas;
//! when the key is repeated, each value is taken verbatim as one name.
//!
//! Faithful mode ([`parse_ace_page`], [`parse_range`], [`parse_list`]):
//! `point_names` and unknown keys are ignored, and every invalid field is
//! reported by name so the server can answer 400 with per-field messages.

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

/// Epoch milliseconds of RFC 3339 (any offset, any fraction), or of a naive
/// ISO 8601 date-time (`T` or space, optional fraction) or date taken as UTC.
pub(crate) fn time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// Parses a time parameter with [`time_ms`]. Tries the `+`-kept decoding
/// too, because hand-written URLs often leave the `+` of `+00:00` unescaped
/// and form decoding turns it into a space.
fn parse_time(name: &str, pair: &Pair<'_>) -> Result<i64, String> {
    [pair.value.as_ref(), pair.value_plus_kept.as_ref()]
        .into_iter()
        .find_map(time_ms)
        .ok_or_else(|| format!("{name}: invalid datetime {:?}", pair.value))
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

/// Per-field validation errors: (parameter, message), in parameter order.
pub(crate) type FieldErrors = Vec<(&'static str, String)>;

/// A validated faithful-mode page request.
#[derive(Debug, PartialEq)]
pub(crate) struct AcePageQuery {
    pub start_ms: i64,
    pub end_ms: i64,
    pub page_size: u64,
    /// The decoded cursor: (offset, timestamp in epoch ms).
    pub cursor: Option<(u64, i64)>,
}

/// A validated `configured_points` request.
#[derive(Debug, PartialEq)]
pub(crate) struct ListQuery {
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
}

/// `per_page` values `configured_points` accepts.
pub(crate) const PER_PAGES: [u64; 12] =
    [2, 10, 20, 30, 40, 50, 100, 500, 1000, 5000, 10_000, 100_000];
/// The default `per_page`.
pub(crate) const DEFAULT_PER_PAGE: u64 = 10;

/// `start_time` and `end_time`, both required, `end` not before `start`.
fn range(pairs: &[Pair<'_>], errors: &mut FieldErrors) -> Option<(i64, i64)> {
    let mut time = |name: &'static str| match pairs.iter().find(|p| p.key == name) {
        None => {
            errors.push((name, "Missing required parameter".to_owned()));
            None
        }
        Some(p) => match [p.value.as_ref(), p.value_plus_kept.as_ref()]
            .into_iter()
            .find_map(time_ms)
        {
            Some(t) => Some(t),
            None => {
                errors.push((
                    name,
                    format!("Not a valid datetime: {:?}", p.value.as_ref()),
                ));
                None
            }
        },
    };
    let start = time("start_time");
    let end = time("end_time");
    match (start, end) {
        (Some(s), Some(e)) if e < s => {
            errors.push(("end_time", "Must not be before start_time".to_owned()));
            None
        }
        (Some(s), Some(e)) => Some((s, e)),
        _ => None,
    }
}

/// An optional number that must be one of `allowed`.
fn one_of(
    pairs: &[Pair<'_>],
    name: &'static str,
    allowed: &[u64],
    default: u64,
    errors: &mut FieldErrors,
) -> u64 {
    match pairs.iter().find(|p| p.key == name) {
        None => default,
        Some(p) => match p.value.trim().parse::<u64>() {
            Ok(n) if allowed.contains(&n) => n,
            _ => {
                let list: Vec<String> = allowed.iter().map(u64::to_string).collect();
                errors.push((
                    name,
                    format!(
                        "Must be one of: {}. Got {:?}",
                        list.join(", "),
                        p.value.as_ref()
                    ),
                ));
                default
            }
        },
    }
}

/// Parses a faithful-mode page request. `point_names`, `raw_data` and
/// unknown keys are ignored.
pub(crate) fn parse_ace_page(raw: Option<&str>) -> Result<AcePageQuery, FieldErrors> {
    let pairs = pairs(raw.unwrap_or("")).map_err(|e| vec![("query", e)])?;
    let mut errors = FieldErrors::new();
    let range = range(&pairs, &mut errors);
    let page_size = one_of(
        &pairs,
        "page_size",
        &PAGE_SIZES,
        DEFAULT_PAGE_SIZE,
        &mut errors,
    );
    let cursor = match pairs.iter().find(|p| p.key == "cursor") {
        Some(c) if !c.value.trim().is_empty() => {
            // The `+`-kept decoding: standard base64 has `+`, and a client
            // that does not escape it must not lose it.
            let decoded = crate::cursor::decode_ace(&c.value_plus_kept, time_ms);
            if decoded.is_none() {
                errors.push(("cursor", "Invalid cursor".to_owned()));
            }
            decoded
        }
        _ => None,
    };
    match range {
        Some((start_ms, end_ms)) if errors.is_empty() => Ok(AcePageQuery {
            start_ms,
            end_ms,
            page_size,
            cursor,
        }),
        _ => Err(errors),
    }
}

/// Parses the point endpoint's `start_time` and `end_time`.
pub(crate) fn parse_range(raw: Option<&str>) -> Result<(i64, i64), FieldErrors> {
    let pairs = pairs(raw.unwrap_or("")).map_err(|e| vec![("query", e)])?;
    let mut errors = FieldErrors::new();
    match range(&pairs, &mut errors) {
        Some(r) if errors.is_empty() => Ok(r),
        _ => Err(errors),
    }
}

/// Parses `configured_points`' `page` (1-based, default 1) and `per_page`.
pub(crate) fn parse_list(raw: Option<&str>) -> Result<ListQuery, FieldErrors> {
    let pairs = pairs(raw.unwrap_or("")).map_err(|e| vec![("query", e)])?;
    let mut errors = FieldErrors::new();
    let page = match pairs.iter().find(|p| p.key == "page") {
        None => 1,
        Some(p) => match p.value.trim().parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => {
                errors.push((
                    "page",
                    format!("Must be at least 1. Got {:?}", p.value.as_ref()),
                ));
                1
            }
        },
    };
    let per_page = one_of(
        &pairs,
        "per_page",
        &PER_PAGES,
        DEFAULT_PER_PAGE,
        &mut errors,
    );
    if errors.is_empty() {
        Ok(ListQuery { page, per_page })
    } else {
        Err(errors)
    }
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

    #[test]
    fn ace_page_queries() {
        let naive = "start_time=2025-10-16T00:00:00&end_time=2025-10-17";
        let q = parse_ace_page(Some(naive)).unwrap();
        assert_eq!(
            (q.start_ms, q.end_ms),
            (1_760_572_800_000, 1_760_659_200_000)
        );
        assert_eq!((q.page_size, q.cursor), (DEFAULT_PAGE_SIZE, None));
        // Z, offsets, fractions; point_names and raw_data ignored.
        let q = parse_ace_page(Some(
            "start_time=2025-10-16T02:00:00%2B02:00&end_time=2025-10-16T00:00:00.250Z&point_names=a,b&raw_data=true&page_size=3",
        ))
        .unwrap();
        assert_eq!((q.end_ms - q.start_ms, q.page_size), (250, 3));
        let c = crate::cursor::encode_ace(4, 1_760_572_800_000);
        let q = parse_ace_page(Some(&format!("{naive}&cursor={c}"))).unwrap();
        assert_eq!(q.cursor, Some((4, 1_760_572_800_000)));

        let fields = |raw: &str| -> Vec<&'static str> {
            parse_ace_page(Some(raw))
                .unwrap_err()
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert_eq!(fields(&format!("{naive}&page_size=7")), ["page_size"]);
        assert_eq!(
            fields(&format!("{naive}&page_size=x&cursor=zz")),
            ["page_size", "cursor"]
        );
        assert_eq!(
            fields("page_size=20"),
            ["start_time", "end_time", "page_size"]
        );
        assert_eq!(
            fields("start_time=2025-10-17&end_time=2025-10-16"),
            ["end_time"]
        );
        assert_eq!(
            fields("start_time=soon&end_time=2025-10-16"),
            ["start_time"]
        );
    }

    #[test]
    fn list_queries() {
        assert_eq!(
            parse_list(None).unwrap(),
            ListQuery {
                page: 1,
                per_page: 10
            }
        );
        assert_eq!(
            parse_list(Some("page=3&per_page=2")).unwrap(),
            ListQuery {
                page: 3,
                per_page: 2
            }
        );
        assert_eq!(parse_list(Some("per_page=3")).unwrap_err()[0].0, "per_page");
        assert_eq!(parse_list(Some("page=0")).unwrap_err()[0].0, "page");
        assert!(parse_range(Some("start_time=2025-10-16")).is_err());
    }
}

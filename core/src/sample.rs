//! Samples: upstream page parsing and value classification.
//!
//! The upstream sends every value as a string. Each is classified once, at
//! parse time, into a [`Value`]; the aggregation engine and the codec work on
//! that. A decimal string such as `"21.4"` becomes an exact mantissa and
//! scale, which both aggregates as the same `f64` that `"21.4".parse()` gives
//! and encodes in a byte or two.

use std::borrow::Cow;

use serde::Deserialize;

use crate::domain::{parse_rfc3339, EpochMs};

/// Largest mantissa whose `f64` is exact, so `m / 10^s` rounds once.
pub const MAX_EXACT_MANTISSA: i64 = 1 << 53;
/// Largest decimal scale kept as a mantissa; `10^s` is exact up to 22.
pub const MAX_SCALE: u8 = 15;

/// A classified sample value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A plain decimal (`-?digits[.digits]`): exactly `mantissa / 10^scale`.
    Decimal {
        /// The digits as an integer.
        mantissa: i64,
        /// Digits after the point.
        scale: u8,
    },
    /// Any other finite number (`1e3`, `.5`, `-0.0`).
    Float(f64),
    /// Parses as a number but is NaN or infinite: kept as its string.
    NonFinite(String),
    /// Not a number (`"active"`): kept as its string.
    Text(String),
}

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `mantissa / 10^scale`, correctly rounded: both operands are exact, so the
/// one division rounds once, exactly as parsing the decimal string does.
pub fn decimal_to_f64(mantissa: i64, scale: u8) -> f64 {
    mantissa as f64 / POW10[scale.min(MAX_SCALE) as usize]
}

impl Value {
    /// Classifies an upstream value string.
    pub fn classify(s: &str) -> Value {
        if let Some(v) = parse_decimal(s) {
            return v;
        }
        // Most non-numbers are state words ("active"): skip the float parser
        // unless the first character could start a number, "inf" or "NaN".
        let could_be_number = s.trim_start().bytes().next().is_some_and(|b| {
            b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'i' | b'I' | b'n' | b'N')
        });
        if !could_be_number {
            return Value::Text(s.to_owned());
        }
        match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            Ok(_) => Value::NonFinite(s.to_owned()),
            Err(_) => Value::Text(s.to_owned()),
        }
    }

    /// The numeric value, if finite.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Decimal { mantissa, scale } => Some(decimal_to_f64(mantissa, scale)),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
}

fn parse_decimal(s: &str) -> Option<Value> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut mantissa: i64 = 0;
    let mut scale: Option<u8> = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + i64::from(c - b'0');
                if let Some(sc) = scale.as_mut() {
                    *sc += 1;
                }
            }
            // A point needs digits on both sides.
            b'.' if scale.is_none() && i > 0 && i + 1 < digits.len() => scale = Some(0),
            _ => return None,
        }
    }
    let scale = scale.unwrap_or(0);
    // -0 parses to -0.0, which a mantissa cannot carry: leave it to Float.
    if scale > MAX_SCALE || mantissa >= MAX_EXACT_MANTISSA || (neg && mantissa == 0) {
        return None;
    }
    Some(Value::Decimal {
        mantissa: if neg { -mantissa } else { mantissa },
        scale,
    })
}

/// One sample of one point.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// UTC epoch milliseconds.
    pub ts: EpochMs,
    /// The value.
    pub value: Value,
}

#[derive(Deserialize)]
struct RawSample<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    point_samples: Vec<RawSample<'a>>,
    #[serde(default, borrow)]
    next_cursor: Option<Cow<'a, str>>,
    #[serde(default)]
    has_more: bool,
}

/// A parsed upstream page, already filtered to one point and range.
#[derive(Debug, Default)]
pub struct Page {
    /// The cursor for the next page, if the upstream said there is one.
    pub next_cursor: Option<String>,
    /// Whether more pages follow.
    pub has_more: bool,
    /// Samples skipped because they were for another point or outside the range.
    pub skipped: u64,
}

/// Parses timestamps, remembering the last date so a page of samples from
/// one day pays for the calendar once.
#[derive(Default)]
pub struct TimeParser {
    day_prefix: [u8; 10],
    day_ms: Option<EpochMs>,
}

impl TimeParser {
    /// Parses an RFC 3339 timestamp. The upstream's own form,
    /// `YYYY-MM-DDTHH:MM:SSZ`, takes a fast path; anything else goes
    /// through chrono.
    pub fn parse(&mut self, s: &str) -> Option<EpochMs> {
        let b = s.as_bytes();
        if b.len() == 20 && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z' {
            let day = if self.day_ms.is_some() && self.day_prefix == b[..10] {
                self.day_ms
            } else {
                let day = parse_rfc3339(&format!("{}T00:00:00Z", &s[..10]));
                self.day_prefix.copy_from_slice(&b[..10]);
                self.day_ms = day;
                day
            }?;
            let two = |i: usize| -> Option<i64> {
                let (h, l) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
                (h < 10 && l < 10).then_some(i64::from(h) * 10 + i64::from(l))
            };
            let (hh, mm, ss) = (two(11)?, two(14)?, two(17)?);
            if hh > 23 || mm > 59 || ss > 59 {
                return parse_rfc3339(s);
            }
            return Some(day + ((hh * 60 + mm) * 60 + ss) * 1000);
        }
        parse_rfc3339(s)
    }
}

/// Parses one upstream page, appending the samples of `point` that fall in
/// `[start, end)` to `out`. Malformed JSON or a bad timestamp is an error
/// with the parser's message.
pub fn parse_page(
    body: &[u8],
    point: &str,
    start: EpochMs,
    end: EpochMs,
    times: &mut TimeParser,
    out: &mut Vec<Sample>,
) -> Result<Page, String> {
    let raw: RawPage<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut skipped = 0;
    // Exact, not doubling: a chunk of many pages would otherwise briefly
    // hold close to twice its samples while the buffer grows.
    out.reserve_exact(raw.point_samples.len());
    for s in &raw.point_samples {
        let ts = times
            .parse(&s.time)
            .ok_or_else(|| format!("bad sample time {:?}", s.time))?;
        if s.name != point || ts < start || ts >= end {
            skipped += 1;
            continue;
        }
        out.push(Sample {
            ts,
            value: Value::classify(&s.value),
        });
    }
    Ok(Page {
        next_cursor: raw.next_cursor.map(Cow::into_owned),
        has_more: raw.has_more,
        skipped,
    })
}

/// Sorts samples by time and keeps one per timestamp: the one delivered
/// **last** by the upstream wins (a later delivery is a correction). The
/// sort is stable, so which duplicate survives depends only on delivery
/// order, never on how the samples were shuffled between timestamps.
pub fn sort_dedup(samples: &mut Vec<Sample>) {
    samples.sort_by_key(|s| s.ts);
    // dedup_by keeps the first of a run; reverse runs first so the last wins.
    let mut i = 0;
    while i < samples.len() {
        let mut j = i + 1;
        while j < samples.len() && samples[j].ts == samples[i].ts {
            j += 1;
        }
        if j - i > 1 {
            samples[i..j].reverse();
        }
        i = j;
    }
    samples.dedup_by_key(|s| s.ts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_give_the_same_f64_as_parsing() {
        for s in [
            "21.4",
            "45.13",
            "-3.75",
            "0",
            "0.1",
            "123456.789",
            "-0.001",
            "9007199254.740991",
        ] {
            let v = Value::classify(s);
            assert!(matches!(v, Value::Decimal { .. }), "{s}: {v:?}");
            assert_eq!(
                v.as_f64().unwrap().to_bits(),
                s.parse::<f64>().unwrap().to_bits(),
                "{s}"
            );
        }
    }

    #[test]
    fn other_forms_are_classified() {
        assert_eq!(Value::classify("1e3"), Value::Float(1000.0));
        assert!(matches!(Value::classify("-0.0"), Value::Float(f) if f.is_sign_negative()));
        assert_eq!(Value::classify("active"), Value::Text("active".into()));
        assert_eq!(Value::classify("NaN"), Value::NonFinite("NaN".into()));
        assert_eq!(Value::classify("inf"), Value::NonFinite("inf".into()));
        assert_eq!(Value::classify("1."), Value::Float(1.0));
        assert_eq!(Value::classify(""), Value::Text(String::new()));
    }

    #[test]
    fn fast_time_path_agrees_with_chrono() {
        let mut p = TimeParser::default();
        for s in [
            "2025-10-16T00:05:00Z",
            "2025-10-16T23:59:59Z",
            "2024-02-29T12:00:00Z",
            "2025-10-16T00:05:00.250Z",
            "2025-10-16T02:05:00+02:00",
        ] {
            assert_eq!(p.parse(s), parse_rfc3339(s), "{s}");
        }
        assert_eq!(p.parse("2025-02-30T00:00:00Z"), None);
        assert_eq!(p.parse("2025-10-16T24:00:00Z"), None);
    }

    #[test]
    fn page_filters_point_and_range() {
        let body = br#"{"point_samples":[
            {"name":"a","value":"1.5","time":"2025-01-01T00:00:00Z"},
            {"name":"b","value":"2","time":"2025-01-01T00:00:00Z"},
            {"name":"a","value":"x","time":"2025-01-02T00:00:00Z"}],
            "next_cursor":"c2","has_more":true}"#;
        let start = parse_rfc3339("2025-01-01T00:00:00Z").unwrap();
        let mut out = Vec::new();
        let page = parse_page(
            body,
            "a",
            start,
            start + 86_400_000,
            &mut TimeParser::default(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(page.skipped, 2);
        assert_eq!(page.next_cursor.as_deref(), Some("c2"));
        assert!(page.has_more);
        assert!(parse_page(
            b"{\"point_samples\":[",
            "a",
            0,
            1,
            &mut TimeParser::default(),
            &mut out
        )
        .is_err());
    }

    #[test]
    fn last_delivered_duplicate_wins() {
        let s = |ts, v: &str| Sample {
            ts,
            value: Value::classify(v),
        };
        let mut v = vec![s(2, "a"), s(1, "x"), s(2, "b"), s(1, "y"), s(3, "z")];
        sort_dedup(&mut v);
        assert_eq!(v, vec![s(1, "y"), s(2, "b"), s(3, "z")]);
    }
}

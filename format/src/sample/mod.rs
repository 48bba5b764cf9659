//! Samples: upstream page parsing and value classification.
//!
//! The upstream (ACE's `/sites/{site}/timeseries/paginated`) ignores
//! `point_names` and returns every point of the site, ordered by time, then
//! name. [`parse_page`] demultiplexes such a page: the rows of the job's
//! points ([`PointSet`]) inside the job's range go to their point's
//! [`Samples`], the rest are only counted. It takes the body of the
//! per-point endpoint too (`{"point_samples":[…]}` alone, no cursor keys;
//! a sample without `name` is the only point's).
//!
//! Timestamps ([`TimeParser`]) are ACE's naive UTC `2026-08-07T16:25:00`,
//! with or without a fraction (`…:00.627593`) and with or without `Z`; an
//! offset (`+02:00`), a lowercase `t`/`z` or a space for `T` are accepted
//! too. A fraction is **truncated** to milliseconds (`.627593` is 627 ms,
//! `.9999999` is 999 ms), never rounded. An invalid date or time, a signed
//! or five-digit year, or anything else is an error naming the string.
//!
//! The upstream sends every value as a string. Each is classified once, at
//! parse time, into a [`Value`]; the aggregation engine and the codec work on
//! that. A decimal string such as `"21.4"` becomes an exact mantissa and
//! scale, which both aggregates as the same `f64` that `"21.4".parse()` gives
//! and encodes in a byte or two. Text values are interned in their chunk's
//! [`Texts`], so a [`Sample`] is 24 bytes and owns no heap memory.
//!
//! # Layout
//! - this file: [`Value`], [`Sample`], a chunk's [`Samples`] and [`sort_dedup`].
//! - `text`: the per-chunk string table.
//! - `page`: [`parse_page`] and its serde_json reference path, [`PointSet`],
//!   [`Page`], [`TimeParser`].
//! - `fast`: the parser specialised to the upstream's own page bytes.

mod fast;
mod page;
mod text;

use std::ops::Deref;

use crate::time::EpochMs;

pub use page::{parse_page, parse_page_serde, Page, PointSet, TimeParser};
pub use text::{TextId, Texts};

/// Largest mantissa whose `f64` is exact, so `m / 10^s` rounds once.
pub const MAX_EXACT_MANTISSA: i64 = 1 << 53;
/// Largest decimal scale kept as a mantissa; `10^s` is exact up to 22.
pub const MAX_SCALE: u8 = 15;

/// A classified sample value. Strings live in the chunk's [`Texts`].
#[derive(Debug, Clone, Copy, PartialEq)]
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
    NonFinite(TextId),
    /// Not a number (`"active"`): kept as its string.
    Text(TextId),
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
    /// Classifies an upstream value string, interning it in `texts` if it
    /// is kept as a string.
    pub fn classify(s: &str, texts: &mut Texts) -> Value {
        if let Some(v) = parse_decimal(s) {
            return v;
        }
        // Most non-numbers are state words ("active"): skip the float parser
        // unless the first character could start a number, "inf" or "NaN".
        let could_be_number = s.trim_start().bytes().next().is_some_and(|b| {
            b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'i' | b'I' | b'n' | b'N')
        });
        if !could_be_number {
            return Value::Text(texts.intern(s));
        }
        match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            Ok(_) => Value::NonFinite(texts.intern(s)),
            Err(_) => Value::Text(texts.intern(s)),
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// UTC epoch milliseconds.
    pub ts: EpochMs,
    /// The value.
    pub value: Value,
}

// A month of 30-second data is 86,400 samples: keep them small.
const _: () = assert!(std::mem::size_of::<Sample>() <= 24);

/// One chunk's samples and the strings they refer to. It derefs to the
/// samples as a slice; [`Samples::text`] resolves a [`TextId`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Samples {
    items: Vec<Sample>,
    texts: Texts,
}

/// A position in a [`Samples`] to go back to ([`Samples::rewind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    items: usize,
    texts: usize,
}

impl Samples {
    /// No samples.
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples from `(time, upstream value)` pairs, in that order.
    pub fn from_raw<T: Into<EpochMs>, S: AsRef<str>>(
        raw: impl IntoIterator<Item = (T, S)>,
    ) -> Self {
        let mut out = Self::new();
        for (ts, v) in raw {
            out.push(ts.into(), v.as_ref());
        }
        out
    }

    /// Appends a sample, classifying its upstream value string.
    pub fn push(&mut self, ts: EpochMs, raw: &str) {
        let value = Value::classify(raw, &mut self.texts);
        self.items.push(Sample { ts, value });
    }

    /// Appends a number already classified (a block read back). A
    /// string goes through [`push`](Self::push).
    pub fn push_value(&mut self, ts: EpochMs, value: Value) {
        debug_assert!(matches!(value, Value::Decimal { .. } | Value::Float(_)));
        self.items.push(Sample { ts, value });
    }

    /// A copy of the first `n` samples (with the string table).
    pub fn prefix(&self, n: usize) -> Samples {
        Samples {
            items: self.items[..n.min(self.items.len())].to_vec(),
            texts: self.texts.clone(),
        }
    }

    /// The string of a text or non-finite value.
    pub fn text(&self, id: TextId) -> &str {
        self.texts.get(id)
    }

    /// The chunk's string table.
    pub fn texts(&self) -> &Texts {
        &self.texts
    }

    /// The current end, to [`rewind`](Self::rewind) to.
    pub fn mark(&self) -> Mark {
        Mark {
            items: self.items.len(),
            texts: self.texts.len(),
        }
    }

    /// Drops every sample and string added since `mark`.
    pub fn rewind(&mut self, mark: Mark) {
        self.items.truncate(mark.items);
        self.texts.truncate(mark.texts);
    }

    /// Reserves, once, room for the whole of `[start, end)` at the density
    /// of the samples so far (pages come in time order), so the chunk's
    /// vector moves once, early, instead of on every page. A wrong guess
    /// costs only the vector's usual growth.
    pub fn reserve_for_range(&mut self, start: EpochMs, end: EpochMs) {
        let (Some(first), Some(last)) = (self.items.first(), self.items.last()) else {
            return;
        };
        let (n, seen) = (self.items.len() as i128, i128::from(last.ts - first.ts));
        if seen <= 0 || n < 2 {
            return;
        }
        let span = i128::from(end.ms().saturating_sub(start.min(first.ts).ms()));
        // Capped: a burst of samples at a page's start must not reserve
        // gigabytes. The headroom (1/64) keeps later pages, whose estimates
        // wander a little, from moving the vector again.
        let estimate = (n * span / seen).min(n * 16);
        let to_usize = |v: i128| usize::try_from(v).unwrap_or(0);
        if self.items.capacity() < to_usize(estimate) {
            let want = to_usize(estimate + estimate / 64);
            self.items
                .reserve_exact(want.saturating_sub(self.items.len()));
        }
    }
}

impl Deref for Samples {
    type Target = [Sample];

    fn deref(&self) -> &[Sample] {
        &self.items
    }
}

/// Sorts samples by time and keeps one per timestamp: the one delivered
/// **last** by the upstream wins (a later delivery is a correction). The
/// sort is stable, so which duplicate survives depends only on delivery
/// order, never on how the samples were shuffled between timestamps.
/// Samples already strictly in order (the upstream's usual delivery) are
/// left as they are, without sorting.
pub fn sort_dedup(samples: &mut Samples) {
    let items = &mut samples.items;
    if items.windows(2).all(|w| w[0].ts < w[1].ts) {
        return;
    }
    if !items.is_sorted_by_key(|s| s.ts) {
        items.sort_by_key(|s| s.ts);
    }
    // dedup_by keeps the first of a run; reverse runs first so the last wins.
    let mut i = 0;
    while i < items.len() {
        let mut j = i + 1;
        while j < items.len() && items[j].ts == items[i].ts {
            j += 1;
        }
        if j - i > 1 {
            items[i..j].reverse();
        }
        i = j;
    }
    items.dedup_by_key(|s| s.ts);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(s: &str) -> (Value, Texts) {
        let mut t = Texts::default();
        (Value::classify(s, &mut t), t)
    }

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
            let (v, _) = classify(s);
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
        assert_eq!(classify("1e3").0, Value::Float(1000.0));
        assert!(matches!(classify("-0.0").0, Value::Float(f) if f.is_sign_negative()));
        assert_eq!(classify("1.").0, Value::Float(1.0));
        for (s, text) in [("active", true), ("NaN", false), ("inf", false), ("", true)] {
            let (v, t) = classify(s);
            let id = match v {
                Value::Text(id) if text => id,
                Value::NonFinite(id) if !text => id,
                other => panic!("{s}: {other:?}"),
            };
            assert_eq!(t.get(id), s);
        }
    }

    #[test]
    fn texts_are_interned_and_rewound() {
        let mut s = Samples::from_raw([(1, "on"), (2, "off")]);
        let mark = s.mark();
        s.push(EpochMs(3), "on");
        s.push(EpochMs(4), "dim");
        assert_eq!(s[2].value, s[0].value);
        assert_eq!(s.texts().len(), 3);
        s.rewind(mark);
        assert_eq!(s, Samples::from_raw([(1, "on"), (2, "off")]));
    }

    #[test]
    fn a_chunk_reserves_once_from_its_first_page() {
        let (start, end) = (EpochMs(0), EpochMs(30 * 86_400_000));
        let mut s = Samples::new();
        let mut caps = Vec::new();
        for page in 0..9i64 {
            for i in page * 10_000..((page + 1) * 10_000).min(86_400) {
                s.push(EpochMs(i * 30_000), "21.5");
            }
            s.reserve_for_range(start, end);
            caps.push(s.items.capacity());
        }
        assert!(caps.iter().all(|&c| c == caps[0]), "{caps:?}");
        assert!((86_400..88_000).contains(&caps[0]), "{caps:?}");
    }

    #[test]
    fn last_delivered_duplicate_wins() {
        let raw = |v: &[(i64, &str)]| Samples::from_raw(v.iter().copied());
        let mut v = raw(&[(2, "a"), (1, "x"), (2, "b"), (1, "y"), (3, "z")]);
        sort_dedup(&mut v);
        let got: Vec<(i64, &str)> = v
            .iter()
            .map(|s| match s.value {
                Value::Text(id) => (s.ts.ms(), v.text(id)),
                _ => (s.ts.ms(), "?"),
            })
            .collect();
        assert_eq!(got, [(1, "y"), (2, "b"), (3, "z")]);
        let mut sorted = raw(&[(1, "1"), (2, "2"), (2, "3")]);
        sort_dedup(&mut sorted);
        assert_eq!(sorted.len(), 2);
        assert_eq!(sorted[1].value.as_f64(), Some(3.0));
    }
}

//! Upstream pages to samples, demultiplexed by point.
//!
//! The site endpoint (`/sites/{site}/timeseries/paginated`) ignores
//! `point_names` and returns every point of the site, time-major, so one
//! page feeds every point of a job at once. [`parse_page`] keeps the rows
//! of the job's points ([`PointSet`]) that fall in the job's range, each
//! into its point's [`Samples`], and counts the rest. The per-point endpoint
//! (`/points/{name}/timeseries`, only `point_samples`, no cursor keys) parses
//! with the same function.
//!
//! [`parse_page`] first tries the parser specialised to the upstream's own
//! bytes (`fast`); on anything that parser does not recognise, it
//! rewinds and parses the page with serde_json ([`parse_page_serde`], the
//! reference). Both give the same samples, page and errors (property-tested
//! below on generated pages, including every case that falls back).
//!
//! # Timestamps ([`TimeParser`])
//! `YYYY-MM-DDTHH:MM:SS` (`T`, `t` or a space between date and time), an
//! optional fraction of a second (any number of digits, **truncated** to
//! milliseconds: `.627593` is 627 ms, `.9999999` is 999 ms), then either
//! nothing (naive: UTC, ACE's own form), `Z`/`z`, or an offset `±HH:MM`.
//! The year has four digits (no sign); the date must exist. Everything
//! chrono's RFC 3339 parser accepts is accepted, with the same result
//! (including a leap second `:60`, which chrono reads as the next second);
//! a naive time reads as if it ended in `Z`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use chrono::NaiveDate;
use serde::Deserialize;

use super::{fast, Mark, Samples};
use crate::time::{parse_rfc3339, EpochMs};

/// A sample's name, borrowed from the body when it has no escapes.
#[derive(Deserialize)]
struct RawName<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct RawSample<'a> {
    #[serde(default, borrow)]
    name: Option<RawName<'a>>,
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

/// The job's points (sorted, distinct names), looked up by name bytes.
///
/// A point's index is its position in the names given to [`PointSet::new`],
/// which is also its position in the `outs` of [`parse_page`]. Most rows of
/// a site page belong to points outside the job: a name whose length no job
/// point has is rejected with one bit test, before any hashing.
#[derive(Debug, Clone)]
pub struct PointSet {
    /// Each name, and whether JSON holds it verbatim (nothing to escape).
    names: Vec<(Box<[u8]>, bool)>,
    index: HashMap<Box<[u8]>, u32, BuildHasherDefault<NameHasher>>,
    /// Bit `n` is set when some name is `n` bytes long (`n` < 256).
    lens: [u64; 4],
    /// Whether some name is 256 bytes or longer.
    long: bool,
}

impl PointSet {
    /// The set of `names`; index `i` is `names[i]`. The job's names are
    /// sorted and distinct; a repeated name would route to its first index.
    ///
    /// # Panics
    /// With more than `u32::MAX` names.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let mut set = PointSet {
            names: Vec::with_capacity(names.len()),
            index: HashMap::default(),
            lens: [0; 4],
            long: false,
        };
        set.index.reserve(names.len());
        for (i, name) in names.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 points");
            let bytes: Box<[u8]> = name.as_ref().as_bytes().into();
            match bytes.len() {
                n if n < 256 => set.lens[n / 64] |= 1 << (n % 64),
                _ => set.long = true,
            }
            set.index.entry(bytes.clone()).or_insert(i);
            let plain = !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            set.names.push((bytes, plain));
        }
        set
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The index of the point named `name`, if it is in the set.
    #[inline]
    pub fn index_of(&self, name: &[u8]) -> Option<u32> {
        let n = name.len();
        let maybe = match n {
            n if n < 256 => self.lens[n / 64] >> (n % 64) & 1 == 1,
            _ => self.long,
        };
        if !maybe {
            return None;
        }
        self.index.get(name).copied()
    }

    /// The name bytes of point `i` (`i < len()`) as they appear verbatim
    /// in a JSON string; `None` if JSON must escape some of them.
    pub(super) fn verbatim(&self, i: u32) -> Option<&[u8]> {
        let (name, plain) = &self.names[i as usize];
        plain.then_some(name)
    }

    /// The index a sample without a name belongs to: the only point's.
    pub(super) fn only(&self) -> Option<u32> {
        (self.names.len() == 1).then_some(0)
    }
}

/// A word-at-a-time multiplicative hash (FxHash's step) with a final mix,
/// so names that differ only in their middle spread over the buckets. Point
/// names of one site share long prefixes and suffixes.
#[derive(Default)]
struct NameHasher(u64);

impl NameHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }
}

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit reaches the low (bucket) bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// One parsed page.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Page {
    /// The cursor for the next page, if the upstream gave one (absent or
    /// `null`: `None`).
    pub next_cursor: Option<String>,
    /// Whether more pages follow (absent: `false`).
    pub has_more: bool,
    /// Every row on the page, whatever its point or time.
    pub rows: u64,
    /// Rows routed into `outs`.
    pub kept: u64,
    /// Time of the first and of the last row (None on an empty page).
    pub first_ts: Option<EpochMs>,
    /// See `first_ts`.
    pub last_ts: Option<EpochMs>,
    /// Rows at the end of the page whose time equals `last_ts` (the last
    /// bucket's rows on this page).
    pub last_run: u64,
}

/// A page's row counts while it is parsed (plain integers, so that the
/// parsers keep them in registers).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    rows: u64,
    /// Rows routed into `outs`.
    pub(super) kept: u64,
    first: EpochMs,
    last: EpochMs,
    run: u64,
}

impl Tally {
    /// Counts one row at `ts`.
    #[inline]
    pub(super) fn row(&mut self, ts: EpochMs) {
        if self.rows == 0 {
            (self.first, self.last) = (ts, ts);
        }
        if ts == self.last {
            self.run += 1;
        } else {
            (self.last, self.run) = (ts, 1);
        }
        self.rows += 1;
    }

    /// The page these rows make, with its cursor fields.
    pub(super) fn page(self, next_cursor: Option<String>, has_more: bool) -> Page {
        let seen = self.rows > 0;
        Page {
            next_cursor,
            has_more,
            rows: self.rows,
            kept: self.kept,
            first_ts: seen.then_some(self.first),
            last_ts: seen.then_some(self.last),
            last_run: self.run,
        }
    }
}

/// Parses timestamps (forms: the module docs), remembering the last date
/// so a page of samples from one day pays for the calendar once.
#[derive(Default)]
pub struct TimeParser {
    day_prefix: [u8; 10],
    day_ms: Option<EpochMs>,
}

/// The value of the two ASCII digits at `b[i..i + 2]`.
#[inline(always)]
fn two(b: &[u8], i: usize) -> Option<i64> {
    let (h, l) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (h < 10 && l < 10).then_some(i64::from(h) * 10 + i64::from(l))
}

/// Epoch ms of the midnight starting `YYYY-MM-DD`; `Err` if `d` is not
/// that shape, `Ok(None)` if it is but the date does not exist.
fn midnight(d: &[u8]) -> Result<Option<EpochMs>, ()> {
    if d.len() != 10 || d[4] != b'-' || d[7] != b'-' {
        return Err(());
    }
    let (Some(y1), Some(y2), Some(m), Some(day)) = (two(d, 0), two(d, 2), two(d, 5), two(d, 8))
    else {
        return Err(());
    };
    Ok(
        NaiveDate::from_ymd_opt((y1 * 100 + y2) as i32, m as u32, day as u32)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|t| EpochMs(t.and_utc().timestamp_millis())),
    )
}

impl TimeParser {
    /// Parses a timestamp in any of the forms of the module docs: naive
    /// (UTC), `Z`, or an offset, with an optional fraction truncated to
    /// milliseconds. The upstream's forms (naive or `Z`, with or without a
    /// fraction) take a fast path; the rest goes through chrono.
    pub fn parse(&mut self, s: &str) -> Option<EpochMs> {
        match self.upstream_form(s.as_bytes()) {
            Upstream::Ms(ms) => Some(ms),
            Upstream::Invalid => None,
            // A naive time is UTC: read it as chrono reads it with a `Z`.
            Upstream::Other => parse_rfc3339(s).or_else(|| parse_rfc3339(&format!("{s}Z"))),
        }
    }

    /// The fast path of [`parse`](Self::parse), on bytes: naive or `Z`
    /// (`z`), with or without a fraction of up to nine digits.
    pub(super) fn upstream_form(&mut self, b: &[u8]) -> Upstream {
        match self.head(b) {
            Ok((ms, n)) => match &b[n..] {
                [] | [b'Z' | b'z'] => Upstream::Ms(ms),
                _ => Upstream::Other,
            },
            Err(Miss::Invalid) => Upstream::Invalid,
            Err(Miss::Other) => Upstream::Other,
        }
    }

    /// `YYYY-MM-DD(T|t| )HH:MM:SS[.d{1,9}]` at the start of `b`, whatever
    /// follows it: its time (the fraction truncated to ms) and length. Those
    /// bytes are plain ASCII (digits and `-:.Tt `), so the page parser may
    /// take them without scanning.
    #[inline]
    pub(super) fn head(&mut self, b: &[u8]) -> Result<(EpochMs, usize), Miss> {
        let h: &[u8; 19] = b
            .get(..19)
            .and_then(|h| h.try_into().ok())
            .ok_or(Miss::Other)?;
        let ms = self.seconds(h)?;
        if b.get(19) != Some(&b'.') {
            return Ok((ms, 19));
        }
        // The fraction: its first three digits are the milliseconds.
        let mut frac = 0;
        let mut k = 0;
        while let Some(d) = b
            .get(20 + k)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|&d| d < 10)
        {
            if k < 3 {
                frac = frac * 10 + i64::from(d);
            }
            k += 1;
            if k > 9 {
                return Err(Miss::Other);
            }
        }
        match k {
            0 => Err(Miss::Invalid),
            1 => Ok((ms + frac * 100, 21)),
            2 => Ok((ms + frac * 10, 22)),
            _ => Ok((ms + frac, 20 + k)),
        }
    }

    /// `YYYY-MM-DD(T|t| )HH:MM:SS`, whole seconds.
    #[inline]
    pub(super) fn seconds(&mut self, h: &[u8; 19]) -> Result<EpochMs, Miss> {
        if !(matches!(h[10], b'T' | b't' | b' ') && h[13] == b':' && h[16] == b':') {
            return Err(Miss::Other);
        }
        let day = if self.day_ms.is_some() && self.day_prefix == h[..10] {
            self.day_ms
        } else {
            let day = midnight(&h[..10]).map_err(|()| Miss::Other)?;
            self.day_prefix.copy_from_slice(&h[..10]);
            self.day_ms = day;
            day
        };
        let (Some(day), Some(hh), Some(mm), Some(ss)) = (day, two(h, 11), two(h, 14), two(h, 17))
        else {
            return Err(Miss::Invalid);
        };
        if hh > 23 || mm > 59 || ss > 59 {
            // A leap second (`:60`) is chrono's to read.
            return Err(if hh > 23 || mm > 59 || ss > 60 {
                Miss::Invalid
            } else {
                Miss::Other
            });
        }
        Ok(day + ((hh * 60 + mm) * 60 + ss) * 1000)
    }
}

/// Why [`TimeParser::head`] did not take a time.
pub(super) enum Miss {
    /// Its shape, but not a valid time (chrono would refuse it too).
    Invalid,
    /// Another shape (or a leap second, or ten or more fraction digits):
    /// for chrono.
    Other,
}

/// What [`TimeParser::upstream_form`] made of a whole timestamp.
pub(super) enum Upstream {
    /// Naive or `Z`, parsed.
    Ms(EpochMs),
    /// That shape, but not a valid time.
    Invalid,
    /// Another shape (an offset, a leap second, ...): for chrono.
    Other,
}

/// Where each of `outs` ends now.
fn marks(outs: &[Samples]) -> Vec<Mark> {
    outs.iter().map(Samples::mark).collect()
}

/// Puts each of `outs` back to its mark.
fn rewind(outs: &mut [Samples], marks: &[Mark]) {
    for (out, &mark) in outs.iter_mut().zip(marks) {
        out.rewind(mark);
    }
}

fn check_outs(points: &PointSet, outs: &[Samples]) {
    assert_eq!(outs.len(), points.len(), "parse_page: one output per point");
}

/// Parses one upstream page, appending each row of a point of `points`
/// whose time falls in `[start, end)` to that point's `outs[index]`; every
/// other row is only counted ([`Page::rows`]). Every row's time must parse.
/// A row without a name (or with a `null` one) belongs to the set's only
/// point (an error unless the set has exactly one). Malformed JSON, a bad timestamp or a missing
/// name is an error with the parser's message, and leaves every `outs[i]`
/// as it was. When the page says more follow, each `outs[i]` that received
/// samples reserves room for the rest of the range
/// ([`Samples::reserve_for_range`], bounded).
///
/// # Panics
/// If `outs.len() != points.len()`.
pub fn parse_page(
    body: &[u8],
    points: &PointSet,
    start: EpochMs,
    end: EpochMs,
    times: &mut TimeParser,
    outs: &mut [Samples],
) -> Result<Page, String> {
    check_outs(points, outs);
    let marks = marks(outs);
    let page = match fast::parse(body, points, start, end, times, outs) {
        Some(page) => page,
        None => {
            rewind(outs, &marks);
            parse_page_serde(body, points, start, end, times, outs)?
        }
    };
    if page.has_more && page.kept > 0 {
        for (out, mark) in outs.iter_mut().zip(&marks) {
            if out.len() > mark.items {
                out.reserve_for_range(start, end);
            }
        }
    }
    Ok(page)
}

/// [`parse_page`] through serde_json alone: the reference the fast path
/// is tested against, and its fallback. On an error, every `outs[i]` is as
/// it was.
///
/// # Panics
/// If `outs.len() != points.len()`.
pub fn parse_page_serde(
    body: &[u8],
    points: &PointSet,
    start: EpochMs,
    end: EpochMs,
    times: &mut TimeParser,
    outs: &mut [Samples],
) -> Result<Page, String> {
    check_outs(points, outs);
    let raw: RawPage<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let marks = marks(outs);
    let mut tally = Tally::default();
    for s in &raw.point_samples {
        let Some(ts) = times.parse(&s.time) else {
            rewind(outs, &marks);
            return Err(format!("bad sample time {:?}", s.time));
        };
        let index = match &s.name {
            Some(name) => points.index_of(name.0.as_bytes()),
            None => match points.only() {
                Some(i) => Some(i),
                None => {
                    rewind(outs, &marks);
                    return Err(format!(
                        "a sample without a name on a page for {} points",
                        points.len()
                    ));
                }
            },
        };
        tally.row(ts);
        if let Some(i) = index {
            if ts >= start && ts < end {
                outs[i as usize].push(ts, &s.value);
                tally.kept += 1;
            }
        }
    }
    Ok(tally.page(raw.next_cursor.map(Cow::into_owned), raw.has_more))
}

#[cfg(test)]
mod tests;

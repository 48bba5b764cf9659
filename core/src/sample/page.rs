//! Upstream pages to samples.
//!
//! [`parse_page`] first tries the parser specialised to the upstream's own
//! bytes (`fast`); on anything that parser does not recognise, it
//! rewinds and parses the page with serde_json ([`parse_page_serde`], the
//! reference). Both give the same samples, page and errors (property-tested
//! below on generated pages, including every case that falls back).

use std::borrow::Cow;

use serde::Deserialize;

use super::{fast, Samples};
use crate::domain::{parse_rfc3339, EpochMs};

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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
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

/// What [`TimeParser::upstream_form`] made of a timestamp.
pub(super) enum Upstream {
    /// `YYYY-MM-DDTHH:MM:SSZ`, parsed.
    Ms(EpochMs),
    /// That shape, but not a valid time.
    Invalid,
    /// Another shape (or an hour, minute or second out of range): for chrono.
    Other,
}

impl TimeParser {
    /// Parses an RFC 3339 timestamp. The upstream's own form,
    /// `YYYY-MM-DDTHH:MM:SSZ`, takes a fast path; anything else goes
    /// through chrono.
    pub fn parse(&mut self, s: &str) -> Option<EpochMs> {
        match self.upstream_form(s.as_bytes()) {
            Upstream::Ms(ms) => Some(ms),
            Upstream::Invalid => None,
            Upstream::Other => parse_rfc3339(s),
        }
    }

    /// The fast path of [`parse`](Self::parse), on bytes. `Ms` implies the
    /// bytes are plain ASCII (a date chrono accepted, digits and `T::Z`),
    /// which lets the page parser take a time without scanning it.
    pub(super) fn upstream_form(&mut self, b: &[u8]) -> Upstream {
        if !(b.len() == 20 && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z') {
            return Upstream::Other;
        }
        let day = if self.day_ms.is_some() && self.day_prefix == b[..10] {
            self.day_ms
        } else {
            let Ok(date) = std::str::from_utf8(&b[..10]) else {
                return Upstream::Other;
            };
            let day = parse_rfc3339(&format!("{date}T00:00:00Z"));
            self.day_prefix.copy_from_slice(&b[..10]);
            self.day_ms = day;
            day
        };
        let two = |i: usize| -> Option<i64> {
            let (h, l) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
            (h < 10 && l < 10).then_some(i64::from(h) * 10 + i64::from(l))
        };
        let (Some(day), Some(hh), Some(mm), Some(ss)) = (day, two(11), two(14), two(17)) else {
            return Upstream::Invalid;
        };
        if hh > 23 || mm > 59 || ss > 59 {
            return Upstream::Other;
        }
        Upstream::Ms(day + ((hh * 60 + mm) * 60 + ss) * 1000)
    }
}

/// Parses one upstream page, appending the samples of `point` that fall in
/// `[start, end)` to `out`. Malformed JSON or a bad timestamp is an error
/// with the parser's message, and leaves `out` as it was. When the page
/// says more follow, `out` reserves room for the rest of the range once
/// ([`Samples::reserve_for_range`]).
pub fn parse_page(
    body: &[u8],
    point: &str,
    start: EpochMs,
    end: EpochMs,
    times: &mut TimeParser,
    out: &mut Samples,
) -> Result<Page, String> {
    let mark = out.mark();
    let page = match fast::parse(body, point, start, end, times, out) {
        Some(page) => page,
        None => {
            out.rewind(mark);
            parse_page_serde(body, point, start, end, times, out)?
        }
    };
    if page.has_more {
        out.reserve_for_range(start, end);
    }
    Ok(page)
}

/// [`parse_page`] through serde_json alone: the reference the fast path
/// is tested against, and its fallback. On an error, `out` is as it was.
pub fn parse_page_serde(
    body: &[u8],
    point: &str,
    start: EpochMs,
    end: EpochMs,
    times: &mut TimeParser,
    out: &mut Samples,
) -> Result<Page, String> {
    let raw: RawPage<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mark = out.mark();
    let mut skipped = 0;
    for s in &raw.point_samples {
        let Some(ts) = times.parse(&s.time) else {
            out.rewind(mark);
            return Err(format!("bad sample time {:?}", s.time));
        };
        if s.name != point || ts < start || ts >= end {
            skipped += 1;
            continue;
        }
        out.push(ts, &s.value);
    }
    Ok(Page {
        next_cursor: raw.next_cursor.map(Cow::into_owned),
        has_more: raw.has_more,
        skipped,
    })
}

#[cfg(test)]
mod tests;

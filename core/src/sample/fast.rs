//! The upstream's own page bytes, parsed in one pass without serde.
//!
//! The ACE API (and ace-sim) writes every page the same way:
//! `{"point_samples":[{"name":"…","value":"…","time":"…"},…],"next_cursor":"…"|null,"has_more":true|false}`,
//! with no whitespace and no escapes in practice. This parser accepts
//! exactly that and nothing else: whitespace, escapes, control characters,
//! other key orders, missing or extra fields, non-string values or invalid
//! UTF-8 make it return `None`, and the caller parses the page with
//! serde_json instead. Each sample goes straight into the chunk's
//! [`Samples`]; the point name is compared as bytes.

use super::page::Upstream;
use super::{Page, Samples, TimeParser};
use crate::domain::EpochMs;

/// Parses `body` if it has the upstream's exact shape; `None` otherwise
/// (then `out` may hold part of the page: the caller rewinds it).
pub(super) fn parse(
    body: &[u8],
    point: &str,
    start: EpochMs,
    end: EpochMs,
    times: &mut TimeParser,
    out: &mut Samples,
) -> Option<Page> {
    // A name that JSON must escape never appears verbatim in a page.
    if point.bytes().any(needs_escape) {
        return None;
    }
    let mut r = Reader { b: body, i: 0 };
    r.lit(b"{\"point_samples\":[")?;
    let mut skipped = 0u64;
    if !r.eat(b"]") {
        loop {
            r.lit(b"{\"name\":\"")?;
            let ours = r.name_rest(point.as_bytes())?;
            r.lit(b",\"value\":")?;
            let value = r.str()?;
            r.lit(b",\"time\":")?;
            let ts = match r.upstream_time(times) {
                Some(ts) => ts,
                None => times.parse(r.str()?)?,
            };
            r.lit(b"}")?;
            if ours && ts >= start && ts < end {
                out.push(ts, value);
            } else {
                skipped += 1;
            }
            if !r.eat(b",") {
                r.lit(b"]")?;
                break;
            }
        }
    }
    r.lit(b",\"next_cursor\":")?;
    let next_cursor = match r.eat(b"null") {
        true => None,
        false => Some(r.str()?.to_owned()),
    };
    r.lit(b",\"has_more\":")?;
    let has_more = r.eat(b"true");
    if !has_more {
        r.lit(b"false")?;
    }
    r.lit(b"}")?;
    (r.i == body.len()).then_some(Page {
        next_cursor,
        has_more,
        skipped,
    })
}

/// A byte JSON cannot hold verbatim in a string (or would end it).
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `a == b`, eight bytes at a time. Slice equality would call `memcmp`,
/// which wasm32's compiler-builtins implements one byte at a time: it was a
/// fifth of the wasm chunk path (node's CPU profile), for the point name
/// (about 100 bytes) and the keys of every sample.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    // Inlined by hand: at opt-level "s" (the release profile) a plain
    // helper stays a call, and so does `copy_from_slice`.
    #[inline(always)]
    fn word(s: &[u8], at: usize) -> u64 {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    // Whole words, then the last eight bytes (overlapping the last word).
    (0..n / 8).all(|k| word(a, 8 * k) == word(b, 8 * k)) && word(a, n - 8) == word(b, n - 8)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    /// Consumes `s` if the input continues with it.
    fn eat(&mut self, s: &[u8]) -> bool {
        let hit = self.b[self.i..].get(..s.len()).is_some_and(|r| same(r, s));
        if hit {
            self.i += s.len();
        }
        hit
    }

    /// Consumes `s`, which must come next.
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        self.eat(s).then_some(())
    }

    /// After a name's opening quote: consumes the rest of the string and
    /// tells whether it is `point` (one comparison of bytes when it is).
    fn name_rest(&mut self, point: &[u8]) -> Option<bool> {
        let rest = &self.b[self.i..];
        let named = rest.get(..point.len()).is_some_and(|r| same(r, point));
        if named && rest.get(point.len()) == Some(&b'"') {
            self.i += point.len() + 1;
            return Some(true);
        }
        self.i -= 1;
        self.str().map(|_| false)
    }

    /// A time string in the upstream's own form, taken without scanning
    /// it for escapes (its form admits none); `None` consumes nothing.
    fn upstream_time(&mut self, times: &mut TimeParser) -> Option<EpochMs> {
        let quoted = self.b.get(self.i..self.i + 22)?;
        if quoted[0] != b'"' || quoted[21] != b'"' {
            return None;
        }
        match times.upstream_form(&quoted[1..21]) {
            Upstream::Ms(ts) => {
                self.i += 22;
                Some(ts)
            }
            Upstream::Invalid | Upstream::Other => None,
        }
    }

    /// A string without escapes, as valid UTF-8.
    fn str(&mut self) -> Option<&'a str> {
        let rest = self.b.get(self.i..)?.strip_prefix(b"\"")?;
        let len = rest.iter().position(|&c| needs_escape(c))?;
        if rest[len] != b'"' {
            return None;
        }
        self.i += len + 2;
        std::str::from_utf8(&rest[..len]).ok()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_is_slice_equality() {
        let base: Vec<u8> = (0..40u8).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(super::same(a, a));
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!super::same(a, &b), "{n} {i}");
            }
            assert!(!super::same(a, &base[..n + 1]));
        }
    }
}

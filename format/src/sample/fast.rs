//! The upstream's own page bytes, parsed in one pass without serde.
//!
//! The ACE API (and ace-sim) writes every page the same way:
//! `{"point_samples":[{"name":"…","value":"…","time":"…"},…],"next_cursor":"…"|null,"has_more":true|false}`,
//! and the per-point endpoint `{"point_samples":[…]}` alone, with no
//! whitespace and no escapes in practice. This parser accepts exactly
//! those (and samples without `"name"`, as `{"value":…,"time":…}`) and
//! nothing else: whitespace, escapes, control characters, other key
//! orders, missing or extra fields, non-string values or invalid UTF-8
//! make it return `None`, and the caller parses the page with serde_json
//! instead. Each kept sample goes straight into its point's [`Samples`].
//!
//! A site page holds every point of the site, and most rows are for
//! points outside the job. A row's name is first compared with the point
//! the job's previous row predicts (the next point of the job, since rows
//! come ordered by time, then name: with one point, always that point);
//! that costs one byte when it is not it. Otherwise the name is scanned
//! eight bytes at a time and looked up in the [`PointSet`], where a length
//! no job point has rejects it at once.

use super::page::Tally;
use super::{Page, PointSet, Samples, TimeParser};
use crate::time::EpochMs;

/// Parses `body` if it has the upstream's exact shape; `None` otherwise
/// (then `outs` may hold part of the page: the caller rewinds them).
pub(super) fn parse(
    body: &[u8],
    points: &PointSet,
    start: EpochMs,
    end: EpochMs,
    times: &mut TimeParser,
    outs: &mut [Samples],
) -> Option<Page> {
    let mut r = Reader { b: body, i: 0 };
    r.lit(b"{\"point_samples\":[")?;
    let tally = match (r.eat(b"]"), outs) {
        (true, _) => Tally::default(),
        // One point (the per-point endpoint, or a one-point job): the row
        // loop without the job's next point to track.
        (false, [out]) => {
            rows::<false>(&mut r, points, start, end, times, std::slice::from_mut(out))?
        }
        (false, outs) => rows::<true>(&mut r, points, start, end, times, outs)?,
    };
    let (mut next_cursor, mut has_more) = (None, false);
    if r.eat(b",\"next_cursor\":") {
        if !r.eat(b"null") {
            next_cursor = Some(r.str()?.to_owned());
        }
        r.lit(b",\"has_more\":")?;
        has_more = r.eat(b"true");
        if !has_more {
            r.lit(b"false")?;
        }
    }
    r.lit(b"}")?;
    (r.i == body.len()).then(|| tally.page(next_cursor, has_more))
}

/// The rows of `point_samples`, through its closing `]`. `MANY`: whether
/// `points` has more than one point.
#[inline(always)]
fn rows<const MANY: bool>(
    r: &mut Reader<'_>,
    points: &PointSet,
    start: EpochMs,
    end: EpochMs,
    times: &mut TimeParser,
    outs: &mut [Samples],
) -> Option<Tally> {
    let mut tally = Tally::default();
    // The point the job's next row is expected to be, and its name if JSON
    // holds it verbatim.
    let mut guess = 0u32;
    let mut want = (!points.is_empty()).then(|| points.verbatim(0)).flatten();
    loop {
        let index = if r.eat(b"{\"name\":") {
            let index = match want.and_then(|w| r.verbatim(w)) {
                Some(()) => Some(guess),
                None => r.lookup(points)?,
            };
            r.lit(b",\"value\":")?;
            index
        } else {
            // Without a name, the set's only point (else serde's error).
            r.lit(b"{\"value\":")?;
            Some(points.only()?)
        };
        let value = r.str()?;
        r.lit(b",\"time\":")?;
        let ts = match r.whole_seconds(times) {
            Some(ts) => ts,
            None => r.time(times)?,
        };
        r.lit(b"}")?;
        tally.row(ts);
        if let Some(i) = index {
            if MANY {
                guess = if i as usize + 1 < points.len() {
                    i + 1
                } else {
                    0
                };
                want = points.verbatim(guess);
            }
            if ts >= start && ts < end {
                // With one point, `i` is 0.
                outs[if MANY { i as usize } else { 0 }].push(ts, value);
                tally.kept += 1;
            }
        }
        if !r.eat(b",") {
            r.lit(b"]")?;
            return Some(tally);
        }
    }
}

/// A byte JSON cannot hold verbatim in a string (or would end it).
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is `"`, `\` or below 0x20. Bits
/// above the lowest one may be false positives (borrows), the lowest is
/// exact: only it is used.
#[inline(always)]
fn stops(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
}

/// The length of the string body at the start of `s` (up to the first byte
/// that [`needs_escape`]), and whether that body is all ASCII; `None` if no
/// such byte follows.
#[inline]
fn scan(s: &[u8]) -> Option<(usize, bool)> {
    let mut high = 0u64;
    let mut i = 0;
    while let Some(w) = s.get(i..i + 8) {
        let w = u64::from_le_bytes(w.try_into().ok()?);
        let stop = stops(w);
        if stop != 0 {
            let at = stop.trailing_zeros() as usize / 8;
            // The high bits of the bytes before the stop.
            high |= w & HIGH & ((1u64 << (8 * at)) - 1);
            return Some((i + at, high == 0));
        }
        high |= w & HIGH;
        i += 8;
    }
    let at = i + s[i..].iter().position(|&c| needs_escape(c))?;
    Some((at, high == 0 && s[i..at].is_ascii()))
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
    #[inline]
    fn eat(&mut self, s: &[u8]) -> bool {
        let hit = self.b[self.i..].get(..s.len()).is_some_and(|r| same(r, s));
        if hit {
            self.i += s.len();
        }
        hit
    }

    /// Consumes `s`, which must come next.
    #[inline]
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        self.eat(s).then_some(())
    }

    /// Consumes the JSON string `"name"` if it comes next (`name` holds
    /// nothing JSON escapes): one byte tells when it cannot be.
    #[inline]
    fn verbatim(&mut self, name: &[u8]) -> Option<()> {
        let rest = self.b.get(self.i..)?;
        if rest.get(name.len() + 1) == Some(&b'"')
            && rest[0] == b'"'
            && same(&rest[1..name.len() + 1], name)
        {
            self.i += name.len() + 2;
            return Some(());
        }
        None
    }

    /// A name string that is not the expected point's: the index of its
    /// point in `points`, if it is one. Out of line, like [`Self::time`],
    /// so that the loop over rows stays small.
    #[inline(never)]
    fn lookup(&mut self, points: &PointSet) -> Option<Option<u32>> {
        Some(points.index_of(self.str_bytes()?))
    }

    /// A time string of whole seconds, naive or `Z` (the upstream's own
    /// forms), from a fixed window and without scanning it for escapes
    /// (those forms admit none); `None` consumes nothing.
    #[inline]
    fn whole_seconds(&mut self, times: &mut TimeParser) -> Option<EpochMs> {
        let q = self.b.get(self.i..self.i + 22)?;
        let naive = q[20] == b'"';
        if q[0] != b'"' || !(naive || (q[20] == b'Z' && q[21] == b'"')) {
            return None;
        }
        let ts = times.seconds(<&[u8; 19]>::try_from(&q[1..20]).ok()?).ok()?;
        self.i += if naive { 21 } else { 22 };
        Some(ts)
    }

    /// Any other time string: with a fraction (still without scanning it),
    /// or through [`TimeParser::parse`].
    #[inline(never)]
    fn time(&mut self, times: &mut TimeParser) -> Option<EpochMs> {
        let rest = self.b.get(self.i..)?;
        if rest.first() == Some(&b'"') {
            if let Ok((ts, n)) = times.head(&rest[1..]) {
                let n = match rest.get(1 + n) {
                    Some(b'"') => Some(n),
                    Some(b'Z') if rest.get(2 + n) == Some(&b'"') => Some(n + 1),
                    _ => None,
                };
                if let Some(n) = n {
                    self.i += n + 2;
                    return Some(ts);
                }
            }
        }
        times.parse(self.str()?)
    }

    /// A string without escapes, as bytes of valid UTF-8, scanned a word at
    /// a time: for point names (long, and mostly ASCII, which is then not
    /// validated a second time).
    #[inline]
    fn str_bytes(&mut self) -> Option<&'a [u8]> {
        let rest = self.b.get(self.i..)?.strip_prefix(b"\"")?;
        let (len, ascii) = scan(rest)?;
        if rest[len] != b'"' {
            return None;
        }
        let s = &rest[..len];
        if !ascii {
            std::str::from_utf8(s).ok()?;
        }
        self.i += len + 2;
        Some(s)
    }

    /// A string without escapes, as valid UTF-8. Byte by byte: values are
    /// short, and a word at a time costs more for them.
    #[inline]
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
    use super::*;

    #[test]
    fn same_is_slice_equality() {
        let base: Vec<u8> = (0..40u8).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(same(a, a));
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!same(a, &b), "{n} {i}");
            }
            assert!(!same(a, &base[..n + 1]));
        }
    }

    #[test]
    fn scan_finds_the_first_stop_and_non_ascii() {
        let naive = |s: &[u8]| {
            let at = s.iter().position(|&c| needs_escape(c))?;
            Some((at, s[..at].is_ascii()))
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff, b'!', b'#',
        ];
        // Every position of one or two special bytes in strings around a word.
        for n in 0..20 {
            for &x in &alphabet {
                for i in 0..n {
                    for &y in &alphabet {
                        for j in i..n {
                            let mut s = vec![b'a'; n];
                            s[i] = x;
                            s[j] = y;
                            assert_eq!(scan(&s), naive(&s), "{s:?}");
                        }
                    }
                }
            }
        }
    }
}

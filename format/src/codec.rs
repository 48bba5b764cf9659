//! The result object format: columnar MessagePack, gzip-compressed.
//!
//! An object is a concatenation of gzip members (a valid multi-member gzip
//! stream, as `gunzip` and `MultiGzDecoder` read it). Decompressed, it is a
//! sequence of MessagePack maps with string keys:
//!
//! 1. a [`Header`]: format name and version, site, range and the point names
//!    (each name appears only here);
//! 2. [`Block`]s, columnar, one per point per chunk (a window of whole UTC
//!    days inside a month): chunk by chunk in time order, and within a
//!    chunk in point order. So each point's blocks come in time order; a
//!    reader collects a point's series by `p` and must not assume the
//!    blocks of one point are adjacent. (Objects written before windows,
//!    one point over a month per block, point by point, read the same way.)
//!
//! Each block is compressed on its own when its chunk finishes, so the
//! consumer never holds more than a chunk, and the final object is the
//! header member followed by the block members byte for byte.
//!
//! Within a block, sample `i` has time `t0 + dt[0] + … + dt[i-1]`. Its value
//! is a string if `i` is listed in `si` (gap-coded), a float if listed in
//! `fi` (gap-coded), and otherwise the next decimal: the running sum of the
//! deltas in `m`, divided by `10^s`. That division of two exact integers
//! rounds once, so it gives the same `f64` as parsing the upstream string.

use std::io::{BufWriter, Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::sample::{decimal_to_f64, Samples, TextId, Texts, Value, MAX_EXACT_MANTISSA, MAX_SCALE};
use crate::time::EpochMs;

/// The format name in every header.
pub const FORMAT_NAME: &str = "tsp-columnar";
/// The format version; part of the request fingerprint.
pub const FORMAT_VERSION: u32 = 1;
/// gzip level for blocks. Level 4 costs about 30% less time than zlib's
/// default 6 and, on columnar deltas, the object grows by under 1%
/// (0.588 vs 0.585 B/sample: `cargo run --release -p tsp-core --example measure`).
pub const GZIP_LEVEL: u32 = 4;

/// The first value in an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for this decoder.
    pub version: u32,
    /// Site.
    pub site: String,
    /// Range start, epoch ms.
    pub start_ms: EpochMs,
    /// Range end (exclusive), epoch ms.
    pub end_ms: EpochMs,
    /// Point names; blocks refer to them by index.
    pub points: Vec<String>,
}

/// One point over one chunk (window), columnar.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Block {
    /// Index into [`Header::points`].
    pub p: u32,
    /// Number of samples.
    pub n: u32,
    /// First timestamp, epoch ms (0 when `n` is 0).
    pub t0: EpochMs,
    /// Gaps between consecutive timestamps (`n - 1` of them).
    pub dt: Vec<i64>,
    /// Decimal scale of `m`.
    pub s: u8,
    /// Decimal mantissas at scale `s`, delta-coded.
    pub m: Vec<i64>,
    /// Indexes of float samples, gap-coded.
    pub fi: Vec<u32>,
    /// Float values.
    pub fv: Vec<f64>,
    /// Indexes of string samples, gap-coded.
    pub si: Vec<u32>,
    /// The distinct strings of this block.
    pub sd: Vec<String>,
    /// Each string sample's index into `sd`.
    pub sc: Vec<u32>,
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A number.
    Number(f64),
    /// A string (non-numeric or non-finite upstream value).
    Text(String),
}

impl Decoded {
    /// What an upstream value string decodes back to.
    pub fn of_upstream(s: &str) -> Decoded {
        match Value::classify(s, &mut Texts::default()) {
            Value::NonFinite(_) | Value::Text(_) => Decoded::Text(s.to_owned()),
            v => Decoded::Number(v.as_f64().unwrap_or(f64::NAN)),
        }
    }
}

/// Codec failures.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Writing MessagePack failed.
    #[error("encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Reading MessagePack failed.
    #[error("decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// gzip failed.
    #[error("gzip: {0}")]
    Io(#[from] std::io::Error),
    /// Writing a MessagePack value failed.
    #[error("encode: {0}")]
    Write(#[from] rmp::encode::ValueWriteError),
    /// The object is not this format, or is inconsistent.
    #[error("invalid object: {0}")]
    Invalid(String),
}

fn gzip_member(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        Compression::new(GZIP_LEVEL),
    );
    enc.write_all(bytes)?;
    Ok(enc.finish()?)
}

/// Encodes a header as its gzip member.
pub fn encode_header(header: &Header) -> Result<Vec<u8>, CodecError> {
    gzip_member(&rmp_serde::to_vec_named(header)?)
}

/// Builds the columnar block for sorted, deduplicated samples of one point.
pub fn build_block(point: u32, samples: &Samples) -> Block {
    let mut b = Block {
        p: point,
        n: samples.len() as u32,
        t0: samples.first().map_or(EpochMs(0), |s| s.ts),
        ..Block::default()
    };
    b.dt = samples.windows(2).map(|w| w[1].ts - w[0].ts).collect();
    // Exact column sizes: a month of 30-s data would otherwise grow `m`
    // by doubling, briefly holding 1.5 times its size.
    let (mut decimals, mut texts) = (0, 0);
    for s in samples.iter() {
        match s.value {
            Value::Decimal { mantissa, scale } => {
                // The scale a value needs, not the digits it was written
                // with ("21.40" needs 1): so a block's scale depends only
                // on its values, and samples decoded from a stored block
                // encode again to the same bytes, whatever span they cover.
                if scale > b.s {
                    b.s = b.s.max(needed_scale(mantissa, scale));
                }
                decimals += 1;
            }
            Value::Text(_) | Value::NonFinite(_) => texts += 1,
            Value::Float(_) => {}
        }
    }
    let floats = samples.len() - decimals - texts;
    b.m.reserve_exact(decimals);
    b.fi.reserve_exact(floats);
    b.fv.reserve_exact(floats);
    b.si.reserve_exact(texts);
    b.sc.reserve_exact(texts);
    let (mut last_f, mut last_s, mut prev_m) = (0u32, 0u32, 0i64);
    // The block's code of each of the chunk's strings, in order of first
    // use in the block (the chunk's table may hold strings of dropped
    // duplicates, which must not appear in `sd`).
    let mut codes = vec![u32::MAX; samples.texts().len()];
    for (i, s) in samples.iter().enumerate() {
        let i = i as u32;
        let rescaled = match s.value {
            Value::Decimal { mantissa, scale } => rescale(mantissa, scale, b.s),
            _ => None,
        };
        match (s.value, rescaled) {
            (_, Some(m)) => {
                b.m.push(m - prev_m);
                prev_m = m;
            }
            (Value::Text(t) | Value::NonFinite(t), _) => {
                b.si.push(i - last_s);
                last_s = i;
                b.sc.push(code_of(&mut codes, t, samples, &mut b.sd));
            }
            (v, None) => {
                b.fi.push(i - last_f);
                last_f = i;
                b.fv.push(v.as_f64().unwrap_or(f64::NAN));
            }
        }
    }
    b
}

/// The fewest digits after the point that `mantissa / 10^scale` needs.
fn needed_scale(mut mantissa: i64, mut scale: u8) -> u8 {
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    scale
}

/// `mantissa / 10^scale` as a mantissa at scale `to`, if exact and small
/// enough. Dropping digits drops only trailing zeros: `to` is at least
/// the scale the value needs.
fn rescale(mantissa: i64, scale: u8, to: u8) -> Option<i64> {
    let m = if scale > to {
        mantissa / 10i64.checked_pow(u32::from(scale - to))?
    } else {
        mantissa.checked_mul(10i64.checked_pow(u32::from(to - scale))?)?
    };
    Some(m).filter(|m| m.abs() < MAX_EXACT_MANTISSA)
}

/// The block code of string `t`, giving it the next code on first use.
fn code_of(codes: &mut [u32], t: TextId, samples: &Samples, sd: &mut Vec<String>) -> u32 {
    match codes.get_mut(t.index()) {
        Some(c) if *c != u32::MAX => *c,
        slot => {
            let code = sd.len() as u32;
            sd.push(samples.text(t).to_owned());
            if let Some(c) = slot {
                *c = code;
            }
            code
        }
    }
}

/// Encodes one chunk's samples as its gzip member. The MessagePack goes
/// straight into the compressor through a small buffer, so the
/// uncompressed block is never held whole.
pub fn encode_block(point: u32, samples: &Samples) -> Result<Vec<u8>, CodecError> {
    gzip_block(&build_block(point, samples))
}

/// A built block as its gzip member (what [`encode_block`] writes).
pub fn gzip_block(block: &Block) -> Result<Vec<u8>, CodecError> {
    let gz = GzEncoder::new(
        Vec::with_capacity(block.n as usize / 2 + 64),
        Compression::new(GZIP_LEVEL),
    );
    let mut w = BufWriter::with_capacity(32 << 10, gz);
    write_block(block, &mut w)?;
    let gz = w.into_inner().map_err(|e| e.into_error())?;
    Ok(gz.finish()?)
}

/// Writes a block as MessagePack with `rmp`'s encoders, column by column.
/// The bytes are exactly what `rmp_serde::to_vec_named(block)` writes (a
/// map in field order, each integer in its smallest form); the fixtures
/// in `tests/codec_fixtures.rs` hold them. serde per integer cost as much
/// as gzip did on this path.
pub fn write_block<W: Write>(b: &Block, out: &mut W) -> Result<(), CodecError> {
    use rmp::encode::{write_f64, write_map_len, write_sint, write_str, write_uint};
    write_map_len(out, 11)?;
    for (key, v) in [("p", b.p), ("n", b.n)] {
        write_str(out, key)?;
        write_uint(out, u64::from(v))?;
    }
    write_str(out, "t0")?;
    write_sint(out, b.t0.ms())?;
    let sint = |o: &mut W, v: &i64| write_sint(o, *v).map(drop);
    let uint = |o: &mut W, v: &u32| write_uint(o, u64::from(*v)).map(drop);
    column(out, "dt", &b.dt, sint)?;
    write_str(out, "s")?;
    write_uint(out, u64::from(b.s))?;
    column(out, "m", &b.m, sint)?;
    column(out, "fi", &b.fi, uint)?;
    column(out, "fv", &b.fv, |o, v| write_f64(o, *v))?;
    column(out, "si", &b.si, uint)?;
    column(out, "sd", &b.sd, |o, v| write_str(o, v))?;
    column(out, "sc", &b.sc, uint)
}

/// One key and its array.
fn column<W: Write, T>(
    out: &mut W,
    key: &str,
    items: &[T],
    write: impl Fn(&mut W, &T) -> Result<(), rmp::encode::ValueWriteError>,
) -> Result<(), CodecError> {
    rmp::encode::write_str(out, key)?;
    let len = u32::try_from(items.len())
        .map_err(|_| CodecError::Invalid(format!("column {key} is too long")))?;
    rmp::encode::write_array_len(out, len)?;
    for v in items {
        write(out, v)?;
    }
    Ok(())
}

/// One decoded cell of a block.
enum Cell<'a> {
    Decimal(i64),
    Float(f64),
    Text(&'a str),
}

/// Calls `f` with each sample of a block, in order.
fn walk_block<'a>(b: &'a Block, mut f: impl FnMut(EpochMs, Cell<'a>)) -> Result<(), CodecError> {
    let n = b.n as usize;
    let bad = |what: &str| CodecError::Invalid(format!("block for point {}: {what}", b.p));
    if b.dt.len() != n.saturating_sub(1)
        || b.fi.len() != b.fv.len()
        || b.si.len() != b.sc.len()
        || b.m.len() + b.fi.len() + b.si.len() != n
        || b.s > MAX_SCALE
    {
        return Err(bad("column lengths disagree"));
    }
    let mut kind = vec![0u8; n]; // 0 decimal, 1 float, 2 string
    for (gaps, k) in [(&b.fi, 1u8), (&b.si, 2u8)] {
        let mut at = 0usize;
        for (j, g) in gaps.iter().enumerate() {
            at = if j == 0 {
                *g as usize
            } else {
                at + *g as usize
            };
            *kind.get_mut(at).ok_or_else(|| bad("index out of range"))? = k;
        }
    }
    let (mut t, mut m) = (b.t0, 0i64);
    let (mut mi, mut fi, mut si) = (0, 0, 0);
    for (i, k) in kind.into_iter().enumerate() {
        if i > 0 {
            t += b.dt[i - 1];
        }
        let cell = match k {
            0 => {
                m += b.m.get(mi).ok_or_else(|| bad("short m"))?;
                mi += 1;
                Cell::Decimal(m)
            }
            1 => {
                fi += 1;
                Cell::Float(b.fv[fi - 1])
            }
            _ => {
                si += 1;
                let code = b.sc[si - 1] as usize;
                Cell::Text(b.sd.get(code).ok_or_else(|| bad("bad string code"))?)
            }
        };
        f(t, cell);
    }
    Ok(())
}

/// Expands a block into `(time, value)` pairs.
pub fn expand_block(b: &Block) -> Result<Vec<(EpochMs, Decoded)>, CodecError> {
    let mut out = Vec::with_capacity(b.n as usize);
    walk_block(b, |t, cell| {
        out.push((
            t,
            match cell {
                Cell::Decimal(m) => Decoded::Number(decimal_to_f64(m, b.s)),
                Cell::Float(f) => Decoded::Number(f),
                Cell::Text(s) => Decoded::Text(s.to_owned()),
            },
        ))
    })?;
    Ok(out)
}

/// A block's samples in `[from, to)`, as the parser would have classified
/// them: [`encode_block`] of the result gives, bit for bit, the block a
/// fresh fetch of that span gives.
pub fn block_samples(b: &Block, from: EpochMs, to: EpochMs) -> Result<Samples, CodecError> {
    let mut out = Samples::new();
    walk_block(b, |t, cell| {
        if t < from || t >= to {
            return;
        }
        match cell {
            Cell::Decimal(m) => out.push_value(
                t,
                Value::Decimal {
                    mantissa: m,
                    scale: b.s,
                },
            ),
            Cell::Float(f) => out.push_value(t, Value::Float(f)),
            Cell::Text(s) => out.push(t, s),
        }
    })?;
    Ok(out)
}

/// Decodes one block's gzip member, as [`encode_block`] wrote it.
pub fn decode_block(member: &[u8]) -> Result<Block, CodecError> {
    let mut de = rmp_serde::Deserializer::new(flate2::read::GzDecoder::new(member));
    Ok(Block::deserialize(&mut de)?)
}

/// Reads an object as a stream: the header, then blocks one at a time, so a
/// reader holds one block in memory whatever the object's size.
pub struct ObjectReader<R: Read> {
    de: rmp_serde::Deserializer<rmp_serde::decode::ReadReader<MultiGzDecoder<R>>>,
    /// The object's header.
    pub header: Header,
}

impl<R: Read> ObjectReader<R> {
    /// Opens an object and reads its header.
    pub fn new(reader: R) -> Result<Self, CodecError> {
        let mut de = rmp_serde::Deserializer::new(MultiGzDecoder::new(reader));
        let header = Header::deserialize(&mut de)?;
        if header.format != FORMAT_NAME || header.version != FORMAT_VERSION {
            return Err(CodecError::Invalid(format!(
                "format {} v{}, expected {FORMAT_NAME} v{FORMAT_VERSION}",
                header.format, header.version
            )));
        }
        Ok(Self { de, header })
    }

    /// The next block, or `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<Block>, CodecError> {
        match Block::deserialize(&mut self.de) {
            Ok(b) => Ok(Some(b)),
            Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// One point's decoded samples.
pub type Series = Vec<(EpochMs, Decoded)>;

/// Decodes a whole object into its header and per-point series (tests and
/// small results; large ones should use [`ObjectReader`]).
pub fn decode_object(bytes: &[u8]) -> Result<(Header, Vec<Series>), CodecError> {
    let mut r = ObjectReader::new(bytes)?;
    let mut series = vec![Vec::new(); r.header.points.len()];
    while let Some(b) = r.next_block()? {
        let dst = series
            .get_mut(b.p as usize)
            .ok_or_else(|| CodecError::Invalid(format!("point index {} out of range", b.p)))?;
        dst.extend(expand_block(&b)?);
    }
    Ok((r.header, series))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(points: &[&str]) -> Header {
        Header {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            site: "s".into(),
            start_ms: EpochMs(0),
            end_ms: EpochMs(1),
            points: points.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn round_trip_is_lossless() {
        let raw = [
            "21.4",
            "45.13",
            "active",
            "1e300",
            "-0.0",
            "NaN",
            "7",
            "-2.125",
            "active",
            "0.1",
            "123456789012.5",
            "99999999999999999999",
        ];
        let at = |i: usize| 1_000 + i as i64 * 300_000;
        let samples = Samples::from_raw(raw.iter().enumerate().map(|(i, v)| (at(i), v)));
        let first_two = Samples::from_raw(raw[..2].iter().enumerate().map(|(i, v)| (at(i), v)));
        let mut obj = encode_header(&header(&["a", "b"])).unwrap();
        obj.extend(encode_block(1, &samples).unwrap());
        obj.extend(encode_block(0, &first_two).unwrap());
        let (h, series) = decode_object(&obj).unwrap();
        assert_eq!(h.points, ["a", "b"]);
        assert_eq!(series[0].len(), 2);
        for ((t, got), (s, want)) in series[1].iter().zip(samples.iter().zip(raw)) {
            assert_eq!(*t, s.ts);
            match (got, Decoded::of_upstream(want)) {
                (Decoded::Number(a), Decoded::Number(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits(), "{want}")
                }
                (a, b) => assert_eq!(a, &b, "{want}"),
            }
        }
    }

    #[test]
    fn direct_columns_equal_rmp_serde() {
        let raw = ["1", "-200", "x", "1e300", "70000", "-5000000000", "y", "x"];
        let samples =
            Samples::from_raw(raw.iter().enumerate().map(|(i, v)| (i as i64 * 70_000, v)));
        for b in [Block::default(), build_block(u32::MAX, &samples)] {
            let mut direct = Vec::new();
            write_block(&b, &mut direct).unwrap();
            assert_eq!(direct, rmp_serde::to_vec_named(&b).unwrap());
        }
    }

    #[test]
    fn empty_object_has_a_header_and_no_blocks() {
        let obj = encode_header(&header(&[])).unwrap();
        let (h, series) = decode_object(&obj).unwrap();
        assert_eq!(h.version, FORMAT_VERSION);
        assert!(series.is_empty());
    }

    #[test]
    fn wrong_format_is_rejected() {
        let mut h = header(&[]);
        h.format = "other".into();
        let obj = encode_header(&h).unwrap();
        assert!(decode_object(&obj).is_err());
    }
}

#[cfg(test)]
mod stored_block_tests {
    use super::*;

    /// Raw upstream values of mixed kinds and written scales.
    fn raw() -> Vec<(i64, &'static str)> {
        let vals = [
            "21.4",
            "21.45",
            "21.40",
            "0.00",
            "1e3",
            "NaN",
            "on",
            "-3.125",
            "7",
            "off",
            "21.4",
            "123456789.123456",
        ];
        (0..240)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 60_000,
                    vals[i as usize % vals.len()],
                )
            })
            .collect()
    }

    #[test]
    fn a_stored_block_read_back_encodes_to_the_fresh_bytes_for_any_span() {
        let all = Samples::from_raw(raw());
        let stored = encode_block(3, &all).unwrap();
        let block = decode_block(&stored).unwrap();
        let whole = block_samples(&block, EpochMs::MIN, EpochMs::MAX).unwrap();
        assert_eq!(encode_block(3, &whole).unwrap(), stored);
        // Every sub-span read from the stored block encodes as a fresh
        // fetch of only that span would.
        for (a, b) in [(0, 1), (0, 7), (2, 3), (5, 100), (117, 240), (239, 240)] {
            let (from, to) = (EpochMs(raw()[a].0), EpochMs(raw()[b - 1].0 + 1));
            let fresh = Samples::from_raw(raw()[a..b].iter().copied());
            let read = block_samples(&block, from, to).unwrap();
            assert_eq!(read.len(), b - a);
            assert_eq!(
                encode_block(0, &read).unwrap(),
                encode_block(0, &fresh).unwrap(),
                "span {a}..{b}"
            );
        }
    }

    #[test]
    fn a_block_scale_is_what_its_values_need() {
        let b = build_block(0, &Samples::from_raw([(1, "21.40"), (2, "3.0")]));
        assert_eq!((b.s, b.m.clone()), (1, vec![214, 30 - 214]));
        let decoded = expand_block(&b).unwrap();
        assert_eq!(decoded[0].1, Decoded::Number(21.4));
        assert_eq!(decoded[1].1, Decoded::Number(3.0));
    }
}

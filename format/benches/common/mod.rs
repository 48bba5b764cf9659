//! Shared by `benches/pipeline.rs` and `examples/measure.rs` (included there
//! with `#[path]`): upstream pages in the exact ACE API format, built from
//! the simulator's values, and the chunk path the consumer runs on them.
#![allow(dead_code)]

use tsp_format::aggregate::{aggregate, Aggregate};
use tsp_format::codec::encode_block;
use tsp_format::sample::{parse_page, sort_dedup, PointSet, Samples, TimeParser};
use tsp_format::time::{parse_rfc3339, EpochMs};

/// The site `scripts/run.sh` uses.
pub const SITE: &str = "demo-building";
/// The consumer's page size (`PAGE_SIZE` default).
pub const PAGE_SIZE: usize = 10_000;
/// 5-minute data: the simulator's default interval.
pub const FIVE_MIN_MS: i64 = 300_000;
/// 30-second data.
pub const THIRTY_S_MS: i64 = 30_000;

/// Epoch ms of an RFC 3339 time.
pub fn ms(s: &str) -> EpochMs {
    parse_rfc3339(s).expect("a valid RFC 3339 time")
}

/// One 30-day UTC month (November 2025): 8,640 samples at 5 minutes,
/// 86,400 at 30 seconds.
pub fn month() -> (EpochMs, EpochMs) {
    (ms("2025-11-01T00:00:00Z"), ms("2025-12-01T00:00:00Z"))
}

/// Twelve UTC months, 365 days (2024-11-01 to 2025-11-01).
pub fn year() -> (EpochMs, EpochMs) {
    (ms("2024-11-01T00:00:00Z"), ms("2025-11-01T00:00:00Z"))
}

/// `n` realistic point names (~100 characters) of [`SITE`].
pub fn points(n: usize) -> Vec<String> {
    ace_sim::default_points(SITE, n)
}

/// A numeric point (`…VAV3.points.Zone_Temp`) and a state point
/// (`…AHU4.points.Supply_Fan_Status`, "active"/"inactive").
pub fn numeric_and_state() -> (String, String) {
    let p = points(4);
    assert!(!ace_sim::is_state_point(SITE, &p[2]));
    assert!(ace_sim::is_state_point(SITE, &p[3]));
    (p[2].clone(), p[3].clone())
}

/// Appends `s` as a JSON string; the names and values used here never need
/// escaping (checked).
fn push_str(out: &mut Vec<u8>, s: &str) {
    assert!(
        s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
        "needs escaping: {s:?}"
    );
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// The simulator's cursor: URL-safe base64 (no padding) of `{"o":offset}`.
fn cursor(offset: usize) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let json = format!("{{\"o\":{offset}}}");
    let mut out = String::new();
    for c in json.as_bytes().chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for k in 0..=c.len() {
            out.push(char::from(A[((n >> (18 - 6 * k)) & 63) as usize]));
        }
    }
    out
}

/// One upstream page body, byte for byte what the ACE API (and ace-sim)
/// sends: `{"point_samples":[{"name":…,"value":…,"time":…},…],
/// "next_cursor":…,"has_more":…}`.
pub fn page(point: &str, samples: &[(i64, String)], next_cursor: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * (point.len() + 64) + 64);
    out.extend_from_slice(b"{\"point_samples\":[");
    for (i, (t, v)) in samples.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        push_str(&mut out, point);
        out.extend_from_slice(b",\"value\":");
        push_str(&mut out, v);
        out.extend_from_slice(b",\"time\":");
        push_str(&mut out, &ace_sim::format_time(*t));
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    match next_cursor {
        Some(c) => {
            push_str(&mut out, c);
            out.extend_from_slice(b",\"has_more\":true}");
        }
        None => out.extend_from_slice(b"null,\"has_more\":false}"),
    }
    out
}

/// One page of a whole site as ACE sends it (`point_names` is ignored):
/// every point of `points` at each of `steps` times from `start`, every
/// `interval_ms`, ordered by time, then name, with ACE's naive UTC times
/// (`2025-11-01T00:05:00`) and simulated values. A middle page of a pass:
/// a cursor follows.
pub fn site_page(points: &[String], start: EpochMs, steps: usize, interval_ms: i64) -> Vec<u8> {
    let mut names: Vec<&String> = points.iter().collect();
    names.sort();
    let end = start + steps as i64 * interval_ms;
    let values: Vec<Vec<(i64, String)>> = names
        .iter()
        .map(|p| sim(p, start, end, interval_ms))
        .collect();
    let mut out = Vec::with_capacity(steps * points.len() * 160 + 64);
    out.extend_from_slice(b"{\"point_samples\":[");
    for k in 0..steps {
        let t = start + k as i64 * interval_ms;
        let time = ace_sim::format_time(t.ms());
        let time = time.strip_suffix('Z').unwrap_or(&time);
        for (name, values) in names.iter().zip(&values) {
            if out.last() == Some(&b'}') {
                out.push(b',');
            }
            let v = values
                .iter()
                .find(|(at, _)| *at == t.ms())
                .map_or("0", |(_, v)| v);
            out.extend_from_slice(b"{\"name\":");
            push_str(&mut out, name);
            out.extend_from_slice(b",\"value\":");
            push_str(&mut out, v);
            out.extend_from_slice(b",\"time\":");
            push_str(&mut out, time);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    push_str(&mut out, &cursor(steps * points.len()));
    out.extend_from_slice(b",\"has_more\":true}");
    out
}

/// The pages of one chunk query, [`PAGE_SIZE`] samples each.
pub fn pages(point: &str, samples: &[(i64, String)]) -> Vec<Vec<u8>> {
    if samples.is_empty() {
        return vec![page(point, &[], None)];
    }
    let n = samples.len().div_ceil(PAGE_SIZE);
    samples
        .chunks(PAGE_SIZE)
        .enumerate()
        .map(|(i, c)| {
            let next = (i + 1 < n).then(|| cursor((i + 1) * PAGE_SIZE));
            page(point, c, next.as_deref())
        })
        .collect()
}

/// Simulated samples of `point` over `[start, end)` every `interval_ms`.
pub fn sim(point: &str, start: EpochMs, end: EpochMs, interval_ms: i64) -> Vec<(i64, String)> {
    ace_sim::samples(SITE, point, start.ms(), end.ms(), interval_ms)
}

/// Parses a chunk's pages into one `Vec`, as `upstream::fetch_chunk` does
/// (one `TimeParser` for the chunk).
pub fn parse_chunk<'a>(
    point: &str,
    start: EpochMs,
    end: EpochMs,
    pages: impl IntoIterator<Item = &'a [u8]>,
) -> Samples {
    let points = PointSet::new(&[point.to_owned()]);
    let mut times = TimeParser::default();
    let mut out = [Samples::new()];
    for body in pages {
        parse_page(body, &points, start, end, &mut times, &mut out).expect("a valid page");
    }
    let [out] = out;
    out
}

/// The rest of the chunk path (`service::process`): sort and dedup, the
/// hourly and daily aggregates, the encoded block.
pub fn finish_chunk(point_idx: u32, mut samples: Samples) -> (usize, Vec<Aggregate>, Vec<u8>) {
    sort_dedup(&mut samples);
    let aggregates = aggregate(&samples);
    let block = encode_block(point_idx, &samples).expect("encodes");
    (samples.len(), aggregates, block)
}

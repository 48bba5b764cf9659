//! The result format, byte for byte: blocks and a header encoded by the
//! code at the time the fixtures were made (commit "codec: byte-identity
//! fixtures") must encode to the same bytes now.
//!
//! Each case is checked twice: the MessagePack before gzip
//! (`*.msgpack`, the format itself, independent of the gzip backend) and
//! the gzip member (`*.msgpack.gz`, what goes to R2), each against its file
//! and its SHA-256. `TSP_WRITE_FIXTURES=1 cargo test -p tsp-core --test
//! codec_fixtures` rewrites the files; only do that on purpose.

use std::io::Read;
use std::path::PathBuf;

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use tsp_format::codec::{encode_block, encode_header, Header, FORMAT_NAME, FORMAT_VERSION};
use tsp_format::sample::{sort_dedup, Samples};
use tsp_format::time::EpochMs;

/// Builds a chunk's samples from upstream (ms, value) pairs, sorted and
/// deduplicated as the consumer does.
fn samples(raw: &[(i64, &str)]) -> Samples {
    let mut s = Samples::from_raw(raw.iter().copied());
    sort_dedup(&mut s);
    s
}

const T0: i64 = 1_761_955_200_000; // 2025-11-01T00:00:00Z

fn every(step: i64, values: &[&'static str]) -> Vec<(i64, &'static str)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (T0 + i as i64 * step, *v))
        .collect()
}

/// A named case: point index and upstream samples in delivery order.
type Case = (&'static str, u32, Vec<(i64, &'static str)>);

fn cases() -> Vec<Case> {
    let decimals = every(
        300_000,
        &[
            "21.4",
            "21.5",
            "21.45",
            "-3.75",
            "0",
            "7",
            "123456.789",
            "-0.001",
            "21.4",
        ],
    );
    let floats = every(
        30_000,
        &[
            "1e300",
            "-1e-300",
            "1e3",
            ".5",
            "-0.0",
            "1.",
            "007",
            "-0",
            "9007199254740993",
        ],
    );
    let text = every(
        60_000,
        &[
            "active", "inactive", "active", "", "off", "NaN", "inf", "-inf", "active",
        ],
    );
    // Duplicates: the last delivered wins; out of order delivery.
    let dups = vec![
        (T0 + 2_000, "b1"),
        (T0 + 1_000, "1.5"),
        (T0 + 2_000, "2.25"),
        (T0 + 3_000, "3"),
        (T0 + 1_000, "1.75"),
        (T0 + 3_000, "active"),
    ];
    let mut mixed = Vec::new();
    let vals = [
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
        "0.000000000000001",
        "1.0000000000000001",
        "inactive",
        "-9007199254.740991",
    ];
    for i in 0..400i64 {
        // Irregular gaps, including large ones.
        let t = T0 + i * 300_000 + (i % 7) * 1_000 + if i > 200 { 86_400_000 } else { 0 };
        mixed.push((t, vals[(i as usize * 7 + i as usize / 3) % vals.len()]));
    }
    vec![
        ("empty", 0, vec![]),
        ("one", 3, vec![(T0, "21.4")]),
        ("decimals", 1, decimals),
        ("floats", 2, floats),
        ("text", 0, text),
        ("dups", 5, dups),
        ("mixed", 7, mixed),
    ]
}

fn header() -> Header {
    Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        site: "demo-building".into(),
        start_ms: EpochMs(T0),
        end_ms: EpochMs(T0 + 30 * 86_400_000),
        points: vec![
            "a/b.c".into(),
            "ses/x/192.168.96.3/n4/AHU4.points.Supply_Fan_Status".into(),
        ],
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(gz).read_to_end(&mut out).expect("gzip");
    out
}

/// Compares (or, with `TSP_WRITE_FIXTURES`, writes) one case's two files
/// and the SHA-256 list.
fn check(name: &str, gz: &[u8], shas: &mut Vec<String>) {
    let mp = gunzip(gz);
    let write = std::env::var_os("TSP_WRITE_FIXTURES").is_some();
    for (ext, bytes) in [("msgpack", &mp[..]), ("msgpack.gz", gz)] {
        let path = dir().join(format!("{name}.{ext}"));
        shas.push(format!("{}  {name}.{ext}", sha(bytes)));
        if write {
            std::fs::write(&path, bytes).expect("write fixture");
            continue;
        }
        let want = std::fs::read(&path).expect("fixture file");
        assert!(want == bytes, "{name}.{ext}: bytes differ from the fixture");
    }
}

#[test]
fn blocks_and_header_encode_to_the_fixture_bytes() {
    let mut shas = Vec::new();
    check(
        "header",
        &encode_header(&header()).expect("header"),
        &mut shas,
    );
    for (name, point, raw) in cases() {
        let gz = encode_block(point, &samples(&raw)).expect("block");
        check(name, &gz, &mut shas);
    }
    // A real month of the simulator's 5-minute data: a numeric and a state point.
    let points = ace_sim::default_points("demo-building", 4);
    for (name, point) in [("sim_numeric", &points[2]), ("sim_state", &points[3])] {
        let raw = ace_sim::samples("demo-building", point, T0, T0 + 30 * 86_400_000, 300_000);
        let raw: Vec<(i64, &str)> = raw.iter().map(|(t, v)| (*t, v.as_str())).collect();
        let gz = encode_block(2, &samples(&raw)).expect("block");
        check(name, &gz, &mut shas);
    }
    let list = shas.join("\n") + "\n";
    let path = dir().join("SHA256SUMS");
    if std::env::var_os("TSP_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &list).expect("write sums");
    }
    assert_eq!(std::fs::read_to_string(path).expect("SHA256SUMS"), list);
}

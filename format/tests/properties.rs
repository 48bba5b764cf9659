//! Property tests: the aggregation engine against a simple reference, the
//! codec round trip, and the multipart cutter against R2's part rules.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tsp_format::aggregate::{aggregate, Aggregate, Resolution};
use tsp_format::codec::{decode_object, encode_block, encode_header, Decoded, Header};
use tsp_format::parts::EqualParts;
use tsp_format::sample::{sort_dedup, Samples};
use tsp_format::time::EpochMs;

/// Upstream-like value strings: decimals, other number forms, states, non-finite.
fn value_string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (-1_000_000i64..1_000_000, 0u32..4).prop_map(|(m, s)| {
            let p = 10i64.pow(s);
            if s == 0 { format!("{m}") } else { format!("{}{}.{:0w$}", if m < 0 { "-" } else { "" }, (m.abs() / p), m.abs() % p, w = s as usize) }
        }),
        1 => prop::sample::select(vec!["active", "inactive", "", "off"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["NaN", "inf", "-inf"]).prop_map(str::to_owned),
        1 => any::<f64>().prop_filter("sensor-sized", |f| f.abs() < 1e100).prop_map(|f| format!("{f:e}")),
        1 => prop::sample::select(vec!["-0.0", "1e3", ".5", "007", "-0"]).prop_map(str::to_owned),
    ]
}

/// Samples over three days with millisecond times and unique timestamps.
fn unique_samples() -> impl Strategy<Value = Vec<(i64, String)>> {
    prop::collection::btree_map(0i64..3 * 86_400_000, value_string(), 0..300)
        .prop_map(|m| m.into_iter().collect())
}

fn to_samples(raw: &[(i64, String)]) -> Samples {
    Samples::from_raw(raw.iter().map(|(t, v)| (*t, v)))
}

fn engine(raw: &[(i64, String)]) -> Vec<Aggregate> {
    let mut s = to_samples(raw);
    sort_dedup(&mut s);
    aggregate(&s)
}

/// The reference: group by bucket with a map (last delivery wins per
/// timestamp), then compute every statistic directly.
#[derive(Debug, PartialEq)]
struct RefAgg {
    count: u64,
    min: Option<f64>,
    max: Option<f64>,
    sum: Option<f64>,
    stddev: Option<f64>,
    first: Option<(i64, f64)>,
    last: Option<(i64, f64)>,
    non_numeric: u64,
    non_finite: u64,
}

fn reference(raw: &[(i64, String)]) -> BTreeMap<(&'static str, i64), RefAgg> {
    let mut latest: BTreeMap<i64, &str> = BTreeMap::new();
    for (t, v) in raw {
        latest.insert(*t, v); // later delivery replaces
    }
    let mut out = BTreeMap::new();
    for (res, width) in [("1h", 3_600_000i64), ("1d", 86_400_000)] {
        let mut buckets: BTreeMap<i64, Vec<(i64, &str)>> = BTreeMap::new();
        for (t, v) in &latest {
            buckets
                .entry(t - t.rem_euclid(width))
                .or_default()
                .push((*t, v));
        }
        for (start, items) in buckets {
            let mut nums = Vec::new();
            let (mut non_numeric, mut non_finite) = (0, 0);
            for (t, v) in &items {
                match v.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() => nums.push((*t, f)),
                    Ok(_) => non_finite += 1,
                    Err(_) => non_numeric += 1,
                }
            }
            let n = nums.len() as f64;
            let sum: f64 = nums.iter().map(|x| x.1).sum();
            let mean = sum / n;
            let var = nums.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / n;
            let has = !nums.is_empty();
            out.insert(
                (res, start),
                RefAgg {
                    count: nums.len() as u64,
                    min: has.then(|| nums.iter().map(|x| x.1).fold(f64::INFINITY, f64::min)),
                    max: has.then(|| nums.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max)),
                    sum: has.then_some(sum),
                    stddev: has.then(|| var.sqrt()),
                    first: nums.first().copied(),
                    last: nums.last().copied(),
                    non_numeric,
                    non_finite,
                },
            );
        }
    }
    out
}

fn close(a: Option<f64>, b: Option<f64>, scale: f64) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * scale.max(1.0),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn aggregates_match_the_reference(raw in unique_samples()) {
        let got = engine(&raw);
        let want = reference(&raw);
        prop_assert_eq!(got.len(), want.len(), "buckets: only non-empty ones exist");
        for a in &got {
            let r = &want[&(a.resolution.as_str(), a.bucket_start.ms())];
            let scale = r.min.unwrap_or(0.0).abs().max(r.max.unwrap_or(0.0).abs()) * (r.count as f64);
            prop_assert_eq!(a.count, r.count);
            prop_assert_eq!(a.min, r.min);
            prop_assert_eq!(a.max, r.max);
            prop_assert_eq!(a.first.map(|(t, v)| (t.ms(), v)), r.first);
            prop_assert_eq!(a.last.map(|(t, v)| (t.ms(), v)), r.last);
            prop_assert_eq!(a.non_numeric, r.non_numeric);
            prop_assert_eq!(a.non_finite, r.non_finite);
            prop_assert!(close(a.sum, r.sum, scale), "sum {:?} vs {:?}", a.sum, r.sum);
            prop_assert!(close(a.stddev, r.stddev, scale), "stddev {:?} vs {:?}", a.stddev, r.stddev);
            prop_assert!(close(a.mean, r.sum.map(|s| s / r.count as f64), scale));
        }
    }

    #[test]
    fn delivery_order_does_not_change_the_result(
        raw in unique_samples(),
        dup_every in 2usize..6,
        seed in any::<u64>(),
    ) {
        // Shuffle, and repeat some samples with the same value (redelivery).
        let mut shuffled = raw.clone();
        shuffled.extend(raw.iter().step_by(dup_every).cloned());
        let mut rng = seed | 1;
        for i in (1..shuffled.len()).rev() {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            shuffled.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(engine(&shuffled), engine(&raw));
    }

    #[test]
    fn the_last_delivered_duplicate_wins(raw in unique_samples(), replacement in value_string()) {
        prop_assume!(!raw.is_empty());
        let mut with_dup = raw.clone();
        with_dup.push((raw[0].0, replacement.clone()));
        let mut expected = raw.clone();
        expected[0].1 = replacement;
        prop_assert_eq!(engine(&with_dup), engine(&expected));
    }

    #[test]
    fn the_codec_round_trips_every_value(raw in unique_samples()) {
        let mut samples = to_samples(&raw);
        sort_dedup(&mut samples);
        let header = Header {
            format: "tsp-columnar".into(), version: 1, site: "s".into(),
            start_ms: EpochMs(0), end_ms: EpochMs(1), points: vec!["p".into()],
        };
        let mut obj = encode_header(&header).unwrap();
        obj.extend(encode_block(0, &samples).unwrap());
        let (_, series) = decode_object(&obj).unwrap();
        prop_assert_eq!(series[0].len(), raw.len());
        for ((t, got), (wt, wv)) in series[0].iter().zip(&raw) {
            prop_assert_eq!(t.ms(), *wt);
            match (got, Decoded::of_upstream(wv)) {
                (Decoded::Number(a), Decoded::Number(b)) => prop_assert_eq!(a.to_bits(), b.to_bits(), "{}", wv),
                (a, b) => prop_assert_eq!(a, &b),
            }
        }
    }

    #[test]
    fn multipart_parts_follow_r2_rules(
        size in 1usize..64,
        head in prop::collection::vec(any::<u8>(), 0..100),
        pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20),
    ) {
        let mut cutter = EqualParts::new(size, head.clone());
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for p in &pieces {
            parts.extend(cutter.push(p));
        }
        parts.extend(cutter.finish());
        let mut want = head;
        want.extend(pieces.concat());
        prop_assert!(!parts.is_empty(), "an upload has at least one part");
        prop_assert_eq!(parts.concat(), want);
        let (last, full) = parts.split_last().unwrap();
        for p in full {
            prop_assert_eq!(p.len(), size);
        }
        prop_assert!(last.len() <= size);
        prop_assert!(!last.is_empty() || parts.len() == 1);
    }
}

#[test]
fn empty_input_gives_no_buckets() {
    assert!(engine(&[]).is_empty());
    assert!(reference(&[]).is_empty());
    let _ = Resolution::Hour;
}

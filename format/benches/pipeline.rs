//! The consumer's hot path per chunk, natively: upstream JSON page →
//! samples → sort/dedup → hourly + daily aggregates + encoded block.
//!
//! One point over one 30-day UTC month of 5-minute data: 8,640 samples in
//! one upstream page of `page_size` 10,000, byte for byte the ACE format,
//! with ace-sim's values. Throughput is per sample.
//!
//! ```sh
//! cargo bench -p tsp-core --bench pipeline -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tsp_format::aggregate::aggregate;
use tsp_format::codec::{build_block, encode_block};
use tsp_format::sample::{parse_page, sort_dedup, PointSet, Samples, TimeParser};

fn chunk(c: &mut Criterion) {
    let (start, end) = common::month();
    let (numeric, state) = common::numeric_and_state();
    let mut cases: Vec<(&str, String, Vec<u8>)> = [("numeric", numeric), ("state", state)]
        .into_iter()
        .map(|(kind, point)| {
            let mut pages = common::pages(
                &point,
                &common::sim(&point, start, end, common::FIVE_MIN_MS),
            );
            assert_eq!(pages.len(), 1);
            (kind, point, pages.remove(0))
        })
        .collect();
    // The numeric page with ACE's naive times: parse only.
    let naive = String::from_utf8(cases[0].2.clone())
        .unwrap()
        .replace("Z\"", "\"")
        .into_bytes();
    cases.push(("numeric_naive", cases[0].1.clone(), naive));

    let mut g = c.benchmark_group("chunk");
    for (kind, point, body) in &cases {
        let points = &PointSet::new(std::slice::from_ref(point));
        let n = common::parse_chunk(point, start, end, [body.as_slice()]).len();
        assert_eq!(n, 8_640);
        g.throughput(Throughput::Elements(n as u64));
        // (a) parse only.
        g.bench_with_input(BenchmarkId::new("parse", kind), body, |b, body| {
            b.iter(|| {
                let mut out = [Samples::new()];
                parse_page(
                    body,
                    points,
                    start,
                    end,
                    &mut TimeParser::default(),
                    &mut out,
                )
                .unwrap();
                out
            })
        });
        if *kind == "numeric_naive" {
            continue;
        }
        // (b) parse + sort_dedup + aggregate.
        g.bench_with_input(
            BenchmarkId::new("parse_aggregate", kind),
            body,
            |b, body| {
                b.iter(|| {
                    let mut out = [Samples::new()];
                    parse_page(
                        body,
                        points,
                        start,
                        end,
                        &mut TimeParser::default(),
                        &mut out,
                    )
                    .unwrap();
                    let [mut out] = out;
                    sort_dedup(&mut out);
                    aggregate(&out)
                })
            },
        );
        // (c) the full chunk: parse + sort_dedup + aggregate + encode_block.
        g.bench_with_input(BenchmarkId::new("full", kind), body, |b, body| {
            b.iter(|| {
                let mut out = [Samples::new()];
                parse_page(
                    body,
                    points,
                    start,
                    end,
                    &mut TimeParser::default(),
                    &mut out,
                )
                .unwrap();
                let [mut out] = out;
                sort_dedup(&mut out);
                let aggregates = aggregate(&out);
                let block = encode_block(0, &out).unwrap();
                (aggregates, block)
            })
        });
    }
    // (d) one page of a 200-point site; the job keeps 10 points.
    let site = common::points(200);
    let body = common::site_page(&site, start, 50, common::FIVE_MIN_MS);
    let mut job: Vec<String> = site.iter().step_by(20).cloned().collect();
    job.sort();
    let points = PointSet::new(&job);
    let parse_site = || {
        let mut outs = vec![Samples::new(); job.len()];
        let page = parse_page(
            &body,
            &points,
            start,
            end,
            &mut TimeParser::default(),
            &mut outs,
        )
        .unwrap();
        (page, outs)
    };
    let (page, outs) = parse_site();
    assert_eq!((page.rows, page.kept), (10_000, 500));
    assert!(outs.iter().all(|o| o.len() == 50));
    g.throughput(Throughput::Elements(page.rows));
    g.bench_function(BenchmarkId::new("parse_site", "200pt_keep10"), |b| {
        b.iter(parse_site)
    });
    g.finish();

    // The stages alone, on already parsed samples, to see where (c) goes.
    let mut g = c.benchmark_group("stage");
    for (kind, point, body) in &cases[..2] {
        let parsed = common::parse_chunk(point, start, end, [body.as_slice()]);
        let mut sorted = parsed.clone();
        sort_dedup(&mut sorted);
        g.throughput(Throughput::Elements(parsed.len() as u64));
        g.bench_with_input(BenchmarkId::new("sort_dedup", kind), &parsed, |b, s| {
            b.iter_batched(
                || s.clone(),
                |mut s| {
                    sort_dedup(&mut s);
                    s
                },
                criterion::BatchSize::LargeInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("aggregate", kind), &sorted, |b, s| {
            b.iter(|| aggregate(black_box(s)))
        });
        g.bench_with_input(BenchmarkId::new("build_block", kind), &sorted, |b, s| {
            b.iter(|| build_block(0, black_box(s)))
        });
        g.bench_with_input(BenchmarkId::new("encode_block", kind), &sorted, |b, s| {
            b.iter(|| encode_block(0, black_box(s)).unwrap())
        });
    }
    g.finish();
}

/// A 30-s month of a text point whose values are all distinct (86,400
/// strings): `build_block` codes them through a map, so this stays linear.
/// It was quadratic (a scan of the distinct strings per sample).
fn distinct_text(c: &mut Criterion) {
    let (start, _) = common::month();
    let samples =
        Samples::from_raw((0..86_400i64).map(|i| (start + i * 30_000, format!("state-{i:06}"))));
    let mut g = c.benchmark_group("distinct_text");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.sample_size(10);
    g.bench_function("build_block_30s_month", |b| {
        b.iter(|| build_block(0, black_box(&samples)))
    });
    g.bench_function("encode_block_30s_month", |b| {
        b.iter(|| encode_block(0, black_box(&samples)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, chunk, distinct_text);
criterion_main!(benches);

//! Figures for docs/BENCHMARKS.md: compression, memory per chunk, throughput.
//!
//! ```sh
//! cargo run --release -p tsp-core --example measure
//! ```
//!
//! Everything is deterministic (ace-sim's values, a fixed LCG for the noisy
//! variant) except the timings.

#[path = "../benches/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use tsp_format::aggregate::aggregate;
use tsp_format::chunk::{plan, MAX_WINDOW_DAYS};
use tsp_format::codec::{
    build_block, encode_header, write_block, Header, FORMAT_NAME, FORMAT_VERSION,
};
use tsp_format::sample::{parse_page, sort_dedup, PointSet, Sample, Samples, TimeParser};
use tsp_format::time::EpochMs;

// ---------------------------------------------------------------------------
// A counting allocator: current and peak live heap bytes.
//
// Allocations made inside `untracked` (the simulated upstream generating its
// pages) are not counted, and neither is their freeing, which also happens
// inside `untracked`: only what the consumer itself allocates is measured.
// A `realloc` counts old + new at its peak, as a moving realloc holds both.

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static UNTRACKED: Cell<bool> = const { Cell::new(false) };
}

fn tracked() -> bool {
    !UNTRACKED.try_with(Cell::get).unwrap_or(false)
}

fn grow(n: usize) {
    let now = CURRENT.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

fn shrink(n: usize) {
    CURRENT.fetch_sub(n, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() && tracked() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() && tracked() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        if tracked() {
            shrink(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() && tracked() {
            PEAK.fetch_max(CURRENT.load(Relaxed) + new_size, Relaxed);
            grow(new_size);
            shrink(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` with its allocations and frees left out of the counts.
fn untracked<T>(f: impl FnOnce() -> T) -> T {
    UNTRACKED.with(|u| u.set(true));
    let out = f();
    UNTRACKED.with(|u| u.set(false));
    out
}

/// Live bytes now; resets the peak to it.
fn reset_peak() -> usize {
    let now = CURRENT.load(Relaxed);
    PEAK.store(now, Relaxed);
    now
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

// ---------------------------------------------------------------------------
// The unit these figures are measured on.

/// One point over one UTC month: the chunk these figures have always been
/// measured on (a window of `chunk::plan` now holds every point of a job;
/// this is its month window, one point at a time).
struct PointMonth {
    point: u32,
    start: EpochMs,
    end: EpochMs,
}

/// The point-months of `[start, end)` for `points` points, point-major.
fn point_months(start: EpochMs, end: EpochMs, points: usize) -> Vec<PointMonth> {
    let months = plan(start, end, MAX_WINDOW_DAYS);
    (0..points as u32)
        .flat_map(|point| {
            months.iter().map(move |m| PointMonth {
                point,
                start: m.start,
                end: m.end,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The chunk path as the consumer runs it.

/// One chunk: each page "arrives" as a fresh exact-size buffer (the HTTP
/// body), is parsed into the chunk's one `Samples` and dropped; then
/// sort/dedup, aggregates, the encoded block; everything is dropped before
/// returning (the consumer hands the block to R2 and the aggregates to D1).
/// Returns (samples, block bytes).
fn run_chunk(
    point_idx: u32,
    point: &str,
    start: EpochMs,
    end: EpochMs,
    pages: &[Vec<u8>],
) -> (usize, usize) {
    let points = PointSet::new(&[point.to_owned()]);
    let mut times = TimeParser::default();
    let mut samples = [Samples::new()];
    for p in pages {
        let body = p.clone();
        parse_page(&body, &points, start, end, &mut times, &mut samples).unwrap();
        drop(body);
    }
    let [samples] = samples;
    let (n, aggregates, block) = common::finish_chunk(point_idx, samples);
    drop(aggregates);
    (n, block.len())
}

// ---------------------------------------------------------------------------
// Data sets.

/// Perturbs the last digit of every number pseudo-randomly (a 64-bit LCG),
/// keeping its format: "21.4" → "21.7". States and "NaN" are left alone.
struct Noise(u64);

impl Noise {
    fn digit(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u8 % 10
    }

    fn apply(&mut self, samples: &mut [(i64, String)]) {
        for (_, v) in samples {
            if v.ends_with(|c: char| c.is_ascii_digit()) {
                let d = self.digit();
                let mut b = std::mem::take(v).into_bytes();
                *b.last_mut().unwrap() = b'0' + d;
                *v = String::from_utf8(b).unwrap();
            }
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[derive(Default)]
struct Sizes {
    samples: u64,
    pages: u64,
    json: u64,
    json_gz: u64,
    rows_mp: u64,
    rows_mp_gz: u64,
    ours: u64,
}

/// Sizes of one data set in every format; per point × UTC month chunk,
/// `chunk::plan` order, 5-minute data, one upstream page a chunk.
fn compression(points: &[String], noisy: bool) -> Sizes {
    let (start, end) = common::year();
    let header = Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        site: common::SITE.into(),
        start_ms: start,
        end_ms: end,
        points: points.to_vec(),
    };
    let mut z = Sizes {
        ours: encode_header(&header).unwrap().len() as u64,
        ..Sizes::default()
    };
    let mut noise = Noise(0x5eed);
    for c in point_months(start, end, points.len()) {
        let point = &points[c.point as usize];
        let mut raw = common::sim(point, c.start, c.end, common::FIVE_MIN_MS);
        if noisy {
            noise.apply(&mut raw);
        }
        let pages = common::pages(point, &raw);
        // (a), (b): the upstream JSON, raw and gzipped page by page.
        for p in &pages {
            z.pages += 1;
            z.json += p.len() as u64;
            z.json_gz += gzip(p).len() as u64;
        }
        // (c): row-wise MessagePack [point, ts, value] tuples, gzipped a chunk at a time.
        let mut rows = Vec::new();
        for (t, v) in &raw {
            rmp_serde::encode::write(&mut rows, &(point.as_str(), *t, v.as_str())).unwrap();
        }
        z.rows_mp += rows.len() as u64;
        z.rows_mp_gz += gzip(&rows).len() as u64;
        // (d): ours, from the parsed pages as the consumer does.
        let samples = common::parse_chunk(point, c.start, c.end, pages.iter().map(Vec::as_slice));
        let (n, _aggregates, block) = common::finish_chunk(c.point, samples);
        z.samples += n as u64;
        z.ours += block.len() as u64;
    }
    z
}

fn print_compression(title: &str, z: &Sizes) {
    let per = |b: u64| b as f64 / z.samples as f64;
    println!("\n{title}: {} samples, {} pages", z.samples, z.pages);
    println!(
        "  {:<52} {:>12} {:>10} {:>8}",
        "format", "bytes", "B/sample", "vs JSON"
    );
    for (name, b) in [
        ("(a) upstream JSON pages", z.json),
        ("(b) JSON pages + gzip -6", z.json_gz),
        ("(c0) row-wise MessagePack [point, ts, value]", z.rows_mp),
        (
            "(c) row-wise MessagePack + gzip -6 (per chunk)",
            z.rows_mp_gz,
        ),
        ("(d) tsp-columnar object (header + blocks)", z.ours),
    ] {
        println!(
            "  {name:<52} {b:>12} {:>10.3} {:>7.1}x",
            per(b),
            z.json as f64 / b as f64
        );
    }
}

// ---------------------------------------------------------------------------

fn main() {
    let t0 = Instant::now();
    let n_points: usize = std::env::var("MEASURE_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let points = common::points(n_points);
    let states = points
        .iter()
        .filter(|p| ace_sim::is_state_point(common::SITE, p))
        .count();
    println!(
        "tsp-core measure: site {}, {} points ({} state), 365 days 2024-11-01..2025-11-01, 5-minute data",
        common::SITE,
        points.len(),
        states
    );
    println!(
        "size_of::<Sample>() = {} bytes",
        std::mem::size_of::<Sample>()
    );

    // --- Compression ---
    println!("\n== Compression (bytes per sample) ==");
    let z = compression(&points, false);
    print_compression("ace-sim values", &z);
    let zn = compression(&points, true);
    print_compression("noisy: last digit of every number perturbed (LCG)", &zn);

    // --- Memory ---
    println!("\n== Memory: peak heap of the consumer's chunk path ==");
    println!("(page bodies arrive one at a time as fresh buffers; generation by the simulated upstream is not counted)");
    let (ms, me) = common::month();
    let (numeric, state) = common::numeric_and_state();
    println!(
        "  {:<28} {:>8} {:>6} {:>12} {:>10} {:>10}",
        "one chunk (30-day month)", "samples", "pages", "max page MiB", "peak MiB", "B/sample"
    );
    for (label, interval) in [
        ("5-min", common::FIVE_MIN_MS),
        ("30-s", common::THIRTY_S_MS),
    ] {
        for (kind, point) in [("numeric", &numeric), ("state", &state)] {
            let pages = untracked(|| common::pages(point, &common::sim(point, ms, me, interval)));
            let base = reset_peak();
            let (n, _) = run_chunk(0, point, ms, me, &pages);
            let peak = PEAK.load(Relaxed) - base;
            let retained = CURRENT.load(Relaxed) as isize - base as isize;
            assert!(retained <= 0, "chunk retained {retained} bytes");
            let max_page = pages.iter().map(Vec::len).max().unwrap_or(0);
            untracked(|| drop(pages));
            println!(
                "  {:<28} {:>8} {:>6} {:>12.2} {:>10.2} {:>10.1}",
                format!("{label} {kind}"),
                n,
                pages_len(n),
                mib(max_page),
                mib(peak),
                peak as f64 / n as f64
            );
        }
    }
    println!(
        "\n  {:<28} {:>8} {:>12} {:>10} {:>12}",
        "N chunks in sequence", "chunks", "samples", "peak MiB", "retained B"
    );
    let (ys, ye) = common::year();
    let ten = common::points(10);
    let chunks = point_months(ys, ye, ten.len());
    for (label, interval) in [
        ("5-min", common::FIVE_MIN_MS),
        ("30-s", common::THIRTY_S_MS),
    ] {
        for n in [1usize, 12, 120] {
            let base = reset_peak();
            let mut total = 0;
            for c in &chunks[..n] {
                let point = &ten[c.point as usize];
                let pages = untracked(|| {
                    common::pages(point, &common::sim(point, c.start, c.end, interval))
                });
                total += run_chunk(c.point, point, c.start, c.end, &pages).0;
                untracked(|| drop(pages));
            }
            let peak = PEAK.load(Relaxed) - base;
            let retained = CURRENT.load(Relaxed) as isize - base as isize;
            println!(
                "  {:<28} {:>8} {:>12} {:>10.2} {:>12}",
                format!("{label}, 10 points x 12 months"),
                n,
                total,
                mib(peak),
                retained
            );
        }
    }

    // --- Throughput ---
    println!("\n== Throughput: full chunk path, single thread, wall clock ==");
    println!("(pages pre-built; parse + sort_dedup + aggregate + encode_block; best of 5 runs)");
    let twelve = common::points(12);
    let sets: Vec<(String, PointPages)> = vec![
        (
            format!("numeric ({})", short(&numeric)),
            vec![one_page(&numeric)],
        ),
        (format!("state ({})", short(&state)), vec![one_page(&state)]),
        (
            "12 default points (1 state), one month each".into(),
            twelve.iter().map(|p| one_page(p)).collect(),
        ),
    ];
    for (name, set) in &sets {
        let mut best = Duration::MAX;
        let mut n = 0;
        for _ in 0..5 {
            let t = Instant::now();
            n = 0;
            for (i, (point, body)) in set.iter().enumerate() {
                let samples = common::parse_chunk(point, ms, me, [body.as_slice()]);
                let (k, aggregates, block) = common::finish_chunk(i as u32, samples);
                std::hint::black_box((aggregates, block));
                n += k;
            }
            best = best.min(t.elapsed());
        }
        println!(
            "  {name:<60} {:>10.2} M samples/s",
            n as f64 / best.as_secs_f64() / 1e6
        );
    }

    // Where the time goes, for the 12-point set.
    let (_, set) = &sets[2];
    let mut t = [Duration::ZERO; 6];
    let mut n = 0;
    for _ in 0..5 {
        for (i, (point, body)) in set.iter().enumerate() {
            let s = Instant::now();
            let mut samples = common::parse_chunk(point, ms, me, [body.as_slice()]);
            t[0] += s.elapsed();
            let s = Instant::now();
            sort_dedup(&mut samples);
            t[1] += s.elapsed();
            let s = Instant::now();
            let aggregates = aggregate(&samples);
            t[2] += s.elapsed();
            let s = Instant::now();
            let block = build_block(i as u32, &samples);
            t[3] += s.elapsed();
            let s = Instant::now();
            let mut bytes = Vec::new();
            write_block(&block, &mut bytes).unwrap();
            t[4] += s.elapsed();
            let s = Instant::now();
            let mut e = GzEncoder::new(Vec::new(), Compression::new(tsp_format::codec::GZIP_LEVEL));
            e.write_all(&bytes).unwrap();
            let gz = e.finish().unwrap();
            t[5] += s.elapsed();
            std::hint::black_box((aggregates, gz));
            n += samples.len();
        }
    }
    let total: Duration = t.iter().sum();
    println!("  stage split (12-point set, 5 runs, {n} samples):");
    for (name, d) in [
        "parse_page",
        "sort_dedup",
        "aggregate",
        "build_block",
        "rmp columns",
        "gzip (codec level)",
    ]
    .iter()
    .zip(t)
    {
        println!(
            "    {name:<12} {:>7.1} ns/sample {:>5.1}%",
            d.as_nanos() as f64 / n as f64,
            100.0 * d.as_secs_f64() / total.as_secs_f64()
        );
    }
    println!("\n(total {:.1} s)", t0.elapsed().as_secs_f64());
}

/// (point, its one month page) pairs.
type PointPages = Vec<(String, Vec<u8>)>;

fn pages_len(samples: usize) -> usize {
    samples.div_ceil(common::PAGE_SIZE).max(1)
}

fn short(point: &str) -> &str {
    point.rsplit('.').next().unwrap_or(point)
}

fn one_page(point: &str) -> (String, Vec<u8>) {
    let (s, e) = common::month();
    let mut pages = common::pages(point, &common::sim(point, s, e, common::FIVE_MIN_MS));
    assert_eq!(pages.len(), 1);
    (point.to_owned(), pages.remove(0))
}

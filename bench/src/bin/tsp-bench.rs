//! `tsp-bench gen PAGES_FILE JSON_DIR [POINTS] [INTERVAL_S]`: writes the
//! upstream pages of POINTS default points (12) over November 2025 at
//! INTERVAL_S seconds (300), byte for byte the ACE format, to PAGES_FILE
//! and as one JSON file per page to JSON_DIR (for DuckDB).
//!
//! `tsp-bench run PAGES_FILE [REPS]`: runs the chunk path over every chunk
//! REPS times (10) and prints one JSON line: samples, the best run's
//! seconds, M samples/s and the SHA-256 of the blocks.

#[path = "../../../format/benches/common/mod.rs"]
mod common;

use std::time::Instant;

use tsp_bench::{decode_chunks, encode_chunks, run_all, Chunk};

/// A failure for `main` to print.
type Fail = Box<dyn std::error::Error>;

fn gen(args: &[String]) -> Result<(), Fail> {
    let [file, dir, rest @ ..] = args else {
        return Err("usage: gen PAGES_FILE JSON_DIR [POINTS] [INTERVAL_S]".into());
    };
    let n: usize = rest.first().map_or(Ok(12), |s| s.parse())?;
    let interval_ms: i64 = rest.get(1).map_or(Ok(300), |s| s.parse::<i64>())? * 1000;
    let (start, end) = common::month();
    std::fs::create_dir_all(dir)?;
    let mut chunks = Vec::new();
    for (i, point) in common::points(n).into_iter().enumerate() {
        let pages = common::pages(&point, &common::sim(&point, start, end, interval_ms));
        for (k, p) in pages.iter().enumerate() {
            std::fs::write(format!("{dir}/page-{i:03}-{k:03}.json"), p)?;
        }
        chunks.push(Chunk {
            point_idx: i as u32,
            point,
            start,
            end,
            pages,
        });
    }
    std::fs::write(file, encode_chunks(&chunks))?;
    let pages: usize = chunks.iter().map(|c| c.pages.len()).sum();
    println!("{} chunks, {pages} pages -> {file}, {dir}", chunks.len());
    Ok(())
}

fn run(args: &[String]) -> Result<(), Fail> {
    let file = args.first().ok_or("usage: run PAGES_FILE [REPS]")?;
    let reps: usize = args.get(1).map_or(Ok(10), |s| s.parse())?;
    let chunks = decode_chunks(&std::fs::read(file)?)?;
    let (mut best, mut n, mut digest) = (f64::MAX, 0, String::new());
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        (n, digest) = run_all(&chunks)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"samples\":{n},\"best_s\":{best:.6},\"msps\":{:.3},\"sha256\":\"{digest}\"}}",
        n as f64 / best / 1e6
    );
    Ok(())
}

fn main() -> Result<(), Fail> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") => gen(&args[1..]),
        Some("run") => run(&args[1..]),
        _ => Err("usage: tsp-bench gen|run …".into()),
    }
}

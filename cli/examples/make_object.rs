//! Writes a result object the way the pipeline would, without the stack:
//! the simulator's samples for every chunk (a point over a UTC month, in
//! plan order), encoded with core's codec. For measuring `tsp fetch` on a
//! full-size result locally (see docs/BENCHMARKS.md).
//!
//! ```sh
//! cargo run --release -p tsp-cli --example make_object -- OUT [POINTS] [DAYS] [INTERVAL_SECS]
//! ```
//!
//! Defaults: 50 points, 365 days ending 2026-11-30, 30-s data (52,560,000
//! samples), site `bench`.

use std::io::{BufWriter, Write};

use anyhow::Context;
use tsp_format::chunk::{plan, MAX_WINDOW_DAYS};
use tsp_format::codec::{encode_block, encode_header, Header, FORMAT_NAME, FORMAT_VERSION};
use tsp_format::sample::Samples;
use tsp_format::time::{parse_rfc3339, DAY_MS};

const SITE: &str = "bench";
const END: &str = "2026-11-30T00:00:00Z";

fn arg(i: usize, default: i64) -> anyhow::Result<i64> {
    std::env::args()
        .nth(i)
        .map_or(Ok(default), |s| s.parse().context("a number"))
}

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .context("usage: make_object OUT [POINTS] [DAYS] [INTERVAL_SECS]")?;
    let (n, days, secs) = (arg(2, 50)?, arg(3, 365)?, arg(4, 30)?);
    let end = parse_rfc3339(END).context("end")?;
    let start = end - days * DAY_MS;
    let mut points = ace_sim::default_points(SITE, n as usize);
    points.sort();
    let header = Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        site: SITE.into(),
        start_ms: start,
        end_ms: end,
        points: points.clone(),
    };
    let mut w = BufWriter::new(std::fs::File::create(&out).context("create OUT")?);
    w.write_all(&encode_header(&header)?)?;
    let mut total = 0usize;
    // Window by window (months here), each window's points in order: the
    // consumer's block order.
    for c in plan(start, end, MAX_WINDOW_DAYS) {
        for (p, point) in points.iter().enumerate() {
            let samples = Samples::from_raw(ace_sim::sample_iter(
                SITE,
                point,
                c.start.ms(),
                c.end.ms(),
                secs * 1000,
            ));
            total += samples.len();
            w.write_all(&encode_block(p as u32, &samples)?)?;
        }
    }
    w.flush()?;
    eprintln!("{out}: {total} samples, {n} points, {days} days, {secs}-s data");
    Ok(())
}

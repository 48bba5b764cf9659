//! `parse_page` (the fast path, falling back to serde_json) against
//! `parse_page_serde` on any bytes: the same page, samples and error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsp_format::sample::{parse_page, parse_page_serde, Page, PointSet, Samples, TimeParser};

/// The points the seed pages are for (`seeds/`), and one more a site
/// page may carry.
const POINTS: [&str; 2] = ["a/b.points.T", "a/b.points.U"];
const START: i64 = 1_761_955_200_000; // 2025-11-01T00:00:00Z
const END: i64 = START + 86_400_000;

type Parser =
    fn(&[u8], &PointSet, i64, i64, &mut TimeParser, &mut [Samples]) -> Result<Page, String>;

fn run(f: Parser, body: &[u8]) -> (Result<Page, String>, Vec<Samples>) {
    let names: Vec<String> = POINTS.iter().map(|p| p.to_string()).collect();
    let mut outs = vec![Samples::new(), Samples::new()];
    let page = f(
        body,
        &PointSet::new(&names),
        START,
        END,
        &mut TimeParser::default(),
        &mut outs,
    );
    (page, outs)
}

fuzz_target!(|body: &[u8]| {
    assert_eq!(run(parse_page, body), run(parse_page_serde, body));
});

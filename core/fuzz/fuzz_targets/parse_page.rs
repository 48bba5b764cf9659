//! `parse_page` (the fast path, falling back to serde_json) against
//! `parse_page_serde` on any bytes: the same page, samples and error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsp_core::sample::{parse_page, parse_page_serde, Page, Samples, TimeParser};

/// The point the seed pages are for (`seeds/`).
const POINT: &str = "a/b.points.T";
const START: i64 = 1_761_955_200_000; // 2025-11-01T00:00:00Z
const END: i64 = START + 86_400_000;

type Parser = fn(&[u8], &str, i64, i64, &mut TimeParser, &mut Samples) -> Result<Page, String>;

fn run(f: Parser, body: &[u8]) -> (Result<Page, String>, Samples) {
    let mut out = Samples::new();
    let page = f(
        body,
        POINT,
        START,
        END,
        &mut TimeParser::default(),
        &mut out,
    );
    (page, out)
}

fuzz_target!(|body: &[u8]| {
    assert_eq!(run(parse_page, body), run(parse_page_serde, body));
});

//! Faithful-mode bodies: the site's time-major pages and the point endpoint.
//!
//! A site query's rows form one sequence ordered by (time, name): for each
//! timestamp bucket in `[start, end)`, one row per reporting point in name
//! order. With `R` reporting points, row `i` is bucket `i / R`, point
//! `i % R`, so a page is located arithmetically and only its rows are
//! rendered, whatever the range. Each bucket's time is formatted once, and
//! the points' generators come ready-made from the [`SiteCatalogue`].
//!
//! The cursor reproduces ACE's bug unless `fix_cursor` is set: its offset
//! counts only this page's rows in its last bucket, so a page that starts
//! and ends inside one bucket hands back the cursor it was given.

use crate::catalogue::{push_json_str, SiteCatalogue};
use crate::config::TimeFormat;
use crate::data::{align_up, micros_from_seed, seed_of, Generator};
use crate::page::Page;
use crate::query::AcePageQuery;
use crate::timefmt::{push_micros, push_naive};

/// The epoch-aligned timestamps of `[start_ms, end_ms)`: the first and how many.
fn buckets(start_ms: i64, end_ms: i64, interval_ms: i64) -> (i64, u64) {
    let first = align_up(start_ms, interval_ms);
    let n = if first >= end_ms {
        0
    } else {
        u64::try_from((end_ms - 1 - first) / interval_ms + 1).unwrap_or(0)
    };
    (first, n)
}

/// Appends one `{"name","value","time"}` row. `bucket_time` is the bucket's
/// naive time; `seed` only matters for [`TimeFormat::Micros`].
#[allow(clippy::too_many_arguments)]
fn push_row(
    out: &mut String,
    name_json: &str,
    generator: &Generator,
    seed: u64,
    t: i64,
    bucket_time: &str,
    fmt: TimeFormat,
) {
    out.push_str("{\"name\":");
    out.push_str(name_json);
    out.push_str(",\"value\":\"");
    generator.push_value(t, out);
    out.push_str("\",\"time\":\"");
    out.push_str(bucket_time);
    match fmt {
        TimeFormat::Naive => {}
        TimeFormat::Z => out.push('Z'),
        TimeFormat::Micros => push_micros(out, micros_from_seed(seed, t)),
    }
    out.push_str("\"}");
}

/// Renders the page of `q` over the site's reporting points.
pub(crate) fn site_page(
    cat: &SiteCatalogue,
    q: &AcePageQuery,
    interval_ms: i64,
    fmt: TimeFormat,
    fix_cursor: bool,
) -> Page {
    let iv = interval_ms.max(1);
    let (first, nb) = buckets(q.start_ms, q.end_ms, iv);
    let r = cat.rows.len() as u128;
    let total = u128::from(nb) * r;
    let bucket_time =
        |b: u128| first.saturating_add(i64::try_from(b).unwrap_or(i64::MAX).saturating_mul(iv));

    // The cursor: `offset` rows after the first row at `timestamp`, i.e.
    // after every row of the earlier buckets.
    let start: u128 = match q.cursor {
        None => 0,
        Some((offset, ts)) => {
            let before = if ts <= first {
                0
            } else {
                // Buckets strictly earlier than `ts`.
                u128::from(buckets(first, ts, iv).1)
            };
            before.min(u128::from(nb)) * r + u128::from(offset)
        }
    };
    let start = start.min(total);
    let stop = start.saturating_add(u128::from(q.page_size)).min(total);
    let rows = u64::try_from(stop - start).unwrap_or(u64::MAX);

    let longest = cat
        .rows
        .iter()
        .map(|p| p.name_json.len())
        .max()
        .unwrap_or(0);
    let capacity = usize::try_from(rows)
        .unwrap_or(0)
        .saturating_mul(longest + 56)
        .saturating_add(160);
    let mut body = String::with_capacity(capacity);
    body.push_str("{\"point_samples\":[");

    let mut time = String::with_capacity(32);
    let mut i = start;
    while i < stop {
        // `i < total` implies r > 0.
        let b = i / r;
        let t = bucket_time(b);
        time.clear();
        push_naive(&mut time, t);
        let from = usize::try_from(i % r).unwrap_or(usize::MAX);
        let to = usize::try_from((stop - b * r).min(r)).unwrap_or(usize::MAX);
        for p in &cat.rows[from..to] {
            if i != start {
                body.push(',');
            }
            push_row(&mut body, &p.name_json, &p.generator, p.seed, t, &time, fmt);
            i += 1;
        }
    }

    body.push_str("],\"next_cursor\":");
    if stop < total {
        // ACE's cursor: the last row's time, and the rows of this page at
        // that time. The correct offset counts from the bucket's first row.
        let last = (stop - 1) / r;
        let bucket_start = last * r;
        let offset = if fix_cursor {
            stop - bucket_start
        } else {
            stop - start.max(bucket_start)
        };
        body.push('"');
        body.push_str(&crate::cursor::encode_ace(
            u64::try_from(offset).unwrap_or(u64::MAX),
            bucket_time(last),
        ));
        body.push_str("\",\"has_more\":true}");
    } else {
        body.push_str("null,\"has_more\":false}");
    }
    Page {
        body,
        samples: rows,
    }
}

/// The unpaginated body of one point over `[start_ms, end_ms)`; a silent
/// point (`reporting == false`) has no samples.
pub(crate) fn point_body(
    site: &str,
    point: &str,
    reporting: bool,
    start_ms: i64,
    end_ms: i64,
    interval_ms: i64,
    fmt: TimeFormat,
) -> Page {
    let iv = interval_ms.max(1);
    let (first, n) = if reporting {
        buckets(start_ms, end_ms, iv)
    } else {
        (0, 0)
    };
    let mut name_json = String::with_capacity(point.len() + 2);
    push_json_str(&mut name_json, point);
    let generator = Generator::new(site, point);
    let seed = seed_of(site, point);
    let capacity = usize::try_from(n)
        .unwrap_or(0)
        .saturating_mul(name_json.len() + 56)
        .saturating_add(32);
    let mut body = String::with_capacity(capacity);
    body.push_str("{\"point_samples\":[");
    let mut time = String::with_capacity(32);
    for k in 0..n {
        let t = first.saturating_add(i64::try_from(k).unwrap_or(i64::MAX).saturating_mul(iv));
        time.clear();
        push_naive(&mut time, t);
        if k > 0 {
            body.push(',');
        }
        push_row(&mut body, &name_json, &generator, seed, t, &time, fmt);
    }
    body.push_str("]}");
    Page { body, samples: n }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;
    use serde_json::Value;

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_760_572_800_000; // 2025-10-16T00:00:00

    fn cfg0() -> SimConfig {
        SimConfig {
            silent_share: 0.0,
            ..SimConfig::default()
        }
    }

    fn q(start_ms: i64, end_ms: i64, page_size: u64, cursor: Option<(u64, i64)>) -> AcePageQuery {
        AcePageQuery {
            start_ms,
            end_ms,
            page_size,
            cursor,
        }
    }

    fn decode(c: &str) -> (u64, i64) {
        crate::cursor::decode_ace(c, crate::query::time_ms).unwrap()
    }

    /// Walks with the server's cursor; stops after `max` pages.
    fn walk(
        cat: &SiteCatalogue,
        page_size: u64,
        fix: bool,
        max: usize,
    ) -> (Vec<Value>, Vec<String>) {
        let mut rows = Vec::new();
        let mut cursors = Vec::new();
        let mut cursor = None;
        for _ in 0..max {
            let page = site_page(
                cat,
                &q(T0, T0 + 3_600_000, page_size, cursor),
                300_000,
                TimeFormat::Naive,
                fix,
            );
            let v: Value = serde_json::from_str(&page.body).unwrap();
            rows.extend(v["point_samples"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => {
                    cursors.push(c.to_owned());
                    cursor = Some(decode(c));
                }
                None => break,
            }
        }
        (rows, cursors)
    }

    #[test]
    fn fixed_cursor_walks_every_row_once_for_every_page_size() {
        let cat = SiteCatalogue::new("w-10pts", &cfg0());
        let (all, _) = walk(&cat, 500_000, false, 2);
        assert_eq!(all.len(), 120);
        for ps in [3, 10, 50, 100] {
            let (rows, _) = walk(&cat, ps, true, 1000);
            assert_eq!(rows, all, "page_size {ps}");
        }
        // The buggy cursor is right whenever pages cover whole buckets.
        for ps in [10, 50, 100] {
            assert_eq!(walk(&cat, ps, false, 1000).0, all, "page_size {ps}");
        }
    }

    #[test]
    fn buggy_cursor_repeats_inside_a_bucket() {
        let cat = SiteCatalogue::new("w-10pts", &cfg0());
        let (_, cursors) = walk(&cat, 3, false, 4);
        assert_eq!(decode(&cursors[0]), (3, T0));
        assert_eq!(cursors[1], cursors[0]);
        assert_eq!(cursors[3], cursors[0]);
        let (_, fixed) = walk(&cat, 3, true, 4);
        let offs: Vec<u64> = fixed.iter().map(|c| decode(c).0).collect();
        assert_eq!(offs, [3, 6, 9, 2]);
        assert_eq!(decode(&fixed[3]).1, T0 + 300_000);
    }

    #[test]
    fn order_is_time_then_name() {
        let cat = SiteCatalogue::new("o-30pts", &SimConfig::default());
        let page = site_page(
            &cat,
            &q(T0 + 1, T0 + DAY, 500, None),
            300_000,
            TimeFormat::Naive,
            false,
        );
        let v: Value = serde_json::from_str(&page.body).unwrap();
        let keys: Vec<(String, String)> = v["point_samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["time"].as_str().unwrap().to_owned(),
                    s["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(keys.len(), 500);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(keys[0].0, "2025-10-16T00:05:00");
        assert_eq!(keys.iter().filter(|k| k.0 == keys[0].0).count(), 23);
    }

    #[test]
    fn cursor_at_or_past_the_end_and_empty_sites() {
        let cat = SiteCatalogue::new("w-10pts", &cfg0());
        let page = site_page(
            &cat,
            &q(T0, T0 + 600_000, 3, Some((0, T0 + DAY))),
            300_000,
            TimeFormat::Naive,
            false,
        );
        assert_eq!(
            page.body,
            r#"{"point_samples":[],"next_cursor":null,"has_more":false}"#
        );
        let page = site_page(
            &cat,
            &q(T0, T0 + 600_000, 3, Some((19, T0))),
            300_000,
            TimeFormat::Naive,
            false,
        );
        assert_eq!(page.samples, 1);
        let silent = SiteCatalogue::new(
            "w-10pts",
            &SimConfig {
                silent_share: 1.0,
                ..SimConfig::default()
            },
        );
        let page = site_page(
            &silent,
            &q(T0, T0 + DAY, 3, None),
            300_000,
            TimeFormat::Naive,
            false,
        );
        assert_eq!(page.samples, 0);
    }

    /// Timing is only meaningful in release builds:
    /// `cargo test -p ace-sim --release --lib -- --ignored site_year_speed --nocapture`.
    #[test]
    #[ignore]
    fn site_year_speed() {
        let cat = SiteCatalogue::new("perf-200pts", &cfg0());
        let (start, end) = (T0, T0 + 365 * DAY);
        let started = std::time::Instant::now();
        let (mut rows, mut bytes, mut pages) = (0u64, 0usize, 0);
        let mut cursor = None;
        loop {
            let page = site_page(
                &cat,
                &q(start, end, 500_000, cursor),
                300_000,
                TimeFormat::Naive,
                false,
            );
            rows += page.samples;
            bytes += page.body.len();
            pages += 1;
            // Cheap cursor extraction: the tail of the body.
            let Some(at) = page.body.rfind("\"next_cursor\":\"") else {
                break;
            };
            let rest = &page.body[at + 15..];
            cursor = Some(decode(&rest[..rest.find('"').unwrap()]));
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "200 points x 1 year: {rows} rows, {pages} pages, {:.0} MB in {secs:.2} s = {:.2} M rows/s",
            bytes as f64 / 1e6,
            rows as f64 / secs / 1e6
        );
        assert_eq!(rows, 200 * 365 * 288);
    }
}

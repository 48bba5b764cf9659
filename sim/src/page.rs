//! Building one kind-mode page's JSON body.
//!
//! A query's samples form one flattened sequence: point 0's timestamps, then
//! point 1's, and so on. The cursor is an index into it, so a page is located
//! arithmetically (index / samples-per-point = point, remainder = time step)
//! and only that slice is generated, whatever the range's length. Values come
//! from [`crate::data::sample_iter`], the same code the tests compare against.

use crate::catalogue::push_json_str;
use crate::data::{align_up, sample_iter};
use crate::query::PageQuery;
use crate::timefmt::push_time;

/// A rendered page.
pub(crate) struct Page {
    pub body: String,
    pub samples: u64,
}

/// Renders the page of `q` for `points` at `site`.
pub(crate) fn build(
    site: &str,
    points: &[String],
    q: &PageQuery,
    interval_ms: i64,
) -> Result<Page, String> {
    let interval_ms = interval_ms.max(1);
    let first = align_up(q.start_ms, interval_ms);
    let per_point: u64 = if first >= q.end_ms {
        0
    } else {
        u64::try_from((q.end_ms - 1 - first) / interval_ms + 1).unwrap_or(0)
    };
    let total = per_point
        .checked_mul(points.len() as u64)
        .ok_or("time range too large")?;
    if q.offset > total {
        return Err("cursor: beyond the end of this query".to_owned());
    }
    let stop = q.offset.saturating_add(q.page_size).min(total);

    // Names dominate the size (~100 bytes), plus ~60 for value, time, keys.
    let longest = points.iter().map(String::len).max().unwrap_or(0);
    let capacity = usize::try_from(stop - q.offset)
        .unwrap_or(0)
        .saturating_mul(longest + 64)
        .saturating_add(128);
    let mut body = String::with_capacity(capacity);
    body.push_str("{\"point_samples\":[");

    let mut i = q.offset;
    let mut need_comma = false;
    while i < stop {
        // `i < total` implies per_point > 0, so the division is safe.
        let p = usize::try_from(i / per_point).unwrap_or(usize::MAX);
        let Some(name) = points.get(p) else { break };
        let k = i % per_point;
        let k_end = per_point.min(k + (stop - i));
        let step = |k: u64| first.saturating_add((k as i64).saturating_mul(interval_ms));

        let mut name_json = String::with_capacity(name.len() + 2);
        push_json_str(&mut name_json, name);
        for (t, v) in sample_iter(site, name, step(k), step(k_end), interval_ms) {
            if need_comma {
                body.push(',');
            }
            need_comma = true;
            body.push_str("{\"name\":");
            body.push_str(&name_json);
            body.push_str(",\"value\":");
            push_json_str(&mut body, &v);
            body.push_str(",\"time\":\"");
            push_time(&mut body, t);
            body.push_str("\"}");
        }
        i += k_end - k;
    }

    body.push_str("],\"next_cursor\":");
    if stop < total {
        body.push('"');
        body.push_str(&crate::cursor::encode(stop));
        body.push('"');
        body.push_str(",\"has_more\":true}");
    } else {
        body.push_str("null,\"has_more\":false}");
    }
    Ok(Page {
        body,
        samples: stop - q.offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(offset: u64, page_size: u64) -> PageQuery {
        PageQuery {
            start_ms: 1_760_572_800_000,
            end_ms: 1_760_572_800_000 + 365 * 86_400_000,
            page_size,
            offset,
            points: None,
        }
    }

    #[test]
    fn year_at_10000_is_eleven_pages() {
        let pts = vec!["x/y z".to_owned()];
        let mut q = query(0, 10_000);
        let mut pages = 0;
        let mut n = 0;
        loop {
            let page = build("s", &pts, &q, 300_000).unwrap();
            pages += 1;
            n += page.samples;
            let v: serde_json::Value = serde_json::from_str(&page.body).unwrap();
            if !v["has_more"].as_bool().unwrap() {
                assert!(v["next_cursor"].is_null());
                break;
            }
            q.offset = crate::cursor::decode(v["next_cursor"].as_str().unwrap()).unwrap();
        }
        assert_eq!((pages, n), (11, 105_120));
    }

    #[test]
    fn escapes_odd_names() {
        let pts = vec!["quote\"back\\slash\u{1}".to_owned()];
        let page = build("s", &pts, &query(0, 3), 300_000).unwrap();
        let v: serde_json::Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(v["point_samples"][0]["name"], pts[0].as_str());
    }

    #[test]
    fn cursor_past_end_is_rejected() {
        let pts = vec!["p".to_owned()];
        assert!(build("s", &pts, &query(105_121, 3), 300_000).is_err());
        let page = build("s", &pts, &query(105_120, 3), 300_000).unwrap();
        assert_eq!(page.samples, 0);
    }

    /// Timing is only meaningful in release builds:
    /// `cargo test -p ace-sim --release -- --ignored page_build_speed --nocapture`.
    #[test]
    #[ignore]
    fn page_build_speed() {
        let pts = crate::data::default_points("perf", 10);
        let started = std::time::Instant::now();
        let rounds = 100u32;
        for r in 0..rounds {
            let page = build("perf", &pts, &query(u64::from(r) * 10_000, 10_000), 300_000).unwrap();
            assert_eq!(page.samples, 10_000);
        }
        let per_page = started.elapsed() / rounds;
        println!("10,000-sample page: {per_page:?}");
        assert!(per_page < std::time::Duration::from_millis(10));
    }
}

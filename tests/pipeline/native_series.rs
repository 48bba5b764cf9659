//! `/v1/series` natively: M4 over the owner's stored buckets.

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::aggregate::Resolution;
use tsp_core::api::Series;
use tsp_core::domain::{format_rfc3339, parse_rfc3339, PointName, Site, DAY_MS};
use tsp_core::service::series::{series, SeriesQuery};

use crate::support::*;

fn query(site: &str, points: &[String], days: i64, width: u32) -> SeriesQuery {
    let from = parse_rfc3339("2025-09-28T00:00:00Z").unwrap();
    SeriesQuery {
        site: Site::parse(site).unwrap(),
        points: points
            .iter()
            .map(|p| PointName::parse(p).unwrap())
            .collect(),
        from,
        to: from + days * DAY_MS,
        width,
        resolution: None,
    }
    .check()
    .unwrap()
}

/// Runs a job of `points` over the query's range, as alice.
async fn stored(h: &Harness, site: &str, points: &[String], days: i64) {
    let from = parse_rfc3339("2025-09-28T00:00:00Z").unwrap();
    let body = json!({"site": site, "points": points, "start": format_rfc3339(from),
        "end": format_rfc3339(from + days * DAY_MS)});
    h.submit_new(&body).await;
    h.drain().await;
}

#[tokio::test]
async fn m4_keeps_every_points_global_min_and_max_within_2_width_values() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let mut points = ace_sim::default_points("series", 3);
    points.sort();
    stored(&h, "series", &points, 5).await;
    let q = query("series", &points, 5, 20);
    let (s, complete) = series(&h.db, "alice", &q).await.unwrap();
    assert!(complete);
    assert_eq!(s.resolution, Resolution::Hour, "5 days < 10 pixel buckets");
    assert_eq!(s.series.len(), 3);
    let rows = h.agg_rows("series");
    for ps in &s.series {
        assert!(!ps.v.is_empty(), "{}", ps.point);
        assert!(ps.v.len() <= 2 * 20 && ps.t.len() == ps.v.len());
        assert!(ps.t.windows(2).all(|w| w[0] <= w[1]), "time order");
        let hourly = rows
            .iter()
            .filter(|r| r["point"] == ps.point.as_str() && r["resolution"] == "1h");
        let (lo, hi) = hourly.fold((f64::MAX, f64::MIN), |(lo, hi), r| {
            let (a, b) = (r["min"].as_f64(), r["max"].as_f64());
            (a.map_or(lo, |a| lo.min(a)), b.map_or(hi, |b| hi.max(b)))
        });
        let got_lo = ps.v.iter().copied().fold(f32::MAX, f32::min);
        let got_hi = ps.v.iter().copied().fold(f32::MIN, f32::max);
        assert_eq!((got_lo, got_hi), (lo as f32, hi as f32), "{}", ps.point);
    }
    // Another owner has no buckets of its own: empty series.
    let (theirs, _) = series(&h.db, "bob", &q).await.unwrap();
    assert!(theirs.series.iter().all(|p| p.v.is_empty()));
}

#[tokio::test]
async fn json_and_messagepack_hold_the_same_values() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let points = ace_sim::default_points("series-mp", 2);
    stored(&h, "series-mp", &points, 3).await;
    let (s, _) = series(&h.db, "alice", &query("series-mp", &points, 3, 100))
        .await
        .unwrap();
    let json: Series = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
    let mp: Series = rmp_serde::from_slice(&rmp_serde::to_vec_named(&s).unwrap()).unwrap();
    assert_eq!(json, s);
    assert_eq!(mp, s);
    assert!(s.series.iter().all(|p| !p.v.is_empty()));
}

#[test]
fn bad_queries_name_their_field() {
    let base = || query("s", &["p".to_owned()], 5, 10);
    let field = |q: SeriesQuery| q.check().err().unwrap().errors[0].field.clone();
    let many: Vec<PointName> = (0..21)
        .map(|i| PointName::parse(&format!("p{i}")).unwrap())
        .collect();
    assert_eq!(
        field(SeriesQuery {
            points: many,
            ..base()
        }),
        "points"
    );
    assert_eq!(
        field(SeriesQuery {
            points: vec![],
            ..base()
        }),
        "points"
    );
    assert_eq!(field(SeriesQuery { width: 0, ..base() }), "width");
    assert_eq!(
        field(SeriesQuery {
            width: 10_001,
            ..base()
        }),
        "width"
    );
    let b = base();
    assert_eq!(
        field(SeriesQuery {
            to: b.from,
            ..base()
        }),
        "to"
    );
}

/// A measurement, not a test (nothing is asserted about time): the M4
/// statement over a year of 10 points' hourly buckets in SQLite.
/// `cargo test --release --test pipeline m4_probe -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement: run it by name"]
async fn m4_probe_a_year_of_10_points_at_width_1000() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let mut points = ace_sim::default_points("probe", 10);
    points.sort();
    let from = parse_rfc3339("2024-11-01T00:00:00Z").unwrap();
    let body = json!({"site": "probe", "points": points, "start": format_rfc3339(from),
        "end": format_rfc3339(from + 365 * DAY_MS)});
    h.submit_new(&body).await;
    h.drain().await;
    let q = SeriesQuery {
        site: Site::parse("probe").unwrap(),
        points: points
            .iter()
            .map(|p| PointName::parse(p).unwrap())
            .collect(),
        from,
        to: from + 365 * DAY_MS,
        width: 1000,
        resolution: None,
    }
    .check()
    .unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let (s, _) = series(&h.db, "alice", &q).await.unwrap();
        eprintln!(
            "m4 {:?} values {}",
            t.elapsed(),
            s.series.iter().map(|p| p.v.len()).sum::<usize>()
        );
    }
}

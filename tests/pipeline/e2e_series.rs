//! `/v1/series` in the built Worker: M4 over local D1, JSON and
//! MessagePack, the cache, the grant and bad input.

use serde_json::{json, Value};
use tsp_core::api::{Series, SeriesResolution};

use crate::e2e::stack;

/// A series' lowest and highest values are those of the buckets `agg`
/// (an `/v1/aggregates` path) returns.
async fn assert_extremes_match(s: &crate::e2e::Stack, ps: &tsp_core::api::PointSeries, agg: &str) {
    let (_, page) = s.get(&s.token, agg).await;
    let rows = page["rows"].as_array().unwrap();
    let lo = rows
        .iter()
        .filter_map(|r| r["min"].as_f64())
        .fold(f64::MAX, f64::min);
    let hi = rows
        .iter()
        .filter_map(|r| r["max"].as_f64())
        .fold(f64::MIN, f64::max);
    let got_lo = ps.v.iter().copied().fold(f32::MAX, f32::min);
    let got_hi = ps.v.iter().copied().fold(f32::MIN, f32::max);
    assert_eq!((got_lo, got_hi), (lo as f32, hi as f32), "{}", ps.point);
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_series_draws_m4_from_the_owners_buckets_as_json_and_msgpack() {
    let s = stack();
    let site = "e2e-series";
    let points = ace_sim::default_points(site, 2);
    let body = json!({"site": site, "points": points,
        "start": "2025-03-01T00:00:00Z", "end": "2025-03-11T00:00:00Z"});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    s.wait(&id, 120, |j| j["status"] == "completed").await;
    let enc = tsp_core::upstream::escape;
    let path = format!(
        "/v1/series?site={site}&point={}&point={}&from=2025-03-01T00:00:00Z&to=2025-03-11T00:00:00Z&width=40",
        enc(&points[0]),
        enc(&points[1])
    );
    let get = |accept: &'static str| {
        s.http
            .get(format!("{}{path}", s.url))
            .bearer_auth(&s.token)
            .header("accept", accept)
            .send()
    };
    let as_json = get("application/json").await.unwrap();
    assert_eq!(as_json.status(), 200);
    let json: Series = as_json.json().await.unwrap();
    let packed = get("application/msgpack").await.unwrap();
    assert_eq!(packed.headers()["content-type"], "application/msgpack");
    let mp: Series = rmp_serde::from_slice(&packed.bytes().await.unwrap()).unwrap();
    assert_eq!(mp, json, "both forms hold the same values");
    assert_eq!(json.series.len(), 2);
    for ps in &json.series {
        assert!(
            !ps.v.is_empty() && ps.v.len() <= 80,
            "{}: {}",
            ps.point,
            ps.v.len()
        );
        // The extremes are the daily buckets' extremes.
        let agg = format!(
            "/v1/aggregates?site={site}&point={}&resolution=1d&from=2025-03-01T00:00:00Z&to=2025-03-11T00:00:00Z",
            enc(&ps.point)
        );
        assert_extremes_match(&s, ps, &agg).await;
    }
    // Complete buckets: the second answer comes from the cache.
    let again = get("application/json").await.unwrap();
    assert_eq!(again.headers()["x-cache"], "HIT");
    // Bad input names the field; another site's token gets 403.
    let (status, problem) = s.get(&s.token, &path.replace("width=40", "width=0")).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "width");
    let (status, _): (u16, Value) = s.get("granted-tenant-token", &path).await;
    assert_eq!(status, 403);
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_series_a_short_range_comes_from_the_samples_by_block_range_reads() {
    let s = stack();
    let site = "e2e-series-raw";
    let points = ace_sim::default_points(site, 3);
    let body = json!({"site": site, "points": points,
        "start": "2025-03-01T00:00:00Z", "end": "2025-03-05T00:00:00Z"});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    s.wait(&id, 120, |j| j["status"] == "completed").await;
    let enc = tsp_core::upstream::escape;
    let (from, to) = ("2025-03-02T06:00:00Z", "2025-03-04T06:00:00Z");
    let names: Vec<String> = points.iter().map(|p| enc(p)).collect();
    let path = format!(
        "/v1/series?site={site}&points={}&from={from}&to={to}&width=1000",
        names.join(",")
    );
    let (status, json) = s.get(&s.token, &path).await;
    assert_eq!(status, 200, "{json}");
    let series: Series = serde_json::from_value(json).unwrap();
    assert_eq!(
        series.resolution,
        SeriesResolution::Raw,
        "48 hours < 500 pixel buckets"
    );
    for ps in &series.series {
        assert!(ps.v.len() <= 2000, "{}", ps.point);
        if ps.v.is_empty() {
            // A state point (the simulator makes some): its changes instead.
            let st = ps.states.as_ref().expect("values or states");
            assert!(!st.v.is_empty() && st.v.windows(2).all(|w| w[0] != w[1]));
            continue;
        }
        // The extremes are the hourly buckets' extremes, at a sample's time
        // inside their hour.
        let agg = format!(
            "/v1/aggregates?site={site}&point={}&resolution=1h&from={from}&to={to}",
            enc(&ps.point)
        );
        assert_extremes_match(&s, ps, &agg).await;
        assert!(ps.t.windows(2).all(|w| w[0] <= w[1]));
    }
    let (status, problem) = s
        .get(
            &s.token,
            &path
                .replace("2025-03-04T06", "2025-04-04T06")
                .replace("width=1000", "width=1000&resolution=raw"),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "resolution");
}

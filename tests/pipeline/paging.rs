//! The site walk in pages smaller than a timestamp bucket, on a stack of
//! its own with `UPSTREAM_PAGE_SIZE=10` (`scripts/test.sh`): every bucket
//! of a 50-point site spans several pages, so ACE's cursor bug hits
//! almost every page, and only the repaired cursor gets through the site.

use serde_json::json;
use tsp_core::codec::decode_object;
use tsp_core::domain::{format_rfc3339, parse_rfc3339, DAY_MS};

use crate::e2e::stack;
use crate::support::{same_value, FIVE_MIN};

#[tokio::test]
#[ignore = "needs the paging stack: scripts/test.sh"]
async fn paging_a_50_point_site_in_pages_of_ten_completes_exact() {
    let s = stack();
    let site = "paging-50pts";
    let all = ace_sim::reporting_points(site, &ace_sim::SimConfig::default());
    let mut points: Vec<String> = all.iter().step_by(4).take(10).cloned().collect();
    points.sort();
    let start = parse_rfc3339("2025-03-10T00:00:00Z").unwrap();
    let end = start + 2 * DAY_MS;
    let body = json!({"site": site, "points": points, "start": format_rfc3339(start),
                      "end": format_rfc3339(end), "plan": "site"});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    let job = s.wait(&id, 300, |j| j["status"] == "completed").await;
    assert_eq!(job["upstream"]["plan"], "site");
    // Every row of the site once, ten to a page.
    let rows = (all.len() * 2 * 288) as u64;
    let requests = job["upstream"]["requests"].as_u64().unwrap();
    assert!(requests >= rows / 10, "{requests} requests for {rows} rows");
    assert!(
        requests <= rows / 10 + 10,
        "{requests} requests for {rows} rows"
    );

    let r = s.raw_get(&s.token, &format!("/v1/jobs/{id}/result")).await;
    let bytes = r.bytes().await.unwrap();
    let (_, series) = decode_object(&bytes).unwrap();
    for (p, got) in points.iter().zip(&series) {
        let want = ace_sim::samples(site, p, start.into(), end.into(), FIVE_MIN);
        assert_eq!(got.len(), want.len(), "{p}");
        for ((t, v), (wt, wv)) in got.iter().zip(&want) {
            assert_eq!(t, wt);
            assert!(same_value(v, wv), "{p} at {t}: {v:?} vs {wv}");
        }
    }
}

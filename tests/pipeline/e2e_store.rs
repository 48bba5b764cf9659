//! The shared sample store in the built Worker, against the faithful
//! simulator: what a later job reads from it instead of the upstream.

use serde_json::{json, Value};

use crate::e2e::{stack, Stack};

const OTHER_TOKEN: &str = "other-tenant-token";
const ADMIN_TOKEN: &str = "ops-token";

/// Submits as `token` and waits for completion; returns the job.
async fn run(s: &Stack, token: &str, body: &Value) -> Value {
    let (status, created) = s.post_job(token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    let t0 = std::time::Instant::now();
    loop {
        let (_, job) = s.get(token, &format!("/v1/jobs/{id}")).await;
        if job["status"] == "completed" {
            return job;
        }
        assert_ne!(job["status"], "failed_permanent", "{job}");
        assert!(t0.elapsed().as_secs() < 300, "job {id}: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn body(site: &str, points: usize, from: &str, to: &str) -> Value {
    json!({"site": site, "points": ace_sim::default_points(site, points), "start": from, "end": to})
}

/// The simulator's timeseries traffic for one site: (requests, bytes).
async fn upstream_traffic(s: &Stack, site: &str) -> (u64, u64) {
    let stats: Value = s
        .http
        .get(format!("{}/__stats", s.sim))
        .send()
        .await
        .expect("GET /__stats")
        .json()
        .await
        .expect("stats JSON");
    let site = &stats["by_site"][site];
    (
        site["requests"].as_u64().unwrap_or(0),
        site["bytes"].as_u64().unwrap_or(0),
    )
}

async fn result_bytes(s: &Stack, token: &str, job: &Value) -> Vec<u8> {
    let path = format!("/v1/jobs/{}/result", job["job_id"].as_str().unwrap());
    let r = s.raw_get(token, &path).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("body").to_vec()
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_second_owners_identical_job_fetches_nothing_and_its_object_is_byte_identical() {
    let s = stack();
    let site = "e2e-store-shared";
    let b = body(site, 3, "2025-08-20T00:00:00Z", "2025-10-10T00:00:00Z");
    let first = run(&s, &s.token, &b).await;
    assert!(
        first["upstream"]["samples"].as_i64().unwrap() > 0,
        "{first}"
    );
    let before = upstream_traffic(&s, site).await;
    let second = run(&s, OTHER_TOKEN, &b).await;
    assert_eq!(
        upstream_traffic(&s, site).await,
        before,
        "no upstream request"
    );
    assert_eq!(second["upstream"]["bytes"], 0, "{second}");
    assert_eq!(second["upstream"]["windows"], 0);
    assert_eq!(
        second["store"]["windows"],
        second["progress"]["chunks_total"]
    );
    assert_eq!(second["store"]["samples"], first["upstream"]["samples"]);
    assert_eq!(
        result_bytes(&s, OTHER_TOKEN, &second).await,
        result_bytes(&s, &s.token, &first).await
    );
    let (_, stats) = s.get(OTHER_TOKEN, "/v1/stats").await;
    assert!(
        stats["sample_store"]["hits"].as_u64().unwrap() >= 3,
        "{stats}"
    );
    assert!(
        stats["sample_store"]["upstream_bytes_saved"]
            .as_u64()
            .unwrap()
            > 0
    );
    let metrics = s.raw_get(OTHER_TOKEN, "/v1/metrics").await;
    assert!(metrics
        .text()
        .await
        .unwrap()
        .contains("\ntsp_store_hit_ratio "));
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_job_shifted_by_one_day_fetches_only_the_new_day() {
    let s = stack();
    let site = "e2e-store-rolling";
    let first = run(
        &s,
        &s.token,
        &body(site, 2, "2025-08-03T00:00:00Z", "2025-08-13T00:00:00Z"),
    )
    .await;
    let shifted = run(
        &s,
        &s.token,
        &body(site, 2, "2025-08-04T00:00:00Z", "2025-08-14T00:00:00Z"),
    )
    .await;
    let all = first["upstream"]["samples"].as_i64().unwrap();
    assert!(all > 0, "{first}");
    assert_eq!(
        shifted["upstream"]["samples"].as_i64().unwrap() * 10,
        all,
        "{shifted}"
    );
    assert_eq!(shifted["upstream"]["windows"], 1);
    assert_eq!(shifted["store"]["samples"].as_i64().unwrap() * 10, all * 9);
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_job_ending_today_fetches_the_unsettled_days_every_time() {
    let s = stack();
    let site = "e2e-store-today";
    let b = json!({"site": site, "points": ace_sim::default_points(site, 1), "days": 7});
    let first = run(&s, &s.token, &b).await;
    let before = upstream_traffic(&s, site).await;
    let second = run(&s, OTHER_TOKEN, &b).await;
    let after = upstream_traffic(&s, site).await;
    assert!(
        after.0 > before.0,
        "the unsettled days were asked for again"
    );
    let fetched = second["upstream"]["samples"].as_i64().unwrap();
    let stored = second["store"]["samples"].as_i64().unwrap();
    // The range ends at today's midnight; everything after 72 h ago (floored
    // to the hour) is unsettled: more than 2 of the 7 days come from the
    // upstream again.
    assert!(
        fetched * 7 > first["upstream"]["samples"].as_i64().unwrap() * 2,
        "{second}"
    );
    assert!(stored > 0, "the settled days came from the store: {second}");
    assert_eq!(
        fetched + stored,
        first["upstream"]["samples"].as_i64().unwrap()
    );
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_an_operator_refresh_makes_the_next_job_fetch_again_and_store_again() {
    let s = stack();
    let site = "e2e-store-refresh";
    let b = body(site, 2, "2025-07-01T00:00:00Z", "2025-07-11T00:00:00Z");
    run(&s, &s.token, &b).await;
    let path = format!(
        "{}/v1/admin/sites/{site}/refresh?from=2025-07-01T00:00:00Z&to=2025-08-01T00:00:00Z",
        s.url
    );
    let post = |token: &'static str| s.http.post(path.clone()).bearer_auth(token).send();
    // An API token is not an operator's.
    assert_eq!(post("local-dev-token").await.unwrap().status(), 401);
    let r = post(ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), 200);
    let removed: Value = r.json().await.unwrap();
    assert!(
        removed["entries_removed"].as_u64().unwrap() >= 1,
        "{removed}"
    );
    // The entries and their objects are gone: the next job fetches again.
    let again = run(&s, OTHER_TOKEN, &b).await;
    assert_eq!(again["store"]["windows"], 0, "{again}");
    assert!(again["upstream"]["samples"].as_i64().unwrap() > 0);
    // And stored again: a third job reads it.
    let third = run(&s, "third-tenant-token", &b).await;
    assert_eq!(third["upstream"]["windows"], 0, "{third}");
    // Bad input is the usual 422 naming the field.
    let bad = s
        .http
        .post(path.replace("to=2025-08-01", "to=2025-06-01"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_site_walk_stores_every_point_it_saw_for_other_jobs() {
    let s = stack();
    let site = "e2e-store-wide-12pts";
    let reporting = ace_sim::reporting_points(site, &ace_sim::SimConfig::default());
    let (from, to) = ("2025-05-03T00:00:00Z", "2025-05-09T00:00:00Z");
    let mut walk = json!({"site": site, "points": reporting[..3], "start": from, "end": to});
    walk["plan"] = json!("site");
    let walked = run(&s, &s.token, &walk).await;
    assert_eq!(walked["upstream"]["plan"], "site", "{walked}");
    let before = upstream_traffic(&s, site).await;
    let others = json!({"site": site, "points": reporting[5..8], "start": from, "end": to});
    let read = run(&s, OTHER_TOKEN, &others).await;
    assert_eq!(
        upstream_traffic(&s, site).await.1,
        before.1,
        "no sample bytes asked for"
    );
    assert_eq!(read["upstream"]["windows"], 0, "{read}");
    assert_eq!(read["store"]["samples"], read["progress"]["samples"]);
    assert!(read["progress"]["samples"].as_i64().unwrap() > 0);
}

//! End to end: operator controls in the real runtime, under the stack's
//! `ADMIN_TOKENS` (`ops-token`): a paused site makes no upstream request
//! until it is resumed, and a bulk retry revives exactly the jobs it
//! listed.

use serde_json::{json, Value};

use crate::e2e::{stack, Stack};
use crate::support::site_requests;

const OPS: &str = "ops-token";

async fn admin(
    s: &Stack,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(OPS);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_operate_a_paused_site_makes_no_upstream_request_until_resumed() {
    let s = stack();
    let site = "e2e-paused";
    let pause = format!("/v1/admin/sites/{site}/pause?reason=maintenance");
    let (status, _) = s.get(&s.token, "/v1/admin/pauses").await;
    assert_eq!(status, 401, "an API token is no operator's");
    let (status, p) = admin(&s, reqwest::Method::POST, &pause, None).await;
    assert_eq!((status, p["site"].as_str()), (200, Some(site)), "{p}");
    let body = json!({"site": site, "points": ace_sim::default_points(site, 2),
        "start": "2025-04-01T00:00:00Z", "end": "2025-04-03T00:00:00Z"});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    let waiting = s
        .wait(&id, 60, |j| {
            j["waiting"]["for"]
                .as_str()
                .is_some_and(|w| w.contains("paused"))
        })
        .await;
    assert_eq!(waiting["attempts"], 0, "{waiting}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        site_requests(&s.sim, site).await,
        0,
        "no upstream request while paused"
    );
    let (_, list) = admin(&s, reqwest::Method::GET, "/v1/admin/pauses", None).await;
    assert!(
        list["pauses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["site"] == site),
        "{list}"
    );
    let (status, r) = admin(
        &s,
        reqwest::Method::DELETE,
        &format!("/v1/admin/sites/{site}/pause"),
        None,
    )
    .await;
    assert_eq!(
        (status, r["was_paused"].as_bool()),
        (200, Some(true)),
        "{r}"
    );
    s.wait(&id, 150, |j| j["status"] == "completed").await;
    assert!(site_requests(&s.sim, site).await > 0);
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_operate_a_bulk_retry_revives_exactly_the_listed_jobs() {
    let s = stack();
    let mut ids = Vec::new();
    for site in ["unknown-e2e-bulk", "unknown-e2e-bulk", "unknown-e2e-other"] {
        let body = json!({"site": site, "points": ["p"], "start": "2025-04-01T00:00:00Z",
            "end": format!("2025-04-0{}T00:00:00Z", 2 + ids.len())});
        let (status, created) = s.post_job(&s.token, &body.to_string()).await;
        assert_eq!(status, 202, "{created}");
        ids.push(created["job_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        s.wait(id, 60, |j| j["status"] == "failed_permanent").await;
    }
    let filter = json!({"site": "unknown-e2e-bulk", "error_contains": "403", "dry_run": true});
    let path = "/v1/admin/dead-letters/retry";
    let (status, listed) = admin(&s, reqwest::Method::POST, path, Some(filter.clone())).await;
    assert_eq!(status, 200, "{listed}");
    let mut matched: Vec<&str> = listed["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["job_id"].as_str().unwrap())
        .collect();
    matched.sort();
    let mut want = [ids[0].as_str(), ids[1].as_str()];
    want.sort();
    assert_eq!(matched, want, "{listed}");
    assert_eq!(listed["retried"], 0);
    let mut run = filter;
    run["dry_run"] = false.into();
    let (_, done) = admin(&s, reqwest::Method::POST, path, Some(run)).await;
    assert_eq!(done["retried"], 2, "{done}");
    // Revived, they die again (ACE still does not know the site): a second attempt each.
    for id in &ids[..2] {
        s.wait(id, 60, |j| {
            j["status"] == "failed_permanent" && j["attempts"] == 2
        })
        .await;
    }
    let (_, other) = s.get(&s.token, &format!("/v1/jobs/{}", ids[2])).await;
    assert_eq!(other["attempts"], 1, "not listed, not retried: {other}");
}

/// HMAC-SHA256 of `body` under the stack's `CALLBACK_SIGNING_KEY`, as the
/// README tells a receiver to check it.
fn expected_signature(body: &[u8]) -> String {
    tsp_core::service::callback::signature(b"local-callback-key", body)
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_operate_a_callback_arrives_signed_and_a_host_off_the_list_is_refused() {
    let s = stack();
    let site = "e2e-callback";
    let mut body = json!({"site": site, "points": ace_sim::default_points(site, 1),
        "start": "2025-04-01T00:00:00Z", "end": "2025-04-02T00:00:00Z",
        "callback_url": "https://evil.example.com/hook"});
    let (status, problem) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "callback_url");
    body["callback_url"] = format!("{}/callbacks", s.sim).into();
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    let view = s.wait(&id, 120, |j| j["callback"]["state"] == "sent").await;
    assert_eq!(view["status"], "completed");
    let got: Vec<Value> = reqwest::get(format!("{}/callbacks", s.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine: Vec<&Value> = got
        .iter()
        .filter(|c| c["body"].as_str().unwrap_or("").contains(&id))
        .collect();
    assert_eq!(mine.len(), 1, "{got:?}");
    let raw = mine[0]["body"].as_str().unwrap();
    assert_eq!(
        mine[0]["signature"],
        expected_signature(raw.as_bytes()).as_str(),
        "it verifies"
    );
    let sent: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        (sent["job_id"].as_str(), sent["status"].as_str()),
        (Some(id.as_str()), Some("completed"))
    );
    assert!(mine[0]["idempotency_key"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{id}-completed-")));
}

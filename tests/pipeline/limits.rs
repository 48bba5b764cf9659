//! The small stack's tests (`scripts/test.sh`: `MAX_ACTIVE_JOBS=2`, shared
//! with the paging test, one test at a time, each as its own owner):
//! retrying a dead job counts against the active-job limit like a submit,
//! and one failing site's message does not hold back the healthy messages
//! of its batch. (No test here may be named `e2e_…` or `paging_…`: the
//! test command picks tests by name.)

use serde_json::json;

use crate::e2e::stack;

/// The second tenant configured by scripts/stack.sh (the paging test runs
/// as the first).
const OWNER: &str = "other-tenant-token";
const OPS: &str = "ops-token";

#[tokio::test]
#[ignore = "needs the limits stack: scripts/test.sh"]
async fn limits_a_retry_past_the_active_job_limit_gets_429_and_changes_nothing() {
    let s = stack();
    let dead = json!({"site": "unknown-limits", "points": ["p"], "days": 1, "force": true});
    let (status, created) = s.post_job(OWNER, &dead.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let dead_id = created["job_id"].as_str().unwrap().to_owned();
    let (status, _) = s.get(OWNER, &format!("/v1/jobs/{dead_id}")).await;
    assert_eq!(status, 200);
    s.wait_as(OWNER, &dead_id, 60, |j| j["status"] == "failed_permanent")
        .await;

    // Two jobs held queued by an operator's pause: the owner is at its limit.
    // A site of its own per run: a rerun on the same stack starts clean.
    let site = &format!("limits-paused-{}", std::process::id());
    let pause = s
        .http
        .post(format!(
            "{}/v1/admin/sites/{site}/pause?reason=limits",
            s.url
        ))
        .bearer_auth(OPS)
        .send()
        .await
        .unwrap();
    assert_eq!(pause.status(), 200, "{:?}", pause.text().await);
    let mut held = Vec::new();
    for days in [1, 2] {
        let body = json!({"site": site, "points": ace_sim::default_points(site, 1), "days": days});
        let (status, created) = s.post_job(OWNER, &body.to_string()).await;
        assert_eq!(status, 202, "{created}");
        held.push(created["job_id"].as_str().unwrap().to_owned());
    }

    let retry = |id: String| {
        let s = &s;
        async move {
            s.http
                .post(format!("{}/v1/jobs/{id}/retry", s.url))
                .bearer_auth(OWNER)
                .send()
                .await
                .unwrap()
        }
    };
    let r = retry(dead_id.clone()).await;
    assert_eq!(r.status(), 429, "{:?}", r.text().await);
    assert!(r.headers().contains_key("retry-after"));
    let (_, job) = s.get(OWNER, &format!("/v1/jobs/{dead_id}")).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_i64()),
        (Some("failed_permanent"), Some(1)),
        "a refused retry changes nothing: {job}"
    );

    // One slot freed, the same retry is taken.
    let cancel = s
        .http
        .delete(format!("{}/v1/jobs/{}", s.url, held[0]))
        .bearer_auth(OWNER)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    assert_eq!(retry(dead_id.clone()).await.status(), 202);

    // Tidy: the other held job cancelled, the site resumed.
    let _ = s
        .http
        .delete(format!("{}/v1/jobs/{}", s.url, held[1]))
        .bearer_auth(OWNER)
        .send()
        .await;
    let _ = s
        .http
        .delete(format!("{}/v1/admin/sites/{site}/pause", s.url))
        .bearer_auth(OPS)
        .send()
        .await;
}

/// Owners of the fairness test: the small stack's `MAX_ACTIVE_JOBS` is 2.
const FAIR_OWNERS: [&str; 2] = ["third-tenant-token", "fourth-tenant-token"];

/// On the small stack, after the paging and limits tests (one at a time,
/// `scripts/test.sh`): its four messages are the only ones in flight, so
/// they travel in one batch (the local runtime delivers a queue's batches
/// one after another; the platform runs several invocations at once).
#[tokio::test]
#[ignore = "needs the small stack: scripts/test.sh"]
async fn fairness_a_batch_with_one_failing_site_and_three_healthy_jobs_runs_the_healthy_ones_as_if_alone(
) {
    let s = stack();
    // The failing site's message retries its pages in place for
    // PAGE_RETRY_MS (15 s) before it reschedules; the healthy jobs, in the
    // same batch (four messages within the batch timeout), must not wait
    // behind it.
    let fail = json!({"site": "always-fails", "force": true,
        "points": ace_sim::default_points("always-fails", 1), "days": 1});
    let (status, created) = s.post_job(FAIR_OWNERS[0], &fail.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let failing = created["job_id"].as_str().unwrap().to_owned();
    let mut healthy = Vec::new();
    for (i, owner) in [FAIR_OWNERS[0], FAIR_OWNERS[1], FAIR_OWNERS[1]]
        .into_iter()
        .enumerate()
    {
        let site = format!("batch-healthy-{i}");
        let body = json!({"site": site, "points": ace_sim::default_points(&site, 2), "days": 2,
                          "force": true});
        let (status, created) = s.post_job(owner, &body.to_string()).await;
        assert_eq!(status, 202, "{created}");
        healthy.push((owner, created["job_id"].as_str().unwrap().to_owned()));
    }
    for (owner, id) in &healthy {
        s.wait_as(owner, id, 120, |j| j["status"] == "completed")
            .await;
    }
    // The failing message is still on its first delivery's in-place
    // retries: run one after another, the healthy ones would only have
    // started once it gave up and rescheduled.
    let (_, job) = s.get(FAIR_OWNERS[0], &format!("/v1/jobs/{failing}")).await;
    assert_eq!(job["status"], "processing", "{job}");
    assert!(job["waiting"].is_null(), "not yet rescheduled: {job}");
    assert_eq!(job["attempts"], 1, "{job}");
    let cancel = s
        .http
        .delete(format!("{}/v1/jobs/{failing}", s.url))
        .bearer_auth(FAIR_OWNERS[0])
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
}

//! Results pushed natively: a job's callback, signed, when it ends; a 4xx
//! is final, anything else retried with backoff; a host off the
//! allow-list refused at submission.

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::auth::Grant;
use tsp_core::error::Error;
use tsp_core::job::JobStatus;
use tsp_core::service::callback::signature;
use tsp_core::service::manage;
use tsp_core::service::submit::submit;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const KEY: &str = "callback-test-key";

async fn harness(sim: &str, receiver: &MockServer) -> Harness {
    let mut h = Harness::new(sim);
    h.cfg.callback_allowed_origins = receiver.uri();
    h.cfg.callback_signing_key = Some(KEY.into());
    h
}

fn body(site: &str, callback: &str) -> serde_json::Value {
    json!({"site": site, "points": sim_points(site, 1), "start": "2025-10-01T00:00:00Z",
           "end": "2025-10-02T00:00:00Z", "callback_url": callback})
}

#[tokio::test]
async fn a_completed_job_posts_its_view_signed() {
    let sim = spawn_sim(SimConfig::default()).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/cb"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&receiver)
        .await;
    let h = harness(&sim, &receiver).await;
    let id = h
        .submit_new(&body("cb-done", &format!("{}/cb", receiver.uri())))
        .await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.callback_state.as_deref(), Some("sent"));
    let posts = receiver.received_requests().await.unwrap();
    let post = &posts[0];
    assert_eq!(
        post.headers["x-signature"],
        signature(KEY.as_bytes(), &post.body).as_str()
    );
    let view: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(
        (view["job_id"].as_str(), view["status"].as_str()),
        (Some(id.as_str()), Some("completed"))
    );
    let key = post.headers["idempotency-key"].to_str().unwrap();
    assert!(key.starts_with(&format!("{id}-completed-")), "{key}");
}

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_and_a_4xx_is_final() {
    let sim = spawn_sim(SimConfig::default()).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&receiver)
        .await;
    let h = harness(&sim, &receiver).await;
    let id = h
        .submit_new(&body("cb-retry", &format!("{}/cb", receiver.uri())))
        .await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(
        (job.callback_state.as_deref(), job.callback_attempts),
        (Some("pending"), 1)
    );
    assert_eq!(
        job.callback_next_at,
        Some(NOW + 30_000),
        "30 s, the first backoff"
    );
    // Not due yet: the reaper leaves it; due: it sends, and the 410 is final.
    tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1);
    h.clock.set_now((NOW + 31_000).into());
    tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    h.clock.set_now((NOW + 3_600_000).into());
    tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    let job = h.job(&id).await;
    assert_eq!(
        (job.callback_state.as_deref(), job.callback_attempts),
        (Some("failed"), 2)
    );
    assert!(job.callback_error.unwrap_or_default().contains("410"));
    assert_eq!(
        receiver.received_requests().await.unwrap().len(),
        2,
        "never again"
    );
}

#[tokio::test]
async fn a_cancelled_job_is_told_by_the_reaper() {
    let sim = spawn_sim(SimConfig::default()).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let h = harness(&sim, &receiver).await;
    let id = h
        .submit_new(&body("cb-cancel", &format!("{}/cb", receiver.uri())))
        .await;
    manage::cancel(&h.db, &h.clock, "alice", &id, &|_: &str| {})
        .await
        .unwrap();
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(r.callbacks, 1);
    let posts = receiver.received_requests().await.unwrap();
    let view: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(view["status"], "cancelled");
}

#[tokio::test]
async fn a_callback_off_the_allow_list_or_not_https_is_refused_at_submission() {
    let sim = spawn_sim(SimConfig::default()).await;
    let receiver = MockServer::start().await;
    let h = harness(&sim, &receiver).await;
    for url in ["https://evil.example.com/cb", "http://hooks.example.com/cb"] {
        let raw = body("cb-refused", url).to_string();
        let got = submit(&h.deps(), "alice", &Grant::All, raw.as_bytes()).await;
        let err = got.unwrap_err();
        assert!(
            matches!(&err, Error::Validation(v) if v.errors[0].field == "callback_url"),
            "{err:?}"
        );
        assert_eq!(err.http_status(), 422);
    }
}

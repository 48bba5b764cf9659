//! Notices handed off (three Workers, least privilege): a consumer that
//! holds no webhook URL and no signing key sends nothing itself; it writes
//! its alerts to D1, nudges the dead-letter Worker, and that Worker sends
//! each once, marking the dead job alerted.

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::config::Notices;
use tsp_core::job::JobStatus;
use tsp_core::service::callback::signature;
use tsp_core::service::dead_letter::archive_key;
use tsp_core::service::notices::{deliver_all, deliver_due};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const KEY: &str = "notice-test-key";

fn one_day(site: &str) -> serde_json::Value {
    json!({"site": site, "points": ["p"], "start": "2025-10-01T00:00:00Z",
           "end": "2025-10-02T00:00:00Z"})
}

/// The consumer's harness: the dead-letter Worker's secrets are set (so a
/// test can see they are not used), but it hands its notices off.
fn consumer(sim: &str, hook: &MockServer) -> Harness {
    let mut h = Harness::new(sim);
    h.cfg.alert_webhook_url = Some(format!("{}/hook", hook.uri()).into());
    h.cfg.callback_allowed_origins = hook.uri();
    h.cfg.callback_signing_key = Some(KEY.into());
    h.cfg.notices = Notices::HandOff;
    h
}

/// A webhook that answers its first three POSTs (one in-place round of
/// tries) with `first`, then every later one with `then`.
async fn failing_then(first: u16, then: u16) -> MockServer {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(first))
        .up_to_n_times(3)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(then))
        .mount(&hook)
        .await;
    hook
}

fn notices(h: &Harness) -> Vec<tsp_core::ports::Row> {
    h.db.query_raw("SELECT * FROM notices ORDER BY key")
        .unwrap()
}

#[tokio::test]
async fn a_dead_job_in_the_consumer_is_alerted_once_by_the_dead_letter_worker() {
    let sim = spawn_sim(SimConfig::default()).await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let mut h = consumer(&sim, &hook);
    let id = h.submit_new(&one_day("unknown-notice")).await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert!(
        hook.received_requests().await.unwrap().is_empty(),
        "the consumer sent nothing"
    );
    assert_eq!(job.alerted_at, None, "not alerted until it is sent");
    assert!(
        h.queue.nudges.get() >= 1,
        "the dead-letter Worker was nudged"
    );
    let key = archive_key(id.as_str(), job.finished_at.unwrap());
    assert!(h.blobs.object(&key).is_some(), "archived by the consumer");
    let rows = notices(&h);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["key"].as_str(), rows[0]["job_id"].as_str()),
        (Some(key.as_str()), Some(id.as_str()))
    );

    // A duplicate delivery hands off nothing new.
    h.deliver(&id, 0, 2).await;
    assert_eq!(notices(&h).len(), 1);

    // The dead-letter Worker sends it, once.
    h.cfg.notices = Notices::Send;
    assert_eq!(deliver_due(&h.deps()).await.unwrap(), 1);
    assert_eq!(deliver_due(&h.deps()).await.unwrap(), 0, "sent once");
    let posts = hook.received_requests().await.unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].headers["idempotency-key"], key.as_str());
    let body: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(body["job_id"], id.as_str());
    assert!(
        h.job(&id).await.alerted_at.is_some(),
        "the job says it was alerted"
    );
    assert!(notices(&h)[0]["sent_at"].is_i64());
}

#[tokio::test]
async fn a_refused_notice_is_final_and_a_failing_webhook_is_retried_later() {
    let sim = spawn_sim(SimConfig::default()).await;
    let hook = failing_then(503, 410).await;
    let mut h = consumer(&sim, &hook);
    h.cfg.alert_timeout_ms = 500;
    let id = h.submit_new(&one_day("unknown-refused")).await;
    h.drain().await;
    h.cfg.notices = Notices::Send;
    // Three 503s (the in-place tries): due again later, not given up.
    assert_eq!(deliver_due(&h.deps()).await.unwrap(), 0);
    let row = &notices(&h)[0];
    assert_eq!(
        (row["attempts"].as_i64(), row["error"].is_null()),
        (Some(1), true)
    );
    assert!(
        row["next_at"].as_i64().unwrap() > NOW.ms() + 20_000,
        "backed off"
    );
    assert_eq!(deliver_due(&h.deps()).await.unwrap(), 0, "not due yet");
    h.clock.set_now(NOW.ms() + 3_600_000);
    // Then a 410: refused for good, and the job says so.
    assert_eq!(deliver_due(&h.deps()).await.unwrap(), 0);
    let row = &notices(&h)[0];
    assert!(row["error"].as_str().unwrap().contains("410"), "{row:?}");
    assert!(h.job(&id).await.alert_error.is_some());
    h.clock.set_now(NOW.ms() + 7_200_000);
    deliver_due(&h.deps()).await.unwrap();
    assert_eq!(
        hook.received_requests().await.unwrap().len(),
        4,
        "never again"
    );
}

#[tokio::test]
async fn a_completed_jobs_callback_is_signed_by_the_dead_letter_worker_not_the_consumer() {
    let sim = spawn_sim(SimConfig::default()).await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/cb"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hook)
        .await;
    let mut h = consumer(&sim, &hook);
    let site = "cb-handoff";
    let mut body = json!({"site": site, "points": sim_points(site, 1),
        "start": "2025-10-01T00:00:00Z", "end": "2025-10-02T00:00:00Z"});
    body["callback_url"] = json!(format!("{}/cb", hook.uri()));
    let id = h.submit_new(&body).await;
    h.drain().await;
    assert_eq!(h.job(&id).await.status, JobStatus::Completed);
    assert!(
        hook.received_requests().await.unwrap().is_empty(),
        "the consumer sent nothing"
    );
    assert!(h.queue.nudges.get() >= 1, "nudged");
    h.cfg.notices = Notices::Send;
    let (callbacks, alerts) = deliver_all(&h.deps()).await;
    assert_eq!((callbacks, alerts), (1, 0));
    let posts = hook.received_requests().await.unwrap();
    assert_eq!(
        posts[0].headers["x-signature"],
        signature(KEY.as_bytes(), &posts[0].body).as_str()
    );
    assert_eq!(h.job(&id).await.callback_state.as_deref(), Some("sent"));
}

#[tokio::test]
async fn a_job_that_dies_again_while_its_first_notice_waits_is_alerted_once_in_the_hour() {
    let sim = spawn_sim(SimConfig::default()).await;
    let hook = failing_then(503, 200).await;
    let mut h = consumer(&sim, &hook);
    h.cfg.alert_timeout_ms = 500;
    let id = h.submit_new(&one_day("unknown-twice")).await;
    h.drain().await;
    // The first death's notice fails (three 503s) and backs off.
    h.cfg.notices = Notices::Send;
    assert_eq!(deliver_due(&h.deps()).await.unwrap(), 0);
    // Its owner retries; it dies again: a second archive, a second notice.
    h.clock.set_now(NOW.ms() + 1_000);
    let quiet = |_: &str| {};
    tsp_core::service::manage::retry((&h.db, &h.queue, &h.clock), &h.cfg, "alice", &id, &quiet)
        .await
        .unwrap();
    h.cfg.notices = Notices::HandOff;
    h.drain().await;
    assert_eq!(h.job(&id).await.status, JobStatus::FailedPermanent);
    assert_eq!(notices(&h).len(), 2);
    // The second goes out; the first, due later, is spared.
    h.cfg.notices = Notices::Send;
    assert_eq!(deliver_due(&h.deps()).await.unwrap(), 1);
    h.clock.set_now(NOW.ms() + 120_000);
    assert_eq!(deliver_due(&h.deps()).await.unwrap(), 0);
    let ok = hook.received_requests().await.unwrap().len() - 3;
    assert_eq!(ok, 1, "one alert in the hour");
    let rows = notices(&h);
    let spared: Vec<_> = rows
        .iter()
        .filter(|r| r["error"].as_str().is_some_and(|e| e.starts_with("spared")))
        .collect();
    assert_eq!(spared.len(), 1, "{rows:?}");
    assert!(h.job(&id).await.alerted_at.is_some());
}

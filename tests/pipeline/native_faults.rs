//! Upstream, storage and alert faults, natively: wiremock plays the ACE API
//! (and the alert webhook), the rest is the harness (real SQLite with
//! `schema/`, memory blobs, the in-process queue, reqwest).
//!
//! The wiremock upstream speaks ACE: `configured_points` first (the plan is
//! chosen from it), then the site walk over `/timeseries/paginated`
//! (time-major rows of every point, naive UTC times, a base64 JSON cursor).
//! The jobs here ask for the site walk.
//!
//! Every case checks both what `process::handle` decided (outcome and queue
//! disposition) and what it left in the `queue_jobs` row.

use std::cell::Cell;
use std::time::Duration;

use serde_json::json;
use tsp_core::codec::decode_object;
use tsp_core::domain::JobId;
use tsp_core::error::{Disposition, Error, StoreError, UpstreamError};
use tsp_core::job::JobStatus;
use tsp_core::ports::{BlobMeta, BlobStore, JobMessage, Row, SqlDb, Statement, UploadedPart};
use tsp_core::service::dead_letter::{archive_key, dead_letter, DeadOutcome};
use tsp_core::service::manage;
use tsp_core::service::process::{handle, Outcome};
use tsp_core::timeout::{TimedBlobs, TimedDb};
use tsp_native::{MemBlobs, SqliteDb};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// The upstream route of site `s1`.
const PAGES: &str = "/sites/s1/timeseries/paginated";
/// The alert webhook's route.
const HOOK: &str = "/hook";

/// One point of a three-point site, one day: one window, walked.
fn one_day_job() -> serde_json::Value {
    json!({"site": "s1", "points": ["p1"], "start": "2025-10-01T00:00:00Z",
           "end": "2025-10-02T00:00:00Z", "plan": "site"})
}

/// An upstream page of point `p1`: `(time, value)` samples.
fn page(samples: &[(&str, &str)], next_cursor: Option<&str>, has_more: bool) -> String {
    let rows: Vec<(&str, &str, &str)> = samples.iter().map(|(t, v)| ("p1", *v, *t)).collect();
    ace_page(&rows, next_cursor, has_more)
}

/// Three samples inside the job's day, with naive UTC times as ACE writes them.
const THREE: [(&str, &str); 3] = [
    ("2025-10-01T00:00:00", "21.4"),
    ("2025-10-01T00:05:00", "21.5"),
    ("2025-10-01T12:00:00", "22.25"),
];

/// A harness over `server` with fast retry and timeout settings; the
/// catalogues of sites `s1` and `s2` (points `p1` to `p3`) are mounted.
async fn harness(server: &MockServer) -> Harness {
    for site in ["s1", "s2"] {
        mount_catalogue(server, site, &names(3)).await;
    }
    let mut h = Harness::new(&server.uri());
    h.cfg.page_retry_ms = 1_000; // one in-place retry (400 ms), not two (+800 ms)
    h.cfg.upstream_timeout_ms = 300;
    h
}

/// The site walk's requests `server` received (`configured_points` aside).
async fn pages(server: &MockServer) -> Vec<wiremock::Request> {
    received_on(server, PAGES).await
}

/// Submits the one-day job and drops its queue message, so only explicit
/// deliveries run.
async fn queued_job(h: &Harness) -> JobId {
    let id = h.submit_new(&one_day_job()).await;
    assert_eq!(h.queue.drain().len(), 1, "submit sends one message");
    id
}

/// Requests `server` received with this HTTP method.
async fn received(server: &MockServer, verb: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|r| r.method.as_str() == verb)
        .collect()
}

async fn mount_page(server: &MockServer, status: u16, body: String) {
    Mock::given(method("GET"))
        .and(path(PAGES))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .mount(server)
        .await;
}

/// Asserts a job was dead-lettered by `handle`: acked, `failed_permanent`,
/// archived, and with `needle` in its reason and last error.
async fn assert_dead_lettered(
    h: &Harness,
    id: &JobId,
    handled: &tsp_core::service::process::Handled,
    needle: &str,
) {
    assert!(
        matches!(&handled.outcome, Ok(Outcome::DeadLettered(r)) if r.contains(needle)),
        "{handled:?}"
    );
    assert_eq!(handled.disposition, Disposition::Ack, "no retry");
    let job = h.job(id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    let err = job.last_error.clone().unwrap_or_default();
    assert!(err.contains(needle), "last_error {err:?} lacks {needle:?}");
    assert_eq!(job.attempts, 1);
    assert_eq!(job.chunks_done, 0);
    assert!(job.alerted_at.is_some(), "alerted (log only: no webhook)");
    let key = archive_key(id.as_str(), job.finished_at.expect("finished_at"));
    assert!(key.starts_with("dead-letters/"));
    assert_eq!(h.blobs.keys("dead-letters/"), vec![key.clone()]);
    let (archive, _) = h.blobs.object(&key).expect("archive object");
    let doc: serde_json::Value = serde_json::from_slice(&archive).expect("archive is JSON");
    assert_eq!(doc["kind"], "dead_job");
    assert_eq!(doc["job"]["id"], id.as_str());
    assert!(h.queue.sent.borrow().is_empty(), "nothing re-queued");
}

/// The error of a delivery that rescheduled its job.
fn retry_error(handled: &tsp_core::service::process::Handled) -> String {
    match &handled.outcome {
        Ok(Outcome::Retrying { error, .. }) => error.clone(),
        other => panic!("expected a reschedule, got {other:?}"),
    }
}

/// Asserts a transient failure recorded by `handle`: the message acked and
/// the job rescheduled by a message of its own delayed `delay` s, the job
/// `failed` with `needle` in its last error, no progress, one stall.
async fn assert_retried(
    h: &Harness,
    id: &JobId,
    handled: &tsp_core::service::process::Handled,
    delay: u32,
    needle: &str,
) {
    assert_eq!(handled.disposition, Disposition::Ack, "{handled:?}");
    assert!(
        matches!(&handled.outcome, Ok(Outcome::Retrying { delay_seconds, progressed: false, error })
            if *delay_seconds == delay && error.contains(needle)),
        "{handled:?}"
    );
    let job = h.job(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let last = job.last_error.clone().unwrap_or_default();
    assert!(
        last.contains(needle),
        "last_error {last:?} lacks {needle:?}"
    );
    assert_eq!(job.attempts, 1);
    assert_eq!(job.chunks_done, 0);
    assert_eq!(job.stalls, 1, "a delivery without progress is a stall");
    assert_eq!(job.lease_until, None, "the lease is released for the retry");
    assert_eq!(job.next_attempt_at, Some(NOW + i64::from(delay) * 1000));
    assert!(h.blobs.keys("").is_empty(), "no part, result or archive");
    let sent = h.queue.sent.borrow();
    assert_eq!(sent.len(), 1, "the job's own delayed message");
    assert_eq!(sent[0].1, delay);
    assert_eq!(sent[0].0.job_id, *id);
}

// ---------------------------------------------------------------- upstream

#[tokio::test]
async fn an_upstream_slower_than_the_timeout_is_a_transient_timeout_and_the_job_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PAGES))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(page(&THREE, None, false))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let h = harness(&server).await;
    let id = queued_job(&h).await;

    let handled = h.deliver(&id, 0, 1).await;
    assert_eq!(
        retry_error(&handled),
        Error::Upstream(UpstreamError::Timeout(300)).to_string()
    );
    assert_retried(&h, &id, &handled, 2, "timed out").await;
    // One try, one in-place retry within PAGE_RETRY_MS, then a delayed message.
    assert_eq!(pages(&server).await.len(), 2);
}

#[tokio::test]
async fn upstream_500_and_503_are_transient_and_the_job_is_retried_then_completes() {
    for status in [500u16, 503] {
        let server = MockServer::start().await;
        mount_page(&server, status, "upstream broke".into()).await;
        let h = harness(&server).await;
        let id = queued_job(&h).await;

        let handled = h.deliver(&id, 0, 1).await;
        let want = Error::Upstream(UpstreamError::Status {
            status,
            retry_after_ms: None,
            body: "upstream broke".into(),
        });
        assert_eq!(retry_error(&handled), want.to_string(), "{status}");
        assert_retried(&h, &id, &handled, 2, &status.to_string()).await;
        assert_eq!(pages(&server).await.len(), 2, "{status}");

        // The `failed` job is claimable: the queue's redelivery finishes it.
        server.reset().await;
        mount_page(&server, 200, page(&THREE, None, false)).await;
        let again = h.deliver(&id, 0, 2).await;
        assert_eq!(again.outcome, Ok(Outcome::Completed), "{status}");
        let job = h.job(&id).await;
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.attempts, 2);
        assert_eq!(job.sample_count, 3);
        assert_eq!(job.last_error, None);
    }
}

#[tokio::test]
async fn a_429_retry_after_beyond_the_inline_cap_goes_to_the_queue_without_waiting() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PAGES))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30"))
        .mount(&server)
        .await;
    let h = harness(&server).await; // PAGE_RETRY_MS = 1 s: an in-place retry is allowed
    let id = queued_job(&h).await;

    let handled = h.deliver(&id, 0, 1).await;
    assert!(retry_error(&handled).contains("429"));
    // 30 s is over PAGE_RETRY_MS: no in-place wait, a delayed message waits.
    assert_eq!(pages(&server).await.len(), 1, "not retried in place");
    assert_retried(&h, &id, &handled, 30, "429").await;
}

#[tokio::test]
async fn a_429_retry_after_is_a_floor_under_the_queue_backoff() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PAGES))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    let mut h = harness(&server).await;
    // No in-place retry, so the 7 s hint (under the inline cap) is not slept.
    h.cfg.page_retry_ms = 0;
    let id = queued_job(&h).await;

    let first = h.deliver(&id, 0, 1).await;
    assert_retried(&h, &id, &first, 7, "429").await; // backoff 2 s < hint 7 s
    assert_eq!(pages(&server).await.len(), 1);

    // Backoff grows with the stalls (2, 4, 8, 16 s); at the fourth stall it
    // is above the hint and wins.
    h.queue.drain();
    for _ in 0..2 {
        h.deliver(&id, 1, 1).await;
    }
    let fourth = h.deliver(&id, 1, 1).await;
    assert!(
        matches!(
            fourth.outcome,
            Ok(Outcome::Retrying {
                delay_seconds: 16,
                ..
            })
        ),
        "{fourth:?}"
    );
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!((job.attempts, job.stalls), (4, 4));
}

#[tokio::test]
async fn a_short_429_retry_after_is_waited_in_place_and_the_page_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PAGES))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_page(&server, 200, page(&THREE, None, false)).await;
    let h = harness(&server).await;
    let id = queued_job(&h).await;

    let handled = h.deliver(&id, 0, 1).await;
    assert_eq!(handled.outcome, Ok(Outcome::Completed));
    assert_eq!(handled.disposition, Disposition::Ack);
    assert_eq!(pages(&server).await.len(), 2);
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.attempts, 1, "no queue retry was needed");
    assert_eq!(job.sample_count, 3);
}

#[tokio::test]
async fn garbage_json_is_retried_in_place_then_dead_lettered_past_the_malformed_limit() {
    let server = MockServer::start().await;
    mount_page(&server, 200, "not json".into()).await;
    let mut h = harness(&server).await;
    h.cfg.malformed_limit = 1;
    let id = queued_job(&h).await;

    let handled = h.deliver(&id, 0, 1).await;
    // The first malformed body is transient (retried in place); the second
    // passes the bound of 1 and is permanent.
    assert_eq!(pages(&server).await.len(), 2);
    assert_dead_lettered(&h, &id, &handled, "malformed").await;
}

#[tokio::test]
async fn a_truncated_body_is_malformed_and_dead_lettered_like_garbage() {
    let server = MockServer::start().await;
    let full = page(&THREE, None, false);
    let truncated = full[..full.len() / 2].to_owned();
    assert!(serde_json::from_str::<serde_json::Value>(&truncated).is_err());
    mount_page(&server, 200, truncated).await;
    let mut h = harness(&server).await;
    h.cfg.malformed_limit = 1;
    let id = queued_job(&h).await;

    let handled = h.deliver(&id, 0, 1).await;
    assert_eq!(pages(&server).await.len(), 2);
    assert_dead_lettered(&h, &id, &handled, "malformed").await;
}

#[tokio::test]
async fn one_malformed_body_is_transient_and_the_retry_completes() {
    for bad in ["not json".to_owned(), {
        let full = page(&THREE, None, false);
        full[..full.len() / 2].to_owned()
    }] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(PAGES))
            .respond_with(ResponseTemplate::new(200).set_body_string(bad.clone()))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        mount_page(&server, 200, page(&THREE, None, false)).await;
        let mut h = harness(&server).await;
        h.cfg.malformed_limit = 1;
        let id = queued_job(&h).await;

        let handled = h.deliver(&id, 0, 1).await;
        assert_eq!(handled.outcome, Ok(Outcome::Completed), "{bad}");
        assert_eq!(pages(&server).await.len(), 2);
        let job = h.job(&id).await;
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.sample_count, 3);
        assert!(h.blobs.keys("dead-letters/").is_empty());
    }
}

#[tokio::test]
async fn an_empty_page_that_says_more_follow_is_refused_not_followed() {
    // Was "followed to the data page" when the upstream's cursor was
    // opaque and trusted. The walk now computes each cursor from the
    // page's last row (ACE's own cursor is wrong), and an empty page that
    // says more follow has no last row: it is malformed, re-read in place
    // up to MALFORMED_LIMIT times, then the job dies, not looped on.
    let server = MockServer::start().await;
    mount_page(&server, 200, page(&[], Some("c1"), true)).await;
    let mut h = harness(&server).await;
    h.cfg.page_retry_ms = 0;
    let id = queued_job(&h).await;

    let handled = h.deliver(&id, 0, 1).await;
    assert!(
        matches!(&handled.outcome, Ok(Outcome::DeadLettered(e)) if e.contains("no rows says more follow")),
        "{handled:?}"
    );
    let limit = h.cfg.malformed_limit as usize;
    assert_eq!(
        pages(&server).await.len(),
        1 + limit,
        "re-read, then refused"
    );
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert_eq!(job.chunks_done, 0);
}

#[tokio::test]
async fn has_more_without_a_next_cursor_is_followed_from_the_page_itself() {
    // Was "malformed, dead-lettered past the bound": the next cursor is now
    // computed from the page (its last row's time, and the rows of that
    // bucket it took), so the upstream's `next_cursor`, absent, null or
    // empty, is not needed.
    let first = [
        ("p1", "21.4", "2025-10-01T00:00:00"),
        ("p2", "1", "2025-10-01T00:00:00"),
        ("p3", "2", "2025-10-01T00:00:00"),
    ];
    let rest = ace_page(
        &[
            ("p1", "21.5", "2025-10-01T00:05:00"),
            ("p2", "1", "2025-10-01T00:05:00"),
            ("p1", "22.25", "2025-10-01T12:00:00"),
        ],
        None,
        false,
    );
    let full = ace_page(&first, None, true);
    let variants = [
        full.replace(r#""next_cursor":null,"#, ""),
        full.clone(),
        full.replace(r#""next_cursor":null"#, r#""next_cursor":"""#),
    ];
    // Three rows of the 00:00 bucket taken: the next page starts 3 rows
    // after its first row.
    let want = ace_cursor(3, "2025-10-01T00:00:00");
    for body in variants {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(PAGES))
            .and(query_param_is_missing("cursor"))
            .respond_with(ResponseTemplate::new(200).set_body_string(body.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(PAGES))
            .and(query_param("cursor", want.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_string(rest.clone()))
            .mount(&server)
            .await;
        let h = harness(&server).await;
        let id = queued_job(&h).await;

        let handled = h.deliver(&id, 0, 1).await;
        assert_eq!(handled.outcome, Ok(Outcome::Completed), "{body}");
        assert_eq!(pages(&server).await.len(), 2, "{body}");
        let job = h.job(&id).await;
        assert_eq!(job.sample_count, 3, "p1's rows only: {body}");
        let (bytes, _) = h.blobs.object(&job.result_key.unwrap()).expect("result");
        let (_, series) = decode_object(&bytes).unwrap();
        assert_eq!(series.len(), 1);
        for ((t, v), (wt, wv)) in series[0].iter().zip(THREE) {
            assert_eq!(
                *t,
                tsp_core::domain::parse_rfc3339(&format!("{wt}Z")).unwrap()
            );
            assert!(same_value(v, wv), "{v:?} vs {wv}");
        }
    }
}

#[tokio::test]
async fn a_next_cursor_naming_another_row_is_refused_and_its_samples_discarded() {
    // Was "has_more without a next_cursor once is transient": the cursor
    // the walk cannot trust is now one that names a row other than the
    // page's last. That page's samples never reach the result.
    let server = MockServer::start().await;
    let odd = ace_cursor(1, "2030-01-01T00:00:00");
    let bad = page(
        &[("2025-10-01T01:00:00", "1"), ("2025-10-01T02:00:00", "2")],
        Some(&odd),
        true,
    );
    Mock::given(method("GET"))
        .and(path(PAGES))
        .respond_with(ResponseTemplate::new(200).set_body_string(bad))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_page(&server, 200, page(&THREE, None, false)).await;
    let mut h = harness(&server).await;
    h.cfg.page_retry_ms = 0;
    let id = queued_job(&h).await;

    // The page is re-read in place (a malformed page), and the second
    // answer is good: one delivery completes the job.
    let first = h.deliver(&id, 0, 1).await;
    assert_eq!(first.outcome, Ok(Outcome::Completed));
    assert_eq!(pages(&server).await.len(), 2);
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(
        job.sample_count, 3,
        "the rejected page's samples are dropped"
    );
}

#[tokio::test]
async fn upstream_404_is_permanent_and_dead_letters_without_retry() {
    let server = MockServer::start().await;
    mount_page(&server, 404, "{}".into()).await;
    let mut h = harness(&server).await;
    h.cfg.page_retry_ms = 3_000; // in-place retries allowed, and not used
    let id = queued_job(&h).await;

    let handled = h.deliver(&id, 0, 1).await;
    assert_eq!(pages(&server).await.len(), 1);
    assert_dead_lettered(&h, &id, &handled, "404").await;

    // A duplicate delivery does nothing: no upstream call, no new state.
    let dup = h.deliver(&id, 0, 2).await;
    assert!(matches!(dup.outcome, Ok(Outcome::Skipped(_))), "{dup:?}");
    assert_eq!(dup.disposition, Disposition::Ack);
    assert_eq!(pages(&server).await.len(), 1);
    assert_eq!(h.job(&id).await.attempts, 1);
}

#[tokio::test]
async fn an_upstream_401_opens_the_circuit_and_the_job_waits_without_a_stall() {
    // A token rotation: the upstream rejects our credentials for a while.
    let server = MockServer::start().await;
    mount_page(&server, 401, "{}".into()).await;
    let h = harness(&server).await;
    let id = queued_job(&h).await;
    let handled = h.deliver(&id, 0, 1).await;
    assert_eq!(pages(&server).await.len(), 1, "not hammered in place");
    assert!(
        matches!(&handled.outcome, Ok(Outcome::Retrying { delay_seconds: 30, progressed: false, error })
            if error.contains("401")),
        "{handled:?}"
    );
    let job = h.job(&id).await;
    assert_eq!(
        (job.status, job.stalls),
        (JobStatus::Failed, 0),
        "no attempt burned"
    );
    assert_eq!(job.waiting_until, Some(NOW + 30_000));
    assert!(job
        .waiting_for
        .unwrap_or_default()
        .contains("credentials missing or rejected"));
    let circuit = h.circuit();
    assert_eq!(circuit[0]["state"], "open", "at once, from one site");
    let reason = circuit[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("credentials missing or rejected") && reason.contains("HTTP 401"),
        "{reason}"
    );
    let logs = h.logs.borrow().join("\n");
    assert!(
        logs.contains("\"event\":\"circuit\"") && logs.contains("opened"),
        "{logs}"
    );
    drop(logs);

    // While open, a delivery does not claim the job: it waits.
    h.queue.drain();
    let waiting = h.deliver(&id, 1, 1).await;
    assert_eq!(
        waiting.outcome,
        Ok(Outcome::Waiting {
            until: NOW + 30_000
        })
    );
    assert_eq!(h.job(&id).await.attempts, 1, "no attempt while open");
    assert_eq!(
        h.queue.drain()[0].1,
        30,
        "delayed until the circuit may probe"
    );

    // After the cool-down one probe goes out; the fixed upstream closes it.
    server.reset().await;
    mount_page(&server, 200, page(&THREE, None, false)).await;
    h.clock.set_now((NOW + 31_000).into());
    let probe = h.deliver(&id, 1, 1).await;
    assert_eq!(probe.outcome, Ok(Outcome::Completed), "{probe:?}");
    let opened = h
        .logs
        .borrow()
        .iter()
        .filter(|l| l.contains("\"state\":\"opened\""))
        .count();
    let closed = h
        .logs
        .borrow()
        .iter()
        .filter(|l| l.contains("\"state\":\"closed\""))
        .count();
    assert_eq!((opened, closed), (1, 1), "one alert each way");
}

#[tokio::test]
async fn failures_spread_over_time_open_the_circuit_even_from_one_site() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let mut h = harness(&server).await;
    h.cfg.page_retry_ms = 0;
    let id = queued_job(&h).await;
    // Three failures within a few seconds: a burst, not an outage.
    for at in [0, 2_000, 4_000] {
        h.clock.set_now((NOW + at).into());
        let got = h.deliver(&id, 1, 1).await;
        assert!(
            matches!(got.outcome, Ok(Outcome::Retrying { .. })),
            "{got:?}"
        );
    }
    assert_eq!(h.circuit()[0]["state"], "closed", "a burst of one moment");
    assert_eq!(h.job(&id).await.stalls, 3);
    // The run goes on past CIRCUIT_SPREAD_MS: the upstream is down, even
    // for a single-site deployment, and the job waits without a stall.
    h.clock.set_now((NOW + 25_000).into());
    let got = h.deliver(&id, 1, 1).await;
    assert!(
        matches!(&got.outcome, Ok(Outcome::Retrying { error, .. }) if error.contains("waiting for the upstream")),
        "{got:?}"
    );
    assert_eq!(h.circuit()[0]["state"], "open");
    assert_eq!(
        h.job(&id).await.stalls,
        3,
        "waiting out an outage is no stall"
    );
}

#[tokio::test]
async fn a_page_from_any_site_ends_the_run_so_one_failing_site_never_opens_it() {
    let server = MockServer::start().await;
    let h = harness(&server).await;
    let deps = h.deps();
    let down = Error::Upstream(UpstreamError::Status {
        status: 503,
        retry_after_ms: None,
        body: String::new(),
    });
    // Site a fails every 10 s for a minute; site b's pages come back between.
    for k in 0..6 {
        h.clock.set_now((NOW + k * 10_000).into());
        let failing = tsp_core::service::circuit::Tracker::new(true, false);
        let opened = failing.failure(&deps, "a", &down).await.unwrap();
        assert_eq!(opened, None, "failure {k} opened it");
        let healthy = tsp_core::service::circuit::Tracker::new(true, false);
        healthy.success(&deps).await.unwrap();
    }
    assert_eq!(h.circuit()[0]["state"], "closed", "site a's problem alone");
}

// ---------------------------------------------------------------- storage

/// Which calls of [`SlowDb`] hang.
#[derive(Clone, Copy)]
enum Slow {
    Every,
    FirstBatch,
}

/// A database whose chosen calls sleep for a minute before running.
struct SlowDb<'a> {
    inner: &'a SqliteDb,
    slow: Slow,
    batches: Cell<u32>,
}

impl<'a> SlowDb<'a> {
    fn new(inner: &'a SqliteDb, slow: Slow) -> Self {
        Self {
            inner,
            slow,
            batches: Cell::new(0),
        }
    }
}

async fn hang() {
    tokio::time::sleep(Duration::from_secs(60)).await;
}

impl SqlDb for SlowDb<'_> {
    async fn query(&self, s: &Statement) -> Result<Vec<Row>, StoreError> {
        if matches!(self.slow, Slow::Every) {
            hang().await;
        }
        self.inner.query(s).await
    }
    async fn execute(&self, s: &Statement) -> Result<u64, StoreError> {
        if matches!(self.slow, Slow::Every) {
            hang().await;
        }
        self.inner.execute(s).await
    }
    async fn batch(&self, s: &[Statement]) -> Result<Vec<u64>, StoreError> {
        self.batches.set(self.batches.get() + 1);
        let slow = match self.slow {
            Slow::Every => true,
            Slow::FirstBatch => self.batches.get() == 1,
        };
        if slow {
            hang().await;
        }
        self.inner.batch(s).await
    }
}

/// An object store whose `put` sleeps for a minute before writing.
struct SlowPut<'a> {
    inner: &'a MemBlobs,
}

impl BlobStore for SlowPut<'_> {
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &BlobMeta) -> Result<(), StoreError> {
        hang().await;
        self.inner.put(key, bytes, meta).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &BlobMeta,
    ) -> Result<bool, StoreError> {
        self.inner.put_if_absent(key, bytes, meta).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.inner.head(key).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        self.inner.delete(keys).await
    }
    async fn multipart_begin(&self, key: &str, meta: &BlobMeta) -> Result<String, StoreError> {
        self.inner.multipart_begin(key, meta).await
    }
    async fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        bytes: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        self.inner
            .multipart_part(key, upload_id, part_number, bytes)
            .await
    }
    async fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        self.inner.multipart_complete(key, upload_id, parts).await
    }
}

/// The storage timeout of these tests.
const STORAGE_MS: u64 = 150;

fn message(id: &JobId) -> JobMessage {
    JobMessage {
        job_id: id.clone(),
        hop: 0,
    }
}

#[tokio::test]
async fn a_hanging_d1_is_a_transient_store_timeout_and_changes_nothing() {
    let server = MockServer::start().await;
    mount_page(&server, 200, page(&THREE, None, false)).await;
    let h = harness(&server).await;
    let id = queued_job(&h).await;
    let before = h.job(&id).await;

    let db = TimedDb::new(SlowDb::new(&h.db, Slow::Every), h.clock.clone(), STORAGE_MS);
    let deps = h.deps_with(&db, &h.blobs);
    let handled = handle(&deps, &message(&id), 1).await;
    assert_eq!(
        handled.outcome,
        Err(Error::Store(StoreError::Timeout("database query")))
    );
    assert_eq!(handled.disposition, Disposition::Retry { delay_seconds: 2 });
    // The claim never ran: the row is as submitted, ready for the retry.
    assert_eq!(h.job(&id).await, before);
    assert_eq!(before.status, JobStatus::Queued);
    assert!(
        received(&server, "GET").await.is_empty(),
        "no upstream call"
    );
    assert!(h.blobs.keys("").is_empty());

    // The redelivery over a healthy database completes.
    let again = h.deliver(&id, 0, 2).await;
    assert_eq!(again.outcome, Ok(Outcome::Completed));
}

#[tokio::test]
async fn a_d1_commit_timeout_leaves_the_job_failed_without_a_checkpoint() {
    let server = MockServer::start().await;
    mount_page(&server, 200, page(&THREE, None, false)).await;
    let h = harness(&server).await;
    let id = queued_job(&h).await;

    // Only the chunk's commit batch hangs; recording the failure works.
    let db = TimedDb::new(
        SlowDb::new(&h.db, Slow::FirstBatch),
        h.clock.clone(),
        STORAGE_MS,
    );
    let deps = h.deps_with(&db, &h.blobs);
    let handled = handle(&deps, &message(&id), 1).await;
    assert_eq!(
        retry_error(&handled),
        Error::Store(StoreError::Timeout("database batch")).to_string()
    );
    assert_eq!(
        handled.disposition,
        Disposition::Ack,
        "rescheduled by its own message"
    );
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or("")
            .contains("timed out"),
        "{:?}",
        job.last_error
    );
    assert_eq!(job.attempts, 1);
    assert_eq!(job.chunks_done, 0);
    assert_eq!(h.count("SELECT COUNT(*) FROM job_chunks").await, 0);
    assert!(h.agg_rows("s1").is_empty(), "the batch never committed");
    assert_eq!(job.result_key, None);
}

#[tokio::test]
async fn an_r2_put_timeout_fails_the_job_transiently_with_no_progress() {
    let server = MockServer::start().await;
    mount_page(&server, 200, page(&THREE, None, false)).await;
    let h = harness(&server).await;
    let id = queued_job(&h).await;

    let blobs = TimedBlobs::new(SlowPut { inner: &h.blobs }, h.clock.clone(), STORAGE_MS);
    let deps = h.deps_with(&h.db, &blobs);
    let handled = handle(&deps, &message(&id), 1).await;
    assert_eq!(
        retry_error(&handled),
        Error::Store(StoreError::Timeout("object put")).to_string()
    );
    assert_retried(&h, &id, &handled, 2, "object put timed out").await;
    assert!(h.agg_rows("s1").is_empty());

    // Not completed, and the redelivery over a healthy store completes it.
    let again = h.deliver(&id, 0, 2).await;
    assert_eq!(again.outcome, Ok(Outcome::Completed));
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.chunks_done, 1);
    assert_eq!(job.sample_count, 3);
}

// ---------------------------------------------------------------- alerts

/// A harness whose alert webhook is `server`'s [`HOOK`], with a queued job.
async fn alerting(server: &MockServer) -> (Harness, JobId) {
    let mut h = harness(server).await;
    h.cfg.alert_webhook_url = Some(format!("{}{HOOK}", server.uri()).into());
    h.cfg.alert_timeout_ms = 200;
    let id = queued_job(&h).await;
    (h, id)
}

async fn kill(
    h: &Harness,
    id: Option<&JobId>,
    message: &serde_json::Value,
) -> Result<DeadOutcome, Error> {
    dead_letter(&h.deps(), id, "retries exhausted", message).await
}

fn hook_ok() -> Mock {
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(ResponseTemplate::new(200))
}

#[tokio::test]
async fn an_alert_that_fails_once_is_retried_and_the_job_marked_alerted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    hook_ok().mount(&server).await;
    let (h, id) = alerting(&server).await;

    let out = kill(&h, Some(&id), &json!({"job_id": id}))
        .await
        .expect("alerted");
    let job = h.job(&id).await;
    let key = archive_key(id.as_str(), job.finished_at.unwrap());
    assert_eq!(
        out,
        DeadOutcome::Dead {
            archive_key: key.clone(),
            alerted_now: true
        }
    );
    let posts = received(&server, "POST").await;
    assert_eq!(posts.len(), 2, "a 500, then the 200");
    for p in &posts {
        assert_eq!(
            p.headers["idempotency-key"],
            key.as_str(),
            "one key per death"
        );
    }
    let alert: serde_json::Value = serde_json::from_slice(&posts[1].body).unwrap();
    assert_eq!(alert["job_id"], id.as_str());
    assert_eq!(alert["archive_key"], key.as_str());
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert!(job.alerted_at.is_some());
    assert!(h.blobs.object(&key).is_some(), "archived");
}

#[tokio::test]
async fn a_timing_out_alert_webhook_fails_transiently_and_a_later_call_alerts_once() {
    let server = MockServer::start().await;
    let hanging = server
        .register_as_scoped(
            Mock::given(method("POST"))
                .and(path(HOOK))
                .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))),
        )
        .await;
    let (h, id) = alerting(&server).await;
    let msg = json!({"job_id": id});

    let err = kill(&h, Some(&id), &msg).await.expect_err("alert failed");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    let tries = received(&server, "POST").await.len();
    assert_eq!(tries, 3, "a few tries per call, then give up");
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert_eq!(job.alerted_at, None, "not alerted yet");
    let key = archive_key(id.as_str(), job.finished_at.unwrap());
    assert!(h.blobs.object(&key).is_some(), "archived before alerting");

    // The webhook recovers; the retried call alerts exactly once more.
    drop(hanging);
    hook_ok().mount(&server).await;
    let out = kill(&h, Some(&id), &msg).await.expect("alerted");
    assert_eq!(
        out,
        DeadOutcome::Dead {
            archive_key: key.clone(),
            alerted_now: true
        }
    );
    assert_eq!(received(&server, "POST").await.len(), tries + 1);
    let job = h.job(&id).await;
    assert!(job.alerted_at.is_some());
    assert_eq!(job.status, JobStatus::FailedPermanent);

    // And never again.
    let out = kill(&h, Some(&id), &msg).await.expect("done");
    assert_eq!(
        out,
        DeadOutcome::Dead {
            archive_key: key,
            alerted_now: false
        }
    );
    assert_eq!(received(&server, "POST").await.len(), tries + 1);
}

#[tokio::test]
async fn a_duplicate_dead_letter_delivery_alerts_once() {
    let server = MockServer::start().await;
    hook_ok().mount(&server).await;
    let (h, id) = alerting(&server).await;
    let msg = json!({"job_id": id});

    let first = kill(&h, Some(&id), &msg).await.expect("first");
    let second = kill(&h, Some(&id), &msg).await.expect("second");
    assert!(
        matches!(
            &first,
            DeadOutcome::Dead {
                alerted_now: true,
                ..
            }
        ),
        "{first:?}"
    );
    assert!(
        matches!(
            &second,
            DeadOutcome::Dead {
                alerted_now: false,
                ..
            }
        ),
        "{second:?}"
    );
    assert_eq!(received(&server, "POST").await.len(), 1);
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert!(job.alerted_at.is_some());
    assert_eq!(h.blobs.keys("dead-letters/").len(), 1, "one archive");
    let events = h
        .count("SELECT COUNT(*) FROM job_events WHERE status = 'failed_permanent'")
        .await;
    assert_eq!(events, 1, "one terminal transition");
}

#[tokio::test]
async fn a_job_retried_by_its_owner_that_dies_again_the_same_day_gets_a_second_archive_and_alert() {
    let server = MockServer::start().await;
    hook_ok().mount(&server).await;
    let (h, id) = alerting(&server).await;
    let msg = json!({"job_id": id});

    kill(&h, Some(&id), &msg).await.expect("first death");
    let first = h.job(&id).await;
    let first_key = archive_key(id.as_str(), first.finished_at.unwrap());
    let (_, sent) = manage::retry(
        (&h.db, &h.queue, &h.clock),
        &h.cfg,
        "alice",
        &id,
        &|_: &str| {},
    )
    .await
    .expect("owner retries");
    assert!(sent);
    // An hour on: a job is alerted at most once an hour.
    h.clock.set_now((NOW + 61 * 60_000).into());
    kill(&h, Some(&id), &msg).await.expect("second death");
    let second = h.job(&id).await;
    let second_key = archive_key(id.as_str(), second.finished_at.unwrap());

    assert_ne!(first_key, second_key);
    assert_eq!(
        h.blobs.keys("dead-letters/"),
        vec![first_key.clone(), second_key.clone()],
        "both deaths are archived, the first is kept"
    );
    let archived: serde_json::Value =
        serde_json::from_slice(&h.blobs.object(&second_key).unwrap().0).unwrap();
    let events = archived["events"].as_array().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["status"] == "failed_permanent")
            .count(),
        2,
        "the second archive holds the whole history: {events:?}"
    );

    let posts = received(&server, "POST").await;
    assert_eq!(posts.len(), 2, "one alert per death");
    for (post, key) in posts.iter().zip([&first_key, &second_key]) {
        let alert: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(alert["archive_key"], key.as_str());
        assert_eq!(post.headers["idempotency-key"], key.as_str());
    }
}

#[tokio::test]
async fn an_unparseable_message_is_archived_raw_and_alerted_once() {
    let server = MockServer::start().await;
    hook_ok().mount(&server).await;
    let (h, _) = alerting(&server).await;
    let raw = json!({"garbage": "{not a job message"});

    let first = kill(&h, None, &raw).await.expect("archived");
    let DeadOutcome::ArchivedRaw(key) = &first else {
        panic!("expected a raw archive, got {first:?}");
    };
    assert!(key.starts_with("dead-letters/"), "{key}");
    assert!(key.contains("unparsed-"), "{key}");
    let (doc, _) = h.blobs.object(key).expect("archive object");
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["kind"], "raw_message");
    assert_eq!(doc["message"], raw);
    let posts = received(&server, "POST").await;
    assert_eq!(posts.len(), 1);
    let alert: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(alert["archive_key"], key.as_str());

    let second = kill(&h, None, &raw).await.expect("again");
    assert_eq!(second, first, "same archive");
    assert_eq!(received(&server, "POST").await.len(), 1, "alerted once");
    assert_eq!(h.blobs.keys("dead-letters/").len(), 1);
}

// ------------------------------------------------- known production bugs

#[tokio::test]
async fn bug_an_unparseable_message_whose_alert_failed_is_alerted_on_redelivery() {
    let server = MockServer::start().await;
    let failing = server
        .register_as_scoped(
            Mock::given(method("POST"))
                .and(path(HOOK))
                .respond_with(ResponseTemplate::new(500)),
        )
        .await;
    let (h, _) = alerting(&server).await;
    let raw = json!({"garbage": "{not a job message"});

    let err = kill(&h, None, &raw).await.expect_err("alert failed");
    assert!(err.is_transient(), "{err:?}: the DLQ message is retried");
    let tries = received(&server, "POST").await.len();

    drop(failing);
    hook_ok().mount(&server).await;
    kill(&h, None, &raw).await.expect("archived");
    assert_eq!(
        received(&server, "POST").await.len(),
        tries + 1,
        "the retried message must still be alerted once"
    );
}

#[tokio::test]
async fn bug_a_permanent_failure_whose_alert_failed_is_alerted_on_redelivery() {
    let server = MockServer::start().await;
    mount_page(&server, 404, "{}".into()).await;
    let failing = server
        .register_as_scoped(
            Mock::given(method("POST"))
                .and(path(HOOK))
                .respond_with(ResponseTemplate::new(500)),
        )
        .await;
    let (h, id) = alerting(&server).await;

    let first = h.deliver(&id, 0, 1).await;
    assert!(
        matches!(first.disposition, Disposition::Retry { .. }),
        "{first:?}"
    );
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert_eq!(job.alerted_at, None);
    let tries = received(&server, "POST").await.len();

    // The queue redelivers as told; the webhook is back.
    drop(failing);
    hook_ok().mount(&server).await;
    let second = h.deliver(&id, 0, 2).await;
    assert_eq!(second.disposition, Disposition::Ack);
    assert_eq!(
        received(&server, "POST").await.len(),
        tries + 1,
        "the redelivery must finish the terminal path and alert: {second:?}"
    );
    assert!(h.job(&id).await.alerted_at.is_some());
}

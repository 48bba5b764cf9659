//! The upstream as ACE really behaves (`PLATFORM.md` §4), natively: the
//! in-process simulator in its faithful mode (whole-site time-major pages
//! that ignore `point_names`, naive times, the buggy cursor, ACE's error
//! codes) or wiremock speaking the same wire shapes, the rest of the
//! harness as everywhere else.
//!
//! What is checked: every timestamp form gives the same samples; the
//! repaired cursor walks pages smaller than a bucket without fetching one
//! twice; a repeated page and an endless walk are permanent errors; each
//! error class (403, 500 with ACE's body, 404 per point) does what it
//! should to the job and the circuit; a walk keeps only the job's points;
//! both plans write the same bytes; a walk that breaks mid-window resumes
//! to the same object; `points_without_data`; what `auto` picks; point
//! names that need escaping.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ace_sim::{SimConfig, TimeFormat};
use serde_json::{json, Value};
use tsp_core::codec::ObjectReader;
use tsp_core::domain::{format_rfc3339, parse_rfc3339, EpochMs, JobId, DAY_MS, HOUR_MS};
use tsp_core::error::UpstreamError;
use tsp_core::job::{Job, JobStatus};
use tsp_core::plan::{self, JobShape, Plan, PlanChoice, SiteInfo};
use tsp_core::ports::{HttpClient, HttpRequest, HttpResponse, JobMessage, SqlDb};
use tsp_core::service::process::{handle, Outcome};
use tsp_core::store;
use tsp_native::ReqwestHttp;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::*;

/// A day inside one month.
fn day() -> (EpochMs, EpochMs) {
    let start = parse_rfc3339("2025-10-06T00:00:00Z").unwrap();
    (start, start + DAY_MS)
}

fn job_body(site: &str, points: &[String], (start, end): (EpochMs, EpochMs), plan: &str) -> Value {
    json!({"site": site, "points": points, "start": format_rfc3339(start),
           "end": format_rfc3339(end), "plan": plan})
}

/// Submits, runs every message, and returns the job.
async fn run(h: &Harness, body: &Value) -> (JobId, Job) {
    let id = h.submit_new(body).await;
    h.drain().await;
    let job = h.job(&id).await;
    (id, job)
}

/// `n` reporting points of `site` spread over its catalogue (not only its
/// first ones), sorted.
fn spread_points(site: &str, n: usize) -> Vec<String> {
    let all = ace_sim::reporting_points(site, &SimConfig::default());
    let step = (all.len() / n).max(1);
    let mut points: Vec<String> = all.into_iter().step_by(step).take(n).collect();
    assert_eq!(points.len(), n);
    points.sort();
    points
}

/// A name no catalogue holds, in `site`'s namespace (the simulator's
/// point endpoint answers 404 for it).
fn unknown_point(site: &str) -> String {
    format!("ses/ses_{site}/no/such/point")
}

/// Alerts the simulator's receiver got that are about the circuit.
async fn circuit_alerts(sim: &str) -> Vec<Value> {
    let all: Vec<Value> = reqwest::get(format!("{sim}/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.into_iter()
        .filter(|a| {
            a["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("circuit"))
        })
        .collect()
}

// ------------------------------------------------------- timestamps, paging

#[tokio::test]
async fn each_timestamp_form_gives_the_same_exact_samples() {
    let site = "formats";
    let points = sim_points(site, 3);
    let (start, end) = day();
    let mut objects = Vec::new();
    for (format, shape) in [
        (TimeFormat::Naive, "2025-10-06T00:00:00\""),
        (TimeFormat::Micros, "2025-10-06T00:00:00."),
        (TimeFormat::Z, "2025-10-06T00:00:00Z\""),
    ] {
        let sim = spawn_sim(SimConfig {
            time_format: format,
            ..SimConfig::default()
        })
        .await;
        // The simulator really writes this form (its point endpoint
        // shares the row writer).
        let first = reqwest::Client::new()
            .get(format!(
                "{sim}/sites/{site}/timeseries/paginated?start_time=2025-10-06T00:00:00Z\
                 &end_time=2025-10-06T00:05:00Z&page_size=3"
            ))
            .bearer_auth("dev-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(first.contains(shape), "{format:?}: {first}");
        for plan in ["site", "point"] {
            let h = Harness::new(&sim);
            let (id, job) = run(&h, &job_body(site, &points, (start, end), plan)).await;
            assert_eq!(job.status, JobStatus::Completed, "{format:?} {plan}");
            assert_eq!(job.plan.map(|p| p.as_str()), Some(plan));
            let bytes = h.result(&id).await;
            assert_exact(&bytes, site, &points, (start, end), &[]);
            objects.push(bytes);
        }
    }
    assert!(
        objects.windows(2).all(|w| w[0] == w[1]),
        "every form and plan writes the same object"
    );
}

#[tokio::test]
async fn the_repaired_cursor_walks_pages_smaller_than_a_bucket_fetching_each_once() {
    // A 50-point site (38 report): every bucket spans several pages.
    let site = "cursor";
    let reporting = ace_sim::reporting_points(site, &SimConfig::default()).len();
    let points = spread_points(site, 5);
    // Four hours: 48 buckets of every reporting point, one window.
    let start = day().0;
    let range = (start, start + 4 * HOUR_MS);
    for page_size in [10u32, 3] {
        let sim = spawn_sim(SimConfig::default()).await;
        // The simulator has ACE's bug: a page inside one bucket hands back
        // the cursor it was given.
        let url = |cursor: Option<&str>| {
            let mut u = format!(
                "{sim}/sites/{site}/timeseries/paginated?start_time=2025-10-06T00:00:00Z\
                 &end_time=2025-10-06T04:00:00Z&page_size={page_size}"
            );
            if let Some(c) = cursor {
                u.push_str(&format!("&cursor={}", tsp_core::upstream::escape(c)));
            }
            u
        };
        let get = |u: String| async move {
            let v: Value = reqwest::Client::new()
                .get(u)
                .bearer_auth("dev-token")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["next_cursor"].as_str().unwrap().to_owned()
        };
        let c1 = get(url(None)).await;
        let c2 = get(url(Some(&c1))).await;
        assert_eq!(c1, c2, "the simulator's cursor bug is on");
        let before = sim_stats(&sim).await["requests_paginated"]
            .as_u64()
            .unwrap();

        let mut h = Harness::new(&sim);
        h.cfg.page_size = page_size;
        let (id, job) = run(&h, &job_body(site, &points, range, "site")).await;
        assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
        assert_eq!(job.page_size, Some(i64::from(page_size)));
        assert_eq!(
            h.result(&id).await,
            expected_object(site, &points, range.0, range.1, job.window_days),
            "page size {page_size}"
        );
        let rows = (reporting * 48) as u64;
        let one_pass = rows.div_ceil(u64::from(page_size));
        let walked = sim_stats(&sim).await["requests_paginated"]
            .as_u64()
            .unwrap()
            - before;
        assert_eq!(walked, one_pass, "page size {page_size}: no page twice");
        // Its own count agrees (plus the catalogue request).
        assert_eq!(job.upstream_requests as u64, one_pass + 1);
    }
}

/// The upstream's answer to every paginated request: the same page.
fn same_page_every_time() -> String {
    ace_page(
        &[
            ("p1", "1", "2025-10-06T00:00:00"),
            ("p2", "2", "2025-10-06T00:00:00"),
        ],
        Some(&ace_cursor(2, "2025-10-06T00:00:00")),
        true,
    )
}

#[tokio::test]
async fn a_page_identical_to_the_one_before_is_a_permanent_error() {
    let server = MockServer::start().await;
    mount_catalogue(&server, "s1", &names(3)).await;
    Mock::given(method("GET"))
        .and(path(pages_path("s1")))
        .respond_with(ResponseTemplate::new(200).set_body_string(same_page_every_time()))
        .mount(&server)
        .await;
    let h = Harness::new(&server.uri());
    let (_, job) = run(&h, &job_body("s1", &names(1), day(), "site")).await;

    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert_eq!(job.attempts, 1, "not retried");
    let why = job.last_error.unwrap_or_default();
    assert!(why.contains("the same page twice in a row"), "{why}");
    assert_eq!(
        received_on(&server, &pages_path("s1")).await.len(),
        2,
        "stopped at the first repeat"
    );
}

/// An upstream whose walk never ends: every page is a new timestamp bucket
/// of points outside the job, and says more follow.
struct Endless(AtomicU64);

impl Respond for Endless {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let k = self.0.fetch_add(1, Ordering::SeqCst) as i64;
        let time = naive_time(day().0 + k * FIVE_MIN);
        let rows: Vec<(String, &str, String)> = (2..=10)
            .map(|i| (format!("p{i}"), "1", time.clone()))
            .collect();
        let rows: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|(n, v, t)| (n.as_str(), *v, t.as_str()))
            .collect();
        ResponseTemplate::new(200).set_body_string(ace_page(&rows, None, true))
    }
}

/// `YYYY-MM-DDTHH:MM:SS`, naive UTC as ACE writes it.
fn naive_time(ms: impl Into<EpochMs>) -> String {
    format_rfc3339(ms).trim_end_matches('Z').to_owned()
}

#[tokio::test]
async fn an_upstream_that_never_ends_fails_fast_at_the_page_bound() {
    let server = MockServer::start().await;
    mount_catalogue(&server, "s1", &names(10)).await;
    Mock::given(method("GET"))
        .and(path(pages_path("s1")))
        .respond_with(Endless(AtomicU64::new(0)))
        .mount(&server)
        .await;
    let mut h = Harness::new(&server.uri());
    h.cfg.page_size = 10;
    h.cfg.chunk_max_samples = 20;
    // The bound: a window's CHUNK_MAX_SAMPLES of the job's one point,
    // scaled to the site's ten, in pages of ten, and two more.
    let (max_samples, site_points, job_points, page) = (20u64, 10, 1, 10);
    let bound = (max_samples * site_points / job_points).div_ceil(page) + 2;
    assert!(bound < h.cfg.subrequest_budget / 100);
    let t0 = Instant::now();
    let (_, job) = run(&h, &job_body("s1", &names(1), day(), "site")).await;

    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert_eq!(job.attempts, 1, "permanent at once");
    let why = job.last_error.unwrap_or_default();
    assert!(why.contains(&format!("passed {bound} pages")), "{why}");
    assert_eq!(
        received_on(&server, &pages_path("s1")).await.len() as u64,
        bound,
        "not one page past the bound"
    );
}

// ------------------------------------------------------------ error classes

#[tokio::test]
async fn a_403_on_the_site_fails_the_job_at_its_first_delivery_and_leaves_the_circuit_alone() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    h.cfg.alert_webhook_url = Some(format!("{sim}/alerts").into());
    // Two failures of two sites already: one more counted failure would
    // open the circuit (CIRCUIT_THRESHOLD = 3).
    h.db.query_raw(
        "UPDATE upstream_circuit SET failures = 2, multi_site = 1, last_site = 'elsewhere' \
         RETURNING id",
    )
    .unwrap();
    let circuit = h.circuit();
    let site = "unknown-403";
    let id = h
        .submit_new(&job_body(site, &[unknown_point(site)], day(), "auto"))
        .await;
    h.queue.drain();

    let first = h.deliver(&id, 0, 1).await;
    assert!(
        matches!(&first.outcome, Ok(Outcome::DeadLettered(r))
            if r.contains("HTTP 403") && r.contains("site unknown or not permitted")),
        "{first:?}"
    );
    let job = h.job(&id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::FailedPermanent, 1));
    assert_eq!(job.plan, None, "failed before any plan");
    assert_eq!(h.circuit(), circuit, "the circuit never heard of it");
    assert!(circuit_alerts(&sim).await.is_empty());
    assert!(!h
        .logs
        .borrow()
        .iter()
        .any(|l| l.contains("\"event\":\"circuit\"")));
    assert!(h.queue.drain().is_empty(), "no retry scheduled");
}

#[tokio::test]
async fn aces_500_for_a_wrong_token_is_transient_and_the_circuit_alert_quotes_it() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    h.cfg.upstream_token = "not-the-token".into();
    h.cfg.page_retry_ms = 0;
    h.cfg.alert_webhook_url = Some(format!("{sim}/alerts").into());
    // Failures count at once, however close together (the spread rule has
    // tests of its own).
    h.cfg.circuit_spread_ms = 0;

    // One failure: the job is retried, not dead, and the circuit holds.
    let first = h
        .submit_new(&job_body(
            "token-a",
            &sim_points("token-a", 1),
            day(),
            "auto",
        ))
        .await;
    h.queue.drain();
    let got = h.deliver(&first, 0, 1).await;
    assert!(
        matches!(&got.outcome, Ok(Outcome::Retrying { progressed: false, error, .. })
            if error.contains("HTTP 500") && error.contains("An unhandled exception occurred")),
        "{got:?}"
    );
    let job = h.job(&first).await;
    assert_eq!(job.status, JobStatus::Failed, "transient: not dead");
    assert_eq!(h.queue.drain().len(), 1, "its retry is scheduled");
    assert_eq!(h.circuit()[0]["state"], "closed");
    assert!(circuit_alerts(&sim).await.is_empty());

    // The same answer twice more (the threshold): the upstream is down,
    // and the alert says what it answered.
    for site in ["token-b", "token-c"] {
        let id = h
            .submit_new(&job_body(site, &sim_points(site, 1), day(), "auto"))
            .await;
        h.queue.drain();
        h.deliver(&id, 0, 1).await;
    }
    assert_eq!(h.circuit()[0]["state"], "open");
    let alerts = circuit_alerts(&sim).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let text = alerts[0]["text"].as_str().unwrap_or_default();
    assert_eq!(alerts[0]["event"], "circuit_opened");
    assert!(
        text.contains("HTTP 500") && text.contains("An unhandled exception occurred"),
        "{text}"
    );
}

#[tokio::test]
async fn a_404_on_the_point_endpoint_is_a_point_without_data() {
    let sim = spawn_sim(SimConfig::default()).await;
    let site = "p404";
    let unknown = unknown_point(site);
    // The simulator does answer 404 for it.
    let status = reqwest::Client::new()
        .get(format!(
            "{sim}/points/{}/timeseries?start_time=2025-10-06T00:00:00Z&end_time=2025-10-07T00:00:00Z",
            tsp_core::upstream::escape(&unknown)
        ))
        .bearer_auth("dev-token")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let mut points = sim_points(site, 2);
    points.push(unknown.clone());
    points.sort();
    let h = Harness::new(&sim);
    let (id, job) = run(&h, &job_body(site, &points, day(), "point")).await;

    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    assert_eq!(job.plan, Some(Plan::Point));
    assert_eq!(without_data(&job), Some(vec![unknown.clone()]));
    assert_exact(&h.result(&id).await, site, &points, day(), &[unknown]);
    assert_eq!(
        sim_stats(&sim).await["requests_point"].as_u64().unwrap(),
        1 + 3,
        "one request per point, the 404 not retried"
    );
}

#[tokio::test]
async fn points_without_data_lists_a_silent_point_and_an_unknown_name_and_nothing_else() {
    let sim = spawn_sim(SimConfig::default()).await;
    let site = "quiet";
    let silent = ace_sim::silent_points(site, &SimConfig::default()).remove(0);
    let unknown = unknown_point(site);
    let mut points = sim_points(site, 3);
    points.extend([silent.clone(), unknown.clone()]);
    points.sort();
    let mut want = vec![silent, unknown];
    want.sort();
    for plan in ["site", "point"] {
        let h = Harness::new(&sim);
        let (id, job) = run(&h, &job_body(site, &points, day(), plan)).await;
        assert_eq!(job.status, JobStatus::Completed, "{plan}");
        assert_eq!(without_data(&job), Some(want.clone()), "{plan}");
        assert_exact(&h.result(&id).await, site, &points, day(), &want);
    }
}

// -------------------------------------------------- demultiplexing, plans

#[tokio::test]
async fn a_site_walk_keeps_only_the_jobs_five_points_of_a_200_point_site() {
    let sim = spawn_sim(SimConfig::default()).await;
    let site = "demux-200pts";
    let reporting = ace_sim::reporting_points(site, &SimConfig::default()).len();
    let points = spread_points(site, 5);
    let h = Harness::new(&sim);
    let (id, job) = run(&h, &job_body(site, &points, day(), "site")).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    assert_eq!(job.plan, Some(Plan::Site));

    // The walk read every reporting point of the site...
    let rows = sim_stats(&sim).await["rows_served"].as_u64().unwrap();
    assert_eq!(rows, (reporting * 288) as u64);
    // ...and the object holds the job's five, exactly.
    let bytes = h.result(&id).await;
    let mut reader = ObjectReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.header.points, points);
    let mut blocks = Vec::new();
    while let Some(b) = reader.next_block().unwrap() {
        blocks.push(b.p);
    }
    assert_eq!(blocks, vec![0, 1, 2, 3, 4], "one window: a block per point");
    assert_exact(&bytes, site, &points, day(), &[]);
    // Aggregates of those five only.
    let agg: Vec<String> =
        h.db.query_raw("SELECT DISTINCT point FROM timeseries_agg ORDER BY point")
            .unwrap()
            .iter()
            .map(|r| r["point"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(agg, points);
}

#[tokio::test]
async fn both_plans_write_byte_identical_objects() {
    let sim = spawn_sim(SimConfig::default()).await;
    let site = "plans-60pts";
    let mut points = spread_points(site, 4);
    points.push(ace_sim::silent_points(site, &SimConfig::default()).remove(0));
    points.sort();
    // Across a month boundary, in one-day windows: three windows.
    let start = parse_rfc3339("2025-09-29T00:00:00Z").unwrap();
    let range = (start, start + 3 * DAY_MS);
    let mut objects = Vec::new();
    for plan in ["site", "point"] {
        let mut h = Harness::new(&sim);
        h.cfg.window_max_samples = 288 * points.len() as u64;
        let (id, job) = run(&h, &job_body(site, &points, range, plan)).await;
        assert_eq!(
            job.status,
            JobStatus::Completed,
            "{plan}: {:?}",
            job.last_error
        );
        assert_eq!(job.plan.map(|p| p.as_str()), Some(plan));
        assert_eq!(job.chunks_total, 3);
        objects.push((h.result(&id).await, job.result_sha256));
    }
    assert!(
        objects[0].0 == objects[1].0,
        "the plans wrote different bytes"
    );
    assert_eq!(objects[0].1, objects[1].1);
    assert_eq!(
        objects[0].0,
        expected_object(site, &points, range.0, range.1, 1)
    );
}

/// An upstream client whose `nth` request to `on` fails as a dropped
/// connection; every other request goes through.
struct FailNth<'a> {
    inner: &'a ReqwestHttp,
    on: &'static str,
    nth: u64,
    seen: Cell<u64>,
}

impl HttpClient for FailNth<'_> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, UpstreamError> {
        if req.url.contains(self.on) {
            self.seen.set(self.seen.get() + 1);
            if self.seen.get() == self.nth {
                return Err(UpstreamError::Network(
                    "injected: connection reset mid-walk".into(),
                ));
            }
        }
        self.inner.send(req).await
    }
}

#[tokio::test]
async fn a_walk_broken_in_the_middle_of_a_window_resumes_to_the_same_object() {
    let sim = spawn_sim(SimConfig::default()).await;
    let site = "midwalk";
    let reporting = ace_sim::reporting_points(site, &SimConfig::default()).len() as u64;
    let points = spread_points(site, 3);
    let start = day().0;
    let range = (start, start + 2 * DAY_MS);
    let body = job_body(site, &points, range, "site");
    let setup = |h: &mut Harness| {
        h.cfg.page_size = 100;
        h.cfg.window_max_samples = 288 * points.len() as u64; // two windows
        h.cfg.upstream_concurrency = 1;
        h.cfg.page_retry_ms = 0; // the failure ends the delivery
    };
    let mut clean = Harness::new(&sim);
    setup(&mut clean);
    let (clean_id, clean_job) = run(&clean, &body).await;
    let want = clean.result(&clean_id).await;
    assert_eq!(want, expected_object(site, &points, range.0, range.1, 1));

    // The second window's walk breaks halfway through its pages.
    let per_window = (reporting * 288).div_ceil(100);
    let mut h = Harness::new(&sim);
    setup(&mut h);
    let id = h.submit_new(&body).await;
    h.queue.drain();
    let flaky = FailNth {
        inner: &h.http,
        on: "/timeseries/paginated",
        nth: per_window + per_window / 2,
        seen: Cell::new(0),
    };
    let msg = JobMessage {
        job_id: id.clone(),
        hop: 0,
    };
    let first = handle(&h.deps_with_http(&flaky), &msg, 1).await;
    assert!(
        matches!(&first.outcome, Ok(Outcome::Retrying { progressed: true, error, .. })
            if error.contains("injected")),
        "{first:?}"
    );
    let mid = h.job(&id).await;
    assert_eq!((mid.status, mid.chunks_done), (JobStatus::Failed, 1));
    assert!(h.blobs.keys("results/").is_empty());

    // The redelivery walks the broken window again from its start.
    h.queue.drain();
    let again = handle(&h.deps_with_http(&flaky), &msg, 2).await;
    assert_eq!(again.outcome, Ok(Outcome::Completed), "{again:?}");
    let job = h.job(&id).await;
    assert_eq!(job.sample_count, clean_job.sample_count, "nothing twice");
    assert_eq!(h.result(&id).await, want);
    assert_eq!(h.agg_rows(site), clean.agg_rows(site));
}

// ------------------------------------------------------------------- auto

/// Bytes of `points`' rows over `[start, end)` as the simulator writes
/// them (`{"name","value","time"}` and a comma), without envelopes.
fn own_row_bytes(site: &str, points: &[String], (start, end): (EpochMs, EpochMs)) -> u64 {
    let empty = r#"{"name":"","value":"","time":"2025-01-01T00:00:00"},"#.len();
    points
        .iter()
        .map(|p| {
            ace_sim::samples(site, p, start.ms(), end.ms(), FIVE_MIN)
                .iter()
                .map(|(_, v)| (empty + p.len() + v.len()) as u64)
                .sum::<u64>()
        })
        .sum()
}

#[tokio::test]
async fn auto_asks_per_point_for_ten_points_of_a_2000_point_site_reading_little_more_than_their_rows(
) {
    let sim = spawn_sim(SimConfig::default()).await;
    let site = "big-2000pts";
    let points = spread_points(site, 10);
    // 28 days, one window: the catalogue request (2,000 items) is small
    // beside the job's own rows.
    let start = parse_rfc3339("2025-06-01T00:00:00Z").unwrap();
    let range = (start, start + 28 * DAY_MS);
    let h = Harness::new(&sim);
    let (id, job) = run(&h, &job_body(site, &points, range, "auto")).await;

    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    assert_eq!(job.plan, Some(Plan::Point));
    assert_eq!(job.site_points, Some(2_000));
    assert_eq!(
        job.upstream_requests,
        1 + 10,
        "the catalogue, then one per point"
    );
    let own = own_row_bytes(site, &points, range);
    let read = job.upstream_bytes as u64;
    assert!(
        read as f64 <= 1.2 * own as f64,
        "read {read} bytes for {own} bytes of the job's rows"
    );
    assert_eq!(sim_stats(&sim).await["requests_paginated"], 0);
    assert_exact(&h.result(&id).await, site, &points, range, &[]);
}

#[tokio::test]
async fn auto_walks_the_site_for_every_point_of_a_12_point_site() {
    let sim = spawn_sim(SimConfig::default()).await;
    let site = "small-12pts";
    let mut points = ace_sim::catalogue(site, &SimConfig::default());
    points.sort();
    let range = (day().0, day().0 + 2 * DAY_MS);
    let h = Harness::new(&sim);
    let (_, job) = run(&h, &job_body(site, &points, range, "auto")).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    assert_eq!(job.plan, Some(Plan::Site));
    assert_eq!(sim_stats(&sim).await["requests_point"], 0);

    // And over a whole year, from the same inputs the planner had: the
    // site's size as cached, and a year-long job of all its points.
    let cached = store::select_site_info(site, EpochMs(0));
    let info: Vec<SiteInfo> = store::decode(h.db.query(&cached).await.unwrap()).unwrap();
    assert_eq!(info[0].points, 12);
    let year = JobShape {
        points: 12,
        max_name_bytes: points.iter().map(|p| p.len() as u64).max().unwrap(),
        days: 365,
        windows: 13,
    };
    assert_eq!(
        plan::choose(&h.cfg, PlanChoice::Auto, &info[0], &year),
        Plan::Site
    );
}

// ------------------------------------------------------------ point names

/// A point name that needs escaping in a path and in a query.
const ODD: &str = "AHU-1,SAT/a b";

#[tokio::test]
async fn a_point_name_with_a_comma_a_slash_and_a_space_reaches_the_upstream_intact() {
    // Names that are pieces or prefixes of ODD, or that it is a piece of.
    let catalogue: Vec<String> = ["AHU-1", "AHU-1,SAT/a", ODD, "SAT/a b"]
        .map(str::to_owned)
        .to_vec();
    let at = |t: &'static str| -> [(&'static str, &'static str, &'static str); 4] {
        [
            ("AHU-1", "9", t),
            ("AHU-1,SAT/a", "8", t),
            (ODD, "1.5", t),
            ("SAT/a b", "7", t),
        ]
    };

    // Per point: one path segment, percent-encoded whole.
    let server = MockServer::start().await;
    mount_catalogue(&server, "s1", &catalogue).await;
    let encoded = "/points/AHU-1%2CSAT%2Fa%20b/timeseries";
    let body = json!({"point_samples": [
        {"name": ODD, "value": "1.5", "time": "2025-10-06T00:00:00"},
        {"name": ODD, "value": "1.5", "time": "2025-10-06T00:05:00"},
    ]});
    Mock::given(method("GET"))
        .and(path(encoded))
        .respond_with(ResponseTemplate::new(200).set_body_string(body.to_string()))
        .mount(&server)
        .await;
    let h = Harness::new(&server.uri());
    let (_, job) = run(&h, &job_body("s1", &[ODD.to_owned()], day(), "point")).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    assert_eq!(
        job.sample_count, 2,
        "a 404 (any other path) would be no data"
    );
    assert_eq!(received_on(&server, encoded).await.len(), 1);

    // In a site walk: no name is sent (ACE ignores `point_names`), and a
    // row is kept by its exact name, not by a prefix or a piece of it.
    let server = MockServer::start().await;
    mount_catalogue(&server, "s1", &catalogue).await;
    let rows: Vec<_> = at("2025-10-06T00:00:00")
        .into_iter()
        .chain(at("2025-10-06T00:05:00"))
        .collect();
    Mock::given(method("GET"))
        .and(path(pages_path("s1")))
        .respond_with(ResponseTemplate::new(200).set_body_string(ace_page(&rows, None, false)))
        .mount(&server)
        .await;
    let h = Harness::new(&server.uri());
    let points = vec!["AHU-1".to_owned(), ODD.to_owned()];
    let (id, job) = run(&h, &job_body("s1", &points, day(), "site")).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    let walked = received_on(&server, &pages_path("s1")).await;
    assert_eq!(walked.len(), 1);
    assert!(!walked[0].url.query_pairs().any(|(k, _)| k == "point_names"));
    let (header, series) = tsp_core::codec::decode_object(&h.result(&id).await).unwrap();
    assert_eq!(header.points, points);
    for (p, want) in [(0, "9"), (1, "1.5")] {
        assert_eq!(series[p].len(), 2, "{}", points[p]);
        assert!(
            series[p].iter().all(|(_, v)| same_value(v, want)),
            "{}: {:?}",
            points[p],
            series[p]
        );
    }
}

/// A per-point endpoint that answers a span of more than `max_hours` with
/// `long` (too slow, or too large) and a shorter span with one sample at
/// its start; it counts the requests.
struct SpanUpstream {
    max_hours: i64,
    long: ResponseTemplate,
    requests: AtomicU64,
}

impl Respond for SpanUpstream {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().into_owned().collect();
        let at = |k: &str| parse_rfc3339(&q[k]).expect("an RFC 3339 bound");
        let (s, e) = (at("start_time"), at("end_time"));
        if e - s > self.max_hours * HOUR_MS {
            return self.long.clone();
        }
        let body =
            json!({"point_samples": [{"name": "p1", "value": "1.5", "time": naive_time(s)}]});
        ResponseTemplate::new(200).set_body_string(body.to_string())
    }
}

/// A one-day, one-point job under the point plan against `upstream`.
async fn halving_job(upstream: SpanUpstream, tweak: impl Fn(&mut Harness)) -> (Job, u64) {
    let server = MockServer::start().await;
    mount_catalogue(&server, "halve", &names(1)).await;
    let upstream = std::sync::Arc::new(upstream);
    Mock::given(method("GET"))
        .and(path("/points/p1/timeseries"))
        .respond_with(ArcRespond(upstream.clone()))
        .mount(&server)
        .await;
    let mut h = Harness::new(&server.uri());
    tweak(&mut h);
    let (_, job) = run(&h, &job_body("halve", &names(1), day(), "point")).await;
    (job, upstream.requests.load(Ordering::SeqCst))
}

struct ArcRespond(std::sync::Arc<SpanUpstream>);

impl Respond for ArcRespond {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.0.respond(req)
    }
}

#[tokio::test]
async fn a_per_point_span_that_times_out_is_halved_until_it_answers() {
    // The harness's upstream timeout is 2 s; a whole day takes 5 s.
    let slow = SpanUpstream {
        max_hours: 12,
        long: ResponseTemplate::new(200)
            .set_body_string(r#"{"point_samples":[]}"#)
            .set_delay(Duration::from_secs(5)),
        requests: AtomicU64::new(0),
    };
    let t0 = Instant::now();
    let (job, requests) = halving_job(slow, |_| {}).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    // The day timed out once (no retry in place: it can be halved), then
    // its two halves answered, one sample each.
    assert_eq!(requests, 3);
    assert_eq!(job.sample_count, 2);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn a_per_point_span_past_the_byte_cap_is_halved_until_it_fits() {
    // A day's answer is 64 KiB; the cap is 16 KiB. Six hours fit.
    let big = format!(r#"{{"point_samples":[],"pad":"{}"}}"#, "x".repeat(64 << 10));
    let large = SpanUpstream {
        max_hours: 6,
        long: ResponseTemplate::new(200).set_body_string(big),
        requests: AtomicU64::new(0),
    };
    let (job, requests) = halving_job(large, |h| h.cfg.upstream_max_page_bytes = 16 << 10).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    // 24 h, then 2 × 12 h, then 4 × 6 h: four samples, seven requests.
    assert_eq!(requests, 7);
    assert_eq!(job.sample_count, 4);
}

//! End to end: the built wasm Worker in the local Workers runtime (workerd
//! with local D1, R2 and Queues), the simulator as its upstream.
//!
//! `scripts/test.sh` starts the stack and runs these with `--ignored`; they
//! read `TSP_URL`, `TSP_SIM_URL` and `TSP_TOKEN` from the environment.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tsp_core::aggregate::Resolution;
use tsp_core::codec::decode_object;
use tsp_core::domain::{format_rfc3339, parse_rfc3339, DAY_MS};

use crate::support::{reference_aggregates, same_value, FIVE_MIN};

/// The running stack: the Worker, the simulator, a token and an HTTP
/// client (also used by `faults`).
pub(crate) struct Stack {
    pub(crate) url: String,
    /// The dead-letter Worker (its cron handler).
    pub(crate) dlq: String,
    pub(crate) sim: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
}

/// The second tenant configured by scripts/stack.sh.
const OTHER_TOKEN: &str = "other-tenant-token";
/// A third tenant (scripts/stack.sh), for tests that need another owner's
/// data without touching the second tenant's empty job list.
const THIRD_TOKEN: &str = "third-tenant-token";
/// A tenant whose token may use one site only, `e2e-granted`
/// (scripts/stack.sh: `granted-tenant-token=granted:e2e-granted`).
const GRANTED_TOKEN: &str = "granted-tenant-token";
/// The same tenant's token for every site.
const GRANTED_ALL_TOKEN: &str = "granted-all-token";

pub(crate) fn stack() -> Stack {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run scripts/test.sh"))
    };
    Stack {
        url: var("TSP_URL"),
        dlq: var("TSP_DLQ_URL"),
        sim: var("TSP_SIM_URL"),
        token: var("TSP_TOKEN"),
        // No pooled connections: the local dev server closes idle ones, and a
        // reused, already-closed connection fails a request spuriously.
        // Every request has a deadline, so a stalled runtime fails the test
        // with the request named instead of hanging the run.
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client"),
    }
}

impl Stack {
    /// A GET as `token`, the response as it came.
    pub(crate) async fn raw_get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub(crate) async fn post_job(&self, token: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST /v1/jobs");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The alerts the simulator's receiver recorded for one job.
    pub(crate) async fn alerts_for(&self, job_id: &str) -> Vec<Value> {
        let all: Vec<Value> = self
            .http
            .get(format!("{}/alerts", self.sim))
            .send()
            .await
            .expect("GET /alerts")
            .json()
            .await
            .expect("alerts JSON");
        all.into_iter().filter(|a| a["job_id"] == job_id).collect()
    }

    /// Polls a job until `done` says so; fails after `secs`.
    pub(crate) async fn wait(&self, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        self.wait_as(&self.token, id, secs, done).await
    }

    /// [`Stack::wait`] as the owner of `token`.
    pub(crate) async fn wait_as(
        &self,
        token: &str,
        id: &str,
        secs: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let t0 = Instant::now();
        loop {
            let (status, job) = self.get(token, &format!("/v1/jobs/{id}")).await;
            assert_eq!(status, 200, "{job}");
            if done(&job) {
                return job;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "job {id} did not finish in {secs} s: {job}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_job_completes_and_its_rows_and_object_match_the_simulator() {
    let s = stack();
    let site = "e2e-flow";
    let mut points = ace_sim::default_points(site, 3);
    points.sort();
    let start = parse_rfc3339("2025-09-28T00:00:00Z").unwrap();
    let end = start + 5 * DAY_MS;
    let body = json!({"site": site, "points": points, "start": format_rfc3339(start), "end": format_rfc3339(end)});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    assert_eq!(created["status_url"], format!("/v1/jobs/{id}"));

    let job = s.wait(&id, 120, |j| j["status"] == "completed").await;
    let expected: Vec<Vec<(i64, String)>> = points
        .iter()
        .map(|p| ace_sim::samples(site, p, start.into(), end.into(), FIVE_MIN))
        .collect();
    let total: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(job["progress"]["samples"], total);
    assert_eq!(
        job["progress"]["chunks_done"],
        job["progress"]["chunks_total"]
    );

    // D1: exactly one daily row per point per day, equal to the reference.
    for p in &points {
        let path = format!(
            "/v1/aggregates?site={site}&point={}&resolution=1d&from={}&to={}",
            urlencode(p),
            format_rfc3339(start),
            format_rfc3339(end)
        );
        let (status, page) = s.get(&s.token, &path).await;
        assert_eq!(status, 200, "{page}");
        let rows = page["rows"].as_array().unwrap();
        let want: Vec<_> = reference_aggregates(site, p, start, end)
            .into_iter()
            .filter(|a| a.resolution == Resolution::Day)
            .collect();
        assert_eq!(rows.len(), 5, "{p}");
        for (r, a) in rows.iter().zip(&want) {
            assert_eq!(r["bucket_start"].as_i64(), Some(a.bucket_start.ms()));
            assert_eq!(r["count"].as_u64(), Some(a.count));
            assert_eq!(r["min"].as_f64(), a.min);
            assert_eq!(r["max"].as_f64(), a.max);
            assert_eq!(r["mean"].as_f64(), a.mean);
            assert_eq!(r["non_numeric"].as_u64(), Some(a.non_numeric));
        }
    }

    // R2, through the result route: the object holds exactly the samples.
    let r = s
        .http
        .get(format!("{}/v1/jobs/{id}/result", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = r.bytes().await.unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(job["result"]["sha256"], sha.as_str());
    assert_eq!(job["result"]["bytes"], bytes.len());
    let (header, series) = decode_object(&bytes).unwrap();
    assert_eq!(header.points, points);
    let mut checksum_got = Sha256::new();
    let mut checksum_want = Sha256::new();
    for (got, want) in series.iter().zip(&expected) {
        assert_eq!(got.len(), want.len());
        for ((t, v), (wt, wv)) in got.iter().zip(want) {
            assert!(same_value(v, wv), "{t}: {v:?} vs {wv}");
            checksum_got.update(t.ms().to_le_bytes());
            checksum_want.update(wt.to_le_bytes());
        }
    }
    assert_eq!(checksum_got.finalize(), checksum_want.finalize());

    // A conditional GET with the ETag is a 304.
    let r = s
        .http
        .get(format!("{}/v1/jobs/{id}/result", s.url))
        .bearer_auth(&s.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // The Worker's CSV, converted slice by slice as R2 streams, is exactly
    // the exporter's output for the whole object at once.
    let r = s
        .http
        .get(format!("{}/v1/jobs/{id}/result?format=csv", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.bytes().await.unwrap();
    let mut ex = tsp_core::export::Exporter::new(tsp_core::export::Format::Csv);
    let mut want = ex.push(&bytes).unwrap();
    want.extend(ex.finish().unwrap());
    assert!(
        csv.as_ref() == want.as_slice(),
        "CSV differs ({} vs {} bytes)",
        csv.len(),
        want.len()
    );

    // Another tenant cannot see it.
    let (status, _) = s.get(OTHER_TOKEN, &format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_an_always_failing_site_ends_failed_permanent_archived_and_alerted_once() {
    let s = stack();
    // A point of the site's catalogue: the simulator finds the site of a
    // per-point request from the name.
    let point = ace_sim::default_points("always-fails", 1).remove(0);
    let body = json!({"site": "always-fails", "points": [point], "days": 2});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    // Deliveries backing off 2, 4, … 32 s until the stack's
    // MAX_UPSTREAM_WAIT_MS (one minute) has passed, then the terminal path.
    let job = s
        .wait(&id, 240, |j| j["status"] == "failed_permanent")
        .await;
    let why = job["last_error"].as_str().unwrap();
    assert!(
        why.contains("503") && why.contains("MAX_UPSTREAM_WAIT_MS"),
        "{job}"
    );
    // Attempts: the deliveries that claimed it (waits for an open circuit,
    // which a single failing site now opens, claim nothing).
    assert!(job["attempts"].as_u64().unwrap() >= 2, "{job}");

    let (status, archive) = s.get(&s.token, &format!("/v1/jobs/{id}/archive")).await;
    assert_eq!(status, 200, "{archive}");
    // dead-letters/YYYY/MM/DD/{id}-{ms of death}.json
    let key = archive["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("dead-letters/"), "{key}");
    let name = key.rsplit('/').next().unwrap();
    let died_ms = name
        .strip_prefix(&format!("{id}-"))
        .and_then(|r| r.strip_suffix(".json"))
        .unwrap_or_else(|| panic!("{key}"));
    assert!(died_ms.parse::<u64>().is_ok(), "{key}");
    assert_eq!(archive["archive"]["job"]["id"], id.as_str());
    assert!(archive["archive"]["events"].as_array().unwrap().len() >= 3);

    // Exactly one alert reached the receiver (give a duplicate a moment).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = s.alerts_for(&id).await;
    assert_eq!(ours.len(), 1);
    assert_eq!(
        ours[0]["archive_key"],
        key.as_str(),
        "the alert names the archive"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_dead_letter_whose_alert_failed_keeps_its_first_archive_and_alerts_once() {
    let s = stack();
    // An unknown site is a permanent 404; the receiver fails the first three
    // alerts about it (one whole try of the terminal path), so the message is
    // redelivered and the terminal path runs again over an existing archive.
    let site = "unknown-flaky-alert";
    let r = s
        .http
        .post(format!("{}/alerts/fail-next?n=3&site={site}", s.sim))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = json!({"site": site, "points": ["p1"], "days": 1});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();

    let t0 = Instant::now();
    let alerts = loop {
        let ours = s.alerts_for(&id).await;
        if !ours.is_empty() {
            // Give a duplicate a moment to show up.
            tokio::time::sleep(Duration::from_secs(2)).await;
            break ours;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no alert for {id}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(alerts.len(), 1, "{alerts:?}");

    let (status, archive) = s.get(&s.token, &format!("/v1/jobs/{id}/archive")).await;
    assert_eq!(status, 200, "{archive}");
    assert_eq!(alerts[0]["archive_key"], archive["key"]);
    // The archive is the one written when the job died (archived in the
    // same instant), not a rewrite by the redelivery: R2's conditional put
    // refused to overwrite it.
    let died = archive["archive"]["job"]["finished_at"].as_i64().unwrap();
    assert_eq!(
        archive["archive"]["archived_at"].as_str().unwrap(),
        format_rfc3339(died),
        "{archive}"
    );
    let (_, job) = s.get(&s.token, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "failed_permanent");
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_the_served_openapi_document_is_the_one_the_code_generates() {
    let s = stack();
    let r = s.raw_get(&s.token, "/openapi.json").await;
    assert_eq!(r.status(), 200);
    let served = r.text().await.unwrap();
    // `producer/openapi.json` is the generator's output: the native test
    // `openapi::tests::the_served_document_is_generated_from_the_code`
    // fails when the code and the file differ.
    let checked_in = include_str!("../../producer/openapi.json");
    assert!(served == checked_in, "the Worker serves another document");
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_bad_input_gets_a_clear_4xx_and_no_row() {
    let s = stack();
    let cases = [
        ("{not json", "body"),
        (r#"{"points":["a"],"days":3}"#, "site"),
        (
            r#"{"site":"s","points":["a"],"start":"2024-01-01T00:00:00Z","end":"2025-01-03T00:00:00Z"}"#,
            "end",
        ),
        (
            r#"{"site":"s","points":["a"],"days":3,"colour":"red"}"#,
            "body",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = s.post_job(OTHER_TOKEN, body).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    let r = s
        .http
        .post(format!("{}/v1/jobs", s.url))
        .bearer_auth(OTHER_TOKEN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = s
        .http
        .get(format!("{}/v1/jobs", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, list) = s.get(OTHER_TOKEN, "/v1/jobs").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        0,
        "a rejected request writes no row"
    );
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_365_day_job_for_50_points_of_a_200_point_site_matches_the_simulator_exactly() {
    let s = stack();
    // The site is four times the job: ACE returns all of it, and the
    // consumer keeps the job's points.
    let site = "e2e-year-200pts";
    let mut points = ace_sim::default_points(site, 50);
    points.sort();
    let body = json!({"site": site, "points": points, "days": 365});
    let t0 = Instant::now();
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    let job = s.wait(&id, 900, |j| j["status"] == "completed").await;
    eprintln!(
        "365 days x 50 points completed in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let start = parse_rfc3339(job["start"].as_str().unwrap()).unwrap();
    let end = parse_rfc3339(job["end"].as_str().unwrap()).unwrap();
    assert_eq!(end - start, 365 * DAY_MS);

    // The object equals the simulator's samples, every one of them.
    let resp = s
        .http
        .get(format!("{}/v1/jobs/{id}/result", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET the result: {e}"));
    // The test stack sets SINGLE_PUT_MAX_BYTES to 1 MiB, so this ~3 MB
    // result took the multipart path (one part): R2 marks a multipart
    // object's ETag with "-{parts}".
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.ends_with("-1\""),
        "expected a multipart ETag, got {etag}"
    );
    let bytes = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("read the result body: {e}"));
    let (header, series) = decode_object(&bytes).unwrap();
    assert_eq!(header.points, points);
    let mut total = 0;
    for (p, got) in points.iter().zip(&series) {
        let want = ace_sim::samples(site, p, start.into(), end.into(), FIVE_MIN);
        assert_eq!(got.len(), want.len(), "{p}");
        for ((t, v), (wt, wv)) in got.iter().zip(&want) {
            assert_eq!(t, wt);
            assert!(same_value(v, wv), "{p} at {t}: {v:?} vs {wv}");
        }
        total += want.len();
    }
    assert_eq!(job["progress"]["samples"], total);
    assert_eq!(total, 50 * 365 * 288);

    // D1 holds exactly the aggregates computed natively from the same samples.
    for p in &points {
        let want = reference_aggregates(site, p, start, end);
        for res in [Resolution::Day, Resolution::Hour] {
            let mut rows = Vec::new();
            let mut from = Some(format_rfc3339(start));
            while let Some(f) = from {
                let path = format!(
                    "/v1/aggregates?site={site}&point={}&resolution={}&from={}&to={}",
                    urlencode(p),
                    res.as_str(),
                    urlencode(&f),
                    urlencode(&format_rfc3339(end))
                );
                let (status, page) = s.get(&s.token, &path).await;
                assert_eq!(status, 200, "{page}");
                rows.extend(page["rows"].as_array().unwrap().iter().cloned());
                from = page["next_from"].as_str().map(str::to_owned);
            }
            let want: Vec<_> = want.iter().filter(|a| a.resolution == res).collect();
            assert_eq!(rows.len(), want.len(), "{p} {}", res.as_str());
            for (r, a) in rows.iter().zip(want) {
                assert_eq!(r["bucket_start"].as_i64(), Some(a.bucket_start.ms()));
                assert_eq!(r["count"].as_u64(), Some(a.count));
                assert_eq!(r["min"].as_f64(), a.min);
                assert_eq!(r["max"].as_f64(), a.max);
                assert_eq!(r["sum"].as_f64(), a.sum);
                assert_eq!(r["mean"].as_f64(), a.mean);
                assert_eq!(r["stddev"].as_f64(), a.stddev);
                assert_eq!(r["first_ts"].as_i64(), a.first.map(|f| f.0.ms()));
                assert_eq!(r["last_value"].as_f64(), a.last.map(|f| f.1));
                assert_eq!(r["non_numeric"].as_u64(), Some(a.non_numeric));
                assert_eq!(r["non_finite"].as_u64(), Some(a.non_finite));
            }
        }
    }
}

/// Submits as `token` and waits for completion; returns the job.
async fn run_job(s: &Stack, token: &str, body: &Value) -> Value {
    let (status, created) = s.post_job(token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    loop {
        let (_, job) = s.get(token, &format!("/v1/jobs/{id}")).await;
        if job["status"] == "completed" {
            return job;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "job {id}: {job}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn daily_rows(
    s: &Stack,
    token: &str,
    site: &str,
    point: &str,
    from: i64,
    to: i64,
) -> Vec<Value> {
    let path = format!(
        "/v1/aggregates?site={site}&point={}&resolution=1d&from={}&to={}",
        urlencode(point),
        urlencode(&format_rfc3339(from)),
        urlencode(&format_rfc3339(to))
    );
    let (status, page) = s.get(token, &path).await;
    assert_eq!(status, 200, "{page}");
    page["rows"].as_array().unwrap().clone()
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_job_from_noon_leaves_another_owners_full_days_unchanged_and_says_partial() {
    let s = stack();
    let site = "e2e-partial";
    let point = ace_sim::default_points(site, 1).remove(0);
    let start = parse_rfc3339("2025-10-06T00:00:00Z").unwrap();
    let end = start + 2 * DAY_MS;
    let full = json!({"site": site, "points": [point], "start": format_rfc3339(start), "end": format_rfc3339(end)});
    run_job(&s, THIRD_TOKEN, &full).await;
    let before = daily_rows(&s, THIRD_TOKEN, site, &point, start.into(), end.into()).await;
    let want: Vec<_> = reference_aggregates(site, &point, start, end)
        .into_iter()
        .filter(|a| a.resolution == Resolution::Day)
        .collect();
    assert_eq!(before.len(), 2);
    for (r, a) in before.iter().zip(&want) {
        assert_eq!(r["count"].as_u64(), Some(a.count));
        assert_eq!(r["sum"].as_f64(), a.sum);
        assert_eq!(r["partial"], false);
    }

    // The caller's own job from noon of the first day.
    let noon = start + DAY_MS / 2;
    let half = json!({"site": site, "points": [point], "start": format_rfc3339(noon), "end": format_rfc3339(end)});
    run_job(&s, &s.token, &half).await;
    let after = daily_rows(&s, THIRD_TOKEN, site, &point, start.into(), end.into()).await;
    assert_eq!(after, before, "another owner's full days are unchanged");
    let mine = daily_rows(&s, &s.token, site, &point, start.into(), end.into()).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[0]["partial"], true, "the half day says so");
    assert!(mine[0]["count"].as_u64() < before[0]["count"].as_u64());
    assert_eq!(mine[1]["partial"], false);
    assert_eq!(mine[1]["sum"], before[1]["sum"]);
}

/// The `consumer_batch` lines of the Worker's log: D1 statements per invocation.
fn invocation_statements() -> Vec<u64> {
    let state = std::env::var("TSP_STATE").expect("TSP_STATE is set by scripts/test.sh");
    let log = std::fs::read_to_string(format!("{state}/worker.log")).expect("worker.log");
    log.lines()
        .filter_map(|l| l.find("{\"").map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "consumer_batch")
        .filter_map(|v| v["d1_statements"].as_u64())
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_four_concurrent_jobs_stay_within_1000_d1_statements_per_invocation() {
    let s = stack();
    // 4 × 100 points over 3 days that cross a month: two windows each,
    // 7,500 aggregate rows a window, which the queue hands out in batches
    // of up to four messages.
    let start = parse_rfc3339("2025-08-30T00:00:00Z").unwrap();
    let bodies: Vec<Value> = (0..4)
        .map(|i| {
            let site = format!("e2e-four-{i}");
            json!({"site": site, "points": ace_sim::default_points(&site, 100),
                   "start": format_rfc3339(start), "end": format_rfc3339(start + 3 * DAY_MS)})
        })
        .collect();
    let jobs = futures::future::join_all(bodies.iter().map(|b| run_job(&s, &s.token, b))).await;
    for j in &jobs {
        assert_eq!(j["progress"]["chunks_done"], 2, "{j}");
        assert_eq!(j["progress"]["chunks_total"], 2, "{j}");
    }
    let counts = invocation_statements();
    let most = counts.iter().copied().max().unwrap_or(0);
    eprintln!(
        "consumer invocations so far: {}, most statements: {most}",
        counts.len()
    );
    assert!(most > 0, "the Worker logged its invocations");
    assert!(most <= 1_000, "an invocation ran {most} D1 statements");
}

/// Parses `Server-Timing` into (name, duration ms, description).
fn server_timing(v: &str) -> Vec<(String, f64, Option<String>)> {
    v.split(',')
        .map(|m| {
            let mut parts = m.trim().split(';');
            let name = parts.next().unwrap_or_default().to_owned();
            let (mut dur, mut desc) = (f64::NAN, None);
            for p in parts {
                match p.split_once('=') {
                    Some(("dur", d)) => dur = d.parse().unwrap_or(f64::NAN),
                    Some(("desc", d)) => desc = Some(d.trim_matches('"').to_owned()),
                    _ => {}
                }
            }
            (name, dur, desc)
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_every_response_says_what_it_cost_and_results_are_immutable() {
    let s = stack();
    let mut ids = HashSet::new();
    for path in ["/v1/jobs", "/v1/stats", "/v1/nope"] {
        let r = s.raw_get(THIRD_TOKEN, path).await;
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(!id.is_empty(), "{path}");
        ids.insert(id);
        let timing = server_timing(r.headers()["server-timing"].to_str().unwrap());
        let names: Vec<&str> = timing.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names, ["d1", "r2", "total"], "{path}: {timing:?}");
        assert!(timing.iter().all(|t| t.1 >= 0.0), "{path}: {timing:?}");
        let d1 = timing[0].2.clone().unwrap_or_default();
        let queries: u64 = d1.trim_end_matches(" queries").parse().unwrap();
        let want = match path {
            "/v1/jobs" => 1,
            "/v1/stats" => 3, // the figures, the quota usage, the sample store
            _ => 0,
        };
        assert_eq!(queries, want, "{path}: {d1}");
    }
    assert_eq!(ids.len(), 3, "one id per request");
    // A completed result may be kept: it never changes.
    let point = ace_sim::default_points("e2e-cost", 1).remove(0);
    let body = json!({"site": "e2e-cost", "points": [point], "days": 1});
    let job = run_job(&s, THIRD_TOKEN, &body).await;
    let r = s
        .http
        .get(format!(
            "{}/v1/jobs/{}/result",
            s.url,
            job["job_id"].as_str().unwrap()
        ))
        .bearer_auth(THIRD_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cc = r.headers()["cache-control"].to_str().unwrap();
    assert!(cc.contains("immutable") && cc.contains("private"), "{cc}");
    assert!(r.headers().contains_key("etag"));

    // A page of complete buckets comes from the Workers Cache the second
    // time, byte for byte; another owner's same query is not served from it.
    let (start, end) = (
        job["start"].as_str().unwrap().to_owned(),
        job["end"].as_str().unwrap().to_owned(),
    );
    let path = format!(
        "/v1/aggregates?site=e2e-cost&point={}&resolution=1h&from={}&to={}",
        urlencode(&point),
        urlencode(&start),
        urlencode(&end)
    );
    let fetch = |token: &'static str| {
        let (s, path) = (&s, &path);
        async move {
            let r = s.raw_get(token, path).await;
            let cache = r.headers()["x-cache"].to_str().unwrap().to_owned();
            (cache, r.bytes().await.unwrap())
        }
    };
    let (first, a) = fetch(THIRD_TOKEN).await;
    let (second, b) = fetch(THIRD_TOKEN).await;
    assert_eq!((first.as_str(), second.as_str()), ("MISS", "HIT"));
    assert_eq!(a, b, "identical bytes");
    let (theirs, c) = fetch(OTHER_TOKEN).await;
    assert_eq!(theirs, "MISS");
    assert_ne!(a, c, "another owner has no rows of this job");
}

/// The D1 queries a request cost, from its `Server-Timing`.
async fn d1_queries(s: &Stack, token: &str, path: &str) -> u64 {
    let r = s.raw_get(token, path).await;
    assert_eq!(r.status(), 200, "{path}");
    let timing = server_timing(r.headers()["server-timing"].to_str().unwrap());
    let desc = timing[0].2.clone().unwrap_or_default();
    desc.trim_end_matches(" queries").parse().unwrap()
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_stats_cost_the_same_at_10_and_at_1000_jobs() {
    // A tenant of its own (the fourth in scripts/stack.sh), so the other
    // tests' jobs do not count.
    const FOURTH: &str = "fourth-tenant-token";
    let s = stack();
    let submit_and_cancel = |i: usize| {
        let s = &s;
        async move {
            let body = json!({"site": format!("e2e-scale-{i}"), "points": ["p1"], "days": 1});
            let (status, v) = s.post_job(FOURTH, &body.to_string()).await;
            assert_eq!(status, 202, "{v}");
            let id = v["job_id"].as_str().unwrap().to_owned();
            let r = s
                .http
                .delete(format!("{}/v1/jobs/{id}", s.url))
                .bearer_auth(FOURTH)
                .send()
                .await
                .unwrap();
            // The consumer may finish a one-day job before the cancel
            // arrives (409); either way the job is history.
            assert!(matches!(r.status().as_u16(), 200 | 409), "{}", r.status());
        }
    };
    for i in 0..10 {
        submit_and_cancel(i).await;
    }
    let at_10 = d1_queries(&s, FOURTH, "/v1/stats").await;
    for batch in (10..1_000).collect::<Vec<_>>().chunks(25) {
        futures::future::join_all(batch.iter().map(|i| submit_and_cancel(*i))).await;
    }
    let at_1000 = d1_queries(&s, FOURTH, "/v1/stats").await;
    assert_eq!(at_10, at_1000, "stats cost the same whatever the history");
    let (_, st) = s.get(FOURTH, "/v1/stats").await;
    let c = &st["counts"];
    let finished = c["cancelled"].as_i64().unwrap() + c["completed"].as_i64().unwrap();
    assert_eq!(finished, 1_000, "{st}");
    let list = d1_queries(&s, FOURTH, "/v1/jobs?status=cancelled&limit=5").await;
    assert_eq!(list, 1);
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_token_without_a_grant_for_a_site_gets_403_and_no_data() {
    let s = stack();
    let body = |site: &str| {
        json!({"site": site, "points": ace_sim::default_points(site, 1), "days": 1}).to_string()
    };
    let (status, problem) = s.post_job(GRANTED_TOKEN, &body("e2e-not-granted")).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["title"], "Forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("e2e-not-granted"),
        "{problem}"
    );
    let (listed, jobs) = s.get(GRANTED_TOKEN, "/v1/jobs").await;
    assert_eq!(listed, 200);
    assert_eq!(
        jobs["jobs"].as_array().map(Vec::len),
        Some(0),
        "nothing was created"
    );
    let path = "/v1/aggregates?site=e2e-not-granted&point=p&resolution=1d&from=2025-10-01T00:00:00Z&to=2025-10-02T00:00:00Z";
    let (status, problem) = s.get(GRANTED_TOKEN, path).await;
    assert_eq!(status, 403, "{problem}");
    // The granted site works as for any token.
    let (status, job) = s.post_job(GRANTED_TOKEN, &body("e2e-granted")).await;
    assert_eq!(status, 202, "{job}");
    let granted = path.replace("e2e-not-granted", "e2e-granted");
    assert_eq!(s.get(GRANTED_TOKEN, &granted).await.0, 200);
    // The same owner's job of another site, made with a token for every
    // site, is not readable with the limited token.
    let (status, other) = s
        .post_job(GRANTED_ALL_TOKEN, &body("e2e-not-granted"))
        .await;
    assert_eq!(status, 202, "{other}");
    let view = format!("/v1/jobs/{}", other["job_id"].as_str().unwrap());
    assert_eq!(s.get(GRANTED_ALL_TOKEN, &view).await.0, 200);
    let (status, problem) = s.get(GRANTED_TOKEN, &view).await;
    assert_eq!(status, 403, "{problem}");
    let result = s.raw_get(GRANTED_TOKEN, &format!("{view}/result")).await;
    assert_eq!(result.status(), 403);
    let cancel = s
        .http
        .delete(format!("{}{view}", s.url))
        .bearer_auth(GRANTED_TOKEN)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(cancel.status(), 403);
    // Its lists hold only the granted site's jobs; the all-sites token's hold both.
    let sites = |list: Value| -> Vec<String> {
        let jobs = list["jobs"].as_array().cloned().unwrap_or_default();
        jobs.iter()
            .map(|j| j["site"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        sites(s.get(GRANTED_TOKEN, "/v1/jobs").await.1),
        ["e2e-granted"]
    );
    let mut both = sites(s.get(GRANTED_ALL_TOKEN, "/v1/jobs").await.1);
    both.sort();
    assert_eq!(both, ["e2e-granted", "e2e-not-granted"]);
}

//! End to end under upstream faults: the built Worker in the local runtime
//! against a simulator that fails 20 % of its 5-second windows per site
//! (503, or 429 with `Retry-After`), serves 1,000-sample pages, and can be
//! told to go down entirely. `scripts/test.sh` starts this stack of its own
//! (`TSP_SIM_ARGS`, `TSP_VARS` there) and runs these one at a time, since
//! the outage test takes the whole upstream down.

use std::collections::HashSet;
use std::time::{Duration, Instant};
use tsp_core::domain::EpochMs;

use serde_json::{json, Value};
use tsp_core::chunk;
use tsp_core::codec::{self, Header, FORMAT_NAME, FORMAT_VERSION};
use tsp_core::domain::{format_rfc3339, parse_rfc3339, DAY_MS};

use crate::e2e::{stack, Stack};
use crate::support::sim_samples;

impl Stack {
    async fn view(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("JSON")
    }

    async fn submit(&self, body: &Value) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /v1/jobs");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        (status, v["job_id"].as_str().unwrap_or_default().to_owned())
    }

    async fn sim_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim))
            .send()
            .await
            .expect("simulator")
            .json()
            .await
            .expect("JSON")
    }

    /// Waits (at most `wait_secs`) until the job has committed a window
    /// and is still running, then takes the whole upstream down for `secs`.
    async fn outage_mid_job(&self, id: &str, wait_secs: u64, secs: u64) {
        let t0 = Instant::now();
        loop {
            let j = self.view(&format!("/v1/jobs/{id}")).await;
            if j["progress"]["chunks_done"].as_u64().unwrap_or(0) > 0 {
                assert_ne!(j["status"], "completed", "finished before the outage: {j}");
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(wait_secs), "{j}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let down = self
            .http
            .post(format!("{}/faults/outage?secs={secs}", self.sim))
            .send()
            .await
            .expect("outage");
        assert_eq!(down.status(), 200);
    }

    /// Fires the cron, as the platform's every-minute trigger would.
    async fn cron(&self) {
        let url = format!("{}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*", self.dlq);
        let r = self.http.get(url).send().await.expect("the cron handler");
        assert_eq!(r.status(), 200, "the dead-letter Worker runs its cron");
    }

    /// Polls until the job is terminal (firing the cron now and then).
    async fn finish(&self, id: &str, secs: u64) -> Value {
        let t0 = Instant::now();
        let mut polls = 0u32;
        loop {
            let job = self.view(&format!("/v1/jobs/{id}")).await;
            if matches!(
                job["status"].as_str(),
                Some("completed" | "failed_permanent" | "cancelled")
            ) {
                return job;
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "{id}: {job}");
            polls += 1;
            if polls.is_multiple_of(60) {
                self.cron().await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn object(&self, id: &str) -> Vec<u8> {
        let r = self
            .http
            .get(format!("{}/v1/jobs/{id}/result", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("result");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body").to_vec()
    }
}

/// The windows of a job of `points` points under the default settings.
fn windows(points: usize, start: i64, end: i64) -> Vec<chunk::Chunk> {
    let days = chunk::window_days(points, 300, 250_000);
    chunk::plan(EpochMs(start), EpochMs(end), days)
}

/// The object a fault-free run writes: the header, then per window one
/// block per point of the simulator's samples, encoded by the same codec.
fn fault_free_object(site: &str, points: &[String], start: i64, end: i64) -> Vec<u8> {
    let header = Header {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        site: site.to_owned(),
        start_ms: EpochMs(start),
        end_ms: EpochMs(end),
        points: points.to_vec(),
    };
    let mut out = codec::encode_header(&header).expect("header");
    for c in windows(points.len(), start, end) {
        for (p, point) in points.iter().enumerate() {
            let mut s = sim_samples(site, point, c.start, c.end);
            tsp_core::sample::sort_dedup(&mut s);
            out.extend(codec::encode_block(p as u32, &s).expect("block"));
        }
    }
    out
}

fn job_body(site: &str, points: &[String], start: i64, days: i64) -> Value {
    json!({"site": site, "points": points, "start": format_rfc3339(start),
           "end": format_rfc3339(start + days * DAY_MS)})
}

fn points(site: &str, n: usize) -> Vec<String> {
    let mut p = ace_sim::default_points(site, n);
    p.sort();
    p
}

/// The fewest upstream answers a job of a few points of a 50-point site
/// takes: `auto` asks per point, one request per point and window.
fn minimal_pages(points: &[String], start: i64, end: i64) -> u64 {
    (windows(points.len(), start, end).len() * points.len()) as u64
}

#[tokio::test]
#[ignore = "needs the faults stack: scripts/test.sh"]
async fn faults_ten_jobs_in_a_row_under_windowed_faults_all_complete_byte_identical() {
    let s = stack();
    let start = parse_rfc3339("2025-09-20T00:00:00Z").unwrap();
    let (mut refetched, mut worst) = (Vec::new(), 0u64);
    for i in 0..10 {
        let site = format!("faults-row-{i}");
        let pts = points(&site, 10);
        let before = s.sim_json("/__stats").await;
        let (status, id) = s.submit(&job_body(&site, &pts, start.into(), 20)).await;
        assert_eq!(status, 202);
        let job = s.finish(&id, 600).await;
        assert_eq!(job["status"], "completed", "job {i}: {job}");
        let got = s.object(&id).await;
        let want = fault_free_object(&site, &pts, start.into(), (start + 20 * DAY_MS).into());
        assert!(
            got == want,
            "job {i}: the object differs from the fault-free run's"
        );
        let after = s.sim_json("/__stats").await;
        let ok = after["pages_ok"].as_u64().unwrap() - before["pages_ok"].as_u64().unwrap();
        let extra = ok.saturating_sub(minimal_pages(
            &pts,
            start.into(),
            (start + 20 * DAY_MS).into(),
        ));
        worst = worst.max(extra);
        refetched.push(extra);
    }
    let mean = refetched.iter().sum::<u64>() as f64 / refetched.len() as f64;
    eprintln!("re-fetched pages per job under 20 % windowed faults: mean {mean:.1}, worst {worst}, each {refetched:?}");
}

#[tokio::test]
#[ignore = "needs the faults stack: scripts/test.sh"]
async fn faults_a_90_s_outage_pauses_two_jobs_which_then_complete_with_one_open_and_one_close_alert(
) {
    let s = stack();
    let alerts_before = s.sim_json("/alerts").await.as_array().map_or(0, Vec::len);
    let start = parse_rfc3339("2025-06-01T00:00:00Z").unwrap();
    let sites = ["faults-outage-a", "faults-outage-b"];
    let mut ids = Vec::new();
    // A year of 10 points is 13 windows: both jobs are still running when
    // the outage begins (90 days, three windows, could finish first).
    for site in sites {
        let (status, id) = s
            .submit(&job_body(site, &points(site, 10), start.into(), 366))
            .await;
        assert_eq!(status, 202);
        ids.push(id);
    }
    // Wait for some progress, then take the whole upstream down for 90 s.
    let t0 = Instant::now();
    loop {
        let j = s.view(&format!("/v1/jobs/{}", ids[0])).await;
        if j["progress"]["chunks_done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "{j}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let down = s
        .http
        .post(format!("{}/faults/outage?secs=90", s.sim))
        .send()
        .await
        .expect("outage");
    assert_eq!(down.status(), 200);
    let outage_end = Instant::now() + Duration::from_secs(90);
    for id in &ids {
        let j = s.view(&format!("/v1/jobs/{id}")).await;
        assert_ne!(j["status"], "completed", "finished before the outage: {j}");
    }
    let done_at_end: Vec<u64> = {
        tokio::time::sleep(Duration::from_secs(89)).await;
        let mut v = Vec::new();
        for id in &ids {
            let j = s.view(&format!("/v1/jobs/{id}")).await;
            assert_ne!(
                j["status"], "failed_permanent",
                "died during the outage: {j}"
            );
            v.push(j["progress"]["chunks_done"].as_u64().unwrap_or(0));
        }
        v
    };
    // Every waiting job running again: each one's progress moves.
    let mut resumed = HashSet::new();
    while resumed.len() < ids.len() {
        for (k, id) in ids.iter().enumerate() {
            let j = s.view(&format!("/v1/jobs/{id}")).await;
            let done = j["progress"]["chunks_done"].as_u64().unwrap_or(0);
            if done > done_at_end[k] || j["status"] == "completed" {
                resumed.insert(k);
            }
        }
        assert!(
            Instant::now() < outage_end + Duration::from_secs(180),
            "not resumed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let resumed_after = Instant::now().saturating_duration_since(outage_end);
    for id in &ids {
        let j = s.finish(id, 600).await;
        assert_eq!(j["status"], "completed", "{j}");
        assert_eq!(
            j["stalled_deliveries"], 0,
            "nothing counts towards its death: {j}"
        );
    }
    let alerts = s.sim_json("/alerts").await;
    let circuit = |kind: &str| circuit_alerts(&alerts, alerts_before, kind);
    assert_eq!(circuit("circuit_opened"), 1, "{alerts}");
    assert_eq!(circuit("circuit_closed"), 1, "{alerts}");
    eprintln!(
        "outage of 90 s: every waiting job running again {:.1} s after it ended",
        resumed_after.as_secs_f64()
    );
}

/// The circuit alerts of `kind` the receiver got after the first `from`.
fn circuit_alerts(alerts: &Value, from: usize, kind: &str) -> usize {
    let all = alerts.as_array().map_or(&[][..], Vec::as_slice);
    all.iter().skip(from).filter(|a| a["event"] == kind).count()
}

#[tokio::test]
#[ignore = "needs the faults stack: scripts/test.sh"]
async fn faults_a_30_s_outage_of_a_single_site_deployment_is_waited_out_byte_identical() {
    // This stack's tests run one at a time: only this site talks to the
    // upstream, as on a deployment that serves one site. Around the
    // outage, 20 % of the site's 5-second windows fail too.
    let s = stack();
    let alerts_before = s.sim_json("/alerts").await.as_array().map_or(0, Vec::len);
    let site = "faults-single-site";
    let pts = points(site, 4);
    let start = parse_rfc3339("2025-07-01T00:00:00Z").unwrap().ms();
    let days = 120;
    let (status, id) = s.submit(&job_body(site, &pts, start, days)).await;
    assert_eq!(status, 202);
    s.outage_mid_job(&id, 120, 30).await;
    let j = s.finish(&id, 600).await;
    assert_eq!(j["status"], "completed", "{j}");
    let want = fault_free_object(site, &pts, start, start + days * DAY_MS);
    assert!(
        s.object(&id).await == want,
        "byte-identical to a fault-free run"
    );
    let alerts = s.sim_json("/alerts").await;
    let opened = circuit_alerts(&alerts, alerts_before, "circuit_opened");
    let closed = circuit_alerts(&alerts, alerts_before, "circuit_closed");
    // A run of failures this short may end before it spans the circuit's
    // spread (a page retried in place takes up to 15 s): at most one
    // outage alert, and never an open without its close.
    assert!(opened <= 1 && opened == closed, "{alerts}");
}

/// A ten-minute full outage of a single-site deployment, mid-job: on a
/// stack of its own without window faults (`scripts/test.sh` runs it beside
/// the other steps, since it mostly waits; the faults step skips it).
#[tokio::test]
#[ignore = "needs the outage stack: scripts/test.sh"]
async fn outage_of_ten_minutes_on_a_single_site_deployment_is_waited_out_byte_identical() {
    let s = stack();
    let site = "outage-single-site";
    let pts = points(site, 10);
    let start = parse_rfc3339("2025-01-01T00:00:00Z").unwrap().ms();
    let days = 366;
    let (status, id) = s.submit(&job_body(site, &pts, start, days)).await;
    assert_eq!(status, 202);
    s.outage_mid_job(&id, 300, 600).await;
    let outage_end = Instant::now() + Duration::from_secs(600);
    tokio::time::sleep(Duration::from_secs(590)).await;
    let j = s.view(&format!("/v1/jobs/{id}")).await;
    assert_ne!(j["status"], "completed", "it waited out the outage: {j}");
    assert_ne!(j["status"], "failed_permanent", "died in the outage: {j}");
    let j = s.finish(&id, 900).await;
    assert_eq!(j["status"], "completed", "{j}");
    let done_after = Instant::now().saturating_duration_since(outage_end);
    let want = fault_free_object(site, &pts, start, start + days * DAY_MS);
    assert!(
        s.object(&id).await == want,
        "byte-identical to a fault-free run"
    );
    let alerts = s.sim_json("/alerts").await;
    assert_eq!(circuit_alerts(&alerts, 0, "circuit_opened"), 1, "{alerts}");
    assert_eq!(circuit_alerts(&alerts, 0, "circuit_closed"), 1, "{alerts}");
    eprintln!(
        "outage of 600 s: the job completed {:.1} s after it ended",
        done_after.as_secs_f64()
    );
}

#[tokio::test]
#[ignore = "needs the faults stack: scripts/test.sh"]
async fn faults_twenty_jobs_queued_behind_one_another_all_complete_and_none_is_reaped() {
    let s = stack();
    let start = parse_rfc3339("2025-05-03T00:00:00Z").unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let site = format!("faults-backlog-{i}");
        let (status, id) = s
            .submit(&job_body(&site, &points(&site, 3), start.into(), 2))
            .await;
        assert_eq!(status, 202);
        ids.push(id);
    }
    s.cron().await;
    for id in &ids {
        let j = s.finish(id, 600).await;
        assert_eq!(j["status"], "completed", "{j}");
    }
}

#[tokio::test]
#[ignore = "needs the faults stack: scripts/test.sh"]
async fn faults_fifty_concurrent_identical_submissions_make_exactly_one_job_ten_times() {
    let s = stack();
    let start = parse_rfc3339("2025-04-01T00:00:00Z").unwrap();
    for trial in 0..10 {
        let site = format!("faults-coalesce-{trial}");
        let body = job_body(&site, &points(&site, 2), start.into(), 1);
        let answers = futures::future::join_all((0..50).map(|_| s.submit(&body))).await;
        let ids: HashSet<&str> = answers.iter().map(|(_, id)| id.as_str()).collect();
        assert!(
            answers.iter().all(|(st, _)| *st == 200 || *st == 202),
            "trial {trial}: {answers:?}"
        );
        assert_eq!(ids.len(), 1, "trial {trial}: {ids:?}");
        let created = answers.iter().filter(|(st, _)| *st == 202).count();
        assert_eq!(created, 1, "trial {trial}: one 202, the rest share it");
    }
}

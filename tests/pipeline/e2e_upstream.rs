//! End to end against an upstream that answers like ACE (the simulator's
//! default, faithful mode): it ignores `point_names`, writes naive UTC
//! times, miscomputes its cursor, answers 403 for an unknown site and
//! serves sites far larger than a job.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tsp_core::codec::decode_object;
use tsp_core::domain::{format_rfc3339, parse_rfc3339, DAY_MS};

use crate::e2e::{stack, Stack};
use crate::support::{same_value, FIVE_MIN};

/// The simulator's site catalogue as the default `SimConfig` builds it.
fn reporting(site: &str) -> Vec<String> {
    ace_sim::reporting_points(site, &ace_sim::SimConfig::default())
}

fn silent(site: &str) -> Vec<String> {
    ace_sim::silent_points(site, &ace_sim::SimConfig::default())
}

async fn submit(s: &Stack, body: &Value) -> String {
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    created["job_id"].as_str().unwrap().to_owned()
}

async fn result_bytes(s: &Stack, id: &str) -> Vec<u8> {
    let r = s.raw_get(&s.token, &format!("/v1/jobs/{id}/result")).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

/// Bytes of `points`' rows over `[start, end)` as the simulator writes
/// them (`{"name","value","time"}` and a comma), without page envelopes.
fn row_bytes<'a>(
    site: &str,
    points: impl IntoIterator<Item = &'a String>,
    start: i64,
    end: i64,
) -> u64 {
    points
        .into_iter()
        .map(|p| {
            ace_sim::samples(site, p, start, end, FIVE_MIN)
                .iter()
                .map(|(_, v)| {
                    (r#"{"name":"","value":"","time":"2025-01-01T00:00:00"},"#.len()
                        + p.len()
                        + v.len()) as u64
                })
                .sum::<u64>()
        })
        .sum()
}

/// Bytes of one pass over the site's reporting points for `[start, end)`.
fn one_pass_bytes(site: &str, start: i64, end: i64) -> u64 {
    row_bytes(site, &reporting(site), start, end)
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_ten_points_of_a_200_point_site_are_exact_and_byte_identical_under_both_plans() {
    let s = stack();
    let site = "e2e-plans-200pts";
    // Nine reporting points, and one the site never reports.
    let mut points: Vec<String> = reporting(site).into_iter().step_by(15).take(9).collect();
    let quiet = silent(site).remove(0);
    points.push(quiet.clone());
    points.sort();
    let start = parse_rfc3339("2025-06-28T00:00:00Z").unwrap();
    let end = start + 6 * DAY_MS;
    let body = |plan: &str, force: bool| {
        json!({"site": site, "points": points, "start": format_rfc3339(start),
               "end": format_rfc3339(end), "plan": plan, "force": force})
    };
    let site_id = submit(&s, &body("site", false)).await;
    let site_job = s.wait(&site_id, 180, |j| j["status"] == "completed").await;
    let site_obj = result_bytes(&s, &site_id).await;
    let point_id = submit(&s, &body("point", true)).await;
    let point_job = s.wait(&point_id, 180, |j| j["status"] == "completed").await;
    let point_obj = result_bytes(&s, &point_id).await;

    assert_eq!(site_job["upstream"]["plan"], "site", "{site_job}");
    assert_eq!(point_job["upstream"]["plan"], "point", "{point_job}");
    assert!(site_obj == point_obj, "the plans gave different objects");
    assert_eq!(site_job["result"]["sha256"], point_job["result"]["sha256"]);
    for job in [&site_job, &point_job] {
        assert_eq!(job["points_without_data"], json!([quiet]), "{job}");
    }

    // Exact against the simulator.
    let (header, series) = decode_object(&site_obj).unwrap();
    assert_eq!(header.points, points);
    for (p, got) in points.iter().zip(&series) {
        let want = ace_sim::samples(site, p, start.into(), end.into(), FIVE_MIN);
        let want = if *p == quiet { vec![] } else { want };
        assert_eq!(got.len(), want.len(), "{p}");
        for ((t, v), (wt, wv)) in got.iter().zip(&want) {
            assert_eq!(t, wt);
            assert!(same_value(v, wv), "{p} at {t}: {v:?} vs {wv}");
        }
    }

    // Traffic: the walk reads the whole site about once; per point, the
    // job's own points only.
    let pass = one_pass_bytes(site, start.into(), end.into());
    let walked = site_job["upstream"]["bytes"].as_u64().unwrap();
    assert!(
        walked as f64 <= 1.1 * pass as f64,
        "site walk read {walked} bytes, one pass is {pass}"
    );
    let own = row_bytes(
        site,
        points.iter().filter(|p| **p != quiet),
        start.into(),
        end.into(),
    );
    let asked = point_job["upstream"]["bytes"].as_u64().unwrap();
    assert!(
        asked as f64 <= 1.2 * own as f64,
        "per-point requests read {asked} bytes, the job's own rows are {own}"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_an_unknown_site_fails_alone_at_once_and_opens_no_circuit() {
    let s = stack();
    let circuit_alerts = |all: &[Value]| {
        all.iter()
            .filter(|a| {
                a["event"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("circuit"))
            })
            .count()
    };
    let all_alerts = || async {
        let v: Vec<Value> = s
            .http
            .get(format!("{}/alerts", s.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
    let before = circuit_alerts(&all_alerts().await);
    let good_site = "e2e-beside";
    let good = json!({"site": good_site, "points": &reporting(good_site)[..3], "days": 3});
    let bad =
        json!({"site": "unknown-e2e-site", "points": ["ses/ses_unknown-e2e-site/x"], "days": 3});
    let t0 = Instant::now();
    let bad_id = submit(&s, &bad).await;
    let good_id = submit(&s, &good).await;

    let dead = s
        .wait(&bad_id, 60, |j| j["status"] == "failed_permanent")
        .await;
    assert!(t0.elapsed() < Duration::from_secs(60));
    let why = dead["last_error"].as_str().unwrap();
    assert!(why.contains("site unknown or not permitted"), "{why}");
    assert_eq!(dead["attempts"], 1, "no retry for a 403: {dead}");

    let seen_waiting = std::cell::Cell::new(false);
    let done = s
        .wait(&good_id, 120, |j| {
            if !j["waiting"].is_null() {
                seen_waiting.set(true);
            }
            j["status"] == "completed"
        })
        .await;
    assert!(!seen_waiting.get(), "the good job waited: {done}");
    assert_eq!(done["waiting"], Value::Null);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        circuit_alerts(&all_alerts().await),
        before,
        "a circuit alert went out"
    );
}

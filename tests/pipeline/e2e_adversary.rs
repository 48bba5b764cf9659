//! The adversary's findings (issue 22), end to end in the local runtime: a
//! cancel stops the holder within one page. (One failing site's message not
//! holding back its batch runs on the small stack: `limits.rs`.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::e2e::stack;
use crate::support::site_requests;

/// Every request for this site takes 1.5 s (`ace_sim`'s `-slow<N>ms`).
const SLOW_SITE: &str = "cancel-slow1500ms";
const PAGE: Duration = Duration::from_millis(1_500);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The local R2 bucket's object index (Miniflare's SQLite file).
fn r2_index() -> PathBuf {
    let state = std::env::var("TSP_STATE").expect("TSP_STATE");
    let dir = Path::new(&state).join("persist/v3/r2/miniflare-R2BucketObject");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|x| x == "sqlite")
                && p.file_name().is_some_and(|n| n != "metadata.sqlite")
        })
        .expect("the bucket's index")
}

/// Each part object of the job in R2, with when it was uploaded (ms).
fn parts(id: &str) -> Vec<(String, i64)> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let db = rusqlite::Connection::open_with_flags(r2_index(), flags).expect("open");
    let mut q = db
        .prepare("SELECT key, uploaded FROM _mf_objects WHERE key LIKE ?1")
        .unwrap();
    let rows = q
        .query_map([format!("parts/{id}/%")], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_a_cancelled_job_makes_no_request_and_writes_no_part_more_than_a_page_after_the_cancel()
{
    let s = stack();
    let points = ace_sim::default_points(SLOW_SITE, 3);
    let body = json!({"site": SLOW_SITE, "points": points, "days": 120, "plan": "point",
                      "force": true});
    let before = site_requests(&s.sim, SLOW_SITE).await;
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    // Mid-flight: its first pages asked for (each takes 1.5 s, and each
    // window asks for three, one per point, one after another).
    let t0 = Instant::now();
    while site_requests(&s.sim, SLOW_SITE).await < before + 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = s
        .http
        .delete(format!("{}/v1/jobs/{id}", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let (cancelled_at, at_cancel) = (now_ms(), site_requests(&s.sim, SLOW_SITE).await);
    // Each window in flight may finish the page it is on; it checks the
    // job before its next page and stops.
    tokio::time::sleep(PAGE + Duration::from_millis(1_000)).await;
    let after_a_page = site_requests(&s.sim, SLOW_SITE).await;
    tokio::time::sleep(4 * PAGE).await;
    let later = site_requests(&s.sim, SLOW_SITE).await;
    assert_eq!(
        later, after_a_page,
        "requests more than a page after the cancel"
    );
    assert!(
        after_a_page - at_cancel <= 6,
        "{} requests began after the cancel",
        after_a_page - at_cancel
    );
    let late: Vec<_> = parts(&id)
        .into_iter()
        .filter(|(_, at)| *at > cancelled_at + PAGE.as_millis() as i64 + 1_000)
        .collect();
    assert!(late.is_empty(), "parts written after the cancel: {late:?}");
    let t0 = Instant::now();
    while !parts(&id).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "a cancelled job's parts are removed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, job) = s.get(&s.token, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "cancelled");
}

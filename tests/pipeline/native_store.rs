//! The settled-sample store natively: what later jobs read from it, what
//! they still fetch, and how it stays bounded and honest.

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::domain::{format_rfc3339, parse_rfc3339, EpochMs, JobId, DAY_MS, HOUR_MS};
use tsp_core::job::{Job, JobStatus};
use tsp_core::ports::BlobStore;
use tsp_core::service::settled;
use tsp_core::service::submit::Submitted;

use crate::support::*;

/// Five days across a month boundary, settled long before [`NOW`].
fn start() -> EpochMs {
    parse_rfc3339("2025-09-28T00:00:00Z").unwrap()
}

fn body(site: &str, points: &[String], from: EpochMs, days: i64, force: bool) -> serde_json::Value {
    json!({"site": site, "points": points, "start": format_rfc3339(from),
           "end": format_rfc3339(from + days * DAY_MS), "force": force})
}

fn points(site: &str, n: usize) -> Vec<String> {
    let mut p = ace_sim::default_points(site, n);
    p.sort();
    p
}

/// Submits as `owner`, runs the queue dry, and returns the finished job.
async fn run(h: &Harness, owner: &str, body: &serde_json::Value) -> Job {
    let id: JobId = match h.submit_as(owner, body).await {
        Submitted::Created { job, .. } => job.id,
        other => panic!("expected a new job, got {other:?}"),
    };
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    job
}

async fn object(h: &Harness, job: &Job) -> Vec<u8> {
    h.result(&job.id).await
}

/// Samples the simulator serves for `points` over `days` days.
fn per_day(points: usize) -> i64 {
    (288 * points) as i64
}

#[tokio::test]
async fn a_second_owners_identical_job_reads_everything_from_the_store() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let p = points("shared", 3);
    let b = body("shared", &p, start(), 5, false);
    let first = run(&h, "alice", &b).await;
    assert_eq!(first.sources.upstream_windows, 2);
    assert_eq!(first.sources.store_windows, 0);
    assert_eq!(first.sources.upstream_samples, 5 * per_day(3));
    let requests = sim_stats(&sim).await;

    let second = run(&h, "bob", &b).await;
    assert_eq!(
        sim_stats(&sim).await,
        requests,
        "nothing asked of the upstream"
    );
    assert_eq!((second.upstream_bytes, second.upstream_requests), (0, 0));
    assert_eq!(second.sources.store_windows, 2);
    assert_eq!(second.sources.upstream_windows, 0);
    assert_eq!(second.sources.store_samples, 5 * per_day(3));
    assert_eq!(object(&h, &second).await, object(&h, &first).await);
    // Each owner has its own aggregate rows, equal field for field.
    let rows = |owner: &str| -> Vec<serde_json::Value> {
        h.agg_rows("shared")
            .into_iter()
            .filter(|r| r["owner"] == owner)
            .map(|mut r| {
                r.remove("owner");
                serde_json::Value::Object(r)
            })
            .collect()
    };
    assert_eq!(rows("bob"), rows("alice"));
    assert!(!rows("bob").is_empty());
    let f = settled::figures(&h.db).await.unwrap();
    assert_eq!((f.hits, f.misses), (2, 2));
    assert!(f.bytes_saved > 0 && f.bytes_saved <= first.upstream_bytes as u64);
}

#[tokio::test]
async fn a_job_shifted_by_one_day_fetches_only_the_new_day() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let p = points("rolling", 2);
    run(&h, "alice", &body("rolling", &p, start(), 5, false)).await;
    let shifted = run(
        &h,
        "alice",
        &body("rolling", &p, start() + DAY_MS, 5, false),
    )
    .await;
    assert_eq!(shifted.sources.upstream_samples, per_day(2), "one new day");
    assert_eq!(shifted.sources.store_samples, 4 * per_day(2));
    assert_eq!(shifted.sources.upstream_windows, 1);
    assert_exact(
        &object(&h, &shifted).await,
        "rolling",
        &p,
        (start() + DAY_MS, start() + 6 * DAY_MS),
        &[],
    );
}

#[tokio::test]
async fn unsettled_days_are_fetched_every_time_and_never_stored() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let p = points("recent", 1);
    // Ten days up to today: the last three are not settled.
    let from = NOW - 10 * DAY_MS;
    let b = body("recent", &p, from, 10, false);
    let first = run(&h, "alice", &b).await;
    let second = run(&h, "bob", &b).await;
    let settled_until = settled::settled_until(h.cfg.settle_ms, NOW);
    assert_eq!(settled_until, NOW - 3 * DAY_MS);
    let unsettled = ace_sim::samples("recent", &p[0], settled_until.ms(), NOW.ms(), FIVE_MIN).len();
    assert!(unsettled > 0);
    assert_eq!(second.sources.upstream_samples as usize, unsettled);
    assert_eq!(
        second.sources.store_samples + second.sources.upstream_samples,
        first.sources.upstream_samples
    );
    assert_eq!(object(&h, &second).await, object(&h, &first).await);
    // No entry reaches past the settled past.
    let past: i64 = h
        .count("SELECT COUNT(*) FROM store_points WHERE to_ms > 1763510400000")
        .await;
    assert_eq!(settled_until.ms(), 1_763_510_400_000);
    assert_eq!(past, 0);
}

#[tokio::test]
async fn a_partial_window_is_stored_as_the_span_it_covers() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let p = points("partial", 2);
    // 2025-10-03 12:00 to 2025-10-06: inside October's window, in part.
    let from = parse_rfc3339("2025-10-03T12:00:00Z").unwrap();
    run(&h, "alice", &body("partial", &p, from, 3, false)).await;
    let spans =
        h.db.query_raw("SELECT DISTINCT from_ms, to_ms FROM store_points")
            .unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["from_ms"], from.ms());
    assert_eq!(spans[0]["to_ms"], (from + 3 * DAY_MS).ms());
    // A job of the whole window reads that span and fetches the rest.
    let month = parse_rfc3339("2025-10-01T00:00:00Z").unwrap();
    let whole = run(&h, "bob", &body("partial", &p, month, 10, false)).await;
    assert_eq!(
        whole.sources.store_samples, 0,
        "the span starts after the window"
    );
    assert_exact(
        &object(&h, &whole).await,
        "partial",
        &p,
        (month, month + 10 * DAY_MS),
        &[],
    );
}

#[tokio::test]
async fn force_bypasses_the_store_and_refreshes_it() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let p = points("forced", 2);
    run(&h, "alice", &body("forced", &p, start(), 5, false)).await;
    h.clock.set_now((NOW + HOUR_MS).ms());
    let forced = run(&h, "alice", &body("forced", &p, start(), 5, true)).await;
    assert_eq!(forced.sources.store_windows, 0);
    assert_eq!(forced.sources.upstream_samples, 5 * per_day(2));
    let fetched: Vec<i64> = h
        .db
        .query_raw(
            "SELECT DISTINCT e.fetched_at FROM store_points p JOIN store_entries e ON e.key = p.key",
        )
        .unwrap()
        .iter()
        .map(|r| r["fetched_at"].as_i64().unwrap())
        .collect();
    assert_eq!(
        fetched,
        vec![(NOW + HOUR_MS).ms()],
        "every row names the refreshed data"
    );
}

#[tokio::test]
async fn a_lost_or_altered_store_object_is_refetched_and_stored_again() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let p = points("lost", 2);
    let b = body("lost", &p, start(), 5, false);
    let first = run(&h, "alice", &b).await;
    let keys = h.blobs.keys("store/");
    assert_eq!(keys.len(), 2);
    // One object gone, the other altered.
    h.blobs.delete(&keys[..1]).await.unwrap();
    let (mut bytes, meta) = h.blobs.object(&keys[1]).unwrap();
    bytes[20] ^= 0xff;
    h.blobs.put(&keys[1], bytes, &meta).await.unwrap();

    let second = run(&h, "bob", &b).await;
    assert_eq!(second.sources.store_windows, 0);
    assert_eq!(second.sources.upstream_samples, 5 * per_day(2));
    assert_eq!(object(&h, &second).await, object(&h, &first).await);
    // Stored again, and read by the next job.
    let third = run(&h, "carol", &b).await;
    assert_eq!(third.sources.upstream_windows, 0);
    assert_eq!(object(&h, &third).await, object(&h, &first).await);
}

#[tokio::test]
async fn an_object_written_without_its_index_is_never_read() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let p = points("crash", 1);
    let b = body("crash", &p, start(), 5, false);
    run(&h, "alice", &b).await;
    // As if the commit batch never ran after the objects were put.
    h.db.query_raw("DELETE FROM store_points").unwrap();
    h.db.query_raw("DELETE FROM store_entries").unwrap();
    let second = run(&h, "bob", &b).await;
    assert_eq!(
        second.sources.store_windows, 0,
        "an object no row names is not read"
    );
    assert_eq!(second.sources.upstream_windows, 2);
}

#[tokio::test]
async fn eviction_takes_unnamed_entries_then_the_least_recently_used() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    for (i, site) in ["e-one", "e-two", "e-three"].iter().enumerate() {
        h.clock.set_now((NOW + i as i64 * HOUR_MS).ms());
        run(
            &h,
            "alice",
            &body(site, &points(site, 1), start(), 5, false),
        )
        .await;
    }
    // Reading e-one's entries again makes e-two's the least recently used.
    h.clock.set_now((NOW + 5 * HOUR_MS).ms());
    run(
        &h,
        "bob",
        &body("e-one", &points("e-one", 1), start(), 5, false),
    )
    .await;
    let size = settled::figures(&h.db).await.unwrap().bytes;
    let site_of = |site: &str| -> Vec<String> {
        h.db.query_raw(&format!(
            "SELECT key FROM store_entries WHERE site = '{site}' ORDER BY key"
        ))
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect()
    };
    let two = site_of("e-two");
    let one_before = site_of("e-one");
    // One entry no row names (its rows were replaced), evicted first.
    h.db.query_raw("DELETE FROM store_points WHERE site = 'e-three'")
        .unwrap();
    let three = site_of("e-three");
    let three_bytes = h
        .count("SELECT SUM(bytes) FROM store_entries WHERE site = 'e-three'")
        .await;
    h.cfg.store_max_bytes = size - three_bytes as u64 - 1;
    let evicted = settled::evict(&h.deps()).await.unwrap();
    let mut gone: Vec<String> = three.clone();
    gone.push(two[0].clone());
    assert_eq!(
        evicted as usize,
        gone.len(),
        "unnamed ones, then one LRU entry"
    );
    for k in &gone {
        assert!(h.blobs.object(k).is_none(), "{k} deleted from R2");
    }
    assert_eq!(site_of("e-one"), one_before);
    assert_eq!(site_of("e-two"), two[1..].to_vec());
    assert_eq!(settled::figures(&h.db).await.unwrap().evicted, evicted);
}

#[tokio::test]
async fn a_site_walk_stores_every_point_it_saw_and_other_jobs_read_them() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let site = "wide-12pts";
    let reporting = ace_sim::reporting_points(site, &SimConfig::default());
    let mut mine = reporting[..3].to_vec();
    mine.sort();
    let mut b = body(site, &mine, start(), 5, false);
    b["plan"] = json!("site");
    let walked = run(&h, "alice", &b).await;
    assert_eq!(walked.plan, Some(tsp_core::plan::Plan::Site));
    let stored = h
        .count("SELECT COUNT(DISTINCT point) FROM store_points WHERE site = 'wide-12pts'")
        .await;
    assert!(stored as usize >= reporting.len(), "{stored} points stored");
    // Another owner's job of three other points fetches nothing.
    let mut others = reporting[5..8].to_vec();
    others.sort();
    let read = run(&h, "bob", &body(site, &others, start(), 5, false)).await;
    assert_eq!(read.sources.upstream_windows, 0);
    assert_eq!(read.upstream_bytes, 0);
    assert_eq!(read.sources.store_samples, 5 * per_day(3));
    assert_exact(
        &object(&h, &read).await,
        site,
        &others,
        (start(), start() + 5 * DAY_MS),
        &[],
    );
}

#[tokio::test]
async fn a_job_with_one_more_point_fetches_only_that_point() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let three = points("plus-one", 3);
    let two = three[..2].to_vec();
    let mut first = body("plus-one", &two, start(), 5, false);
    first["plan"] = json!("point");
    run(&h, "alice", &first).await;
    let mut more = body("plus-one", &three, start(), 5, false);
    more["plan"] = json!("point");
    let job = run(&h, "bob", &more).await;
    assert_eq!(job.sources.store_samples, 5 * per_day(2));
    assert_eq!(
        job.sources.upstream_samples,
        5 * per_day(1),
        "only the new point"
    );
    // One request per window, for the new point alone.
    assert_eq!(job.upstream_requests, 2);
    assert_exact(
        &object(&h, &job).await,
        "plus-one",
        &three,
        (start(), start() + 5 * DAY_MS),
        &[],
    );
}

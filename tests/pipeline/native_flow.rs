//! The whole consumer flow natively: real SQLite with `schema/`, the
//! in-process simulator as the upstream.

use std::cell::Cell;
use tsp_core::domain::EpochMs;

use ace_sim::SimConfig;
use serde_json::json;
use sha2::{Digest, Sha256};
use tsp_core::aggregate::Aggregate;
use tsp_core::domain::{format_rfc3339, parse_rfc3339, JobId, DAY_MS};
use tsp_core::error::{Disposition, StoreError};
use tsp_core::job::JobStatus;
use tsp_core::ports::{Row, SqlDb, Statement};
use tsp_core::service::dead_letter::dead_letter;
use tsp_core::service::manage;
use tsp_core::service::process::{handle, Outcome};
use tsp_native::MemBlobs;

use crate::support::*;

fn range() -> (i64, i64) {
    // Crosses a month boundary: a job of few points gets two month windows.
    let start = parse_rfc3339("2025-09-28T00:00:00Z").unwrap();
    (start.into(), (start + 5 * DAY_MS).into())
}

fn body(site: &str, points: &[String]) -> serde_json::Value {
    let (s, e) = range();
    json!({"site": site, "points": points, "start": format_rfc3339(s), "end": format_rfc3339(e)})
}

/// Windows of one day for jobs of `points` points submitted through `h`:
/// `range()` is then five windows, not two.
fn one_day_windows(h: &mut Harness, points: usize) {
    h.cfg.window_max_samples = 288 * points as u64;
}

/// Compares stored aggregate rows with reference aggregates.
fn assert_rows_match(rows: &[Row], point: &str, want: &[Aggregate]) {
    let mine: Vec<&Row> = rows.iter().filter(|r| r["point"] == point).collect();
    assert_eq!(mine.len(), want.len(), "row count for {point}");
    let mut want: Vec<&Aggregate> = want.iter().collect();
    want.sort_by_key(|a| (a.resolution.as_str(), a.bucket_start));
    for (r, a) in mine.iter().zip(want) {
        assert_eq!(r["resolution"], a.resolution.as_str());
        assert_eq!(r["bucket_start"], a.bucket_start.ms());
        assert_eq!(r["count"], a.count);
        assert_eq!(r["non_numeric"], a.non_numeric);
        assert_eq!(r["non_finite"], a.non_finite);
        let f = |k: &str| r[k].as_f64();
        assert_eq!(f("min"), a.min, "{point} min");
        assert_eq!(f("max"), a.max);
        assert_eq!(f("sum"), a.sum);
        assert_eq!(f("mean"), a.mean);
        assert_eq!(f("stddev"), a.stddev);
        assert_eq!(r["first_ts"].as_i64(), a.first.map(|f| f.0.ms()));
        assert_eq!(f("first_value"), a.first.map(|f| f.1));
        assert_eq!(r["last_ts"].as_i64(), a.last.map(|f| f.0.ms()));
        assert_eq!(f("last_value"), a.last.map(|f| f.1));
    }
}

#[tokio::test]
async fn a_job_completes_with_the_exact_object_and_aggregates() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let mut points: Vec<String> = ace_sim::default_points("flow", 4);
    points.sort(); // jobs keep their points sorted
    let id = h.submit_new(&body("flow", &points)).await;
    let handled = h.drain().await;
    assert!(handled.iter().any(|x| x.outcome == Ok(Outcome::Completed)));

    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed);
    // A chunk is a window of every point (no longer a point × month): four
    // points are month windows, and the range crosses one month boundary.
    assert_eq!(job.window_days, 31);
    assert_eq!(job.chunks_total, 2);
    assert_eq!(job.chunks_done, 2);
    let (start, end) = range();
    let expected: usize = points
        .iter()
        .map(|p| ace_sim::samples("flow", p, start, end, FIVE_MIN).len())
        .sum();
    assert_eq!(job.sample_count as usize, expected);

    // The object: exactly the simulator's samples, and its SHA-256 recorded.
    let key = job.result_key.clone().unwrap();
    let (bytes, meta) = h.blobs.object(&key).expect("result object");
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(job.result_sha256.as_deref(), Some(sha.as_str()));
    assert!(meta.custom.contains(&("sha256".into(), sha)));
    assert!(meta.custom.contains(&("job_id".into(), id.to_string())));
    assert!(meta
        .custom
        .contains(&("sample_count".into(), expected.to_string())));
    assert_exact(&bytes, "flow", &points, (EpochMs(start), EpochMs(end)), &[]);
    assert_eq!(
        bytes,
        expected_object(
            "flow",
            &points,
            EpochMs(start),
            EpochMs(end),
            job.window_days
        ),
        "window-major: per window, one block per point in point order"
    );

    // Aggregates: hourly and daily, equal to the reference over the range.
    let rows = h.agg_rows("flow");
    for p in &points {
        assert_rows_match(
            &rows,
            p,
            &reference_aggregates("flow", p, EpochMs(start), EpochMs(end)),
        );
    }
    let daily = rows.iter().filter(|r| r["resolution"] == "1d").count();
    assert_eq!(daily, 5 * points.len(), "one daily row per point per day");

    // The chunk parts are gone once the object exists.
    assert!(h.blobs.keys("parts/").is_empty());
}

#[tokio::test]
async fn two_owners_identical_jobs_write_two_objects_and_neither_replaces_the_other() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let mut points: Vec<String> = ace_sim::default_points("twice", 2);
    points.sort();
    let b = body("twice", &points);
    let first = h.submit_new(&b).await;
    h.drain().await;
    let a = h.job(&first).await;
    let (a_bytes, a_meta) = h.blobs.object(a.result_key.as_deref().unwrap()).unwrap();
    let second = match h.submit_as("bob", &b).await {
        tsp_core::service::submit::Submitted::Created { job, .. } => job.id,
        other => panic!("bob gets a job of his own, not {other:?}"),
    };
    h.drain().await;
    let b_job = h.job(&second).await;
    assert_eq!(b_job.status, JobStatus::Completed);
    assert_ne!(a.result_key, b_job.result_key, "one key per job");
    // The first owner's object is untouched: same bytes, its own job named.
    let (again, meta) = h.blobs.object(a.result_key.as_deref().unwrap()).unwrap();
    assert_eq!((again, meta), (a_bytes.clone(), a_meta));
    let (b_bytes, b_meta) = h
        .blobs
        .object(b_job.result_key.as_deref().unwrap())
        .unwrap();
    assert!(b_meta
        .custom
        .contains(&("job_id".into(), second.to_string())));
    assert_eq!(b_bytes, a_bytes, "the same data, in an object of its own");
}

#[tokio::test]
async fn a_job_of_a_year_of_one_day_windows_deletes_every_part() {
    // Was "over 1,000 parts": a part is now a window of every point, and a
    // job's windows are at least a day over at most 366 days, so no job
    // has over 1,000 parts any more. The property that stays: a job of
    // hundreds of windows (one-day windows) leaves no part behind. Daily
    // samples keep the year quick.
    let sim = spawn_sim(SimConfig {
        interval_secs: 86_400,
        ..SimConfig::default()
    })
    .await;
    let mut h = Harness::new(&sim);
    let site = "many";
    let points = sim_points(site, 10);
    one_day_windows(&mut h, points.len());
    let body = json!({
        "site": site,
        "points": points,
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-12-01T00:00:00Z",
        "plan": "site",
    });
    let id = h.submit_new(&body).await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    assert_eq!(job.window_days, 1);
    assert_eq!(job.chunks_total, 335, "one window per day of Jan-Nov 2024");
    assert_eq!(job.sample_count, 335 * 10);
    assert!(h.blobs.keys("parts/").is_empty());
}

#[tokio::test]
async fn continuations_and_multipart_give_the_same_result() {
    let sim = spawn_sim(SimConfig::default()).await;
    let points: Vec<String> = ace_sim::default_points("cont", 3);

    let mut clean = Harness::new(&sim);
    one_day_windows(&mut clean, points.len());
    let id = clean.submit_new(&body("cont", &points)).await;
    clean.drain().await;
    let clean_job = clean.job(&id).await;

    // One chunk per invocation, and the multipart path for the object, in
    // parts small enough that several cut across chunk boundaries (the
    // store enforces R2's equal-size rule, with a lower floor).
    let total = clean_job.result_bytes.expect("completed job has a size") as u64;
    let part = total / 4 + 1;
    let mut step = Harness::new(&sim);
    one_day_windows(&mut step, points.len());
    step.blobs = MemBlobs::with_min_part_bytes(256);
    step.cfg.chunks_per_invocation = 1;
    step.cfg.single_put_max_bytes = 0;
    step.cfg.multipart_part_bytes = part;
    // The object's parts only: its Parquet would add multipart parts of its own.
    step.cfg.parquet_results = false;
    let id2 = step.submit_new(&body("cont", &points)).await;
    let handled = step.drain().await;
    let continued = handled
        .iter()
        .filter(|x| matches!(x.outcome, Ok(Outcome::Continued { .. })))
        .count();
    assert_eq!(continued, 4, "five one-day windows, one per invocation");
    let job = step.job(&id2).await;
    assert_eq!(job.attempts, 1, "continuations are progress, not attempts");
    assert_eq!(job.resends, 0);
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    assert_eq!(job.sample_count, clean_job.sample_count);
    assert_eq!(job.result_sha256, clean_job.result_sha256);
    assert_eq!(step.blobs.parts_uploaded.get(), total.div_ceil(part));
    assert_eq!(step.blobs.parts_uploaded.get(), 4);
    assert_eq!(step.agg_rows("cont"), clean.agg_rows("cont"));
}

/// A database that fails the chosen batch call (1-based), before running it.
struct FailingBatch<'a> {
    inner: &'a tsp_native::SqliteDb,
    fail_at: u32,
    seen: Cell<u32>,
}

impl SqlDb for FailingBatch<'_> {
    async fn query(&self, s: &Statement) -> Result<Vec<Row>, StoreError> {
        self.inner.query(s).await
    }
    async fn execute(&self, s: &Statement) -> Result<u64, StoreError> {
        self.inner.execute(s).await
    }
    async fn batch(&self, s: &[Statement]) -> Result<Vec<u64>, StoreError> {
        self.seen.set(self.seen.get() + 1);
        if self.seen.get() == self.fail_at {
            return Err(StoreError::Backend("injected crash before commit".into()));
        }
        self.inner.batch(s).await
    }
}

#[tokio::test]
async fn resume_after_an_interrupted_chunk_and_duplicate_processing_match_a_clean_run() {
    let sim = spawn_sim(SimConfig::default()).await;
    let points: Vec<String> = ace_sim::default_points("redo", 2);
    // Five one-day windows, so the crash falls between windows.
    let mut clean = Harness::new(&sim);
    one_day_windows(&mut clean, points.len());
    let id = clean.submit_new(&body("redo", &points)).await;
    clean.drain().await;
    let want_rows = clean.agg_rows("redo");
    let want = clean.job(&id).await;

    // Interrupted: the third window's commit fails after its part was written.
    let mut h = Harness::new(&sim);
    one_day_windows(&mut h, points.len());
    h.cfg.upstream_concurrency = 1;
    let id = h.submit_new(&body("redo", &points)).await;
    h.queue.drain();
    let flaky = FailingBatch {
        inner: &h.db,
        fail_at: 3,
        seen: Cell::new(0),
    };
    let deps = h.deps_with(&flaky, &h.blobs);
    let msg = tsp_core::ports::JobMessage {
        job_id: id.clone(),
        hop: 0,
    };
    let first = handle(&deps, &msg, 1).await;
    // It made progress, so it hands over at once and counts no stall.
    assert!(
        matches!(
            first.outcome,
            Ok(Outcome::Retrying {
                progressed: true,
                delay_seconds: 0,
                ..
            })
        ),
        "{first:?}"
    );
    let mid = h.job(&id).await;
    assert_eq!(mid.status, JobStatus::Failed);
    assert_eq!(mid.stalls, 0, "progress is not a stall");
    assert_eq!(
        (mid.chunks_total, mid.chunks_done),
        (5, 2),
        "two windows checkpointed before the crash"
    );
    // The redelivery resumes and finishes.
    let second = handle(&deps, &msg, 2).await;
    assert_eq!(second.outcome, Ok(Outcome::Completed));
    let got = h.job(&id).await;
    assert_eq!(got.sample_count, want.sample_count, "nothing counted twice");
    assert_eq!(got.result_sha256, want.result_sha256);
    assert_eq!(h.agg_rows("redo"), want_rows);

    // Duplicate processing: two deliveries of one message run at once (the
    // lease lapses at once), so every chunk is processed twice.
    let mut d = Harness::new(&sim);
    one_day_windows(&mut d, points.len());
    d.cfg.lease_ms = 0;
    let id = d.submit_new(&body("redo", &points)).await;
    d.queue.drain();
    let (a, b) = futures::join!(d.deliver(&id, 0, 1), d.deliver(&id, 0, 1));
    assert!(a.outcome.is_ok() && b.outcome.is_ok(), "{a:?} {b:?}");
    let got = d.job(&id).await;
    assert_eq!(got.status, JobStatus::Completed);
    assert_eq!(got.sample_count, want.sample_count, "nothing counted twice");
    assert_eq!(got.chunks_done, want.chunks_done);
    assert_eq!(got.result_sha256, want.result_sha256);
    assert_eq!(d.agg_rows("redo"), want_rows);
}

#[tokio::test]
async fn a_cancelled_job_stops_and_writes_nothing_more() {
    let sim = spawn_sim(SimConfig::default()).await;
    let points: Vec<String> = ace_sim::default_points("cancel", 2);
    let mut h = Harness::new(&sim);
    h.cfg.chunks_per_invocation = 1;
    let id = h.submit_new(&body("cancel", &points)).await;
    let first = h.queue.drain();
    h.deliver(&first[0].0.job_id, 0, 1).await;
    let rows_before = h.agg_rows("cancel").len();
    assert!(rows_before > 0);
    let parts = format!("parts/{id}/");
    assert!(!h.blobs.keys(&parts).is_empty(), "the first window's parts");
    h.db.execute(&Statement {
        sql: "UPDATE queue_jobs SET status = 'cancelled' WHERE id = ?".into(),
        params: vec![id.as_str().into()],
    })
    .await
    .unwrap();
    let handled = h.drain().await;
    assert!(handled
        .iter()
        .all(|x| matches!(x.outcome, Ok(Outcome::Skipped(_)) | Ok(Outcome::Cancelled))));
    assert_eq!(h.agg_rows("cancel").len(), rows_before);
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.result_key, None);
    assert_eq!(job.chunks_done, 1);
    assert!(
        h.blobs.keys(&parts).is_empty(),
        "a cancelled job's parts are removed"
    );
}

#[tokio::test]
async fn unknown_site_is_permanent_and_dead_letters_once() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    h.cfg.alert_webhook_url = Some(format!("{sim}/alerts").into());
    let id = h
        .submit_new(&body("unknown-site", &["p".to_string()]))
        .await;
    let handled = h.drain().await;
    // ACE answers 403 for a site it does not know (its configured_points,
    // the job's first call).
    assert!(
        matches!(&handled[0].outcome, Ok(Outcome::DeadLettered(r))
            if r.contains("403") && r.contains("site unknown or not permitted")),
        "{handled:?}"
    );
    assert_eq!(handled[0].disposition, Disposition::Ack);
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert!(job.alerted_at.is_some());
    let key = tsp_core::service::dead_letter::archive_key(id.as_str(), job.finished_at.unwrap());
    let (archive, _) = h.blobs.object(&key).expect("archive");
    let doc: serde_json::Value = serde_json::from_slice(&archive).unwrap();
    assert_eq!(doc["job"]["id"], id.as_str());
    assert!(doc["events"].as_array().unwrap().len() >= 2);

    // A second delivery (duplicate) alerts no more.
    h.deliver(&id, 0, 2).await;
    let alerts: Vec<serde_json::Value> = reqwest::get(format!("{sim}/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine = alerts.iter().filter(|a| a["job_id"] == id.as_str()).count();
    assert_eq!(mine, 1);
}

#[tokio::test]
async fn an_always_failing_upstream_backs_off_and_waits_until_max_upstream_wait() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    h.cfg.page_retry_ms = 1_000; // one in-place retry (400 ms), not two (+800 ms)
    h.cfg.retry_jitter = 0.0;
    h.cfg.circuit_threshold = 100; // the circuit is not what this is about
                                   // A point of the site's catalogue: the point endpoint reaches the
                                   // site's faults (an unknown name would be a 404 before them).
    let id = h
        .submit_new(&body("always-fails", &sim_points("always-fails", 1)))
        .await;
    h.queue.drain();
    // Each delivery without progress backs off longer: 2, 4, … 256, capped
    // at 300 s; stalls past MAX_STALLED_DELIVERIES do not kill it.
    for want in [2, 4, 8, 16, 32, 64, 128, 256, 300] {
        let got = h.deliver(&id, 1, 1).await;
        assert_eq!(got.disposition, Disposition::Ack, "{got:?}");
        assert!(
            matches!(got.outcome, Ok(Outcome::Retrying { delay_seconds, progressed: false, .. }) if delay_seconds == want),
            "{got:?}"
        );
        let sent = h.queue.drain();
        assert_eq!(sent.len(), 1, "its own delayed message");
        assert_eq!(sent[0].1, want);
    }
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.last_error.as_deref().unwrap_or("").contains("503"));
    assert_eq!(
        job.stalls, 9,
        "nine deliveries without progress, still alive"
    );
    let view = serde_json::to_value(job.view()).unwrap();
    assert!(
        view["waiting"]["for"].as_str().unwrap().contains("503"),
        "{view}"
    );
    // Past MAX_UPSTREAM_WAIT_MS since it was claimed, the next failure ends it.
    let claimed = job.started_at.unwrap().ms();
    h.clock.set_now(claimed + h.cfg.max_upstream_wait_ms + 1);
    let last = h.deliver(&id, 1, 1).await;
    assert!(
        matches!(&last.outcome, Ok(Outcome::DeadLettered(r)) if r.contains("MAX_UPSTREAM_WAIT_MS")),
        "{last:?}"
    );
    assert_eq!(h.job(&id).await.status, JobStatus::FailedPermanent);
}

#[tokio::test]
async fn the_reaper_resends_lost_and_stalled_jobs() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    h.queue.fail.set(true);
    let out = h
        .submit_as("alice", &body("reap", &sim_points("reap", 1)))
        .await;
    let tsp_core::service::submit::Submitted::Created { job, enqueued } = out else {
        panic!("expected a new job");
    };
    assert!(!enqueued, "the send failed, the row stays for the reaper");
    h.queue.fail.set(false);
    // Not idle long enough yet: nothing to do.
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert!(r.resent.is_empty());
    // Later, the reaper sends it once, and the job runs to completion.
    h.clock.set_now((NOW + 10 * 60_000).into());
    let later = h;
    let r = tsp_core::service::reap::reap(&later.deps()).await.unwrap();
    assert_eq!(r.resent, vec![job.id.to_string()]);
    let again = tsp_core::service::reap::reap(&later.deps()).await.unwrap();
    assert!(again.resent.is_empty(), "resent once per idle period");
    later.drain().await;
    let done = later.job(&job.id).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert!(done.sample_count > 0);
}

#[tokio::test]
async fn submit_validates_deduplicates_and_writes_nothing_on_error() {
    let h = Harness::new("http://127.0.0.1:9");
    for bad in [
        "{not json",
        r#"{"points":["a"],"days":3}"#,
        r#"{"site":"s","points":["a"],"start":"2024-01-01T00:00:00Z","end":"2025-01-03T00:00:00Z"}"#,
    ] {
        let r = tsp_core::service::submit::submit(&h.deps(), "alice", &Grant::All, bad.as_bytes())
            .await;
        let err = r.expect_err(bad);
        assert_eq!(err.http_status(), 422, "{bad}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(h.count("SELECT COUNT(*) FROM queue_jobs").await, 0);

    let b = body("dedup", &["a".to_string(), "b".to_string()]);
    let first = h.submit_new(&b).await;
    let before = h.db.statement_count();
    let again = h.submit_as("alice", &b).await;
    assert_eq!(
        h.db.statement_count() - before,
        1,
        "a coalesced submit is one query"
    );
    match again {
        tsp_core::service::submit::Submitted::Existing(j) => assert_eq!(j.id, first),
        other => panic!("expected the existing job, got {other:?}"),
    }
    // Another owner does not see alice's job.
    assert!(matches!(
        h.submit_as("bob", &b).await,
        tsp_core::service::submit::Submitted::Created { .. }
    ));
    let mut forced = b.clone();
    forced["force"] = json!(true);
    // `force` while the identical job is still live shares it: it never
    // makes two live jobs for one request (the unique live-key index).
    assert!(matches!(
        h.submit_as("alice", &forced).await,
        tsp_core::service::submit::Submitted::Existing(j) if j.id == first
    ));
    h.db.query_raw("UPDATE queue_jobs SET status = 'completed', finished_at = 1 RETURNING id")
        .unwrap();
    let before = h.db.statement_count();
    assert!(matches!(
        h.submit_as("alice", &forced).await,
        tsp_core::service::submit::Submitted::Created { .. }
    ));
    assert_eq!(
        h.db.statement_count() - before,
        3,
        "insert + event + usage in one batch"
    );
    assert_eq!(h.count("SELECT COUNT(*) FROM queue_jobs").await, 3);
}

#[tokio::test]
async fn a_lost_continuation_is_resent_by_the_reaper() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    h.cfg.chunks_per_invocation = 1;
    let id = h.submit_new(&body("lost", &sim_points("lost", 1))).await;
    h.queue.drain();
    let first = h.deliver(&id, 0, 1).await;
    assert!(matches!(first.outcome, Ok(Outcome::Continued { .. })));
    // The continuation message is lost (a crash of the local queue).
    assert_eq!(h.queue.drain().len(), 1);
    h.clock.set_now((NOW + 1_000).into());
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert!(
        r.resent.is_empty(),
        "a fresh hand-over is left to its continuation"
    );
    h.clock.set_now((NOW + 31_000).into());
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(
        r.resent,
        vec![id.to_string()],
        "a released lease counts as lapsed"
    );
    h.drain().await;
    assert_eq!(h.job(&id).await.status, JobStatus::Completed);
}

#[tokio::test]
async fn a_completed_job_is_reused_only_while_its_object_exists() {
    use tsp_core::ports::BlobStore;
    use tsp_core::service::submit::Submitted;
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let b = body("reuse", &sim_points("reuse", 1));
    let id = h.submit_new(&b).await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed);
    match h.submit_as("alice", &b).await {
        Submitted::Existing(j) => assert_eq!(j.id, id),
        other => panic!("expected the completed job, got {other:?}"),
    }
    h.blobs
        .delete(&[job.result_key.clone().unwrap()])
        .await
        .unwrap();
    assert!(matches!(
        h.submit_as("alice", &b).await,
        Submitted::Created { .. }
    ));
}

#[tokio::test]
async fn the_reaper_purges_terminal_jobs_past_retention_with_their_history() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    h.cfg.job_retention_ms = 3_600_000;
    let quiet = |_: &str| {};
    let one = |site: &str| body(site, &sim_points(site, 1));

    let completed = h.submit_new(&one("ret-done")).await;
    h.drain().await;
    assert_eq!(h.job(&completed).await.status, JobStatus::Completed);
    let cancelled = h.submit_new(&one("ret-cancel")).await;
    manage::cancel(&h.db, &h.clock, "alice", &cancelled, &quiet)
        .await
        .expect("cancel");
    let dead = h.submit_new(&one("ret-dead")).await;
    dead_letter(&h.deps(), Some(&dead), "gave up", &json!({}))
        .await
        .expect("dead and alerted (log only)");
    // A dead job whose alert has not gone out yet is kept until it has.
    let unalerted = h.submit_new(&one("ret-unalerted")).await;
    h.cfg.alert_webhook_url = Some("http://127.0.0.1:9/hook".to_owned().into());
    h.cfg.alert_timeout_ms = 100;
    dead_letter(&h.deps(), Some(&unalerted), "gave up", &json!({}))
        .await
        .expect_err("the webhook is down");
    let active = h.submit_new(&one("ret-active")).await;
    h.queue.drain();
    assert!(history(&h, &completed).await.1 > 0, "checkpoints exist");

    // Within the retention period: nothing goes.
    h.clock.set_now((NOW + 1_800_000).into());
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(r.purged, 0);

    // Past it: the finished jobs go, with their events and checkpoints.
    h.clock.set_now((NOW + 7_200_000).into());
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(r.purged, 3);
    for id in [&completed, &cancelled, &dead] {
        let rows = h.db.query(&tsp_core::store::select_job(id)).await.unwrap();
        assert!(rows.is_empty(), "{id} purged");
        assert_eq!(history(&h, id).await, (0, 0), "{id} history purged");
    }
    for id in [&unalerted, &active] {
        assert!(history(&h, id).await.0 > 0, "{id} keeps its history");
    }
    let kept = h.job(&unalerted).await;
    assert_eq!(kept.status, JobStatus::FailedPermanent);
    assert_eq!(kept.alerted_at, None);
    assert_eq!(h.job(&active).await.status, JobStatus::Queued);
    assert_eq!(h.count("SELECT COUNT(*) FROM queue_jobs").await, 2);

    // Bounded per run, and off when the retention is 0.
    for i in 0..55 {
        let id = h.submit_new(&one(&format!("ret-bulk-{i}"))).await;
        manage::cancel(&h.db, &h.clock, "alice", &id, &quiet)
            .await
            .expect("cancel");
    }
    h.queue.drain();
    h.clock.set_now((NOW + 20_000_000).into());
    h.cfg.job_retention_ms = 0;
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(r.purged, 0, "retention 0 keeps everything");
    h.cfg.job_retention_ms = 3_600_000;
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(r.purged, tsp_core::service::reap::REAP_LIMIT as u64);
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(r.purged, 5);
}

/// A job's (events, checkpoints) row counts.
async fn history(h: &Harness, id: &JobId) -> (i64, i64) {
    let mut out = [0; 2];
    for (n, table) in out.iter_mut().zip(["job_events", "job_chunks"]) {
        let rows =
            h.db.query(&Statement {
                sql: format!("SELECT COUNT(*) AS n FROM {table} WHERE job_id = ?1").into(),
                params: vec![id.as_str().into()],
            })
            .await
            .expect("count");
        *n = rows[0]["n"].as_i64().expect("a count");
    }
    (out[0], out[1])
}

#[tokio::test]
async fn a_job_the_reaper_resent_too_often_is_dead_lettered_as_stalled() {
    let h = Harness::new("http://127.0.0.1:9");
    let id = h.submit_new(&body("stall", &["p".to_string()])).await;
    h.queue.drain();
    let max = tsp_core::service::reap::MAX_RESENDS;
    // A job that ran, failed, and whose retries keep getting lost.
    h.db.execute(&Statement {
        sql: "UPDATE queue_jobs SET resends = ?1, status = 'failed', next_attempt_at = ?3 \
              WHERE id = ?2"
            .into(),
        params: vec![max.into(), id.as_str().into(), NOW.into()],
    })
    .await
    .unwrap();
    // Ten minutes on: resent again, for it has not waited
    // MAX_UPSTREAM_WAIT_MS since it was submitted (the consumer's rule).
    h.clock.set_now((NOW + 10 * 60_000).into());
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!((r.dead.len(), r.resent.len()), (0, 1), "{r:?}");
    h.queue.drain();
    h.clock
        .set_now((NOW + h.cfg.max_upstream_wait_ms + 10 * 60_000).into());
    let r = tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(r.dead, vec![id.to_string()]);
    assert!(r.resent.is_empty(), "not resent an eleventh time");
    assert!(h.queue.drain().is_empty());
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert!(
        job.last_error.as_deref().unwrap_or("").contains("stalled"),
        "{:?}",
        job.last_error
    );
    assert!(job.alerted_at.is_some(), "archived and alerted (log only)");
}

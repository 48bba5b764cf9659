//! Owner actions over the native adapters: cancel, retry from dead, stats,
//! and how many D1 statements each costs.

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::domain::EpochMs;
use tsp_core::error::Error;
use tsp_core::job::JobStatus;
use tsp_core::ports::SqlDb;
use tsp_core::service::manage;
use tsp_core::service::process::Outcome;
use tsp_core::store;

use crate::support::*;

/// Two days of the first point of `site`'s simulator catalogue.
fn body(site: &str) -> serde_json::Value {
    json!({"site": site, "points": sim_points(site, 1), "start": "2025-10-01T00:00:00Z", "end": "2025-10-03T00:00:00Z"})
}

#[tokio::test]
async fn a_status_read_is_one_query_and_another_owner_sees_nothing() {
    let h = Harness::new("http://127.0.0.1:9");
    let id = h.submit_new(&body("s")).await;
    let before = h.db.statement_count();
    let job = store::get_job(&h.db, store::select_owned_job(&id, "alice"))
        .await
        .unwrap();
    assert_eq!(h.db.statement_count() - before, 1);
    assert!(job.is_some());
    let other = store::get_job(&h.db, store::select_owned_job(&id, "bob"))
        .await
        .unwrap();
    assert_eq!(other, None, "another owner's job does not exist for them");
}

async fn try_submit(
    h: &Harness,
    owner: &str,
    site: &str,
) -> Result<tsp_core::service::submit::Submitted, Error> {
    let bytes = body(site).to_string();
    tsp_core::service::submit::submit(&h.deps(), owner, &Grant::All, bytes.as_bytes()).await
}

#[tokio::test]
async fn a_token_without_a_grant_for_the_site_gets_403_and_nothing_is_written() {
    let h = Harness::new("http://127.0.0.1:9");
    let tokens = tsp_core::auth::TokenTable::parse("t=alice:north|south");
    let grant = tokens.caller(Some("Bearer t")).unwrap().grant;
    let submit = |site: &str| {
        let bytes = body(site).to_string();
        let deps = h.deps();
        let grant = grant.clone();
        async move { tsp_core::service::submit::submit(&deps, "alice", &grant, bytes.as_bytes()).await }
    };
    let err = submit("east").await.expect_err("no grant for east");
    assert!(
        matches!(&err, Error::Forbidden(why) if why.contains("east")),
        "{err:?}"
    );
    assert_eq!(err.http_status(), 403);
    assert_eq!(h.count("SELECT COUNT(*) FROM queue_jobs").await, 0);
    assert!(h.queue.drain().is_empty(), "nothing queued");
    assert!(matches!(
        submit("north").await,
        Ok(tsp_core::service::submit::Submitted::Created { .. })
    ));
}

#[tokio::test]
async fn a_job_list_for_a_limited_token_holds_only_its_sites() {
    let h = Harness::new("http://127.0.0.1:9");
    h.submit_new(&body("north")).await;
    h.submit_new(&body("east")).await;
    let list = |sites: Option<Vec<String>>| {
        let q = store::select_owner_jobs("alice", None, (EpochMs::MAX, ""), 10, sites.as_deref());
        let db = &h.db;
        async move {
            let jobs: Vec<tsp_core::job::Job> = store::decode(db.query(&q).await.unwrap()).unwrap();
            jobs.into_iter()
                .map(|j| j.site.to_string())
                .collect::<Vec<_>>()
        }
    };
    let mut all = list(None).await;
    all.sort();
    assert_eq!(all, ["east", "north"]);
    assert_eq!(list(Some(vec!["north".into()])).await, ["north"]);
    assert!(
        list(Some(vec![])).await.is_empty(),
        "an empty grant lists nothing"
    );
}

#[tokio::test]
async fn an_owner_at_the_active_job_limit_gets_429_and_nothing_is_written() {
    let mut h = Harness::new("http://127.0.0.1:9");
    h.cfg.max_active_jobs = 2;
    let quiet = |_: &str| {};
    let first = h.submit_new(&body("q1")).await;
    h.submit_new(&body("q2")).await;
    let (jobs, events) = (
        h.count("SELECT COUNT(*) FROM queue_jobs").await,
        h.count("SELECT COUNT(*) FROM job_events").await,
    );
    let err = try_submit(&h, "alice", "q3")
        .await
        .expect_err("over the limit");
    assert_eq!(err, Error::TooManyActiveJobs(2));
    assert_eq!(err.http_status(), 429);
    assert!(err.public_detail().contains("allowed (2)"), "{err}");
    assert_eq!(h.count("SELECT COUNT(*) FROM queue_jobs").await, jobs);
    assert_eq!(h.count("SELECT COUNT(*) FROM job_events").await, events);
    assert_eq!(h.queue.drain().len(), 2, "no message for the refused job");

    // An identical request still coalesces with the live job (no new job).
    assert!(matches!(
        try_submit(&h, "alice", "q1").await,
        Ok(tsp_core::service::submit::Submitted::Existing(_))
    ));
    // The limit is per owner.
    try_submit(&h, "bob", "q3").await.expect("bob has room");
    // A finished job frees a slot.
    manage::cancel(&h.db, &h.clock, "alice", &first, &quiet)
        .await
        .unwrap();
    try_submit(&h, "alice", "q3").await.expect("room again");
    // 0 means no limit.
    h.cfg.max_active_jobs = 0;
    for i in 0..5 {
        try_submit(&h, "alice", &format!("q-many-{i}"))
            .await
            .expect("no limit");
    }
}

#[tokio::test]
async fn cancel_applies_to_live_jobs_of_the_owner_only() {
    let h = Harness::new("http://127.0.0.1:9");
    let id = h.submit_new(&body("s")).await;
    let quiet = |_: &str| {};
    let err = manage::cancel(&h.db, &h.clock, "bob", &id, &quiet)
        .await
        .unwrap_err();
    assert_eq!(err, Error::NotFound);
    let before = h.db.statement_count();
    let job = manage::cancel(&h.db, &h.clock, "alice", &id, &quiet)
        .await
        .unwrap();
    assert_eq!(h.db.statement_count() - before, 2, "update + event");
    assert_eq!(job.status, JobStatus::Cancelled);
    let again = manage::cancel(&h.db, &h.clock, "alice", &id, &quiet)
        .await
        .unwrap_err();
    assert!(matches!(again, Error::Conflict(_)), "{again:?}");
    assert_eq!(again.http_status(), 409);
}

#[tokio::test]
async fn retry_from_dead_requeues_and_keeps_the_history() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let id = h.submit_new(&body("unknown-site")).await;
    let handled = h.drain().await;
    assert!(matches!(handled[0].outcome, Ok(Outcome::DeadLettered(_))));
    let dead = h.job(&id).await;
    assert_eq!(dead.status, JobStatus::FailedPermanent);
    let events_before = h.db.query_raw("SELECT * FROM job_events").unwrap().len();

    let quiet = |_: &str| {};
    assert_eq!(
        manage::retry((&h.db, &h.queue, &h.clock), &h.cfg, "bob", &id, &quiet)
            .await
            .unwrap_err(),
        Error::NotFound
    );
    let (job, sent) = manage::retry((&h.db, &h.queue, &h.clock), &h.cfg, "alice", &id, &quiet)
        .await
        .unwrap();
    assert!(sent);
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.attempts, dead.attempts, "earlier attempts stay visible");
    assert!(
        job.last_error.is_some(),
        "the last error stays until a new attempt"
    );
    let events = h.db.query_raw("SELECT * FROM job_events").unwrap();
    assert_eq!(
        events.len(),
        events_before + 1,
        "history kept, retry appended"
    );
    assert_eq!(h.queue.drain().len(), 1, "re-enqueued");
    // Only dead jobs can be retried.
    let live = h.submit_new(&body("other")).await;
    let err = manage::retry((&h.db, &h.queue, &h.clock), &h.cfg, "alice", &live, &quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)));
}

#[tokio::test]
async fn stats_count_by_status_and_measure_durations() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    h.submit_new(&body("s1")).await;
    h.submit_new(&body("unknown-x")).await;
    h.drain().await;
    h.submit_new(&body("s2")).await;
    h.queue.drain();
    let before = h.db.statement_count();
    let st = serde_json::to_value(
        manage::stats(&h.db, &h.clock, "alice", (0, 0))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        h.db.statement_count() - before,
        3,
        "the figures, the quota usage and the sample store's figures"
    );
    assert_eq!(st["sample_store"]["hits"], 0, "nothing read the store yet");
    assert_eq!(st["counts"]["completed"], 1);
    assert_eq!(st["counts"]["failed_permanent"], 1);
    assert_eq!(st["counts"]["queued"], 1);
    assert_eq!(st["last_hour"]["completed"], 1);
    assert_eq!(st["last_hour"]["failure_rate"], 0.5);
    assert_eq!(st["dead_letters_last_24h"], 1);
    assert_eq!(st["last_hour"]["samples"], 2 * 288);
    assert_eq!(st["duration_ms_last_24h"]["jobs"], 1);
    assert_eq!(
        st["oldest_queued_age_ms"], 0,
        "fixed clock: queued just now"
    );
    let none =
        serde_json::to_value(manage::stats(&h.db, &h.clock, "bob", (0, 0)).await.unwrap()).unwrap();
    assert_eq!(none["counts"]["completed"], 0);
    assert_eq!(none["duration_ms_last_24h"]["p50"], serde_json::Value::Null);
}

/// The statements one stats read costs, and what it says.
async fn stats_cost(h: &Harness) -> (u64, serde_json::Value) {
    let before = h.db.statement_count();
    let st = serde_json::to_value(
        manage::stats(&h.db, &h.clock, "alice", (0, 0))
            .await
            .unwrap(),
    )
    .unwrap();
    (h.db.statement_count() - before, st)
}

#[tokio::test]
async fn stats_cost_the_same_two_queries_at_10_and_at_1000_jobs_and_count_right() {
    let h = Harness::new("http://127.0.0.1:9");
    for i in 0..10 {
        h.submit_new(&body(&format!("n{i}"))).await;
    }
    let (at_10, st) = stats_cost(&h).await;
    assert_eq!(st["counts"]["queued"], 10);
    for i in 10..1_000 {
        h.submit_new(&body(&format!("n{i}"))).await;
    }
    // Counters follow every transition, purges included.
    h.db.query_raw("UPDATE queue_jobs SET status = 'cancelled' WHERE site < 'n5' RETURNING id")
        .unwrap();
    let (at_1000, st) = stats_cost(&h).await;
    assert_eq!(at_10, at_1000, "constant as the history grows");
    let counted =
        st["counts"]["queued"].as_i64().unwrap() + st["counts"]["cancelled"].as_i64().unwrap();
    assert_eq!(counted, 1_000);
    let direct = h
        .count("SELECT COUNT(*) FROM queue_jobs WHERE status = 'cancelled'")
        .await;
    assert_eq!(st["counts"]["cancelled"], direct);
    // The stats read the owner_counts table, not a scan of queue_jobs.
    let plan = h
        .db
        .query_raw("EXPLAIN QUERY PLAN SELECT n FROM owner_counts WHERE owner = 'alice' AND status = 'queued'")
        .unwrap();
    assert!(format!("{plan:?}").contains("PRIMARY KEY"), "{plan:?}");
}

#[tokio::test]
async fn listing_pages_through_jobs_created_in_the_same_millisecond() {
    // The harness clock is fixed: every job has the same created_at.
    let h = Harness::new("http://127.0.0.1:9");
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(h.submit_new(&body(&format!("list{i}"))).await.to_string());
    }
    let mut seen = Vec::new();
    let mut cursor = (i64::MAX, String::new());
    loop {
        let q = store::select_owner_jobs("alice", None, (EpochMs(cursor.0), &cursor.1), 2, None);
        let page: Vec<tsp_core::job::Job> = store::decode(h.db.query(&q).await.unwrap()).unwrap();
        seen.extend(page.iter().map(|j| j.id.to_string()));
        match page.last() {
            Some(last) if page.len() == 2 => cursor = (last.created_at.into(), last.id.to_string()),
            _ => break,
        }
    }
    made.sort();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, made, "every job exactly once: {seen:?}");
}

/// The README's configuration table and `wrangler.toml` follow the one
/// settings table in `core::config` (keys, defaults, docs, secrets).
#[test]
fn the_readme_and_wrangler_toml_follow_the_settings_table() {
    use tsp_core::config::{readme_table, SETTINGS};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("| var | default | meaning |")
        .expect("the table");
    let end = readme[start..]
        .find("\n\n")
        .map_or(readme.len(), |n| start + n + 1);
    assert_eq!(
        &readme[start..end],
        readme_table(),
        "regenerate the README's table from core::config::SETTINGS"
    );
    // Every var of the three Workers' configs is a setting, and no secret
    // is a var (tests/pipeline/deploy.rs holds the rest).
    for config in crate::deploy::CONFIGS {
        let toml = std::fs::read_to_string(root.join(config)).unwrap();
        let vars = toml.split("[vars]").nth(1).expect("[vars]");
        for line in vars.lines().take_while(|l| !l.starts_with('[')) {
            let Some((key, _)) = line.split_once(" = ") else {
                continue;
            };
            let s = SETTINGS.iter().find(|s| s.key == key.trim());
            assert!(
                s.is_some_and(|s| !s.secret),
                "{config} var {key} is not a setting"
            );
        }
    }
}

/// Alice retries a dead job.
async fn retry(
    h: &Harness,
    id: &tsp_core::domain::JobId,
) -> Result<(tsp_core::job::Job, bool), Error> {
    let quiet = |_: &str| {};
    manage::retry((&h.db, &h.queue, &h.clock), &h.cfg, "alice", id, &quiet).await
}

/// A job of an unknown site, dead after one delivery.
async fn dead_job(h: &Harness, site: &str) -> tsp_core::domain::JobId {
    let id = h.submit_new(&body(site)).await;
    h.drain().await;
    assert_eq!(h.job(&id).await.status, JobStatus::FailedPermanent);
    id
}

#[tokio::test]
async fn a_retry_counts_against_the_active_limit_the_quota_and_the_minute() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    let t0 = 1_764_000_000_000i64;
    h.clock.set_now(t0);
    let ids = [
        dead_job(&h, "unknown-a").await,
        dead_job(&h, "unknown-b").await,
        dead_job(&h, "unknown-c").await,
    ];
    let units = h.job(&ids[0]).await;
    let units = tsp_core::chunk::quota_units(units.start_ms, units.end_ms, units.points.len());
    let used = |h: &Harness| {
        h.db.query_raw("SELECT COALESCE(SUM(chunks), 0) AS n FROM owner_usage")
            .unwrap()[0]["n"]
            .as_i64()
            .unwrap()
    };
    // The active-job limit: one live job already (the first retry) fills it.
    h.cfg.max_active_jobs = 1;
    let before = used(&h);
    retry(&h, &ids[0]).await.unwrap();
    assert_eq!(used(&h) - before, units, "a retry costs what the job cost");
    let err = retry(&h, &ids[1]).await.unwrap_err();
    assert!(matches!(err, Error::TooManyActiveJobs(1)), "{err:?}");
    assert_eq!(err.http_status(), 429);
    assert_eq!(
        h.job(&ids[1]).await.status,
        JobStatus::FailedPermanent,
        "nothing changed"
    );
    // The minute's retries.
    h.cfg.max_active_jobs = 0;
    h.cfg.retries_per_minute = 2;
    retry(&h, &ids[1]).await.unwrap();
    let err = retry(&h, &ids[2]).await.unwrap_err();
    assert!(matches!(err, Error::TooManyRetries(2)), "{err:?}");
    h.clock.set_now(t0 + 60_000);
    // The quota: the day's usage plus the job's units must fit.
    h.cfg.daily_chunk_quota = used(&h) as u64;
    let err = retry(&h, &ids[2]).await.unwrap_err();
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err:?}");
    h.cfg.daily_chunk_quota = 0;
    retry(&h, &ids[2]).await.unwrap();
    // The reaper forgets the counts of minutes an hour gone.
    let counts = |h: &Harness| h.db.query_raw("SELECT * FROM owner_retries").unwrap().len();
    assert!(counts(&h) > 0);
    h.clock.set_now(t0 + 2 * 3_600_000);
    tsp_core::service::reap::reap(&h.deps()).await.unwrap();
    assert_eq!(counts(&h), 0);
}

#[tokio::test]
async fn a_job_dead_again_within_the_hour_is_archived_but_not_alerted_again() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let t0 = 1_764_000_000_000i64;
    h.clock.set_now(t0);
    let id = dead_job(&h, "unknown-alerts").await;
    let first = h.job(&id).await;
    assert_eq!(
        first.last_alert_at,
        Some(EpochMs(t0)),
        "the first death is alerted"
    );
    let die_again = |at: i64| {
        let id = id.clone();
        let h = &h;
        async move {
            h.clock.set_now(at);
            retry(h, &id).await.unwrap();
            h.drain().await;
            h.job(&id).await
        }
    };
    let second = die_again(t0 + 20 * 60_000).await;
    assert_eq!(second.status, JobStatus::FailedPermanent);
    assert!(second.alerted_at.is_some(), "handled");
    assert_eq!(
        second.last_alert_at,
        Some(EpochMs(t0)),
        "no alert within the hour"
    );
    let archives = h.blobs.keys("dead-letters/").len();
    assert_eq!(archives, 2, "each death archived");
    let third = die_again(t0 + 61 * 60_000).await;
    assert_eq!(
        third.last_alert_at,
        Some(EpochMs(t0 + 61 * 60_000)),
        "an hour on, alerted"
    );
}

//! Resilience natively: the quota answer, the reaper's selections (a deep
//! backlog is not a loss; failing alerts cannot crowd out stalled jobs; a
//! webhook's 4xx is final), coalescing under a lost race, and secrets that
//! never print.

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::error::Error;
use tsp_core::job::JobStatus;
use tsp_core::ports::{Ports, SqlDb, Statement};
use tsp_core::service::reap::reap;
use tsp_core::service::submit::{submit, Submitted};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn day_job(site: &str) -> serde_json::Value {
    json!({"site": site, "points": ["p1", "p2"], "start": "2025-10-01T00:00:00Z", "end": "2025-10-03T00:00:00Z"})
}

async fn sql(h: &Harness, sql: &str) {
    h.db.execute(&Statement {
        sql: sql.to_owned().into(),
        params: vec![],
    })
    .await
    .expect("sql");
}

#[tokio::test]
async fn past_the_daily_quota_a_submit_gets_429_naming_it_and_writes_nothing() {
    let mut h = Harness::new("http://127.0.0.1:9");
    h.cfg.daily_chunk_quota = 5; // each job is 2 chunks
    for site in ["q1", "q2"] {
        h.submit_new(&day_job(site)).await;
    }
    let mut forced = day_job("q1");
    forced["force"] = json!(true);
    sql(
        &h,
        "UPDATE queue_jobs SET status = 'completed', finished_at = 1",
    )
    .await;
    // `force` counts too: 2 + 2 + 2 > 5.
    let err = submit(
        &h.deps(),
        "alice",
        &Grant::All,
        forced.to_string().as_bytes(),
    )
    .await
    .expect_err("over the quota");
    let Error::QuotaExceeded {
        limit,
        need,
        left,
        retry_after_s,
    } = err.clone()
    else {
        panic!("{err:?}");
    };
    assert_eq!((limit, need, left), (5, 2, 1));
    assert_eq!(err.http_status(), 429);
    assert!(err.to_string().contains("daily quota"), "{err}");
    // NOW is a UTC midnight: the quota resets a whole day later.
    assert_eq!(retry_after_s, 86_400);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM queue_jobs").await,
        2,
        "nothing written"
    );
    // Another owner has a quota of their own.
    assert!(matches!(
        h.submit_as("bob", &forced).await,
        Submitted::Created { .. }
    ));
    let stats = serde_json::to_value(
        tsp_core::service::manage::stats(&h.db, &h.clock, "alice", (5, 0))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stats["usage_today"], json!({"chunks": 4, "quota": 5}));
}

#[tokio::test]
async fn twenty_queued_jobs_in_a_backlog_are_never_killed_by_the_reaper() {
    let h = Harness::new("http://127.0.0.1:9");
    for i in 0..20 {
        h.submit_new(&day_job(&format!("backlog-{i}"))).await;
    }
    h.queue.drain();
    // Their messages sit in a deep queue for hours; the reaper runs every
    // minute. It may resend (duplicates are harmless), it never kills.
    sql(&h, "UPDATE queue_jobs SET resends = 50").await;
    for minute in 1..=180 {
        h.clock.set_now((NOW + minute * 60_000).into());
        let r = reap(&h.deps()).await.unwrap();
        assert!(r.dead.is_empty(), "minute {minute}: {:?}", r.dead);
    }
    let queued = h
        .count("SELECT COUNT(*) FROM queue_jobs WHERE status = 'queued'")
        .await;
    assert_eq!(queued, 20);
}

#[tokio::test]
async fn sixty_dead_jobs_whose_alert_keeps_failing_do_not_starve_a_stalled_job() {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&hook)
        .await;
    let mut h = Harness::new("http://127.0.0.1:9");
    h.cfg.alert_webhook_url = Some(format!("{}/hook", hook.uri()).into());
    for i in 0..61 {
        h.submit_new(&day_job(&format!("dead-{i}"))).await;
    }
    h.queue.drain();
    // 60 are dead and owed an alert; the newest one ran and its lease lapsed.
    sql(
        &h,
        "UPDATE queue_jobs SET status = 'failed_permanent', finished_at = 1, updated_at = 1 \
         WHERE site != 'dead-60'",
    )
    .await;
    sql(
        &h,
        "UPDATE queue_jobs SET status = 'processing', lease_until = 2, updated_at = 2 \
         WHERE site = 'dead-60'",
    )
    .await;
    h.clock.set_now(NOW.into());
    let r = reap(&h.deps()).await.unwrap();
    assert_eq!(r.resent.len(), 1, "the stalled job is resent: {r:?}");
    let stalled = h.queue.drain();
    assert_eq!(stalled.len(), 1);
    let got = h.job(&stalled[0].0.job_id).await;
    assert_eq!(got.site, "dead-60");
}

#[tokio::test]
async fn a_webhook_4xx_is_a_permanent_alert_failure_counted_and_never_retried() {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&hook)
        .await;
    let sim = spawn_sim(SimConfig::default()).await;
    let mut h = Harness::new(&sim);
    h.cfg.alert_webhook_url = Some(format!("{}/hook", hook.uri()).into());
    let id = h.submit_new(&day_job("unknown-site")).await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::FailedPermanent);
    assert_eq!(job.alerted_at, None);
    assert!(job.alert_error.unwrap_or_default().contains("410"));
    assert_eq!(
        hook.received_requests().await.unwrap().len(),
        1,
        "one try, no retries"
    );
    h.clock.set_now((NOW + 60 * 60_000).into());
    let r = reap(&h.deps()).await.unwrap();
    assert!(
        r.dead.is_empty(),
        "the reaper does not retry a refused alert"
    );
    assert_eq!(hook.received_requests().await.unwrap().len(), 1);
    let stats = serde_json::to_value(
        tsp_core::service::manage::stats(&h.db, &h.clock, "alice", (0, 0))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stats["alerts_refused"], 1);
}

#[tokio::test]
async fn a_submit_that_loses_the_insert_race_gets_the_winners_job() {
    let h = Harness::new("http://127.0.0.1:9");
    let first = h.submit_new(&day_job("race")).await;
    // The loser's lookup ran before the winner's insert: simulate it by
    // hiding the winner from the lookup (its fingerprint index stays).
    let winner_fp = h.job(&first).await.fingerprint;
    sql(&h, "UPDATE queue_jobs SET created_at = created_at").await;
    let mut body = day_job("race");
    body["force"] = json!(true); // skips the lookup, as a lost race does
    match h.submit_as("alice", &body).await {
        Submitted::Existing(job) => assert_eq!(job.id, first),
        other => panic!("expected the winner's job, got {other:?}"),
    }
    let live = h
        .count("SELECT COUNT(*) FROM queue_jobs WHERE status IN ('queued', 'processing', 'failed')")
        .await;
    assert_eq!(live, 1);
    assert_eq!(h.job(&first).await.fingerprint, winner_fp);
}

#[test]
fn secrets_never_reach_a_debug_print() {
    let cfg = tsp_core::config::Config::from_lookup(|k| match k {
        "ACE_API_TOKEN" => Some("ace-secret-123".to_owned()),
        "ALERT_WEBHOOK_URL" => Some("https://hooks.example/T0/secret-path".to_owned()),
        _ => None,
    })
    .unwrap();
    let printed = format!("{cfg:?}");
    assert!(!printed.contains("ace-secret-123"), "{printed}");
    assert!(!printed.contains("secret-path"), "{printed}");
    let tokens = tsp_core::auth::TokenTable::parse("tok-abc=alice");
    let printed = format!("{tokens:?}");
    assert!(!printed.contains("tok-abc"), "{printed}");
}

#[tokio::test]
async fn repeated_limit_warnings_raise_one_operator_alert_per_hour() {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let mut h = Harness::new("http://127.0.0.1:9");
    h.cfg.alert_webhook_url = Some(format!("{}/hook", hook.uri()).into());
    let hot = tsp_core::budget::Usage {
        statements: 950,
        ..Default::default()
    };
    let calm = tsp_core::budget::Usage {
        statements: 100,
        ..Default::default()
    };
    let deps = h.deps();
    let record = |u: tsp_core::budget::Usage| {
        let deps = &deps;
        async move { tsp_core::service::usage::record(deps, &u).await }
    };
    record(calm).await.unwrap();
    record(hot).await.unwrap();
    record(hot).await.unwrap();
    assert!(
        hook.received_requests().await.unwrap().is_empty(),
        "two warnings: not yet"
    );
    for _ in 0..3 {
        record(hot).await.unwrap();
    }
    assert_eq!(
        hook.received_requests().await.unwrap().len(),
        1,
        "one alert for the hour"
    );
    let st = serde_json::to_value(
        tsp_core::service::manage::stats(&h.db, &h.clock, "alice", (0, 0))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(st["invocations_last_24h"]["invocations"], 6);
    assert_eq!(st["invocations_last_24h"]["max_d1_statements"], 950);
    assert_eq!(st["invocations_last_24h"]["limit_warnings"], 5);
}

/// A queue whose sends never answer.
struct HangingQueue;

impl tsp_core::ports::JobQueue for HangingQueue {
    async fn send(&self, _: &tsp_core::ports::JobMessage, _: u32) -> Result<(), Error> {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        Ok(())
    }

    async fn nudge(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[tokio::test]
async fn a_queue_send_that_hangs_times_out_and_the_outbox_takes_over() {
    let h = Harness::new("http://127.0.0.1:9");
    let queue = tsp_core::timeout::TimedQueue::new(HangingQueue, h.clock.clone(), 300);
    let deps: tsp_core::service::Deps<'_, Ports<_, _, _, _, _>> = tsp_core::service::Deps {
        db: &h.db,
        blobs: &h.blobs,
        queue: &queue,
        http: &h.http,
        clock: &h.clock,
        cfg: &h.cfg,
        log: &|_| {},
    };
    let t0 = std::time::Instant::now();
    let out = submit(
        &deps,
        "alice",
        &Grant::All,
        day_job("hang").to_string().as_bytes(),
    )
    .await
    .expect("the row is written whatever the queue does");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
    let Submitted::Created { job, enqueued } = out else {
        panic!("{out:?}");
    };
    assert!(!enqueued, "the timed-out send is reported");
    assert_eq!(
        h.job(&job.id).await.sent_at,
        None,
        "the outbox row stays for the reaper"
    );
    h.clock.set_now((NOW + 3 * 60_000).into());
    let r = reap(&h.deps()).await.unwrap();
    assert_eq!(r.resent, vec![job.id.to_string()]);
}

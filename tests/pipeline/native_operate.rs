//! Operator controls natively: a paused site's jobs wait without an
//! upstream call until it is resumed, and a bulk retry of dead jobs lists
//! in a dry run and revives exactly what it listed.

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::job::JobStatus;
use tsp_core::service::operate::{self, DeadFilter};
use tsp_core::service::process::Outcome;

use crate::support::*;

fn day(site: &str) -> serde_json::Value {
    json!({"site": site, "points": sim_points(site, 2),
           "start": "2025-10-01T00:00:00Z", "end": "2025-10-02T00:00:00Z"})
}

#[tokio::test]
async fn a_paused_site_waits_without_an_upstream_call_until_resumed() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let p = operate::pause(&h.db, &h.clock, "paused", ("ops", "upstream maintenance"))
        .await
        .unwrap();
    assert_eq!((p.site.as_str(), p.paused_by.as_str()), ("paused", "ops"));
    let id = h.submit_new(&day("paused")).await;
    let msg = h.queue.drain();
    let got = h.deliver(&id, msg[0].0.hop, 1).await;
    assert!(
        matches!(got.outcome, Ok(Outcome::Waiting { .. })),
        "{got:?}"
    );
    let again = h.queue.drain();
    assert_eq!(again.len(), 1, "it comes back");
    assert_eq!(again[0].1, operate::PAUSE_RECHECK_SECONDS);
    let job = h.job(&id).await;
    assert_eq!(
        (job.status, job.attempts, job.stalls),
        (JobStatus::Queued, 0, 0)
    );
    assert!(job
        .waiting_for
        .unwrap_or_default()
        .contains("upstream maintenance"));
    assert_eq!(sim_stats(&sim).await["requests"], 0, "no upstream call");
    assert_eq!(operate::pauses(&h.db).await.unwrap().len(), 1);

    assert!(operate::resume(&h.db, "paused").await.unwrap());
    assert!(
        !operate::resume(&h.db, "paused").await.unwrap(),
        "was not paused"
    );
    let got = h.deliver(&id, again[0].0.hop, 1).await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(
        job.status,
        JobStatus::Completed,
        "{got:?} {:?}",
        job.last_error
    );
}

#[tokio::test]
async fn a_bulk_retry_lists_in_a_dry_run_and_revives_exactly_the_listed_jobs() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    // Three jobs of sites ACE does not know (403): dead at once.
    let mut dead = Vec::new();
    for (owner, site) in [
        ("alice", "unknown-a"),
        ("bob", "unknown-a"),
        ("alice", "unknown-b"),
    ] {
        let body = json!({"site": site, "points": ["p"], "start": "2025-10-01T00:00:00Z",
                          "end": "2025-10-02T00:00:00Z"});
        let id = match h.submit_as(owner, &body).await {
            tsp_core::service::submit::Submitted::Created { job, .. } => job.id,
            other => panic!("{other:?}"),
        };
        dead.push(id);
    }
    h.drain().await;
    let quiet = |_: &str| {};
    let ports = (&h.db, &h.queue, &h.clock);
    let filter = DeadFilter {
        site: Some("unknown-a".into()),
        error_contains: Some("403".into()),
        limit: 100,
        ..DeadFilter::default()
    };
    let listed = operate::retry_dead(ports, &filter, true, &quiet)
        .await
        .unwrap();
    // They died in the same millisecond (a fixed clock): compare as sets.
    let sorted = |v: Vec<String>| {
        let mut v = v;
        v.sort();
        v
    };
    let want = sorted(dead[..2].iter().map(|i| i.to_string()).collect());
    let ids = sorted(
        listed
            .matched
            .iter()
            .map(|m| m.job_id.to_string())
            .collect(),
    );
    assert_eq!(ids, want, "both owners' jobs of the site");
    assert_eq!(listed.retried, 0);
    assert!(h.queue.drain().is_empty(), "a dry run sends nothing");
    for id in &dead {
        assert_eq!(h.job(id).await.status, JobStatus::FailedPermanent);
    }
    let done = operate::retry_dead(ports, &filter, false, &quiet)
        .await
        .unwrap();
    assert_eq!((done.matched, done.retried), (listed.matched, 2));
    let sent = sorted(
        h.queue
            .drain()
            .into_iter()
            .map(|(m, _)| m.job_id.to_string())
            .collect(),
    );
    assert_eq!(sent, want);
    assert_eq!(h.job(&dead[0]).await.status, JobStatus::Queued);
    assert_eq!(h.job(&dead[1]).await.status, JobStatus::Queued);
    assert_eq!(
        h.job(&dead[2]).await.status,
        JobStatus::FailedPermanent,
        "another site"
    );
    // A time range that ends before they died matches nothing.
    let before = DeadFilter {
        to: Some(tsp_core::domain::EpochMs(0)),
        limit: 100,
        ..DeadFilter::default()
    };
    let none = operate::retry_dead(ports, &before, true, &quiet)
        .await
        .unwrap();
    assert!(none.matched.is_empty());
}

//! The messages of one batch run together (issue 22, fairness): one site's
//! waits never hold back another's message, within one shared budget.

use std::cell::Cell;
use std::time::{Duration, Instant};

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::budget::{Budget, Cost, Limits, CONTROL_PER_MESSAGE};
use tsp_core::domain::{EpochMs, JobId};
use tsp_core::error::UpstreamError;
use tsp_core::job::JobStatus;
use tsp_core::ports::{HttpClient, HttpRequest, HttpResponse, JobMessage};
use tsp_core::service::process;
use tsp_core::store;

use crate::support::*;

/// Holds every request for one site until another job has completed (or
/// a few seconds pass): a message that ran the batch's messages one after
/// another, the held one first, would never see that job complete.
struct Gate<'a> {
    h: &'a Harness,
    site: &'static str,
    wait_for: JobId,
    released: Cell<bool>,
}

impl HttpClient for Gate<'_> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, UpstreamError> {
        if req.url.contains(self.site) && !self.released.get() {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                let job = store::get_job(&self.h.db, store::select_job(&self.wait_for)).await;
                if job
                    .ok()
                    .flatten()
                    .is_some_and(|j| j.status == JobStatus::Completed)
                {
                    self.released.set(true);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.h.http.send(req).await
    }
}

fn one_day(site: &str) -> serde_json::Value {
    json!({"site": site, "points": sim_points(site, 2), "start": "2025-10-01T00:00:00Z",
           "end": "2025-10-03T00:00:00Z"})
}

#[tokio::test]
async fn a_held_sites_message_does_not_delay_the_others_in_its_batch() {
    let sim = spawn_sim(SimConfig::default()).await;
    let h = Harness::new(&sim);
    let held = h.submit_new(&one_day("held-site")).await;
    let others = [
        h.submit_new(&one_day("free-a")).await,
        h.submit_new(&one_day("free-b")).await,
        h.submit_new(&one_day("free-c")).await,
    ];
    h.queue.drain();
    let gate = Gate {
        h: &h,
        site: "held-site",
        wait_for: others[2].clone(),
        released: Cell::new(false),
    };
    // The held job's message first, as a batch would deliver it.
    let batch: Vec<(JobMessage, u32)> = std::iter::once(&held)
        .chain(&others)
        .map(|id| {
            (
                JobMessage {
                    job_id: id.clone(),
                    hop: 0,
                },
                1,
            )
        })
        .collect();
    let report = process::handle_batch(&h.deps_with_http(&gate), &batch).await;
    assert!(
        gate.released.get(),
        "the others completed while the held site waited"
    );
    assert_eq!(report.handled.len(), 4, "results in message order");
    for id in others.iter().chain([&held]) {
        assert_eq!(h.job(id).await.status, JobStatus::Completed, "{id}");
    }
}

#[test]
fn each_message_of_a_batch_gets_an_equal_share_of_window_slots_and_its_own_control_reserve() {
    let limits = Limits {
        statements: 900,
        subrequests: 1_000,
        wall_ms: 60_000,
    };
    let one = Budget::new(limits, EpochMs(0));
    assert_eq!(one.window_share(6), 6, "a message alone keeps every slot");
    let four = Budget::new(limits, EpochMs(0)).shared_by(4);
    assert_eq!(
        four.window_share(6),
        1,
        "6 slots over 4 messages: 1 each, 4 in all"
    );
    assert_eq!(
        Budget::new(limits, EpochMs(0)).shared_by(2).window_share(6),
        3
    );
    assert_eq!(
        Budget::new(limits, EpochMs(0)).shared_by(9).window_share(6),
        1,
        "at least one"
    );
    // Four messages keep a control reserve back for each further message.
    let cost = Cost {
        statements: 900 - 60,
        subrequests: 1,
    };
    assert!(one.reserve(cost, EpochMs(0)).is_some());
    assert!(four.reserve(cost, EpochMs(0)).is_none());
    let extra = 3 * CONTROL_PER_MESSAGE.statements;
    let fits = Cost {
        statements: 900 - 60 - extra,
        subrequests: 1,
    };
    assert!(four.reserve(fits, EpochMs(0)).is_some());
}

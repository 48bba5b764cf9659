//! Shared test harness: the core services over native adapters (real
//! SQLite with `schema/` applied, memory blobs, an in-process queue, reqwest),
//! an in-process simulator, and reference computations.

use std::cell::RefCell;

use ace_sim::SimConfig;
use tsp_core::aggregate::{aggregate, Aggregate};
use tsp_core::codec::Decoded;
use tsp_core::config::Config;
use tsp_core::domain::{EpochMs, JobId};
use tsp_core::job::Job;
use tsp_core::ports::{JobMessage, Row, SqlDb};
use tsp_core::sample::{sort_dedup, Samples};
use tsp_core::service::process::{handle, Handled};
use tsp_core::service::submit::{submit, Submitted};
use tsp_core::service::Deps;
use tsp_core::store;
use tsp_native::{MemBlobs, MemQueue, ReqwestHttp, SqliteDb, TokioClock};

/// 2025-11-22T00:00:00Z: the tests' "now".
pub const NOW: EpochMs = 1_763_769_600_000;
/// Five minutes.
pub const FIVE_MIN: i64 = 300_000;

/// Starts the simulator on a free port; returns its base URL.
pub async fn spawn_sim(cfg: SimConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(ace_sim::serve(listener, cfg));
    format!("http://{addr}")
}

/// Everything a service call needs, natively.
pub struct Harness {
    pub db: SqliteDb,
    pub blobs: MemBlobs,
    pub queue: MemQueue,
    pub http: ReqwestHttp,
    pub clock: TokioClock,
    pub cfg: Config,
    pub logs: RefCell<Vec<String>>,
}

impl Harness {
    pub fn new(upstream: &str) -> Self {
        Self {
            db: SqliteDb::open_in_memory().expect("sqlite"),
            blobs: MemBlobs::default(),
            queue: MemQueue::default(),
            http: ReqwestHttp::default(),
            clock: TokioClock::fixed(NOW),
            cfg: Config {
                upstream_timeout_ms: 2_000,
                ..Config::for_upstream(upstream, "dev-token")
            },
            logs: RefCell::new(Vec::new()),
        }
    }

    pub fn deps(&self) -> Deps<'_, SqliteDb, MemBlobs, MemQueue, ReqwestHttp, TokioClock> {
        Deps {
            db: &self.db,
            blobs: &self.blobs,
            queue: &self.queue,
            http: &self.http,
            clock: &self.clock,
            cfg: &self.cfg,
        }
    }

    /// The harness's dependencies with another database and object store
    /// (fault-injecting or timed wrappers) in place of its own.
    pub fn deps_with<'a, D: SqlDb, B: tsp_core::ports::BlobStore>(
        &'a self,
        db: &'a D,
        blobs: &'a B,
    ) -> Deps<'a, D, B, MemQueue, ReqwestHttp, TokioClock> {
        Deps {
            db,
            blobs,
            queue: &self.queue,
            http: &self.http,
            clock: &self.clock,
            cfg: &self.cfg,
        }
    }

    pub fn log(&self) -> impl Fn(&str) + '_ {
        |line: &str| self.logs.borrow_mut().push(line.to_owned())
    }

    /// Submits a JSON body as `owner`.
    pub async fn submit_as(&self, owner: &str, body: &serde_json::Value) -> Submitted {
        submit(&self.deps(), owner, body.to_string().as_bytes())
            .await
            .expect("submit")
    }

    /// Submits and returns the new job's id (draining the queue message).
    pub async fn submit_new(&self, body: &serde_json::Value) -> JobId {
        match self.submit_as("alice", body).await {
            Submitted::Created { job, .. } => job.id,
            other => panic!("expected a new job, got {other:?}"),
        }
    }

    /// Delivers one message (attempt `attempt`) to the consumer.
    pub async fn deliver(&self, id: &JobId, hop: u32, attempt: u32) -> Handled {
        let msg = JobMessage {
            job_id: id.clone(),
            hop,
        };
        let log = self.log();
        handle(&self.deps(), &msg, attempt, &log).await
    }

    /// Delivers queued messages until the queue is empty (continuations
    /// included); returns every handled result.
    pub async fn drain(&self) -> Vec<Handled> {
        let mut out = Vec::new();
        for _ in 0..1_000 {
            let batch = self.queue.drain();
            if batch.is_empty() {
                break;
            }
            for (m, _) in batch {
                out.push(self.deliver(&m.job_id, m.hop, 1).await);
            }
        }
        out
    }

    pub async fn job(&self, id: &JobId) -> Job {
        store::get_job(&self.db, store::select_job(id))
            .await
            .expect("query")
            .expect("job exists")
    }

    /// Every aggregate row of a site, in key order, as JSON rows.
    pub fn agg_rows(&self, site: &str) -> Vec<Row> {
        self.db
            .query_raw(&format!(
                "SELECT * FROM timeseries_agg WHERE site = '{site}' ORDER BY point, resolution, bucket_start"
            ))
            .expect("rows")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        let rows = self
            .db
            .query(&tsp_core::ports::Statement {
                sql: sql.into(),
                params: vec![],
            })
            .await
            .expect("count");
        rows[0]
            .values()
            .next()
            .and_then(|v| v.as_i64())
            .expect("a number")
    }
}

/// The simulator's samples of one point as the pipeline classifies them.
pub fn sim_samples(site: &str, point: &str, start: EpochMs, end: EpochMs) -> Samples {
    Samples::from_raw(ace_sim::samples(site, point, start, end, FIVE_MIN))
}

/// Reference aggregates of one point (UTC days and hours are whole within
/// any range, so aggregating the whole range at once is the reference).
pub fn reference_aggregates(
    site: &str,
    point: &str,
    start: EpochMs,
    end: EpochMs,
) -> Vec<Aggregate> {
    let mut s = sim_samples(site, point, start, end);
    sort_dedup(&mut s);
    aggregate(&s)
}

/// Whether a decoded value is what the upstream string decodes to.
pub fn same_value(got: &Decoded, upstream: &str) -> bool {
    match (got, Decoded::of_upstream(upstream)) {
        (Decoded::Number(a), Decoded::Number(b)) => a.to_bits() == b.to_bits(),
        (a, b) => *a == b,
    }
}

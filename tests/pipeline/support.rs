//! Shared test harness: the core services over native adapters (real
//! SQLite with `schema/` applied, memory blobs, an in-process queue, reqwest),
//! an in-process simulator, reference computations, and the pieces of a
//! wiremock upstream that speaks ACE (`configured_points`, its time-major
//! pages and its base64 JSON cursor).

use std::cell::RefCell;

use ace_sim::SimConfig;
use serde_json::json;
use tsp_core::aggregate::{aggregate, Aggregate};
pub use tsp_core::auth::Grant;
use tsp_core::chunk;
use tsp_core::codec::{self, Decoded, Header, FORMAT_NAME, FORMAT_VERSION};
use tsp_core::config::Config;
use tsp_core::domain::{EpochMs, JobId};
use tsp_core::job::Job;
use tsp_core::ports::{BlobStore, HttpClient, JobMessage, Ports, Row, SqlDb};
use tsp_core::sample::{sort_dedup, Samples};
use tsp_core::service::process::{handle, Handled};
use tsp_core::service::submit::{submit, Submitted};
use tsp_core::service::Deps;
use tsp_core::store;
use tsp_native::{MemBlobs, MemQueue, ReqwestHttp, SqliteDb, TokioClock};

/// 2025-11-22T00:00:00Z: the tests' "now".
pub const NOW: EpochMs = EpochMs(1_763_769_600_000);
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

/// The harness's platform: the native adapters.
pub type Native = Ports<SqliteDb, MemBlobs, MemQueue, ReqwestHttp, TokioClock>;

/// A log sink that drops every line.
fn quiet(_: &str) {}

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
            clock: TokioClock::fixed(NOW.into()),
            cfg: Config {
                upstream_timeout_ms: 2_000,
                // Tests assert exact delays; `backoff`'s tests cover jitter.
                retry_jitter: 0.0,
                ..Config::for_upstream(upstream, "dev-token")
            },
            logs: RefCell::new(Vec::new()),
        }
    }

    /// The harness's dependencies; their log lines go nowhere (see
    /// [`Deps::with_log`] and [`Harness::log`]).
    pub fn deps(&self) -> Deps<'_, Native> {
        Deps {
            db: &self.db,
            blobs: &self.blobs,
            queue: &self.queue,
            http: &self.http,
            clock: &self.clock,
            cfg: &self.cfg,
            log: &quiet,
        }
    }

    /// The harness's dependencies with another database and object store
    /// (fault-injecting or timed wrappers) in place of its own.
    pub fn deps_with<'a, D: SqlDb, B: BlobStore>(
        &'a self,
        db: &'a D,
        blobs: &'a B,
    ) -> Deps<'a, Ports<D, B, MemQueue, ReqwestHttp, TokioClock>> {
        Deps {
            db,
            blobs,
            queue: &self.queue,
            http: &self.http,
            clock: &self.clock,
            cfg: &self.cfg,
            log: &quiet,
        }
    }

    /// The harness's dependencies with another upstream client (a
    /// fault-injecting wrapper) in place of its own.
    pub fn deps_with_http<'a, H: HttpClient>(
        &'a self,
        http: &'a H,
    ) -> Deps<'a, Ports<SqliteDb, MemBlobs, MemQueue, H, TokioClock>> {
        Deps {
            db: &self.db,
            blobs: &self.blobs,
            queue: &self.queue,
            http,
            clock: &self.clock,
            cfg: &self.cfg,
            log: &quiet,
        }
    }

    pub fn log(&self) -> impl Fn(&str) + '_ {
        |line: &str| self.logs.borrow_mut().push(line.to_owned())
    }

    /// Submits a JSON body as `owner`.
    pub async fn submit_as(&self, owner: &str, body: &serde_json::Value) -> Submitted {
        submit(
            &self.deps(),
            owner,
            &Grant::All,
            body.to_string().as_bytes(),
        )
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
        handle(&self.deps().with_log(&log), &msg, attempt).await
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

    /// The job's result object, which must exist.
    pub async fn result(&self, id: &JobId) -> Vec<u8> {
        let job = self.job(id).await;
        let key = job.result_key.expect("a completed job has a result key");
        self.blobs
            .get(&key)
            .await
            .expect("blob read")
            .expect("the result object exists")
    }

    /// The upstream circuit's row, as stored.
    pub fn circuit(&self) -> Vec<Row> {
        self.db
            .query_raw("SELECT * FROM upstream_circuit")
            .expect("circuit row")
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
    Samples::from_raw(ace_sim::samples(
        site,
        point,
        start.into(),
        end.into(),
        FIVE_MIN,
    ))
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

/// The first `n` points of `site`'s simulator catalogue that report data
/// (default `SimConfig`), sorted as a job keeps them.
pub fn sim_points(site: &str, n: usize) -> Vec<String> {
    let all = ace_sim::reporting_points(site, &SimConfig::default());
    assert!(n <= all.len(), "{site} has {} reporting points", all.len());
    let mut points = all[..n].to_vec();
    points.sort();
    points
}

/// The simulator's counters (`GET /__stats`).
pub async fn sim_stats(sim: &str) -> serde_json::Value {
    reqwest::get(format!("{sim}/__stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON")
}

/// The simulator's timeseries requests for one site so far (counted on
/// arrival).
pub async fn site_requests(sim: &str, site: &str) -> u64 {
    sim_stats(sim).await["by_site"][site]["requests"]
        .as_u64()
        .unwrap_or(0)
}

/// The object a fault-free run of a job over the default simulator writes:
/// the header, then per window (`window_days`, as the job row says) one
/// block per point in point order, each of the simulator's samples. A
/// point the site does not report (silent, or not in its catalogue) has
/// empty blocks.
pub fn expected_object(
    site: &str,
    points: &[String],
    start: EpochMs,
    end: EpochMs,
    window_days: u32,
) -> Vec<u8> {
    let reporting = ace_sim::reporting_points(site, &SimConfig::default());
    let header = Header {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        site: site.to_owned(),
        start_ms: start,
        end_ms: end,
        points: points.to_vec(),
    };
    let mut out = codec::encode_header(&header).expect("header");
    for c in chunk::plan(start, end, window_days) {
        for (i, p) in points.iter().enumerate() {
            let mut s = if reporting.contains(p) {
                sim_samples(site, p, c.start, c.end)
            } else {
                Samples::new()
            };
            sort_dedup(&mut s);
            out.extend(codec::encode_block(i as u32, &s).expect("block"));
        }
    }
    out
}

/// Asserts a result object holds exactly the simulator's samples of
/// `points` over `[start, end)` (none for the points in `empty`).
pub fn assert_exact(
    bytes: &[u8],
    site: &str,
    points: &[String],
    range: (EpochMs, EpochMs),
    empty: &[String],
) {
    let (header, series) = codec::decode_object(bytes).expect("a readable object");
    assert_eq!(header.points, points);
    assert_eq!(series.len(), points.len());
    for (p, got) in points.iter().zip(&series) {
        let want = if empty.contains(p) {
            Vec::new()
        } else {
            ace_sim::samples(site, p, range.0.into(), range.1.into(), FIVE_MIN)
        };
        assert_eq!(got.len(), want.len(), "{p}");
        for ((t, v), (wt, wv)) in got.iter().zip(&want) {
            assert_eq!(t, wt, "{p}");
            assert!(same_value(v, wv), "{p} at {t}: {v:?} vs {wv}");
        }
    }
}

// ------------------------------------------------- a wiremock ACE upstream

/// `/sites/{site}/configured_points`.
pub fn catalogue_path(site: &str) -> String {
    format!("/sites/{site}/configured_points")
}

/// `/sites/{site}/timeseries/paginated`.
pub fn pages_path(site: &str) -> String {
    format!("/sites/{site}/timeseries/paginated")
}

/// ACE's `configured_points` answer listing `names`, in one page.
pub fn catalogue_body(names: &[String]) -> String {
    let items: Vec<serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"id": i + 1, "name": n, "collect_enabled": true, "collect_interval": 30,
                   "point_type": "bacnet", "marker_tags": [], "kv_tags": {}})
        })
        .collect();
    json!({"items": items, "page": 1, "pages": 1, "per_page": 10_000, "total": names.len()})
        .to_string()
}

/// Mounts `site`'s `configured_points` (the first call of a job: the
/// plan is chosen from it) listing `names`.
pub async fn mount_catalogue(server: &wiremock::MockServer, site: &str, names: &[String]) {
    use wiremock::matchers::{method, path};
    wiremock::Mock::given(method("GET"))
        .and(path(catalogue_path(site)))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string(catalogue_body(names)))
        .mount(server)
        .await;
}

/// `n` point names `p1`, `p2`, … of a wiremock site.
pub fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("p{i}")).collect()
}

/// One of ACE's time-major pages: `(name, value, time)` rows.
pub fn ace_page(rows: &[(&str, &str, &str)], next_cursor: Option<&str>, has_more: bool) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|(n, v, t)| json!({"name": n, "value": v, "time": t}))
        .collect();
    json!({"point_samples": rows, "next_cursor": next_cursor, "has_more": has_more}).to_string()
}

/// ACE's cursor: base64 of `{"offset": N, "timestamp": "…"}`.
pub fn ace_cursor(offset: u64, timestamp: &str) -> String {
    tsp_core::upstream::cursor::Cursor {
        offset,
        timestamp: timestamp.to_owned(),
    }
    .encode()
}

/// The requests `server` received on `path`.
pub async fn received_on(server: &wiremock::MockServer, path: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|r| r.url.path() == path)
        .collect()
}

/// A job's `points_without_data` as plain names.
pub fn without_data(job: &tsp_core::job::Job) -> Option<Vec<String>> {
    job.points_without_data
        .as_ref()
        .map(|v| v.iter().map(|p| p.as_str().to_owned()).collect())
}

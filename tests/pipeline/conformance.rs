//! One conformance suite for the storage ports, run against every native
//! adapter: the fence on every holder write (the plan and traffic
//! included), the per-point checkpoint counts behind `points_without_data`,
//! the site cache, the set-based aggregate write (exact floats through
//! `json_each`), batches as transactions, and the object store's
//! conditional puts and bulk deletes. The e2e tests exercise
//! the same behaviour against the local D1 and R2.

use proptest::prelude::*;
use tsp_core::aggregate::{Aggregate, Resolution};
use tsp_core::budget::{Budget, Limits, Metered};
use tsp_core::domain::EpochMs;
use tsp_core::domain::{JobId, PointName, Site, HOUR_MS};
use tsp_core::plan::{Plan, PlanChoice, SiteInfo};
use tsp_core::ports::{BlobMeta, BlobStore, SqlDb, Statement, MAX_DELETE_KEYS};
use tsp_core::store::{self, AggTarget, Holder, NewJob};
use tsp_core::timeout::{TimedBlobs, TimedDb};
use tsp_native::{MemBlobs, SqliteDb, TokioClock};

use crate::support::{without_data, NOW};

/// A processing job of point `p` held with `token`.
async fn held_job<D: SqlDb>(db: &D, id: &JobId, token: &str) {
    held_job_of(db, id, token, r#"["p"]"#).await;
}

/// A processing job of these points (a JSON array) held with `token`.
async fn held_job_of<D: SqlDb>(db: &D, id: &JobId, token: &str, points_json: &str) {
    let site = Site::parse("s").expect("a site");
    let new = NewJob {
        id,
        owner: "alice",
        site: &site,
        points_json: points_json.to_owned(),
        start_ms: EpochMs(0),
        end_ms: EpochMs(30 * 24 * HOUR_MS),
        fingerprint: "f",
        chunks_total: 2,
        quota_units: 2,
        window_days: 31,
        plan_requested: PlanChoice::Auto,
        force: false,
        callback_url: None,
        now: NOW,
    };
    assert_eq!(
        db.execute(&store::insert_job(
            &new,
            0,
            store::Quota {
                chunks_per_day: 0,
                day: 0
            }
        ))
        .await
        .unwrap(),
        1
    );
    let holder = Holder { id, token };
    let claimed = db
        .query(&store::claim_job(holder, NOW, NOW + 1_000, true))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
}

async fn progress<D: SqlDb>(db: &D, id: &JobId) -> (i64, i64) {
    let job = store::get_job(db, store::select_job(id))
        .await
        .unwrap()
        .unwrap();
    (job.chunks_done, job.sample_count)
}

/// Every holder write is fenced by the token; progress follows checkpoints.
async fn fenced_writes<D: SqlDb>(db: &D) {
    let id = JobId::parse("0123456789abcdef0123456789abcdef").unwrap();
    held_job(db, &id, "mine").await;
    let (mine, theirs) = (
        Holder {
            id: &id,
            token: "mine",
        },
        Holder {
            id: &id,
            token: "theirs",
        },
    );
    assert_eq!(
        db.execute(&store::insert_chunk(theirs, 0, (5, 0), (&[10], &[])))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.execute(&store::renew_lease(theirs, NOW, NOW + 1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.execute(&store::release_lease(theirs, NOW, NOW))
            .await
            .unwrap(),
        0
    );
    assert_eq!(progress(db, &id).await, (0, 0));
    assert!(
        db.execute(&store::insert_chunk(mine, 0, (5, 0), (&[10], &[])))
            .await
            .unwrap()
            > 0
    );
    assert!(
        db.execute(&store::insert_chunk(mine, 1, (5, 0), (&[7], &[])))
            .await
            .unwrap()
            > 0
    );
    assert_eq!(
        progress(db, &id).await,
        (2, 17),
        "progress follows by trigger"
    );
    assert_eq!(
        db.execute(&store::insert_chunk(mine, 1, (5, 0), (&[7], &[])))
            .await
            .unwrap(),
        0
    );
    assert_eq!(progress(db, &id).await, (2, 17), "a checkpoint counts once");
    assert!(db.execute(&store::drop_chunks(mine, &[1])).await.unwrap() > 0);
    assert_eq!(progress(db, &id).await, (1, 10));
    assert_eq!(
        db.execute(&store::renew_lease(mine, NOW, NOW + 1))
            .await
            .unwrap(),
        1
    );
    let done = store::complete_job(theirs, NOW, ("k", 1, "sha", 0), None);
    assert_eq!(
        db.execute(&done).await.unwrap(),
        0,
        "only the holder completes"
    );
    let cancel = store::cancel_job(&id, "alice", NOW);
    assert_eq!(db.query(&cancel).await.unwrap().len(), 1);
    assert_eq!(
        db.execute(&store::insert_chunk(mine, 1, (5, 0), (&[7], &[])))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.execute(&store::renew_lease(mine, NOW, NOW + 1))
            .await
            .unwrap(),
        0
    );
}

/// The plan, once chosen, stays; it and the traffic are fenced; the points
/// no window found a sample of are listed at completion; the site cache
/// answers while fresh.
async fn plan_traffic_and_points_without_data<D: SqlDb>(db: &D) {
    let id = JobId::parse("0000000000000000000000000000cccc").unwrap();
    held_job_of(db, &id, "mine", r#"["a","b","c"]"#).await;
    let (mine, theirs) = (
        Holder {
            id: &id,
            token: "mine",
        },
        Holder {
            id: &id,
            token: "theirs",
        },
    );
    let set = |h, plan| store::set_plan(h, plan, 10, 50, (100, 1));
    assert_eq!(db.execute(&set(theirs, Plan::Site)).await.unwrap(), 0);
    assert_eq!(db.execute(&set(mine, Plan::Point)).await.unwrap(), 1);
    assert_eq!(
        db.execute(&set(mine, Plan::Site)).await.unwrap(),
        0,
        "a plan, once chosen, stays"
    );
    assert_eq!(
        db.execute(&store::add_traffic(
            theirs,
            (7, 1),
            &Default::default(),
            NOW
        ))
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        db.execute(&store::add_traffic(mine, (7, 1), &Default::default(), NOW))
            .await
            .unwrap(),
        1
    );
    for (idx, counts) in [(0, [4, 0, 0]), (1, [0, 0, 2])] {
        let done = store::insert_chunk(mine, idx, (9, 0), (&counts, &[]));
        assert_eq!(db.execute(&done).await.unwrap(), 1);
    }
    let done = store::complete_job(mine, NOW, ("k", 1, "sha", 0), None);
    assert_eq!(db.execute(&done).await.unwrap(), 1);
    let job = store::get_job(db, store::select_job(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.plan, job.page_size, job.site_points),
        (Some(Plan::Point), Some(10), Some(50))
    );
    assert_eq!((job.upstream_bytes, job.upstream_requests), (107, 2));
    assert_eq!(job.sample_count, 6);
    assert_eq!(without_data(&job), Some(vec!["b".to_owned()]));

    let info = SiteInfo {
        points: 50,
        enabled: 40,
        max_name_bytes: 90,
    };
    db.execute(&store::upsert_site_info("s", &info, None, NOW))
        .await
        .unwrap();
    let read = |since| async move {
        store::decode::<SiteInfo>(
            db.query(&store::select_site_info("s", since))
                .await
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(read(NOW).await, vec![info]);
    assert!(read(NOW + 1).await.is_empty(), "older than asked: refetch");
}

/// A batch is one transaction: a failing statement undoes the others.
async fn batches_are_atomic<D: SqlDb>(db: &D) {
    let id = JobId::parse("00000000000000000000000000000bbb").unwrap();
    held_job(db, &id, "t").await;
    let ok = store::insert_event(&id, EpochMs(1), tsp_core::job::JobStatus::Queued, 1, None);
    let bad = Statement {
        sql: "INSERT INTO no_such_table VALUES (1)".into(),
        params: vec![],
    };
    assert_eq!(
        db.batch(&[ok.clone(), ok.clone()]).await.unwrap(),
        vec![1, 1]
    );
    assert!(db.batch(&[ok, bad]).await.is_err());
    let count = Statement {
        sql: "SELECT COUNT(*) AS n FROM job_events WHERE job_id = ?".into(),
        params: vec![id.as_str().into()],
    };
    assert_eq!(db.query(&count).await.unwrap()[0]["n"], 2);
}

fn row(i: i64, v: &[f64; 7]) -> Aggregate {
    Aggregate {
        resolution: Resolution::Hour,
        bucket_start: EpochMs(i * HOUR_MS),
        count: 3,
        min: Some(v[0]),
        max: Some(v[1]),
        sum: Some(v[2]),
        mean: Some(v[3]),
        stddev: Some(v[4]),
        first: Some((EpochMs(i * HOUR_MS), v[5])),
        last: Some((EpochMs(i * HOUR_MS + 1), v[6])),
        non_numeric: 0,
        non_finite: 0,
    }
}

/// Writes `values` through the set-based upsert and reads them back.
async fn round_trip<D: SqlDb>(db: &D, values: &[[f64; 7]]) -> Vec<[f64; 7]> {
    let id = JobId::parse("fedcba9876543210fedcba9876543210").unwrap();
    if store::get_job(db, store::select_job(&id))
        .await
        .unwrap()
        .is_none()
    {
        held_job(db, &id, "t").await;
    }
    let rows: Vec<Aggregate> = values
        .iter()
        .enumerate()
        .map(|(i, v)| row(i as i64, v))
        .collect();
    let points = [PointName::parse("p").expect("a point")];
    let to = AggTarget {
        owner: "alice",
        site: "s",
        points: &points,
        range: (EpochMs(0), EpochMs(i64::MAX / 2)),
    };
    let holder = Holder {
        id: &id,
        token: "t",
    };
    let indexed: Vec<(u32, &Aggregate)> = rows.iter().map(|a| (0, a)).collect();
    db.execute(&store::upsert_aggregates(holder, to, &indexed).unwrap())
        .await
        .unwrap();
    let read = store::select_aggregates(
        "alice",
        "s",
        "p",
        "1h",
        EpochMs(0),
        EpochMs(i64::MAX / 2),
        100_000,
    );
    let got = db.query(&read).await.unwrap();
    let f = |r: &serde_json::Map<String, serde_json::Value>, k: &str| r[k].as_f64().unwrap();
    got.iter()
        .take(values.len())
        .map(|r| {
            let keys = [
                "min",
                "max",
                "sum",
                "mean",
                "stddev",
                "first_value",
                "last_value",
            ];
            keys.map(|k| f(r, k))
        })
        .collect()
}

fn sqlite_suites() -> Vec<(&'static str, SqliteDb)> {
    vec![("sqlite", SqliteDb::open_in_memory().unwrap())]
}

#[tokio::test]
async fn sql_ports_fence_every_holder_write() {
    for (name, db) in sqlite_suites() {
        eprintln!("{name}");
        fenced_writes(&db).await;
    }
    let timed = TimedDb::new(
        SqliteDb::open_in_memory().unwrap(),
        TokioClock::default(),
        5_000,
    );
    fenced_writes(&timed).await;
    let inner = SqliteDb::open_in_memory().unwrap();
    let budget = Budget::new(
        Limits {
            statements: 900,
            subrequests: 10,
            wall_ms: 1_000,
        },
        EpochMs(0),
    );
    fenced_writes(&Metered::new(&inner, &budget)).await;
    assert_eq!(budget.statements_used(), inner.statement_count());
}

#[tokio::test]
async fn sql_ports_fence_the_plan_and_traffic_and_list_points_without_data() {
    for (_, db) in sqlite_suites() {
        plan_traffic_and_points_without_data(&db).await;
    }
    let timed = TimedDb::new(
        SqliteDb::open_in_memory().unwrap(),
        TokioClock::default(),
        5_000,
    );
    plan_traffic_and_points_without_data(&timed).await;
}

#[tokio::test]
async fn sql_batches_are_transactions() {
    for (_, db) in sqlite_suites() {
        batches_are_atomic(&db).await;
    }
}

/// Finite doubles from their bits, across the whole range (subnormals
/// included); `-0.0` is left out: SQLite stores an integral REAL as an
/// integer, which has no negative zero (see docs/DESIGN.md, Aggregates).
fn finite() -> impl Strategy<Value = f64> {
    any::<u64>()
        .prop_map(f64::from_bits)
        .prop_filter("finite, not -0", |x| {
            x.is_finite() && x.to_bits() != (-0.0f64).to_bits()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The floats are exact through the set-based write: every value
    /// written as shortest round-trip JSON comes back as the same bits.
    #[test]
    fn floats_are_exact_through_json_each(values in prop::collection::vec(
        prop::array::uniform7(finite()), 1..400))
    {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let db = SqliteDb::open_in_memory().unwrap();
        let got = rt.block_on(round_trip(&db, &values));
        prop_assert_eq!(got.len(), values.len());
        for (g, w) in got.iter().zip(&values) {
            for (a, b) in g.iter().zip(w) {
                prop_assert_eq!(a.to_bits(), b.to_bits(), "{} vs {}", a, b);
            }
        }
    }
}

/// Conditional puts and bulk deletes, as R2 does them.
async fn blob_contract<B: BlobStore>(b: &B) {
    let meta = BlobMeta::default();
    b.put("a/1", b"one".to_vec(), &meta).await.unwrap();
    assert_eq!(b.get("a/1").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(b.head("a/1").await.unwrap(), Some(3));
    let range = b.get_range("a/1", 1, 5).await.unwrap();
    assert_eq!(
        range.as_deref(),
        Some(&b"ne"[..]),
        "a range, cut at the end"
    );
    assert_eq!(b.get_range("a/none", 0, 1).await.unwrap(), None);
    assert_eq!(b.get("a/none").await.unwrap(), None);
    assert!(!b
        .put_if_absent("a/1", b"two".to_vec(), &meta)
        .await
        .unwrap());
    assert_eq!(b.get("a/1").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert!(b
        .put_if_absent("a/2", b"two".to_vec(), &meta)
        .await
        .unwrap());
    let keys: Vec<String> = (0..MAX_DELETE_KEYS).map(|i| format!("a/{i}")).collect();
    b.delete(&keys).await.unwrap();
    assert_eq!(
        b.head("a/1").await.unwrap(),
        None,
        "absent keys are no error"
    );
    assert_eq!(b.head("a/2").await.unwrap(), None);
    let too_many: Vec<String> = (0..=MAX_DELETE_KEYS).map(|i| format!("a/{i}")).collect();
    assert!(
        b.delete(&too_many).await.is_err(),
        "R2 takes at most 1,000 keys"
    );
}

#[tokio::test]
async fn blob_ports_put_conditionally_and_delete_in_bulk() {
    blob_contract(&MemBlobs::default()).await;
    let timed = TimedBlobs::new(MemBlobs::default(), TokioClock::default(), 5_000);
    blob_contract(&timed).await;
    assert_eq!(timed.calls(), 13, "every call counts for Server-Timing");
    let inner = MemBlobs::default();
    let budget = Budget::new(
        Limits {
            statements: 1,
            subrequests: 100,
            wall_ms: 1_000,
        },
        EpochMs(0),
    );
    blob_contract(&Metered::new(&inner, &budget)).await;
    assert_eq!(budget.subrequests_used(), 13, "one subrequest per call");
}

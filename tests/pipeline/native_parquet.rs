//! The consumer's Parquet: each window's rows written as a part, spliced at
//! finalize into one file that holds the object's samples row for row.

use ace_sim::SimConfig;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, TimestampMillisecondType};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use tsp_core::codec::{expand_block, Decoded, ObjectReader};
use tsp_core::job::JobStatus;

use crate::support::*;

type Row = (String, i64, Decoded);

fn object_rows(bytes: &[u8]) -> Vec<Row> {
    let mut r = ObjectReader::new(bytes).unwrap();
    let names = r.header.points.clone();
    let mut rows = Vec::new();
    while let Some(b) = r.next_block().unwrap() {
        let name = &names[b.p as usize];
        rows.extend(
            expand_block(&b)
                .unwrap()
                .into_iter()
                .map(|(t, v)| (name.clone(), t.ms(), v)),
        );
    }
    rows
}

/// The file's rows, and its row groups.
fn parquet_rows(bytes: Vec<u8>) -> (Vec<Row>, usize) {
    let b = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
    let groups = b.metadata().num_row_groups();
    let mut rows = Vec::new();
    for batch in b.build().unwrap() {
        let batch = batch.unwrap();
        let point = batch.column(0).as_dictionary::<Int32Type>();
        let names = point.values().as_string::<i32>();
        let time = batch.column(1).as_primitive::<TimestampMillisecondType>();
        let value = batch.column(2).as_primitive::<Float64Type>();
        let text = batch.column(3).as_string::<i32>();
        for i in 0..batch.num_rows() {
            let v = match value.is_null(i) {
                true => Decoded::Text(text.value(i).to_owned()),
                false => Decoded::Number(value.value(i)),
            };
            let name = names.value(point.keys().value(i) as usize).to_owned();
            rows.push((name, time.value(i), v));
        }
    }
    (rows, groups)
}

/// Bit for bit: `Decoded`'s `==` would take -0.0 for 0.0.
fn same(a: &[Row], b: &[Row]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0
                && x.1 == y.1
                && match (&x.2, &y.2) {
                    (Decoded::Number(p), Decoded::Number(q)) => p.to_bits() == q.to_bits(),
                    (Decoded::Text(p), Decoded::Text(q)) => p == q,
                    _ => false,
                }
        })
}

fn five_days(site: &str, points: &[String]) -> serde_json::Value {
    json!({"site": site, "points": points,
           "start": "2025-03-01T00:00:00Z", "end": "2025-03-06T00:00:00Z"})
}

#[tokio::test]
async fn the_parquet_file_holds_the_object_row_for_row_one_row_group_per_point_and_window() {
    let sim = spawn_sim(SimConfig::default()).await;
    let points = sim_points("pq-rows", 8);
    let mut h = Harness::new(&sim);
    // One-day windows: five parts to splice.
    h.cfg.window_max_samples = 288 * points.len() as u64;
    let id = h.submit_new(&five_days("pq-rows", &points)).await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    let key = job.parquet_key.clone().expect("a Parquet file");
    let (file, meta) = h.blobs.object(&key).expect("the Parquet file exists");
    assert_eq!(job.parquet_bytes, Some(file.len() as i64));
    assert_eq!(meta.content_type, "application/vnd.apache.parquet");
    let want = object_rows(&h.result(&id).await);
    assert!(
        want.iter().any(|r| matches!(r.2, Decoded::Text(_))),
        "a text point"
    );
    let (got, groups) = parquet_rows(file);
    assert!(
        same(&got, &want),
        "{} rows against {}",
        got.len(),
        want.len()
    );
    let with_data = points.len() - job.points_without_data.as_deref().map_or(0, <[_]>::len);
    assert_eq!(groups, 5 * with_data, "one row group per point and window");
    assert!(
        h.blobs.keys(&format!("parts/{id}/")).is_empty(),
        "parts removed"
    );
    let view = serde_json::to_value(job.view()).unwrap();
    assert_eq!(
        view["result"]["parquet"]["url"],
        format!("/v1/jobs/{id}/result.parquet")
    );
}

#[tokio::test]
async fn with_parquet_off_a_job_writes_the_object_alone() {
    let sim = spawn_sim(SimConfig::default()).await;
    let points = sim_points("pq-off", 2);
    let mut h = Harness::new(&sim);
    h.cfg.parquet_results = false;
    let id = h.submit_new(&five_days("pq-off", &points)).await;
    h.drain().await;
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.last_error);
    assert_eq!((job.parquet_key.clone(), job.parquet_bytes), (None, None));
    assert!(h
        .blobs
        .keys("results/")
        .iter()
        .all(|k| k.ends_with(".msgpack.gz")));
    assert!(serde_json::to_value(job.view()).unwrap()["result"]["parquet"].is_null());
}

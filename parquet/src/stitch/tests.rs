use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::statistics::Statistics;

use super::*;

type Row = (String, i64, Decoded);

/// Window `w` of three points: `b` is empty in window 1, `c` is text.
fn window(w: i64) -> Vec<(String, Vec<(EpochMs, Decoded)>)> {
    let t0 = 1_759_017_600_000 + w * 86_400_000;
    let num = |k: i64| {
        (0..500).map(move |i| {
            (
                EpochMs(t0 + i * 60_000),
                Decoded::Number((k * 1000 + i) as f64 * 0.25),
            )
        })
    };
    let text = (0..7).map(|i| {
        (
            EpochMs(t0 + i * 3_600_000),
            Decoded::Text(["on", "off"][i as usize % 2].to_owned()),
        )
    });
    vec![
        ("a".to_owned(), num(1 + w).collect()),
        (
            "b".to_owned(),
            if w == 1 {
                Vec::new()
            } else {
                num(7 + w).collect()
            },
        ),
        ("c".to_owned(), text.collect()),
    ]
}

fn part(w: i64) -> Vec<u8> {
    let mut p = PartWriter::new().unwrap();
    for (name, samples) in window(w) {
        p.push_point(&name, samples).unwrap();
    }
    p.finish().unwrap()
}

fn stitch(parts: Vec<Vec<u8>>) -> (Vec<u8>, u64) {
    let mut s = Stitcher::new();
    let mut file = Vec::new();
    for p in parts {
        file.extend(s.append(p).unwrap());
    }
    let rows = s.rows();
    file.extend(s.finish().unwrap());
    (file, rows)
}

fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let point = b.column(0).as_dictionary::<Int32Type>();
        let names = point.values().as_string::<i32>();
        let time = b.column(1).as_primitive::<TimestampMillisecondType>();
        let value = b.column(2).as_primitive::<Float64Type>();
        let text = b.column(3).as_string::<i32>();
        for i in 0..b.num_rows() {
            let v = if value.is_null(i) {
                Decoded::Text(text.value(i).to_owned())
            } else {
                Decoded::Number(value.value(i))
            };
            let name = names.value(point.keys().value(i) as usize).to_owned();
            out.push((name, time.value(i), v));
        }
    }
    out
}

fn read(file: Vec<u8>) -> (Vec<RecordBatch>, Arc<ParquetMetaData>) {
    let opts = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let b = ParquetRecordBatchReaderBuilder::try_new_with_options(Bytes::from(file), opts).unwrap();
    let meta = b.metadata().clone();
    (b.build().unwrap().collect::<Result<_, _>>().unwrap(), meta)
}

#[test]
fn stitched_parts_hold_every_row_in_window_order_with_a_row_group_per_point() {
    let (file, rows) = stitch((0..3).map(part).collect());
    let (batches, meta) = read(file);
    let want: Vec<Row> = (0..3)
        .flat_map(window)
        .flat_map(|(n, s)| s.into_iter().map(move |(t, v)| (n.clone(), t.ms(), v)))
        .collect();
    assert_eq!(rows_of(&batches), want);
    assert_eq!(rows, want.len() as u64);
    // 3 windows x 3 points, less window 1's empty point.
    assert_eq!(meta.num_row_groups(), 8);
    let schema = batches[0].schema();
    assert!(matches!(
        schema.field(0).data_type(),
        DataType::Dictionary(..)
    ));
    assert_eq!(schema.field(1).data_type(), &sample_time());
    for rg in 0..meta.num_row_groups() {
        let index = meta.page_index_for_row_group(rg);
        for col in 0..4 {
            assert!(index.column_index(col).is_some(), "column index {rg}/{col}");
            assert!(index.offset_index(col).is_some(), "offset index {rg}/{col}");
        }
    }
}

fn sample_time() -> DataType {
    crate::samples::utc_ms()
}

#[test]
fn each_row_group_holds_one_point_so_a_point_filter_prunes_the_rest() {
    let (file, _) = stitch((0..2).map(part).collect());
    let (_, meta) = read(file);
    let mut seen = Vec::new();
    for rg in meta.row_groups() {
        match rg.column(0).statistics() {
            Some(Statistics::ByteArray(s)) => {
                assert_eq!(s.min_opt(), s.max_opt(), "one point per row group");
                seen.push(s.min_opt().unwrap().as_utf8().unwrap().to_owned());
            }
            other => panic!("no point statistics: {other:?}"),
        }
    }
    assert_eq!(seen, ["a", "b", "c", "a", "c"]);
}

#[test]
fn a_stitched_file_reads_as_the_same_rows_written_straight() {
    let mut straight = SampleWriter::new(Vec::new(), Limits::default()).unwrap();
    for (name, samples) in (0..3).flat_map(window) {
        straight.push(&name, samples).unwrap();
    }
    let (one, _) = straight.finish().unwrap();
    let (stitched, _) = stitch((0..3).map(part).collect());
    assert_eq!(rows_of(&read(stitched).0), rows_of(&read(one).0));
}

#[test]
fn a_part_that_is_not_parquet_is_an_error() {
    let mut s = Stitcher::new();
    assert!(s.append(b"not parquet at all".to_vec()).is_err());
    assert!(Stitcher::new().finish().is_err(), "no part, no schema");
}

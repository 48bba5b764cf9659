//! Parquet output of aggregates (Apache `arrow` + `parquet`), and the
//! sample writer shared with the consumer ([`tsp_parquet`]).
//!
//! [`AggregateWriter`] turns `/v1/aggregates` rows into the columns of the
//! aggregates CSV, in record batches of at most [`Limits::batch_rows`] rows
//! into row groups of at most [`Limits::row_group_rows`]. Results are
//! written by [`SampleWriter`] (`tsp-parquet`), the same writer the
//! consumer uses for the Parquet it serves.

use std::io::Write;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use serde_json::{Map, Value};
use tsp_parquet::samples::{properties, utc_ms};
pub use tsp_parquet::samples::{Limits, SampleWriter};

/// The columns of aggregates as Parquet, in the CSV's order: name, the
/// `/v1/aggregates` row key, and its type.
pub const AGGREGATE_COLUMNS: [(&str, &str, AggType); 14] = [
    ("bucket_start", "bucket_start", AggType::Time),
    ("count", "count", AggType::Int),
    ("min", "min", AggType::Float),
    ("max", "max", AggType::Float),
    ("mean", "mean", AggType::Float),
    ("stddev", "stddev", AggType::Float),
    ("sum", "sum", AggType::Float),
    ("first_time", "first_ts", AggType::Time),
    ("first_value", "first_value", AggType::Float),
    ("last_time", "last_ts", AggType::Time),
    ("last_value", "last_value", AggType::Float),
    ("non_numeric", "non_numeric", AggType::Int),
    ("non_finite", "non_finite", AggType::Int),
    ("partial", "partial", AggType::Bool),
];

/// An aggregate column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggType {
    /// `timestamp[ms, UTC]`, from epoch ms.
    Time,
    /// `int64`.
    Int,
    /// `float64`.
    Float,
    /// `bool`, from `true`/`false` (or 0/1).
    Bool,
}

impl AggType {
    fn data_type(self) -> DataType {
        match self {
            AggType::Time => utc_ms(),
            AggType::Int => DataType::Int64,
            AggType::Float => DataType::Float64,
            AggType::Bool => DataType::Boolean,
        }
    }
}

/// The schema of aggregates as Parquet: `bucket_start`, the counts and
/// `partial` are never null; the rest are null when the bucket had no
/// finite number (and so no min, first value, …).
pub fn aggregate_schema() -> SchemaRef {
    let fields: Vec<Field> = AGGREGATE_COLUMNS
        .iter()
        .map(|(name, _, ty)| {
            let nullable = !matches!(
                *name,
                "bucket_start" | "count" | "non_numeric" | "non_finite" | "partial"
            );
            Field::new(*name, ty.data_type(), nullable)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// One column being filled.
enum AggColumn {
    Time(Int64Builder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
}

impl AggColumn {
    fn new(ty: AggType) -> Self {
        match ty {
            AggType::Time => Self::Time(Int64Builder::new()),
            AggType::Int => Self::Int(Int64Builder::new()),
            AggType::Float => Self::Float(Float64Builder::new()),
            AggType::Bool => Self::Bool(BooleanBuilder::new()),
        }
    }

    /// Appends a JSON value: null, or a number (a bool for `Bool`).
    fn append(&mut self, v: Option<&Value>) -> Result<(), String> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            self.append_null();
            return Ok(());
        };
        let number = v.as_f64().ok_or_else(|| format!("{v} is not a number"));
        match self {
            Self::Time(b) | Self::Int(b) => b.append_value(integer(v)?),
            Self::Float(b) => b.append_value(number?),
            Self::Bool(b) => {
                b.append_value(v.as_bool().map_or_else(|| number.map(|n| n != 0.0), Ok)?)
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            Self::Time(b) | Self::Int(b) => b.append_null(),
            Self::Float(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Time(b) => Arc::new(
                b.finish()
                    .reinterpret_cast::<arrow_array::types::TimestampMillisecondType>()
                    .with_timezone("UTC"),
            ),
            Self::Int(b) => Arc::new(b.finish()),
            Self::Float(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
        }
    }
}

/// A JSON integer. D1 hands integers back as JSON numbers that may carry a
/// `.0`; anything with a fraction, or past 2^53, is refused.
fn integer(v: &Value) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
        _ => Err(format!("{v} is not an integer")),
    }
}

/// Aggregate rows as a Parquet file, one page of `/v1/aggregates` at a time.
pub struct AggregateWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    columns: Vec<AggColumn>,
    rows: u64,
}

impl<W: Write + Send> AggregateWriter<W> {
    /// A writer to `w`.
    pub fn new(w: W, limits: Limits) -> anyhow::Result<Self> {
        let schema = aggregate_schema();
        let props = properties(limits, &["bucket_start", "first_time", "last_time"])?;
        let writer = ArrowWriter::try_new(w, schema.clone(), Some(props))
            .context("cannot start the Parquet file")?;
        let columns = AGGREGATE_COLUMNS
            .iter()
            .map(|c| AggColumn::new(c.2))
            .collect();
        Ok(Self {
            writer,
            schema,
            columns,
            rows: 0,
        })
    }

    /// Writes one page of rows (a page is at most 1,000 rows, one batch).
    pub fn push(&mut self, rows: &[Map<String, Value>]) -> anyhow::Result<()> {
        for (i, row) in rows.iter().enumerate() {
            for ((name, key, _), col) in AGGREGATE_COLUMNS.iter().zip(&mut self.columns) {
                col.append(row.get(*key))
                    .map_err(|e| anyhow!("aggregate row {}: {name}: {e}", self.rows + i as u64))?;
            }
        }
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(AggColumn::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .context("an aggregate row lacks a required value")?;
        self.writer.write(&batch).context("writing Parquet")?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Writes the footer; returns the writer and the number of rows.
    pub fn finish(self) -> anyhow::Result<(W, u64)> {
        let w = self
            .writer
            .into_inner()
            .context("finishing the Parquet file")?;
        Ok((w, self.rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use arrow_array::types::{Float64Type, TimestampMillisecondType};
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Encoding;
    use serde_json::json;
    use tsp_format::codec::Decoded;
    use tsp_format::time::EpochMs;
    use tsp_parquet::samples::sample_schema;

    fn read(bytes: Vec<u8>) -> (Vec<RecordBatch>, parquet::file::metadata::ParquetMetaData) {
        let b = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let meta = b.metadata().as_ref().clone();
        let batches = b.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        (batches, meta)
    }

    /// Awkward floats: signed zero, a subnormal, extremes, many digits.
    const FLOATS: [f64; 8] = [
        21.4,
        -0.0,
        5e-324,
        1e300,
        -2.125,
        0.1 + 0.2,
        f64::MAX,
        123_456_789_012.5,
    ];

    fn block(n: usize, text_every: usize) -> Vec<(i64, Decoded)> {
        (0..n)
            .map(|i| {
                let v = if i % text_every == 3 {
                    Decoded::Text(if i % 2 == 0 { "active" } else { "NaN" }.to_owned())
                } else {
                    Decoded::Number(FLOATS[i % FLOATS.len()] * (i as f64 + 1.0))
                };
                (1_759_017_600_000 + i as i64 * 30_000, v)
            })
            .collect()
    }

    #[test]
    fn samples_round_trip_exactly_in_bounded_row_groups() {
        let limits = Limits {
            batch_rows: 7,
            row_group_rows: 10,
        };
        let blocks = [
            ("a/b,c", block(23, 5)),
            ("d", block(9, 4)),
            ("a/b,c", block(4, 2)),
        ];
        let mut w = SampleWriter::new(Vec::new(), limits).unwrap();
        for (p, b) in &blocks {
            let b = b.iter().map(|(t, v)| (EpochMs(*t), v.clone())).collect();
            w.push(p, b).unwrap();
        }
        let (bytes, rows) = w.finish().unwrap();
        assert_eq!(rows, 36);
        let (batches, meta) = read(bytes);
        let groups = meta.row_groups();
        assert_eq!(groups.iter().map(|g| g.num_rows()).sum::<i64>(), 36);
        assert!(
            groups.iter().all(|g| g.num_rows() <= 10),
            "row groups bounded"
        );
        assert!(groups.len() >= 4);
        let point_encodings = groups[0].column(0).encodings().collect::<Vec<_>>();
        assert!(
            point_encodings.contains(&Encoding::RLE_DICTIONARY),
            "{point_encodings:?}"
        );

        let want: Vec<(&str, i64, Decoded)> = blocks
            .iter()
            .flat_map(|(p, b)| b.iter().map(move |(t, v)| (*p, *t, v.clone())))
            .collect();
        let mut got = Vec::new();
        for batch in &batches {
            assert_eq!(batch.schema(), sample_schema());
            let point = batch.column(0).as_dictionary::<Int32Type>();
            let names = point.values().as_string::<i32>();
            let time = batch.column(1).as_primitive::<TimestampMillisecondType>();
            let value = batch.column(2).as_primitive::<Float64Type>();
            let text = batch.column(3).as_string::<i32>();
            for i in 0..batch.num_rows() {
                let key = point.keys().value(i) as usize;
                assert_ne!(
                    value.is_null(i),
                    text.is_null(i),
                    "exactly one of value, text"
                );
                let v = if text.is_null(i) {
                    Decoded::Number(value.value(i))
                } else {
                    Decoded::Text(text.value(i).to_owned())
                };
                got.push((names.value(key).to_owned(), time.value(i), v));
            }
        }
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.0.as_str(), g.1), (w.0, w.1));
            match (&g.2, &w.2) {
                (Decoded::Number(a), Decoded::Number(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                (a, b) => assert_eq!(a, b),
            }
        }
    }

    #[test]
    fn an_empty_result_is_a_valid_file_with_the_schema() {
        let (bytes, rows) = SampleWriter::new(Vec::new(), Limits::default())
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(rows, 0);
        let b = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(b.schema(), &sample_schema());
    }

    fn agg_row(ms: i64, count: u64) -> Map<String, Value> {
        let numeric = count > 0;
        let v = |x: f64| if numeric { json!(x) } else { json!(null) };
        let row = json!({
            "bucket_start": ms as f64, "count": count as f64,
            "min": v(-0.0), "max": v(f64::MAX), "mean": v(0.1 + 0.2), "stddev": v(5e-324),
            "sum": v(1e300), "first_ts": if numeric { json!(ms) } else { json!(null) },
            "first_value": v(21.4), "last_ts": if numeric { json!(ms + 1) } else { json!(null) },
            "last_value": v(-2.125), "non_numeric": 3, "non_finite": 1, "partial": ms % 2 == 1,
        });
        row.as_object().cloned().unwrap()
    }

    #[test]
    fn aggregates_round_trip_with_nulls_and_exact_floats() {
        let pages = [
            vec![agg_row(86_400_000, 5), agg_row(172_800_001, 0)],
            vec![agg_row(259_200_000, 1)],
        ];
        let mut w = AggregateWriter::new(Vec::new(), Limits::default()).unwrap();
        for p in &pages {
            w.push(p).unwrap();
        }
        let (bytes, rows) = w.finish().unwrap();
        assert_eq!(rows, 3);
        let (batches, _) = read(bytes);
        let rows: Vec<&Map<String, Value>> = pages.iter().flatten().collect();
        let mut i = 0;
        for batch in &batches {
            assert_eq!(batch.schema(), aggregate_schema());
            for r in 0..batch.num_rows() {
                for (c, (name, key, ty)) in AGGREGATE_COLUMNS.iter().enumerate() {
                    let col = batch.column(c);
                    let want = &rows[i][*key];
                    if want.is_null() {
                        assert!(col.is_null(r), "{name}");
                        continue;
                    }
                    match ty {
                        AggType::Time => assert_eq!(
                            col.as_primitive::<TimestampMillisecondType>().value(r),
                            want.as_f64().unwrap() as i64
                        ),
                        AggType::Int => assert_eq!(
                            col.as_primitive::<arrow_array::types::Int64Type>().value(r),
                            want.as_f64().unwrap() as i64
                        ),
                        AggType::Float => assert_eq!(
                            col.as_primitive::<Float64Type>().value(r).to_bits(),
                            want.as_f64().unwrap().to_bits(),
                            "{name}"
                        ),
                        AggType::Bool => {
                            assert_eq!(col.as_boolean().value(r), want.as_bool().unwrap())
                        }
                    }
                }
                i += 1;
            }
        }
        assert_eq!(i, 3);
    }

    #[test]
    fn a_malformed_aggregate_row_is_a_clear_error() {
        let mut row = agg_row(0, 1);
        row.insert("min".into(), json!("low"));
        let mut w = AggregateWriter::new(Vec::new(), Limits::default()).unwrap();
        let e = w.push(&[row]).unwrap_err().to_string();
        assert_eq!(e, "aggregate row 0: min: \"low\" is not a number");
        let mut row = agg_row(0, 1);
        row.insert("count".into(), json!(2.5));
        let mut w = AggregateWriter::new(Vec::new(), Limits::default()).unwrap();
        let e = w.push(&[row]).unwrap_err().to_string();
        assert_eq!(e, "aggregate row 0: count: 2.5 is not an integer");
        let mut row = agg_row(0, 1);
        row.remove("bucket_start");
        let mut w = AggregateWriter::new(Vec::new(), Limits::default()).unwrap();
        let e = format!("{:#}", w.push(&[row]).unwrap_err());
        assert!(e.contains("lacks a required value"), "{e}");
    }
}

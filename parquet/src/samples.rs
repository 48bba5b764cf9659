//! A result's samples as Parquet (Apache `arrow` + `parquet`).
//!
//! [`SampleWriter`] turns decoded blocks into rows `point, time, value,
//! text`. It writes record batches of at most
//! [`Limits::batch_rows`] rows as they fill, into row groups of at most
//! [`Limits::row_group_rows`], so memory is one batch plus the row group
//! being encoded (its compressed pages), whatever the output's size.
//!
//! Every column chunk is zstd-compressed. Times are `timestamp[ms, UTC]`
//! written delta-coded (regular sampling makes them almost free); numbers are
//! the decoded `f64`s bit for bit.

use std::io::Write;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tsp_format::codec::Decoded;
use tsp_format::time::EpochMs;

/// Batch and row-group sizes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows buffered before they are handed to the encoder.
    pub batch_rows: usize,
    /// Rows per row group (readers parallelise over row groups).
    pub row_group_rows: usize,
}

impl Default for Limits {
    /// 64 Ki-row batches (about 1.5 MiB of columns) into 1 Mi-row groups,
    /// the `parquet` crate's default group size.
    fn default() -> Self {
        Self {
            batch_rows: 64 * 1024,
            row_group_rows: 1024 * 1024,
        }
    }
}

/// The zstd level: 1, the `parquet` crate's default. Higher levels bought
/// little when tried: a pyarrow rewrite of one 5-min result at levels 3 and
/// 9 was only 6 % and 8 % smaller (not measured with this writer).
const ZSTD_LEVEL: i32 = 1;

pub fn utc_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Writer settings: zstd everywhere, the listed time columns delta-coded
/// instead of dictionary-coded.
pub fn properties(limits: Limits, time_columns: &[&str]) -> anyhow::Result<WriterProperties> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).context("zstd level")?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(limits.row_group_rows.max(1)))
        .set_created_by(format!("tsp {}", env!("CARGO_PKG_VERSION")));
    for c in time_columns {
        let path = ColumnPath::from(*c);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
    }
    Ok(b.build())
}

/// The schema of a result as Parquet.
pub fn sample_schema() -> SchemaRef {
    let point = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        Field::new("point", point, false),
        Field::new("time", utc_ms(), false),
        Field::new("value", DataType::Float64, true),
        Field::new("text", DataType::Utf8, true),
    ]))
}

/// A result's samples as a Parquet file, written while they are decoded.
pub struct SampleWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    batch_rows: usize,
    /// The dictionary of point names, in first-seen order.
    points: Vec<String>,
    keys: Vec<i32>,
    times: Vec<i64>,
    values: Float64Builder,
    texts: StringBuilder,
    rows: u64,
}

impl<W: Write + Send> SampleWriter<W> {
    /// A writer to `w`.
    pub fn new(w: W, limits: Limits) -> anyhow::Result<Self> {
        let schema = sample_schema();
        let props = properties(limits, &["time"])?;
        let writer = ArrowWriter::try_new(w, schema.clone(), Some(props))
            .context("cannot start the Parquet file")?;
        let batch_rows = limits.batch_rows.max(1);
        Ok(Self {
            writer,
            schema,
            batch_rows,
            points: Vec::new(),
            keys: Vec::with_capacity(batch_rows),
            times: Vec::with_capacity(batch_rows),
            values: Float64Builder::with_capacity(batch_rows),
            texts: StringBuilder::new(),
            rows: 0,
        })
    }

    /// Appends one point's decoded samples (one block).
    pub fn push(&mut self, point: &str, samples: Vec<(EpochMs, Decoded)>) -> anyhow::Result<()> {
        let key = self.key(point)?;
        for (t, v) in samples {
            self.keys.push(key);
            self.times.push(t.ms());
            match v {
                Decoded::Number(n) => {
                    self.values.append_value(n);
                    self.texts.append_null();
                }
                Decoded::Text(s) => {
                    self.values.append_null();
                    self.texts.append_value(s);
                }
            }
            if self.keys.len() >= self.batch_rows {
                self.write_batch()?;
            }
        }
        Ok(())
    }

    /// The dictionary key of `point` (a job has at most a few hundred, so
    /// a scan per block costs nothing).
    fn key(&mut self, point: &str) -> anyhow::Result<i32> {
        let at = match self.points.iter().position(|p| p == point) {
            Some(at) => at,
            None => {
                self.points.push(point.to_owned());
                self.points.len() - 1
            }
        };
        i32::try_from(at).map_err(|_| anyhow!("too many points for a Parquet dictionary"))
    }

    fn write_batch(&mut self) -> anyhow::Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let n = self.keys.len();
        let keys = Int32Array::from(std::mem::take(&mut self.keys));
        let names: ArrayRef = Arc::new(StringArray::from(self.points.clone()));
        let point = DictionaryArray::<Int32Type>::try_new(keys, names)?;
        let time =
            TimestampMillisecondArray::from(std::mem::take(&mut self.times)).with_timezone("UTC");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(point),
            Arc::new(time),
            Arc::new(self.values.finish()),
            Arc::new(self.texts.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer.write(&batch).context("writing Parquet")?;
        self.keys.reserve(self.batch_rows);
        self.times.reserve(self.batch_rows);
        self.rows += n as u64;
        Ok(())
    }

    /// Ends the row group: what is buffered is written, and the next rows
    /// start a new one (the consumer cuts one per point and window).
    pub fn end_row_group(&mut self) -> anyhow::Result<()> {
        self.write_batch()?;
        self.writer.flush().context("closing a Parquet row group")
    }

    /// Writes what is buffered and the footer; returns the writer and the
    /// number of rows.
    pub fn finish(mut self) -> anyhow::Result<(W, u64)> {
        self.write_batch()?;
        let w = self
            .writer
            .into_inner()
            .context("finishing the Parquet file")?;
        Ok((w, self.rows))
    }
}

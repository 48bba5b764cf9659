//! The consumer's Parquet: one part per window, spliced at finalize.
//!
//! Converting samples to Parquet costs about 0.4 s of CPU per million in
//! wasm, too much for one request, so the work follows the chunks: each
//! window's invocation writes its rows as a [`PartWriter`] part, a complete
//! Parquet file with one row group per point. Finalize then hands the parts,
//! in plan order, to a [`Stitcher`], which copies each column chunk's bytes
//! as they are (no decoding, no compression) with the `parquet` crate's own
//! splice (`SerializedRowGroupWriter::append_column`, what its
//! `parquet-concat` tool does) and rewrites only the offsets. The footer it
//! writes last carries every row group's statistics and the page indexes,
//! so a reader filtering on `point` or `time` skips what it does not need.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use tsp_format::codec::Decoded;
use tsp_format::time::EpochMs;

use crate::samples::{Limits, SampleWriter};

/// One window's rows as a Parquet file: one row group per point.
pub struct PartWriter {
    inner: SampleWriter<Vec<u8>>,
}

impl PartWriter {
    /// An empty part.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            inner: SampleWriter::new(Vec::new(), Limits::default())?,
        })
    }

    /// Appends one point's samples of the window as a row group of its own
    /// (a point with no samples adds none).
    pub fn push_point(
        &mut self,
        point: &str,
        samples: Vec<(EpochMs, Decoded)>,
    ) -> anyhow::Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.inner.push(point, samples)?;
        self.inner.end_row_group()
    }

    /// The part's bytes.
    pub fn finish(self) -> anyhow::Result<Vec<u8>> {
        Ok(self.inner.finish()?.0)
    }
}

/// Splices parts into one Parquet file, handing out its bytes as they are
/// ready: the caller uploads them between parts, so memory is one part.
#[derive(Default)]
pub struct Stitcher {
    writer: Option<SerializedFileWriter<Vec<u8>>>,
    rows: u64,
}

impl Stitcher {
    /// Nothing spliced yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows spliced so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Splices every row group of `part`; returns the file's next bytes.
    pub fn append(&mut self, part: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let part = Bytes::from(part);
        let meta = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(&part)
            .context("a Parquet part has no readable footer")?;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(start(&meta)?),
        };
        for (rg_idx, rg) in meta.row_groups().iter().enumerate() {
            let index = meta.page_index_for_row_group(rg_idx);
            let mut out = writer.next_row_group()?;
            for (col_idx, column) in rg.columns().iter().enumerate() {
                let close = ColumnCloseResult {
                    bytes_written: column.compressed_size() as u64,
                    rows_written: rg.num_rows() as u64,
                    metadata: column.clone(),
                    bloom_filter: None,
                    column_index: index.column_index(col_idx).cloned(),
                    offset_index: index.offset_index(col_idx).cloned(),
                };
                out.append_column(&part, close)?;
            }
            out.close()?;
            self.rows += rg.num_rows() as u64;
        }
        writer.flush()?;
        Ok(std::mem::take(writer.inner_mut()))
    }

    /// The file's last bytes: the page indexes and the footer.
    pub fn finish(self) -> anyhow::Result<Vec<u8>> {
        let writer = self
            .writer
            .context("no Parquet part was spliced: the file has no schema")?;
        Ok(writer.into_inner()?)
    }
}

/// The output file, with the parts' schema and key-value metadata (the
/// Arrow schema, so readers see the dictionary and the UTC zone).
fn start(part: &ParquetMetaData) -> anyhow::Result<SerializedFileWriter<Vec<u8>>> {
    let file = part.file_metadata();
    let props = WriterProperties::builder()
        .set_created_by(file.created_by().unwrap_or("tsp").to_owned())
        .set_key_value_metadata(file.key_value_metadata().cloned())
        .build();
    let schema = file.schema_descr().root_schema_ptr();
    Ok(SerializedFileWriter::new(
        Vec::new(),
        schema,
        Arc::new(props),
    )?)
}

#[cfg(test)]
mod tests;

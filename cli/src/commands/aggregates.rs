//! `tsp aggregates`: a point's stored hourly or daily buckets.
//!
//! Follows `next_from` until the range is exhausted. `--format csv` and
//! `--format parquet` write the exact values page by page (to stdout or
//! `-o FILE`, the file moved into place only once every page was written);
//! the table rounds means and deviations for reading.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use comfy_table::Table;
use serde_json::{Map, Value};
use tsp_format::export::csv_field;
use tsp_format::time::{format_rfc3339, parse_rfc3339};

use crate::api::{AggregateQuery, Client};
use crate::output::{num_cell, plain, rounded, table};
use crate::parquet::{AggregateWriter, Limits};
use crate::sink::Sink;

/// CSV columns (the Parquet file's too: `parquet::AGGREGATE_COLUMNS`), in order: (header, row key, is a time in epoch ms).
const COLUMNS: [(&str, &str, bool); 14] = [
    ("bucket_start", "bucket_start", true),
    ("count", "count", false),
    ("min", "min", false),
    ("max", "max", false),
    ("mean", "mean", false),
    ("stddev", "stddev", false),
    ("sum", "sum", false),
    ("first_time", "first_ts", true),
    ("first_value", "first_value", false),
    ("last_time", "last_ts", true),
    ("last_value", "last_value", false),
    ("non_numeric", "non_numeric", false),
    ("non_finite", "non_finite", false),
    ("partial", "partial", false),
];

/// Arguments of `aggregates`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Site name.
    #[arg(long)]
    pub site: String,
    /// Point name.
    #[arg(long)]
    pub point: String,
    /// First bucket, RFC 3339.
    #[arg(long, value_parser = rfc3339)]
    pub from: String,
    /// End of the range (exclusive), RFC 3339; at most 366 days after --from.
    #[arg(long, value_parser = rfc3339)]
    pub to: String,
    /// Bucket size.
    #[arg(long, default_value = "1d", value_parser = ["1h", "1d"])]
    pub resolution: String,
    /// Output: a table (rounded, for reading), or the exact values as CSV or
    /// Parquet (zstd; see docs/DESIGN.md, Parquet, for its column types).
    #[arg(long, value_enum, default_value_t = AggFormat::Table)]
    pub format: AggFormat,
    /// Same as --format csv.
    #[arg(long, conflicts_with = "format")]
    pub csv: bool,
    /// Write CSV or Parquet to FILE instead of stdout (`-` for stdout).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Buckets per request (the server allows 1 to 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: Option<u32>,
}

/// Output formats of `aggregates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AggFormat {
    /// A table, rounded for reading.
    Table,
    /// CSV with a header row, exact values.
    Csv,
    /// Parquet, exact values.
    Parquet,
}

fn rfc3339(s: &str) -> Result<String, String> {
    match parse_rfc3339(s) {
        Some(_) => Ok(s.to_owned()),
        None => Err("expected RFC 3339, e.g. 2025-09-28T00:00:00Z".to_owned()),
    }
}

/// A cell: times as RFC 3339, everything else as the API wrote it.
fn cell(row: &Map<String, Value>, key: &str, time: bool) -> String {
    let v = row.get(key);
    match v.and_then(Value::as_f64) {
        Some(ms) if time => format_rfc3339(ms as i64),
        _ => plain(v),
    }
}

/// Where the rows go.
enum Out {
    Table(Table),
    Csv(Sink),
    /// Boxed: the writer is large, and there is one per command.
    Parquet(Box<AggregateWriter<Sink>>),
}

impl Out {
    fn open(args: &Args) -> anyhow::Result<Self> {
        let format = if args.csv {
            AggFormat::Csv
        } else {
            args.format
        };
        let dest = args.output.as_deref();
        Ok(match format {
            AggFormat::Table => {
                if dest.is_some() {
                    bail!("-o needs --format csv or --format parquet");
                }
                Self::Table(table(&[
                    "bucket", "count", "min", "max", "mean", "stddev", "first", "last", "non-num",
                    "non-fin", "partial",
                ]))
            }
            AggFormat::Csv => {
                let mut sink = Sink::open(dest)?;
                let header: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
                sink.write_bytes(format!("{}\n", header.join(",")).as_bytes())?;
                Self::Csv(sink)
            }
            AggFormat::Parquet => {
                let sink = Sink::open_binary(dest, "Parquet")?;
                Self::Parquet(Box::new(AggregateWriter::new(sink, Limits::default())?))
            }
        })
    }

    fn page(&mut self, rows: &[Map<String, Value>]) -> anyhow::Result<()> {
        match self {
            Self::Table(tbl) => rows.iter().for_each(|row| add_table_row(tbl, row)),
            Self::Csv(sink) => {
                for row in rows {
                    let fields: Vec<String> = COLUMNS
                        .iter()
                        .map(|(_, key, time)| csv_field(&cell(row, key, *time)))
                        .collect();
                    sink.write_bytes(format!("{}\n", fields.join(",")).as_bytes())?;
                }
            }
            Self::Parquet(w) => w.push(rows)?,
        }
        Ok(())
    }

    /// Prints the table, or moves the file into place.
    fn finish(self, args: &Args, total: usize) -> anyhow::Result<()> {
        match self {
            Self::Table(_) if total == 0 => eprintln!(
                "no {} aggregates for {} / {} in [{}, {})",
                args.resolution, args.site, args.point, args.from, args.to
            ),
            Self::Table(tbl) => {
                writeln!(std::io::stdout().lock(), "{tbl}").context("writing to stdout")?;
            }
            Self::Csv(sink) => sink.commit()?,
            Self::Parquet(w) => (*w).finish()?.0.commit()?,
        }
        Ok(())
    }
}

fn add_table_row(tbl: &mut Table, row: &Map<String, Value>) {
    tbl.add_row(vec![
        comfy_table::Cell::new(cell(row, "bucket_start", true)),
        num_cell(plain(row.get("count"))),
        num_cell(plain(row.get("min"))),
        num_cell(plain(row.get("max"))),
        num_cell(rounded(row.get("mean"), 3)),
        num_cell(rounded(row.get("stddev"), 3)),
        num_cell(plain(row.get("first_value"))),
        num_cell(plain(row.get("last_value"))),
        num_cell(plain(row.get("non_numeric"))),
        num_cell(plain(row.get("non_finite"))),
        comfy_table::Cell::new(plain(row.get("partial"))),
    ]);
}

/// Fetches every page; prints a table, or writes CSV or Parquet.
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    let mut out = Out::open(&args)?;
    let mut from = args.from.clone();
    let mut total = 0usize;
    loop {
        let page = api
            .aggregates(&AggregateQuery {
                site: &args.site,
                point: &args.point,
                from: &from,
                to: &args.to,
                resolution: &args.resolution,
                limit: args.page_size,
            })
            .await?;
        total += page.rows.len();
        out.page(&page.rows)?;
        match page.next_from {
            None => break,
            Some(next) => {
                // A cursor that does not advance would loop forever.
                match (parse_rfc3339(&next), parse_rfc3339(&from)) {
                    (Some(n), Some(f)) if n > f => from = next,
                    _ => bail!(
                        "the API returned a next_from ({next}) that does not advance past {from}"
                    ),
                }
            }
        }
    }
    out.finish(&args, total)?;
    if let Some(dest) = args.output.as_ref().filter(|d| d.as_os_str() != "-") {
        eprintln!("wrote {} ({total} buckets)", dest.display());
    }
    Ok(ExitCode::SUCCESS)
}

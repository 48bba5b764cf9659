//! `tsp aggregates`: a point's stored hourly or daily buckets.
//!
//! Follows `next_from` until the range is exhausted. `--csv` streams the
//! exact values page by page; the table rounds means and deviations for
//! reading.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use tsp_core::domain::{format_rfc3339, parse_rfc3339};

use crate::api::{AggregateQuery, Client};
use crate::output::{csv_field, num_cell, plain, rounded, table};

/// CSV columns, in order: (header, row key, is a time in epoch ms).
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
    /// Print CSV (exact values) instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// Buckets per request (the server allows 1 to 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: Option<u32>,
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

/// Fetches every page; prints a table or CSV.
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    let mut from = args.from.clone();
    let mut out = std::io::stdout().lock();
    let mut tbl = table(&[
        "bucket", "count", "min", "max", "mean", "stddev", "first", "last", "non-num", "non-fin",
        "partial",
    ]);
    if args.csv {
        let header: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
        writeln!(out, "{}", header.join(",")).context("writing to stdout")?;
    }
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
        for row in &page.rows {
            if args.csv {
                let fields: Vec<String> = COLUMNS
                    .iter()
                    .map(|(_, key, time)| csv_field(&cell(row, key, *time)))
                    .collect();
                writeln!(out, "{}", fields.join(",")).context("writing to stdout")?;
            } else {
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
        }
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
    if args.csv {
        out.flush().context("writing to stdout")?;
    } else if total == 0 {
        eprintln!(
            "no {} aggregates for {} / {} in [{}, {})",
            args.resolution, args.site, args.point, args.from, args.to
        );
    } else {
        writeln!(out, "{tbl}").context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

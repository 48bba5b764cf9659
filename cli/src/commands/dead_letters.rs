//! `tsp dead-letters`: the caller's failed_permanent jobs, all pages.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::Cell;

use crate::api::Client;
use crate::output::{num_cell, table, truncate};

/// Entries per request (the server's maximum).
const PAGE: u32 = 100;

/// Arguments of `dead-letters`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show at most this many (newest first).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: usize,
}

/// Lists dead jobs: id, site, finished time, attempts, last error.
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    let mut tbl = table(&["job", "site", "finished", "attempts", "error"]);
    let mut cursor: Option<String> = None;
    let mut shown = 0usize;
    while shown < args.limit {
        let page = api.dead_letters(cursor.as_deref(), PAGE).await?;
        for job in page.dead_letters.iter().take(args.limit - shown) {
            shown += 1;
            tbl.add_row(vec![
                Cell::new(&job.job_id),
                Cell::new(&job.site),
                Cell::new(job.finished_at.as_deref().unwrap_or("")),
                num_cell(job.attempts.to_string()),
                Cell::new(truncate(job.last_error.as_deref().unwrap_or(""), 200)),
            ]);
        }
        match page.next_cursor {
            Some(next) if !page.dead_letters.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    if shown == 0 {
        eprintln!("no dead letters");
    } else {
        writeln!(std::io::stdout().lock(), "{tbl}").context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

//! `tsp`: the command-line client of the time-series pipeline API.
//!
//! Submits jobs, follows their progress, downloads and decodes results
//! (client-side, streaming, with the SHA-256 checked), reads aggregates, and
//! manages dead letters. `tsp --help` lists the commands and exit codes.
//!
//! # Layout
//! - `main.rs`: the argument grammar (clap) and dispatch, nothing else.
//! - [`api`]: the typed HTTP client (base URL, token, timeouts, problem+json errors).
//! - [`commands`]: one module per command (`submit`, `status`, `fetch`,
//!   `aggregates`, `dead_letters`, `retry`, `cancel`).
//! - [`output`]: job summaries, the progress bar, tables and error lines.
//! - [`sink`]: stdout, or a `.part` file moved into place once complete.
//! - [`parquet`]: results and aggregates as Parquet (arrow + parquet, zstd).

mod api;
mod commands;
mod output;
mod parquet;
mod sink;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use commands::{admin, aggregates, cancel, dead_letters, fetch, retry, status, submit, EXIT_ERROR};

const AFTER_HELP: &str = "\
Exit codes:
  0  success (for status/submit --wait: the job completed)
  1  error: API error (its problem title and detail are printed), network
     failure, bad arguments, or a result that fails its SHA-256 check
  3  the job is failed_permanent (status, submit --wait)
  4  the job is cancelled (status, submit --wait)

Environment:
  TSP_URL    base URL of the API, e.g. https://tsp.example.workers.dev
  TSP_TOKEN  bearer token";

/// Command-line client of the time-series pipeline API.
#[derive(Debug, Parser)]
#[command(name = "tsp", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// Base URL of the API.
    #[arg(long, env = "TSP_URL", global = true, help_heading = "Global options")]
    url: Option<String>,
    /// Bearer token.
    #[arg(
        long,
        env = "TSP_TOKEN",
        global = true,
        hide_env_values = true,
        help_heading = "Global options"
    )]
    token: Option<String>,
    /// Timeout of each API call in seconds (a result download has none, only
    /// a 60 s limit on silence).
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS",
          help_heading = "Global options",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit a job (POST /v1/jobs); prints its id, then with --wait follows it.
    Submit(submit::Args),
    /// Show a job (GET /v1/jobs/{id}); with --wait, follow it to the end.
    Status(status::Args),
    /// Download a completed job's result and decode it to CSV, JSON Lines, Parquet or raw bytes.
    Fetch(fetch::Args),
    /// Hourly or daily aggregates of one point (all pages).
    Aggregates(aggregates::Args),
    /// List failed_permanent jobs.
    DeadLetters(dead_letters::Args),
    /// Re-enqueue a failed_permanent job (POST /v1/jobs/{id}/retry).
    Retry(retry::Args),
    /// Cancel a job (DELETE /v1/jobs/{id}).
    Cancel(cancel::Args),
    /// Operators (an ADMIN_TOKENS token): pause or resume a site, list
    /// pauses, retry dead jobs in bulk.
    Admin(admin::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; usage errors exit 1.
            return if e.use_stderr() {
                ExitCode::from(EXIT_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if commands::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e);
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let url = cli
        .url
        .ok_or_else(|| anyhow::anyhow!("no API URL: pass --url or set TSP_URL"))?;
    let token = cli
        .token
        .ok_or_else(|| anyhow::anyhow!("no token: pass --token or set TSP_TOKEN"))?;
    let client = api::Client::new(&url, &token, Duration::from_secs(cli.timeout))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        match cli.command {
            Command::Submit(a) => submit::run(&client, a).await,
            Command::Status(a) => status::run(&client, a).await,
            Command::Fetch(a) => fetch::run(&client, a).await,
            Command::Aggregates(a) => aggregates::run(&client, a).await,
            Command::DeadLetters(a) => dead_letters::run(&client, a).await,
            Command::Retry(a) => retry::run(&client, a).await,
            Command::Cancel(a) => cancel::run(&client, a).await,
            Command::Admin(a) => admin::run(&client, a).await,
        }
    })
}

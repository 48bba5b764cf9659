//! `tsp status ID [--wait]`: one job, or its live progress until it ends.
//!
//! Waiting polls `GET /v1/jobs/{id}` at the interval the server's
//! `Retry-After` asks for (1 s when absent, at most 30 s) and rides out a
//! few consecutive transient failures (network, 429, 502-504) with backoff.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::exit_for;
use crate::api::Client;
use crate::output::{print_job, JobBar};

/// Consecutive transient failures tolerated while waiting.
const MAX_TRANSIENT: u32 = 5;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Job id.
    pub id: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// How to follow a job.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Follow the job with a progress bar until it is completed,
    /// failed_permanent or cancelled (exit 0, 3 or 4).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (exit 1).
    #[arg(long, value_name = "SECS", requires = "wait")]
    pub wait_timeout: Option<u64>,
    /// Print the job as the API's JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Prints the job; exit 3 if it is failed_permanent, 4 if cancelled.
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    if args.wait.wait {
        return wait(api, &args.id, &args.wait).await;
    }
    let (job, _) = api.job(&args.id).await?;
    print_job(&job, args.wait.json)?;
    Ok(exit_for(&job))
}

/// The delay before the next poll.
fn poll_interval(retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or(Duration::from_secs(1))
        .clamp(Duration::from_millis(500), Duration::from_secs(30))
}

/// Polls until the job is terminal, showing progress on stderr; prints the
/// final job to stdout and returns its exit code.
pub async fn wait(api: &Client, id: &str, args: &WaitArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let deadline = args.wait_timeout.map(Duration::from_secs);
    let mut bar = JobBar::new(id);
    let mut failures = 0u32;
    loop {
        let delay = match api.job(id).await {
            Ok((job, retry_after)) => {
                failures = 0;
                bar.update(&job);
                if job.status.is_terminal() {
                    bar.clear();
                    print_job(&job, args.json)?;
                    return Ok(exit_for(&job));
                }
                poll_interval(retry_after)
            }
            Err(e) if e.is_transient() && failures < MAX_TRANSIENT => {
                failures += 1;
                bar.warn(&format!(
                    "warning: {e} (retrying, {failures}/{MAX_TRANSIENT})"
                ));
                Duration::from_secs(1 << failures.min(4))
            }
            Err(e) => {
                bar.clear();
                return Err(e.into());
            }
        };
        if let Some(limit) = deadline {
            if started.elapsed() + delay > limit {
                bar.clear();
                bail!("job {id} did not finish within {} s", limit.as_secs());
            }
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        assert_eq!(poll_interval(None), Duration::from_secs(1));
        assert_eq!(
            poll_interval(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            poll_interval(Some(Duration::ZERO)),
            Duration::from_millis(500)
        );
        assert_eq!(
            poll_interval(Some(Duration::from_secs(600))),
            Duration::from_secs(30)
        );
    }
}

//! `tsp cancel ID`: `DELETE /v1/jobs/{id}`.

use std::process::ExitCode;

use crate::api::Client;

/// Arguments of `cancel`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Job id.
    pub id: String,
}

/// Cancels the job; a job already terminal is a 409 (exit 1).
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    let job = api.cancel(&args.id).await?;
    println!("{}\t{}", job.job_id, job.status);
    Ok(ExitCode::SUCCESS)
}

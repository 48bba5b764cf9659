//! `tsp retry ID`: `POST /v1/jobs/{id}/retry`.

use std::process::ExitCode;

use crate::api::Client;

/// Arguments of `retry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Job id (a failed_permanent job).
    pub id: String,
}

/// Re-enqueues a dead job; it resumes from its checkpoints.
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    let job = api.retry(&args.id).await?;
    println!("{}\t{}", job.job_id, job.status);
    if let Some(note) = &job.note {
        eprintln!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

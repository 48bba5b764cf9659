//! One module per command; each has an `Args` (clap) and an async `run`
//! returning the process exit code.
//!
//! # Layout
//! - [`submit`]: `POST /v1/jobs`, optionally followed by [`status::wait`].
//! - [`status`]: one job, or a live progress bar until it is terminal.
//! - [`fetch`]: the result object, decoded client-side as it streams in.
//! - [`aggregates`]: stored buckets, all pages, as a table, CSV or Parquet.
//! - [`dead_letters`], [`retry`], [`cancel`]: managing jobs.
//! - [`admin`]: the operators' routes (pause, resume, bulk retry).

pub mod admin;
pub mod aggregates;
pub mod cancel;
pub mod dead_letters;
pub mod fetch;
pub mod retry;
pub mod status;
pub mod submit;

use std::process::ExitCode;

use crate::api::Job;

/// Errors and usage mistakes.
pub const EXIT_ERROR: u8 = 1;
/// The job ended `failed_permanent`.
pub const EXIT_FAILED_PERMANENT: u8 = 3;
/// The job ended `cancelled`.
pub const EXIT_CANCELLED: u8 = 4;

/// The exit code that reports a job's state: 3 and 4 for the failed
/// terminal states, 0 otherwise.
pub fn exit_for(job: &Job) -> ExitCode {
    match job.status.as_str() {
        "failed_permanent" => ExitCode::from(EXIT_FAILED_PERMANENT),
        "cancelled" => ExitCode::from(EXIT_CANCELLED),
        _ => ExitCode::SUCCESS,
    }
}

/// Whether an error is stdout closing early (`tsp fetch ID | head`), which
/// ends the command quietly.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

//! `tsp submit`: `POST /v1/jobs`, then optionally [`status::wait`].
//!
//! The body is the `--file` JSON object (if any) with the flags laid over
//! it, so a saved request can be resubmitted with, say, `--force` added.
//! Stdout gets the job id alone on its first line (`ID=$(tsp submit …)`);
//! whether the job is new or an identical one was reused goes to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use tsp_format::time::parse_rfc3339;

use super::status::{self, WaitArgs};
use crate::api::{Client, Submitted};
use crate::output::print_job;

/// Arguments of `submit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Site name.
    #[arg(long, required_unless_present = "file")]
    pub site: Option<String>,
    /// Point name; repeat for several (up to the server's limit, 100).
    #[arg(long = "point", value_name = "POINT", required_unless_present = "file")]
    pub points: Vec<String>,
    /// The whole UTC days before today (1 to 366).
    #[arg(long, conflicts_with_all = ["start", "end"],
          value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: Option<u32>,
    /// Range start, RFC 3339 (with --end).
    #[arg(long, requires = "end", value_parser = rfc3339)]
    pub start: Option<String>,
    /// Range end (exclusive), RFC 3339 (with --start).
    #[arg(long, requires = "start", value_parser = rfc3339)]
    pub end: Option<String>,
    /// Run again even if an identical job completed recently.
    #[arg(long)]
    pub force: bool,
    /// A JSON request body to start from (`-` for stdin); flags override its fields.
    #[arg(long, value_name = "job.json")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

fn rfc3339(s: &str) -> Result<String, String> {
    match parse_rfc3339(s) {
        Some(_) => Ok(s.to_owned()),
        None => Err("expected RFC 3339, e.g. 2025-09-28T00:00:00Z".to_owned()),
    }
}

/// The request body: the file's object, then the flags.
pub fn body(args: &Args) -> anyhow::Result<Value> {
    let mut obj = match &args.file {
        None => Map::new(),
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the job from stdin")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
            };
            match serde_json::from_str::<Value>(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?
            {
                Value::Object(m) => m,
                _ => bail!("{} must hold a JSON object", path.display()),
            }
        }
    };
    if let Some(site) = &args.site {
        obj.insert("site".into(), site.clone().into());
    }
    if !args.points.is_empty() {
        obj.insert("points".into(), args.points.clone().into());
    }
    if let Some(days) = args.days {
        obj.remove("start");
        obj.remove("end");
        obj.insert("days".into(), days.into());
    }
    if let (Some(start), Some(end)) = (&args.start, &args.end) {
        obj.remove("days");
        obj.insert("start".into(), start.clone().into());
        obj.insert("end".into(), end.clone().into());
    }
    if args.force {
        obj.insert("force".into(), true.into());
    }
    let has_range =
        obj.contains_key("days") || (obj.contains_key("start") && obj.contains_key("end"));
    if !has_range {
        bail!("no range: pass --days N or --start T --end T (or put them in --file)");
    }
    Ok(Value::Object(obj))
}

/// Submits; prints the id (or the job with `--json`), then waits if asked.
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    let body = body(&args)?;
    let (how, job) = api.submit(&body).await?;
    match how {
        Submitted::Created => eprintln!("created job {} ({})", job.job_id, job.status),
        Submitted::Existing => eprintln!(
            "an identical job exists: {} ({}); pass --force to run again",
            job.job_id, job.status
        ),
    }
    if let Some(note) = job.note.as_deref().filter(|_| how == Submitted::Created) {
        eprintln!("note: {note}");
    }
    if args.wait.json && !args.wait.wait {
        print_job(&job, true)?;
    } else {
        println!("{}", job.job_id);
    }
    if args.wait.wait {
        return status::wait(api, job.job_id.as_str(), &args.wait).await;
    }
    Ok(ExitCode::SUCCESS)
}

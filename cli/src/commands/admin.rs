//! `tsp admin …`: the operators' routes (`/v1/admin/…`), under a token
//! from `ADMIN_TOKENS` (`--token` or `TSP_TOKEN`).

use std::process::ExitCode;

use percent_encoding::utf8_percent_encode;
use reqwest::Method;
use serde_json::json;
use tsp_api::{BulkRetry, SitePause, SitePauses, SiteResumed};

use crate::api::{Client, SEGMENT};

/// Arguments of `admin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// What an operator does.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Pause a site: its jobs wait, and no upstream call is made for it.
    Pause {
        /// The site.
        site: String,
        /// Why (shown in the jobs' `waiting`).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume a paused site.
    Resume {
        /// The site.
        site: String,
    },
    /// List the paused sites.
    Pauses,
    /// Retry dead jobs in bulk (every owner's), matched by site, error text
    /// and when they died; --dry-run lists them only.
    RetryDead {
        /// Only this site.
        #[arg(long)]
        site: Option<String>,
        /// Only jobs whose last error contains this.
        #[arg(long, value_name = "TEXT")]
        error: Option<String>,
        /// Only jobs that died at or after this (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only jobs that died before this (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// At most this many (1 to 100).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// List what would be retried; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn site_path(site: &str) -> String {
    format!(
        "/v1/admin/sites/{}/pause",
        utf8_percent_encode(site, SEGMENT)
    )
}

/// Runs one operator action and prints its answer, one line per item.
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Pause { site, reason } => {
            let q = format!(
                "{}?reason={}",
                site_path(&site),
                utf8_percent_encode(&reason, SEGMENT)
            );
            let p: SitePause = api.admin(Method::POST, &q, None).await?;
            println!(
                "{}\tpaused since {}\tby {}\t{}",
                p.site, p.paused_at, p.paused_by, p.reason
            );
        }
        Action::Resume { site } => {
            let r: SiteResumed = api.admin(Method::DELETE, &site_path(&site), None).await?;
            let how = if r.was_paused {
                "resumed"
            } else {
                "was not paused"
            };
            println!("{}\t{how}", r.site);
        }
        Action::Pauses => {
            let all: SitePauses = api.admin(Method::GET, "/v1/admin/pauses", None).await?;
            for p in all.pauses {
                println!("{}\t{}\t{}\t{}", p.site, p.paused_at, p.paused_by, p.reason);
            }
        }
        Action::RetryDead { .. } => retry_dead(api, args.action).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `retry-dead`: prints each matched job, then what was (or would be) done.
async fn retry_dead(api: &Client, action: Action) -> anyhow::Result<()> {
    let Action::RetryDead {
        site,
        error,
        from,
        to,
        limit,
        dry_run,
    } = action
    else {
        return Ok(());
    };
    let body = json!({"site": site, "error_contains": error, "from": from, "to": to,
                      "limit": limit, "dry_run": dry_run});
    let out: BulkRetry = api
        .admin(Method::POST, "/v1/admin/dead-letters/retry", Some(&body))
        .await?;
    for m in &out.matched {
        let when = m.finished_at.as_deref().unwrap_or("-");
        let why = m.last_error.as_deref().unwrap_or("");
        println!("{}\t{}\t{}\t{when}\t{why}", m.job_id, m.owner, m.site);
    }
    let verb = if out.dry_run {
        "would retry"
    } else {
        "retried"
    };
    let n = if out.dry_run {
        out.matched.len() as u64
    } else {
        out.retried
    };
    eprintln!("{verb} {n} of {} matched", out.matched.len());
    Ok(())
}

//! What the commands print: job summaries, the progress bar, tables, CSV
//! fields and the error line.
//!
//! Results and summaries go to stdout; progress, notes and errors go to
//! stderr, so `tsp ... > file` captures only data.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::api::Job;
use tsp_api::JobStatus;

/// The human summary of a job (several `key  value` lines).
pub fn job_summary(job: &Job) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(s, "{k:<9} {v}");
    };
    line("job", job.job_id.as_str());
    line("status", job.status.as_str());
    if !job.site.is_empty() {
        line("site", &job.site);
    }
    if !job.points.is_empty() {
        let shown: Vec<&str> = job.points.iter().take(3).map(String::as_str).collect();
        let more = job.points.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(", … {more} more")
        } else {
            String::new()
        };
        line(
            "points",
            &format!("{} ({}{tail})", job.points.len(), shown.join(", ")),
        );
    }
    if !job.start.is_empty() {
        line("range", &format!("{} .. {}", job.start, job.end));
    }
    let p = &job.progress;
    line(
        "progress",
        &format!(
            "{}/{} chunks, {} samples, {:.1}%",
            p.chunks_done, p.chunks_total, p.samples, p.percent
        ),
    );
    line("attempts", &job.attempts.to_string());
    if !job.created_at.is_empty() {
        line("created", &job.created_at);
    }
    if let Some(t) = &job.started_at {
        line("started", t);
    }
    if let Some(t) = &job.finished_at {
        line("finished", t);
    }
    if let Some(e) = &job.last_error {
        line("error", e);
    }
    if let Some(r) = &job.result {
        let bytes = r.bytes.map(|b| format!("{b} bytes")).unwrap_or_default();
        line("result", format!("{} {bytes}", r.url).trim_end());
        if let Some(sha) = &r.sha256 {
            line("sha256", sha);
        }
    }
    if let Some(n) = &job.note {
        line("note", n);
    }
    s
}

/// Prints a job to stdout: the summary, or the server's JSON with `json`.
pub fn print_job(job: &Job, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&job.raw).unwrap_or_default();
        writeln!(out, "{text}")
    } else {
        write!(out, "{}", job_summary(job))
    }
}

/// A job's progress on stderr: a spinner until the job is planned, then a
/// bar of chunks. Hidden when stderr is not a terminal.
pub struct JobBar {
    bar: ProgressBar,
    planned: bool,
    last_status: Option<JobStatus>,
}

impl JobBar {
    /// A bar for job `id`.
    pub fn new(id: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(waiting_style());
        bar.set_message(format!("job {id}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        Self {
            bar,
            planned: false,
            last_status: None,
        }
    }

    /// Shows the latest poll.
    pub fn update(&mut self, job: &Job) {
        let p = &job.progress;
        if self.bar.is_hidden() && Some(job.status) != self.last_status {
            eprintln!(
                "job {}: {} ({}/{} chunks, {} samples)",
                job.job_id, job.status, p.chunks_done, p.chunks_total, p.samples
            );
        }
        self.last_status = Some(job.status);
        self.bar.set_prefix(job.status.as_str());
        if p.chunks_total > 0 {
            if !self.planned {
                self.planned = true;
                self.bar.set_style(bar_style());
                self.bar.reset_eta();
            }
            let (done, total) = (p.chunks_done.max(0) as u64, p.chunks_total.max(0) as u64);
            self.bar.set_length(total);
            self.bar.set_position(done.min(total));
            self.bar.set_message(format!(
                "{} samples · {:.1}%",
                HumanCount(p.samples.max(0) as u64),
                p.percent
            ));
        }
    }

    /// Shows a transient problem without stopping.
    pub fn warn(&self, msg: &str) {
        if self.bar.is_hidden() {
            eprintln!("{msg}");
        } else {
            self.bar.println(msg);
        }
    }

    /// Removes the bar.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

fn waiting_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix} {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    // The bar takes whatever width is left, so the line never wraps.
    ProgressStyle::with_template(
        "{spinner:.cyan} {prefix} {pos}/{len} chunks · {msg} · ETA {eta} [{wide_bar:.cyan/blue}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// A byte-count bar for downloads to a file (hidden off a terminal).
pub fn download_bar(total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let style = if total.is_some() {
        ProgressStyle::with_template(
            "{spinner:.cyan} {bytes}/{total_bytes} · {bytes_per_sec} · ETA {eta} [{wide_bar:.cyan/blue}]",
        )
    } else {
        ProgressStyle::with_template("{spinner:.cyan} {bytes} · {bytes_per_sec}")
    };
    if let Ok(style) = style {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A table sized to the terminal (or unbounded when piped).
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    if std::io::stdout().is_terminal() {
        t.set_content_arrangement(ContentArrangement::Dynamic);
    }
    t.set_header(headers.iter().map(Cell::new).collect::<Vec<_>>());
    t
}

/// A right-aligned (numeric) cell.
pub fn num_cell(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

/// A JSON value as text: nothing for null, numbers as JSON writes them
/// (shortest round-trip), strings unquoted.
pub fn plain(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            // D1 hands integers back as floats; print 3.0 as 3.
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// A number rounded for a table cell (exact values are in `--csv`).
pub fn rounded(v: Option<&Value>, decimals: usize) -> String {
    match v.and_then(Value::as_f64) {
        Some(f) => {
            let s = format!("{f:.decimals$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s
            }
        }
        None => plain(v),
    }
}

/// Cuts `s` to `max` characters, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Prints an error for a person: `error: ` and the message chain on one
/// line (a problem's field errors follow on their own lines).
pub fn print_error(e: &anyhow::Error) {
    eprintln!("error: {e:#}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_values() {
        assert_eq!(plain(Some(&json!(null))), "");
        assert_eq!(plain(Some(&json!(3.0))), "3");
        assert_eq!(plain(Some(&json!(21.4))), "21.4");
        assert_eq!(plain(Some(&json!("on"))), "on");
        assert_eq!(rounded(Some(&json!(2.0 / 3.0)), 3), "0.667");
        assert_eq!(rounded(Some(&json!(2.5)), 3), "2.5");
        assert_eq!(rounded(Some(&json!(7)), 3), "7");
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}

//! `GET /v1/metrics`: the caller's figures and the shared ones in the
//! OpenMetrics text format, for a scraper. Three queries: the stats row,
//! the quota usage, and the upstream circuit.

use std::fmt::Write;

use serde_json::Value;

use crate::error::Error;
use crate::ports::{Clock, SqlDb};
use crate::service::manage;
use crate::store;

/// The OpenMetrics content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders the owner's metrics.
pub async fn render<D: SqlDb, C: Clock>(
    db: &D,
    clock: &C,
    owner: &str,
    quota: u64,
) -> Result<String, Error> {
    let st = serde_json::to_value(manage::stats(db, clock, owner, quota).await?)
        .map_err(|e| crate::error::StoreError::Corrupt(e.to_string()))?;
    let circuit = db
        .query(&store::select_circuit())
        .await?
        .first()
        .and_then(|r| r.get("state"))
        .and_then(Value::as_str)
        .unwrap_or("closed")
        .to_owned();
    Ok(text(&st, &circuit))
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "# HELP {name} {help}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// The exposition text: gauges only, one family each, `# EOF` last.
pub fn text(st: &Value, circuit: &str) -> String {
    let mut out = String::new();
    let c = &st["counts"];
    let statuses = [
        "queued",
        "processing",
        "failed",
        "completed",
        "failed_permanent",
        "cancelled",
    ];
    let labels: Vec<String> = statuses
        .iter()
        .map(|s| format!("{{status=\"{s}\"}}"))
        .collect();
    let by_status: Vec<(&str, f64)> = statuses
        .iter()
        .zip(&labels)
        .map(|(s, l)| (l.as_str(), num(&c[*s])))
        .collect();
    gauge(
        &mut out,
        "tsp_jobs",
        "Jobs of the caller by status.",
        &by_status,
    );
    let depth = num(&c["queued"]) + num(&c["failed"]);
    gauge(
        &mut out,
        "tsp_queue_depth",
        "Jobs waiting for a delivery (queued, or failed with a retry scheduled).",
        &[("", depth)],
    );
    let h = &st["last_hour"];
    gauge(
        &mut out,
        "tsp_completed_last_hour",
        "Jobs completed in the last hour.",
        &[("", num(&h["completed"]))],
    );
    gauge(
        &mut out,
        "tsp_samples_last_hour",
        "Samples in jobs completed in the last hour.",
        &[("", num(&h["samples"]))],
    );
    gauge(
        &mut out,
        "tsp_failure_rate_last_hour",
        "Share of the last hour's finished jobs that died.",
        &[("", num(&h["failure_rate"]))],
    );
    gauge(
        &mut out,
        "tsp_dead_letters_last_day",
        "Jobs dead-lettered in the last 24 hours.",
        &[("", num(&st["dead_letters_last_24h"]))],
    );
    let open = f64::from(u8::from(circuit != "closed"));
    let states = [
        ("{state=\"closed\"}", "closed"),
        ("{state=\"open\"}", "open"),
        ("{state=\"half_open\"}", "half_open"),
    ];
    let circuit_samples: Vec<(&str, f64)> = states
        .iter()
        .map(|(l, s)| (*l, f64::from(u8::from(*s == circuit))))
        .collect();
    gauge(
        &mut out,
        "tsp_upstream_circuit_state",
        "The upstream circuit's state (1 for the current one).",
        &circuit_samples,
    );
    gauge(
        &mut out,
        "tsp_upstream_circuit_open",
        "1 while the upstream circuit holds jobs back.",
        &[("", open)],
    );
    let inv = &st["invocations_last_24h"];
    for (key, name, help) in [
        (
            "invocations",
            "tsp_invocations_last_day",
            "Consumer invocations in the last 24 hours.",
        ),
        (
            "max_d1_statements",
            "tsp_invocation_max_d1_statements",
            "Most D1 statements one invocation ran (platform limit 1,000).",
        ),
        (
            "max_subrequests",
            "tsp_invocation_max_subrequests",
            "Most subrequests one invocation made.",
        ),
        (
            "max_wasm_memory_bytes",
            "tsp_invocation_max_wasm_memory_bytes",
            "Largest wasm linear memory at the end of an invocation (platform limit 128 MB).",
        ),
        (
            "max_wall_ms",
            "tsp_invocation_max_wall_ms",
            "Longest invocation wall time.",
        ),
        (
            "limit_warnings",
            "tsp_invocation_limit_warnings",
            "Invocations that passed 80 % of a platform limit.",
        ),
    ] {
        gauge(&mut out, name, help, &[("", num(&inv[key]))]);
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_typed_once_and_the_text_ends_with_eof() {
        let st = serde_json::json!({"counts": {"queued": 2, "failed": 1}, "last_hour": {}, "invocations_last_24h": {}});
        let t = text(&st, "open");
        assert!(t.ends_with("# EOF\n"));
        assert!(t.contains("tsp_jobs{status=\"queued\"} 2\n"));
        assert!(t.contains("tsp_queue_depth 3\n"));
        assert!(t.contains("tsp_upstream_circuit_state{state=\"open\"} 1\n"));
        assert!(t.contains("tsp_upstream_circuit_open 1\n"));
        let types = t.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let names: std::collections::HashSet<&str> = t
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(types, names.len(), "one TYPE per family");
    }
}

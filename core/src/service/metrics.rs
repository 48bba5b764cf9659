//! `GET /v1/metrics`: the caller's figures and the shared ones in the
//! OpenMetrics text format, for a scraper. Three queries: the stats row,
//! the quota usage, and the upstream circuit.

use std::fmt::Write;

use serde_json::Value;

use crate::api::{InvocationMaxima, LastHour, SampleStore, Stats, StatusCounts};
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
    limits: (u64, u64),
) -> Result<String, Error> {
    let st = manage::stats(db, clock, owner, limits).await?;
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

/// A count as a sample value (the text format has only floats).
fn num(n: i64) -> f64 {
    n as f64
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "# HELP {name} {help}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// A family with one unlabelled sample.
fn single(out: &mut String, name: &str, help: &str, value: f64) {
    gauge(out, name, help, &[("", value)]);
}

/// The exposition text: gauges only, one family each, `# EOF` last.
pub fn text(st: &Stats, circuit: &str) -> String {
    let mut out = String::new();
    jobs(&mut out, &st.counts);
    last_hour(&mut out, &st.last_hour);
    single(
        &mut out,
        "tsp_dead_letters_last_day",
        "Jobs dead-lettered in the last 24 hours.",
        num(st.dead_letters_last_24h),
    );
    upstream_circuit(&mut out, circuit);
    sample_store(&mut out, &st.sample_store);
    invocations(&mut out, &st.invocations_last_24h);
    out.push_str("# EOF\n");
    out
}

/// `tsp_jobs` by status, and the queue depth.
fn jobs(out: &mut String, c: &StatusCounts) {
    let by_status = [
        ("{status=\"queued\"}", num(c.queued)),
        ("{status=\"processing\"}", num(c.processing)),
        ("{status=\"failed\"}", num(c.failed)),
        ("{status=\"completed\"}", num(c.completed)),
        ("{status=\"failed_permanent\"}", num(c.failed_permanent)),
        ("{status=\"cancelled\"}", num(c.cancelled)),
    ];
    gauge(out, "tsp_jobs", "Jobs of the caller by status.", &by_status);
    single(
        out,
        "tsp_queue_depth",
        "Jobs waiting for a delivery (queued, or failed with a retry scheduled).",
        num(c.queued) + num(c.failed),
    );
}

/// The last hour's throughput and failure rate.
fn last_hour(out: &mut String, h: &LastHour) {
    single(
        out,
        "tsp_completed_last_hour",
        "Jobs completed in the last hour.",
        num(h.completed),
    );
    single(
        out,
        "tsp_samples_last_hour",
        "Samples in jobs completed in the last hour.",
        num(h.samples),
    );
    single(
        out,
        "tsp_failure_rate_last_hour",
        "Share of the last hour's finished jobs that died.",
        h.failure_rate,
    );
}

/// The circuit's state, one-hot, and whether it holds jobs back.
fn upstream_circuit(out: &mut String, circuit: &str) {
    let state = |s: &str| f64::from(u8::from(s == circuit));
    let states = [
        ("{state=\"closed\"}", state("closed")),
        ("{state=\"open\"}", state("open")),
        ("{state=\"half_open\"}", state("half_open")),
    ];
    gauge(
        out,
        "tsp_upstream_circuit_state",
        "The upstream circuit's state (1 for the current one).",
        &states,
    );
    single(
        out,
        "tsp_upstream_circuit_open",
        "1 while the upstream circuit holds jobs back.",
        f64::from(u8::from(circuit != "closed")),
    );
}

/// The shared sample store: its size against its cap, and what it saved.
fn sample_store(out: &mut String, s: &SampleStore) {
    for (name, help, value) in [
        (
            "tsp_store_entries",
            "Entries in the shared sample store.",
            s.entries as f64,
        ),
        (
            "tsp_store_bytes",
            "Bytes in the shared sample store.",
            s.bytes as f64,
        ),
        (
            "tsp_store_max_bytes",
            "The sample store's cap (STORE_MAX_BYTES).",
            s.max_bytes as f64,
        ),
        (
            "tsp_store_hit_ratio",
            "Share of windows with a settled span that read the store.",
            s.hit_ratio,
        ),
        (
            "tsp_store_upstream_bytes_saved",
            "Upstream bytes the store's reads saved.",
            s.upstream_bytes_saved as f64,
        ),
        (
            "tsp_store_evicted",
            "Store entries evicted to stay under the cap.",
            s.evicted as f64,
        ),
    ] {
        single(out, name, help, value);
    }
}

/// The last day's consumer invocations and the most each used of a limit.
fn invocations(out: &mut String, inv: &InvocationMaxima) {
    for (value, name, help) in [
        (
            inv.invocations,
            "tsp_invocations_last_day",
            "Consumer invocations in the last 24 hours.",
        ),
        (
            inv.max_d1_statements,
            "tsp_invocation_max_d1_statements",
            "Most D1 statements one invocation ran (platform limit 1,000).",
        ),
        (
            inv.max_subrequests,
            "tsp_invocation_max_subrequests",
            "Most subrequests one invocation made.",
        ),
        (
            inv.max_wasm_memory_bytes,
            "tsp_invocation_max_wasm_memory_bytes",
            "Largest wasm linear memory at the end of an invocation (platform limit 128 MB).",
        ),
        (
            inv.max_wall_ms,
            "tsp_invocation_max_wall_ms",
            "Longest invocation wall time.",
        ),
        (
            inv.limit_warnings,
            "tsp_invocation_limit_warnings",
            "Invocations that passed 80 % of a platform limit.",
        ),
    ] {
        single(out, name, help, num(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_typed_once_and_the_text_ends_with_eof() {
        let mut st = super::pinned::sample();
        st.counts = crate::api::StatusCounts {
            queued: 2,
            processing: 0,
            completed: 0,
            failed: 1,
            failed_permanent: 0,
            cancelled: 0,
        };
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

#[cfg(test)]
mod pinned {
    use super::*;
    use crate::api::{Durations, UsageToday};

    /// A `Stats` with a distinct value in every field the text reads.
    pub(super) fn sample() -> Stats {
        Stats {
            counts: StatusCounts {
                queued: 3,
                processing: 5,
                completed: 7,
                failed: 11,
                failed_permanent: 13,
                cancelled: 17,
            },
            oldest_queued_age_ms: Some(1_234),
            last_hour: LastHour {
                completed: 19,
                failed_permanent: 23,
                samples: 29_000_000_000,
                failure_rate: 0.375,
            },
            dead_letters_last_24h: 31,
            alerts_refused: 37,
            invocations_last_24h: InvocationMaxima {
                invocations: 41,
                max_d1_statements: 43,
                max_subrequests: 47,
                max_wasm_memory_bytes: 53_000_000,
                max_wall_ms: 59,
                limit_warnings: 61,
            },
            usage_today: UsageToday {
                chunks: 67,
                quota: Some(71),
            },
            duration_ms_last_24h: Durations {
                jobs: 73,
                p50: Some(79),
                p95: Some(83),
            },
            sample_store: SampleStore {
                entries: 89,
                bytes: 97,
                max_bytes: 101,
                hits: 3,
                misses: 1,
                hit_ratio: 0.75,
                upstream_bytes_saved: 103,
                evicted: 107,
            },
        }
    }

    pub(super) const EXPECTED: &str = "\
# TYPE tsp_jobs gauge
# HELP tsp_jobs Jobs of the caller by status.
tsp_jobs{status=\"queued\"} 3
tsp_jobs{status=\"processing\"} 5
tsp_jobs{status=\"failed\"} 11
tsp_jobs{status=\"completed\"} 7
tsp_jobs{status=\"failed_permanent\"} 13
tsp_jobs{status=\"cancelled\"} 17
# TYPE tsp_queue_depth gauge
# HELP tsp_queue_depth Jobs waiting for a delivery (queued, or failed with a retry scheduled).
tsp_queue_depth 14
# TYPE tsp_completed_last_hour gauge
# HELP tsp_completed_last_hour Jobs completed in the last hour.
tsp_completed_last_hour 19
# TYPE tsp_samples_last_hour gauge
# HELP tsp_samples_last_hour Samples in jobs completed in the last hour.
tsp_samples_last_hour 29000000000
# TYPE tsp_failure_rate_last_hour gauge
# HELP tsp_failure_rate_last_hour Share of the last hour's finished jobs that died.
tsp_failure_rate_last_hour 0.375
# TYPE tsp_dead_letters_last_day gauge
# HELP tsp_dead_letters_last_day Jobs dead-lettered in the last 24 hours.
tsp_dead_letters_last_day 31
# TYPE tsp_upstream_circuit_state gauge
# HELP tsp_upstream_circuit_state The upstream circuit's state (1 for the current one).
tsp_upstream_circuit_state{state=\"closed\"} 0
tsp_upstream_circuit_state{state=\"open\"} 0
tsp_upstream_circuit_state{state=\"half_open\"} 1
# TYPE tsp_upstream_circuit_open gauge
# HELP tsp_upstream_circuit_open 1 while the upstream circuit holds jobs back.
tsp_upstream_circuit_open 1
# TYPE tsp_store_entries gauge
# HELP tsp_store_entries Entries in the shared sample store.
tsp_store_entries 89
# TYPE tsp_store_bytes gauge
# HELP tsp_store_bytes Bytes in the shared sample store.
tsp_store_bytes 97
# TYPE tsp_store_max_bytes gauge
# HELP tsp_store_max_bytes The sample store's cap (STORE_MAX_BYTES).
tsp_store_max_bytes 101
# TYPE tsp_store_hit_ratio gauge
# HELP tsp_store_hit_ratio Share of windows with a settled span that read the store.
tsp_store_hit_ratio 0.75
# TYPE tsp_store_upstream_bytes_saved gauge
# HELP tsp_store_upstream_bytes_saved Upstream bytes the store's reads saved.
tsp_store_upstream_bytes_saved 103
# TYPE tsp_store_evicted gauge
# HELP tsp_store_evicted Store entries evicted to stay under the cap.
tsp_store_evicted 107
# TYPE tsp_invocations_last_day gauge
# HELP tsp_invocations_last_day Consumer invocations in the last 24 hours.
tsp_invocations_last_day 41
# TYPE tsp_invocation_max_d1_statements gauge
# HELP tsp_invocation_max_d1_statements Most D1 statements one invocation ran (platform limit 1,000).
tsp_invocation_max_d1_statements 43
# TYPE tsp_invocation_max_subrequests gauge
# HELP tsp_invocation_max_subrequests Most subrequests one invocation made.
tsp_invocation_max_subrequests 47
# TYPE tsp_invocation_max_wasm_memory_bytes gauge
# HELP tsp_invocation_max_wasm_memory_bytes Largest wasm linear memory at the end of an invocation (platform limit 128 MB).
tsp_invocation_max_wasm_memory_bytes 53000000
# TYPE tsp_invocation_max_wall_ms gauge
# HELP tsp_invocation_max_wall_ms Longest invocation wall time.
tsp_invocation_max_wall_ms 59
# TYPE tsp_invocation_limit_warnings gauge
# HELP tsp_invocation_limit_warnings Invocations that passed 80 % of a platform limit.
tsp_invocation_limit_warnings 61
# EOF
";

    #[test]
    fn the_text_for_a_sample_is_pinned() {
        let st = sample();
        assert_eq!(text(&st, "half_open"), EXPECTED);
        let closed = text(&st, "closed");
        assert!(closed.contains("tsp_upstream_circuit_state{state=\"closed\"} 1\n"));
        assert!(closed.contains("tsp_upstream_circuit_open 0\n"));
    }
}

//! The consumer role: the jobs-queue messages of one invocation go through
//! [`tsp_core::service::process::handle_batch`] together, under one shared
//! budget, and each message's disposition is applied to it.
//!
//! # Layout
//! - [`handle_batch`]: decode the messages, run them, ack or retry each,
//!   and log what the invocation cost.

#![deny(missing_docs)]

use tsp_cloudflare::queue::RawMessage;
use tsp_cloudflare::{describe, wasm_memory_bytes, Bindings, WorkerDeps};
use tsp_core::error::Disposition;
use tsp_core::ports::JobMessage;
use tsp_core::service::process;

/// Handles a batch from the jobs queue: one invocation, one budget.
pub async fn handle_batch(messages: Vec<RawMessage>, b: &Bindings) {
    let started = worker::Date::now().as_millis();
    let log = |line: &str| worker::console_log!("{line}");
    let deps = b.deps(&log);
    let (raws, decoded) = decode(messages);
    let report = process::handle_batch(&deps, &decoded).await;
    for ((m, (msg, attempt)), handled) in raws.iter().zip(&decoded).zip(&report.handled) {
        worker::console_log!(
            "{}",
            serde_json::json!({
                "event": "job_message",
                "job_id": msg.job_id,
                "hop": msg.hop,
                "attempt": attempt,
                "outcome": format!("{:?}", handled.outcome),
                "disposition": describe(handled.disposition),
            })
        );
        apply(m, handled.disposition);
    }
    record_usage(&deps, &report).await;
    worker::console_log!(
        "{}",
        serde_json::json!({
            "event": "consumer_batch",
            "messages": decoded.len(),
            "d1_statements": b.db.inner().statements(),
            "budget_statements": report.statements,
            "subrequests": report.subrequests,
            "upstream_bytes": report.usage.upstream_bytes,
            "wasm_memory_bytes": wasm_memory_bytes(),
            "ms": worker::Date::now().as_millis().saturating_sub(started),
        })
    );
}

/// The batch's job messages, each with its delivery count. A message that
/// is not one is not ours to understand: its retries run out, so it lands
/// in the dead-letter queue, which archives it raw.
fn decode(messages: Vec<RawMessage>) -> (Vec<RawMessage>, Vec<(JobMessage, u32)>) {
    let mut decoded = Vec::with_capacity(messages.len());
    let mut raws = Vec::with_capacity(messages.len());
    for m in messages {
        match serde_json::from_value::<JobMessage>(m.body_json()) {
            Ok(msg) => {
                decoded.push((msg, m.attempts));
                raws.push(m);
            }
            Err(e) => {
                worker::console_error!("undecodable job message {}: {e}", m.id);
                apply(&m, Disposition::DeadLetter);
            }
        }
    }
    (raws, decoded)
}

/// Records the invocation's use of each platform limit: the exact D1
/// statement count (a batch counts each of its statements, counted by the
/// D1 adapter itself), the budget's own counts, wall time and wasm memory.
async fn record_usage(deps: &WorkerDeps<'_>, report: &process::BatchReport) {
    let usage = tsp_core::budget::Usage {
        memory_bytes: wasm_memory_bytes(),
        ..report.usage
    };
    // Memory is only known here; the core already warned about the rest.
    let memory_only = tsp_core::budget::Usage {
        memory_bytes: usage.memory_bytes,
        ..Default::default()
    };
    for w in memory_only.warnings() {
        worker::console_warn!(
            "{}",
            serde_json::json!({"event": "limit_warning", "level": "warn", "detail": w})
        );
    }
    if let Err(e) = tsp_core::service::usage::record(deps, &usage).await {
        worker::console_error!("could not record the invocation's usage: {e}");
    }
}

fn apply(m: &RawMessage, d: Disposition) {
    if let Err(e) = m.apply(d) {
        worker::console_error!("could not {} message {}: {e:?}", describe(d), m.id);
    }
}

//! The consumer role: each jobs-queue message is one call of
//! [`tsp_core::service::process::handle`], whose disposition is applied to
//! the message.
//!
//! # Layout
//! - [`handle_batch`]: decode each message, run it, ack or retry it.

#![deny(missing_docs)]

use tsp_cloudflare::queue::RawMessage;
use tsp_cloudflare::{describe, Bindings};
use tsp_core::error::Disposition;
use tsp_core::ports::JobMessage;
use tsp_core::service::process::handle;

/// Handles a batch from the jobs queue, one message at a time (each job is
/// already parallel inside: up to 6 chunks at once).
pub async fn handle_batch(messages: Vec<RawMessage>, b: &Bindings) {
    let started = worker::Date::now().as_millis();
    let deps = b.deps();
    let log = |line: &str| worker::console_log!("{line}");
    for m in messages {
        let body = m.body_json();
        let disposition = match serde_json::from_value::<JobMessage>(body.clone()) {
            Ok(msg) => {
                let handled = handle(&deps, &msg, m.attempts, &log).await;
                worker::console_log!(
                    "{}",
                    serde_json::json!({
                        "event": "job_message",
                        "job_id": msg.job_id,
                        "hop": msg.hop,
                        "attempt": m.attempts,
                        "outcome": format!("{:?}", handled.outcome),
                        "disposition": describe(handled.disposition),
                    })
                );
                handled.disposition
            }
            // Not ours to understand: let the retries run out so it lands in
            // the dead-letter queue, which archives it raw.
            Err(e) => {
                worker::console_error!("undecodable job message {}: {e}", m.id);
                Disposition::DeadLetter
            }
        };
        if let Err(e) = m.apply(disposition) {
            worker::console_error!(
                "could not {} message {}: {e:?}",
                describe(disposition),
                m.id
            );
        }
    }
    // Exact D1 statement count of this invocation (a batch counts each of
    // its statements), for the end-to-end benchmark, and the handler's
    // wall time.
    worker::console_log!(
        "{}",
        serde_json::json!({
            "event": "consumer_batch",
            "d1_statements": b.db.inner().statements(),
            "ms": worker::Date::now().as_millis().saturating_sub(started),
        })
    );
}

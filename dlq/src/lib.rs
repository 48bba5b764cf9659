//! The dead-letter role: each message that exhausted its retries goes down
//! [`tsp_core::service::dead_letter::dead_letter`] — `failed_permanent`,
//! archived to R2, alerted once.
//!
//! # Layout
//! - [`handle_batch`]: decode each message (or archive it raw), run the
//!   terminal path, ack or retry.

#![deny(missing_docs)]

use tsp_cloudflare::queue::RawMessage;
use tsp_cloudflare::{describe, Bindings};
use tsp_core::backoff::Jitter;
use tsp_core::error::Disposition;
use tsp_core::ports::{Clock, JobMessage};
use tsp_core::service::dead_letter::dead_letter;
use tsp_core::service::notices;

/// The longest a notify message waits to wake its handler again.
const MAX_WAKE_SECS: i64 = 3_600;

/// Handles a batch from the notify queue: the consumer handed off notices
/// (alerts in D1's outbox, callbacks due in job rows). The messages carry
/// nothing; one run sends everything due. While something is still
/// pending (a send that failed and backs off), the first message comes
/// back when it is due; the others are acked. The reaper's minute run
/// covers a nudge that is lost.
pub async fn handle_notify(messages: Vec<RawMessage>, b: &Bindings) {
    let log = |line: &str| worker::console_log!("{line}");
    let deps = b.deps(&log);
    let (callbacks, alerts) = notices::deliver_all(&deps).await;
    let wake = match notices::next_due(&deps).await {
        Ok(Some(at)) => {
            let secs = (at - deps.clock.now_ms()).max(0) / 1000;
            Some(secs.clamp(1, MAX_WAKE_SECS) as u32)
        }
        Ok(None) => None,
        Err(e) => {
            log(&format!(
                "notify: next due unknown ({e}); the reaper covers it"
            ));
            None
        }
    };
    for (i, m) in messages.iter().enumerate() {
        let disposition = match wake {
            Some(delay_seconds) if i == 0 => Disposition::Retry { delay_seconds },
            _ => Disposition::Ack,
        };
        if let Err(e) = m.apply(disposition) {
            worker::console_error!(
                "could not {} notify message {}: {e:?}",
                describe(disposition),
                m.id
            );
        }
    }
    log(&serde_json::json!({
        "event": "notify_batch",
        "messages": messages.len(),
        "callbacks_sent": callbacks,
        "alerts_sent": alerts,
    })
    .to_string());
}

/// Handles a batch from the dead-letter queue.
pub async fn handle_batch(messages: Vec<RawMessage>, b: &Bindings) {
    let started = worker::Date::now().as_millis();
    let count = messages.len();
    let log = |line: &str| worker::console_log!("{line}");
    let deps = b.deps(&log);
    for m in messages {
        let body = m.body_json();
        let parsed = serde_json::from_value::<JobMessage>(body.clone()).ok();
        let reason = "retries exhausted on the jobs queue";
        let id = parsed.as_ref().map(|p| &p.job_id);
        let disposition = match dead_letter(&deps, id, reason, &body).await {
            Ok(outcome) => {
                log(&serde_json::json!({
                    "event": "dead_letter",
                    "message_id": m.id,
                    "job_id": id,
                    "outcome": format!("{outcome:?}"),
                })
                .to_string());
                Disposition::Ack
            }
            Err(e) => {
                worker::console_error!("dead-letter path failed for {}: {e}", m.id);
                // Always retry here: there is no further queue to fall to.
                let jitter = Jitter::draw(deps.cfg.retry_jitter, deps.clock.random_bytes());
                match Disposition::for_error(&e, m.attempts, jitter) {
                    Disposition::Retry { delay_seconds } => Disposition::Retry { delay_seconds },
                    _ => Disposition::Retry { delay_seconds: 30 },
                }
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
    log(&serde_json::json!({
        "event": "dlq_batch",
        "messages": count,
        "d1_statements": b.db.inner().statements(),
        "wasm_memory_bytes": tsp_cloudflare::wasm_memory_bytes(),
        "ms": worker::Date::now().as_millis().saturating_sub(started),
    })
    .to_string());
}

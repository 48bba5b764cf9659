//! The deployable Workers: one crate, one build per role.
//!
//! Each Worker's module holds only its role's entry points (the `producer`,
//! `consumer` and `dlq` features; `scripts/build.sh` builds each alone):
//! - **producer**: `fetch` → the HTTP API ([`tsp_producer`]);
//! - **consumer**: `queue` for the jobs queue ([`tsp_consumer`]);
//! - **dlq**: `queue` for the dead-letter queue and the notify queue
//!   ([`tsp_dlq`]), and `scheduled` → the reaper.
//!
//! Each entry point reads its bindings, calls one function, and maps the
//! result; the logic lives in the core and role crates.

#![deny(missing_docs)]

#[cfg(any(feature = "consumer", feature = "dlq"))]
use tsp_cloudflare::Bindings;
#[cfg(any(feature = "consumer", feature = "dlq"))]
use wasm_bindgen::{prelude::wasm_bindgen, JsValue};
#[cfg(any(feature = "producer", feature = "dlq"))]
use worker::event;
#[cfg(any(feature = "producer", feature = "consumer", feature = "dlq"))]
use worker::Env;

/// The jobs queue's name (consumer/wrangler.toml `[[queues.consumers]]`).
pub const JOBS_QUEUE_NAME: &str = "tsp-jobs";
/// The dead-letter queue's name.
pub const DEAD_LETTER_QUEUE_NAME: &str = "tsp-jobs-dlq";
/// The notify queue's name: the consumer wakes the dead-letter Worker.
pub const NOTIFY_QUEUE_NAME: &str = "tsp-notify";

#[cfg(feature = "producer")]
#[event(fetch)]
async fn fetch(
    req: worker::Request,
    env: Env,
    _ctx: worker::Context,
) -> worker::Result<worker::Response> {
    Ok(tsp_producer::handle(req, &env).await)
}

/// The `queue` export, declared by hand to read each message's `attempts`
/// (see [`tsp_cloudflare::queue`]). It never throws: a failure to build the
/// bindings retries the whole batch.
#[cfg(any(feature = "consumer", feature = "dlq"))]
#[wasm_bindgen]
pub async fn queue(
    batch: worker::worker_sys::MessageBatch,
    env: Env,
    _ctx: worker::worker_sys::Context,
) -> Result<JsValue, JsValue> {
    let (name, messages) = tsp_cloudflare::queue::messages(&batch)?;
    let bindings = match Bindings::from_env(&env) {
        Ok(b) => b,
        Err(e) => {
            worker::console_error!("queue {name}: bindings unavailable: {e}");
            batch.retry_all(JsValue::NULL)?;
            return Ok(JsValue::UNDEFINED);
        }
    };
    dispatch(&name, messages, bindings).await;
    Ok(JsValue::UNDEFINED)
}

/// The role a queue's batch belongs to. A queue this module has no role
/// for (a binding wired to the wrong Worker) is retried, never dropped.
#[cfg(any(feature = "consumer", feature = "dlq"))]
async fn dispatch(
    name: &str,
    messages: Vec<tsp_cloudflare::queue::RawMessage>,
    bindings: Bindings,
) {
    #[cfg(feature = "dlq")]
    if name == NOTIFY_QUEUE_NAME || name.ends_with("-notify") {
        return tsp_dlq::handle_notify(messages, &bindings).await;
    }
    #[cfg(feature = "dlq")]
    if name == DEAD_LETTER_QUEUE_NAME || name.ends_with("-dlq") {
        return tsp_dlq::handle_batch(messages, &bindings).await;
    }
    #[cfg(feature = "consumer")]
    if name == JOBS_QUEUE_NAME || name.ends_with("-jobs") {
        // The consumer holds no webhook URL and no signing key.
        return tsp_consumer::handle_batch(messages, &bindings.handing_off_notices()).await;
    }
    worker::console_error!("queue {name}: this Worker has no role for it; retrying");
    for m in &messages {
        let _ = m.apply(tsp_core::error::Disposition::Retry { delay_seconds: 60 });
    }
}

#[cfg(feature = "dlq")]
#[event(scheduled)]
async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    let log = |line: &str| worker::console_log!("{line}");
    match Bindings::from_env(&env) {
        Ok(b) => match tsp_core::service::reap::reap(&b.deps(&log)).await {
            Ok(r) => log(&format!(
                "{{\"event\":\"reaper_run\",\"resent\":{},\"dead\":{},\"purged\":{},\"callbacks\":{},\"notices\":{}}}",
                r.resent.len(),
                r.dead.len(),
                r.purged,
                r.callbacks,
                r.notices
            )),
            Err(e) => worker::console_error!("reaper failed: {e}"),
        },
        Err(e) => worker::console_error!("reaper: bindings unavailable: {e}"),
    }
}

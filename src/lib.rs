//! The deployable Worker: one wasm module, three roles.
//!
//! - `fetch` → the producer API ([`tsp_producer`]).
//! - `queue` → the consumer for the jobs queue ([`tsp_consumer`]) and the
//!   dead-letter role for the dead-letter queue ([`tsp_dlq`]), by queue name.
//! - `scheduled` → the reaper ([`tsp_core::service::reap`]).
//!
//! Each entry point reads its bindings, calls one function, and maps the
//! result; the logic lives in the core and role crates.

#![deny(missing_docs)]

use tsp_cloudflare::Bindings;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{event, Context, Env, Request, Response, ScheduleContext, ScheduledEvent};

/// The jobs queue's name (wrangler.toml `[[queues.consumers]]`).
pub const JOBS_QUEUE_NAME: &str = "tsp-jobs";
/// The dead-letter queue's name.
pub const DEAD_LETTER_QUEUE_NAME: &str = "tsp-jobs-dlq";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    Ok(tsp_producer::handle(req, &env).await)
}

/// The `queue` export, declared by hand to read each message's `attempts`
/// (see [`tsp_cloudflare::queue`]). It never throws: a failure to build the
/// bindings retries the whole batch.
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
    if name == DEAD_LETTER_QUEUE_NAME || name.ends_with("-dlq") {
        tsp_dlq::handle_batch(messages, &bindings).await;
    } else {
        tsp_consumer::handle_batch(messages, &bindings).await;
    }
    Ok(JsValue::UNDEFINED)
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let log = |line: &str| worker::console_log!("{line}");
    match Bindings::from_env(&env) {
        Ok(b) => match tsp_core::service::reap::reap(&b.deps(&log)).await {
            Ok(r) => log(&format!(
                "{{\"event\":\"reaper_run\",\"resent\":{},\"dead\":{},\"purged\":{}}}",
                r.resent.len(),
                r.dead.len(),
                r.purged
            )),
            Err(e) => worker::console_error!("reaper failed: {e}"),
        },
        Err(e) => worker::console_error!("reaper: bindings unavailable: {e}"),
    }
}

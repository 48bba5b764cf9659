//! Raw queue messages and the one place a [`Disposition`] becomes `ack` or
//! `retry`.
//!
//! The `queue` export is declared by hand (see the Worker crate) instead of
//! through `#[event(queue)]`, for two reasons: `worker` 0.8.7 has no
//! accessor for a message's delivery `attempts`, and its message methods
//! unwrap JS errors, which would panic the isolate.

use js_sys::{Array, Function, Object, Reflect};
use tsp_core::error::Disposition;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::MessageBatch;

/// One delivered message.
pub struct RawMessage {
    inner: JsValue,
    /// The queue's message id.
    pub id: String,
    /// The body as sent.
    pub body: JsValue,
    /// 1-based delivery count.
    pub attempts: u32,
}

fn get(obj: &JsValue, key: &str) -> Result<JsValue, JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
}

/// The queue name and messages of a batch.
pub fn messages(batch: &MessageBatch) -> Result<(String, Vec<RawMessage>), JsValue> {
    let queue: String = batch.queue()?.into();
    let list: Array = batch.messages()?;
    let mut out = Vec::with_capacity(list.length() as usize);
    for m in list.iter() {
        let id = get(&m, "id")?.as_string().unwrap_or_default();
        let body = get(&m, "body")?;
        let attempts = get(&m, "attempts")?.as_f64().unwrap_or(1.0).max(1.0) as u32;
        out.push(RawMessage {
            inner: m,
            id,
            body,
            attempts,
        });
    }
    Ok((queue, out))
}

impl RawMessage {
    fn call(&self, method: &str, arg: Option<JsValue>) -> Result<(), JsValue> {
        let f: Function = get(&self.inner, method)?.dyn_into()?;
        match arg {
            Some(a) => f.call1(&self.inner, &a)?,
            None => f.call0(&self.inner)?,
        };
        Ok(())
    }

    /// The body as JSON, or why not.
    pub fn body_json(&self) -> serde_json::Value {
        if let Some(s) = self.body.as_string() {
            return serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s));
        }
        js_sys::JSON::stringify(&self.body)
            .ok()
            .and_then(|s| s.as_string())
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Applies a disposition: the single mapping from our decision to the
    /// queue's `ack` / `retry`. `DeadLetter` is retried at once, so a message
    /// whose terminal path could not run here still reaches the dead-letter
    /// queue after `max_retries` instead of being dropped.
    pub fn apply(&self, d: Disposition) -> Result<(), JsValue> {
        match d {
            Disposition::Ack => self.call("ack", None),
            Disposition::Retry { delay_seconds } => {
                let opts = Object::new();
                Reflect::set(
                    &opts,
                    &JsValue::from_str("delaySeconds"),
                    &JsValue::from_f64(f64::from(delay_seconds)),
                )?;
                self.call("retry", Some(opts.into()))
            }
            Disposition::DeadLetter => self.call("retry", None),
        }
    }
}

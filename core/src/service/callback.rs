//! Results pushed: a job's `callback_url` receives its view when it ends.
//!
//! A trigger makes the callback due whenever the job reaches a terminal
//! state (completed, dead, cancelled), whoever wrote the status. After a
//! completion or a death the consumer Worker, which holds no signing key,
//! nudges the dead-letter Worker to send it at once ([`deliver_now`] in
//! a Worker that holds the key sends it itself); the reaper sends what is
//! due every minute (cancels, retries, lost nudges). Each delivery is
//! taken by compare-and-set, so two senders never send it at once, and is
//! at least once: a receiver deduplicates on `Idempotency-Key`
//! (`{job}-{status}-{finished_at}`).
//!
//! The body is the job view (JSON), signed `X-Signature: sha256=<hex
//! HMAC-SHA256 of the body>` with `CALLBACK_SIGNING_KEY`. A 2xx is
//! delivered; a 4xx is final (`failed`, never retried); anything else
//! (5xx, timeouts, dropped connections) is retried with
//! [`Backoff::CALLBACK`] up to [`CALLBACK_TRIES`] times.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::backoff::{Backoff, Jitter};
use crate::config::{ExposeSecret, Notices};
use crate::domain::format_rfc3339;
use crate::error::{Error, StatusClass};
use crate::job::Job;
use crate::ports::{Clock, HttpClient, HttpRequest, Platform, SqlDb};
use crate::service::Deps;
use crate::store;

/// Deliveries of one end state before it is given up.
pub const CALLBACK_TRIES: i64 = 8;
/// How long a taken delivery is held before another sender may take it.
const HOLD_MS: i64 = 60_000;
/// Callbacks one reaper run sends at most.
pub const CALLBACKS_PER_RUN: i64 = 20;

/// The signature of a body: `sha256=<hex HMAC-SHA256>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends every callback due now (at most [`CALLBACKS_PER_RUN`]); returns
/// how many were delivered.
pub async fn deliver_due<P: Platform>(deps: &Deps<'_, P>) -> Result<u64, Error> {
    let now = deps.clock.now_ms();
    let due = store::select_due_callbacks(now, CALLBACKS_PER_RUN);
    let mut sent = 0;
    for job in store::decode::<Job>(deps.db.query(&due).await?)? {
        sent += u64::from(deliver(deps, &job).await?);
    }
    Ok(sent)
}

/// Sends one job's callback if it is due (after the job ended here). A
/// job without a callback costs nothing; one with it is read again, for
/// its view in the end state the trigger made due.
pub async fn deliver_now<P: Platform>(deps: &Deps<'_, P>, job: &Job) {
    if job.callback_url.is_none() {
        return;
    }
    // No signing key here (the consumer Worker): the dead-letter Worker,
    // nudged, sends what is due.
    if deps.cfg.notices == Notices::HandOff {
        return crate::service::nudge(deps).await;
    }
    let id = &job.id;
    let job = match store::get_job(deps.db, store::select_job(id)).await {
        Ok(Some(j)) if j.callback_state.as_deref() == Some("pending") => j,
        _ => return,
    };
    if let Err(e) = deliver(deps, &job).await {
        (deps.log)(&format!(
            "callback of {id} not sent now: {e}; the reaper retries"
        ));
    }
}

/// Takes the job's due callback and sends it once; true when delivered.
async fn deliver<P: Platform>(deps: &Deps<'_, P>, job: &Job) -> Result<bool, Error> {
    let (Some(url), Some(due)) = (job.callback_url.as_deref(), job.callback_next_at) else {
        return Ok(false);
    };
    let now = deps.clock.now_ms();
    if deps
        .db
        .execute(&store::take_callback(&job.id, due, now, HOLD_MS))
        .await?
        == 0
    {
        return Ok(false);
    }
    let outcome = send(deps, job, url).await;
    let tries = job.callback_attempts + 1;
    let (state, next, error) = match &outcome {
        Ok(()) => ("sent", None, None),
        Err((true, e)) => ("failed", None, Some(e.as_str())),
        Err((false, e)) if tries >= CALLBACK_TRIES => ("failed", None, Some(e.as_str())),
        Err((false, e)) => {
            let jitter = Jitter::draw(deps.cfg.retry_jitter, deps.clock.random_bytes());
            let wait = Backoff::CALLBACK.delay_ms(tries as u32, jitter, None) as i64;
            ("pending", Some(now + wait), Some(e.as_str()))
        }
    };
    deps.db
        .execute(&store::callback_outcome(&job.id, state, next, error))
        .await?;
    let line = serde_json::json!({"event": "callback", "job_id": job.id, "state": state,
        "attempt": tries, "error": error});
    (deps.log)(&line.to_string());
    Ok(outcome.is_ok())
}

/// One POST of the job view; the error says whether it is final.
async fn send<P: Platform>(deps: &Deps<'_, P>, job: &Job, url: &str) -> Result<(), (bool, String)> {
    let Some(key) = deps.cfg.callback_signing_key.as_ref() else {
        return Err((true, "CALLBACK_SIGNING_KEY is not set".to_owned()));
    };
    let body = serde_json::to_vec(&job.view()).map_err(|e| (true, e.to_string()))?;
    let finished = job.finished_at.map(format_rfc3339).unwrap_or_default();
    let req = HttpRequest {
        method: "POST",
        url: url.to_owned(),
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                "x-signature".to_owned(),
                signature(key.expose_secret().as_bytes(), &body),
            ),
            (
                "idempotency-key".to_owned(),
                format!("{}-{}-{finished}", job.id, job.status),
            ),
        ],
        body: Some(body),
        timeout_ms: deps.cfg.callback_timeout_ms,
        max_body_bytes: 64 * 1024,
    };
    match deps.http.send(req).await {
        Ok(r) if StatusClass::of(r.status) == StatusClass::Success => Ok(()),
        Ok(r) if StatusClass::of(r.status).is_refusal() => {
            Err((true, format!("the receiver refused it: HTTP {}", r.status)))
        }
        Ok(r) => Err((false, format!("HTTP {}", r.status))),
        Err(e) => Err((false, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

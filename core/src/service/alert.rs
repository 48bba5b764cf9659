//! The operator alert webhook (`ALERT_WEBHOOK_URL`): one alert, posted
//! with a timeout per try and a few tries, keyed by its `Idempotency-Key`.
//! Only a Worker that holds the webhook posts; the consumer hands its
//! alerts off ([`super::notices`]).

use serde_json::{json, Value};

use crate::backoff::{Backoff, Jitter};
use crate::config::ExposeSecret;
use crate::error::{Error, StatusClass, UpstreamError};
use crate::ports::{Clock, HttpClient, HttpRequest, Platform};
use crate::service::Deps;

/// Alert attempts per delivery.
const ALERT_TRIES: u32 = 3;
/// At most one alert per job in this long (a job retried again and again).
pub(crate) const ALERT_SPACING_MS: i64 = 3_600_000;

/// How an alert ended.
pub(crate) enum Alert {
    /// The webhook took it (or none is configured: the log line is the alert).
    Sent,
    /// The webhook refused it with a 4xx: recorded, never retried.
    Refused(String),
    /// Handed off to the dead-letter Worker ([`crate::config::Notices::HandOff`]): it
    /// records the outcome when it sends it.
    HandedOff,
}

/// One try of an alert: a JSON POST keyed by the archive key.
fn alert_request(url: &str, key: &str, payload: &Value, timeout_ms: u64) -> HttpRequest {
    HttpRequest {
        method: "POST",
        url: url.to_owned(),
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            // One key per death (the archive key): a receiver that
            // deduplicates can drop the repeat a crash after a delivered
            // alert would cause.
            ("Idempotency-Key".to_owned(), key.to_owned()),
        ],
        body: Some(payload.to_string().into_bytes()),
        timeout_ms,
        // A webhook's answer is not read; a little is plenty.
        max_body_bytes: 64 << 10,
    }
}

/// Posts an alert with a timeout per try and a few tries. Without a webhook
/// configured, the alert is the log line.
pub(crate) async fn post<P: Platform>(
    deps: &Deps<'_, P>,
    key: &str,
    payload: &Value,
) -> Result<Alert, Error> {
    (deps.log)(&json!({ "event": "dead_letter_alert", "alert": payload }).to_string());
    let Some(url) = deps
        .cfg
        .alert_webhook_url
        .as_ref()
        .map(|u| u.expose_secret())
    else {
        return Ok(Alert::Sent);
    };
    let mut last = None;
    for attempt in 1..=ALERT_TRIES {
        let req = alert_request(url, key, payload, deps.cfg.alert_timeout_ms);
        match deps.http.send(req).await {
            Ok(r) if StatusClass::of(r.status) == StatusClass::Success => return Ok(Alert::Sent),
            // The webhook refuses this alert (revoked, malformed): retrying
            // repeats the refusal, so it is a permanent alert failure.
            Ok(r) if StatusClass::of(r.status).is_refusal() => {
                let why = format!("alert webhook refused the alert: HTTP {}", r.status);
                (deps.log)(
                    &json!({"event": "alert_refused", "archive_key": key, "error": why})
                        .to_string(),
                );
                return Ok(Alert::Refused(why));
            }
            Ok(r) => {
                last = Some(UpstreamError::Status {
                    status: r.status,
                    retry_after_ms: None,
                    body: String::new(),
                })
            }
            Err(e) => last = Some(e),
        }
        if attempt < ALERT_TRIES {
            let jitter = Jitter::draw(deps.cfg.retry_jitter, deps.clock.random_bytes());
            deps.clock
                .sleep(Backoff::ALERT.delay_ms(attempt, jitter, None))
                .await;
        }
    }
    let err = last.unwrap_or(UpstreamError::Network("alert not sent".to_owned()));
    (deps.log)(&format!("alert webhook failed: {err}"));
    // Always retryable: the job stays unalerted and the delivery is retried.
    Err(Error::Alert(format!("alert webhook failed: {err}")))
}

//! Errors, and the one place that decides what each one means.
//!
//! Every failure is either **permanent** (retrying cannot help: a 4xx, or a
//! job that goes straight to the dead-letter path) or **transient** (retry
//! with backoff). [`Error::class`] decides that; [`Error::http_status`] and
//! [`Disposition::for_error`] turn it into an HTTP status or a queue action.

use thiserror::Error;

use crate::backoff::{Backoff, Jitter};
use crate::codec::CodecError;
use tsp_format::time::EpochMs;

pub use tsp_api::{FieldError, ValidationError};

/// A storage failure (D1, SQLite, R2, queue).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The call did not answer within its timeout.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The backend failed; worth retrying.
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A row or object could not be decoded; retrying will not help.
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

/// An upstream (ACE API) failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpstreamError {
    /// The upstream answered with an error status.
    #[error("upstream answered HTTP {status}{}", quote(body))]
    Status {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` hint, in milliseconds.
        retry_after_ms: Option<u64>,
        /// The start of the body (ACE says a rejected token only there).
        body: String,
    },
    /// The upstream refused a site: ACE answers 403 for a site it does not
    /// know, or that its token may not read. Permanent for that job only.
    #[error("upstream answered HTTP 403 for site {0:?}: site unknown or not permitted for this upstream token")]
    SiteRejected(String),
    /// The request did not finish within its timeout.
    #[error("upstream request timed out after {0} ms")]
    Timeout(u64),
    /// The connection failed.
    #[error("upstream network error: {0}")]
    Network(String),
    /// The response (or the chunk it fills) is larger than allowed.
    #[error("upstream data too large: {0}")]
    TooLarge(String),
    /// The body was not the expected JSON. `permanent` is set once the same
    /// page has been malformed more times than the bound allows.
    #[error("upstream sent malformed JSON: {detail}")]
    Malformed {
        /// What the parser said.
        detail: String,
        /// Past the retry bound: stop retrying.
        permanent: bool,
    },
}

/// `: <body>` for a non-empty body snippet.
fn quote(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// The start of an error body, fit for a log line or an alert: at most
/// 160 characters, control characters as spaces.
pub fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(640)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(160)
        .collect();
    out.truncate(out.trim_end().len());
    out
}

/// What an HTTP status from a service we call (the upstream, the alert
/// webhook) means for the caller. The one place that sorts statuses: the
/// error class, the circuit and the webhook's refusal rule all read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx: it worked.
    Success,
    /// 401: credentials missing or rejected.
    Unauthorized,
    /// 403: refused. ACE answers it for a site it does not know; the
    /// upstream client reports that as [`UpstreamError::SiteRejected`].
    Forbidden,
    /// 408, 425, 429 and 5xx: the failure goes away on its own.
    Transient,
    /// Any other 4xx: the request is wrong, and retrying repeats it.
    Permanent,
    /// Anything else (1xx, 3xx, out of range): unexpected, worth a retry.
    Unexpected,
}

impl StatusClass {
    /// Sorts one status.
    pub fn of(status: u16) -> Self {
        match status {
            200..=299 => StatusClass::Success,
            401 => StatusClass::Unauthorized,
            403 => StatusClass::Forbidden,
            408 | 425 | 429 | 500..=599 => StatusClass::Transient,
            400..=499 => StatusClass::Permanent,
            _ => StatusClass::Unexpected,
        }
    }

    /// A 4xx that a retry would repeat: every 4xx but 408, 425 and 429.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            StatusClass::Unauthorized | StatusClass::Forbidden | StatusClass::Permanent
        )
    }
}

/// Whether a failure may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retrying cannot help.
    Permanent,
    /// Retry, after at least this long if given.
    Transient {
        /// A hint from the failing side (`Retry-After`).
        retry_after_ms: Option<u64>,
    },
}

/// Every failure the services report.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No credentials, or unknown ones.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The token has no grant for the site it asks about.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The resource does not exist (or belongs to another owner).
    #[error("not found")]
    NotFound,
    /// The resource is not in a state that allows this.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The resource existed and is gone for good (an expired result object).
    #[error("gone: {0}")]
    Gone(String),
    /// The owner already has this many unfinished jobs.
    #[error("this token already has the most unfinished jobs allowed ({0}); wait for some to finish, or cancel some")]
    TooManyActiveJobs(u64),
    /// The owner retried more dead jobs this minute than allowed.
    #[error("this token retried {0} dead jobs in the last minute, the most allowed; retry the rest in a minute")]
    TooManyRetries(u64),
    /// The owner's daily quota would be passed.
    #[error("this job needs {need} chunks and the daily quota of {limit} chunks has {left} left; it resets at 00:00 UTC")]
    QuotaExceeded {
        /// Chunks per day.
        limit: i64,
        /// Chunks this job needs.
        need: i64,
        /// Chunks left today.
        left: i64,
        /// Seconds until the quota resets.
        retry_after_s: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The upstream failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The upstream's circuit is open until then: wait, burning no attempt.
    #[error("waiting for the upstream until {until}: {reason}")]
    UpstreamUnavailable {
        /// Epoch ms when the circuit may let requests through again.
        until: EpochMs,
        /// Why it opened.
        reason: String,
    },
    /// A fenced write changed nothing: this holder no longer holds the job
    /// (it was cancelled, died, or another invocation claimed it).
    #[error("this invocation no longer holds the job")]
    Fenced,
    /// The job's queue could not take the message.
    #[error("queue send failed: {0}")]
    Queue(String),
    /// An operator alert (the webhook) was not delivered, or was refused.
    /// Retried like a queue failure: the next delivery alerts again.
    #[error("{0}")]
    Alert(String),
    /// The Worker's configuration is wrong (a var that does not parse, a
    /// missing binding): an operator's problem, never shown to a client.
    #[error("configuration error: {0}")]
    Config(String),
    /// A value could not be encoded: the result codec, or JSON we write.
    /// A bug, not the input's fault nor the storage's: retrying repeats it.
    #[error("encoding failed: {0}")]
    Codec(String),
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Error::Codec(e.to_string())
    }
}

impl Error {
    /// Permanent or transient: the single decision every caller follows.
    pub fn class(&self) -> ErrorClass {
        use ErrorClass::*;
        match self {
            Error::Validation(_)
            | Error::Unauthorized
            | Error::Forbidden(_)
            | Error::NotFound
            | Error::Conflict(_)
            | Error::Gone(_)
            | Error::TooManyActiveJobs(_)
            | Error::TooManyRetries(_)
            | Error::QuotaExceeded { .. }
            | Error::Fenced => Permanent,
            Error::Store(StoreError::Corrupt(_)) | Error::Codec(_) => Permanent,
            // The delay is computed by the consumer from `until`.
            Error::UpstreamUnavailable { .. } => Transient {
                retry_after_ms: None,
            },
            // Retried: an operator's fix makes the next delivery work.
            Error::Store(_) | Error::Queue(_) | Error::Alert(_) | Error::Config(_) => Transient {
                retry_after_ms: None,
            },
            Error::Upstream(u) => match u {
                UpstreamError::SiteRejected(_) => Permanent,
                UpstreamError::Status {
                    status,
                    retry_after_ms,
                    ..
                } => match StatusClass::of(*status) {
                    // Our request is wrong: retrying repeats it.
                    StatusClass::Permanent => Permanent,
                    // Credentials rejected (a token rotation in progress):
                    // wait a minute and try again; the stall count bounds it.
                    // (ACE answers 500, not 401, for a wrong token: that is
                    // transient below, and the circuit's alert quotes it.)
                    StatusClass::Unauthorized | StatusClass::Forbidden => Transient {
                        retry_after_ms: Some(retry_after_ms.unwrap_or(60_000)),
                    },
                    // Request timeout, too early, too many requests, and
                    // server errors go away on their own.
                    StatusClass::Transient | StatusClass::Success | StatusClass::Unexpected => {
                        Transient {
                            retry_after_ms: *retry_after_ms,
                        }
                    }
                },
                UpstreamError::TooLarge(_) => Permanent,
                UpstreamError::Timeout(_) | UpstreamError::Network(_) => Transient {
                    retry_after_ms: None,
                },
                UpstreamError::Malformed { permanent, .. } => {
                    if *permanent {
                        Permanent
                    } else {
                        Transient {
                            retry_after_ms: None,
                        }
                    }
                }
            },
        }
    }

    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        matches!(self.class(), ErrorClass::Transient { .. })
    }

    /// The HTTP status the API answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Validation(_) => 422,
            Error::Unauthorized => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound => 404,
            Error::Conflict(_) => 409,
            Error::Gone(_) => 410,
            Error::TooManyActiveJobs(_)
            | Error::TooManyRetries(_)
            | Error::QuotaExceeded { .. } => 429,
            Error::Fenced => 409,
            Error::Upstream(_) | Error::UpstreamUnavailable { .. } => 502,
            Error::Store(StoreError::Timeout(_)) => 504,
            Error::Store(_) | Error::Queue(_) | Error::Alert(_) => 503,
            Error::Config(_) | Error::Codec(_) => 500,
        }
    }

    /// A short title for the problem+json body.
    pub fn title(&self) -> &'static str {
        match self {
            Error::Validation(_) => "Invalid request",
            Error::Unauthorized => "Unauthorized",
            Error::Forbidden(_) => "Forbidden",
            Error::NotFound => "Not found",
            Error::Conflict(_) | Error::Fenced => "Conflict",
            Error::Gone(_) => "Gone",
            Error::TooManyActiveJobs(_) => "Too many active jobs",
            Error::TooManyRetries(_) => "Too many retries",
            Error::QuotaExceeded { .. } => "Daily quota exceeded",
            Error::Upstream(_) | Error::UpstreamUnavailable { .. } => "Upstream failure",
            Error::Store(_) | Error::Queue(_) | Error::Alert(_) => "Service unavailable",
            Error::Config(_) | Error::Codec(_) => "Internal server error",
        }
    }

    /// Whether the message may be shown to a client as is. Storage details
    /// stay in the logs.
    pub fn public_detail(&self) -> String {
        match self {
            Error::Store(_) => "storage is unavailable; retry later".to_owned(),
            Error::Queue(_) => "the job queue is unavailable; retry later".to_owned(),
            // The webhook's address is a secret; its failure stays in the logs.
            Error::Alert(_) => "an operator alert could not be sent; retry later".to_owned(),
            Error::Codec(_) => "the server could not encode its answer".to_owned(),
            Error::Config(_) => {
                "the service is misconfigured; its operators have been told".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// What a queue handler does with a message after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Acknowledge: the message is done with (success, or handled terminally).
    Ack,
    /// Redeliver after this many seconds.
    Retry {
        /// Delay before redelivery.
        delay_seconds: u32,
    },
    /// Take the terminal failure path now, without more retries.
    DeadLetter,
}

impl Disposition {
    /// Maps an error met while processing attempt `attempt` (1-based) of a
    /// message to what the queue should do: [`Backoff::REDELIVERY`] (from
    /// 2 s, capped at 5 min, less the jitter), never under the failing
    /// side's `Retry-After`.
    pub fn for_error(err: &Error, attempt: u32, jitter: Jitter) -> Self {
        match err.class() {
            ErrorClass::Permanent => Disposition::DeadLetter,
            ErrorClass::Transient { retry_after_ms } => {
                let ms = Backoff::REDELIVERY.delay_ms(attempt, jitter, retry_after_ms);
                Disposition::Retry {
                    delay_seconds: ms.div_ceil(1000).min(86_400) as u32,
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An upstream error status without a body or hint.
    pub(crate) fn status(code: u16) -> Error {
        Error::Upstream(UpstreamError::Status {
            status: code,
            retry_after_ms: None,
            body: String::new(),
        })
    }

    #[test]
    fn a_rejected_site_is_permanent_and_says_why() {
        let e = Error::Upstream(UpstreamError::SiteRejected("nowhere".into()));
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(
            e.to_string().contains("site unknown or not permitted"),
            "{e}"
        );
    }

    #[test]
    fn a_status_quotes_the_start_of_its_body() {
        let body = br#"{"message": "An unhandled exception occurred."}"#;
        let e = Error::Upstream(UpstreamError::Status {
            status: 500,
            retry_after_ms: None,
            body: body_snippet(body),
        });
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            r#"upstream answered HTTP 500: {"message": "An unhandled exception occurred."}"#
        );
        assert_eq!(body_snippet(&[b'x'; 1000]).len(), 160);
        assert_eq!(body_snippet(b"a\nb\n"), "a b");
    }

    #[test]
    fn upstream_statuses_are_classified() {
        for code in [400, 404, 405, 410, 422] {
            assert_eq!(status(code).class(), ErrorClass::Permanent, "{code}");
        }
        for code in [408, 425, 429, 500, 502, 503] {
            assert!(status(code).is_transient(), "{code}");
        }
        // A rejected token waits a minute (a rotation), it does not kill.
        for code in [401, 403] {
            assert_eq!(
                status(code).class(),
                ErrorClass::Transient {
                    retry_after_ms: Some(60_000)
                },
                "{code}"
            );
        }
        let big = Error::Upstream(UpstreamError::TooLarge("page".into()));
        assert_eq!(big.class(), ErrorClass::Permanent);
        assert!(Error::Upstream(UpstreamError::Timeout(10)).is_transient());
    }

    #[test]
    fn statuses_are_sorted_once() {
        use StatusClass::*;
        for (code, class) in [
            (200, Success),
            (204, Success),
            (101, Unexpected),
            (304, Unexpected),
            (401, Unauthorized),
            (403, Forbidden),
            (400, Permanent),
            (404, Permanent),
            (410, Permanent),
            (422, Permanent),
            (408, Transient),
            (425, Transient),
            (429, Transient),
            (500, Transient),
            (599, Transient),
            (600, Unexpected),
        ] {
            assert_eq!(StatusClass::of(code), class, "{code}");
        }
        // The webhook's rule: every 4xx but 408, 425 and 429 is final.
        for code in 0..1000u16 {
            let refusal = (400..500).contains(&code) && !matches!(code, 408 | 425 | 429);
            assert_eq!(StatusClass::of(code).is_refusal(), refusal, "{code}");
        }
    }

    #[test]
    fn an_alert_failure_is_retried_like_a_queue_failure() {
        let alert = Error::Alert("alert webhook failed: upstream network error: x".into());
        let queue = Error::Queue("x".into());
        assert!(alert.is_transient());
        assert_eq!(alert.class(), queue.class());
        assert_eq!(alert.http_status(), queue.http_status());
        assert_eq!(alert.title(), queue.title());
        assert_eq!(
            Disposition::for_error(&alert, 2, Jitter::NONE),
            Disposition::for_error(&queue, 2, Jitter::NONE)
        );
        assert!(!alert.public_detail().contains("webhook"));
    }

    #[test]
    fn a_configuration_error_is_a_500_that_names_nothing() {
        let e = Error::Config("LEASE_MS: must be a number".into());
        assert_eq!(e.http_status(), 500);
        assert!(!e.public_detail().contains("LEASE_MS"));
        assert!(e.is_transient());
    }

    #[test]
    fn an_encoding_failure_is_a_permanent_500_that_names_nothing() {
        let e = Error::from(CodecError::Invalid("point index 7 out of range".into()));
        assert!(matches!(e, Error::Codec(_)));
        assert!(!e.is_transient());
        assert_eq!(e.http_status(), 500);
        assert!(!e.public_detail().contains("point index"));
        assert_eq!(
            Disposition::for_error(&e, 1, Jitter::NONE),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn retry_after_is_honoured_and_backoff_grows() {
        let e = Error::Upstream(UpstreamError::Status {
            status: 429,
            retry_after_ms: Some(30_000),
            body: String::new(),
        });
        assert_eq!(
            Disposition::for_error(&e, 1, Jitter::NONE),
            Disposition::Retry { delay_seconds: 30 }
        );
        assert_eq!(
            Disposition::for_error(&status(503), 3, Jitter::NONE),
            Disposition::Retry { delay_seconds: 8 }
        );
        assert_eq!(
            Disposition::for_error(&status(404), 1, Jitter::NONE),
            Disposition::DeadLetter
        );
    }
}

//! The upstream: what the consumer asks of it, and the one home of ACE's
//! quirks ([`ace`]).
//!
//! The consumer asks a [`Source`] for "the samples of these points in this
//! window" ([`WindowQuery`]) and for a site's size ([`SiteInfo`]); it knows
//! nothing of URLs, cursors or status codes. [`ace::Ace`] answers from the
//! ACE FlightDeck API as it really behaves (`../shared/PLATFORM.md` §4):
//! a time-major walk of the site's pages that ignores `point_names`, or one
//! unpaginated request per point; naive UTC times; a cursor it repairs; a
//! 403 for an unknown site and a 500 for a wrong token.
//!
//! # Layout
//! - [`ace`]: URLs, the site walk, the per-point requests, `configured_points`,
//!   and the mapping of ACE's answers to [`UpstreamError`]s.
//! - [`cursor`]: ACE's cursor and its repair.
//! - this module: the [`Source`] trait, what a window costs ([`Traffic`]),
//!   and the in-place retry every request shares ([`send_with_retry`]).

pub mod ace;
pub mod cursor;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::backoff::{Backoff, Jitter};
use crate::config::{Config, ExposeSecret};
use crate::domain::{EpochMs, PointName};
use crate::error::{body_snippet, Error, ErrorClass, UpstreamError};
use crate::plan::{Plan, SiteInfo};
use crate::ports::{Clock, HttpClient, HttpRequest};
use crate::sample::{PointSet, Samples};

pub use ace::Ace;

/// Escaping for a query-string value or a path segment: everything but
/// unreserved characters, so `/`, `,`, ` ` and `&` in a point name reach
/// the upstream as part of the name.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Escapes everything but unreserved characters.
pub fn escape(s: &str) -> String {
    utf8_percent_encode(s, ESCAPE).to_string()
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str, now: EpochMs) -> Option<u64> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    // All three HTTP-date forms (RFC 9110 §5.6.7): IMF-fixdate, RFC 850
    // and asctime. Only arithmetic on `UNIX_EPOCH`, never the system
    // clock (which wasm32 lacks).
    let at = httpdate::parse_http_date(v).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    Some((ms - now.ms()).max(0) as u64)
}

/// What the consumer asks for: the samples of these points in this window.
#[derive(Debug, Clone, Copy)]
pub struct WindowQuery<'a> {
    /// Site.
    pub site: &'a str,
    /// The job's points, sorted; `outs[i]` receives `names[i]`'s samples.
    pub names: &'a [PointName],
    /// The same names, for the page parser's lookup.
    pub points: &'a PointSet,
    /// First millisecond.
    pub start: EpochMs,
    /// First millisecond after.
    pub end: EpochMs,
    /// How to fetch.
    pub plan: Plan,
    /// Rows per page of a site walk.
    pub page_size: u32,
    /// The site's points (for the walk's page bound).
    pub site_points: u64,
}

/// What fetching a window cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Response body bytes, every answer included.
    pub bytes: u64,
    /// Requests sent, retries included.
    pub requests: u64,
}

/// Where the samples come from.
pub trait Source {
    /// The site's size, and the names of its collecting points, from the
    /// upstream's point catalogue.
    async fn site_info(
        &self,
        site: &str,
        traffic: &mut Traffic,
    ) -> Result<(SiteInfo, Vec<String>), Error>;

    /// Appends the window's samples of `q.names[i]` to `outs[i]`.
    /// `between` runs between requests (the lease heartbeat, which also
    /// notices a cancellation).
    async fn fetch_window<F, Fut>(
        &self,
        q: &WindowQuery<'_>,
        outs: &mut [Samples],
        traffic: &mut Traffic,
        between: F,
    ) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), Error>>;
}

/// How an upstream answer other than 200 reads.
pub(crate) type StatusMap<'a> = &'a dyn Fn(u16, &[u8], Option<u64>) -> UpstreamError;

/// One GET whose 200 body `parse` accepts, retried in place while the
/// request's retry time (`PAGE_RETRY_MS`) lasts: a wait that would pass it
/// (a long `Retry-After`) is left to a delayed message instead. A body
/// `parse` refuses is retried up to `MALFORMED_LIMIT` times, then is
/// permanent. `parse` must leave its output as it was when it fails.
/// With `timeout_returns`, a timeout comes back at once (its caller halves
/// the span instead).
pub(crate) async fn send_with_retry<H, C, T>(
    http: &H,
    clock: &C,
    cfg: &Config,
    (url, timeout_returns): (&str, bool),
    traffic: &mut Traffic,
    status: StatusMap<'_>,
    mut parse: impl FnMut(&[u8]) -> Result<T, String>,
) -> Result<T, Error>
where
    H: HttpClient,
    C: Clock,
{
    let started = clock.now_ms();
    let (mut malformed, mut tries, mut waited) = (0u32, 0u32, 0u64);
    loop {
        tries += 1;
        let err = match send_once(http, cfg, url, traffic, status, clock.now_ms()).await {
            Ok(body) => match parse(&body) {
                Ok(v) => return Ok(v),
                Err(detail) => {
                    malformed += 1;
                    UpstreamError::Malformed {
                        detail,
                        permanent: malformed > cfg.malformed_limit,
                    }
                }
            },
            Err(e) => e,
        };
        if timeout_returns && matches!(err, UpstreamError::Timeout(_)) {
            return Err(err.into());
        }
        let malformed_pending = matches!(err, UpstreamError::Malformed { .. });
        let err = Error::from(err);
        let wait = match err.class() {
            ErrorClass::Permanent => return Err(err),
            ErrorClass::Transient { retry_after_ms } => retry_after_ms.unwrap_or_else(|| {
                let jitter = Jitter::draw(cfg.retry_jitter, clock.random_bytes());
                Backoff::UPSTREAM.delay_ms(tries, jitter, None)
            }),
        };
        // Time spent on this request: the clock, or the sleeps if the
        // clock stands still (tests).
        let spent = ((clock.now_ms() - started).max(0) as u64).max(waited);
        if !malformed_pending && spent + wait > cfg.page_retry_ms {
            return Err(err);
        }
        clock.sleep(wait).await;
        waited += wait;
    }
}

async fn send_once<H: HttpClient>(
    http: &H,
    cfg: &Config,
    url: &str,
    traffic: &mut Traffic,
    status: StatusMap<'_>,
    now: EpochMs,
) -> Result<Vec<u8>, UpstreamError> {
    traffic.requests += 1;
    let resp = http
        .send(HttpRequest {
            method: "GET",
            url: url.to_owned(),
            headers: vec![
                (
                    "Authorization".to_owned(),
                    format!("Bearer {}", cfg.upstream_token.expose_secret()),
                ),
                ("Accept".to_owned(), "application/json".to_owned()),
            ],
            body: None,
            timeout_ms: cfg.upstream_timeout_ms,
            max_body_bytes: cfg.upstream_max_page_bytes,
        })
        .await?;
    traffic.bytes += resp.body.len() as u64;
    if resp.status != 200 {
        let hint = resp
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, now));
        return Err(status(resp.status, &resp.body, hint));
    }
    Ok(resp.body)
}

/// The usual reading of a status: the code, the hint and the body's start.
pub(crate) fn plain_status(status: u16, body: &[u8], hint: Option<u64>) -> UpstreamError {
    UpstreamError::Status {
        status,
        retry_after_ms: hint,
        body: body_snippet(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7", EpochMs(0)), Some(7000));
        let now = chrono::DateTime::parse_from_rfc2822("Sun, 06 Nov 1994 08:49:30 GMT")
            .unwrap()
            .timestamp_millis();
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(form, EpochMs(now)), Some(7000), "{form}");
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", EpochMs(now)),
            Some(0),
            "a date past is no wait"
        );
        assert_eq!(parse_retry_after("soon", EpochMs(0)), None);
    }

    #[test]
    fn names_are_escaped_whole() {
        assert_eq!(escape("AHU-1,SAT/a b&c"), "AHU-1%2CSAT%2Fa%20b%26c");
    }
}

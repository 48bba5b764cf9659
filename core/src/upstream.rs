//! The ACE IoT timeseries client: cursor paging, retries and classification.
//!
//! `GET {base}/sites/{site}/timeseries/paginated?start_time&end_time&page_size&point_names[&cursor]`
//! with a bearer token. A page that fails transiently is retried in place
//! for up to `PAGE_RETRY_MS` (honouring `Retry-After`); past that, the
//! error goes back to the consumer, which reschedules the job with a
//! delayed message that resumes from its checkpoint. The HTTP adapter
//! enforces the per-request timeout and the page's byte cap; the chunk's
//! sample cap is checked after every page.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::{Config, ExposeSecret};
use crate::domain::{format_rfc3339, EpochMs};
use crate::error::{Error, UpstreamError};
use crate::ports::{Clock, HttpClient, HttpRequest};
use crate::sample::{parse_page, Samples, TimeParser};

/// Query-string escaping: everything but unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Consecutive empty pages that still say `has_more` before giving up.
pub const MAX_EMPTY_PAGES: u32 = 50;

/// Parses a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str, now: EpochMs) -> Option<u64> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    chrono::DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|t| (t.timestamp_millis() - now).max(0) as u64)
}

/// What to fetch: one point over a span.
#[derive(Debug, Clone, Copy)]
pub struct ChunkQuery<'a> {
    /// Site.
    pub site: &'a str,
    /// Point.
    pub point: &'a str,
    /// First millisecond.
    pub start: EpochMs,
    /// First millisecond after.
    pub end: EpochMs,
}

/// Escapes everything but unreserved characters, for a query-string value.
pub fn escape(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

fn page_url(cfg: &Config, q: &ChunkQuery<'_>, cursor: Option<&str>) -> String {
    let enc = escape;
    let mut url = format!(
        "{}/sites/{}/timeseries/paginated?start_time={}&end_time={}&page_size={}&point_names={}&raw_data=true",
        cfg.upstream_url,
        enc(q.site),
        enc(&format_rfc3339(q.start)),
        enc(&format_rfc3339(q.end)),
        cfg.page_size,
        enc(q.point),
    );
    if let Some(c) = cursor {
        url.push_str("&cursor=");
        url.push_str(&enc(c));
    }
    url
}

/// Fetches every page of one chunk into `out`. `between_pages` runs before
/// each page after the first (the cancellation check).
pub async fn fetch_chunk<H, C, F, Fut>(
    http: &H,
    clock: &C,
    cfg: &Config,
    q: &ChunkQuery<'_>,
    out: &mut Samples,
    mut between_pages: F,
) -> Result<u64, Error>
where
    H: HttpClient,
    C: Clock,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let mut cursor: Option<String> = None;
    let mut times = TimeParser::default();
    let mut pages = 0u64;
    let mut empty_run = 0u32;
    loop {
        if pages > 0 {
            between_pages().await?;
        }
        let before = out.len();
        let page = fetch_page(http, clock, cfg, q, cursor.as_deref(), &mut times, out).await?;
        pages += 1;
        if out.len() as u64 > cfg.chunk_max_samples {
            return Err(UpstreamError::TooLarge(format!(
                "{} over {} holds more than {} samples (CHUNK_MAX_SAMPLES)",
                q.point,
                format_rfc3339(q.start),
                cfg.chunk_max_samples
            ))
            .into());
        }
        if !page.has_more {
            return Ok(pages);
        }
        empty_run = if out.len() == before && page.skipped == 0 {
            empty_run + 1
        } else {
            0
        };
        if empty_run > MAX_EMPTY_PAGES {
            return Err(UpstreamError::Malformed {
                detail: format!("{empty_run} empty pages in a row that say has_more"),
                permanent: false,
            }
            .into());
        }
        cursor = page.next_cursor;
    }
}

/// Fetches one page, retrying transient failures in place while the
/// page's retry time (`PAGE_RETRY_MS`) lasts: a wait that would pass it
/// (a long `Retry-After`) is left to a delayed message instead. Malformed
/// bodies are retried up to `MALFORMED_LIMIT` times, then are permanent.
async fn fetch_page<H: HttpClient, C: Clock>(
    http: &H,
    clock: &C,
    cfg: &Config,
    q: &ChunkQuery<'_>,
    cursor: Option<&str>,
    times: &mut TimeParser,
    out: &mut Samples,
) -> Result<crate::sample::Page, Error> {
    let url = page_url(cfg, q, cursor);
    let started = clock.now_ms();
    let (mut malformed, mut tries, mut waited) = (0u32, 0u32, 0u64);
    loop {
        tries += 1;
        let mark = out.mark();
        let result = fetch_page_once(http, cfg, &url, q, times, out, clock.now_ms()).await;
        let err = match result {
            Ok(page) => return Ok(page),
            Err(e) => e,
        };
        out.rewind(mark);
        let malformed_pending = matches!(err, UpstreamError::Malformed { .. });
        let err = match err {
            UpstreamError::Malformed { detail, .. } => {
                malformed += 1;
                UpstreamError::Malformed {
                    detail,
                    permanent: malformed > cfg.malformed_limit,
                }
            }
            other => other,
        };
        let err = Error::from(err);
        let wait = match err.class() {
            crate::error::ErrorClass::Permanent => return Err(err),
            crate::error::ErrorClass::Transient { retry_after_ms } => {
                retry_after_ms.unwrap_or(200u64 << tries.min(6))
            }
        };
        // Time spent on this page: the clock, or the sleeps if the clock
        // stands still (tests).
        let spent = ((clock.now_ms() - started).max(0) as u64).max(waited);
        if !malformed_pending && spent + wait > cfg.page_retry_ms {
            return Err(err);
        }
        clock.sleep(wait).await;
        waited += wait;
    }
}

async fn fetch_page_once<H: HttpClient>(
    http: &H,
    cfg: &Config,
    url: &str,
    q: &ChunkQuery<'_>,
    times: &mut TimeParser,
    out: &mut Samples,
    now: EpochMs,
) -> Result<crate::sample::Page, UpstreamError> {
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
    if resp.status != 200 {
        return Err(UpstreamError::Status {
            status: resp.status,
            retry_after_ms: resp
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now)),
        });
    }
    let page = parse_page(&resp.body, q.point, q.start, q.end, times, out).map_err(|detail| {
        UpstreamError::Malformed {
            detail,
            permanent: false,
        }
    })?;
    if page.has_more && page.next_cursor.as_deref().is_none_or(str::is_empty) {
        return Err(UpstreamError::Malformed {
            detail: "has_more is true but next_cursor is missing".to_owned(),
            permanent: false,
        });
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7", 0), Some(7000));
        let now = chrono::DateTime::parse_from_rfc2822("Sun, 06 Nov 1994 08:49:30 GMT")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(7000)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn url_escapes_point_names() {
        let cfg = Config::for_upstream("http://h/api/", "t");
        let q = ChunkQuery {
            site: "s1",
            point: "a/b c&d",
            start: 0,
            end: 1000,
        };
        let url = page_url(&cfg, &q, Some("x=="));
        assert!(url.starts_with("http://h/api/sites/s1/timeseries/paginated?"));
        assert!(url.contains("point_names=a%2Fb%20c%26d"));
        assert!(url.contains("cursor=x%3D%3D"));
        assert!(url.contains("start_time=1970-01-01T00%3A00%3A00Z"));
    }
}

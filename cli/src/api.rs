//! The typed HTTP client of the pipeline API.
//!
//! [`Client`] holds the base URL, the bearer token and one `reqwest` client
//! with a connect timeout, a per-request timeout for JSON calls and a read
//! timeout (no total timeout) for the result download, whose size is
//! unbounded. Every non-2xx answer becomes an [`ApiError::Problem`] (an RFC
//! 9457 `application/problem+json` body, or whatever the body was), and
//! every transport failure an [`ApiError::Network`] with a one-line message.
//!
//! Connections are not pooled: the local Workers runtime closes idle
//! connections, and a reused, already-closed one fails a request spuriously.
//! A CLI makes few requests, so a fresh connection each time costs little.

use std::fmt;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
pub use tsp_api::{JobView, Problem};

/// Characters escaped in a path segment: everything but RFC 3986 unreserved.
pub const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while streaming a result body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed API call.
#[derive(Debug)]
pub enum ApiError {
    /// The API answered with an error status.
    Problem(Problem),
    /// The request did not complete (connect, timeout, broken body).
    Network(String),
    /// A 2xx answer whose body is not what this client expects.
    Decode(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Problem(p) => {
                let title = if p.title.is_empty() {
                    format!("HTTP {}", p.status)
                } else {
                    p.title.clone()
                };
                let detail = shown_detail(p);
                if detail.is_empty() {
                    write!(f, "{title}")?;
                } else {
                    write!(f, "{title}: {detail}")?;
                }
                for e in p.errors.iter().flatten() {
                    write!(f, "\n  {}: {}", e.field, e.message)?;
                }
                Ok(())
            }
            ApiError::Network(m) | ApiError::Decode(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// The detail without what the title and field errors already say: the
/// API's details often repeat the title (`Conflict` / `conflict: …`) or
/// list the field errors again.
fn shown_detail(p: &Problem) -> &str {
    {
        let mut d = p.detail.trim();
        let t = p.title.trim();
        if d.eq_ignore_ascii_case(t) {
            return "";
        }
        if let Some(head) = d.get(..t.len() + 2) {
            if head.eq_ignore_ascii_case(&format!("{t}: ")) {
                d = &d[t.len() + 2..];
            }
        }
        let listed: Vec<String> = p
            .errors
            .iter()
            .flatten()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        if !listed.is_empty() && d == listed.join("; ") {
            return "";
        }
        d
    }
}

impl ApiError {
    /// Whether trying again later may succeed (used while polling).
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Network(_) => true,
            ApiError::Problem(p) => matches!(p.status, 429 | 502 | 503 | 504),
            ApiError::Decode(_) => false,
        }
    }
}

/// A one-line description of a transport failure.
pub fn network_error(base: &str, e: &reqwest::Error) -> ApiError {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let url = e
        .url()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_else(|| base.to_owned());
    let msg = if e.is_timeout() {
        format!("request to {url} timed out")
    } else if e.is_connect() {
        format!("cannot connect to {base}: {root}")
    } else if e.is_body() || e.is_decode() {
        format!("reading the response from {url} failed: {root}")
    } else {
        format!("request to {url} failed: {root}")
    };
    ApiError::Network(msg.replace('\n', " "))
}

/// A job as the API shows it ([`JobView`]), with the note a submit or a
/// retry adds, and the document as received (for `--json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    /// The job.
    #[serde(flatten)]
    pub view: JobView,
    /// A remark from submit or retry.
    #[serde(default)]
    pub note: Option<String>,
    /// The document as received.
    #[serde(skip)]
    pub raw: Value,
}

impl std::ops::Deref for Job {
    type Target = JobView;
    fn deref(&self) -> &JobView {
        &self.view
    }
}

/// One page of `GET /v1/dead-letters`.
#[derive(Debug, Deserialize)]
pub struct DeadLetterPage {
    /// Dead jobs, newest first.
    #[serde(default)]
    pub dead_letters: Vec<Job>,
    /// Cursor of the next page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One page of `GET /v1/aggregates`.
#[derive(Debug, Deserialize)]
pub struct AggregatePage {
    /// Buckets, oldest first, as stored.
    #[serde(default)]
    pub rows: Vec<Map<String, Value>>,
    /// Start of the next page.
    #[serde(default)]
    pub next_from: Option<String>,
}

/// Query of `GET /v1/aggregates`.
#[derive(Debug, Clone)]
pub struct AggregateQuery<'a> {
    /// Site.
    pub site: &'a str,
    /// Point.
    pub point: &'a str,
    /// First bucket, RFC 3339.
    pub from: &'a str,
    /// End (exclusive), RFC 3339.
    pub to: &'a str,
    /// `1h` or `1d`.
    pub resolution: &'a str,
    /// Page size (server default when `None`).
    pub limit: Option<u32>,
}

/// Whether `POST /v1/jobs` created a job or returned an identical one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// 202: a new job.
    Created,
    /// 200: an identical queued, running or fresh completed job.
    Existing,
}

/// The API client.
pub struct Client {
    base: String,
    token: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (`http(s)://host[:port][/prefix]`).
    pub fn new(base: &str, token: &str, timeout: Duration) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(base)
            .map_err(|e| anyhow::anyhow!("invalid --url {base:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("invalid --url {base:?}: must be http or https");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("tsp-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            timeout,
            http,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    fn job_path(id: &str, tail: &str) -> String {
        format!("/v1/jobs/{}{tail}", utf8_percent_encode(id, SEGMENT))
    }

    /// Sends a request; any non-2xx answer becomes a [`Problem`].
    async fn send(&self, req: RequestBuilder) -> Result<Response, ApiError> {
        let resp = req
            .send()
            .await
            .map_err(|e| network_error(&self.base, &e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.problem(resp).await)
    }

    async fn problem(&self, resp: Response) -> ApiError {
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return network_error(&self.base, &e),
        };
        ApiError::Problem(parse_problem(status, &text))
    }

    /// Sends a JSON call (with the per-request timeout) and decodes the body.
    async fn call<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, T, Value), ApiError> {
        let resp = self.send(req.timeout(self.timeout)).await?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let url = resp.url().to_string();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| network_error(&self.base, &e))?;
        let raw: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Decode(format!("{url}: the answer is not JSON: {e}")))?;
        let typed = T::deserialize(&raw)
            .map_err(|e| ApiError::Decode(format!("{url}: unexpected answer: {e}")))?;
        Ok((status, headers, typed, raw))
    }

    async fn job_call(
        &self,
        req: RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, Job), ApiError> {
        let (status, headers, mut job, raw) = self.call::<Job>(req).await?;
        job.raw = raw;
        Ok((status, headers, job))
    }

    /// `POST /v1/jobs` with `body`.
    pub async fn submit(&self, body: &Value) -> Result<(Submitted, Job), ApiError> {
        let req = self.request(Method::POST, "/v1/jobs").json(body);
        let (status, _, job) = self.job_call(req).await?;
        let how = if status == StatusCode::OK {
            Submitted::Existing
        } else {
            Submitted::Created
        };
        Ok((how, job))
    }

    /// `GET /v1/jobs/{id}`, with the server's `Retry-After` if it sent one.
    pub async fn job(&self, id: &str) -> Result<(Job, Option<Duration>), ApiError> {
        let req = self.request(Method::GET, &Self::job_path(id, ""));
        let (_, headers, job) = self.job_call(req).await?;
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok((job, retry_after))
    }

    /// `DELETE /v1/jobs/{id}`.
    pub async fn cancel(&self, id: &str) -> Result<Job, ApiError> {
        let req = self.request(Method::DELETE, &Self::job_path(id, ""));
        Ok(self.job_call(req).await?.2)
    }

    /// `POST /v1/jobs/{id}/retry`.
    pub async fn retry(&self, id: &str) -> Result<Job, ApiError> {
        let req = self.request(Method::POST, &Self::job_path(id, "/retry"));
        Ok(self.job_call(req).await?.2)
    }

    /// An operator call (`/v1/admin/…`, under an `ADMIN_TOKENS` token)
    /// with an optional JSON body; the answer as the API's type `T`.
    pub async fn admin<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let mut req = self.request(method, path_and_query);
        if let Some(b) = body {
            req = req.json(b);
        }
        Ok(self.call::<T>(req).await?.2)
    }

    /// One page of `GET /v1/dead-letters`.
    pub async fn dead_letters(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DeadLetterPage, ApiError> {
        let mut req = self
            .request(Method::GET, "/v1/dead-letters")
            .query(&[("limit", limit.to_string())]);
        if let Some(c) = cursor {
            req = req.query(&[("cursor", c)]);
        }
        Ok(self.call(req).await?.2)
    }

    /// One page of `GET /v1/aggregates`.
    pub async fn aggregates(&self, q: &AggregateQuery<'_>) -> Result<AggregatePage, ApiError> {
        let mut req = self.request(Method::GET, "/v1/aggregates").query(&[
            ("site", q.site),
            ("point", q.point),
            ("from", q.from),
            ("to", q.to),
            ("resolution", q.resolution),
        ]);
        if let Some(limit) = q.limit {
            req = req.query(&[("limit", limit.to_string())]);
        }
        Ok(self.call(req).await?.2)
    }

    /// `GET /v1/jobs/{id}/result`: the raw object, as a streaming response
    /// (no total timeout; the read timeout still applies).
    pub async fn result(&self, id: &str) -> Result<Response, ApiError> {
        let req = self.request(Method::GET, &Self::job_path(id, "/result"));
        self.send(req).await
    }
}

/// A problem document from an error answer, or a stand-in built from the
/// status and the start of a non-JSON body.
pub fn parse_problem(status: StatusCode, text: &str) -> Problem {
    let mut p = serde_json::from_str::<Problem>(text).unwrap_or_else(|_| {
        let body: String = text.trim().chars().take(200).collect();
        Problem {
            detail: body.replace(['\n', '\r'], " "),
            ..Problem::default()
        }
    });
    if p.status == 0 {
        p.status = status.as_u16();
    }
    if p.title.is_empty() {
        p.title = match status.canonical_reason() {
            Some(r) => format!("HTTP {} {r}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        };
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_with_field_errors_renders_title_detail_and_fields() {
        let p = parse_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"title":"Invalid request","status":422,"detail":"2 invalid fields",
                "errors":[{"field":"points[0]","message":"is empty"},{"field":"days","message":"must be 1 to 366"}]}"#,
        );
        assert_eq!(
            ApiError::Problem(p).to_string(),
            "Invalid request: 2 invalid fields\n  points[0]: is empty\n  days: must be 1 to 366"
        );
    }

    #[test]
    fn details_that_repeat_the_title_or_the_fields_are_trimmed() {
        let render = |body: &str| {
            ApiError::Problem(parse_problem(StatusCode::BAD_REQUEST, body)).to_string()
        };
        assert_eq!(
            render(r#"{"title":"Conflict","detail":"conflict: job is completed"}"#),
            "Conflict: job is completed"
        );
        assert_eq!(
            render(r#"{"title":"Not found","detail":"not found"}"#),
            "Not found"
        );
        assert_eq!(
            render(
                r#"{"title":"Invalid request","detail":"invalid request: site: bad; days: too many",
                    "errors":[{"field":"site","message":"bad"},{"field":"days","message":"too many"}]}"#
            ),
            "Invalid request\n  site: bad\n  days: too many"
        );
        assert_eq!(render(r#"{"title":"Ünïcode","detail":"x"}"#), "Ünïcode: x");
    }

    #[test]
    fn a_non_json_error_body_still_gives_one_line() {
        let p = parse_problem(StatusCode::BAD_GATEWAY, "<html>\nbad gateway\n</html>");
        assert_eq!(
            ApiError::Problem(p).to_string(),
            "HTTP 502 Bad Gateway: <html> bad gateway </html>"
        );
    }

    #[test]
    fn ids_are_escaped_as_one_path_segment() {
        assert_eq!(
            Client::job_path("a/b c", "/result"),
            "/v1/jobs/a%2Fb%20c/result"
        );
        assert_eq!(Client::job_path("0123abcd", ""), "/v1/jobs/0123abcd");
    }
}

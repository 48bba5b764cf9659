//! CORS for browsers (duckdb-wasm, dashboards): `CORS_ALLOWED_ORIGINS` names
//! the origins whose pages may call the API with a bearer token and read
//! what range reads need (`Content-Range`, `Accept-Ranges`, `ETag`, …).
//! An allowed origin is echoed back (`Vary: Origin`); any other origin gets
//! no CORS headers, so the browser keeps the answer from its page. The
//! token is still required: CORS only lets an allowed page hold one.

use worker::{Headers, Response, ResponseBuilder};

/// Response headers a page may read.
pub const EXPOSED: &str = "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified, \
    X-Content-SHA256, X-Request-Id, Retry-After, Server-Timing";
/// Request headers a page may send.
const ALLOWED_HEADERS: &str = "Authorization, Range, If-Range, If-None-Match, Content-Type, Accept";
/// How long a browser may keep a preflight's answer.
const MAX_AGE_S: &str = "600";

/// The allowed origins: a comma-separated list, `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(Vec<String>);

impl Origins {
    /// Parses `CORS_ALLOWED_ORIGINS` (empty: no origin).
    pub fn parse(spec: &str) -> Self {
        Origins(
            spec.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        )
    }

    /// `origin` if it may read the answers.
    pub fn allow(&self, origin: &str) -> Option<String> {
        let origin = origin.trim();
        (!origin.is_empty() && self.0.iter().any(|o| o == "*" || o == origin))
            .then(|| origin.to_owned())
    }
}

/// The answer to a preflight for a path that takes `allow` methods.
pub fn preflight(origin: &str, allow: &str) -> Response {
    let headers = Headers::new();
    let _ = headers.set("access-control-allow-origin", origin);
    let _ = headers.set("access-control-allow-methods", allow);
    let _ = headers.set("access-control-allow-headers", ALLOWED_HEADERS);
    let _ = headers.set("access-control-max-age", MAX_AGE_S);
    let _ = headers.set("vary", "Origin");
    ResponseBuilder::new()
        .with_status(204)
        .with_headers(headers)
        .empty()
}

/// Lets the allowed `origin` read `resp`.
pub fn expose(resp: &mut Response, origin: &str) {
    let h = resp.headers_mut();
    let _ = h.set("access-control-allow-origin", origin);
    let _ = h.set("access-control-expose-headers", EXPOSED);
    let _ = h.append("vary", "Origin");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_are_allowed() {
        let o = Origins::parse("https://a.example, https://b.example/");
        assert_eq!(
            o.allow("https://a.example").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(
            o.allow("https://b.example").as_deref(),
            Some("https://b.example")
        );
        assert_eq!(o.allow("https://evil.example"), None);
        assert_eq!(o.allow(""), None);
        assert_eq!(Origins::parse("").allow("https://a.example"), None);
        let any = Origins::parse("*");
        assert_eq!(
            any.allow("http://localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
    }
}

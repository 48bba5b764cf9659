//! The producer role: the HTTP API.
//!
//! # Layout
//! - [`handle`]: routing, authentication and the error → problem+json mapping.
//! - `routes`: one module per resource (jobs, results, dead letters,
//!   aggregates, stats) and the extractors they share; each route is a thin
//!   adapter over a core service, answering a typed body.
//! - `openapi`: the OpenAPI 3.1 document, generated from the routes'
//!   annotations and the wire types (`tsp_core::api`).
//!
//! Routes (one table, `routes`, drives dispatch, `Allow` and the
//! document's paths): `GET /` (the status page, open), `GET /healthz` (open), `POST /v1/jobs`, `GET /v1/jobs`,
//! `GET /v1/jobs/{id}`, `DELETE /v1/jobs/{id}`, `GET /v1/jobs/{id}/result`,
//! `GET /v1/jobs/{id}/archive`, `POST /v1/jobs/{id}/retry`,
//! `GET /v1/dead-letters`, `GET /v1/stats`, `GET /v1/aggregates` and
//! `GET /openapi.json` (this API's OpenAPI 3.1 document,
//! `producer/openapi.json`, generated). Every route but the page and
//! `/healthz` needs a bearer token. Every GET route answers HEAD alike
//! without the body; another method on a known path answers 405 with
//! `Allow`.

#![deny(missing_docs)]

mod cors;
pub mod error;
mod range;
// The document is generated in native tests (`openapi::tests`) and the Worker
// serves the checked-in output, so the generator is dead code in the wasm build
// and LTO drops it.
#[allow(dead_code)]
mod openapi;
mod routes;

use crate::error::HttpError;
use routes::{Access, Match};
use tsp_cloudflare::{env_string, names, Bindings};
use tsp_core::api::{Problem, ProblemType, QuotaProblem};
use tsp_core::auth::{Caller, Grant, TokenTable};
use tsp_core::error::Error;
use worker::{Env, Headers, Request, Response, ResponseBody, ResponseBuilder};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Handles one HTTP request. Never fails: every error becomes a response.
///
/// The route table (`routes`) says what the request is: an `open` route
/// (the page, `/healthz`) answers at once; anything else needs a token
/// first, then is dispatched, or answers 405 (with `Allow`) or 404.
pub async fn handle(mut req: Request, env: &Env) -> Response {
    let path = req.path();
    // The method as sent: workers-rs reads one it does not know as GET.
    let method = req.inner().method();
    let found = routes::find(&method, &path);
    let origin = req.headers().get("origin").ok().flatten();
    let allowed = origin.as_deref().and_then(|o| {
        let spec = env_string(env, names::CORS_ALLOWED_ORIGINS).unwrap_or_default();
        cors::Origins::parse(&spec).allow(o)
    });
    // A browser's preflight (no token) for a known path.
    let preflight = method == "OPTIONS"
        && req
            .headers()
            .has("access-control-request-method")
            .unwrap_or(false);
    if let (true, Some(origin), Match::NotAllowed { allow, .. }) = (preflight, &allowed, &found) {
        return cors::preflight(origin, allow);
    }
    let mut resp = match &found {
        Match::Route(route) if route.access == Access::Open => {
            routes::dispatch(route, &mut req, None)
                .await
                .unwrap_or_else(|e| problem(&e, &path))
        }
        Match::NotAllowed {
            allow,
            access: Access::Open,
        } => problem(&HttpError::MethodNotAllowed(allow), &path),
        _ => authenticated(req, env, &method, found).await,
    };
    if let Some(origin) = &allowed {
        cors::expose(&mut resp, origin);
    }
    // HEAD is GET without the body (RFC 9110 §9.3.2).
    if method == "HEAD" {
        return without_body(resp);
    }
    resp
}

/// A request to a `token` path (or to no known path): the caller's token,
/// then the route, 405 or 404; with its cost in `Server-Timing` and one
/// log line.
async fn authenticated(mut req: Request, env: &Env, method: &str, found: Match<'_>) -> Response {
    let path = req.path();
    let started = worker::Date::now().as_millis() as f64;
    let request_id = request_id(&req);
    let bindings = Bindings::from_env(env);
    let mut owner_seen = None;
    let result = async {
        let b = bindings.as_ref().map_err(Clone::clone)?;
        let auth = req.headers().get("authorization").ok().flatten();
        let caller = caller_of(env, &found, auth.as_deref())?;
        owner_seen = Some(caller.owner.0.clone());
        let cx = routes::Cx {
            b,
            owner: &caller.owner.0,
            grant: &caller.grant,
        };
        match &found {
            Match::Route(route) => routes::dispatch(route, &mut req, Some(cx)).await,
            Match::NotAllowed { allow, .. } => Err(HttpError::MethodNotAllowed(allow)),
            Match::NotFound => Err(Error::NotFound.into()),
        }
    }
    .await;
    let mut resp = result.unwrap_or_else(|e| problem(&e, &path));
    let cost = Cost {
        total_ms: worker::Date::now().as_millis() as f64 - started,
        d1: bindings
            .as_ref()
            .ok()
            .map(|b| (b.db.inner().ms(), b.db.inner().statements())),
        r2: bindings
            .as_ref()
            .ok()
            .map(|b| (b.blobs.spent_ms() as f64, b.blobs.calls())),
    };
    let _ = resp
        .headers_mut()
        .set("server-timing", &cost.server_timing());
    let _ = resp.headers_mut().set("x-request-id", &request_id);
    let line = serde_json::json!({
        "event": "request", "request_id": request_id, "method": method, "path": path,
        "status": resp.status_code(), "ms": cost.total_ms.round(),
        "d1_queries": cost.d1.map_or(0, |d| d.1), "owner": owner_seen,
    });
    worker::console_log!("{}", serde_json::to_string(&line).unwrap_or_default());
    resp
}

/// The request's id: Cloudflare's `cf-ray` when present, else a random one.
fn request_id(req: &Request) -> String {
    if let Some(ray) = req.headers().get("cf-ray").ok().flatten() {
        return ray;
    }
    format!("{:016x}", next_request_id())
}

/// A 64-bit request id that looks random and never repeats within the
/// isolate: SplitMix64 (a bijection on u64) of a counter that starts at a
/// random seed. The seed comes from `crypto.getRandomValues` once per
/// isolate, so ids of different isolates collide no more often than 64
/// random bits do. It only correlates log lines with responses (nothing
/// trusts it), so it needs no fresh crypto bytes per request: those cost
/// six JS calls (`crypto`, `getRandomValues`, its type check, a
/// `Uint8Array`, the call, the copy out).
fn next_request_id() -> u64 {
    use std::cell::Cell;
    use tsp_core::ports::Clock;
    thread_local! {
        static NEXT: Cell<Option<u64>> = const { Cell::new(None) };
    }
    let n = NEXT.with(|next| {
        let n = next.get().unwrap_or_else(|| {
            let b = tsp_cloudflare::JsClock.random_bytes();
            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        });
        next.set(Some(n.wrapping_add(1)));
        n
    });
    splitmix64(n)
}

/// The SplitMix64 finalizer (Steele, Lea and Flood 2014): a bijection that
/// scatters consecutive inputs across the whole range.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What one request cost: its wall time, and D1's and R2's time and calls.
struct Cost {
    total_ms: f64,
    d1: Option<(f64, u64)>,
    r2: Option<(f64, u64)>,
}

impl Cost {
    /// `Server-Timing` (W3C): `d1;dur=…;desc="N queries", r2;dur=…, total;dur=…`.
    fn server_timing(&self) -> String {
        let mut parts = Vec::new();
        if let Some((ms, n)) = self.d1 {
            parts.push(format!("d1;dur={ms:.1};desc=\"{n} queries\""));
        }
        if let Some((ms, n)) = self.r2 {
            parts.push(format!("r2;dur={ms:.1};desc=\"{n} calls\""));
        }
        parts.push(format!("total;dur={:.1}", self.total_ms));
        parts.join(", ")
    }
}

/// The caller a token names: an admin path takes only an operator's
/// token (`ADMIN_TOKENS`), with every site; any other path an API token.
fn caller_of(env: &Env, found: &Match<'_>, auth: Option<&str>) -> Result<Caller, Error> {
    let admin = matches!(found, Match::Route(r) if r.access == Access::Admin);
    let secret = if admin {
        names::ADMIN_TOKENS
    } else {
        names::API_TOKENS
    };
    let caller = with_tokens(env, secret, |t| t.caller(auth))?;
    Ok(if admin {
        Caller {
            grant: Grant::All,
            ..caller
        }
    } else {
        caller
    })
}

/// Runs `f` on the token table. The table is parsed (and hashed) once per
/// value of the secret: each request reads the secret's text (one lookup)
/// and rebuilds the table only when it changed, so a rotated-out token
/// stops working at once even in a warm isolate, which may outlive a
/// change of bindings.
fn with_tokens<T>(env: &Env, secret: &str, f: impl FnOnce(&TokenTable) -> T) -> T {
    with_table(env_string(env, secret).unwrap_or_default(), f)
}

/// [`with_tokens`] for the secret's current text.
fn with_table<T>(raw: String, f: impl FnOnce(&TokenTable) -> T) -> T {
    // One slot per secret (API_TOKENS, ADMIN_TOKENS): the two most recent texts.
    thread_local! {
        static TOKENS: std::cell::RefCell<Vec<(String, TokenTable)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    TOKENS.with(|cell| {
        let mut cached = cell.borrow_mut();
        let at = match cached.iter().position(|(seen, _)| *seen == raw) {
            Some(at) => at,
            None => {
                if cached.len() >= 2 {
                    cached.remove(0);
                }
                let table = TokenTable::parse(&raw);
                cached.push((raw, table));
                cached.len() - 1
            }
        };
        match cached.get(at) {
            Some((_, table)) => f(table),
            None => f(&TokenTable::parse("")),
        }
    })
}

/// A HEAD answer: the GET's status and headers, no body. A body held in
/// memory says its length (`Content-Length`), as the GET's would; a
/// stream keeps the length its route declared, if any.
fn without_body(resp: Response) -> Response {
    let (status, headers) = (resp.status_code(), resp.headers().clone());
    if let ResponseBody::Body(bytes) = resp.body() {
        if !headers.has("content-length").unwrap_or(false) {
            let _ = headers.set("content-length", &bytes.len().to_string());
        }
    }
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .empty()
}

/// A JSON response. Serializing a wire type cannot fail (string keys, no
/// non-finite floats reach it); were it to, the answer is an empty object.
pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .fixed(bytes)
}

/// The one mapping from an error to an HTTP answer: RFC 9457
/// `application/problem+json`, with field errors for validation failures
/// and no internals for storage failures.
pub fn problem(err: &HttpError, instance: &str) -> Response {
    let status = err.http_status();
    let core = err.core();
    let body = Problem {
        r#type: ProblemType::AboutBlank,
        title: err.title().to_owned(),
        status,
        detail: err.public_detail(),
        instance: instance.to_owned(),
        errors: match core {
            Some(Error::Validation(v)) => Some(v.errors.clone()),
            _ => None,
        },
        quota: match core {
            Some(Error::QuotaExceeded {
                limit, need, left, ..
            }) => Some(QuotaProblem {
                name: "DAILY_CHUNK_QUOTA".to_owned(),
                limit: *limit,
                needed: *need,
                left: *left,
            }),
            _ => None,
        },
    };
    if !matches!(core, Some(Error::Validation(_) | Error::NotFound)) {
        worker::console_warn!(
            "{}",
            serde_json::json!({"event": "request_failed", "path": instance, "status": status, "error": err.to_string()})
        );
    }
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(problem_headers(err, status))
        .fixed(serde_json::to_vec(&body).unwrap_or_default())
}

/// A problem's headers: its media type, and what the status asks for
/// (`WWW-Authenticate`, `Retry-After`, `Allow`).
fn problem_headers(err: &HttpError, status: u16) -> Headers {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/problem+json");
    if status == 401 {
        let _ = headers.set("www-authenticate", "Bearer");
    }
    if status == 503 {
        let _ = headers.set("retry-after", "5");
    }
    match err {
        HttpError::Core(Error::QuotaExceeded { retry_after_s, .. }) => {
            let _ = headers.set("retry-after", &retry_after_s.to_string());
        }
        HttpError::Core(Error::TooManyRetries(_)) => {
            let _ = headers.set("retry-after", "60");
        }
        _ if status == 429 => {
            let _ = headers.set("retry-after", "30");
        }
        HttpError::MethodNotAllowed(allow) => {
            let _ = headers.set("allow", allow);
        }
        HttpError::RangeNotSatisfiable(size) => {
            let _ = headers.set("content-range", &format!("bytes */{size}"));
        }
        _ => {}
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::{splitmix64, with_table};

    #[test]
    fn a_rotated_out_token_stops_working_in_the_same_isolate() {
        let owner = |raw: &str, token: &str| {
            with_table(raw.to_owned(), |t| {
                t.owner(Some(&format!("Bearer {token}"))).map(|o| o.0)
            })
        };
        assert_eq!(owner("old-token=alice", "old-token").unwrap(), "alice");
        // The secret changes; the cached table must not outlive it.
        assert!(owner("new-token=alice", "old-token").is_err());
        assert_eq!(owner("new-token=alice", "new-token").unwrap(), "alice");
        assert!(owner("", "new-token").is_err(), "no tokens, no access");
    }

    #[test]
    fn request_ids_are_splitmix64_and_consecutive_counters_never_collide() {
        // The reference sequence from a zero seed (Vigna's splitmix64.c).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(0x9e37_79b9_7f4a_7c15), 0x6e78_9e6a_a1b9_65f4);
        let ids: std::collections::HashSet<u64> = (u64::MAX - 5_000..=u64::MAX)
            .chain(0..5_000)
            .map(splitmix64)
            .collect();
        assert_eq!(ids.len(), 10_001);
    }
}

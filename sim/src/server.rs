//! The HTTP surface: the timeseries endpoints, `configured_points`,
//! counters, the fault controls, the alert receiver and a health check.
//!
//! Check order on both timeseries endpoints mirrors a real gateway + app:
//! the seeded slow-response delay, a full outage (the gateway is down, so it
//! answers before authentication), authentication, site (or point) lookup,
//! the always-failing sites, the site's fault window, then the seeded
//! per-request fault, then parameter validation, then the body (which a body
//! fault may truncate, replace or drop mid-way). The per-URL attempt counter
//! is bumped for every request so retries draw fresh fault numbers. The
//! outage and the window are judged at answer time, after any slow delay.
//! `configured_points` only checks authentication, the site and its
//! parameters: no faults apply to it.
//!
//! How each step answers depends on [`Mode`]: faithful mode answers like
//! ACE (wrong token 500, unknown site 403 with an all-null body, bad
//! parameters 400 with per-field messages), kind mode like the older
//! simulator (401, 404, 422 with `detail`).
//!
//! Fault windows are counted from the moment [`router`] builds its state
//! (the server's start), using wall-clock [`SystemTime`]: window `k` is
//! `[start + k·secs, start + (k+1)·secs)`. So two runs with the same seed fail
//! the same windows relative to their start; `GET /faults` reports the start
//! and the current index.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::catalogue::{push_json_str, reporting_count, site_size, SiteCatalogue};
use crate::config::{Mode, SimConfig, TimeFormat};
use crate::data::{default_point, default_points, parse_default_point, seed_of};
use crate::faults::{self, Fault, WindowFault};
use crate::page::Page;
use crate::query::FieldErrors;
use crate::{ace_page, page, query};

/// How many points a site serves in kind mode when the request names none.
const DEFAULT_POINT_COUNT: usize = 10;
/// Pages at least this large are built on the blocking pool: a 500,000-sample
/// page takes long enough to stall other connections on the runtime.
const BLOCKING_PAGE_SIZE: u64 = 50_000;
/// Catalogues at least this large are built on the blocking pool.
const BLOCKING_CATALOGUE: usize = 5_000;
/// The catalogue cache is emptied when it holds more points than this.
const CATALOGUE_CACHE_POINTS: usize = 2_000_000;
/// How long a dropped response waits between its partial body and the
/// abort. Hyper only flushes when the body stream is pending; an error right
/// after the first chunk could discard the buffered head, and the client
/// would see no response at all instead of a body cut short.
const DROP_FLUSH: Duration = Duration::from_millis(20);
/// ACE's body for an unknown (or forbidden) site.
const NULL_SITE: &str =
    r#"{"id":null,"name":null,"description":null,"address":null,"client":null}"#;
/// ACE's body for a request with an invalid token.
const UNHANDLED: &str = r#"{"message": "An unhandled exception occurred."}"#;

/// Per-site traffic of the timeseries endpoints.
#[derive(Default, Clone, Copy)]
struct SiteStats {
    /// Body bytes of 200 responses.
    bytes: u64,
    /// Rows in 200 responses.
    rows: u64,
    /// Every request attributed to the site, whatever its answer.
    requests: u64,
}

/// State shared by all handlers.
struct Shared {
    cfg: SimConfig,
    /// Path+query → requests seen so far, for the fault decision.
    url_counts: Mutex<HashMap<String, u64>>,
    /// Timeseries requests (both endpoints).
    requests: AtomicU64,
    requests_paginated: AtomicU64,
    requests_point: AtomicU64,
    requests_configured_points: AtomicU64,
    /// 200 timeseries responses served whole.
    pages_ok: AtomicU64,
    /// Rows in those responses (`rows_served` in `/__stats` too).
    samples_served: AtomicU64,
    /// Body bytes of those responses.
    bytes_served: AtomicU64,
    by_site: Mutex<HashMap<String, SiteStats>>,
    /// Faithful mode's sorted reporting points, per site.
    catalogues: Mutex<HashMap<String, Arc<SiteCatalogue>>>,
    /// Every injected failure: fail-sites, outage, window, per-request kinds.
    faults: AtomicU64,
    /// Wall-clock start of fault window 0.
    started: SystemTime,
    /// End of the full outage in epoch ms; 0 when none was set.
    outage_until_ms: AtomicU64,
    outage_rejections: AtomicU64,
    window_rejections: AtomicU64,
    drops: AtomicU64,
    slow_responses: AtomicU64,
    alerts: Mutex<Vec<Value>>,
    /// Job callbacks received: their signature, idempotency key and raw body.
    callbacks: Mutex<Vec<Value>>,
    alert_fail_next: AtomicU64,
    /// Site → alert POSTs about it still to fail.
    alert_fail_sites: Mutex<HashMap<String, u64>>,
}

type AppState = Arc<Shared>;

/// A poisoned lock only means another handler panicked mid-update; the maps
/// and lists here stay usable, so carry on rather than fail every request.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The FastAPI-style error body the real API uses.
fn detail(status: StatusCode, msg: &str) -> Response {
    json_response(status, json!({ "detail": msg }).to_string())
}

/// Faithful mode's 400: `{"errors": {field: message}, "message": ...}`.
fn field_errors(errors: &FieldErrors) -> Response {
    let mut fields = serde_json::Map::new();
    for (field, msg) in errors {
        fields
            .entry((*field).to_owned())
            .or_insert_with(|| Value::String(msg.clone()));
    }
    json_response(
        StatusCode::BAD_REQUEST,
        json!({ "errors": fields, "message": "Input payload validation failed" }).to_string(),
    )
}

/// Kind mode's 422 for the same errors: one `detail` line.
fn kind_errors(errors: &FieldErrors) -> Response {
    let msg: Vec<String> = errors.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    detail(StatusCode::UNPROCESSABLE_ENTITY, &msg.join("; "))
}

fn unavailable() -> Response {
    detail(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
}

fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut r = detail(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}

/// Milliseconds since the UNIX epoch (0 for a clock before it).
fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A 200 that promises the whole `body` in `Content-Length`, sends its first
/// half, then fails the body stream, which makes hyper abort the connection:
/// the client gets the status and headers, then an unexpected EOF.
fn dropped_response(body: String) -> Response {
    let full = Bytes::from(body);
    let len = full.len();
    let head = full.slice(..len / 2);
    let stream = futures::stream::iter([Ok::<Bytes, std::io::Error>(head)]).chain(
        futures::stream::once(async {
            tokio::time::sleep(DROP_FLUSH).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "simulated connection drop",
            ))
        }),
    );
    let mut r = Response::new(Body::from_stream(stream));
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// Builds the router for `cfg` (each call gets fresh counters and alerts).
pub fn router(cfg: SimConfig) -> Router {
    let state: AppState = Arc::new(Shared {
        cfg,
        url_counts: Mutex::new(HashMap::new()),
        requests: AtomicU64::new(0),
        requests_paginated: AtomicU64::new(0),
        requests_point: AtomicU64::new(0),
        requests_configured_points: AtomicU64::new(0),
        pages_ok: AtomicU64::new(0),
        samples_served: AtomicU64::new(0),
        bytes_served: AtomicU64::new(0),
        by_site: Mutex::new(HashMap::new()),
        catalogues: Mutex::new(HashMap::new()),
        faults: AtomicU64::new(0),
        started: SystemTime::now(),
        outage_until_ms: AtomicU64::new(0),
        outage_rejections: AtomicU64::new(0),
        window_rejections: AtomicU64::new(0),
        drops: AtomicU64::new(0),
        slow_responses: AtomicU64::new(0),
        alerts: Mutex::new(Vec::new()),
        callbacks: Mutex::new(Vec::new()),
        alert_fail_sites: Mutex::new(HashMap::new()),
        alert_fail_next: AtomicU64::new(0),
    });
    Router::new()
        .route("/sites/:site/timeseries/paginated", get(timeseries))
        .route("/sites/:site/configured_points", get(configured_points))
        // One path segment: the name's slashes arrive as %2F, and routing
        // matches the still-encoded path.
        .route("/points/:point/timeseries", get(point_timeseries))
        .route("/points/get_timeseries", post(get_timeseries_post))
        .route("/__stats", get(stats))
        .route("/faults", get(get_faults))
        .route("/faults/outage", post(set_outage))
        .route("/alerts", get(list_alerts).post(post_alert))
        .route("/callbacks", get(list_callbacks).post(post_callback))
        .route("/alerts/fail-next", post(fail_next))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(state.clone(), latency))
        .with_state(state)
}

/// Serves `cfg` on `listener` until the process ends.
///
/// TCP_NODELAY matters: workerd keeps connections alive and writes requests
/// in pieces, and Nagle + delayed ACK would add ~40 ms per page.
pub async fn serve(listener: TcpListener, cfg: SimConfig) -> std::io::Result<()> {
    axum::serve(listener, router(cfg)).tcp_nodelay(true).await
}

/// Like [`serve`], but stops accepting when `signal` completes and returns
/// once in-flight requests have finished.
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    cfg: SimConfig,
    signal: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router(cfg))
        .tcp_nodelay(true)
        .with_graceful_shutdown(signal)
        .await
}

/// Adds the configured latency to every response.
async fn latency(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.cfg.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(s.cfg.latency_ms)).await;
    }
    next.run(req).await
}

/// Checks the bearer token: `None` if it is right, else the mode's answer
/// (401 without one; with a wrong one, 500 like ACE or 401 in kind mode).
fn check_auth(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        None => {
            let mut r = detail(StatusCode::UNAUTHORIZED, "Not authenticated");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(r)
        }
        Some(v) if v.strip_prefix("Bearer ").map(str::trim) != Some(s.cfg.token.as_str()) => {
            Some(match s.cfg.mode {
                Mode::Faithful => {
                    json_response(StatusCode::INTERNAL_SERVER_ERROR, UNHANDLED.to_owned())
                }
                Mode::Kind => detail(
                    StatusCode::UNAUTHORIZED,
                    "Invalid authentication credentials",
                ),
            })
        }
        Some(_) => None,
    }
}

/// The answer for an unknown site: 403 with ACE's all-null body, or kind
/// mode's 404.
fn unknown_site(mode: Mode) -> Response {
    match mode {
        Mode::Faithful => json_response(StatusCode::FORBIDDEN, NULL_SITE.to_owned()),
        Mode::Kind => detail(StatusCode::NOT_FOUND, "Site not found"),
    }
}

/// The answer for invalid parameters: 400 per field, or kind mode's 422.
fn invalid(mode: Mode, errors: &FieldErrors) -> Response {
    match mode {
        Mode::Faithful => field_errors(errors),
        Mode::Kind => kind_errors(errors),
    }
}

/// A timeseries request between arrival and its site's faults.
struct Admitted {
    url: String,
    attempt: u64,
    now: SystemTime,
}

/// The first steps of every timeseries request: counters, the attempt
/// number, the slow delay, the outage and authentication.
async fn admit(
    s: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
    site: Option<&str>,
) -> Result<Admitted, Response> {
    s.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(site) = site {
        lock(&s.by_site)
            .entry(site.to_owned())
            .or_default()
            .requests += 1;
    }
    let url = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let attempt = {
        let mut counts = lock(&s.url_counts);
        let c = counts.entry(url.clone()).or_insert(0);
        let seen = *c;
        *c += 1;
        seen
    };

    if let Some(delay) = faults::slow(&s.cfg, &url, attempt) {
        s.slow_responses.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
    }
    if let Some(delay) = site.and_then(faults::site_delay) {
        tokio::time::sleep(delay).await;
    }
    let now = SystemTime::now();
    if epoch_ms(now) < s.outage_until_ms.load(Ordering::SeqCst) {
        s.outage_rejections.fetch_add(1, Ordering::Relaxed);
        s.faults.fetch_add(1, Ordering::Relaxed);
        return Err(unavailable());
    }
    if let Some(r) = check_auth(s, headers) {
        return Err(r);
    }
    Ok(Admitted { url, attempt, now })
}

/// The site's faults (always-failing, window) and the per-request draw:
/// an error answer, or the body fault still to apply. (The error is a whole
/// response, used once per request: boxing it would buy nothing.)
#[allow(clippy::result_large_err)]
fn site_faults(s: &Shared, site: &str, a: &Admitted) -> Result<Fault, Response> {
    if s.cfg.fail_sites.iter().any(|f| f == site) {
        s.faults.fetch_add(1, Ordering::Relaxed);
        return Err(unavailable());
    }
    let window = faults::window_index(s.started, a.now, s.cfg.window_secs());
    if let Some(wf) = faults::window_fault(&s.cfg, site, window) {
        s.window_rejections.fetch_add(1, Ordering::Relaxed);
        s.faults.fetch_add(1, Ordering::Relaxed);
        return Err(match wf {
            WindowFault::Unavailable => unavailable(),
            WindowFault::TooManyRequests => too_many_requests(s.cfg.retry_after_secs),
        });
    }
    let fault = faults::decide(&s.cfg, &a.url, a.attempt);
    match fault {
        Fault::Status500 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            Err(detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            ))
        }
        Fault::Status503 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            Err(unavailable())
        }
        Fault::Status429 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            Err(too_many_requests(s.cfg.retry_after_secs))
        }
        Fault::None | Fault::Truncated | Fault::Garbage | Fault::Drop => Ok(fault),
    }
}

/// Runs `build` on the blocking pool when `large`, else inline.
async fn run_build<T: Send + 'static>(
    large: bool,
    build: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    if large {
        tokio::task::spawn_blocking(build)
            .await
            .map_err(|_| detail(StatusCode::INTERNAL_SERVER_ERROR, "page builder failed"))
    } else {
        Ok(build())
    }
}

/// Sends a built body, applying the body fault, and counts a whole 200.
fn finish(s: &Shared, site: &str, fault: Fault, page: Page) -> Response {
    match fault {
        Fault::Truncated => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            let mut body = page.body;
            let mut cut = body.len() / 2;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
            json_response(StatusCode::OK, body)
        }
        Fault::Garbage => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            json_response(
                StatusCode::OK,
                "<html><body><h1>502 Bad Gateway</h1>upstream sent garbage \u{fffd}</body></html>"
                    .to_owned(),
            )
        }
        Fault::Drop => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            s.drops.fetch_add(1, Ordering::Relaxed);
            dropped_response(page.body)
        }
        Fault::None | Fault::Status500 | Fault::Status503 | Fault::Status429 => {
            let bytes = page.body.len() as u64;
            s.pages_ok.fetch_add(1, Ordering::Relaxed);
            s.samples_served.fetch_add(page.samples, Ordering::Relaxed);
            s.bytes_served.fetch_add(bytes, Ordering::Relaxed);
            {
                let mut by_site = lock(&s.by_site);
                let e = by_site.entry(site.to_owned()).or_default();
                e.bytes += bytes;
                e.rows += page.samples;
            }
            json_response(StatusCode::OK, page.body)
        }
    }
}

/// The site's sorted reporting points, built once (on the blocking pool
/// for big sites) and cached.
async fn site_catalogue(s: &AppState, site: &str) -> Result<Arc<SiteCatalogue>, Response> {
    if let Some(c) = lock(&s.catalogues).get(site) {
        return Ok(c.clone());
    }
    let large = site_size(site, &s.cfg) >= BLOCKING_CATALOGUE;
    let (owned, cfg) = (site.to_owned(), s.cfg.clone());
    let built = Arc::new(run_build(large, move || SiteCatalogue::new(&owned, &cfg)).await?);
    let mut cache = lock(&s.catalogues);
    let held: usize = cache.values().map(|c| c.rows.len()).sum();
    if held + built.rows.len() > CATALOGUE_CACHE_POINTS {
        cache.clear();
    }
    Ok(cache.entry(site.to_owned()).or_insert(built).clone())
}

/// `GET /sites/{site}/timeseries/paginated`.
async fn timeseries(
    State(s): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    s.requests_paginated.fetch_add(1, Ordering::Relaxed);
    let a = match admit(&s, &headers, &uri, Some(&site)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if site.starts_with("unknown") {
        return unknown_site(s.cfg.mode);
    }
    let fault = match site_faults(&s, &site, &a) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let interval_ms = s.cfg.interval_ms();
    let built = match s.cfg.mode {
        Mode::Kind => {
            let q = match query::parse(uri.query()) {
                Ok(q) => q,
                Err(msg) => return detail(StatusCode::UNPROCESSABLE_ENTITY, &msg),
            };
            let large = q.page_size >= BLOCKING_PAGE_SIZE;
            let site = site.clone();
            let built = run_build(large, move || {
                let points = q
                    .points
                    .clone()
                    .unwrap_or_else(|| default_points(&site, DEFAULT_POINT_COUNT));
                page::build(&site, &points, &q, interval_ms)
            })
            .await;
            match built {
                Ok(Ok(p)) => p,
                Ok(Err(msg)) => return detail(StatusCode::UNPROCESSABLE_ENTITY, &msg),
                Err(r) => return r,
            }
        }
        Mode::Faithful => {
            let q = match query::parse_ace_page(uri.query()) {
                Ok(q) => q,
                Err(errors) => return field_errors(&errors),
            };
            let cat = match site_catalogue(&s, &site).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            let large = q.page_size >= BLOCKING_PAGE_SIZE;
            let (fmt, fix) = (s.cfg.time_format, s.cfg.fix_cursor);
            match run_build(large, move || {
                ace_page::site_page(&cat, &q, interval_ms, fmt, fix)
            })
            .await
            {
                Ok(p) => p,
                Err(r) => return r,
            }
        }
    };
    finish(&s, &site, fault, built)
}

/// The site a point name claims (its second segment without `ses_`), for
/// counting and, in kind mode, for its values.
fn claimed_site(name: &str) -> Option<&str> {
    name.strip_prefix("ses/ses_")?.split('/').next()
}

/// `GET /points/{point_name}/timeseries`: one point, unpaginated.
async fn point_timeseries(
    State(s): State<AppState>,
    point: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    s.requests_point.fetch_add(1, Ordering::Relaxed);
    let name = point.ok().map(|Path(p)| p);
    let site_hint = name.as_deref().and_then(claimed_site).map(str::to_owned);
    // Kind mode serves a name without `ses_{site}` under the site "".
    let counted = match s.cfg.mode {
        Mode::Faithful => site_hint.clone(),
        Mode::Kind => Some(site_hint.clone().unwrap_or_default()),
    };
    let a = match admit(&s, &headers, &uri, counted.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let not_found = || detail(StatusCode::NOT_FOUND, "Point not found");
    let Some(name) = name else {
        return not_found();
    };
    // A point of an unknown site: the site check answers first, as for
    // the site endpoints.
    if site_hint
        .as_deref()
        .is_some_and(|h| h.starts_with("unknown"))
    {
        return unknown_site(s.cfg.mode);
    }
    // (site, reporting?) or 404.
    let (site, reporting) = match s.cfg.mode {
        Mode::Faithful => match parse_default_point(&name) {
            Some((site, k)) if k < site_size(site, &s.cfg) => {
                let reporting = k < reporting_count(site_size(site, &s.cfg), &s.cfg);
                (site.to_owned(), reporting)
            }
            _ => return not_found(),
        },
        Mode::Kind => (site_hint.clone().unwrap_or_default(), true),
    };
    let fault = match site_faults(&s, &site, &a) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (start_ms, end_ms) = match query::parse_range(uri.query()) {
        Ok(r) => r,
        Err(errors) => return invalid(s.cfg.mode, &errors),
    };
    let interval_ms = s.cfg.interval_ms();
    let fmt = match s.cfg.mode {
        Mode::Faithful => s.cfg.time_format,
        Mode::Kind => TimeFormat::Z,
    };
    let rows = (end_ms.saturating_sub(start_ms) / interval_ms.max(1)).unsigned_abs();
    let site_for_build = site.clone();
    let built = run_build(rows >= BLOCKING_PAGE_SIZE, move || {
        ace_page::point_body(
            &site_for_build,
            &name,
            reporting,
            start_ms,
            end_ms,
            interval_ms,
            fmt,
        )
    })
    .await;
    match built {
        Ok(p) => finish(&s, &site, fault, p),
        Err(r) => r,
    }
}

/// `POST /points/get_timeseries`: in ACE's schema, but it answers 400.
async fn get_timeseries_post() -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({
            "message": "The browser (or proxy) sent a request that this server could not understand."
        })
        .to_string(),
    )
}

/// `GET /sites/{site}/configured_points?page&per_page`: the whole catalogue
/// (silent points included; kind mode: the 10 default points), 1-based pages.
async fn configured_points(
    State(s): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    s.requests_configured_points.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = check_auth(&s, &headers) {
        return r;
    }
    if site.starts_with("unknown") {
        return unknown_site(s.cfg.mode);
    }
    let q = match query::parse_list(uri.query()) {
        Ok(q) => q,
        Err(errors) => return invalid(s.cfg.mode, &errors),
    };
    let total = match s.cfg.mode {
        Mode::Faithful => site_size(&site, &s.cfg),
        Mode::Kind => DEFAULT_POINT_COUNT,
    } as u64;
    let interval = s.cfg.collect_interval_secs;
    let large = q.per_page >= 10_000;
    let built = run_build(large, move || {
        list_body(&site, total, q.page, q.per_page, interval)
    })
    .await;
    match built {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(r) => r,
    }
}

/// One page of `configured_points`.
fn list_body(site: &str, total: u64, page: u64, per_page: u64, collect_interval: u64) -> String {
    let per_page = per_page.max(1);
    let pages = total.div_ceil(per_page);
    let from = page.saturating_sub(1).saturating_mul(per_page).min(total);
    let to = from.saturating_add(per_page).min(total);
    let mut site_json = String::with_capacity(site.len() + 2);
    push_json_str(&mut site_json, site);
    let mut body = String::with_capacity(
        usize::try_from(to - from)
            .unwrap_or(0)
            .saturating_mul(site.len() + 360)
            .saturating_add(128),
    );
    body.push_str("{\"items\":[");
    for k in from..to {
        let name = default_point(site, usize::try_from(k).unwrap_or(usize::MAX));
        if k > from {
            body.push(',');
        }
        // A stable id that fits a JavaScript number.
        let id = seed_of(site, &name) >> 12;
        body.push_str(&format!("{{\"id\":{id},\"name\":"));
        push_json_str(&mut body, &name);
        body.push_str(",\"site\":");
        body.push_str(&site_json);
        body.push_str(&format!(
            ",\"client\":\"ace-sim\",\"point_type\":\"bacnet\",\"collect_enabled\":true,\
             \"collect_interval\":{collect_interval},\"marker_tags\":[],\"kv_tags\":{{}},\
             \"collect_config\":{{}},\"bacnet_data\":{{}},\
             \"created\":\"2024-01-01T00:00:00\",\"updated\":\"2024-01-01T00:00:00\"}}"
        ));
    }
    body.push_str(&format!(
        "],\"page\":{page},\"pages\":{pages},\"per_page\":{per_page},\"total\":{total}}}"
    ));
    body
}

async fn stats(State(s): State<AppState>) -> Response {
    let by_site: serde_json::Map<String, Value> = lock(&s.by_site)
        .iter()
        .map(|(site, st)| {
            (
                site.clone(),
                json!({ "bytes": st.bytes, "rows": st.rows, "requests": st.requests }),
            )
        })
        .collect();
    let rows = s.samples_served.load(Ordering::Relaxed);
    json_response(
        StatusCode::OK,
        json!({
            "mode": match s.cfg.mode { Mode::Faithful => "faithful", Mode::Kind => "kind" },
            "requests": s.requests.load(Ordering::Relaxed),
            "requests_paginated": s.requests_paginated.load(Ordering::Relaxed),
            "requests_point": s.requests_point.load(Ordering::Relaxed),
            "requests_configured_points": s.requests_configured_points.load(Ordering::Relaxed),
            "pages_ok": s.pages_ok.load(Ordering::Relaxed),
            "samples_served": rows,
            "rows_served": rows,
            "bytes_served": s.bytes_served.load(Ordering::Relaxed),
            "faults": s.faults.load(Ordering::Relaxed),
            "by_site": by_site,
        })
        .to_string(),
    )
}

#[derive(Deserialize)]
struct FaultsQuery {
    site: Option<String>,
}

/// The fault state as JSON: the outage, its rejections, the window settings
/// and the current window, and the other fault counters. With `site`, also
/// whether that site's current window is faulty (`window_fault`: 503, 429
/// or null).
fn faults_json(s: &Shared, site: Option<&str>) -> Value {
    let now = SystemTime::now();
    let now_ms = epoch_ms(now);
    let until = s.outage_until_ms.load(Ordering::SeqCst);
    let secs = s.cfg.window_secs();
    let window = faults::window_index(s.started, now, secs);
    let started_ms = epoch_ms(s.started);
    let window_ms = secs.saturating_mul(1000);
    let mut v = json!({
        "seed": s.cfg.seed,
        "now_ms": now_ms,
        "outage_until_ms": (until > now_ms).then_some(until),
        "outage_rejections": s.outage_rejections.load(Ordering::Relaxed),
        "fault_window_secs": secs,
        "window_fault_rate": s.cfg.window_fault_rate,
        "window_basis": "server_start",
        "window_started_at_ms": started_ms,
        "window_index": window,
        "window_ends_at_ms": started_ms
            .saturating_add(window.saturating_add(1).saturating_mul(window_ms)),
        "window_rejections": s.window_rejections.load(Ordering::Relaxed),
        "rate_drop": s.cfg.rate_drop,
        "drops": s.drops.load(Ordering::Relaxed),
        "rate_slow": s.cfg.rate_slow,
        "slow_ms": s.cfg.slow_ms,
        "slow_responses": s.slow_responses.load(Ordering::Relaxed),
    });
    if let Some(site) = site {
        v["site"] = json!({
            "name": site,
            "window_fault": faults::window_fault(&s.cfg, site, window).map(WindowFault::status),
        });
    }
    v
}

async fn get_faults(
    State(s): State<AppState>,
    q: Result<Query<FaultsQuery>, QueryRejection>,
) -> Response {
    match q {
        Ok(Query(q)) => json_response(
            StatusCode::OK,
            faults_json(&s, q.site.as_deref()).to_string(),
        ),
        Err(e) => detail(StatusCode::UNPROCESSABLE_ENTITY, &e.body_text()),
    }
}

#[derive(Deserialize)]
struct OutageQuery {
    secs: Option<u64>,
    ms: Option<u64>,
}

/// Starts a full outage: every timeseries request answers 503 for the next
/// `secs` seconds (or `ms` milliseconds); 0 ends a running one. Answers
/// with the same JSON as `GET /faults`.
async fn set_outage(
    State(s): State<AppState>,
    q: Result<Query<OutageQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return detail(StatusCode::UNPROCESSABLE_ENTITY, &e.body_text()),
    };
    let len_ms = match (q.secs, q.ms) {
        (Some(secs), None) => secs.saturating_mul(1000),
        (None, Some(ms)) => ms,
        (None, None) => {
            return detail(StatusCode::UNPROCESSABLE_ENTITY, "secs is required");
        }
        (Some(_), Some(_)) => {
            return detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "give secs or ms, not both",
            );
        }
    };
    let until = if len_ms == 0 {
        0
    } else {
        epoch_ms(SystemTime::now()).saturating_add(len_ms)
    };
    s.outage_until_ms.store(until, Ordering::SeqCst);
    json_response(StatusCode::OK, faults_json(&s, None).to_string())
}

/// Records an alert. Bodies that are not JSON are kept as a JSON string so
/// a test can still see what the webhook sent.
async fn post_alert(State(s): State<AppState>, body: Bytes) -> Response {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let for_site = value["site"].as_str().is_some_and(|site| {
        let mut sites = lock(&s.alert_fail_sites);
        match sites.get_mut(site) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    });
    let fail = for_site
        || s.alert_fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if fail {
        return detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulated alert receiver failure",
        );
    }
    lock(&s.alerts).push(value);
    json_response(StatusCode::OK, json!({ "ok": true }).to_string())
}

/// A job callback's receiver (the pipeline's `callback_url` in tests):
/// keeps the signature, the idempotency key and the body exactly as sent.
async fn post_callback(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    lock(&s.callbacks).push(json!({
        "signature": h("x-signature"),
        "idempotency_key": h("idempotency-key"),
        "body": String::from_utf8_lossy(&body),
    }));
    json_response(StatusCode::OK, json!({ "ok": true }).to_string())
}

async fn list_callbacks(State(s): State<AppState>) -> Response {
    let body = Value::Array(lock(&s.callbacks).clone()).to_string();
    json_response(StatusCode::OK, body)
}

async fn list_alerts(State(s): State<AppState>) -> Response {
    let body = Value::Array(lock(&s.alerts).clone()).to_string();
    json_response(StatusCode::OK, body)
}

#[derive(Deserialize)]
struct FailNext {
    n: Option<u64>,
    site: Option<String>,
}

/// Makes the next `n` (default 1) alert POSTs answer 500: any alert, or
/// with `site` only alerts about that site (so parallel tests don't share
/// the failures).
async fn fail_next(State(s): State<AppState>, Query(q): Query<FailNext>) -> Response {
    let n = q.n.unwrap_or(1);
    match q.site {
        Some(site) => {
            lock(&s.alert_fail_sites).insert(site.clone(), n);
            json_response(
                StatusCode::OK,
                json!({ "fail_next": n, "site": site }).to_string(),
            )
        }
        None => {
            s.alert_fail_next.store(n, Ordering::SeqCst);
            json_response(StatusCode::OK, json!({ "fail_next": n }).to_string())
        }
    }
}

//! The HTTP surface: the paginated timeseries endpoint, counters, the fault
//! controls, the alert receiver and a health check.
//!
//! Check order on the timeseries endpoint mirrors a real gateway + app:
//! the seeded slow-response delay, a full outage (the gateway is down, so it
//! answers before authentication), authentication, site lookup, the
//! always-failing sites, the site's fault window, then the seeded per-request
//! fault, then parameter validation, then the page (which a body fault may
//! truncate, replace or drop mid-way). The per-URL attempt counter is bumped
//! for every request so retries draw fresh fault numbers. The outage and the
//! window are judged at answer time, after any slow delay.
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
use axum::extract::rejection::QueryRejection;
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

use crate::config::SimConfig;
use crate::data::default_points;
use crate::faults::{self, Fault, WindowFault};
use crate::{page, query};

/// How many points a site serves when the request names none.
const DEFAULT_POINT_COUNT: usize = 10;
/// Pages at least this large are built on the blocking pool: a 500,000-sample
/// page takes long enough to stall other connections on the runtime.
const BLOCKING_PAGE_SIZE: u64 = 50_000;
/// How long a dropped response waits between its partial body and the
/// abort. Hyper only flushes when the body stream is pending; an error right
/// after the first chunk could discard the buffered head, and the client
/// would see no response at all instead of a body cut short.
const DROP_FLUSH: Duration = Duration::from_millis(20);

/// State shared by all handlers.
struct Shared {
    cfg: SimConfig,
    /// Path+query → requests seen so far, for the fault decision.
    url_counts: Mutex<HashMap<String, u64>>,
    requests: AtomicU64,
    pages_ok: AtomicU64,
    samples_served: AtomicU64,
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
        pages_ok: AtomicU64::new(0),
        samples_served: AtomicU64::new(0),
        faults: AtomicU64::new(0),
        started: SystemTime::now(),
        outage_until_ms: AtomicU64::new(0),
        outage_rejections: AtomicU64::new(0),
        window_rejections: AtomicU64::new(0),
        drops: AtomicU64::new(0),
        slow_responses: AtomicU64::new(0),
        alerts: Mutex::new(Vec::new()),
        alert_fail_sites: Mutex::new(HashMap::new()),
        alert_fail_next: AtomicU64::new(0),
    });
    Router::new()
        .route("/sites/:site/timeseries/paginated", get(timeseries))
        .route("/__stats", get(stats))
        .route("/faults", get(get_faults))
        .route("/faults/outage", post(set_outage))
        .route("/alerts", get(list_alerts).post(post_alert))
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

async fn timeseries(
    State(s): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
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
    let now = SystemTime::now();
    if epoch_ms(now) < s.outage_until_ms.load(Ordering::SeqCst) {
        s.outage_rejections.fetch_add(1, Ordering::Relaxed);
        s.faults.fetch_add(1, Ordering::Relaxed);
        return unavailable();
    }

    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        None => {
            let mut r = detail(StatusCode::UNAUTHORIZED, "Not authenticated");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        Some(v) if v.strip_prefix("Bearer ").map(str::trim) != Some(s.cfg.token.as_str()) => {
            return detail(
                StatusCode::UNAUTHORIZED,
                "Invalid authentication credentials",
            );
        }
        Some(_) => {}
    }
    if site.starts_with("unknown") {
        return detail(StatusCode::NOT_FOUND, "Site not found");
    }
    if s.cfg.fail_sites.contains(&site) {
        s.faults.fetch_add(1, Ordering::Relaxed);
        return unavailable();
    }
    let window = faults::window_index(s.started, now, s.cfg.window_secs());
    if let Some(wf) = faults::window_fault(&s.cfg, &site, window) {
        s.window_rejections.fetch_add(1, Ordering::Relaxed);
        s.faults.fetch_add(1, Ordering::Relaxed);
        return match wf {
            WindowFault::Unavailable => unavailable(),
            WindowFault::TooManyRequests => too_many_requests(s.cfg.retry_after_secs),
        };
    }

    let fault = faults::decide(&s.cfg, &url, attempt);
    match fault {
        Fault::Status500 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            return detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
        Fault::Status503 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            return unavailable();
        }
        Fault::Status429 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            return too_many_requests(s.cfg.retry_after_secs);
        }
        Fault::None | Fault::Truncated | Fault::Garbage | Fault::Drop => {}
    }

    let q = match query::parse(uri.query()) {
        Ok(q) => q,
        Err(msg) => return detail(StatusCode::UNPROCESSABLE_ENTITY, &msg),
    };
    let interval_ms = s.cfg.interval_ms();
    let large = q.page_size >= BLOCKING_PAGE_SIZE;
    let build = move || {
        let points = q
            .points
            .clone()
            .unwrap_or_else(|| default_points(&site, DEFAULT_POINT_COUNT));
        page::build(&site, &points, &q, interval_ms)
    };
    let built = if large {
        match tokio::task::spawn_blocking(build).await {
            Ok(r) => r,
            Err(_) => return detail(StatusCode::INTERNAL_SERVER_ERROR, "page builder failed"),
        }
    } else {
        build()
    };
    let page = match built {
        Ok(p) => p,
        Err(msg) => return detail(StatusCode::UNPROCESSABLE_ENTITY, &msg),
    };

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
            s.pages_ok.fetch_add(1, Ordering::Relaxed);
            s.samples_served.fetch_add(page.samples, Ordering::Relaxed);
            json_response(StatusCode::OK, page.body)
        }
    }
}

async fn stats(State(s): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "requests": s.requests.load(Ordering::Relaxed),
            "pages_ok": s.pages_ok.load(Ordering::Relaxed),
            "samples_served": s.samples_served.load(Ordering::Relaxed),
            "faults": s.faults.load(Ordering::Relaxed),
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

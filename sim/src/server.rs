//! The HTTP surface: the paginated timeseries endpoint, counters, the alert
//! receiver and a health check.
//!
//! Check order on the timeseries endpoint mirrors a real gateway + app:
//! authentication, site lookup, the always-failing sites, then the seeded
//! fault, then parameter validation, then the page. The per-URL attempt
//! counter is bumped for every request so retries draw fresh fault numbers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::config::SimConfig;
use crate::data::default_points;
use crate::faults::{self, Fault};
use crate::{page, query};

/// How many points a site serves when the request names none.
const DEFAULT_POINT_COUNT: usize = 10;
/// Pages at least this large are built on the blocking pool: a 500,000-sample
/// page takes long enough to stall other connections on the runtime.
const BLOCKING_PAGE_SIZE: u64 = 50_000;

/// State shared by all handlers.
struct Shared {
    cfg: SimConfig,
    /// Path+query → requests seen so far, for the fault decision.
    url_counts: Mutex<HashMap<String, u64>>,
    requests: AtomicU64,
    pages_ok: AtomicU64,
    samples_served: AtomicU64,
    faults: AtomicU64,
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

/// Builds the router for `cfg` (each call gets fresh counters and alerts).
pub fn router(cfg: SimConfig) -> Router {
    let state: AppState = Arc::new(Shared {
        cfg,
        url_counts: Mutex::new(HashMap::new()),
        requests: AtomicU64::new(0),
        pages_ok: AtomicU64::new(0),
        samples_served: AtomicU64::new(0),
        faults: AtomicU64::new(0),
        alerts: Mutex::new(Vec::new()),
        alert_fail_sites: Mutex::new(HashMap::new()),
        alert_fail_next: AtomicU64::new(0),
    });
    Router::new()
        .route("/sites/:site/timeseries/paginated", get(timeseries))
        .route("/__stats", get(stats))
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
        return detail(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable");
    }

    let fault = faults::decide(&s.cfg, &url, attempt);
    match fault {
        Fault::Status500 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            return detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
        Fault::Status503 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            return detail(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable");
        }
        Fault::Status429 => {
            s.faults.fetch_add(1, Ordering::Relaxed);
            let mut r = detail(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(s.cfg.retry_after_secs),
            );
            return r;
        }
        Fault::None | Fault::Truncated | Fault::Garbage => {}
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
        _ => {
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

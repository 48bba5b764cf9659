//! The status page (`/`), `/healthz` and `/openapi.json`.

use tsp_core::api::{Health, HealthStatus};
use worker::{Headers, Response, ResponseBuilder};

use super::doc::{GatewayTimeout, ServiceUnavailable, Unauthorized};

/// The status page, served at `/` (inline CSS and JS, no CDN).
const STATUS_PAGE: &str = include_str!("../page.html");

/// The status page. It holds no data: it asks for a token and calls the API.
pub fn page() -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "text/html; charset=utf-8");
    let _ = headers.set("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:");
    ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(STATUS_PAGE.as_bytes().to_vec())
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "meta",
    summary = "Liveness", security(()),
    responses((status = 200, description = "Alive.", body = Health)))]
pub fn healthz() -> Response {
    crate::json(
        200,
        &Health {
            status: HealthStatus::Ok,
        },
    )
}

/// The document as generated (`crate::openapi`), checked in and served.
pub const SERVED: &str = include_str!("../../openapi.json");

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "meta",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object),
        (status = 401, response = Unauthorized), (status = 503, response = ServiceUnavailable),
        (status = 504, response = GatewayTimeout)))]
pub fn openapi_json() -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(SERVED.as_bytes().to_vec())
}

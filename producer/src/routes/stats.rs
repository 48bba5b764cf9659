//! `/v1/stats` and `/v1/metrics`: the caller's figures.

use crate::error::HttpError;
use tsp_core::api::Stats;
use tsp_core::service::{manage, metrics as openmetrics};
use worker::{Headers, Response, ResponseBuilder};

use super::doc::{GatewayTimeout, ServiceUnavailable, Unauthorized};
use super::Cx;
use crate::json;

/// Counts, recent throughput and durations of the caller's jobs.
#[utoipa::path(get, path = "/v1/stats", operation_id = "getStats", tag = "jobs",
    responses((status = 200, description = "The statistics.", body = Stats),
        (status = 401, response = Unauthorized), (status = 503, response = ServiceUnavailable),
        (status = 504, response = GatewayTimeout)))]
pub async fn stats(cx: Cx<'_>) -> Result<Response, HttpError> {
    let limits = (cx.b.cfg.daily_chunk_quota, cx.b.cfg.store_max_bytes);
    Ok(json(
        200,
        &manage::stats(&cx.b.db, &cx.b.clock, cx.owner, limits).await?,
    ))
}

/// The caller's figures and the shared ones in the OpenMetrics text format.
///
/// Jobs by status, queue depth, throughput and failure rate over the last
/// hour, dead letters in the last day, the upstream circuit state, the shared
/// sample store (size, hit ratio, upstream bytes saved), and the
/// resource maxima of the last day's consumer invocations, as OpenMetrics
/// gauges (`# EOF` terminated). Authenticated like every route.
#[utoipa::path(get, path = "/v1/metrics", operation_id = "getMetrics", tag = "stats",
    responses((status = 200, description = "OpenMetrics text.",
            content((String = openmetrics::CONTENT_TYPE))),
        (status = 401, response = Unauthorized), (status = 503, response = ServiceUnavailable),
        (status = 504, response = GatewayTimeout)))]
pub async fn metrics(cx: Cx<'_>) -> Result<Response, HttpError> {
    let limits = (cx.b.cfg.daily_chunk_quota, cx.b.cfg.store_max_bytes);
    let body = openmetrics::render(&cx.b.db, &cx.b.clock, cx.owner, limits).await?;
    let headers = Headers::new();
    let _ = headers.set("content-type", openmetrics::CONTENT_TYPE);
    Ok(ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(body.into_bytes()))
}

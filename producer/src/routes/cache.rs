//! The Workers Cache for answers of complete buckets (aggregates pages,
//! chart series): reads and writes bounded by the storage timeout, and a
//! cache failure is a miss, never an error.

use tsp_core::timeout::within;
use worker::{Headers, ResponseBuilder};

use super::Cx;

/// A cached body and its content type, if the cache holds `key`.
pub async fn get(cx: Cx<'_>, key: &str) -> Option<(Vec<u8>, String)> {
    let cache = worker::Cache::default();
    let got = within(
        &cx.b.clock,
        cx.b.cfg.storage_timeout_ms,
        cache.get(key, false),
    )
    .await;
    let mut resp = got?.ok()??;
    let media = resp.headers().get("content-type").ok().flatten()?;
    let body = resp.bytes().await.ok()?;
    Some((body, media))
}

/// Keeps `body` under `key` for `ttl_s` seconds.
pub async fn put(cx: Cx<'_>, key: &str, body: &[u8], media: &str, ttl_s: u32) {
    let headers = Headers::new();
    let _ = headers.set("content-type", media);
    let _ = headers.set("cache-control", &format!("max-age={ttl_s}"));
    let resp = ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(body.to_vec());
    let cache = worker::Cache::default();
    let put = within(
        &cx.b.clock,
        cx.b.cfg.storage_timeout_ms,
        cache.put(key, resp),
    )
    .await;
    if !matches!(put, Some(Ok(()))) {
        worker::console_warn!("cache put failed for {key}");
    }
}

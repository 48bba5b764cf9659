//! `/v1/jobs/{id}/result`: a completed job's object, as stored or converted.

use futures::StreamExt;
use tsp_core::error::{Error, StoreError};
use tsp_core::export::{Exporter, Format};
use tsp_core::job::JobStatus;
use tsp_core::timeout::within;
use worker::{Headers, Request, Response, ResponseBuilder};

use super::doc::{
    Conflict, GatewayTimeout, Gone, NotFound, ResultFormat, ResultObject, ServiceUnavailable,
    Unauthorized,
};
use super::{owned_job, query, Cx, JobIdParam};

/// A completed result never changes (its key is the request's hash and it
/// is written once), so clients and caches may keep it.
pub const RESULT_CACHE_CONTROL: &str = "private, max-age=86400, immutable";

/// The result's form.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultFormatParams {
    /// `csv` for CSV, `jsonl` or `ndjson` for JSON Lines; otherwise the binary object.
    #[param(value_type = Option<ResultFormat>)]
    format: Option<String>,
}

/// The result object of a completed job.
///
/// Streams the columnar result (a multi-member gzip stream of MessagePack
/// maps) from R2, or converts it to CSV or JSON Lines with `format` (or an
/// `Accept` of `text/csv` or `application/x-ndjson`). 409 until the job is
/// completed.
#[utoipa::path(get, path = "/v1/jobs/{id}/result", operation_id = "getJobResult", tag = "jobs",
    params(JobIdParam, ResultFormatParams,
        ("If-None-Match" = Option<String>, Header, description = "`*` or entity tags of the binary object the client holds (compared weakly); 304 when one is current. Ignored for the CSV and JSON Lines forms, which have no ETag.")),
    responses(
        (status = 200, description = "The result.",
            headers(("ETag" = String, description = "The object's ETag (binary form only)."),
                ("Cache-Control" = String, description = "`private, max-age=86400, immutable`."),
                ("Content-Disposition" = String, description = "`attachment; filename=\"{id}.msgpack.gz\"` (or `.csv`, `.jsonl`)."),
                ("X-Content-SHA256" = String, description = "SHA-256 (hex) of the object (binary form only).")),
            content(
                (inline(ResultObject) = "application/vnd.tsp.columnar+msgpack+gzip"),
                (String = "text/csv"),
                (String = "application/x-ndjson"))),
        (status = 304, description = "The client's copy of the binary object (`If-None-Match`) is current.",
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 410, response = Gone),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn get(req: &Request, cx: Cx<'_>, id: &str) -> Result<Response, Error> {
    let job = owned_job(cx, id).await?;
    let key = match (&job.status, &job.result_key) {
        (JobStatus::Completed, Some(k)) => k.clone(),
        _ => {
            return Err(Error::Conflict(format!(
                "job is {}; the result exists once it is completed",
                job.status
            )))
        }
    };
    // The streaming read bypasses `TimedBlobs`, so it gets the same timeout
    // here (for the object's head; the body then streams to the client).
    let get = cx.b.bucket.get(&key).execute();
    let obj = within(&cx.b.clock, cx.b.cfg.storage_timeout_ms, get)
        .await
        .ok_or(StoreError::Timeout("result object get"))?
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .ok_or_else(|| {
            Error::Gone(
                "the result object no longer exists; submit the job again with \"force\": true"
                    .to_owned(),
            )
        })?;
    let headers = Headers::new();
    let _ = headers.set("cache-control", RESULT_CACHE_CONTROL);
    let header = |k: &str| req.headers().get(k).ok().flatten();
    let ResultFormatParams { format } = query(req)?;
    if let Some(format) = Format::negotiate(format.as_deref(), header("accept").as_deref()) {
        // The converted text has no stored ETag of its own, so no 304 either.
        return export(obj, format, headers, job.id.as_str());
    }
    let etag = obj.http_etag();
    let _ = headers.set("etag", &etag);
    if header("if-none-match").is_some_and(|v| etag_matches(&v, &etag)) {
        return Ok(ResponseBuilder::new()
            .with_status(304)
            .with_headers(headers)
            .empty());
    }
    let _ = headers.set("content-type", "application/vnd.tsp.columnar+msgpack+gzip");
    let _ = headers.set(
        "content-disposition",
        &format!("attachment; filename=\"{}.msgpack.gz\"", job.id),
    );
    let _ = headers.set("content-length", &obj.size().to_string());
    if let Some(sha) = &job.result_sha256 {
        let _ = headers.set("x-content-sha256", sha);
    }
    let body = obj
        .body()
        .ok_or_else(|| StoreError::Backend("result object has no body".to_owned()))?
        .response_body()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .body(body))
}

/// `If-None-Match` (RFC 9110 13.1.2): `*`, or a list of entity tags compared
/// weakly (`W/` ignored).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    fn opaque(tag: &str) -> &str {
        tag.trim().trim_start_matches("W/")
    }
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| opaque(t) == opaque(etag))
}

/// Streams the object converted to CSV or JSON Lines: R2 bytes flow through
/// an [`Exporter`] chunk by chunk, so memory stays at about one block.
fn export(
    obj: worker::Object,
    format: Format,
    headers: Headers,
    id: &str,
) -> Result<Response, Error> {
    let bytes = obj
        .body()
        .ok_or_else(|| StoreError::Backend("result object has no body".to_owned()))?
        .stream()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let _ = headers.set("content-type", format.content_type());
    let ext = match format {
        Format::Csv => "csv",
        Format::JsonLines => "jsonl",
    };
    let _ = headers.set(
        "content-disposition",
        &format!("attachment; filename=\"{id}.{ext}\""),
    );
    let state = (bytes, Some(Exporter::new(format)));
    let stream = futures::stream::unfold(state, |(mut bytes, exporter)| async move {
        let mut exporter = exporter?;
        loop {
            let next = match bytes.next().await {
                Some(Ok(chunk)) => exporter.push(&chunk),
                Some(Err(e)) => Err(tsp_core::codec::CodecError::Invalid(e.to_string())),
                None => {
                    let tail = exporter
                        .finish()
                        .map_err(|e| worker::Error::RustError(e.to_string()));
                    return Some((tail, (bytes, None)));
                }
            };
            match next {
                Ok(text) if text.is_empty() => continue,
                Ok(text) => return Some((Ok(text), (bytes, Some(exporter)))),
                Err(e) => {
                    return Some((Err(worker::Error::RustError(e.to_string())), (bytes, None)))
                }
            }
        }
    });
    let resp = Response::from_stream(stream).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(resp.with_status(200).with_headers(headers))
}

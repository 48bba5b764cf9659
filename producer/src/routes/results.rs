//! `/v1/jobs/{id}/result`: a completed job's object, as stored or converted.

use crate::error::HttpError;
use futures::StreamExt;
use tsp_core::api::{PARQUET_MEDIA_TYPE, RESULT_GZIP_MEDIA_TYPE};
use tsp_core::error::{Error, StoreError};
use tsp_core::export::{Exporter, Format};
use tsp_core::job::{Job, JobStatus};
use tsp_core::time::http_date;
use worker::{Headers, Range as R2Range, Request, Response, ResponseBuilder};

use crate::range::Ranged;

use super::doc::{
    Conflict, Forbidden, GatewayTimeout, Gone, NotFound, RangeNotSatisfiable, ResultFormat,
    ResultObject, ServiceUnavailable, Unauthorized,
};
use super::{owned_job, query, Cx, JobIdParam};

/// A completed result never changes (its key is the request's hash and it
/// is written once), so clients and caches may keep it.
pub const RESULT_CACHE_CONTROL: &str = "private, max-age=86400, immutable";

/// The result's form.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultFormatParams {
    /// `csv` for CSV, `jsonl` or `ndjson` for JSON Lines, `parquet` for the
    /// Parquet file (as `result.parquet` serves it); otherwise the binary object.
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
        ("If-None-Match" = Option<String>, Header, description = "`*` or entity tags of the binary object the client holds (compared weakly); 304 when one is current. Ignored for the CSV and JSON Lines forms, which have no ETag."),
        ("Range" = Option<String>, Header, description = "One range of bytes of the binary object (`bytes=0-99`, `bytes=500-`, `bytes=-8`): 206 with those bytes, read from R2 with a range read; 416 when none of the object is in it. Several ranges, other units or a malformed value get the whole object. Ignored for the CSV and JSON Lines forms."),
        ("If-Range" = Option<String>, Header, description = "The ETag the client's earlier bytes came from: the range applies only while it is current, else the whole object comes.")),
    responses(
        (status = 200, description = "The result.",
            headers(("ETag" = String, description = "The object's ETag (binary form only)."),
                ("Cache-Control" = String, description = "`private, max-age=86400, immutable`."),
                ("Content-Disposition" = String, description = "`attachment; filename=\"{id}.msgpack.gz\"` (or `.csv`, `.jsonl`)."),
                ("X-Content-SHA256" = String, description = "SHA-256 (hex) of the object (binary form only)."),
                ("Accept-Ranges" = String, description = "`bytes` (binary form only).")),
            content(
                (inline(ResultObject) = RESULT_GZIP_MEDIA_TYPE),
                (String = "text/csv"),
                (String = "application/x-ndjson"),
                (Vec<u8> = PARQUET_MEDIA_TYPE))),
        (status = 206, description = "One range of the binary object, or of the Parquet file with `format=parquet`.",
            headers(("Content-Range" = String, description = "`bytes {first}-{last}/{size}`."),
                ("Content-Length" = String, description = "The range's length."),
                ("ETag" = String, description = "The object's ETag."),
                ("Accept-Ranges" = String, description = "`bytes`.")),
            content((inline(ResultObject) = RESULT_GZIP_MEDIA_TYPE), (Vec<u8> = PARQUET_MEDIA_TYPE))),
        (status = 304, description = "The client's copy of the binary object (`If-None-Match`) is current.",
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 410, response = Gone),
        (status = 416, response = RangeNotSatisfiable),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn get(req: &Request, cx: Cx<'_>, id: &str) -> Result<Response, HttpError> {
    let job = owned_job(cx, id).await?;
    let key = completed(&job, job.result_key.as_ref())?;
    let header = |k: &str| req.headers().get(k).ok().flatten();
    let ResultFormatParams { format } = query(req)?;
    let accept = header("accept").unwrap_or_default();
    if format.as_deref() == Some("parquet") || accept.contains(PARQUET_MEDIA_TYPE) {
        return parquet_of(req, cx, &job).await;
    }
    if let Some(format) = Format::negotiate(format.as_deref(), Some(accept.as_str())) {
        // The converted text has no stored ETag of its own, so no 304 either.
        if is_head(req) {
            // The object's head says it exists; no stream is opened.
            read_head(cx, &key).await?;
            let headers = cached();
            export_headers(format, &headers, job.id.as_str());
            return Ok(ResponseBuilder::new().with_headers(headers).empty());
        }
        let obj = read(cx, &key, None).await?;
        return export(obj, format, cached(), job.id.as_str());
    }
    stored(req, cx, &job, (&key, Stored::Object)).await
}

/// The same rows as Parquet, for in-place queries.
///
/// The job's result as Parquet (`point`, `time`, `value`, `text`; zstd;
/// one row group per point and window, with statistics and page indexes),
/// made by the consumer beside the object. `HEAD` gives its size, and
/// `Range` reads (suffix ranges too) are served from R2 with range reads,
/// so DuckDB's httpfs, duckdb-wasm or pyarrow read only the footer and the
/// column chunks a query needs. 409 until the job is completed; 404 when
/// it was written without Parquet (`PARQUET_RESULTS=0`).
#[utoipa::path(get, path = "/v1/jobs/{id}/result.parquet", operation_id = "getJobResultParquet", tag = "jobs",
    params(JobIdParam,
        ("If-None-Match" = Option<String>, Header, description = "`*` or entity tags the client holds; 304 when one is current."),
        ("Range" = Option<String>, Header, description = "One range of bytes (`bytes=0-99`, `bytes=500-`, `bytes=-8`): 206 with those bytes; 416 when none of the file is in it."),
        ("If-Range" = Option<String>, Header, description = "The ETag the client's earlier bytes came from.")),
    responses(
        (status = 200, description = "The Parquet file.",
            headers(("ETag" = String, description = "The file's ETag: stable, the file is written once."),
                ("Last-Modified" = String, description = "When the file was written."),
                ("Cache-Control" = String, description = "`private, max-age=86400, immutable`."),
                ("Content-Length" = String, description = "The file's size."),
                ("Accept-Ranges" = String, description = "`bytes`.")),
            content((Vec<u8> = PARQUET_MEDIA_TYPE))),
        (status = 206, description = "One range of the file.",
            headers(("Content-Range" = String, description = "`bytes {first}-{last}/{size}`."),
                ("Content-Length" = String, description = "The range's length."),
                ("ETag" = String, description = "The file's ETag."),
                ("Accept-Ranges" = String, description = "`bytes`.")),
            content((Vec<u8> = PARQUET_MEDIA_TYPE))),
        (status = 304, description = "The client's copy (`If-None-Match`) is current.",
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 410, response = Gone),
        (status = 416, response = RangeNotSatisfiable),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn parquet(req: &Request, cx: Cx<'_>, id: &str) -> Result<Response, HttpError> {
    let job = owned_job(cx, id).await?;
    parquet_of(req, cx, &job).await
}

async fn parquet_of(req: &Request, cx: Cx<'_>, job: &Job) -> Result<Response, HttpError> {
    completed(job, job.result_key.as_ref())?;
    // A job written with `PARQUET_RESULTS=0` has none (the job view's
    // `result.parquet` is null).
    let Some(key) = job.parquet_key.clone() else {
        return Err(Error::NotFound.into());
    };
    stored(req, cx, job, (&key, Stored::Parquet)).await
}

/// The key, once the job is completed; 409 before.
fn completed(job: &Job, key: Option<&String>) -> Result<String, HttpError> {
    match (&job.status, key) {
        (JobStatus::Completed, Some(k)) => Ok(k.clone()),
        _ => Err(Error::Conflict(format!(
            "job is {}; the result exists once it is completed",
            job.status
        ))
        .into()),
    }
}

fn cached() -> Headers {
    let headers = Headers::new();
    let _ = headers.set("cache-control", RESULT_CACHE_CONTROL);
    headers
}

/// Which stored file a download serves.
#[derive(Clone, Copy)]
enum Stored {
    /// The result object.
    Object,
    /// Its Parquet rendering.
    Parquet,
}

/// A stored file, whole or one range of it: a range needs the size first,
/// so the head, then only those bytes.
async fn stored(
    req: &Request,
    cx: Cx<'_>,
    job: &Job,
    (key, kind): (&str, Stored),
) -> Result<Response, HttpError> {
    let header = |k: &str| req.headers().get(k).ok().flatten();
    let head = match header("range") {
        Some(_) => Some(read_head(cx, key).await?),
        None => None,
    };
    let (size, etag) = match &head {
        Some(h) => (h.size(), h.http_etag()),
        None => (0, String::new()),
    };
    let ranged = match (&head, header("if-range")) {
        // An `If-Range` that names another version asks for the whole object.
        (Some(_), Some(tag)) if tag.trim() != etag => Ranged::Whole,
        (Some(_), _) => Ranged::of(header("range").as_deref(), size),
        (None, _) => Ranged::Whole,
    };
    let part = match ranged {
        Ranged::Unsatisfiable => return Err(HttpError::RangeNotSatisfiable(size)),
        Ranged::Part { first, last } => Some(R2Range::OffsetWithLength {
            offset: first,
            length: last - first + 1,
        }),
        Ranged::Whole => None,
    };
    // A HEAD needs only the head: no body is read, whatever the range.
    let obj = match head {
        Some(h) if is_head(req) => h,
        None if is_head(req) => read_head(cx, key).await?,
        _ => read(cx, key, part).await?,
    };
    binary(req, (job, kind), obj, cached(), ranged)
}

/// The stored object's head (its size and ETag), or 410.
async fn read_head(cx: Cx<'_>, key: &str) -> Result<worker::Object, HttpError> {
    let head = async {
        let found = cx.b.bucket.head(key).await;
        found.map_err(|e| StoreError::Backend(e.to_string()))
    };
    let found = cx.b.blobs.time("result object head", head).await?;
    found.ok_or_else(|| gone().into())
}

/// The stored object, or some of its bytes, or 410. The streaming read
/// bypasses `TimedBlobs`, so it gets the same timeout here (for the
/// object's head; the body then streams to the client).
async fn read(cx: Cx<'_>, key: &str, range: Option<R2Range>) -> Result<worker::Object, HttpError> {
    let mut get = cx.b.bucket.get(key);
    if let Some(range) = range {
        get = get.range(range);
    }
    let get = async {
        let found = get.execute().await;
        found.map_err(|e| StoreError::Backend(e.to_string()))
    };
    let found = cx.b.blobs.time("result object get", get).await?;
    found.ok_or_else(|| gone().into())
}

fn gone() -> Error {
    Error::Gone(
        "the result object no longer exists; submit the job again with \"force\": true".to_owned(),
    )
}

/// The binary object, whole (200) or one range of it (206), or 304 when
/// the client's copy is current.
fn binary(
    req: &Request,
    (job, kind): (&Job, Stored),
    obj: worker::Object,
    headers: Headers,
    ranged: Ranged,
) -> Result<Response, HttpError> {
    let header = |k: &str| req.headers().get(k).ok().flatten();
    let etag = obj.http_etag();
    let _ = headers.set("etag", &etag);
    if header("if-none-match").is_some_and(|v| etag_matches(&v, &etag)) {
        return Ok(ResponseBuilder::new()
            .with_status(304)
            .with_headers(headers)
            .empty());
    }
    let (media, ext, sha) = match kind {
        Stored::Object => (
            RESULT_GZIP_MEDIA_TYPE,
            "msgpack.gz",
            job.result_sha256.as_ref(),
        ),
        Stored::Parquet => (PARQUET_MEDIA_TYPE, "parquet", None),
    };
    let _ = headers.set("content-type", media);
    let _ = headers.set(
        "content-disposition",
        &format!("attachment; filename=\"{}.{ext}\"", job.id),
    );
    let _ = headers.set("accept-ranges", "bytes");
    let _ = headers.set(
        "last-modified",
        &http_date(obj.uploaded().as_millis() as i64),
    );
    if let Some(sha) = sha {
        let _ = headers.set("x-content-sha256", sha);
    }
    let status = match ranged {
        Ranged::Part { first, last } => {
            let range = format!("bytes {first}-{last}/{}", obj.size());
            let _ = headers.set("content-range", &range);
            let _ = headers.set("content-length", &(last - first + 1).to_string());
            206
        }
        _ => {
            let _ = headers.set("content-length", &obj.size().to_string());
            200
        }
    };
    let answer = ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers);
    // A head (a HEAD request) has no body; its headers are the answer.
    let Some(body) = obj.body() else {
        return Ok(answer.empty());
    };
    let body = body
        .response_body()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(answer.body(body))
}

/// `If-None-Match` (RFC 9110 13.1.2): `*`, or a list of entity tags compared
/// weakly (`W/` ignored).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    fn opaque(tag: &str) -> &str {
        tag.trim().trim_start_matches("W/")
    }
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| opaque(t) == opaque(etag))
}

/// Compressed bytes given to the exporter at a time. An R2 chunk can hold
/// many blocks (a 30-s block compresses to ~150 KiB but is ~10 MB of
/// text), and the exporter answers with the text of every block a push
/// completes, so whole chunks could mean hundreds of MB at once; slices
/// keep it to about one block's text.
const EXPORT_SLICE: usize = 8 * 1024;

/// The object's bytes on their way through an [`Exporter`].
struct Feed {
    bytes: worker::ByteStream,
    /// `None` once the export ended (finished or failed).
    exporter: Option<Exporter>,
    /// The R2 chunk being fed, and how much of it was.
    chunk: Vec<u8>,
    at: usize,
}

impl Feed {
    /// The next non-empty text, an error, or `None` at the end.
    async fn next_text(&mut self) -> Option<Result<Vec<u8>, worker::Error>> {
        let fail = |e: tsp_core::codec::CodecError| worker::Error::RustError(e.to_string());
        loop {
            let exporter = self.exporter.as_mut()?;
            if self.at < self.chunk.len() {
                let end = (self.at + EXPORT_SLICE).min(self.chunk.len());
                let pushed = exporter.push(&self.chunk[self.at..end]);
                self.at = end;
                match pushed {
                    Ok(text) if text.is_empty() => continue,
                    Ok(text) => return Some(Ok(text)),
                    Err(e) => {
                        self.exporter = None;
                        return Some(Err(fail(e)));
                    }
                }
            }
            match self.bytes.next().await {
                Some(Ok(chunk)) => (self.chunk, self.at) = (chunk, 0),
                Some(Err(e)) => {
                    self.exporter = None;
                    return Some(Err(e));
                }
                None => return self.exporter.take().map(|x| x.finish().map_err(fail)),
            }
        }
    }
}

/// Streams the object converted to CSV or JSON Lines: R2 bytes flow through
/// an [`Exporter`] in slices of [`EXPORT_SLICE`], so memory stays at about
/// one block.
fn export(
    obj: worker::Object,
    format: Format,
    headers: Headers,
    id: &str,
) -> Result<Response, HttpError> {
    let bytes = obj
        .body()
        .ok_or_else(|| StoreError::Backend("result object has no body".to_owned()))?
        .stream()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    export_headers(format, &headers, id);
    let state = Feed {
        bytes,
        exporter: Some(Exporter::new(format)),
        chunk: Vec::new(),
        at: 0,
    };
    let stream = futures::stream::unfold(state, |mut feed| async move {
        let next = feed.next_text().await;
        next.map(|text| (text, feed))
    });
    let resp = Response::from_stream(stream).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(resp.with_status(200).with_headers(headers))
}

/// Whether the request is a HEAD (answered from the object's head alone).
fn is_head(req: &Request) -> bool {
    req.method() == worker::Method::Head
}

/// A conversion's headers: its media type and file name.
fn export_headers(format: Format, headers: &Headers, id: &str) {
    let _ = headers.set("content-type", format.content_type());
    let ext = match format {
        Format::Csv => "csv",
        Format::JsonLines => "jsonl",
    };
    let _ = headers.set(
        "content-disposition",
        &format!("attachment; filename=\"{id}.{ext}\""),
    );
}

//! The OpenAPI 3.1 document, generated from the code.
//!
//! The routes' `#[utoipa::path]` annotations and the wire types of
//! `tsp_core::api` make the document; [`document`] assembles it and adds
//! what utoipa 5 cannot say (required response headers, the bearer
//! scheme, and the links from a job to its operations). The output is
//! checked in as `producer/openapi.json`, which the Worker serves as is
//! ([`served`]); a test fails when the two differ, and
//! `UPDATE_OPENAPI=1 cargo test -p tsp-producer` rewrites the file.

use serde_json::{json, Value};
use tsp_core::api::{
    AggregateRow, Aggregates, ArchiveResponse, ArchivedEvent, ArchivedJob, DeadJobArchive,
    DeadLetter, DeadLetterList, Durations, Health, InvocationMaxima, JobList, JobSubmission,
    JobView, LastHour, Problem, Progress, QuotaProblem, ResultLink, Stats, StatusCounts,
    SubmittedJob, UsageToday, Waiting,
};
use tsp_core::domain::JobId;
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, OpenApi, ToResponse};
use worker::{Headers, ResponseBuilder as HttpResponse};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "timeseries-pipeline API", version = "1.0.0",
        description = "Large time-series jobs on Cloudflare Workers. Every route but `/healthz` needs `Authorization: Bearer <token>`; a token maps to an owner, and another owner's job answers 404. Errors are RFC 9457 `application/problem+json`, with `errors: [{field, message}]` for invalid input."),
    paths(
        routes::healthz, openapi_json,
        routes::jobs::submit, routes::jobs::list, routes::jobs::get, routes::jobs::cancel,
        routes::results::get,
        routes::dead_letters::list, routes::dead_letters::archive, routes::dead_letters::retry,
        routes::stats::stats, routes::stats::metrics,
        routes::aggregates::get,
    ),
    components(
        schemas(Health, JobSubmission, JobView, SubmittedJob, DeadLetter, JobList, DeadLetterList,
            Progress, ResultLink, Waiting, Stats, StatusCounts, LastHour, InvocationMaxima,
            UsageToday, Durations, AggregateRow, Aggregates, ArchiveResponse, DeadJobArchive,
            ArchivedJob, ArchivedEvent, Problem, QuotaProblem, ResultFormat),
        responses(Unauthorized, NotFound, Conflict, Gone, PayloadTooLarge, UnsupportedMediaType,
            InvalidRequest, TooManyRequests, ServiceUnavailable, GatewayTimeout),
    ),
    security(("bearerAuth" = [])),
)]
struct ApiDoc;

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "meta",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object),
        (status = 401, response = Unauthorized), (status = 503, response = ServiceUnavailable),
        (status = 504, response = GatewayTimeout)))]
#[allow(dead_code)]
fn openapi_json() {}

/// The document as checked in and served.
pub const SERVED: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub fn served() -> worker::Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    HttpResponse::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(SERVED.as_bytes().to_vec())
}

/// The document generated from the code, as pretty JSON with a final newline.
pub fn document() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    finish(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Response headers a client can rely on: `(operation, status, header)`.
const REQUIRED_HEADERS: &[(&str, &str, &str)] = &[
    ("submitJob", "200", "Location"),
    ("submitJob", "202", "Location"),
    ("getJobResult", "200", "Cache-Control"),
    ("getJobResult", "200", "Content-Disposition"),
    ("getJobResult", "304", "ETag"),
    ("getJobResult", "304", "Cache-Control"),
    ("getAggregates", "200", "X-Cache"),
    ("getAggregates", "200", "Cache-Control"),
];

/// Adds what utoipa 5 has no attribute for.
fn finish(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({"bearerAuth": {
        "type": "http", "scheme": "bearer", "description": "An API token from `API_TOKENS`."}});
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|p| p.values_mut())
    {
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        for (op_id, status, header) in REQUIRED_HEADERS {
            if *op_id == id {
                op["responses"][*status]["headers"][*header]["required"] = true.into();
            }
        }
        let job_answers: &[&str] = match id.as_str() {
            "submitJob" => &["200", "202"],
            "getJob" | "retryJob" => &["200", "202"],
            _ => &[],
        };
        for status in job_answers {
            if let Some(resp) = op["responses"].get_mut(*status).filter(|r| r.is_object()) {
                resp["links"] = job_links();
            }
        }
    }
}

/// The operations a job document leads to (schemathesis' stateful phase
/// follows them).
fn job_links() -> Value {
    let by_id =
        |op: &str| json!({"operationId": op, "parameters": {"id": "$response.body#/job_id"}});
    json!({
        "GetJob": by_id("getJob"),
        "GetJobResult": by_id("getJobResult"),
        "GetJobArchive": by_id("getJobArchive"),
        "CancelJob": by_id("cancelJob"),
        "RetryJob": by_id("retryJob"),
        "GetAggregates": {
            "operationId": "getAggregates",
            "description": "The job's first point over its range.",
            "parameters": {"site": "$response.body#/site", "point": "$response.body#/points/0",
                "from": "$response.body#/start", "to": "$response.body#/end"},
        },
    })
}

/// A problem+json response.
fn problem(description: &str, headers: &[(&str, &str)]) -> RefOr<Response> {
    let mut b = ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
            .build(),
    );
    for (name, doc) in headers {
        let h = utoipa::openapi::HeaderBuilder::new()
            .description(Some(*doc))
            .build();
        b = b.header(*name, h);
    }
    b.build().into()
}

/// The shared error responses, each a `components/responses` entry.
macro_rules! problems {
    ($($name:ident => $doc:literal $([$h:literal : $hdoc:literal])?;)*) => {$(
        #[doc = $doc]
        pub struct $name;
        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($doc, &[$(($h, $hdoc))?]))
            }
        }
    )*};
}

problems! {
    Unauthorized => "Missing or unknown bearer token." ["WWW-Authenticate": "`Bearer`."];
    NotFound => "No such job for this owner, or no such object.";
    Conflict => "The job is not in a state that allows this.";
    Gone => "The job completed, but its result object no longer exists (expired or deleted); submit again with `force: true`.";
    PayloadTooLarge => "The body is larger than 64 KiB.";
    UnsupportedMediaType => "The body is not `application/json`.";
    InvalidRequest => "Invalid input; `errors` names each invalid field.";
    TooManyRequests => "The caller already has `MAX_ACTIVE_JOBS` queued, processing or failed jobs, or the job would pass `DAILY_CHUNK_QUOTA` (then `quota` says by how much); nothing was written." ["Retry-After": "Seconds to wait before retrying."];
    ServiceUnavailable => "Storage is unavailable; retry later." ["Retry-After": "Seconds to wait (5)."];
    GatewayTimeout => "A storage call timed out.";
}

/// The job id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct JobIdParam {
    /// A job id; anything that is not 32 lowercase hex characters answers 404.
    id: JobId,
}

/// A page of a job list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Jobs per page.
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^-?[0-9]{1,19}(\\.[0-9a-f]{32})?$")]
    cursor: Option<String>,
}

/// The result's form.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ResultFormatParams {
    /// `csv` for CSV, `jsonl` or `ndjson` for JSON Lines; otherwise the binary object.
    format: Option<ResultFormat>,
}

/// The text forms of a result.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
pub enum ResultFormat {
    /// CSV.
    Csv,
    /// JSON Lines.
    Jsonl,
    /// JSON Lines.
    Ndjson,
}

/// The binary result object: a multi-member gzip stream of MessagePack maps.
pub struct ResultObject;

impl utoipa::PartialSchema for ResultObject {
    fn schema() -> RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .content_media_type("application/vnd.tsp.columnar+msgpack+gzip")
            .build()
            .into()
    }
}
impl utoipa::ToSchema for ResultObject {}

/// An aggregates query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AggregatesParams {
    /// The site.
    #[param(value_type = tsp_core::domain::Site, example = "demo-site")]
    site: String,
    /// The point.
    #[param(value_type = tsp_core::domain::PointName, example = "ses/ses_demo-site/zone1/temp")]
    point: String,
    /// First bucket start (inclusive).
    #[param(format = DateTime, example = "2025-01-01T00:00:00Z")]
    from: String,
    /// End (exclusive); after `from`, at most 366 days later.
    #[param(format = DateTime, example = "2025-02-01T00:00:00Z")]
    to: String,
    /// Bucket width.
    #[param(inline, value_type = Option<tsp_core::aggregate::Resolution>, default = "1d")]
    resolution: Option<String>,
    /// Buckets per page.
    #[param(minimum = 1, maximum = 1000, default = 1000)]
    limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in (and served) document is the one the code generates.
    #[test]
    fn the_served_document_is_generated_from_the_code() {
        let generated = document();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
            return;
        }
        assert!(
            generated == SERVED,
            "producer/openapi.json is not what the code generates; run \
             UPDATE_OPENAPI=1 cargo test -p tsp-producer and commit the file"
        );
    }

    #[test]
    fn every_operation_needs_the_bearer_token_but_health() {
        let doc: Value = serde_json::from_str(&document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["security"], json!([{"bearerAuth": []}]));
        assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([{}]));
        let ops = doc["paths"].as_object().unwrap().len();
        assert_eq!(ops, 11, "every route is in the document");
    }
}

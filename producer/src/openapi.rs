//! The OpenAPI 3.1 document, generated from the code.
//!
//! The routes' `#[utoipa::path]` annotations, named in the route table
//! (`routes`, which also drives dispatch), and the wire types of
//! `tsp_core::api` make the document; [`document`] assembles it and adds
//! what utoipa 5 cannot say (required response headers, the bearer
//! scheme, and the links from a job to its operations). The output is
//! checked in as `producer/openapi.json`, which the Worker serves as is
//! (`routes::meta`); a test fails when the two differ, and
//! `UPDATE_OPENAPI=1 cargo test -p tsp-producer` rewrites the file.

use serde_json::{json, Value};
use tsp_core::api::{
    AggregateRow, Aggregates, ArchiveResponse, ArchivedEvent, ArchivedJob, BulkRetry,
    BulkRetryRequest, DeadJobArchive, DeadLetter, DeadLetterList, DeadMatch, Durations, Health,
    InvocationMaxima, JobList, JobSubmission, JobView, LastHour, ParquetLink, PointSeries, Problem,
    Progress, QuotaProblem, ResultLink, SampleStore, Series, SeriesResolution, SitePause,
    SitePauses, SiteResumed, States, Stats, StatusCounts, StoreRefresh, StoreUse, SubmittedJob,
    UsageToday, Waiting,
};
use utoipa::OpenApi;

use crate::routes;
use crate::routes::doc::{
    Conflict, Forbidden, GatewayTimeout, Gone, InvalidRequest, NotFound, PayloadTooLarge,
    RangeNotSatisfiable, ResultFormat, ServiceUnavailable, TooManyRequests, Unauthorized,
    UnsupportedMediaType,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "timeseries-pipeline API", version = "1.0.0",
        description = "Large time-series jobs on Cloudflare Workers. Every route but `/healthz` needs `Authorization: Bearer <token>`; a token maps to an owner and may be limited to some sites (403 for the others), and another owner's job answers 404. Errors are RFC 9457 `application/problem+json`, with `errors: [{field, message}]` for invalid input."),
    components(
        schemas(Health, JobSubmission, JobView, SubmittedJob, DeadLetter, JobList, DeadLetterList,
            Progress, ResultLink, Waiting, Stats, StatusCounts, LastHour, InvocationMaxima,
            UsageToday, Durations, AggregateRow, Aggregates, ArchiveResponse, DeadJobArchive,
            ArchivedJob, ArchivedEvent, Problem, QuotaProblem, ResultFormat, StoreUse, SampleStore,
            StoreRefresh, Series, PointSeries, SeriesResolution, States, ParquetLink,
            SitePause, SitePauses, SiteResumed, BulkRetryRequest, BulkRetry, DeadMatch),
        responses(Unauthorized, Forbidden, NotFound, Conflict, Gone, PayloadTooLarge, UnsupportedMediaType,
            RangeNotSatisfiable,
            InvalidRequest, TooManyRequests, ServiceUnavailable, GatewayTimeout),
    ),
    security(("bearerAuth" = [])),
)]
struct ApiDoc;

/// The document generated from the code, as pretty JSON with a final newline.
pub fn document() -> String {
    let mut api = ApiDoc::openapi();
    // The paths come from the route table, like dispatch and `Allow`.
    api.paths = routes::openapi_paths();
    let mut doc = serde_json::to_value(api).unwrap_or(Value::Null);
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
    doc["components"]["securitySchemes"] = json!({
        "bearerAuth": {"type": "http", "scheme": "bearer",
            "description": "An API token from `API_TOKENS`."},
        "adminAuth": {"type": "http", "scheme": "bearer",
            "description": "An operator's token from `ADMIN_TOKENS` (the `/v1/admin/` routes)."}});
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
        // The answers that are a job document.
        let job_answers: &[&str] = match id.as_str() {
            "submitJob" | "getJob" | "retryJob" => &["200", "202"],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::meta::SERVED;

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
        assert_eq!(ops, 17, "every route is in the document");
        let refresh = &doc["paths"]["/v1/admin/sites/{site}/refresh"]["post"];
        assert_eq!(refresh["security"], json!([{"adminAuth": []}]));
    }
}

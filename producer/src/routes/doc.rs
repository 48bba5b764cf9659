//! What the routes' OpenAPI annotations name besides the wire types and
//! the parameter sets: the shared error responses and the result's forms.

use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::ToResponse;

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
    Forbidden => "The token has no grant for this site (`API_TOKENS` names the sites each token may use).";
    NotFound => "No such job for this owner, or no such object.";
    Conflict => "The job is not in a state that allows this.";
    Gone => "The job completed, but its result object no longer exists (expired or deleted); submit again with `force: true`.";
    PayloadTooLarge => "The body is larger than 64 KiB.";
    UnsupportedMediaType => "The body is not `application/json`.";
    RangeNotSatisfiable => "No byte of the object is in the requested range." ["Content-Range": "`bytes */{size}`: the object's size."];
    InvalidRequest => "Invalid input; `errors` names each invalid field.";
    TooManyRequests => "The caller already has `MAX_ACTIVE_JOBS` queued, processing or failed jobs, or the job would pass `DAILY_CHUNK_QUOTA` (then `quota` says by how much); nothing was written." ["Retry-After": "Seconds to wait before retrying."];
    ServiceUnavailable => "Storage is unavailable; retry later." ["Retry-After": "Seconds to wait (5)."];
    GatewayTimeout => "A storage call timed out.";
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
    /// Parquet (the file `result.parquet` serves).
    Parquet,
}

/// The binary result object: a multi-member gzip stream of MessagePack maps.
pub struct ResultObject;

impl utoipa::PartialSchema for ResultObject {
    fn schema() -> RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .content_media_type(tsp_core::api::RESULT_GZIP_MEDIA_TYPE)
            .build()
            .into()
    }
}
impl utoipa::ToSchema for ResultObject {}

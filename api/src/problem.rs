//! What a rejected request is told: RFC 9457 problem details, with every
//! invalid field.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

/// One invalid field in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field, as a JSON path (`points[3]`).
    pub field: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: &str, message: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// A rejected request, with every field that was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid request: {}", .errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ValidationError {
    /// The invalid fields.
    pub errors: Vec<FieldError>,
}

impl ValidationError {
    /// A validation error about one field.
    pub fn single(field: &str, message: &str) -> Self {
        Self {
            errors: vec![FieldError::new(field, message)],
        }
    }
}

/// RFC 9457 problem details.
// Every field decodes with a default, so a client can stand one in for an
// error body that is not a problem document (a proxy's HTML page).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(default)]
    #[schema(required = true)]
    pub r#type: ProblemType,
    /// The status's meaning.
    #[serde(default)]
    #[schema(required = true)]
    pub title: String,
    /// The HTTP status.
    #[serde(default)]
    #[schema(minimum = 400, maximum = 599, required = true)]
    pub status: u16,
    /// What went wrong, for a person (no internals).
    #[serde(default)]
    #[schema(required = true)]
    pub detail: String,
    /// The request path.
    #[serde(default)]
    #[schema(required = true)]
    pub instance: String,
    /// Each invalid field (validation failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// On a 429 for the daily quota: which quota, its limit, what the job
    /// needed and what is left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaProblem>,
}

/// The only problem type.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub enum ProblemType {
    /// No further semantics than the status.
    #[default]
    #[serde(rename = "about:blank")]
    AboutBlank,
}

/// The quota part of a 429.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuotaProblem {
    /// The setting (`DAILY_CHUNK_QUOTA`).
    pub name: String,
    /// Its value.
    pub limit: i64,
    /// Chunks the job needed.
    pub needed: i64,
    /// Chunks left today.
    pub left: i64,
}

//! Services: what each role does, generic over the ports.
//!
//! Entry points read their bindings, build a [`Deps`], call one function
//! here, and map the result.

pub mod assemble;
pub mod circuit;
pub mod dead_letter;
pub mod lease;
pub mod manage;
pub mod metrics;
pub mod process;
pub mod reap;
pub mod submit;
pub mod usage;

use crate::config::Config;

/// Everything a service may touch.
pub struct Deps<'a, D, B, Q, H, C> {
    /// Jobs and aggregates.
    pub db: &'a D,
    /// Result objects, chunk parts and archives.
    pub blobs: &'a B,
    /// The jobs queue.
    pub queue: &'a Q,
    /// Outbound HTTP (upstream, alert webhook).
    pub http: &'a H,
    /// Time and randomness.
    pub clock: &'a C,
    /// Settings.
    pub cfg: &'a Config,
}

/// One structured log line per state transition, with no secrets.
pub fn transition_log(job_id: &str, from: &str, to: &str, detail: Option<&str>) -> String {
    serde_json::json!({
        "event": "job_transition",
        "job_id": job_id,
        "from": from,
        "to": to,
        "detail": detail,
    })
    .to_string()
}

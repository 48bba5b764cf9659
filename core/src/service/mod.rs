//! Services: what each role does, generic over the ports.
//!
//! Entry points read their bindings, build a [`Deps`], call one function
//! here, and map the result.

pub mod alert;
pub mod assemble;
pub mod callback;
pub mod circuit;
pub mod dead_letter;
pub mod lease;
pub mod manage;
pub mod metrics;
pub mod notices;
pub mod operate;
pub mod process;
pub mod reap;
pub mod series;
pub mod settled;
pub mod submit;
pub mod usage;

use crate::config::Config;
use crate::ports::Platform;

/// Everything a service may touch: the ports of a [`Platform`], the
/// settings and the log sink.
///
/// Services take `&Deps<'_, P>` with `P: Platform`; a function that needs
/// only one or two ports (say [`circuit::gate`]) takes those alone.
pub struct Deps<'a, P: Platform> {
    /// Jobs and aggregates.
    pub db: &'a P::Db,
    /// Result objects, chunk parts and archives.
    pub blobs: &'a P::Blobs,
    /// The jobs queue.
    pub queue: &'a P::Queue,
    /// Outbound HTTP (upstream, alert webhook).
    pub http: &'a P::Http,
    /// Time and randomness.
    pub clock: &'a P::Clock,
    /// Settings.
    pub cfg: &'a Config,
    /// Where the services' structured log lines go, one line a call.
    pub log: &'a dyn Fn(&str),
}

impl<'a, P: Platform> Deps<'a, P> {
    /// The same ports and settings with another log sink.
    pub fn with_log(self, log: &'a dyn Fn(&str)) -> Self {
        Self { log, ..self }
    }
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

/// Wakes the dead-letter Worker. A failed nudge is logged, not raised: the
/// notice is in D1, and the reaper's next run sends it.
pub(crate) async fn nudge<P: Platform>(deps: &Deps<'_, P>) {
    if let Err(e) = crate::ports::JobQueue::nudge(deps.queue).await {
        (deps.log)(&format!(
            "notify nudge failed ({e}); the reaper sends the notice within a minute"
        ));
    }
}

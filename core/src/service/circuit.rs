//! The upstream circuit breaker, shared by every invocation (one D1 row,
//! `upstream_circuit`).
//!
//! - **closed**: requests go through; each message that ends with the
//!   upstream failing (after its in-place retries) counts one failure, and a
//!   page that comes back (from any site) resets the count. At
//!   `CIRCUIT_THRESHOLD` failures in a row spread over `CIRCUIT_SPREAD_MS`
//!   or more, from one site or many, the circuit opens for
//!   `CIRCUIT_COOLDOWN_MS`: so a single-site deployment's outage opens it
//!   too. A missing credential (401) opens it at once.
//!   ACE answers a wrong token with a 500 and a generic message: that
//!   counts like any 5xx, and the alert quotes the status and the body's
//!   start so an operator can recognise it. ACE's 403 for an unknown site
//!   fails that job alone and is never counted. A site that fails while
//!   others answer never opens it (their pages end each run): its jobs back
//!   off and wait, up to `MAX_UPSTREAM_WAIT_MS` without progress, and
//!   cannot hold back every other job.
//! - **open**: consumers do not claim; they delay their message until the
//!   cool-down ends and mark the job as waiting. No attempt is burned.
//! - **half_open**: one invocation takes the probe; its first page closes
//!   the circuit, its failure opens it again. The others wait a little.
//!
//! Opening (from closed) and closing are compare-and-set, so exactly one
//! invocation sends the "opened" alert and one the "closed" alert.

use std::cell::Cell;

use serde::Deserialize;
use serde_json::json;

use crate::domain::{format_rfc3339, EpochMs};
use crate::error::{Error, StatusClass, UpstreamError};
use crate::ports::{Clock, Platform, SqlDb};
use crate::service::{dead_letter, Deps};
use crate::store;

/// How long the probe may take before another invocation may probe.
const PROBE_MS: i64 = 30_000;
/// How long a message waits while another invocation probes.
pub const PROBE_WAIT_SECONDS: u32 = 5;

#[derive(Debug, Clone, Deserialize)]
struct Row {
    state: String,
    #[serde(deserialize_with = "crate::job::de::int_or_zero")]
    failures: i64,
    #[serde(default, deserialize_with = "crate::job::de::opt_int")]
    open_until: Option<EpochMs>,
    #[serde(default)]
    reason: Option<String>,
}

/// What the circuit lets a message do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Go ahead. `dirty`: a success must be written (failures were counted,
    /// or this message is the probe).
    Pass {
        /// Whether a success must be recorded.
        dirty: bool,
        /// Whether this message is the half-open probe.
        probe: bool,
    },
    /// Wait until then; the reason is for the job view.
    Wait {
        /// When to try again.
        until: EpochMs,
        /// Why.
        reason: String,
    },
}

/// Reads the circuit and decides for one message (one statement, two when
/// it takes the probe).
pub async fn gate<D: SqlDb, C: Clock>(db: &D, clock: &C) -> Result<Gate, Error> {
    let now = clock.now_ms();
    let rows: Vec<Row> = store::decode(db.query(&store::select_circuit()).await?)?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(Gate::Pass {
            dirty: false,
            probe: false,
        });
    };
    let reason = format!(
        "the upstream is unavailable ({})",
        row.reason.as_deref().unwrap_or("failing")
    );
    match row.state.as_str() {
        "closed" => Ok(Gate::Pass {
            dirty: row.failures > 0,
            probe: false,
        }),
        "open" if row.open_until.is_some_and(|t| t > now) => Ok(Gate::Wait {
            until: row.open_until.unwrap_or(now),
            reason,
        }),
        _ => {
            let took = db
                .execute(&store::circuit_take_probe(now, now + PROBE_MS))
                .await?;
            if took > 0 {
                Ok(Gate::Pass {
                    dirty: true,
                    probe: true,
                })
            } else {
                Ok(Gate::Wait {
                    until: now + i64::from(PROBE_WAIT_SECONDS) * 1000,
                    reason,
                })
            }
        }
    }
}

/// Whether an error is the upstream being unwell (what the circuit counts),
/// and whether it is a credential rejection (which opens it at once).
pub fn upstream_fault(err: &Error) -> Option<bool> {
    match err {
        // ACE answers 403 for a site it does not know: that job's problem
        // (`SiteRejected`), never the upstream's. A 401 is a missing token.
        Error::Upstream(UpstreamError::Status { status, .. }) => match StatusClass::of(*status) {
            StatusClass::Unauthorized => Some(true),
            StatusClass::Transient => Some(false),
            _ => None,
        },
        Error::Upstream(UpstreamError::Timeout(_) | UpstreamError::Network(_)) => Some(false),
        _ => None,
    }
}

/// One message's view of the circuit: records at most one failure and at
/// most one success, whatever its chunks do.
pub struct Tracker {
    dirty: Cell<bool>,
    probe: bool,
    failed: Cell<bool>,
}

impl Tracker {
    /// From the gate's answer.
    pub fn new(dirty: bool, probe: bool) -> Self {
        Self {
            dirty: Cell::new(dirty),
            probe,
            failed: Cell::new(false),
        }
    }

    /// A page came back: reset the count, close the circuit if it was not
    /// closed (and alert, once).
    pub async fn success<P: Platform>(&self, deps: &Deps<'_, P>) -> Result<(), Error> {
        if !self.dirty.replace(false) {
            return Ok(());
        }
        let changed = deps
            .db
            .batch(&store::circuit_success(deps.clock.now_ms()))
            .await?;
        if changed.get(1).is_some_and(|n| *n > 0) {
            let text = "Upstream circuit closed: the ACE API answers again; waiting jobs resume.";
            alert(deps, "closed", text).await;
        }
        Ok(())
    }

    /// The upstream failed this message: count it (once), and open the
    /// circuit past the threshold. Returns until when the circuit is open,
    /// and why, if this failure opened it (or its probe failed).
    pub async fn failure<P: Platform>(
        &self,
        deps: &Deps<'_, P>,
        site: &str,
        err: &Error,
    ) -> Result<Option<(EpochMs, String)>, Error> {
        let Some(credentials) = upstream_fault(err) else {
            return Ok(None);
        };
        if self.failed.replace(true) {
            return Ok(None);
        }
        let now = deps.clock.now_ms();
        let cool = deps.cfg.circuit_cooldown_ms.max(1000);
        let until = now + cool;
        let reason = if credentials {
            format!("upstream credentials missing or rejected: {err}")
        } else {
            err.to_string()
        };
        if self.probe {
            deps.db
                .execute(&store::circuit_reopen(now, until, &reason))
                .await?;
            return Ok(Some((until, reason)));
        }
        let threshold = i64::from(deps.cfg.circuit_threshold.max(1));
        let rule = (threshold, deps.cfg.circuit_spread_ms.max(0));
        let stmts = store::circuit_failure((now, until), rule, &reason, site, credentials);
        let changed = deps.db.batch(&stmts).await?;
        if changed.get(1).is_none_or(|n| *n == 0) {
            return Ok(None);
        }
        let text = format!(
            "Upstream circuit opened until {}: {reason}. Jobs wait instead of failing.",
            format_rfc3339(until)
        );
        alert(deps, "opened", &text).await;
        Ok(Some((until, reason)))
    }
}

/// One operator alert about the circuit. A failing webhook is logged, not
/// retried: the transition already happened, and the log line stays.
async fn alert<P: Platform>(deps: &Deps<'_, P>, kind: &str, text: &str) {
    let now = deps.clock.now_ms();
    let key = format!("circuit-{kind}-{now}");
    let payload = json!({ "text": text, "event": format!("circuit_{kind}"), "circuit": kind });
    (deps.log)(&json!({ "event": "circuit", "state": kind, "text": text }).to_string());
    if let Err(e) = dead_letter::send_operator_alert(deps, &key, &payload).await {
        (deps.log)(&format!("circuit alert not sent: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::tests::status;

    #[test]
    fn the_circuit_counts_the_upstream_being_unwell_and_nothing_else() {
        assert_eq!(upstream_fault(&status(401)), Some(true), "credentials");
        for code in [408, 425, 429, 500, 503, 599] {
            assert_eq!(upstream_fault(&status(code)), Some(false), "{code}");
        }
        for code in [200, 304, 400, 403, 404, 422, 600] {
            assert_eq!(upstream_fault(&status(code)), None, "{code}");
        }
        let site = Error::Upstream(UpstreamError::SiteRejected("s".into()));
        assert_eq!(upstream_fault(&site), None, "one job's problem");
        let timeout = Error::Upstream(UpstreamError::Timeout(10));
        assert_eq!(upstream_fault(&timeout), Some(false));
    }
}

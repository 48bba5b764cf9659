//! What consumer invocations cost, kept per UTC hour: each invocation folds
//! its usage into the hour's maxima (one statement), and once warnings of
//! nearing a platform limit repeat within an hour, one operator alert goes
//! out for that hour.

use serde_json::json;

use crate::budget::Usage;
use crate::domain::HOUR_MS;
use crate::error::Error;
use crate::ports::{Clock, Platform, SqlDb};
use crate::service::{dead_letter, Deps};
use crate::store;

/// Warnings in one hour after which the operator is alerted (once).
pub const REPEATED_WARNINGS: i64 = 3;

/// Records one invocation's usage; alerts once per hour on repeated warnings.
pub async fn record<P: Platform>(deps: &Deps<'_, P>, usage: &Usage) -> Result<(), Error> {
    let warnings = usage.warnings();
    let hour = deps.clock.now_ms().div_euclid(HOUR_MS);
    let record = store::record_usage(hour, usage, !warnings.is_empty());
    deps.db.execute(&record).await?;
    if warnings.is_empty() {
        return Ok(());
    }
    let claim = store::claim_limits_alert(hour, REPEATED_WARNINGS);
    if deps.db.execute(&claim).await? > 0 {
        let text = format!(
            "Consumer invocations keep nearing platform limits ({REPEATED_WARNINGS}+ warnings this hour); latest: {}",
            warnings.join("; ")
        );
        let payload = json!({"text": text, "event": "limits_warning"});
        let key = format!("limits-{hour}");
        if let Err(e) = dead_letter::send_operator_alert(deps, &key, &payload).await {
            (deps.log)(&format!("limits alert not sent: {e}"));
        }
    }
    Ok(())
}

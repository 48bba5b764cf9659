//! `/v1/admin/…`: operator routes, under an `ADMIN_TOKENS` token.

use crate::error::HttpError;
use tsp_core::api::StoreRefresh;
use tsp_core::domain::{format_rfc3339, EpochMs, Site};
use tsp_core::error::ValidationError;
use tsp_core::service::settled;
use worker::{Request, Response};

use super::doc::{GatewayTimeout, InvalidRequest, ServiceUnavailable, Unauthorized};
use super::{query, time, Cx};
use crate::json;

/// The range of a refresh.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefreshParams {
    /// Start (inclusive).
    #[param(value_type = String, format = DateTime, required = true, example = "2025-01-01T00:00:00Z")]
    from: Option<String>,
    /// End (exclusive), after `from`.
    #[param(value_type = String, format = DateTime, required = true, example = "2025-02-01T00:00:00Z")]
    to: Option<String>,
}

impl RefreshParams {
    fn parse(&self) -> Result<(EpochMs, EpochMs), ValidationError> {
        let (from, to) = (time(&self.from, "from")?, time(&self.to, "to")?);
        if to <= from {
            return Err(ValidationError::single("to", "must be after from"));
        }
        Ok((from, to))
    }
}

/// Forgets what the shared sample store holds of a site's range.
///
/// Every stored entry of the site that overlaps `[from, to)` is removed
/// (its index rows, then its object), so later jobs fetch that range from
/// the upstream again. For data the upstream corrected after it settled.
#[utoipa::path(post, path = "/v1/admin/sites/{site}/refresh", operation_id = "refreshSite",
    tag = "admin", params(("site" = Site, Path, description = "The site."), RefreshParams),
    security(("adminAuth" = [])),
    responses((status = 200, description = "What was removed.", body = StoreRefresh),
        (status = 401, response = Unauthorized), (status = 422, response = InvalidRequest),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn refresh(req: &Request, cx: Cx<'_>, site: &str) -> Result<Response, HttpError> {
    let site = Site::parse(site).map_err(|m| ValidationError::single("site", m))?;
    let (from, to) = query::<RefreshParams>(req)?.parse()?;
    let log = |line: &str| worker::console_log!("{line}");
    let removed = settled::invalidate(&cx.b.deps(&log), site.as_str(), from, to).await?;
    worker::console_log!(
        "{}",
        serde_json::json!({"event": "store_refresh", "operator": cx.owner, "site": site,
            "from": format_rfc3339(from), "to": format_rfc3339(to), "entries": removed})
    );
    Ok(json(
        200,
        &StoreRefresh {
            site: site.as_str().to_owned(),
            from: format_rfc3339(from),
            to: format_rfc3339(to),
            entries_removed: removed,
        },
    ))
}

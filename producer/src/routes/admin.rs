//! `/v1/admin/…`: operator routes, under an `ADMIN_TOKENS` token.

use crate::error::HttpError;
use tsp_core::api::{
    BulkRetry, BulkRetryRequest, SitePause, SitePauses, SiteResumed, StoreRefresh,
};
use tsp_core::domain::{format_rfc3339, EpochMs, Site};
use tsp_core::error::ValidationError;
use tsp_core::service::{operate, settled};
use worker::{Request, Response};

use super::doc::{
    GatewayTimeout, InvalidRequest, ServiceUnavailable, Unauthorized, UnsupportedMediaType,
};
use super::{query, read_body, time, Cx};
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

/// Why a site is paused.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PauseParams {
    /// Free text, kept with the pause and shown in the jobs' `waiting`.
    #[param(max_length = 200)]
    reason: Option<String>,
}

fn site_of(site: &str) -> Result<Site, ValidationError> {
    Site::parse(site).map_err(|m| ValidationError::single("site", m))
}

/// Pauses a site.
///
/// Its jobs are no longer claimed: they wait (their view's `waiting` says
/// why) and no upstream call is made for them until the site is resumed.
/// A window already running finishes. Pausing a paused site updates the
/// reason.
#[utoipa::path(post, path = "/v1/admin/sites/{site}/pause", operation_id = "pauseSite",
    tag = "admin", params(("site" = Site, Path, description = "The site."), PauseParams),
    security(("adminAuth" = [])),
    responses((status = 200, description = "The pause.", body = SitePause),
        (status = 401, response = Unauthorized), (status = 422, response = InvalidRequest),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn pause(req: &Request, cx: Cx<'_>, site: &str) -> Result<Response, HttpError> {
    let site = site_of(site)?;
    let reason = query::<PauseParams>(req)?.reason.unwrap_or_default();
    if reason.chars().count() > 200 {
        return Err(ValidationError::single("reason", "at most 200 characters").into());
    }
    let p = operate::pause(&cx.b.db, &cx.b.clock, site.as_str(), (cx.owner, &reason)).await?;
    worker::console_log!(
        "{}",
        serde_json::json!({"event": "site_paused", "operator": cx.owner, "site": site, "reason": reason})
    );
    Ok(json(200, &p))
}

/// Resumes a paused site: its waiting jobs come back within a minute.
#[utoipa::path(delete, path = "/v1/admin/sites/{site}/pause", operation_id = "resumeSite",
    tag = "admin", params(("site" = Site, Path, description = "The site.")),
    security(("adminAuth" = [])),
    responses((status = 200, description = "Resumed (or was not paused).", body = SiteResumed),
        (status = 401, response = Unauthorized), (status = 422, response = InvalidRequest),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn resume(cx: Cx<'_>, site: &str) -> Result<Response, HttpError> {
    let site = site_of(site)?;
    let was_paused = operate::resume(&cx.b.db, site.as_str()).await?;
    worker::console_log!(
        "{}",
        serde_json::json!({"event": "site_resumed", "operator": cx.owner, "site": site, "was_paused": was_paused})
    );
    let body = SiteResumed {
        site: site.as_str().to_owned(),
        was_paused,
    };
    Ok(json(200, &body))
}

/// The paused sites.
#[utoipa::path(get, path = "/v1/admin/pauses", operation_id = "listPauses", tag = "admin",
    security(("adminAuth" = [])),
    responses((status = 200, description = "Oldest pause first.", body = SitePauses),
        (status = 401, response = Unauthorized),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn pauses(cx: Cx<'_>) -> Result<Response, HttpError> {
    let pauses = operate::pauses(&cx.b.db).await?;
    Ok(json(200, &SitePauses { pauses }))
}

/// Retries dead jobs in bulk, every owner's.
///
/// Matched by site, a piece of the last error and when they died (each
/// optional), oldest death first, at most `limit` (100). With `dry_run`
/// it only lists them. Each is requeued from its checkpoints, its history
/// kept, outside its owner's limits (the operator fixed a cause).
#[utoipa::path(post, path = "/v1/admin/dead-letters/retry", operation_id = "retryDeadLetters",
    tag = "admin", request_body(content = BulkRetryRequest, content_type = "application/json"),
    security(("adminAuth" = [])),
    responses((status = 200, description = "What matched, and how many were retried.", body = BulkRetry),
        (status = 401, response = Unauthorized), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidRequest),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn retry_dead(req: &mut Request, cx: Cx<'_>) -> Result<Response, HttpError> {
    let ct = req.headers().get("content-type").ok().flatten();
    if !super::jobs::is_json(&ct.unwrap_or_default()) {
        return Err(HttpError::UnsupportedMediaType);
    }
    let body = read_body(req).await?;
    let r: BulkRetryRequest = serde_json::from_slice(&body)
        .map_err(|e| ValidationError::single("body", &e.to_string()))?;
    let filter = filter_of(&r)?;
    let log = |line: &str| worker::console_log!("{line}");
    let out = operate::retry_dead(
        (&cx.b.db, &cx.b.queue, &cx.b.clock),
        &filter,
        r.dry_run,
        &log,
    )
    .await?;
    worker::console_log!(
        "{}",
        serde_json::json!({"event": "bulk_retry", "operator": cx.owner, "dry_run": r.dry_run,
            "matched": out.matched.len(), "retried": out.retried})
    );
    Ok(json(200, &out))
}

/// A bulk retry's filter, each field checked.
fn filter_of(r: &BulkRetryRequest) -> Result<operate::DeadFilter, ValidationError> {
    let site = r.site.as_deref().map(site_of).transpose()?;
    if r.error_contains
        .as_ref()
        .is_some_and(|e| e.is_empty() || e.chars().count() > 200)
    {
        return Err(ValidationError::single(
            "error_contains",
            "1 to 200 characters",
        ));
    }
    let limit = r.limit.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(ValidationError::single("limit", "must be 1 to 100"));
    }
    let when = |v: &Option<String>, field: &str| -> Result<Option<EpochMs>, ValidationError> {
        v.as_deref()
            .map(|s| {
                tsp_core::domain::parse_rfc3339(s)
                    .ok_or_else(|| ValidationError::single(field, "must be an RFC 3339 time"))
            })
            .transpose()
    };
    Ok(operate::DeadFilter {
        site: site.map(|s| s.as_str().to_owned()),
        error_contains: r.error_contains.clone(),
        from: when(&r.from, "from")?,
        to: when(&r.to, "to")?,
        limit: i64::from(limit),
    })
}

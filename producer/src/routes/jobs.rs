//! `/v1/jobs` and `/v1/jobs/{id}`: submit, list, status, cancel.

use crate::error::HttpError;
use tsp_core::api::{JobList, JobView, SubmittedJob};
use tsp_core::error::ValidationError;
use tsp_core::job::JobStatus;
use tsp_core::service::manage;
use tsp_core::service::submit::{submit as submit_job, Submitted};
use worker::{Request, Response};

use super::doc::{
    Conflict, Forbidden, GatewayTimeout, InvalidRequest, NotFound, PayloadTooLarge,
    ServiceUnavailable, TooManyRequests, Unauthorized, UnsupportedMediaType,
};
use super::{job_id, log_line, owned_job, query, read_body, Cx, JobIdParam, Page, PageParams};
use crate::{json, MAX_BODY_BYTES};

/// Submit a job.
///
/// Give `start` and `end` (RFC 3339, a half-open range of at most 366 days
/// that does not end in the future), or `days` (the whole UTC days before
/// today). An identical queued, running, or recently completed job of the
/// same owner is returned with 200 unless `force` is true. Bodies over 64
/// KiB answer 413; a content type other than `application/json` answers 415.
#[utoipa::path(post, path = "/v1/jobs", operation_id = "submitJob", tag = "jobs",
    request_body(content = tsp_core::api::JobSubmission, content_type = "application/json",
        examples(
            ("range" = (summary = "An explicit range", value = json!({"site": "demo-site",
                "points": ["ses/ses_demo-site/zone1/temp", "ses/ses_demo-site/zone2/temp"],
                "start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z"}))),
            ("days" = (summary = "The last 7 whole UTC days", value = json!({"site": "demo-site",
                "points": ["ses/ses_demo-site/zone1/temp"], "days": 7}))))),
    responses(
        (status = 200, description = "An identical job exists; it is returned.", body = SubmittedJob,
            headers(("Location" = String, description = "The job's status URL."))),
        (status = 202, description = "The job was accepted and queued.", body = SubmittedJob,
            headers(("Location" = String, description = "The job's status URL."))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = InvalidRequest),
        (status = 429, response = TooManyRequests), (status = 503, response = ServiceUnavailable),
        (status = 504, response = GatewayTimeout)))]
pub async fn submit(req: &mut Request, cx: Cx<'_>) -> Result<Response, HttpError> {
    let header = |k: &str| req.headers().get(k).ok().flatten();
    if !is_json(&header("content-type").unwrap_or_default()) {
        return Err(HttpError::UnsupportedMediaType);
    }
    let declared = header("content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(HttpError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let body = read_body(req).await?;
    let out = submit_job(&cx.b.deps(&log_line), cx.owner, cx.grant, &body).await?;
    let (status, job, note) = match &out {
        Submitted::Created { job, enqueued } => {
            let note = (!enqueued).then_some("queue send failed; the reaper will send it");
            log_line(&tsp_core::service::transition_log(
                job.id.as_str(),
                "new",
                "queued",
                note,
            ));
            (202, job, note)
        }
        Submitted::Existing(job) => (200, job, Some("an identical job exists; returning it")),
    };
    let view = SubmittedJob {
        job: job.view(),
        note: note.map(str::to_owned),
    };
    let mut resp = json(status, &view);
    let _ = resp
        .headers_mut()
        .set("location", &format!("/v1/jobs/{}", job.id));
    Ok(resp)
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", operation_id = "listJobs", tag = "jobs",
    params(StatusParam, PageParams),
    responses((status = 200, description = "A page of jobs.", body = JobList),
        (status = 401, response = Unauthorized), (status = 422, response = InvalidRequest),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn list(req: &Request, cx: Cx<'_>) -> Result<Response, HttpError> {
    let StatusParam { status } = query(req)?;
    let status = status
        .map(|s| {
            s.parse::<JobStatus>()
                .map_err(|m| ValidationError::single("status", &m))
        })
        .transpose()?;
    let page = Page::parse(&query(req)?)?;
    let jobs = page.jobs(cx, status).await?;
    Ok(json(
        200,
        &JobList {
            jobs: jobs.iter().map(tsp_core::job::Job::view).collect(),
            next_cursor: page.next(&jobs),
        },
    ))
}

/// The status filter of a job list.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusParam {
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
}

/// A job's status and progress.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "getJob", tag = "jobs", params(JobIdParam),
    responses(
        (status = 200, description = "The job.", body = JobView,
            headers(("Retry-After" = i32, description = "Seconds before polling again (2); sent while the job is not in a terminal state."))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn get(cx: Cx<'_>, id: &str) -> Result<Response, HttpError> {
    let job = owned_job(cx, id).await?;
    let mut resp = json(200, &job.view());
    if !job.status.is_terminal() {
        let _ = resp.headers_mut().set("retry-after", "2");
    }
    Ok(resp)
}

/// Cancel a queued, processing or failed job.
#[utoipa::path(delete, path = "/v1/jobs/{id}", operation_id = "cancelJob", tag = "jobs", params(JobIdParam),
    responses((status = 200, description = "The cancelled job.", body = JobView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 503, response = ServiceUnavailable),
        (status = 504, response = GatewayTimeout)))]
pub async fn cancel(cx: Cx<'_>, id: &str) -> Result<Response, HttpError> {
    // Only a job of a site in the token's grant (one more read, unless the
    // token may use every site).
    if cx.grant.sites().is_some() {
        owned_job(cx, id).await?;
    }
    let job = manage::cancel(&cx.b.db, &cx.b.clock, cx.owner, &job_id(id)?, &log_line).await?;
    Ok(json(200, &job.view()))
}

/// Whether a `Content-Type` is JSON: the media type parsed, its essence
/// exactly `application/json` (`application/jsonp` or `json-seq` are not),
/// and a charset, if any, UTF-8 (RFC 8259 §8.1).
pub(super) fn is_json(content_type: &str) -> bool {
    let Ok(m) = content_type.parse::<mime::Mime>() else {
        return false;
    };
    m.essence_str() == "application/json"
        && m.get_param(mime::CHARSET)
            .is_none_or(|c| c.as_str().eq_ignore_ascii_case("utf-8"))
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn only_json_is_json() {
        for ct in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
        ] {
            assert!(is_json(ct), "{ct}");
        }
        for ct in [
            "application/jsonp",
            "application/json-seq",
            "application/json5",
            "text/json",
            "application/json; charset=latin1",
            "",
            "json",
        ] {
            assert!(!is_json(ct), "{ct}");
        }
    }
}

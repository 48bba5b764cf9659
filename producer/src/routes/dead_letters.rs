//! `/v1/dead-letters`, and a dead job's archive and retry.

use crate::error::HttpError;
use tsp_core::api::{ArchiveResponse, DeadLetter, DeadLetterList, SubmittedJob};
use tsp_core::error::{Error, StoreError};
use tsp_core::job::JobStatus;
use tsp_core::ports::BlobStore;
use tsp_core::service::dead_letter::archive_key;
use tsp_core::service::manage;
use worker::{Request, Response};

use super::doc::{
    Conflict, Forbidden, GatewayTimeout, InvalidRequest, NotFound, ServiceUnavailable, Unauthorized,
};
use super::{job_id, log_line, owned_job, query, Cx, JobIdParam, Page, PageParams};
use crate::json;

/// The caller's failed_permanent jobs, newest first.
#[utoipa::path(get, path = "/v1/dead-letters", operation_id = "listDeadLetters", tag = "dead letters",
    params(PageParams),
    responses((status = 200, description = "A page of dead letters.", body = DeadLetterList),
        (status = 401, response = Unauthorized), (status = 422, response = InvalidRequest),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn list(req: &Request, cx: Cx<'_>) -> Result<Response, HttpError> {
    let page = Page::parse(&query(req)?)?;
    let jobs = page.jobs(cx, Some(JobStatus::FailedPermanent)).await?;
    let dead_letters = jobs
        .iter()
        .map(|j| DeadLetter {
            job: j.view(),
            archive_key: j.finished_at.map(|at| archive_key(j.id.as_str(), at)),
            archive_url: format!("/v1/jobs/{}/archive", j.id),
            retry_url: format!("/v1/jobs/{}/retry", j.id),
        })
        .collect();
    Ok(json(
        200,
        &DeadLetterList {
            dead_letters,
            next_cursor: page.next(&jobs),
        },
    ))
}

/// The dead-letter archive of a failed_permanent job.
#[utoipa::path(get, path = "/v1/jobs/{id}/archive", operation_id = "getJobArchive", tag = "dead letters",
    params(JobIdParam),
    responses((status = 200, description = "The archive.", body = ArchiveResponse),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 503, response = ServiceUnavailable),
        (status = 504, response = GatewayTimeout)))]
pub async fn archive(cx: Cx<'_>, id: &str) -> Result<Response, HttpError> {
    let job = owned_job(cx, id).await?;
    let (JobStatus::FailedPermanent, Some(at)) = (job.status, job.finished_at) else {
        return Err(Error::Conflict(format!(
            "job is {}; only dead jobs have an archive",
            job.status
        ))
        .into());
    };
    let key = archive_key(job.id.as_str(), at);
    let bytes = cx.b.blobs.get(&key).await?.ok_or(Error::NotFound)?;
    let archive = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(json(200, &ArchiveResponse { key, archive }))
}

/// Queue a failed_permanent job again.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", operation_id = "retryJob", tag = "dead letters",
    params(JobIdParam),
    responses((status = 202, description = "The job is queued again.", body = SubmittedJob),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 503, response = ServiceUnavailable),
        (status = 504, response = GatewayTimeout)))]
pub async fn retry(cx: Cx<'_>, id: &str) -> Result<Response, HttpError> {
    // The job's site must be in the token's grant (one more read, unless
    // the token may use every site).
    if cx.grant.sites().is_some() {
        owned_job(cx, id).await?;
    }
    let (job, sent) = manage::retry(
        (&cx.b.db, &cx.b.queue, &cx.b.clock),
        &cx.b.cfg,
        cx.owner,
        &job_id(id)?,
        &log_line,
    )
    .await?;
    let view = SubmittedJob {
        job: job.view(),
        note: (!sent).then(|| "queue send failed; the reaper will send it".to_owned()),
    };
    Ok(json(202, &view))
}

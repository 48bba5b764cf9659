//! The job as clients see it.

use serde_json::{json, Value};

use crate::domain::format_rfc3339;
use crate::job::{Job, JobStatus};

/// The status document of `GET /v1/jobs/{id}`.
pub fn job_view(job: &Job) -> Value {
    let ts = |v: Option<i64>| v.map(format_rfc3339);
    let percent = if job.chunks_total > 0 {
        (job.chunks_done as f64 * 100.0 / job.chunks_total as f64 * 10.0).round() / 10.0
    } else {
        0.0
    };
    let id = job.id.as_str();
    let result = (job.status == JobStatus::Completed).then(|| {
        json!({
            "url": format!("/v1/jobs/{id}/result"),
            "bytes": job.result_bytes,
            "sha256": job.result_sha256,
            "content_type": "application/vnd.tsp.columnar+msgpack",
            "content_encoding": "gzip",
        })
    });
    json!({
        "job_id": id,
        "status": job.status.as_str(),
        "site": job.site,
        "points": job.points,
        "start": format_rfc3339(job.start_ms),
        "end": format_rfc3339(job.end_ms),
        "attempts": job.attempts,
        "stalled_deliveries": job.stalls,
        "progress": {
            "chunks_done": job.chunks_done,
            "chunks_total": job.chunks_total,
            "samples": job.sample_count,
            "percent": percent,
        },
        "last_error": job.last_error,
        "created_at": format_rfc3339(job.created_at),
        "updated_at": format_rfc3339(job.updated_at),
        "started_at": ts(job.started_at),
        "finished_at": ts(job.finished_at),
        "status_url": format!("/v1/jobs/{id}"),
        "result": result,
        "waiting": job.waiting_until.map(|until| json!({
            "for": job.waiting_for,
            "until": format_rfc3339(until),
        })),
    })
}

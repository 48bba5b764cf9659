//! The request fingerprint: SHA-256 of a canonical request.
//!
//! Two requests that ask for the same data have the same fingerprint, so the
//! producer can coalesce an owner's identical requests into one job.

use sha2::{Digest, Sha256};

use crate::codec::FORMAT_VERSION;
use crate::domain::{JobId, JobRequest, PointName};

/// The resolutions every job computes, part of the canonical request.
pub const RESOLUTIONS: &str = "1h,1d";

/// The full lowercase SHA-256 hex of the canonical form of `req`:
/// site, sorted unique points, range, resolutions and format version.
pub fn fingerprint(req: &JobRequest) -> String {
    // Points are already sorted and unique (JobRequest::parse). serde_json
    // escapes strings, so no choice of names can forge another request.
    let canonical = serde_json::json!({
        "v": FORMAT_VERSION,
        "site": req.site.as_str(),
        "points": req.points.iter().map(PointName::as_str).collect::<Vec<_>>(),
        "start_ms": req.range.start(),
        "end_ms": req.range.end(),
        "resolutions": RESOLUTIONS,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The R2 key of a job's result object: the SHA-256 of its request's
/// fingerprint and its id. One job, one key: two owners asking for the same
/// data get two objects, and a completed job's bytes are never replaced by
/// another job's run (the upstream may have corrected data in between).
pub fn result_key(fingerprint: &str, job: &JobId) -> String {
    let digest = Sha256::digest(format!("{fingerprint}/{job}").as_bytes());
    format!("results/{}.msgpack.gz", hex::encode(digest))
}

/// The R2 key of the job's Parquet file: beside its object.
pub fn parquet_key(fingerprint: &str, job: &JobId) -> String {
    let object = result_key(fingerprint, job);
    format!("{}.parquet", object.trim_end_matches(".msgpack.gz"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_000_000_000;

    fn req(body: &str) -> JobRequest {
        JobRequest::parse(body.as_bytes(), crate::domain::EpochMs(NOW), 100).unwrap()
    }

    #[test]
    fn point_order_and_duplicates_do_not_matter() {
        let a = req(r#"{"site":"s","points":["b","a"],"days":3}"#);
        let b = req(r#"{"site":"s","points":["a","b","a"],"days":3}"#);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 64);
    }

    #[test]
    fn any_field_changes_it() {
        let base = fingerprint(&req(r#"{"site":"s","points":["a"],"days":3}"#));
        for other in [
            r#"{"site":"t","points":["a"],"days":3}"#,
            r#"{"site":"s","points":["a","b"],"days":3}"#,
            r#"{"site":"s","points":["a"],"days":4}"#,
        ] {
            assert_ne!(base, fingerprint(&req(other)), "{other}");
        }
    }

    #[test]
    fn each_job_has_its_own_result_key() {
        let fp = fingerprint(&req(r#"{"site":"s","points":["a"],"days":1}"#));
        let (a, b) = (JobId::from_bytes([1; 16]), JobId::from_bytes([2; 16]));
        assert_ne!(result_key(&fp, &a), result_key(&fp, &b));
        assert_eq!(result_key(&fp, &a), result_key(&fp, &a));
        let key = result_key(&fp, &a);
        let hash = &key["results/".len()..key.len() - ".msgpack.gz".len()];
        assert!(
            hash.len() == 64 && hash.bytes().all(|c| c.is_ascii_hexdigit()),
            "{key}"
        );
    }
}

//! The request fingerprint: SHA-256 of a canonical request.
//!
//! Two requests that ask for the same data have the same fingerprint, so the
//! producer can coalesce them and the result object can be keyed by it.

use sha2::{Digest, Sha256};

use crate::codec::FORMAT_VERSION;
use crate::domain::{JobRequest, PointName};

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

/// The R2 key of a result object.
pub fn result_key(fingerprint: &str) -> String {
    format!("results/{fingerprint}.msgpack.gz")
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
}

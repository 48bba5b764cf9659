//! Time as the pipeline counts it: UTC milliseconds since the Unix epoch.

/// Milliseconds in one UTC day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;

/// UTC milliseconds since the Unix epoch.
pub type EpochMs = i64;

/// Formats epoch milliseconds as RFC 3339 UTC (`2025-10-16T00:05:00Z`).
pub fn format_rfc3339(ms: EpochMs) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) if ms % 1000 == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<EpochMs> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

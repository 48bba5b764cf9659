//! The settled-sample store's statements (`schema/0010_sample_store.sql`).

use serde::Deserialize;

use super::stmt;
use crate::domain::EpochMs;
use crate::job::de;
use crate::ports::Statement;

/// A point's newest stored span that starts at or before a window's start
/// and reaches past it, with its entry's object.
#[derive(Debug, Clone, Deserialize)]
pub struct Found {
    /// The point.
    pub point: String,
    /// The entry's object.
    pub key: String,
    /// Where the point's block starts in the object.
    #[serde(deserialize_with = "de::uint")]
    pub at_byte: u64,
    /// The block's length.
    #[serde(deserialize_with = "de::uint")]
    pub byte_len: u64,
    /// The end of the span it covers.
    #[serde(deserialize_with = "de::int")]
    pub to_ms: EpochMs,
    /// The object's SHA-256, hex.
    pub sha256: String,
    /// The object's size.
    #[serde(deserialize_with = "de::uint")]
    pub bytes: u64,
    /// Samples in the whole entry.
    #[serde(deserialize_with = "de::uint")]
    pub entry_samples: u64,
    /// Upstream bytes fetching the entry took.
    #[serde(deserialize_with = "de::uint")]
    pub upstream_bytes: u64,
}

/// For each of `points` (a JSON array) of `site`, the stored spans that
/// hold `at`: newest end first.
pub fn lookup(site: &str, points_json: &str, at: EpochMs) -> Statement {
    stmt(
        "SELECT p.point, p.key, p.at_byte, p.byte_len, p.to_ms, e.sha256, e.bytes, \
         e.samples AS entry_samples, e.upstream_bytes \
         FROM store_points p JOIN store_entries e ON e.key = p.key \
         WHERE p.site = ?1 AND p.point IN (SELECT value FROM json_each(?2)) \
         AND p.from_ms <= ?3 AND p.to_ms > ?3 \
         ORDER BY p.point, p.to_ms DESC, e.fetched_at DESC",
        vec![site.into(), points_json.into(), at.into()],
    )
}

/// Forgets an entry whose object is missing or not what was indexed.
pub fn forget(key: &str) -> Vec<Statement> {
    vec![
        stmt("DELETE FROM store_points WHERE key = ?1", vec![key.into()]),
        stmt("DELETE FROM store_entries WHERE key = ?1", vec![key.into()]),
    ]
}

/// A new entry, as its index rows record it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The object's key.
    pub key: &'a str,
    /// Site.
    pub site: &'a str,
    /// The span it covers.
    pub span: (EpochMs, EpochMs),
    /// Per point: name, where its block starts, its length, its samples.
    pub points: Vec<(&'a str, u64, u64, u64)>,
    /// The object's SHA-256, hex.
    pub sha256: String,
    /// The object's size.
    pub bytes: u64,
    /// Upstream bytes it took.
    pub upstream_bytes: u64,
    /// Now.
    pub now: EpochMs,
}

/// Indexes an entry whose object is written: its row, then its points'
/// rows, which replace those of spans it covers (older data of the same
/// points). Run in the window's commit batch, after the object's put.
pub fn index(e: &Entry<'_>) -> Vec<Statement> {
    let samples: u64 = e.points.iter().map(|p| p.3).sum();
    let names: Vec<&str> = e.points.iter().map(|p| p.0).collect();
    let rows: Vec<(&str, u64, u64, u64)> = e.points.clone();
    let (from, to) = e.span;
    vec![
        stmt(
            "INSERT INTO store_entries (key, site, from_ms, to_ms, points, samples, bytes, \
             sha256, upstream_bytes, fetched_at, last_used) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) \
             ON CONFLICT (key) DO UPDATE SET samples = excluded.samples, \
             bytes = excluded.bytes, sha256 = excluded.sha256, \
             upstream_bytes = excluded.upstream_bytes, fetched_at = excluded.fetched_at, \
             last_used = excluded.last_used",
            vec![
                e.key.into(),
                e.site.into(),
                from.into(),
                to.into(),
                (e.points.len() as i64).into(),
                (samples as i64).into(),
                (e.bytes as i64).into(),
                e.sha256.clone().into(),
                (e.upstream_bytes as i64).into(),
                e.now.into(),
            ],
        ),
        stmt(
            "DELETE FROM store_points WHERE site = ?1 \
             AND point IN (SELECT value FROM json_each(?2)) AND from_ms >= ?3 AND to_ms <= ?4",
            vec![
                e.site.into(),
                serde_json::json!(names).to_string().into(),
                from.into(),
                to.into(),
            ],
        ),
        stmt(
            "INSERT OR REPLACE INTO store_points \
             (site, point, from_ms, to_ms, key, at_byte, byte_len, samples) \
             SELECT ?1, json_extract(r.value, '$[0]'), ?2, ?3, ?4, \
             json_extract(r.value, '$[1]'), json_extract(r.value, '$[2]'), \
             json_extract(r.value, '$[3]') FROM json_each(?5) AS r",
            vec![
                e.site.into(),
                from.into(),
                to.into(),
                e.key.into(),
                serde_json::json!(rows).to_string().into(),
            ],
        ),
    ]
}

/// Marks entries (a JSON array of keys) as read now.
pub fn touch(keys_json: &str, now: EpochMs) -> Statement {
    stmt(
        "UPDATE store_entries SET last_used = ?2 \
         WHERE key IN (SELECT value FROM json_each(?1))",
        vec![keys_json.into(), now.into()],
    )
}

/// Counts a window's use of the store.
pub fn count_use(hit: bool, miss: bool, bytes_saved: u64) -> Statement {
    stmt(
        "UPDATE store_counters SET hits = hits + ?1, misses = misses + ?2, \
         bytes_saved = bytes_saved + ?3 WHERE id = 'store'",
        vec![
            i64::from(hit).into(),
            i64::from(miss).into(),
            (bytes_saved as i64).into(),
        ],
    )
}

/// The store's size and running figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Figures {
    /// Entries.
    #[serde(deserialize_with = "de::uint")]
    pub entries: u64,
    /// Their objects' bytes.
    #[serde(deserialize_with = "de::uint")]
    pub bytes: u64,
    /// Windows that read the store.
    #[serde(deserialize_with = "de::uint")]
    pub hits: u64,
    /// Windows with a settled span that did not.
    #[serde(deserialize_with = "de::uint")]
    pub misses: u64,
    /// Upstream bytes those reads saved.
    #[serde(deserialize_with = "de::uint")]
    pub bytes_saved: u64,
    /// Entries evicted.
    #[serde(deserialize_with = "de::uint")]
    pub evicted: u64,
}

/// The store's figures, one row.
pub fn figures() -> Statement {
    stmt(
        "SELECT (SELECT COUNT(*) FROM store_entries) AS entries, \
         (SELECT COALESCE(SUM(bytes), 0) FROM store_entries) AS bytes, \
         hits, misses, bytes_saved, evicted FROM store_counters WHERE id = 'store'",
        vec![],
    )
}

/// An entry eviction may take.
#[derive(Debug, Clone, Deserialize)]
pub struct Evictable {
    /// The object's key.
    pub key: String,
    /// Its size.
    #[serde(deserialize_with = "de::uint")]
    pub bytes: u64,
    /// Whether any point's row still names it.
    #[serde(deserialize_with = "super::super::job::de::flag")]
    pub named: bool,
}

/// Entries in eviction order: those no point's row names, then the least
/// recently used.
pub fn eviction_order(limit: i64) -> Statement {
    stmt(
        "SELECT e.key, e.bytes, \
         EXISTS (SELECT 1 FROM store_points p WHERE p.key = e.key) AS named \
         FROM store_entries e ORDER BY named, e.last_used, e.key LIMIT ?1",
        vec![limit.into()],
    )
}

/// Removes entries (a JSON array of keys) from the index and counts them.
pub fn evict(keys_json: &str, n: u64) -> Vec<Statement> {
    let keys = || keys_json.to_owned().into();
    vec![
        stmt(
            "DELETE FROM store_points WHERE key IN (SELECT value FROM json_each(?1))",
            vec![keys()],
        ),
        stmt(
            "DELETE FROM store_entries WHERE key IN (SELECT value FROM json_each(?1))",
            vec![keys()],
        ),
        stmt(
            "UPDATE store_counters SET evicted = evicted + ?1 WHERE id = 'store'",
            vec![(n as i64).into()],
        ),
    ]
}

/// Entries of `site` that overlap `[from, to)` (an operator's refresh).
pub fn overlapping(site: &str, from: EpochMs, to: EpochMs, limit: i64) -> Statement {
    stmt(
        "SELECT key, bytes, 1 AS named FROM store_entries \
         WHERE site = ?1 AND from_ms < ?3 AND to_ms > ?2 ORDER BY key LIMIT ?4",
        vec![site.into(), from.into(), to.into(), limit.into()],
    )
}

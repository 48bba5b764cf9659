//! The engine of the time-series pipeline: what turns upstream pages into
//! aggregates and a result object, and a result object back into rows.
//!
//! No ports, no SQL, no platform: the CLI and the benchmarks use this crate
//! alone, and `tsp-core` builds the services on top of it.
//!
//! # Layout
//! - [`time`]: epoch milliseconds and RFC 3339.
//! - [`chunk`]: splitting a job into windows: whole UTC days inside a month, every point of the job at once.
//! - [`sample`]: upstream page parsing (a page-shaped fast path, serde_json as fallback), value classification, a chunk's interned 24-byte samples.
//! - [`aggregate`]: streaming hourly and daily aggregates.
//! - [`codec`]: the columnar MessagePack + gzip result format.
//! - [`export`]: streaming conversion of a result object to CSV or JSON Lines, and the one CSV field writer.
//! - [`parts`]: cutting a result into equal-size multipart-upload parts (R2's rule).
#![deny(missing_docs)]

pub mod aggregate;
pub mod chunk;
pub mod codec;
pub mod export;
pub mod parts;
pub mod sample;
pub mod time;

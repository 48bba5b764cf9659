//! A result's samples as Parquet, for the CLI and the consumer alike.
//!
//! - [`samples`]: [`SampleWriter`](samples::SampleWriter), rows
//!   `point, time, value, text` from decoded blocks, zstd, in bounded
//!   batches (`tsp fetch --format parquet` writes with it).
//! - [`stitch`]: the consumer's Parquet. Each window becomes a part (a
//!   complete Parquet file, one row group per point), and finalize splices
//!   every part's column chunks, unchanged, into one file with one footer
//!   (statistics and page indexes included), part by part, so no step
//!   holds more than one window.

pub mod samples;
pub mod stitch;

//! A deterministic simulation of the ACE IoT FlightDeck timeseries API.
//!
//! The end-to-end tests and the demo run point the consumer Worker at this
//! server instead of the real API. Everything it serves is a pure function of
//! its inputs (site, point, time, and the fault seed), so a test can compute
//! exactly what the pipeline should have stored with [`samples`], and a
//! failing run can be replayed with the same seed.
//!
//! # Layout
//! - [`config`]: [`SimConfig`], the settings (also the binary's CLI flags and env vars).
//! - [`data`]: the deterministic point lists and sample values ([`samples`], [`sample_iter`], [`default_points`]).
//! - `timefmt`: fast `%Y-%m-%dT%H:%M:%SZ` formatting, used per sample.
//! - `query`: parsing the paginated endpoint's query string (repeated and comma-separated `point_names`).
//! - `cursor`: the opaque page cursor (base64 of `{"o":offset}`).
//! - `page`: building one page's JSON body without generating the rest of the range.
//! - `faults`: the seeded per-request fault decision.
//! - `server`: the axum router, handlers, counters and the alert receiver ([`router`], [`serve`]).
#![deny(missing_docs)]

pub mod config;
mod cursor;
pub mod data;
mod faults;
mod page;
mod query;
mod server;
mod timefmt;

pub use config::SimConfig;
pub use data::{default_points, is_state_point, sample_iter, samples, SampleIter};
pub use server::{router, serve, serve_with_shutdown};
pub use timefmt::format_time;

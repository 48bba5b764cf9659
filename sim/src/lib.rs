//! A deterministic simulation of the ACE IoT FlightDeck timeseries API.
//!
//! The end-to-end tests and the demo run point the consumer Worker at this
//! server instead of the real API. Everything it serves is a pure function of
//! its inputs (site, point, time, and the fault seed), so a test can compute
//! exactly what the pipeline should have stored with [`samples`], and a
//! failing run can be replayed with the same seed.
//!
//! # Faults
//! All injected faults are off by default and seeded by [`SimConfig::seed`]:
//! - **Per request** (`rate_500`, `rate_503`, `rate_429`, `rate_truncated`,
//!   `rate_garbage`, `rate_drop`): one uniform draw of (seed, path and query,
//!   attempt number) cut into exclusive bands in that order. A *drop* sends
//!   the status, a `Content-Length` for the whole page, half of it, then
//!   aborts the connection.
//! - **Slow pages** (`rate_slow`, `slow_ms`): a second, independent draw of
//!   the same inputs delays the answer by `slow_ms` (on top of `latency_ms`,
//!   which applies to every response).
//! - **Windows** (`window_fault_rate`, `fault_window_secs`): wall-clock time
//!   since the server started is cut into windows; [`window_fault`] of (seed,
//!   site, [`window_index`]) decides whether every timeseries request for the
//!   site in that window answers 503, or 429 with `Retry-After`.
//! - **Outage**: `POST /faults/outage?secs=N` makes every timeseries request
//!   answer 503 for N seconds (`secs=0` ends it; `ms=N` for sub-second ones).
//!   `GET /faults` reports the outage end (epoch ms or null), the
//!   `outage_rejections` count, the window settings, start and current index
//!   (`?site=S` adds S's current `window_fault`), and the drop/slow counters.
//! - `fail_sites` always answer 503; `/alerts/fail-next` fails alert POSTs.
//!
//! # Layout
//! - [`config`]: [`SimConfig`], the settings (also the binary's CLI flags and env vars).
//! - [`data`]: the deterministic point lists and sample values ([`samples`], [`sample_iter`], [`default_points`]).
//! - `timefmt`: fast `%Y-%m-%dT%H:%M:%SZ` formatting, used per sample.
//! - `query`: parsing the paginated endpoint's query string (repeated and comma-separated `point_names`).
//! - `cursor`: the opaque page cursor (base64 of `{"o":offset}`).
//! - `page`: building one page's JSON body without generating the rest of the range.
//! - `faults`: the seeded, pure fault decisions: per request, slow, and per
//!   (site, window) ([`window_fault`], [`window_index`], [`WindowFault`]).
//! - `server`: the axum router, handlers, counters, the fault controls
//!   (`/faults`, `/faults/outage`), the dropped-connection body and the alert
//!   receiver ([`router`], [`serve`]).
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
pub use faults::{window_fault, window_index, WindowFault};
pub use server::{router, serve, serve_with_shutdown};
pub use timefmt::format_time;

//! A deterministic simulation of the ACE IoT FlightDeck timeseries API.
//!
//! The end-to-end tests and the demo run point the consumer Worker at this
//! server instead of the real API. Everything it serves is a pure function of
//! its inputs (site, point, time, and the fault seed), so a test can compute
//! exactly what the pipeline should have stored with [`samples`], and a
//! failing run can be replayed with the same seed.
//!
//! # Modes
//! [`SimConfig::mode`] (`--mode`, `ACE_SIM_MODE`) picks how closely the
//! server imitates ACE.
//!
//! **Faithful** (the default) answers the way the live API does:
//! - A site has a fixed catalogue, [`catalogue()`]`(site, cfg)` =
//!   [`default_points`]`(site, `[`site_size`]`(site, cfg))`: `N` points for a
//!   name ending in `-<N>pts` (`bldg-200pts`), else `--site-points` (50). Its
//!   last `floor(N * silent_share)` points ([`silent_points`]; `--silent-share`,
//!   0.25) never report; the rest ([`reporting_points`]) report at every
//!   multiple of the interval, with the values of [`samples`].
//! - `GET /sites/{site}/timeseries/paginated?start_time&end_time&page_size&cursor`
//!   ignores `point_names` and returns every reporting point of the site,
//!   time-major, ordered by (time, name): per timestamp bucket of
//!   `[start, end)`, one row per point in byte order of the names. The body
//!   is exactly `{"point_samples":[{"name","value","time"}…],"next_cursor":…,"has_more":…}`
//!   without whitespace. `page_size` must be one of 3, 10, 50, 100, 500,
//!   1000, 5000, 10000 (default), 50000, 100000, 300000, 500000.
//! - `next_cursor` is standard base64 of `{"offset": N, "timestamp": "<naive time>"}`:
//!   the next page starts N rows after the first row at `timestamp`. Like
//!   ACE, N counts only the page's rows in its last bucket, without the
//!   incoming offset, so a page that begins and ends in one bucket (page
//!   size below the site's reporting points) returns the cursor it was
//!   given. `--fix-cursor` emits the correct offset instead.
//! - `GET /points/{point_name}/timeseries?start_time&end_time`: one point,
//!   unpaginated `{"point_samples":[…]}`. The name is one percent-encoded
//!   segment; its `ses_{site}` segment names the site ([`parse_default_point`]).
//!   A name outside the catalogue is a 404; a silent point is an empty list.
//! - `GET /sites/{site}/configured_points?page&per_page`: the whole catalogue,
//!   `{items, page, pages, per_page, total}`, each item with `collect_enabled`
//!   and `collect_interval` (`--collect-interval-secs`, 30). `per_page` is
//!   one of 2, 10 (default), 20, 30, 40, 50, 100, 500, 1000, 5000, 10000,
//!   100000. `POST /points/get_timeseries` always answers 400.
//! - Times are naive UTC, `2026-08-07T16:25:00` (`--time-format`: `micros`
//!   adds a deterministic fraction below 1 ms, `z` a `Z`; see
//!   [`format_sample_time`]). `start_time`/`end_time` may be naive, `Z`, with
//!   an offset, with a fraction, or a date.
//! - Errors: no token 401 `{"detail":"Not authenticated"}`; a wrong token 500
//!   `{"message": "An unhandled exception occurred."}`; a site named
//!   `unknown…` 403 with an all-null site body (all three GET endpoints); a
//!   point not in the catalogue 404; bad parameters 400
//!   `{"errors":{field: message},"message":…}`.
//!
//! **Kind** (`--mode kind`) keeps the older, kinder behaviour for tests that
//! need it: `point_names` is honoured (10 default points otherwise), pages
//! are point-major, times end in `Z` ([`format_time`]), the cursor is
//! `{"o":offset}`, bad parameters are 422s, a wrong token is a 401, an
//! unknown site a 404, and the point endpoint accepts any name.
//!
//! # Faults
//! All injected faults are off by default and seeded by [`SimConfig::seed`].
//! They apply to both timeseries endpoints (not to `configured_points`):
//! - **Per request** (`rate_500`, `rate_503`, `rate_429`, `rate_truncated`,
//!   `rate_garbage`, `rate_drop`): one uniform draw of (seed, path and query,
//!   attempt number) cut into exclusive bands in that order. A *drop* sends
//!   the status, a `Content-Length` for the whole page, half of it, then
//!   aborts the connection.
//! - **Slow sites**: every timeseries request for a site whose name holds
//!   `-slow<N>ms` waits `N` ms (`faults::site_delay`).
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
//! # Counters
//! `GET /__stats`: `requests` (both timeseries endpoints), `requests_paginated`,
//! `requests_point`, `requests_configured_points`, `pages_ok` (whole 200
//! timeseries responses), `rows_served` (= `samples_served`), `bytes_served`
//! (their body bytes), `faults`, and `by_site`: `{site: {bytes, rows,
//! requests}}` for the timeseries endpoints (the point endpoint counts under
//! the site its name claims).
//!
//! # Layout
//! - [`config`]: [`SimConfig`], the settings (also the binary's CLI flags and
//!   env vars), [`Mode`] and [`TimeFormat`].
//! - [`data`]: the deterministic point names and sample values ([`samples`],
//!   [`sample_iter`], [`default_points`], [`default_point`], [`parse_default_point`]).
//! - `catalogue`: a site's fixed catalogue in faithful mode ([`site_size`],
//!   [`catalogue()`], [`reporting_points`], [`silent_points`]) and its
//!   name-sorted, render-ready form shared by every page.
//! - `timefmt`: fast naive / `Z` / microsecond time formatting
//!   ([`format_time`], [`format_naive`], [`format_sample_time`]).
//! - `query`: parsing the query strings: kind mode's (repeated and
//!   comma-separated `point_names`, 422 messages) and faithful mode's
//!   (per-field errors for the 400s).
//! - `cursor`: both cursors (kind `{"o":offset}`, faithful `{"offset","timestamp"}`).
//! - `page`: a kind-mode page (point-major) without generating the rest of the range.
//! - `ace_page`: a faithful-mode page (time-major, rows located
//!   arithmetically, ACE's cursor bug) and the point endpoint's body.
//! - `faults`: the seeded, pure fault decisions: per request, slow, and per
//!   (site, window) ([`window_fault`], [`window_index`], [`WindowFault`]).
//! - `server`: the axum router, handlers, counters, the fault controls
//!   (`/faults`, `/faults/outage`), the dropped-connection body and the alert
//!   receiver ([`router`], [`serve`]).
#![deny(missing_docs)]

mod ace_page;
mod catalogue;
pub mod config;
mod cursor;
pub mod data;
mod faults;
mod page;
mod query;
mod server;
mod timefmt;

pub use catalogue::{catalogue, reporting_points, silent_points, site_size};
pub use config::{Mode, SimConfig, TimeFormat};
pub use data::{
    default_point, default_points, is_state_point, parse_default_point, sample_iter, samples,
    SampleIter,
};
pub use faults::{window_fault, window_index, WindowFault};
pub use server::{router, serve, serve_with_shutdown};
pub use timefmt::{format_naive, format_sample_time, format_time};

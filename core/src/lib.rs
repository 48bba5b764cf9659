//! Platform-free core of the time-series pipeline.
//!
//! Nothing here touches `worker`, tokio or SQLite: the Cloudflare Worker and
//! the native tests plug their own adapters into the [`ports`], and both run
//! the same [`service`] code and the same SQL from [`store`].
//!
//! It sits on `tsp-format` (the engine: samples, aggregation, the codec,
//! export, parts, the chunk plan), whose modules it re-exports for one
//! transition, and on `tsp-api` (the wire types).
//!
//! # Layout
//! - [`api`]: the API's wire types (`tsp-api`), re-exported.
//! - [`auth`]: bearer tokens to owners, in constant time.
//! - [`backoff`]: the one backoff policy (capped exponential, with jitter) of every retry.
//! - [`domain`]: newtypes (`JobId`, `Site`, `PointName`, `TimeRange`) and request parsing.
//! - [`job`]: the job state machine and the `queue_jobs` row.
//! - [`error`]: errors, permanent or transient, and their one mapping to HTTP and queue actions.
//! - [`fingerprint`]: SHA-256 of the canonical request, and the result key.
//! - [`plan`]: how a job's windows are fetched (a site walk or per-point requests) and which costs less.
//! - [`upstream`]: the source trait the consumer asks for a window's samples, and ACE behind it (its URLs, cursor repair, errors).
//! - [`ports`]: the traits adapters implement (SQL, blobs, queue, HTTP, clock).
//! - [`timeout`]: timeout decorators for the storage ports.
//! - [`store`]: every SQL statement, one function each.
//! - [`budget`]: one invocation's D1, subrequest and time budgets, and the metered ports.
//! - [`config`]: settings from vars and secrets.
//! - [`service`]: submit, process (with `lease`, `assemble` and `circuit`), dead-letter, reap; what the roles do.
#![deny(missing_docs)]
// The ports are used from single-threaded runtimes (workerd, current-thread
// tokio): their futures are deliberately not `Send`.
#![allow(async_fn_in_trait)]

pub mod api;
pub mod auth;
pub mod backoff;
pub mod budget;
pub mod config;
pub mod domain;
pub mod error;
pub mod fingerprint;
pub mod job;
pub mod plan;
pub mod ports;
pub mod service;
pub mod store;
pub mod timeout;
pub mod upstream;

// The engine, re-exported so that `tsp_core::codec` and `crate::codec` keep
// working for one transition.
pub use tsp_format::{aggregate, chunk, codec, export, parts, sample, time};

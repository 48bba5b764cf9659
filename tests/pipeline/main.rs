//! The project's one integration-test binary.
//!
//! - `native_*`: the core services over native adapters (real SQLite applying
//!   `schema/`, the in-process simulator, wiremock). Fast; run by `cargo test`.
//!   `native_upstream` holds the cases of the upstream as ACE really
//!   behaves (its timestamps, cursor bug, error codes, plans).
//! - `conformance`: one suite for the storage ports, run against every
//!   native adapter (the e2e tests exercise the same behaviour on local D1/R2).
//! - `faults`: the built Worker against a faulty simulator (windowed
//!   503/429, a full outage), on a stack of its own.
//! - `e2e`: the built wasm Worker in the local Workers runtime. Ignored by a
//!   plain `cargo test`; `scripts/test.sh` starts the stack and runs them with
//!   `--ignored`.

mod conformance;
mod deploy;
mod e2e;
mod e2e_adversary;
mod e2e_methods;
mod e2e_operate;
mod e2e_series;
mod e2e_store;
mod e2e_upstream;
mod faults;
mod limits;
mod native_api;
mod native_batch;
mod native_callback;
mod native_commit;
mod native_faults;
mod native_flow;
mod native_notices;
mod native_operate;
mod native_parquet;
mod native_resilience;
mod native_series;
mod native_store;
mod native_upstream;
mod paging;
mod support;

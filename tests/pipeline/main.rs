//! The project's one integration-test binary.
//!
//! - `native_*`: the core services over native adapters (real SQLite applying
//!   `schema/`, the in-process simulator, wiremock). Fast; run by `cargo test`.
//! - `e2e`: the built wasm Worker in the local Workers runtime. Ignored by a
//!   plain `cargo test`; `scripts/test.sh` starts the stack and runs them with
//!   `--ignored`.

mod e2e;
mod native_api;
mod native_faults;
mod native_flow;
mod support;

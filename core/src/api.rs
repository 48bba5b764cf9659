//! The API's wire types live in `tsp-api`; re-exported here for one
//! transition, so `tsp_core::api::JobView` keeps working.

pub use tsp_api::*;

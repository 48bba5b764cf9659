//! How a job fetches from the upstream: what a request asks for, and
//! what the consumer chose.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a request (or `UPSTREAM_PLAN`) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanChoice {
    /// Whichever costs less for this site and job.
    #[default]
    Auto,
    /// Always the site walk.
    Site,
    /// Always per-point requests.
    Point,
}

impl PlanChoice {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanChoice::Auto => "auto",
            PlanChoice::Site => "site",
            PlanChoice::Point => "point",
        }
    }
}

impl std::str::FromStr for PlanChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(PlanChoice::Auto),
            "site" => Ok(PlanChoice::Site),
            "point" => Ok(PlanChoice::Point),
            _ => Err(format!("must be auto, site or point, not {s:?}")),
        }
    }
}

/// How a job's windows are fetched, once chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// One time-major walk of the site's pages per window.
    Site,
    /// One request per point and window.
    Point,
}

impl Plan {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Site => "site",
            Plan::Point => "point",
        }
    }
}

impl FromStr for Plan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "site" => Ok(Plan::Site),
            "point" => Ok(Plan::Point),
            _ => Err(format!("unknown plan {s:?}")),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

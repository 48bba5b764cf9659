//! The identifiers a request names, parsed once at the edge: a job, a
//! site, a point. Past their `parse`, nothing re-checks them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::problem::ValidationError;

/// The longest point name accepted, in bytes.
pub const MAX_POINT_BYTES: usize = 512;

/// A job identifier: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// Parses an identifier as it appears in a URL or a message.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::single(
                "id",
                "must be 32 lowercase hex characters",
            ))
        }
    }

    /// Builds an identifier from 16 random bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A site name: letters, digits, `_`, `-` and `.`, starting with a letter or
/// digit, at most 128 bytes and never containing `..`, so it is safe in a URL
/// path segment and an object key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Site(String);

impl Site {
    /// Parses a site name.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        let first_ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if s.is_empty() || s.len() > 128 {
            Err("must be 1 to 128 characters")
        } else if !ok_chars || !first_ok || s.contains("..") {
            Err("must start with a letter or digit and contain only letters, digits, '_', '-' and single '.'")
        } else {
            Ok(Self(s.to_owned()))
        }
    }

    /// The site as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A point name: 1 to 512 bytes with no control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PointName(String);

impl PointName {
    /// Parses a point name.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() || s.len() > MAX_POINT_BYTES {
            Err("must be 1 to 512 bytes")
        } else if s.chars().any(char::is_control) {
            Err("must not contain control characters")
        } else {
            Ok(Self(s.to_owned()))
        }
    }

    /// The point as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text conversions of a name newtype: read back through its `parse`
/// (a stored row is checked again), written as the plain string.
macro_rules! name_text {
    ($t:ident) => {
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $t::parse(&s).map_err(|why| format!("{} {s:?}: {why}", stringify!($t)))
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> Self {
                v.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

name_text!(Site);
name_text!(PointName);

/// OpenAPI schemas of the newtypes: the rules their `parse` enforces, as
/// far as a JSON Schema can say them.
mod schemas {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};

    fn string(min: usize, max: Option<usize>, pattern: &str, doc: &str) -> RefOr<Schema> {
        let mut b = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(min))
            .max_length(max)
            .pattern(Some(pattern));
        if !doc.is_empty() {
            b = b.description(Some(doc));
        }
        b.build().into()
    }

    impl PartialSchema for super::JobId {
        fn schema() -> RefOr<Schema> {
            string(32, Some(32), "^[0-9a-f]{32}$", "")
        }
    }
    impl ToSchema for super::JobId {}

    impl PartialSchema for super::Site {
        fn schema() -> RefOr<Schema> {
            string(
                1,
                Some(128),
                "^[A-Za-z0-9](?:[A-Za-z0-9_-]|\\.[A-Za-z0-9_-])*\\.?$",
                "Letters, digits, `_`, `-` and `.`, starting with a letter or digit, never `..`.",
            )
        }
    }
    impl ToSchema for super::Site {}

    impl PartialSchema for super::PointName {
        fn schema() -> RefOr<Schema> {
            // maxLength counts characters, the rule bytes: 512 bounds both.
            string(
                1,
                Some(super::MAX_POINT_BYTES),
                "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
                "1 to 512 bytes (UTF-8) without control characters.",
            )
        }
    }
    impl ToSchema for super::PointName {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_through_parse_and_write_as_plain_strings() {
        let site: Site = serde_json::from_str(r#""bldg-1.a""#).unwrap();
        assert_eq!(site, "bldg-1.a");
        assert_eq!(serde_json::to_string(&site).unwrap(), r#""bldg-1.a""#);
        assert!(serde_json::from_str::<Site>(r#""../etc""#).is_err());
        let points: Vec<PointName> = serde_json::from_str(r#"["a/b", "c d"]"#).unwrap();
        assert_eq!(points[1].to_string(), "c d");
        let err = serde_json::from_str::<PointName>(r#""a\nb""#).unwrap_err();
        assert!(err.to_string().contains("control characters"), "{err}");
    }
}

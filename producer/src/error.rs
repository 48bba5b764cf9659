//! The producer's errors: every [`Error`] the services report, and the
//! four that only HTTP has (a method a route does not take, a body that is
//! not JSON, a body too large, a byte range outside the object). [`HttpError::http_status`],
//! [`HttpError::title`] and [`HttpError::public_detail`] are the producer's
//! one mapping; for a service error they defer to the core's.

use tsp_core::error::Error;

/// What a request can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    /// A service error.
    #[error(transparent)]
    Core(#[from] Error),
    /// The route exists but not for this method; the value is its `Allow`.
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(&'static str),
    /// The body is larger than allowed.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not JSON.
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// No byte of the object (of this size) is in the requested range.
    #[error("the range is outside the object's {0} bytes")]
    RangeNotSatisfiable(u64),
}

impl From<tsp_core::error::ValidationError> for HttpError {
    fn from(e: tsp_core::error::ValidationError) -> Self {
        HttpError::Core(e.into())
    }
}

impl From<tsp_core::error::StoreError> for HttpError {
    fn from(e: tsp_core::error::StoreError) -> Self {
        HttpError::Core(e.into())
    }
}

impl HttpError {
    /// The HTTP status of the answer.
    pub fn http_status(&self) -> u16 {
        match self {
            HttpError::Core(e) => e.http_status(),
            HttpError::MethodNotAllowed(_) => 405,
            HttpError::PayloadTooLarge(_) => 413,
            HttpError::UnsupportedMediaType => 415,
            HttpError::RangeNotSatisfiable(_) => 416,
        }
    }

    /// The problem's title.
    pub fn title(&self) -> &'static str {
        match self {
            HttpError::Core(e) => e.title(),
            HttpError::MethodNotAllowed(_) => "Method not allowed",
            HttpError::PayloadTooLarge(_) => "Payload too large",
            HttpError::UnsupportedMediaType => "Unsupported media type",
            HttpError::RangeNotSatisfiable(_) => "Range not satisfiable",
        }
    }

    /// The problem's detail, with no internals.
    pub fn public_detail(&self) -> String {
        match self {
            HttpError::Core(e) => e.public_detail(),
            other => other.to_string(),
        }
    }

    /// The service error, if this is one.
    pub fn core(&self) -> Option<&Error> {
        match self {
            HttpError::Core(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_answer_their_own_status_and_service_errors_the_cores() {
        assert_eq!(HttpError::MethodNotAllowed("GET, HEAD").http_status(), 405);
        assert_eq!(HttpError::PayloadTooLarge(65_536).http_status(), 413);
        assert_eq!(HttpError::UnsupportedMediaType.http_status(), 415);
        assert_eq!(HttpError::RangeNotSatisfiable(9).http_status(), 416);
        assert_eq!(
            HttpError::MethodNotAllowed("GET, HEAD").public_detail(),
            "method not allowed; allowed: GET, HEAD"
        );
        let core = HttpError::from(Error::NotFound);
        assert_eq!((core.http_status(), core.title()), (404, "Not found"));
        let store = HttpError::from(tsp_core::error::StoreError::Backend("d1 down".into()));
        assert_eq!(store.http_status(), 503);
        assert!(!store.public_detail().contains("d1"));
    }
}

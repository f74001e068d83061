//! Errors that reach a client, and the one place each is turned into a gRPC status or an HTTP
//! status.
//!
//! Client mistakes are answered `INVALID_ARGUMENT` with a message naming the field. A store that
//! cannot be reached is `UNAVAILABLE`, never an OK or UNKNOWN answer: Envoy lets a request
//! through on a successful response whatever `failure_mode_deny` says, so only an error status
//! lets the operator's choice decide. Over HTTP, client mistakes are 4xx naming the field and a
//! store failure is 503.

use tonic::{Code, Status};
use warp::http::StatusCode;

use crate::store::StoreError;

/// A request the service refuses to evaluate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("rate limit domain must not be empty")]
    EmptyDomain,
    #[error("rate limit descriptor list must not be empty")]
    NoDescriptors,
    #[error("rate limit request has {count} descriptors, more than the {max} allowed")]
    TooManyDescriptors { count: usize, max: usize },
    #[error("descriptors[{descriptor}] has no entries")]
    NoEntries { descriptor: usize },
    #[error("descriptors[{descriptor}] has {count} entries, more than the {max} allowed")]
    TooManyEntries {
        descriptor: usize,
        count: usize,
        max: usize,
    },
    #[error("descriptors[{descriptor}].entries[{entry}].key must not be empty")]
    EmptyKey { descriptor: usize, entry: usize },
    #[error(
        "descriptors[{descriptor}].entries[{entry}].{part} is {len} bytes, more than the {max} allowed"
    )]
    TooLong {
        descriptor: usize,
        entry: usize,
        part: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "descriptors[{descriptor}].limit.unit {unit} is not a rate limit unit (SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR)"
    )]
    BadOverrideUnit { descriptor: usize, unit: i32 },
    #[error("descriptors[{descriptor}].hits_addend {hits} is more than the {max} allowed")]
    TooManyHits {
        descriptor: usize,
        hits: u64,
        max: u64,
    },
}

impl RequestError {
    /// The request field at fault, as a path into `RateLimitRequest`.
    pub fn field(&self) -> String {
        match self {
            RequestError::EmptyDomain => "domain".into(),
            RequestError::NoDescriptors | RequestError::TooManyDescriptors { .. } => {
                "descriptors".into()
            }
            RequestError::NoEntries { descriptor }
            | RequestError::TooManyEntries { descriptor, .. } => {
                format!("descriptors[{descriptor}].entries")
            }
            RequestError::EmptyKey { descriptor, entry } => {
                format!("descriptors[{descriptor}].entries[{entry}].key")
            }
            RequestError::TooLong {
                descriptor,
                entry,
                part,
                ..
            } => format!("descriptors[{descriptor}].entries[{entry}].{part}"),
            RequestError::BadOverrideUnit { descriptor, .. } => {
                format!("descriptors[{descriptor}].limit.unit")
            }
            RequestError::TooManyHits { descriptor, .. } => {
                format!("descriptors[{descriptor}].hits_addend")
            }
        }
    }
}

impl From<RequestError> for Status {
    fn from(error: RequestError) -> Status {
        Status::invalid_argument(error.to_string())
    }
}

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Status {
        if error.is_transient() {
            Status::unavailable(error.to_string())
        } else {
            // Not the client's fault and no use to it: the details go to the log.
            tracing::error!(%error, "counter store failed");
            Status::new(
                Code::Unavailable,
                "counter store failed; see the service log",
            )
        }
    }
}

/// Why the HTTP API did not answer a request; [`ApiError::status`] is its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Not what the endpoint reads: not JSON, a wrong type, an unknown or a missing field.
    #[error("{message}")]
    Malformed {
        field: Option<String>,
        message: String,
    },
    /// Well formed, but a value is outside what the endpoint accepts.
    #[error("{message}")]
    OutOfRange { field: String, message: String },
    /// A rate limit request the limiter refuses.
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("this endpoint needs an Authorization: Bearer <admin token> header")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{message}")]
    NotFound {
        field: Option<String>,
        message: String,
    },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request body is larger than the {max} bytes allowed")]
    BodyTooLarge { max: usize },
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `/healthcheck`'s answer when some part is unhealthy (500, as the Go service answers).
    #[error("{0}")]
    Unhealthy(&'static str),
}

impl ApiError {
    pub fn malformed(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Malformed {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn out_of_range(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::OutOfRange {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed { .. }
            | ApiError::Request(_)
            | ApiError::Store(StoreError::BadCursor(_)) => StatusCode::BAD_REQUEST,
            ApiError::OutOfRange { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unhealthy(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The request field at fault, where there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            ApiError::Malformed { field, .. } | ApiError::NotFound { field, .. } => field.clone(),
            ApiError::OutOfRange { field, .. } => Some(field.clone()),
            ApiError::Request(error) => Some(error.field()),
            ApiError::Store(StoreError::BadCursor(_)) => Some("cursor".into()),
            _ => None,
        }
    }

    /// What the client is told. A store failure that is not transient is logged here and
    /// answered generically, as over gRPC.
    pub fn message(&self) -> String {
        match self {
            ApiError::Store(error) if !error.is_transient() && self.field().is_none() => {
                tracing::error!(%error, "counter store failed");
                "counter store failed; see the service log".into()
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_are_503_and_only_transient_ones_say_why() {
        let down = ApiError::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.message().contains("connection refused"));
        let broken = ApiError::from(StoreError::Protocol("script returned nil".into()));
        assert_eq!(broken.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            broken.message(),
            "counter store failed; see the service log"
        );
        assert_eq!((broken.field(), down.field()), (None, None));
    }

    #[test]
    fn client_mistakes_are_4xx_naming_the_field() {
        let cursor = ApiError::from(StoreError::BadCursor("x".into()));
        assert_eq!(
            (cursor.status(), cursor.field().as_deref()),
            (StatusCode::BAD_REQUEST, Some("cursor"))
        );
        let request = ApiError::from(RequestError::EmptyKey {
            descriptor: 1,
            entry: 0,
        });
        assert_eq!(
            (request.status(), request.field().as_deref()),
            (
                StatusCode::BAD_REQUEST,
                Some("descriptors[1].entries[0].key")
            )
        );
        let range = ApiError::out_of_range("limit", "limit must be from 1");
        assert_eq!(range.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            ApiError::BodyTooLarge { max: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}

//! Why the HTTP API did not answer a request, and the one place where that becomes an HTTP
//! status and a JSON body: client mistakes are 4xx naming the field, a store failure is 503.

use warp::http::StatusCode;

use crate::inflight::OverBudget;
use crate::limiter::CheckError;
use crate::rls::RequestError;
use crate::store::StoreError;

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
    Unhealthy(String),
    /// The in-flight budget is spent (503: retry later).
    #[error(transparent)]
    Busy(#[from] OverBudget),
    /// Matching the request would take more work than one request may (429).
    #[error("{0}")]
    TooMuchWork(String),
    /// No config could be loaded yet (503).
    #[error("{}", crate::health::NO_CONFIG_LOADED)]
    NoConfig,
}

impl From<CheckError> for ApiError {
    fn from(error: CheckError) -> ApiError {
        match error {
            CheckError::Store(error) => ApiError::Store(error),
            CheckError::TooMuchWork(spent) => ApiError::TooMuchWork(spent.to_string()),
            CheckError::NoConfig => ApiError::NoConfig,
        }
    }
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
            ApiError::Store(_) | ApiError::Busy(_) | ApiError::NoConfig => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unhealthy(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TooMuchWork(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The request field at fault, where there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            ApiError::Malformed { field, .. } | ApiError::NotFound { field, .. } => field.clone(),
            ApiError::OutOfRange { field, .. } => Some(field.clone()),
            ApiError::Request(error) => Some(error.field()),
            ApiError::TooMuchWork(_) => Some("descriptors".into()),
            ApiError::Store(StoreError::BadCursor(_)) => Some("cursor".into()),
            _ => None,
        }
    }

    /// What the client is told. A store failure that is not transient is logged here and
    /// answered generically, as over gRPC.
    pub fn message(&self) -> String {
        match self {
            ApiError::Store(error) if !error.is_transient() && self.field().is_none() => {
                crate::throttled!(ERROR, %error, "counter store failed");
                "counter store failed; see the service log".into()
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rls::RequestError;

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

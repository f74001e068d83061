//! Requests the service refuses to evaluate, and the one place where refusals and store failures
//! become gRPC statuses.
//!
//! Client mistakes are answered `INVALID_ARGUMENT` with a message naming the field. A store that
//! that needs more work than one may is `RESOURCE_EXHAUSTED`. A store that
//! cannot be reached is `UNAVAILABLE`, never an OK or UNKNOWN answer: Envoy lets a request
//! through on a successful response whatever `failure_mode_deny` says, so only an error status
//! lets the operator's choice decide.

use tonic::{Code, Status};

use crate::limiter::CheckError;
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

impl From<CheckError> for Status {
    fn from(error: CheckError) -> Status {
        match error {
            CheckError::Store(error) => Status::from(error),
            CheckError::TooMuchWork(spent) => Status::resource_exhausted(spent.to_string()),
            CheckError::NoConfig => Status::unavailable(CheckError::NoConfig.to_string()),
        }
    }
}

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Status {
        if error.is_transient() {
            Status::unavailable(error.to_string())
        } else {
            // Not the client's fault and no use to it: the details go to the log.
            crate::throttled!(ERROR, %error, "counter store failed");
            Status::new(
                Code::Unavailable,
                "counter store failed; see the service log",
            )
        }
    }
}

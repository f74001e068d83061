//! The Envoy rate-limit service (`envoy.service.ratelimit.v3.RateLimitService`): validation of
//! requests at the edge, the gRPC service itself, and the responses it sends.

mod deadline;
mod error;
mod metadata;
mod oversize;
pub mod request;
pub mod response;
pub mod service;

pub use error::RequestError;
pub use request::RequestLimits;
pub use response::{HeaderNames, ResponseOptions};
pub use service::RateLimitGrpc;

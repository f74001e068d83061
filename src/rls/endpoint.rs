//! The tonic endpoint of `envoy.service.ratelimit.v3.RateLimitService`: the one method routed to
//! [`RateLimitGrpc`], requests decoded as envoy-types', responses encoded from [`super::wire`]
//! (which carries what envoy-types lacks). [`RateLimitGrpc::into_server`] wraps it so that an
//! over-long request is answered `RESOURCE_EXHAUSTED` (`super::oversize`).

use std::convert::Infallible;
use std::sync::Arc;

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use tonic::codegen::{Body as RequestBody, Context, Poll, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use super::oversize::OversizeIsResourceExhausted;
use super::service::RateLimitGrpc;
use super::wire::RateLimitResponse;
use crate::store::BoxFuture;

const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
const SHOULD_RATE_LIMIT: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

#[derive(Clone)]
pub struct RateLimitEndpoint {
    grpc: Arc<RateLimitGrpc>,
    max_message_bytes: usize,
}

impl RateLimitGrpc {
    /// The gRPC service: this one behind its own endpoint, request messages larger than
    /// `max_message_bytes` answered `RESOURCE_EXHAUSTED`.
    pub fn into_server(
        self,
        max_message_bytes: usize,
    ) -> OversizeIsResourceExhausted<RateLimitEndpoint> {
        OversizeIsResourceExhausted(RateLimitEndpoint {
            grpc: Arc::new(self),
            max_message_bytes,
        })
    }
}

impl NamedService for RateLimitEndpoint {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for RateLimitEndpoint
where
    B: RequestBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SHOULD_RATE_LIMIT {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = ShouldRateLimit(self.grpc.clone());
        let max_message_bytes = self.max_message_bytes;
        Box::pin(async move {
            let codec = ProstCodec::<RateLimitResponse, RateLimitRequest>::default();
            let mut grpc =
                Grpc::new(codec).apply_max_message_size_config(Some(max_message_bytes), None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

struct ShouldRateLimit(Arc<RateLimitGrpc>);

impl UnaryService<RateLimitRequest> for ShouldRateLimit {
    type Response = RateLimitResponse;
    type Future = BoxFuture<'static, Result<Response<RateLimitResponse>, Status>>;

    fn call(&mut self, request: Request<RateLimitRequest>) -> Self::Future {
        let grpc = self.0.clone();
        Box::pin(async move { grpc.should_rate_limit(request).await.map(Response::new) })
    }
}

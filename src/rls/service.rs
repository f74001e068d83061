//! The gRPC face of the limiter: validate, decide, respond. No decisions are made here.

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::codegen::{Context, Poll, Service, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::request::{self, RequestLimits};
use super::response::{self, ResponseOptions};
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::store::BoxFuture;

pub struct RateLimitGrpc {
    limiter: Arc<Limiter>,
    /// The gRPC method's own figures (calls, latency, refused requests); the limiter records
    /// the decisions.
    metrics: Arc<Metrics>,
    limits: RequestLimits,
    response: ResponseOptions,
}

impl RateLimitGrpc {
    pub fn new(
        limiter: Arc<Limiter>,
        metrics: Arc<Metrics>,
        limits: RequestLimits,
        response: ResponseOptions,
    ) -> RateLimitGrpc {
        RateLimitGrpc {
            limiter,
            metrics,
            limits,
            response,
        }
    }

    /// The tonic service, refusing request messages larger than `max_message_bytes` with
    /// `RESOURCE_EXHAUSTED`.
    pub fn into_server(
        self,
        max_message_bytes: usize,
    ) -> OversizeIsResourceExhausted<RateLimitServiceServer<RateLimitGrpc>> {
        OversizeIsResourceExhausted(
            RateLimitServiceServer::new(self).max_decoding_message_size(max_message_bytes),
        )
    }
}

impl RateLimitGrpc {
    async fn answer(&self, request: RateLimitRequest) -> Result<RateLimitResponse, Status> {
        let check = request::validate(&request, &self.limits)
            .inspect_err(|_| self.metrics.service_errors.inc())?;
        let decision = self.limiter.check(&check).await?;
        Ok(response::build(&request, &decision, &self.response))
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimitGrpc {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let started = Instant::now();
        let answer = self.answer(request.into_inner()).await;
        self.metrics.should_rate_limit_calls.inc();
        self.metrics
            .should_rate_limit_time
            .observe(started.elapsed().as_secs_f64());
        answer.map(Response::new)
    }
}

/// tonic answers an over-long request message with `OUT_OF_RANGE`; the gRPC status-code guide
/// (and grpc-go, which Envoy's other services use) says `RESOURCE_EXHAUSTED`. This wrapper
/// rewrites that one answer, recognised by tonic's message text.
#[derive(Clone)]
pub struct OversizeIsResourceExhausted<S>(S);

/// The start of tonic's `grpc-message` header for a request message over the decoding limit
/// (percent-encoded, as the header carries it).
const OVERSIZE_MESSAGE: &str = "Error,%20decoded%20message%20length%20too%20large";

impl<S: NamedService> NamedService for OversizeIsResourceExhausted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for OversizeIsResourceExhausted<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.0.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            let headers = response.headers_mut();
            let out_of_range = headers.get("grpc-status").is_some_and(|code| code == "11");
            let oversize = headers
                .get("grpc-message")
                .and_then(|message| message.to_str().ok())
                .is_some_and(|message| message.starts_with(OVERSIZE_MESSAGE));
            if out_of_range && oversize {
                headers.insert("grpc-status", http::HeaderValue::from_static("8"));
            }
            Ok(response)
        })
    }
}

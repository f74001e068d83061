//! The gRPC face of the limiter: validate, decide, respond. No decisions are made here.

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::codegen::{Context, Poll, Service, http};
use tonic::metadata::{KeyRef, MetadataMap};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::request::{self, RequestLimits};
use super::response::{self, ResponseOptions};
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::store::BoxFuture;
use crate::trace::{self, Extractor, FutureExt, KeyValue, Tracer};

pub struct RateLimitGrpc {
    limiter: Arc<Limiter>,
    /// The gRPC method's own figures (calls, latency, refused requests); the limiter records
    /// the decisions.
    metrics: Arc<Metrics>,
    limits: RequestLimits,
    response: ResponseOptions,
    /// With tracing on: a span for each call.
    tracer: Option<Tracer>,
}

impl RateLimitGrpc {
    pub fn new(
        limiter: Arc<Limiter>,
        metrics: Arc<Metrics>,
        limits: RequestLimits,
        response: ResponseOptions,
        tracer: Option<Tracer>,
    ) -> RateLimitGrpc {
        RateLimitGrpc {
            limiter,
            metrics,
            limits,
            response,
            tracer,
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

    /// [`Self::answer`] inside a server span that continues the caller's trace.
    async fn traced(
        &self,
        tracer: &Tracer,
        request: Request<RateLimitRequest>,
    ) -> Result<RateLimitResponse, Status> {
        let (domain, descriptors) = (
            &request.get_ref().domain,
            request.get_ref().descriptors.len(),
        );
        let span = tracer.server_span(&Metadata(request.metadata()), domain, descriptors);
        if !trace::is_recording(&span) {
            return self.answer(request.into_inner()).await;
        }
        let answer = self
            .answer(request.into_inner())
            .with_context(span.clone())
            .await;
        let (outcome, code, error) = match &answer {
            Ok(response) => {
                let code = Code::try_from(response.overall_code).unwrap_or(Code::Unknown);
                (code.as_str_name().to_string(), 0, None)
            }
            Err(status) => (
                "ERROR".to_string(),
                status.code() as i64,
                Some(status.message().to_string()),
            ),
        };
        let attributes = vec![
            KeyValue::new("ratelimit.outcome", outcome),
            KeyValue::new("ratelimit.store", self.limiter.store_kind()),
            KeyValue::new("rpc.grpc.status_code", code),
        ];
        trace::end(&span, attributes, error);
        answer
    }
}

/// gRPC request metadata, read for trace headers.
struct Metadata<'m>(&'m MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                KeyRef::Ascii(key) => Some(key.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimitGrpc {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let started = Instant::now();
        let answer = match &self.tracer {
            None => self.answer(request.into_inner()).await,
            Some(tracer) => self.traced(tracer, request).await,
        };
        self.metrics.observe_should_rate_limit(started.elapsed());
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

//! The gRPC face of the limiter: validate, decide, respond. No decisions are made here.

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::metadata::{KeyRef, MetadataMap};
use tonic::{Request, Response, Status};

use super::deadline::store_deadline;
use super::oversize::OversizeIsResourceExhausted;
use super::request::{self, RequestLimits};
use super::response::{self, ResponseOptions};
use crate::limiter::{Caller, Limiter};
use crate::metrics::Metrics;
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
    async fn answer(
        &self,
        request: RateLimitRequest,
        caller: Caller,
    ) -> Result<RateLimitResponse, Status> {
        let check = request::validate(&request, &self.limits)
            .inspect_err(|_| self.metrics.service_errors.inc())?;
        let decision = self.limiter.check_for(&check, caller).await?;
        Ok(response::build(&request, &decision, &self.response))
    }

    /// [`Self::answer`] inside a server span that continues the caller's trace.
    async fn traced(
        &self,
        tracer: &Tracer,
        request: Request<RateLimitRequest>,
        caller: Caller,
    ) -> Result<RateLimitResponse, Status> {
        let (domain, descriptors) = (
            &request.get_ref().domain,
            request.get_ref().descriptors.len(),
        );
        let span = tracer.server_span(&Metadata(request.metadata()), domain, descriptors);
        if !trace::is_recording(&span) {
            return self.answer(request.into_inner(), caller).await;
        }
        let answer = self
            .answer(request.into_inner(), caller)
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
        let arrived = Instant::now();
        // Only a remote store can be late; the memory store answers at once.
        let deadline = self
            .limiter
            .store_is_remote()
            .then(|| store_deadline(request.metadata(), arrived))
            .flatten();
        let caller = Caller { arrived, deadline };
        let answer = match &self.tracer {
            None => self.answer(request.into_inner(), caller).await,
            Some(tracer) => self.traced(tracer, request, caller).await,
        };
        self.metrics.observe_should_rate_limit(arrived.elapsed());
        answer.map(Response::new)
    }
}

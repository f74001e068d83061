//! The gRPC face of the limiter: validate, decide, respond. No decisions are made here.

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::{Request, Response, Status};

use super::deadline::store_deadline;
use super::guard::CallGuard;
use super::request::{self, RequestLimits};
use super::response::{self, ResponseOptions};
use crate::limiter::{Caller, Limiter};
use crate::metrics::Metrics;

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

    /// The tonic service, its calls guarded (see [`CallGuard`]): request messages larger than
    /// `max_message_bytes` are refused with `RESOURCE_EXHAUSTED`.
    pub fn into_server(
        self,
        max_message_bytes: usize,
    ) -> CallGuard<RateLimitServiceServer<RateLimitGrpc>> {
        CallGuard(RateLimitServiceServer::new(self).max_decoding_message_size(max_message_bytes))
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
        let answer = self.answer(request.into_inner(), caller).await;
        self.metrics.should_rate_limit_calls.inc();
        self.metrics
            .should_rate_limit_time
            .observe(arrived.elapsed().as_secs_f64());
        answer.map(Response::new)
    }
}

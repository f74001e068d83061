//! `POST /json`: envoyproxy/ratelimit's JSON face of `ShouldRateLimit`, for scripts and services
//! that are not behind Envoy. The request and response are the gRPC messages in protojson; the
//! answer is decided exactly as over gRPC. 200 OK, 429 over the limit, 400 for a request the
//! service refuses (with the JSON error body), 503 when the counter store cannot answer.

mod request;
mod response;

use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

use super::api::Api;
use super::error::ApiError;
use super::reply;
use crate::rls;

/// What the error for an empty or non-object body shows as an example.
const EXAMPLE: &str = r#"{"domain": "edge", "descriptors": [{"entries": [{"key": "remote_address", "value": "10.0.0.1"}]}]}"#;

/// Reads a `/json` body: one JSON object, the `RateLimitRequest` in protojson.
pub fn parse(body: &[u8]) -> Result<RateLimitRequest, ApiError> {
    reply::json_object(body, EXAMPLE).and_then(|fields| request::parse(&fields))
}

pub async fn handle(api: Arc<Api>, body: Result<Vec<u8>, ApiError>) -> Result<Response, ApiError> {
    let metrics = &api.metrics;
    let request = parse(&body?).inspect_err(|_| metrics.service_errors.inc())?;
    let check = rls::request::validate(&request, &api.options.request_limits)
        .inspect_err(|_| metrics.service_errors.inc())?;
    let decision = api.limiter.check(&check).await?;
    let answer = rls::response::build(&request, &decision, &api.options.responses);
    let status = if decision.over_limit {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::OK
    };
    Ok(reply::json(status, &response::render(&answer)))
}

//! `GET /metrics`: every metric in the Prometheus text format, with the store's figures
//! (`ratelimiter_active_counters`, live evictions) brought up to date at each scrape.

use std::sync::Arc;

use prometheus::{Encoder, TextEncoder};
use warp::http::StatusCode;
use warp::reply::Response;

use super::api::Api;
use super::error::ApiError;
use super::reply;

pub async fn metrics(api: Arc<Api>) -> Result<Response, ApiError> {
    api.limiter.measure_store().await;
    let encoder = TextEncoder::new();
    let mut text = Vec::new();
    if let Err(error) = encoder.encode(&api.metrics.registry().gather(), &mut text) {
        // Only malformed metric families fail to encode, and every one is defined in metrics.rs.
        tracing::error!(%error, "cannot encode the metrics");
        return Ok(reply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics; see the service log".into(),
        ));
    }
    Ok(reply::typed(StatusCode::OK, text, prometheus::TEXT_FORMAT))
}

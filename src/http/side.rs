//! The side listeners of a Go deployment: the Prometheus listener (`USE_PROMETHEUS`,
//! `PROMETHEUS_ADDR`, `PROMETHEUS_PATH`), which serves only the metrics, and the debug listener
//! (`DEBUG_HOST`, `DEBUG_PORT`), which serves `/rlconfig` and `/stats`. Both are plain HTTP and
//! GET only, and answer anything else 404.

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::path::FullPath;
use warp::reply::Response;

use super::api::Api;
use super::error::ApiError;
use super::routes::{get_or_head, respond};
use super::{limits, reply, scrape};

/// What a side listener serves.
#[derive(Clone, Debug)]
pub enum Side {
    /// The metrics alone, at this path.
    Metrics(String),
    /// `/` (an index), `/rlconfig` (the loaded rules) and `/stats` (every metric, as text).
    Debug,
}

/// The routes of `side`.
pub fn routes(api: Arc<Api>, side: Side) -> BoxedFilter<(Response,)> {
    let state = warp::any().map(move || api.clone());
    let side = Arc::new(side);
    get_or_head()
        .and(warp::path::full())
        .and(state)
        .then(move |path: FullPath, api: Arc<Api>| answer(api, side.clone(), path))
        .boxed()
}

async fn answer(api: Arc<Api>, side: Arc<Side>, path: FullPath) -> Response {
    match (side.as_ref(), path.as_str()) {
        (Side::Metrics(metrics), path) if path == metrics => {
            respond("/metrics", scrape::metrics(api)).await
        }
        (Side::Debug, "/") => reply::text(StatusCode::OK, "/rlconfig\n/stats\n".into()),
        (Side::Debug, "/rlconfig") => respond("/rlconfig", limits::rlconfig(api)).await,
        (Side::Debug, "/stats") => respond("/stats", scrape::metrics(api)).await,
        (Side::Metrics(metrics), _) => not_found(&format!("the metrics are at {metrics}")),
        (Side::Debug, _) => not_found("this debug listener serves /, /rlconfig and /stats"),
    }
}

fn not_found(message: &str) -> Response {
    reply::error(&ApiError::NotFound {
        field: None,
        message: message.into(),
    })
}

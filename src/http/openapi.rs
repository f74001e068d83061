//! `GET /api/openapi.json`: the OpenAPI 3 document of this HTTP API (`docs/openapi.json`),
//! embedded at build time so that the service always describes the routes it was built with.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;

use super::api::Api;
use super::error::ApiError;
use super::reply;

/// The document, as kept in the repository.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

pub async fn document(_api: Arc<Api>) -> Result<Response, ApiError> {
    Ok(reply::typed(
        StatusCode::OK,
        DOCUMENT.as_bytes().to_vec(),
        "application/json",
    ))
}

//! `GET /`: the status page, one self-contained HTML file (no external assets) that reads the
//! JSON API from the browser: health, limits, live and blocked counters (paged), nodes, the
//! latest config errors, refreshed every two seconds; counters can be reset with the admin token.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderValue};
use warp::reply::Response;

use super::api::Api;
use super::error::ApiError;
use super::reply;

/// The page, embedded at build time.
const PAGE: &str = include_str!("status.html");

/// Nothing but the page itself and its calls to this service: no other origin is ever loaded,
/// and the page cannot be framed by another site.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub async fn page(_api: Arc<Api>) -> Result<Response, ApiError> {
    let mut response = reply::typed(
        StatusCode::OK,
        PAGE.as_bytes().to_vec(),
        "text/html; charset=utf-8",
    );
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

//! The HTTP listener on `--http-addr`: the management API, envoyproxy/ratelimit's `/json`,
//! `/healthcheck` and `/rlconfig`, Prometheus `/metrics`, the API's own OpenAPI document
//! (`/api/openapi.json`) and the status page at `/`, served by warp.
//!
//! Every route answers with a `Response` of its own, errors included (JSON `{"error", "field"}`,
//! statuses from [`error::ApiError::status`]); the one wrapper around all routes counts and times
//! each request under its route pattern, never its raw path (`routes`). Bodies are read up to
//! `--max-message-bytes`; connections are bounded in number and in header time (`listener`).

mod api;
mod auth;
pub mod check;
mod counter_view;
mod counters;
pub mod error;
mod health;
pub mod json;
mod limits;
mod listener;
pub mod openapi;
mod reply;
mod routes;
mod scrape;
mod side;
mod status_page;

pub use api::{Api, ApiOptions, CheckDefaults};
pub use listener::{MAX_CONNECTIONS, serve, serve_side};
pub use routes::ROUTES;
pub use side::Side;

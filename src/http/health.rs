//! Liveness for operators and load balancers: `GET /health` (JSON, 503 while draining),
//! `GET /healthcheck` (envoyproxy/ratelimit's `OK` or 500) and `GET /api/nodes`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::api::Api;
use super::error::ApiError;
use super::{auth, reply};
use crate::health::{LoadStatus, Status};
use crate::registry::NodeInfo;

#[derive(Serialize)]
struct HealthView<'a> {
    status: &'static str,
    node_id: &'a str,
    store: StoreView,
    config: LoadView,
    /// Why the config makes the service unhealthy: none loaded, or none with a domain when
    /// one is required.
    #[serde(skip_serializing_if = "Option::is_none")]
    config_problem: Option<String>,
    /// Each TLS listener's certificate: when it was loaded, and the latest refused one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    certificates: BTreeMap<&'static str, LoadView>,
}

#[derive(Serialize)]
struct StoreView {
    kind: &'static str,
    reachable: bool,
    /// Why the store is not healthy (unreachable, failing most calls, refusing scripts).
    problem: Option<String>,
}

/// A load status (the config's, a certificate's), as `/health` and `/api/limits` show it.
#[derive(Serialize)]
pub struct LoadView {
    /// `current` (the files on disk are in force), `stale` (the latest files were refused: what
    /// loaded at `loaded_at` stays in force) or `none` (nothing ever loaded).
    state: &'static str,
    loaded_at: Option<String>,
    /// The latest failed reload since then (what was loaded at `loaded_at` stays in force).
    last_error: Option<FailureView>,
}

#[derive(Serialize)]
struct FailureView {
    errors: Vec<String>,
    since: String,
}

impl LoadView {
    pub fn new(status: &LoadStatus) -> LoadView {
        LoadView {
            state: status.state().name(),
            loaded_at: status.loaded_at.map(timestamp),
            last_error: status.last_error.as_ref().map(|failure| FailureView {
                errors: failure.errors.clone(),
                since: timestamp(failure.since),
            }),
        }
    }
}

/// RFC 3339 in UTC, to the second. Times past the end of year 9999 (only a corrupt registry
/// entry holds one) are shown as that end: RFC 3339 cannot write them, and humantime would panic.
fn timestamp(at: SystemTime) -> String {
    let latest = UNIX_EPOCH + Duration::from_secs(LATEST_RFC3339_SECS);
    humantime::format_rfc3339_seconds(at.min(latest)).to_string()
}

/// 9999-12-31T23:59:59Z.
const LATEST_RFC3339_SECS: u64 = 253_402_300_799;

pub async fn health(api: Arc<Api>) -> Result<Response, ApiError> {
    let status = api.health.status();
    let view = HealthView {
        status: status.name(),
        node_id: &api.options.node_id,
        store: StoreView {
            kind: api.limiter.store_kind(),
            reachable: api.health.is_store_reachable(),
            problem: api.health.store_problem(),
        },
        config: LoadView::new(&api.health.config()),
        config_problem: api.health.config_problem(),
        certificates: api
            .health
            .certificates()
            .iter()
            .map(|(listener, status)| (*listener, LoadView::new(status)))
            .collect(),
    };
    let code = if status.is_serving() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(reply::json(code, &view))
}

/// `OK` only when every part is healthy, as the Go service answers (degraded is not OK).
pub async fn healthcheck(api: Arc<Api>) -> Result<Response, ApiError> {
    match api.health.status() {
        Status::Healthy => Ok(reply::text(StatusCode::OK, "OK".into())),
        Status::Degraded => Err(ApiError::Unhealthy(
            api.health
                .problem()
                .unwrap_or_else(|| "the counter store is unhealthy".into()),
        )),
        Status::Draining => Err(ApiError::Unhealthy("the service is shutting down".into())),
    }
}

#[derive(Serialize)]
struct Nodes {
    nodes: Vec<NodeView>,
}

#[derive(Serialize)]
struct NodeView {
    id: String,
    /// The node's HTTP address.
    address: String,
    grpc_address: String,
    state: &'static str,
    registered_at: String,
    version: String,
}

pub async fn nodes(api: Arc<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    auth::require_to_read(api.options.admin_token.as_ref(), &headers)?;
    let nodes = api
        .nodes
        .list()
        .await?
        .into_iter()
        .map(|node: NodeInfo| NodeView {
            state: node.state.name(),
            registered_at: timestamp(node.registered_at),
            id: node.id,
            address: node.address,
            grpc_address: node.grpc_address,
            version: node.version,
        })
        .collect();
    Ok(reply::json(StatusCode::OK, &Nodes { nodes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_past_year_9999_is_shown_as_its_end_not_a_panic() {
        let corrupt = UNIX_EPOCH + Duration::from_millis(u64::MAX);
        assert_eq!(timestamp(corrupt), "9999-12-31T23:59:59Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}

//! What every route reads: the limiter, health, the node directory and the API's options.

use std::sync::Arc;

use crate::health::Health;
use crate::inflight::InFlight;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::registry::NodeDirectory;
use crate::rls::{RequestLimits, ResponseOptions};
use crate::secret::Secret;

/// Everything the routes read.
pub struct Api {
    pub(super) limiter: Arc<Limiter>,
    /// The API's own figures (requests by route, refused `/json` requests).
    pub(super) metrics: Arc<Metrics>,
    pub(super) health: Arc<Health>,
    pub(super) nodes: Arc<dyn NodeDirectory>,
    /// What request bodies may hold, shared with the gRPC listener.
    pub(super) budget: Arc<InFlight>,
    pub(super) options: ApiOptions,
}

/// What the API answers with, beyond what it reads from the limiter.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// This node's name, as `/health` shows it.
    pub node_id: String,
    /// The bounds on a `/json` request, as on a gRPC one.
    pub request_limits: RequestLimits,
    /// What a `/json` answer carries beyond the statuses, as over gRPC.
    pub responses: ResponseOptions,
    pub check_defaults: CheckDefaults,
    /// Needed for resets, and then for every `/api/*` read.
    pub admin_token: Option<Secret>,
    pub max_body_bytes: usize,
}

impl Api {
    pub fn new(
        limiter: Arc<Limiter>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        nodes: Arc<dyn NodeDirectory>,
        budget: Arc<InFlight>,
        options: ApiOptions,
    ) -> Api {
        Api {
            limiter,
            metrics,
            health,
            nodes,
            budget,
            options,
        }
    }
}

/// What `/check` assumes when a request leaves a field out, and how long a key may be.
#[derive(Clone, Copy, Debug)]
pub struct CheckDefaults {
    pub limit: u64,
    pub window_ms: u64,
    pub max_key_bytes: usize,
}

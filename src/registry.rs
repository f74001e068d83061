//! The node registry: which ratelimiter nodes are up. Without Redis a node knows only itself.

use std::time::SystemTime;

use crate::store::{BoxFuture, StoreError};

/// One node as `/api/nodes` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// The node's HTTP (management) address.
    pub address: String,
    /// The node's gRPC (rate-limit service) address.
    pub grpc_address: String,
    pub state: NodeState,
    pub registered_at: SystemTime,
    /// The ratelimiter version the node runs.
    pub version: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Draining,
}

impl NodeState {
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Up => "Up",
            NodeState::Draining => "Draining",
        }
    }
}

/// Lists the nodes of the fleet.
pub trait NodeDirectory: Send + Sync + 'static {
    /// Every live node, this one included.
    fn list(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>, StoreError>>;
}

/// The directory of a node without Redis: itself alone.
pub struct LocalNode {
    info: NodeInfo,
    health: std::sync::Arc<crate::health::Health>,
}

impl LocalNode {
    pub fn new(info: NodeInfo, health: std::sync::Arc<crate::health::Health>) -> LocalNode {
        LocalNode { info, health }
    }
}

impl NodeDirectory for LocalNode {
    fn list(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>, StoreError>> {
        let state = if self.health.status().is_serving() {
            NodeState::Up
        } else {
            NodeState::Draining
        };
        let info = NodeInfo {
            state,
            ..self.info.clone()
        };
        Box::pin(std::future::ready(Ok(vec![info])))
    }
}

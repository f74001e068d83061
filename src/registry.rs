//! The node registry: which ratelimiter nodes are up. Without Redis a node knows only itself;
//! with Redis every node registers there ([`NodeRegistry`]) and lists the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::health::Health;
use crate::store::{BoxFuture, StoreError};

mod redis;
pub use redis::{KEY_PREFIX, NodeRegistry, read_nodes};

/// How this node keeps its registry entry alive.
#[derive(Clone, Copy, Debug)]
pub struct RegistryOptions {
    /// How long an entry outlives its last heartbeat.
    pub ttl: Duration,
    /// How often the entry is written again; shorter than `ttl`.
    pub heartbeat: Duration,
}

/// Options under which the registry cannot work; the service refuses to start with one.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("--node-heartbeat ({heartbeat:?}) must be shorter than --node-ttl ({ttl:?})")]
    HeartbeatNotBelowTtl { heartbeat: Duration, ttl: Duration },
}

impl RegistryOptions {
    /// Refuses options under which entries would expire between heartbeats.
    pub fn check(&self) -> Result<(), RegistryError> {
        if self.heartbeat >= self.ttl {
            return Err(RegistryError::HeartbeatNotBelowTtl {
                heartbeat: self.heartbeat,
                ttl: self.ttl,
            });
        }
        Ok(())
    }
}

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
    health: Arc<Health>,
}

impl LocalNode {
    pub fn new(info: NodeInfo, health: Arc<Health>) -> LocalNode {
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

/// The address to publish for a listener bound to `bound`: `advertise_host` (or, for a listener
/// on every interface, which is no use to anyone else, the host name) with the bound port.
pub fn advertised_address(bound: SocketAddr, advertise_host: Option<&str>) -> String {
    let host = advertise_host
        .map(str::to_string)
        .or_else(|| bound.ip().is_unspecified().then(host_name).flatten());
    match host {
        Some(host) => format!("{host}:{}", bound.port()),
        None => bound.to_string(),
    }
}

/// This machine's host name, when it can be found.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

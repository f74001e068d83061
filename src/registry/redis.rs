//! The fleet's registry in Redis: each node keeps a hash `ratelimiter:nodes:<node id>` alive with
//! a TTL, refreshed by a heartbeat, and deletes it when it shuts down. A node that dies without
//! shutting down disappears when its TTL runs out.
//!
//! The heartbeat writes the whole entry each time (one script: fields and TTL together), so a
//! Redis that restarted or was flushed gets the entry back at the next beat, or at once after
//! the store reconnects.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use futures_util::future::try_join_all;
use redis::Script;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{NodeDirectory, NodeInfo, NodeState, RegistryOptions};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::redis::{RedisLink, scan_all};
use crate::store::{BoxFuture, StoreError};

/// Where entries live, whatever `--redis-key-prefix` says: every node of a fleet must find every
/// other. Counter keys (`ratelimit:` by default) never start with it.
pub const KEY_PREFIX: &str = "ratelimiter:nodes:";

/// Writes a node's entry afresh and sets its TTL, in one step, so that no entry is ever left
/// without one. `KEYS[1]`: the entry; `ARGV[1]`: TTL in ms; then field, value pairs. Returns
/// the `grpc_address` and `registered_at` the entry held before: whose it was.
static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owner = redis.call('HMGET', KEYS[1], 'grpc_address', 'registered_at')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return owner
",
    )
});

/// Deletes a node's entry only while it is still this node's: another process given the same
/// `--node-id` keeps its entry. `KEYS[1]`: the entry; `ARGV`: this node's `grpc_address` and
/// `registered_at`.
static UNREGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owner = redis.call('HMGET', KEYS[1], 'grpc_address', 'registered_at')
if owner[1] == ARGV[1] and owner[2] == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

pub struct NodeRegistry {
    link: Arc<RedisLink>,
    /// This node, listed even before its first beat lands (or after a flush, until the next).
    me: NodeInfo,
    entry: Entry,
    health: Arc<Health>,
    stop: CancellationToken,
    heartbeat: Mutex<Option<JoinHandle<()>>>,
}

/// This node's entry, as written on every heartbeat.
#[derive(Clone)]
struct Entry {
    key: String,
    ttl: Duration,
    fields: Vec<(&'static str, String)>,
}

impl NodeRegistry {
    /// Registers `me` and keeps the entry alive until [`NodeRegistry::unregister`] or until
    /// `stop` fires (then the entry is left to expire).
    pub fn start(
        link: Arc<RedisLink>,
        me: &NodeInfo,
        options: RegistryOptions,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
        stop: &CancellationToken,
    ) -> Arc<NodeRegistry> {
        let registered_ms = me
            .registered_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let entry = Entry {
            key: format!("{KEY_PREFIX}{}", me.id),
            ttl: options.ttl,
            fields: vec![
                ("address", me.address.clone()),
                ("grpc_address", me.grpc_address.clone()),
                ("registered_at", registered_ms.to_string()),
                ("version", me.version.clone()),
                ("state", NodeState::Up.name().to_string()),
            ],
        };
        let stop = stop.child_token();
        let task = tokio::spawn(heartbeat(
            link.clone(),
            entry.clone(),
            options.heartbeat,
            metrics,
            stop.clone(),
        ));
        Arc::new(NodeRegistry {
            link,
            me: me.clone(),
            entry,
            health,
            stop,
            heartbeat: Mutex::new(Some(task)),
        })
    }

    /// Stops the heartbeat and deletes this node's entry, so that it leaves `/api/nodes` at once.
    pub async fn unregister(&self) {
        self.stop.cancel();
        let task = self
            .heartbeat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            // Waited for, so that a beat under way cannot write the entry back after the delete.
            let _ = task.await;
        }
        let entry = &self.entry;
        let deleted = self
            .link
            .run_slow(|mut connection| async move {
                UNREGISTER
                    .key(&entry.key)
                    .arg(entry.field("grpc_address"))
                    .arg(entry.field("registered_at"))
                    .invoke_async::<u64>(&mut connection)
                    .await
            })
            .await;
        match deleted {
            Ok(1) => tracing::info!(key = %self.entry.key, "left the node registry"),
            Ok(_) => tracing::warn!(
                key = %self.entry.key,
                "left the node registry entry in place: another node with this --node-id owns it now"
            ),
            Err(error) => {
                tracing::warn!(%error, "could not leave the node registry; the entry expires by itself")
            }
        }
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let mut nodes = read_nodes(&self.link).await?;
        if !nodes.iter().any(|node| node.id == self.me.id) {
            nodes.push(self.me.clone());
        }
        if !self.health.status().is_serving() {
            for node in nodes.iter_mut().filter(|node| node.id == self.me.id) {
                node.state = NodeState::Draining;
            }
        }
        Ok(nodes)
    }
}

/// Every node with a live entry, sorted by id, as the entries say.
pub async fn read_nodes(link: &RedisLink) -> Result<Vec<NodeInfo>, StoreError> {
    let keys = scan_all(link, &format!("{KEY_PREFIX}*")).await?;
    let hashes: Vec<Vec<(String, String)>> = link
        .run_slow(|connection| {
            try_join_all(keys.iter().map(|key| {
                let mut connection = connection.clone();
                async move {
                    redis::cmd("HGETALL")
                        .arg(key)
                        .query_async(&mut connection)
                        .await
                }
            }))
        })
        .await?;
    let mut nodes: Vec<NodeInfo> = keys
        .iter()
        .zip(hashes)
        .filter_map(|(key, fields)| node(key, &fields))
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(nodes)
}

/// Writes the entry every `every`, and at once after a reconnection, until `stop` fires.
async fn heartbeat(
    link: Arc<RedisLink>,
    entry: Entry,
    every: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut reconnects = link.reconnects();
    loop {
        if let Err(error) = register(&link, &entry).await {
            metrics.registry_heartbeat_failures.inc();
            tracing::warn!(%error, "node registry heartbeat failed");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
            _ = reconnects.changed() => {}
        }
    }
}

/// Writes the entry; warns (at most once per log interval) when it was another process's, which
/// happens only when two nodes were given the same `--node-id`.
async fn register(link: &RedisLink, entry: &Entry) -> Result<(), StoreError> {
    let owner: Vec<Option<String>> = link
        .run_slow(|mut connection| async move {
            let mut call = REGISTER.key(&entry.key);
            call.arg(entry.ttl.as_millis() as u64);
            for (field, value) in &entry.fields {
                call.arg(*field).arg(value);
            }
            call.invoke_async(&mut connection).await
        })
        .await?;
    if let [Some(address), Some(registered_at)] = owner.as_slice()
        && (address.as_str(), registered_at.as_str())
            != (entry.field("grpc_address"), entry.field("registered_at"))
    {
        crate::throttled!(
            WARN,
            key = %entry.key,
            other = %address,
            "another node uses this node id; give each node its own --node-id"
        );
    }
    Ok(())
}

impl Entry {
    /// The value written for `name` (empty when the entry has no such field).
    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(field, _)| *field == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

/// A registry entry read back; `None` when it vanished between the scan and the read.
fn node(key: &str, fields: &[(String, String)]) -> Option<NodeInfo> {
    if fields.is_empty() {
        return None;
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(field, _)| field == name)
            .map_or(String::new(), |(_, value)| value.clone())
    };
    let registered_ms = field("registered_at").parse().unwrap_or(0);
    Some(NodeInfo {
        id: key.strip_prefix(KEY_PREFIX)?.to_string(),
        address: field("address"),
        grpc_address: field("grpc_address"),
        state: if field("state") == NodeState::Draining.name() {
            NodeState::Draining
        } else {
            NodeState::Up
        },
        registered_at: UNIX_EPOCH + Duration::from_millis(registered_ms),
        version: field("version"),
    })
}

impl NodeDirectory for NodeRegistry {
    fn list(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>, StoreError>> {
        Box::pin(self.list_nodes())
    }
}

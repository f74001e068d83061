//! Cluster topology as the store needs it: the hash slot of a key, and which master owns each
//! slot, so that a request's script calls (one per slot, as Redis requires) go to their
//! masters in the pipelines the coalescer sends to each.
//!
//! The map is refreshed by the link's keeper after every dial and every ping. When it is stale
//! (a resharding under way), the master answers MOVED, the request fails with UNAVAILABLE and
//! the next ping corrects the map; nothing is retried, so nothing is counted twice.

use std::sync::Arc;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{FromRedisValue, RedisResult, Value};

/// Hash slots in a Redis Cluster.
const SLOTS: u16 = 16_384;

/// The hash slot of `key`, as Redis computes it: CRC16 (XMODEM) of the key, or of its hash tag
/// (the text between the first `{` and the next `}`, when not empty), modulo 16384.
pub fn slot(key: impl AsRef<[u8]>) -> u16 {
    let key = key.as_ref();
    let tagged = key
        .iter()
        .position(|&byte| byte == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&byte| byte == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % SLOTS
}

/// Which master (`host:port`) owns each slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotMap {
    /// (first slot, last slot, master), sorted by first slot. Masters are shared, as every
    /// call to a master carries its name.
    ranges: Vec<(u16, u16, Arc<str>)>,
}

impl SlotMap {
    /// Asks the cluster (`CLUSTER SLOTS`, on any node).
    pub async fn fetch(cluster: &mut ClusterConnection) -> RedisResult<SlotMap> {
        let reply = cluster
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let mut ranges = Vec::new();
        if let Value::Array(entries) = reply {
            for entry in entries {
                // [first slot, last slot, [ip, port, id, ...] of the master, replicas...]
                if let Value::Array(parts) = entry
                    && let [first, last, Value::Array(master), ..] = &parts[..]
                    && let [ip, port, ..] = &master[..]
                {
                    ranges.push((
                        u16::from_redis_value_ref(first)?,
                        u16::from_redis_value_ref(last)?,
                        Arc::from(format!(
                            "{}:{}",
                            String::from_redis_value_ref(ip)?,
                            u16::from_redis_value_ref(port)?
                        )),
                    ));
                }
            }
        }
        ranges.sort_unstable();
        Ok(SlotMap { ranges })
    }

    /// The master that owns `slot`, if the map knows it.
    pub fn owner(&self, slot: u16) -> Option<&Arc<str>> {
        let index = self.ranges.partition_point(|(first, _, _)| *first <= slot);
        let (_, last, master) = self.ranges.get(index.checked_sub(1)?)?;
        (slot <= *last).then_some(master)
    }

    /// Every master, sorted by address.
    pub fn masters(&self) -> Vec<String> {
        let mut masters: Vec<String> = self
            .ranges
            .iter()
            .map(|(_, _, master)| master.to_string())
            .collect();
        masters.sort();
        masters.dedup();
        masters
    }
}

/// Routing to one master by its `host:port`.
pub fn to_master(master: &str) -> SingleNodeRoutingInfo {
    let (host, port) = master.rsplit_once(':').unwrap_or((master, ""));
    SingleNodeRoutingInfo::ByAddress {
        host: host.to_string(),
        port: port.parse().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT on Redis 7.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"123456789"), 0x31C3 % SLOTS);
    }

    #[test]
    fn owners_are_found_by_range() {
        let map = SlotMap {
            ranges: vec![
                (0, 5460, "a:1".into()),
                (5461, 10922, "b:2".into()),
                (10923, 16383, "c:3".into()),
            ],
        };
        assert_eq!(map.owner(0).map(|master| &**master), Some("a:1"));
        assert_eq!(map.owner(5461).map(|master| &**master), Some("b:2"));
        assert_eq!(map.owner(16383).map(|master| &**master), Some("c:3"));
        assert_eq!(SlotMap::default().owner(7), None);
        assert_eq!(map.masters(), ["a:1", "b:2", "c:3"]);
    }
}

//! What the Redis store needs to know to reach Redis: plain values, filled in by the server from
//! its settings (or by a test directly).

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// How to reach Redis and how long to wait for it; the store and the node registry share it.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Comma-separated `redis://` or `rediss://` URLs: one server, the sentinels, or Cluster
    /// seed nodes, as [`RedisOptions::kind`] says. May hold passwords.
    pub urls: Secret,
    pub kind: RedisKind,
    /// With [`RedisKind::Sentinel`]: the name of the master the sentinels monitor.
    pub sentinel_master: Option<String>,
    /// With [`RedisKind::Sentinel`]: the sentinels' own password, when they ask for one.
    pub sentinel_password: Option<Secret>,
    /// Longest wait for one request's counters.
    pub timeout: Duration,
    /// Longest wait for one connection attempt (TCP, TLS, AUTH), and for management requests.
    pub connect_timeout: Duration,
    pub tls: RedisTls,
}

/// What the URLs point at (the Go service's `REDIS_TYPE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisKind {
    #[default]
    Single,
    Sentinel,
    Cluster,
}

/// How `rediss://` URLs are checked: PEM files (without a CA, the system's trust store is used)
/// and whether the host name is.
#[derive(Clone, Debug, Default)]
pub struct RedisTls {
    /// The certificate authorities that sign the servers' certificates.
    pub ca: Option<PathBuf>,
    /// This service's client certificate and its private key, for servers that require one.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Accept a server certificate that does not name the host dialled, as long as it chains
    /// to a trusted CA and is valid otherwise. Not possible with [`RedisKind::Sentinel`].
    pub skip_hostname_verification: bool,
}

//! Flags for the Redis counter store and the node registry. They only matter with
//! `--redis-url`; without it counters stay in memory and the node knows only itself.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{Secret, parse_duration};

/// How `--redis-url` is read (the Go service's `REDIS_TYPE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum RedisType {
    /// One Redis server: `redis://[user:password@]host:port[/db]`.
    #[default]
    Single,
    /// Sentinels that name the master: `redis://s1:26379,redis://s2:26379`, plus
    /// `--redis-sentinel-master`.
    Sentinel,
    /// A Redis Cluster, reached through seed nodes: `redis://h1:6379,redis://h2:6379`.
    Cluster,
}

/// Where and how to reach Redis.
#[derive(Clone, Debug, Args)]
pub struct RedisSettings {
    /// What `--redis-url` points at: `single` (one server), `sentinel` (sentinel addresses,
    /// comma-separated) or `cluster` (seed nodes, comma-separated).
    #[arg(long, env = "RATELIMITER_REDIS_TYPE", value_enum, ignore_case = true, default_value_t = RedisType::Single)]
    pub redis_type: RedisType,

    /// With `--redis-type sentinel`: the master name the sentinels monitor (`sentinel monitor
    /// <name> ...`). User and password in `--redis-url` authenticate to that master.
    #[arg(long, env = "RATELIMITER_REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,

    /// With `--redis-type sentinel`: the password of the sentinels themselves, when they ask for
    /// one (`requirepass` in sentinel.conf).
    #[arg(
        long,
        env = "RATELIMITER_REDIS_SENTINEL_PASSWORD",
        hide_env_values = true
    )]
    pub redis_sentinel_password: Option<Secret>,

    /// Longest wait for Redis to answer one request's counters when the caller sent no
    /// deadline; past it the request gets UNAVAILABLE and Envoy's failure_mode_deny decides. A
    /// gRPC call that carries `grpc-timeout` (Envoy sends its rate limit timeout, 20ms by
    /// default) waits until then instead, less a margin to answer in time.
    #[arg(long, env = "RATELIMITER_REDIS_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub redis_timeout: Duration,

    /// Longest wait for one connection attempt (TCP, TLS, AUTH). Connections are made in the
    /// background, never while a request waits; the first attempt is awaited at startup.
    #[arg(long, env = "RATELIMITER_REDIS_CONNECT_TIMEOUT", default_value = "500ms", value_parser = parse_duration)]
    pub redis_connect_timeout: Duration,

    /// Text put before every counter key in Redis, so that several services (or test runs) can
    /// share one Redis without sharing counters.
    #[arg(
        long,
        env = "RATELIMITER_REDIS_KEY_PREFIX",
        default_value = "ratelimit:"
    )]
    pub redis_key_prefix: String,

    /// Counters known to be over their limit that this node remembers until their window ends
    /// (asking Redis again every 2 s at most), answering them without asking Redis, so a client
    /// hammering a blocked key costs almost no Redis traffic; 0 turns the cache off.
    #[arg(
        long,
        env = "RATELIMITER_LOCAL_CACHE_MAX_KEYS",
        default_value_t = 100_000
    )]
    pub local_cache_max_keys: u64,

    /// PEM file of the certificate authorities that sign the Redis server's certificate, for
    /// rediss:// URLs; without it the system's trust store is used.
    #[arg(long, env = "RATELIMITER_REDIS_TLS_CA")]
    pub redis_tls_ca: Option<PathBuf>,

    /// PEM file of this service's client certificate, for Redis servers that require one
    /// (mutual TLS); needs `--redis-tls-key`.
    #[arg(long, env = "RATELIMITER_REDIS_TLS_CERT", requires = "redis_tls_key")]
    pub redis_tls_cert: Option<PathBuf>,

    /// PEM file of the private key of `--redis-tls-cert`.
    #[arg(long, env = "RATELIMITER_REDIS_TLS_KEY", requires = "redis_tls_cert")]
    pub redis_tls_key: Option<PathBuf>,

    /// For rediss:// URLs: accept a Redis server certificate that does not name the host
    /// dialled (such as GCP Memorystore's), still requiring it to chain to `--redis-tls-ca` (or
    /// the system's trust store) and to be valid otherwise. Not with a sentinel Redis.
    #[arg(long, env = "RATELIMITER_REDIS_TLS_SKIP_HOSTNAME_VERIFICATION")]
    pub redis_tls_skip_hostname_verification: bool,
}

/// A second Redis for the limits whose unit is second (the Go service's REDIS_PERSECOND). Its
/// TLS files and host name check, connect timeout and key prefix are the main Redis's
/// (`--redis-tls-*`, as the Go service shares REDIS_TLS_*).
#[derive(Clone, Debug, Args)]
pub struct PerSecondRedisSettings {
    /// Count the limits whose window is one second (unit `second`) in this Redis instead of
    /// `--redis-url`'s; every other limit, a list with any longer limit, and the node registry
    /// stay there. Same forms as `--redis-url`; needs it.
    #[arg(
        long,
        env = "RATELIMITER_REDIS_PER_SECOND_URL",
        hide_env_values = true,
        requires = "redis_url"
    )]
    pub redis_per_second_url: Option<Secret>,

    /// What `--redis-per-second-url` points at, as `--redis-type`.
    #[arg(long, env = "RATELIMITER_REDIS_PER_SECOND_TYPE", value_enum, ignore_case = true, default_value_t = RedisType::Single)]
    pub redis_per_second_type: RedisType,

    /// With `--redis-per-second-type sentinel`: the master name, as `--redis-sentinel-master`.
    #[arg(long, env = "RATELIMITER_REDIS_PER_SECOND_SENTINEL_MASTER")]
    pub redis_per_second_sentinel_master: Option<String>,

    /// With `--redis-per-second-type sentinel`: the sentinels' password, as
    /// `--redis-sentinel-password`.
    #[arg(
        long,
        env = "RATELIMITER_REDIS_PER_SECOND_SENTINEL_PASSWORD",
        hide_env_values = true
    )]
    pub redis_per_second_sentinel_password: Option<Secret>,

    /// As `--redis-timeout`, for the per-second Redis; `--redis-timeout` when left out.
    #[arg(long, env = "RATELIMITER_REDIS_PER_SECOND_TIMEOUT", value_parser = parse_duration)]
    pub redis_per_second_timeout: Option<Duration>,
}

/// How this node announces itself in the node registry (with `--redis-url`).
#[derive(Clone, Debug, Args)]
pub struct RegistrySettings {
    /// How long this node's registry entry outlives its last heartbeat: a node that dies
    /// without shutting down disappears from `/api/nodes` within this time.
    #[arg(long, env = "RATELIMITER_NODE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub node_ttl: Duration,

    /// How often this node refreshes its registry entry; must be shorter than `--node-ttl`.
    #[arg(long, env = "RATELIMITER_NODE_HEARTBEAT", default_value = "10s", value_parser = parse_duration)]
    pub node_heartbeat: Duration,

    /// Host name or IP that other nodes and operators should use to reach this node; published
    /// with the listeners' ports. Defaults to the listen address, or the host name when
    /// listening on all interfaces (0.0.0.0 or ::).
    #[arg(long, env = "RATELIMITER_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
}

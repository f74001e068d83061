//! Every variable of the Go service's `src/settings/settings.go`, with the type Go parses it as
//! (a value Go cannot parse stops startup there, and here) and whether it is honoured here or
//! accepted as not needed. `docs/go-environment.md` lists the same variables; a test keeps the
//! two in step.

use super::env::{GoEnv, GoNameError};

/// How envconfig parses a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    Int,
    Float,
    Duration,
    /// `k1:v1,k2:v2`
    Map,
}

/// What a variable does here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Read with the Go meaning (some values refused, each with its reason).
    Honoured,
    /// Accepted and logged once as not needed, with why.
    NotNeeded(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct GoVariable {
    pub name: &'static str,
    pub kind: Kind,
    pub treatment: Treatment,
}

impl GoVariable {
    /// Parses the variable's value as Go would, refusing what Go refuses.
    pub fn check(&self, go: &GoEnv) -> Result<(), GoNameError> {
        match self.kind {
            Kind::Text => drop(go.string(self.name)),
            Kind::Bool => drop(go.bool(self.name)?),
            Kind::Int => drop(go.int(self.name)?),
            Kind::Float => drop(go.float(self.name)?),
            Kind::Duration => drop(go.duration(self.name)?),
            Kind::Map => drop(go.map(self.name)?),
        }
        Ok(())
    }
}

const XDS: Treatment = Treatment::NotNeeded("only for CONFIG_TYPE=GRPC_XDS_SOTW, which is refused");
const MEMCACHE: Treatment =
    Treatment::NotNeeded("only for BACKEND_TYPE=memcache, which is refused");
const POOL: Treatment = Treatment::NotNeeded(
    "connections to Redis are multiplexed and requests pipelined by themselves",
);
const STARTUP: Treatment = Treatment::NotNeeded(
    "Redis is retried with jittered backoff in the background; the service starts and answers UNAVAILABLE until it connects",
);
const H: Treatment = Treatment::Honoured;

macro_rules! go_variables {
    ($($name:ident $kind:ident $treatment:expr;)*) => {
        /// The variables of the Go service's settings.go, in its order.
        pub const GO_VARIABLES: &[GoVariable] = &[
            $(GoVariable { name: stringify!($name), kind: Kind::$kind, treatment: $treatment },)*
        ];
    };
}

go_variables! {
    HOST Text H;
    PORT Int H;
    DEBUG_HOST Text H;
    DEBUG_PORT Int H;
    GRPC_UDS Text H;
    GRPC_HOST Text H;
    GRPC_PORT Int H;
    GRPC_MAX_CONNECTION_AGE Duration H;
    GRPC_MAX_CONNECTION_AGE_GRACE Duration H;
    GRPC_SERVER_USE_TLS Bool H;
    GRPC_SERVER_TLS_CERT Text H;
    GRPC_SERVER_TLS_KEY Text H;
    GRPC_CLIENT_TLS_CACERT Text H;
    GRPC_CLIENT_TLS_SAN Text H;
    LOG_LEVEL Text H;
    LOG_FORMAT Text H;
    CONFIG_TYPE Text H;
    FORCE_START_WITHOUT_INITIAL_CONFIG Bool H;
    CONFIG_GRPC_XDS_NODE_ID Text XDS;
    CONFIG_GRPC_XDS_NODE_METADATA Text XDS;
    CONFIG_GRPC_XDS_SERVER_URL Text XDS;
    CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL Duration XDS;
    CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS Map XDS;
    CONFIG_GRPC_XDS_SERVER_USE_TLS Bool XDS;
    CONFIG_GRPC_XDS_CLIENT_TLS_CERT Text XDS;
    CONFIG_GRPC_XDS_CLIENT_TLS_KEY Text XDS;
    CONFIG_GRPC_XDS_SERVER_TLS_CACERT Text XDS;
    CONFIG_GRPC_XDS_SERVER_TLS_SAN Text XDS;
    XDS_CLIENT_BACKOFF_INITIAL_INTERVAL Duration XDS;
    XDS_CLIENT_BACKOFF_MAX_INTERVAL Duration XDS;
    XDS_CLIENT_BACKOFF_RANDOM_FACTOR Float XDS;
    XDS_CLIENT_BACKOFF_JITTER Bool XDS;
    XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES Int XDS;
    USE_DOG_STATSD Bool H;
    USE_DOG_STATSD_MOGRIFIERS Text H;
    USE_STATSD Bool H;
    STATSD_HOST Text H;
    STATSD_PORT Int H;
    EXTRA_TAGS Map H;
    STATS_FLUSH_INTERVAL Duration H;
    DISABLE_STATS Bool H;
    USE_PROMETHEUS Bool H;
    PROMETHEUS_ADDR Text H;
    PROMETHEUS_PATH Text H;
    PROMETHEUS_MAPPER_YAML Text H;
    PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS Bool H;
    RUNTIME_ROOT Text H;
    RUNTIME_SUBDIRECTORY Text H;
    RUNTIME_APPDIRECTORY Text H;
    RUNTIME_IGNOREDOTFILES Bool H;
    RUNTIME_WATCH_ROOT Bool Treatment::NotNeeded("the config directory is watched (and reread every 10 s) whichever way it changes: file edits, a ConfigMap ..data swap, or a symlink swap of RUNTIME_ROOT");
    EXPIRATION_JITTER_MAX_SECONDS Int Treatment::NotNeeded("counters expire at the end of their window; expiries are not jittered here");
    LOCAL_CACHE_SIZE_IN_BYTES Int H;
    NEAR_LIMIT_RATIO Float H;
    CACHE_KEY_PREFIX Text H;
    BACKEND_TYPE Text H;
    STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT Bool H;
    LIMIT_RESPONSE_HEADERS_ENABLED Bool H;
    LIMIT_LIMIT_HEADER Text H;
    LIMIT_REMAINING_HEADER Text H;
    LIMIT_RESET_HEADER Text H;
    HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED Bool H;
    SHADOW_MODE Bool H;
    QUOTA_MODE Bool H;
    RESPONSE_DYNAMIC_METADATA Bool H;
    MERGE_DOMAIN_CONFIG Bool H;
    REDIS_SOCKET_TYPE Text H;
    REDIS_TYPE Text H;
    REDIS_URL Text H;
    REDIS_POOL_SIZE Int POOL;
    REDIS_AUTH Text H;
    REDIS_TLS Bool H;
    REDIS_TLS_CLIENT_CERT Text H;
    REDIS_TLS_CLIENT_KEY Text H;
    REDIS_TLS_CACERT Text H;
    REDIS_TLS_SKIP_HOSTNAME_VERIFICATION Bool H;
    REDIS_PIPELINE_WINDOW Duration POOL;
    REDIS_PIPELINE_LIMIT Int POOL;
    REDIS_CLUSTER_PIPELINE_PARALLELISM Int POOL;
    REDIS_HEALTH_CHECK_ACTIVE_CONNECTION Bool Treatment::NotNeeded("health here always reports a Redis that cannot be reached or fails calls");
    REDIS_TIMEOUT Duration H;
    REDIS_POOL_ON_EMPTY_BEHAVIOR Text POOL;
    REDIS_STARTUP_INITIAL_INTERVAL Duration STARTUP;
    REDIS_STARTUP_MAX_INTERVAL Duration STARTUP;
    REDIS_STARTUP_MAX_ELAPSED_TIME Duration STARTUP;
    REDIS_SENTINEL_AUTH Text H;
    REDIS_PERSECOND Bool H;
    REDIS_PERSECOND_SOCKET_TYPE Text H;
    REDIS_PERSECOND_TYPE Text H;
    REDIS_PERSECOND_URL Text H;
    REDIS_PERSECOND_POOL_SIZE Int POOL;
    REDIS_PERSECOND_AUTH Text H;
    REDIS_PERSECOND_TLS Bool H;
    REDIS_PERSECOND_SENTINEL_AUTH Text H;
    REDIS_PERSECOND_PIPELINE_WINDOW Duration POOL;
    REDIS_PERSECOND_PIPELINE_LIMIT Int POOL;
    REDIS_PERSECOND_CLUSTER_PIPELINE_PARALLELISM Int POOL;
    REDIS_PERSECOND_TIMEOUT Duration H;
    REDIS_PERSECOND_POOL_ON_EMPTY_BEHAVIOR Text POOL;
    MEMCACHE_HOST_PORT Text MEMCACHE;
    MEMCACHE_MAX_IDLE_CONNS Int MEMCACHE;
    MEMCACHE_SRV Text MEMCACHE;
    MEMCACHE_SRV_REFRESH Duration MEMCACHE;
    MEMCACHE_TLS Bool MEMCACHE;
    MEMCACHE_TLS_CLIENT_CERT Text MEMCACHE;
    MEMCACHE_TLS_CLIENT_KEY Text MEMCACHE;
    MEMCACHE_TLS_CACERT Text MEMCACHE;
    MEMCACHE_TLS_SKIP_HOSTNAME_VERIFICATION Bool MEMCACHE;
    TRACING_ENABLED Bool H;
    TRACING_SERVICE_NAME Text H;
    TRACING_SERVICE_NAMESPACE Text H;
    TRACING_SERVICE_INSTANCE_ID Text H;
    TRACING_EXPORTER_PROTOCOL Text H;
    TRACING_SAMPLING_RATE Float H;
}

//! Flags that bound what clients can make the service hold: connections per listener and per
//! client address, how long a gRPC connection may stay open or idle, and the requests and
//! request bytes in flight at once. docs/operations.md ("Bounds") says what each costs.

use std::time::Duration;

use clap::Args;

use super::{parse_duration, positive};

/// Connections, and the work in flight on them.
#[derive(Clone, Debug, Args)]
pub struct ServiceBounds {
    /// gRPC connections served at once; one in sixteen is kept for addresses holding fewer than
    /// 8, so that a flood from a few addresses cannot lock out a new client.
    #[arg(long, env = "RATELIMITER_GRPC_MAX_CONNECTIONS", default_value_t = 4_096, value_parser = positive)]
    pub grpc_max_connections: usize,

    /// HTTP connections served at once (with the same reserve as gRPC).
    #[arg(long, env = "RATELIMITER_HTTP_MAX_CONNECTIONS", default_value_t = 1_024, value_parser = positive)]
    pub http_max_connections: usize,

    /// Connections one client address may hold on each listener. Behind a NAT or a load
    /// balancer that hides client addresses, raise it to the connection limits.
    #[arg(long, env = "RATELIMITER_MAX_CONNECTIONS_PER_PEER", default_value_t = 256, value_parser = positive)]
    pub max_connections_per_peer: usize,

    /// Close a gRPC connection that has had no call open for this long (`0s`: never).
    #[arg(long, env = "RATELIMITER_GRPC_MAX_CONNECTION_IDLE", default_value = "10m", value_parser = parse_duration)]
    pub grpc_max_connection_idle: Duration,

    /// Ask a gRPC client to reconnect (HTTP/2 GOAWAY) once its connection is this old, so that
    /// load spreads over new nodes (the Go service's GRPC_MAX_CONNECTION_AGE).
    #[arg(long, env = "RATELIMITER_GRPC_MAX_CONNECTION_AGE", default_value = "24h", value_parser = parse_duration)]
    pub grpc_max_connection_age: Duration,

    /// After that GOAWAY, how long calls still open may take before the connection is closed
    /// (the Go service's GRPC_MAX_CONNECTION_AGE_GRACE).
    #[arg(long, env = "RATELIMITER_GRPC_MAX_CONNECTION_AGE_GRACE", default_value = "1h", value_parser = parse_duration)]
    pub grpc_max_connection_age_grace: Duration,

    /// Requests (gRPC calls, HTTP requests) in flight at once, all clients together; more are
    /// answered RESOURCE_EXHAUSTED (HTTP 503) at once. Each costs a few KB.
    #[arg(long, env = "RATELIMITER_MAX_IN_FLIGHT", default_value_t = 8_192, value_parser = positive)]
    pub max_in_flight: usize,

    /// Requests in flight at once from one client address.
    #[arg(long, env = "RATELIMITER_MAX_IN_FLIGHT_PER_PEER", default_value_t = 2_048, value_parser = positive)]
    pub max_in_flight_per_peer: usize,

    /// `grpc.health.v1.Health/Watch` streams open at once (each lasts up to 30 minutes).
    #[arg(long, env = "RATELIMITER_MAX_HEALTH_WATCHES", default_value_t = 256, value_parser = positive)]
    pub max_health_watches: usize,

    /// MiB of request bodies held at once, all clients together (one client may hold a
    /// quarter, and at least two of the largest messages).
    #[arg(long, env = "RATELIMITER_MAX_BUFFERED_MIB", default_value_t = 64, value_parser = positive)]
    pub max_buffered_mib: usize,
}

//! ratelimiter: an Envoy-compatible external rate-limit service.
//!
//! Envoy asks `ShouldRateLimit` before it forwards a request; the answer comes from limits
//! written in envoyproxy/ratelimit's YAML format, counted in fixed windows aligned to the Unix
//! epoch, in memory on one node or in Redis (single, Sentinel or Cluster) shared by a fleet whose
//! nodes register there.
//!
//! # Layout
//!
//! - [`settings`]: command line and `RATELIMITER_*` environment.
//! - [`server`]: the composition root;
//!   `server::run(settings, listeners, telemetry, clock, shutdown)`.
//! - [`config`]: YAML files to an immutable snapshot of compiled per-domain rule trees, and the
//!   watcher that reloads it when the files change (never swapping in a config that fails).
//! - [`rls`]: the gRPC service: request validation, the tonic impl, response building.
//! - [`limiter`]: the decision: match, count in one store batch, statuses; with Redis, a local
//!   cache of counters known to be over their limit.
//! - [`key`]: injective counter keys.
//! - [`clock`]: units, the clock, epoch-aligned windows.
//! - [`store`]: the `CounterStore` trait, the in-memory store and the Redis store
//!   (`store::redis`: connection keeping, Lua scripts, listing).
//! - [`error`]: client-facing errors and their gRPC and HTTP statuses.
//! - [`health`]: the service's health, shared by whoever changes and whoever reports it.
//! - [`http`]: the HTTP listener: `/check`, `/json`, `/api/*`, `/health`, `/rlconfig`,
//!   `/metrics`.
//! - [`metrics`]: every Prometheus metric.
//! - [`registry`]: which nodes are up (`/api/nodes`); with Redis, registration and heartbeat.

mod accept;
pub mod clock;
pub mod config;
pub mod error;
pub mod health;
pub mod http;
pub mod key;
pub mod limiter;
pub mod metrics;
pub mod registry;
pub mod rls;
pub mod server;
pub mod settings;
pub mod store;

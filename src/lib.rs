//! ratelimiter: an Envoy-compatible external rate-limit service.
//!
//! Envoy asks `ShouldRateLimit` before it forwards a request; the answer comes from limits
//! written in envoyproxy/ratelimit's YAML format (plus windows of several units, sliding windows,
//! token buckets and lists of limits), counted in memory on one node or in Redis (single,
//! Sentinel or Cluster) shared by a fleet whose nodes register there.
//!
//! # Layout
//!
//! Arrows point down only: a module uses the ones below it, never one above, and no two files
//! import each other (`tests/service/layering.rs` keeps it so).
//!
//! - [`settings`]: command line and `RATELIMITER_*` environment (clap). Read by `main.rs` and
//!   the server only.
//! - [`server`]: the composition root, `server::run(settings, listeners, telemetry, clock,
//!   shutdown)`; `server::options` is the one place settings become the plain option structs
//!   the layers below take.
//! - Faces: [`rls`] (the gRPC service: request validation, the caller's deadline for its
//!   store call, the tonic endpoint, responses and their wire messages, the gRPC status of
//!   every error) and [`http`] (the management API, `/json`, `/health`, `/metrics`, and the
//!   HTTP status of every error). Both reach counters only through the limiter.
//! - [`statsd`]: pushes the metrics to statsd under the Go service's stat names.
//! - [`limiter`]: the decision (match, count in one store batch, statuses), the limits in force,
//!   the `/check` sliding windows, listings and resets; it records the decision metrics. With
//!   Redis, a local cache of counters known to be over their limit.
//! - [`registry`]: which nodes are up (`/api/nodes`); with Redis, registration and heartbeat.
//! - [`config`]: YAML files to an immutable [`config::Config`] of compiled per-domain rule trees,
//!   and the watcher that reloads it when the files change; what to do with each reload is the
//!   caller's.
//! - [`store`]: the `CounterStore` trait, the counting rules of each algorithm (`sliding`,
//!   `bucket`), the in-memory store and the Redis store (`store::redis`: options, connection
//!   keeping, Lua scripts, the coalescing of concurrent requests' calls into pipelines answered
//!   by each caller's deadline, listing), and `store::per_second`, which sends one-second windows
//!   to a second store (the Go service's `REDIS_PERSECOND`).
//! - Leaves: [`algorithm`] (the counting algorithms' names), [`key`] (injective counter keys),
//!   [`clock`] (units, the clock, epoch-aligned windows), [`metrics`] (every Prometheus
//!   metric), [`health`] (the service's health, shared by whoever changes and whoever reports
//!   it), [`secret`] (values never printed), [`tls`] (the listeners' certificates, mTLS and
//!   rotation), [`trace`] (OpenTelemetry spans and their OTLP export), `watch` (directory
//!   watches, for the config and the certificates), [`logs`] (throttled logging), [`inflight`]
//!   (the budget of requests and bytes in flight), and the private `admission` (which
//!   connections each listener takes, and their deadlines).

#![forbid(unsafe_code)]

mod admission;
pub mod algorithm;
pub mod clock;
pub mod config;
pub mod health;
pub mod http;
pub mod inflight;
pub mod key;
pub mod limiter;
pub mod logs;
pub mod metrics;
pub mod registry;
pub mod rls;
pub mod secret;
pub mod server;
pub mod settings;
pub mod statsd;
pub mod store;
pub mod tls;
pub mod trace;
mod watch;

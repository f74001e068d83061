//! What ships, as operators and newcomers use it: the built `ratelimiter` binary (`serve`,
//! `validate`, signals), the README, the examples and the demo, end to end through a real Envoy
//! running the shipped configs (over mutual TLS, and tracing), scraped by a real Prometheus, and
//! pushing to a statsd server.

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod demo;
mod envoy_algorithms;
mod envoy_e2e;
mod envoy_tls_tracing;
mod examples;
mod go_deployment;
mod openapi;
mod operator_logs;
mod prometheus;
mod readme;
mod statsd;
mod status_page;
mod validate;

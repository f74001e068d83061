//! What ships, as operators and newcomers use it: the built `ratelimiter` binary (`serve`,
//! `validate`, signals), the README, the examples and the demo, end to end through a real Envoy
//! running the shipped configs, scraped by a real Prometheus.

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod demo;
mod envoy_e2e;
mod examples;
mod openapi;
mod prometheus;
mod readme;
mod validate;

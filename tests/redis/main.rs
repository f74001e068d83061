//! The Redis store on real `redis-server` processes (single, over mutual TLS, Sentinel, Cluster)
//! that the harness starts on loopback: the store contract, failures and failovers under a
//! running service, and the node registry.

#[path = "../common/mod.rs"]
mod common;

mod failover;
mod faults;
mod registry;
mod store;

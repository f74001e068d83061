//! The Redis store on real `redis-server` processes (single, over mutual TLS, Sentinel, Cluster)
//! that the harness starts on loopback: the store contract, failures and failovers under a
//! running service, health that tells the truth about a Redis that refuses counts, the node
//! registry, and the harness's promise that a test talks only to the
//! servers it started.

#[path = "../common/mod.rs"]
mod common;

mod algorithms;
mod coalescing;
mod deadlines;
mod failover;
mod faults;
mod harness;
mod health;
mod registry;
mod stop_increment;
mod store;

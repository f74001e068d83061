//! Exactness under concurrency on the memory store: 64 callers racing over gRPC on one
//! descriptor are admitted exactly what its algorithm allows from fresh (20 for every rule of
//! [`LIMITS`]), and a list's counters never drift apart. `tests/redis/algorithms` races the same
//! on Redis, Redis Cluster, two service processes and nodes whose clocks are 30 s apart.

use crate::common::Service;
use crate::common::algorithms::{
    LIMITS, clients, every_algorithm_admits_exactly_twenty, list_counters_agree,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_memory_every_algorithm_admits_exactly_what_it_allows() {
    let service = Service::start(&[("algo.yaml", LIMITS)], &[]).await;
    every_algorithm_admits_exactly_twenty(&clients(&service, 8).await, "memory").await;
    list_counters_agree(&service.http(), "memory", 20).await;
}

//! The load generator shared by every row of the gRPC benchmark: a fixed number of calls in
//! flight, spread over a few HTTP/2 connections, users drawn uniformly from a fixed set, and
//! latencies in an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use hdrhistogram::Histogram;

/// How hard and how long to push.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub connections: usize,
    pub in_flight: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub users: u32,
}

/// What one row measured.
pub struct Measured {
    pub calls: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile, in microseconds.
    pub fn micros(&self, quantile: f64) -> u64 {
        self.latency.value_at_quantile(quantile)
    }
}

/// A request for `descriptors` descriptors of one user: `(d0, user)`, `(d1, user)`, ... so that
/// each descriptor is a counter of its own.
pub fn request(descriptors: usize, user: u32) -> RateLimitRequest {
    let value = format!("user-{user}");
    RateLimitRequest {
        domain: "bench".into(),
        descriptors: (0..descriptors)
            .map(|index| RateLimitDescriptor {
                entries: vec![Entry {
                    key: format!("d{index}"),
                    value: value.clone(),
                }],
                ..Default::default()
            })
            .collect(),
        hits_addend: 1,
    }
}

/// The limits every service in the benchmark loads: ten per-user rules too large to be hit.
pub const LIMITS: &str = "
domain: bench
descriptors:
  - {key: d0, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d1, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d2, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d3, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d4, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d5, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d6, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d7, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d8, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d9, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
";

/// Drives `ShouldRateLimit` at `address` with `descriptors` descriptors per call.
pub async fn grpc(address: &str, descriptors: usize, load: Load) -> Measured {
    let mut clients = Vec::new();
    for _ in 0..load.connections {
        // `connect` opens a connection of its own; clones of one client share it.
        let client = RateLimitServiceClient::connect(format!("http://{address}"))
            .await
            .expect("the server answers");
        clients.push(client);
    }
    drive(load, move |worker, user| {
        let mut client = clients[worker % clients.len()].clone();
        let request = request(descriptors, user);
        async move { client.should_rate_limit(request).await.is_ok() }
    })
    .await
}

/// Runs `call(worker, user)` from `load.in_flight` workers until the time is up; only calls
/// that start after the warm-up are measured.
pub async fn drive<F, Fut>(load: Load, call: F) -> Measured
where
    F: Fn(usize, u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let measure_from = started + load.warmup;
    let until = measure_from + load.duration;
    let workers: Vec<_> = (0..load.in_flight)
        .map(|worker| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new(3).expect("a histogram");
                let (mut calls, mut errors) = (0u64, 0u64);
                let mut random = 0x9E37_79B9_7F4A_7C15u64
                    ^ (worker as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                loop {
                    let begun = Instant::now();
                    if begun >= until {
                        break;
                    }
                    random ^= random << 13;
                    random ^= random >> 7;
                    random ^= random << 17;
                    let user = (random % u64::from(load.users)) as u32;
                    let ok = call(worker, user).await;
                    if begun >= measure_from {
                        calls += 1;
                        errors += u64::from(!ok);
                        let _ = latency.record(begun.elapsed().as_micros() as u64);
                    }
                }
                (calls, errors, latency)
            })
        })
        .collect();
    let mut measured = Measured {
        calls: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new(3).expect("a histogram"),
    };
    for worker in workers {
        let (calls, errors, latency) = worker.await.expect("a worker finishes");
        measured.calls += calls;
        measured.errors += errors;
        measured
            .latency
            .add(latency)
            .expect("histograms of one shape");
    }
    // Calls begun before the end finish after it: the window is until the last one came back.
    measured.elapsed = measure_from.elapsed();
    measured
}

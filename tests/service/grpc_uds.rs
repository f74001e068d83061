//! gRPC on a Unix socket (`--grpc-uds`, the Go service's `GRPC_UDS`), with a real tonic client
//! over `UnixStream`: the same limits and counters as over TCP, health, connections admitted
//! by a bound of their own, calls sharing one peer's in-flight part, no TLS, and the socket
//! file gone after shutdown.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::{Client, Code, Service, ask, code, request, unix_channel};

const LIMITS: &str = r#"
domain: uds
descriptors:
  - key: per_minute
    rate_limit: {unit: minute, requests_per_unit: 2}
"#;

/// The service with `--grpc-uds` at a socket in a directory of its own (kept by the caller).
async fn start(extra: &[&str]) -> (Service, TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("grpc.sock");
    let mut flags = vec!["--grpc-uds", socket.to_str().unwrap()];
    flags.extend_from_slice(extra);
    let service = Service::start(&[("uds.yaml", LIMITS)], &flags).await;
    (service, dir, socket)
}

fn per_minute() -> RateLimitRequest {
    request("uds", &[&[("per_minute", "x")]])
}

#[tokio::test]
async fn calls_over_the_socket_are_limited_with_the_same_counters_as_over_tcp() {
    let (service, _dir, socket) = start(&[]).await;
    let mut over_tcp = service.client().await;
    let channel = unix_channel(&socket).await;
    let mut over_unix = RateLimitServiceClient::new(channel.clone());

    assert_eq!(code(&ask(&mut over_unix, per_minute()).await), Code::Ok);
    assert_eq!(code(&ask(&mut over_tcp, per_minute()).await), Code::Ok);
    assert_eq!(
        code(&ask(&mut over_unix, per_minute()).await),
        Code::OverLimit,
        "the third call of the minute, whichever listener carried the first two"
    );
    let bad = over_unix
        .should_rate_limit(request("", &[&[("per_minute", "x")]]))
        .await
        .expect_err("an empty domain is refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");

    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health over the Unix socket")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    assert!(socket.exists(), "the socket file exists while serving");
    service.stop().await.unwrap();
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

#[tokio::test]
async fn socket_connections_have_a_bound_of_their_own() {
    let (service, _dir, socket) = start(&["--grpc-max-connections", "2"]).await;
    let mut held: Vec<Client> = Vec::new();
    for _ in 0..2 {
        let mut client = RateLimitServiceClient::new(unix_channel(&socket).await);
        assert_eq!(code(&ask(&mut client, per_minute()).await), Code::Ok);
        held.push(client);
    }
    let mut waiting = RateLimitServiceClient::new(unix_channel(&socket).await);
    let unserved = tokio::time::timeout(
        Duration::from_millis(500),
        waiting.should_rate_limit(per_minute()),
    )
    .await;
    assert!(
        unserved.is_err(),
        "a third socket connection is served beyond the bound: {unserved:?}"
    );

    // TCP clients are admitted apart: the socket's clients hold none of their slots.
    let mut over_tcp = service.client().await;
    assert_eq!(
        code(&ask(&mut over_tcp, per_minute()).await),
        Code::OverLimit
    );

    held.pop();
    let served = tokio::time::timeout(
        Duration::from_secs(5),
        waiting.should_rate_limit(per_minute()),
    )
    .await
    .expect("served once a socket connection closed")
    .expect("the call succeeds");
    assert_eq!(code(&served.into_inner()), Code::OverLimit);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn tls_with_the_socket_stops_startup_rather_than_serving_it_in_clear() {
    let (service, _dir, socket) =
        start(&["--grpc-tls-cert", "cert.pem", "--grpc-tls-key", "key.pem"]).await;
    let error = service
        .stopped()
        .await
        .expect_err("started with TLS and a socket");
    assert!(
        error
            .to_string()
            .contains("--grpc-uds (GRPC_UDS) cannot be combined with gRPC TLS"),
        "{error}"
    );
    assert!(
        !socket.exists(),
        "the socket file is removed when startup fails"
    );
}

#[tokio::test]
async fn socket_calls_share_one_peers_part_of_the_in_flight_budget() {
    let (service, _dir, socket) = start(&["--max-in-flight-per-peer", "1"]).await;
    let mut watcher = HealthClient::new(unix_channel(&socket).await);
    let mut watch = watcher
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a health watch over the socket")
        .into_inner();
    assert!(watch.message().await.unwrap().is_some(), "the first status");

    // Another connection on the socket is the same peer: the watch holds its one call.
    let mut over_unix = RateLimitServiceClient::new(unix_channel(&socket).await);
    let refused = over_unix
        .should_rate_limit(per_minute())
        .await
        .expect_err("a second call of the socket's peer");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    let mut over_tcp = service.client().await;
    assert_eq!(code(&ask(&mut over_tcp, per_minute()).await), Code::Ok);

    drop(watch);
    crate::common::eventually(Duration::from_secs(5), "the watch's call ends", || {
        let mut client = over_unix.clone();
        async move { client.should_rate_limit(per_minute()).await.is_ok() }
    })
    .await;
    service.stop().await.unwrap();
}

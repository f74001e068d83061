//! The Redis store on real servers, for each kind of deployment (single, single over mutual
//! TLS, Sentinel, Cluster): it keeps the store contract, two service processes that share it
//! admit exactly the limit between them over gRPC (and so do two nodes whose clocks are 30 s
//! apart), and no key it writes is ever left without a TTL. TLS certificates are checked (with
//! the host name check skipped, still their chain).

use std::time::Duration;

use crate::common;
use crate::common::ports;
use crate::common::process::Node;
use crate::common::redis::{
    RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, keys_and_ttls,
};
use crate::common::redis_store::{TEST_TIMEOUT, connect};
use crate::common::tls::Certificates;
use crate::common::{Client, Code, Service, ask, code, config_dir, request};
use ratelimiter::store::{CounterStore, StoreError};

const LIMITS: &str = "
domain: shared
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 4}
";

/// `user` asked 10 times, in turn through `clients`: exactly 4 are admitted.
async fn admitted_in_turn(clients: &mut [Client], user: &str) -> usize {
    let mut admitted = 0;
    for turn in 0..10 {
        let client = &mut clients[turn % clients.len()];
        let response = ask(client, request("shared", &[&[("user", user)]])).await;
        if code(&response) == Code::Ok {
            admitted += 1;
        }
    }
    admitted
}

/// Two `ratelimiter serve` processes on one Redis, asked in turn, admit exactly the limit; and
/// so do two in-process nodes whose clocks are 30 s apart, as windows come from Redis's clock.
async fn two_nodes_admit_exactly_the_limit(url: &str, flags: &[&str]) {
    let mut args = vec!["--redis-url", url, "--redis-timeout", TEST_TIMEOUT];
    args.extend_from_slice(flags);

    let limits = config_dir(&[("shared.yaml", LIMITS)]);
    let config = limits.path().to_str().unwrap();
    let processes = ["first", "second"]
        .map(|id| Node::start(&[&args[..], &["--config", config, "--node-id", id]].concat()));
    let mut clients = vec![
        common::connect(processes[0].grpc_addr).await,
        common::connect(processes[1].grpc_addr).await,
    ];
    assert_eq!(admitted_in_turn(&mut clients, "alice").await, 4);

    let first = Service::start(
        &[("shared.yaml", LIMITS)],
        &[&args[..], &["--node-id", "third"]].concat(),
    )
    .await;
    let second = Service::start(
        &[("shared.yaml", LIMITS)],
        &[&args[..], &["--node-id", "fourth"]].concat(),
    )
    .await;
    second.clock.advance(Duration::from_secs(30));
    let mut clients = vec![first.client().await, second.client().await];
    assert_eq!(admitted_in_turn(&mut clients, "bob").await, 4);
}

/// Counters of both kinds under some load, then a look at every key of the server.
async fn no_key_is_left_without_a_ttl(store: &dyn CounterStore, ports: &[u16]) {
    for index in 0..200 {
        let key = format!("load|{index}");
        store
            .apply(&[
                common::contract::op(&key, 60, 1),
                common::contract::op(&key, 60, -1),
                common::contract::op(&format!("{key}|b"), 1, 2),
            ])
            .await
            .unwrap();
        store
            .slide(&format!("{key}|s"), Duration::from_secs(10), 5, 1)
            .await
            .unwrap();
    }
    let mut seen = 0;
    for &port in ports {
        for (key, ttl) in keys_and_ttls(port) {
            if key.starts_with("ratelimiter:nodes:") {
                continue;
            }
            seen += 1;
            // -1 is no expiry; 0 is a key that expires this very millisecond.
            assert!(ttl >= 0, "{key} has PTTL {ttl}");
        }
    }
    assert!(seen >= 400, "only {seen} keys were found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_redis_is_shared_exactly() {
    let redis = RedisServer::start();
    let connected = connect(&redis.url(), &[], "contract:").await;
    common::contract::contract(connected.store.clone(), "single|").await;
    no_key_is_left_without_a_ttl(&*connected.store, &[redis.port]).await;
    two_nodes_admit_exactly_the_limit(&redis.url(), &[]).await;
}

/// A single server that speaks only TLS and wants a client certificate from its CA, and the
/// service's flags that trust the CA and present such a certificate.
struct TlsRedis {
    server: RedisServer,
    url: String,
    client_flags: Vec<String>,
    _certificates: Certificates,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let certificates = Certificates::create();
        // TLS on the companion port; the plain port is for the harness's own checks (which
        // process answers, key listing) only.
        let server = RedisServer::start_with_companion(|tls_port| {
            certificates.redis_flags(tls_port, "server", true)
        });
        TlsRedis {
            url: format!("rediss://localhost:{}", ports::companion(server.port)),
            server,
            client_flags: certificates.client_flags(),
            _certificates: certificates,
        }
    }

    /// `--redis-tls-ca <file>`, then `--redis-tls-cert <file> --redis-tls-key <file>`.
    fn client_flags(&self) -> Vec<&str> {
        self.client_flags.iter().map(String::as_str).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_over_mutual_tls_is_shared_exactly() {
    let redis = TlsRedis::start();
    let flags = redis.client_flags();
    let connected = connect(&redis.url, &flags, "contract:").await;
    common::contract::contract(connected.store.clone(), "tls|").await;
    no_key_is_left_without_a_ttl(&*connected.store, &[redis.server.port]).await;
    two_nodes_admit_exactly_the_limit(&redis.url, &flags).await;
}

/// A server certificate from an unknown CA, or no client certificate where the server wants
/// one: no connection, and calls answer unavailable rather than count anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_without_the_right_certificates_never_connects() {
    let redis = TlsRedis::start();
    let flags = redis.client_flags();
    let refused = [
        // The system's roots do not know the test CA.
        &flags[2..],
        // Redis asks for a client certificate and gets none.
        &flags[..2],
    ];
    for flags in refused {
        let connected = connect(&redis.url, flags, "refused:").await;
        let answer = connected
            .store
            .apply(&[common::contract::op("k", 60, 1)])
            .await;
        assert!(
            matches!(answer, Err(StoreError::Unavailable(_))),
            "{flags:?}: {answer:?}"
        );
        assert!(!connected.health.is_store_reachable(), "{flags:?}");
    }
}

/// A server whose certificate names only `other.example`, dialled as 127.0.0.1: refused, unless
/// the host name check is skipped; skipping it still checks the chain, so the same certificate
/// is refused when another CA is trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skipping_the_host_name_check_still_checks_the_chain() {
    let certificates = Certificates::create();
    let server = RedisServer::start_with_companion(|tls_port| {
        certificates.redis_flags(tls_port, "misnamed", false)
    });
    let url = format!("rediss://127.0.0.1:{}", ports::companion(server.port));
    let file = |name: &str| certificates.file(name).to_str().unwrap().to_string();
    let (ca, other_ca) = (file("ca.crt"), file("other-ca.crt"));
    let skip = "--redis-tls-skip-hostname-verification";
    let refused: [&[&str]; 2] = [
        &["--redis-tls-ca", &ca],
        &["--redis-tls-ca", &other_ca, skip],
    ];
    for flags in refused {
        let connected = connect(&url, flags, "refused:").await;
        let answer = connected
            .store
            .apply(&[common::contract::op("k", 60, 1)])
            .await;
        assert!(
            matches!(answer, Err(StoreError::Unavailable(_))),
            "{flags:?}: {answer:?}"
        );
        assert!(!connected.health.is_store_reachable(), "{flags:?}");
    }
    assert!(keys_and_ttls(server.port).is_empty(), "nothing was counted");

    let connected = connect(&url, &["--redis-tls-ca", &ca, skip], "skipped:").await;
    let counted = connected
        .store
        .apply(&[common::contract::op("k", 60, 2)])
        .await
        .unwrap();
    assert_eq!(counted[0].value, 2);
    assert!(connected.health.is_store_reachable());
    let keys: Vec<String> = keys_and_ttls(server.port)
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with("skipped:"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_master_is_shared_exactly() {
    let redis = RedisSentinel::start();
    let flags = [
        "--redis-type",
        "sentinel",
        "--redis-sentinel-master",
        SENTINEL_MASTER,
    ];
    let connected = connect(&redis.url(), &flags, "contract:").await;
    common::contract::contract(connected.store.clone(), "sentinel|").await;
    no_key_is_left_without_a_ttl(&*connected.store, &[redis.master.port]).await;
    two_nodes_admit_exactly_the_limit(&redis.url(), &flags).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_is_shared_exactly() {
    let cluster = RedisCluster::start();
    let flags = ["--redis-type", "cluster"];
    let connected = connect(&cluster.url(), &flags, "contract:").await;
    common::contract::contract(connected.store.clone(), "cluster|").await;
    let ports: Vec<u16> = cluster.nodes.iter().map(|node| node.port).collect();
    no_key_is_left_without_a_ttl(&*connected.store, &ports).await;
    // Every master holds some of the keys: the listing above crossed masters.
    for &port in &ports {
        assert!(!keys_and_ttls(port).is_empty(), "no key on port {port}");
    }
    two_nodes_admit_exactly_the_limit(&cluster.url(), &flags).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fixed_window_starts_over_when_redis_time_ends_it() {
    let redis = RedisServer::start();
    let connected = connect(&redis.url(), &[], "rollover:").await;
    let store = &*connected.store;
    let first = store
        .apply(&[common::contract::op("k", 1, 3)])
        .await
        .unwrap()[0];
    assert_eq!(first.value, 3);
    assert!(first.resets_in <= Duration::from_secs(1), "{first:?}");
    common::eventually(Duration::from_secs(5), "the 1 s window ends", || async {
        store
            .apply(&[common::contract::op("k", 1, 0)])
            .await
            .unwrap()[0]
            .value
            == 0
    })
    .await;
    assert_eq!(
        common::contract::values(store, &[common::contract::op("k", 1, 1)]).await,
        [1]
    );
}

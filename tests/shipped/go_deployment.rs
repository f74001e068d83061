//! A Go deployment switched to this image and nothing else: the built binary started with no
//! arguments and only the Go service's environment (a typical Kubernetes manifest's set, and the
//! Go repository's docker-compose set), against a Go-style runtime tree (files without `.yaml`,
//! a subdirectory, a ConfigMap `..data` swap) and a real Redis over TCP and over a Unix socket;
//! gRPC on a Unix socket too (`GRPC_UDS`); a per-second Redis beside the main one, and both over
//! TLS with certificates that do not name the host.

use std::path::Path;
use std::time::Duration;

use crate::common;
use crate::common::files::ConfigMap;
use crate::common::http::Http;
use crate::common::ports;
use crate::common::process::Node;
use crate::common::redis::RedisServer;
use crate::common::tls::Certificates;
use crate::common::{Code, ask, code, request};

fn limits(domain: &str, key: &str, per_minute: u32) -> String {
    format!(
        "domain: {domain}\ndescriptors:\n  - key: {key}\n    rate_limit: {{unit: minute, requests_per_unit: {per_minute}}}\n"
    )
}

/// `RUNTIME_ROOT/ratelimit/config` with a ConfigMap (files `config` and `limits.conf`, no
/// `.yaml`) and a subdirectory holding one more domain file.
fn runtime_tree(root: &Path) -> ConfigMap {
    let config = root.join("ratelimit/config");
    std::fs::create_dir_all(config.join("team")).unwrap();
    std::fs::write(config.join("team/api"), limits("api", "key", 1)).unwrap();
    ConfigMap::create(
        &config,
        &[
            ("config", &limits("edge", "user", 2)),
            ("limits.conf", &limits("mobile", "device", 3)),
        ],
    )
}

/// What both deployments set: listeners on loopback, the runtime tree, statsd off; plus `more`.
fn vars(root: &Path, grpc: u16, http: u16, more: &[(&str, String)]) -> Vec<(String, String)> {
    let common = [
        ("RUNTIME_ROOT", root.display().to_string()),
        ("RUNTIME_SUBDIRECTORY", "ratelimit".into()),
        ("RUNTIME_IGNOREDOTFILES", "true".into()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", http.to_string()),
        ("GRPC_HOST", "127.0.0.1".into()),
        ("GRPC_PORT", grpc.to_string()),
        ("USE_STATSD", "false".into()),
    ];
    common
        .iter()
        .chain(more)
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

/// How many of `calls` hits on `(key, value)` in `domain` are admitted.
async fn admitted(client: &mut common::Client, domain: &str, key: &str, calls: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..calls {
        if code(&ask(client, request(domain, &[&[(key, "v")]])).await) == Code::Ok {
            admitted += 1;
        }
    }
    admitted
}

#[tokio::test]
async fn a_kubernetes_manifest_runs_unchanged_with_redis_over_tcp() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let mut config_map = runtime_tree(root.path());
    let prometheus_port = common::ports::candidate();
    let node = Node::start_go(|grpc, http| {
        vars(
            root.path(),
            grpc,
            http,
            &[
                ("REDIS_SOCKET_TYPE", "tcp".into()),
                ("REDIS_URL", format!("127.0.0.1:{}", redis.port)),
                ("RUNTIME_WATCH_ROOT", "false".into()),
                ("USE_PROMETHEUS", "true".into()),
                ("PROMETHEUS_ADDR", format!("127.0.0.1:{prometheus_port}")),
                ("LOG_LEVEL", "info".into()),
                ("LIMIT_RESPONSE_HEADERS_ENABLED", "true".into()),
                ("CACHE_KEY_PREFIX", "gofleet_".into()),
                ("REDIS_POOL_SIZE", "20".into()),
            ],
        )
    });
    let log = node.startup_log.join("\n");
    assert!(
        log.contains("read the Go service's environment variables"),
        "{log}"
    );
    assert!(
        log.contains("REDIS_POOL_SIZE is set: not needed here"),
        "{log}"
    );

    let mut client = common::connect(node.grpc_addr).await;
    let response = ask(&mut client, request("edge", &[&[("user", "v")]])).await;
    assert_eq!(code(&response), Code::Ok);
    let headers: Vec<&str> = response
        .response_headers_to_add
        .iter()
        .map(|header| header.key.as_str())
        .collect();
    assert!(headers.contains(&"RateLimit-Limit"), "{headers:?}");
    assert_eq!(
        admitted(&mut client, "edge", "user", 3).await,
        1,
        "2 per minute"
    );
    assert_eq!(admitted(&mut client, "mobile", "device", 4).await, 3);
    assert_eq!(
        admitted(&mut client, "api", "key", 2).await,
        1,
        "from the subdirectory"
    );
    let keys = redis.cli(&["--scan", "--pattern", "gofleet_*"]);
    assert!(keys.lines().count() >= 3, "counted in Redis: {keys:?}");

    let http = Http::new(node.http_addr);
    assert_eq!(http.get("/healthcheck").await.status, 200);
    let metrics = Http::new(([127, 0, 0, 1], prometheus_port).into())
        .get("/metrics")
        .await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("ratelimit_service_rate_limit_over_limit"),
        "{}",
        metrics.body
    );

    config_map.update(&[
        ("config", &limits("edge", "user", 5)),
        ("limits.conf", &limits("mobile", "device", 3)),
    ]);
    common::eventually(
        Duration::from_secs(15),
        "the ConfigMap swap reloads",
        || {
            let mut client = client.clone();
            async move {
                let response = ask(&mut client, request("edge", &[&[("user", "w")]])).await;
                response.statuses[0]
                    .current_limit
                    .as_ref()
                    .is_some_and(|limit| limit.requests_per_unit == 5)
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_docker_compose_set_runs_with_redis_over_a_unix_socket() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("redis.sock");
    let socket_text = socket.display().to_string();
    let grpc_socket = sockets.path().join("grpc.sock");
    let redis = RedisServer::start_with(&["--unixsocket", &socket_text, "--unixsocketperm", "700"]);
    let root = tempfile::tempdir().unwrap();
    let _config_map = runtime_tree(root.path());
    let debug_port = common::ports::candidate();
    let mut node = Node::start_go(|grpc, http| {
        vars(
            root.path(),
            grpc,
            http,
            &[
                // REDIS_SOCKET_TYPE left to Go's default, unix.
                ("REDIS_URL", socket_text.clone()),
                ("DEBUG_HOST", "127.0.0.1".into()),
                ("DEBUG_PORT", debug_port.to_string()),
                ("LOG_LEVEL", "debug".into()),
                ("MEMCACHE_HOST_PORT", "memcached:11211".into()),
                ("GRPC_UDS", grpc_socket.display().to_string()),
            ],
        )
    });
    assert!(
        node.startup_log
            .iter()
            .any(|line| line.contains("MEMCACHE_HOST_PORT is set: not needed here")),
        "{:?}",
        node.startup_log
    );
    let mut client = common::connect(node.grpc_addr).await;
    assert_eq!(admitted(&mut client, "edge", "user", 4).await, 2);
    let keys = redis.cli(&["--scan"]);
    assert!(!keys.trim().is_empty(), "counted in Redis over the socket");
    let mut over_unix = common::Client::new(common::unix_channel(&grpc_socket).await);
    assert_eq!(admitted(&mut over_unix, "edge", "user", 1).await, 0);
    assert_eq!(admitted(&mut over_unix, "mobile", "device", 2).await, 2);
    assert_eq!(
        admitted(&mut client, "mobile", "device", 2).await,
        1,
        "one counter over both listeners"
    );

    let debug = Http::new(([127, 0, 0, 1], debug_port).into());
    let rlconfig = debug.get("/rlconfig").await;
    assert_eq!(rlconfig.status, 200);
    assert!(
        rlconfig
            .body
            .contains("edge.user: unit=MINUTE requests_per_unit=2"),
        "{}",
        rlconfig.body
    );
    let stats = debug.get("/stats").await;
    assert!(
        stats
            .body
            .contains("ratelimit_service_rate_limit_over_limit"),
        "{}",
        stats.body
    );
    assert_eq!(
        debug.get("/json").await.status,
        404,
        "only the debug endpoints"
    );

    node.signal("TERM");
    assert_eq!(node.wait_for_exit(Duration::from_secs(10)).await, Some(0));
    assert!(!grpc_socket.exists(), "the gRPC socket file is removed");
}

/// A variable, a value refused for it, and the other variables it needs to mean anything.
type Refusal<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[test]
fn a_value_that_cannot_be_honoured_stops_startup_naming_the_variable() {
    let sentinel_tls: &[(&str, &str)] = &[
        ("REDIS_URL", "mymaster,127.0.0.1:26379"),
        ("REDIS_TYPE", "sentinel"),
        ("REDIS_TLS", "true"),
    ];
    let cases: [Refusal; 4] = [
        ("BACKEND_TYPE", "memcache", &[]),
        ("CONFIG_TYPE", "GRPC_XDS_SOTW", &[]),
        ("GRPC_PORT", "tcp://10.0.0.1:8081", &[]),
        ("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", "true", sentinel_tls),
    ];
    for (name, value, others) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
            .env(name, value)
            .envs(others.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value} started");
        assert!(stderr.contains(&format!("{name}={value:?}")), "{stderr}");
    }
}

/// Keys on `redis` whose name contains `part`.
fn keys_with(redis: &RedisServer, part: &str) -> usize {
    redis
        .cli(&["--scan"])
        .lines()
        .filter(|key| key.contains(part))
        .count()
}

/// A runtime tree with the domain `split`: `burst` limited per second, `steady` per minute.
fn split_tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("ratelimit/config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("split"),
        "domain: split\ndescriptors:\n  - key: burst\n    rate_limit: {unit: second, requests_per_unit: 100}\n  - key: steady\n    rate_limit: {unit: minute, requests_per_unit: 100}\n",
    )
    .unwrap();
    root
}

/// Asks `node` for `burst` and `steady` until `burst` is counted in `per_second` and `steady`
/// in `main` (a per-second counter lives for a second at most, so it is looked for right after).
async fn counted_in_each_redis(node: &Node, main: &RedisServer, per_second: &RedisServer) {
    let client = common::connect(node.grpc_addr).await;
    common::eventually(
        Duration::from_secs(10),
        "the second limit counted in the per-second Redis, the minute limit in the main one",
        || {
            let mut client = client.clone();
            async move {
                let both = request("split", &[&[("burst", "b")], &[("steady", "s")]]);
                assert_eq!(code(&ask(&mut client, both).await), Code::Ok);
                keys_with(per_second, "burst") == 1 && keys_with(main, "steady") == 1
            }
        },
    )
    .await;
}

#[tokio::test]
async fn redis_persecond_counts_per_second_limits_in_their_own_redis() {
    let mut per_second = RedisServer::start();
    let main = RedisServer::start();
    let root = split_tree();
    let node = Node::start_go(|grpc, http| {
        vars(
            root.path(),
            grpc,
            http,
            &[
                ("REDIS_SOCKET_TYPE", "tcp".into()),
                ("REDIS_URL", format!("127.0.0.1:{}", main.port)),
                ("REDIS_PERSECOND", "true".into()),
                ("REDIS_PERSECOND_SOCKET_TYPE", "tcp".into()),
                (
                    "REDIS_PERSECOND_URL",
                    format!("127.0.0.1:{}", per_second.port),
                ),
                ("REDIS_PERSECOND_TIMEOUT", "2s".into()),
                ("REDIS_PERSECOND_POOL_SIZE", "5".into()),
            ],
        )
    });
    let log = node.startup_log.join("\n");
    assert!(
        log.contains("counting per-second limits in their own Redis"),
        "{log}"
    );
    counted_in_each_redis(&node, &main, &per_second).await;
    assert_eq!(
        keys_with(&per_second, "steady"),
        0,
        "minute limits stay in REDIS_URL"
    );
    assert_eq!(
        keys_with(&main, "burst"),
        0,
        "second limits leave REDIS_URL"
    );
    let http = Http::new(node.http_addr);
    assert_eq!(http.get("/healthcheck").await.status, 200);

    per_second.kill();
    common::eventually(
        Duration::from_secs(20),
        "health turns unhealthy with the per-second Redis gone",
        || {
            let http = &http;
            async move { http.get("/healthcheck").await.status == 500 }
        },
    )
    .await;
    let health = http.get("/health").await.json();
    assert_eq!(health["status"], "degraded", "{health}");
    let problem = health["store"]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("per-second Redis"), "{health}");
}

/// Both Redis over TLS with certificates that name only `other.example`, dialled as 127.0.0.1,
/// as a managed Redis (GCP Memorystore) serves them: with REDIS_TLS_SKIP_HOSTNAME_VERIFICATION
/// the service counts in each, the certificates still checked against REDIS_TLS_CACERT.
#[tokio::test]
async fn skipping_the_host_name_check_reaches_both_redis_over_tls() {
    let certificates = Certificates::create();
    let start = || {
        RedisServer::start_with_companion(|tls_port| {
            certificates.redis_flags(tls_port, "misnamed", false)
        })
    };
    let (main, per_second) = (start(), start());
    let tls_address = |redis: &RedisServer| format!("127.0.0.1:{}", ports::companion(redis.port));
    let root = split_tree();
    let node = Node::start_go(|grpc, http| {
        vars(
            root.path(),
            grpc,
            http,
            &[
                ("REDIS_SOCKET_TYPE", "tcp".into()),
                ("REDIS_URL", tls_address(&main)),
                ("REDIS_TLS", "true".into()),
                (
                    "REDIS_TLS_CACERT",
                    certificates.file("ca.crt").display().to_string(),
                ),
                ("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", "true".into()),
                ("REDIS_PERSECOND", "true".into()),
                ("REDIS_PERSECOND_SOCKET_TYPE", "tcp".into()),
                ("REDIS_PERSECOND_URL", tls_address(&per_second)),
                ("REDIS_PERSECOND_TLS", "true".into()),
            ],
        )
    });
    counted_in_each_redis(&node, &main, &per_second).await;
    let http = Http::new(node.http_addr);
    assert_eq!(http.get("/healthcheck").await.status, 200);
}

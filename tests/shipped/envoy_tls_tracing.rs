//! A real Envoy (the shipped front proxy, rendered with `--ratelimit-tls` and `--otlp`) calling
//! over mutual TLS: traffic limited end to end, certificate rotations while it keeps sending
//! with no failed call, a broken certificate kept out; and Envoy's trace continued by ours.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::envoy::Envoy;
use crate::common::http::Http;
use crate::common::otlp;
use crate::common::process::Node;
use crate::common::tls::Certificates;
use crate::common::tls_client::{der, path, served_certificate};
use crate::common::{self};

/// Ports the shipped front proxy uses: (listener, upstream, admin).
const FRONT_PROXY: (u16, u16, u16) = (10000, 10001, 9901);

const PER_USER: &str = "
domain: edge
descriptors:
  - key: user_id
    rate_limit: {unit: hour, requests_per_unit: 3}
";

async fn front_proxy(node: &Node, extra: &[String]) -> (Envoy, String) {
    let mut args = vec!["--ratelimit".to_string(), node.grpc_addr.to_string()];
    args.extend_from_slice(extra);
    let envoy = Envoy::start("front-proxy.yaml", FRONT_PROXY, &args).await;
    let base = format!("http://127.0.0.1:{}", envoy.ports.listener);
    (envoy, base)
}

async fn status(client: &reqwest::Client, base: &str, user: Option<&str>) -> u16 {
    let mut request = client.get(format!("{base}/api/orders"));
    if let Some(user) = user {
        request = request.header("x-user-id", user);
    }
    request
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

/// Waits until `/health` of `http` satisfies `condition` on its `certificates.grpc`.
async fn wait_for_certificate(
    http: &Http,
    what: &str,
    condition: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let health = http.get("/health").await.json();
        if condition(&health["certificates"]["grpc"]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never happened: {what}; /health: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn envoy_over_mutual_tls_limits_traffic_and_rides_through_rotations() {
    let certs = Certificates::create();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(certs.file("server.crt"), &cert).unwrap();
    std::fs::copy(certs.file("server.key"), &key).unwrap();
    let config = common::config_dir(&[("edge.yaml", PER_USER)]);
    let node = Node::start(&[
        "--config",
        &path(config.path()),
        "--grpc-tls-cert",
        &path(&cert),
        "--grpc-tls-key",
        &path(&key),
        "--grpc-tls-client-ca",
        &path(&certs.file("ca.crt")),
        "--grpc-tls-client-san",
        "envoy.client",
    ]);
    let extra = [
        "--ratelimit-tls".to_string(),
        path(certs.dir()),
        "--failure-mode-deny".to_string(),
    ];
    let (envoy, base) = front_proxy(&node, &extra).await;
    let client = reqwest::Client::new();
    let answers = [
        status(&client, &base, Some("alice")).await,
        status(&client, &base, Some("alice")).await,
        status(&client, &base, Some("alice")).await,
        status(&client, &base, Some("alice")).await,
    ];
    assert_eq!(answers, [200, 200, 200, 429]);

    // Unlimited traffic keeps flowing while the certificate rotates; with failure_mode_deny
    // every failed check would be a 500.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sender = tokio::spawn({
        let (stop, served, failed, base) =
            (stop.clone(), served.clone(), failed.clone(), base.clone());
        async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                match status(&client, &base, None).await {
                    200 => served.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let http = Http::new(node.http_addr);
    let first_load = http.get("/health").await.json()["certificates"]["grpc"]["loaded_at"].clone();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    std::fs::copy(certs.file("server-next.key"), &key).unwrap();
    std::fs::copy(certs.file("server-next.crt"), &cert).unwrap();
    wait_for_certificate(&http, "the new certificate loaded", |grpc| {
        grpc["loaded_at"] != first_load && grpc["last_error"].is_null()
    })
    .await;
    assert_eq!(
        served_certificate(node.grpc_addr, &certs.file("ca.crt")).await,
        der(&certs.file("server-next.crt"))
    );
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    wait_for_certificate(&http, "the broken certificate refused", |grpc| {
        grpc["last_error"].is_object()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();

    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert_eq!(failed, 0, "{served} served");
    assert!(served > 20, "only {served} requests went through");
    assert_eq!(
        envoy.stat("cluster.ratelimit.upstream_cx_destroy").await,
        0,
        "Envoy's connection to ratelimiter was never dropped"
    );
    assert_eq!(
        served_certificate(node.grpc_addr, &certs.file("ca.crt")).await,
        der(&certs.file("server-next.crt")),
        "the broken certificate is kept out"
    );
    assert_eq!(status(&client, &base, Some("alice")).await, 429);
}

#[tokio::test]
async fn envoys_trace_is_continued_by_our_span() {
    let (receiver, spans) = otlp::grpc_receiver().await;
    let config = common::config_dir(&[("edge.yaml", PER_USER)]);
    let endpoint = format!("http://{receiver}");
    let node = Node::start(&[
        "--config",
        &path(config.path()),
        "--tracing",
        "--tracing-protocol",
        "grpc",
        "--tracing-endpoint",
        &endpoint,
    ]);
    let (_envoy, base) = front_proxy(&node, &["--otlp".to_string(), receiver.to_string()]).await;
    let client = reqwest::Client::new();
    assert_eq!(status(&client, &base, Some("bob")).await, 200);
    let (ours, parent) = spans
        .wait_for("our span as a child of an Envoy span", |spans| {
            spans
                .iter()
                .filter(|s| {
                    s.service == "ratelimiter" && s.attribute("ratelimit.domain") == Some("edge")
                })
                .find_map(|ours| {
                    let parent = spans.iter().find(|s| {
                        s.service == "envoy-front"
                            && s.trace_id == ours.trace_id
                            && s.span_id == ours.parent_span_id
                    })?;
                    Some((ours.clone(), parent.clone()))
                })
        })
        .await;
    assert_eq!(ours.attribute("ratelimit.outcome"), Some("OK"), "{ours:?}");
    assert_eq!(
        ours.attribute("ratelimit.store"),
        Some("memory"),
        "{ours:?}"
    );
    assert!(
        ours.attribute("ratelimit.descriptor_count").is_some(),
        "{ours:?}"
    );
    assert!(
        parent.name.contains("RateLimitService"),
        "Envoy's egress span: {parent:?}"
    );
}

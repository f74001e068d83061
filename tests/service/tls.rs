//! TLS on the listeners: a client that trusts the CA is served, mutual TLS admits only client
//! certificates from the CA with an allowed SAN, the HTTP listener has TLS of its own, and a
//! certificate that cannot be served stops the start.

use crate::common::tls::Certificates;
use crate::common::tls_client::{check_over_tls, der, get, path, served_certificate, tls_stream};
use crate::common::{self, Code, Service};

pub const LIMITS: &str = "
domain: edge
descriptors:
  - key: user_id
    rate_limit: {unit: hour, requests_per_unit: 2}
";

/// The service with `flags`, each `{name}` replaced by the path of that file of `certs`.
async fn start_with(certs: &Certificates, flags: &[&str]) -> Service {
    let flags: Vec<String> = flags
        .iter()
        .map(
            |flag| match flag.strip_prefix('{').and_then(|f| f.strip_suffix('}')) {
                Some(name) => path(&certs.file(name)),
                None => flag.to_string(),
            },
        )
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Service::start(&[("edge.yaml", LIMITS)], &flags).await
}

#[tokio::test]
async fn grpc_over_tls_serves_clients_that_trust_the_ca_and_not_plain_ones() {
    let certs = Certificates::create();
    let tls = [
        "--grpc-tls-cert",
        "{server.crt}",
        "--grpc-tls-key",
        "{server.key}",
    ];
    let service = start_with(&certs, &tls).await;
    let addr = service.grpc_addr;
    assert_eq!(check_over_tls(addr, &certs, None).await, Ok(Code::Ok));
    let served = served_certificate(addr, &certs.file("ca.crt")).await;
    assert_eq!(served, der(&certs.file("server.crt")));
    let mut plain = common::connect(addr).await;
    let refused = plain
        .should_rate_limit(common::request("edge", &[&[("user_id", "plain")]]))
        .await;
    assert!(
        refused.is_err(),
        "plain HTTP/2 on a TLS listener: {refused:?}"
    );
}

#[tokio::test]
async fn mutual_tls_admits_only_certificates_from_the_ca_with_an_allowed_san() {
    let certs = Certificates::create();
    let mutual = [
        "--grpc-tls-cert",
        "{server.crt}",
        "--grpc-tls-key",
        "{server.key}",
        "--grpc-tls-client-ca",
        "{ca.crt}",
        "--grpc-tls-client-san",
        "other.client,envoy.client",
    ];
    let service = start_with(&certs, &mutual).await;
    let addr = service.grpc_addr;
    assert_eq!(
        check_over_tls(addr, &certs, Some("client")).await,
        Ok(Code::Ok)
    );
    for (who, identity) in [
        ("no client certificate", None),
        ("a certificate from another CA", Some("stranger")),
        ("a SAN that is not allowed", Some("outsider")),
    ] {
        let answer = check_over_tls(addr, &certs, identity).await;
        assert!(answer.is_err(), "{who} was served: {answer:?}");
    }
    assert_eq!(
        check_over_tls(addr, &certs, Some("client")).await,
        Ok(Code::Ok)
    );
}

#[tokio::test]
async fn the_http_listener_serves_tls_with_a_certificate_of_its_own() {
    let certs = Certificates::create();
    let tls = [
        "--http-tls-cert",
        "{server-next.crt}",
        "--http-tls-key",
        "{server-next.key}",
    ];
    let service = start_with(&certs, &tls).await;
    let mut stream = tls_stream(service.http_addr, &certs.file("ca.crt")).await;
    let served = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    assert_eq!(served, der(&certs.file("server-next.crt")));
    let (status, body) = get(&mut stream, "/health").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let http = &health["certificates"]["http"];
    assert!(
        http["loaded_at"].is_string() && http["last_error"].is_null(),
        "{body}"
    );
    // The gRPC listener stays plain.
    let mut client = service.client().await;
    common::ask(&mut client, common::request("edge", &[&[("user_id", "a")]])).await;
}

#[tokio::test]
async fn a_certificate_that_does_not_match_its_key_stops_the_start() {
    let certs = Certificates::create();
    let tls = [
        "--grpc-tls-cert",
        "{server.crt}",
        "--grpc-tls-key",
        "{client.key}",
    ];
    let service = start_with(&certs, &tls).await;
    let error = service.stopped().await.expect_err("refused").to_string();
    assert!(
        error.contains("cannot serve TLS on the grpc listener"),
        "{error}"
    );
}

#[tokio::test]
async fn half_a_tls_configuration_is_refused_with_the_missing_flag() {
    let certs = Certificates::create();
    let service = start_with(&certs, &["--grpc-tls-cert", "{server.crt}"]).await;
    let error = service.stopped().await.expect_err("refused").to_string();
    assert_eq!(error, "--grpc-tls-cert needs --grpc-tls-key");
}

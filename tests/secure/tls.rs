//! TLS on the listeners: a client that trusts the CA is served, mutual TLS admits only client
//! certificates from the CA with an allowed SAN, the HTTP listener has TLS of its own, and a
//! certificate that cannot be served stops the start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::common::tls::Certificates;
use crate::common::{self, Client, Code, Service};

pub const LIMITS: &str = "
domain: edge
descriptors:
  - key: user_id
    rate_limit: {unit: hour, requests_per_unit: 2}
";

pub fn path(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// A gRPC client over TLS to `addr` (as `localhost`), trusting `certs`' `ca`, presenting the
/// certificate `identity` (`client`, `stranger`, ...) when given.
pub async fn tls_client(
    addr: SocketAddr,
    certs: &Certificates,
    identity: Option<&str>,
) -> Result<Client, tonic::transport::Error> {
    let read = |name: &str| std::fs::read(certs.file(name)).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.crt")))
        .domain_name("localhost");
    if let Some(name) = identity {
        tls = tls.identity(Identity::from_pem(
            read(&format!("{name}.crt")),
            read(&format!("{name}.key")),
        ));
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(Client::new(channel))
}

/// One ShouldRateLimit over a fresh TLS connection: its overall code, or why it failed.
pub async fn check_over_tls(
    addr: SocketAddr,
    certs: &Certificates,
    identity: Option<&str>,
) -> Result<Code, String> {
    let mut client = tls_client(addr, certs, identity)
        .await
        .map_err(|error| format!("{error:?}"))?;
    // A user of its own per call, so that the limit never answers for the connection.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let user = format!("tls-{}", CALLS.fetch_add(1, Ordering::Relaxed));
    let request = common::request("edge", &[&[("user_id", &user)]]);
    let response = client
        .should_rate_limit(request)
        .await
        .map_err(|status| format!("{status:?}"))?;
    Ok(common::code(&response.into_inner()))
}

/// A raw TLS connection to `addr` trusting `ca`: what the server presents, and a stream to
/// speak over.
pub async fn tls_stream(addr: SocketAddr, ca: &Path) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake succeeds")
}

/// The leaf certificate a new connection to `addr` is served, as DER.
pub async fn served_certificate(addr: SocketAddr, ca: &Path) -> Vec<u8> {
    let stream = tls_stream(addr, ca).await;
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The DER of the first certificate in a PEM file.
pub fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

/// An HTTP/1.1 GET over `stream`, keeping the connection open; the response's status line and
/// body.
pub async fn get(stream: &mut TlsStream<TcpStream>, target: &str) -> (String, String) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(
            read > 0,
            "the connection closed: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_string)
            })
            .and_then(|value| value.trim().parse().ok())
            .expect("a content-length");
        if body.len() >= length {
            return (head.lines().next().unwrap().to_string(), body.to_string());
        }
    }
}

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

//! Clients for a TLS listener: tonic over TLS with the certificates of [`Certificates`], and raw
//! rustls connections that show what certificate a new connection is served.

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

use super::tls::Certificates;
use super::{Client, Code};

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
    let request = super::request("edge", &[&[("user_id", &user)]]);
    let response = client
        .should_rate_limit(request)
        .await
        .map_err(|status| format!("{status:?}"))?;
    Ok(super::code(&response.into_inner()))
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

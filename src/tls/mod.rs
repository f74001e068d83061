//! TLS for the listeners: a server certificate and key from PEM files, optionally client
//! certificates verified against a CA with an allowed SAN list (mTLS), all reread when the files
//! change ([`CertWatcher`]) without touching established connections. rustls with the ring
//! provider; no OpenSSL.

mod link;
mod rotate;
mod verify;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub use link::Link;
pub use rotate::{Apply, CertReload, CertWatcher};
use verify::AllowedSans;

/// One listener's TLS: which files, and what the clients must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM certificate authorities that client certificates must chain to; when set, every
    /// client must present one.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: a client certificate must carry one of these DNS names or IP addresses
    /// among its SANs (none: any certificate from the CA).
    pub client_sans: Vec<String>,
    /// ALPN protocols offered, most preferred first (`h2` for gRPC).
    pub alpn: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {message}", .path.display())]
    Pem { path: PathBuf, message: String },
    #[error("an allowed client SAN {0:?} is neither a DNS name nor an IP address")]
    San(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("{}: cannot verify client certificates with these authorities: {message}", .path.display())]
    ClientCa { path: PathBuf, message: String },
}

/// The bytes of a listener's TLS files, as last read: a reload whose bytes are the same changes
/// nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl TlsOptions {
    fn read(&self) -> Result<Contents, TlsError> {
        Ok(Contents {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
            client_ca: self.client_ca.as_deref().map(read).transpose()?,
        })
    }

    /// Builds the rustls configuration from the files' bytes, checking that the key belongs
    /// to the certificate.
    fn build(&self, contents: &Contents) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match (&self.client_ca, &contents.client_ca) {
            (Some(path), Some(pem)) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(path, pem)? {
                    roots.add(cert).map_err(|error| TlsError::ClientCa {
                        path: path.clone(),
                        message: error.to_string(),
                    })?;
                }
                let chain = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|error| TlsError::ClientCa {
                        path: path.clone(),
                        message: error.to_string(),
                    })?;
                let sans = self
                    .client_sans
                    .iter()
                    .map(|san| {
                        ServerName::try_from(san.as_str())
                            .map(|name| name.to_owned())
                            .map_err(|_| TlsError::San(san.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                builder.with_client_cert_verifier(AllowedSans::wrap(chain, sans))
            }
            _ => builder.with_no_client_auth(),
        };
        let chain = certificates(&self.cert, &contents.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|error| TlsError::Pem {
            path: self.key.clone(),
            message: format!("no private key: {error}"),
        })?;
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |message: String| TlsError::Pem {
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("bad certificate: {error}")))?;
    if chain.is_empty() {
        return Err(invalid("no certificate in the file".into()));
    }
    Ok(chain)
}

/// A listener's TLS configuration in force; a rotation swaps it, and each new connection's
/// handshake uses the one in force when it began.
pub struct ServerTls {
    options: TlsOptions,
    config: ArcSwap<ServerConfig>,
}

impl ServerTls {
    /// Reads and checks the files: a listener never starts with a certificate it cannot serve.
    pub fn load(options: TlsOptions) -> Result<ServerTls, TlsError> {
        let config = options.build(&options.read()?)?;
        Ok(ServerTls {
            options,
            config: ArcSwap::new(config),
        })
    }

    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    /// The server side of a handshake on `stream`, given up after `timeout`.
    pub async fn handshake(&self, stream: TcpStream, timeout: Duration) -> io::Result<Link> {
        let acceptor = TlsAcceptor::from(self.config.load_full());
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(tls) => Ok(Link::Tls(Box::new(tls?))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no TLS handshake within the first-bytes timeout",
            )),
        }
    }

    fn replace(&self, config: Arc<ServerConfig>) {
        self.config.store(config);
    }
}

/// `stream` as a listener serves it: through a TLS handshake when `tls` is set.
pub async fn accept(
    tls: Option<&ServerTls>,
    stream: TcpStream,
    timeout: Duration,
) -> io::Result<Link> {
    match tls {
        Some(tls) => tls.handshake(stream, timeout).await,
        None => Ok(Link::Plain(stream)),
    }
}

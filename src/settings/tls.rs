//! Flags for TLS on the gRPC and HTTP listeners. A listener serves TLS when it is given a
//! certificate; the files are reread when they change (cert-manager, Kubernetes Secrets).

use std::path::PathBuf;

use clap::Args;

#[derive(Clone, Debug, Default, Args)]
pub struct TlsSettings {
    /// Serve gRPC over TLS with this PEM certificate chain (leaf first); needs
    /// `--grpc-tls-key`. Reread when it changes: new connections get the new certificate,
    /// established ones keep theirs, and a certificate that cannot be served is refused
    /// (the previous one stays; see `/health`).
    #[arg(long, env = "RATELIMITER_GRPC_TLS_CERT")]
    pub grpc_tls_cert: Option<PathBuf>,

    /// PEM private key of `--grpc-tls-cert`.
    #[arg(long, env = "RATELIMITER_GRPC_TLS_KEY")]
    pub grpc_tls_key: Option<PathBuf>,

    /// Require gRPC clients to present a certificate signed by one of these PEM certificate
    /// authorities (mutual TLS).
    #[arg(long, env = "RATELIMITER_GRPC_TLS_CLIENT_CA")]
    pub grpc_tls_client_ca: Option<PathBuf>,

    /// With `--grpc-tls-client-ca`: DNS names or IP addresses of which a client certificate
    /// must carry one among its SANs (comma-separated; default: any certificate from the CA).
    #[arg(long, env = "RATELIMITER_GRPC_TLS_CLIENT_SAN", value_delimiter = ',')]
    pub grpc_tls_client_san: Vec<String>,

    /// Serve the HTTP API over TLS with this PEM certificate chain; needs `--http-tls-key`.
    /// Reread when it changes, like `--grpc-tls-cert`.
    #[arg(long, env = "RATELIMITER_HTTP_TLS_CERT")]
    pub http_tls_cert: Option<PathBuf>,

    /// PEM private key of `--http-tls-cert`.
    #[arg(long, env = "RATELIMITER_HTTP_TLS_KEY")]
    pub http_tls_key: Option<PathBuf>,

    /// Require HTTP clients to present a certificate signed by one of these PEM certificate
    /// authorities (mutual TLS).
    #[arg(long, env = "RATELIMITER_HTTP_TLS_CLIENT_CA")]
    pub http_tls_client_ca: Option<PathBuf>,

    /// With `--http-tls-client-ca`: DNS names or IP addresses of which a client certificate
    /// must carry one among its SANs (comma-separated).
    #[arg(long, env = "RATELIMITER_HTTP_TLS_CLIENT_SAN", value_delimiter = ',')]
    pub http_tls_client_san: Vec<String>,
}

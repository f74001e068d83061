//! The listeners' TLS: loaded at startup (a listener never starts with a certificate it cannot
//! serve), then rotated by a [`CertWatcher`] per listener whose every outcome is logged, counted
//! (`ratelimiter_tls_certificate_loads_total`) and shown in `/health`.

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::tls::{Apply, CertReload, CertWatcher, ServerTls, TlsError, TlsOptions};

/// Each listener's TLS, when it has one.
#[derive(Default)]
pub struct ListenerTls {
    pub grpc: Option<Arc<ServerTls>>,
    pub http: Option<Arc<ServerTls>>,
}

/// A listener whose certificate cannot be served, and why.
pub type Refused = (&'static str, TlsError);

/// Loads the gRPC and the HTTP listener's certificates (each `None`: plain TCP) and starts
/// watching them until `background` is cancelled.
pub fn start(
    (grpc, http): (Option<TlsOptions>, Option<TlsOptions>),
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
    background: &CancellationToken,
) -> Result<ListenerTls, Refused> {
    let load = |listener: &'static str,
                options: Option<TlsOptions>|
     -> Result<Option<Arc<ServerTls>>, Refused> {
        let Some(options) = options else {
            return Ok(None);
        };
        let tls = ServerTls::load(options)
            .map(Arc::new)
            .map_err(|error| (listener, error))?;
        health.certificate_loaded(listener, SystemTime::now());
        metrics.certificate_loaded(listener, true);
        let apply = reporter(listener, health.clone(), metrics.clone());
        tokio::spawn(CertWatcher::start(tls.clone(), apply).run(background.clone()));
        tracing::info!(listener, "serving TLS");
        Ok(Some(tls))
    };
    Ok(ListenerTls {
        grpc: load("grpc", grpc)?,
        http: load("http", http)?,
    })
}

/// What happens to each rotation outcome of `listener`'s certificate.
fn reporter(listener: &'static str, health: Arc<Health>, metrics: Arc<Metrics>) -> Apply {
    Box::new(move |outcome| {
        let now = SystemTime::now();
        match outcome {
            CertReload::Loaded => {
                tracing::info!(listener, "new TLS certificate in use for new connections");
                health.certificate_loaded(listener, now);
                metrics.certificate_loaded(listener, true);
            }
            CertReload::Rejected(error) => {
                tracing::error!(listener, %error, "new TLS certificate refused; the previous one stays in use");
                health.certificate_failed(listener, error.to_string(), now);
                metrics.certificate_loaded(listener, false);
            }
        }
    })
}

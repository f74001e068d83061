//! Client certificates for mTLS: the chain is verified against the CA by rustls' WebPKI
//! verifier, then the leaf must carry one of the allowed SANs (a DNS name, wildcards in the
//! certificate included, or an IP address), as the Go service's `GRPC_CLIENT_TLS_SAN` asks.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::verify_server_name;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// The CA's verifier, plus the SAN check.
#[derive(Debug)]
pub struct AllowedSans {
    chain: Arc<dyn ClientCertVerifier>,
    /// Empty: any certificate the CA signed.
    names: Vec<ServerName<'static>>,
}

impl AllowedSans {
    pub fn wrap(
        chain: Arc<dyn ClientCertVerifier>,
        names: Vec<ServerName<'static>>,
    ) -> Arc<dyn ClientCertVerifier> {
        if names.is_empty() {
            return chain;
        }
        Arc::new(AllowedSans { chain, names })
    }
}

impl ClientCertVerifier for AllowedSans {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)?;
        let leaf = ParsedCertificate::try_from(end_entity)?;
        if self
            .names
            .iter()
            .any(|name| verify_server_name(&leaf, name).is_ok())
        {
            Ok(verified)
        } else {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

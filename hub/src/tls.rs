//! # The sync port's mutual TLS, with every refused certificate audited
//!
//! tonic's own TLS hides the client-certificate check: a certificate from
//! another CA, or an expired one, failed the handshake and left no trace.
//! Here the hub runs the handshake itself (rustls, TLS 1.3, client
//! certificate required) with the standard verifier wrapped in
//! [`AuditingVerifier`], which logs and audits each refusal under the name
//! the certificate claims (its CN) or as "unattributed", then hands the
//! finished connections to tonic ([`incoming`]).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;

use crate::audit::{UNATTRIBUTED, audit_event};

/// A handshake that has not finished in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client certificate was refused, in words an administrator reads.
pub fn refusal_reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired / chứng chỉ đã hết hạn".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet (check the clocks) / chứng chỉ chưa có hiệu lực".into()
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "certificate not issued by this hub's CA / chứng chỉ không do CA của máy chủ tỉnh cấp"
                    .into()
            }
            CertificateError::BadEncoding => {
                "certificate damaged (not readable) / chứng chỉ bị hỏng".into()
            }
            other => format!("certificate refused: {other:?} / chứng chỉ bị từ chối"),
        },
        other => format!("certificate refused: {other} / chứng chỉ bị từ chối"),
    }
}

/// The standard client-certificate check, plus a log line and an audit
/// entry for every certificate it refuses.
#[derive(Debug)]
pub struct AuditingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    audit_dir: PathBuf,
}

impl AuditingVerifier {
    fn refused(&self, cert: &CertificateDer<'_>, e: &rustls::Error) {
        let claimed = htx_core::pki::common_name(cert.as_ref());
        let node = claimed.as_deref().unwrap_or(UNATTRIBUTED);
        let reason = refusal_reason(e);
        tracing::warn!(node, "refused in the TLS handshake: {reason}");
        let details = serde_json::json!({
            "reason": reason,
            "stage": "tls handshake",
            // The CN is what the certificate claims, not a verified name.
            "attributed_by": if claimed.is_some() { "certificate CN (unverified)" } else { "nothing readable" },
            "fingerprint": htx_core::pki::fingerprint(cert.as_ref()),
        });
        if let Err(e) = audit_event(&self.audit_dir, "refused", node, details) {
            tracing::error!("cannot write the audit log: {e}");
        }
    }
}

impl ClientCertVerifier for AuditingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| self.refused(end_entity, e))
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The sync port's TLS configuration: the hub's certificate, client
/// certificates from the hub's CA required, refusals audited in `audit_dir`.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    audit_dir: PathBuf,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca?)?;
    }
    let inner =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let verifier = Arc::new(AuditingVerifier { inner, audit_dir });
    let certs =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Connections accepted on `listener` whose TLS handshake succeeded, for
/// tonic's `serve_with_incoming*`. Each handshake runs in its own task, so a
/// slow or silent client holds up no one. Dropping the stream (the server
/// stopping) closes the listening socket at once and abandons handshakes
/// in flight.
pub struct Incoming {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<TlsStream<TcpStream>>>,
}

pub fn incoming(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Incoming {
    Incoming {
        listener,
        acceptor: TlsAcceptor::from(config),
        handshakes: JoinSet::new(),
    }
}

impl Stream for Incoming {
    type Item = Result<TlsStream<TcpStream>, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.listener.poll_accept(cx) {
                Poll::Ready(Ok((tcp, peer))) => {
                    let _ = tcp.set_nodelay(true);
                    let acceptor = this.acceptor.clone();
                    this.handshakes.spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => Some(tls),
                            // Certificate refusals were audited by the verifier.
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                None
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                None
                            }
                        }
                    });
                }
                // Out of file descriptors and the like: tonic logs it and
                // asks again.
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => break,
            }
        }
        loop {
            match this.handshakes.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Some(tls)))) => return Poll::Ready(Some(Ok(tls))),
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn the_common_name_of_a_certificate_is_read() {
        let ca = htx_core::pki::new_ca("Test CA", 1).unwrap();
        let leaf = htx_core::pki::issue(
            "Test CA",
            &ca.key_pem,
            "node-356",
            htx_core::pki::Role::Client("2023/356"),
            time::Duration::days(1),
        )
        .unwrap();
        let cn = htx_core::pki::common_name;
        assert_eq!(cn(&der(&leaf.cert_pem)).as_deref(), Some("node-356"));
        assert_eq!(cn(&der(&ca.cert_pem)).as_deref(), Some("Test CA"));
        assert_eq!(cn(b"not a certificate"), None);
    }
}

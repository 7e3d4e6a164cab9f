//! # HTTPS for the web app on the office LAN
//!
//! On loopback the app may speak plain HTTP (nothing leaves the machine).
//! On the LAN, passwords and session cookies must not travel in clear: the
//! app serves HTTPS with the identity the hub issued for the office's LAN
//! names (`htx-hub web-cert`, installed here by `htx-node web-cert` as
//! `DIR/web-tls.json`), from the office web CA that the office's browsers
//! install (docs/office-https.md). Without one, `htx-node run` refuses a
//! LAN address unless the administrator chose `web_plain_http = true`.
//!
//! [`Listener`] hands axum connections whose TLS handshake finished; each
//! handshake runs in its own task, so a silent client holds up no one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use htx_core::pki::WebIdentity;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where the installed identity is kept (private: it holds a key).
pub fn identity_path(dir: &Path) -> PathBuf {
    dir.join("web-tls.json")
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads an identity file and checks it: readable, issued for this node,
/// and a certificate that goes with its key.
pub fn read_identity(path: &Path, node: &str) -> anyhow::Result<WebIdentity> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e} / không đọc được tệp", path.display()))?;
    let id: WebIdentity = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a web certificate file from `htx-hub web-cert`: {e} / không phải tệp chứng chỉ web",
            path.display()
        )
    })?;
    anyhow::ensure!(
        id.node == node,
        "this web certificate is for node {:?}, not {node:?} / chứng chỉ web này cấp cho nút khác",
        id.node
    );
    server_config(&id)?;
    Ok(id)
}

/// The TLS server configuration of an identity (TLS 1.2 and 1.3: office
/// browsers on older Windows still speak 1.2 only).
pub fn server_config(id: &WebIdentity) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut chain = CertificateDer::pem_slice_iter(id.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("web certificate unreadable: {e} / chứng chỉ web bị hỏng"))?;
    chain.extend(
        CertificateDer::pem_slice_iter(id.ca_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("web CA unreadable: {e} / chứng chỉ CA web bị hỏng"))?,
    );
    let key = PrivateKeyDer::from_pem_slice(id.key.as_bytes())
        .map_err(|e| anyhow::anyhow!("web key unreadable: {e} / khóa web bị hỏng"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            anyhow::anyhow!(
                "the web certificate does not match its key: {e} / chứng chỉ và khóa web không khớp"
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connections on `listener` whose TLS handshake finished, for `axum::serve`.
pub struct Listener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl Listener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                // The server stopped (the receiver is gone): close the socket.
                let accepted = tokio::select! {
                    _ = tx.closed() => break,
                    a = listener.accept() => a,
                };
                let (tcp, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("web app: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "web app: TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "web app: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Listener { rx, local })
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Whether `addr` (`host:port`) listens on loopback only.
pub fn is_loopback(addr: &str) -> bool {
    htx_core::settings::check_loopback("web_listen", addr).is_ok()
}

//! # The node's side of a sync session, and the loop that keeps it going
//!
//! [`sync_once`] connects to the hub over mutual TLS and runs one session
//! (see `proto/htx/v1/sync.proto`); [`run_loop`] repeats it while the link
//! is up and reconnects by itself with exponential back-off and jitter when
//! it is not. What to send is computed by `htx_core::sync`.

use std::time::Duration;

use automerge::ChangeHash;
use htx_core::sync;
use htx_core::wire;
use htx_proto::v1::{self as pb, hub_message::Body as Hb, node_message::Body as Nb};
use prost::Message;
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::node::{Node, NodeError, now_rfc3339};
use crate::session as steps;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot reach the hub at {url}: {reason} / không kết nối được máy chủ tỉnh")]
    Unreachable { url: String, reason: String },
    #[error(
        "the server at {url} is not the hub this node was enrolled with (its certificate is not signed by the CA in the bundle) / máy chủ không đúng"
    )]
    WrongHub { url: String },
    #[error(
        "this node's certificate expired at {expires_at}: ask the hub's administrator for a new bundle (`htx-hub enroll`) and set the node up with it (`htx-node init DIR --bundle FILE`) / chứng chỉ của nút đã hết hạn lúc {expires_at}, hãy xin tệp cấu hình mới"
    )]
    Expired { expires_at: String },
    /// The bundle's own certificate, key or CA cannot be used: nothing to
    /// do with the network.
    #[error("{0}")]
    BadCertificate(String),
    #[error("the hub refused this node: {0} / máy chủ tỉnh từ chối nút này")]
    Refused(String),
    #[error("sync session broken: {0} / phiên đồng bộ bị gián đoạn")]
    Broken(String),
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl From<htx_core::replica::ReplicaError> for SyncError {
    fn from(e: htx_core::replica::ReplicaError) -> Self {
        SyncError::Node(e.into())
    }
}

/// What one session did, as `sync --once` prints it.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq)]
pub struct SessionReport {
    pub in_sync: bool,
    pub round_trips: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub changes_sent: u32,
    pub changes_received: u32,
    pub batches_sent: u32,
    pub batches_received: u32,
}

impl From<SessionReport> for pb::SyncReport {
    fn from(r: SessionReport) -> Self {
        pb::SyncReport {
            in_sync: r.in_sync,
            round_trips: r.round_trips,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
            changes_sent: r.changes_sent,
            changes_received: r.changes_received,
            batches_sent: r.batches_sent,
            batches_received: r.batches_received,
        }
    }
}

impl From<pb::SyncReport> for SessionReport {
    fn from(r: pb::SyncReport) -> Self {
        SessionReport {
            in_sync: r.in_sync,
            round_trips: r.round_trips,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
            changes_sent: r.changes_sent,
            changes_received: r.changes_received,
            batches_sent: r.batches_sent,
            batches_received: r.batches_received,
        }
    }
}

fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// Checks the node's own certificate against its bundle before connecting:
/// the hub would refuse a damaged, expired or foreign certificate in the
/// TLS handshake, and the node would only see "transport error" or "the
/// operation was cancelled". The bundle knows better, so it says so.
pub fn check_own_certificate(node: &Node) -> Result<(), SyncError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
    use rustls::{CertificateError, Error as TlsError};

    let b = node.bundle();
    let creds = node.credentials();
    let damaged = |what: &str, vi: &str, e: &dyn std::fmt::Display| {
        SyncError::BadCertificate(format!(
            "the {what} in this node's bundle is damaged ({e}): ask the hub's administrator for a new bundle / {vi} trong tệp cấu hình nút bị hỏng"
        ))
    };
    let cert = CertificateDer::from_pem_slice(creds.cert.as_bytes())
        .map_err(|e| damaged("certificate", "chứng chỉ", &e))?;
    PrivateKeyDer::from_pem_slice(creds.key.as_bytes())
        .map_err(|e| damaged("private key", "khóa bí mật", &e))?;
    let ca = CertificateDer::from_pem_slice(b.ca_cert.as_bytes())
        .map_err(|e| damaged("CA certificate", "chứng chỉ CA", &e))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| damaged("CA certificate", "chứng chỉ CA", &e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .map_err(|e| damaged("CA certificate", "chứng chỉ CA", &e))?;
    match verifier.verify_client_cert(&cert, &[], UnixTime::now()) {
        Ok(_) => Ok(()),
        Err(TlsError::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => Err(SyncError::Expired {
            expires_at: creds.expires_at,
        }),
        Err(TlsError::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => Err(SyncError::BadCertificate(format!(
            "this node's certificate is valid only from {}: check this computer's date and time / chứng chỉ của nút chưa có hiệu lực, hãy kiểm tra ngày giờ của máy",
            creds.issued_at
        ))),
        Err(TlsError::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        )) => Err(SyncError::BadCertificate(
            "this node's certificate was not issued by the CA in this node's bundle (the bundle mixes two hubs): ask the hub's administrator for a new bundle / chứng chỉ của nút không do CA trong tệp cấu hình cấp".into(),
        )),
        Err(TlsError::InvalidCertificate(CertificateError::BadEncoding)) => Err(damaged(
            "certificate",
            "chứng chỉ",
            &"not a readable certificate",
        )),
        Err(e) => Err(damaged("certificate", "chứng chỉ", &e)),
    }
}

/// Opens a mutual-TLS channel to the hub named in the bundle.
pub async fn connect(node: &Node) -> Result<Channel, SyncError> {
    check_own_certificate(node)?;
    let b = node.bundle();
    let creds = node.credentials();
    let url = node.hub_url().to_owned();
    let unreachable = |reason: String| SyncError::Unreachable {
        url: url.clone(),
        reason,
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&b.ca_cert))
        .identity(Identity::from_pem(&creds.cert, &creds.key))
        .domain_name(b.hub_name.clone());
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| unreachable(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(Duration::from_secs(node.config().timeout_secs))
        .tcp_nodelay(true)
        // Pings on the kept connection, also while idle: a dead link is
        // noticed within 5 s + the keep-alive time-out, not at the next
        // session's. A ping (or its answer) can wait behind one batch of
        // queued bytes, seconds on a slow link: a fixed 5 s time-out cut
        // every large session at 50 kbit/s (found by the lossy-link bench),
        // so it grows with the batch as the waits for replies do.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .keep_alive_timeout(keep_alive_timeout(node.config()));
    endpoint.connect().await.map_err(|e| {
        let reason = describe(&e);
        if reason.contains("UnknownIssuer")
            || reason.contains("BadSignature")
            || reason.contains("NotValidForName")
        {
            SyncError::WrongHub { url: url.clone() }
        } else {
            unreachable(reason)
        }
    })
}

/// How long a ping may wait for its answer: 20 s, plus one batch of
/// `max_batch_bytes` at `min_link_bytes_per_sec` (the bytes a ping can
/// queue behind). 62 s by default; 20.3 s on a link declared at 1 MB/s.
pub fn keep_alive_timeout(cfg: &crate::config::NodeConfig) -> Duration {
    steps::reply_wait(
        KEEP_ALIVE_SECS,
        cfg.min_link_bytes_per_sec,
        cfg.max_batch_bytes as u64,
    )
}

const KEEP_ALIVE_SECS: u64 = 20;

/// The stream of one session, counting what crosses it.
struct Conn<'a> {
    tx: Option<mpsc::Sender<pb::NodeMessage>>,
    rx: tonic::Streaming<pb::HubMessage>,
    report: &'a mut SessionReport,
    /// `timeout_secs` and `min_link_bytes_per_sec`: see [`steps::reply_wait`].
    timeout_secs: u64,
    min_link_bytes_per_sec: u64,
    /// Bytes sent since the hub's last message: they cross the link while
    /// the node waits for the next one.
    unanswered: u64,
}

const FRAME: u64 = 5; // gRPC length-prefix per message

impl Conn<'_> {
    async fn send(&mut self, body: Nb) -> Result<(), SyncError> {
        let msg = pb::NodeMessage { body: Some(body) };
        let bytes = msg.encoded_len() as u64 + FRAME;
        self.report.bytes_sent += bytes;
        self.unanswered += bytes;
        let tx = self.tx.as_ref().expect("open until the session ends");
        tx.send(msg)
            .await
            .map_err(|_| SyncError::Broken("the hub closed the stream".into()))
    }

    /// How long to wait for the hub's next message, which may hold up to
    /// `incoming` bytes.
    fn wait(&self, incoming: u64) -> Duration {
        steps::reply_wait(
            self.timeout_secs,
            self.min_link_bytes_per_sec,
            self.unanswered.saturating_add(incoming),
        )
    }

    /// The hub's next message, a short one (a welcome, an ack).
    async fn recv(&mut self) -> Result<Hb, SyncError> {
        self.recv_up_to(0).await
    }

    /// The hub's next message, which may hold up to `incoming` bytes.
    async fn recv_up_to(&mut self, incoming: u64) -> Result<Hb, SyncError> {
        let msg = tokio::time::timeout(self.wait(incoming), self.rx.message())
            .await
            .map_err(|_| SyncError::Broken("the hub did not answer in time".into()))?
            .map_err(status_error)?
            .ok_or_else(|| SyncError::Broken("the hub ended the session early".into()))?;
        self.unanswered = 0;
        self.report.bytes_received += msg.encoded_len() as u64 + FRAME;
        msg.body
            .ok_or_else(|| SyncError::Broken("empty message from the hub".into()))
    }

    /// Half-closes the stream and waits for the hub to end it: only then has
    /// the hub read our last ack and recorded the session. (Dropping the
    /// stream at once can cancel it before that ack leaves.)
    async fn finish(&mut self) -> Result<(), SyncError> {
        self.tx = None;
        match tokio::time::timeout(self.wait(0), self.rx.message()).await {
            Err(_) => Err(SyncError::Broken(
                "the hub did not end the session in time".into(),
            )),
            Ok(Err(status)) => Err(status_error(status)),
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(m))) => Err(SyncError::Broken(format!(
                "unexpected message after the end of the session: {m:?}"
            ))),
        }
    }
}

fn status_error(s: tonic::Status) -> SyncError {
    // A client certificate the hub refuses fails the first call, not the
    // connect (TLS 1.3 checks it after the client's last handshake flight):
    // the reason is only in the TLS alert, deep in the error's sources.
    let chain = describe(&s);
    for (alert, why) in [
        ("CertificateExpired", "its certificate expired"),
        ("UnknownCA", "its certificate is not from the hub's CA"),
        (
            "BadCertificate",
            "its certificate is damaged or not from the hub's CA",
        ),
        ("CertificateRequired", "it presented no certificate"),
        ("DecryptError", "its certificate and key do not match"),
    ] {
        if chain.contains(alert) {
            return SyncError::Refused(format!(
                "the hub refused this node's certificate in the TLS handshake: {why} ({alert}) / máy chủ tỉnh từ chối chứng chỉ của nút"
            ));
        }
    }
    match s.code() {
        tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated
        | tonic::Code::InvalidArgument => SyncError::Refused(s.message().to_owned()),
        tonic::Code::Unavailable => SyncError::Unreachable {
            url: String::new(),
            reason: s.message().to_owned(),
        },
        _ => SyncError::Broken(format!("{}: {}", s.code(), s.message())),
    }
}

/// A connection to the hub kept between sessions, and the hub incarnation
/// its last session met: on it a session opens with no handshake, and the
/// hello already carries the node's new changes.
pub struct Link {
    channel: Channel,
    hub_incarnation: Vec<u8>,
}

impl Link {
    pub async fn connect(node: &Node) -> Result<Link, SyncError> {
        Ok(Link {
            channel: connect(node).await?,
            hub_incarnation: Vec::new(),
        })
    }
}

/// Runs one session on `channel`; `report` holds what was done even if the
/// session breaks part-way.
pub async fn session(
    node: &Node,
    channel: Channel,
    report: &mut SessionReport,
) -> Result<(), SyncError> {
    let mut link = Link {
        channel,
        hub_incarnation: Vec::new(),
    };
    session_on(node, &mut link, report).await
}

/// The node's changes beyond what the hub (in incarnation `hub_inc`) was
/// known to hold, if they fit in one batch: sent with the hello, so that on
/// a warm link an edit reaches the hub in one round trip.
fn eager_changes(node: &Node, hub_inc: &[u8]) -> Result<sync::Batch, SyncError> {
    let max = node.config().max_batch_bytes;
    Ok(steps::eager_changes(&mut node.replica(), hub_inc, max)?)
}

/// Runs one session on `link`.
pub async fn session_on(
    node: &Node,
    link: &mut Link,
    report: &mut SessionReport,
) -> Result<(), SyncError> {
    let _one_at_a_time = node.session_lock().lock().await;
    let (tx, rx) = mpsc::channel(4);
    let (at_hello, digest) = snapshot(node);
    let eager = eager_changes(node, &link.hub_incarnation)?;
    let eager_count = sync::batch_size(&eager).0;
    let hello = pb::Hello {
        protocol: sync::PROTOCOL,
        digest: digest.to_vec(),
        documents: at_hello.len() as u32,
        incarnation: node.replica().incarnation(),
        changes: wire::batch_to_wire(eager),
        software: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let msg = pb::NodeMessage {
        body: Some(Nb::Hello(hello)),
    };
    let hello_bytes = msg.encoded_len() as u64 + FRAME;
    report.bytes_sent += hello_bytes;
    tx.send(msg).await.expect("receiver alive");
    // Batches are gzip-compressed on the wire: Automerge changes sent one by
    // one repeat actor ids and keys that compress well (see BENCHMARKS.md).
    let mut client = pb::sync_client::SyncClient::new(link.channel.clone())
        .max_decoding_message_size(64 << 20)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .map_err(status_error)?
        .into_inner();
    let cfg = node.config();
    let mut conn = Conn {
        tx: Some(tx),
        rx: inbound,
        report,
        timeout_secs: cfg.timeout_secs,
        min_link_bytes_per_sec: cfg.min_link_bytes_per_sec,
        // The hello, with the changes it may carry, crosses the link first.
        unanswered: hello_bytes,
    };

    let welcome = match conn.recv().await? {
        Hb::Welcome(w) => w,
        other => {
            return Err(SyncError::Broken(format!(
                "expected a welcome, got {other:?}"
            )));
        }
    };
    conn.report.round_trips = 1;
    // Beliefs about the hub count only if this incarnation of it confirmed them.
    let hub_inc = welcome.incarnation.clone();
    link.hub_incarnation = hub_inc.clone();
    if eager_count > 0 {
        conn.report.changes_sent += eager_count as u32;
        conn.report.batches_sent += 1;
    }
    if welcome.in_sync {
        conn.finish().await?;
        conn.report.in_sync = true;
        mark_shared(node, &at_hello, &hub_inc)?;
        return Ok(());
    }
    let hub_heads = steps::welcome_heads(&welcome);

    // Upload what the hub lacks, one acknowledged batch at a time.
    let max = node.config().max_batch_bytes;
    let batches = steps::plan_upload(&mut node.replica(), &hub_heads, &hub_inc, max)?;
    let (unconfirmed, mut sent, mut new_at_hub) = (batches.unconfirmed, 0, 0);
    for (i, batch) in batches.batches.into_iter().enumerate() {
        let seq = i as u64 + 1;
        let (n, _) = sync::batch_size(&batch);
        let docs = wire::batch_to_wire(batch);
        conn.send(Nb::Changes(pb::ChangeBatch {
            seq,
            docs,
            ..Default::default()
        }))
        .await?;
        let ack = match conn.recv().await? {
            Hb::Ack(a) if a.seq == seq => a,
            other => {
                return Err(SyncError::Broken(format!(
                    "expected ack {seq}, got {other:?}"
                )));
            }
        };
        steps::record_ack(&mut node.replica(), &hub_inc, &ack.docs)?;
        sent += n;
        new_at_hub += ack.new_changes as usize;
        conn.report.changes_sent += n as u32;
        conn.report.batches_sent += 1;
        conn.report.round_trips += 1;
    }

    // Report our heads of every document, now that the upload is done: the
    // hub sends what lies beyond them, and records them as held by both (else
    // it would count what we just uploaded as not yet at this node).
    let want = {
        let mut r = node.replica();
        if steps::refresh_reference(&mut r, &hub_heads)? {
            tracing::info!(
                "the hub's reference document differs from this node's copy: downloading it whole"
            );
        }
        steps::want(&r, &hub_heads)
    };
    let lost = sync::lost_by_peer(sent, unconfirmed, new_at_hub);
    if lost > 0 {
        note_recovery(node, lost)?;
    }
    conn.send(Nb::Want(pb::Want {
        docs: want,
        resent_lost: lost as u32,
    }))
    .await?;
    conn.report.round_trips += 1;
    // A batch from the hub is taken to be at most this node's
    // max_batch_bytes (the hub's default limit is the same).
    let incoming = cfg.max_batch_bytes as u64;
    let hub_digest = loop {
        let batch = match conn.recv_up_to(incoming).await? {
            Hb::Changes(b) => b,
            other => {
                return Err(SyncError::Broken(format!(
                    "expected changes, got {other:?}"
                )));
            }
        };
        if !batch.docs.is_empty() {
            let n: usize = batch.docs.iter().map(|d| d.changes.len()).sum();
            let (_, ack) = steps::apply_batch(&mut node.replica(), batch.seq, batch.docs)?;
            conn.report.changes_received += n as u32;
            conn.report.batches_received += 1;
            conn.send(Nb::Ack(ack)).await?;
        }
        if batch.r#final {
            break batch.digest;
        }
        conn.report.round_trips += 1;
    };
    conn.finish().await?;
    let (now, ours) = snapshot(node);
    conn.report.in_sync = ours.as_slice() == hub_digest;
    if conn.report.in_sync {
        mark_shared(node, &now, &hub_inc)?;
    }
    Ok(())
}

/// The hub had lost `lost` changes after acknowledging them (restored from
/// a backup, or its store replaced): they were just sent again. Logged and
/// kept in the node's status, so that an administrator sees it happened.
fn note_recovery(node: &Node, lost: usize) -> Result<(), SyncError> {
    tracing::warn!(
        lost,
        "the hub had lost changes it had acknowledged (restored from a backup?); sent them again"
    );
    let mut status = node.sync_status();
    status.recovered_changes += lost as u64;
    status.last_recovery = format!(
        "{}: the hub had lost {lost} change(s) it had acknowledged (restored from a backup?); they were sent again / máy chủ tỉnh đã mất {lost} thay đổi (khôi phục từ bản sao lưu?); đã gửi lại",
        now_rfc3339()
    );
    node.put_sync_status(&status)?;
    Ok(())
}

/// Every document's heads, and their digest, read at one instant.
fn snapshot(node: &Node) -> (Vec<(String, Vec<ChangeHash>)>, [u8; 32]) {
    steps::snapshot(&node.replica())
}

/// After a session that ended with equal digests, the hub (in its
/// incarnation `hub_inc`) holds exactly `heads`: what this node held when
/// its digest was taken. Not what it holds now: a write during the session
/// is not at the hub yet.
fn mark_shared(
    node: &Node,
    heads: &[(String, Vec<ChangeHash>)],
    hub_inc: &[u8],
) -> Result<(), SyncError> {
    Ok(steps::mark_shared(&node.replica(), heads, hub_inc)?)
}

/// Connects and runs sessions until both sides hold the same data (at most
/// a few, in case other nodes keep changing the hub meanwhile), recording
/// the outcome in the node's sync status.
pub async fn sync_once(node: &Node) -> Result<SessionReport, SyncError> {
    sync_with(node, &mut None).await
}

/// As [`sync_once`], on `link` when it is open (else it is opened and
/// kept there); a link that failed is dropped, to be opened afresh.
pub async fn sync_with(node: &Node, link: &mut Option<Link>) -> Result<SessionReport, SyncError> {
    let attempt = now_rfc3339();
    let started = std::time::Instant::now();
    let mut total = SessionReport::default();
    let result = async {
        if link.is_none() {
            *link = Some(Link::connect(node).await?);
        }
        let open = link.as_mut().expect("just opened");
        if node.needs_renewal() {
            match renew(node, open.channel.clone()).await {
                Ok(()) => tracing::info!(
                    "certificate renewed until {}",
                    node.credentials().expires_at
                ),
                // The current certificate still works: try again next session.
                Err(e) => tracing::warn!("certificate renewal failed: {e}"),
            }
        }
        for _ in 0..3 {
            let mut report = SessionReport::default();
            let res = session_on(node, open, &mut report).await;
            total.round_trips += report.round_trips;
            total.bytes_sent += report.bytes_sent;
            total.bytes_received += report.bytes_received;
            total.changes_sent += report.changes_sent;
            total.changes_received += report.changes_received;
            total.batches_sent += report.batches_sent;
            total.batches_received += report.batches_received;
            total.in_sync = report.in_sync;
            res?;
            if report.in_sync {
                break;
            }
        }
        Ok::<_, SyncError>(())
    }
    .await;
    if result.is_err() {
        *link = None;
    }
    // Read now: the session may have noted a recovery meanwhile.
    let mut status = node.sync_status();
    status.last_attempt = attempt;
    status.bytes_sent += total.bytes_sent;
    status.bytes_received += total.bytes_received;
    match &result {
        Ok(()) => {
            status.last_success = status.last_attempt.clone();
            status.last_error.clear();
            status.refused_records.clear();
        }
        Err(e) => {
            status.last_error = e.to_string();
            if let SyncError::Refused(reason) = e {
                status.refused_records = record_ids_in(reason);
            }
        }
    }
    node.put_sync_status(&status)?;
    let error = result.as_ref().err().map(|e| e.to_string());
    crate::telemetry::session_ended(
        &node.bundle().node,
        &total,
        error.as_deref(),
        started.elapsed(),
    );
    result.map(|()| total)
}

/// Renews the node's certificate over its authenticated connection: a new
/// key made here, only its public half sent.
pub async fn renew(node: &Node, channel: Channel) -> Result<(), SyncError> {
    let (key, public) = htx_core::pki::new_node_key()
        .map_err(|e| SyncError::Broken(format!("cannot make a key: {e}")))?;
    let reply = pb::enrolment_client::EnrolmentClient::new(channel)
        .renew(pb::RenewRequest { public_key: public })
        .await
        .map_err(status_error)?
        .into_inner();
    node.store_renewal(crate::node::Credentials {
        cert: reply.cert,
        key,
        issued_at: reply.issued_at,
        expires_at: reply.expires_at,
    })?;
    Ok(())
}

/// The record ids (UUIDs) a refusal names.
fn record_ids_in(reason: &str) -> Vec<String> {
    let mut ids: Vec<String> = reason
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .filter(|w| uuid_like(w))
        .map(str::to_owned)
        .collect();
    ids.dedup();
    ids
}

fn uuid_like(w: &str) -> bool {
    w.len() == 36
        && w.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Exponential back-off with full jitter: a random wait in [base/2, base].
pub fn jittered(base: Duration) -> Duration {
    let ms = base.as_millis().max(2) as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

/// Syncs every `sync_interval_secs` while the hub answers, sooner after a
/// local write, and backs off (doubling, with jitter) while it does not.
pub async fn run_loop(node: Node, mut shutdown: watch::Receiver<bool>) {
    let cfg = node.config().clone();
    let min = Duration::from_secs(cfg.retry_min_secs.max(1));
    let max = Duration::from_secs(cfg.retry_max_secs.max(cfg.retry_min_secs.max(1)));
    let mut backoff = min;
    // Kept between sessions: a warm session costs no TCP or TLS handshake.
    let mut link = None;
    loop {
        let wait = match sync_with(&node, &mut link).await {
            Ok(_) => {
                backoff = min;
                Duration::from_secs(cfg.sync_interval_secs)
            }
            Err(e) => {
                tracing::warn!("sync failed: {e}");
                let wait = jittered(backoff);
                backoff = (backoff * 2).min(max);
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = node.wake().notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keep_alive_timeout;
    use crate::config::NodeConfig;
    use std::time::Duration;

    #[test]
    fn a_ping_may_wait_behind_one_batch_at_the_slowest_link() {
        let cfg = NodeConfig::default();
        // 20 s + 256 KiB at 6,250 B/s.
        assert_eq!(keep_alive_timeout(&cfg), Duration::from_millis(61_944));
        let fast = NodeConfig {
            min_link_bytes_per_sec: 1_000_000,
            ..cfg
        };
        assert_eq!(keep_alive_timeout(&fast), Duration::from_millis(20_263));
    }
}

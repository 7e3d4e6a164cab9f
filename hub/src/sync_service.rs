//! # The hub's side of a sync session
//!
//! Identifies the node by its client certificate, then answers the node's
//! messages (see `proto/htx/v1/sync.proto`): a digest check, the hub's heads,
//! acknowledged batches both ways. What to send comes from `htx_core::sync`.

use std::time::Duration;

use htx_core::pki::fingerprint;
use htx_core::replica::{Applied, Replica};
use htx_core::sync;
use htx_core::wire::{self, doc_heads};
use htx_proto::v1::{self as pb, hub_message::Body as Hb, node_message::Body as Nb};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::audit::audit_event;
use crate::home::Enrolment;
use crate::hub::{Hub, NodeStats};
use crate::quarantine;
use crate::session;
use crate::telemetry::{self, Refusal as Refused};
use crate::validate::{self, Checked, Refusal};

pub struct SyncService {
    hub: Hub,
}

impl SyncService {
    pub fn new(hub: Hub) -> Self {
        SyncService { hub }
    }
}

const FRAME: u64 = 5;

/// One node's session: its stream, and what crossed it.
struct Session {
    hub: Hub,
    node: Enrolment,
    /// The certificate the node connected with: checked again on every
    /// message, so a revocation cuts a session already open.
    fingerprint: String,
    rx: Streaming<pb::NodeMessage>,
    tx: mpsc::Sender<Result<pb::HubMessage, Status>>,
    stats: NodeStats,
    idle: Duration,
    /// Documents sent or asked for so far, for `max_docs_per_session`.
    docs: usize,
    /// The node replica's incarnation, from its hello: what the hub believes
    /// the node holds counts only if this incarnation confirmed it.
    incarnation: Vec<u8>,
}

fn revoked(name: &str) -> Status {
    Status::permission_denied(format!(
        "the certificate of node {name} is revoked or not enrolled at this hub / chứng chỉ đã bị thu hồi hoặc chưa được đăng ký"
    ))
}

/// The enrolled node behind a request's client certificate. Every service
/// of the sync port runs this (see `admin::serve`), not only `Sync`.
pub(crate) fn identify<T>(hub: &Hub, req: &Request<T>) -> Result<(Enrolment, String), Status> {
    let certs = req.peer_certs().ok_or_else(|| {
        Status::unauthenticated("a client certificate is required / cần chứng chỉ máy khách")
    })?;
    let leaf = certs.first().ok_or_else(|| {
        Status::unauthenticated("a client certificate is required / cần chứng chỉ máy khách")
    })?;
    let fp = fingerprint(leaf.as_ref());
    match hub.identify(&fp) {
        Some(node) => Ok((node, fp)),
        None => {
            // Name the node when the certificate was enrolled (and revoked
            // since), so `htx-hub audit --node NAME` finds the refusal.
            let (name, reason, why) = match hub.enrolment_by_fingerprint(&fp) {
                Some(e) => (
                    e.name,
                    format!("certificate revoked at {}", e.revoked_at),
                    Refused::Revoked,
                ),
                None => (
                    crate::audit::UNATTRIBUTED.to_owned(),
                    format!("certificate {fp} not enrolled at this hub"),
                    Refused::NotEnrolled,
                ),
            };
            telemetry::refused(why, &name, &reason);
            let details = serde_json::json!({ "reason": reason, "fingerprint": fp });
            if let Err(e) = crate::audit::audit_event(&hub.home().dir, "refused", &name, details) {
                tracing::error!("cannot write the audit log: {e}");
            }
            Err(revoked(&name))
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

impl Session {
    async fn send(&mut self, body: Hb) -> Result<(), Status> {
        let msg = pb::HubMessage { body: Some(body) };
        self.stats.bytes_sent += msg.encoded_len() as u64 + FRAME;
        self.tx
            .send(Ok(msg))
            .await
            .map_err(|_| Status::cancelled("the node went away"))
    }

    /// The next message, or None when the node has half-closed.
    async fn recv(&mut self) -> Result<Option<Nb>, Status> {
        let msg = tokio::time::timeout(self.idle, self.rx.message())
            .await
            .map_err(|_| Status::deadline_exceeded("the node sent nothing for too long"))?
            .inspect_err(|status| {
                // Over-sized or undecodable messages never reach the checks
                // below: log them here.
                if !matches!(status.code(), tonic::Code::Cancelled | tonic::Code::Unknown) {
                    telemetry::refused(Refused::BadMessage, &self.node.name, status.message());
                    let details = serde_json::json!({ "reason": status.message(), "code": status.code().to_string() });
                    if let Err(e) = crate::audit::audit_event(&self.hub.home().dir, "refused", &self.node.name, details) {
                        tracing::error!("cannot write the audit log: {e}");
                    }
                }
            })?;
        if self.hub.is_revoked(&self.fingerprint) {
            telemetry::refused(
                Refused::Revoked,
                &self.node.name,
                "certificate revoked during the session",
            );
            return Err(revoked(&self.node.name));
        }
        Ok(match msg {
            Some(m) => {
                self.stats.bytes_received += m.encoded_len() as u64 + FRAME;
                Some(
                    m.body
                        .ok_or_else(|| Status::invalid_argument("empty message"))?,
                )
            }
            None => None,
        })
    }

    fn check_scope(&self, doc: &str, write: bool) -> Result<(), Status> {
        let allowed = if write {
            Hub::writable(&self.node, doc)
        } else {
            Hub::readable(&self.node, doc)
        };
        if allowed {
            Ok(())
        } else {
            telemetry::refused(
                Refused::Scope,
                &self.node.name,
                &format!("document {doc} outside the node's scope (write: {write})"),
            );
            Err(Status::permission_denied(format!(
                "node {} may not {} document {doc}: it serves {} and below / nút không có quyền với tài liệu này",
                self.node.name,
                if write { "write" } else { "read" },
                self.node.unit
            )))
        }
    }

    /// Runs blocking replica work off the async threads.
    async fn replica<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Replica) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let hub = self.hub.clone();
        tokio::task::spawn_blocking(move || f(&mut hub.replica()))
            .await
            .map_err(internal)?
    }

    async fn run(&mut self) -> Result<(), Status> {
        let hello = match self.recv().await? {
            Some(Nb::Hello(h)) => h,
            _ => return Err(Status::invalid_argument("a session starts with hello")),
        };
        self.stats.protocol = hello.protocol;
        self.stats.software = hello.software.chars().take(32).collect();
        if let Err(why) = sync::check_protocol(hello.protocol) {
            telemetry::refused(Refused::Protocol, &self.node.name, &why);
            return Err(Status::failed_precondition(why));
        }
        self.incarnation = hello.incarnation;
        let (node, inc) = (self.node.clone(), self.incarnation.clone());
        let claimed = self
            .replica(move |r| validate::claim_incarnation(r, &node, &inc).map_err(internal))
            .await?;
        if let Err(refusal) = claimed {
            return Err(self.refuse(refusal, Vec::new()).await);
        }
        // A warm hello carries the node's new changes: merged first, so that
        // the digests can already agree.
        let eager_new = if hello.changes.is_empty() {
            0
        } else {
            self.merge(hello.changes).await?.new
        };
        // The facts about the node's people from records it does not hold,
        // worked out afresh, so that this session brings them.
        let (hub, node) = (self.hub.clone(), self.node.clone());
        match tokio::task::spawn_blocking(move || hub.publish_facts(&node)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(node = %self.node.name, "cannot publish the node's facts: {e:#}")
            }
            Err(e) => {
                tracing::warn!(node = %self.node.name, "cannot publish the node's facts: {e}")
            }
        }
        let node = self.node.clone();
        let session::Welcome {
            digest,
            heads,
            incarnation: hub_inc,
        } = self
            .replica(move |r| Ok(session::welcome(r, &node)))
            .await?;
        if digest.as_slice() == hello.digest {
            self.send(Hb::Welcome(pb::Welcome {
                node: self.node.name.clone(),
                in_sync: true,
                docs: vec![],
                incarnation: hub_inc,
                new_changes: eager_new as u32,
            }))
            .await?;
            let (name, inc) = (self.node.name.clone(), self.incarnation.clone());
            self.replica(move |r| {
                session::confirm_in_sync(r, &name, &inc, &heads).map_err(internal)
            })
            .await?;
            return Ok(());
        }
        let docs = heads.iter().map(|(d, h)| doc_heads(d, h)).collect();
        self.send(Hb::Welcome(pb::Welcome {
            node: self.node.name.clone(),
            in_sync: false,
            docs,
            incarnation: hub_inc,
            new_changes: eager_new as u32,
        }))
        .await?;

        while let Some(msg) = self.recv().await? {
            match msg {
                Nb::Changes(batch) => self.receive_batch(batch).await?,
                Nb::Want(want) => self.send_wanted(want).await?,
                _ => return Err(Status::invalid_argument("unexpected message")),
            }
        }
        Ok(())
    }

    /// Validates a batch on a copy (see [`crate::validate`]), then merges
    /// it, or refuses it: quarantined, logged, and the node told why.
    async fn receive_batch(&mut self, batch: pb::ChangeBatch) -> Result<(), Status> {
        let applied = self.merge(batch.docs).await?;
        let docs = applied.heads.iter().map(|(d, h)| doc_heads(d, h)).collect();
        self.send(Hb::Ack(pb::Ack {
            seq: batch.seq,
            docs,
            new_changes: applied.new as u32,
        }))
        .await
    }

    /// Merges what validation accepts of the node's changes, or refuses
    /// them all: for a batch, and for the changes a warm hello carries.
    async fn merge(&mut self, docs: Vec<pb::DocChanges>) -> Result<Applied, Status> {
        self.count_docs(docs.len())?;
        let n: usize = docs.iter().map(|d| d.changes.len()).sum();
        let changes = wire::batch_from_wire(docs);
        let (node, max_doc) = (self.node.clone(), self.hub.config().max_doc_bytes);
        let started = std::time::Instant::now();
        let outcome = self
            .replica(move |r| {
                Ok(
                    match validate::merge(r, &node, &changes, max_doc).map_err(internal)? {
                        Ok(merged) => Ok(merged),
                        Err(refusal) => Err((refusal, changes)),
                    },
                )
            })
            .await?;
        telemetry::merged(started.elapsed());
        let (applied, checked) = match outcome {
            Ok(ok) => ok,
            Err((refusal, changes)) => return Err(self.refuse(refusal, changes).await),
        };
        if checked.pending > 0 {
            tracing::warn!(
                node = %self.node.name,
                pending = checked.pending,
                "changes whose dependencies the hub does not hold were left out (not acknowledged)"
            );
        }
        if checked.left_to_author > 0 {
            tracing::warn!(
                node = %self.node.name,
                left_out = checked.left_to_author,
                "changes under another node's current actor id were left out, for their author to send (not acknowledged)"
            );
        }
        self.audit_accepted(&checked).await?;
        self.stats.changes_received += n as u64;
        // The live progress view takes the touched records as validation
        // read them: nothing is read again from the documents.
        let hub = self.hub.clone();
        let records = checked.records.into_iter().map(|(_, r)| r).collect();
        tokio::task::spawn_blocking(move || hub.merged(records))
            .await
            .map_err(internal)?;
        Ok(applied)
    }

    /// Keeps a refused batch in quarantine, logs it, and returns the
    /// status that tells the node why.
    async fn refuse(&self, refusal: Refusal, changes: Vec<(String, Vec<Vec<u8>>)>) -> Status {
        let dir = self.hub.home().dir.clone();
        let name = self.node.name.clone();
        let message = refusal.to_string();
        let permission = refusal.permission;
        let why = if permission {
            Refused::Permission
        } else {
            Refused::Invalid
        };
        telemetry::refused(why, &name, &message);
        let kept = tokio::task::spawn_blocking(move || {
            let id = quarantine::keep(&dir, &name, &refusal, &changes)?;
            let bytes: usize = changes.iter().flat_map(|(_, c)| c).map(Vec::len).sum();
            let count: usize = changes.iter().map(|(_, c)| c.len()).sum();
            audit_event(
                &dir,
                "refused",
                &name,
                serde_json::json!({
                    "doc": refusal.doc, "reason": refusal.to_string(), "quarantine": id,
                    "changes": count, "bytes": bytes,
                }),
            )?;
            anyhow::Ok(())
        })
        .await;
        if let Err(e) = kept.map_err(anyhow::Error::from).and_then(|r| r) {
            tracing::error!("could not keep a refused batch in quarantine: {e:#}");
        }
        if permission {
            Status::permission_denied(message)
        } else {
            Status::invalid_argument(message)
        }
    }

    /// Logs a merged batch and its data-quality warnings.
    async fn audit_accepted(&self, checked: &Checked) -> Result<(), Status> {
        let dir = self.hub.home().dir.clone();
        let name = self.node.name.clone();
        let docs: Vec<_> = checked
            .docs
            .iter()
            .map(|(doc, actors, count, bytes)| {
                serde_json::json!({"doc": doc, "actors": actors, "changes": count, "bytes": bytes})
            })
            .collect();
        let warnings = checked.warnings.clone();
        tokio::task::spawn_blocking(move || {
            for d in docs {
                audit_event(&dir, "accepted", &name, d)?;
            }
            for w in warnings {
                tracing::warn!(node = %name, "data-quality warning: {w}");
                audit_event(&dir, "warning", &name, serde_json::json!({ "warning": w }))?;
            }
            std::io::Result::Ok(())
        })
        .await
        .map_err(internal)?
        .map_err(internal)
    }

    /// Counts documents against `max_docs_per_session`.
    fn count_docs(&mut self, n: usize) -> Result<(), Status> {
        self.docs += n;
        let max = self.hub.config().max_docs_per_session;
        if self.docs > max {
            let why = format!(
                "more than {max} documents in one session / quá nhiều tài liệu trong một phiên"
            );
            telemetry::refused(Refused::TooManyDocuments, &self.node.name, &why);
            return Err(Status::resource_exhausted(why));
        }
        Ok(())
    }

    async fn send_wanted(&mut self, want: pb::Want) -> Result<(), Status> {
        self.count_docs(want.docs.len())?;
        for d in &want.docs {
            self.check_scope(&d.doc, false)?;
        }
        if want.resent_lost > 0 {
            let what = format!(
                "node {} sent again {} change(s) this hub had lost after acknowledging them (was the hub restored from a backup?) / nút đã gửi lại {} thay đổi mà máy chủ tỉnh đã mất",
                self.node.name, want.resent_lost, want.resent_lost
            );
            self.note_recovery("hub_recovered", want.resent_lost as u64, what)
                .await?;
        }
        let (name, inc) = (self.node.name.clone(), self.incarnation.clone());
        let max = self.hub.config().max_batch_bytes;
        let node_heads = session::want_heads(&want);
        let out = self
            .replica(move |r| {
                session::plan_wanted(r, &name, &inc, &node_heads, max).map_err(internal)
            })
            .await?;
        let (count, unconfirmed) = (out.batches.len(), out.unconfirmed);
        if count == 0 {
            let digest = self.scope_digest().await?;
            return self
                .send(Hb::Changes(pb::ChangeBatch {
                    seq: 1,
                    docs: vec![],
                    r#final: true,
                    digest,
                }))
                .await;
        }
        let (mut sent, mut new_at_node) = (0, 0);
        for (i, batch) in out.batches.into_iter().enumerate() {
            let seq = i as u64 + 1;
            let last = i + 1 == count;
            let n = sync::batch_size(&batch).0;
            sent += n;
            self.stats.changes_sent += n as u64;
            let docs = wire::batch_to_wire(batch);
            // The final digest is what the node should hold once it has applied everything.
            let digest = if last {
                self.scope_digest().await?
            } else {
                Vec::new()
            };
            self.send(Hb::Changes(pb::ChangeBatch {
                seq,
                docs,
                r#final: last,
                digest,
            }))
            .await?;
            let ack = match self.recv().await? {
                Some(Nb::Ack(a)) if a.seq == seq => a,
                _ => return Err(Status::invalid_argument(format!("expected ack {seq}"))),
            };
            new_at_node += ack.new_changes as usize;
            let (name, inc) = (self.node.name.clone(), self.incarnation.clone());
            self.replica(move |r| session::record_ack(r, &name, &inc, &ack.docs).map_err(internal))
                .await?;
        }
        let lost = sync::lost_by_peer(sent, unconfirmed, new_at_node);
        if lost > 0 {
            let what = format!(
                "node {} had lost {lost} change(s) it had acknowledged (restored from a backup, or its store replaced?); the hub sent them again / nút đã mất {lost} thay đổi; máy chủ tỉnh đã gửi lại",
                self.node.name
            );
            self.note_recovery("node_recovered", lost as u64, what)
                .await?;
        }
        Ok(())
    }

    /// A replica went back in time and the session made it whole again:
    /// logged, audited, and kept in the node's figures (`htx-hub nodes`).
    async fn note_recovery(
        &mut self,
        event: &str,
        changes: u64,
        what: String,
    ) -> Result<(), Status> {
        tracing::warn!(node = %self.node.name, "{what}");
        self.stats.recovered_changes += changes;
        self.stats.last_recovery = format!("{}: {what}", crate::hub::now_rfc3339());
        let (dir, name, event) = (
            self.hub.home().dir.clone(),
            self.node.name.clone(),
            event.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            audit_event(
                &dir,
                &event,
                &name,
                serde_json::json!({ "changes": changes, "what": what }),
            )
        })
        .await
        .map_err(internal)?
        .map_err(internal)
    }

    async fn scope_digest(&self) -> Result<Vec<u8>, Status> {
        let node = self.node.clone();
        self.replica(move |r| {
            let scope = Hub::scope(r, &node);
            Ok(r.digest(scope.iter().map(String::as_str)).to_vec())
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::sync_server::Sync for SyncService {
    type SessionStream = ReceiverStream<Result<pb::HubMessage, Status>>;

    async fn session(
        &self,
        req: Request<Streaming<pb::NodeMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (node, fingerprint) = identify(&self.hub, &req)?;
        // A flood of sessions from one node must not starve the others.
        let guard = self.hub.begin_session(&node.name).ok_or_else(|| {
            let reason = format!(
                "node {} already has {} sync sessions open / nút đã mở quá nhiều phiên đồng bộ",
                node.name,
                self.hub.config().max_sessions_per_node
            );
            telemetry::refused(Refused::TooManySessions, &node.name, &reason);
            let details = serde_json::json!({ "reason": reason });
            if let Err(e) =
                crate::audit::audit_event(&self.hub.home().dir, "refused", &node.name, details)
            {
                tracing::error!("cannot write the audit log: {e}");
            }
            Status::resource_exhausted(reason)
        })?;
        let (tx, rx) = mpsc::channel(4);
        let mut session = Session {
            hub: self.hub.clone(),
            node,
            fingerprint,
            rx: req.into_inner(),
            tx: tx.clone(),
            stats: NodeStats::default(),
            idle: Duration::from_secs(self.hub.config().idle_timeout_secs),
            docs: 0,
            incarnation: Vec::new(),
        };
        tokio::spawn(async move {
            let _open = guard;
            let started = std::time::Instant::now();
            let result = session.run().await;
            let completed = result.is_ok();
            if let Err(status) = result {
                session.stats.last_error = status.message().to_owned();
                let _ = tx.send(Err(status)).await;
            }
            telemetry::session_ended(
                &session.node.name,
                &session.stats,
                completed,
                started.elapsed(),
            );
            let hub = session.hub.clone();
            let (name, stats) = (session.node.name.clone(), session.stats.clone());
            let _ =
                tokio::task::spawn_blocking(move || hub.record_session(&name, &stats, completed))
                    .await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Certificate renewal, over the node's own authenticated connection.
pub struct EnrolmentService {
    hub: Hub,
}

impl EnrolmentService {
    pub fn new(hub: Hub) -> Self {
        EnrolmentService { hub }
    }
}

#[tonic::async_trait]
impl pb::enrolment_server::Enrolment for EnrolmentService {
    async fn renew(
        &self,
        req: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::RenewReply>, Status> {
        let (node, _) = identify(&self.hub, &req)?;
        let key = req.into_inner().public_key;
        let hub = self.hub.clone();
        let (cert, e) =
            tokio::task::spawn_blocking(move || hub.home().renew(hub.config(), &node.name, key))
                .await
                .map_err(internal)?
                .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        tracing::info!(node = %e.name, expires = %e.expires_at, "certificate renewed");
        Ok(Response::new(pb::RenewReply {
            cert,
            issued_at: e.enrolled_at,
            expires_at: e.expires_at,
        }))
    }
}

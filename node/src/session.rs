//! # The node's session steps, without I/O
//!
//! What [`crate::sync_client`] does with the replica at each message of a
//! session, as plain functions: the async session only moves messages and
//! runs these while holding the replica. The deterministic simulation
//! (`tests/src/sim`) drives the same functions, message by message, with
//! no sockets and no clock.

use automerge::ChangeHash;
use htx_core::docs;
use htx_core::replica::{Applied, Replica, Result, heads_from_bytes};
use htx_core::storage::WriteBatch;
use htx_core::sync;
use htx_core::wire::{self, doc_heads};
use htx_proto::v1 as pb;

use crate::node::HUB_PEER;

/// How long to wait for the hub's next message: `timeout_secs` for the hub
/// to check and answer, plus the time `bytes` need at `min_bytes_per_sec`.
/// `bytes` are what must cross the link before that message is whole: what
/// the node just sent (a batch leaves while the wait runs) and what the
/// hub's message may hold. Counted before compression, so on the wire (gzip)
/// they take less: a generous bound, and never a shorter wait than before.
pub fn reply_wait(timeout_secs: u64, min_bytes_per_sec: u64, bytes: u64) -> std::time::Duration {
    let rate = min_bytes_per_sec.max(1);
    let transfer_ms = bytes.saturating_mul(1000).div_ceil(rate);
    std::time::Duration::from_secs(timeout_secs)
        .saturating_add(std::time::Duration::from_millis(transfer_ms))
}

/// Every document's heads, and their digest, read at one instant.
pub fn snapshot(r: &Replica) -> (Vec<(String, Vec<ChangeHash>)>, [u8; 32]) {
    let heads = r.doc_ids().map(|d| (d.to_owned(), r.heads(d))).collect();
    (heads, r.digest(r.doc_ids()))
}

/// The node's changes beyond what the hub (in incarnation `hub_inc`) was
/// known to hold, if they fit in one batch: sent with the hello, so that on
/// a warm link an edit reaches the hub in one round trip.
pub fn eager_changes(
    r: &mut Replica,
    hub_inc: &[u8],
    max_batch_bytes: usize,
) -> Result<sync::Batch> {
    if hub_inc.is_empty() {
        return Ok(Vec::new());
    }
    let mut believed = Vec::new();
    for doc in written_docs(r) {
        let mut shared = r.shared_heads(HUB_PEER, &doc, hub_inc)?;
        shared.sort();
        if shared != r.heads(&doc) && !shared.is_empty() {
            believed.push((doc, shared));
        }
    }
    let mut out = sync::outgoing(r, HUB_PEER, hub_inc, &believed, max_batch_bytes)?;
    Ok(match out.batches.len() {
        1 => out.batches.remove(0),
        _ => Vec::new(),
    })
}

/// The hub's heads as its welcome reports them.
pub fn welcome_heads(welcome: &pb::Welcome) -> Vec<(String, Vec<ChangeHash>)> {
    welcome
        .docs
        .iter()
        .map(|d| (d.doc.clone(), heads_from_bytes(&d.heads)))
        .collect()
}

/// What to upload: the changes of this node's documents that the hub (in
/// `hub_inc`, reporting `hub_heads`) lacks.
pub fn plan_upload(
    r: &mut Replica,
    hub_heads: &[(String, Vec<ChangeHash>)],
    hub_inc: &[u8],
    max_batch_bytes: usize,
) -> Result<sync::Outgoing> {
    let ours = written_docs(r);
    let up: Vec<_> = sync::differing(r, ours.iter().map(String::as_str), hub_heads)
        .into_iter()
        .filter(|(d, _)| r.doc(d).is_some() && ours.contains(d))
        .collect();
    sync::outgoing(r, HUB_PEER, hub_inc, &up, max_batch_bytes)
}

/// The documents a node uploads: its units' documents. Never the hub's
/// read-only reference document (the plan and unit lists): the hub refuses
/// any change to it from a node, so a copy holding changes the hub lacks
/// (the hub restored from a backup older than its last published plan)
/// would have every session refused.
fn written_docs(r: &Replica) -> Vec<String> {
    r.doc_ids()
        .filter(|d| docs::parse_unit_doc_id(d).is_some())
        .map(str::to_owned)
        .collect()
}

/// Before the `Want`: if this node's copy of the hub's reference document
/// differs from the hub's (`hub_heads`, from its welcome), the copy is
/// dropped, so that the `Want` reports none of it and the hub sends it
/// whole. Only the hub writes that document; a copy with changes the hub
/// lacks (a hub restored from a backup) could never converge by merging.
/// The same holds for every document the hub publishes read-only (`ref/`:
/// the facts about this node's people too).
pub fn refresh_reference(r: &mut Replica, hub_heads: &[(String, Vec<ChangeHash>)]) -> Result<bool> {
    let mut dropped = false;
    for (doc, theirs) in hub_heads.iter().filter(|(d, _)| d.starts_with("ref/")) {
        let mut theirs = theirs.clone();
        theirs.sort();
        if !r.has_doc(doc) || r.heads(doc) == theirs {
            continue;
        }
        r.forget(doc)?;
        dropped = true;
    }
    Ok(dropped)
}

/// The hub acknowledged a batch with its new heads: what of them this node
/// holds is now shared with that incarnation of the hub.
pub fn record_ack(r: &mut Replica, hub_inc: &[u8], docs: &[pb::DocHeads]) -> Result<()> {
    let mut b = WriteBatch::default();
    for d in docs {
        let known = r.known(&d.doc, &heads_from_bytes(&d.heads))?;
        Replica::put_shared_heads(&mut b, HUB_PEER, &d.doc, &known, hub_inc);
    }
    r.commit(b)
}

/// This node's heads of every document it holds or the hub reported, for
/// the `Want` sent once the upload is done: the hub sends what lies beyond
/// them, and records them as held by both (else it would count what was
/// just uploaded as not yet at this node).
pub fn want(r: &Replica, hub_heads: &[(String, Vec<ChangeHash>)]) -> Vec<pb::DocHeads> {
    let mut docs: std::collections::BTreeSet<&str> = r.doc_ids().collect();
    docs.extend(hub_heads.iter().map(|(d, _)| d.as_str()));
    docs.into_iter()
        .map(|d| doc_heads(d, &r.heads(d)))
        .collect()
}

/// Applies a batch from the hub; returns the ack to send.
pub fn apply_batch(
    r: &mut Replica,
    seq: u64,
    docs: Vec<pb::DocChanges>,
) -> Result<(Applied, pb::Ack)> {
    let changes = wire::batch_from_wire(docs);
    let applied = r.apply(changes, WriteBatch::default())?;
    let docs = applied.heads.iter().map(|(d, h)| doc_heads(d, h)).collect();
    let ack = pb::Ack {
        seq,
        docs,
        new_changes: applied.new as u32,
    };
    Ok((applied, ack))
}

/// After a session that ended with equal digests, the hub (in its
/// incarnation `hub_inc`) holds exactly `heads`: what this node held when
/// its digest was taken. Not what it holds now: a write during the session
/// is not at the hub yet.
pub fn mark_shared(r: &Replica, heads: &[(String, Vec<ChangeHash>)], hub_inc: &[u8]) -> Result<()> {
    let mut b = WriteBatch::default();
    for (doc, heads) in heads {
        let mut shared = r.shared_heads(HUB_PEER, doc, hub_inc)?;
        shared.sort();
        if shared != *heads {
            Replica::put_shared_heads(&mut b, HUB_PEER, doc, heads, hub_inc);
        }
    }
    if !b.is_empty() {
        r.commit(b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reply_wait;
    use std::time::Duration;

    #[test]
    fn the_wait_for_the_hub_grows_with_the_bytes_to_cross_the_link() {
        // Nothing to carry: the configured time-out alone.
        assert_eq!(reply_wait(20, 6_250, 0), Duration::from_secs(20));
        // A full default batch (256 KiB) at 50 kbit/s: 41.9 s more.
        assert_eq!(
            reply_wait(20, 6_250, 256 * 1024),
            Duration::from_millis(20_000 + 41_944)
        );
        // A partial millisecond counts as a whole one, never less.
        assert_eq!(reply_wait(20, 6_250, 1), Duration::from_millis(20_001));
        // Twice the rate, half the extra time.
        assert_eq!(
            reply_wait(20, 12_500, 256 * 1024),
            Duration::from_millis(20_000 + 20_972)
        );
        // Absurd figures saturate instead of overflowing; a zero rate
        // (refused by the config) is taken as 1 byte/s.
        assert!(reply_wait(u64::MAX, 1, u64::MAX) >= Duration::from_secs(u64::MAX / 2));
        assert_eq!(reply_wait(1, 0, 10), Duration::from_secs(11));
    }
}

//! # The sync engine, without I/O
//!
//! What the node and the hub compute during a session; the transports in
//! `node/src/sync_client.rs` and `hub/src/sync_service.rs` only move the
//! results. The rules:
//!
//! - A session starts with a digest of every document's heads
//!   ([`Replica::digest`]); equal digests end it at once.
//! - Otherwise each side sends the other the changes that are not ancestors
//!   of the peer's reported heads *or* of the heads both were last known to
//!   share (persisted per peer and document), so that concurrent edits on
//!   both sides still resend only what is missing.
//! - A belief about the peer counts only if the peer confirms it in the
//!   session: shared heads are recorded with the peer's *incarnation* (see
//!   [`crate::replica`]), which each side states at the start of a session.
//!   A peer restarted, restored from a backup or given a new store is a new
//!   incarnation: it is sent everything its own reported heads lack, and
//!   [`Outgoing::unconfirmed`] counts what an old belief would have skipped.
//!   Set against the receiver's count of changes that were new to it, that
//!   tells whether the peer had lost changes it once acknowledged
//!   ([`lost_by_peer`]).
//! - Changes travel in causal order, cut into batches of at most
//!   [`MAX_BATCH_BYTES`]; the receiver stores each batch before it acks it
//!   with its new heads, and the sender then records those heads as shared.

use automerge::ChangeHash;

use crate::replica::{Replica, Result};

/// The sync protocol this build speaks, and the oldest it still accepts
/// from a peer. A change that old peers can follow raises `PROTOCOL` and
/// keeps `MIN_PROTOCOL`, so offices upgrade one by one after the hub (the
/// rolling order in `deploy/README.md`); one they cannot raises both.
pub const PROTOCOL: u32 = 1;
pub const MIN_PROTOCOL: u32 = 1;

/// Whether a hub speaking `PROTOCOL` can sync with a node speaking
/// `node`; if not, the refusal says which side to upgrade.
pub fn check_protocol(node: u32) -> std::result::Result<(), String> {
    if node < MIN_PROTOCOL {
        Err(format!(
            "this node speaks sync protocol {node}, the hub needs {MIN_PROTOCOL} to {PROTOCOL}: upgrade the node (htx-node) / phiên bản nút quá cũ, hãy nâng cấp htx-node"
        ))
    } else if node > PROTOCOL {
        Err(format!(
            "this node speaks sync protocol {node}, newer than the hub's ({MIN_PROTOCOL} to {PROTOCOL}): upgrade the hub (htx-hub) first / máy chủ tỉnh cũ hơn nút, hãy nâng cấp htx-hub trước"
        ))
    } else {
        Ok(())
    }
}

/// Upper bound of one batch of changes, and so of what a cut link can lose.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocChanges {
    pub doc: String,
    pub changes: Vec<Vec<u8>>,
}

pub type Batch = Vec<DocChanges>;

/// Documents whose heads differ between this replica and a peer that
/// reported `theirs`, among `ours` (this replica's documents in scope).
pub fn differing<'a>(
    replica: &Replica,
    ours: impl IntoIterator<Item = &'a str>,
    theirs: &[(String, Vec<ChangeHash>)],
) -> Vec<(String, Vec<ChangeHash>)> {
    let mut out: Vec<(String, Vec<ChangeHash>)> = Vec::new();
    for (doc, heads) in theirs {
        let mut h = heads.clone();
        h.sort();
        if replica.heads(doc) != h {
            out.push((doc.clone(), h));
        }
    }
    for doc in ours {
        if !theirs.iter().any(|(d, _)| d == doc) && !out.iter().any(|(d, _)| d == doc) {
            out.push((doc.to_owned(), Vec::new()));
        }
    }
    out.sort();
    out
}

/// What to send a peer.
#[derive(Debug, Default)]
pub struct Outgoing {
    pub batches: Vec<Batch>,
    /// Changes in `batches` that the peer was believed to hold under an
    /// earlier incarnation, and that its current one has not confirmed.
    pub unconfirmed: usize,
}

/// The changes `peer` (in its `incarnation`) lacks, given the heads it
/// reported per document, cut into batches of at most `max_bytes` (a single
/// larger change goes alone).
pub fn outgoing(
    replica: &mut Replica,
    peer: &str,
    incarnation: &[u8],
    peer_heads: &[(String, Vec<ChangeHash>)],
    max_bytes: usize,
) -> Result<Outgoing> {
    let mut out = Outgoing::default();
    let mut current: Batch = Vec::new();
    let mut size = 0usize;
    for (doc, heads) in peer_heads {
        let mut have = heads.clone();
        // A peer that reports no heads holds nothing of the document (a
        // node that set a damaged copy aside): what it was once known to
        // share is gone, so it gets the document whole.
        if !heads.is_empty() {
            have.extend(replica.shared_heads(peer, doc, incarnation)?);
        }
        let changes = replica.changes_since(doc, &have)?;
        if let Some((stale, inc)) = replica.belief(peer, doc)?
            && inc != incarnation
        {
            let mut believed = have.clone();
            believed.extend(stale);
            out.unconfirmed += changes.len() - replica.changes_since(doc, &believed)?.len();
        }
        for change in changes {
            let bytes = change.raw_bytes().to_vec();
            if size > 0 && size + bytes.len() > max_bytes {
                out.batches.push(std::mem::take(&mut current));
                size = 0;
            }
            size += bytes.len();
            match current.last_mut() {
                Some(dc) if dc.doc == *doc => dc.changes.push(bytes),
                _ => current.push(DocChanges {
                    doc: doc.clone(),
                    changes: vec![bytes],
                }),
            }
        }
    }
    if !current.is_empty() {
        out.batches.push(current);
    }
    Ok(out)
}

/// How many changes a peer had lost although it had acknowledged them (it
/// went back in time: restored from a backup, or its store replaced), given
/// what was sent to it, how many of those were [`Outgoing::unconfirmed`],
/// and how many the peer found new. Changes beyond the old belief may
/// already be there (a batch whose ack was lost); changes within it that
/// the peer found new are the ones it had lost.
pub fn lost_by_peer(sent: usize, unconfirmed: usize, new_at_peer: usize) -> usize {
    new_at_peer.saturating_sub(sent - unconfirmed)
}

/// Number of changes and bytes in a batch.
pub fn batch_size(batch: &Batch) -> (usize, usize) {
    batch.iter().fold((0, 0), |(n, b), dc| {
        (
            n + dc.changes.len(),
            b + dc.changes.iter().map(Vec::len).sum::<usize>(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::check_protocol;

    #[test]
    fn a_protocol_outside_the_range_names_the_side_to_upgrade() {
        assert!(check_protocol(super::PROTOCOL).is_ok());
        assert!(check_protocol(super::MIN_PROTOCOL).is_ok());
        let newer = check_protocol(super::PROTOCOL + 1).unwrap_err();
        assert!(newer.contains("upgrade the hub"), "{newer}");
        let older = check_protocol(super::MIN_PROTOCOL - 1).unwrap_err();
        assert!(older.contains("upgrade the node"), "{older}");
    }

    use super::*;
    use crate::storage::{MemoryStore, Store, WriteBatch};
    use automerge::transaction::Transactable;
    use std::sync::Arc;

    fn replica() -> Replica {
        Replica::open(Arc::new(MemoryStore::default())).unwrap()
    }

    fn edit(r: &mut Replica, doc: &str, n: usize, tag: &str) {
        for i in 0..n {
            r.change(doc, |d| {
                d.put(automerge::ROOT, format!("{tag}{i}"), i as i64)
            })
            .unwrap()
            .unwrap();
        }
    }

    /// One direction of a session: `from` sends `to` what it lacks; `to`
    /// acks each batch and `from` records the shared heads, confirmed by
    /// `to`'s incarnation. Returns the changes sent, and how many of them
    /// `to` had lost after acknowledging them.
    fn push(from: &mut Replica, to: &mut Replica, to_name: &str, max: usize) -> (usize, usize) {
        let docs: Vec<String> = from.doc_ids().map(str::to_owned).collect();
        let theirs: Vec<_> = docs.iter().map(|d| (d.clone(), to.heads(d))).collect();
        let want = differing(from, docs.iter().map(String::as_str), &theirs);
        let inc = to.incarnation();
        let out = outgoing(from, to_name, &inc, &want, max).unwrap();
        // What the peer reported holding is shared (as the hub records a
        // node's `Want`): after the plan, so that a stale belief is still
        // there to count.
        let mut b = WriteBatch::default();
        for (doc, heads) in &theirs {
            let known = from.known(doc, heads).unwrap();
            Replica::put_shared_heads(&mut b, to_name, doc, &known, &inc);
        }
        from.commit(b).unwrap();
        let (mut sent, mut new) = (0, 0);
        for batch in out.batches {
            sent += batch_size(&batch).0;
            let acked = to
                .apply(
                    batch.into_iter().map(|d| (d.doc, d.changes)).collect(),
                    WriteBatch::default(),
                )
                .unwrap();
            new += acked.new;
            let mut b = WriteBatch::default();
            for (doc, heads) in acked.heads {
                let known = from.known(&doc, &heads).unwrap();
                Replica::put_shared_heads(&mut b, to_name, &doc, &known, &inc);
            }
            from.commit(b).unwrap();
        }
        (sent, lost_by_peer(sent, out.unconfirmed, new))
    }

    /// The replica as a backup copy of its store would reopen it.
    fn backup(r: &Replica) -> Arc<MemoryStore> {
        let copy = Arc::new(MemoryStore::default());
        let mut b = WriteBatch::default();
        for (k, v) in r.store().scan(b"").unwrap() {
            b.put(k, v);
        }
        copy.commit(b).unwrap();
        copy
    }

    const D: &str = "u/2023/1";

    #[test]
    fn a_hub_restored_from_a_backup_is_sent_what_it_lost() {
        let (mut node, mut hub) = (replica(), replica());
        edit(&mut node, D, 20, "a");
        assert_eq!(push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES), (20, 0));
        let saved = backup(&hub);
        edit(&mut node, D, 5, "b");
        assert_eq!(push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES), (5, 0));
        // The hub is restored from the copy taken before those 5 changes:
        // the node's belief that the hub holds them is not confirmed by the
        // restored hub's incarnation, so they are sent again, and counted.
        let mut hub = Replica::open(saved).unwrap();
        assert_eq!(push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES), (5, 5));
        assert_eq!(node.heads(D), hub.heads(D));
        // A restart without loss resends nothing.
        let mut hub = Replica::open(backup(&hub)).unwrap();
        assert_eq!(push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES), (0, 0));
    }

    #[test]
    fn a_node_restored_from_a_backup_gets_its_lost_changes_back_and_writes_on() {
        let (mut node, mut hub) = (replica(), replica());
        edit(&mut node, D, 20, "a");
        push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES);
        push(&mut hub, &mut node, "node", MAX_BATCH_BYTES);
        let saved = backup(&node);
        edit(&mut node, D, 5, "b");
        push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES);
        push(&mut hub, &mut node, "node", MAX_BATCH_BYTES);
        let mut node = Replica::open(saved).unwrap();
        assert_eq!(push(&mut hub, &mut node, "node", MAX_BATCH_BYTES), (5, 5));
        assert_eq!(node.heads(D), hub.heads(D));
        // The restored node writes under a new actor id: no change of the
        // copy it replaced is ever made twice with other content.
        edit(&mut node, D, 3, "c");
        assert_eq!(push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES), (3, 0));
        assert_eq!(node.heads(D), hub.heads(D));
    }

    #[test]
    fn a_batch_naming_a_document_twice_is_applied_as_one() {
        let (mut node, mut hub) = (replica(), replica());
        edit(&mut node, D, 3, "a");
        let changes: Vec<Vec<u8>> = node
            .changes_since(D, &[])
            .unwrap()
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        // The dependent change first, in its own entry; an orphan elsewhere.
        let applied = hub
            .apply(
                vec![
                    (D.to_owned(), vec![changes[2].clone()]),
                    (D.to_owned(), vec![changes[0].clone(), changes[1].clone()]),
                ],
                WriteBatch::default(),
            )
            .unwrap();
        assert_eq!((applied.new, applied.pending), (3, 0));
        assert_eq!(hub.heads(D), node.heads(D));
        // A change whose dependency never came is left out, not queued.
        let mut other = replica();
        let applied = other
            .apply(
                vec![(D.to_owned(), vec![changes[2].clone()])],
                WriteBatch::default(),
            )
            .unwrap();
        assert_eq!((applied.new, applied.pending), (0, 1));
        assert!(other.heads(D).is_empty());
        let applied = other
            .apply(
                vec![(D.to_owned(), vec![changes[0].clone()])],
                WriteBatch::default(),
            )
            .unwrap();
        assert_eq!((applied.new, applied.pending), (1, 0));
        assert_eq!(
            other.changes_since(D, &[]).unwrap().len(),
            1,
            "the orphan did not come back"
        );
    }

    #[test]
    fn concurrent_edits_resend_only_what_is_missing() {
        let (mut node, mut hub) = (replica(), replica());
        edit(&mut node, "u/2023/1", 50, "a");
        assert_eq!(push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES).0, 50);
        // Both sides now edit the same document while apart.
        edit(&mut node, "u/2023/1", 7, "n");
        edit(&mut hub, "u/2023/1", 5, "h");
        assert_eq!(push(&mut node, &mut hub, "hub", MAX_BATCH_BYTES).0, 7);
        assert_eq!(push(&mut hub, &mut node, "node", MAX_BATCH_BYTES).0, 5);
        assert_eq!(node.heads("u/2023/1"), hub.heads("u/2023/1"));
        assert_eq!(node.digest(["u/2023/1"]), hub.digest(["u/2023/1"]));
    }

    #[test]
    fn batches_are_bounded_and_resume_after_a_cut() {
        let (mut node, mut hub) = (replica(), replica());
        edit(&mut node, "u/2023/1", 300, "a");
        let docs = vec![("u/2023/1".to_owned(), Vec::new())];
        let batches = outgoing(&mut node, "hub", &[], &docs, 2_000)
            .unwrap()
            .batches;
        assert!(batches.len() > 3);
        assert!(batches.iter().all(|b| batch_size(b).1 <= 2_000));
        // Only the first two batches arrive before the link is cut.
        for batch in batches.into_iter().take(2) {
            hub.apply(
                batch.into_iter().map(|d| (d.doc, d.changes)).collect(),
                WriteBatch::default(),
            )
            .unwrap();
        }
        let had = hub.doc("u/2023/1").map(|_| hub.heads("u/2023/1")).unwrap();
        let rest = outgoing(
            &mut node,
            "hub",
            &[],
            &[("u/2023/1".to_owned(), had)],
            2_000,
        )
        .unwrap()
        .batches;
        let resent: usize = rest.iter().map(|b| batch_size(b).0).sum();
        let first: usize = 300 - resent;
        assert!(
            first > 0 && resent < 300,
            "resumed from the acknowledged heads"
        );
        for batch in rest {
            hub.apply(
                batch.into_iter().map(|d| (d.doc, d.changes)).collect(),
                WriteBatch::default(),
            )
            .unwrap();
        }
        assert_eq!(node.heads("u/2023/1"), hub.heads("u/2023/1"));
    }
}

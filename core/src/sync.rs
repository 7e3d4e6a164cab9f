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
//! - Changes travel in causal order, cut into batches of at most
//!   [`MAX_BATCH_BYTES`]; the receiver stores each batch before it acks it
//!   with its new heads, and the sender then records those heads as shared.

use automerge::ChangeHash;

use crate::replica::{Replica, Result};

pub const PROTOCOL: u32 = 1;

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

/// The changes `peer` lacks, given the heads it reported per document, cut
/// into batches of at most `max_bytes` (a single larger change goes alone).
pub fn outgoing(
    replica: &mut Replica,
    peer: &str,
    peer_heads: &[(String, Vec<ChangeHash>)],
    max_bytes: usize,
) -> Result<Vec<Batch>> {
    let mut batches: Vec<Batch> = Vec::new();
    let mut current: Batch = Vec::new();
    let mut size = 0usize;
    for (doc, heads) in peer_heads {
        let mut have = heads.clone();
        // A peer that reports no heads holds nothing of the document (a
        // node that set a damaged copy aside): what it was once known to
        // share is gone, so it gets the document whole.
        if !heads.is_empty() {
            have.extend(replica.shared_heads(peer, doc)?);
        }
        for change in replica.changes_since(doc, &have) {
            let bytes = change.raw_bytes().to_vec();
            if size > 0 && size + bytes.len() > max_bytes {
                batches.push(std::mem::take(&mut current));
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
        batches.push(current);
    }
    Ok(batches)
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
    use super::*;
    use crate::storage::{MemoryStore, WriteBatch};
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
    /// acks each batch and `from` records the shared heads.
    fn push(
        from: &mut Replica,
        from_name: &str,
        to: &mut Replica,
        to_name: &str,
        max: usize,
    ) -> usize {
        let docs: Vec<String> = from.doc_ids().map(str::to_owned).collect();
        let theirs: Vec<_> = docs.iter().map(|d| (d.clone(), to.heads(d))).collect();
        let want = differing(from, docs.iter().map(String::as_str), &theirs);
        let mut sent = 0;
        for batch in outgoing(from, to_name, &want, max).unwrap() {
            sent += batch_size(&batch).0;
            let acked = to
                .apply(
                    batch.into_iter().map(|d| (d.doc, d.changes)).collect(),
                    WriteBatch::default(),
                )
                .unwrap();
            let mut b = WriteBatch::default();
            for (doc, heads) in acked {
                let known = from.known(&doc, &heads);
                Replica::put_shared_heads(&mut b, to_name, &doc, &known);
            }
            from.commit(b).unwrap();
        }
        let _ = from_name;
        sent
    }

    #[test]
    fn concurrent_edits_resend_only_what_is_missing() {
        let (mut node, mut hub) = (replica(), replica());
        edit(&mut node, "u/2023/1", 50, "a");
        assert_eq!(
            push(&mut node, "node", &mut hub, "hub", MAX_BATCH_BYTES),
            50
        );
        // Both sides now edit the same document while apart.
        edit(&mut node, "u/2023/1", 7, "n");
        edit(&mut hub, "u/2023/1", 5, "h");
        assert_eq!(push(&mut node, "node", &mut hub, "hub", MAX_BATCH_BYTES), 7);
        assert_eq!(push(&mut hub, "hub", &mut node, "node", MAX_BATCH_BYTES), 5);
        assert_eq!(node.heads("u/2023/1"), hub.heads("u/2023/1"));
        assert_eq!(node.digest(["u/2023/1"]), hub.digest(["u/2023/1"]));
    }

    #[test]
    fn batches_are_bounded_and_resume_after_a_cut() {
        let (mut node, mut hub) = (replica(), replica());
        edit(&mut node, "u/2023/1", 300, "a");
        let docs = vec![("u/2023/1".to_owned(), Vec::new())];
        let batches = outgoing(&mut node, "hub", &docs, 2_000).unwrap();
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
        let rest = outgoing(&mut node, "hub", &[("u/2023/1".to_owned(), had)], 2_000).unwrap();
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

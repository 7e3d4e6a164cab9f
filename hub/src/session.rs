//! # The hub's session steps, without I/O
//!
//! What [`crate::sync_service`] does with the replica at each message of a
//! session, as plain functions: the async session only moves messages and
//! runs these under the replica's lock. The deterministic simulation
//! (`tests/src/sim`) drives the same functions, message by message, with
//! no sockets and no clock. Merging a node's batch is [`crate::validate::merge`].

use automerge::ChangeHash;
use htx_core::replica::{Replica, Result, heads_from_bytes};
use htx_core::storage::WriteBatch;
use htx_core::sync;
use htx_proto::v1 as pb;

use crate::home::Enrolment;
use crate::hub::Hub;

/// What the hub answers a hello with: the digest of the node's scope, the
/// hub's heads of every document in it, and the hub's incarnation.
pub struct Welcome {
    pub digest: [u8; 32],
    pub heads: Vec<(String, Vec<ChangeHash>)>,
    pub incarnation: Vec<u8>,
}

pub fn welcome(r: &Replica, node: &Enrolment) -> Welcome {
    let scope = Hub::scope(r, node);
    let heads: Vec<_> = scope.iter().map(|d| (d.clone(), r.heads(d))).collect();
    Welcome {
        digest: r.digest(scope.iter().map(String::as_str)),
        heads,
        incarnation: r.incarnation(),
    }
}

/// Equal digests at the hello: the node (in `incarnation`) holds exactly
/// `heads`; recorded where the hub believed otherwise.
pub fn confirm_in_sync(
    r: &Replica,
    node: &str,
    incarnation: &[u8],
    heads: &[(String, Vec<ChangeHash>)],
) -> Result<()> {
    let mut b = WriteBatch::default();
    for (d, h) in heads {
        let mut shared = r.shared_heads(node, d, incarnation)?;
        shared.sort();
        if shared != *h {
            Replica::put_shared_heads(&mut b, node, d, h, incarnation);
        }
    }
    r.commit(b)
}

/// The node's `Want`: the batches to send it, planned before what it
/// reports holding is recorded as shared (so that a belief from an earlier
/// incarnation can still be counted as [`sync::Outgoing::unconfirmed`]).
pub fn plan_wanted(
    r: &mut Replica,
    node: &str,
    incarnation: &[u8],
    node_heads: &[(String, Vec<ChangeHash>)],
    max_batch_bytes: usize,
) -> Result<sync::Outgoing> {
    let out = sync::outgoing(r, node, incarnation, node_heads, max_batch_bytes)?;
    let mut b = WriteBatch::default();
    for (doc, heads) in node_heads {
        let known = r.known(doc, heads)?;
        if !known.is_empty() {
            Replica::put_shared_heads(&mut b, node, doc, &known, incarnation);
        }
    }
    r.commit(b)?;
    Ok(out)
}

/// The node acknowledged a batch with its new heads: what of them the hub
/// holds is now shared with that incarnation of the node.
pub fn record_ack(
    r: &mut Replica,
    node: &str,
    incarnation: &[u8],
    docs: &[pb::DocHeads],
) -> Result<()> {
    let mut b = WriteBatch::default();
    for d in docs {
        let known = r.known(&d.doc, &heads_from_bytes(&d.heads))?;
        Replica::put_shared_heads(&mut b, node, &d.doc, &known, incarnation);
    }
    r.commit(b)
}

/// The heads a node reports in its `Want`, as the engine takes them.
pub fn want_heads(want: &pb::Want) -> Vec<(String, Vec<ChangeHash>)> {
    want.docs
        .iter()
        .map(|d| (d.doc.clone(), heads_from_bytes(&d.heads)))
        .collect()
}

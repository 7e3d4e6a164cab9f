//! Sessions, message by message: both ends of each, and the stream
//! between them.
//!
//! The two ends follow `hub/src/sync_service.rs` (`Session::run`,
//! `receive_batch`, `send_wanted`) and `node/src/sync_client.rs`
//! (`session_on`) step for step, calling the same functions on the
//! replicas (`htx_hub::session`, `htx_hub::validate::merge`,
//! `htx_node::session`); what they exchange is the real protobuf, encoded
//! and decoded. A stream keeps its order and never repeats a message, as
//! HTTP/2 over TCP does, unless a fault says otherwise; a session can be
//! cut at any message, and then the hub may still handle what had reached
//! it after the node has started over.

use std::collections::VecDeque;

use automerge::ChangeHash;
use htx_core::sync;
use htx_core::wire;
use htx_hub::session as hub_steps;
use htx_node::session as node_steps;
use htx_proto::v1::{self as pb, hub_message::Body as Hb, node_message::Body as Nb};
use prost::Message;
use rand::Rng;

use super::world::World;

/// What crosses a stream: an encoded message, the sender's half-close, or
/// the hub ending the call with an error.
#[derive(Debug, Clone)]
pub(super) enum Frame {
    Msg(Vec<u8>),
    End,
    Fail(String),
}

/// A crafted batch the adversarial node sends instead of its own, and
/// whether the hub must refuse it.
pub(super) struct Attack {
    pub what: String,
    pub docs: Vec<pb::DocChanges>,
    pub must_refuse: bool,
    /// Changes in it made under another node's actor id.
    pub forged: Vec<ChangeHash>,
}

enum HubState {
    AwaitHello,
    Serving,
    Sending {
        batches: VecDeque<sync::Batch>,
        seq: u64,
        count: u64,
        sent: usize,
        unconfirmed: usize,
        new_at_node: usize,
    },
    Done,
}

struct HubSide {
    incarnation: Vec<u8>,
    state: HubState,
}

enum NodeState {
    AwaitWelcome,
    Uploading {
        batches: VecDeque<sync::Batch>,
        seq: u64,
        sent: usize,
        unconfirmed: usize,
        new_at_hub: usize,
        hub_heads: Vec<(String, Vec<ChangeHash>)>,
    },
    Downloading,
    Finishing {
        /// The hub's final digest; None when the welcome said in sync.
        hub_digest: Option<Vec<u8>>,
    },
    Attacking,
    Done,
}

struct NodeSide {
    at_hello: Vec<(String, Vec<ChangeHash>)>,
    hub_inc: Vec<u8>,
    state: NodeState,
    attack: Option<Attack>,
}

pub(super) struct Session {
    node: usize,
    to_hub: VecDeque<Frame>,
    to_node: VecDeque<Frame>,
    hub: Option<HubSide>,
    /// None once the node's side is gone (cut): the hub may still handle
    /// what it had received.
    node_side: Option<NodeSide>,
}

fn encode_node(body: Nb) -> Frame {
    Frame::Msg(pb::NodeMessage { body: Some(body) }.encode_to_vec())
}
fn encode_hub(body: Hb) -> Frame {
    Frame::Msg(pb::HubMessage { body: Some(body) }.encode_to_vec())
}

/// The node opens a session (an attack session if `attack` is given).
pub(super) fn open(w: &mut World, i: usize, attack: Option<Attack>) -> Result<(), String> {
    let id = w.next_session;
    w.next_session += 1;
    w.stats.sessions += 1;
    let node = &mut w.nodes[i];
    let (at_hello, mut digest) = node_steps::snapshot(&node.replica);
    let link = node.link.clone().unwrap_or_default();
    let max = node.max_batch_bytes;
    let eager = if attack.is_some() {
        // An attacker forces a full session: its digest never matches.
        digest = [0; 32];
        Vec::new()
    } else {
        node_steps::eager_changes(&mut node.replica, &link, max).map_err(|e| e.to_string())?
    };
    let hello = pb::Hello {
        protocol: sync::PROTOCOL,
        digest: digest.to_vec(),
        documents: at_hello.len() as u32,
        incarnation: node.replica.incarnation(),
        changes: wire::batch_to_wire(eager),
        software: "sim".to_owned(),
    };
    node.session = Some(id);
    let what = match &attack {
        Some(a) => format!("attack session: {}", a.what),
        None => format!(
            "session ({} eager changes)",
            hello.changes.iter().map(|d| d.changes.len()).sum::<usize>()
        ),
    };
    let mut s = Session {
        node: i,
        to_hub: VecDeque::new(),
        to_node: VecDeque::new(),
        hub: Some(HubSide {
            incarnation: Vec::new(),
            state: HubState::AwaitHello,
        }),
        node_side: Some(NodeSide {
            at_hello,
            hub_inc: Vec::new(),
            state: if attack.is_some() {
                NodeState::Attacking
            } else {
                NodeState::AwaitWelcome
            },
            attack,
        }),
    };
    s.to_hub.push_back(encode_node(Nb::Hello(hello)));
    w.sessions.insert(id, s);
    w.note(format!("node {i} opens {what} #{id}"));
    Ok(())
}

/// Delivers the next frame of session `id`, in a direction chosen at random
/// among those with something to deliver.
pub(super) fn deliver(w: &mut World, id: u64) -> Result<(), String> {
    let Some(s) = w.sessions.get(&id) else {
        return Ok(());
    };
    let to_hub = !s.to_hub.is_empty() && s.hub.is_some();
    let to_node = !s.to_node.is_empty() && s.node_side.is_some();
    let toward_hub = match (to_hub, to_node) {
        (true, true) => w.rng.random_bool(0.5),
        (true, false) => true,
        (false, true) => false,
        (false, false) => {
            // Nothing can move: the session is over (or stuck, which the
            // protocol must never be).
            let s = w.sessions.remove(&id).expect("present");
            if let Some(n) = &s.node_side
                && !matches!(n.state, NodeState::Done)
            {
                return Err(w.fail(&format!("session #{id} of node {} is stuck", s.node)));
            }
            if w.nodes[s.node].session == Some(id) {
                w.nodes[s.node].session = None;
            }
            return Ok(());
        }
    };
    let s = w.sessions.get_mut(&id).expect("present");
    let frame = if toward_hub {
        s.to_hub.pop_front()
    } else {
        s.to_node.pop_front()
    }
    .expect("non-empty");
    if let Frame::Msg(b) = &frame {
        w.stats.messages += 1;
        w.stats.bytes += b.len() as u64;
    }
    if toward_hub {
        if w.sessions[&id].node_side.is_none() {
            w.stats.late_deliveries += 1;
        }
        hub_receive(w, id, frame)
    } else {
        node_receive(w, id, frame)
    }?;
    retire(w, id);
    Ok(())
}

/// Forgets a session both of whose ends are done and whose streams hold
/// nothing more for a live end.
fn retire(w: &mut World, id: u64) {
    let Some(s) = w.sessions.get(&id) else { return };
    let hub_done = s
        .hub
        .as_ref()
        .is_none_or(|h| matches!(h.state, HubState::Done));
    let node_done = s
        .node_side
        .as_ref()
        .is_none_or(|n| matches!(n.state, NodeState::Done));
    let hub_pending = s.hub.is_some() && !s.to_hub.is_empty() && !hub_done;
    if hub_done && node_done && !hub_pending {
        let node = s.node;
        w.sessions.remove(&id);
        if w.nodes[node].session == Some(id) {
            w.nodes[node].session = None;
        }
    }
}

/// The link breaks: the node's side is gone at once (its session ends
/// with an error and the kept link is dropped); the hub's side either
/// ends too, or (`late`) still handles the frames that had reached it.
pub(super) fn cut(w: &mut World, id: u64, late: bool) {
    let Some(s) = w.sessions.get_mut(&id) else {
        return;
    };
    let node = s.node;
    s.node_side = None;
    s.to_node.clear();
    if !late {
        s.hub = None;
        s.to_hub.clear();
    }
    w.stats.cuts += 1;
    w.nodes[node].link = None;
    if w.nodes[node].session == Some(id) {
        w.nodes[node].session = None;
    }
    w.note(format!(
        "session #{id} of node {node} cut{}",
        if late {
            " (the hub still reads what reached it)"
        } else {
            ""
        }
    ));
    retire(w, id);
    if w.sessions
        .get(&id)
        .is_some_and(|s| s.to_hub.is_empty() || s.hub.is_none())
    {
        w.sessions.remove(&id);
    }
}

/// Node `i` crashed or was restored: its sessions end; the hub may still
/// handle what reached it.
pub(super) fn node_gone(w: &mut World, i: usize) {
    let ids: Vec<u64> = w
        .sessions
        .iter()
        .filter(|(_, s)| s.node == i && s.node_side.is_some())
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        cut(w, id, true);
    }
    w.nodes[i].session = None;
    w.nodes[i].link = None;
}

/// The hub crashed or was restored: every session ends.
pub(super) fn hub_gone(w: &mut World) {
    let ids: Vec<u64> = w.sessions.keys().copied().collect();
    for id in ids {
        cut(w, id, false);
    }
    for n in &mut w.nodes {
        n.link = None;
        n.session = None;
    }
}

/// A fault inside one stream: a frame repeated, or two frames swapped.
pub(super) fn duplicate_or_swap(w: &mut World) {
    let ids: Vec<u64> = w.sessions.keys().copied().collect();
    if ids.is_empty() {
        return;
    }
    let id = ids[w.rng.random_range(0..ids.len())];
    let dup = w.rng.random_bool(0.5);
    let toward_hub = w.rng.random_bool(0.5);
    let s = w.sessions.get_mut(&id).expect("present");
    let q = if toward_hub {
        &mut s.to_hub
    } else {
        &mut s.to_node
    };
    if dup {
        if let Some(f) = q.front().cloned() {
            q.push_front(f);
            w.stats.duplicated += 1;
            w.note(format!("a frame of session #{id} duplicated"));
        }
    } else if q.len() >= 2 {
        q.swap(0, 1);
        w.stats.swapped += 1;
        w.note(format!("two frames of session #{id} swapped"));
    }
}

// ---- The hub's end ---------------------------------------------------------

fn hub_receive(w: &mut World, id: u64, frame: Frame) -> Result<(), String> {
    let out = match hub_handle(w, id, frame) {
        Ok(out) => out,
        Err(reason) => {
            w.note(format!("hub ends session #{id}: {reason}"));
            if let Some(h) = w.sessions.get_mut(&id).and_then(|s| s.hub.as_mut()) {
                h.state = HubState::Done;
            }
            vec![Frame::Fail(reason)]
        }
    };
    if let Some(s) = w.sessions.get_mut(&id) {
        if s.node_side.is_some() {
            s.to_node.extend(out);
        }
        if s.hub
            .as_ref()
            .is_some_and(|h| matches!(h.state, HubState::Done))
        {
            s.to_hub.clear();
        }
    }
    Ok(())
}

/// Merges a node's changes as `Session::merge` does: validated on a copy,
/// then merged with the touched records fed to the live progress view, or
/// refused.
fn hub_merge(
    w: &mut World,
    node: usize,
    docs: Vec<pb::DocChanges>,
) -> Result<sync_ok::Merged, String> {
    let changes = wire::batch_from_wire(docs);
    let enrolment = w.nodes[node].enrolment.clone();
    let max_doc = w.hub.config.max_doc_bytes;
    match htx_hub::validate::merge(&mut w.hub.replica, &enrolment, &changes, max_doc) {
        Err(e) => Err(format!("internal: {e}")),
        Ok(Err(refusal)) => {
            w.stats.batches_refused += 1;
            Err(format!("refused: {refusal}"))
        }
        Ok(Ok((applied, checked))) => {
            w.stats.batches_merged += 1;
            w.hub
                .live
                .merged(checked.records.into_iter().map(|(_, r)| r));
            Ok(sync_ok::Merged {
                heads: applied.heads,
                new: applied.new,
            })
        }
    }
}

mod sync_ok {
    pub struct Merged {
        pub heads: Vec<(String, Vec<automerge::ChangeHash>)>,
        pub new: usize,
    }
}

fn hub_handle(w: &mut World, id: u64, frame: Frame) -> Result<Vec<Frame>, String> {
    let node = w.sessions[&id].node;
    let msg = match frame {
        Frame::Msg(bytes) => {
            let m = pb::NodeMessage::decode(bytes.as_slice())
                .map_err(|e| format!("undecodable: {e}"))?;
            Some(m.body.ok_or("empty message")?)
        }
        Frame::End => None,
        Frame::Fail(_) => return Err("a node never fails a call".into()),
    };
    let state = std::mem::replace(
        &mut w
            .sessions
            .get_mut(&id)
            .expect("present")
            .hub
            .as_mut()
            .expect("hub side")
            .state,
        HubState::Done,
    );
    if matches!(state, HubState::Done) {
        // The hub ended the call: it reads nothing more.
        return Ok(Vec::new());
    }
    let name = w.nodes[node].enrolment.name.clone();
    let inc = w.sessions[&id]
        .hub
        .as_ref()
        .expect("hub side")
        .incarnation
        .clone();
    let (next, out) = match (state, msg) {
        (HubState::AwaitHello, Some(Nb::Hello(hello))) => {
            if hello.protocol != sync::PROTOCOL {
                return Err("protocol".into());
            }
            w.sessions
                .get_mut(&id)
                .expect("present")
                .hub
                .as_mut()
                .expect("hub")
                .incarnation = hello.incarnation.clone();
            let inc = hello.incarnation;
            let enrolment = w.nodes[node].enrolment.clone();
            match htx_hub::validate::claim_incarnation(&w.hub.replica, &enrolment, &inc) {
                Err(e) => return Err(format!("internal: {e}")),
                Ok(Err(refusal)) => return Err(format!("refused: {refusal}")),
                Ok(Ok(())) => {}
            }
            let eager_new = if hello.changes.is_empty() {
                0
            } else {
                hub_merge(w, node, hello.changes)?.new
            };
            let enrolment = w.nodes[node].enrolment.clone();
            let wel = hub_steps::welcome(&w.hub.replica, &enrolment);
            if wel.digest.as_slice() == hello.digest {
                hub_steps::confirm_in_sync(&w.hub.replica, &name, &inc, &wel.heads)
                    .map_err(|e| e.to_string())?;
                let welcome = pb::Welcome {
                    node: name,
                    in_sync: true,
                    docs: vec![],
                    incarnation: wel.incarnation,
                    new_changes: eager_new as u32,
                };
                (
                    HubState::Done,
                    vec![encode_hub(Hb::Welcome(welcome)), Frame::End],
                )
            } else {
                let docs = wel
                    .heads
                    .iter()
                    .map(|(d, h)| wire::doc_heads(d, h))
                    .collect();
                let welcome = pb::Welcome {
                    node: name,
                    in_sync: false,
                    docs,
                    incarnation: wel.incarnation,
                    new_changes: eager_new as u32,
                };
                (HubState::Serving, vec![encode_hub(Hb::Welcome(welcome))])
            }
        }
        (HubState::Serving, Some(Nb::Changes(batch))) => {
            let merged = hub_merge(w, node, batch.docs)?;
            let docs = merged
                .heads
                .iter()
                .map(|(d, h)| wire::doc_heads(d, h))
                .collect();
            let ack = pb::Ack {
                seq: batch.seq,
                docs,
                new_changes: merged.new as u32,
            };
            (HubState::Serving, vec![encode_hub(Hb::Ack(ack))])
        }
        (HubState::Serving, Some(Nb::Want(want))) => {
            let enrolment = w.nodes[node].enrolment.clone();
            for d in &want.docs {
                if !htx_hub::hub::Hub::readable(&enrolment, &d.doc) {
                    return Err(format!("may not read {}", d.doc));
                }
            }
            let node_heads = hub_steps::want_heads(&want);
            let max = w.hub.config.max_batch_bytes;
            let out = hub_steps::plan_wanted(&mut w.hub.replica, &name, &inc, &node_heads, max)
                .map_err(|e| e.to_string())?;
            if out.batches.is_empty() {
                let digest = scope_digest(w, node);
                let b = pb::ChangeBatch {
                    seq: 1,
                    docs: vec![],
                    r#final: true,
                    digest,
                };
                (HubState::Serving, vec![encode_hub(Hb::Changes(b))])
            } else {
                let count = out.batches.len() as u64;
                let mut batches: VecDeque<_> = out.batches.into();
                let first = batches.pop_front().expect("some");
                let frame = send_batch(w, node, first, 1, count);
                (
                    HubState::Sending {
                        sent: 0,
                        batches,
                        seq: 1,
                        count,
                        unconfirmed: out.unconfirmed,
                        new_at_node: 0,
                    },
                    vec![frame],
                )
            }
        }
        (HubState::Serving, None) => (HubState::Done, vec![Frame::End]),
        (
            HubState::Sending {
                mut batches,
                seq,
                count,
                mut sent,
                unconfirmed,
                mut new_at_node,
            },
            Some(Nb::Ack(ack)),
        ) if ack.seq == seq => {
            hub_steps::record_ack(&mut w.hub.replica, &name, &inc, &ack.docs)
                .map_err(|e| e.to_string())?;
            new_at_node += ack.new_changes as usize;
            sent += 0;
            match batches.pop_front() {
                Some(b) => {
                    let frame = send_batch(w, node, b, seq + 1, count);
                    (
                        HubState::Sending {
                            batches,
                            seq: seq + 1,
                            count,
                            sent,
                            unconfirmed,
                            new_at_node,
                        },
                        vec![frame],
                    )
                }
                None => {
                    let _ = (sent, unconfirmed, new_at_node);
                    (HubState::Serving, vec![])
                }
            }
        }
        (_, other) => {
            return Err(format!(
                "unexpected message {:?}",
                other.map(|m| kind_nb(&m))
            ));
        }
    };
    w.sessions
        .get_mut(&id)
        .expect("present")
        .hub
        .as_mut()
        .expect("hub")
        .state = next;
    Ok(out)
}

fn kind_nb(m: &Nb) -> &'static str {
    match m {
        Nb::Hello(_) => "hello",
        Nb::Changes(_) => "changes",
        Nb::Want(_) => "want",
        Nb::Ack(_) => "ack",
    }
}

fn scope_digest(w: &World, node: usize) -> Vec<u8> {
    hub_steps::welcome(&w.hub.replica, &w.nodes[node].enrolment)
        .digest
        .to_vec()
}

fn send_batch(w: &World, node: usize, batch: sync::Batch, seq: u64, count: u64) -> Frame {
    let last = seq == count;
    let digest = if last {
        scope_digest(w, node)
    } else {
        Vec::new()
    };
    encode_hub(Hb::Changes(pb::ChangeBatch {
        seq,
        docs: wire::batch_to_wire(batch),
        r#final: last,
        digest,
    }))
}

// ---- The node's end --------------------------------------------------------

fn node_receive(w: &mut World, id: u64, frame: Frame) -> Result<(), String> {
    let node = w.sessions[&id].node;
    match node_handle(w, id, frame) {
        Ok(out) => {
            let s = w.sessions.get_mut(&id).expect("present");
            s.to_hub.extend(out);
            Ok(())
        }
        Err(Broken::Session(reason)) => {
            // The session ends with an error; the kept link is dropped.
            w.note(format!("node {node}: session #{id} broken: {reason}"));
            let s = w.sessions.get_mut(&id).expect("present");
            s.node_side.as_mut().expect("node side").state = NodeState::Done;
            // The node drops the stream: the hub's side ends too.
            s.hub = None;
            s.to_hub.clear();
            w.nodes[node].link = None;
            Ok(())
        }
        Err(Broken::Sim(e)) => Err(e),
    }
}

enum Broken {
    /// The session fails, as a real one would (refused, protocol error).
    Session(String),
    /// A check of the simulation failed.
    Sim(String),
}

impl From<String> for Broken {
    fn from(s: String) -> Self {
        Broken::Session(s)
    }
}

fn node_handle(w: &mut World, id: u64, frame: Frame) -> Result<Vec<Frame>, Broken> {
    let i = w.sessions[&id].node;
    let msg = match frame {
        Frame::Msg(bytes) => {
            let m = pb::HubMessage::decode(bytes.as_slice())
                .map_err(|e| format!("undecodable: {e}"))?;
            Some(m.body.ok_or("empty message".to_owned())?)
        }
        Frame::End => None,
        Frame::Fail(reason) => {
            attack_outcome(w, id, false)?;
            return Err(Broken::Session(reason));
        }
    };
    let side = w
        .sessions
        .get_mut(&id)
        .expect("present")
        .node_side
        .as_mut()
        .expect("node side");
    let state = std::mem::replace(&mut side.state, NodeState::Done);
    let hub_inc = side.hub_inc.clone();
    let max = w.nodes[i].max_batch_bytes;
    let err = |e: htx_core::replica::ReplicaError| Broken::Session(e.to_string());
    let (next, out) = match (state, msg) {
        (NodeState::Attacking, Some(Hb::Welcome(_))) => {
            let side = w
                .sessions
                .get_mut(&id)
                .expect("present")
                .node_side
                .as_mut()
                .expect("node");
            let docs = side.attack.as_ref().expect("attack").docs.clone();
            let b = pb::ChangeBatch {
                seq: 1,
                docs,
                ..Default::default()
            };
            (NodeState::Attacking, vec![encode_node(Nb::Changes(b))])
        }
        (NodeState::Attacking, Some(Hb::Ack(_))) => {
            attack_outcome(w, id, true)?;
            (
                NodeState::Finishing {
                    hub_digest: Some(Vec::new()),
                },
                vec![Frame::End],
            )
        }
        (NodeState::AwaitWelcome, Some(Hb::Welcome(welcome))) => {
            let hub_inc = welcome.incarnation.clone();
            w.nodes[i].link = Some(hub_inc.clone());
            w.sessions
                .get_mut(&id)
                .expect("present")
                .node_side
                .as_mut()
                .expect("node")
                .hub_inc = hub_inc.clone();
            if welcome.in_sync {
                (NodeState::Finishing { hub_digest: None }, vec![Frame::End])
            } else {
                let hub_heads = node_steps::welcome_heads(&welcome);
                let out =
                    node_steps::plan_upload(&mut w.nodes[i].replica, &hub_heads, &hub_inc, max)
                        .map_err(err)?;
                let mut batches: VecDeque<_> = out.batches.into();
                match batches.pop_front() {
                    Some(b) => {
                        let (n, _) = sync::batch_size(&b);
                        let frame = encode_node(Nb::Changes(pb::ChangeBatch {
                            seq: 1,
                            docs: wire::batch_to_wire(b),
                            ..Default::default()
                        }));
                        (
                            NodeState::Uploading {
                                batches,
                                seq: 1,
                                sent: n,
                                unconfirmed: out.unconfirmed,
                                new_at_hub: 0,
                                hub_heads,
                            },
                            vec![frame],
                        )
                    }
                    None => {
                        node_steps::refresh_reference(&mut w.nodes[i].replica, &hub_heads)
                            .map_err(err)?;
                        let want = node_steps::want(&w.nodes[i].replica, &hub_heads);
                        let lost = sync::lost_by_peer(0, out.unconfirmed, 0);
                        (
                            NodeState::Downloading,
                            vec![encode_node(Nb::Want(pb::Want {
                                docs: want,
                                resent_lost: lost as u32,
                            }))],
                        )
                    }
                }
            }
        }
        (
            NodeState::Uploading {
                mut batches,
                seq,
                mut sent,
                unconfirmed,
                mut new_at_hub,
                hub_heads,
            },
            Some(Hb::Ack(ack)),
        ) if ack.seq == seq => {
            node_steps::record_ack(&mut w.nodes[i].replica, &hub_inc, &ack.docs).map_err(err)?;
            new_at_hub += ack.new_changes as usize;
            match batches.pop_front() {
                Some(b) => {
                    let (n, _) = sync::batch_size(&b);
                    sent += n;
                    let frame = encode_node(Nb::Changes(pb::ChangeBatch {
                        seq: seq + 1,
                        docs: wire::batch_to_wire(b),
                        ..Default::default()
                    }));
                    (
                        NodeState::Uploading {
                            batches,
                            seq: seq + 1,
                            sent,
                            unconfirmed,
                            new_at_hub,
                            hub_heads,
                        },
                        vec![frame],
                    )
                }
                None => {
                    node_steps::refresh_reference(&mut w.nodes[i].replica, &hub_heads)
                        .map_err(err)?;
                    let want = node_steps::want(&w.nodes[i].replica, &hub_heads);
                    let lost = sync::lost_by_peer(sent, unconfirmed, new_at_hub);
                    (
                        NodeState::Downloading,
                        vec![encode_node(Nb::Want(pb::Want {
                            docs: want,
                            resent_lost: lost as u32,
                        }))],
                    )
                }
            }
        }
        (NodeState::Downloading, Some(Hb::Changes(batch))) => {
            let mut out = Vec::new();
            let last = batch.r#final;
            let digest = batch.digest.clone();
            if !batch.docs.is_empty() {
                let (_, ack) =
                    node_steps::apply_batch(&mut w.nodes[i].replica, batch.seq, batch.docs)
                        .map_err(err)?;
                out.push(encode_node(Nb::Ack(ack)));
            }
            if last {
                out.push(Frame::End);
                (
                    NodeState::Finishing {
                        hub_digest: Some(digest),
                    },
                    out,
                )
            } else {
                (NodeState::Downloading, out)
            }
        }
        (NodeState::Finishing { hub_digest }, None) => {
            let attacking = w.sessions[&id]
                .node_side
                .as_ref()
                .is_some_and(|n| n.attack.is_some());
            if !attacking {
                let r = &w.nodes[i].replica;
                let in_sync = match hub_digest {
                    None => {
                        let at_hello = w.sessions[&id]
                            .node_side
                            .as_ref()
                            .expect("node")
                            .at_hello
                            .clone();
                        node_steps::mark_shared(r, &at_hello, &hub_inc).map_err(err)?;
                        true
                    }
                    Some(d) => {
                        let (now, ours) = node_steps::snapshot(r);
                        let same = ours.as_slice() == d;
                        if same {
                            node_steps::mark_shared(r, &now, &hub_inc).map_err(err)?;
                        }
                        same
                    }
                };
                w.stats.sessions_completed += 1;
                w.note(format!(
                    "node {i}: session #{id} completed (in sync: {in_sync})"
                ));
            }
            (NodeState::Done, vec![])
        }
        (_, other) => {
            return Err(Broken::Session(format!(
                "unexpected {:?}",
                other.map(|m| kind_hb(&m))
            )));
        }
    };
    w.sessions
        .get_mut(&id)
        .expect("present")
        .node_side
        .as_mut()
        .expect("node")
        .state = next;
    Ok(out)
}

fn kind_hb(m: &Hb) -> &'static str {
    match m {
        Hb::Welcome(_) => "welcome",
        Hb::Changes(_) => "changes",
        Hb::Ack(_) => "ack",
    }
}

/// An attack batch was merged (`accepted`) or the session failed: checked
/// against what the attack must get.
fn attack_outcome(w: &mut World, id: u64, accepted: bool) -> Result<(), Broken> {
    let Some(attack) = w
        .sessions
        .get_mut(&id)
        .and_then(|s| s.node_side.as_mut())
        .and_then(|n| n.attack.take())
    else {
        return Ok(());
    };
    // An acknowledged batch may still have merged nothing (an orphan is
    // left out): what counts is whether the hub holds its changes.
    let mut merged = false;
    for d in &attack.docs {
        for raw in &d.changes {
            if let Ok(c) = automerge::Change::from_bytes(raw.clone()) {
                merged |= !w
                    .hub
                    .replica
                    .known(&d.doc, &[c.hash()])
                    .expect("readable")
                    .is_empty();
            }
        }
    }
    let accepted = accepted && merged;
    if !accepted {
        w.stats.attacks_refused += 1;
    }
    w.note(format!(
        "attack {:?}: {}",
        attack.what,
        if accepted {
            "merged"
        } else {
            "refused or left out"
        }
    ));
    if accepted && attack.must_refuse {
        return Err(Broken::Sim(w.fail(&format!(
            "the hub merged an attack it must refuse: {}",
            attack.what
        ))));
    }
    w.forged.extend(attack.forged);
    Ok(())
}

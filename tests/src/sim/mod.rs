//! # Deterministic simulation of a whole network
//!
//! One hub and up to 20 nodes, each a [`Replica`] over an in-memory store,
//! driven by one seeded random generator: no sockets, no clock, no threads,
//! so a seed replays exactly. In the manner of FoundationDB's simulation
//! and TigerBeetle's VOPR, the generator picks, step after step, what
//! happens next among everything that could:
//!
//! - an officer writes on a node: a new record of any kind, a change to
//!   fields (also the same field on two nodes that share a commune, before
//!   either syncs), a delete or a restore ([`officer`]);
//! - a node opens a session, or one message of an open session is
//!   delivered, in either direction; the hub's and the node's handling of
//!   a message are the functions the real servers run
//!   (`htx_hub::session`, `htx_hub::validate::merge`,
//!   `htx_node::session`), in the order the async code runs them
//!   ([`session`]);
//! - faults: a session cut at any message (the hub may still handle what
//!   it had received, after the node has moved on: delayed messages), a
//!   message duplicated or two swapped within a stream, a node or the hub
//!   crashing (everything not committed is lost: the replica is opened
//!   again from its store), restored from a backup taken earlier (a new
//!   incarnation), clock skew on the nodes' timestamps, and an
//!   adversarial node sending batches split into duplicated entries,
//!   documents outside its scope, changes under other nodes' actor ids,
//!   bad records and orphans.
//!
//! After every step [`check`] verifies what must hold at any time, and at
//! the end the network is healed (faults off, every node syncs until
//! nothing moves) and everything is checked: every acknowledged write is on
//! every replica that should hold it (unless a restore rolled back every
//! replica that held it), all replicas of a document have identical heads,
//! nothing outside a node's scope was merged, and progress at the hub (the
//! live view) equals a recomputation from scratch and each node's figures
//! for its own units.
//!
//! A failure names its seed and step; `SIM_SEED=… cargo test -p htx-tests
//! --test simulation` replays it exactly.

mod check;
mod officer;
mod session;
mod world;

pub use world::{Config, Stats, run};

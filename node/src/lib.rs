//! # htx-node: a district (or commune) office's node
//!
//! # Layout
//! - [`config`] — `DIR/node.toml`;
//! - [`node`] — the state and the officers' operations (no gRPC);
//! - [`locations`] — where each record is, re-read only for documents that
//!   changed;
//! - [`sync_client`] — one sync session with the hub, and the loop that
//!   reconnects with back-off and jitter; [`session`]: its steps on the
//!   replica, without I/O (what the simulation drives);
//! - [`api`] — the local gRPC API that the commands reach while `run` runs;
//! - [`cli`] — the `htx-node` commands.

pub mod api;
pub mod cli;
pub mod config;
pub mod locations;
pub mod node;
pub mod session;
pub mod sync_client;

//! # htx-node: a district (or commune) office's node
//!
//! # Layout
//! - [`config`] — `DIR/node.toml`;
//! - [`node`] — the state and the officers' operations (no gRPC);
//! - [`locations`] — where each record is, re-read only for documents that
//!   changed;
//! - [`sync_client`] — one sync session with the hub, and the loop that
//!   reconnects with back-off and jitter;
//! - [`api`] — the local gRPC API that the commands reach while `run` runs;
//! - [`telemetry`] — `/healthz`, `/readyz`, `/metrics` on the status port,
//!   and the session log line;
//! - [`cli`] — the `htx-node` commands.

pub mod api;
pub mod cli;
pub mod config;
pub mod locations;
pub mod node;
pub mod sync_client;
pub mod telemetry;

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
//! - [`query`] — what the officers' pages read: lists with filters, a
//!   cooperative with what refers to it, pickers, what needs attention;
//! - [`api`] — the local gRPC API that the commands reach while `run` runs;
//! - [`sheets`] — spreadsheets: `.xlsx`/`.csv` import with a preview,
//!   templates and exports, for the CLI and the web pages;
//! - [`web`] — the officers' web app (pages on `htx-web`), served by `run`;
//!   templates in `node/templates/`, words in `web/locales/*/node.ftl`;
//! - [`users`] — `htx-node user add|passwd|disable|list`: officers'
//!   accounts (stored by `htx_web::accounts`);
//! - [`telemetry`] — `/healthz`, `/readyz`, `/metrics` on the status port,
//!   and the session log line;
//! - [`cli`] — the `htx-node` commands.

pub mod api;
pub mod cli;
pub mod config;
pub mod locations;
pub mod node;
pub mod query;
pub mod session;
pub mod sheets;
pub mod sync_client;
pub mod telemetry;
pub mod users;
pub mod web;

//! # htx-hub: the provincial hub
//!
//! # Layout
//! - [`config`] — `DIR/hub.toml`; [`home`]: the hub's directory, CA and enrolments;
//! - [`hub`] — the merged replica and what the hub knows of each node (no gRPC);
//! - [`progress`] — progress against the plan, kept current as records merge;
//! - [`http`] — progress as JSON and CSV over HTTP; [`telemetry`]: health,
//!   readiness and Prometheus metrics on the same port, the session log line;
//! - [`sync_service`] — the hub's side of a sync session; [`session`]: its
//!   steps on the replica, without I/O (what the simulation drives);
//! - [`validate`] — checks a node's changes on a copy before they merge;
//!   [`quarantine`] keeps what is refused, [`audit`] logs both;
//! - [`admin`] — the administration API and the servers;
//! - [`views`] — what the dashboard and the reports read (the progress API,
//!   months, scopes, node freshness, the data version);
//!   [`table`] — a page's table, also as `.csv` and `.xlsx`;
//!   [`report`] — the yearly report and the phase reviews;
//!   [`periods`] — closed periods (figures kept, differences found) and
//!   submissions by districts and communes;
//!   [`web`] — the dashboard's pages on the HTTP port (on `htx-web`);
//! - [`cli`] — the `htx-hub` commands; [`node_list`]: what `nodes` prints;
//! - [`memory`] — freed memory given back to the system, now and then.

pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
pub mod home;
pub mod http;
pub mod hub;
pub mod memory;
pub mod node_list;
pub mod periods;
pub mod progress;
pub mod quarantine;
pub mod report;
pub mod session;
pub mod sync_service;
pub mod table;
pub mod telemetry;
pub mod tls;
pub mod validate;
pub mod views;
pub mod web;

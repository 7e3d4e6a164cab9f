//! # htx-hub: the provincial hub
//!
//! # Layout
//! - [`config`] — `DIR/hub.toml`; [`home`]: the hub's directory, CA and enrolments;
//! - [`hub`] — the merged replica and what the hub knows of each node (no gRPC);
//! - [`progress`] — progress against the plan, kept current as records merge;
//! - [`http`] — progress as JSON and CSV over HTTP;
//! - [`sync_service`] — the hub's side of a sync session;
//! - [`validate`] — checks a node's changes on a copy before they merge;
//!   [`quarantine`] keeps what is refused, [`audit`] logs both;
//! - [`admin`] — the administration API and the servers;
//! - [`views`] — what the dashboard and the reports read (the progress API,
//!   months, scopes, node freshness, the data version);
//!   [`table`] — a page's table, also as `.csv` and `.xlsx`;
//!   [`report`] — the yearly report and the phase reviews;
//!   [`web`] — the dashboard's pages on the HTTP port (on `htx-web`);
//! - [`cli`] — the `htx-hub` commands.

pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
pub mod home;
pub mod http;
pub mod hub;
pub mod progress;
pub mod quarantine;
pub mod report;
pub mod sync_service;
pub mod table;
pub mod tls;
pub mod validate;
pub mod views;
pub mod web;

//! # htx-core
//!
//! Everything the node and the hub share, with no network code:
//!
//! - [`storage`]: the [`storage::Store`] trait and its redb, sled and
//!   in-memory backends;
//! - [`replica`]: Automerge documents kept durably in a store, with sync state;
//! - [`format`]: the store's format version marker and the migrations run
//!   when an older store is opened (a newer one is refused);
//! - [`sync`]: the I/O-free sync engine (digests, change batches);
//! - [`schema`]: the record kinds and their fields; [`docs`]: how records sit
//!   inside Automerge documents; [`index`]: every record materialized
//!   beside its document, for fast reads; [`units`]: the administrative hierarchy,
//!   its versions and how a unit of one version counts under another;
//! - [`plan`]: the plan's phases, indicators and targets, read from a plan
//!   file; [`territory`]: the units a plan covers in every version;
//!   [`allocation`]: its targets given to units below its territory;
//!   [`progress`]: the I/O-free engine that computes progress against
//!   it for every unit, incrementally as records change; [`report`]: the
//!   figures as people and programs read them; [`facts`]: what the hub
//!   tells a node about its people from records it does not hold;
//! - [`pki`]: the hub's CA, certificates and node bundles;
//! - [`settings`]: checks shared by the node's and the hub's settings.

pub mod allocation;
pub mod docs;
pub mod facts;
pub mod format;
pub mod index;
pub mod pki;
pub mod plan;
pub mod progress;
pub mod replica;
pub mod report;
pub mod schema;
pub mod settings;
pub mod storage;
pub mod sync;
pub mod territory;
pub mod units;
pub mod wire;

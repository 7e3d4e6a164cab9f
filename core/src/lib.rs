//! # htx-core
//!
//! Everything the node and the hub share, with no network code:
//!
//! - [`storage`]: the [`storage::Store`] trait and its redb, sled and
//!   in-memory backends;
//! - [`replica`]: Automerge documents kept durably in a store, with sync state;
//! - [`sync`]: the I/O-free sync engine (digests, change batches);
//! - [`schema`]: the record kinds and their fields; [`docs`]: how records sit
//!   inside Automerge documents; [`units`]: the administrative hierarchy;
//! - [`pki`]: the hub's CA, certificates and node bundles.

pub mod docs;
pub mod pki;
pub mod replica;
pub mod schema;
pub mod storage;
pub mod sync;
pub mod units;
pub mod wire;

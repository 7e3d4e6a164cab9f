//! A district node's storage churn, shared by the disk-bound tests in
//! `tests/storage.rs` and the benchmark in `examples/storage_churn.rs`.
//!
//! Every step edits one document through [`Replica::change`] (one durable
//! commit: an incremental chunk, or a snapshot that replaces the chunks) and
//! then records the heads shared with the hub (a second durable commit of a
//! ~40 B value that is overwritten again and again). Edits overwrite one of
//! 32 fields with 200 B–6 KB of random bytes, so nothing compresses and every
//! document's history (and so its snapshot) grows past sled's blob threshold.

// Each user of this file needs a different part of it.
#![allow(dead_code)]

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::ROOT;
use automerge::transaction::Transactable;
use htx_core::replica::{Replica, ReplicaError};
use htx_core::storage::{Store, WriteBatch};

/// sled 0.34.7 writes a page bigger than this (segment size / 4) to its own
/// file under `blobs/`.
pub const SLED_BLOB_THRESHOLD: u64 = 128 * 1024;

/// A small deterministic generator (splitmix64): a child process and its
/// parent derive the same values from the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn range(&mut self, r: Range<usize>) -> usize {
        r.start + self.below((r.end - r.start) as u64) as usize
    }

    /// `len` bytes that do not compress.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

pub struct Churn {
    pub docs: usize,
    pub edits_per_doc: usize,
    pub seed: u64,
    /// How many times during the run to measure live and disk bytes.
    pub checkpoints: usize,
    /// Close and reopen the store after each checkpoint.
    pub restarts: bool,
}

/// Live data (the sum of key and value lengths) against the store's size.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub live: u64,
    pub disk: u64,
}

impl Usage {
    pub fn of(store: &dyn Store) -> Self {
        let live = store
            .scan(b"")
            .expect("scan")
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        Usage {
            live,
            disk: store.size_on_disk().expect("size on disk"),
        }
    }

    pub fn ratio(&self) -> f64 {
        self.disk as f64 / self.live as f64
    }
}

pub struct Outcome {
    /// Durable commits acknowledged (edits plus sync-state writes).
    pub commits: u64,
    /// Time spent writing; measuring and restarting are left out.
    pub elapsed: Duration,
    /// Snapshots written that sled stores as blobs.
    pub large_snapshots: u64,
    pub largest_snapshot: u64,
    pub end: Usage,
}

impl Outcome {
    pub fn commits_per_sec(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
    }
}

pub fn doc_id(n: usize) -> String {
    format!("u/2023/{n:04}")
}

/// Key of a document's first chunk; see the key layout in `htx_core::replica`.
/// It is absent right after an edit only if that edit compacted the document.
pub fn first_chunk_key(doc: &str) -> Vec<u8> {
    [b"d\0", doc.as_bytes(), b"\0c", &0u64.to_be_bytes()].concat()
}

pub fn snapshot_key(doc: &str) -> Vec<u8> {
    [b"d\0", doc.as_bytes(), b"\0s"].concat()
}

impl Churn {
    /// Runs the churn on the store `open` returns, calling `at_checkpoint`
    /// with the usage measured `checkpoints` times along the way (the last
    /// one at the end). With `restarts`, the store is closed and opened
    /// again after each checkpoint but the last, as a node that is switched
    /// off at night would.
    pub fn run(
        &self,
        mut open: impl FnMut() -> Arc<dyn Store>,
        mut at_checkpoint: impl FnMut(Usage),
    ) -> Result<Outcome, ReplicaError> {
        let mut store = open();
        let mut replica = Replica::open(store.clone())?;
        let mut rng = Rng::new(self.seed);
        let every = (self.edits_per_doc / self.checkpoints.max(1)).max(1);
        let (mut commits, mut large_snapshots, mut largest_snapshot) = (0, 0, 0);
        let mut not_writing = Duration::ZERO;
        let started = Instant::now();
        for pass in 1..=self.edits_per_doc {
            for n in 0..self.docs {
                let id = doc_id(n);
                let field = format!("f{:02}", rng.below(32));
                let len = rng.range(200..6000);
                let value = rng.bytes(len);
                replica.change(&id, |doc| doc.put(ROOT, field.as_str(), value))??;
                commits += 1;
                let t = Instant::now();
                if store.get(&first_chunk_key(&id))?.is_none() {
                    let snapshot = store.get(&snapshot_key(&id))?.map_or(0, |v| v.len() as u64);
                    largest_snapshot = largest_snapshot.max(snapshot);
                    if snapshot > SLED_BLOB_THRESHOLD {
                        large_snapshots += 1;
                    }
                }
                not_writing += t.elapsed();
                let mut sync_state = WriteBatch::default();
                Replica::put_shared_heads(
                    &mut sync_state,
                    "hub",
                    &id,
                    &replica.heads(&id),
                    &[1; 16],
                );
                replica.commit(sync_state)?;
                commits += 1;
            }
            if pass % every == 0 || pass == self.edits_per_doc {
                let t = Instant::now();
                at_checkpoint(Usage::of(&*store));
                if self.restarts && pass != self.edits_per_doc {
                    drop(replica);
                    drop(store);
                    store = open();
                    replica = Replica::open(store.clone())?;
                }
                not_writing += t.elapsed();
            }
        }
        let elapsed = started.elapsed() - not_writing;
        Ok(Outcome {
            commits,
            elapsed,
            large_snapshots,
            largest_snapshot,
            end: Usage::of(&*store),
        })
    }
}

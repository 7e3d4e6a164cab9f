//! # A replica: Automerge documents kept durably in a [`Store`]
//!
//! The node and the hub each hold one. Every document is stored as a
//! snapshot plus a log of incremental chunks; a write appends one chunk and
//! returns only after the store has it on disk. When the chunks outgrow the
//! snapshot, a new snapshot replaces them in the same atomic commit.
//!
//! Stored values carry a format version and the heads they lead to; loading
//! checks those heads, because Automerge silently accepts a corrupt tail.
//!
//! # Documents in memory ([`Options`])
//! Those heads also let a replica open without loading any document: what
//! sync needs of a document it does not touch (its heads, its stored size,
//! where its next chunk goes) is read from the stored values' headers. A
//! document is loaded, and checked, on first use (a sync that needs its
//! changes, a write, a read of its records), and the least recently used
//! ones are dropped from memory beyond a bound ([`Options::cache_docs`],
//! [`Options::cache_bytes`]); they stay in the store. A document found
//! damaged when first loaded is set aside then, as at opening. The node
//! keeps the default ([`Options::EVERYTHING`]): every document loaded and
//! checked at opening, kept for the replica's life (a node's replica is
//! small); the hub bounds its cache, so that its memory follows the
//! documents in use, not the size of the country.
//!
//! Keys (`\0`-separated):
//! - `d\0{doc}\0s`           snapshot
//! - `d\0{doc}\0c{seq:be64}`  incremental chunk
//! - `p\0{peer}\0{doc}`      heads both this replica and `peer` hold (sync state),
//!   with the peer incarnation that confirmed them
//! - `m\0{name}`             replica metadata (node bookkeeping)
//! - `q\0{doc}\0...`         a damaged document's snapshot and chunks, set
//!   aside when the replica opened or first loaded it (see [`Replica::damaged`])
//! - `r\0{doc}\0{id}`        the record index, kept by the hub ([`crate::index`])
//!
//! # Incarnations
//! Each time a replica is opened it takes a fresh random actor id, and that
//! id is also its *incarnation*. A replica restored from a backup, or whose
//! store was replaced, is therefore a new incarnation, and:
//! - it never reuses an (actor, sequence number) pair that the copy it
//!   replaces had already used and sent (Automerge refuses such twins, and
//!   the peers would never converge);
//! - what a peer believed it held ("shared heads", recorded with the
//!   incarnation that confirmed them) is not trusted any more: see
//!   [`crate::sync`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use sha2::{Digest, Sha256};

use crate::storage::{Store, StoreError, WriteBatch};

const FORMAT: u8 = 1;
/// Chunks are folded into a new snapshot once they exceed the snapshot and
/// this many bytes.
const COMPACT_MIN_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("document {doc} is damaged in the store: {reason}")]
    Corrupt { doc: String, reason: String },
    #[error("malformed change for document {doc}: {reason}")]
    BadChange { doc: String, reason: String },
}

pub type Result<T, E = ReplicaError> = std::result::Result<T, E>;

/// A stored key (relative to its document) and value.
type KeyValue = (Vec<u8>, Vec<u8>);

struct Entry {
    /// The document, while it is loaded.
    doc: Option<AutoCommit>,
    /// Heads of what is on disk, sorted.
    saved: Vec<ChangeHash>,
    next_chunk: u64,
    chunk_bytes: u64,
    snapshot_bytes: u64,
    /// When it was last used (the replica's clock), while loaded.
    used: u64,
}

impl Entry {
    fn new(actor: ActorId) -> Self {
        Entry {
            doc: Some(AutoCommit::new().with_actor(actor)),
            saved: Vec::new(),
            next_chunk: 0,
            chunk_bytes: 0,
            snapshot_bytes: 0,
            used: 0,
        }
    }

    /// A document known by its stored values' headers, not loaded.
    fn cold(s: Stored) -> Self {
        Entry {
            doc: None,
            saved: s.heads,
            next_chunk: s.next_chunk,
            chunk_bytes: s.chunk_bytes,
            snapshot_bytes: s.snapshot_bytes,
            used: 0,
        }
    }

    fn bytes(&self) -> u64 {
        self.snapshot_bytes + self.chunk_bytes
    }
}

/// How a replica keeps its documents in memory: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Load and check every document when the replica opens (a damaged one
    /// is set aside at once). Off: each document is loaded and checked on
    /// first use, and opening reads only the stored values' headers.
    pub check_at_open: bool,
    /// Most documents kept loaded; the least recently used beyond it are
    /// dropped from memory. `None`: no bound.
    pub cache_docs: Option<usize>,
    /// Most stored bytes (snapshot and chunks, compressed) of the documents
    /// kept loaded; in memory a document takes several times its stored
    /// size. `None`: no bound. The document in use is kept whatever its
    /// size, and one operation on several documents (a batch, a write)
    /// holds them all until it ends.
    pub cache_bytes: Option<u64>,
}

impl Options {
    /// Every document loaded and checked at opening, kept loaded: the node's.
    pub const EVERYTHING: Options = Options {
        check_at_open: true,
        cache_docs: None,
        cache_bytes: None,
    };

    fn keeps_everything(&self) -> bool {
        self.check_at_open && self.cache_docs.is_none() && self.cache_bytes.is_none()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::EVERYTHING
    }
}

/// What opening learnt of a document from its stored values' headers.
struct Stored {
    heads: Vec<ChangeHash>,
    next_chunk: u64,
    chunk_bytes: u64,
    snapshot_bytes: u64,
}

/// Reads a document's stored values' headers (not its changes): the heads
/// the last of them leads to, its sizes, its next chunk number.
fn read_headers(entries: &[KeyValue]) -> Result<Stored, String> {
    let mut out = Stored {
        heads: Vec::new(),
        next_chunk: 0,
        chunk_bytes: 0,
        snapshot_bytes: 0,
    };
    let mut snapshot_heads = None;
    for (k, v) in entries {
        let (heads, _) = decode_heads_value(v).ok_or_else(|| {
            if k == b"s" {
                "unreadable snapshot header"
            } else {
                "unreadable chunk header"
            }
            .to_owned()
        })?;
        if k == b"s" {
            out.snapshot_bytes = v.len() as u64;
            snapshot_heads = Some(heads);
        } else {
            // Chunk keys sort by sequence number: the last one read is the
            // newest, and it follows the snapshot.
            let seq: [u8; 8] = k
                .get(1..9)
                .and_then(|s| s.try_into().ok())
                .ok_or("bad chunk key")?;
            out.next_chunk = u64::from_be_bytes(seq) + 1;
            out.chunk_bytes += v.len() as u64;
            out.heads = heads;
        }
    }
    if out.next_chunk == 0 {
        out.heads = snapshot_heads.unwrap_or_default();
    }
    out.heads.sort();
    Ok(out)
}

/// What [`Replica::apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Each touched document's heads afterwards.
    pub heads: Vec<(String, Vec<ChangeHash>)>,
    /// Changes this replica did not hold before.
    pub new: usize,
    /// Changes left out because a dependency is missing.
    pub pending: usize,
}

/// Drops what Automerge logged of the changes `doc` was given. Automerge
/// 0.12 logs every map value that changes arrive with (`apply_changes`,
/// `load_incremental`) in the document's patch log even when no one asked
/// for patches, and keeps it as long as the document: a document kept
/// loaded grew by about 2 KB a change received (the hub's scale bench,
/// `heaptrack`). Nothing here reads patches.
fn forget_patches(doc: &mut AutoCommit) {
    doc.reset_diff_cursor();
}

/// Splits `changes` into those not yet in `doc` that can be applied in
/// order (every dependency in `doc` or earlier in the list, whatever order
/// they came in), and those still waiting for a dependency. Changes `doc`
/// already holds are dropped.
pub fn ready_changes(doc: &mut AutoCommit, changes: Vec<Change>) -> (Vec<Change>, Vec<Change>) {
    let mut ready: Vec<Change> = Vec::new();
    let mut have: std::collections::HashSet<ChangeHash> = std::collections::HashSet::new();
    let mut waiting: Vec<Change> = changes
        .into_iter()
        .filter(|c| doc.get_change_by_hash(&c.hash()).is_none())
        .collect();
    loop {
        let before = waiting.len();
        let mut still = Vec::new();
        for c in waiting {
            if have.contains(&c.hash()) {
                continue; // a duplicate within the batch
            }
            let deps_held = c
                .deps()
                .iter()
                .all(|d| have.contains(d) || doc.get_change_by_hash(d).is_some());
            if deps_held {
                have.insert(c.hash());
                ready.push(c);
            } else {
                still.push(c);
            }
        }
        waiting = still;
        if waiting.is_empty() || waiting.len() == before {
            return (ready, waiting);
        }
    }
}

pub struct Replica {
    store: Arc<dyn Store>,
    actor: ActorId,
    docs: BTreeMap<String, Entry>,
    options: Options,
    /// Counts uses of documents, for least-recently-used eviction.
    clock: u64,
    /// Loaded documents by last use, oldest first.
    lru: BTreeMap<u64, String>,
    /// Documents loaded from the store since opening.
    loads: u64,
}

fn doc_prefix(doc: &str) -> Vec<u8> {
    [b"d\0", doc.as_bytes(), b"\0"].concat()
}
fn snapshot_key(doc: &str) -> Vec<u8> {
    [doc_prefix(doc), b"s".to_vec()].concat()
}
fn chunk_key(doc: &str, seq: u64) -> Vec<u8> {
    [doc_prefix(doc), b"c".to_vec(), seq.to_be_bytes().to_vec()].concat()
}
fn sync_key(peer: &str, doc: &str) -> Vec<u8> {
    [b"p\0", peer.as_bytes(), b"\0", doc.as_bytes()].concat()
}
fn meta_key(name: &str) -> Vec<u8> {
    [b"m\0", name.as_bytes()].concat()
}

/// `[FORMAT][count: u16][heads: 32 bytes each][payload]`
pub fn encode_heads_value(heads: &[ChangeHash], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(3 + heads.len() * 32 + payload.len());
    v.push(FORMAT);
    v.extend_from_slice(&(heads.len() as u16).to_be_bytes());
    for h in heads {
        v.extend_from_slice(&h.0);
    }
    v.extend_from_slice(payload);
    v
}

pub fn decode_heads_value(v: &[u8]) -> Option<(Vec<ChangeHash>, &[u8])> {
    if v.first() != Some(&FORMAT) || v.len() < 3 {
        return None;
    }
    let n = u16::from_be_bytes([v[1], v[2]]) as usize;
    let end = 3 + n * 32;
    let heads = v
        .get(3..end)?
        .chunks(32)
        .map(|c| ChangeHash::try_from(c).ok())
        .collect::<Option<_>>()?;
    Some((heads, &v[end..]))
}

/// A stored value cut after its header (format, heads): what opening
/// keeps of a document it does not load. An unreadable header is kept
/// whole, to be refused as such.
fn header_only(mut v: Vec<u8>) -> Vec<u8> {
    if v.first() == Some(&FORMAT) && v.len() >= 3 {
        let end = 3 + u16::from_be_bytes([v[1], v[2]]) as usize * 32;
        if end <= v.len() {
            v.truncate(end);
            v.shrink_to_fit();
        }
    }
    v
}

/// A document that failed its checks when the replica opened or loaded it:
/// its stored snapshot and chunks were moved under `q\0{doc}\0` (kept for
/// inspection) and the replica went on without it. A node then lacks that
/// document, and its next sync downloads it whole from the hub.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Damaged {
    pub doc: String,
    pub reason: String,
    pub set_aside_at: String,
}

fn quarantine_prefix(doc: &str) -> Vec<u8> {
    [b"q\0", doc.as_bytes(), b"\0"].concat()
}
fn damaged_key(doc: &str) -> Vec<u8> {
    meta_key(&format!("damaged\0{doc}"))
}

pub fn heads_from_bytes(raw: &[Vec<u8>]) -> Vec<ChangeHash> {
    raw.iter()
        .filter_map(|h| ChangeHash::try_from(h.as_slice()).ok())
        .collect()
}

impl Replica {
    /// Opens the replica kept in `store`, loading and checking every
    /// document ([`Options::EVERYTHING`]).
    pub fn open(store: Arc<dyn Store>) -> Result<Self> {
        Self::open_with(store, Options::EVERYTHING)
    }

    /// Opens the replica kept in `store`, keeping documents in memory as
    /// `options` say.
    pub fn open_with(store: Arc<dyn Store>, options: Options) -> Result<Self> {
        // A new incarnation: see the module docs.
        Self::open_as_with(store, ActorId::random(), options)
    }

    /// As [`Replica::open`], with `actor` as the new incarnation's actor id
    /// instead of a random one: for the deterministic simulation
    /// (`tests/src/sim`), where one seed must replay exactly. The id must
    /// never have been used before by any replica.
    pub fn open_as(store: Arc<dyn Store>, actor: ActorId) -> Result<Self> {
        Self::open_as_with(store, actor, Options::EVERYTHING)
    }

    /// As [`Replica::open_as`], with `options`.
    pub fn open_as_with(store: Arc<dyn Store>, actor: ActorId, options: Options) -> Result<Self> {
        let mut by_doc: BTreeMap<String, Vec<KeyValue>> = BTreeMap::new();
        for (k, v) in store.scan(b"d\0")? {
            let rest = &k[2..];
            let Some(sep) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            let doc = String::from_utf8_lossy(&rest[..sep]).into_owned();
            // Only the header is kept unless every document is checked now.
            let v = if options.check_at_open {
                v
            } else {
                header_only(v)
            };
            by_doc
                .entry(doc)
                .or_default()
                .push((rest[sep + 1..].to_vec(), v));
        }
        let mut replica = Replica {
            store,
            actor,
            docs: BTreeMap::new(),
            options,
            clock: 0,
            lru: BTreeMap::new(),
            loads: 0,
        };
        let mut set_aside = WriteBatch::default();
        for (doc_id, entries) in by_doc {
            let loaded = if options.check_at_open {
                Self::load_entry(&doc_id, entries.clone(), &replica.actor).map(Some)
            } else {
                read_headers(&entries)
                    .map(|s| Some(Entry::cold(s)))
                    .map_err(|reason| ReplicaError::Corrupt {
                        doc: doc_id.clone(),
                        reason,
                    })
            };
            match loaded {
                Ok(Some(entry)) => {
                    let loaded = entry.doc.is_some();
                    replica.docs.insert(doc_id.clone(), entry);
                    if loaded {
                        replica.loads += 1;
                        replica.touch(&doc_id);
                        replica.trim();
                    }
                }
                Ok(None) => {}
                // One damaged document must not make the whole replica
                // unreadable: set it aside, name it, open the rest.
                Err(e @ (ReplicaError::Corrupt { .. } | ReplicaError::Automerge(_))) => {
                    let entries = if options.check_at_open {
                        entries
                    } else {
                        Self::stored_values(&replica.store, &doc_id)?
                    };
                    Self::set_aside(&replica.store, &doc_id, &entries, e, &mut set_aside)?;
                }
                Err(e) => return Err(e),
            }
        }
        if !set_aside.is_empty() {
            replica.store.commit(set_aside)?;
        }
        Ok(replica)
    }

    /// Document `doc`'s stored values, keys relative to the document.
    fn stored_values(store: &Arc<dyn Store>, doc: &str) -> Result<Vec<KeyValue>> {
        let prefix = doc_prefix(doc);
        Ok(store
            .scan(&prefix)?
            .into_iter()
            .map(|(k, v)| (k[prefix.len()..].to_vec(), v))
            .collect())
    }

    /// Moves a damaged document's stored values under the quarantine
    /// prefix, forgets what any peer was known to hold of it (so a sync
    /// sends it whole again), and records why.
    fn set_aside(
        store: &Arc<dyn Store>,
        doc_id: &str,
        entries: &[KeyValue],
        error: ReplicaError,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let reason = match error {
            ReplicaError::Corrupt { reason, .. } => reason,
            other => other.to_string(),
        };
        tracing::error!(
            doc = %doc_id,
            "document {doc_id} is damaged in the store ({reason}); set aside, the replica goes on without it / tài liệu {doc_id} bị hỏng, đã được tách riêng"
        );
        for (k, _) in store.scan(&quarantine_prefix(doc_id))? {
            batch.delete(k);
        }
        for (rest, v) in entries {
            batch.put(
                [quarantine_prefix(doc_id), rest.clone()].concat(),
                v.clone(),
            );
            batch.delete([doc_prefix(doc_id), rest.clone()].concat());
        }
        let suffix = [b"\0", doc_id.as_bytes()].concat();
        for (k, _) in store.scan(b"p\0")? {
            if k.ends_with(&suffix) {
                batch.delete(k);
            }
        }
        let record = Damaged {
            doc: doc_id.to_owned(),
            reason,
            set_aside_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        batch.put(
            damaged_key(doc_id),
            serde_json::to_vec(&record).expect("serializes"),
        );
        Ok(())
    }

    /// Every document found damaged and set aside since this store was
    /// made, oldest name first. One the replica holds again (a sync brought
    /// it back) is still listed: `has_doc` tells.
    pub fn damaged(&self) -> Result<Vec<Damaged>> {
        let prefix = meta_key("damaged\0");
        Ok(self
            .store
            .scan(&prefix)?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }

    pub fn has_doc(&self, id: &str) -> bool {
        self.docs.contains_key(id)
    }

    fn load_entry(doc_id: &str, entries: Vec<KeyValue>, actor: &ActorId) -> Result<Entry> {
        let corrupt = |reason: &str| ReplicaError::Corrupt {
            doc: doc_id.to_owned(),
            reason: reason.to_owned(),
        };
        let mut doc = AutoCommit::new();
        let mut expected: Vec<ChangeHash> = Vec::new();
        let (mut next_chunk, mut chunk_bytes, mut snapshot_bytes) = (0, 0, 0);
        // The snapshot key (`s`) sorts after the chunk keys (`c`): load it first.
        let (snap, chunks): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(k, _)| k == b"s");
        for (_, v) in snap {
            let (heads, payload) =
                decode_heads_value(&v).ok_or_else(|| corrupt("unreadable snapshot header"))?;
            doc = AutoCommit::load(payload)?;
            snapshot_bytes = v.len() as u64;
            expected = heads;
        }
        for (k, v) in chunks {
            let (heads, payload) =
                decode_heads_value(&v).ok_or_else(|| corrupt("unreadable chunk header"))?;
            doc.load_incremental(payload)?;
            expected = heads;
            chunk_bytes += v.len() as u64;
            let seq: [u8; 8] = k
                .get(1..9)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| corrupt("bad chunk key"))?;
            next_chunk = u64::from_be_bytes(seq) + 1;
        }
        forget_patches(&mut doc);
        let mut got = doc.get_heads();
        got.sort();
        expected.sort();
        if got != expected {
            return Err(corrupt(
                "its changes do not lead to the heads recorded with them",
            ));
        }
        doc.set_actor(actor.clone());
        Ok(Entry {
            doc: Some(doc),
            saved: got,
            next_chunk,
            chunk_bytes,
            snapshot_bytes,
            used: 0,
        })
    }

    /// Marks document `id` (loaded) as just used.
    fn touch(&mut self, id: &str) {
        let Some(e) = self.docs.get_mut(id).filter(|e| e.doc.is_some()) else {
            return;
        };
        self.lru.remove(&e.used);
        self.clock += 1;
        e.used = self.clock;
        self.lru.insert(self.clock, id.to_owned());
    }

    /// Drops document `id` from memory and from the list of documents.
    fn remove_entry(&mut self, id: &str) {
        if let Some(e) = self.docs.remove(id)
            && e.doc.is_some()
        {
            self.lru.remove(&e.used);
        }
    }

    /// Loads document `id` if this replica holds it and it is not loaded,
    /// and marks it used. Whether the replica holds it (a document found
    /// damaged is set aside here, and is then not held).
    fn ensure_loaded(&mut self, id: &str) -> Result<bool> {
        let Some(entry) = self.docs.get(id) else {
            return Ok(false);
        };
        if entry.doc.is_none() {
            let entries = Self::stored_values(&self.store, id)?;
            match Self::load_entry(id, entries.clone(), &self.actor) {
                Ok(mut loaded) => {
                    let entry = self.docs.get_mut(id).expect("held");
                    loaded.used = entry.used;
                    *entry = loaded;
                    self.loads += 1;
                }
                Err(e @ (ReplicaError::Corrupt { .. } | ReplicaError::Automerge(_))) => {
                    let mut batch = WriteBatch::default();
                    Self::set_aside(&self.store, id, &entries, e, &mut batch)?;
                    self.store.commit(batch)?;
                    self.remove_entry(id);
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        self.touch(id);
        Ok(true)
    }

    /// Drops the least recently used documents from memory beyond the
    /// bounds of [`Options`]; the most recently used one always stays.
    fn trim(&mut self) {
        let Options {
            cache_docs,
            cache_bytes,
            ..
        } = self.options;
        if cache_docs.is_none() && cache_bytes.is_none() {
            return;
        }
        let mut bytes: u64 = self
            .lru
            .values()
            .filter_map(|id| self.docs.get(id))
            .map(Entry::bytes)
            .sum();
        while self.lru.len() > 1
            && (cache_docs.is_some_and(|n| self.lru.len() > n)
                || cache_bytes.is_some_and(|b| bytes > b))
        {
            let (_, id) = self.lru.pop_first().expect("not empty");
            if let Some(e) = self.docs.get_mut(&id) {
                bytes -= e.bytes();
                e.doc = None;
            }
        }
    }

    /// Documents loaded in memory now, and times a document was loaded from
    /// the store since the replica opened.
    pub fn cache_figures(&self) -> (usize, u64) {
        (self.lru.len(), self.loads)
    }

    /// This incarnation's actor id: the author of every local change made
    /// since the replica was opened.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// This incarnation, as peers record it beside the heads they share.
    pub fn incarnation(&self) -> Vec<u8> {
        self.actor.to_bytes().to_vec()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The options the replica was opened with.
    pub fn options(&self) -> Options {
        self.options
    }

    pub fn doc_ids(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    /// Document `id`, loaded. Every document is loaded in a replica opened
    /// with [`Options::EVERYTHING`] (the node's); with a bounded cache use
    /// [`Replica::load`].
    ///
    /// # Panics
    /// If the replica holds `id` but has not loaded it: a caller that
    /// should have used [`Replica::load`].
    pub fn doc(&self, id: &str) -> Option<&AutoCommit> {
        self.docs.get(id).map(|e| {
            e.doc.as_ref().unwrap_or_else(|| {
                panic!("document {id} is not loaded: use Replica::load (bounded cache)")
            })
        })
    }

    /// Document `id`, loaded from the store if it is not in memory (and
    /// checked then: a damaged one is set aside and `None` returned).
    pub fn load(&mut self, id: &str) -> Result<Option<&AutoCommit>> {
        if !self.ensure_loaded(id)? {
            return Ok(None);
        }
        self.trim();
        Ok(self.docs.get(id).and_then(|e| e.doc.as_ref()))
    }

    /// A copy of document `id` to try changes on (empty if this replica
    /// does not have it); the replica itself is not touched.
    pub fn fork(&mut self, id: &str) -> Result<AutoCommit> {
        let fork = match self.ensure_loaded(id)? {
            true => self.loaded(id).fork(),
            false => AutoCommit::new(),
        };
        self.trim();
        Ok(fork)
    }

    /// Document `id`, which the caller has just loaded.
    fn loaded(&mut self, id: &str) -> &mut AutoCommit {
        self.docs
            .get_mut(id)
            .and_then(|e| e.doc.as_mut())
            .expect("loaded")
    }

    /// Bytes document `id` takes in the store (snapshot and chunks).
    pub fn stored_bytes(&self, id: &str) -> u64 {
        self.docs.get(id).map_or(0, Entry::bytes)
    }

    /// Heads of a document, sorted; empty if this replica does not have it.
    pub fn heads(&self, id: &str) -> Vec<ChangeHash> {
        self.docs
            .get(id)
            .map(|e| e.saved.clone())
            .unwrap_or_default()
    }

    /// SHA-256 over the sorted (document id, heads) of `docs`: equal digests
    /// mean equal documents.
    pub fn digest<'a>(&self, docs: impl IntoIterator<Item = &'a str>) -> [u8; 32] {
        let mut ids: Vec<&str> = docs
            .into_iter()
            .filter(|d| self.docs.contains_key(*d))
            .collect();
        ids.sort();
        ids.dedup();
        let mut h = Sha256::new();
        for id in ids {
            h.update(id.as_bytes());
            h.update([0]);
            for head in self.heads(id) {
                h.update(head.0);
            }
            h.update([0xff]);
        }
        h.finalize().into()
    }

    /// Runs `edit` on document `id` (created if new) and stores the change it
    /// makes before returning. If `edit` fails nothing is kept.
    pub fn change<T, E>(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<Result<T, E>> {
        let mut edit = Some(edit);
        let mut out = None;
        let res = self.change_all(&[id.to_owned()], |_, doc| {
            out = Some(edit.take().expect("called once")(doc)?);
            Ok(())
        })?;
        Ok(res.map(|()| out.expect("edit ran")))
    }

    /// Loads document `id`, or starts it if this replica does not hold it.
    fn load_or_start(&mut self, id: &str) -> Result<()> {
        if !self.ensure_loaded(id)? {
            self.docs
                .insert(id.to_owned(), Entry::new(self.actor.clone()));
            self.touch(id);
        }
        Ok(())
    }

    /// Forgets documents an operation started but left empty, and drops
    /// from memory what the cache has no room for.
    fn tidy(&mut self) {
        let empty: Vec<String> = self
            .docs
            .iter()
            .filter(|(_, e)| e.saved.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for id in empty {
            self.remove_entry(&id);
        }
        self.trim();
    }

    /// Runs `edit` on each of `ids` (created if new) and stores every change
    /// in one atomic, durable commit; if `edit` fails on any of them, no
    /// document keeps anything.
    pub fn change_all<E>(
        &mut self,
        ids: &[String],
        mut edit: impl FnMut(&str, &mut AutoCommit) -> Result<(), E>,
    ) -> Result<Result<(), E>> {
        for id in ids {
            self.load_or_start(id)?;
        }
        let mut failed = None;
        for id in ids {
            if let Err(e) = edit(id, self.loaded(id)) {
                failed = Some(e);
                break;
            }
        }
        self.finish(ids, failed)
    }

    /// As [`Replica::change_all`], the documents edited side by side, one
    /// thread a core: documents are independent, and an import that spreads
    /// over several communes spends most of its time in Automerge adding
    /// fields. If edits fail, the error of the first document in `ids`
    /// that failed is returned.
    pub fn change_each<E: Send>(
        &mut self,
        ids: &[String],
        edit: impl Fn(&str, &mut AutoCommit) -> Result<(), E> + Sync,
    ) -> Result<Result<(), E>> {
        for id in ids {
            self.load_or_start(id)?;
        }
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut docs: Vec<(&str, &mut AutoCommit)> = self
            .docs
            .iter_mut()
            .filter(|(id, _)| wanted.contains(id.as_str()))
            .map(|(id, e)| (id.as_str(), e.doc.as_mut().expect("loaded above")))
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(docs.len())
            .max(1);
        // Round robin: neighbouring documents (a district's communes) are
        // often alike in size.
        let mut shares: Vec<Vec<(&str, &mut AutoCommit)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (i, d) in docs.drain(..).enumerate() {
            shares[i % threads].push(d);
        }
        let edit = &edit;
        let mut errors: Vec<(String, E)> = std::thread::scope(|s| {
            let running: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    s.spawn(move || {
                        share
                            .into_iter()
                            .filter_map(|(id, doc)| edit(id, doc).err().map(|e| (id.to_owned(), e)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            running
                .into_iter()
                .flat_map(|t| t.join().expect("an edit thread"))
                .collect()
        });
        errors.sort_by_key(|(id, _)| ids.iter().position(|x| x == id));
        let failed = (!errors.is_empty()).then(|| errors.swap_remove(0).1);
        self.finish(ids, failed)
    }

    /// Commits the edits of `ids`, or rolls them back if one `failed`, and
    /// stores what was committed.
    fn finish<E>(&mut self, ids: &[String], failed: Option<E>) -> Result<Result<(), E>> {
        for id in ids {
            let doc = self.loaded(id);
            if failed.is_some() {
                doc.rollback();
            } else {
                doc.commit();
            }
        }
        let res = match failed {
            Some(e) => Ok(Err(e)),
            None => self.persist(ids, WriteBatch::default()).map(Ok),
        };
        // Documents an edit created but left empty are not kept.
        self.tidy();
        res
    }

    /// Applies changes received from a peer, with `extra` (sync state) in
    /// the same atomic commit. Entries naming the same document are taken
    /// together. Only changes whose dependencies are held (here or earlier in
    /// the batch) are applied: the rest are reported as `pending` and left
    /// out, never queued inside Automerge where a later batch would release
    /// them unchecked.
    pub fn apply(
        &mut self,
        changes: Vec<(String, Vec<Vec<u8>>)>,
        extra: WriteBatch,
    ) -> Result<Applied> {
        let mut parsed: Vec<(String, Vec<Change>)> = Vec::new();
        for (doc, raw) in changes {
            let list = raw
                .into_iter()
                .map(|b| {
                    Change::from_bytes(b).map_err(|e| ReplicaError::BadChange {
                        doc: doc.clone(),
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            match parsed.iter_mut().find(|(d, _)| *d == doc) {
                Some((_, l)) => l.extend(list),
                None => parsed.push((doc, list)),
            }
        }
        for (doc, _) in &parsed {
            self.load_or_start(doc)?;
        }
        let mut touched = Vec::new();
        let (mut new, mut pending) = (0, 0);
        for (doc, list) in parsed {
            touched.push(doc.clone());
            let automerge = self.loaded(&doc);
            let (ready, waiting) = ready_changes(automerge, list);
            new += ready.len();
            pending += waiting.len();
            if let Err(e) = automerge.apply_changes(ready) {
                // Leave memory as the disk has it.
                for id in &touched {
                    self.reload(id)?;
                }
                self.tidy();
                return Err(e.into());
            }
            forget_patches(automerge);
        }
        let persisted = self.persist(&touched, extra);
        // A document that got nothing applied is not kept.
        self.tidy();
        persisted?;
        let heads = touched
            .into_iter()
            .map(|d| (d.clone(), self.heads(&d)))
            .collect();
        Ok(Applied {
            heads,
            new,
            pending,
        })
    }

    /// Writes what changed in `docs` (loaded) since it was last saved, and
    /// `extra`, in one durable commit. On failure the documents are
    /// reloaded from disk.
    fn persist(&mut self, docs: &[String], mut extra: WriteBatch) -> Result<()> {
        let mut pending = Vec::new();
        let mut batch = WriteBatch::default();
        for id in docs {
            let entry = self.docs.get_mut(id).expect("touched documents exist");
            let doc = entry.doc.as_mut().expect("touched documents are loaded");
            let mut heads = doc.get_heads();
            heads.sort();
            if heads == entry.saved {
                continue;
            }
            let bytes = doc.save_after(&entry.saved);
            let chunk = encode_heads_value(&heads, &bytes);
            let compact = entry.chunk_bytes + chunk.len() as u64
                > entry.snapshot_bytes.max(COMPACT_MIN_BYTES);
            if compact {
                let snapshot = encode_heads_value(&heads, &doc.save());
                for seq in 0..entry.next_chunk {
                    batch.delete(chunk_key(id, seq));
                }
                pending.push((id.clone(), heads, 0, 0, snapshot.len() as u64));
                batch.put(snapshot_key(id), snapshot);
            } else {
                let len = chunk.len() as u64;
                batch.put(chunk_key(id, entry.next_chunk), chunk);
                pending.push((
                    id.clone(),
                    heads,
                    entry.next_chunk + 1,
                    entry.chunk_bytes + len,
                    entry.snapshot_bytes,
                ));
            }
        }
        batch.extend(std::mem::take(&mut extra));
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.commit(batch) {
            for id in docs {
                self.reload(id)?;
            }
            return Err(e.into());
        }
        for (id, heads, next_chunk, chunk_bytes, snapshot_bytes) in pending {
            let entry = self.docs.get_mut(&id).expect("touched documents exist");
            entry.saved = heads;
            entry.next_chunk = next_chunk;
            entry.chunk_bytes = chunk_bytes;
            entry.snapshot_bytes = snapshot_bytes;
        }
        Ok(())
    }

    /// Makes memory hold what the store holds of document `id`: its
    /// headers, and the document itself when every document is kept loaded
    /// (otherwise it is loaded again on next use).
    fn reload(&mut self, id: &str) -> Result<()> {
        let entries = Self::stored_values(&self.store, id)?;
        self.remove_entry(id);
        if entries.is_empty() {
            return Ok(());
        }
        if self.options.keeps_everything() {
            let e = Self::load_entry(id, entries, &self.actor)?;
            self.docs.insert(id.to_owned(), e);
            self.loads += 1;
            self.touch(id);
        } else {
            let s = read_headers(&entries).map_err(|reason| ReplicaError::Corrupt {
                doc: id.to_owned(),
                reason,
            })?;
            self.docs.insert(id.to_owned(), Entry::cold(s));
        }
        Ok(())
    }

    /// Drops document `id` and what any peer was known to hold of it, in
    /// one durable commit: for a read-only copy that is to be downloaded
    /// whole again (see `htx_node::session::refresh_reference`).
    pub fn forget(&mut self, id: &str) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (k, _) in self.store.scan(&doc_prefix(id))? {
            batch.delete(k);
        }
        let suffix = [b"\0", id.as_bytes()].concat();
        for (k, _) in self.store.scan(b"p\0")? {
            if k.ends_with(&suffix) {
                batch.delete(k);
            }
        }
        self.store.commit(batch)?;
        self.remove_entry(id);
        Ok(())
    }

    /// Which of `hashes` this replica holds in document `id`. Heads of the
    /// document are answered without loading it.
    pub fn known(&mut self, id: &str, hashes: &[ChangeHash]) -> Result<Vec<ChangeHash>> {
        let Some(e) = self.docs.get(id) else {
            return Ok(Vec::new());
        };
        if hashes.iter().all(|h| e.saved.contains(h)) {
            return Ok(hashes.to_vec());
        }
        if !self.ensure_loaded(id)? {
            return Ok(Vec::new());
        }
        let doc = self.loaded(id);
        let known = hashes
            .iter()
            .filter(|h| doc.get_change_by_hash(h).is_some())
            .copied()
            .collect();
        self.trim();
        Ok(known)
    }

    /// The changes of `id` that are not (ancestors of) `have`, in causal
    /// order. Unknown hashes in `have` are ignored. Nothing, without
    /// loading the document, when `have` holds its heads.
    pub fn changes_since(&mut self, id: &str, have: &[ChangeHash]) -> Result<Vec<Change>> {
        let Some(e) = self.docs.get(id) else {
            return Ok(Vec::new());
        };
        if e.saved.iter().all(|h| have.contains(h)) {
            return Ok(Vec::new());
        }
        let have = self.known(id, have)?;
        if !self.ensure_loaded(id)? {
            return Ok(Vec::new());
        }
        let changes = self.loaded(id).get_changes(&have);
        self.trim();
        Ok(changes)
    }
    /// What this replica last recorded `peer` as holding of `doc`, and the
    /// peer incarnation that confirmed it. A belief, for display ("documents
    /// behind"): sync uses only [`Replica::shared_heads`].
    pub fn belief(&self, peer: &str, doc: &str) -> Result<Option<(Vec<ChangeHash>, Vec<u8>)>> {
        Ok(self
            .store
            .get(&sync_key(peer, doc))?
            .and_then(|v| decode_heads_value(&v).map(|(h, inc)| (h, inc.to_vec()))))
    }

    /// Heads both this replica and `peer` hold, as confirmed by the peer's
    /// current `incarnation` (reported in this session); empty if they were
    /// confirmed by another incarnation (a restart, a restore) or never.
    pub fn shared_heads(
        &self,
        peer: &str,
        doc: &str,
        incarnation: &[u8],
    ) -> Result<Vec<ChangeHash>> {
        Ok(match self.belief(peer, doc)? {
            Some((heads, inc)) if !incarnation.is_empty() && inc == incarnation => heads,
            _ => Vec::new(),
        })
    }

    /// Adds to `batch` the write that records `heads` as shared with the
    /// `incarnation` of `peer`.
    pub fn put_shared_heads(
        batch: &mut WriteBatch,
        peer: &str,
        doc: &str,
        heads: &[ChangeHash],
        incarnation: &[u8],
    ) {
        batch.put(sync_key(peer, doc), encode_heads_value(heads, incarnation));
    }

    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Self::meta_in(self.store.as_ref(), name)
    }

    /// As [`Replica::meta`], from the replica's store without the replica:
    /// for readers that must not wait while it is held (a slow commit).
    pub fn meta_in(store: &dyn Store, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(store.get(&meta_key(name))?)
    }

    pub fn put_meta(batch: &mut WriteBatch, name: &str, value: impl Into<Vec<u8>>) {
        batch.put(meta_key(name), value);
    }

    /// Commits bookkeeping that goes with no document change.
    pub fn commit(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.store.commit(batch)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStore;
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;

    fn put(r: &mut Replica, doc: &str, k: &str, v: &str) {
        r.change(doc, |d| d.put(automerge::ROOT, k, v))
            .unwrap()
            .unwrap();
    }

    #[test]
    fn documents_survive_reopen_across_compaction() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut r = Replica::open(store.clone()).unwrap();
        for i in 0..2000 {
            put(&mut r, "u/2023/1", &format!("k{i}"), &"x".repeat(100));
        }
        let heads = r.heads("u/2023/1");
        let r2 = Replica::open(store).unwrap();
        assert_eq!(r2.heads("u/2023/1"), heads);
        assert_eq!(
            r2.doc("u/2023/1").unwrap().keys(automerge::ROOT).count(),
            2000
        );
        // Each opening is a new incarnation, with an actor id of its own.
        assert_ne!(r2.actor(), r.actor());
    }

    #[test]
    fn a_failed_edit_leaves_nothing_behind() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut r = Replica::open(store).unwrap();
        let res: Result<(), &str> = r
            .change("u/2023/1", |d| {
                d.put(automerge::ROOT, "a", 1).unwrap();
                Err("refused")
            })
            .unwrap();
        assert!(res.is_err());
        assert_eq!(r.doc_ids().count(), 0);
    }

    #[test]
    fn documents_edited_side_by_side_are_kept_all_or_none() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut r = Replica::open(store.clone()).unwrap();
        put(&mut r, "u/2023/0", "before", "kept");
        let ids: Vec<String> = (0..7).map(|i| format!("u/2023/{i}")).collect();
        // Two documents refuse: nothing of any is kept, and the error is
        // the first refusing document's in the order asked.
        let res: Result<(), String> = r
            .change_each(&ids, |id, d| {
                d.put(automerge::ROOT, "a", id).unwrap();
                match id {
                    "u/2023/3" | "u/2023/5" => Err(format!("{id} refused")),
                    _ => Ok(()),
                }
            })
            .unwrap();
        assert_eq!(res, Err("u/2023/3 refused".to_owned()));
        assert_eq!(r.doc_ids().collect::<Vec<_>>(), ["u/2023/0"]);
        let doc = r.doc("u/2023/0").unwrap();
        assert!(doc.get(automerge::ROOT, "a").unwrap().is_none());
        // All accepted: every document holds its edit, after a reopen too.
        let res: Result<(), String> = r
            .change_each(&ids, |id, d| {
                (0..50).for_each(|k| d.put(automerge::ROOT, format!("k{k}"), id).unwrap());
                Ok(())
            })
            .unwrap();
        assert_eq!(res, Ok(()));
        let again = Replica::open(store).unwrap();
        for id in &ids {
            let doc = again.doc(id).unwrap();
            assert_eq!(
                doc.keys(automerge::ROOT)
                    .filter(|k| k.starts_with('k'))
                    .count(),
                50,
                "{id}"
            );
            let (v, _) = doc.get(automerge::ROOT, "k49").unwrap().unwrap();
            assert_eq!(v.as_str(), Some(id.as_str()));
        }
        assert!(
            again
                .doc("u/2023/0")
                .unwrap()
                .get(automerge::ROOT, "before")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_damaged_chunk_is_detected_on_open_and_only_its_document_set_aside() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut r = Replica::open(store.clone()).unwrap();
        put(&mut r, "u/2023/0", "x", "kept");
        put(&mut r, "u/2023/1", "a", "1");
        put(&mut r, "u/2023/1", "b", "2");
        let mut b = WriteBatch::default();
        Replica::put_shared_heads(&mut b, "hub", "u/2023/1", &r.heads("u/2023/1"), &[7; 16]);
        r.commit(b).unwrap();
        drop(r);
        let (k, mut v) = store.scan(b"d\0").unwrap().pop().unwrap();
        assert!(k.starts_with(b"d\0u/2023/1\0"));
        let n = v.len();
        v.truncate(n - 5);
        let mut b = WriteBatch::default();
        b.put(k, v.clone());
        store.commit(b).unwrap();

        let r = Replica::open(store.clone()).expect("the rest opens");
        assert_eq!(r.doc_ids().collect::<Vec<_>>(), vec!["u/2023/0"]);
        let damaged = r.damaged().unwrap();
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].doc, "u/2023/1");
        assert!(!damaged[0].reason.is_empty());
        // Kept for inspection, gone from the documents, and no longer
        // counted as shared with the hub.
        assert!(
            store
                .scan(b"q\0u/2023/1\0")
                .unwrap()
                .iter()
                .any(|(_, x)| *x == v)
        );
        assert!(store.scan(b"d\0u/2023/1\0").unwrap().is_empty());
        assert!(r.belief("hub", "u/2023/1").unwrap().is_none());
        // Opening again finds nothing new to set aside.
        drop(r);
        let r = Replica::open(store).unwrap();
        assert_eq!(r.damaged().unwrap().len(), 1);
        assert_eq!(r.doc_ids().count(), 1);
    }

    /// A replica that loads on first use and keeps at most two documents.
    const TWO: Options = Options {
        check_at_open: false,
        cache_docs: Some(2),
        cache_bytes: None,
    };

    fn text(doc: &AutoCommit, key: &str) -> String {
        let (v, _) = doc.get(automerge::ROOT, key).unwrap().unwrap();
        v.into_string().unwrap()
    }

    fn values(doc: &AutoCommit) -> Vec<(String, String)> {
        doc.map_range(automerge::ROOT, ..)
            .map(|i| (i.key.to_string(), format!("{:?}", i.value)))
            .collect()
    }

    #[test]
    fn a_lazy_replica_opens_from_headers_and_finds_damage_on_first_load() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut r = Replica::open(store.clone()).unwrap();
        for d in 0..3 {
            put(&mut r, &format!("u/2023/{d}"), "a", "1");
            put(&mut r, &format!("u/2023/{d}"), "b", "2");
        }
        let digest = r.digest(r.doc_ids());
        let heads = r.heads("u/2023/1");
        drop(r);
        // Damage the payload of document 1's last chunk, keeping its header.
        let (k, mut v) = store.scan(b"d\0u/2023/1\0").unwrap().pop().unwrap();
        let last = v.len() - 3;
        v[last] ^= 0xff;
        let mut b = WriteBatch::default();
        b.put(k, v);
        store.commit(b).unwrap();

        let mut r = Replica::open_with(store.clone(), TWO).unwrap();
        // Opening loaded nothing, and knows every document's heads.
        assert_eq!(r.cache_figures(), (0, 0));
        assert_eq!(r.doc_ids().count(), 3);
        assert_eq!(r.heads("u/2023/1"), heads);
        assert_eq!(r.digest(r.doc_ids()), digest);
        assert!(r.damaged().unwrap().is_empty(), "not found yet");
        // The undamaged documents load; the damaged one is set aside when
        // first loaded, as opening would have.
        let zero = r.load("u/2023/0").unwrap().unwrap();
        assert_eq!(text(zero, "a"), "1");
        assert_eq!(text(zero, "b"), "2");
        assert!(r.load("u/2023/1").unwrap().is_none());
        assert!(!r.has_doc("u/2023/1"));
        assert_eq!(r.damaged().unwrap()[0].doc, "u/2023/1");
        assert!(!store.scan(b"q\0u/2023/1\0").unwrap().is_empty());
        assert!(store.scan(b"d\0u/2023/1\0").unwrap().is_empty());
        // A write to it starts it again.
        put(&mut r, "u/2023/1", "c", "3");
        assert_eq!(r.doc_ids().count(), 3);

        // A header that cannot be read is found at opening.
        let (k, _) = store.scan(b"d\0u/2023/2\0").unwrap().pop().unwrap();
        let mut b = WriteBatch::default();
        b.put(k, vec![9, 9]);
        store.commit(b).unwrap();
        let r = Replica::open_with(store.clone(), TWO).unwrap();
        assert!(!r.has_doc("u/2023/2"));
        assert_eq!(r.damaged().unwrap().len(), 2);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// This replica writes `key = value` in document `doc`.
        Write(usize, u8, u8),
        /// A peer writes in document `doc`; the last `n` of its changes
        /// arrive (some held already, some missing their dependency).
        Peer(usize, u8, u8, usize),
        /// A peer holding `doc` at `heads` (one of the peer's own points)
        /// asks what it lacks; what it reports is recorded as shared.
        Sync(usize),
        /// The records of `doc` are read.
        Read(usize),
        /// The cached replica is opened again from its store.
        Reopen,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (0..10usize, 0..4u8, any::<u8>()).prop_map(|(d, k, v)| Op::Write(d, k, v)),
            3 => (0..10usize, 0..4u8, any::<u8>(), 1..4usize)
                .prop_map(|(d, k, v, n)| Op::Peer(d, k, v, n)),
            2 => (0..10usize).prop_map(Op::Sync),
            2 => (0..10usize).prop_map(Op::Read),
            1 => Just(Op::Reopen),
        ]
    }

    fn sorted_hashes(changes: &[Change]) -> Vec<ChangeHash> {
        let mut h: Vec<_> = changes.iter().map(Change::hash).collect();
        h.sort();
        h
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// A replica keeping two of ten documents in memory serves writes,
        /// merges, syncs and reads exactly as one keeping all of them:
        /// same heads, contents, changes sent and sync state, evicting and
        /// reloading as it goes.
        #[test]
        fn a_bounded_cache_answers_as_an_unbounded_one(ops in proptest::collection::vec(op(), 1..60)) {
            let doc = |d: usize| format!("u/2023/{d}");
            let cached_store: Arc<dyn Store> = Arc::new(MemoryStore::default());
            let mut c = Replica::open_with(cached_store.clone(), TWO).unwrap();
            let mut u = Replica::open(Arc::new(MemoryStore::default())).unwrap();
            let mut peers: Vec<AutoCommit> = (0..10u8)
                .map(|i| AutoCommit::new().with_actor(ActorId::from(vec![i + 1; 16])))
                .collect();
            for op in ops {
                match op {
                    Op::Write(d, k, v) => {
                        let before = c.heads(&doc(d));
                        c.change(&doc(d), |x| x.put(automerge::ROOT, format!("k{k}"), v as i64))
                            .unwrap()
                            .unwrap();
                        let new: Vec<Vec<u8>> = c
                            .changes_since(&doc(d), &before)
                            .unwrap()
                            .iter()
                            .map(|ch| ch.raw_bytes().to_vec())
                            .collect();
                        // Writing the value a key already holds makes no change.
                        proptest::prop_assert!(new.len() <= 1);
                        u.apply(vec![(doc(d), new)], WriteBatch::default()).unwrap();
                    }
                    Op::Peer(d, k, v, n) => {
                        let p = &mut peers[d];
                        p.put(automerge::ROOT, format!("p{k}"), v as i64).unwrap();
                        p.commit();
                        let all = p.get_changes(&[]);
                        let sent: Vec<Vec<u8>> = all[all.len().saturating_sub(n)..]
                            .iter()
                            .map(|ch| ch.raw_bytes().to_vec())
                            .collect();
                        let a = c.apply(vec![(doc(d), sent.clone())], WriteBatch::default()).unwrap();
                        let b = u.apply(vec![(doc(d), sent)], WriteBatch::default()).unwrap();
                        proptest::prop_assert_eq!((a.new, a.pending), (b.new, b.pending));
                        proptest::prop_assert_eq!(a.heads, b.heads);
                    }
                    Op::Sync(d) => {
                        let theirs = peers[d].get_heads();
                        let (kc, ku) = (c.known(&doc(d), &theirs).unwrap(), u.known(&doc(d), &theirs).unwrap());
                        proptest::prop_assert_eq!(&kc, &ku);
                        let (sc, su) = (
                            c.changes_since(&doc(d), &theirs).unwrap(),
                            u.changes_since(&doc(d), &theirs).unwrap(),
                        );
                        proptest::prop_assert_eq!(sorted_hashes(&sc), sorted_hashes(&su));
                        // What the peer reported holding is shared from now on.
                        for r in [&mut c, &mut u] {
                            let mut b = WriteBatch::default();
                            Replica::put_shared_heads(&mut b, "peer", &doc(d), &kc, &[1; 16]);
                            r.commit(b).unwrap();
                        }
                        let ours = c.heads(&doc(d));
                        proptest::prop_assert_eq!(
                            c.changes_since(&doc(d), &ours).unwrap().len(), 0
                        );
                    }
                    Op::Read(d) => {
                        let got = c.load(&doc(d)).unwrap().map(values);
                        let want = u.doc(&doc(d)).map(values);
                        proptest::prop_assert_eq!(got, want);
                    }
                    Op::Reopen => {
                        c = Replica::open_with(cached_store.clone(), TWO).unwrap();
                        proptest::prop_assert_eq!(c.cache_figures(), (0, 0));
                    }
                }
                proptest::prop_assert!(c.cache_figures().0 <= 2, "{:?}", c.cache_figures());
                proptest::prop_assert_eq!(c.doc_ids().collect::<Vec<_>>(), u.doc_ids().collect::<Vec<_>>());
                for d in 0..10 {
                    proptest::prop_assert_eq!(c.heads(&doc(d)), u.heads(&doc(d)));
                    proptest::prop_assert_eq!(
                        c.shared_heads("peer", &doc(d), &[1; 16]).unwrap(),
                        u.shared_heads("peer", &doc(d), &[1; 16]).unwrap()
                    );
                }
                proptest::prop_assert_eq!(c.digest(c.doc_ids()), u.digest(u.doc_ids()));
            }
            // Every document's whole history, through the cache, in the end.
            for d in 0..10 {
                let (a, b) = (c.changes_since(&doc(d), &[]).unwrap(), u.changes_since(&doc(d), &[]).unwrap());
                proptest::prop_assert_eq!(sorted_hashes(&a), sorted_hashes(&b));
                let reopened = Replica::open(cached_store.clone()).unwrap();
                proptest::prop_assert_eq!(
                    reopened.doc(&doc(d)).map(values),
                    u.doc(&doc(d)).map(values)
                );
            }
        }
    }

    #[test]
    fn the_cache_evicts_the_least_recently_used_and_reloads_on_use() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut r = Replica::open_with(store, TWO).unwrap();
        for d in 0..4 {
            put(&mut r, &format!("u/2023/{d}"), "a", &d.to_string());
        }
        assert_eq!(r.cache_figures(), (2, 0), "new documents are not loads");
        // 2 and 3 are loaded; 0 comes back from the store, 2 goes.
        r.load("u/2023/3").unwrap();
        r.load("u/2023/0").unwrap();
        assert_eq!(r.cache_figures(), (2, 1));
        r.load("u/2023/3").unwrap();
        assert_eq!(r.cache_figures(), (2, 1), "3 was still loaded");
        r.load("u/2023/2").unwrap();
        assert_eq!(r.cache_figures(), (2, 2));
        // A byte bound below one document keeps only the one in use.
        let mut one = Replica::open_with(
            r.store().clone(),
            Options {
                check_at_open: true,
                cache_docs: None,
                cache_bytes: Some(1),
            },
        )
        .unwrap();
        assert_eq!(one.cache_figures(), (1, 4), "each checked at opening");
        assert_eq!(text(one.load("u/2023/1").unwrap().unwrap(), "a"), "1");
        assert_eq!(one.cache_figures(), (1, 5));
    }
}

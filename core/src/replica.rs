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
//! Keys (`\0`-separated):
//! - `d\0{doc}\0s`           snapshot
//! - `d\0{doc}\0c{seq:be64}`  incremental chunk
//! - `p\0{peer}\0{doc}`      heads both this replica and `peer` hold (sync state),
//!   with the peer incarnation that confirmed them
//! - `m\0{name}`             replica metadata (node bookkeeping)
//! - `q\0{doc}\0...`         a damaged document's snapshot and chunks, set
//!   aside when the replica opened (see [`Replica::damaged`])
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

use std::collections::BTreeMap;
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
    doc: AutoCommit,
    /// Heads of what is on disk.
    saved: Vec<ChangeHash>,
    next_chunk: u64,
    chunk_bytes: u64,
    snapshot_bytes: u64,
}

impl Entry {
    fn new(actor: ActorId) -> Self {
        Entry {
            doc: AutoCommit::new().with_actor(actor),
            saved: Vec::new(),
            next_chunk: 0,
            chunk_bytes: 0,
            snapshot_bytes: 0,
        }
    }
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

/// A document that failed its checks when the replica opened: its stored
/// snapshot and chunks were moved under `q\0{doc}\0` (kept for inspection)
/// and the replica opened without it. A node then lacks that document, and
/// its next sync downloads it whole from the hub.
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
    /// Opens the replica kept in `store`, loading and checking every document.
    pub fn open(store: Arc<dyn Store>) -> Result<Self> {
        // A new incarnation: see the module docs.
        Self::open_as(store, ActorId::random())
    }

    /// As [`Replica::open`], with `actor` as the new incarnation's actor id
    /// instead of a random one: for the deterministic simulation
    /// (`tests/src/sim`), where one seed must replay exactly. The id must
    /// never have been used before by any replica.
    pub fn open_as(store: Arc<dyn Store>, actor: ActorId) -> Result<Self> {
        let mut by_doc: BTreeMap<String, Vec<KeyValue>> = BTreeMap::new();
        for (k, v) in store.scan(b"d\0")? {
            let rest = &k[2..];
            let Some(sep) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            let doc = String::from_utf8_lossy(&rest[..sep]).into_owned();
            by_doc
                .entry(doc)
                .or_default()
                .push((rest[sep + 1..].to_vec(), v));
        }
        let mut docs = BTreeMap::new();
        let mut set_aside = WriteBatch::default();
        for (doc_id, entries) in by_doc {
            match Self::load_entry(&doc_id, entries.clone(), &actor) {
                Ok(entry) => {
                    docs.insert(doc_id, entry);
                }
                // One damaged document must not make the whole replica
                // unreadable: set it aside, name it, open the rest.
                Err(e @ (ReplicaError::Corrupt { .. } | ReplicaError::Automerge(_))) => {
                    let reason = match e {
                        ReplicaError::Corrupt { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    tracing::error!(
                        doc = %doc_id,
                        "document {doc_id} is damaged in the store ({reason}); set aside, the replica opens without it / tài liệu {doc_id} bị hỏng, đã được tách riêng"
                    );
                    Self::set_aside(&store, &doc_id, &entries, &reason, &mut set_aside)?;
                }
                Err(e) => return Err(e),
            }
        }
        if !set_aside.is_empty() {
            store.commit(set_aside)?;
        }
        Ok(Replica { store, actor, docs })
    }

    /// Moves a damaged document's stored values under the quarantine
    /// prefix, forgets what any peer was known to hold of it (so a sync
    /// sends it whole again), and records why.
    fn set_aside(
        store: &Arc<dyn Store>,
        doc_id: &str,
        entries: &[KeyValue],
        reason: &str,
        batch: &mut WriteBatch,
    ) -> Result<()> {
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
            reason: reason.to_owned(),
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
            doc,
            saved: got,
            next_chunk,
            chunk_bytes,
            snapshot_bytes,
        })
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

    pub fn doc_ids(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    pub fn doc(&self, id: &str) -> Option<&AutoCommit> {
        self.docs.get(id).map(|e| &e.doc)
    }

    /// A copy of document `id` to try changes on (empty if this replica
    /// does not have it); the replica itself is not touched.
    pub fn fork(&mut self, id: &str) -> AutoCommit {
        match self.docs.get_mut(id) {
            Some(e) => e.doc.fork(),
            None => AutoCommit::new(),
        }
    }

    /// Bytes document `id` takes in the store (snapshot and chunks).
    pub fn stored_bytes(&self, id: &str) -> u64 {
        self.docs
            .get(id)
            .map_or(0, |e| e.snapshot_bytes + e.chunk_bytes)
    }

    /// Heads of a document, sorted; empty if this replica does not have it.
    pub fn heads(&self, id: &str) -> Vec<ChangeHash> {
        let mut h = self
            .docs
            .get(id)
            .map(|e| e.saved.clone())
            .unwrap_or_default();
        h.sort();
        h
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

    /// Runs `edit` on each of `ids` (created if new) and stores every change
    /// in one atomic, durable commit; if `edit` fails on any of them, no
    /// document keeps anything.
    pub fn change_all<E>(
        &mut self,
        ids: &[String],
        mut edit: impl FnMut(&str, &mut AutoCommit) -> Result<(), E>,
    ) -> Result<Result<(), E>> {
        let mut failed = None;
        for id in ids {
            let actor = self.actor.clone();
            let entry = self
                .docs
                .entry(id.clone())
                .or_insert_with(|| Entry::new(actor));
            if let Err(e) = edit(id, &mut entry.doc) {
                failed = Some(e);
                break;
            }
        }
        for id in ids {
            let Some(entry) = self.docs.get_mut(id) else {
                continue;
            };
            if failed.is_some() {
                entry.doc.rollback();
            } else {
                entry.doc.commit();
            }
        }
        let res = match failed {
            Some(e) => Err(e),
            None => {
                self.persist(ids, WriteBatch::default())?;
                Ok(())
            }
        };
        // Documents an edit created but left empty are not kept.
        self.docs.retain(|_, e| !e.saved.is_empty());
        Ok(res)
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
        let actor = self.actor.clone();
        let mut touched = Vec::new();
        let (mut new, mut pending) = (0, 0);
        for (doc, list) in parsed {
            touched.push(doc.clone());
            let entry = self
                .docs
                .entry(doc)
                .or_insert_with(|| Entry::new(actor.clone()));
            let (ready, waiting) = ready_changes(&mut entry.doc, list);
            new += ready.len();
            pending += waiting.len();
            if let Err(e) = entry.doc.apply_changes(ready) {
                // Leave memory as the disk has it.
                for id in &touched {
                    self.reload(id)?;
                }
                return Err(e.into());
            }
        }
        self.persist(&touched, extra)?;
        // A document that got nothing applied is not kept.
        self.docs.retain(|_, e| !e.saved.is_empty());
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

    /// Writes what changed in `docs` since it was last saved, and `extra`, in
    /// one durable commit. On failure the documents are reloaded from disk.
    fn persist(&mut self, docs: &[String], mut extra: WriteBatch) -> Result<()> {
        let mut pending = Vec::new();
        let mut batch = WriteBatch::default();
        for id in docs {
            let entry = self.docs.get_mut(id).expect("touched documents exist");
            let mut heads = entry.doc.get_heads();
            heads.sort();
            if heads == entry.saved {
                continue;
            }
            let bytes = entry.doc.save_after(&entry.saved);
            let chunk = encode_heads_value(&heads, &bytes);
            let compact = entry.chunk_bytes + chunk.len() as u64
                > entry.snapshot_bytes.max(COMPACT_MIN_BYTES);
            if compact {
                let snapshot = encode_heads_value(&heads, &entry.doc.save());
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

    fn reload(&mut self, id: &str) -> Result<()> {
        let entries: Vec<_> = self
            .store
            .scan(&doc_prefix(id))?
            .into_iter()
            .map(|(k, v)| (k[doc_prefix(id).len()..].to_vec(), v))
            .collect();
        if entries.is_empty() {
            self.docs.remove(id);
        } else {
            let e = Self::load_entry(id, entries, &self.actor)?;
            self.docs.insert(id.to_owned(), e);
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
        self.docs.remove(id);
        Ok(())
    }

    /// Which of `hashes` this replica holds in document `id`.
    pub fn known(&mut self, id: &str, hashes: &[ChangeHash]) -> Vec<ChangeHash> {
        let Some(e) = self.docs.get_mut(id) else {
            return Vec::new();
        };
        hashes
            .iter()
            .filter(|h| e.doc.get_change_by_hash(h).is_some())
            .copied()
            .collect()
    }

    /// The changes of `id` that are not (ancestors of) `have`, in causal
    /// order. Unknown hashes in `have` are ignored.
    pub fn changes_since(&mut self, id: &str, have: &[ChangeHash]) -> Vec<Change> {
        let have = self.known(id, have);
        match self.docs.get_mut(id) {
            Some(e) => e.doc.get_changes(&have),
            None => Vec::new(),
        }
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
}

//! # Validation of a node's changes before they are merged
//!
//! Automerge trusts whoever it syncs with (see `shared/notes/automerge.md`,
//! "Untrusted peers"), so the hub never applies a node's changes straight
//! to its documents. [`check`] applies them to a fork of each document and
//! looks at what they would do, judging exactly the state that will be
//! merged:
//!
//! - entries naming the same document are taken together, on one fork (a
//!   batch split in two must not pass where the whole would not);
//! - the node may write the document (its own units' documents only);
//! - each change parses, and is new or already held (a replay is a no-op);
//! - only changes whose dependencies are held, at the hub or in the batch,
//!   are checked and merged ([`Checked::merge`]); the others are left out,
//!   never queued where a later batch could release them unchecked;
//! - no new change is made under the hub's own actor ids (refused), and
//!   none under another node's *current* incarnation is merged from anyone
//!   but that node (left out, with what depends on it, for its author to
//!   send; refusing the batch would lock out two nodes that each hold the
//!   other's changes after a hub restore): each session's hello states the node's
//!   incarnation, which is the actor id it writes under from then on, and
//!   [`claim_incarnation`] records it as that node's (replica meta
//!   `incarnation/{node}` and `actor/{hex}`). A change under an actor id
//!   no live node writes with (an earlier incarnation of a node, restarted
//!   or restored since) is accepted from any node that may write the
//!   document: nodes that share a document hand on each other's changes
//!   when the hub has lost them (a hub restored from a backup), and must
//!   not be refused for it. The first node an unknown actor came from is
//!   recorded (`actor/{hex}`, for the audit) until its author claims it;
//! - the document stays under `max_doc_bytes` once merged;
//! - every record the new changes touch is still a record (a map with a
//!   kind), passes [`Record::validate`] (types, required fields, dates,
//!   non-negative counts), names a unit of the hierarchy within the
//!   document's unit, and holds no value the schema cannot read.
//!
//! Records valid alone but odd together (female workers above workers) are
//! accepted with a [`Checked::warnings`] entry. No gRPC and no I/O here: the
//! session decides what to do with a [`Refusal`].

use std::collections::BTreeSet;

use automerge::{AutoCommit, Change, ObjType, PatchAction, Prop, ROOT, ReadDoc};
use htx_core::docs::{self, parse_unit_doc_id};
use htx_core::index;
use htx_core::replica::{Applied, Replica, ReplicaError, ready_changes};
use htx_core::schema::{self, Record, Value};
use htx_core::storage::WriteBatch;
use htx_core::units::Hierarchy;

use crate::home::Enrolment;
use crate::hub::Hub;

/// Why a batch was refused: names the document, and the record and field
/// when one is to blame.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Refused because of who sent it (scope, actor), not what it holds.
    pub permission: bool,
    pub doc: String,
    pub reason: String,
    /// The records the batch would have produced, as JSON (for inspection).
    pub records: Vec<serde_json::Value>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "document {}: {} / thay đổi bị từ chối, không được ghi",
            self.doc, self.reason
        )
    }
}

/// What the hub learnt from a batch that passed.
#[derive(Debug, Default)]
pub struct Checked {
    /// Exactly the changes that were checked and are to be merged: new to
    /// the hub, dependencies held, grouped by document, in causal order.
    pub merge: Vec<(String, Vec<Vec<u8>>)>,
    /// Changes left out because a dependency is missing.
    pub pending: usize,
    /// Changes left out because they are under another node's current
    /// incarnation (and those that depend on them): only their author
    /// delivers them.
    pub left_to_author: usize,
    /// The records the merged changes touch, as they will read once merged
    /// (document, record): for the record index and the live progress view.
    pub records: Vec<(String, Record)>,
    /// (document, actors of its new changes, new changes, their bytes).
    pub docs: Vec<(String, Vec<String>, usize, usize)>,
    /// Data-quality warnings: accepted, but worth a look.
    pub warnings: Vec<String>,
    /// Records the node's first-seen actors (commit with the merge).
    pub actors: WriteBatch,
}

fn actor_key(actor: &str) -> String {
    format!("actor/{actor}")
}

/// Who owns the hub's own actor ids: never a node.
pub const HUB_OWNER: &str = "the hub";

/// Records this incarnation's actor id as the hub's own (each opening of
/// the replica has a new one), so that no node can claim it later.
pub fn claim_own_actor(replica: &Replica) -> WriteBatch {
    let mut b = WriteBatch::default();
    let key = actor_key(&replica.actor().to_hex_string());
    Replica::put_meta(&mut b, &key, HUB_OWNER.as_bytes());
    b
}

/// The node an actor id was claimed by or first seen from, if any.
pub fn actor_owner(replica: &Replica, actor: &str) -> Option<String> {
    let v = replica.meta(&actor_key(actor)).ok()??;
    String::from_utf8(v).ok()
}

fn incarnation_key(node: &str) -> String {
    format!("incarnation/{node}")
}

/// The actor id (hex) `node` last stated as its incarnation.
pub fn current_incarnation(replica: &Replica, node: &str) -> Option<String> {
    let v = replica.meta(&incarnation_key(node)).ok()??;
    String::from_utf8(v).ok()
}

/// What a session's hello does: the node's `incarnation` (the actor id it
/// writes under from now on) becomes its own, even if its changes reached
/// the hub first through another node. Refused if it is the hub's own or
/// another node's current incarnation. An empty incarnation claims nothing.
pub fn claim_incarnation(
    replica: &Replica,
    node: &Enrolment,
    incarnation: &[u8],
) -> Result<Result<(), Refusal>, ReplicaError> {
    if incarnation.is_empty() {
        return Ok(Ok(()));
    }
    let actor = hex::encode(incarnation);
    if current_incarnation(replica, &node.name).as_deref() == Some(actor.as_str()) {
        return Ok(Ok(()));
    }
    match actor_owner(replica, &actor) {
        Some(o)
            if o != node.name
                && (o == HUB_OWNER
                    || current_incarnation(replica, &o).as_deref() == Some(actor.as_str())) =>
        {
            return Ok(Err(Refusal {
                permission: true,
                doc: String::new(),
                reason: format!(
                    "node {} states actor id {actor} as its own, which belongs to {o} / mã tác nhân của nút khác",
                    node.name
                ),
                records: Vec::new(),
            }));
        }
        _ => {}
    }
    let mut b = WriteBatch::default();
    Replica::put_meta(&mut b, &actor_key(&actor), node.name.as_bytes());
    Replica::put_meta(&mut b, &incarnation_key(&node.name), actor.as_bytes());
    replica.commit(b)?;
    Ok(Ok(()))
}

/// Checks `node`'s batch against `replica` without changing it. An error
/// if the hub cannot read its own documents (the batch is not refused).
pub fn check(
    replica: &mut Replica,
    node: &Enrolment,
    batch: &[(String, Vec<Vec<u8>>)],
    max_doc_bytes: u64,
) -> Result<Result<Checked, Refusal>, ReplicaError> {
    let mut unreadable = None;
    let checked = check_batch(replica, node, batch, max_doc_bytes, &mut unreadable);
    match unreadable {
        Some(e) => Err(e),
        None => Ok(checked),
    }
}

fn check_batch(
    replica: &mut Replica,
    node: &Enrolment,
    batch: &[(String, Vec<Vec<u8>>)],
    max_doc_bytes: u64,
    unreadable: &mut Option<ReplicaError>,
) -> Result<Checked, Refusal> {
    let mut out = Checked::default();
    let hub_actor = replica.actor().to_hex_string();
    let mut first_seen = BTreeSet::new();
    // One entry per document, whatever the batch did.
    let mut grouped: Vec<(&str, Vec<&Vec<u8>>)> = Vec::new();
    for (doc, raw) in batch {
        match grouped.iter_mut().find(|(d, _)| d == doc) {
            Some((_, all)) => all.extend(raw),
            None => grouped.push((doc, raw.iter().collect())),
        }
    }
    for (doc, raw) in grouped {
        let refuse = |permission: bool, reason: String| Refusal {
            permission,
            doc: doc.to_owned(),
            reason,
            records: Vec::new(),
        };
        if !Hub::writable(node, doc) {
            return Err(refuse(
                true,
                format!(
                    "node {} may not write document {doc}: it serves {} and below / nút không có quyền ghi tài liệu này",
                    node.name, node.unit
                ),
            ));
        }
        let mut changes = Vec::with_capacity(raw.len());
        for (i, bytes) in raw.iter().enumerate() {
            let c = Change::from_bytes((*bytes).clone()).map_err(|e| {
                refuse(
                    false,
                    format!("change {} of {} is malformed: {e}", i + 1, raw.len()),
                )
            })?;
            changes.push(c);
        }
        let mut fork = match replica.fork(doc) {
            Ok(fork) => fork,
            Err(e) => {
                // The hub's own store failed, not the node's batch.
                *unreadable = Some(e);
                return Err(refuse(false, "the hub cannot read the document".into()));
            }
        };
        let before = fork.get_heads();
        // Only changes the hub does not hold yet are checked (a replay is a
        // no-op), and only those that can apply now.
        let (ready, waiting) = ready_changes(&mut fork, changes);
        out.pending += waiting.len();
        // `ready` is in causal order, so a change that depends on one left
        // out is seen after it, and is left out too.
        let mut new = Vec::with_capacity(ready.len());
        let mut left_out: BTreeSet<automerge::ChangeHash> = BTreeSet::new();
        let mut actors = BTreeSet::new();
        for c in ready {
            if c.deps().iter().any(|d| left_out.contains(d)) {
                left_out.insert(c.hash());
                continue;
            }
            let actor = c.actor_id().to_hex_string();
            let owner = if actor == hub_actor {
                Some(HUB_OWNER.to_owned())
            } else {
                actor_owner(replica, &actor)
            };
            match owner {
                // The hub's: forged, no node ever holds them legitimately.
                Some(o) if o == HUB_OWNER => {
                    return Err(refuse(
                        true,
                        format!(
                            "change {} is made under actor id {actor}, which belongs to {o}, not to node {} / mã tác nhân của nút khác",
                            c.hash(),
                            node.name
                        ),
                    ));
                }
                // Another node's current incarnation: only its author may
                // deliver it. Left out, not refused: a node that shares the
                // document holds such changes legitimately when the hub lost
                // them (restored from a backup), and refusing its whole
                // batch would keep both nodes out for good (defect 11).
                // The author sends them itself; a forgery is never merged.
                Some(o)
                    if o != node.name
                        && current_incarnation(replica, &o).as_deref() == Some(actor.as_str()) =>
                {
                    left_out.insert(c.hash());
                    continue;
                }
                Some(_) => {}
                None => {
                    first_seen.insert(actor.clone());
                }
            }
            actors.insert(actor);
            new.push(c);
        }
        out.left_to_author += left_out.len();
        let bytes: usize = new.iter().map(|c| c.raw_bytes().len()).sum();
        let size = replica.stored_bytes(doc) + bytes as u64;
        if size > max_doc_bytes {
            return Err(refuse(
                false,
                format!(
                    "the document would hold {size} bytes, over the limit of {max_doc_bytes} / tài liệu vượt quá dung lượng cho phép"
                ),
            ));
        }
        let count = new.len();
        let merge: Vec<Vec<u8>> = new.iter().map(|c| c.raw_bytes().to_vec()).collect();
        // Automerge 0.12 panics on some changes that parse but are not
        // consistent (found by `hub/tests/fuzz.rs`): applying one whose
        // actor list does not match its ops, or saving a document that
        // holds one whose ops do not match its header. Here, with the
        // replica's lock held, a panic would poison it and stop every later
        // session: refuse instead. Only the fork is touched, and it is
        // dropped. Automerge must also give back exactly the changes it
        // took, as `Replica::persist` and later syncs will ask it to.
        let hashes: BTreeSet<automerge::ChangeHash> = new.iter().map(|c| c.hash()).collect();
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let written = written_objects(&new);
            fork.apply_changes(new).map_err(|e| e.to_string())?;
            let rebuilt: BTreeSet<_> = fork.get_changes(&before).iter().map(|c| c.hash()).collect();
            if rebuilt != hashes {
                return Err("Automerge does not give them back as sent".to_owned());
            }
            let after = fork.get_heads();
            let mut touched = touched_records(&mut fork, &before, &after);
            touched.extend(records_of_objects(&fork, written));
            Ok(touched)
        }))
        .unwrap_or_else(|_| Err("Automerge cannot apply them".into()));
        let touched = applied.map_err(|e| {
            refuse(
                false,
                format!("the changes do not apply: {e} / các thay đổi không áp dụng được"),
            )
        })?;
        let records: Vec<Record> = touched
            .iter()
            .filter_map(|id| docs::read_record(&fork, id).ok().flatten())
            .collect();
        for id in &touched {
            if let Err(reason) = check_record(&fork, doc, id, &mut out.warnings) {
                return Err(Refusal {
                    records: records.iter().map(Record::to_json).collect(),
                    ..refuse(false, format!("record {id}: {reason}"))
                });
            }
        }
        out.records
            .extend(records.into_iter().map(|r| (doc.to_owned(), r)));
        out.docs
            .push((doc.to_owned(), actors.into_iter().collect(), count, bytes));
        out.merge.push((doc.to_owned(), merge));
    }
    for actor in first_seen {
        Replica::put_meta(&mut out.actors, &actor_key(&actor), node.name.as_bytes());
    }
    Ok(out)
}

/// Checks `node`'s batch and merges exactly what was checked, or refuses it
/// leaving the replica as it was. What a sync session does with a batch.
pub fn merge(
    replica: &mut Replica,
    node: &Enrolment,
    batch: &[(String, Vec<Vec<u8>>)],
    max_doc_bytes: u64,
) -> Result<Result<(Applied, Checked), Refusal>, ReplicaError> {
    let mut checked = match check(replica, node, batch, max_doc_bytes)? {
        Ok(c) => c,
        Err(refusal) => return Ok(Err(refusal)),
    };
    // The actors first seen and the records as merged go in the same
    // atomic commit as the changes.
    let mut extra = std::mem::take(&mut checked.actors);
    for (doc, rec) in &checked.records {
        index::put(&mut extra, doc, rec);
    }
    let merge = std::mem::take(&mut checked.merge);
    let applied = replica.apply(merge, extra)?;
    Ok(Ok((applied, checked)))
}

/// Ids of the records (root keys) changed between two sets of heads.
fn touched_records(
    doc: &mut AutoCommit,
    before: &[automerge::ChangeHash],
    after: &[automerge::ChangeHash],
) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for p in doc.diff(before, after) {
        match (p.path.first(), &p.action) {
            (Some((_, Prop::Map(id))), _) => {
                ids.insert(id.clone());
            }
            (None, PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key }) => {
                ids.insert(key.clone());
            }
            _ => {}
        }
    }
    ids
}

/// What `changes` write to: record ids (keys of the root) and the ids of
/// objects below the root. [`touched_records`] sees only what a merge
/// changes in the visible document: a change that replaces a value losing
/// a conflict changes no visible value, yet the record's conflicts (kept
/// in the index, shown by `export`) change. Found by the simulation.
fn written_objects(changes: &[Change]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut ids, mut objects) = (BTreeSet::new(), BTreeSet::new());
    for c in changes {
        for op in c.decode().operations {
            match (&op.obj, &op.key) {
                (automerge::legacy::ObjectId::Root, automerge::legacy::Key::Map(k)) => {
                    ids.insert(k.to_string());
                }
                (automerge::legacy::ObjectId::Id(id), _) => {
                    objects.insert(id.to_string());
                }
                _ => {}
            }
        }
    }
    (ids, objects)
}

/// The record ids among `written` (see [`written_objects`]): the keys of
/// the root written to, and those whose record object was written to.
fn records_of_objects(
    doc: &AutoCommit,
    (mut ids, objects): (BTreeSet<String>, BTreeSet<String>),
) -> BTreeSet<String> {
    if !objects.is_empty() {
        for key in doc.keys(ROOT) {
            let written = doc
                .get_all(ROOT, key.as_str())
                .unwrap_or_default()
                .iter()
                .any(|(_, obj)| objects.contains(&obj.to_string()));
            if written {
                ids.insert(key);
            }
        }
    }
    ids
}

/// Checks one record of `doc` as the merged copy holds it.
fn check_record(
    doc: &AutoCommit,
    doc_id: &str,
    id: &str,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    const NOT_A_RECORD: &str = "is not a record (a map with a kind) / không phải bản ghi hợp lệ";
    let obj = match doc.get(ROOT, id) {
        Ok(Some((automerge::Value::Object(ObjType::Map), obj))) => obj,
        _ => return Err(NOT_A_RECORD.into()),
    };
    let rec = match docs::read_record(doc, id) {
        Ok(Some(r)) if !r.kind.is_empty() => r,
        _ => return Err(NOT_A_RECORD.into()),
    };
    // A value the schema cannot read (a bad date, a float, a list) is dropped
    // by `read_record`: find it here.
    for field in doc.keys(&obj).filter(|f| f != "kind") {
        if !rec.fields.contains_key(&field) {
            return Err(format!(
                "{}: field {field:?} holds a value of the wrong type / giá trị sai kiểu",
                rec.kind
            ));
        }
    }
    rec.validate().map_err(|e| e.to_string())?;
    let spec = schema::kind(&rec.kind).map_err(|e| e.to_string())?;
    for (field, values) in &rec.conflicts {
        if let Some(f) = spec.field(field) {
            for v in values {
                f.check(&rec.kind, v.clone()).map_err(|e| e.to_string())?;
            }
        }
    }
    check_unit(&rec, doc_id)?;
    warnings.extend(odd(&rec, doc_id));
    Ok(())
}

/// The record's unit exists and lies within the document's unit.
fn check_unit(rec: &Record, doc_id: &str) -> Result<(), String> {
    let (version, doc_unit) =
        parse_unit_doc_id(doc_id).ok_or_else(|| format!("{doc_id:?} is not a unit document"))?;
    let unit = rec.text("unit").unwrap_or_default();
    let rec_version = rec.text("unit_version").unwrap_or(version);
    let known = Hierarchy::current()
        .version(rec_version)
        .is_ok_and(|v| v.unit(unit).is_some());
    if !known {
        return Err(format!(
            "{}: field \"unit\": {unit:?} is not a unit of hierarchy {rec_version} / mã đơn vị không tồn tại",
            rec.kind
        ));
    }
    let inside = rec_version == version
        && Hierarchy::current()
            .version(version)
            .is_ok_and(|v| v.within(unit, doc_unit));
    if !inside {
        return Err(format!(
            "{}: field \"unit\": {unit} does not belong in the document of unit {doc_unit} / đơn vị không thuộc tài liệu này",
            rec.kind
        ));
    }
    Ok(())
}

/// Data-quality warnings: values valid alone but odd together.
fn odd(rec: &Record, doc_id: &str) -> Vec<String> {
    let int = |f: &str| match rec.fields.get(f) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    [("female_workers", "workers"), ("female_members", "members")]
        .into_iter()
        .filter_map(|(part, whole)| match (int(part), int(whole)) {
            (Some(p), Some(w)) if p > w => Some(format!(
                "document {doc_id}: record {}: {part} ({p}) is above {whole} ({w}) / số nữ lớn hơn tổng số",
                rec.id
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use automerge::transaction::Transactable;
    use automerge::{ActorId, ScalarValue};
    use htx_core::storage::MemoryStore;
    use proptest::prelude::*;

    use super::*;

    /// [`super::check`] on a store that reads.
    fn check(
        r: &mut Replica,
        node: &Enrolment,
        batch: &[(String, Vec<Vec<u8>>)],
        max_doc_bytes: u64,
    ) -> Result<Checked, Refusal> {
        super::check(r, node, batch, max_doc_bytes).expect("the hub reads its store")
    }

    const DOC: &str = "u/2023/13633";
    /// A commune of another district (Nghĩa Hưng, 366's neighbour).
    const OTHER_DOC: &str = "u/2023/13741";

    fn hub() -> Replica {
        Replica::open(Arc::new(MemoryStore::default())).unwrap()
    }

    /// A node enrolled for Thành phố Nam Định (356).
    fn node(name: &str) -> Enrolment {
        Enrolment {
            name: name.into(),
            unit: "356".into(),
            unit_version: "2023".into(),
            ..Default::default()
        }
    }

    /// A node's document with one record made of `fields`; returns its
    /// changes and the record id.
    fn node_doc(actor: &ActorId, fields: &[(&str, ScalarValue)]) -> (AutoCommit, String) {
        let mut d = AutoCommit::new().with_actor(actor.clone());
        let id = put(&mut d, fields);
        (d, id)
    }

    /// Adds a record made of `fields` to `d` as one change.
    fn put(d: &mut AutoCommit, fields: &[(&str, ScalarValue)]) -> String {
        let id = schema::new_id();
        let obj = d.put_object(ROOT, id.as_str(), ObjType::Map).unwrap();
        d.put(&obj, "kind", "observation").unwrap();
        for (k, v) in fields {
            d.put(&obj, *k, v.clone()).unwrap();
        }
        d.commit();
        id
    }

    fn raw(changes: &[Change]) -> Vec<Vec<u8>> {
        changes.iter().map(|c| c.raw_bytes().to_vec()).collect()
    }

    fn batch(d: &mut AutoCommit) -> Vec<(String, Vec<Vec<u8>>)> {
        vec![(DOC.to_owned(), raw(&d.get_changes(&[])))]
    }

    fn observation(date: &str, workers: i64, female: i64) -> Vec<(&'static str, ScalarValue)> {
        observation_in("13633", date, workers, female)
    }

    fn observation_in(
        unit: &str,
        date: &str,
        workers: i64,
        female: i64,
    ) -> Vec<(&'static str, ScalarValue)> {
        vec![
            ("cooperative", "c".into()),
            ("observed_on", date.into()),
            ("workers", workers.into()),
            ("female_workers", female.into()),
            ("unit", unit.into()),
        ]
    }

    /// Everything the store holds, byte for byte.
    fn stored(r: &Replica) -> Vec<(Vec<u8>, Vec<u8>)> {
        r.store().scan(b"").unwrap()
    }

    #[test]
    fn odd_records_pass_with_a_warning_and_record_the_actor() {
        let mut r = hub();
        let actor = ActorId::random();
        let (mut d, id) = node_doc(&actor, &observation("2025-06-30", 5, 12));
        let checked = check(&mut r, &node("node-a"), &batch(&mut d), 1 << 20).unwrap();
        assert_eq!(checked.warnings.len(), 1);
        assert!(checked.warnings[0].contains(&id));
        r.apply(batch(&mut d), checked.actors).unwrap();
        assert_eq!(
            actor_owner(&r, &actor.to_hex_string()).as_deref(),
            Some("node-a")
        );
        // Once node-a states it as its incarnation (its sessions' hello),
        // the same actor's new changes from another node are never merged.
        claim_incarnation(&r, &node("node-a"), actor.to_bytes())
            .unwrap()
            .unwrap();
        let e = check(&mut r, &node("node-b"), &batch(&mut d), 1 << 20);
        assert!(e.is_ok(), "a replay of what the hub holds is a no-op");
        let (mut other, _) = node_doc(&actor, &observation("2025-06-30", 5, 1));
        let c = check(&mut r, &node("node-b"), &batch(&mut other), 1 << 20).unwrap();
        assert!(c.left_to_author > 0 && c.merge.iter().all(|(_, m)| m.is_empty()));
        // Nor may node-b state it as its own.
        let e = claim_incarnation(&r, &node("node-b"), actor.to_bytes())
            .unwrap()
            .unwrap_err();
        assert!(e.permission && e.reason.contains("node-a"), "{e}");
    }

    /// Found by the simulation (`tests/src/sim`): a change that replaces
    /// the value losing a conflict changes nothing visible, so the record
    /// was not among those the merge touched, and the hub's index kept the
    /// old conflicting value (shown by `htx-hub export`).
    #[test]
    fn replacing_the_losing_value_of_a_conflict_updates_the_record() {
        let mut r = hub();
        let a = ActorId::from(vec![0x01; 16]);
        let b = ActorId::from(vec![0xfe; 16]);
        let (mut da, id) = node_doc(&a, &observation("2025-06-30", 5, 1));
        let checked = check(&mut r, &node("node-a"), &batch(&mut da), 1 << 20).unwrap();
        r.apply(batch(&mut da), checked.actors).unwrap();
        let obj = |d: &AutoCommit| match d.get(ROOT, id.as_str()).unwrap() {
            Some((automerge::Value::Object(ObjType::Map), o)) => o,
            other => panic!("{other:?}"),
        };
        // node-b, having synced, sets workers after many other edits (a
        // higher op counter: its value wins the conflict).
        let mut db = r.fork(DOC).expect("readable").with_actor(b);
        let before_b = db.get_heads();
        let ob = obj(&db);
        for n in 0..20 {
            db.put(&ob, "female_workers", n).unwrap();
        }
        db.put(&ob, "workers", 30).unwrap();
        db.commit();
        let from_b = vec![(DOC.to_owned(), raw(&db.get_changes(&before_b)))];
        let checked = check(&mut r, &node("node-b"), &from_b, 1 << 20).unwrap();
        r.apply(from_b, checked.actors).unwrap();
        // node-a, offline, changes workers twice: its values lose to b's.
        let oa = obj(&da);
        for v in [6, 7] {
            let before = da.get_heads();
            da.put(&oa, "workers", v).unwrap();
            da.commit();
            let change = vec![(DOC.to_owned(), raw(&da.get_changes(&before)))];
            let checked = check(&mut r, &node("node-a"), &change, 1 << 20).unwrap();
            let rec = checked
                .records
                .iter()
                .find(|(_, rec)| rec.id == id)
                .map(|(_, rec)| rec.clone())
                .expect("the record is among those the merge touched");
            assert_eq!(
                rec.fields["workers"],
                schema::Value::Int(30),
                "b's value still wins"
            );
            assert!(
                rec.conflicts["workers"].contains(&schema::Value::Int(v)),
                "{rec:?}"
            );
            r.apply(change, checked.actors).unwrap();
        }
    }

    /// Found by the simulation (`tests/src/sim`): after the hub was
    /// restored from a backup, node-b handed on node-a's changes first, the
    /// hub recorded node-a's actor id as node-b's, and refused every later
    /// batch of node-a: its writes never reached the hub again.
    #[test]
    fn changes_handed_on_by_another_node_do_not_lock_their_author_out() {
        let mut r = hub();
        let a_actor = ActorId::random();
        let (mut d, _) = node_doc(&a_actor, &observation("2025-06-30", 5, 1));
        // node-b, sharing the document, hands on node-a's change first.
        let checked = check(&mut r, &node("node-b"), &batch(&mut d), 1 << 20).unwrap();
        r.apply(batch(&mut d), checked.actors).unwrap();
        // node-a says hello with its incarnation, then sends its new changes.
        claim_incarnation(&r, &node("node-a"), a_actor.to_bytes())
            .unwrap()
            .unwrap();
        let before = d.get_heads();
        put(&mut d, &observation("2025-07-31", 6, 2));
        let more = vec![(DOC.to_owned(), raw(&d.get_changes(&before)))];
        check(&mut r, &node("node-a"), &more, 1 << 20).expect("its author is not refused");
        assert_eq!(
            actor_owner(&r, &a_actor.to_hex_string()).as_deref(),
            Some("node-a")
        );
        // Once node-a restarts under a new incarnation, its earlier
        // actor's changes may be handed on by node-b again (a hub restored
        // from a backup lost them).
        claim_incarnation(&r, &node("node-a"), ActorId::random().to_bytes())
            .unwrap()
            .unwrap();
        let before = d.get_heads();
        put(&mut d, &observation("2025-08-31", 7, 3));
        let late = vec![(DOC.to_owned(), raw(&d.get_changes(&before)))];
        check(&mut r, &node("node-b"), &late, 1 << 20)
            .expect("a retired incarnation's changes are handed on");
    }

    /// Found by the simulation (seed 1011, defect 11): after a hub restore,
    /// two nodes sharing a document each held the other's changes that the
    /// hub had lost; each batch was refused whole, and neither synced again.
    /// A change under another node's current incarnation is now left out
    /// (with what depends on it), never merged from the wrong node, and the
    /// rest of the batch goes in; its author then delivers it.
    #[test]
    fn another_nodes_current_changes_are_left_for_their_author() {
        let mut r = hub();
        let (a_actor, b_actor) = (ActorId::random(), ActorId::random());
        for (name, actor) in [("node-a", &a_actor), ("node-b", &b_actor)] {
            claim_incarnation(&r, &node(name), actor.to_bytes())
                .unwrap()
                .unwrap();
        }
        // node-a writes; node-b got it (before the restore) and wrote on
        // top of it; the restored hub holds neither.
        let (mut a, _) = node_doc(&a_actor, &observation("2025-06-30", 5, 1));
        let mut b = a.fork().with_actor(b_actor.clone());
        put(&mut b, &observation("2025-07-31", 6, 2));
        let held = batch(&mut b);
        let e = check(&mut r, &node("node-b"), &held, 1 << 20).expect("not refused");
        assert_eq!(
            e.left_to_author,
            b.get_changes(&[]).len(),
            "a's changes, and b's on top of them"
        );
        assert!(
            e.merge.iter().all(|(_, c)| c.is_empty()),
            "nothing forged is merged"
        );
        // node-a delivers its own; then node-b's goes in.
        let own = vec![(DOC.to_owned(), raw(&a.get_changes(&[])))];
        let checked = check(&mut r, &node("node-a"), &own, 1 << 20).unwrap();
        assert_eq!(checked.left_to_author, 0);
        r.apply(own, checked.actors).unwrap();
        let checked = check(&mut r, &node("node-b"), &held, 1 << 20).unwrap();
        assert_eq!(checked.left_to_author, 0);
        r.apply(checked.merge, checked.actors).unwrap();
        assert_eq!(r.heads(DOC), b.get_heads());
    }

    #[test]
    fn no_node_may_write_under_an_actor_id_the_hub_has_used() {
        let store = Arc::new(MemoryStore::default());
        let r = Replica::open(store.clone()).unwrap();
        r.commit(claim_own_actor(&r)).unwrap();
        let earlier = r.actor().clone();
        drop(r);
        // A later incarnation of the hub still knows it as its own.
        let mut r = Replica::open(store).unwrap();
        assert_ne!(r.actor(), &earlier);
        let (mut d, _) = node_doc(&earlier, &observation("2025-06-30", 5, 1));
        let e = check(&mut r, &node("node-a"), &batch(&mut d), 1 << 20).unwrap_err();
        assert!(e.permission && e.reason.contains(HUB_OWNER), "{e}");
    }

    #[test]
    fn a_bad_date_and_a_removed_record_are_refused() {
        let mut r = hub();
        let actor = ActorId::random();
        let (mut d, id) = node_doc(&actor, &observation("2025-13-45", 5, 1));
        let e = check(&mut r, &node("node-a"), &batch(&mut d), 1 << 20).unwrap_err();
        assert!(
            e.reason.contains(&id) && e.reason.contains("observed_on"),
            "{e}"
        );

        let (mut d, id) = node_doc(&actor, &observation("2025-06-30", 5, 1));
        let checked = check(&mut r, &node("node-a"), &batch(&mut d), 1 << 20).unwrap();
        r.apply(batch(&mut d), checked.actors).unwrap();
        d.delete(ROOT, id.as_str()).unwrap();
        d.commit();
        let e = check(&mut r, &node("node-a"), &batch(&mut d), 1 << 20).unwrap_err();
        assert!(e.reason.contains("not a record"), "{e}");
    }

    /// The attack that once passed: a valid change in one entry, a forbidden
    /// change depending on it in a second entry for the same document. Each
    /// entry alone looked harmless (the second only waited for its
    /// dependency); merged, both applied.
    #[test]
    fn a_forbidden_change_split_from_its_dependency_is_refused() {
        let mut r = hub();
        let before = stored(&r);
        let mut d = AutoCommit::new().with_actor(ActorId::random());
        put(&mut d, &observation("2025-06-30", 5, 1));
        let id = put(&mut d, &observation("2025-06-30", -3, 1));
        let changes = d.get_changes(&[]);
        let split = vec![
            (DOC.to_owned(), raw(&changes[..1])),
            (DOC.to_owned(), raw(&changes[1..])),
        ];
        let e = merge(&mut r, &node("node-a"), &split, 1 << 20)
            .unwrap()
            .unwrap_err();
        assert!(
            e.reason.contains(&id) && e.reason.contains("workers"),
            "{e}"
        );
        assert_eq!(stored(&r), before, "nothing was merged");
        assert!(r.doc(DOC).is_none());
    }

    /// Split, the document's size limit still counts the whole batch.
    #[test]
    fn a_split_batch_cannot_exceed_the_document_size() {
        let mut r = hub();
        let mut d = AutoCommit::new().with_actor(ActorId::random());
        for _ in 0..4 {
            let mut f = observation("2025-06-30", 5, 1);
            f.push(("cooperative", "x".repeat(600).into()));
            put(&mut d, &f);
        }
        let changes = d.get_changes(&[]);
        let split: Vec<_> = changes
            .iter()
            .map(|c| (DOC.to_owned(), raw(std::slice::from_ref(c))))
            .collect();
        let e = merge(&mut r, &node("node-a"), &split, 1_500)
            .unwrap()
            .unwrap_err();
        assert!(e.reason.contains("over the limit"), "{e}");
    }

    /// A change whose dependency never arrives is neither checked, merged
    /// nor acknowledged, and cannot be released by a later batch.
    #[test]
    fn a_change_waiting_for_its_dependency_is_left_out() {
        let mut r = hub();
        let mut d = AutoCommit::new().with_actor(ActorId::random());
        put(&mut d, &observation("2025-06-30", 5, 1));
        put(&mut d, &observation("2025-06-30", -3, 1));
        let changes = d.get_changes(&[]);
        let (applied, checked) = merge(
            &mut r,
            &node("node-a"),
            &[(DOC.to_owned(), raw(&changes[1..]))],
            1 << 20,
        )
        .unwrap()
        .unwrap();
        assert_eq!((applied.new, checked.pending), (0, 1));
        assert!(r.heads(DOC).is_empty(), "nothing acknowledged");
        // The valid dependency alone merges; the bad change stays out.
        let (applied, _) = merge(
            &mut r,
            &node("node-a"),
            &[(DOC.to_owned(), raw(&changes[..1]))],
            1 << 20,
        )
        .unwrap()
        .unwrap();
        assert_eq!(applied.new, 1);
        let records = docs::read_records(r.doc(DOC).unwrap()).unwrap();
        assert_eq!(records.len(), 1);
        assert!(records.iter().all(|rec| rec.validate().is_ok()));
    }

    /// What an adversarial node does to one change of its batch.
    #[derive(Debug, Clone)]
    enum Op {
        Valid,
        OtherDistrictUnit,
        NegativeCount,
        TextForCount,
        /// Removes the hub's record of another node.
        DeleteOthers,
        /// Writes into another district's document.
        OtherDocument,
        Large,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => Just(Op::Valid),
            1 => Just(Op::OtherDistrictUnit),
            1 => Just(Op::NegativeCount),
            1 => Just(Op::TextForCount),
            1 => Just(Op::DeleteOthers),
            1 => Just(Op::OtherDocument),
            1 => Just(Op::Large),
        ]
    }

    /// How the batch's entries are cut and arranged: entry sizes, which
    /// entries are sent twice, and a permutation seed.
    fn arrangement() -> impl Strategy<Value = (Vec<usize>, Vec<bool>, u64)> {
        (
            prop::collection::vec(1usize..4, 1..12),
            prop::collection::vec(any::<bool>(), 12),
            any::<u64>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// For random batches from an adversarial node — split, duplicated and
        /// reordered entries — every accepted batch leaves every record
        /// well-formed and inside the node's scope, and every refused one
        /// leaves the hub byte for byte as it was.
        #[test]
        fn adversarial_batches_never_merge_a_bad_record(
            ops in prop::collection::vec(op(), 1..8),
            (sizes, dup, seed) in arrangement(),
        ) {
            // The hub holds another node's record in the shared document.
            let mut r = hub();
            let mut theirs = AutoCommit::new().with_actor(ActorId::random());
            let other_id = put(&mut theirs, &observation("2025-01-31", 7, 4));
            r.apply(batch(&mut theirs), WriteBatch::default()).unwrap();
            let before = stored(&r);
            let heads_before = r.heads(DOC);

            // The attacker starts from the hub's copy of the document.
            let actor = ActorId::random();
            let mut mine = r.fork(DOC).expect("readable").with_actor(actor.clone());
            let mut elsewhere = AutoCommit::new().with_actor(actor);
            let base = mine.get_heads();
            for op in &ops {
                match op {
                    Op::Valid => { put(&mut mine, &observation("2025-06-30", 5, 2)); }
                    Op::OtherDistrictUnit => { put(&mut mine, &observation_in("13741", "2025-06-30", 5, 2)); }
                    Op::NegativeCount => { put(&mut mine, &observation("2025-06-30", -5, 2)); }
                    Op::TextForCount => {
                        let mut f = observation("2025-06-30", 5, 2);
                        f.push(("workers", "năm".into()));
                        put(&mut mine, &f);
                    }
                    Op::DeleteOthers => {
                        mine.delete(ROOT, other_id.as_str()).unwrap();
                        mine.commit();
                    }
                    Op::OtherDocument => { put(&mut elsewhere, &observation_in("13741", "2025-06-30", 5, 2)); }
                    Op::Large => {
                        let mut f = observation("2025-06-30", 5, 2);
                        f.push(("cooperative", "x".repeat(3_000).into()));
                        put(&mut mine, &f);
                    }
                }
            }
            // Cut into entries, some sent twice, in a shuffled order.
            let mut all: Vec<(String, Change)> = mine
                .get_changes(&base)
                .into_iter()
                .map(|c| (DOC.to_owned(), c))
                .collect();
            all.extend(elsewhere.get_changes(&[]).into_iter().map(|c| (OTHER_DOC.to_owned(), c)));
            let mut entries: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
            let mut rest = all.as_slice();
            for n in sizes.iter().cycle() {
                if rest.is_empty() { break; }
                let (take, left) = rest.split_at((*n).min(rest.len()));
                rest = left;
                // An entry holds one document's changes.
                for (doc, c) in take {
                    entries.push((doc.clone(), vec![c.raw_bytes().to_vec()]));
                }
                let last = entries.len() - 1;
                if dup[last % dup.len()] {
                    entries.push(entries[last].clone());
                }
            }
            let mut rng = seed;
            for i in (1..entries.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                entries.swap(i, (rng >> 33) as usize % (i + 1));
            }

            let n = node("node-a");
            match merge(&mut r, &n, &entries, 8_000).unwrap() {
                Ok(_) => {
                    for doc in r.doc_ids().map(str::to_owned).collect::<Vec<_>>() {
                        prop_assert!(Hub::writable(&n, &doc), "merged into {doc}");
                        let d = r.doc(&doc).unwrap();
                        let records = docs::read_records(d).unwrap();
                        prop_assert!(records.iter().any(|rec| rec.id == other_id), "the other node's record is still there");
                        for rec in records {
                            let mut w = Vec::new();
                            prop_assert!(check_record(d, &doc, &rec.id, &mut w).is_ok(), "bad record merged: {rec:?}");
                        }
                    }
                }
                Err(_) => {
                    prop_assert_eq!(stored(&r), before);
                    prop_assert_eq!(r.heads(DOC), heads_before);
                    prop_assert!(r.doc(OTHER_DOC).is_none());
                }
            }
        }
    }
}

//! # Validation of a node's changes before they are merged
//!
//! Automerge trusts whoever it syncs with (see `shared/notes/automerge.md`,
//! "Untrusted peers"), so the hub never applies a node's changes straight
//! to its documents. [`check`] applies them to a fork of each document and
//! looks at what they would do:
//!
//! - each change parses, and is new or already held (a replay is a no-op);
//! - each new change's actor id belongs to this node: the first time the hub
//!   sees an actor it records it for the node that sent it (replica meta
//!   `actor/{hex}`), and refuses it from any other node, or the hub's own;
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
use htx_core::replica::Replica;
use htx_core::schema::{self, Record, Value};
use htx_core::storage::WriteBatch;
use htx_core::units::Hierarchy;

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

/// The node an actor id was first seen from, if any.
pub fn actor_owner(replica: &Replica, actor: &str) -> Option<String> {
    let v = replica.meta(&actor_key(actor)).ok()??;
    String::from_utf8(v).ok()
}

/// Checks `node`'s batch against `replica` without changing it.
pub fn check(
    replica: &mut Replica,
    node: &str,
    batch: &[(String, Vec<Vec<u8>>)],
    max_doc_bytes: u64,
) -> Result<Checked, Refusal> {
    let mut out = Checked::default();
    let hub_actor = replica.actor().to_hex_string();
    let mut first_seen = BTreeSet::new();
    for (doc, raw) in batch {
        let refuse = |permission: bool, reason: String| Refusal {
            permission,
            doc: doc.clone(),
            reason,
            records: Vec::new(),
        };
        let mut changes = Vec::with_capacity(raw.len());
        for (i, bytes) in raw.iter().enumerate() {
            let c = Change::from_bytes(bytes.clone()).map_err(|e| {
                refuse(
                    false,
                    format!("change {} of {} is malformed: {e}", i + 1, raw.len()),
                )
            })?;
            changes.push(c);
        }
        let mut fork = replica.fork(doc);
        let before = fork.get_heads();
        // Only changes the hub does not hold yet are checked: a replay is a no-op.
        let new: Vec<Change> = changes
            .into_iter()
            .filter(|c| fork.get_change_by_hash(&c.hash()).is_none())
            .collect();
        let mut actors = BTreeSet::new();
        for c in &new {
            let actor = c.actor_id().to_hex_string();
            let owner = if actor == hub_actor {
                Some("the hub".to_owned())
            } else {
                actor_owner(replica, &actor)
            };
            match owner {
                Some(o) if o != node => {
                    return Err(refuse(
                        true,
                        format!(
                            "change {} is made under actor id {actor}, which belongs to {o}, not to node {node} / mã tác nhân của nút khác",
                            c.hash()
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    first_seen.insert(actor.clone());
                }
            }
            actors.insert(actor);
        }
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
        fork.apply_changes(new)
            .map_err(|e| refuse(false, format!("the changes do not apply: {e}")))?;
        let after = fork.get_heads();
        let touched = touched_records(&mut fork, &before, &after);
        let records = touched
            .iter()
            .filter_map(|id| docs::read_record(&fork, id).ok().flatten())
            .map(|r| r.to_json())
            .collect::<Vec<_>>();
        for id in &touched {
            if let Err(reason) = check_record(&fork, doc, id, &mut out.warnings) {
                return Err(Refusal {
                    records,
                    ..refuse(false, format!("record {id}: {reason}"))
                });
            }
        }
        out.docs
            .push((doc.clone(), actors.into_iter().collect(), count, bytes));
    }
    for actor in first_seen {
        Replica::put_meta(&mut out.actors, &actor_key(&actor), node.as_bytes());
    }
    Ok(out)
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
    let known = Hierarchy::builtin()
        .version(rec_version)
        .is_ok_and(|v| v.unit(unit).is_some());
    if !known {
        return Err(format!(
            "{}: field \"unit\": {unit:?} is not a unit of hierarchy {rec_version} / mã đơn vị không tồn tại",
            rec.kind
        ));
    }
    let inside = rec_version == version
        && Hierarchy::builtin()
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

    use super::*;

    const DOC: &str = "u/2023/13633";

    fn hub() -> Replica {
        Replica::open(Arc::new(MemoryStore::default())).unwrap()
    }

    /// A node's document with one record made of `fields`; returns its
    /// changes and the record id.
    fn node_doc(actor: &ActorId, fields: &[(&str, ScalarValue)]) -> (AutoCommit, String) {
        let mut d = AutoCommit::new().with_actor(actor.clone());
        let id = schema::new_id();
        let obj = d.put_object(ROOT, id.as_str(), ObjType::Map).unwrap();
        d.put(&obj, "kind", "observation").unwrap();
        for (k, v) in fields {
            d.put(&obj, *k, v.clone()).unwrap();
        }
        d.commit();
        (d, id)
    }

    fn batch(d: &mut AutoCommit) -> Vec<(String, Vec<Vec<u8>>)> {
        let changes = d
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        vec![(DOC.to_owned(), changes)]
    }

    fn observation(date: &str, workers: i64, female: i64) -> Vec<(&'static str, ScalarValue)> {
        vec![
            ("cooperative", "c".into()),
            ("observed_on", date.into()),
            ("workers", workers.into()),
            ("female_workers", female.into()),
            ("unit", "13633".into()),
        ]
    }

    #[test]
    fn odd_records_pass_with_a_warning_and_record_the_actor() {
        let mut r = hub();
        let actor = ActorId::random();
        let (mut d, id) = node_doc(&actor, &observation("2025-06-30", 5, 12));
        let checked = check(&mut r, "node-a", &batch(&mut d), 1 << 20).unwrap();
        assert_eq!(checked.warnings.len(), 1);
        assert!(checked.warnings[0].contains(&id));
        r.apply(batch(&mut d), checked.actors).unwrap();
        assert_eq!(
            actor_owner(&r, &actor.to_hex_string()).as_deref(),
            Some("node-a")
        );
        // The same actor from another node is refused.
        let e = check(&mut r, "node-b", &batch(&mut d), 1 << 20);
        assert!(e.is_ok(), "a replay of what the hub holds is a no-op");
        let (mut other, _) = node_doc(&actor, &observation("2025-06-30", 5, 1));
        let e = check(&mut r, "node-b", &batch(&mut other), 1 << 20).unwrap_err();
        assert!(e.permission && e.reason.contains("node-a"), "{e}");
    }

    #[test]
    fn a_bad_date_and_a_removed_record_are_refused() {
        let mut r = hub();
        let actor = ActorId::random();
        let (mut d, id) = node_doc(&actor, &observation("2025-13-45", 5, 1));
        let e = check(&mut r, "node-a", &batch(&mut d), 1 << 20).unwrap_err();
        assert!(
            e.reason.contains(&id) && e.reason.contains("observed_on"),
            "{e}"
        );

        let (mut d, id) = node_doc(&actor, &observation("2025-06-30", 5, 1));
        let checked = check(&mut r, "node-a", &batch(&mut d), 1 << 20).unwrap();
        r.apply(batch(&mut d), checked.actors).unwrap();
        d.delete(ROOT, id.as_str()).unwrap();
        d.commit();
        let e = check(&mut r, "node-a", &batch(&mut d), 1 << 20).unwrap_err();
        assert!(e.reason.contains("not a record"), "{e}");
    }
}

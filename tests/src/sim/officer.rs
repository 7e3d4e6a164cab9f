//! What officers do on the nodes (records of every kind, edits, deletes,
//! restores), and what the adversarial node crafts.
//!
//! A write goes the way `htx_node::node::Node::write` takes it: typed from
//! strings by the schema, normalized, given its unit and system fields,
//! checked ([`Record::validate`], the node's scope), then put into the
//! unit's document in one durable commit; a returned commit is an
//! acknowledged write. Timestamps come from the node's simulated clock,
//! skewed per node.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit};
use htx_core::docs::{self, unit_doc_id};
use htx_core::schema::{Record, Value, record_from_strings};
use htx_core::units::Hierarchy;
use htx_proto::v1 as pb;
use rand::Rng;
use rand::seq::IndexedRandom;

use super::session::Attack;
use super::world::{World, Write};

/// 2026-01-01T00:00:00Z, the simulated epoch; one step is one minute.
const EPOCH: i64 = 1_767_225_600;

fn timestamp(w: &World, node: usize) -> String {
    let t = EPOCH + w.step as i64 * 60 + w.nodes[node].skew_secs;
    time::OffsetDateTime::from_unix_timestamp(t)
        .expect("in range")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

fn date(w: &mut World) -> String {
    let y = w.rng.random_range(2019..=2031);
    let m = w.rng.random_range(1..=12);
    let d = w.rng.random_range(1..=28);
    format!("{y:04}-{m:02}-{d:02}")
}

fn new_id(w: &mut World) -> String {
    let b: [u8; 16] = w.rng.random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The records node `i` holds in the documents of its communes, with
/// their document: (doc, record).
fn records_of(w: &World, i: usize) -> Vec<(String, Record)> {
    let n = &w.nodes[i];
    let mut out = Vec::new();
    for c in &n.communes {
        let doc_id = unit_doc_id(&n.enrolment.unit_version, c);
        if let Some(doc) = n.replica.doc(&doc_id)
            && let Ok(recs) = docs::read_records(doc)
        {
            out.extend(recs.into_iter().map(|r| (doc_id.clone(), r)));
        }
    }
    out
}

fn pick<'a, T>(w: &mut World, items: &'a [T]) -> Option<&'a T> {
    items.choose(&mut w.rng)
}

/// One officer's action on a random node.
pub(super) fn write(w: &mut World) -> Result<(), String> {
    let i = w.rng.random_range(0..w.nodes.len());
    let roll = w.rng.random_range(0..100);
    match roll {
        0..45 => new_record(w, i),
        45..75 => edit(w, i, None),
        75..83 => concurrent_edit(w, i),
        83..93 => delete(w, i, false),
        _ => delete(w, i, true),
    }
}

fn new_record(w: &mut World, i: usize) -> Result<(), String> {
    let commune = pick(w, &w.nodes[i].communes.clone())
        .cloned()
        .expect("a node has a commune");
    let existing = records_of(w, i);
    let of_kind = |k: &str| -> Vec<String> {
        existing
            .iter()
            .filter(|(_, r)| r.kind == k && r.text("unit") == Some(commune.as_str()))
            .map(|(_, r)| r.id.clone())
            .collect()
    };
    let coops = of_kind("cooperative");
    let people: Vec<String> = of_kind("manager")
        .into_iter()
        .chain(of_kind("cadre"))
        .collect();
    let n = w.rng.random_range(0..1000);
    let kinds = [
        "cooperative",
        "observation",
        "manager",
        "cadre",
        "training",
        "activity",
        "milestone",
    ];
    let mut kind = *pick(w, &kinds).expect("kinds");
    if coops.is_empty() && matches!(kind, "observation" | "manager") {
        kind = "cooperative";
    }
    let d1 = date(w);
    let d2 = date(w);
    let coop = pick(w, &coops).cloned().unwrap_or_default();
    let members = w.rng.random_range(0..200);
    let female = w.rng.random_range(0..=members);
    let workers = w.rng.random_range(0..300);
    let fworkers = w.rng.random_range(0..=workers);
    let bool_ = |w: &mut World| {
        if w.rng.random_bool(0.5) {
            "true"
        } else {
            "false"
        }
    };
    let mut fields: Vec<(String, String)> = match kind {
        "cooperative" => vec![
            ("type".into(), ["HTX", "THT"][n % 2].into()),
            ("name".into(), format!("HTX Nông nghiệp số {n}")),
            ("founded_on".into(), d1),
            ("union_supported".into(), bool_(w).into()),
            ("under_plan".into(), bool_(w).into()),
            (
                "classification".into(),
                ["good", "fair", "average", "weak"][n % 4].into(),
            ),
            ("classified_on".into(), d2),
            ("status".into(), "active".into()),
        ],
        "observation" => vec![
            ("cooperative".into(), coop.clone()),
            ("observed_on".into(), d1),
            ("members".into(), members.to_string()),
            ("female_members".into(), female.to_string()),
            ("workers".into(), workers.to_string()),
            ("female_workers".into(), fworkers.to_string()),
            (
                "stable_jobs_women".into(),
                w.rng.random_range(0..50).to_string(),
            ),
            (
                "new_jobs_women".into(),
                w.rng.random_range(0..50).to_string(),
            ),
        ],
        "manager" => vec![
            ("cooperative".into(), coop.clone()),
            ("name".into(), format!("Nguyễn Thị {n}")),
            ("gender".into(), ["female", "male"][n % 2].into()),
            (
                "role".into(),
                ["chair", "board_member", "director", "supervisory_board"][n % 4].into(),
            ),
            ("since".into(), d1),
        ],
        "cadre" => vec![
            ("name".into(), format!("Trần Thị {n}")),
            ("level".into(), ["commune", "district"][n % 2].into()),
            ("gender".into(), ["female", "male"][n % 2].into()),
            ("kttt_support".into(), bool_(w).into()),
        ],
        "training" => {
            let k = w.rng.random_range(0..=people.len().min(3));
            let attendees: Vec<String> = people.choose_multiple(&mut w.rng, k).cloned().collect();
            vec![
                ("held_on".into(), d1),
                (
                    "type".into(),
                    [
                        "governance",
                        "digital_skills",
                        "cadre_kttt",
                        "cadre_skills",
                        "vocational",
                    ][n % 5]
                        .into(),
                ),
                ("attendees".into(), attendees.join(";")),
                ("cooperative".into(), coop.clone()),
            ]
        }
        "activity" => vec![
            (
                "type".into(),
                ["communication", "contest", "forum", "loan", "ocop"][n % 5].into(),
            ),
            ("held_on".into(), d1),
            ("participants".into(), members.to_string()),
            ("women".into(), female.to_string()),
            (
                "amount_vnd".into(),
                (w.rng.random_range(0..1000) * 1_000_000i64).to_string(),
            ),
            ("cooperative".into(), coop.clone()),
        ],
        _ => vec![
            ("type".into(), "women_entrepreneurs_association".into()),
            ("achieved_on".into(), d1),
            ("name".into(), format!("Hội nữ doanh nhân {n}")),
        ],
    };
    // Now and then a value the schema refuses: never acknowledged.
    if w.rng.random_bool(0.03) {
        fields.push(("members".into(), "-5".into()));
    }
    fields.push(("unit".into(), commune.clone()));
    let typed = record_from_strings(kind, fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut rec = match typed {
        Ok(r) => r,
        Err(_) => {
            w.stats.writes_refused += 1;
            return Ok(());
        }
    };
    rec.id = new_id(w);
    rec.normalize();
    let version = w.nodes[i].enrolment.unit_version.clone();
    rec.fields
        .insert("unit_version".into(), Value::Text(version.clone()));
    rec.fields
        .insert("recorded_at".into(), Value::Text(timestamp(w, i)));
    rec.fields.insert(
        "recorded_by".into(),
        Value::Text(w.nodes[i].enrolment.name.clone()),
    );
    if rec.validate().is_err() {
        w.stats.writes_refused += 1;
        return Ok(());
    }
    let doc = unit_doc_id(&version, &commune);
    commit(w, i, &doc, format!("new {kind} {}", &rec.id[..8]), |d| {
        docs::put_record(d, &rec)
    })
}

/// Changes fields of a record the node holds (`only`: that record and field).
fn edit(w: &mut World, i: usize, only: Option<(String, String, String)>) -> Result<(), String> {
    let (doc, rec, field) = match only {
        Some((doc, id, field)) => {
            let Some((_, rec)) = records_of(w, i).into_iter().find(|(_, r)| r.id == id) else {
                return Ok(());
            };
            (doc, rec, field)
        }
        None => {
            let all = records_of(w, i);
            let Some((doc, rec)) = pick(w, &all).cloned() else {
                return new_record(w, i);
            };
            let Some(field) = editable(&rec.kind)
                .choose(&mut w.rng)
                .map(|f| f.to_string())
            else {
                return Ok(());
            };
            (doc, rec, field)
        }
    };
    let raw = match field.as_str() {
        "name" | "title" => format!("Tên mới {}", w.rng.random_range(0..1000)),
        "classification" => ["good", "fair", "average", "weak"][w.rng.random_range(0..4)].into(),
        "status" => "active".into(),
        "gender" => ["female", "male"][w.rng.random_range(0..2)].into(),
        "under_plan" | "union_supported" | "kttt_support" => {
            ["true", "false"][w.rng.random_range(0..2)].into()
        }
        "observed_on" | "held_on" | "since" | "achieved_on" | "founded_on" => date(w),
        _ => w.rng.random_range(0..400).to_string(),
    };
    let Ok(part) = record_from_strings(&rec.kind, [(field.as_str(), raw.as_str())]) else {
        return Ok(());
    };
    let mut full = rec.clone();
    full.fields.extend(part.fields.clone());
    full.conflicts.clear();
    if full.validate().is_err() {
        w.stats.writes_refused += 1;
        return Ok(());
    }
    let mut change = Record {
        id: rec.id.clone(),
        kind: rec.kind.clone(),
        ..Default::default()
    };
    change.fields = part.fields;
    commit(w, i, &doc, format!("edit {}.{field}", &rec.id[..8]), |d| {
        docs::put_record(d, &change)
    })
}

fn editable(kind: &str) -> &'static [&'static str] {
    match kind {
        "cooperative" => &[
            "name",
            "classification",
            "under_plan",
            "union_supported",
            "founded_on",
        ],
        "observation" => &[
            "members",
            "workers",
            "stable_jobs_women",
            "new_jobs_women",
            "observed_on",
        ],
        "manager" => &["name", "gender", "since"],
        "cadre" => &["name", "kttt_support", "gender"],
        "training" => &["title", "held_on"],
        "activity" => &["participants", "women", "held_on"],
        _ => &["name", "achieved_on"],
    }
}

/// The same field of one record changed on this node and on another node
/// that holds it, before either syncs: a conflict every replica must keep
/// alike.
fn concurrent_edit(w: &mut World, i: usize) -> Result<(), String> {
    let all = records_of(w, i);
    let Some((doc, rec)) = pick(w, &all).cloned() else {
        return new_record(w, i);
    };
    let others: Vec<usize> = (0..w.nodes.len())
        .filter(|&j| {
            j != i
                && w.nodes[j]
                    .replica
                    .doc(&doc)
                    .is_some_and(|d| docs::read_record(d, &rec.id).ok().flatten().is_some())
        })
        .collect();
    let Some(&j) = pick(w, &others) else {
        return edit(w, i, None);
    };
    let Some(field) = editable(&rec.kind).first().map(|f| f.to_string()) else {
        return Ok(());
    };
    w.note(format!(
        "concurrent edits of {}.{field} on nodes {i} and {j}",
        &rec.id[..8]
    ));
    edit(w, i, Some((doc.clone(), rec.id.clone(), field.clone())))?;
    edit(w, j, Some((doc, rec.id, field)))
}

/// Marks a record deleted, or restores it, as `Node::delete` does.
fn delete(w: &mut World, i: usize, restore: bool) -> Result<(), String> {
    let all: Vec<(String, Record)> = records_of(w, i)
        .into_iter()
        .filter(|(_, r)| r.is_deleted() == restore)
        .collect();
    let Some((doc, rec)) = pick(w, &all).cloned() else {
        return Ok(());
    };
    let who = Value::Text(w.nodes[i].enrolment.name.clone());
    let when = Value::Text(timestamp(w, i));
    let mut change = Record {
        id: rec.id.clone(),
        kind: rec.kind.clone(),
        ..Default::default()
    };
    let (set, clear) = if restore {
        (
            ["restored_at", "restored_by", "restored_reason"],
            ["deleted_at", "deleted_by", "deleted_reason"],
        )
    } else {
        (
            ["deleted_at", "deleted_by", "deleted_reason"],
            ["restored_at", "restored_by", "restored_reason"],
        )
    };
    change.fields.insert(set[0].into(), when);
    change.fields.insert(set[1].into(), who);
    change
        .fields
        .insert(set[2].into(), Value::Text("mô phỏng".into()));
    let id = rec.id.clone();
    let what = format!(
        "{} {}",
        if restore { "restore" } else { "delete" },
        &id[..8]
    );
    commit(w, i, &doc, what, |d| {
        docs::put_record(d, &change)?;
        clear.iter().try_for_each(|f| docs::remove_field(d, &id, f))
    })
}

/// One durable commit on node `i`; once it returns, the write is
/// acknowledged and tracked.
fn commit(
    w: &mut World,
    i: usize,
    doc: &str,
    what: String,
    edit: impl FnOnce(&mut AutoCommit) -> Result<(), automerge::AutomergeError>,
) -> Result<(), String> {
    let before = w.nodes[i].replica.heads(doc);
    w.nodes[i]
        .replica
        .change(doc, edit)
        .map_err(|e| w.fail(&format!("node {i} cannot commit: {e}")))?
        .map_err(|e| w.fail(&format!("node {i} cannot edit: {e}")))?;
    let after = w.nodes[i].replica.heads(doc);
    if after == before {
        return Ok(()); // nothing changed (the same value again)
    }
    if after.len() != 1 {
        return Err(w.fail(&format!("a local write left {} heads", after.len())));
    }
    w.stats.writes_acked += 1;
    let step = w.step;
    w.writes.push(Write {
        node: i,
        doc: doc.to_owned(),
        hash: after[0],
        step,
        rolled_back: false,
    });
    w.note(format!("node {i}: {what} in {doc}"));
    Ok(())
}

// ---- The adversary ---------------------------------------------------------

/// A batch the adversarial node `i` crafts, or None if it has nothing to
/// craft from yet.
pub(super) fn attack(w: &mut World, i: usize) -> Result<Option<Attack>, String> {
    let h = Hierarchy::builtin();
    let version = w.nodes[i].enrolment.unit_version.clone();
    let unit = w.nodes[i].enrolment.unit.clone();
    let own_doc = unit_doc_id(&version, &w.nodes[i].communes[0]);
    let to_wire = |doc: &str, changes: Vec<Vec<u8>>| pb::DocChanges {
        doc: doc.to_owned(),
        changes,
    };
    let coop = |id: String, unit: &str, version: &str| {
        let mut r = record_from_strings("cooperative", [("type", "HTX"), ("name", "HTX giả")])
            .expect("valid");
        r.id = id;
        r.fields.insert("unit".into(), Value::Text(unit.to_owned()));
        r.fields
            .insert("unit_version".into(), Value::Text(version.to_owned()));
        r
    };
    let kind = w.rng.random_range(0..6);
    Ok(Some(match kind {
        // Its own new changes, every change its own entry, each twice, in
        // reverse order: merged as the whole batch would be.
        0 => {
            let r = &mut w.nodes[i].replica;
            let changes: Vec<Vec<u8>> = r
                .changes_since(&own_doc, &[])
                .expect("readable")
                .iter()
                .rev()
                .take(8)
                .map(|c| c.raw_bytes().to_vec())
                .collect();
            if changes.is_empty() {
                return Ok(None);
            }
            let mut docs = Vec::new();
            for c in &changes {
                docs.push(to_wire(&own_doc, vec![c.clone()]));
                docs.push(to_wire(&own_doc, vec![c.clone()]));
            }
            Attack {
                what: "own changes split into duplicated entries, reversed".into(),
                docs,
                must_refuse: false,
                forged: Vec::new(),
            }
        }
        // A record in a commune outside its scope (another version's, or
        // another district's).
        1 => {
            let v = h.version(&version).expect("version");
            let outside: Vec<String> = v
                .units()
                .filter(|u| u.level == htx_core::units::Level::Commune && !v.within(&u.code, &unit))
                .map(|u| u.code.clone())
                .take(50)
                .collect();
            let c = pick(w, &outside).cloned().expect("communes outside");
            let doc_id = unit_doc_id(&version, &c);
            let actor = w.new_actor(Some(i));
            let mut d = AutoCommit::new().with_actor(actor);
            let id = new_id(w);
            docs::put_record(&mut d, &coop(id, &c, &version)).map_err(|e| e.to_string())?;
            d.commit();
            let changes = d
                .get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect();
            Attack {
                what: format!("a record in {doc_id}, outside its scope"),
                docs: vec![to_wire(&doc_id, changes)],
                must_refuse: true,
                forged: Vec::new(),
            }
        }
        // The plan document, which only the hub writes.
        2 => {
            let actor = w.new_actor(Some(i));
            let mut d = w.nodes[i]
                .replica
                .fork(docs::REFERENCE_DOC)
                .expect("readable");
            d.set_actor(actor);
            let before = d.get_heads();
            d.put(automerge::ROOT, "plan", "forged")
                .map_err(|e| e.to_string())?;
            d.commit();
            let changes = d
                .get_changes(&before)
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect();
            Attack {
                what: "a change to the hub's plan document".into(),
                docs: vec![to_wire(docs::REFERENCE_DOC, changes)],
                must_refuse: true,
                forged: Vec::new(),
            }
        }
        // A change in its own document under an actor id seen in changes
        // another node made.
        3 => {
            let mut seen: Vec<ActorId> = Vec::new();
            let r = &mut w.nodes[i].replica;
            for c in r.changes_since(&own_doc, &[]).expect("readable") {
                let a = c.actor_id().clone();
                if w.actors.get(&a).is_some_and(|o| *o != Some(i)) && !seen.contains(&a) {
                    seen.push(a);
                }
            }
            let Some(actor) = pick(w, &seen).cloned() else {
                return Ok(None);
            };
            let mut d = w.nodes[i].replica.fork(&own_doc).expect("readable");
            // Past every sequence number the actor used, as a real forger would go.
            d.set_actor(actor);
            let before = d.get_heads();
            let id = new_id(w);
            let c = w.nodes[i].communes[0].clone();
            docs::put_record(&mut d, &coop(id, &c, &version)).map_err(|e| e.to_string())?;
            d.commit();
            let changes: Vec<_> = d
                .get_changes(&before)
                .iter()
                .map(|c| (c.hash(), c.raw_bytes().to_vec()))
                .collect();
            Attack {
                what: "a record under another node's actor id".into(),
                forged: changes.iter().map(|(h, _)| *h).collect(),
                docs: vec![to_wire(
                    &own_doc,
                    changes.into_iter().map(|(_, b)| b).collect(),
                )],
                must_refuse: true,
            }
        }
        // A record the schema refuses (a negative count) in its own document.
        4 => {
            let actor = w.new_actor(Some(i));
            let mut d = w.nodes[i].replica.fork(&own_doc).expect("readable");
            d.set_actor(actor);
            let before = d.get_heads();
            let id = new_id(w);
            let c = w.nodes[i].communes[0].clone();
            let mut r = coop(id, &c, &version);
            r.kind = "observation".into();
            r.fields.insert("members".into(), Value::Int(-3));
            docs::put_record(&mut d, &r).map_err(|e| e.to_string())?;
            d.commit();
            let changes = d
                .get_changes(&before)
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect();
            Attack {
                what: "a record the schema refuses".into(),
                docs: vec![to_wire(&own_doc, changes)],
                must_refuse: true,
                forged: Vec::new(),
            }
        }
        // An orphan: a change whose dependency is not sent (left out, not
        // acknowledged, never merged later unchecked).
        _ => {
            let actor = w.new_actor(Some(i));
            let mut d = w.nodes[i].replica.fork(&own_doc).expect("readable");
            d.set_actor(actor);
            let before = d.get_heads();
            let c = w.nodes[i].communes[0].clone();
            let id = new_id(w);
            docs::put_record(&mut d, &coop(id.clone(), &c, &version)).map_err(|e| e.to_string())?;
            d.commit();
            d.put(automerge::ROOT, "stray", 1)
                .map_err(|e| e.to_string())?;
            d.commit();
            let changes = d.get_changes(&before);
            let orphan = changes.last().expect("two").raw_bytes().to_vec();
            Attack {
                what: "an orphan change (its dependency withheld), not a record".into(),
                docs: vec![to_wire(&own_doc, vec![orphan])],
                must_refuse: false,
                forged: Vec::new(),
            }
        }
    }))
}

//! # Facts the hub publishes to a node about its own people
//!
//! A node holds the records of its units only. A training organised at
//! province level, recorded in the province's document, is attended by
//! managers and cadres of a district: the district's node never holds that
//! training, so its "trained" figures would read lower than the hub's for
//! the same units. The node must not receive the training record itself
//! either: its other attendees are people of other districts (Decree
//! 13/2023 on personal data).
//!
//! So the hub publishes, to each node, one read-only document
//! (`ref/facts/{node}`) holding, for every training recorded outside the
//! node's scope that people of the node's scope attended, only what the
//! node's figures need: the training's id, unit, date (`held_on`) and type,
//! and which of *the node's own* people attended it. No name, no title, no
//! other attendee. The node adds these to its own records when it computes
//! progress; the figures of its units then equal the hub's. The hub works
//! them out afresh at the start of each of the node's sync sessions, so
//! they are as current as the node's last sync; a node that never received
//! them says its figures may be incomplete.
//!
//! The hub writes the document; nodes only read it: the hub refuses any
//! change from a node to a document that is not one of its units', and a
//! node uploads only its units' documents.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};

use crate::docs::DocResult;
use crate::schema::{Record, Value};

/// The document of facts for node `node`.
pub fn doc_id(node: &str) -> String {
    format!("ref/facts/{node}")
}

/// The fields of a training a fact keeps (those the plans' conditions read:
/// its date and type), besides its unit and the node's attendees.
const KEPT: [&str; 2] = ["held_on", "type"];

/// What the document holds: when the hub worked the facts out, and the
/// trainings, reduced to what the node may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub computed_at: String,
    pub trainings: Vec<Record>,
}

/// The facts for a node: every live training of `records` that the node
/// does not hold (`held` is false for it) and that people it holds
/// attended, reduced to its id, unit, date, type and those attendees.
pub fn compute(records: &[Record], held: impl Fn(&Record) -> bool) -> Vec<Record> {
    let people: std::collections::HashSet<&str> = records
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "manager" | "cadre") && !r.is_deleted() && held(r))
        .map(|r| r.id.as_str())
        .collect();
    let mut out = Vec::new();
    for t in records
        .iter()
        .filter(|r| r.kind == "training" && !r.is_deleted() && !held(r))
    {
        let Some(Value::List(attendees)) = t.fields.get("attendees") else {
            continue;
        };
        let mine: Vec<String> = attendees
            .iter()
            .filter(|a| people.contains(a.as_str()))
            .cloned()
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut fact = Record {
            id: t.id.clone(),
            kind: t.kind.clone(),
            ..Default::default()
        };
        for k in KEPT.iter().chain(&["unit", "unit_version"]) {
            if let Some(v) = t.fields.get(*k) {
                fact.fields.insert((*k).to_owned(), v.clone());
            }
        }
        fact.fields.insert("attendees".into(), Value::List(mine));
        out.push(fact);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Writes `facts` into the document, unless it already holds the same
/// trainings (so a session with nothing new adds no change).
pub fn put(doc: &mut AutoCommit, facts: &Facts) -> DocResult<bool> {
    if read(doc).is_some_and(|old| old.trainings == facts.trainings) {
        return Ok(false);
    }
    let trainings: Vec<serde_json::Value> = facts.trainings.iter().map(Record::to_json).collect();
    let json = serde_json::json!({ "computed_at": facts.computed_at, "trainings": trainings });
    doc.put(ROOT, "facts", json.to_string())?;
    Ok(true)
}

/// Reads the document, if it holds facts.
pub fn read(doc: &AutoCommit) -> Option<Facts> {
    let Ok(Some((automerge::Value::Scalar(v), _))) = doc.get(ROOT, "facts") else {
        return None;
    };
    let json: serde_json::Value = serde_json::from_str(v.as_str()?).ok()?;
    let trainings = json["trainings"]
        .as_array()?
        .iter()
        .map(|t| crate::schema::record_from_json(t).ok())
        .collect::<Option<Vec<Record>>>()?;
    Some(Facts {
        computed_at: json["computed_at"].as_str()?.to_owned(),
        trainings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::record_from_strings;

    fn rec(kind: &str, id: &str, unit: &str, fields: &[(&str, &str)]) -> Record {
        let mut r = record_from_strings(kind, fields.iter().copied()).unwrap();
        r.id = id.into();
        r.fields.insert("unit".into(), Value::Text(unit.into()));
        r
    }

    #[test]
    fn a_node_gets_only_its_own_people_and_the_trainings_dates_and_types() {
        let mine = rec(
            "manager",
            "m1",
            "13633",
            &[
                ("name", "Nguyễn Thị Hoa"),
                ("gender", "female"),
                ("role", "chair"),
                ("cooperative", "c1"),
            ],
        );
        let theirs = rec(
            "manager",
            "m2",
            "14215",
            &[
                ("name", "Trần Thị Lan"),
                ("gender", "female"),
                ("role", "chair"),
                ("cooperative", "c2"),
            ],
        );
        let mut t = rec(
            "training",
            "t1",
            "36",
            &[
                ("held_on", "2024-05-01"),
                ("type", "governance"),
                ("title", "Lớp quản trị HTX"),
            ],
        );
        t.fields.insert(
            "attendees".into(),
            Value::List(vec!["m1".into(), "m2".into()]),
        );
        let held = |r: &Record| r.text("unit").is_some_and(|u| u.starts_with("136"));
        let facts = compute(&[mine, theirs, t], held);
        assert_eq!(facts.len(), 1);
        let f = &facts[0];
        assert_eq!(f.id, "t1");
        assert_eq!(
            f.fields.get("attendees"),
            Some(&Value::List(vec!["m1".into()]))
        );
        let mut keys: Vec<&str> = f.fields.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["attendees", "held_on", "type", "unit"]);
        // Stored once; the same facts again add no change.
        let mut doc = AutoCommit::new();
        let facts = Facts {
            computed_at: "2025-01-01T00:00:00Z".into(),
            trainings: facts,
        };
        assert!(put(&mut doc, &facts).unwrap());
        assert!(!put(&mut doc, &facts).unwrap());
        assert_eq!(read(&doc), Some(facts));
    }
}

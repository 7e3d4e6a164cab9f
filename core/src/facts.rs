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
//! progress; the figures of its units then equal the hub's. The hub keeps
//! what they are worked out from ([`Attendance`]) current as records merge,
//! and works out each node's at the start of each of its sync sessions, so
//! they are as current as the node's last sync; a node that never received
//! them says its figures may be incomplete.
//!
//! The hub writes the document; nodes only read it: the hub refuses any
//! change from a node to a document that is not one of its units', and a
//! node uploads only its units' documents.

use std::collections::{BTreeMap, HashMap};

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

/// What the facts are worked out from, kept current as records merge: the
/// live managers and cadres (only where each is kept) and the live
/// trainings (only the fields a fact keeps, with every attendee). It is
/// small beside the records, so the hub keeps one and never reads the
/// whole province again for a node's session.
#[derive(Debug, Default)]
pub struct Attendance {
    people: HashMap<String, Record>,
    trainings: BTreeMap<String, Record>,
}

impl Attendance {
    /// Takes a record as it now is (new, changed, deleted or restored).
    pub fn upsert(&mut self, rec: &Record) {
        self.people.remove(&rec.id);
        self.trainings.remove(&rec.id);
        if rec.is_deleted() {
            return;
        }
        let kept: &[&str] = match rec.kind.as_str() {
            "manager" | "cadre" => &[],
            "training" => &KEPT,
            _ => return,
        };
        let mut small = Record {
            id: rec.id.clone(),
            kind: rec.kind.clone(),
            ..Default::default()
        };
        for k in kept.iter().chain(&["unit", "unit_version", "attendees"]) {
            if let Some(v) = rec.fields.get(*k) {
                small.fields.insert((*k).to_owned(), v.clone());
            }
        }
        match small.kind.as_str() {
            "training" => self.trainings.insert(small.id.clone(), small),
            _ => self.people.insert(small.id.clone(), small),
        };
    }

    /// The facts for a node: every live training that the node does not
    /// hold (`held` is false for it) and that people it holds attended,
    /// reduced to its id, unit, date, type and those attendees, by id.
    pub fn facts(&self, held: impl Fn(&Record) -> bool) -> Vec<Record> {
        let mut out = Vec::new();
        for t in self.trainings.values().filter(|t| !held(t)) {
            let Some(Value::List(attendees)) = t.fields.get("attendees") else {
                continue;
            };
            let mine: Vec<String> = attendees
                .iter()
                .filter(|a| self.people.get(a.as_str()).is_some_and(&held))
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut fact = t.clone();
            fact.fields.insert("attendees".into(), Value::List(mine));
            out.push(fact);
        }
        out
    }
}

/// The facts for a node, from every record at once (see
/// [`Attendance::facts`]).
pub fn compute(records: &[Record], held: impl Fn(&Record) -> bool) -> Vec<Record> {
    let mut attendance = Attendance::default();
    for r in records {
        attendance.upsert(r);
    }
    attendance.facts(held)
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

    /// The facts as the hub first worked them out, by scanning every
    /// record: the oracle for the incremental [`Attendance`].
    fn by_scan(records: &[Record], held: impl Fn(&Record) -> bool) -> Vec<Record> {
        let live = |r: &&Record| !r.is_deleted();
        let people: std::collections::HashSet<&str> = records
            .iter()
            .filter(live)
            .filter(|r| matches!(r.kind.as_str(), "manager" | "cadre") && held(r))
            .map(|r| r.id.as_str())
            .collect();
        let mut out = Vec::new();
        for t in records.iter().filter(live) {
            let Some(Value::List(all)) = t.fields.get("attendees") else {
                continue;
            };
            if t.kind != "training" || held(t) {
                continue;
            }
            let mine: Vec<String> = all
                .iter()
                .filter(|a| people.contains(a.as_str()))
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut f = Record {
                id: t.id.clone(),
                kind: t.kind.clone(),
                ..Default::default()
            };
            for k in ["held_on", "type", "unit", "unit_version"] {
                if let Some(v) = t.fields.get(k) {
                    f.fields.insert(k.into(), v.clone());
                }
            }
            f.fields.insert("attendees".into(), Value::List(mine));
            out.push(f);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    proptest::proptest! {
        /// Records written, edited (unit, kind of attendees), deleted and
        /// restored in any order: the facts kept current one record at a
        /// time equal those worked out from the final records at once.
        #[test]
        fn attendance_kept_current_equals_a_scan_of_every_record(
            ops in proptest::collection::vec(
                (0usize..12, 0usize..4, 0usize..3, proptest::collection::vec(0usize..12, 0..5), proptest::bool::ANY),
                1..80,
            ),
        ) {
            let units = ["13633", "13636", "14215", "36"];
            let kinds = ["manager", "cadre", "training"];
            let mut now: BTreeMap<String, Record> = BTreeMap::new();
            let mut attendance = Attendance::default();
            for (id, unit, kind, attendees, deleted) in ops {
                let id = format!("r{id}");
                let kind = now.get(&id).map_or(kinds[kind], |r| r.kind.as_str()).to_owned();
                let mut r = rec(&kind, &id, units[unit], &[]);
                if kind == "training" {
                    r.fields.insert("held_on".into(), Value::Text("2024-05-01".into()));
                    r.fields.insert(
                        "attendees".into(),
                        Value::List(attendees.iter().map(|a| format!("r{a}")).collect()),
                    );
                }
                if deleted {
                    r.fields.insert("deleted_at".into(), Value::Text("2025-01-01".into()));
                }
                attendance.upsert(&r);
                now.insert(id, r);
            }
            let all: Vec<Record> = now.into_values().collect();
            for prefix in ["136", "142", "1363"] {
                let held = |r: &Record| r.text("unit").is_some_and(|u| u.starts_with(prefix));
                proptest::prop_assert_eq!(attendance.facts(held), by_scan(&all, held));
            }
        }
    }
}

//! # Records inside Automerge documents
//!
//! One document per administrative unit (`u/{version}/{code}`): a district
//! node holds the documents of the units below it, and the hub holds them
//! all. Inside a document, the root map has one entry per record id, and
//! each record is a map of its fields (`kind` included), so concurrent edits
//! of different fields merge and concurrent edits of the same field are kept
//! side by side and shown as a conflict. Records are only ever created by the
//! replica that made their id, so two replicas never race to create the same
//! map. Lists (who attended a training) are maps of id -> true, so that
//! concurrent additions merge.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};

use crate::schema::{self, FieldType, Record, Value};

/// The document that holds the records of `unit` in hierarchy `version`.
pub fn unit_doc_id(version: &str, unit: &str) -> String {
    format!("u/{version}/{unit}")
}

/// (version, unit) of a unit document id.
pub fn parse_unit_doc_id(doc: &str) -> Option<(&str, &str)> {
    let rest = doc.strip_prefix("u/")?;
    let (version, unit) = rest.split_once('/')?;
    (!version.is_empty() && !unit.is_empty()).then_some((version, unit))
}

pub type DocResult<T> = Result<T, automerge::AutomergeError>;

/// The document the hub publishes to every node, read-only: the plan file
/// and the unit lists progress is computed with. Root keys: `plan` (the
/// plan file's text) and `units/{file name}` (each list, as CSV text).
pub const REFERENCE_DOC: &str = "ref/plan";

/// What the reference document holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reference {
    /// The hub's default plan (the only one nodes before 0.x read).
    pub plan: String,
    /// The hub's other plans, by id: a node computes with the one whose
    /// territory holds its unit (the default when none does).
    pub plans: Vec<(String, String)>,
    /// (file name, CSV text), as in `units::BUILTIN_LISTS`.
    pub lists: Vec<(String, String)>,
}

/// Writes `reference` into the document, changing only what differs.
pub fn put_reference(doc: &mut AutoCommit, reference: &Reference) -> DocResult<()> {
    let put_text = |doc: &mut AutoCommit, key: &str, text: &str| -> DocResult<()> {
        let same = matches!(doc.get(ROOT, key)?, Some((automerge::Value::Scalar(v), _)) if v.as_str() == Some(text));
        if !same {
            doc.put(ROOT, key, text)?;
        }
        Ok(())
    };
    put_text(doc, "plan", &reference.plan)?;
    for (id, text) in &reference.plans {
        put_text(doc, &format!("plans/{id}"), text)?;
    }
    // A plan the hub no longer follows is no longer published.
    let gone: Vec<String> = doc
        .keys(ROOT)
        .filter(|k| {
            k.strip_prefix("plans/")
                .is_some_and(|id| !reference.plans.iter().any(|(p, _)| p == id))
        })
        .collect();
    for k in gone {
        doc.delete(ROOT, k.as_str())?;
    }
    for (name, text) in &reference.lists {
        put_text(doc, &format!("units/{name}"), text)?;
    }
    Ok(())
}

/// Reads the reference document, if it has a plan.
pub fn read_reference(doc: &AutoCommit) -> Option<Reference> {
    let text = |key: &str| match doc.get(ROOT, key) {
        Ok(Some((automerge::Value::Scalar(v), _))) => v.as_str().map(str::to_owned),
        _ => None,
    };
    let plan = text("plan")?;
    let under = |prefix: &str| -> Vec<(String, String)> {
        doc.keys(ROOT)
            .filter_map(|k| Some((k.strip_prefix(prefix)?.to_owned(), text(&k)?)))
            .collect()
    };
    Some(Reference {
        plan,
        plans: under("plans/"),
        lists: under("units/"),
    })
}

fn to_scalar(v: &Value) -> ScalarValue {
    match v {
        Value::Text(s) => ScalarValue::Str(s.as_str().into()),
        Value::Int(n) => ScalarValue::Int(*n),
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Date(d) => ScalarValue::Str(schema::format_date(*d).into()),
        Value::List(_) => unreachable!("lists are maps"),
    }
}

fn field_type(kind: &str, field: &str) -> Option<FieldType> {
    schema::kind(kind).ok()?.field(field).map(|f| f.ty)
}

/// Writes `rec` into `doc`: creates it if new, otherwise puts only the
/// fields whose value differs, so an unchanged field never makes a conflict.
pub fn put_record(doc: &mut AutoCommit, rec: &Record) -> DocResult<()> {
    // A record new to the document has nothing to compare with: its
    // fields are written without being looked up first (an import of
    // 10,000 new records spent a good part of its time in those lookups).
    let (obj, new_record) = match doc.get(ROOT, rec.id.as_str())? {
        Some((automerge::Value::Object(ObjType::Map), id)) => (id, false),
        _ => {
            let id = doc.put_object(ROOT, rec.id.as_str(), ObjType::Map)?;
            doc.put(&id, "kind", rec.kind.as_str())?;
            (id, true)
        }
    };
    for (name, value) in &rec.fields {
        if let Value::List(items) = value {
            let list = match current(doc, &obj, name, new_record)? {
                Some((automerge::Value::Object(ObjType::Map), id)) => id,
                _ => doc.put_object(&obj, name.as_str(), ObjType::Map)?,
            };
            let present: Vec<String> = doc.keys(&list).collect();
            for gone in present.iter().filter(|k| !items.contains(k)) {
                doc.delete(&list, gone.as_str())?;
            }
            for item in items.iter().filter(|i| !present.contains(i)) {
                doc.put(&list, item.as_str(), true)?;
            }
            continue;
        }
        let new = to_scalar(value);
        let same = matches!(current(doc, &obj, name, new_record)?, Some((automerge::Value::Scalar(cur), _)) if *cur == new);
        if !same {
            doc.put(&obj, name.as_str(), new)?;
        }
    }
    Ok(())
}

/// Field `name` of record object `obj`, unless the record was just made
/// (then it has none, and nothing need be looked up).
fn current<'d>(
    doc: &'d AutoCommit,
    obj: &automerge::ObjId,
    name: &str,
    new_record: bool,
) -> DocResult<Option<(automerge::Value<'d>, automerge::ObjId)>> {
    match new_record {
        true => Ok(None),
        false => Ok(doc.get(obj, name)?),
    }
}

/// Removes a field from a record (e.g. `deleted_at` when a record is restored).
pub fn remove_field(doc: &mut AutoCommit, id: &str, field: &str) -> DocResult<()> {
    if let Some((automerge::Value::Object(ObjType::Map), obj)) = doc.get(ROOT, id)? {
        doc.delete(&obj, field)?;
    }
    Ok(())
}

fn read_value(
    doc: &AutoCommit,
    kind: &str,
    field: &str,
    v: automerge::Value<'_>,
    id: &ObjId,
) -> Option<Value> {
    match v {
        automerge::Value::Object(ObjType::Map) => Some(Value::List(doc.keys(id).collect())),
        automerge::Value::Object(_) => None,
        automerge::Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => match field_type(kind, field) {
                Some(FieldType::Date) => schema::parse_date(s).map(Value::Date),
                _ => Some(Value::Text(s.to_string())),
            },
            ScalarValue::Int(n) => Some(Value::Int(*n)),
            ScalarValue::Uint(n) => Some(Value::Int(*n as i64)),
            ScalarValue::Boolean(b) => Some(Value::Bool(*b)),
            _ => None,
        },
    }
}

/// Reads one record, with the conflicts its fields hold.
pub fn read_record(doc: &AutoCommit, id: &str) -> DocResult<Option<Record>> {
    let Some((automerge::Value::Object(ObjType::Map), obj)) = doc.get(ROOT, id)? else {
        return Ok(None);
    };
    let kind = match doc.get(&obj, "kind")? {
        Some((automerge::Value::Scalar(s), _)) => s.as_str().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    let mut rec = Record {
        id: id.to_owned(),
        kind: kind.clone(),
        ..Default::default()
    };
    for field in doc.keys(&obj).collect::<Vec<_>>() {
        if field == "kind" {
            continue;
        }
        let all = doc.get_all(&obj, field.as_str())?;
        let values: Vec<Value> = all
            .into_iter()
            .filter_map(|(v, vid)| read_value(doc, &kind, &field, v, &vid))
            .collect();
        // `get` returns the value Automerge picks on every replica alike.
        if let Some((v, vid)) = doc.get(&obj, field.as_str())?
            && let Some(v) = read_value(doc, &kind, &field, v, &vid)
        {
            rec.fields.insert(field.clone(), v);
        }
        if values.len() > 1 && !schema::LAST_CHANGE_FIELDS.contains(&field.as_str()) {
            rec.conflicts.insert(field, values);
        }
    }
    Ok(Some(rec))
}

/// One of the values a field holds after concurrent edits, with who set it
/// and when, as far as the record tells: the `changed_by`/`changed_at`
/// written by the same replica (Automerge actor) in its latest change of
/// the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Contender {
    pub value: Value,
    pub by: Option<String>,
    pub at: Option<String>,
}

/// The values of `field` in record `id` that concurrent edits left side by
/// side (fewer than two: no conflict), in the order every replica lists them.
pub fn contenders(doc: &AutoCommit, id: &str, field: &str) -> DocResult<Vec<Contender>> {
    let Some((automerge::Value::Object(ObjType::Map), obj)) = doc.get(ROOT, id)? else {
        return Ok(Vec::new());
    };
    let kind = match doc.get(&obj, "kind")? {
        Some((automerge::Value::Scalar(s), _)) => s.as_str().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    // The latest text each actor wrote into a bookkeeping field.
    let by_actor = |name: &str| -> DocResult<Vec<(automerge::ActorId, u64, String)>> {
        Ok(doc
            .get_all(&obj, name)?
            .into_iter()
            .filter_map(|(v, vid)| match (v, vid) {
                (automerge::Value::Scalar(s), automerge::ObjId::Id(n, actor, _)) => {
                    Some((actor, n, s.as_str()?.to_owned()))
                }
                _ => None,
            })
            .collect())
    };
    let (who, when) = (by_actor("changed_by")?, by_actor("changed_at")?);
    let find = |list: &[(automerge::ActorId, u64, String)], actor: &automerge::ActorId| {
        list.iter()
            .filter(|(a, _, _)| a == actor)
            .max_by_key(|(_, n, _)| *n)
            .map(|(_, _, t)| t.clone())
    };
    Ok(doc
        .get_all(&obj, field)?
        .into_iter()
        .filter_map(|(v, vid)| {
            let actor = match &vid {
                automerge::ObjId::Id(_, actor, _) => Some(actor.clone()),
                automerge::ObjId::Root => None,
            };
            let value = read_value(doc, &kind, field, v, &vid)?;
            Some(Contender {
                value,
                by: actor.as_ref().and_then(|a| find(&who, a)),
                at: actor.as_ref().and_then(|a| find(&when, a)),
            })
        })
        .collect())
}

/// Settles a conflict on `field` of record `id`: writes `value` over every
/// value concurrent edits left, even when it equals the one shown (a write
/// that [`put_record`] would skip, since it changes nothing shown).
pub fn settle_field(doc: &mut AutoCommit, id: &str, field: &str, value: &Value) -> DocResult<()> {
    let Some((automerge::Value::Object(ObjType::Map), obj)) = doc.get(ROOT, id)? else {
        return Ok(());
    };
    match value {
        Value::List(items) => {
            let list = doc.put_object(&obj, field, ObjType::Map)?;
            for item in items {
                doc.put(&list, item.as_str(), true)?;
            }
        }
        v => doc.put(&obj, field, to_scalar(v))?,
    }
    Ok(())
}

/// (id, kind) of every record of a document, reading nothing else.
pub fn list_records(doc: &AutoCommit) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for id in doc.keys(ROOT) {
        if let Ok(Some((automerge::Value::Object(ObjType::Map), obj))) = doc.get(ROOT, id.as_str())
            && let Ok(Some((automerge::Value::Scalar(s), _))) = doc.get(&obj, "kind")
        {
            let kind = s.as_str().unwrap_or_default().to_owned();
            out.push((id, kind));
        }
    }
    out
}

/// Every record of a document, in id order (UUID v7: creation order).
pub fn read_records(doc: &AutoCommit) -> DocResult<Vec<Record>> {
    let mut out = Vec::new();
    for id in doc.keys(ROOT).collect::<Vec<_>>() {
        if let Some(r) = read_record(doc, &id)? {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::record_from_strings;

    fn coop(name: &str) -> Record {
        let mut r = record_from_strings("cooperative", [("type", "HTX"), ("name", name)]).unwrap();
        r.id = schema::new_id();
        r.fields.insert("unit".into(), Value::Text("13633".into()));
        r
    }

    #[test]
    fn the_reference_publishes_every_plan_and_drops_one_no_longer_followed() {
        let mut doc = AutoCommit::new();
        let mut r = Reference {
            plan: "default".into(),
            plans: vec![("a".into(), "plan a".into()), ("b".into(), "plan b".into())],
            lists: vec![("units.csv".into(), "code,name".into())],
        };
        put_reference(&mut doc, &r).unwrap();
        assert_eq!(read_reference(&doc), Some(r.clone()));
        r.plans.remove(0);
        put_reference(&mut doc, &r).unwrap();
        assert_eq!(read_reference(&doc), Some(r));
    }

    #[test]
    fn concurrent_edits_of_one_field_converge_and_show_the_conflict() {
        let mut a = AutoCommit::new();
        let rec = coop("HTX Lúa");
        put_record(&mut a, &rec).unwrap();
        let mut b = a.fork();
        let mut ra = rec.clone();
        ra.fields
            .insert("name".into(), Value::Text("HTX Lúa Xanh".into()));
        put_record(&mut a, &ra).unwrap();
        let mut rb = rec.clone();
        rb.fields
            .insert("name".into(), Value::Text("HTX Lúa Vàng".into()));
        rb.fields
            .insert("sector".into(), Value::Text("nông nghiệp".into()));
        put_record(&mut b, &rb).unwrap();
        a.merge(&mut b).unwrap();
        b.merge(&mut a).unwrap();
        let (x, y) = (
            read_record(&a, &rec.id).unwrap().unwrap(),
            read_record(&b, &rec.id).unwrap().unwrap(),
        );
        assert_eq!(x, y);
        assert_eq!(x.conflicts["name"].len(), 2);
        assert_eq!(x.text("sector"), Some("nông nghiệp"));
    }

    #[test]
    fn a_settled_conflict_is_gone_on_every_replica_and_tells_who_set_each_value() {
        let mut a = AutoCommit::new();
        let rec = coop("HTX Lúa");
        put_record(&mut a, &rec).unwrap();
        let mut b = a.fork();
        for (doc, name, who) in [
            (&mut a, "HTX Lúa Xanh", "lan@A"),
            (&mut b, "HTX Lúa Vàng", "hoa@B"),
        ] {
            let mut r = rec.clone();
            r.fields.insert("name".into(), Value::Text(name.into()));
            r.fields
                .insert("changed_by".into(), Value::Text(who.into()));
            put_record(doc, &r).unwrap();
        }
        a.merge(&mut b).unwrap();
        let mut c = contenders(&a, &rec.id, "name").unwrap();
        c.sort_by(|x, y| x.by.cmp(&y.by));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].by.as_deref(), Some("hoa@B"));
        assert_eq!(c[0].value, Value::Text("HTX Lúa Vàng".into()));
        assert_eq!(c[1].by.as_deref(), Some("lan@A"));
        // Settled with the value Automerge already shows: still settled.
        let shown = read_record(&a, &rec.id).unwrap().unwrap().fields["name"].clone();
        settle_field(&mut a, &rec.id, "name", &shown).unwrap();
        b.merge(&mut a).unwrap();
        for d in [&a, &b] {
            let r = read_record(d, &rec.id).unwrap().unwrap();
            assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
            assert_eq!(r.fields["name"], shown);
        }
    }

    #[test]
    fn rewriting_an_unchanged_record_adds_no_change() {
        let mut a = AutoCommit::new();
        let rec = coop("HTX Lúa");
        put_record(&mut a, &rec).unwrap();
        a.commit();
        let before = a.get_heads();
        put_record(&mut a, &rec).unwrap();
        a.commit();
        assert_eq!(a.get_heads(), before);
    }
}

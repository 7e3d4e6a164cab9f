//! Conversions between domain records and their wire form (`htx.v1.Record`),
//! used at the edge of every server and client.

use htx_proto::v1 as pb;

use automerge::ChangeHash;

use crate::schema::{self, Record, Value};

pub fn value_to_wire(v: &Value) -> pb::Value {
    use pb::value::Kind;
    let kind = match v {
        Value::Text(s) => Kind::Text(s.clone()),
        Value::Int(n) => Kind::Integer(*n),
        Value::Bool(b) => Kind::Flag(*b),
        Value::Date(d) => Kind::Date(schema::format_date(*d)),
        Value::List(items) => Kind::List(pb::StringList {
            items: items.clone(),
        }),
    };
    pb::Value { kind: Some(kind) }
}

/// A wire value as a domain value; a date that does not parse stays text,
/// for validation to refuse with the field's name.
pub fn value_from_wire(v: &pb::Value) -> Option<Value> {
    use pb::value::Kind;
    Some(match v.kind.as_ref()? {
        Kind::Text(s) => Value::Text(s.clone()),
        Kind::Integer(n) => Value::Int(*n),
        Kind::Flag(b) => Value::Bool(*b),
        Kind::Date(d) => schema::parse_date(d)
            .map(Value::Date)
            .unwrap_or_else(|| Value::Text(d.clone())),
        Kind::List(l) => Value::List(l.items.clone()),
    })
}

pub fn record_to_wire(r: &Record) -> pb::Record {
    pb::Record {
        id: r.id.clone(),
        kind: r.kind.clone(),
        fields: r
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_wire(v)))
            .collect(),
        conflicts: r
            .conflicts
            .iter()
            .map(|(k, vs)| {
                (
                    k.clone(),
                    pb::Conflict {
                        values: vs.iter().map(value_to_wire).collect(),
                    },
                )
            })
            .collect(),
    }
}

pub fn record_from_wire(r: &pb::Record) -> Record {
    Record {
        id: r.id.clone(),
        kind: r.kind.clone(),
        fields: r
            .fields
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), value_from_wire(v)?)))
            .collect(),
        conflicts: r
            .conflicts
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    c.values.iter().filter_map(value_from_wire).collect(),
                )
            })
            .collect(),
    }
}

/// A document's heads as they travel.
pub fn doc_heads(doc: &str, heads: &[ChangeHash]) -> pb::DocHeads {
    pb::DocHeads {
        doc: doc.to_owned(),
        heads: heads.iter().map(|h| h.0.to_vec()).collect(),
    }
}

/// A batch of the sync engine as it travels.
pub fn batch_to_wire(batch: crate::sync::Batch) -> Vec<pb::DocChanges> {
    batch
        .into_iter()
        .map(|d| pb::DocChanges {
            doc: d.doc,
            changes: d.changes,
        })
        .collect()
}

/// A received batch as (document, raw changes), ready for `Replica::apply`.
pub fn batch_from_wire(docs: Vec<pb::DocChanges>) -> Vec<(String, Vec<Vec<u8>>)> {
    docs.into_iter().map(|d| (d.doc, d.changes)).collect()
}

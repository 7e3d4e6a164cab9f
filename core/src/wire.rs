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

/// A backup file as the chunks (at most 1 MiB each) the admin and local
/// APIs stream; the last, empty one carries the number of keys copied.
pub fn backup_chunks(
    path: &std::path::Path,
    entries: u64,
) -> std::io::Result<Vec<pb::BackupChunk>> {
    let bytes = std::fs::read(path)?;
    let mut out: Vec<pb::BackupChunk> = bytes
        .chunks(1 << 20)
        .map(|c| pb::BackupChunk {
            data: c.to_vec(),
            entries: 0,
        })
        .collect();
    out.push(pb::BackupChunk {
        data: Vec::new(),
        entries,
    });
    Ok(out)
}

/// Writes the chunks of a streamed backup to `out` (mode 0600); refused if
/// the stream was cut (no final chunk). Returns the number of keys.
pub fn backup_from_chunks(
    chunks: &[pb::BackupChunk],
    out: &std::path::Path,
) -> std::io::Result<u64> {
    let entries = match chunks.last() {
        Some(last) if last.data.is_empty() => last.entries,
        _ => {
            return Err(std::io::Error::other(
                "the backup stream was cut; nothing was written / bản sao lưu bị ngắt, không ghi gì",
            ));
        }
    };
    let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
    crate::pki::write_private(out, &bytes)?;
    Ok(entries)
}

//! # The record index: every record, materialized beside its document
//!
//! Reading a record out of an Automerge document is slow (about 110 µs and
//! many short-lived allocations each), so the hub keeps every record of
//! every document also as a small stored value, and reads those instead
//! for exports and progress:
//!
//! - key `r\0{doc}\0{id}`, value `[FORMAT][JSON of the record]`;
//! - written in the *same atomic commit* as the changes that touched the
//!   records ([`put`] into the `extra` batch of [`Replica::apply`]), so the
//!   index and the documents never disagree, even after a crash;
//! - read with [`Store::scan`], which is one point in time, without the
//!   replica (so a long query never holds up a sync);
//! - built whole from the documents by the store migration that first
//!   needs it ([`rebuild`], run by [`crate::format`] when the hub opens a
//!   store of an older format), never by a check of its own.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::docs;
use crate::replica::{Replica, ReplicaError};
use crate::schema::{Record, Value};
use crate::storage::{Store, StoreError, WriteBatch};

/// Version of the stored values. Changing it needs a store migration that
/// calls [`rebuild`] (see [`crate::format`], "Adding a migration").
pub const FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(
        "record index entry {key} is damaged: {reason}; restore the store from a backup / mục chỉ mục bản ghi {key} bị hỏng: hãy khôi phục kho dữ liệu từ bản sao lưu"
    )]
    Damaged { key: String, reason: String },
}

/// A value as stored: tagged, so that a date stays a date and "12" text.
#[derive(Serialize, Deserialize)]
enum Stored {
    T(String),
    I(i64),
    B(bool),
    D(String),
    L(Vec<String>),
}

#[derive(Serialize, Deserialize)]
struct StoredRecord {
    k: String,
    f: BTreeMap<String, Stored>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    c: BTreeMap<String, Vec<Stored>>,
}

fn to_stored(v: &Value) -> Stored {
    match v {
        Value::Text(s) => Stored::T(s.clone()),
        Value::Int(n) => Stored::I(*n),
        Value::Bool(b) => Stored::B(*b),
        Value::Date(d) => Stored::D(crate::schema::format_date(*d)),
        Value::List(l) => Stored::L(l.clone()),
    }
}

fn from_stored(v: Stored) -> Option<Value> {
    Some(match v {
        Stored::T(s) => Value::Text(s),
        Stored::I(n) => Value::Int(n),
        Stored::B(b) => Value::Bool(b),
        Stored::D(d) => Value::Date(crate::schema::parse_date(&d)?),
        Stored::L(l) => Value::List(l),
    })
}

fn doc_prefix(doc: &str) -> Vec<u8> {
    [b"r\0", doc.as_bytes(), b"\0"].concat()
}

fn key(doc: &str, id: &str) -> Vec<u8> {
    [doc_prefix(doc), id.as_bytes().to_vec()].concat()
}

/// Adds to `batch` the write that stores `rec` (of document `doc`).
pub fn put(batch: &mut WriteBatch, doc: &str, rec: &Record) {
    let stored = StoredRecord {
        k: rec.kind.clone(),
        f: rec
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), to_stored(v)))
            .collect(),
        c: rec
            .conflicts
            .iter()
            .map(|(k, vs)| (k.clone(), vs.iter().map(to_stored).collect()))
            .collect(),
    };
    let mut value = vec![FORMAT];
    serde_json::to_writer(&mut value, &stored).expect("records serialize");
    batch.put(key(doc, &rec.id), value);
}

fn decode(k: &[u8], v: &[u8]) -> Result<Record, IndexError> {
    let damaged = |reason: String| IndexError::Damaged {
        key: String::from_utf8_lossy(k).replace('\0', "/"),
        reason,
    };
    let id_start = k
        .iter()
        .rposition(|b| *b == 0)
        .ok_or_else(|| damaged("bad key".into()))?;
    let id = String::from_utf8(k[id_start + 1..].to_vec()).map_err(|e| damaged(e.to_string()))?;
    match v.split_first() {
        Some((&FORMAT, json)) => {
            let s: StoredRecord =
                serde_json::from_slice(json).map_err(|e| damaged(e.to_string()))?;
            let value = |v| from_stored(v).ok_or_else(|| damaged("bad date".into()));
            Ok(Record {
                id,
                kind: s.k,
                fields: s
                    .f
                    .into_iter()
                    .map(|(k, v)| Ok((k, value(v)?)))
                    .collect::<Result<_, IndexError>>()?,
                conflicts: s
                    .c
                    .into_iter()
                    .map(|(k, vs)| Ok((k, vs.into_iter().map(value).collect::<Result<_, _>>()?)))
                    .collect::<Result<_, IndexError>>()?,
            })
        }
        _ => Err(damaged("unknown format".into())),
    }
}

/// Every indexed record, of every document, as of one point in time.
pub fn read_all(store: &dyn Store) -> Result<Vec<Record>, IndexError> {
    let mut all = Vec::new();
    each(store, |r| all.push(r))?;
    Ok(all)
}

/// Gives every indexed record to `f`, one at a time, as of one point in
/// time: for what keeps a part of each record and need not hold them all.
/// The entries are decoded as the store reads them, never all copied at
/// once; the first damaged one stops the reading with its error.
pub fn each(store: &dyn Store, mut f: impl FnMut(Record)) -> Result<(), IndexError> {
    let mut damaged = None;
    store.for_each(b"r\0", &mut |k, v| match decode(k, v) {
        Ok(r) => {
            f(r);
            ControlFlow::Continue(())
        }
        Err(e) => {
            damaged = Some(e);
            ControlFlow::Break(())
        }
    })?;
    damaged.map_or(Ok(()), Err)
}

/// Every indexed record, decoded one at a time as the iterator is read
/// (as of one point in time: the store's entries are read at once; for a
/// reader that can take them as they come, [`each`] copies none).
pub fn records(
    store: &dyn Store,
) -> Result<impl Iterator<Item = Result<Record, IndexError>>, IndexError> {
    let entries = store.scan(b"r\0")?;
    Ok(entries.into_iter().map(|(k, v)| decode(&k, &v)))
}

/// The indexed records of one document.
pub fn read_doc(store: &dyn Store, doc: &str) -> Result<Vec<Record>, IndexError> {
    store
        .scan(&doc_prefix(doc))?
        .iter()
        .map(|(k, v)| decode(k, v))
        .collect()
}

/// Adds to `batch` the writes that index every record of `replica` from
/// its documents, in place of whatever index the store holds.
pub fn rebuild(replica: &mut Replica, batch: &mut WriteBatch) -> Result<(), IndexError> {
    for (k, _) in replica.store().scan(b"r\0")? {
        batch.delete(k);
    }
    let ids: Vec<String> = replica.doc_ids().map(str::to_owned).collect();
    for id in ids {
        // One at a time: a replica with a bounded cache keeps few loaded.
        let Some(doc) = replica.load(&id)? else {
            continue; // found damaged, and set aside
        };
        for rec in docs::read_records(doc).map_err(ReplicaError::from)? {
            put(batch, &id, &rec);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::schema::record_from_strings;
    use crate::storage::MemoryStore;

    fn coop(name: &str) -> Record {
        let mut r = record_from_strings(
            "cooperative",
            [
                ("type", "HTX"),
                ("name", name),
                ("founded_on", "2024-03-01"),
            ],
        )
        .unwrap();
        r.id = crate::schema::new_id();
        r.fields.insert("unit".into(), Value::Text("13633".into()));
        r
    }

    #[test]
    fn records_come_back_exactly_from_a_rebuilt_index() {
        let store = Arc::new(MemoryStore::default());
        let mut r = Replica::open(store.clone()).unwrap();
        let (a, b) = (coop("HTX Hạ Long"), coop("HTX 12"));
        r.change("u/2023/13633", |d| {
            docs::put_record(d, &a)?;
            docs::put_record(d, &b)
        })
        .unwrap()
        .unwrap();
        let mut batch = WriteBatch::default();
        rebuild(&mut r, &mut batch).unwrap();
        r.commit(batch).unwrap();
        let mut all = read_all(store.as_ref()).unwrap();
        all.sort_by(|x, y| x.id.cmp(&y.id));
        let mut want = docs::read_records(r.doc("u/2023/13633").unwrap()).unwrap();
        want.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(all, want);
        assert!(matches!(all[0].fields["founded_on"], Value::Date(_)));
        assert_eq!(read_doc(store.as_ref(), "u/2023/13633").unwrap().len(), 2);
        assert!(read_doc(store.as_ref(), "u/2023/1363").unwrap().is_empty());
    }
}

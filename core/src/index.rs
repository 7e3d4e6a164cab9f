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
//! - read with [`Store::for_each`] (or [`Store::scan`]), which is one
//!   point in time, without the replica (so a long query never holds up a
//!   sync): whole ([`each`], [`read_all`]), or in place ([`each_entry`]);
//! - built whole from the documents by the store migration that first
//!   needs it ([`rebuild`], run by [`crate::format`] when the hub opens a
//!   store of an older format), never by a check of its own.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use time::Date;

use crate::docs;
use crate::progress::{Field, Items, Rec, Whole};
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
    let damaged = |reason: String| damaged(k, reason);
    let id = id_of(k)?.to_owned();
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

// ---- Read in place --------------------------------------------------------

/// An indexed record read in place: its id, kind, field names and texts
/// borrowed from the stored bytes (a text with an escape in its JSON is
/// copied, and a list's items are), its fields in a short list in the
/// order stored, its conflicts neither read nor checked. For a reader that
/// keeps a part of each record (the progress engine: [`Whole`]) and need
/// not make a whole [`Record`] of each.
#[derive(Debug)]
pub struct Entry<'a> {
    id: &'a str,
    kind: Cow<'a, str>,
    fields: Vec<(Cow<'a, str>, Read<'a>)>,
}

/// A stored value as read in place, its date parsed.
#[derive(Debug)]
enum Read<'a> {
    T(Cow<'a, str>),
    I(i64),
    B(bool),
    D(Date),
    L(Vec<String>),
}

/// [`Stored`], borrowed.
#[derive(Deserialize)]
enum StoredRef<'a> {
    #[serde(borrow)]
    T(Cow<'a, str>),
    I(i64),
    B(bool),
    #[serde(borrow)]
    D(Cow<'a, str>),
    L(Vec<String>),
}

/// A text borrowed from the stored bytes where it can be (serde reads a
/// bare `Cow` as a copy).
#[derive(Deserialize)]
struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);

/// [`StoredRecord`], borrowed, without its conflicts.
#[derive(Deserialize)]
struct StoredRecordRef<'a> {
    #[serde(borrow)]
    k: Cow<'a, str>,
    #[serde(borrow)]
    f: Pairs<'a>,
}

/// A JSON object's entries in the order stored (a record has a dozen
/// fields: a list, not a map, to read them into).
struct Pairs<'a>(Vec<(Cow<'a, str>, StoredRef<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Pairs<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record's fields")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Pairs<'a>, M::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(12));
                while let Some((k, v)) = m.next_entry::<Borrowed<'a>, StoredRef<'a>>()? {
                    out.push((k.0, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl Rec for Entry<'_> {
    fn id(&self) -> &str {
        self.id
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn field(&self, name: &str) -> Option<Field<'_>> {
        self.fields().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
    fn dates_into(&self, out: &mut Vec<Date>) {
        out.extend(self.fields().filter_map(|(_, v)| v.date()));
    }
}

impl Whole for Entry<'_> {
    fn fields(&self) -> impl Iterator<Item = (&str, Field<'_>)> {
        self.fields.iter().map(|(k, v)| {
            let v = match v {
                Read::T(s) => Field::Text(s),
                Read::I(n) => Field::Int(*n),
                Read::B(b) => Field::Bool(*b),
                Read::D(d) => Field::Date(*d),
                Read::L(items) => Field::List(Items::Strings(items)),
            };
            (&**k, v)
        })
    }
}

/// Splits key `k` into its id, checked.
fn id_of(k: &[u8]) -> Result<&str, IndexError> {
    let at = k
        .iter()
        .rposition(|b| *b == 0)
        .ok_or_else(|| damaged(k, "bad key".into()))?;
    std::str::from_utf8(&k[at + 1..]).map_err(|e| damaged(k, e.to_string()))
}

fn damaged(k: &[u8], reason: String) -> IndexError {
    IndexError::Damaged {
        key: String::from_utf8_lossy(k).replace('\0', "/"),
        reason,
    }
}

fn read<'a>(k: &'a [u8], v: &'a [u8]) -> Result<Entry<'a>, IndexError> {
    let id = id_of(k)?;
    let Some((&FORMAT, json)) = v.split_first() else {
        return Err(damaged(k, "unknown format".into()));
    };
    let s: StoredRecordRef = serde_json::from_slice(json).map_err(|e| damaged(k, e.to_string()))?;
    let fields = s
        .f
        .0
        .into_iter()
        .map(|(name, v)| {
            let v = match v {
                StoredRef::T(t) => Read::T(t),
                StoredRef::I(n) => Read::I(n),
                StoredRef::B(b) => Read::B(b),
                StoredRef::D(d) => Read::D(
                    crate::schema::parse_date(&d).ok_or_else(|| damaged(k, "bad date".into()))?,
                ),
                StoredRef::L(l) => Read::L(l),
            };
            Ok((name, v))
        })
        .collect::<Result<_, IndexError>>()?;
    Ok(Entry {
        id,
        kind: s.k,
        fields,
    })
}

/// Gives every indexed record to `f` read in place ([`Entry`]), as of one
/// point in time, the index never copied whole (where the store can give
/// its entries as it reads them: [`Store::for_each`]); the first damaged
/// one stops the reading with its error.
pub fn each_entry(store: &dyn Store, mut f: impl FnMut(&Entry)) -> Result<(), IndexError> {
    walk(store, |k, v| read(k, v).map(|e| f(&e)))
}

/// Gives `f` every index entry as the store reads it (one point in time),
/// until `f` finds one damaged.
fn walk(
    store: &dyn Store,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    let mut damaged = None;
    store.for_each(b"r\0", &mut |k, v| match f(k, v) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            damaged = Some(e);
            ControlFlow::Break(())
        }
    })?;
    damaged.map_or(Ok(()), Err)
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
    walk(store, |k, v| decode(k, v).map(&mut f))
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
        // Read in place, every field is as decoded whole.
        let whole = |id: &str, kind: &str, f: Vec<(&str, Field)>| format!("{id} {kind} {f:?}");
        let mut read = Vec::new();
        each_entry(store.as_ref(), |e| {
            read.push(whole(e.id(), e.kind(), e.fields().collect()))
        })
        .unwrap();
        read.sort();
        let mut want: Vec<String> = all
            .iter()
            .map(|r| whole(&r.id, &r.kind, Whole::fields(r).collect()))
            .collect();
        want.sort();
        assert_eq!(read, want);
        assert!(read[0].contains("Date(2024-03-01)"), "{}", read[0]);
    }

    fn stored(entries: &[(&str, &[u8])]) -> MemoryStore {
        let store = MemoryStore::default();
        let mut batch = WriteBatch::default();
        for (id, v) in entries {
            batch.put(key("u/2023/13633", id), v.to_vec());
        }
        store.commit(batch).unwrap();
        store
    }

    #[test]
    fn a_damaged_entry_read_in_place_is_an_error_naming_it() {
        for (bad, why) in [
            (
                &b"\x01{\"k\":\"cadre\",\"f\":{\"born\":{\"D\":\"2024-13-01\"}}}"[..],
                "bad date",
            ),
            (b"\x01{\"k\":\"cadre\",\"f\":", "EOF"),
            (b"\x09{}", "unknown format"),
            (b"", "unknown format"),
        ] {
            let store = stored(&[("a", bad)]);
            let err = each_entry(&store, |_| {}).unwrap_err().to_string();
            assert!(
                err.contains("r/u/2023/13633/a") && err.contains(why),
                "{err}"
            );
        }
    }

    #[test]
    fn texts_are_borrowed_where_they_can_be_and_escapes_read_right() {
        let v = r#"{"k":"cooperative","f":{"name":{"T":"HTX \"Hoa Sen\" \\ Tr\u00e0ng An"},"note":{"T":"HTX Tràng An"},"u\u006eit":{"T":"13633"}},"c":{"name":[{"T":"x"},{"D":"not a date"}]}}"#;
        let v = [&[FORMAT][..], v.as_bytes()].concat();
        let store = stored(&[("c", &v)]);
        let mut seen = 0;
        each_entry(&store, |e| {
            seen += 1;
            assert_eq!(e.text("name"), Some("HTX \"Hoa Sen\" \\ Tràng An"));
            assert_eq!(e.text("note"), Some("HTX Tràng An"));
            assert_eq!(e.text("unit"), Some("13633"));
            let borrowed = |c: &Cow<str>| matches!(c, Cow::Borrowed(_));
            let by = |n: &str| e.fields.iter().find(|(k, _)| k == n).unwrap();
            assert!(borrowed(&by("note").0) && matches!(&by("note").1, Read::T(t) if borrowed(t)));
            assert!(
                matches!(&by("name").1, Read::T(t) if !borrowed(t)),
                "an escape: copied"
            );
            assert!(!borrowed(&by("unit").0), "an escape: copied");
            assert!(borrowed(&e.kind));
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn a_field_stored_twice_is_kept_once() {
        // Never written so, but a value stored twice must not shift the
        // fields after it in the compact form.
        let v = br#"{"k":"observation","f":{"female_workers":{"I":3},"female_workers":{"I":4},"unit":{"T":"1"},"unit":{"T":"2"},"unit_version":{"T":"2023"},"workers":{"I":7}}}"#;
        let v = [&[FORMAT][..], v].concat();
        let store = stored(&[("o", &v)]);
        let mut names = crate::progress::Names::default();
        let mut slim = None;
        each_entry(&store, |e| {
            slim = Some(crate::progress::Slim::new(
                e,
                crate::progress::Fields::ALL,
                &mut names,
            ))
        })
        .unwrap();
        let slim = slim.unwrap();
        // The last, as a whole record decoded from it keeps.
        let whole = read_all(&store).unwrap().pop().unwrap();
        assert_eq!(whole.fields["unit"], Value::Text("2".into()));
        assert_eq!(slim.text("unit"), Some("2"));
        assert_eq!(slim.text("unit_version"), Some("2023"));
        assert!(matches!(slim.field("female_workers"), Some(Field::Int(4))));
        assert!(matches!(slim.field("workers"), Some(Field::Int(7))));
    }
}

//! Fuzzing of what the core reads from outside: plan files, the stored
//! value formats (document heads, the record index, whole stores opened as
//! a replica), records typed or imported by people, and node bundles.
//!
//! Structured (proptest), on the stable toolchain: every harness mutates
//! valid seeds, so most inputs get past the first parser. Each asserts that
//! the call returns (no panic), with `Ok` or a clear `Err`, without one
//! allocation above `ALLOC_LIMIT` for an input of at most `MAX_INPUT`
//! bytes, and, for stores, that a refused input changed nothing stored.
//!
//! A few hundred cases each by default; `FUZZ_CASES=N` runs N per harness
//! (see RELIABILITY.md, "Fuzzing").

#[path = "support/fuzz.rs"]
mod fuzz;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjType, ROOT, ScalarValue};
use htx_core::docs;
use htx_core::index;
use htx_core::pki::Bundle;
use htx_core::plan::{DE_AN_01_NAM_DINH, Plan};
use htx_core::replica::{Replica, decode_heads_value, encode_heads_value};
use htx_core::schema::{self, FieldType, Record, Value};
use htx_core::storage::{MemoryStore, Store, WriteBatch};
use htx_core::units::{BUILTIN_LISTS, Hierarchy};
use proptest::prelude::*;

use fuzz::{
    Largest, Mutation, bounded, config, json_input, mutate, mutations, text_input, token,
    toml_input,
};

#[global_allocator]
static ALLOC: Largest = Largest;

const SAMPLE: &str = include_str!("../../deploy/sample/nam-dinh-city.csv");

/// The sample file's records, each with a unit, for progress over a plan.
fn sample_records() -> Vec<Record> {
    let mut rdr = csv::Reader::from_reader(SAMPLE.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|row| {
            let row = row.unwrap();
            let kind = row.get(0).unwrap();
            let mut r = schema::record_from_strings(kind, headers.iter().zip(row.iter())).unwrap();
            r.fields
                .entry("unit".into())
                .or_insert_with(|| Value::Text("13633".into()));
            r
        })
        .collect()
}

fn day(s: &str) -> time::Date {
    schema::parse_date(s).unwrap()
}

// ---- The plan file --------------------------------------------------------

proptest! {
    #![proptest_config(config(96))]

    /// A mutated plan file is accepted or refused with a line inside the
    /// file; an accepted one computes progress without a panic.
    #[test]
    fn plan_files(input in toml_input(DE_AN_01_NAM_DINH)) {
        let text = String::from_utf8_lossy(&input);
        let parsed = bounded("Plan::parse", || Plan::parse(&text))?;
        match parsed {
            Err(e) => {
                prop_assert!(e.line >= 1 && e.line <= text.lines().count() + 1, "{e}");
                prop_assert!(!e.reason.is_empty());
            }
            Ok(plan) => {
                let records = sample_records();
                let report = bounded("progress over a fuzzed plan", || {
                    htx_core::progress::recompute(&plan, Hierarchy::builtin(), "2023", day("2025-06-30"), &records)
                })?;
                prop_assert!(report.is_ok(), "{:?}", report.err());
            }
        }
    }
}

// ---- The unit lists a hub publishes ------------------------------------

proptest! {
    #![proptest_config(config(128))]

    /// Damaged unit lists (as a node reads them from its hub's reference
    /// document) are read or refused; a hierarchy that is read answers
    /// every question about its units, each in bounded time (a cycle of
    /// parents must not hang it).
    #[test]
    fn unit_lists((which, input) in (0usize..4)
        .prop_flat_map(|w| (Just(w), text_input(BUILTIN_LISTS[w].1.to_owned()))))
    {
        let text = String::from_utf8_lossy(&input).into_owned();
        let mut files: Vec<(&str, &str)> = BUILTIN_LISTS.to_vec();
        files[which].1 = &text;
        let read = bounded("Hierarchy::from_lists", || Hierarchy::from_lists(&files))?;
        let Ok(h) = read else { return Ok(()) };
        let started = Instant::now();
        let versions: Vec<String> = h.versions().map(str::to_owned).collect();
        for v in &versions {
            let list = h.version(v).unwrap();
            let codes: Vec<String> = list.units().map(|u| u.code.clone()).collect();
            for code in &codes {
                let _ = list.ancestors(code);
                for root in list.roots() {
                    let _ = list.within(code, &root.code);
                }
                for to in &versions {
                    let _ = h.resolve(v, code, to);
                }
            }
        }
        prop_assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }
}

// ---- Stored values: heads -------------------------------------------------

fn hash() -> impl Strategy<Value = ChangeHash> {
    any::<[u8; 32]>().prop_map(ChangeHash)
}

proptest! {
    #![proptest_config(config(512))]

    /// Any bytes decode to heads or to None; what decodes re-encodes to the
    /// same bytes.
    #[test]
    fn heads_values_from_any_bytes(
        seed_heads in prop::collection::vec(hash(), 0..4),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        muts in mutations(6),
    ) {
        let v = mutate(&encode_heads_value(&seed_heads, &payload), &muts);
        if let Some((heads, rest)) = bounded("decode_heads_value", || decode_heads_value(&v))? {
            prop_assert_eq!(encode_heads_value(&heads, rest), v);
        }
    }

    #[test]
    fn heads_values_round_trip(
        heads in prop::collection::vec(hash(), 0..40),
        payload in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let v = encode_heads_value(&heads, &payload);
        let (h, p) = decode_heads_value(&v).unwrap();
        prop_assert_eq!(h, heads);
        prop_assert_eq!(p, &payload[..]);
    }
}

/// The count is a length prefix: the largest one declared over a short
/// value must be refused without reading or allocating for it.
#[test]
fn a_huge_declared_head_count_is_refused_at_once() {
    let started = Instant::now();
    Largest::reset();
    for tail in [&[][..], &[0u8; 31][..], &[7u8; 4096][..]] {
        let v = [&[1u8, 0xff, 0xff][..], tail].concat();
        assert!(decode_heads_value(&v).is_none());
    }
    assert!(Largest::get() < 64 * 1024, "{} bytes", Largest::get());
    assert!(started.elapsed() < Duration::from_secs(1));
}

// ---- Whole stores opened as a replica -------------------------------------

const DOCS: [&str; 3] = ["u/2023/13633", "u/2023/13636", "u/2023/356"];

fn coop(name: &str, unit: &str) -> Record {
    let mut r = schema::record_from_strings(
        "cooperative",
        [
            ("type", "HTX"),
            ("name", name),
            ("founded_on", "2024-03-01"),
        ],
    )
    .unwrap();
    r.id = schema::new_id();
    r.fields.insert("unit".into(), Value::Text(unit.into()));
    r
}

/// A replica's store as a node leaves it: documents as incremental chunks,
/// one as a snapshot plus a chunk, shared heads, metadata, the index.
fn seed_store() -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = Arc::new(MemoryStore::default());
    let mut r = Replica::open(store.clone()).unwrap();
    for (i, doc) in DOCS[..2].iter().enumerate() {
        for n in 0..3 {
            let rec = coop(&format!("HTX {i}-{n}"), &doc[7..]);
            r.change(doc, |d| docs::put_record(d, &rec))
                .unwrap()
                .unwrap();
        }
    }
    let mut b = WriteBatch::default();
    Replica::put_shared_heads(&mut b, "hub", DOCS[0], &r.heads(DOCS[0]), b"incarnation");
    Replica::put_meta(&mut b, "last_sync", b"2025-06-30T00:00:00Z".to_vec());
    r.commit(b).unwrap();
    let mut b = WriteBatch::default();
    index::rebuild(&mut r, &mut b).unwrap();
    r.commit(b).unwrap();
    // A snapshot and a chunk after it, written as the replica writes them.
    let mut d = AutoCommit::new();
    docs::put_record(&mut d, &coop("HTX snapshot", "356")).unwrap();
    d.commit();
    let mut heads = d.get_heads();
    heads.sort();
    let snapshot = encode_heads_value(&heads, &d.save());
    docs::put_record(&mut d, &coop("HTX chunk", "356")).unwrap();
    d.commit();
    let mut after = d.get_heads();
    after.sort();
    let chunk = encode_heads_value(&after, &d.save_after(&heads));
    let mut b = WriteBatch::default();
    b.put([b"d\0", DOCS[2].as_bytes(), b"\0s"].concat(), snapshot);
    b.put(
        [b"d\0", DOCS[2].as_bytes(), b"\0c", &0u64.to_be_bytes()[..]].concat(),
        chunk,
    );
    store.commit(b).unwrap();
    store.scan(b"").unwrap()
}

/// What is done to a stored entry (by index into the seed store).
#[derive(Debug, Clone)]
enum StoreEdit {
    Value(usize, Vec<Mutation>),
    Key(usize, Vec<Mutation>),
    Remove(usize),
    /// A stray entry under one of the replica's prefixes.
    Add(usize, Vec<u8>, Vec<u8>),
}

const PREFIXES: &[&[u8]] = &[
    b"d\0",
    b"d\0u/2023/13633\0",
    b"d\0u/2023/13633\0c",
    b"d\0u/2023/356\0s",
    b"d\0u/2023/13636\0c\0\0\0\0\0\0\0\x09",
    b"p\0",
    b"p\0hub\0u/2023/13633",
    b"m\0",
    b"q\0",
    b"r\0u/2023/13633\0",
];

fn store_edit() -> impl Strategy<Value = StoreEdit> {
    prop_oneof![
        4 => (any::<usize>(), mutations(4)).prop_map(|(i, m)| StoreEdit::Value(i, m)),
        1 => (any::<usize>(), mutations(2)).prop_map(|(i, m)| StoreEdit::Key(i, m)),
        1 => any::<usize>().prop_map(StoreEdit::Remove),
        1 => (
            any::<usize>(),
            prop::collection::vec(any::<u8>(), 0..12),
            prop::collection::vec(any::<u8>(), 0..80),
        )
            .prop_map(|(p, k, v)| StoreEdit::Add(p, k, v)),
    ]
}

/// The document a stored key belongs to, if it is a document's key.
fn doc_of(key: &[u8]) -> Option<Vec<u8>> {
    let rest = key.strip_prefix(b"d\0")?;
    let sep = rest.iter().position(|b| *b == 0)?;
    Some(rest[..sep].to_vec())
}

proptest! {
    #![proptest_config(config(128))]

    /// A store with damaged, missing and stray entries opens: every
    /// document whose entries were left alone comes back with its heads,
    /// every other one opens or is set aside (and named), a second opening
    /// finds the same, and an open that fails has changed nothing.
    #[test]
    fn damaged_stores_open(edits in prop::collection::vec(store_edit(), 1..5)) {
        let seed = seed_store();
        let original = Replica::open(Arc::new(memory(&seed))).unwrap();
        let mut entries: BTreeMap<Vec<u8>, Vec<u8>> = seed.iter().cloned().collect();
        let mut touched = std::collections::BTreeSet::new();
        for e in &edits {
            let keys: Vec<Vec<u8>> = entries.keys().cloned().collect();
            let pick = |i: usize| keys[i % keys.len()].clone();
            match e {
                StoreEdit::Value(i, m) => {
                    let k = pick(*i);
                    let v = mutate(&entries[&k], m);
                    touched.extend(doc_of(&k));
                    entries.insert(k, v);
                }
                StoreEdit::Key(i, m) => {
                    let k = pick(*i);
                    let v = entries.remove(&k).unwrap();
                    let k2 = mutate(&k, m);
                    touched.extend(doc_of(&k));
                    touched.extend(doc_of(&k2));
                    entries.insert(k2, v);
                }
                StoreEdit::Remove(i) => {
                    let k = pick(*i);
                    touched.extend(doc_of(&k));
                    entries.remove(&k);
                }
                StoreEdit::Add(p, k, v) => {
                    let key = [PREFIXES[p % PREFIXES.len()], &k[..]].concat();
                    touched.extend(doc_of(&key));
                    entries.insert(key, v.clone());
                }
            }
        }
        let entries: Vec<_> = entries.into_iter().collect();
        let store = Arc::new(memory(&entries));
        let opened = bounded("Replica::open", || Replica::open(store.clone()))?;
        let r = match opened {
            Err(_) => {
                prop_assert_eq!(store.scan(b"").unwrap(), entries, "a failed open changed the store");
                return Ok(());
            }
            Ok(r) => r,
        };
        let damaged: Vec<String> = r.damaged().unwrap().into_iter().map(|d| d.doc).collect();
        for doc in DOCS {
            if !touched.contains(doc.as_bytes()) {
                prop_assert!(r.has_doc(doc), "{doc} was left alone but did not open");
                prop_assert_eq!(r.heads(doc), original.heads(doc));
            }
        }
        for doc in touched {
            let name = String::from_utf8_lossy(&doc).into_owned();
            let present = store.scan(&[b"d\0", &doc[..], b"\0"].concat()).unwrap();
            if !present.is_empty() {
                prop_assert!(
                    r.has_doc(&name) || damaged.contains(&name),
                    "{name:?} is stored but neither opened nor set aside"
                );
            }
        }
        let ids: Vec<String> = r.doc_ids().map(str::to_owned).collect();
        for id in &ids {
            // Reading the records of what opened never panics.
            let _ = docs::read_records(r.doc(id).unwrap());
        }
        let heads: Vec<_> = ids.iter().map(|id| r.heads(id)).collect();
        drop(r);
        let again = Replica::open(store.clone()).unwrap();
        let ids2: Vec<String> = again.doc_ids().map(str::to_owned).collect();
        prop_assert_eq!(&ids2, &ids, "a second opening finds other documents");
        let heads2: Vec<_> = ids2.iter().map(|id| again.heads(id)).collect();
        prop_assert_eq!(heads2, heads);
        prop_assert_eq!(again.damaged().unwrap().len(), damaged.len(), "set aside again");
    }
}

fn memory(entries: &[(Vec<u8>, Vec<u8>)]) -> MemoryStore {
    let store = MemoryStore::default();
    let mut b = WriteBatch::default();
    for (k, v) in entries {
        b.put(k.clone(), v.clone());
    }
    store.commit(b).unwrap();
    store
}

// ---- Stored values: the record index --------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Damaged index entries are reported as damaged, never a panic.
    #[test]
    fn damaged_index_entries(edits in prop::collection::vec((any::<usize>(), mutations(4)), 1..4)) {
        let seed: Vec<_> = seed_store().into_iter().filter(|(k, _)| k.starts_with(b"r\0")).collect();
        let store = MemoryStore::default();
        let mut b = WriteBatch::default();
        let mut values: Vec<(Vec<u8>, Vec<u8>)> = seed.clone();
        for (i, m) in &edits {
            let n = *i % values.len();
            values[n].1 = mutate(&values[n].1, m);
        }
        for (k, v) in &values {
            b.put(k.clone(), v.clone());
        }
        store.commit(b).unwrap();
        let read = bounded("index::read_all", || index::read_all(&store))?;
        if let Err(e) = read {
            prop_assert!(e.to_string().contains("damaged"), "{e}");
        }
    }

    /// Whatever a record holds, it comes back from the index as it went in.
    #[test]
    fn index_round_trip(recs in prop::collection::vec(any_record(), 1..6), doc in "[a-z0-9/]{1,16}") {
        let store = MemoryStore::default();
        let mut b = WriteBatch::default();
        let mut want = BTreeMap::new();
        for r in &recs {
            index::put(&mut b, &doc, r);
            want.insert(r.id.clone(), r.clone());
        }
        store.commit(b).unwrap();
        let got: BTreeMap<String, Record> = index::read_doc(&store, &doc)
            .unwrap()
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        prop_assert_eq!(got, want);
    }
}

fn any_date() -> impl Strategy<Value = time::Date> {
    (-9999i32..=9999, 1u16..=366)
        .prop_map(|(y, d)| time::Date::from_ordinal_date(y, d.min(365)).unwrap())
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "\\PC{0,12}".prop_map(Value::Text),
        any::<i64>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        any_date().prop_map(Value::Date),
        prop::collection::vec("\\PC{0,8}", 0..3).prop_map(Value::List),
    ]
}

/// Any record at all: the index must keep what it is given.
fn any_record() -> impl Strategy<Value = Record> {
    (
        "[^\u{0}]{1,20}",
        "\\PC{0,12}",
        prop::collection::btree_map("\\PC{1,10}", any_value(), 0..6),
        prop::collection::btree_map("\\PC{1,10}", prop::collection::vec(any_value(), 2..3), 0..2),
    )
        .prop_map(|(id, kind, fields, conflicts)| Record {
            id,
            kind,
            fields,
            conflicts,
        })
}

// ---- Records typed or imported by people ----------------------------------

/// A kind, and (field, text) pairs for it: mostly its own fields with
/// valid, borderline or wrong values, sometimes unknown names.
fn typed_row() -> impl Strategy<Value = (String, Vec<(String, String)>)> {
    let kinds: Vec<&'static str> = schema::KINDS.iter().map(|k| k.name).collect();
    (
        prop_oneof![9 => prop::sample::select(kinds).prop_map(str::to_owned), 1 => token()],
        prop::collection::vec((any::<prop::sample::Index>(), cell(), any::<u8>()), 0..10),
    )
        .prop_map(|(kind, picks)| {
            let fields: Vec<&str> = schema::kind(&kind)
                .map(|k| k.fields.iter().map(|f| f.name).collect())
                .unwrap_or_default();
            let pairs = picks
                .into_iter()
                .map(|(i, value, which)| {
                    let name = match which % 8 {
                        0 => ["id", "unit", "unit_version", "kind", "conflicts", "colour"]
                            [i.index(6)]
                        .to_owned(),
                        _ if !fields.is_empty() => fields[i.index(fields.len())].to_owned(),
                        _ => "name".to_owned(),
                    };
                    (name, value)
                })
                .collect();
            (kind, pairs)
        })
}

/// A cell: a valid value of some type, a borderline one, or anything.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => token(),
        1 => (0i64..=1_000_000).prop_map(|n| n.to_string()),
        1 => any_date().prop_map(schema::format_date),
        1 => prop::sample::select(&["true", "false", "có", "không", "HTX", "THT", "good", "chair", "a;b; c"][..])
            .prop_map(str::to_owned),
        1 => " \\PC{0,6} ",
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// A typed or CSV row gives a record or an error naming the problem;
    /// every value of a record it gives passes its field's own check, and
    /// the record reads back the same from its export JSON.
    #[test]
    fn typed_rows((kind, pairs) in typed_row()) {
        let rec = bounded("record_from_strings", || {
            schema::record_from_strings(&kind, pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())))
        })?;
        let Ok(rec) = rec else { return Ok(()) };
        let spec = schema::kind(&kind).unwrap();
        for (name, v) in &rec.fields {
            if let Some(f) = spec.field(name) {
                prop_assert_eq!(f.check(&kind, v.clone()), Ok(v.clone()), "{}", name);
            }
        }
        let back = schema::record_from_json(&rec.to_json());
        prop_assert_eq!(back, Ok(rec));
    }

    /// A JSON object built from the same cells, with values of any JSON
    /// type, gives a record or an error.
    #[test]
    fn json_rows((kind, pairs) in typed_row(), shapes in prop::collection::vec(0u8..6, 10)) {
        let mut obj = serde_json::Map::new();
        obj.insert("kind".into(), kind.clone().into());
        for (i, (k, v)) in pairs.iter().enumerate() {
            let value = match shapes[i % shapes.len()] {
                0 => serde_json::from_str(v).unwrap_or_else(|_| v.clone().into()),
                1 => serde_json::json!([v]),
                2 => serde_json::json!({ "v": v }),
                3 => serde_json::Value::Null,
                4 => v.parse::<f64>().map(serde_json::Value::from).unwrap_or_else(|_| v.clone().into()),
                _ => v.clone().into(),
            };
            obj.insert(k.clone(), value);
        }
        let value = serde_json::Value::Object(obj);
        let rec = bounded("record_from_json", || schema::record_from_json(&value))?;
        if let Ok(rec) = rec {
            let spec = schema::kind(&kind).unwrap();
            for (name, v) in &rec.fields {
                if let Some(f) = spec.field(name) {
                    prop_assert_eq!(f.check(&kind, v.clone()), Ok(v.clone()), "{}", name);
                }
            }
        }
    }
}

// ---- Records as stored inside Automerge documents ------------------------

fn scalar() -> impl Strategy<Value = ScalarValue> {
    prop_oneof![
        cell().prop_map(|s| ScalarValue::Str(s.into())),
        any::<i64>().prop_map(ScalarValue::Int),
        any::<u64>().prop_map(ScalarValue::Uint),
        any::<f64>().prop_map(ScalarValue::F64),
        any::<bool>().prop_map(ScalarValue::Boolean),
        any::<i64>().prop_map(ScalarValue::Timestamp),
        any::<i64>().prop_map(ScalarValue::counter),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(ScalarValue::Bytes),
        Just(ScalarValue::Null),
    ]
}

/// A field as a node (or an attacker) may write it: a scalar, or an object.
#[derive(Debug, Clone)]
enum Stored {
    Scalar(ScalarValue),
    Object(ObjType, Vec<String>),
}

fn stored() -> impl Strategy<Value = Stored> {
    prop_oneof![
        4 => scalar().prop_map(Stored::Scalar),
        1 => (
            prop::sample::select(&[ObjType::Map, ObjType::List, ObjType::Text][..]),
            prop::collection::vec("\\PC{0,6}", 0..3),
        )
            .prop_map(|(t, items)| Stored::Object(t, items)),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever types a document's record fields hold, reading the records
    /// returns, and a field the schema types is read only as its type.
    #[test]
    fn records_in_documents(
        recs in prop::collection::vec((typed_row(), prop::collection::vec(("\\PC{1,8}", stored()), 0..4), any::<bool>()), 1..4),
    ) {
        let mut d = AutoCommit::new();
        for ((kind, pairs), odd, kind_is_text) in &recs {
            let id = schema::new_id();
            let obj = d.put_object(ROOT, id.as_str(), ObjType::Map).unwrap();
            if *kind_is_text {
                d.put(&obj, "kind", kind.as_str()).unwrap();
            } else {
                d.put(&obj, "kind", 7).unwrap();
            }
            for (k, v) in pairs {
                d.put(&obj, k.as_str(), v.as_str()).unwrap();
            }
            for (k, v) in odd {
                put_stored(&mut d, &obj, k, v);
            }
        }
        d.commit();
        // And a root value that is not a record at all.
        d.put(ROOT, "stray", 5).unwrap();
        d.commit();
        let read = bounded("read_records", || docs::read_records(&d))?;
        prop_assert!(read.is_ok());
        for rec in read.unwrap() {
            let Ok(spec) = schema::kind(&rec.kind) else { continue };
            for (name, v) in &rec.fields {
                let Some(f) = spec.field(name) else { continue };
                let fits = match (f.ty, v) {
                    (FieldType::Date, Value::Date(_)) => true,
                    (FieldType::Date, _) => false,
                    _ => true,
                };
                prop_assert!(fits, "{name}: {v:?}");
            }
        }
    }
}

fn put_stored(d: &mut AutoCommit, obj: &automerge::ObjId, k: &str, v: &Stored) {
    match v {
        Stored::Scalar(s) => {
            d.put(obj, k, s.clone()).unwrap();
        }
        Stored::Object(t, items) => {
            let o = d.put_object(obj, k, *t).unwrap();
            for (i, item) in items.iter().enumerate() {
                match t {
                    ObjType::Map => d.put(&o, item.as_str(), true).unwrap(),
                    ObjType::List => d.insert(&o, i, item.as_str()).unwrap(),
                    _ => d.splice_text(&o, 0, 0, item).unwrap(),
                }
            }
        }
    }
}

// ---- Node bundles ---------------------------------------------------------

fn bundle_json() -> String {
    Bundle {
        format: 1,
        node: "356".into(),
        unit: "356".into(),
        unit_version: "2023".into(),
        hub_url: "https://localhost:7443".into(),
        hub_name: "localhost".into(),
        ca_fingerprint: "ab".repeat(32),
        ca_cert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        cert: "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into(),
        key: "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".into(),
        cert_issued_at: "2025-01-01T00:00:00Z".into(),
        cert_expires_at: "2026-01-01T00:00:00Z".into(),
        units: Vec::new(),
    }
    .to_json()
}

proptest! {
    #![proptest_config(config(512))]

    /// A damaged bundle is refused with a message in both languages, or
    /// read; a bundle that is read writes back to what it read.
    #[test]
    fn bundles(input in json_input(serde_json::from_str(&bundle_json()).unwrap())) {
        let text = String::from_utf8_lossy(&input);
        match bounded("Bundle::parse", || Bundle::parse(&text))? {
            Ok(b) => prop_assert_eq!(Bundle::parse(&b.to_json()).unwrap(), b),
            // A person reads this: English and Vietnamese.
            Err(e) => prop_assert!(e.to_string().contains(" / "), "{e}"),
        }
    }
}

/// Found by `bundles`: a bundle of another format was refused in English
/// only.
#[test]
fn a_bundle_of_another_format_is_refused_in_both_languages() {
    let text = bundle_json().replace("\"format\": 1", "\"format\": 2");
    let e = Bundle::parse(&text).unwrap_err().to_string();
    assert!(e.contains("format 2") && e.contains(" / "), "{e}");
}

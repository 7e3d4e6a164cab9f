//! Fuzzing of what the hub reads from nodes and from its own directory:
//! sync batches as the hub decodes and merges them (`validate::merge`, the
//! path of every `ChangeBatch`), its configuration, audit log, quarantine
//! and enrolment files.
//!
//! Batches start from a node's valid changes (the sample records of Thành
//! phố Nam Định, then random edits of their fields with values of any
//! Automerge type), which are then cut, resent, sent to other documents,
//! or damaged byte by byte; damaged changes are mostly resealed (length and
//! checksum recomputed), so that they get past Automerge's checksum into
//! its decoder. See RELIABILITY.md, "Fuzzing".

#[path = "../../core/tests/support/fuzz.rs"]
mod fuzz;

use std::sync::Arc;

use automerge::transaction::CommitOptions;
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use htx_core::docs;
use htx_core::plan::Plan;
use htx_core::progress::Engine;
use htx_core::replica::Replica;
use htx_core::schema::{self, FieldType, Record, Value};
use htx_core::storage::MemoryStore;
use htx_core::units::Hierarchy;
use htx_core::wire;
use htx_hub::config::HubConfig;
use htx_hub::home::Enrolment;
use htx_hub::hub::Hub;
use htx_hub::validate;
use htx_proto::v1::{self as pb, node_message::Body as Nb};
use proptest::prelude::*;
use prost::Message;
use sha2::{Digest, Sha256};

use fuzz::{Largest, Mutation, bounded, config, json_input, mutate, mutations, token, toml_input};

#[global_allocator]
static ALLOC: Largest = Largest;

const DOC: &str = "u/2023/13633";
const SAMPLE: &str = include_str!("../../deploy/sample/nam-dinh-city.csv");
const MAX_DOC_BYTES: u64 = 1 << 20;

/// The sample file's records of commune 13633, as a node holds them.
fn sample_records() -> Vec<Record> {
    let mut rdr = csv::Reader::from_reader(SAMPLE.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|row| {
            let row = row.unwrap();
            let mut r =
                schema::record_from_strings(&row[0], headers.iter().zip(row.iter())).unwrap();
            // One commune's document holds them all.
            r.fields.insert("unit".into(), Value::Text("13633".into()));
            r
        })
        .collect()
}

/// A node enrolled for Thành phố Nam Định (356).
fn node(name: &str) -> Enrolment {
    Enrolment {
        name: name.into(),
        unit: "356".into(),
        unit_version: "2023".into(),
        fingerprint: String::new(),
        enrolled_at: String::new(),
        expires_at: String::new(),
        previous_fingerprints: Vec::new(),
        revoked_at: String::new(),
    }
}

fn raw(changes: &[automerge::Change]) -> Vec<Vec<u8>> {
    changes.iter().map(|c| c.raw_bytes().to_vec()).collect()
}

/// An Automerge chunk is `magic(4) checksum(4) type(1) length(LEB128)
/// body`; the checksum is the first 4 bytes of SHA-256 over type, length
/// and body. Returns `change` with its body mutated and its header made
/// right again.
fn reseal(change: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let (Some(&ty), Some(rest)) = (change.get(8), change.get(9..)) else {
        return mutate(change, muts);
    };
    let Some(len_bytes) = rest.iter().position(|b| b & 0x80 == 0).map(|p| p + 1) else {
        return mutate(change, muts);
    };
    let body = mutate(&rest[len_bytes..], muts);
    let mut len = Vec::new();
    let mut n = body.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            len.push(b);
            break;
        }
        len.push(b | 0x80);
    }
    let mut hashed = vec![ty];
    hashed.extend(&len);
    hashed.extend(&body);
    let sum = Sha256::digest(&hashed);
    [&change[..4], &sum[..4], &hashed[..]].concat()
}

/// A field value as a node (or an attacker) may write it.
fn scalar() -> impl Strategy<Value = ScalarValue> {
    prop_oneof![
        4 => token().prop_map(|s| ScalarValue::Str(s.into())),
        2 => prop_oneof![Just(-1i64), Just(0), Just(5), Just(1_000_001), Just(i64::MAX), any::<i64>()]
            .prop_map(ScalarValue::Int),
        1 => any::<u64>().prop_map(ScalarValue::Uint),
        1 => any::<f64>().prop_map(ScalarValue::F64),
        1 => any::<bool>().prop_map(ScalarValue::Boolean),
        1 => any::<i64>().prop_map(ScalarValue::Timestamp),
        1 => any::<i64>().prop_map(ScalarValue::counter),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(ScalarValue::Bytes),
        1 => Just(ScalarValue::Null),
    ]
}

/// One edit a node makes to its document, as one change.
#[derive(Debug, Clone)]
enum Edit {
    /// Sets a field of record `rec` to a valid value of its type.
    SetValid {
        rec: usize,
        field: usize,
        n: u32,
    },
    /// Sets field `field` (by index into the kind's fields, or a stray
    /// name) of record `rec` to a value.
    Set {
        rec: usize,
        field: usize,
        stray: Option<String>,
        value: ScalarValue,
    },
    /// Makes a field a map, list or text.
    Object {
        rec: usize,
        field: usize,
        ty: u8,
    },
    Delete {
        rec: usize,
        field: Option<usize>,
    },
    /// A new record with a kind and nothing else, or a root scalar.
    New {
        kind: String,
        scalar: bool,
    },
    /// Another district's unit for a record.
    MoveTo {
        rec: usize,
        unit: String,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (any::<usize>(), any::<usize>(), any::<u32>())
            .prop_map(|(rec, field, n)| Edit::SetValid { rec, field, n }),
        3 => (any::<usize>(), any::<usize>(), prop::option::weighted(0.2, token()), scalar())
            .prop_map(|(rec, field, stray, value)| Edit::Set { rec, field, stray, value }),
        1 => (any::<usize>(), any::<usize>(), 0u8..3).prop_map(|(rec, field, ty)| Edit::Object { rec, field, ty }),
        1 => (any::<usize>(), prop::option::of(any::<usize>())).prop_map(|(rec, field)| Edit::Delete { rec, field }),
        1 => (token(), any::<bool>()).prop_map(|(kind, scalar)| Edit::New { kind, scalar }),
        1 => (any::<usize>(), prop::sample::select(&["13741", "356", "13633", "99999", "", "14215"][..]))
            .prop_map(|(rec, unit)| Edit::MoveTo { rec, unit: unit.to_owned() }),
    ]
}

fn apply_edit(d: &mut AutoCommit, ids: &[String], e: &Edit) {
    let kinds: Vec<String> = ids
        .iter()
        .map(|id| match d.get(ROOT, id.as_str()) {
            Ok(Some((_, obj))) => match d.get(&obj, "kind") {
                Ok(Some((automerge::Value::Scalar(s), _))) => s.as_str().unwrap_or("").to_owned(),
                _ => String::new(),
            },
            _ => String::new(),
        })
        .collect();
    let field_name = |rec: usize, field: usize| -> String {
        schema::kind(&kinds[rec])
            .map(|k| k.fields[field % k.fields.len()].name.to_owned())
            .unwrap_or_else(|_| "name".into())
    };
    let obj_of = |d: &AutoCommit, rec: usize| match d.get(ROOT, ids[rec].as_str()) {
        Ok(Some((automerge::Value::Object(ObjType::Map), obj))) => Some(obj),
        _ => None,
    };
    match e {
        Edit::SetValid { rec, field, n } => {
            let rec = rec % ids.len();
            let Ok(spec) = schema::kind(&kinds[rec]) else {
                return;
            };
            let f = &spec.fields[field % spec.fields.len()];
            let n = *n as i64;
            let value: ScalarValue = match f.ty {
                FieldType::Text | FieldType::Ref(_) => format!("x{n}").into(),
                FieldType::Date => {
                    format!("20{:02}-{:02}-{:02}", n % 30, 1 + n % 12, 1 + n % 28).into()
                }
                FieldType::Count => (n % 1000).into(),
                FieldType::Amount => n.into(),
                FieldType::Bool => (n % 2 == 0).into(),
                FieldType::Enum(allowed) => allowed[n as usize % allowed.len()].into(),
                FieldType::RefList(_) => return,
            };
            if let Some(obj) = obj_of(d, rec) {
                d.put(&obj, f.name, value).unwrap();
                commit(d);
            }
        }
        Edit::Set {
            rec,
            field,
            stray,
            value,
        } => {
            let rec = rec % ids.len();
            if let Some(obj) = obj_of(d, rec) {
                let name = stray.clone().unwrap_or_else(|| field_name(rec, *field));
                d.put(&obj, name.as_str(), value.clone()).unwrap();
            }
        }
        Edit::Object { rec, field, ty } => {
            let rec = rec % ids.len();
            if let Some(obj) = obj_of(d, rec) {
                let ty = [ObjType::Map, ObjType::List, ObjType::Text][*ty as usize];
                let name = field_name(rec, *field);
                let o = d.put_object(&obj, name.as_str(), ty).unwrap();
                match ty {
                    ObjType::Map => d.put(&o, "x", true).unwrap(),
                    ObjType::List => d.insert(&o, 0, "x").unwrap(),
                    _ => d.splice_text(&o, 0, 0, "x").unwrap(),
                }
            }
        }
        Edit::Delete { rec, field } => {
            let rec = rec % ids.len();
            match field {
                None => d.delete(ROOT, ids[rec].as_str()).unwrap(),
                Some(f) => {
                    if let Some(obj) = obj_of(d, rec) {
                        d.delete(&obj, field_name(rec, *f).as_str()).unwrap();
                    }
                }
            }
        }
        Edit::New { kind, scalar } => {
            let id = format!("01890000-0000-7000-8000-{:012x}", d.length(ROOT));
            if *scalar {
                d.put(ROOT, id.as_str(), kind.as_str()).unwrap();
            } else {
                let obj = d.put_object(ROOT, id.as_str(), ObjType::Map).unwrap();
                d.put(&obj, "kind", kind.as_str()).unwrap();
            }
        }
        Edit::MoveTo { rec, unit } => {
            let rec = rec % ids.len();
            if let Some(obj) = obj_of(d, rec) {
                d.put(&obj, "unit", unit.as_str()).unwrap();
            }
        }
    }
    commit(d);
}

/// What happens to one change on its way to the hub.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// Body mutated, header made right again.
    Resealed(Vec<Mutation>),
    /// Bytes mutated as they are.
    Raw(Vec<Mutation>),
    Dropped,
    Twice,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => mutations(3).prop_map(Damage::Resealed),
        1 => mutations(3).prop_map(Damage::Raw),
        1 => Just(Damage::Dropped),
        1 => Just(Damage::Twice),
    ]
}

/// Documents a batch entry may name.
const DOCS: &[&str] = &[
    DOC,
    DOC,
    DOC,
    "u/2023/13636",
    "u/2023/356",
    "u/2023/13741",
    "u/2023/36",
    "ref/plan",
    "",
    "u/2023/13633/x",
    "u/2025/13633",
];

#[derive(Debug, Clone)]
struct BatchInput {
    edits: Vec<Edit>,
    /// What happens to which change (by index, modulo their number);
    /// most batches arrive whole, so that their content gets checked.
    damage: Vec<(usize, Damage)>,
    /// Entry sizes, and which document each entry names (most batches
    /// name only the node's own document).
    cuts: Vec<(usize, usize)>,
    elsewhere: bool,
    /// Entries of random bytes.
    junk: Vec<(String, Vec<Vec<u8>>)>,
    /// Mutations of the encoded `NodeMessage`, if it is damaged on the wire.
    wire: Option<Vec<Mutation>>,
}

fn batch_input() -> impl Strategy<Value = BatchInput> {
    (
        prop_oneof![1 => Just(Vec::new()), 2 => prop::collection::vec(edit(), 1..5)],
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec((any::<usize>(), damage()), 1..3),
        ],
        prop::collection::vec((1usize..5, any::<usize>()), 1..6),
        prop::bool::weighted(0.15),
        prop_oneof![
            6 => Just(Vec::new()),
            1 => prop::collection::vec(
                (
                    prop_oneof![prop::sample::select(DOCS).prop_map(str::to_owned), token()],
                    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3),
                ),
                1..2,
            ),
        ],
        prop::option::weighted(0.15, mutations(4)),
    )
        .prop_map(|(edits, damage, cuts, elsewhere, junk, wire)| BatchInput {
            edits,
            damage,
            cuts,
            elsewhere,
            junk,
            wire,
        })
}

/// Commits with a fixed time: a batch is then the same bytes on every run,
/// and a failing case can be replayed exactly.
fn commit(d: &mut AutoCommit) {
    d.commit_with(CommitOptions::default().with_time(0));
}

/// The hub's replica, holding the first sample records as node-a sent them
/// and one record of node-b; and node-a's document, continuing from there.
/// Everything but the hub's own actor id is the same on every run.
fn setup() -> (Replica, AutoCommit, Vec<String>) {
    let mut hub = Replica::open(Arc::new(MemoryStore::default())).unwrap();
    let mut theirs = AutoCommit::new().with_actor(ActorId::from(vec![0xb; 16]));
    let mut other = sample_records()[0].clone();
    other.id = "01890000-0000-7000-8000-00000000000b".into();
    docs::put_record(&mut theirs, &other).unwrap();
    commit(&mut theirs);
    validate::merge(
        &mut hub,
        &node("node-b"),
        &[(DOC.into(), raw(&theirs.get_changes(&[])))],
        MAX_DOC_BYTES,
    )
    .unwrap()
    .unwrap();
    let mut mine = hub
        .fork(DOC)
        .expect("readable")
        .with_actor(ActorId::from(vec![0xa; 16]));
    let records = sample_records();
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let base = mine.get_heads();
    for r in &records[..2] {
        docs::put_record(&mut mine, r).unwrap();
        commit(&mut mine);
    }
    validate::merge(
        &mut hub,
        &node("node-a"),
        &[(DOC.into(), raw(&mine.get_changes(&base)))],
        MAX_DOC_BYTES,
    )
    .unwrap()
    .unwrap();
    for r in &records[2..] {
        docs::put_record(&mut mine, r).unwrap();
        commit(&mut mine);
    }
    (hub, mine, ids)
}

/// Builds the batch entries node-a sends for `input`.
fn entries(
    input: &BatchInput,
    mine: &mut AutoCommit,
    ids: &[String],
) -> Vec<(String, Vec<Vec<u8>>)> {
    for e in &input.edits {
        apply_edit(mine, ids, e);
    }
    // Everything from the start: what the hub holds is resent too.
    let all = mine.get_changes(&[]);
    let mut changes: Vec<Vec<u8>> = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let bytes = c.raw_bytes();
        let damage = input
            .damage
            .iter()
            .find(|(n, _)| n % all.len() == i)
            .map_or(&Damage::None, |(_, d)| d);
        match damage {
            Damage::None => changes.push(bytes.to_vec()),
            Damage::Resealed(m) => changes.push(reseal(bytes, m)),
            Damage::Raw(m) => changes.push(mutate(bytes, m)),
            Damage::Dropped => {}
            Damage::Twice => changes.extend([bytes.to_vec(), bytes.to_vec()]),
        }
    }
    let mut out = Vec::new();
    let mut rest = changes.as_slice();
    for (n, doc) in input.cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (take, left) = rest.split_at((*n).min(rest.len()));
        rest = left;
        let doc = if input.elsewhere {
            DOCS[doc % DOCS.len()]
        } else {
            DOC
        };
        out.push((doc.to_owned(), take.to_vec()));
    }
    out.extend(input.junk.iter().cloned());
    out
}

/// Everything the store holds, byte for byte.
fn stored(r: &Replica) -> Vec<(Vec<u8>, Vec<u8>)> {
    r.store().scan(b"").unwrap()
}

proptest! {
    #![proptest_config(config(64))]

    /// A batch from node-a, however damaged, is merged or refused. Refused
    /// (or failing), it leaves the hub's store byte for byte as it was.
    /// Merged, every record of every document is well-formed and in the
    /// node's scope, the records reach the progress view without a panic,
    /// and the store opens again to the same documents.
    #[test]
    fn sync_batches(input in batch_input()) {
        let (mut hub, mut mine, ids) = setup();
        let before = stored(&hub);
        let heads_before = hub.heads(DOC);
        let mut batch = entries(&input, &mut mine, &ids);
        if let Some(m) = &input.wire {
            // Damaged on the wire: the hub decodes what arrives.
            let msg = pb::NodeMessage {
                body: Some(Nb::Changes(pb::ChangeBatch {
                    seq: 1,
                    docs: batch.iter().map(|(doc, changes)| pb::DocChanges { doc: doc.clone(), changes: changes.clone() }).collect(),
                    r#final: false,
                    digest: Vec::new(),
                })),
            };
            let bytes = mutate(&msg.encode_to_vec(), m);
            batch = match bounded("NodeMessage::decode", || pb::NodeMessage::decode(bytes.as_slice()))? {
                Ok(pb::NodeMessage { body: Some(Nb::Changes(b)) }) => wire::batch_from_wire(b.docs),
                _ => return Ok(()),
            };
        }
        let n = node("node-a");
        let outcome = bounded("validate::merge", || validate::merge(&mut hub, &n, &batch, MAX_DOC_BYTES))?;
        match outcome {
            Ok(Ok((_, checked))) => {
                for doc in hub.doc_ids().map(str::to_owned).collect::<Vec<_>>() {
                    prop_assert!(Hub::writable(&n, &doc) || doc == DOC, "merged into {doc}");
                    for rec in docs::read_records(hub.doc(&doc).unwrap()).unwrap() {
                        prop_assert!(rec.validate().is_ok(), "bad record merged: {rec:?}");
                    }
                }
                let mut engine = Engine::new(
                    Plan::builtin(),
                    Hierarchy::builtin(),
                    "2023",
                    schema::parse_date("2025-06-30").unwrap(),
                    Vec::new(),
                ).unwrap();
                bounded("progress of merged records", || {
                    for (_, rec) in checked.records {
                        engine.upsert(rec);
                    }
                    engine.report()
                })?;
                let ids: Vec<String> = hub.doc_ids().map(str::to_owned).collect();
                let heads: Vec<_> = ids.iter().map(|d| hub.heads(d)).collect();
                let again = Replica::open(hub.store().clone()).unwrap();
                prop_assert!(again.damaged().unwrap().is_empty(), "{:?}", again.damaged());
                prop_assert_eq!(again.doc_ids().map(str::to_owned).collect::<Vec<_>>(), ids);
                prop_assert_eq!(ids_heads(&again), heads);
            }
            Ok(Err(refusal)) => {
                prop_assert!(refusal.to_string().contains(" / "), "{refusal}");
                prop_assert_eq!(stored(&hub), before);
                prop_assert_eq!(hub.heads(DOC), heads_before);
            }
            Err(e) => {
                prop_assert_eq!(stored(&hub), before, "{}", e);
                prop_assert_eq!(hub.heads(DOC), heads_before);
            }
        }
    }
}

fn ids_heads(r: &Replica) -> Vec<Vec<automerge::ChangeHash>> {
    r.doc_ids().map(|d| r.heads(d)).collect()
}

// ---- The hub's own files ---------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// A damaged `hub.toml` is read or refused with its path named.
    #[test]
    fn hub_config_files(input in prop_oneof![
        toml_input(include_str!("../../deploy/hub.example.toml")),
        toml_input(&toml::to_string(&HubConfig::default()).unwrap()),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HubConfig::FILE), &input).unwrap();
        match bounded("HubConfig::load", || HubConfig::load(dir.path()))? {
            Ok(cfg) => {
                let text = toml::to_string(&cfg).unwrap();
                prop_assert_eq!(toml::from_str::<HubConfig>(&text).unwrap(), cfg);
            }
            Err(e) => prop_assert!(e.to_string().contains("hub.toml"), "{e}"),
        }
    }

    /// A damaged audit log is read line by line: every line is an event or
    /// named as unreadable.
    #[test]
    fn audit_logs(lines in prop::collection::vec(json_input(serde_json::json!({
        "time": "2025-06-30T00:00:00Z", "event": "batch_accepted", "node": "node-a",
        "doc": DOC, "actors": ["ab"], "changes": 3, "bytes": 900
    })), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let mut text = Vec::new();
        for l in &lines {
            text.extend(l.iter().filter(|b| **b != b'\n'));
            text.push(b'\n');
        }
        std::fs::write(dir.path().join(htx_hub::audit::FILE), &text).unwrap();
        let log = bounded("audit::read_log", || htx_hub::audit::read_log(dir.path(), None))?.unwrap();
        prop_assert_eq!(log.events.len() + log.bad_lines.len(), lines.iter().filter(|l| !l.iter().filter(|b| **b != b'\n').all(u8::is_ascii_whitespace)).count());
    }

    /// Damaged quarantine and enrolment files are read or refused, naming
    /// the file.
    #[test]
    fn quarantine_and_enrolment_files(
        entry in json_input(serde_json::json!({
            "id": "node-a-0123456789abcdef", "node": "node-a", "time": "2025-06-30T00:00:00Z",
            "reason": "record x: bad", "doc": DOC,
            "docs": [{"doc": DOC, "changes": ["856f4a83"]}],
            "records": [{"id": "x", "kind": "observation"}]
        })),
        enrolment in json_input(serde_json::to_value(node("node-a")).unwrap()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(htx_hub::quarantine::DIR)).unwrap();
        std::fs::write(dir.path().join(htx_hub::quarantine::DIR).join("e.json"), &entry).unwrap();
        if let Err(e) = bounded("quarantine::list", || htx_hub::quarantine::list(dir.path()))? {
            prop_assert!(format!("{e:#}").contains("e.json"), "{e:#}");
        }
        let home = htx_hub::home::Home::new(dir.path());
        std::fs::create_dir(dir.path().join("nodes")).unwrap();
        std::fs::write(dir.path().join("nodes").join("node-a.json"), &enrolment).unwrap();
        if let Err(e) = bounded("Home::enrolments", || home.enrolments())? {
            prop_assert!(format!("{e:#}").contains("node-a.json"), "{e:#}");
        }
        if let Err(e) = bounded("Home::enrolment", || home.enrolment("node-a"))? {
            prop_assert!(format!("{e:#}").contains("node-a.json"), "{e:#}");
        }
    }
}

/// The store stays as it was when the hub refuses: checked here once more
/// for a batch of nothing but junk, the commonest attack.
#[test]
fn a_batch_of_junk_is_refused_and_changes_nothing() {
    let (mut hub, _, _) = setup();
    let before = stored(&hub);
    let junk = vec![(
        DOC.to_owned(),
        vec![vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 0]],
    )];
    let r = validate::merge(&mut hub, &node("node-a"), &junk, MAX_DOC_BYTES).unwrap();
    assert!(r.is_err());
    assert_eq!(stored(&hub), before);
}

/// Found by `quarantine_and_enrolment_files`: an enrolment file that is not
/// UTF-8 stopped `enrolments` (and so the hub) with "stream did not contain
/// valid UTF-8", naming no file; a damaged one read by name said only what
/// JSON expected.
#[test]
fn a_damaged_enrolment_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let home = htx_hub::home::Home::new(dir.path());
    std::fs::create_dir(dir.path().join("nodes")).unwrap();
    std::fs::write(
        dir.path().join("nodes/node-a.json"),
        b"{\"name\": \"\xff\"}",
    )
    .unwrap();
    let e = format!("{:#}", home.enrolments().unwrap_err());
    assert!(e.contains("nodes/node-a.json") && e.contains(" / "), "{e}");
    std::fs::write(dir.path().join("nodes/node-a.json"), b"{\"name\": 5}").unwrap();
    let e = format!("{:#}", home.enrolment("node-a").unwrap_err());
    assert!(e.contains("nodes/node-a.json") && e.contains(" / "), "{e}");
}

/// Found by `sync_batches`: a change whose actor list was damaged (and
/// resealed, so its checksum holds) made Automerge panic in
/// `validate::check`, with the hub's replica lock held: the lock was
/// poisoned and every later session of every node failed until a restart.
#[test]
fn a_change_automerge_cannot_apply_is_refused_not_a_panic() {
    let mut d = AutoCommit::new().with_actor(ActorId::from(vec![0xb; 16]));
    let mut rec = sample_records()[0].clone();
    rec.id = "01890000-0000-7000-8000-00000000000b".into();
    docs::put_record(&mut d, &rec).unwrap();
    commit(&mut d);
    // The actor id's length byte and three bytes of it gone.
    let bad = reseal(d.get_changes(&[])[0].raw_bytes(), &[Mutation::Remove(1, 4)]);
    assert!(
        automerge::Change::from_bytes(bad.clone()).is_ok(),
        "it parses"
    );
    let mut hub = Replica::open(Arc::new(MemoryStore::default())).unwrap();
    let before = stored(&hub);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        validate::merge(
            &mut hub,
            &node("node-a"),
            &[(DOC.to_owned(), vec![bad])],
            MAX_DOC_BYTES,
        )
    }));
    let refusal = outcome.expect("no panic").unwrap().unwrap_err();
    assert!(!refusal.permission);
    assert!(
        refusal.to_string().contains("do not apply") && refusal.to_string().contains(" / "),
        "{refusal}"
    );
    assert_eq!(stored(&hub), before);
}

/// Found by `sync_batches` (2,000 cases): a change with one byte of its
/// body changed (and resealed) parsed, applied to the copy and passed
/// every check, and then Automerge 0.12 panicked *saving* the hub's real
/// document (`save_after`: "MissingOps"), after applying it there: the
/// change was in the hub's memory, not on disk, and the replica lock was
/// poisoned.
#[test]
fn a_change_automerge_cannot_save_is_refused_not_a_panic() {
    let set = |rec, field, n| Edit::SetValid { rec, field, n };
    let input = BatchInput {
        edits: vec![
            set(0, 8758384286426311038, 0),
            set(8576555084481, 41462940261571928, 0),
            set(351270302979191810, 0, 0),
            set(1077365278895796978, 1421850931893631719, 0),
        ],
        damage: vec![(
            12981183377127995672,
            Damage::Resealed(vec![Mutation::Interesting(10084831256932666461, 1)]),
        )],
        cuts: vec![(1, 0)],
        elsewhere: false,
        junk: vec![],
        wire: None,
    };
    let (mut hub, mut mine, ids) = setup();
    let before = stored(&hub);
    let batch = entries(&input, &mut mine, &ids);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        validate::merge(&mut hub, &node("node-a"), &batch, MAX_DOC_BYTES)
    }));
    let refusal = outcome.expect("no panic").unwrap().unwrap_err();
    assert!(refusal.to_string().contains("do not apply"), "{refusal}");
    assert_eq!(stored(&hub), before);
}

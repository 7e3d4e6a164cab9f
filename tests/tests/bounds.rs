//! Every count and amount has a plausible upper bound: at the bound a value
//! is accepted, above it refused with the field and the bound named, by the
//! node (an officer's write) and by the hub (a crafted change).

use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ScalarValue};
use htx_core::replica::Replica;
use htx_core::schema::{MAX_AMOUNT_VND, MAX_COUNT, Record, Value};
use htx_core::storage::MemoryStore;
use htx_node::node::NodeError;
use htx_tests::{TestHub, run};

fn record(kind: &str, fields: &[(&str, Value)]) -> Record {
    let mut r = Record {
        kind: kind.into(),
        ..Default::default()
    };
    for (k, v) in fields {
        r.fields.insert((*k).into(), v.clone());
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_amounts_above_their_bound_are_refused_by_the_node() {
    let hub = TestHub::create();
    let mut node = hub.enroll_node("356", "node-356");
    let coop = node.add_coop("13633", "HTX Hạ Long");
    let observation = |members: i64| {
        record(
            "observation",
            &[
                ("cooperative", Value::Text(coop.clone())),
                ("observed_on", Value::Text("2025-06-30".into())),
                ("members", Value::Int(members)),
            ],
        )
    };
    let loan = |amount: i64| {
        record(
            "activity",
            &[
                ("type", Value::Text("loan".into())),
                ("held_on", Value::Text("2025-06-30".into())),
                ("unit", Value::Text("13633".into())),
                ("amount_vnd", Value::Int(amount)),
            ],
        )
    };
    node.write(vec![observation(MAX_COUNT), loan(MAX_AMOUNT_VND)])
        .expect("values at the bound are accepted");
    let before = node.export();

    for (rec, field, value, max) in [
        (
            observation(MAX_COUNT + 1),
            "members",
            MAX_COUNT + 1,
            MAX_COUNT,
        ),
        (observation(i64::MAX), "members", i64::MAX, MAX_COUNT),
        (
            loan(MAX_AMOUNT_VND + 1),
            "amount_vnd",
            MAX_AMOUNT_VND + 1,
            MAX_AMOUNT_VND,
        ),
    ] {
        let err = node.write(vec![rec]).expect_err("above the bound");
        assert!(matches!(err, NodeError::Invalid(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "field \"{field}\": {value} is above the largest plausible value, {max}"
            )),
            "{text}"
        );
        assert!(text.contains("vượt quá mức tối đa"), "{text}");
        assert_eq!(node.export(), before, "nothing written after: {text}");
    }

    // The command line says the same, and writes nothing.
    let dir = node.dir().to_str().unwrap().to_owned();
    node.close();
    let out = run(
        "htx-node",
        &[
            "add",
            &dir,
            "observation",
            "--cooperative",
            &coop,
            "--observed-on",
            "2025-07-01",
            "--stable-jobs-women",
            "9223372036854775807",
        ],
    )
    .await;
    let err = out.failed();
    assert!(
        err.contains("\"stable_jobs_women\": 9223372036854775807 is above the largest plausible value, 1000000"),
        "{err}"
    );
    node.open();
    assert_eq!(node.export(), before, "the command wrote nothing");
}

/// A node's document holding one observation with `workers` set to `n`,
/// written directly with Automerge (as a modified node could send it).
fn crafted(actor: &ActorId, n: i64) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut d = AutoCommit::new().with_actor(actor.clone());
    let id = htx_core::schema::new_id();
    let obj = d.put_object(ROOT, id.as_str(), ObjType::Map).unwrap();
    for (k, v) in [
        ("kind", ScalarValue::from("observation")),
        ("cooperative", "c".into()),
        ("observed_on", "2025-06-30".into()),
        ("unit", "13633".into()),
        ("workers", n.into()),
    ] {
        d.put(&obj, k, v).unwrap();
    }
    d.commit();
    let changes = d
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    vec![("u/2023/13633".to_owned(), changes)]
}

/// A node enrolled for Thành phố Nam Định (356).
fn node_a() -> htx_hub::home::Enrolment {
    htx_hub::home::Enrolment {
        name: "node-a".into(),
        unit: "356".into(),
        unit_version: "2023".into(),
        ..Default::default()
    }
}

#[test]
fn the_hub_refuses_a_crafted_count_above_its_bound() {
    let mut hub = Replica::open(Arc::new(MemoryStore::default())).unwrap();
    htx_hub::validate::check(
        &mut hub,
        &node_a(),
        &crafted(&ActorId::random(), MAX_COUNT),
        1 << 20,
    )
    .expect("the hub reads its store")
    .expect("a count at the bound is accepted");
    for n in [MAX_COUNT + 1, i64::MAX] {
        let refusal = htx_hub::validate::check(
            &mut hub,
            &node_a(),
            &crafted(&ActorId::random(), n),
            1 << 20,
        )
        .expect("the hub reads its store")
        .expect_err("above the bound");
        assert!(!refusal.permission);
        assert!(
            refusal.reason.contains(&format!(
                "field \"workers\": {n} is above the largest plausible value, {MAX_COUNT}"
            )),
            "{refusal}"
        );
    }
}

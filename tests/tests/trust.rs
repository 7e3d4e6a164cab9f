//! What the hub refuses from an enrolled node, over real mutual-TLS
//! connections: each bad batch is refused with a reason that names the
//! document (and record and field), logged in `DIR/audit.log`, kept in
//! `DIR/quarantine/`, and the merged data does not change. Changes are
//! crafted straight into the node's replica with Automerge, past the node's
//! own validation, as a modified or malicious node would.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ScalarValue};
use htx_core::docs::{REFERENCE_DOC, put_record};
use htx_core::schema::new_id;
use htx_core::storage::WriteBatch;
use htx_hub::config::HubConfig;
use htx_hub::{audit, quarantine};
use htx_proto::v1::{self as pb, hub_message::Body as Hb, node_message::Body as Nb};
use htx_tests::{Record, TestHub, TestNode, coop, run};

/// Writes a record map into `doc` of the node's replica, field by field,
/// with no validation.
fn craft(node: &TestNode, doc: &str, kind: &str, fields: &[(&str, ScalarValue)]) -> String {
    let id = new_id();
    node.node()
        .replica()
        .change(doc, |d| -> Result<(), automerge::AutomergeError> {
            let obj = d.put_object(ROOT, id.as_str(), ObjType::Map)?;
            d.put(&obj, "kind", kind)?;
            for (k, v) in fields {
                d.put(&obj, *k, v.clone())?;
            }
            Ok(())
        })
        .expect("stored")
        .expect("edited");
    id
}

fn text(s: &str) -> ScalarValue {
    ScalarValue::Str(s.into())
}

/// Syncs `node`, expects a refusal mentioning each of `expected`, and checks
/// that it was logged, quarantined, and that the hub's data did not change.
async fn assert_refused(hub: &TestHub, node: &TestNode, before: &[Record], expected: &[&str]) {
    let err = node.sync().await.expect_err("the hub refuses the batch");
    let msg = err.to_string();
    for e in expected {
        assert!(msg.contains(e), "{e:?} not in the refusal: {msg}");
    }
    assert!(
        node.node().status().sync.last_error.contains(expected[0]),
        "the node's status shows why"
    );
    let log = audit::read(hub.dir(), Some(&node.name)).expect("audit log");
    assert!(
        log.iter().any(|e| e["event"] == "refused"
            && expected
                .iter()
                .all(|x| e["reason"].as_str().unwrap_or_default().contains(x))),
        "the refusal is in the audit log: {log:#?}"
    );
    let kept = quarantine::list(hub.dir()).expect("quarantine");
    let entry = kept
        .iter()
        .find(|q| q.node == node.name && expected.iter().all(|x| q.reason.contains(x)))
        .unwrap_or_else(|| panic!("the refused batch is in quarantine: {kept:#?}"));
    assert!(entry.change_count() > 0, "with its raw changes");
    assert_eq!(hub.export(), before, "the merged data did not change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_cannot_write_another_districts_document() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    node.add_coop("13633", "HTX Hạ Long");
    node.sync().await.expect("first sync");
    let before = hub.export();
    craft(
        &node,
        "u/2023/13741",
        "cooperative",
        &[
            ("type", text("HTX")),
            ("name", text("HTX Gôi")),
            ("unit", text("13741")),
        ],
    );
    assert_refused(&hub, &node, &before, &["u/2023/13741", "may not write"]).await;
    // Refused again on the next sync: logged again, kept once.
    node.sync().await.expect_err("still refused");
    let refusals = audit::read(hub.dir(), Some("node-356"))
        .unwrap()
        .into_iter()
        .filter(|e| e["event"] == "refused")
        .count();
    assert_eq!(refusals, 2);
    assert_eq!(quarantine::list(hub.dir()).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_write_the_plan() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    node.sync().await.expect("the node gets the plan");
    let before = hub.export();
    let plan = hub.hub().replica().heads(REFERENCE_DOC);
    node.node()
        .replica()
        .change(REFERENCE_DOC, |d| d.put(ROOT, "plan", "nothing to do"))
        .expect("stored")
        .expect("edited");
    // Our node never sends the reference document; a hostile client does.
    let forged = pb::DocChanges {
        doc: REFERENCE_DOC.into(),
        changes: unsent(&hub, &node, REFERENCE_DOC),
    };
    assert!(!forged.changes.is_empty());
    let err = raw_session(&node, vec![vec![forged]])
        .await
        .expect_err("refused");
    assert!(err.message().contains("may not write"), "{err}");
    assert!(err.message().contains(REFERENCE_DOC), "{err}");
    assert_eq!(hub.export(), before, "the merged data did not change");
    assert_eq!(
        hub.hub().replica().heads(REFERENCE_DOC),
        plan,
        "the plan is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_may_not_grow_past_the_limit() {
    let mut hub = TestHub::create();
    let path = hub.dir().join(HubConfig::FILE);
    let mut cfg = HubConfig::load(hub.dir()).unwrap();
    cfg.max_doc_bytes = 4096;
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    hub.serve().await;
    let node = hub.enroll_node("356", "node-356");
    node.add_coop("13633", "HTX Hạ Long");
    node.sync().await.expect("a small document is accepted");
    let before = hub.export();
    craft(
        &node,
        "u/2023/13633",
        "cooperative",
        &[
            ("type", text("HTX")),
            ("name", text(&"HTX Rất Dài ".repeat(1000))),
            ("unit", text("13633")),
        ],
    );
    assert_refused(&hub, &node, &before, &["u/2023/13633", "over the limit"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_under_another_nodes_actor_id_are_never_merged() {
    let hub = TestHub::start().await;
    let a = hub.enroll_node("356", "office-pc");
    let b = hub.enroll_node("356", "field-laptop");
    a.add_coop("13633", "HTX Hạ Long");
    a.sync().await.expect("a syncs");
    b.add_coop("13633", "HTX Mỹ Xá");
    b.sync().await.expect("b syncs");
    let before = hub.export();

    // b writes a change as if it were a.
    let a_actor = a.node().replica().actor().clone();
    let mut forged = AutoCommit::new().with_actor(a_actor.clone());
    let mut record = coop("13636", "HTX Giả");
    record.id = new_id();
    put_record(&mut forged, &record).expect("put");
    forged.commit();
    let change = forged.get_last_local_change().expect("a change");
    b.node()
        .replica()
        .apply(
            vec![("u/2023/13636".into(), vec![change.raw_bytes().to_vec()])],
            WriteBatch::default(),
        )
        .expect("applied on b");
    // Never merged, and not a reason to refuse b's session: after a hub
    // restore a node legitimately holds changes of another node that the
    // hub lost (defect 11); only their author may deliver them.
    b.sync().await.expect("b's session goes on");
    assert_eq!(hub.export(), before, "nothing forged reached the hub");
    // a itself still syncs.
    a.add_coop("13633", "HTX Nam Vân");
    a.sync().await.expect("a still syncs");
}

type Case<'a> = (&'a str, &'a str, Vec<(&'a str, ScalarValue)>, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_refused_naming_document_record_and_field() {
    let hub = TestHub::start().await;
    let owner = hub.enroll_node("356", "node-356");
    let coop_id = owner.add_coop("13633", "HTX Hạ Long");
    owner.sync().await.expect("sync");
    let before = hub.export();
    let observation = |workers: ScalarValue| {
        vec![
            ("cooperative", text(&coop_id)),
            ("observed_on", text("2025-06-30")),
            ("workers", workers),
            ("unit", text("13633")),
            ("unit_version", text("2023")),
        ]
    };
    // (node name, kind, fields, what the refusal says)
    let cases: Vec<Case> = vec![
        (
            "string-number",
            "observation",
            observation(text("many")),
            "\"workers\"",
        ),
        (
            "negative",
            "observation",
            observation(ScalarValue::Int(-3)),
            "negative",
        ),
        (
            "unknown-unit",
            "cooperative",
            vec![
                ("type", text("HTX")),
                ("name", text("HTX Ma")),
                ("unit", text("99999")),
            ],
            "\"99999\" is not a unit",
        ),
    ];
    for (name, kind, fields, why) in cases {
        let node = hub.enroll_node("356", name);
        let id = craft(&node, "u/2023/13633", kind, &fields);
        assert_refused(&hub, &node, &before, &["u/2023/13633", &id, why]).await;
        // The officer sees which record to fix.
        assert_eq!(node.node().status().sync.refused_records, vec![id.clone()]);
        // What the batch would have produced can be inspected.
        let entry = quarantine::list(hub.dir())
            .unwrap()
            .into_iter()
            .find(|q| q.node == name)
            .expect("quarantined");
        let shown = quarantine::show(hub.dir(), &entry.id).expect("show");
        assert!(shown.records.iter().any(|r| r["id"] == id.as_str()));
    }
    let listed = run("htx-hub", &["quarantine", hub.dir().to_str().unwrap()]).await;
    assert_eq!(listed.ok().lines().count(), 3, "{}", listed.stdout);
    let id = quarantine::list(hub.dir()).unwrap()[0].id.clone();
    let shown = run(
        "htx-hub",
        &["quarantine", hub.dir().to_str().unwrap(), "--show", &id],
    )
    .await;
    assert!(
        shown.ok().contains("\"workers\": \"many\""),
        "{}",
        shown.stdout
    );
    let audit = run(
        "htx-hub",
        &["audit", hub.dir().to_str().unwrap(), "--node", "negative"],
    )
    .await;
    assert!(audit.ok().contains("\"refused\""), "{}", audit.stdout);
}

/// Opens a raw sync session with the node's certificate, says hello, and
/// sends `batch` as change batches 1, 2, ...; returns the acks or the error.
async fn raw_session(
    node: &TestNode,
    batches: Vec<Vec<pb::DocChanges>>,
) -> Result<Vec<pb::Ack>, tonic::Status> {
    let channel = htx_node::sync_client::connect(node.node())
        .await
        .expect("mutual TLS");
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let msg = |body| pb::NodeMessage { body: Some(body) };
    tx.send(msg(Nb::Hello(pb::Hello {
        protocol: htx_core::sync::PROTOCOL,
        digest: vec![0; 32],
        documents: 1,
        ..Default::default()
    })))
    .await
    .unwrap();
    let mut replies = pb::sync_client::SyncClient::new(channel)
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    assert!(matches!(
        replies.message().await?.and_then(|m| m.body),
        Some(Hb::Welcome(_))
    ));
    let mut acks = Vec::new();
    for (i, docs) in batches.into_iter().enumerate() {
        let batch = pb::ChangeBatch {
            seq: i as u64 + 1,
            docs,
            ..Default::default()
        };
        tx.send(msg(Nb::Changes(batch))).await.unwrap();
        match replies.message().await?.and_then(|m| m.body) {
            Some(Hb::Ack(a)) => acks.push(a),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    Ok(acks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sync_bytes_are_refused_and_kept() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    node.add_coop("13633", "HTX Hạ Long");
    node.sync().await.expect("sync");
    let before = hub.export();
    let garbage = pb::DocChanges {
        doc: "u/2023/13633".into(),
        changes: vec![b"\x85\x6f\x4a\x83 not a change at all".to_vec()],
    };
    let err = raw_session(&node, vec![vec![garbage]])
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("u/2023/13633"), "{}", err.message());
    assert!(err.message().contains("malformed"), "{}", err.message());
    let log = audit::read(hub.dir(), Some("node-356")).unwrap();
    assert!(log.iter().any(|e| e["event"] == "refused"));
    let kept = quarantine::list(hub.dir()).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        hex_decode(&kept[0].docs[0].changes[0]),
        b"\x85\x6f\x4a\x83 not a change at all"
    );
    assert_eq!(hub.export(), before);
    // The node's own sync still works.
    node.add_coop("13633", "HTX Mỹ Xá");
    node.sync().await.expect("sync after");
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_changes_nothing() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    node.add_coop("13633", "HTX Hạ Long");
    node.add_coop("13633", "HTX Mỹ Xá");
    node.sync().await.expect("sync");
    let docs = node.docs();
    let (before, changes) = (hub.export(), hub.change_count(&docs));
    let replay: Vec<pb::DocChanges> = {
        let mut r = node.node().replica();
        docs.iter()
            .filter(|d| d.starts_with("u/"))
            .map(|d| pb::DocChanges {
                doc: d.clone(),
                changes: r
                    .changes_since(d, &[])
                    .expect("readable")
                    .iter()
                    .map(|c| c.raw_bytes().to_vec())
                    .collect(),
            })
            .collect()
    };
    let acks = raw_session(&node, vec![replay.clone(), replay])
        .await
        .expect("a replay is acknowledged");
    assert_eq!(acks.len(), 2);
    assert_eq!(hub.export(), before, "nothing changed");
    assert_eq!(hub.change_count(&docs), changes, "nothing duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_valid_data_is_accepted_and_flagged() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    let coop_id = node.add_coop("13633", "HTX Hạ Long");
    let obs = htx_core::schema::record_from_strings(
        "observation",
        [
            ("cooperative", coop_id.as_str()),
            ("observed_on", "2025-06-30"),
            ("workers", "5"),
            ("female_workers", "12"),
            ("unit", "13633"),
        ],
    )
    .unwrap();
    let id = node
        .write(vec![obs])
        .expect("the node accepts it")
        .remove(0);
    node.sync().await.expect("the hub accepts it");
    assert!(hub.export().iter().any(|r| r.id == id), "merged");
    let log = audit::read(hub.dir(), Some("node-356")).unwrap();
    let warning = log
        .iter()
        .find(|e| e["event"] == "warning")
        .expect("a data-quality warning");
    let w = warning["warning"].as_str().unwrap();
    assert!(w.contains(&id) && w.contains("female_workers"), "{w}");
    let accepted = log
        .iter()
        .find(|e| e["event"] == "accepted")
        .expect("the batch is logged");
    assert_eq!(
        accepted["actors"][0].as_str(),
        Some(node.node().replica().actor().to_hex_string().as_str())
    );
    assert!(quarantine::list(hub.dir()).unwrap().is_empty());
}

/// The node's changes to `doc` that the hub does not hold, in causal order.
fn unsent(hub: &TestHub, node: &TestNode, doc: &str) -> Vec<Vec<u8>> {
    let hub_heads = hub.hub().replica().heads(doc);
    node.node()
        .replica()
        .changes_since(doc, &hub_heads)
        .expect("readable")
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

fn entry(doc: &str, changes: &[Vec<u8>]) -> pb::DocChanges {
    pb::DocChanges {
        doc: doc.into(),
        changes: changes.to_vec(),
    }
}

/// The attack that once passed validation: one batch naming the same
/// document twice, a valid change in the first entry and a bad change that
/// depends on it in the second. Judged together, it is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_change_split_from_its_dependency_is_refused() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "splitter");
    node.add_coop("13633", "HTX Hạ Long");
    node.sync().await.expect("sync");
    let before = hub.export();
    let doc = "u/2023/13633";
    let accepted =
        |log: &[serde_json::Value]| log.iter().filter(|e| e["event"] == "accepted").count();
    let accepted_before = accepted(&audit::read(hub.dir(), Some("splitter")).unwrap());
    node.add_coop("13633", "HTX Mỹ Xá");
    let bad = craft(
        &node,
        doc,
        "observation",
        &[
            ("cooperative", text("c")),
            ("observed_on", text("2025-06-30")),
            ("workers", ScalarValue::Int(-3)),
            ("unit", text("13633")),
        ],
    );
    let changes = unsent(&hub, &node, doc);
    assert_eq!(changes.len(), 2);
    let err = raw_session(
        &node,
        vec![vec![entry(doc, &changes[..1]), entry(doc, &changes[1..])]],
    )
    .await
    .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains(&bad), "{}", err.message());
    assert_eq!(hub.export(), before, "nothing merged");
    let log = audit::read(hub.dir(), Some("splitter")).unwrap();
    assert!(log.iter().any(|e| e["event"] == "refused"), "{log:#?}");
    assert_eq!(accepted(&log), accepted_before, "no batch was accepted");
    assert_eq!(quarantine::list(hub.dir()).unwrap().len(), 1);
}

/// A bad change sent before its dependency, in an earlier batch, is not
/// kept waiting at the hub: when the dependency comes, only it is merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sent_before_its_dependency_is_not_released_later() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "orphaner");
    let doc = "u/2023/13633";
    let good = node.add_coop("13633", "HTX Hạ Long");
    let bad = craft(
        &node,
        doc,
        "cooperative",
        &[
            ("type", text("HTX")),
            ("name", text("HTX Ngoài")),
            ("unit", text("13741")),
        ],
    );
    let changes = unsent(&hub, &node, doc);
    let acks = raw_session(
        &node,
        vec![
            vec![entry(doc, &changes[1..])],
            vec![entry(doc, &changes[..1])],
        ],
    )
    .await
    .expect("both batches answered");
    assert_eq!(acks[0].new_changes, 0, "the orphan was not merged");
    assert!(acks[0].docs[0].heads.is_empty(), "nor acknowledged");
    assert_eq!(acks[1].new_changes, 1);
    let ids: Vec<String> = hub.export().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![good]);
    assert!(!ids.contains(&bad));
}

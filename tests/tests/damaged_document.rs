//! A document damaged in a node's store is set aside and named; the rest of
//! the node keeps working, and the next sync brings the document back whole
//! from the hub.

use htx_core::storage::{self, Backend, WriteBatch};
use htx_tests::{TestHub, run};

const DAMAGED: &str = "u/2023/13633";

/// Flips a byte in the middle of the Automerge payload of the last stored
/// value (a chunk, or the snapshot) of document `doc`.
fn damage(dir: &std::path::Path, doc: &str) {
    let store = storage::open(Backend::Redb, dir).expect("open the node's store");
    let prefix = [b"d\0", doc.as_bytes(), b"\0"].concat();
    let (key, mut value) = store
        .scan(&prefix)
        .unwrap()
        .into_iter()
        .next_back()
        .expect("the document is stored");
    let heads = u16::from_be_bytes([value[1], value[2]]) as usize;
    let payload = 3 + heads * 32;
    let mid = payload + (value.len() - payload) / 2;
    value[mid] ^= 0xff;
    let mut b = WriteBatch::default();
    b.put(key, value);
    store.commit(b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_document_is_set_aside_named_and_recovered_from_the_hub() {
    let hub = TestHub::start().await;
    let mut node = hub.enroll_node("356", "node-356");
    let a = node.add_coop("13633", "HTX Hạ Long");
    let b = node.add_coop("13633", "HTX Lộc Hạ");
    let other = node.add_coop("13636", "HTX Trần Tế Xương");
    node.sync().await.expect("sync");
    let whole = node.export();
    assert_eq!(whole.len(), 3);

    node.close();
    damage(node.dir(), DAMAGED);
    node.open();

    // The rest of the node works; the damaged document is named.
    let ids: Vec<String> = node.export().into_iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        vec![other.clone()],
        "only the undamaged document's records"
    );
    let status = node.node().status();
    assert_eq!(status.damaged_documents.len(), 1, "{status:?}");
    assert!(
        status.damaged_documents[0].starts_with(&format!("{DAMAGED}: damaged in the store")),
        "{status:?}"
    );
    assert!(
        status.damaged_documents[0].contains("bị hỏng"),
        "{status:?}"
    );
    let added = node.add_coop("13636", "HTX Mỹ Xá");

    // `htx-node status` shows it too.
    let dir = node.dir().to_str().unwrap().to_owned();
    node.close();
    let out = run("htx-node", &["status", &dir, "--format", "json"]).await;
    let shown: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert!(
        shown["damaged_documents"][0]
            .as_str()
            .unwrap()
            .contains("the next sync downloads it from the hub"),
        "{shown}"
    );
    node.open();

    // The next sync downloads it whole.
    node.sync().await.expect("sync");
    let back = node.export();
    for id in [&a, &b, &other, &added] {
        assert!(back.iter().any(|r| &r.id == id), "{id} is back: {back:?}");
    }
    for r in &whole {
        assert_eq!(
            back.iter().find(|x| x.id == r.id),
            Some(r),
            "each record as it was before the damage"
        );
    }
    assert!(
        node.node().status().damaged_documents[0].contains("recovered from the hub"),
        "{:?}",
        node.node().status()
    );
    assert_eq!(
        node.digest(),
        hub.digest(&node.docs()),
        "node and hub agree"
    );

    // And it stays whole across a restart.
    node.restart();
    assert_eq!(node.export().len(), 4);
}

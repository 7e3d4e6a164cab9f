//! A slow disk (issue 13, item 5): a store whose commits take seconds, or
//! are held on command (`htx_tests::slow_store::Gate`). While the hub's
//! commit of a node's batch is held, the hub still answers progress and
//! export, from what was committed before; released, the merge completes
//! with everything. A node's write on a slow disk returns only once its
//! commit did, and is there after reopening.

use std::time::Duration;

use htx_core::storage;
use htx_node::node::Node;
use htx_node::sync_client;
use htx_tests::slow_store::Gate;
use htx_tests::{TestHub, coop};

/// A guard against hanging, never a measurement: generous on a busy machine.
const LIMIT: Duration = Duration::from_secs(120);

const PROGRESS: &str = "/api/progress?unit=356&as_of=2025-12-31";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_commit_at_the_hub_leaves_its_reads_answering_and_completes_when_released() {
    let mut hub = TestHub::create();
    let gate = Gate::new();
    let g = gate.clone();
    hub.serve_with(move |store| g.wrap(store)).await;
    let node = hub.enroll_node("356", "slow-hub-disk");
    node.add_coop("13633", "HTX Đầu tiên");
    node.sync().await.expect("first sync");
    // The hub records the session after the node has gone: wait for that
    // commit, so that the one held below is the next session's.
    let recorded = {
        let h = hub.hub().clone();
        htx_tests::eventually(LIMIT, move || h.stats("slow-hub-disk").sessions >= 1).await
    };
    assert!(recorded, "the first session was recorded");
    let before = hub.export();
    assert_eq!(before.len(), 1);
    let (code, progress_before) = hub.api_get(PROGRESS).await;
    assert_eq!(code, 200, "{progress_before}");

    let new: Vec<_> = (0..40)
        .map(|k| coop("13633", &format!("HTX Chậm {k}")))
        .collect();
    let ids = node.write(new).expect("written on the node");
    gate.hold();
    let syncing = {
        let n = node.node().clone();
        tokio::spawn(async move { sync_client::sync_once(&n).await })
    };
    let g = gate.clone();
    let held = tokio::task::spawn_blocking(move || g.wait_for_held_commit(LIMIT))
        .await
        .unwrap();
    assert!(held, "the session reached a commit at the hub");

    // The commit is held (the hub holds its replica meanwhile): reads
    // still answer, with what was committed before, nothing half-written.
    let (code, progress_during) = tokio::time::timeout(LIMIT, hub.api_get(PROGRESS))
        .await
        .expect("progress answers while a commit is held");
    assert_eq!(code, 200, "{progress_during}");
    assert_eq!(progress_during, progress_before);
    let h = hub.hub().clone();
    let export = tokio::time::timeout(
        LIMIT,
        tokio::task::spawn_blocking(move || h.export(false).expect("export")),
    )
    .await
    .expect("export answers while a commit is held")
    .unwrap();
    assert_eq!(htx_tests::sorted(export), before);
    assert_eq!(
        gate.waiting(),
        1,
        "the commit was still held during the reads"
    );
    assert!(!syncing.is_finished(), "the session waits for the disk");

    // Released: the merge completes, with everything.
    gate.release();
    let report = syncing.await.unwrap().expect("the sync completes");
    assert!(report.in_sync, "{report:?}");
    let after: Vec<String> = hub.export().into_iter().map(|r| r.id).collect();
    assert_eq!(after.len(), 41);
    for id in &ids {
        assert!(after.contains(id), "{id} merged");
    }
    let (_, progress_after) = hub.api_get(PROGRESS).await;
    assert_ne!(progress_after, progress_before, "progress took the merge");

    // On disk too: the hub opened again holds every record.
    hub.restart().await;
    assert_eq!(hub.export().len(), 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_slow_disk_returns_only_once_durable() {
    let hub = TestHub::start().await;
    let mut test_node = hub.enroll_node("356", "slow-node-disk");
    test_node.close();
    let dir = test_node.dir().to_owned();
    let gate = Gate::new();
    let open = |gate: &std::sync::Arc<Gate>| {
        let (g, d) = (gate.clone(), dir.clone());
        Node::open_with(&dir, move |cfg| Ok(g.wrap(storage::open(cfg.backend, &d)?)))
            .expect("open node")
    };
    let node = open(&gate);

    gate.hold();
    let writing = {
        let n = node.clone();
        tokio::task::spawn_blocking(move || n.write(vec![coop("13633", "HTX Đĩa chậm")]))
    };
    let g = gate.clone();
    let held = tokio::task::spawn_blocking(move || g.wait_for_held_commit(LIMIT))
        .await
        .unwrap();
    assert!(held, "the write reached its commit");
    assert!(
        !writing.is_finished(),
        "a write does not return before its commit did"
    );
    let commits = gate.commits();
    gate.release();
    let ids = writing
        .await
        .unwrap()
        .expect("written once the disk answered");
    assert!(gate.commits() > commits);

    // Every commit slow from now on: the node still syncs, and the hub
    // gets the record.
    gate.set_delay(Duration::from_millis(100));
    sync_client::sync_once(&node)
        .await
        .expect("sync on a slow disk");
    assert!(hub.export().iter().any(|r| r.id == ids[0]));

    // Opened again, on the plain store: the write is there.
    drop(node);
    let reopened = Node::open(&dir).expect("reopen");
    let held: Vec<String> = reopened
        .export(false)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(held, ids);
}

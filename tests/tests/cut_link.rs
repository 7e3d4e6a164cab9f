//! A link that drops in the middle of a long catch-up: the next session
//! resumes from what the hub stored instead of starting over.

use std::time::Duration;

use htx_core::sync;
use htx_node::sync_client::SyncError;
use htx_tests::{Proxy, TestHub, edit, eventually};

const EDITS: usize = 1_000;
const RECORDS: usize = 20;
const MAX_BATCH_BYTES: usize = 2048;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_resumes_from_the_acknowledged_batches() {
    let hub = TestHub::start().await;
    // The node reaches the hub through a proxy that can cut the link; TLS
    // still checks the hub's name from the bundle, so the proxy is invisible.
    let proxy = Proxy::start(hub.port()).await;
    let node = hub.enroll_node_with("356", "node-356", |c| {
        c.max_batch_bytes = MAX_BATCH_BYTES;
        c.hub_url = Some(proxy.url());
    });

    // A long spell offline: 1,000 edits, each its own change.
    let ids: Vec<String> = (0..RECORDS)
        .map(|i| {
            let unit = if i % 2 == 0 { "13633" } else { "13636" };
            node.add_coop(unit, &format!("HTX {i}"))
        })
        .collect();
    for i in RECORDS..EDITS {
        let sector = format!("ngành {i}");
        node.write(vec![edit(
            &ids[i % RECORDS],
            "cooperative",
            &[("sector", &sector)],
        )])
        .expect("edit");
    }
    let docs = node.docs();
    let total = node.change_count();
    assert_eq!(total, EDITS);
    let (all_batches, change_bytes) = {
        let mut r = node.node().replica();
        let from_scratch: Vec<_> = docs.iter().map(|d| (d.clone(), Vec::new())).collect();
        let batches = sync::outgoing(&mut r, "nobody", &[], &from_scratch, MAX_BATCH_BYTES)
            .unwrap()
            .batches;
        let bytes: usize = batches.iter().map(|b| sync::batch_size(b).1).sum();
        (batches.len(), bytes)
    };
    assert!(
        all_batches > 20,
        "a catch-up of many batches ({all_batches})"
    );

    // The link drops part-way through the upload. (A sixth of the raw
    // changes: each carries a random 32-byte dependency hash, so even a
    // compressed upload is well over that.)
    proxy.cut_after(change_bytes as u64 / 6);
    let err = node.sync().await.expect_err("the link was cut");
    assert_eq!(proxy.cuts(), 1);
    assert!(
        matches!(err, SyncError::Broken(_) | SyncError::Unreachable { .. }),
        "a broken session, got {err:?}"
    );
    assert!(!node.node().status().sync.last_error.is_empty());
    let stored_at_hub = hub.change_count(&docs);
    assert!(
        stored_at_hub > 0 && stored_at_hub < total,
        "the hub kept part of the upload: {stored_at_hub} of {total}"
    );

    // The link is back: the next session sends only what the hub lacks.
    let second = node.sync().await.expect("sync after the cut");
    assert!(second.in_sync);
    assert_eq!(
        second.changes_sent as usize,
        total - stored_at_hub,
        "resumed where the hub stopped, not from the start"
    );
    assert!((second.batches_sent as usize) < all_batches);
    assert_eq!(hub.change_count(&docs), total, "the hub has every change");

    // Both sessions' changes add up to the catch-up, counted at the hub too.
    assert!(
        eventually(Duration::from_secs(5), || {
            let v = hub.node_view("node-356");
            v.stats.sessions == 2 && v.documents_behind == 0
        })
        .await,
        "{:#?}",
        hub.node_view("node-356")
    );
    let view = hub.node_view("node-356");
    assert_eq!(view.stats.changes_received as usize, total);
    assert!(view.stats.last_error.is_empty());

    assert_eq!(hub.export(), node.export());
    assert_eq!(hub.digest(&node.docs()), node.digest());
    let last = node.record(&ids[(EDITS - 1) % RECORDS]);
    assert_eq!(
        last.text("sector"),
        Some(format!("ngành {}", EDITS - 1).as_str())
    );
}

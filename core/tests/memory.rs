//! A document kept loaded holds what the same document loaded afresh holds,
//! however many changes it received while loaded: the hub and the nodes
//! keep documents loaded for days, so whatever grows with each change
//! received grows without bound.
//!
//! Memory is counted by this test binary's own allocator (live bytes), so
//! the test measures exactly what the replica holds, not the process's RSS.

use std::sync::Arc;

use automerge::transaction::Transactable;
use htx_core::replica::Replica;
use htx_core::storage::{MemoryStore, Store, WriteBatch};

#[path = "support/counting.rs"]
mod counting;

const DOC: &str = "u/2023/13633";

/// Live bytes held by the replica: measured as what dropping it gives back.
fn held(r: Replica) -> usize {
    let before = counting::live();
    drop(r);
    before.saturating_sub(counting::live())
}

#[test]
fn a_document_kept_loaded_holds_no_more_than_one_loaded_afresh() {
    // A node records 1,500 cooperatives, one change each, and sends them.
    let node_store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let mut node = Replica::open(node_store).unwrap();
    for i in 0..1500 {
        node.change(DOC, |d| {
            let rec = d.put_object(automerge::ROOT, format!("r{i}"), automerge::ObjType::Map)?;
            d.put(&rec, "kind", "cooperative")?;
            d.put(&rec, "name", format!("HTX số {i}"))?;
            d.put(&rec, "unit", "13633")?;
            d.put(&rec, "founded_on", "2019-01-01")?;
            d.put(&rec, "members_female", i as i64)
        })
        .unwrap()
        .unwrap();
    }
    let changes: Vec<Vec<u8>> = node
        .changes_since(DOC, &[])
        .unwrap()
        .into_iter()
        .map(|mut c| c.bytes().to_vec())
        .collect();
    assert_eq!(changes.len(), 1500);

    // The hub receives them in 150 sessions and keeps the document loaded.
    let hub_store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let mut hub = Replica::open(hub_store.clone()).unwrap();
    for batch in changes.chunks(10) {
        let applied = hub
            .apply(vec![(DOC.into(), batch.to_vec())], WriteBatch::default())
            .unwrap();
        assert_eq!(applied.new, batch.len());
    }
    let heads = hub.heads(DOC);
    assert!(hub.doc(DOC).is_some(), "kept loaded");
    let kept = held(hub);

    // The same document, loaded afresh from what the hub stored.
    let mut fresh = Replica::open(hub_store).unwrap();
    fresh.load(DOC).unwrap().expect("stored");
    assert_eq!(fresh.heads(DOC), heads);
    let afresh = held(fresh);

    eprintln!("kept loaded: {kept} B; loaded afresh: {afresh} B");
    assert!(
        (kept as f64) < 1.25 * afresh as f64,
        "a document kept loaded holds {kept} B, loaded afresh {afresh} B"
    );
}

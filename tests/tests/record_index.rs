//! The hub's record index (`htx_core::index`) always says what its
//! documents say: after concurrent edits, conflicts, deletes and restores
//! from several nodes, after a restart, and for a store indexed afresh.

use htx_tests::{TestHub, consolidated_htx, edit, figure, sorted};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_says_what_the_documents_say() {
    let mut hub = TestHub::start().await;
    let office = hub.enroll_node("356", "office-pc");
    let laptop = hub.enroll_node("356", "field-laptop");

    let coop = office.add_coop("13633", "HTX Hạ Long");
    office.add_coop("13636", "HTX Trần Tế Xương");
    office.sync().await.expect("office syncs");
    laptop.sync().await.expect("laptop syncs");
    // The same field edited on both nodes while apart: a conflict.
    office
        .write(vec![edit(&coop, "cooperative", &[("sector", "thủy sản")])])
        .expect("edit");
    laptop
        .write(vec![edit(
            &coop,
            "cooperative",
            &[("sector", "nông nghiệp")],
        )])
        .expect("edit");
    let gone = laptop.add_coop("13636", "HTX Lộc Hòa");
    laptop
        .node()
        .delete(&gone, false, "nhập trùng")
        .expect("delete");
    for _ in 0..2 {
        office.sync().await.expect("office syncs");
        laptop.sync().await.expect("laptop syncs");
    }

    let from_documents = hub.export_from_documents();
    let indexed = sorted(hub.hub().export(true).expect("index"));
    assert_eq!(indexed, from_documents);
    let merged = indexed.iter().find(|r| r.id == coop).expect("merged");
    assert_eq!(merged.conflicts["sector"].len(), 2, "{merged:?}");
    assert!(indexed.iter().any(|r| r.id == gone && r.is_deleted()));
    assert!(
        !hub.export().iter().any(|r| r.id == gone),
        "deleted records are left out by default"
    );

    // A restart reads the index as it was written with the changes.
    hub.restart().await;
    assert_eq!(
        sorted(hub.hub().export(true).expect("index")),
        from_documents
    );
    laptop
        .node()
        .delete(&gone, true, "xóa nhầm")
        .expect("restore");
    laptop.sync().await.expect("laptop syncs");
    assert_eq!(
        sorted(hub.hub().export(true).expect("index")),
        hub.export_from_documents()
    );
}

/// A damaged index entry, found while the live view is first built, stops
/// the query with an error naming the entry, in both languages, rather than
/// figures that silently leave records out; nothing half-built is kept, so
/// once the entry is whole again the same query counts every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_entry_stops_the_live_view_with_a_clear_error() {
    use htx_core::storage::WriteBatch;
    use htx_tests::web::http::request;
    let mut hub = TestHub::start().await;
    // Progress over HTTP to anyone, so that no sign-in (whose home page
    // shows progress) is needed to ask for it.
    let toml = hub.dir().join("hub.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let public = text.replace("public_progress = false", "public_progress = true");
    assert_ne!(public, text);
    std::fs::write(&toml, public).unwrap();
    hub.restart().await;
    let office = hub.enroll_node("356", "office-pc");
    for n in 0..5 {
        consolidated_htx(&office, "13633", &format!("HTX Hạ Long {n}"), "2019-01-01");
    }
    office.sync().await.expect("office syncs");

    // An entry in the middle, so that the build has begun when it is read.
    let store = hub.hub().replica().store().clone();
    let entries = store.scan(b"r\0").expect("scan");
    assert!(entries.len() >= 5, "{} entries", entries.len());
    let (key, whole) = entries[entries.len() / 2].clone();
    let mut batch = WriteBatch::default();
    batch.put(key.clone(), b"\x01{not json".to_vec());
    store.commit(batch).expect("damaged");

    let query = htx_hub::progress::Query::default();
    let err = hub.hub().progress(&query).expect_err("no partial figures");
    let text = format!("{err:#}");
    assert!(text.contains("record index entry r/"), "names it: {text}");
    assert!(text.contains("bị hỏng"), "Vietnamese: {text}");
    let r = request(hub.http_addr(), "GET", "/api/progress", None, b"").await;
    assert_eq!(
        r.status, 500,
        "the hub's fault, not the asker's: {}",
        r.body
    );
    assert!(r.body.contains("bị hỏng"), "{}", r.body);

    // Sync goes on meanwhile, and the entry made whole again is read.
    consolidated_htx(&office, "13633", "HTX Hạ Long 5", "2019-01-01");
    office
        .sync()
        .await
        .expect("office syncs with a damaged entry");
    let mut batch = WriteBatch::default();
    batch.put(key, whole);
    store.commit(batch).expect("mended");
    let p = hub.hub().progress(&query).expect("progress");
    assert_eq!(figure(&p, "36", "HTX_CONSOLIDATED", "1").numerator, 6);
}

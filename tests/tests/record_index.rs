//! The hub's record index (`htx_core::index`) always says what its
//! documents say: after concurrent edits, conflicts, deletes and restores
//! from several nodes, after a restart, and for a store indexed afresh.

use htx_tests::{TestHub, edit, sorted};

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

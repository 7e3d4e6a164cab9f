//! Offices record while the hub is out of reach, then sync; every replica
//! ends up with the same data, and concurrent edits are merged or shown.

use std::time::Duration;

use htx_node::sync_client::{self, SessionReport, SyncError};
use htx_tests::{Proxy, TestHub, Value, edit, eventually, sorted};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn districts_record_offline_then_sync_when_the_hub_comes_up() {
    // The hub's home exists, but the hub is not running yet.
    let mut hub = TestHub::create();
    let thanh_pho = hub.enroll_node("356", "node-356");
    let vu_ban = hub.enroll_node("359", "node-359");

    let a1 = thanh_pho.add_coop("13633", "HTX Hạ Long");
    let a2 = thanh_pho.add_coop("13636", "HTX Trần Tế Xương");
    let b1 = vu_ban.add_coop("13741", "HTX Gôi");
    let b2 = vu_ban.add_coop("13777", "HTX Thành Lợi");
    let before_a = thanh_pho.export();
    let before_b = vu_ban.export();

    for node in [&thanh_pho, &vu_ban] {
        let err = node.sync().await.expect_err("the hub is down");
        assert!(
            matches!(err, SyncError::Unreachable { .. }),
            "expected Unreachable, got {err:?}"
        );
        assert!(err.to_string().contains("cannot reach the hub"), "{err}");
        assert!(
            node.node()
                .status()
                .sync
                .last_error
                .contains("cannot reach the hub"),
            "status shows why the last sync failed"
        );
        assert!(node.node().status().sync.last_success.is_empty());
    }
    // Nothing was lost by the failed attempts.
    assert_eq!(thanh_pho.export(), before_a);
    assert_eq!(vu_ban.export(), before_b);

    hub.serve().await;
    let ra = thanh_pho.sync().await.expect("sync 356");
    let rb = vu_ban.sync().await.expect("sync 359");
    assert!(ra.in_sync && rb.in_sync);
    // Each gets one change: the plan and unit lists the hub publishes.
    assert_eq!(
        ra.changes_received, 1,
        "356 gets the hub's plan, nothing of 359"
    );
    assert_eq!(
        rb.changes_received, 1,
        "359 gets the hub's plan, nothing of 356"
    );

    let merged = hub.export();
    let ids: Vec<&str> = merged.iter().map(|r| r.id.as_str()).collect();
    for id in [&a1, &a2, &b1, &b2] {
        assert!(ids.contains(&id.as_str()), "hub lacks {id}");
    }
    assert_eq!(merged, sorted([before_a, before_b].concat()));
    // Each district only ever holds its own units.
    assert_eq!(thanh_pho.export().len(), 2);
    assert_eq!(vu_ban.export().len(), 2);

    // The admin sees both nodes synced and up to date, as soon as their
    // syncs returned.
    for name in ["node-356", "node-359"] {
        let v = hub.node_view(name);
        assert!(!v.stats.last_sync.is_empty(), "{v:#?}");
        assert_eq!(v.documents_behind, 0, "{v:#?}");
    }
    for name in ["node-356", "node-359"] {
        let v = hub.node_view(name);
        assert_eq!(
            v.documents, 3,
            "{name}: two communes' documents and the plan"
        );
        assert_eq!(v.stats.changes_received, 2, "{name}: one change per record");
        assert!(
            v.stats.last_error.is_empty(),
            "{name}: {}",
            v.stats.last_error
        );
    }
    assert!(!thanh_pho.node().status().sync.last_success.is_empty());
    assert_eq!(thanh_pho.node().status().documents_not_at_hub, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offices_of_one_district_edit_offline_and_converge() {
    let mut hub = TestHub::start().await;
    let office = hub.enroll_node("356", "office-pc");
    let laptop = hub.enroll_node("356", "field-laptop");

    // A cooperative both know about.
    let shared = office.add_coop("13633", "HTX Hạ Long");
    office.sync().await.expect("office sync");
    laptop.sync().await.expect("laptop sync");
    assert_eq!(laptop.record(&shared), office.record(&shared));

    // The hub goes away; both offices keep working.
    hub.stop().await;
    let from_office = office.add_coop("13636", "HTX Trần Tế Xương");
    let from_laptop = laptop.add_coop("13633", "HTX Rau Sạch");
    office
        .write(vec![edit(&shared, "cooperative", &[("sector", "dịch vụ")])])
        .expect("office edits the shared record");
    laptop
        .write(vec![edit(
            &shared,
            "cooperative",
            &[("classification", "good"), ("classified_on", "2025-06-30")],
        )])
        .expect("laptop edits the shared record");
    assert!(office.sync().await.is_err() && laptop.sync().await.is_err());

    // Back online: each syncs, then again, as the sync loop would.
    hub.serve().await;
    for node in [&office, &laptop, &office, &laptop] {
        node.sync().await.expect("sync");
    }

    let at_hub = hub.export();
    assert_eq!(
        office.export(),
        at_hub,
        "office-pc holds what the hub holds"
    );
    assert_eq!(
        laptop.export(),
        at_hub,
        "field-laptop holds what the hub holds"
    );
    assert_eq!(at_hub.len(), 3);
    for id in [&shared, &from_office, &from_laptop] {
        assert!(at_hub.iter().any(|r| &r.id == id), "hub lacks {id}");
    }
    // Edits of different fields of one record merge, with no conflict.
    let merged = office.record(&shared);
    assert_eq!(merged.text("name"), Some("HTX Hạ Long"));
    assert_eq!(merged.text("sector"), Some("dịch vụ"));
    assert_eq!(merged.text("classification"), Some("good"));
    assert!(merged.conflicts.is_empty(), "{:?}", merged.conflicts);

    // The replicas are identical, not only their exports.
    let docs = office.docs();
    assert_eq!(laptop.docs(), docs);
    assert_eq!(office.digest(), laptop.digest());
    assert_eq!(hub.digest(&docs), office.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_one_field_converge_and_show_the_conflict() {
    let hub = TestHub::start().await;
    let office = hub.enroll_node("356", "office-pc");
    let laptop = hub.enroll_node("356", "field-laptop");
    let id = office.add_coop("13633", "HTX Lúa");
    office.sync().await.expect("sync");
    laptop.sync().await.expect("sync");

    // Both rename the cooperative before either syncs.
    office
        .write(vec![edit(&id, "cooperative", &[("name", "HTX Lúa Xanh")])])
        .expect("office renames");
    laptop
        .write(vec![edit(&id, "cooperative", &[("name", "HTX Lúa Vàng")])])
        .expect("laptop renames");
    for node in [&office, &laptop, &office] {
        node.sync().await.expect("sync");
    }

    let at_hub = hub
        .export()
        .into_iter()
        .find(|r| r.id == id)
        .expect("hub has it");
    let both = [
        Value::Text("HTX Lúa Vàng".into()),
        Value::Text("HTX Lúa Xanh".into()),
    ];
    for (who, rec) in [
        ("office-pc", office.record(&id)),
        ("field-laptop", laptop.record(&id)),
        ("hub", at_hub.clone()),
    ] {
        let mut values = rec
            .conflicts
            .get("name")
            .unwrap_or_else(|| panic!("{who}: no conflict shown on name: {rec:?}"))
            .clone();
        values.sort();
        assert_eq!(values, both, "{who} shows both names");
        // Every replica shows the same winner.
        assert_eq!(rec.fields["name"], at_hub.fields["name"], "{who}");
        assert!(both.contains(&rec.fields["name"]));
        assert_eq!(rec, at_hub, "{who} holds the same record as the hub");
    }
    assert_eq!(office.digest(), laptop.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_made_during_a_sync_is_sent_by_the_next_one() {
    let hub = TestHub::start().await;
    let proxy = Proxy::start(hub.port()).await;
    let node = hub.enroll_node_with("356", "node-356", |c| c.hub_url = Some(proxy.url()));
    node.add_coop("13633", "HTX Hạ Long");
    node.sync().await.expect("sync");

    // A session starts from an in-sync node, and the hub's answer is slow.
    let channel = sync_client::connect(node.node()).await.expect("connect");
    proxy.hold_replies();
    let sent = proxy.forwarded();
    let session = tokio::spawn({
        let node = node.node().clone();
        async move {
            let mut report = SessionReport::default();
            sync_client::session(&node, channel, &mut report)
                .await
                .map(|()| report)
        }
    });
    // Once the session has taken its digest and sent its hello (more than
    // the few bytes of HTTP/2 housekeeping)...
    assert!(
        eventually(Duration::from_secs(10), || proxy.forwarded() > sent + 64
            && node.node().session_lock().try_lock().is_err())
        .await
    );
    // ...the officer records something.
    let late = node.add_coop("13636", "HTX Trần Tế Xương");
    proxy.release_replies();
    let report = session.await.expect("task").expect("session");
    assert!(report.in_sync, "in sync as of the hello: {report:?}");

    // That write is not at the hub: the node knows it, and sends it next time.
    assert_eq!(node.node().status().documents_not_at_hub, 1);
    let next = node.sync().await.expect("sync");
    assert_eq!(next.changes_sent, 1, "{next:?}");
    assert!(hub.export().iter().any(|r| r.id == late));
    assert_eq!(hub.export(), node.export());
}

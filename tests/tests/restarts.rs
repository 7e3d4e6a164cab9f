//! Restarts and crashes lose nothing: not the data, not the sync state.

use std::time::Duration;

use htx_tests::{TestHub, edit, export_ids, run, spawn, wait_for_api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_node_and_hub_keeps_data_and_sync_state() {
    let mut hub = TestHub::start().await;
    let mut office = hub.enroll_node("356", "office-pc");
    let mut laptop = hub.enroll_node("356", "field-laptop");

    // Data flows both ways before the restart: the office uploads, the
    // laptop uploads its own and downloads the office's.
    let coop = office.add_coop("13633", "HTX Hạ Long");
    office
        .write(vec![edit(&coop, "cooperative", &[("sector", "thủy sản")])])
        .expect("edit");
    laptop.add_coop("13636", "HTX Trần Tế Xương");
    office.sync().await.expect("office sync");
    let r = laptop.sync().await.expect("laptop sync");
    assert!(r.changes_received > 0 && r.changes_sent > 0);
    office.sync().await.expect("office sync");

    let at_hub = hub.export();
    assert_eq!(at_hub.len(), 2);
    assert_eq!(office.export(), at_hub);
    assert_eq!(laptop.export(), at_hub);
    let sessions = |hub: &TestHub| {
        (
            hub.node_view("office-pc").stats.sessions,
            hub.node_view("field-laptop").stats.sessions,
        )
    };
    let up_to_date = |hub: &TestHub| hub.nodes().iter().all(|v| v.documents_behind == 0);
    // The hub has recorded each session by the time the node's sync returns.
    assert_eq!(sessions(&hub), (2, 1));
    assert!(up_to_date(&hub), "{:#?}", hub.nodes());
    let office_status = office.node().status();

    // Everything stops, and comes back from disk.
    hub.restart().await;
    office.restart();
    laptop.restart();

    assert_eq!(hub.export(), at_hub, "the hub kept its data");
    assert_eq!(office.export(), at_hub, "office-pc kept its data");
    assert_eq!(laptop.export(), at_hub, "field-laptop kept its data");
    let status = office.node().status();
    assert_eq!(
        status.sync, office_status.sync,
        "the node kept its sync status"
    );
    assert_eq!(status.documents_not_at_hub, 0);
    assert_eq!(
        sessions(&hub),
        (2, 1),
        "the hub kept what it knows of each node"
    );
    assert!(up_to_date(&hub));

    // Nothing changed, so a sync is a single round trip that moves nothing.
    for node in [&office, &laptop] {
        let r = node.sync().await.expect("sync after restart");
        assert!(r.in_sync, "{}: {r:?}", node.name);
        assert_eq!(r.round_trips, 1, "{}: {r:?}", node.name);
        assert_eq!(
            (r.changes_sent, r.changes_received),
            (0, 0),
            "{}",
            node.name
        );
        assert_eq!(
            (r.batches_sent, r.batches_received),
            (0, 0),
            "{}",
            node.name
        );
    }
    assert_eq!(hub.export(), at_hub, "the hub's data is unchanged");
    assert_eq!(sessions(&hub), (3, 2));
    assert!(up_to_date(&hub), "{:#?}", hub.nodes());
    assert!(hub.nodes().iter().all(|v| v.stats.last_error.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_survives_sigkill_right_after_it_returned() {
    // The node has a hub to be enrolled with, but the hub is down: the
    // node's sync loop keeps failing in the background meanwhile.
    let hub = TestHub::create();
    let mut node = hub.enroll_node("356", "node-356");
    node.close();
    let dir = node.dir().to_owned();
    let log = tempfile::NamedTempFile::new().expect("log file");

    let mut ids = Vec::new();
    for round in 0..2 {
        let mut running = spawn("htx-node", &["run".as_ref(), dir.as_os_str()], log.path());
        wait_for_api(&dir.join("api.addr"), Duration::from_secs(20)).await;
        let name = format!("HTX {round}");
        let out = run(
            "htx-node",
            &[
                "add",
                dir.to_str().unwrap(),
                "cooperative",
                "--type",
                "HTX",
                "--name",
                &name,
                "--unit",
                "13633",
            ],
        )
        .await;
        let id = out.ok().trim().to_owned();
        assert_eq!(id.len(), 36, "add prints the new id: {out:?}");
        // Power cut: no chance to flush or shut down.
        running.kill().await;
        ids.push(id);

        // The process is gone (its api.addr is stale), so export opens the
        // store itself.
        let out = run(
            "htx-node",
            &["export", dir.to_str().unwrap(), "--format", "json"],
        )
        .await;
        let exported = export_ids(out.ok());
        for id in &ids {
            assert!(
                exported.contains(id),
                "round {round}: {id} lost; export: {exported:?}"
            );
        }
        assert_eq!(exported.len(), ids.len());
    }
}

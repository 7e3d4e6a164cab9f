//! While `htx-node run` and `htx-hub run` hold their directories, the other
//! commands work on the same directories through the processes' local APIs.

use std::time::Duration;

use htx_tests::{export_ids, free_port, parse_export, run, spawn, wait_for_api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_work_while_node_and_hub_run() {
    let root = tempfile::TempDir::new().unwrap();
    let hub_dir = root.path().join("hub");
    let node_dir = root.path().join("node");
    let bundle = root.path().join("office-pc.json");
    let (hub_s, node_s, bundle_s) = (
        hub_dir.to_str().unwrap(),
        node_dir.to_str().unwrap(),
        bundle.to_str().unwrap(),
    );

    // Set up as the README says: hub home, enrolment, node directory.
    let port = free_port();
    run(
        "htx-hub",
        &[
            "init",
            hub_s,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &format!("https://127.0.0.1:{port}"),
            "--server-name",
            "localhost",
            "--server-name",
            "127.0.0.1",
        ],
    )
    .await
    .ok();
    run(
        "htx-hub",
        &[
            "enroll",
            hub_s,
            "--unit",
            "356",
            "--name",
            "office-pc",
            "--out",
            bundle_s,
        ],
    )
    .await
    .ok();
    run("htx-node", &["init", node_s, "--bundle", bundle_s])
        .await
        .ok();

    let mut hub = spawn("htx-hub", &["run", hub_s], &root.path().join("hub.log"));
    wait_for_api(&hub_dir.join("admin.addr"), Duration::from_secs(20)).await;
    let mut node = spawn("htx-node", &["run", node_s], &root.path().join("node.log"));
    wait_for_api(&node_dir.join("api.addr"), Duration::from_secs(20)).await;

    // The node's commands, while it runs.
    let id = run(
        "htx-node",
        &[
            "add",
            node_s,
            "cooperative",
            "--type",
            "HTX",
            "--name",
            "HTX Hạ Long",
            "--unit",
            "13633",
        ],
    )
    .await
    .ok()
    .trim()
    .to_owned();
    let exported = run("htx-node", &["export", node_s]).await;
    assert_eq!(export_ids(exported.ok()), vec![id.clone()]);

    let status = run("htx-node", &["status", node_s, "--format", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(status.ok()).expect("status JSON");
    assert_eq!(status["running"], true, "answered by the running node");
    assert_eq!(status["node"], "office-pc");
    assert_eq!(status["records"], 1);

    let synced = run("htx-node", &["sync", node_s, "--once"]).await;
    assert!(synced.ok().contains("in sync"), "{synced:?}");
    let status = run("htx-node", &["status", node_s, "--format", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(status.ok()).expect("status JSON");
    assert_eq!(status["documents_not_at_hub"], 0, "{status}");
    assert_ne!(status["last_success"], "", "{status}");

    // The hub's commands, while it runs.
    let nodes = run("htx-hub", &["nodes", hub_s, "--format", "json"]).await;
    let nodes = parse_export(nodes.ok());
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["name"], "office-pc");
    assert_eq!(nodes[0]["unit"], "356");
    assert_ne!(nodes[0]["last_sync"], "", "{nodes:?}");
    assert_eq!(nodes[0]["documents_behind"], 0, "{nodes:?}");
    assert_eq!(nodes[0]["changes_received"], 1, "{nodes:?}");
    let table = run("htx-hub", &["nodes", hub_s]).await;
    assert!(table.ok().contains("office-pc"));
    let progress = run(
        "htx-hub",
        &["progress", hub_s, "--unit", "356", "--format", "csv"],
    )
    .await;
    assert!(
        progress
            .ok()
            .lines()
            .any(|l| l.starts_with("356,Thành phố Nam Định,district,HTX_CONSOLIDATED,1,count,0,")),
        "{}",
        progress.ok()
    );
    let table = run("htx-hub", &["progress", hub_s]).await;
    assert!(table.ok().contains("36 Tỉnh Nam Định"), "{}", table.ok());
    let exported = run("htx-hub", &["export", hub_s]).await;
    let records = parse_export(exported.ok());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], id.as_str());
    assert_eq!(records[0]["name"], "HTX Hạ Long");
    assert_eq!(records[0]["recorded_by"], "office-pc");

    // Both stop cleanly on SIGTERM and leave no stale address behind.
    assert!(node.terminate().await.success());
    assert!(!node_dir.join("api.addr").exists());
    assert!(hub.terminate().await.success());
    assert!(!hub_dir.join("admin.addr").exists());

    // And the same commands then open the stores themselves.
    let exported = run("htx-node", &["export", node_s]).await;
    assert_eq!(export_ids(exported.ok()), vec![id.clone()]);
    let exported = run("htx-hub", &["export", hub_s]).await;
    assert_eq!(export_ids(exported.ok()), vec![id]);
}

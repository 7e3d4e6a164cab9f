//! A replica that goes back in time (restored from a backup, or its store
//! replaced) converges with its peer by itself and loses nothing that a
//! surviving replica holds; the event shows in the logs, the audit and
//! `status` / `nodes`. Real `htx-hub` and `htx-node` processes, real
//! directories copied as an administrator would copy them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use htx_tests::{Process, export_ids, free_port, parse_export, run, spawn, wait_for_api};

/// A hub home and one enrolled node directory, driven through the binaries.
struct Site {
    root: tempfile::TempDir,
    hub_dir: PathBuf,
    node_dir: PathBuf,
    hub: Option<Process>,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `cp -a FROM TO` (TO must not exist).
fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .args(["-a", s(from), s(to)])
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {from:?} {to:?}");
}

/// Replaces `dir` by the backup at `from`, as a restore does.
fn restore(from: &Path, dir: &Path) {
    std::fs::remove_dir_all(dir).expect("remove");
    copy_dir(from, dir);
}

impl Site {
    async fn new() -> Site {
        let root = tempfile::TempDir::new().unwrap();
        let hub_dir = root.path().join("hub");
        let node_dir = root.path().join("node");
        let bundle = root.path().join("office-pc.json");
        let port = free_port();
        run(
            "htx-hub",
            &[
                "init",
                s(&hub_dir),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--public-url",
                &format!("https://127.0.0.1:{port}"),
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
                s(&hub_dir),
                "--unit",
                "356",
                "--name",
                "office-pc",
                "--out",
                s(&bundle),
            ],
        )
        .await
        .ok();
        run("htx-node", &["init", s(&node_dir), "--bundle", s(&bundle)])
            .await
            .ok();
        Site {
            root,
            hub_dir,
            node_dir,
            hub: None,
        }
    }

    fn bundle(&self) -> PathBuf {
        self.root.path().join("office-pc.json")
    }

    async fn start_hub(&mut self) {
        let log = self.root.path().join("hub.log");
        self.hub = Some(spawn("htx-hub", &["run", s(&self.hub_dir)], &log));
        wait_for_api(&self.hub_dir.join("admin.addr"), Duration::from_secs(20)).await;
    }

    async fn stop_hub(&mut self) {
        let st = self.hub.take().expect("running").terminate().await;
        assert!(st.success(), "the hub stops cleanly: {st:?}");
    }

    async fn add(&self, name: &str) -> String {
        let out = run(
            "htx-node",
            &[
                "add",
                s(&self.node_dir),
                "cooperative",
                "--type",
                "HTX",
                "--name",
                name,
                "--unit",
                "13633",
            ],
        )
        .await;
        out.ok().trim().to_owned()
    }

    /// `htx-node sync --once`, which must end with both sides equal.
    async fn sync(&self) -> String {
        let out = run("htx-node", &["sync", s(&self.node_dir), "--once"]).await;
        let text = out.ok().to_owned();
        assert!(text.contains("in sync"), "{text}");
        text
    }

    async fn node_ids(&self) -> Vec<String> {
        let mut ids = export_ids(run("htx-node", &["export", s(&self.node_dir)]).await.ok());
        ids.sort();
        ids
    }

    async fn hub_ids(&self) -> Vec<String> {
        let mut ids = export_ids(run("htx-hub", &["export", s(&self.hub_dir)]).await.ok());
        ids.sort();
        ids
    }

    async fn node_status(&self) -> serde_json::Value {
        let out = run(
            "htx-node",
            &["status", s(&self.node_dir), "--format", "json"],
        )
        .await;
        serde_json::from_str(out.ok()).expect("status JSON")
    }

    async fn hub_node_view(&self) -> serde_json::Value {
        let out = run("htx-hub", &["nodes", s(&self.hub_dir), "--format", "json"]).await;
        parse_export(out.ok()).remove(0)
    }

    async fn audit_events(&self) -> Vec<serde_json::Value> {
        let out = run("htx-hub", &["audit", s(&self.hub_dir)]).await;
        out.ok()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_restored_from_a_backup_gets_back_what_it_lost() {
    let mut site = Site::new().await;
    site.start_hub().await;
    let first = site.add("HTX Hạ Long").await;
    site.sync().await;

    // The administrator backs the hub up as the README says: stop, copy.
    site.stop_hub().await;
    let backup = site.root.path().join("hub-backup");
    copy_dir(&site.hub_dir, &backup);
    site.start_hub().await;

    // Edits made after the backup reach the hub...
    let second = site.add("HTX Trần Tế Xương").await;
    let third = site.add("HTX Lộc Hòa").await;
    site.sync().await;
    assert_eq!(site.hub_ids().await.len(), 3);

    // ...and the hub is restored from the backup: it has lost them.
    site.stop_hub().await;
    restore(&backup, &site.hub_dir);
    site.start_hub().await;
    assert_eq!(site.hub_ids().await, vec![first.clone()]);

    // One sync makes it whole again, by itself.
    let out = site.sync().await;
    assert!(!out.contains("sent 0 change"), "{out}");
    let all = sorted(vec![first, second, third]);
    assert_eq!(site.hub_ids().await, all);
    assert_eq!(site.node_ids().await, all);

    // Visible at the node (status) and the hub (audit, nodes).
    let status = site.node_status().await;
    assert!(
        status["recovered_changes"].as_u64().unwrap() >= 2,
        "{status}"
    );
    assert!(
        status["last_recovery"].as_str().unwrap().contains("lost"),
        "{status}"
    );
    assert_eq!(status["documents_not_at_hub"], 0, "{status}");
    let audit = site.audit_events().await;
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "hub_recovered" && e["node"] == "office-pc"),
        "{audit:#?}"
    );
    let view = site.hub_node_view().await;
    assert!(view["recovered_changes"].as_u64().unwrap() >= 2, "{view}");

    // And sync is quiet again afterwards.
    let out = site.sync().await;
    assert!(out.contains("sent 0 change"), "{out}");
    site.stop_hub().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_a_backup_gets_back_what_it_lost_and_writes_on() {
    let mut site = Site::new().await;
    site.start_hub().await;
    let first = site.add("HTX Hạ Long").await;
    site.sync().await;
    let backup = site.root.path().join("node-backup");
    copy_dir(&site.node_dir, &backup);

    let second = site.add("HTX Trần Tế Xương").await;
    site.sync().await;

    // The office PC is restored from the older backup.
    restore(&backup, &site.node_dir);
    assert_eq!(site.node_ids().await, vec![first.clone()]);
    site.sync().await;
    let both = sorted(vec![first.clone(), second.clone()]);
    assert_eq!(
        site.node_ids().await,
        both,
        "the hub gave the lost record back"
    );

    // The restored node writes on: its changes never clash with those of the
    // copy it replaced.
    let third = site.add("HTX Lộc Hòa").await;
    site.sync().await;
    let all = sorted(vec![first, second, third]);
    assert_eq!(site.hub_ids().await, all);
    assert_eq!(site.node_ids().await, all);

    let audit = site.audit_events().await;
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "node_recovered" && e["node"] == "office-pc"),
        "{audit:#?}"
    );
    let view = site.hub_node_view().await;
    assert!(view["recovered_changes"].as_u64().unwrap() >= 1, "{view}");
    assert!(
        view["last_recovery"]
            .as_str()
            .unwrap()
            .contains("office-pc"),
        "{view}"
    );
    site.stop_hub().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_store_was_replaced_gets_everything_back() {
    let mut site = Site::new().await;
    site.start_hub().await;
    let ids = sorted(vec![
        site.add("HTX Hạ Long").await,
        site.add("HTX Trần Tế Xương").await,
    ]);
    site.sync().await;

    // The office PC dies; a new one is set up with the same bundle.
    std::fs::remove_dir_all(&site.node_dir).unwrap();
    run(
        "htx-node",
        &["init", s(&site.node_dir), "--bundle", s(&site.bundle())],
    )
    .await
    .ok();
    assert!(site.node_ids().await.is_empty());
    site.sync().await;
    assert_eq!(site.node_ids().await, ids);
    let more = site.add("HTX Lộc Hòa").await;
    site.sync().await;
    assert!(site.hub_ids().await.contains(&more));
    site.stop_hub().await;
}

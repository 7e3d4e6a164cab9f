//! An import on a full disk says truthfully what was written, and the
//! same file imported again once there is room holds each row once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use htx_tests::{TestHub, parse_export, run, run_within};

/// Unmounts the small disk when the test ends, however it ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mounted, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(Mounted(dir.to_owned()))
}

async fn export(dir: &str) -> Vec<serde_json::Value> {
    parse_export(run("htx-node", &["export", dir]).await.ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_on_a_full_disk_tells_the_truth_and_a_retry_adds_each_row_once() {
    let hub = TestHub::create();
    let root = tempfile::TempDir::new().unwrap();
    let disk = root.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    // Room for the node directory and a part of the import (12,000 rows
    // of about 100 bytes each).
    let _mounted = match mount_tmpfs(&disk, "400k") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: cannot mount a tmpfs here (needs root): {e}");
            return;
        }
    };
    let dir = disk.join("node");
    let dir_s = dir.to_str().unwrap();
    hub.init_node_dir("356", "small-disk", &dir).await;

    const ROWS: usize = 12_000;
    let csv = root.path().join("cooperatives.csv");
    // Each row with a sector text of its own, so that the rows take about
    // half a megabyte however well the store compresses.
    let mut text = String::from("kind,type,name,unit,founded_on,sector\n");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..ROWS {
        let sector: String = (0..5)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{x:016x}")
            })
            .collect();
        text.push_str(&format!(
            "cooperative,HTX,Hợp tác xã số {i:05},13633,2020-01-15,{sector}\n"
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let args = ["import", dir_s, csv.to_str().unwrap()];
    let import = || run_within(Duration::from_secs(300), "htx-node", &args);

    let first = import().await;
    let stderr = first.failed().to_owned();
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // The claim is one of three, in both languages, and checked below
    // against what the store holds.
    enum Claim {
        Nothing,
        All,
        Unknown,
    }
    let claim = if stderr.contains("nothing was written") {
        assert!(stderr.contains("không ghi bản ghi nào"), "{stderr}");
        Claim::Nothing
    } else if stderr.contains("they were written") {
        assert!(stderr.contains("đã ghi đủ"), "{stderr}");
        Claim::All
    } else if stderr.contains("unknown whether") {
        assert!(stderr.contains("không rõ đã ghi hay chưa"), "{stderr}");
        Claim::Unknown
    } else {
        panic!("says neither written, not written nor unknown: {stderr}");
    };

    // Room again, as after deleting old files.
    let status = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(status.success(), "remount");
    let held = export(dir_s).await.len();
    match claim {
        Claim::Nothing => assert_eq!(held, 0, "said nothing was written"),
        Claim::All => assert_eq!(held, ROWS, "said all was written"),
        Claim::Unknown => {}
    }

    // Retried, and retried again: every row exactly once.
    for _ in 0..2 {
        let out = import().await;
        assert!(
            out.ok().contains(&format!("imported {ROWS} records")),
            "{out:?}"
        );
        let records = export(dir_s).await;
        assert_eq!(records.len(), ROWS, "each row once");
        let mut names: Vec<&str> = records
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ROWS, "no row twice");
    }
}

/// `n` cooperatives whose sector texts do not compress, as an import file.
fn big_import(path: &Path, n: usize, seed: u64) {
    let mut text = String::from("kind,type,name,unit,sector\n");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed;
    for i in 0..n {
        let sector: String = (0..5)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{x:016x}")
            })
            .collect();
        text.push_str(&format!(
            "cooperative,HTX,HTX {seed}-{i:05},13633,{sector}\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn du(dir: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    walk(dir)
}

/// The hub's disk fills up: merges are refused cleanly (the node keeps its
/// records and says why), the hub keeps serving what it holds, and once
/// there is room again the same node's next sync merges everything, with
/// no restart of the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_hub_refuses_merges_keeps_serving_and_recovers() {
    use htx_tests::{configure, export_ids, free_port, spawn, wait_for_api};
    let root = tempfile::TempDir::new().unwrap();
    let disk = root.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let _mounted = match mount_tmpfs(&disk, "64m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: cannot mount a tmpfs here (needs root): {e}");
            return;
        }
    };
    let hub_dir = disk.join("hub");
    let hub_s = hub_dir.to_str().unwrap();
    let port = free_port();
    let (listen, url) = (
        format!("127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}"),
    );
    run(
        "htx-hub",
        &["init", hub_s, "--listen", &listen, "--public-url", &url],
    )
    .await
    .ok();
    let node_dir = root.path().join("node");
    let node_s = node_dir.to_str().unwrap();
    let bundle = root.path().join("bundle.json");
    run(
        "htx-hub",
        &[
            "enroll",
            hub_s,
            "--unit",
            "356",
            "--name",
            "office",
            "--out",
            bundle.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    run(
        "htx-node",
        &["init", node_s, "--bundle", bundle.to_str().unwrap()],
    )
    .await
    .ok();
    // Long enough for the hub to check a big batch in a debug build, so
    // that the node hears the hub's answer rather than its own timeout.
    configure(&node_dir, |c| c.timeout_secs = 240);
    let log = root.path().join("hub.log");
    let mut hub = spawn("htx-hub", &["run", hub_s], &log);
    wait_for_api(&hub_dir.join("admin.addr"), Duration::from_secs(30)).await;

    // Some records reach the hub while there is room.
    let small = root.path().join("small.csv");
    big_import(&small, 20, 1);
    run("htx-node", &["import", node_s, small.to_str().unwrap()])
        .await
        .ok();
    run("htx-node", &["sync", node_s, "--once"]).await.ok();
    let hub_export = || async {
        export_ids(
            run("htx-hub", &["export", hub_s, "--format", "json"])
                .await
                .ok(),
        )
    };
    let before = hub_export().await;
    assert_eq!(before.len(), 20);

    // The disk is now nearly full: room for less than the next import.
    let used = du(&disk) / 1024;
    let status = Command::new("mount")
        .args(["-o", &format!("remount,size={}k", used + 200)])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(status.success(), "remount");
    let big = root.path().join("big.csv");
    big_import(&big, 3_000, 2);
    run_within(
        Duration::from_secs(300),
        "htx-node",
        &["import", node_s, big.to_str().unwrap()],
    )
    .await
    .ok();
    let refused = run("htx-node", &["sync", node_s, "--once"]).await;
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(!refused.status.success(), "the sync cannot succeed: {said}");
    assert!(
        said.contains("No space left on device"),
        "the node is told why: {said}"
    );
    // The hub is alive and serves what it held, unchanged.
    assert_eq!(hub_export().await, before, "the hub serves what it had");
    assert!(
        hub.child.try_wait().unwrap().is_none(),
        "the hub keeps running; its log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let status = run("htx-node", &["status", node_s, "--format", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(status.ok()).unwrap();
    let error = status["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(!error.is_empty(), "the node says the sync failed: {status}");
    assert!(error.contains("No space left on device"), "{error}");
    // The node still holds every record.
    assert_eq!(export(node_s).await.len(), 3_020);

    // Room again: the next sync merges everything, the hub not restarted.
    let status = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(status.success(), "remount");
    let again = run_within(
        Duration::from_secs(300),
        "htx-node",
        &["sync", node_s, "--once"],
    )
    .await;
    assert!(
        again.status.success(),
        "the sync after the disk has room again: {again:?}\nhub log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(hub_export().await.len(), 3_020, "every record merged");
    // And the hub's store opens again after a kill.
    hub.kill().await;
    let mut hub = spawn("htx-hub", &["run", hub_s], &log);
    wait_for_api(&hub_dir.join("admin.addr"), Duration::from_secs(30)).await;
    assert_eq!(
        hub_export().await.len(),
        3_020,
        "the store opens with every record"
    );
    hub.kill().await;
}

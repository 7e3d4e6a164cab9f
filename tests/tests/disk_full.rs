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

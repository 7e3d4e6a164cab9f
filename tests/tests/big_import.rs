//! An import far above one gRPC message (4 MiB) goes through a running
//! node as it does offline.

use std::time::Duration;

use htx_tests::{TestHub, run, run_within, spawn, wait_for_api};

/// A CSV of `rows` cooperatives of Thành phố Nam Định, no ids.
fn write_csv(path: &std::path::Path, rows: usize) {
    let mut text = String::from("kind,type,name,unit,founded_on,sector\n");
    for i in 0..rows {
        let unit = ["13633", "13636", "13639"][i % 3];
        text.push_str(&format!(
            "cooperative,HTX,Hợp tác xã nông nghiệp số {i:06} thôn Đông,{unit},2020-01-15,trồng lúa và chăn nuôi\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_goes_through_the_running_node() {
    // The hub is down: the node retries in the background, and records
    // offline as ever.
    let hub = TestHub::create();
    let root = tempfile::TempDir::new().unwrap();
    let dir = root.path().join("node");
    let dir_s = dir.to_str().unwrap();
    hub.init_node_dir("356", "big-import", &dir).await;

    const ROWS: usize = 120_000;
    let csv = root.path().join("cooperatives.csv");
    write_csv(&csv, ROWS);
    let size = std::fs::metadata(&csv).unwrap().len();
    assert!(
        size >= 8 << 20,
        "{size} bytes: at least 8 MiB, twice a message"
    );

    let mut node = spawn("htx-node", &["run", dir_s], &root.path().join("node.log"));
    wait_for_api(&dir.join("api.addr"), Duration::from_secs(20)).await;
    let out = run_within(
        Duration::from_secs(600),
        "htx-node",
        &["import", dir_s, csv.to_str().unwrap()],
    )
    .await;
    assert!(
        out.ok().contains(&format!("imported {ROWS} records")),
        "{out:?}"
    );

    let status = run("htx-node", &["status", dir_s, "--format", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(status.ok()).unwrap();
    assert_eq!(status["running"], true, "answered by the running node");
    assert_eq!(status["records"], ROWS as u64, "{status}");

    // A bad row anywhere in a large file: refused whole, named by its row.
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("cooperative,HTX,HTX Cuối,13633,2025-02-30,\n");
    let bad = root.path().join("bad.csv");
    std::fs::write(&bad, text).unwrap();
    let out = run_within(
        Duration::from_secs(600),
        "htx-node",
        &["import", dir_s, bad.to_str().unwrap()],
    )
    .await;
    let stderr = out.failed();
    assert!(
        stderr.contains(&format!("row {}:", ROWS + 1)) && stderr.contains("2025-02-30"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let status = run("htx-node", &["status", dir_s, "--format", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(status.ok()).unwrap();
    assert_eq!(status["records"], ROWS as u64, "nothing added: {status}");

    assert!(node.terminate().await.success());
}

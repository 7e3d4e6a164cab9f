//! An existing store that is missing, empty or unreadable is refused with a
//! clear error by the node and the hub, and nothing is created or changed;
//! only `init` creates a store.

use std::path::Path;

use htx_tests::{TestHub, run};

/// Damages `file` one way, runs `program args`, and checks the refusal
/// names the store, says what is wrong in both languages, and that the
/// directory holds exactly what it held.
async fn refused(program: &str, args: &[&str], dir: &Path, file: &Path, case: &str) {
    match case {
        "missing" => {
            let _ = std::fs::remove_file(file);
        }
        "empty" => std::fs::write(file, b"").unwrap(),
        _ => std::fs::write(file, b"\x00garbage from a bad restore\xff".repeat(300)).unwrap(),
    }
    let listing = |d: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before_files = listing(dir);
    let before_bytes = std::fs::read(file).ok();
    let out = run(program, args).await;
    let err = out.failed();
    let expected = match case {
        "missing" => "a store is created only by `init`",
        _ => "is empty or unreadable",
    };
    assert!(err.contains(expected), "{program} {case}: {err}");
    assert!(
        err.contains("store.redb"),
        "{program} {case}: names the file: {err}"
    );
    assert!(
        err.contains("kho dữ liệu"),
        "{program} {case}: Vietnamese: {err}"
    );
    assert_eq!(
        listing(dir),
        before_files,
        "{program} {case}: nothing created"
    );
    assert_eq!(
        std::fs::read(file).ok(),
        before_bytes,
        "{program} {case}: the store file is left as it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_missing_or_damaged_store_is_refused_and_only_init_creates_one() {
    let hub = TestHub::create();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle.json");
    hub.write_bundle("356", "node-356", &bundle);
    let node_dir = tmp.path().join("node");
    let node = node_dir.to_str().unwrap();
    run(
        "htx-node",
        &["init", node, "--bundle", bundle.to_str().unwrap()],
    )
    .await
    .ok();
    run("htx-node", &["export", node]).await.ok();
    let node_store = node_dir.join("store.redb");

    for case in ["empty", "garbage", "missing"] {
        refused("htx-node", &["export", node], &node_dir, &node_store, case).await;
        refused("htx-node", &["status", node], &node_dir, &node_store, case).await;
    }
    // `init` on a directory whose store is damaged refuses too, rather than
    // making a new empty store over it.
    std::fs::write(&node_store, b"").unwrap();
    let err = run(
        "htx-node",
        &["init", node, "--bundle", bundle.to_str().unwrap()],
    )
    .await;
    assert!(err.failed().contains("is empty or unreadable"), "{err:?}");
    assert_eq!(std::fs::read(&node_store).unwrap(), b"");

    let hub_dir = hub.dir().to_owned();
    let hub_path = hub_dir.to_str().unwrap();
    let hub_store = hub_dir.join("store.redb");
    run("htx-hub", &["nodes", hub_path]).await.ok();
    for case in ["empty", "garbage", "missing"] {
        refused("htx-hub", &["nodes", hub_path], &hub_dir, &hub_store, case).await;
        refused("htx-hub", &["export", hub_path], &hub_dir, &hub_store, case).await;
    }

    // `init` still makes working homes from nothing.
    let fresh_hub = tmp.path().join("fresh-hub");
    run("htx-hub", &["init", fresh_hub.to_str().unwrap()])
        .await
        .ok();
    assert!(fresh_hub.join("store.redb").exists());
    let out = run("htx-hub", &["export", fresh_hub.to_str().unwrap()]).await;
    out.ok();
    let fresh_node = tmp.path().join("fresh-node");
    run(
        "htx-node",
        &[
            "init",
            fresh_node.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    let out = run("htx-node", &["export", fresh_node.to_str().unwrap()]).await;
    assert_eq!(out.ok().trim(), "[]");
}

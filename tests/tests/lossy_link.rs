//! A small district's initial sync over the slow, lossy link of
//! `htx_tests::link` (50 kbit/s, 500 ms each way, 5% loss), with the real
//! binaries in two network namespaces: every record reaches the hub.
//! Needs root and `/dev/net/tun`; skipped with the reason otherwise. The
//! long run (a whole district, catch-ups, cuts, flapping) is the
//! `lossy_link` example (RELIABILITY.md).

use std::path::Path;
use std::time::Duration;

use htx_core::schema::record_from_strings;
use htx_core::units::Hierarchy;
use htx_node::node::Node;
use htx_tests::link::{LinkSpec, LossyLink};
use htx_tests::{bin, export_ids, run};

const PORT: u16 = 7443;

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_district_syncs_whole_over_a_slow_lossy_link() {
    if !Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: no /dev/net/tun here");
        return;
    }
    // Unique per process: namespaces are the machine's, not this test's.
    let tag = format!("t{}", std::process::id() % 1_000_000);
    let link = match LossyLink::start(
        &tag,
        LinkSpec {
            rate_bps: 50_000,
            delay: Duration::from_millis(500),
            loss: 0.05,
            queue_bytes: 64 * 1024,
        },
        13,
    ) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("skipped: cannot make the namespaces and TUN link (needs root): {e}");
            return;
        }
    };

    let root = tempfile::TempDir::new().unwrap();
    let hub_dir = root.path().join("hub");
    let url = format!("https://{}:{PORT}", LossyLink::B_ADDR);
    run(
        "htx-hub",
        &[
            "init",
            &s(&hub_dir),
            "--listen",
            &format!("0.0.0.0:{PORT}"),
            "--public-url",
            &url,
            "--server-name",
            LossyLink::B_ADDR,
        ],
    )
    .await
    .ok();
    let bundle = root.path().join("hai-hau.json");
    run(
        "htx-hub",
        &[
            "enroll",
            &s(&hub_dir),
            "--unit",
            "366",
            "--name",
            "hai-hau",
            "--out",
            &s(&bundle),
        ],
    )
    .await
    .ok();
    let node_dir = root.path().join("hai-hau");
    run(
        "htx-node",
        &["init", &s(&node_dir), "--bundle", &s(&bundle)],
    )
    .await
    .ok();

    // 3 communes x 10 cooperatives.
    let v = Hierarchy::builtin().version("2023").unwrap();
    let mut ids = Vec::new();
    {
        let node = Node::open(&node_dir).unwrap();
        for c in v.children("366").take(3) {
            let recs: Vec<_> = (0..10)
                .map(|k| {
                    record_from_strings(
                        "cooperative",
                        [
                            ("type", "HTX"),
                            ("name", format!("HTX {}-{k}", c.code).as_str()),
                            ("unit", c.code.as_str()),
                            ("founded_on", "2023-05-01"),
                        ],
                    )
                    .unwrap()
                })
                .collect();
            ids.extend(node.write(recs).unwrap());
        }
    }

    let log = std::fs::File::create(root.path().join("hub.log")).unwrap();
    let mut hub = LossyLink::command(&link.b, &bin("htx-hub"))
        .args(["run", &s(&hub_dir)])
        .stderr(log)
        .spawn()
        .unwrap();
    let mut waited = 0;
    while !hub_dir.join("admin.addr").exists() {
        assert!(waited < 600, "the hub did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }

    // `--once` runs until the node and the hub agree, or fails.
    let out = LossyLink::command(&link.a, &bin("htx-node"))
        .args(["sync", &s(&node_dir), "--once"])
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sync over the lossy link: {text}");
    let (to_hub, _) = link.delivered();
    assert!(to_hub > 0, "the bytes went over the emulated link");

    let export = LossyLink::command(&link.b, &bin("htx-hub"))
        .args(["export", &s(&hub_dir)])
        .output()
        .await
        .unwrap();
    assert!(export.status.success());
    let mut at_hub = export_ids(&String::from_utf8_lossy(&export.stdout));
    at_hub.sort();
    ids.sort();
    assert_eq!(at_hub, ids, "every record reached the hub");
    let _ = hub.kill().await;
}

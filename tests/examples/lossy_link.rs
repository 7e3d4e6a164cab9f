//! Real processes over a slow, lossy link (issue 13, item 2), against the
//! same work over a clean one: the node in one network namespace, the hub
//! in another, joined by the userspace link of `htx_tests::link`
//! (50 kbit/s, 500 ms each way, 5% packet loss, the kernel's own TCP).
//!
//! `sudo cargo run --release -p htx-tests --example lossy_link [-- EDITS]`
//! (root: network namespaces and TUN devices; EDITS default 2,000;
//! `NODE_TIMEOUT_SECS=120` sets the nodes' `timeout_secs`).
//!
//! 1. A district's initial sync: 30 communes x 50 records. Goal < 2 min.
//! 2. A catch-up after EDITS offline edits.
//! 3. The same catch-up cut in the middle (the link down for 15 s): it
//!    resumes, and what it sends again is counted against the uncut one.
//! 4. A catch-up over a link that flaps (down 2 s in every 6 s).
//!
//! Throughout, another node, on the hub's side of the link, syncs again and
//! again: the hub must keep answering it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use htx_core::schema::record_from_strings;
use htx_core::units::Hierarchy;
use htx_node::node::Node;
use htx_tests::link::{LinkSpec, LossyLink};
use htx_tests::{bin, run};

const PORT: u16 = 7443;

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

const LOSSY: LinkSpec = LinkSpec {
    rate_bps: 50_000,
    delay: Duration::from_millis(500),
    loss: 0.05,
    queue_bytes: 64 * 1024,
};

/// Runs `htx-node sync DIR --once` in namespace `ns`; (succeeded, time, stdout).
async fn sync(ns: &str, dir: &Path) -> (bool, Duration, String) {
    let t = Instant::now();
    let out = LossyLink::command(ns, &bin("htx-node"))
        .args(["sync", &s(dir), "--once"])
        .output()
        .await
        .expect("run htx-node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    (out.status.success(), t.elapsed(), text)
}

/// Syncs until it succeeds; (time, attempts).
async fn sync_until_done(ns: &str, dir: &Path) -> (Duration, u32) {
    let t = Instant::now();
    for attempt in 1..=60 {
        let (ok, _, text) = sync(ns, dir).await;
        if ok {
            return (t.elapsed(), attempt);
        }
        eprintln!("  attempt {attempt} failed: {text}");
    }
    panic!("no sync succeeded in 60 attempts");
}

/// Edits of existing cooperatives, one write (one change) each.
fn offline_edits(dir: &Path, ids: &[String], n: usize, round: usize) {
    let node = Node::open(dir).expect("open node");
    for k in 0..n {
        let mut r = record_from_strings(
            "cooperative",
            [("sector", format!("ngành {round}-{k}").as_str())],
        )
        .expect("valid");
        r.id = ids[k % ids.len()].clone();
        node.write(vec![r]).expect("edit");
    }
}

struct Hub {
    child: tokio::process::Child,
}

async fn start_hub(ns: &str, dir: &Path) -> Hub {
    let _ = std::fs::remove_file(dir.join("admin.addr"));
    let log = std::fs::File::create(dir.with_extension("log")).expect("log");
    let child = LossyLink::command(ns, &bin("htx-hub"))
        .args(["run", &s(dir)])
        .env("RUST_LOG", "warn")
        .stderr(log)
        .spawn()
        .expect("start hub");
    let t = Instant::now();
    while !dir.join("admin.addr").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the hub did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Hub { child }
}

/// Another node, next to the hub, syncing over and over until `stop`;
/// returns the slowest and the number of its sessions.
fn keep_syncing(
    ns: String,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Duration, u32, u32)> {
    tokio::spawn(async move {
        let (mut worst, mut n, mut failed) = (Duration::ZERO, 0, 0);
        while !stop.load(Ordering::Relaxed) {
            let (ok, t, text) = sync(&ns, &dir).await;
            if !ok && failed == 0 {
                eprintln!("  the other node's sync failed: {text}");
            }
            worst = worst.max(t);
            n += 1;
            failed += (!ok) as u32;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (worst, n, failed)
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let edits: usize = std::env::args()
        .nth(1)
        .map_or(2000, |a| a.parse().expect("EDITS"));
    let root = tempfile::TempDir::new().expect("temp dir");
    let hub_dir = root.path().join("hub");
    let listen = format!("0.0.0.0:{PORT}");
    let url = format!("https://{}:{PORT}", LossyLink::B_ADDR);
    run(
        "htx-hub",
        &[
            "init",
            &s(&hub_dir),
            "--listen",
            &listen,
            "--public-url",
            &url,
            "--server-name",
            LossyLink::B_ADDR,
            "--server-name",
            "127.0.0.1",
        ],
    )
    .await
    .ok();
    let mut dirs = Vec::new();
    for (unit, name) in [("366", "hai-hau"), ("356", "nam-dinh")] {
        let bundle = root.path().join(format!("{name}.json"));
        run(
            "htx-hub",
            &[
                "enroll",
                &s(&hub_dir),
                "--unit",
                unit,
                "--name",
                name,
                "--out",
                &s(&bundle),
            ],
        )
        .await
        .ok();
        let dir = root.path().join(name);
        run("htx-node", &["init", &s(&dir), "--bundle", &s(&bundle)])
            .await
            .ok();
        // At 50 kbit/s one batch of 256 KB (about 60 KB on the wire) takes
        // 10 s or more before the hub can check it and answer: the default
        // 20 s per message can be too short there (`timeout_secs`).
        if let Some(t) = std::env::var("NODE_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            htx_tests::configure(&dir, |c| c.timeout_secs = t);
        }
        dirs.push(dir);
    }
    let (district, other) = (dirs[0].clone(), dirs[1].clone());

    // 30 communes x 50 records: 20 cooperatives, 20 observations, 10 managers.
    let v = Hierarchy::builtin().version("2023").expect("2023");
    let communes: Vec<String> = v.children("366").take(30).map(|u| u.code.clone()).collect();
    let mut coop_ids = Vec::new();
    {
        let node = Node::open(&district).expect("open");
        for c in &communes {
            let mut recs = Vec::new();
            for k in 0..20 {
                let mut coop = record_from_strings(
                    "cooperative",
                    [
                        ("type", "HTX"),
                        ("name", format!("HTX {c}-{k}").as_str()),
                        ("unit", c.as_str()),
                        ("founded_on", "2023-05-01"),
                    ],
                )
                .expect("coop");
                coop.id = htx_core::schema::new_id();
                coop_ids.push(coop.id.clone());
                let obs = record_from_strings(
                    "observation",
                    [
                        ("cooperative", coop.id.as_str()),
                        ("observed_on", "2025-06-30"),
                        ("workers", "12"),
                        ("female_workers", "7"),
                    ],
                )
                .expect("obs");
                recs.push(coop.clone());
                recs.push(obs);
                if k < 10 {
                    recs.push(
                        record_from_strings(
                            "manager",
                            [
                                ("cooperative", coop.id.as_str()),
                                ("name", "Nguyễn Thị Hoa"),
                                ("gender", "female"),
                                ("role", "chair"),
                            ],
                        )
                        .expect("manager"),
                    );
                }
            }
            node.write(recs).expect("write a commune");
        }
    }
    let hub_fresh = root.path().join("hub-fresh");
    let district_fresh = root.path().join("district-fresh");
    for (from, to) in [(&hub_dir, &hub_fresh), (&district, &district_fresh)] {
        let ok = std::process::Command::new("cp")
            .args(["-a", &s(from), &s(to)])
            .status()
            .expect("cp");
        assert!(ok.success());
    }
    let mut rows: Vec<String> = Vec::new();
    let mut line = |what: &str, clean: &str, lossy: &str| {
        println!("| {what} | {clean} | {lossy} |");
        rows.push(format!("| {what} | {clean} | {lossy} |"));
    };

    // 1. The initial sync, clean then lossy, each from the same copies.
    let mut initial = Vec::new();
    for (tag, spec, hub_home, node_home) in [
        ("c", LinkSpec::CLEAN, &hub_fresh, &district_fresh),
        ("l", LOSSY, &hub_dir, &district),
    ] {
        let link = LossyLink::start(tag, spec, 1).expect("link (run as root)");
        let mut hub = start_hub(&link.b, hub_home).await;
        let stop = Arc::new(AtomicBool::new(false));
        let bystander = keep_syncing(link.b.clone(), other.clone(), stop.clone());
        let (ok, t, text) = sync(&link.a, node_home).await;
        stop.store(true, Ordering::Relaxed);
        let (worst, n, failed) = bystander.await.expect("bystander");
        assert!(ok, "initial sync failed: {text}");
        eprintln!(
            "initial sync ({tag}): {t:?}, {text}; link {:?}, drops {:?}; other node: {n} sessions, {failed} failed, slowest {worst:?}",
            link.delivered(),
            link.drops()
        );
        initial.push((t, link.delivered(), link.drops(), worst, n, failed));
        let _ = hub.child.kill().await;
        if tag == "c" {
            drop(link);
        } else {
            // 2-4 run on the lossy link; its hub keeps running.
            println!("| | clean link | 50 kbit/s, 500 ms each way, 5% loss |\n|---|---|---|");
            let (c, l) = (&initial[0], &initial[1]);
            line(
                "initial sync, 30 communes x 50 records: time",
                &format!("{:.1} s", c.0.as_secs_f64()),
                &format!("{:.1} s", l.0.as_secs_f64()),
            );
            line(
                "  IP bytes node→hub / hub→node",
                &format!("{} / {}", c.1.0, c.1.1),
                &format!("{} / {}", l.1.0, l.1.1),
            );
            line(
                "  packets lost / retransmitted by TCP",
                "0",
                &format!("{} lost at random, {} by the full queue", l.2.0, l.2.1),
            );
            line(
                "  other node meanwhile: sessions, failed, slowest",
                &format!("{}, {}, {:.2} s", c.4, c.5, c.3.as_secs_f64()),
                &format!("{}, {}, {:.2} s", l.4, l.5, l.3.as_secs_f64()),
            );
            let mut hub = start_hub(&link.b, &hub_dir).await;

            // 2. Catch-up after offline edits: clean, then lossy.
            let mut catch = Vec::new();
            for (round, spec) in [(1, LinkSpec::CLEAN), (2, LOSSY)] {
                offline_edits(&district, &coop_ids, edits, round);
                link.set_spec(spec);
                let before = link.delivered();
                let (ok, t, text) = sync(&link.a, &district).await;
                assert!(ok, "catch-up failed: {text}");
                let after = link.delivered();
                eprintln!("catch-up {round}: {t:?} {text}");
                catch.push((t, after.0 - before.0, after.1 - before.1));
            }
            line(
                &format!("catch-up after {edits} offline edits: time"),
                &format!("{:.1} s", catch[0].0.as_secs_f64()),
                &format!("{:.1} s", catch[1].0.as_secs_f64()),
            );
            line(
                "  IP bytes node→hub / hub→node",
                &format!("{} / {}", catch[0].1, catch[0].2),
                &format!("{} / {}", catch[1].1, catch[1].2),
            );

            // 3. The same catch-up, cut when about half has gone through.
            offline_edits(&district, &coop_ids, edits, 3);
            let before = link.delivered();
            let t = Instant::now();
            let dir = district.clone();
            let ns = link.a.clone();
            let first = tokio::spawn(async move { sync(&ns, &dir).await });
            while link.delivered().0 - before.0 < catch[1].1 / 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            link.set_down(true);
            let cut_at = link.delivered().0 - before.0;
            let (first_ok, _, first_text) = first.await.expect("first");
            tokio::time::sleep(
                Duration::from_secs(15).saturating_sub(t.elapsed().min(Duration::from_secs(15))),
            )
            .await;
            link.set_down(false);
            let (resumed, attempts) = sync_until_done(&link.a, &district).await;
            let total = link.delivered().0 - before.0;
            eprintln!(
                "cut catch-up: first session {first_ok} ({first_text}), cut after {cut_at} B, resumed in {resumed:?} ({attempts} attempt(s))"
            );
            line(
                "catch-up cut half-way (link down until the session fails, then 15 s in all): IP bytes node→hub, both sessions",
                &format!("uncut: {}", catch[1].1),
                &format!(
                    "{total} (cut after {cut_at}); sent again: {} B",
                    total.saturating_sub(catch[1].1)
                ),
            );
            line(
                "  time from the cut's end to in sync",
                "",
                &format!("{:.1} s, {attempts} attempt(s)", resumed.as_secs_f64()),
            );

            // 4. A catch-up over a link that flaps.
            offline_edits(&district, &coop_ids, edits, 4);
            let flapping = Arc::new(AtomicBool::new(true));
            let flap = {
                let flapping = flapping.clone();
                let down = Arc::new(link_switch(&link));
                tokio::spawn(async move {
                    while flapping.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_secs(4)).await;
                        down(true);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        down(false);
                    }
                })
            };
            let before = link.delivered();
            let (t, attempts) = sync_until_done(&link.a, &district).await;
            flapping.store(false, Ordering::Relaxed);
            let _ = flap.await;
            link.set_down(false);
            let after = link.delivered();
            line(
                "catch-up over a link down 2 s in every 6 s: time, attempts, IP bytes node→hub",
                "",
                &format!(
                    "{:.1} s, {attempts}, {}",
                    t.as_secs_f64(),
                    after.0 - before.0
                ),
            );
            let _ = hub.child.kill().await;
        }
    }
    println!("\n{}", rows.join("\n"));
}

/// A handle that cuts or restores `link` from another task.
fn link_switch(link: &LossyLink) -> impl Fn(bool) + Send + Sync + 'static {
    let down = link.down_handle();
    move |d| down.store(d, Ordering::Relaxed)
}

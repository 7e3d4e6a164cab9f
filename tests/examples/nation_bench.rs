//! A country's worth of nodes against one hub (issue 8, item 6): 3,500
//! commune nodes over real mutual TLS, in steady state and in a reconnect
//! storm after the hub is killed.
//!
//! The hub is the real `htx-hub run` (release), given a tree of a
//! country's size as its unit lists (`units_dir`): DISTRICTS districts of
//! 10 communes under one root, RECORDS cooperatives per commune written
//! into its store. One node per commune is enrolled (its own certificate);
//! the nodes are opened in this process, each only while it syncs (a
//! redb store per node on disk), and sync over a new connection each time
//! (`sync_once`: TCP + TLS + the session, the heavier case; `htx-node run`
//! keeps its link warm). In order:
//! 1. the baseline: one node syncing alone, 20 times (nothing else runs);
//! 2. the initial load: every node's first sync (its commune's document),
//!    100 at a time;
//! 3. MINUTES minutes of steady state: every node syncs once a minute, at
//!    its own second of the minute, one in ten after recording a
//!    cooperative;
//! 4. the same MINUTES on warm links: each node keeps its connection
//!    between sessions, as `htx-node run` does, so the hub holds 3,500
//!    open HTTP/2 connections (the first minute opens them);
//! 5. the reconnect storm: the hub is SIGKILLed and started again, and
//!    every node syncs at once (at most 1,000 sessions in flight; a failed
//!    one tries again 1–3 s later, as a node backs off) until all are in
//!    sync.
//!
//! Printed: the hub's RSS (peak), CPU seconds and sync latency p50/p99 at
//! each step, and failures. Every node must end in sync as the hub counts it.
//!
//! `cargo run --release -p htx-tests --example nation_bench [-- DISTRICTS RECORDS MINUTES]`
//! (defaults: 350 20 3: 3,500 nodes, 70,000 records).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use htx_core::units::{Hierarchy, Level};
use htx_hub::config::HubConfig;
use htx_hub::home::Home;
use htx_node::sync_client::Link;
use htx_tests::bench::{
    cpu_secs, enroll_nodes, percentile_ms, rss_mb, sync_all, sync_node, sync_node_on,
    write_hub_store,
};
use htx_tests::{coop, free_port, init_crypto, run, spawn, wait_for_api, write_synthetic_units};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

struct Step {
    what: String,
    rss: f64,
    peak: f64,
    cpu: f64,
    note: String,
}

fn step(pid: u32, what: &str, note: String, steps: &mut Vec<Step>) {
    let (rss, peak) = rss_mb(pid);
    let s = Step {
        what: what.to_owned(),
        rss,
        peak,
        cpu: cpu_secs(pid),
        note,
    };
    eprintln!(
        "{}: RSS {:.0} MB (peak {:.0}), CPU {:.1} s; {}",
        s.what, s.rss, s.peak, s.cpu, s.note
    );
    steps.push(s);
}

fn summary(took: &mut [Duration], failed: usize, elapsed: Duration) -> String {
    took.sort();
    format!(
        "{} syncs, {failed} failed, in {:.1} s; p50 {:.0} ms, p99 {:.0} ms",
        took.len(),
        elapsed.as_secs_f64(),
        percentile_ms(took, 0.5),
        percentile_ms(took, 0.99)
    )
}

/// Sets up the hub home at `dir` over the synthetic lists, its store, and
/// one node per commune under `nodes/`.
fn build(dir: &Path, nodes: &Path, districts: usize, records: usize) -> Vec<String> {
    write_synthetic_units(
        &dir.join("units"),
        "36",
        "Cả nước (tổng hợp)",
        districts,
        10,
    );
    let port = free_port();
    let cfg = HubConfig {
        listen: format!("127.0.0.1:{port}"),
        public_url: format!("https://127.0.0.1:{port}"),
        server_names: vec!["localhost".into(), "127.0.0.1".into()],
        units_dir: "units".into(),
        ..Default::default()
    };
    let home = Home::new(dir);
    home.init(&cfg).expect("hub init");
    // Loading the configuration installs the lists in this process too.
    let cfg = HubConfig::load(dir).expect("hub config");
    let v = Hierarchy::current().version("2023").unwrap();
    let communes: Vec<String> = v
        .units()
        .filter(|u| u.level == Level::Commune)
        .map(|u| u.code.clone())
        .collect();
    let t = Instant::now();
    write_hub_store(dir, &communes, records, |c, n| {
        coop(c, &format!("HTX {c} số {n}"))
    });
    eprintln!(
        "{} communes × {records} records written in {:.1} s",
        communes.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    enroll_nodes(&home, &cfg, &communes, nodes);
    eprintln!(
        "{} nodes enrolled in {:.1} s",
        communes.len(),
        t.elapsed().as_secs_f64()
    );
    communes
}

/// A node's kept link, when it keeps one.
type Slot = Option<Arc<tokio::sync::Mutex<Option<Link>>>>;

/// One minute of steady state: every node syncs once, node `i` at its own
/// moment of the minute (on its kept link when `links[i]` holds one), one
/// in ten after recording a cooperative. The latencies and failures.
async fn minute_of_syncs(
    communes: &[String],
    dirs: &[PathBuf],
    links: &[Slot],
    minute: usize,
) -> String {
    let slot = Duration::from_secs(60).div_f64(communes.len() as f64);
    let start = tokio::time::Instant::now();
    let t = Instant::now();
    let mut set = JoinSet::new();
    for (i, c) in communes.iter().enumerate() {
        let at = start + slot * i as u32;
        let (dir, write) = (dirs[i].clone(), (i % 10 == minute % 10).then(|| c.clone()));
        let link = links[i].clone();
        set.spawn(async move {
            tokio::time::sleep_until(at).await;
            match link {
                Some(link) => sync_node_on(dir, write, &mut *link.lock().await).await,
                None => sync_node(dir, write).await,
            }
        });
    }
    let (mut took, mut failed) = (Vec::new(), 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(d) => took.push(d),
            Err(e) => {
                eprintln!("a steady sync failed: {e}");
                failed += 1;
            }
        }
    }
    summary(&mut took, failed, t.elapsed())
}

#[tokio::main]
async fn main() {
    init_crypto();
    let (districts, records, minutes) = (arg(1, 350), arg(2, 20), arg(3, 3));
    htx_tests::bin("htx-hub");
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().join("hub");
    let nodes = work.path().join("nodes");
    let communes = build(&dir, &nodes, districts, records);
    let n = communes.len();
    let node_dir = |c: &str| nodes.join(format!("xa-{c}"));
    let hub_path = dir.to_str().unwrap().to_owned();
    let log = work.path().join("hub.log");
    let mut hub = spawn("htx-hub", &["run", &hub_path], &log);
    wait_for_api(&dir.join("admin.addr"), Duration::from_secs(600)).await;
    let mut pid = hub.child.id().expect("running");
    let mut steps = Vec::new();
    step(pid, "started", String::new(), &mut steps);

    // 1. The baseline: one node alone.
    let mut took = Vec::new();
    let t = Instant::now();
    for _ in 0..20 {
        took.push(sync_node(node_dir(&communes[0]), None).await.unwrap());
    }
    let note = summary(&mut took, 0, t.elapsed());
    step(pid, "baseline: one node syncing alone", note, &mut steps);

    // 2. The initial load.
    let t = Instant::now();
    let (mut took, failed) = sync_all(
        communes.iter().map(|c| node_dir(c)).collect::<Vec<_>>(),
        100,
    )
    .await;
    failed
        .iter()
        .for_each(|e| eprintln!("a first sync failed: {e}"));
    let failed = failed.len();
    let note = summary(&mut took, failed, t.elapsed());
    step(
        pid,
        "initial load: every node's first sync",
        note,
        &mut steps,
    );

    // 3. Steady state: every node once a minute, spread over the minute,
    // on a new connection each session.
    let dirs: Vec<PathBuf> = communes.iter().map(|c| node_dir(c)).collect();
    let cold: Vec<Slot> = (0..n).map(|_| None).collect();
    for minute in 1..=minutes {
        let note = minute_of_syncs(&communes, &dirs, &cold, minute).await;
        let what = format!("steady state, minute {minute}");
        step(pid, &what, note, &mut steps);
    }

    // 4. The same on warm links: each node keeps its connection between
    // sessions (HTTP/2, as `htx-node run` does), so the hub holds one open
    // connection per node. The first minute opens them.
    let warm: Vec<Slot> = (0..n).map(|_| Some(Arc::default())).collect();
    for minute in 1..=minutes {
        let mut note = minute_of_syncs(&communes, &dirs, &warm, minute).await;
        let mut open = 0;
        for l in warm.iter().flatten() {
            open += usize::from(l.lock().await.is_some());
        }
        note.push_str(&format!("; {open} links open"));
        let what = match minute {
            1 => "warm links, minute 1 (each link opened)".to_owned(),
            m => format!("warm links, minute {m}"),
        };
        step(pid, &what, note, &mut steps);
    }
    drop(warm);

    // 5. The reconnect storm.
    hub.kill().await;
    let admin = dir.join("admin.addr");
    let _ = std::fs::remove_file(&admin);
    let t = Instant::now();
    let mut hub = spawn("htx-hub", &["run", &hub_path], &log.with_extension("2.log"));
    wait_for_api(&admin, Duration::from_secs(600)).await;
    pid = hub.child.id().expect("running");
    let ready = t.elapsed();
    let gate = Arc::new(Semaphore::new(1000));
    let mut set = JoinSet::new();
    for (i, c) in communes.iter().enumerate() {
        let (dir, gate) = (node_dir(c), gate.clone());
        set.spawn(async move {
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let permit = gate.acquire().await.unwrap();
                let r = sync_node(dir.clone(), None).await;
                drop(permit);
                match r {
                    Ok(d) => return (d, attempts - 1),
                    Err(_) => {
                        let jitter = 1000 + (i as u64 * 7919 + attempts as u64 * 104_729) % 2000;
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                    }
                }
            }
        });
    }
    let (mut took, mut retried) = (Vec::new(), 0);
    while let Some(r) = set.join_next().await {
        let (d, again) = r.unwrap();
        took.push(d);
        retried += again as usize;
    }
    let note = format!(
        "hub ready {:.1} s after start; {}; {retried} attempts failed and were tried again",
        ready.as_secs_f64(),
        summary(&mut took, 0, t.elapsed())
    );
    step(pid, "reconnect storm after SIGKILL", note, &mut steps);

    // Every node in sync, as the hub counts it.
    let out = run("htx-hub", &["nodes", &hub_path, "--format", "json"]).await;
    let listed: serde_json::Value = serde_json::from_str(out.ok()).expect("nodes json");
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), n);
    let behind = listed.iter().filter(|x| x["documents_behind"] != 0).count();
    assert_eq!(behind, 0, "nodes left behind");
    hub.terminate().await;

    println!(
        "\n{n} nodes (communes) × {records} records = {} records; {minutes} minutes of steady state\n",
        n * records
    );
    println!("| step | hub RSS, MB (peak) | hub CPU s (so far) | syncs |");
    println!("|---|---:|---:|---|");
    for s in &steps {
        println!(
            "| {} | {:.0} ({:.0}) | {:.1} | {} |",
            s.what, s.rss, s.peak, s.cpu, s.note
        );
    }
}

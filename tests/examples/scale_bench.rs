//! The hub's memory at a province's scale (issue 8, item 1): documents
//! loaded on first use and dropped when cold, against every document
//! loaded at start and kept (the hub before), in the same run.
//!
//! A province of COMMUNES communes × RECORDS cooperatives is written once
//! into a hub store (one document per commune, every record indexed), and
//! one node is enrolled per commune. Then, for each setting, on a fresh
//! copy of that hub and of those nodes: the real `htx-hub run` (release)
//! is started, and the nodes, opened in this process, sync with it over
//! mutual TLS on loopback:
//! 1. the initial load: every node's first sync, which downloads its
//!    commune's document (CONCURRENT at a time);
//! 2. queries: progress as of another date, under another hierarchy
//!    version (both from the record index), and the live view;
//! 3. ROUNDS rounds of CONCURRENT concurrent one-change syncs (a node
//!    records one cooperative, then syncs).
//!
//! The hub's RSS (`VmRSS`), its peak (`VmHWM`) and its CPU time are read
//! from `/proc` at each step; every sync must succeed, and at the end the
//! hub must count every node in sync.
//!
//! `cargo run --release -p htx-tests --example scale_bench [-- COMMUNES RECORDS ROUNDS CONCURRENT]`
//! (defaults: 226 1000 100 40, the whole province of Nam Định). With
//! `SCALE_BENCH_BASELINE_HUB=PATH`, the baseline is that older build of
//! `htx-hub` (its defaults) instead of this one with every document kept.

use std::path::Path;
use std::time::{Duration, Instant};

use htx_hub::config::HubConfig;
use htx_tests::bench::{
    copy_dir, copy_hub_home, cpu_secs, enroll_nodes, percentile_ms, rss_mb, sync_all, sync_node,
    write_province,
};
use htx_tests::{free_port, init_crypto, run, spawn_env, wait_for_api};
use tokio::task::JoinSet;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

/// Writes the province into the hub store at `dir` and enrolls one node per
/// commune under `nodes/`.
fn build(dir: &Path, nodes: &Path, communes: &[String], records: usize, port: u16) {
    let (home, cfg) = write_province(dir, communes, records, port);
    let t = Instant::now();
    enroll_nodes(&home, &cfg, communes, nodes);
    eprintln!(
        "{} nodes enrolled in {:.1} s",
        communes.len(),
        t.elapsed().as_secs_f64()
    );
}

struct Row {
    moment: String,
    rss: f64,
    peak: f64,
    cpu: f64,
    note: String,
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    label: &str,
    program: &str,
    env: &[(&str, &str)],
    pristine: &Path,
    pristine_nodes: &Path,
    work: &Path,
    communes: &[String],
    rounds: usize,
    concurrent: usize,
) -> (Vec<Row>, usize) {
    let dir = work.join(format!("hub-{label}"));
    let nodes = work.join(format!("nodes-{label}"));
    copy_hub_home(pristine, &dir, program);
    copy_dir(pristine_nodes, &nodes);
    let hub_path = dir.to_str().unwrap().to_owned();
    let t = Instant::now();
    let mut hub = spawn_env(
        program,
        &["run", &hub_path],
        &work.join(format!("hub-{label}.log")),
        env,
    );
    wait_for_api(&dir.join("admin.addr"), Duration::from_secs(600)).await;
    let pid = hub.child.id().expect("running");
    let mut rows = Vec::new();
    let mut row = |moment: &str, note: String| {
        let (rss, peak) = rss_mb(pid);
        let row = Row {
            moment: moment.to_owned(),
            rss,
            peak,
            cpu: cpu_secs(pid),
            note,
        };
        eprintln!(
            "[{label}] {}: RSS {:.0} MB (peak {:.0} MB), CPU {:.1} s; {}",
            row.moment, row.rss, row.peak, row.cpu, row.note
        );
        rows.push(row);
    };
    row(
        "started",
        format!("ready {:.1} s after start", t.elapsed().as_secs_f64()),
    );

    // 1. The initial load: every node's first sync.
    let node_dir = |c: &String| nodes.join(format!("xa-{c}"));
    let t = Instant::now();
    let (mut took, errors) = sync_all(communes.iter().map(node_dir).collect(), concurrent).await;
    errors
        .iter()
        .for_each(|e| eprintln!("[{label}] a first sync failed: {e}"));
    let mut failed = errors.len();
    took.sort();
    row(
        "after the initial load",
        format!(
            "{} first syncs ({failed} failed) in {:.1} s, p50 {:.0} ms, p99 {:.0} ms",
            took.len(),
            t.elapsed().as_secs_f64(),
            percentile_ms(&took, 0.5),
            percentile_ms(&took, 0.99)
        ),
    );

    // 2. Queries: other dates and versions from the index, and the live view.
    for (what, args) in [
        ("--as-of 2025-06-30", vec!["--as-of", "2025-06-30"]),
        ("--hierarchy 2025", vec!["--hierarchy", "2025"]),
        ("the live view (today, 2023)", vec![]),
    ] {
        let mut all = vec!["progress", hub_path.as_str(), "--format", "json"];
        all.extend(args);
        let t = Instant::now();
        let out = run("htx-hub", &all).await;
        let reply: serde_json::Value = serde_json::from_str(out.ok()).expect("progress json");
        assert!(reply.is_object(), "{reply}");
        row(
            &format!("after a query: {what}"),
            format!("{:.2} s", t.elapsed().as_secs_f64()),
        );
    }

    // 3. Rounds of concurrent one-change syncs.
    let mut took = Vec::new();
    let t = Instant::now();
    let mut next = 0;
    for round in 1..=rounds {
        let mut set = JoinSet::new();
        for _ in 0..concurrent {
            let c = &communes[next % communes.len()];
            next += 1;
            set.spawn(sync_node(node_dir(c), Some(c.clone())));
        }
        while let Some(d) = set.join_next().await {
            match d.unwrap() {
                Ok(d) => took.push(d),
                Err(e) => {
                    eprintln!("[{label}] a sync failed: {e}");
                    failed += 1;
                }
            }
        }
        if round % 10 == 0 || round == rounds {
            let mut sorted = took.clone();
            sorted.sort();
            row(
                &format!("after round {round}"),
                format!(
                    "{} syncs so far ({failed} failed in all) in {:.1} s, p50 {:.0} ms, p99 {:.0} ms",
                    sorted.len(),
                    t.elapsed().as_secs_f64(),
                    percentile_ms(&sorted, 0.5),
                    percentile_ms(&sorted, 0.99)
                ),
            );
        }
    }

    // Every node is in sync, as the hub counts it (when every sync went
    // through: a failed one may leave its node behind).
    let out = run("htx-hub", &["nodes", &hub_path, "--format", "json"]).await;
    let listed: serde_json::Value = serde_json::from_str(out.ok()).expect("nodes json");
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), communes.len());
    for n in listed.iter().filter(|_| failed == 0) {
        assert_eq!(n["documents_behind"], 0, "{n}");
    }
    hub.terminate().await;
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&nodes).ok();
    (rows, failed)
}

#[tokio::main]
async fn main() {
    init_crypto();
    let n = arg(1, 226);
    let records = arg(2, 1000);
    let rounds = arg(3, 100);
    let concurrent = arg(4, 40);
    let communes = htx_tests::bench::communes(n);
    // Built (or found fresh) before anything is timed: a build during the
    // first query would be counted as that query's time.
    htx_tests::bin("htx-hub");
    let work = tempfile::tempdir().expect("temp dir");
    let pristine = work.path().join("pristine-hub");
    let pristine_nodes = work.path().join("pristine-nodes");
    build(&pristine, &pristine_nodes, &communes, records, free_port());
    let store_mb = std::fs::metadata(pristine.join("store.redb"))
        .unwrap()
        .len() as f64
        / 1e6;
    let defaults = HubConfig::default();
    type Env<'a> = Vec<(&'a str, &'a str)>;
    // The baseline: an older build of the hub, if one is named (a copy of
    // `target/release/htx-hub` from before a change), with its defaults;
    // otherwise this build with every document loaded and kept.
    let baseline = std::env::var("SCALE_BENCH_BASELINE_HUB").ok();
    let before: (&str, String, Env) = match &baseline {
        Some(path) => (path, format!("the hub before ({path})"), vec![]),
        None => (
            "htx-hub",
            "every document loaded and checked at start, kept (the hub before)".into(),
            vec![
                ("HTX_HUB_DOC_CACHE_DOCS", "0"),
                ("HTX_HUB_DOC_CACHE_BYTES", "0"),
                ("HTX_HUB_CHECK_DOCUMENTS_AT_START", "true"),
            ],
        ),
    };
    let phases: [(&str, &str, String, Env); 2] = [
        ("before", before.0, before.1, before.2),
        ("now", "htx-hub", "this build, defaults".into(), vec![]),
    ];
    let mut results = Vec::new();
    for (label, program, what, env) in &phases {
        let (rows, failed) = phase(
            label,
            program,
            env,
            &pristine,
            &pristine_nodes,
            work.path(),
            &communes,
            rounds,
            concurrent,
        )
        .await;
        // This build must keep up; a baseline that does not is a finding.
        assert!(
            *label != "now" || failed == 0,
            "{failed} syncs failed with this build"
        );
        results.push((what, rows));
    }

    println!(
        "\n{n} communes × {records} records = {} records, store {store_mb:.1} MB; \
         {rounds} rounds of {concurrent} concurrent one-change syncs; \
         defaults doc_cache_docs = {}, doc_cache_bytes = {}\n",
        n * records,
        defaults.doc_cache_docs,
        defaults.doc_cache_bytes
    );
    println!(
        "| hub RSS, MB (peak so far) | {} | {} |",
        results[0].0, results[1].0
    );
    println!("|---|---:|---:|");
    for (i, a) in results[0].1.iter().enumerate() {
        let b = &results[1].1[i];
        println!(
            "| {} | {:.0} ({:.0}) | {:.0} ({:.0}) |",
            a.moment, a.rss, a.peak, b.rss, b.peak
        );
    }
    println!(
        "\n| what was done (hub CPU seconds so far) | {} | {} |",
        results[0].0, results[1].0
    );
    println!("|---|---|---|");
    for (i, a) in results[0].1.iter().enumerate() {
        let b = &results[1].1[i];
        println!(
            "| {} | {} ({:.1} s) | {} ({:.1} s) |",
            a.moment, a.note, a.cpu, b.note, b.cpu
        );
    }
}

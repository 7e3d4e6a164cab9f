//! The first query after a restart (issue 8, item 2): how long a freshly
//! started hub takes to answer progress for another date (building its
//! live view from the record index first), then for another hierarchy
//! version, then the live view; and, restarted again, the live view
//! asked first; over a province of COMMUNES communes × RECORDS
//! cooperatives.
//!
//! One measurement of a restart is noisy on a shared machine, so the hub
//! is restarted REPEATS times, alternating with the baseline hub (an older
//! build, `QUERY_BENCH_BASELINE_HUB=PATH`; without it, this build again),
//! each time on a fresh copy of the same store; the median and the best of
//! each step are printed, with the hub's CPU time for the first query.
//!
//! `cargo run --release -p htx-tests --example query_bench [-- COMMUNES RECORDS REPEATS]`
//! (defaults: 226 1000 5). `QUERY_BENCH_STORE=DIR` keeps the written
//! province in DIR and reuses it on the next run (writing it takes about
//! 40 s), e.g. to run a profiler on a hub started there by hand.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use htx_tests::bench::{self, copy_hub_home, cpu_secs, write_province};
use htx_tests::{free_port, init_crypto, run, spawn, wait_for_api};

/// What a freshly started hub is asked, in order, in each of two kinds
/// of restart: another date first, or the live view (today) first.
const RESTARTS: [&[(&str, &[&str])]; 2] = [
    &[
        (
            "first query: --as-of 2025-06-30",
            &["--as-of", "2025-06-30"],
        ),
        ("then --hierarchy 2025", &["--hierarchy", "2025"]),
        ("then the live view", &[]),
    ],
    &[("first query: the live view (today)", &[])],
];

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

/// The province's hub home, written at `dir` unless already there.
fn province(dir: &Path, communes: usize, records: usize) {
    if dir.join("store.redb").exists() {
        eprintln!("reusing the province in {}", dir.display());
        return;
    }
    write_province(dir, &bench::communes(communes), records, free_port());
}

/// One restart of `program` on a copy of `store`: the time of each query
/// and the hub's CPU seconds for the first.
async fn restart(
    program: &str,
    store: &Path,
    work: &Path,
    label: &str,
    queries: &[(&str, &[&str])],
) -> (Vec<f64>, f64) {
    let dir = work.join(format!("hub-{label}"));
    std::fs::remove_dir_all(&dir).ok();
    copy_hub_home(store, &dir, program);
    let home = dir.to_str().unwrap().to_owned();
    let mut hub = spawn(
        program,
        &["run", &home],
        &work.join(format!("hub-{label}.log")),
    );
    wait_for_api(&dir.join("admin.addr"), Duration::from_secs(600)).await;
    let pid = hub.child.id().expect("running");
    let mut times = Vec::new();
    let mut first_cpu = 0.0;
    for (i, (_, args)) in queries.iter().enumerate() {
        let mut all = vec!["progress", home.as_str(), "--format", "json"];
        all.extend(args.iter());
        let cpu = cpu_secs(pid);
        let t = Instant::now();
        let out = run("htx-hub", &all).await;
        times.push(t.elapsed().as_secs_f64());
        if i == 0 {
            first_cpu = cpu_secs(pid) - cpu;
        }
        let reply: serde_json::Value = serde_json::from_str(out.ok()).expect("progress json");
        let units = reply["units"].as_array().map_or(0, Vec::len);
        assert!(units > 0, "a reply with figures: {reply}");
    }
    hub.terminate().await;
    std::fs::remove_dir_all(&dir).ok();
    (times, first_cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

#[tokio::main]
async fn main() {
    init_crypto();
    let communes = arg(1, 226);
    let records = arg(2, 1000);
    let repeats = arg(3, 5);
    // Built (or found fresh) before anything is timed.
    htx_tests::bin("htx-hub");
    let work = tempfile::tempdir().expect("temp dir");
    let store: PathBuf = match std::env::var("QUERY_BENCH_STORE") {
        Ok(d) => d.into(),
        Err(_) => work.path().join("province"),
    };
    province(&store, communes, records);
    let baseline = std::env::var("QUERY_BENCH_BASELINE_HUB").ok();
    let hubs = [
        (
            baseline.clone().unwrap_or_else(|| "htx-hub".into()),
            baseline.map_or("this build (again)".to_owned(), |b| format!("before ({b})")),
        ),
        ("htx-hub".to_owned(), "this build".to_owned()),
    ];
    // times[hub][query] over the restarts, the queries of every kind of
    // restart in turn; cpu[hub][kind] of the first query.
    let queries: Vec<&str> = RESTARTS
        .iter()
        .flat_map(|q| q.iter().map(|q| q.0))
        .collect();
    let mut times = vec![vec![Vec::new(); queries.len()]; hubs.len()];
    let mut cpu = vec![vec![Vec::new(); RESTARTS.len()]; hubs.len()];
    for r in 1..=repeats {
        // Alternating, so that a machine that slows down for a while
        // slows both alike.
        let mut q0 = 0;
        for (k, asked) in RESTARTS.iter().enumerate() {
            for (h, (program, what)) in hubs.iter().enumerate() {
                let (t, c) = restart(program, &store, work.path(), &h.to_string(), asked).await;
                eprintln!("[{what}] restart {r}.{k}: {t:.2?} s, first query {c:.2} s of CPU");
                for (q, s) in t.into_iter().enumerate() {
                    times[h][q0 + q].push(s);
                }
                cpu[h][k].push(c);
            }
            q0 += asked.len();
        }
    }

    println!(
        "\n{communes} communes × {records} records = {} records; {repeats} restarts of each \
         kind, alternating; seconds, median (best)\n",
        communes * records
    );
    let cell = |v: &Vec<f64>| format!("{:.2} ({:.2})", median(v.clone()), best(v));
    println!("| after a restart | {} | {} |", hubs[0].1, hubs[1].1);
    println!("|---|---:|---:|");
    for (q, what) in queries.iter().enumerate() {
        println!(
            "| {what} | {} | {} |",
            cell(&times[0][q]),
            cell(&times[1][q])
        );
    }
    for (k, asked) in RESTARTS.iter().enumerate() {
        println!(
            "| hub CPU for \"{}\" | {} | {} |",
            asked[0].0,
            cell(&cpu[0][k]),
            cell(&cpu[1][k])
        );
    }
}

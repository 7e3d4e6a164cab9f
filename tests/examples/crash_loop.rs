//! Crash loops with the real processes (issue 13, item 3): SIGKILLs a node
//! and the hub at random moments of writes, imports, sync sessions and the
//! store compactions they trigger, round after round, then counts the
//! acknowledged writes lost and the stores that failed to open. Goal: 0/0.
//!
//! `cargo run --release -p htx-tests --example crash_loop [-- ROUNDS [SEED]]`
//! (default 200 rounds, seed 1). Not part of `cargo test`: it runs for
//! minutes.
//!
//! One hub and two nodes of one district (Thành phố Nam Định, 356), so that
//! each node also holds, and hands on, the other's records. Every round
//! picks what runs (a burst of `htx-node add`, an `htx-node import` of a
//! few hundred rows, an `htx-node sync --once`, or the nodes' own
//! background sync) and what dies (a node, the hub, or both) after a
//! random delay; the dead process is started again at once on the same
//! directory. A write counts as acknowledged when its command exited 0
//! (`add` printed the id; `import` said how many rows). At the end the
//! killing stops, every node syncs until it and the hub agree, and every
//! acknowledged record must be in the hub's export and in both nodes'.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use htx_tests::{Process, configure, export_ids, free_port, run, run_within, spawn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Proc {
    dir: PathBuf,
    args: Vec<String>,
    program: &'static str,
    addr_file: &'static str,
    log: PathBuf,
    running: Option<Process>,
    starts: u64,
}

impl Proc {
    fn start(&mut self) {
        self.starts += 1;
        self.log = self.dir.with_extension(format!("run-{}.log", self.starts));
        let _ = std::fs::remove_file(self.dir.join(self.addr_file));
        self.running = Some(spawn(self.program, &self.args, &self.log));
    }

    async fn kill(&mut self) {
        if let Some(mut p) = self.running.take() {
            p.kill().await;
        }
    }

    /// Whether the process answers on its API within `limit` (its store
    /// opened), or exited, or never answered.
    async fn answers(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let addr = std::fs::read_to_string(self.dir.join(self.addr_file))
                .ok()
                .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok());
            if let Some(addr) = addr
                && tokio::net::TcpStream::connect(addr).await.is_ok()
            {
                return true;
            }
            if let Some(p) = &mut self.running
                && let Ok(Some(_)) = p.child.try_wait()
            {
                return false;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(Default, Debug)]
struct Figures {
    rounds: u64,
    node_kills: u64,
    hub_kills: u64,
    adds_acked: u64,
    adds_failed: u64,
    imports_acked: u64,
    import_rows_acked: u64,
    imports_failed: u64,
    syncs_ok: u64,
    syncs_failed: u64,
    failed_opens: u64,
    lost_at_writer: u64,
    lost_at_hub: u64,
    lost_at_other_node: u64,
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args.next().map_or(200, |a| a.parse().expect("ROUNDS"));
    let seed: u64 = args.next().map_or(1, |a| a.parse().expect("SEED"));
    let mut rng = StdRng::seed_from_u64(seed);
    let root = tempfile::TempDir::new().expect("temp dir");
    let hub_dir = root.path().join("hub");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("https://127.0.0.1:{port}");
    run(
        "htx-hub",
        &[
            "init",
            &s(&hub_dir),
            "--listen",
            &listen,
            "--public-url",
            &url,
        ],
    )
    .await
    .ok();
    let mut nodes = Vec::new();
    for name in ["office-pc", "field-laptop"] {
        let bundle = root.path().join(format!("{name}.json"));
        run(
            "htx-hub",
            &[
                "enroll",
                &s(&hub_dir),
                "--unit",
                "356",
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
        configure(&dir, |c| {
            c.sync_interval_secs = 1;
            c.retry_min_secs = 1;
            c.retry_max_secs = 2;
            c.timeout_secs = 5;
        });
        nodes.push(Proc {
            args: vec!["run".into(), s(&dir)],
            log: root.path().join(format!("{name}-run")),
            dir,
            program: "htx-node",
            addr_file: "api.addr",
            running: None,
            starts: 0,
        });
    }
    let mut hub = Proc {
        args: vec!["run".into(), s(&hub_dir)],
        log: root.path().join("hub-run"),
        dir: hub_dir.clone(),
        program: "htx-hub",
        addr_file: "admin.addr",
        running: None,
        starts: 0,
    };
    hub.start();
    assert!(hub.answers(Duration::from_secs(30)).await, "the hub starts");
    for n in &mut nodes {
        n.start();
        assert!(n.answers(Duration::from_secs(30)).await, "a node starts");
    }

    let communes = ["13633", "13636", "13639", "13642", "13645"];
    // (node index, record id) of every acknowledged write.
    let mut acked: Vec<(usize, String)> = Vec::new();
    let mut f = Figures::default();
    let started = Instant::now();
    for round in 0..rounds {
        f.rounds += 1;
        let i = rng.random_range(0..nodes.len());
        let dir = nodes[i].dir.clone();
        let kill_node = rng.random_bool(0.6);
        let kill_hub = !kill_node || rng.random_bool(0.25);
        let delay = Duration::from_millis(rng.random_range(0..600));
        let action = rng.random_range(0..4);
        // The work, and the kill after `delay`, at the same time.
        let work = async {
            match action {
                0 => {
                    let mut ids = Vec::new();
                    let (mut ok, mut failed) = (0, 0);
                    for k in 0..rng_count(round, 3, 12) {
                        let name = format!("HTX vòng {round} số {k}");
                        let commune = communes[(round as usize + k) % communes.len()];
                        let out = run(
                            "htx-node",
                            &[
                                "add",
                                &s(&dir),
                                "cooperative",
                                "--type",
                                "HTX",
                                "--name",
                                &name,
                                "--unit",
                                commune,
                            ],
                        )
                        .await;
                        if out.status.success() {
                            ids.push(out.stdout.trim().to_owned());
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    (ids, ok, failed, "add")
                }
                1 => {
                    let rows = rng_count(round, 100, 600);
                    let file = dir.with_extension(format!("import-{round}.csv"));
                    let mut csv = String::from("id,kind,type,name,unit\n");
                    let mut ids = Vec::new();
                    for r in 0..rows {
                        let id = format!("{:08x}-{:04x}-4000-8000-{:012x}", round, i, r);
                        csv.push_str(&format!(
                            "{id},cooperative,THT,THT {round}-{r},{}\n",
                            communes[r % communes.len()]
                        ));
                        ids.push(id);
                    }
                    std::fs::write(&file, csv).expect("write import file");
                    let out = run_within(
                        Duration::from_secs(120),
                        "htx-node",
                        &["import", &s(&dir), &s(&file)],
                    )
                    .await;
                    if out.status.success() {
                        (ids, 1, 0, "import")
                    } else {
                        (Vec::new(), 0, 1, "import")
                    }
                }
                2 => {
                    let out = run("htx-node", &["sync", &s(&dir), "--once"]).await;
                    let ok = out.status.success() as u64;
                    (Vec::new(), ok, 1 - ok, "sync")
                }
                // The nodes' own background sessions.
                _ => {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    (Vec::new(), 0, 0, "background")
                }
            }
        };
        let killer = async {
            tokio::time::sleep(delay).await;
            if kill_node {
                nodes[i].kill().await;
            }
            if kill_hub {
                hub.kill().await;
            }
        };
        let ((ids, ok, failed, what), ()) = tokio::join!(work, killer);
        match what {
            "add" => {
                f.adds_acked += ok;
                f.adds_failed += failed;
            }
            "import" => {
                f.imports_acked += ok;
                f.imports_failed += failed;
                if ok > 0 {
                    f.import_rows_acked += ids.len() as u64;
                }
            }
            "sync" => {
                f.syncs_ok += ok;
                f.syncs_failed += failed;
            }
            _ => {}
        }
        acked.extend(ids.into_iter().map(|id| (i, id)));
        // Whatever died starts again; its store must open.
        if kill_node {
            f.node_kills += 1;
            nodes[i].start();
            if !nodes[i].answers(Duration::from_secs(30)).await {
                f.failed_opens += 1;
                eprintln!(
                    "round {round}: node {i} did not start again; log {}",
                    nodes[i].log.display()
                );
                nodes[i].kill().await;
                nodes[i].start();
            }
        }
        if kill_hub {
            f.hub_kills += 1;
            hub.start();
            if !hub.answers(Duration::from_secs(30)).await {
                f.failed_opens += 1;
                eprintln!(
                    "round {round}: the hub did not start again; log {}",
                    hub.log.display()
                );
                hub.kill().await;
                hub.start();
            }
        }
        if round % 20 == 19 {
            eprintln!(
                "round {}: {} acknowledged so far, {:.0} s",
                round + 1,
                acked.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }

    // Healing: no more kills; every node syncs until it and the hub agree
    // (twice over, so that each gets what the other sent).
    for _ in 0..2 {
        for n in &nodes {
            let mut tries = 0;
            loop {
                let out = run("htx-node", &["sync", &s(&n.dir), "--once"]).await;
                if out.status.success() {
                    break;
                }
                tries += 1;
                assert!(tries < 20, "{} does not sync: {out:?}", n.dir.display());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let export = |program: &'static str, dir: PathBuf| async move {
        let out = run_within(
            Duration::from_secs(120),
            program,
            &["export", &s(&dir), "--format", "json", "--include-deleted"],
        )
        .await;
        export_ids(out.ok())
            .into_iter()
            .collect::<BTreeSet<String>>()
    };
    let at_hub = export("htx-hub", hub_dir.clone()).await;
    let at_node = [
        export("htx-node", nodes[0].dir.clone()).await,
        export("htx-node", nodes[1].dir.clone()).await,
    ];
    for (i, id) in &acked {
        if !at_node[*i].contains(id) {
            f.lost_at_writer += 1;
            eprintln!("lost on the node that acknowledged it: {id}");
        }
        if !at_hub.contains(id) {
            f.lost_at_hub += 1;
        }
        if !at_node[1 - *i].contains(id) {
            f.lost_at_other_node += 1;
        }
    }
    for n in &mut nodes {
        n.kill().await;
    }
    hub.kill().await;
    println!(
        "crash loop, seed {seed}: {:.0} s\n{f:#?}\nacknowledged records: {}, at the hub: {}, on the nodes: {} and {}",
        started.elapsed().as_secs_f64(),
        acked.len(),
        at_hub.len(),
        at_node[0].len(),
        at_node[1].len()
    );
    let lost = f.lost_at_writer + f.lost_at_hub + f.lost_at_other_node;
    if lost > 0 || f.failed_opens > 0 {
        eprintln!(
            "FAILED: {lost} acknowledged write(s) lost, {} store(s) failed to open",
            f.failed_opens
        );
        std::process::exit(1);
    }
}

/// A count in `lo..hi` that varies by round.
fn rng_count(round: u64, lo: usize, hi: usize) -> usize {
    lo + (round as usize * 7919) % (hi - lo)
}

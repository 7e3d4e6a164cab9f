//! What the benchmarks read of a running process (`/proc`) and of their
//! timings, shared by the examples.

use std::time::Duration;

/// (RSS, peak RSS) of process `pid`, in MB (`VmRSS`, `VmHWM`).
pub fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kb = |field: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// CPU seconds (user + system) process `pid` has used.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The `p` quantile (0..=1) of `sorted` durations, in ms.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Writes `records` records per commune (made by `make(commune, n)`) into
/// the hub store at `dir` (a hub home, `init` done): one document per
/// commune of the 2023 hierarchy, every record indexed, as if every node
/// had synced them. Far faster than syncing them in.
pub fn write_hub_store(
    dir: &std::path::Path,
    communes: &[String],
    records: usize,
    make: impl Fn(&str, usize) -> htx_core::schema::Record,
) {
    use htx_core::{docs, format, index, replica, storage};
    let store = storage::open(storage::Backend::Redb, dir).expect("hub store");
    let mut r = replica::Replica::open_with(
        store,
        replica::Options {
            check_at_open: false,
            cache_docs: Some(1),
            cache_bytes: None,
        },
    )
    .expect("replica");
    for (i, c) in communes.iter().enumerate() {
        let recs: Vec<_> = (0..records)
            .map(|n| {
                let mut rec = make(c, n);
                rec.id = htx_core::schema::new_id();
                rec
            })
            .collect();
        let doc = docs::unit_doc_id("2023", c);
        r.change(&doc, |d| {
            for rec in &recs {
                docs::put_record(d, rec)?;
            }
            Ok::<_, automerge::AutomergeError>(())
        })
        .expect("stored")
        .expect("written");
        let mut b = storage::WriteBatch::default();
        for rec in &recs {
            index::put(&mut b, &doc, rec);
        }
        if i + 1 == communes.len() {
            format::put_current(&mut b, format::Role::Hub);
        }
        r.commit(b).expect("indexed");
    }
}

/// Opens node `dir` (in this process), records a cooperative in commune
/// `write` if given, and syncs once over a new connection: the sync's
/// time, or why it failed (a baseline may not keep up).
pub async fn sync_node(dir: std::path::PathBuf, write: Option<String>) -> Result<Duration, String> {
    sync_node_on(dir, write, &mut None).await
}

/// As [`sync_node`], on `link` when it is open (a warm link: the
/// connection kept between sessions, as `htx-node run` keeps it), else
/// opened there and kept ([`htx_node::sync_client::sync_with`]).
pub async fn sync_node_on(
    dir: std::path::PathBuf,
    write: Option<String>,
    link: &mut Option<htx_node::sync_client::Link>,
) -> Result<Duration, String> {
    let node = tokio::task::spawn_blocking(move || {
        let node = htx_node::node::Node::open(&dir).expect("open node");
        if let Some(commune) = write {
            node.write(vec![crate::coop(&commune, "HTX mới")])
                .expect("recorded");
        }
        node
    })
    .await
    .unwrap();
    let t = std::time::Instant::now();
    let report = htx_node::sync_client::sync_with(&node, link).await;
    let took = t.elapsed();
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .unwrap();
    match report {
        Ok(r) if r.in_sync => Ok(took),
        Ok(r) => Err(format!("not in sync: {r:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Every node of `dirs` syncs once ([`sync_node`], nothing written),
/// `at_once` at a time: the times of those that went through, and why the
/// others failed.
pub async fn sync_all(
    dirs: Vec<std::path::PathBuf>,
    at_once: usize,
) -> (Vec<Duration>, Vec<String>) {
    let (mut took, mut failed) = (Vec::new(), Vec::new());
    for chunk in dirs.chunks(at_once) {
        let mut set = tokio::task::JoinSet::new();
        for dir in chunk {
            set.spawn(sync_node(dir.clone(), None));
        }
        while let Some(r) = set.join_next().await {
            match r.expect("sync task") {
                Ok(d) => took.push(d),
                Err(e) => failed.push(e),
            }
        }
    }
    (took, failed)
}

/// The first `n` communes of the 2023 hierarchy (Nam Định has 226).
pub fn communes(n: usize) -> Vec<String> {
    let communes: Vec<String> = htx_core::units::Hierarchy::builtin()
        .version("2023")
        .expect("the 2023 version")
        .units()
        .filter(|u| u.level == htx_core::units::Level::Commune)
        .map(|u| u.code.clone())
        .take(n)
        .collect();
    assert_eq!(
        communes.len(),
        n,
        "the province has {} communes",
        communes.len()
    );
    communes
}

/// A hub home at `dir` (listening on loopback `port`) holding `records`
/// cooperatives in each of `communes` ([`write_hub_store`]); its settings
/// are returned, to enroll nodes with.
pub fn write_province(
    dir: &std::path::Path,
    communes: &[String],
    records: usize,
    port: u16,
) -> (htx_hub::home::Home, htx_hub::config::HubConfig) {
    let cfg = htx_hub::config::HubConfig {
        listen: format!("127.0.0.1:{port}"),
        public_url: format!("https://127.0.0.1:{port}"),
        server_names: vec!["localhost".into(), "127.0.0.1".into()],
        ..Default::default()
    };
    let home = htx_hub::home::Home::new(dir);
    home.init(&cfg).expect("hub init");
    let t = std::time::Instant::now();
    write_hub_store(dir, communes, records, |c, n| {
        crate::coop(c, &format!("HTX {c} số {n}"))
    });
    eprintln!(
        "province written: {} communes × {records} records in {:.1} s",
        communes.len(),
        t.elapsed().as_secs_f64()
    );
    (home, cfg)
}

/// Enrolls one node per commune at the hub home `home` (its own
/// certificate) and sets each up under `nodes/xa-{commune}` with
/// `htx-node init`, as an administrator does.
pub fn enroll_nodes(
    home: &htx_hub::home::Home,
    cfg: &htx_hub::config::HubConfig,
    communes: &[String],
    nodes: &std::path::Path,
) {
    std::fs::create_dir_all(nodes).expect("nodes dir");
    for c in communes {
        let name = format!("xa-{c}");
        let bundle = home
            .enroll(cfg, c, None, Some(&name), false)
            .expect("enroll");
        let file = nodes.join(format!("{name}.json"));
        std::fs::write(&file, bundle.to_json()).expect("bundle written");
        htx_node::cli::init(&nodes.join(&name), &file, htx_core::storage::Backend::Redb)
            .expect("node init");
        std::fs::remove_file(file).expect("bundle removed");
    }
}

/// A country's synthetic unit lists written to `units_dir` (root 36, so
/// that the shipped plan covers it unchanged: 350 districts × 10
/// communes), for a hub's `units_dir`; and the same lists as a hierarchy
/// for the bench itself to list the communes (kept for the process).
pub fn synthetic_country(units_dir: &std::path::Path) -> &'static htx_core::units::Hierarchy {
    crate::write_synthetic_units(units_dir, "36", "Cả nước (tổng hợp)", 350, 10);
    let lists = htx_core::units::read_lists(units_dir).expect("the lists just written");
    let files: Vec<(&str, &str)> = lists.iter().map(|(n, t)| (&n[..], &t[..])).collect();
    let h = htx_core::units::Hierarchy::from_lists(&files).expect("valid lists");
    Box::leak(Box::new(h))
}

/// A copy of the hub home `from` at `to`, for `program` (`htx-hub`, or the
/// path of an older build as a benchmark's baseline: an older build refuses
/// settings it does not know, so those added since are left at their
/// defaults).
pub fn copy_hub_home(from: &std::path::Path, to: &std::path::Path, program: &str) {
    copy_dir(from, to);
    if program != "htx-hub" {
        let path = to.join("hub.toml");
        let text = std::fs::read_to_string(&path).expect("hub.toml");
        let known: Vec<&str> = text.lines().filter(|l| *l != "units_dir = \"\"").collect();
        std::fs::write(&path, known.join("\n")).expect("hub.toml written");
    }
}

/// `cp -a from to`.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

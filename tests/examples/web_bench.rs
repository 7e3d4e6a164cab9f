//! The officers' web app, measured through the real `htx-node run`:
//! page render times for a commune holding 200 cooperatives (each with an
//! observation and a manager), against the stylesheet served over the same
//! signed-in HTTP path (the baseline: what a page costs before any work);
//! the node's resident memory idle after start and after the pages; and a
//! 10,000-row `.xlsx` imported through the pages (check, then confirm)
//! against `htx-node import` of the same file into a fresh node (the
//! baseline), with the node process's peak resident memory.
//!
//! `cargo run --release -p htx-tests --example web_bench [-- COOPS ROWS]`

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use htx_tests::web::add_user;
use htx_tests::web::http::{form, multipart, request, request_typed, sign_in};
use htx_tests::{TestHub, bin, configure, spawn, wait_for_api};
use rust_xlsxwriter::Workbook;

const PW: &str = "mật khẩu đo hiệu năng";
const COMMUNE: &str = "13750"; // Xã Tân Khánh, Vụ Bản

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// The CSV record file of `n` cooperatives in the commune, each with an
/// observation and a female chair.
fn commune_csv(n: usize) -> String {
    let mut out = String::from(
        "kind,id,unit,type,name,founded_on,cooperative,observed_on,workers,female_workers,stable_jobs_women,new_jobs_women,gender,role\n",
    );
    for i in 0..n {
        let id = format!("01890005-0000-7000-8000-{i:012}");
        out.push_str(&format!(
            "cooperative,{id},{COMMUNE},HTX,HTX số {i:03} Tân Khánh,2020-01-15,,,,,,,,\n"
        ));
        out.push_str(&format!("observation,,,,,,{id},2025-06-30,12,8,6,2,,\n"));
        out.push_str(&format!(
            "manager,,,,Nguyễn Thị {i:03},,{id},,,,,,female,chair\n"
        ));
    }
    out
}

fn xlsx(rows: usize) -> Vec<u8> {
    let mut book = Workbook::new();
    let ws = book.add_worksheet().set_name("Hợp tác xã").unwrap();
    for (c, h) in ["Tên HTX/THT", "Loại hình", "Đơn vị", "Ngày thành lập"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for i in 0..rows {
        let r = i as u32 + 1;
        ws.write_string(r, 0, format!("Hợp tác xã số {i:06} nhập từ Excel"))
            .unwrap();
        ws.write_string(r, 1, "Hợp tác xã").unwrap();
        ws.write_string(r, 2, COMMUNE).unwrap();
        ws.write_string(r, 3, "15/01/2021").unwrap();
    }
    book.save_to_buffer().unwrap()
}

/// p50, p95 and mean of `n` GETs of `path`, in milliseconds.
async fn timed(addr: SocketAddr, cookie: &str, path: &str, n: usize) -> (f64, f64, f64, usize) {
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = request(addr, "GET", path, Some(cookie), b"").await;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.status, 200, "{path}: {}", r.status);
        bytes = r.body.len();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let mean = times.iter().sum::<f64>() / n as f64;
    (times[n / 2], times[n * 95 / 100], mean, bytes)
}

struct Running {
    process: htx_tests::Process,
    addr: SocketAddr,
    pid: u32,
}

async fn start(hub: &TestHub, root: &Path, name: &str, csv: Option<&str>) -> Running {
    let dir = root.join(name);
    hub.init_node_dir("359", name, &dir).await;
    configure(&dir, |c| c.sync_interval_secs = 3600);
    if let Some(csv) = csv {
        let file = root.join(format!("{name}.csv"));
        std::fs::write(&file, csv).unwrap();
        let out = std::process::Command::new(bin("htx-node"))
            .arg("import")
            .arg(&dir)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    add_user(&dir, "lan", "editor", &[], PW).await;
    let process = spawn(
        "htx-node",
        &["run".as_ref(), dir.as_os_str()],
        &root.join(format!("{name}.log")),
    );
    let addr = wait_for_api(&dir.join("web.addr"), Duration::from_secs(60)).await;
    let pid = process_pid(&dir).expect("the node's pid");
    Running { process, addr, pid }
}

/// The pid of `htx-node run DIR` (from /proc: the test kit's process
/// handle does not expose it).
fn process_pid(dir: &Path) -> Option<u32> {
    let want = dir.to_str()?;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (cmd.contains("htx-node") && cmd.contains("\0run\0") && cmd.contains(want)).then_some(pid)
    })
}

#[tokio::main]
async fn main() {
    htx_tests::init_crypto();
    let mut args = std::env::args().skip(1);
    let coops: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let root = tempfile::TempDir::new().unwrap();
    let hub = TestHub::create();

    // Pages of a commune with `coops` cooperatives.
    let mut node = start(&hub, root.path(), "pages", Some(&commune_csv(coops))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = memory(node.pid);
    let s = sign_in(node.addr, "lan", PW).await.expect("signs in");
    let coop = format!("/records/01890005-0000-7000-8000-{:012}", coops / 2);
    println!("| page ({coops} cooperatives in the commune) | p50 | p95 | mean | HTML |");
    println!("|---|---|---|---|---|");
    for (label, path) in [
        (
            "baseline: the stylesheet, same signed-in HTTP path",
            "/static/style.css".to_owned(),
        ),
        (
            "home: progress of the district and its communes",
            "/".to_owned(),
        ),
        (
            "cooperatives of the commune",
            format!("/cooperatives?unit={COMMUNE}"),
        ),
        ("one cooperative's page", coop),
        ("add-a-cooperative form", "/new/cooperative".to_owned()),
        ("import page", "/import".to_owned()),
    ] {
        let (p50, p95, mean, bytes) = timed(node.addr, &s.cookie, &path, 50).await;
        println!(
            "| {label} | {p50:.1} ms | {p95:.1} ms | {mean:.1} ms | {} KiB |",
            bytes / 1024
        );
    }
    let (after_rss, hwm) = memory(node.pid);
    println!();
    println!("| `htx-node run` (web app on), {coops} cooperatives | RSS |");
    println!("|---|---|");
    println!("| idle, 2 s after start | {idle_rss:.1} MiB |");
    println!("| after the 300 pages above | {after_rss:.1} MiB (peak {hwm:.1} MiB) |");
    node.process.terminate().await;

    // A 10,000-row workbook through the pages, against the CLI.
    let book = xlsx(rows);
    let mut web = start(&hub, root.path(), "web-import", None).await;
    let (before, _) = memory(web.pid);
    let s = sign_in(web.addr, "lan", PW).await.expect("signs in");
    let t = Instant::now();
    let (ty, body) = multipart(&[("csrf", &s.csrf)], ("hop-tac-xa.xlsx", &book));
    let r = request_typed(
        web.addr,
        "POST",
        "/import",
        Some(&s.cookie),
        Some(&ty),
        &body,
    )
    .await;
    let check = t.elapsed();
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(2000)]);
    let digest = r
        .body
        .split("name=\"digest\" value=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("a file ready to confirm")
        .to_owned();
    let t = Instant::now();
    let r = request(
        web.addr,
        "POST",
        "/import/confirm",
        Some(&s.cookie),
        &form(&[("csrf", &s.csrf), ("digest", &digest)]),
    )
    .await;
    let confirm = t.elapsed();
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&format!("Đã ghi {rows}")) || r.body.contains("Đã ghi"));
    let (_, web_peak) = memory(web.pid);
    web.process.terminate().await;

    let cli_dir = root.path().join("cli-import");
    hub.init_node_dir("359", "cli-import", &cli_dir).await;
    let file = root.path().join("hop-tac-xa.xlsx");
    std::fs::write(&file, &book).unwrap();
    let t = Instant::now();
    let out = std::process::Command::new(bin("htx-node"))
        .arg("import")
        .arg(&cli_dir)
        .arg(&file)
        .output()
        .unwrap();
    let cli = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!();
    println!(
        "| {rows}-row `.xlsx` ({} KiB) | time | rows/s | peak RSS |",
        book.len() / 1024
    );
    println!("|---|---|---|---|");
    println!(
        "| baseline: `htx-node import` (CLI, its own process) | {:.2} s | {:.0} | — |",
        cli.as_secs_f64(),
        rate(cli)
    );
    println!(
        "| web: upload and check (every row, nothing written) | {:.2} s | {:.0} | |",
        check.as_secs_f64(),
        rate(check)
    );
    println!(
        "| web: confirm (checked again, written all or nothing) | {:.2} s | {:.0} | |",
        confirm.as_secs_f64(),
        rate(confirm)
    );
    println!(
        "| web: both | {:.2} s | {:.0} | node process {web_peak:.0} MiB (from {before:.0} MiB idle) |",
        (check + confirm).as_secs_f64(),
        rate(check + confirm)
    );
}

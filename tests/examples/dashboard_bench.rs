//! The province's dashboard, measured through the real `htx-hub run` over
//! HTTP with a signed-in session: the overview, the drill-down, a 42-month
//! trend, the records behind a figure, the yearly report (page and
//! `.xlsx`, with its size), each against the engine's own answer for the
//! same unit and date over the same path (`/api/progress`), the baseline,
//! in the same run.
//!
//! A province of COMMUNES communes × RECORDS cooperatives (half consolidated
//! with the Union's support, so that figures are not zero) is written into
//! a hub store directly, as `scale_bench` does.
//!
//! `cargo run --release -p htx-tests --example dashboard_bench [-- COMMUNES RECORDS RUNS]`
//! (defaults: 226 50 20, the province of Nam Định at 11,300 records).
//!
//! `... --example dashboard_bench -- national [RECORDS RUNS]` (defaults: 50 5):
//! the same pages for a tree of a country's size, given to the hub as its
//! unit lists (`units_dir`): 3,500 communes in 350 districts under one
//! root, 175,000 records (the hierarchy has three levels, so the country
//! is one root with 350 districts rather than 35 provinces of 10).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use htx_core::schema::record_from_strings;
use htx_core::units::{Hierarchy, Level};
use htx_hub::config::HubConfig;
use htx_hub::home::Home;
use htx_tests::bench::synthetic_country;
use htx_tests::bench::write_hub_store;
use htx_tests::web::http::{request, sign_in};
use htx_tests::{bin, free_port, init_crypto, spawn, wait_for_api};

const PW: &str = "mật khẩu đo hiệu năng";

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

fn build(dir: &Path, units_dir: &str, communes: &[String], records: usize) {
    let port = free_port();
    let cfg = HubConfig {
        listen: format!("127.0.0.1:{port}"),
        public_url: format!("https://127.0.0.1:{port}"),
        server_names: vec!["localhost".into(), "127.0.0.1".into()],
        units_dir: units_dir.to_owned(),
        ..Default::default()
    };
    Home::new(dir).init(&cfg).expect("hub init");
    write_hub_store(dir, communes, records, |c, n| {
        let name = format!("HTX {c} số {n}");
        let mut fields = vec![("type", "HTX"), ("name", name.as_str()), ("unit", c)];
        if n % 2 == 0 {
            fields.extend([
                ("union_supported", "true"),
                ("founded_on", "2023-03-01"),
                ("consolidated_on", "2024-06-01"),
            ]);
        }
        record_from_strings("cooperative", fields).expect("valid")
    });
}

/// p50, p95 of `runs` GETs of `path` (ms), and the body's size.
async fn timed(
    addr: std::net::SocketAddr,
    cookie: &str,
    path: &str,
    runs: usize,
) -> (f64, f64, usize) {
    let mut t = Vec::new();
    let mut size = 0;
    for _ in 0..runs {
        let s = Instant::now();
        let r = request(addr, "GET", path, Some(cookie), b"").await;
        t.push(s.elapsed());
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            &r.body[..r.body.len().min(500)]
        );
        size = r.bytes.len();
    }
    t.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(t[runs / 2]),
        ms(t[(runs * 95 / 100).min(runs - 1)]),
        size,
    )
}

#[tokio::main]
async fn main() {
    init_crypto();
    let national = std::env::args().nth(1).as_deref() == Some("national");
    let work = tempfile::TempDir::new().unwrap();
    let dir = work.path().join("hub");
    let (h, units_dir, n_communes, records, runs) = match national {
        false => (
            Hierarchy::builtin(),
            "",
            arg(1, 226),
            arg(2, 50),
            arg(3, 20),
        ),
        true => {
            let h = synthetic_country(&dir.join("units"));
            (h, "units", usize::MAX, arg(2, 50), arg(3, 5))
        }
    };
    let v = h.version("2023").unwrap();
    let communes: Vec<String> = v
        .units()
        .filter(|u| u.level == Level::Commune && v.within(&u.code, "36"))
        .map(|u| u.code.clone())
        .take(n_communes)
        .collect();
    let district = v.children("36").next().expect("a district").code.clone();
    let t = Instant::now();
    build(&dir, units_dir, &communes, records);
    eprintln!(
        "province written: {} × {records} in {:.1} s",
        communes.len(),
        t.elapsed().as_secs_f64()
    );
    let mut child = std::process::Command::new(bin("htx-hub"))
        .args(["user", "add"])
        .arg(&dir)
        .args(["bench", "--role", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PW}").unwrap();
    assert!(child.wait().unwrap().success());
    let mut hub = spawn(
        "htx-hub",
        &["run".as_ref(), dir.as_os_str()],
        &work.path().join("hub.log"),
    );
    let addr = wait_for_api(&dir.join("http.addr"), Duration::from_secs(300)).await;
    let s = sign_in(addr, "bench", PW).await.expect("signed in");
    let q = "unit=36&as_of=2025-12-31&hierarchy=2023";
    // Warm up: the first query after start loads the live view.
    request(
        addr,
        "GET",
        &format!("/api/progress?{q}"),
        Some(&s.cookie),
        b"",
    )
    .await;

    println!(
        "| {} communes × {records} records ({} runs each) | p50 | p95 | size |",
        communes.len(),
        runs
    );
    println!("|---|---|---|---|");
    for (label, path) in [
        (
            "baseline: `/api/progress` for the province (the engine's report)",
            format!("/api/progress?{q}"),
        ),
        (
            "baseline: `/api/progress` for the province, today (the live view)",
            "/api/progress?unit=36&hierarchy=2023".to_owned(),
        ),
        (
            "overview of the province, the first view of that date (both dates evaluated once)",
            format!("/?{q}&first"),
        ),
        ("overview of the province", format!("/?{q}")),
        (
            "overview of the province, today (the live view)",
            "/?unit=36&hierarchy=2023".to_owned(),
        ),
        ("drill-down: the districts", format!("/units?{q}")),
        (
            "drill-down: a district's communes",
            format!("/units?unit={district}&as_of=2025-12-31&hierarchy=2023"),
        ),
        (
            "trends: 42 months of every indicator (SVG)",
            "/trends?unit=36&as_of=2026-11-30&hierarchy=2023".to_owned(),
        ),
        (
            "records behind a figure (HTX_CONSOLIDATED)",
            format!("/figure?{q}&indicator=HTX_CONSOLIDATED"),
        ),
        (
            "records behind a figure, a district's",
            format!(
                "/figure?unit={district}&as_of=2025-12-31&hierarchy=2023&indicator=HTX_CONSOLIDATED"
            ),
        ),
        (
            "records behind a figure, a commune's (50 records)",
            format!(
                "/figure?unit={}&as_of=2025-12-31&hierarchy=2023&indicator=HTX_CONSOLIDATED",
                communes[0]
            ),
        ),
        ("yearly report 2025, page", "/report?period=2025".to_owned()),
        (
            "yearly report 2025, `.xlsx`",
            "/report?period=2025&format=xlsx".to_owned(),
        ),
    ] {
        // A first view is timed once.
        let once = path.ends_with("&first");
        let path = path.trim_end_matches("&first");
        let (p50, p95, size) = timed(addr, &s.cookie, path, if once { 1 } else { runs }).await;
        println!(
            "| {label} | {p50:.1} ms | {p95:.1} ms | {} KiB |",
            size / 1024
        );
    }
    hub.terminate().await;
}

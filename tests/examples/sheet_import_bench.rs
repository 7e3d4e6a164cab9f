//! `htx-node import` of 10,000 cooperatives from an `.xlsx` workbook
//! (Vietnamese headers, Excel dates) against the same rows as a CSV record
//! file (the import path that existed before spreadsheets), and as a
//! Vietnamese CSV through the spreadsheet reader: rows per second and the
//! importing process's peak resident memory, in the same run, each into a
//! fresh node, through the release binary.
//!
//! `cargo run --release -p htx-tests --example sheet_import_bench [-- ROWS]`
//!
//! Peak memory is the process's `VmHWM` (its high-water mark) read from
//! `/proc` every 2 ms until it exits.

use std::path::Path;
use std::time::{Duration, Instant};

use htx_tests::{TestHub, bin};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

const UNITS: [&str; 7] = [
    "13633", "13636", "13639", "13642", "13645", "13648", "13651",
];

/// Runs `htx-node args…`; returns (wall time, peak RSS in KiB).
fn measure(args: &[&str]) -> (Duration, u64) {
    let t = Instant::now();
    let mut child = std::process::Command::new(bin("htx-node"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("htx-node runs");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        if child.try_wait().expect("waits").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = t.elapsed();
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "htx-node {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, peak)
}

fn write_files(dir: &Path, rows: usize) {
    let mut book = Workbook::new();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    let ws = book.add_worksheet().set_name("Hợp tác xã").unwrap();
    for (c, h) in [
        "Tên HTX/THT",
        "Loại hình",
        "Đơn vị",
        "Ngày thành lập",
        "Lĩnh vực hoạt động",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    let mut csv = String::from("kind,type,name,unit,founded_on,sector\n");
    let mut vi_csv =
        String::from("Tên HTX/THT;Loại hình;Đơn vị;Ngày thành lập;Lĩnh vực hoạt động\n");
    for i in 0..rows {
        let r = i as u32 + 1;
        let name = format!("Hợp tác xã nông nghiệp số {i:06} thôn Đông");
        let unit = UNITS[i % UNITS.len()];
        let day = (i % 28) as u8 + 1;
        ws.write_string(r, 0, &name).unwrap();
        ws.write_string(r, 1, "Hợp tác xã").unwrap();
        ws.write_string(r, 2, unit).unwrap();
        let dt = ExcelDateTime::from_ymd(2020, 1, day).unwrap();
        ws.write_datetime_with_format(r, 3, &dt, &date).unwrap();
        ws.write_string(r, 4, "trồng lúa và chăn nuôi").unwrap();
        csv.push_str(&format!(
            "cooperative,HTX,{name},{unit},2020-01-{day:02},trồng lúa và chăn nuôi\n"
        ));
        vi_csv.push_str(&format!(
            "{name};Hợp tác xã;{unit};{day:02}/01/2020;trồng lúa và chăn nuôi\n"
        ));
    }
    book.save(dir.join("hop-tac-xa.xlsx")).unwrap();
    std::fs::write(dir.join("records.csv"), csv).unwrap();
    std::fs::write(dir.join("hop-tac-xa.csv"), vi_csv).unwrap();
}

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let files = tempfile::TempDir::new().unwrap();
    write_files(files.path(), rows);
    let size = |f: &str| std::fs::metadata(files.path().join(f)).unwrap().len() as f64 / 1e6;
    let hub = TestHub::create();
    let mut lines = Vec::new();
    for (i, (label, file, check)) in [
        (
            "CSV record file (`kind` column, English headers; the import before spreadsheets)",
            "records.csv",
            false,
        ),
        (
            ".xlsx workbook, Vietnamese headers, Excel dates: `import --check` (preview only)",
            "hop-tac-xa.xlsx",
            true,
        ),
        (
            ".xlsx workbook, Vietnamese headers, Excel dates: `import`",
            "hop-tac-xa.xlsx",
            false,
        ),
        (
            "Vietnamese CSV (`;`, dd/mm/yyyy) through the spreadsheet reader: `import`",
            "hop-tac-xa.csv",
            false,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut node = hub.enroll_node("356", &format!("bench-{i}"));
        node.close();
        let dir = node.dir().to_str().unwrap().to_owned();
        let path = files.path().join(file);
        let mut args = vec!["import", dir.as_str(), path.to_str().unwrap()];
        if check {
            args.push("--check");
        }
        let (t, peak) = measure(&args);
        lines.push(format!(
            "| {label} | {:.1} MB | {:.2} s | {:.0} rows/s | {:.0} MiB |",
            size(file),
            t.as_secs_f64(),
            rows as f64 / t.as_secs_f64(),
            peak as f64 / 1024.0
        ));
    }
    println!("\n| {rows} cooperatives into a fresh node | file | time | rows/s | peak RSS |");
    println!("|---|---|---|---|---|");
    for l in lines {
        println!("{l}");
    }
}

//! Closing a period at a province's scale (issue 11): how long closing
//! 2025 takes, and comparing it with the data now (what the period's page
//! and its report page compute), against building the yearly report
//! itself (the engine's own report time) in the same run; and the size of
//! the period's file.
//!
//! A province of COMMUNES communes × RECORDS cooperatives (founded in
//! 2025, consolidated with the Union's support) is written into a hub
//! store, as `scale_bench` does; the hub is opened in this process.
//!
//! `cargo run --release -p htx-tests --example period_bench [-- COMMUNES RECORDS RUNS]`
//! (defaults: 226 50 5, the whole province of Nam Định);
//! `… period_bench -- national [RECORDS RUNS]`: a country's synthetic tree
//! (350 districts × 10 communes, the hub's `units_dir`), defaults 50 3.

use std::path::Path;
use std::time::Instant;

use htx_core::schema::record_from_strings;
use htx_core::units::{Hierarchy, Level};
use htx_hub::config::HubConfig;
use htx_hub::home::Home;
use htx_hub::hub::Hub;
use htx_hub::periods::{self, PeriodStore};
use htx_hub::report;
use htx_tests::bench::{synthetic_country, write_hub_store};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

fn write_province(dir: &Path, units_dir: &str, communes: &[String], records: usize) {
    let cfg = HubConfig {
        units_dir: units_dir.to_owned(),
        ..Default::default()
    };
    Home::new(dir).init(&cfg).expect("hub init");
    write_hub_store(dir, communes, records, |c, n| {
        let day = format!("2025-{:02}-{:02}", n % 12 + 1, n % 28 + 1);
        record_from_strings(
            "cooperative",
            [
                ("type", "HTX"),
                ("name", &format!("HTX {c} số {n}")),
                ("unit", c),
                ("union_supported", "true"),
                ("founded_on", &day),
                ("consolidated_on", &day),
            ],
        )
        .unwrap()
    });
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let national = std::env::args().nth(1).as_deref() == Some("national");
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("hub");
    let (h, units_dir, n, records, runs) = match national {
        false => (Hierarchy::builtin(), "", arg(1, 226), arg(2, 50), arg(3, 5)),
        true => {
            let h = synthetic_country(&dir.join("units"));
            (h, "units", usize::MAX, arg(2, 50), arg(3, 3))
        }
    };
    let v = h.version("2023").unwrap();
    let communes: Vec<String> = v
        .units()
        .filter(|u| u.level == Level::Commune)
        .map(|u| u.code.clone())
        .take(n)
        .collect();
    let t = Instant::now();
    write_province(&dir, units_dir, &communes, records);
    eprintln!(
        "province written: {} communes × {records} records in {:.1} s",
        communes.len(),
        t.elapsed().as_secs_f64()
    );
    let hub = Hub::open(&dir).expect("hub opens");
    let req = report::Request {
        period: "2025".into(),
        ..Default::default()
    };
    let period = periods::ended_period(hub.plan(), "2025").expect("2025 is over");
    let store = PeriodStore::new(&dir);
    let (mut report_ms, mut close_ms, mut compare_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut moved = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = report::build(&hub, htx_web::Lang::Vi, &req).expect("report");
        report_ms.push(ms(t));
        assert!(!r.sections.is_empty());
        let t = Instant::now();
        let closing = periods::close(&hub, hub.plan(), &period, "bench").expect("closed");
        close_ms.push(ms(t));
        let t = Instant::now();
        let cmp =
            periods::compare(&hub, hub.plan(), &closing, &closing.territory).expect("compared");
        compare_ms.push(ms(t));
        moved += cmp.moved() + cmp.records.len();
        store
            .reopen(&hub.plan().id, &period, "bench")
            .expect("reopened");
    }
    assert_eq!(moved, 0, "nothing changed between close and compare");
    periods::close(&hub, hub.plan(), &period, "bench").expect("closed");
    let file = dir.join("periods/de-an-01-nam-dinh/2025.json");
    let size = std::fs::metadata(&file).unwrap().len();
    println!(
        "{} communes × {records} records = {} records, median of {runs}:",
        communes.len(),
        communes.len() * records
    );
    println!(
        "  report::build (yearly report, 2025)   {:8.1} ms",
        median(report_ms)
    );
    println!(
        "  periods::close (2025)                 {:8.1} ms",
        median(close_ms)
    );
    println!(
        "  periods::compare (province, nothing moved) {:8.1} ms",
        median(compare_ms)
    );
    println!("  period file: {:.1} KiB", size as f64 / 1024.0);
}

//! How long progress takes: the whole province (226 communes, 50 records
//! each) and a national-size synthetic hierarchy (3,500 communes, 50
//! records each), from scratch and for one merged change.
//!
//! `cargo run --release -p htx-core --example progress_bench`
//!
//! Also the memory the engine holds per record, counted by a global
//! allocator that tracks live bytes, against the records' JSON size.
//!
//! With `-- --export DIR`, it writes the national records as CSV for the
//! PostgreSQL comparison (`deploy/bench/postgres.sh`), with our figures and
//! our best time for a full `recompute` of them, instead of the table.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use htx_core::plan::{Compute, Plan};
use htx_core::progress::{Engine, Report, parse_date, recompute};
use htx_core::schema::{Record, Value};
use htx_core::units::{Hierarchy, Level};
use time::Date;

#[path = "../tests/support/counting.rs"]
mod counting;

fn day(s: &str) -> Date {
    parse_date(s).unwrap()
}

fn record(kind: &str, id: String, version: &str, unit: &str, fields: Vec<(&str, Value)>) -> Record {
    let mut r = Record {
        id,
        kind: kind.into(),
        ..Default::default()
    };
    r.fields.insert("unit".into(), Value::Text(unit.into()));
    r.fields
        .insert("unit_version".into(), Value::Text(version.into()));
    // Who recorded it, as every record merged at the hub says.
    r.fields
        .insert("recorded_by".into(), Value::Text(format!("xa-{unit}")));
    for (k, v) in fields {
        r.fields.insert(k.into(), v);
    }
    r
}

/// 50 records for one commune: 4 cooperatives with 2 observations and 2
/// managers each (20), 10 cadres, 10 trainings, 10 activities.
fn commune_records(version: &str, unit: &str, n: usize) -> Vec<Record> {
    let t = |s: &str| Value::Text(s.into());
    let d = |s: &str| Value::Date(day(s));
    let i = Value::Int;
    let id = |what: &str, k: usize| format!("{unit}-{what}{k}");
    let mut out = Vec::with_capacity(50);
    for c in 0..4 {
        let coop = id("c", c);
        let kind = if c % 2 == 0 { "HTX" } else { "THT" };
        out.push(record(
            "cooperative",
            coop.clone(),
            version,
            unit,
            vec![
                ("type", t(kind)),
                ("name", t("HTX")),
                (
                    "founded_on",
                    d(if (n + c).is_multiple_of(3) {
                        "2024-02-01"
                    } else {
                        "2016-05-01"
                    }),
                ),
                ("union_supported", Value::Bool(true)),
                ("consolidated_on", d("2024-06-01")),
            ],
        ));
        for (o, (on, women)) in [("2023-12-31", 4), ("2025-03-31", 6 + (n + c) as i64 % 3)]
            .iter()
            .enumerate()
        {
            out.push(record(
                "observation",
                id(&format!("c{c}o"), o),
                version,
                unit,
                vec![
                    ("cooperative", t(&coop)),
                    ("observed_on", d(on)),
                    ("workers", i(10)),
                    ("female_workers", i(*women)),
                    ("stable_jobs_women", i(3 + o as i64)),
                    ("new_jobs_women", i(1)),
                ],
            ));
        }
        for m in 0..2 {
            out.push(record(
                "manager",
                id(&format!("c{c}m"), m),
                version,
                unit,
                vec![
                    ("cooperative", t(&coop)),
                    ("name", t("Nguyễn Thị A")),
                    (
                        "gender",
                        t(if (c + m) % 3 == 0 { "male" } else { "female" }),
                    ),
                    ("role", t(if m == 0 { "chair" } else { "board_member" })),
                    ("since", d("2020-01-01")),
                ],
            ));
        }
    }
    for k in 0..10 {
        out.push(record(
            "cadre",
            id("k", k),
            version,
            unit,
            vec![
                ("name", t("Trần Thị B")),
                ("level", t("commune")),
                ("kttt_support", Value::Bool(k % 2 == 0)),
                ("since", d("2021-01-01")),
            ],
        ));
    }
    let types = [
        "governance",
        "digital_skills",
        "cadre_kttt",
        "cadre_skills",
        "vocational",
    ];
    for k in 0..10 {
        let attendees = vec![
            id(&format!("c{}m", 2 * k % 4), k / 2 % 2),
            id("k", k),
            id("k", (k + 3) % 10),
        ];
        out.push(record(
            "training",
            id("t", k),
            version,
            unit,
            vec![
                (
                    "held_on",
                    d(if k % 3 == 0 {
                        "2025-09-01"
                    } else {
                        "2024-10-01"
                    }),
                ),
                ("type", t(types[k % types.len()])),
                ("attendees", Value::List(attendees)),
            ],
        ));
    }
    for k in 0..10 {
        out.push(record(
            "activity",
            id("a", k),
            version,
            unit,
            vec![
                ("type", t(if k % 2 == 0 { "loan" } else { "communication" })),
                ("held_on", d("2024-04-01")),
                ("amount_vnd", i(100_000_000)),
            ],
        ));
    }
    out
}

/// 35 provinces x 10 districts x 10 communes.
fn national() -> &'static Hierarchy {
    let mut csv = String::from("level,code,name,type,parent_code\n");
    for p in 0..35 {
        csv += &format!("province,P{p},Tỉnh {p},Tỉnh,\n");
        for d in 0..10 {
            csv += &format!("district,P{p}D{d},Huyện {d},Huyện,P{p}\n");
            for c in 0..10 {
                csv += &format!("commune,P{p}D{d}C{c},Xã {c},Xã,P{p}D{d}\n");
            }
        }
    }
    Box::leak(Box::new(Hierarchy::single("nation", &csv).unwrap()))
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let start = Instant::now();
        let v = f();
        best = best.min(start.elapsed());
        out = Some(v);
    }
    (best, out.unwrap())
}

struct Row {
    records: usize,
    communes: usize,
    scratch: Duration,
    /// The same over the engine's compact records ([`Engine::records`]).
    scratch_slim: Duration,
    /// The trend page over them.
    trend_slim: Duration,
    load: Duration,
    report: Duration,
    /// 43 month ends: `recompute` for each, and `recompute_at` once.
    trend_each: Duration,
    trend_once: Duration,
    trend_page: Duration,
    observation: Duration,
    training: Duration,
    /// A second date kept: its first evaluation, its bytes, and a change
    /// with both dates kept.
    keep: Duration,
    mark_bytes: usize,
    observation_kept: Duration,
    training_kept: Duration,
    /// Bytes a loaded engine holds, and the records' JSON size.
    bytes: usize,
    json: usize,
}

fn measure(h: &'static Hierarchy, version: &str, asked: &str) -> Row {
    let plan = Plan::builtin();
    let as_of = day(AS_OF);
    let v = h.version(version).unwrap();
    let communes: Vec<String> = v
        .units()
        .filter(|u| u.level == Level::Commune)
        .map(|u| u.code.clone())
        .collect();
    let records: Vec<Record> = communes
        .iter()
        .enumerate()
        .flat_map(|(n, c)| commune_records(version, c, n))
        .collect();
    let (scratch, _) = best_of(3, || recompute(&plan, h, asked, as_of, &records).unwrap());
    // A trend: the end of every month from the plan's start to 2026-11-30
    // (43 dates), each date recomputed (before) and all at once (now).
    let months: Vec<Date> = (0..43)
        .map(|m| {
            let (y, mo) = (2023 + (4 + m) / 12, (4 + m) % 12 + 1);
            let next = match mo {
                12 => Date::from_calendar_date(y + 1, time::Month::January, 1),
                _ => Date::from_calendar_date(y, time::Month::try_from(mo as u8 + 1).unwrap(), 1),
            };
            next.unwrap() - time::Duration::days(1)
        })
        .collect();
    let (trend_each, each) = best_of(1, || {
        months
            .iter()
            .map(|d| recompute(&plan, h, asked, *d, &records).unwrap())
            .collect::<Vec<_>>()
    });
    let (trend_once, once) = best_of(1, || {
        htx_core::progress::recompute_at(&plan, h, asked, &months, &records).unwrap()
    });
    assert!(each == once, "the same figures either way");
    let top = each[0].units[0].code.clone();
    let (trend_page, _) = best_of(1, || {
        htx_core::progress::trend(&plan, h, asked, &top, &months, &records).unwrap()
    });
    let mut copies = vec![records.clone(), records.clone(), records.clone()];
    let (load, mut engine) = best_of(3, || {
        let copy = copies.pop().unwrap();
        Engine::new(plan.clone(), h, asked, as_of, copy).unwrap()
    });
    // What a loaded engine holds (its records included), per record.
    let json: usize = records.iter().map(|r| r.to_json().to_string().len()).sum();
    let live = counting::live();
    let held = Engine::new(plan.clone(), h, asked, as_of, records.clone()).unwrap();
    let bytes = counting::live().saturating_sub(live);
    drop(held);
    let slim = engine.records();
    let (scratch_slim, from_slim) =
        best_of(3, || recompute(&plan, h, asked, as_of, &slim).unwrap());
    assert!(
        from_slim == recompute(&plan, h, asked, as_of, &records).unwrap(),
        "the same figures from either form of the records"
    );
    let (trend_slim, _) = best_of(1, || {
        htx_core::progress::trend(&plan, h, asked, &top, &months, &slim).unwrap()
    });
    drop(slim);
    let (report, full) = best_of(3, || engine.report());
    let top = &full.units[0];
    let shown: Vec<String> = top
        .figures
        .iter()
        .filter(|f| &*f.phase == "1" && f.total != Default::default())
        .map(|f| match f.compute {
            Compute::Ratio => format!(
                "{} {}/{}",
                f.indicator, f.total.numerator, f.total.denominator
            ),
            _ => format!("{} {}", f.indicator, f.total.numerator),
        })
        .collect();
    eprintln!("{asked} {} phase 1: {}", top.code, shown.join(", "));
    // The plan's territory: the report's first unit (under 2025, Nam Định's
    // former territory, not the merged province).
    let root = top.code.clone();

    // One merged change, then the province's figures as a reader sees them.
    let changes = 1000;
    let per_change = |engine: &mut Engine, kind: &str| {
        let picked: Vec<Record> = records
            .iter()
            .filter(|r| r.kind == kind)
            .step_by(7)
            .take(changes)
            .cloned()
            .collect();
        let start = Instant::now();
        for (k, mut r) in picked.into_iter().enumerate() {
            let field = if kind == "observation" {
                "stable_jobs_women"
            } else {
                "held_on"
            };
            let v = match kind {
                "observation" => Value::Int(k as i64 % 9),
                _ => Value::Date(day(if k % 2 == 0 {
                    "2025-01-01"
                } else {
                    "2025-08-01"
                })),
            };
            r.fields.insert(field.into(), v);
            engine.upsert(r);
            std::hint::black_box(engine.unit(&root).unwrap());
        }
        start.elapsed() / changes as u32
    };
    let observation = per_change(&mut engine, "observation");
    let training = per_change(&mut engine, "training");
    // The same with a second date kept current (the hub keeps the end of
    // last month for the overview): what keeping it costs at first, in
    // memory, and then per change.
    let before = counting::live();
    let start = Instant::now();
    engine.keep_dates(&[day("2025-05-31")]);
    let keep = start.elapsed();
    let mark_bytes = counting::live().saturating_sub(before);
    let observation_kept = per_change(&mut engine, "observation");
    let training_kept = per_change(&mut engine, "training");
    Row {
        keep,
        mark_bytes,
        observation_kept,
        training_kept,
        records: records.len(),
        communes: communes.len(),
        scratch,
        scratch_slim,
        trend_slim,
        load,
        report,
        trend_each,
        trend_once,
        trend_page,
        observation,
        training,
        bytes,
        json,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

// ---- Export for the PostgreSQL comparison ----------------------------------

/// Every kind the generator makes, with the columns its table has (after
/// `id` and `unit`). A training's attendees go to their own table.
const TABLES: [(&str, &[&str]); 6] = [
    (
        "cooperative",
        &[
            "type",
            "founded_on",
            "dissolved_on",
            "union_supported",
            "consolidated_on",
        ],
    ),
    (
        "observation",
        &[
            "cooperative",
            "observed_on",
            "workers",
            "female_workers",
            "stable_jobs_women",
            "new_jobs_women",
        ],
    ),
    (
        "manager",
        &["cooperative", "gender", "role", "since", "until"],
    ),
    ("cadre", &["kttt_support", "since", "until"]),
    ("training", &["held_on", "type"]),
    ("activity", &["type", "held_on", "amount_vnd"]),
];

/// A field as PostgreSQL's CSV reads it; missing is NULL (empty).
fn cell(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Text(s)) => s.clone(),
        Some(Value::Int(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Date(d)) => htx_core::schema::format_date(*d),
        Some(Value::List(_)) => panic!("lists have their own table"),
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The records, the unit tree, the phases and our figures, as CSV.
fn export(dir: &Path, h: &'static Hierarchy, version: &str, as_of: &str, runs: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let plan = Plan::builtin();
    let as_of_text = as_of;
    let as_of = day(as_of);
    let v = h.version(version).unwrap();
    let communes: Vec<String> = v
        .units()
        .filter(|u| u.level == Level::Commune)
        .map(|u| u.code.clone())
        .collect();
    let records: Vec<Record> = communes
        .iter()
        .enumerate()
        .flat_map(|(n, c)| commune_records(version, c, n))
        .collect();

    // Each unit with its province, district and commune (empty above it).
    let mut units = String::new();
    for u in v.units() {
        let mut path: Vec<&str> = v
            .ancestors(&u.code)
            .iter()
            .rev()
            .map(|a| a.code.as_str())
            .collect();
        path.push(&u.code);
        path.resize(3, "");
        writeln!(units, "{},{}", u.code, path.join(",")).unwrap();
    }
    write(dir, "unit_path.csv", &units);
    let mut phases = String::new();
    for p in &plan.phases {
        let f = htx_core::schema::format_date;
        writeln!(phases, "{},{},{}", p.id, f(p.start), f(p.end)).unwrap();
    }
    write(dir, "phase.csv", &phases);
    for (kind, columns) in TABLES {
        let mut out = String::new();
        for r in records.iter().filter(|r| r.kind == kind) {
            let mut row = vec![r.id.clone(), cell(r.fields.get("unit"))];
            row.extend(columns.iter().map(|c| cell(r.fields.get(*c))));
            writeln!(out, "{}", row.join(",")).unwrap();
        }
        write(dir, &format!("{kind}.csv"), &out);
    }
    let mut attendees = String::new();
    for r in records.iter().filter(|r| r.kind == "training") {
        if let Some(Value::List(people)) = r.fields.get("attendees") {
            for p in people {
                writeln!(attendees, "{},{p}", r.id).unwrap();
            }
        }
    }
    write(dir, "training_attendee.csv", &attendees);

    let (best, report) = best_of(runs, || {
        recompute(&plan, h, version, as_of, &records).unwrap()
    });
    write(dir, "ours.csv", &figures_csv(&plan, &report));
    println!("records={}", records.len());
    println!("units={}", report.units.len());
    println!("as_of={as_of_text}");
    println!("plan_start={}", htx_core::schema::format_date(plan.start));
    println!("ours_ms={:.1}", best.as_secs_f64() * 1e3);
}

/// One row per unit and phase: the total of each indicator (numerator and
/// denominator for a ratio), sorted by unit code then phase, as the SQL
/// writes them.
fn figures_csv(plan: &Plan, report: &Report) -> String {
    let mut header = vec!["code".to_owned(), "phase".to_owned()];
    for ind in &plan.indicators {
        let id = ind.id.to_lowercase();
        match ind.compute {
            Compute::Ratio => header.extend([format!("{id}_num"), format!("{id}_den")]),
            _ => header.push(id),
        }
    }
    let mut rows = Vec::new();
    for u in &report.units {
        for p in &plan.phases {
            let mut row = vec![u.code.clone(), p.id.clone()];
            for ind in &plan.indicators {
                let f = u.figure(&ind.id, &p.id).unwrap();
                row.push(f.total.numerator.to_string());
                if ind.compute == Compute::Ratio {
                    row.push(f.total.denominator.to_string());
                }
            }
            rows.push(row);
        }
    }
    rows.sort();
    let mut out = header.join(",") + "\n";
    for r in rows {
        out += &r.join(",");
        out.push('\n');
    }
    out
}

const AS_OF: &str = "2025-06-30";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--export") {
        let dir = args.get(at + 1).expect("--export DIR");
        let runs = std::env::var("RUNS").map_or(5, |r| r.parse().expect("RUNS is a number"));
        let as_of = std::env::var("AS_OF").unwrap_or_else(|_| AS_OF.to_owned());
        return export(Path::new(dir), national(), "nation", &as_of, runs);
    }
    let builtin = Hierarchy::builtin();
    let columns = [
        ("Nam Định, 2023 hierarchy", measure(builtin, "2023", "2023")),
        (
            "Nam Định data, asked under 2025",
            measure(builtin, "2023", "2025"),
        ),
        (
            "national (synthetic)",
            measure(national(), "nation", "nation"),
        ),
    ];
    let row = |name: &str, f: &dyn Fn(&Row) -> String| {
        let cells: Vec<String> = columns.iter().map(|(_, r)| f(r)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    println!("| | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(columns.len()));
    row("communes × 50 records", &|r| {
        format!("{} × 50 = {}", r.communes, r.records)
    });
    row(
        "from scratch: `recompute` (every unit, indicator, phase)",
        &|r| ms(r.scratch),
    );
    row("… the same over the engine's compact records", &|r| {
        ms(r.scratch_slim)
    });
    row("from scratch: `Engine::new` (load, keep state)", &|r| {
        ms(r.load)
    });
    row("`Engine::report` (every figure of every unit)", &|r| {
        ms(r.report)
    });
    row(
        "trend, 43 month ends: `recompute` for each date (before)",
        &|r| ms(r.trend_each),
    );
    row(
        "trend, 43 month ends: `recompute_at`, every unit (now)",
        &|r| ms(r.trend_once),
    );
    row(
        "trend, 43 month ends: `trend`, the territory's figures (a trend page)",
        &|r| ms(r.trend_page),
    );
    row("… the same over the engine's compact records", &|r| {
        ms(r.trend_slim)
    });
    row(
        "one changed observation → province figures (mean of 1,000)",
        &|r| us(r.observation),
    );
    row(
        "one changed training → province figures (mean of 1,000)",
        &|r| us(r.training),
    );
    row(
        "keeping a second date (the end of last month): first evaluation",
        &|r| ms(r.keep),
    );
    row("… its memory", &|r| {
        format!("{:.1} MB", r.mark_bytes as f64 / 1e6)
    });
    row(
        "… one changed observation → province figures, both dates kept",
        &|r| us(r.observation_kept),
    );
    row(
        "… one changed training → province figures, both dates kept",
        &|r| us(r.training_kept),
    );
    row("memory a loaded engine holds, per record", &|r| {
        format!("{} B", r.bytes / r.records)
    });
    row("the records' JSON, per record", &|r| {
        format!(
            "{} B ({:.1}×)",
            r.json / r.records,
            r.bytes as f64 / r.json as f64
        )
    });
}

//! Progress against the plan: a worked example computed by hand, the
//! incremental engine held to a plain recomputation on random data, and
//! bad input.

use std::collections::{BTreeMap, HashMap, HashSet};

use htx_core::plan::{Compute, Goal, Plan};
use htx_core::progress::{
    Engine, Figure, ProgressError, Report, Status, Tally, parse_date, recompute, recompute_at,
    trend,
};
use htx_core::schema::{Record, Value, record_from_strings};
use htx_core::territory::{Part, Territory};
use htx_core::units::{Hierarchy, UnitError};
use proptest::prelude::*;
use time::Date;

fn day(s: &str) -> Date {
    parse_date(s).unwrap()
}

/// A record of `kind` entered under `unit` of hierarchy `version`.
fn rec(kind: &str, id: &str, version: &str, unit: &str, fields: &[(&str, &str)]) -> Record {
    let mut r = record_from_strings(kind, fields.iter().copied()).unwrap();
    r.id = id.into();
    r.fields.insert("unit".into(), Value::Text(unit.into()));
    r.fields
        .insert("unit_version".into(), Value::Text(version.into()));
    r
}

// ---- (a) The worked example ------------------------------------------------
//
// The shipped plan, plus three sub-targets (a district, a commune, another
// district), asked as of 2025-06-30. The plan starts 2023-05-01.
//   days from the plan's start to 2025-06-30:  731 + 60  = 791
//   days from the plan's start to 2025-12-31:  731 + 244 = 975   (phase 1 ends)
//   days from the plan's start to 2030-12-31: 2557 + 244 = 2801  (phase 2 ends)
// so the straight line stands at 791/975 = 0.811282 of a phase-1 target and
// at 791/2801 = 0.282399 of a phase-2 target.

const SUB_TARGETS: &str = r#"
[[targets]]
indicator = "HTX_CONSOLIDATED"
phase = "1"
unit = "356"        # Thành phố Nam Định
at_least = 1

[[targets]]
indicator = "NEW_HTX"
phase = "1"
unit = "13633"      # Phường Hạ Long
range = [1, 2]

[[targets]]
indicator = "STABLE_JOBS"
phase = "1"
unit = "359"        # Huyện Vụ Bản
at_least = 20
"#;

fn example_plan() -> Plan {
    Plan::parse(&format!(
        "{}{SUB_TARGETS}",
        htx_core::plan::DE_AN_01_NAM_DINH
    ))
    .unwrap()
}

/// The records of `fixtures/worked-example.txt`, with why each counts.
fn example_records() -> Vec<Record> {
    let text = include_str!("fixtures/worked-example.txt");
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let [kind, id, version, unit, fields] = cols[..] else {
            panic!("bad fixture line {line:?}");
        };
        let pairs: Vec<(&str, &str)> = fields
            .split(", ")
            .map(|kv| kv.split_once('=').expect("field=value"))
            .collect();
        let deleted = pairs.iter().find(|(k, _)| *k == "deleted_at");
        let others: Vec<(&str, &str)> = pairs
            .iter()
            .copied()
            .filter(|(k, _)| *k != "deleted_at")
            .collect();
        let mut r = rec(kind, id, version, unit, &others);
        if let Some((_, at)) = deleted {
            r.fields
                .insert("deleted_at".into(), Value::Text((*at).into()));
        }
        out.push(r);
    }
    assert_eq!(out.len(), 32);
    out
}

/// Non-zero totals per unit, the same in both phases (the date is before
/// phase 1 ends). Ratios as (numerator, denominator).
fn expected_totals_2023() -> BTreeMap<&'static str, Vec<(&'static str, i64, i64)>> {
    // Hạ Long: A (consolidated, new, in scope; jobs 6 stable, 3 new from oA1);
    // managers: mA trained, mA2 not yet -> 1/2 (mF's cooperative is deleted);
    // cadre K3 trained in skills -> 1/1, not KTTT; Act1.
    let ha_long = vec![
        ("HTX_CONSOLIDATED", 1, 0),
        ("STABLE_JOBS", 6, 0),
        ("STABLE_JOBS_HTX", 6, 0),
        ("MANAGERS_TRAINED_PCT", 1, 2),
        ("NEW_HTX", 1, 0),
        ("NEW_HTX_THT", 1, 0),
        ("NEW_JOBS", 3, 0),
        ("CADRES_SKILLS_PCT", 1, 1),
        ("ACTIVITIES", 1, 0),
    ];
    // Gôi: B (consolidated; oB2: 5 stable, 2 new); Act2 (a loan of 500m).
    let goi = vec![
        ("HTX_CONSOLIDATED", 1, 0),
        ("STABLE_JOBS", 5, 0),
        ("STABLE_JOBS_HTX", 5, 0),
        ("NEW_JOBS", 2, 0),
        ("ACTIVITIES", 1, 0),
        ("LOANS_VND", 500_000_000, 0),
    ];
    // Vụ Bản = Gôi + D at the district itself (THT consolidated, new,
    // 7 stable, 5 new): 5 + 7 = 12 stable jobs, 2 + 5 = 7 new.
    let vu_ban = vec![
        ("HTX_CONSOLIDATED", 1, 0),
        ("THT_CONSOLIDATED", 1, 0),
        ("STABLE_JOBS", 12, 0),
        ("STABLE_JOBS_HTX", 5, 0),
        ("STABLE_JOBS_THT", 7, 0),
        ("NEW_HTX_THT", 1, 0),
        ("NEW_JOBS", 7, 0),
        ("ACTIVITIES", 1, 0),
        ("LOANS_VND", 500_000_000, 0),
    ];
    // Nam Giang: E (new HTX, woman director trained by T1).
    let nam_giang = vec![
        ("NEW_HTX", 1, 0),
        ("NEW_HTX_THT", 1, 0),
        ("MANAGERS_TRAINED_PCT", 1, 1),
    ];
    // Hải Hậu: C counts for nothing; K2 at the district: KTTT 0/1, skills 1/1.
    let hai_hau = vec![
        ("CADRES_KTTT_TRAINED_PCT", 0, 1),
        ("CADRES_SKILLS_PCT", 1, 1),
    ];
    // The province: all of the above, plus K1 (KTTT trained 1/1, skills 0/1)
    // and M1 at the province itself.
    //   consolidated HTX: A, B = 2; THT: D = 1
    //   stable jobs 6 + 5 + 7 = 18 (HTX 11, THT 7); new jobs 3 + 2 + 5 = 10
    //   female HTX managers trained: mA, mE of mA, mA2, mE = 2/3
    //   new HTX: A, E = 2; new HTX or THT: A, D, E = 3
    //   cadres KTTT: K1 of K1, K2 = 1/2 (K3 not KTTT, K4 gone)
    //   cadres skills: K2, K3 of K1, K2, K3 = 2/3
    //   activities since the plan's start: Act1, Act2 = 2; loans 500m
    let province = vec![
        ("HTX_CONSOLIDATED", 2, 0),
        ("THT_CONSOLIDATED", 1, 0),
        ("STABLE_JOBS", 18, 0),
        ("STABLE_JOBS_HTX", 11, 0),
        ("STABLE_JOBS_THT", 7, 0),
        ("MANAGERS_TRAINED_PCT", 2, 3),
        ("NEW_HTX", 2, 0),
        ("NEW_HTX_THT", 3, 0),
        ("NEW_JOBS", 10, 0),
        ("ASSOCIATION", 1, 0),
        ("CADRES_KTTT_TRAINED_PCT", 1, 2),
        ("CADRES_SKILLS_PCT", 2, 3),
        ("ACTIVITIES", 2, 0),
        ("LOANS_VND", 500_000_000, 0),
    ];
    BTreeMap::from([
        ("13633", ha_long.clone()),
        ("356", ha_long),
        ("13741", goi),
        ("359", vu_ban),
        ("13966", nam_giang.clone()),
        ("362", nam_giang),
        ("366", hai_hau),
        ("36", province),
    ])
}

#[track_caller]
fn assert_totals(report: &Report, expected: &BTreeMap<&str, Vec<(&str, i64, i64)>>) {
    for unit in &report.units {
        let want: HashMap<&str, Tally> = expected
            .get(unit.code.as_str())
            .into_iter()
            .flatten()
            .map(|&(i, n, d)| {
                (
                    i,
                    Tally {
                        numerator: n.into(),
                        denominator: d.into(),
                    },
                )
            })
            .collect();
        for f in &unit.figures {
            let w = want.get(&*f.indicator).copied().unwrap_or_default();
            assert_eq!(
                f.total, w,
                "{} {} phase {}",
                unit.code, f.indicator, f.phase
            );
        }
    }
}

#[track_caller]
fn assert_figure(
    f: &Figure,
    value: f64,
    goal: Option<Goal>,
    expected: Option<f64>,
    share: Option<f64>,
    status: Status,
) {
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-4,
        (a, b) => a == b,
    };
    let what = format!("{} phase {}: {f:?}", f.indicator, f.phase);
    assert!(close(f.value, Some(value)), "value, {what}");
    assert_eq!(f.goal, goal, "goal, {what}");
    assert!(close(f.expected, expected), "expected, {what}");
    assert!(close(f.share, share), "share, {what}");
    assert_eq!(f.status, status, "status, {what}");
}

#[test]
fn worked_example_under_the_plans_own_hierarchy() {
    let plan = example_plan();
    let h = Hierarchy::builtin();
    let r = recompute(&plan, h, "2023", day("2025-06-30"), &example_records()).unwrap();
    assert_totals(&r, &expected_totals_2023());

    // What was placed at a district or the province itself.
    let direct = |unit: &str, ind: &str| r.unit(unit).unwrap().figure(ind, "1").unwrap().direct;
    assert_eq!(direct("359", "STABLE_JOBS").numerator, 7); // D, entered under 2025's 13741
    assert_eq!(direct("359", "HTX_CONSOLIDATED").numerator, 0); // B is at 13741 below
    assert_eq!(
        direct("366", "CADRES_SKILLS_PCT"),
        Tally {
            numerator: 1,
            denominator: 1
        }
    );
    assert_eq!(direct("36", "ASSOCIATION").numerator, 1);
    assert_eq!(
        direct("36", "CADRES_KTTT_TRAINED_PCT"),
        Tally {
            numerator: 1,
            denominator: 1
        }
    );

    // Act4 (2025's Phủ Lý, once Hà Nam's) lies outside the plan's
    // territory: counted by no figure of this plan, named as outside.
    assert!(r.unplaced.is_empty());
    assert_eq!(r.outside, ["Act4"]);
    assert_eq!(r.territory.name_vi, "Tỉnh Nam Định");
    assert!(!r.territory.former);

    // The province against the plan's targets. Phase 1: line at 0.811282;
    // phase 2: line at 0.282399.
    let p = r.unit("36").unwrap();
    let fig = |ind: &str, phase: &str| p.figure(ind, phase).unwrap();
    use Status::*;
    // 2 of at least 10: line 10 * 0.811282 = 8.1128, share 2/10.
    assert_figure(
        fig("HTX_CONSOLIDATED", "1"),
        2.0,
        Some(Goal::AtLeast(10.0)),
        Some(8.1128),
        Some(0.2),
        Behind,
    );
    // Phase 2 starts on 2026-01-01, from what phase 1 reached: before then
    // its line stands where it starts, at phase 1's value (2): on track.
    assert_figure(
        fig("HTX_CONSOLIDATED", "2"),
        2.0,
        Some(Goal::AtLeast(20.0)),
        Some(2.0),
        Some(0.1),
        OnTrack,
    );
    // 1 of 30: line 24.3385; phase 2 from 1.
    assert_figure(
        fig("THT_CONSOLIDATED", "1"),
        1.0,
        Some(Goal::AtLeast(30.0)),
        Some(24.3385),
        Some(1.0 / 30.0),
        Behind,
    );
    assert_figure(
        fig("THT_CONSOLIDATED", "2"),
        1.0,
        Some(Goal::AtLeast(60.0)),
        Some(1.0),
        Some(1.0 / 60.0),
        OnTrack,
    );
    // 18 of 650: line 527.3333; phase 2 has no STABLE_JOBS target.
    assert_figure(
        fig("STABLE_JOBS", "1"),
        18.0,
        Some(Goal::AtLeast(650.0)),
        Some(527.3333),
        Some(18.0 / 650.0),
        Behind,
    );
    assert_figure(fig("STABLE_JOBS", "2"), 18.0, None, None, None, NoTarget);
    // More than 400 in HTX by 2030: 11, the line not started (from 11).
    assert_figure(
        fig("STABLE_JOBS_HTX", "2"),
        11.0,
        Some(Goal::MoreThan(400.0)),
        Some(11.0),
        Some(11.0 / 400.0),
        OnTrack,
    );
    // 1,300 in THT: 7, from 7.
    assert_figure(
        fig("STABLE_JOBS_THT", "2"),
        7.0,
        Some(Goal::AtLeast(1300.0)),
        Some(7.0),
        Some(7.0 / 1300.0),
        OnTrack,
    );
    // The percent: 2 of 3 female HTX managers = 66.67% of 100%: behind the
    // phase-1 line (81.1282), on phase 2's (not started: from 66.67).
    let m = fig("MANAGERS_TRAINED_PCT", "1");
    assert_eq!(
        m.total,
        Tally {
            numerator: 2,
            denominator: 3
        }
    );
    assert_eq!(m.compute, Compute::Ratio);
    assert_figure(
        m,
        200.0 / 3.0,
        Some(Goal::AtLeast(100.0)),
        Some(81.1282),
        Some(2.0 / 3.0),
        Behind,
    );
    assert_figure(
        fig("MANAGERS_TRAINED_PCT", "2"),
        200.0 / 3.0,
        Some(Goal::AtLeast(100.0)),
        Some(200.0 / 3.0),
        Some(2.0 / 3.0),
        OnTrack,
    );
    // The range 5–7: 2 new HTX, line 5 * 0.811282 = 4.0564, share 2/5.
    assert_figure(
        fig("NEW_HTX", "1"),
        2.0,
        Some(Goal::Range(5.0, 7.0)),
        Some(4.0564),
        Some(0.4),
        Behind,
    );
    // 10 new HTX or THT by 2030: 3, from 3: on track.
    assert_figure(
        fig("NEW_HTX_THT", "2"),
        3.0,
        Some(Goal::AtLeast(10.0)),
        Some(3.0),
        Some(0.3),
        OnTrack,
    );
    // 150 new jobs: 10, line 121.6923.
    assert_figure(
        fig("NEW_JOBS", "1"),
        10.0,
        Some(Goal::AtLeast(150.0)),
        Some(121.6923),
        Some(10.0 / 150.0),
        Behind,
    );
    // The association, founded 2025-03-08: a milestone has no line.
    assert_figure(
        fig("ASSOCIATION", "1"),
        1.0,
        Some(Goal::Milestone),
        None,
        Some(1.0),
        Achieved,
    );
    // Cadres: KTTT 1/2 = 50% (phase 1 line 81.1282, phase 2 from 50);
    // skills 2/3 = 66.67% of 80% (line 64.9026, share 0.8333) and of 90%
    // (from 66.67, share 0.7407).
    assert_figure(
        fig("CADRES_KTTT_TRAINED_PCT", "1"),
        50.0,
        Some(Goal::AtLeast(100.0)),
        Some(81.1282),
        Some(0.5),
        Behind,
    );
    assert_figure(
        fig("CADRES_KTTT_TRAINED_PCT", "2"),
        50.0,
        Some(Goal::AtLeast(100.0)),
        Some(50.0),
        Some(0.5),
        OnTrack,
    );
    assert_figure(
        fig("CADRES_SKILLS_PCT", "1"),
        200.0 / 3.0,
        Some(Goal::AtLeast(80.0)),
        Some(64.9026),
        Some(0.8333),
        OnTrack,
    );
    assert_figure(
        fig("CADRES_SKILLS_PCT", "2"),
        200.0 / 3.0,
        Some(Goal::AtLeast(90.0)),
        Some(200.0 / 3.0),
        Some(0.7407),
        OnTrack,
    );
    // Indicators with no target still show their value.
    assert_figure(fig("LOANS_VND", "1"), 5e8, None, None, None, NoTarget);

    // Sub-targets, from the same file.
    let sub = |unit: &str, ind: &str| r.unit(unit).unwrap().figure(ind, "1").unwrap().clone();
    // Nam Định city, at least 1 consolidated HTX: A. Line 0.8113.
    assert_figure(
        &sub("356", "HTX_CONSOLIDATED"),
        1.0,
        Some(Goal::AtLeast(1.0)),
        Some(0.8113),
        Some(1.0),
        Achieved,
    );
    // Hạ Long, 1 to 2 new HTX: A.
    assert_figure(
        &sub("13633", "NEW_HTX"),
        1.0,
        Some(Goal::Range(1.0, 2.0)),
        Some(0.8113),
        Some(1.0),
        Achieved,
    );
    // Vụ Bản, 20 stable jobs: 12, line 16.2256.
    assert_figure(
        &sub("359", "STABLE_JOBS"),
        12.0,
        Some(Goal::AtLeast(20.0)),
        Some(16.2256),
        Some(0.6),
        Behind,
    );
    // A district without a target of its own shows none.
    assert_eq!(sub("366", "HTX_CONSOLIDATED").status, NoTarget);
    // A percent with nothing to divide by.
    assert_eq!(sub("366", "MANAGERS_TRAINED_PCT").value, None);
    assert_eq!(r.phase_now, "1");

    // "At this level / not attributable below" on the wire: Vụ Bản's D,
    // entered under a 2025 commune that only Vụ Bản wholly holds, and the
    // province's own cadre K1 and milestone M1; the rows add up.
    let wire = htx_core::report::to_wire(&r, Some("36"), |_| Default::default()).unwrap();
    let wf = |u: &str, ind: &str| {
        wire.units
            .iter()
            .find(|x| x.unit == u)
            .unwrap()
            .figures
            .iter()
            .find(|f| &*f.indicator == ind && &*f.phase == "1")
            .unwrap()
            .clone()
    };
    assert_eq!(wf("359", "STABLE_JOBS").here_numerator, 7);
    assert_eq!(wf("36", "ASSOCIATION").here_numerator, 1);
    let k = wf("36", "CADRES_KTTT_TRAINED_PCT");
    assert_eq!((k.here_numerator, k.here_denominator), (1, 1));
    // Act4 is outside the territory: counted as such, not as unplaced.
    assert!(wire.unplaced_records.is_empty());
    assert_eq!(wire.outside, 1);
    assert_eq!(wire.plan, "de-an-01-nam-dinh");
    assert!(wire.plan_name_vi.starts_with("Kế hoạch thực hiện Đề án"));
    let table = htx_core::report::to_table(&wire);
    assert!(
        table.contains("tại cấp này (không phân bổ được xuống cấp dưới) / at this level"),
        "{table}"
    );
    assert!(
        table.contains(
            "1 bản ghi ngoài địa bàn, thuộc kế hoạch khác / record(s) outside the territory"
        ),
        "{table}"
    );
    assert!(
        table.contains("kế hoạch / plan de-an-01-nam-dinh"),
        "{table}"
    );
    // Readable by the people who report: the date as they write it, the
    // statuses and the indicators' names in Vietnamese from the plan file,
    // amounts grouped.
    assert!(table.contains("đến ngày / as of 30/06/2025"), "{table}");
    assert!(table.contains("chậm tiến độ (behind)"), "{table}");
    assert!(
        table.contains(
            "LOANS_VND: Vốn vay hỗ trợ HTX (đồng) / Loans arranged for cooperatives (VND)"
        ),
        "{table}"
    );
    assert!(table.contains("500.000.000"), "{table}");
    let loans = wf("36", "LOANS_VND");
    assert_eq!(loans.indicator_name_vi, "Vốn vay hỗ trợ HTX (đồng)");
    assert_eq!(
        (loans.status.as_str(), loans.status_vi.as_str()),
        ("no_target", "chưa giao chỉ tiêu")
    );
    let csv = htx_core::report::to_csv(&wire);
    assert!(
        csv.lines().any(
            |l| l.starts_with("359,Huyện Vụ Bản,district,STABLE_JOBS,1,sum,7,")
                && l.contains(",at_this_level,")
        ),
        "{csv}"
    );
}

#[test]
fn phase_two_starts_from_what_phase_one_reached_and_phase_one_ends() {
    // 2026-12-31: phase 1 is over (frozen at 2025-12-31), phase 2 is
    // 364 of its 1825 days along.
    let (plan, h) = (example_plan(), Hierarchy::builtin());
    let r = recompute(&plan, h, "2023", day("2026-12-31"), &example_records()).unwrap();
    assert_eq!(r.phase_now, "2");
    let p = r.unit("36").unwrap();
    let one = p.figure("HTX_CONSOLIDATED", "1").unwrap();
    let two = p.figure("HTX_CONSOLIDATED", "2").unwrap();
    // Phase 1's target (at least 10) was not met by its last day.
    assert!(one.value.unwrap() < 10.0);
    assert_eq!(one.status, Status::NotAchieved);
    let from = one.value.unwrap();
    let want = from + (20.0 - from) * 364.0 / 1825.0;
    assert!((two.expected.unwrap() - want).abs() < 1e-9, "{two:?}");
    // The range 5–7 of new HTX and the milestone, after phase 1: judged.
    let new_htx = p.figure("NEW_HTX", "1").unwrap();
    assert_ne!(new_htx.status, Status::OnTrack);
    assert_ne!(new_htx.status, Status::Behind);
}

#[test]
fn worked_example_under_the_2024_hierarchy() {
    let h = Hierarchy::builtin();
    let (plan, records, date) = (example_plan(), example_records(), day("2025-06-30"));
    let r = recompute(&plan, h, "2024", date, &records).unwrap();
    // A, entered under 2023's 13633, counts under 2024's 13681, which absorbed it.
    let mut expected = expected_totals_2023();
    let ha_long = expected.remove("13633").unwrap();
    expected.insert("13681", ha_long);
    assert_totals(&r, &expected);
    assert_eq!(r.unit("13681").unwrap().name, "Phường Quang Trung");
    // Its sub-target followed it.
    let f = r.unit("13681").unwrap().figure("NEW_HTX", "1").unwrap();
    assert_eq!(
        (f.goal, f.status),
        (Some(Goal::Range(1.0, 2.0)), Status::Achieved)
    );
}

#[test]
fn worked_example_under_the_2025_hierarchy() {
    let h = Hierarchy::builtin();
    let (plan, records, date) = (example_plan(), example_records(), day("2025-06-30"));
    let r = recompute(&plan, h, "2025", date, &records).unwrap();
    let old = expected_totals_2023();
    let mut expected = BTreeMap::new();
    // A -> 13681 -> 13669 Phường Nam Định.
    expected.insert("13669", old["13633"].clone());
    // B (2023's 13741, Thị trấn Gôi) became part of 2025's 13741 Xã Vụ Bản,
    // where D was entered: Gôi and D together, i.e. Vụ Bản district's totals.
    expected.insert("13741", old["359"].clone());
    expected.insert("13966", old["13966"].clone());
    // The plan covers Nam Định: under 2025 its figures are those of the
    // units Nam Định became, under the territory labelled as such, never
    // the merged province (Act4 in Hà Nam's Phủ Lý stays outside).
    expected.insert("36", old["36"].clone());
    assert_totals(&r, &expected);
    assert!(r.unplaced.is_empty());
    assert_eq!(r.outside, ["Act4"]);
    assert!(r.unit("37").is_none() && r.unit("13285").is_none());
    assert_eq!(r.units[0].code, "36");
    assert_eq!(r.units[0].name, "Tỉnh Nam Định (địa bàn cũ)");
    assert!(r.territory.former);
    assert_eq!(r.territory.name_en, "Tỉnh Nam Định (former territory)");
    // Every unit below it is a 2025 commune wholly in Nam Định.
    for u in &r.units[1..] {
        assert_eq!(u.parent.as_deref(), Some("36"), "{}", u.code);
        let back = h.resolve("2025", &u.code, "2023").unwrap();
        assert!(h.version("2023").unwrap().within(&back, "36"));
    }
    // 56 of the 129 communes were Nam Định's only (the source's
    // old_province_codes), one more is listed with both 36 and 37 (Nam
    // Đồng, whose stray code is ignored: see units.rs).
    assert_eq!(r.units.len() - 1, 57);
    // The province's targets hold for the territory; the city's and Vụ
    // Bản's sub-targets have no unit in 2025 and are not guessed.
    let p = r.unit("36").unwrap();
    assert_eq!(
        p.figure("HTX_CONSOLIDATED", "1").unwrap().goal,
        Some(Goal::AtLeast(10.0))
    );
    assert_eq!(
        p.figure("STABLE_JOBS", "1").unwrap().goal,
        Some(Goal::AtLeast(650.0))
    );
    // Cadres of the old province and of Hải Hậu district are at the province itself.
    let k = p.figure("CADRES_KTTT_TRAINED_PCT", "1").unwrap();
    assert_eq!(
        (k.direct, k.total),
        (
            k.total,
            Tally {
                numerator: 1,
                denominator: 2
            }
        )
    );
}

#[test]
fn the_engine_agrees_with_the_worked_example_and_follows_changes() {
    let h = Hierarchy::builtin();
    let (plan, records, date) = (example_plan(), example_records(), day("2025-06-30"));
    let mut e = Engine::new(plan.clone(), h, "2023", date, records.clone()).unwrap();
    assert_eq!(
        e.report(),
        recompute(&plan, h, "2023", date, &records).unwrap()
    );

    // A new observation of C: 11 of 20 workers women. C comes into scope.
    let obs = rec(
        "observation",
        "oC2",
        "2023",
        "14215",
        &[
            ("cooperative", "C"),
            ("observed_on", "2025-06-01"),
            ("workers", "20"),
            ("female_workers", "11"),
            ("stable_jobs_women", "9"),
            ("new_jobs_women", "0"),
        ],
    );
    e.upsert(obs.clone());
    let f = |e: &mut Engine, unit: &str, ind: &str| {
        e.unit(unit)
            .unwrap()
            .figure(ind, "1")
            .unwrap()
            .total
            .numerator
    };
    assert_eq!(f(&mut e, "36", "HTX_CONSOLIDATED"), 3);
    assert_eq!(f(&mut e, "366", "STABLE_JOBS"), 9);
    assert_eq!(f(&mut e, "36", "STABLE_JOBS"), 27);
    // T2 moved before the date: mA2 trained, 3 of 3.
    let mut t2 = records.iter().find(|r| r.id == "T2").unwrap().clone();
    t2.fields
        .insert("held_on".into(), Value::Date(day("2025-06-01")));
    e.upsert(t2.clone());
    let m = e
        .unit("36")
        .unwrap()
        .figure("MANAGERS_TRAINED_PCT", "1")
        .unwrap()
        .clone();
    assert_eq!(
        (m.total, m.status),
        (
            Tally {
                numerator: 3,
                denominator: 3
            },
            Status::Achieved
        )
    );
    // The observation deleted again: back where it was.
    e.delete("oC2");
    assert_eq!(f(&mut e, "36", "STABLE_JOBS"), 18);
    // And the same as a plain recomputation at every unit.
    let mut now = records.clone();
    now.retain(|r| r.id != "T2");
    now.push(t2);
    assert_eq!(e.report(), recompute(&plan, h, "2023", date, &now).unwrap());
    // A new day moves the engine's figures like a recomputation.
    e.set_as_of(day("2026-03-01"));
    assert_eq!(
        e.report(),
        recompute(&plan, h, "2023", day("2026-03-01"), &now).unwrap()
    );
}

#[test]
fn sub_targets_follow_their_units_into_newer_hierarchies() {
    let text = format!(
        "{}{}",
        htx_core::plan::DE_AN_01_NAM_DINH,
        r#"
[[targets]]
indicator = "NEW_HTX_THT"
phase = "1"
unit = "356"
at_least = 2

[[targets]]
indicator = "NEW_HTX_THT"
phase = "1"
unit = "358"
at_least = 1

[[targets]]
indicator = "CADRES_SKILLS_PCT"
phase = "1"
unit = "356"
at_least = 70

[[targets]]
indicator = "CADRES_SKILLS_PCT"
phase = "1"
unit = "358"
at_least = 60
"#
    );
    let (plan, h, date) = (
        Plan::parse(&text).unwrap(),
        Hierarchy::builtin(),
        day("2025-06-30"),
    );
    let goal =
        |r: &Report, unit: &str, ind: &str| r.unit(unit).unwrap().figure(ind, "1").unwrap().goal;
    // 2023: each district has its own.
    let r = recompute(&plan, h, "2023", date, &[] as &[Record]).unwrap();
    assert_eq!(goal(&r, "358", "NEW_HTX_THT"), Some(Goal::AtLeast(1.0)));
    // 2024: Mỹ Lộc (358) joined the city (356): counts add up, percents
    // that differ are not guessed.
    let r = recompute(&plan, h, "2024", date, &[] as &[Record]).unwrap();
    assert_eq!(goal(&r, "356", "NEW_HTX_THT"), Some(Goal::AtLeast(3.0)));
    assert_eq!(goal(&r, "356", "CADRES_SKILLS_PCT"), None);
    // 2025: no unit is either district; the territory keeps its own target.
    let r = recompute(&plan, h, "2025", date, &[] as &[Record]).unwrap();
    assert_eq!(goal(&r, "36", "NEW_HTX_THT"), None);
    assert_eq!(
        goal(&r, "36", "CADRES_SKILLS_PCT"),
        Some(Goal::AtLeast(80.0))
    );
}

// ---- (b) Incremental = recomputed, on random data --------------------------

/// Indicators that look further than the shipped plan (reach 2) or use
/// other conditions, added with no code change.
const EXTRA_INDICATORS: &str = r#"
[[indicators]]
id = "IN_SCOPE_MANAGERS_TRAINED_PCT"
name = "Managers of in-scope cooperatives who attended any training"
kind = "manager"
compute = "ratio"
where = [{ ref = "cooperative", where = [{ rule = "in_scope" }] }]
numerator = [{ has = "training" }]

[[indicators]]
id = "UNCLASSIFIED_ACTIVE"
name = "Cooperatives not dissolved and not yet classified"
kind = "cooperative"
compute = "count"
where = [{ not = { field = "classification", set = true } }, { field = "status", ne = "dissolved" }]

[[indicators]]
id = "WORKERS_PHASE"
name = "Workers of cooperatives observed within the phase"
kind = "observation"
compute = "sum"
field = "workers"
where = [{ field = "observed_on", ge = "$phase_start" }, { field = "observed_on", le = "$phase_end" }]
"#;

fn random_plan() -> Plan {
    let p = Plan::parse(&format!(
        "{}{SUB_TARGETS}{EXTRA_INDICATORS}",
        htx_core::plan::DE_AN_01_NAM_DINH
    ))
    .unwrap();
    assert_eq!(p.reach(), 2);
    p
}

const KINDS: [&str; 17] = [
    "cooperative",
    "cooperative",
    "cooperative",
    "cooperative",
    "observation",
    "observation",
    "observation",
    "observation",
    "manager",
    "manager",
    "manager",
    "cadre",
    "cadre",
    "training",
    "training",
    "milestone",
    "activity",
];
const UNITS: [(&str, &str); 15] = [
    ("2023", "13633"),
    ("2023", "13681"),
    ("2023", "13741"),
    ("2023", "358"),
    ("2023", "36"),
    ("2023", "14215"),
    ("2024", "13681"),
    ("2024", "356"),
    ("2025", "13741"),
    ("2025", "13669"),
    ("2025", "13285"),
    ("2025", "13504"),
    ("2025", "37"),
    ("2023", "99999"),
    ("2024", "13966"),
];
const DATES: [&str; 11] = [
    "",
    "2015-01-01",
    "2023-04-30",
    "2023-05-01",
    "2024-02-29",
    "2024-12-31",
    "2025-06-30",
    "2025-12-31",
    "2026-01-01",
    "2028-06-01",
    "2031-01-01",
];

fn id(i: usize) -> String {
    format!("r{i}")
}

/// A record for slot `i`, its fields drawn from `p`.
fn random_record(i: usize, p: &[u8; 16]) -> Record {
    let kind = KINDS[i];
    let pick = |j: usize, n: usize| p[j] as usize % n;
    let (version, unit) = UNITS[pick(0, UNITS.len())];
    let mut f: Vec<(&str, String)> = Vec::new();
    let date = |name: &'static str, j: usize, f: &mut Vec<(&str, String)>| {
        let d = DATES[pick(j, DATES.len())];
        if !d.is_empty() {
            f.push((name, d.to_owned()));
        }
    };
    let coop = id(pick(1, 5)); // r4 is not a cooperative: a dangling reference
    let choose = |j: usize, options: &[&str]| options[pick(j, options.len())].to_owned();
    match kind {
        "cooperative" => {
            f.push(("type", choose(1, &["HTX", "THT"])));
            f.push(("name", format!("HTX {i}")));
            date("founded_on", 2, &mut f);
            f.push(("union_supported", choose(3, &["true", "true", "false", ""])));
            date("consolidated_on", 4, &mut f);
            if p[5].is_multiple_of(4) {
                date("dissolved_on", 6, &mut f);
                f.push(("status", "dissolved".into()));
            }
            f.push(("classification", choose(7, &["good", "weak", ""])));
        }
        "observation" => {
            f.push(("cooperative", coop));
            f.push(("observed_on", DATES[1 + pick(2, DATES.len() - 1)].into()));
            f.push(("workers", pick(3, 6).to_string()));
            f.push(("female_workers", pick(4, 6).to_string()));
            f.push(("stable_jobs_women", pick(5, 9).to_string()));
            f.push(("new_jobs_women", pick(6, 4).to_string()));
        }
        "manager" => {
            f.push(("cooperative", coop));
            f.push(("name", format!("M {i}")));
            f.push(("gender", choose(2, &["female", "male"])));
            f.push((
                "role",
                choose(
                    3,
                    &["chair", "board_member", "director", "supervisory_board"],
                ),
            ));
            date("since", 4, &mut f);
            date("until", 5, &mut f);
        }
        "cadre" => {
            f.push(("name", format!("K {i}")));
            f.push(("level", choose(1, &["province", "district", "commune"])));
            f.push(("kttt_support", choose(2, &["true", "false", ""])));
            date("since", 3, &mut f);
            date("until", 4, &mut f);
        }
        "training" => {
            f.push(("held_on", DATES[1 + pick(1, DATES.len() - 1)].into()));
            f.push((
                "type",
                choose(
                    2,
                    &[
                        "governance",
                        "digital_skills",
                        "cadre_kttt",
                        "cadre_skills",
                        "vocational",
                    ],
                ),
            ));
            let people: Vec<String> = (8..13)
                .filter(|k| p[3] >> (k - 8) & 1 == 1)
                .map(id)
                .collect();
            f.push(("attendees", people.join(";")));
            if p[4].is_multiple_of(2) {
                f.push(("cooperative", coop));
            }
        }
        "milestone" => {
            f.push(("type", "women_entrepreneurs_association".into()));
            f.push(("achieved_on", DATES[1 + pick(1, DATES.len() - 1)].into()));
        }
        _ => {
            f.push(("type", choose(1, &["loan", "communication", "ocop"])));
            f.push(("held_on", DATES[1 + pick(2, DATES.len() - 1)].into()));
            f.push(("amount_vnd", (pick(3, 5) * 1_000_000).to_string()));
        }
    }
    let fields: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut r = rec(kind, &id(i), version, unit, &fields);
    r.fields.insert(
        "recorded_by".into(),
        Value::Text(format!("node-{}", p[14] % 3)),
    );
    if p[15].is_multiple_of(8) {
        r.fields.insert(
            "deleted_at".into(),
            Value::Text("2025-01-01T00:00:00Z".into()),
        );
    }
    r
}

/// A unit's totals are its direct tallies plus its children's totals, and
/// counts and sums add up as values too.
fn assert_children_add_up(r: &Report) {
    let by_code: HashMap<&str, usize> = r
        .units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.code.as_str(), i))
        .collect();
    let mut sums: Vec<Vec<Tally>> = r
        .units
        .iter()
        .map(|u| u.figures.iter().map(|f| f.direct).collect())
        .collect();
    for u in &r.units {
        if let Some(p) = u.parent.as_deref() {
            for (k, f) in u.figures.iter().enumerate() {
                let s = &mut sums[by_code[p]][k];
                s.numerator += f.total.numerator;
                s.denominator += f.total.denominator;
            }
        }
    }
    for (u, sum) in r.units.iter().zip(&sums) {
        for (f, s) in u.figures.iter().zip(sum) {
            assert_eq!(f.total, *s, "{} {} phase {}", u.code, f.indicator, f.phase);
            if f.compute != Compute::Ratio {
                assert_eq!(f.value, Some(s.numerator as f64));
            }
        }
    }
}

/// Every live record is either placed (its node is among those holding
/// data for its unit and every unit above), listed as unplaced by id and
/// the unit it was entered for, or named as outside the plan's territory
/// (and then its unit lies wholly outside it); one of the three, once.
fn assert_every_record_is_counted_or_listed(r: &Report, plan: &Plan, records: &[Record]) {
    let h = Hierarchy::builtin();
    let territory = Territory::new(h, &plan.hierarchy, &plan.unit).unwrap();
    let unplaced: HashMap<&str, &htx_core::progress::Unplaced> =
        r.unplaced.iter().map(|u| (u.id.as_str(), u)).collect();
    let outside: HashSet<&str> = r.outside.iter().map(String::as_str).collect();
    assert_eq!(outside.len(), r.outside.len(), "each outside once");
    for rec in records.iter().filter(|x| !x.is_deleted()) {
        let unit = rec.text("unit").unwrap();
        let from = rec.text("unit_version").unwrap();
        let by = rec.text("recorded_by").unwrap();
        let part = territory.part(from, unit);
        if outside.contains(rec.id.as_str()) {
            assert_eq!(part, Some(Part::Outside), "{} named outside", rec.id);
            assert!(!unplaced.contains_key(rec.id.as_str()));
            continue;
        }
        assert_ne!(part, Some(Part::Outside), "{} not named outside", rec.id);
        let placed = match h.resolve(from, unit, &r.hierarchy) {
            _ if part == Some(Part::Partly) => None,
            Err(_) if part.is_none() => None,
            // Inside the territory, but no unit of the tree holds it: at
            // the territory itself.
            Ok(code) if r.unit(&code).is_some() => Some(code),
            _ => Some(r.units[0].code.clone()),
        };
        match placed {
            Some(code) => {
                assert!(
                    !unplaced.contains_key(rec.id.as_str()),
                    "{} placed and listed",
                    rec.id
                );
                let mut at = Some(code);
                while let Some(u) = at {
                    let unit = r.unit(&u).unwrap();
                    assert!(
                        unit.recorded_by.iter().any(|x| x == by),
                        "{} by {by} not held at {u}",
                        rec.id
                    );
                    at = unit.parent.clone();
                }
            }
            None => {
                let listed = unplaced
                    .get(rec.id.as_str())
                    .expect("listed when not placed");
                assert_eq!(
                    (listed.unit.as_str(), listed.unit_version.as_str()),
                    (unit, from)
                );
            }
        }
    }
    assert_eq!(unplaced.len(), r.unplaced.len(), "each listed once");
}

/// On the wire, for every unit in the reply: the totals of the units
/// below it plus its row "at this level" are its total.
fn assert_rows_add_up_on_the_wire(r: &Report) {
    let reply = htx_core::report::to_wire(r, None, |_| Default::default()).unwrap();
    assert_eq!(reply.units.len(), r.units.len());
    for u in &reply.units {
        for (k, f) in u.figures.iter().enumerate() {
            let (mut n, mut d) = (f.here_numerator, f.here_denominator);
            for c in reply.units.iter().filter(|c| c.parent == u.unit) {
                n += c.figures[k].numerator;
                d += c.figures[k].denominator;
            }
            assert_eq!(
                (n, d),
                (f.numerator, f.denominator),
                "{} {} {}",
                u.unit,
                f.indicator,
                f.phase
            );
        }
    }
}

/// The test plan over a neighbouring territory (Xã Bình Lục, 2025).
fn neighbour_plan() -> Plan {
    Plan::parse(include_str!("../../deploy/plans/thu-nghiem-binh-luc.toml")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_figures_equal_a_recomputation(
        ops in prop::collection::vec((0..KINDS.len(), any::<[u8; 16]>(), 0..8u8), 1..90),
        version in prop::sample::select(vec!["2023", "2024", "2025"]),
        as_of in prop::sample::select(DATES[1..].to_vec()),
        later in prop::sample::select(DATES[1..].to_vec()),
        mark_from_start in any::<bool>(),
    ) {
        let (plan, h, as_of) = (random_plan(), Hierarchy::builtin(), day(as_of));
        let mut engine = Engine::new(plan.clone(), h, version, as_of, vec![]).unwrap();
        let mut now: BTreeMap<usize, Record> = BTreeMap::new();
        // A second date kept current alongside, from the start or from
        // halfway through the changes.
        let (mark, halfway) = (day(later), ops.len() / 2);
        if mark_from_start {
            engine.keep_dates(&[mark]);
        }
        for (k, (i, p, action)) in ops.iter().enumerate() {
            if k == halfway && !mark_from_start {
                engine.keep_dates(&[mark]);
            }
            if *action == 0 {
                engine.delete(&id(*i));
                now.remove(i);
            } else {
                let r = random_record(*i, p);
                engine.upsert(r.clone());
                now.insert(*i, r);
            }
        }
        let records: Vec<Record> = now.values().cloned().collect();
        let fresh = recompute(&plan, h, version, as_of, &records).unwrap();
        prop_assert_eq!(&engine.report(), &fresh);
        let kept = engine.report_at(mark).expect("a kept date");
        prop_assert_eq!(&kept, &recompute(&plan, h, version, mark, &records).unwrap());
        prop_assert_eq!(engine.report_at(as_of), Some(fresh.clone()));
        if mark != as_of {
            prop_assert_eq!(engine.kept_dates(), vec![mark]);
        }
        prop_assert!(engine.report_at(day("2040-01-01")).is_none(), "a date not kept");
        assert_children_add_up(&fresh);
        assert_rows_add_up_on_the_wire(&fresh);
        assert_every_record_is_counted_or_listed(&fresh, &plan, &records);
        // The same records under a second plan over a neighbouring
        // territory: each record counts for the plans whose territory
        // holds it, and for at most one of the two.
        let other_plan = neighbour_plan();
        let other = recompute(&other_plan, h, version, as_of, &records).unwrap();
        assert_children_add_up(&other);
        assert_rows_add_up_on_the_wire(&other);
        assert_every_record_is_counted_or_listed(&other, &other_plan, &records);
        for rec in records.iter().filter(|x| !x.is_deleted()) {
            let mine = !fresh.outside.contains(&rec.id);
            let theirs = !other.outside.contains(&rec.id);
            let partly = fresh.unplaced.iter().chain(&other.unplaced).any(|u| u.id == rec.id);
            prop_assert!(!(mine && theirs) || partly, "{} counted by both plans", rec.id);
        }
        // One unit at a time, as the hub and node ask for one.
        for u in &fresh.units {
            prop_assert_eq!(&engine.unit(&u.code).unwrap(), u);
            // The records behind each figure add up to it.
            for f in &u.figures {
                let behind = engine.behind(&u.code, &f.indicator, &f.phase).unwrap();
                let sum = behind.iter().fold((0i128, 0i128), |(n, d), (_, t)| (n + t.numerator, d + t.denominator));
                prop_assert_eq!(sum, (f.total.numerator, f.total.denominator), "{} {} {}", u.code, f.indicator, f.phase);
            }
        }
        // The same records behind figures, from scratch: the territory's,
        // and a unit below it.
        for u in [&fresh.units[0], &fresh.units[fresh.units.len() / 2]] {
            for f in &u.figures {
                prop_assert_eq!(
                    htx_core::progress::behind(&plan, h, version, as_of, &u.code, &f.indicator, &f.phase, &records).unwrap(),
                    engine.behind(&u.code, &f.indicator, &f.phase).unwrap()
                );
            }
        }
        // Loaded in another order, all at once.
        let reversed: Vec<Record> = records.iter().rev().cloned().collect();
        let mut loaded = Engine::new(plan.clone(), h, version, as_of, reversed).unwrap();
        prop_assert_eq!(&loaded.report(), &fresh);
        // Loaded without being evaluated, the same changes applied as
        // they came (deletes and repeats included), a date kept halfway,
        // then asked: what the hub's live view does after a restart.
        // Moved to another day and back before anything is evaluated; a
        // record seen again loaded over the one before; one unit asked
        // first.
        let mut lazy = Engine::empty(plan.clone(), h, version, day(later)).unwrap();
        for (k, (i, p, action)) in ops.iter().enumerate() {
            if k == halfway {
                lazy.set_as_of(as_of);
                lazy.keep_dates(&[mark]);
            }
            let r = random_record(*i, p);
            match *action {
                0 => lazy.delete(&id(*i)),
                _ if r.is_deleted() => lazy.upsert(r),
                _ => lazy.load(&r),
            }
        }
        prop_assert_eq!(&lazy.unit(&fresh.units[0].code).unwrap(), &fresh.units[0]);
        prop_assert_eq!(lazy.report_at(mark), Some(kept.clone()));
        prop_assert_eq!(&lazy.report(), &fresh);
        // Another date.
        engine.set_as_of(day(later));
        prop_assert_eq!(engine.report(), recompute(&plan, h, version, day(later), &records).unwrap());
        // A trend: every date at once gives what each date alone gives.
        let dates: Vec<Date> = DATES[1..].iter().map(|d| day(d)).collect();
        let trend_all = recompute_at(&plan, h, version, &dates, &records).unwrap();
        prop_assert_eq!(trend_all.len(), dates.len());
        for (d, r) in dates.iter().zip(&trend_all) {
            prop_assert_eq!(r, &recompute(&plan, h, version, *d, &records).unwrap());
        }
        // A trend page's unit: its figures and its children's, the same.
        for unit in [&fresh.units[0].code, &fresh.units[fresh.units.len() / 2].code] {
            let page = trend(&plan, h, version, unit, &dates, &records).unwrap();
            for (r, mut full) in page.into_iter().zip(trend_all.iter().cloned()) {
                full.units.retain(|u| &u.code == unit || u.parent.as_ref() == Some(unit));
                prop_assert_eq!(r, full);
            }
        }
        // Dates in any order, some twice.
        let mixed: Vec<Date> = dates.iter().rev().chain(&dates[3..6]).copied().collect();
        let trend = recompute_at(&plan, h, version, &mixed, &records).unwrap();
        for (d, r) in mixed.iter().zip(&trend) {
            prop_assert_eq!(r, &recompute(&plan, h, version, *d, &records).unwrap());
        }
    }
}

/// What a node of `scope` (2023) holds of `all`: the records of its units,
/// and the facts the hub publishes to it ([`htx_core::facts`]).
fn node_view(all: &[Record], scope: &str) -> Vec<Record> {
    let v = Hierarchy::builtin().version("2023").unwrap();
    let held = |r: &Record| r.text("unit").is_some_and(|u| v.within(u, scope));
    let mut mine: Vec<Record> = all.iter().filter(|r| held(r)).cloned().collect();
    mine.extend(htx_core::facts::compute(all, held));
    mine
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Item 1 of issue 9: for random data and random scopes, a node's
    /// figures for its units equal the hub's. Records keep their links
    /// inside one node's reach as validation makes them (an observation
    /// or a manager is recorded where its cooperative is); trainings,
    /// held at any level, are attended by managers and cadres of anywhere:
    /// what a node does not hold of them comes as the hub's facts.
    #[test]
    fn a_nodes_figures_for_its_units_equal_the_hubs(
        ops in prop::collection::vec((0..KINDS.len(), any::<[u8; 16]>()), 1..90),
        scope in prop::sample::select(vec!["356", "358", "359", "366", "13633", "13741"]),
        as_of in prop::sample::select(DATES[1..].to_vec()),
    ) {
        const OWN: [&str; 6] = ["13633", "13681", "13741", "358", "36", "14215"];
        let mut now: BTreeMap<usize, Record> = BTreeMap::new();
        for (i, p) in &ops {
            let mut r = random_record(*i, p);
            r.fields.insert("unit_version".into(), Value::Text("2023".into()));
            r.fields.insert("unit".into(), Value::Text(OWN[p[0] as usize % OWN.len()].into()));
            if r.kind == "training" {
                r.fields.remove("cooperative");
            }
            now.insert(*i, r);
        }
        // Where its cooperative is, as validation makes it (which also
        // refuses a reference to anything but a cooperative the node holds).
        let units: HashMap<String, Value> = now
            .values()
            .filter(|r| r.kind == "cooperative")
            .map(|r| (r.id.clone(), r.fields["unit"].clone()))
            .collect();
        for r in now.values_mut() {
            match r.text("cooperative").map(|c| units.get(c)) {
                Some(Some(u)) => {
                    let u = u.clone();
                    r.fields.insert("unit".into(), u);
                }
                Some(None) => {
                    r.fields.remove("cooperative");
                }
                None => {}
            }
        }
        let all: Vec<Record> = now.into_values().collect();
        let (plan, h, as_of) = (random_plan(), Hierarchy::builtin(), day(as_of));
        let hub = recompute(&plan, h, "2023", as_of, &all).unwrap();
        let node = recompute(&plan, h, "2023", as_of, &node_view(&all, scope)).unwrap();
        let v = h.version("2023").unwrap();
        for u in v.units().filter(|u| v.within(&u.code, scope)) {
            prop_assert_eq!(
                node.unit(&u.code).map(|x| &x.figures),
                hub.unit(&u.code).map(|x| &x.figures),
                "{} in the scope of {}", u.code, scope
            );
        }
    }
}

// ---- (c) Bad input -----------------------------------------------------------

#[test]
fn an_unknown_version_or_unit_is_refused() {
    let (plan, h, date) = (Plan::builtin(), Hierarchy::builtin(), day("2025-06-30"));
    let e = recompute(&plan, h, "2022", date, &[] as &[Record]).unwrap_err();
    assert_eq!(
        e,
        ProgressError::Unit(UnitError::UnknownVersion("2022".into()))
    );
    assert!(
        e.to_string().contains("phiên bản danh mục không tồn tại"),
        "{e}"
    );
    assert!(Engine::new(plan.clone(), h, "v2", date, vec![]).is_err());

    let mut engine = Engine::new(plan, h, "2023", date, vec![]).unwrap();
    let e = engine.unit("13285").unwrap_err(); // a 2025 code (Phủ Lý), not a 2023 one
    assert!(
        matches!(&e, ProgressError::Unit(UnitError::UnknownUnit { code, version }) if code == "13285" && version == "2023")
    );
    assert!(
        e.to_string().contains("unknown unit code") && e.to_string().contains("mã đơn vị"),
        "{e}"
    );
    assert!(h.resolve("2023", "13285", "2025").is_err());
}

#[test]
fn a_record_with_an_unknown_unit_is_listed_not_counted() {
    let (plan, h, date) = (Plan::builtin(), Hierarchy::builtin(), day("2025-06-30"));
    let m = rec(
        "milestone",
        "M",
        "2023",
        "36000",
        &[
            ("type", "women_entrepreneurs_association"),
            ("achieved_on", "2024-01-01"),
        ],
    );
    let mut n = rec(
        "milestone",
        "N",
        "2023",
        "36",
        &[
            ("type", "women_entrepreneurs_association"),
            ("achieved_on", "2024-01-01"),
        ],
    );
    n.fields
        .insert("unit_version".into(), Value::Text("1999".into()));
    let r = recompute(&plan, h, "2023", date, &[m, n]).unwrap();
    assert_eq!(r.unplaced.len(), 2);
    assert!(r.unplaced[0].reason.contains("unknown unit code \"36000\""));
    assert!(
        r.unplaced[1]
            .reason
            .contains("unknown hierarchy version \"1999\"")
    );
    assert_eq!(
        r.unit("36")
            .unwrap()
            .figure("ASSOCIATION", "1")
            .unwrap()
            .value,
        Some(0.0)
    );
}

#[test]
fn a_date_that_does_not_parse_is_refused() {
    for bad in ["2025-13-01", "30/06/2025", "", "2025-6-30x"] {
        assert_eq!(
            parse_date(bad).unwrap_err(),
            ProgressError::BadDate(bad.into())
        );
    }
}

#[test]
fn a_plan_file_with_a_typo_names_the_line() {
    let text = include_str!("fixtures/plan-with-typo.toml");
    let e = Plan::parse(text).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.contains("cooperativ\""))
        .unwrap()
        + 1;
    assert_eq!(e.line, line, "{e}");
    assert!(e.to_string().contains(&format!("line {line}")), "{e}");
    assert!(
        e.reason.contains("unknown record kind \"cooperativ\""),
        "{e}"
    );
    // The same file with the typo fixed is fine.
    Plan::parse(&text.replace("cooperativ\"", "cooperative\"")).unwrap();
}

// ---- (e) Large values: exact sums, never wrapped ---------------------------

/// A loan activity of `amount` VND in commune `unit`, built without the
/// schema's checks (as a store written before the bounds existed holds it).
fn loan(id: &str, unit: &str, amount: i64) -> Record {
    let mut r = rec(
        "activity",
        id,
        "2023",
        unit,
        &[("type", "loan"), ("held_on", "2024-03-01")],
    );
    r.fields.insert("amount_vnd".into(), Value::Int(amount));
    r
}

#[test]
fn sums_of_large_values_are_exact_and_never_wrap() {
    let plan = Plan::parse(htx_core::plan::DE_AN_01_NAM_DINH).unwrap();
    let h = Hierarchy::builtin();
    let as_of = day("2025-06-30");
    let loans = |report: &Report, unit: &str| {
        report
            .unit(unit)
            .unwrap()
            .figure("LOANS_VND", "1")
            .unwrap()
            .total
            .numerator
    };

    // Ten loans at the schema's bound, in two districts: 10^16 VND, exact.
    let max = htx_core::schema::MAX_AMOUNT_VND;
    let at_bound: Vec<Record> = (0..10)
        .map(|i| loan(&format!("L{i}"), if i < 5 { "13633" } else { "13741" }, max))
        .collect();
    let report = recompute(&plan, h, "2023", as_of, &at_bound).unwrap();
    assert_eq!(loans(&report, "36"), 10 * i128::from(max));
    assert_eq!(loans(&report, "356"), 5 * i128::from(max));
    let mut engine = Engine::new(plan.clone(), h, "2023", as_of, at_bound).unwrap();
    assert_eq!(loans(&engine.report(), "36"), 10 * i128::from(max));

    // Two values of i64::MAX made -2 in 64 bits. The engine's totals are
    // exact, incrementally too, and a total the wire cannot carry is an
    // error naming the indicator and the unit, not a wrapped number.
    let huge = vec![loan("H1", "13633", i64::MAX), loan("H2", "13633", i64::MAX)];
    let exact = 2 * i128::from(i64::MAX);
    let report = recompute(&plan, h, "2023", as_of, &huge).unwrap();
    assert_eq!(loans(&report, "36"), exact);
    assert_eq!(loans(&report, "13633"), exact);
    assert!(
        report
            .unit("36")
            .unwrap()
            .figure("LOANS_VND", "1")
            .unwrap()
            .value
            > Some(1e19)
    );
    for r in &huge {
        engine.upsert(r.clone());
    }
    assert_eq!(loans(&engine.report(), "36"), 10 * i128::from(max) + exact);
    engine.delete("H2");
    assert_eq!(
        loans(&engine.report(), "36"),
        10 * i128::from(max) + i128::from(i64::MAX),
        "taking a huge value off restores the exact sum"
    );

    let err = htx_core::report::to_wire(&report, Some("36"), |_| Default::default()).unwrap_err();
    assert!(
        matches!(&err, ProgressError::TooLarge { indicator, value, .. }
            if indicator == "LOANS_VND" && *value == exact),
        "{err:?}"
    );
    assert!(err.to_string().contains("quá lớn"), "{err}");
}

// ---- (f) Phases that see the same date ---------------------------------------

/// Before the end of phase 1 both phases see the same date, and progress
/// evaluates a record once for both; an indicator that looks at the phase's
/// own bounds must still be evaluated per phase, by `recompute` and by the
/// engine alike.
#[test]
fn phases_seeing_the_same_date_still_use_their_own_bounds() {
    let plan = random_plan();
    let h = Hierarchy::builtin();
    let as_of = day("2025-06-30"); // before phase 1 ends: both phases see it
    let obs = |id: &str, on: &str, workers: &str| {
        rec(
            "observation",
            id,
            "2023",
            "13633",
            &[("observed_on", on), ("workers", workers)],
        )
    };
    let records = vec![obs("o1", "2024-01-01", "5"), obs("o2", "2023-01-01", "7")];
    let workers = |r: &Report, phase: &str| {
        r.unit("36")
            .unwrap()
            .figure("WORKERS_PHASE", phase)
            .unwrap()
            .total
            .numerator
    };
    let fresh = recompute(&plan, h, "2023", as_of, &records).unwrap();
    // Phase 1 (2023-05-01..2025-12-31) holds o1 only; phase 2 starts 2026.
    assert_eq!((workers(&fresh, "1"), workers(&fresh, "2")), (5, 0));
    let mut engine = Engine::new(plan.clone(), h, "2023", as_of, records).unwrap();
    assert_eq!(engine.report(), fresh);
    // An indicator that does not look at the bounds counts in both phases.
    let coops = |r: &Report, phase: &str| {
        r.unit("36")
            .unwrap()
            .figure("ACTIVITIES", phase)
            .unwrap()
            .total
            .numerator
    };
    let act = rec(
        "activity",
        "a1",
        "2023",
        "13633",
        &[("type", "ocop"), ("held_on", "2024-03-01")],
    );
    let r = recompute(&plan, h, "2023", as_of, &[act]).unwrap();
    assert_eq!((coops(&r, "1"), coops(&r, "2")), (1, 1));
}

/// `recompute` takes the records as a store lists them: if an id comes
/// twice the last one counts, and a deleted one counts nowhere, whatever
/// came before it.
#[test]
fn recompute_counts_the_last_version_of_a_record() {
    let plan = random_plan();
    let h = Hierarchy::builtin();
    let act = |id: &str, held_on: &str| {
        rec(
            "activity",
            id,
            "2023",
            "13633",
            &[
                ("type", "loan"),
                ("held_on", held_on),
                ("amount_vnd", "1000"),
            ],
        )
    };
    let mut gone = act("a3", "2024-03-01");
    gone.fields.insert(
        "deleted_at".into(),
        Value::Text("2025-01-01T00:00:00Z".into()),
    );
    let records = vec![
        act("a1", "2020-01-01"), // before the plan: not counted...
        act("a2", "2024-03-01"),
        act("a3", "2024-03-01"),
        act("a1", "2024-03-01"), // ...but its last version is
        gone,                    // a3 deleted
    ];
    let r = recompute(&plan, h, "2023", day("2025-06-30"), &records).unwrap();
    let f = r.unit("36").unwrap().figure("LOANS_VND", "1").unwrap();
    assert_eq!(f.total.numerator, 2000);
}

// ---- (d) Allocations ---------------------------------------------------------

/// Targets allocated to districts: an allocated district shows a status
/// against its own target; a district without one says "no allocation"
/// once, in the table, JSON and CSV, and its figures carry no status.
#[test]
fn allocated_units_get_statuses_and_the_others_say_so_once() {
    let mut plan = Plan::builtin();
    htx_core::allocation::apply(
        &mut plan,
        r#"
format = 1
plan = "de-an-01-nam-dinh"

[[allocations]]
indicator = "HTX_CONSOLIDATED"
phase = "1"
unit = "356"
share = 0.3

[[allocations]]
indicator = "STABLE_JOBS"
phase = "1"
unit = "356"
at_least = 10
"#,
    )
    .unwrap();
    let h = Hierarchy::builtin();
    let r = recompute(&plan, h, "2023", day("2025-06-30"), &example_records()).unwrap();
    let city = r.unit("356").unwrap();
    assert!(city.allocated);
    // A (in Hạ Long) is the city's one consolidated HTX: 1 of at least 3,
    // below the line 3 * 0.811282.
    let f = city.figure("HTX_CONSOLIDATED", "1").unwrap();
    assert_eq!(
        (f.goal, f.status),
        (Some(Goal::AtLeast(3.0)), Status::Behind)
    );
    let wire = htx_core::report::to_wire(&r, None, |_| Default::default()).unwrap();
    let unit = |code: &str| wire.units.iter().find(|u| u.unit == code).unwrap();
    assert_eq!(unit("36").allocation, "");
    assert_eq!(unit("356").allocation, "allocated");
    assert_eq!(unit("359").allocation, "none");
    assert!(
        unit("359")
            .figures
            .iter()
            .all(|f| f.status.is_empty() && f.status_vi.is_empty())
    );
    // The province keeps its own statuses.
    assert!(unit("36").figures.iter().all(|f| !f.status.is_empty()));
    let table = htx_core::report::to_table(&wire);
    let said = table
        .matches("chưa phân bổ chỉ tiêu / no allocation")
        .count();
    assert_eq!(said, 9, "once per district but the city:\n{table}");
    let csv = htx_core::report::to_csv(&wire);
    let rows_359: Vec<&str> = csv.lines().filter(|l| l.starts_with("359,")).collect();
    assert!(!rows_359.is_empty());
    assert!(
        rows_359
            .iter()
            .all(|l| l.ends_with(",de-an-01-nam-dinh,none,")),
        "{csv}"
    );
    assert!(!rows_359.iter().any(|l| l.contains("no_target")), "{csv}");
}

//! # Progress reports as people and programs read them
//!
//! Turns a [`Report`] of [`crate::progress`] into the wire reply
//! (`htx.v1.ProgressReply`, also served as JSON), and that reply into a
//! terminal table or CSV. Shared by the hub and the node, so that both show
//! progress the same way.
//!
//! Every unit's figures carry what was placed at the unit itself ("at this
//! level / not attributable below"), so the units below plus that row add
//! up to the total, and who stands behind them ([`Provenance`]): the nodes
//! that serve the unit and hold data for it, the oldest of their last
//! syncs, and, when there are none, whether no node reaches the unit at
//! all (`no_node`) or none of those that do holds data for it (`no_data`):
//! either way its zeros are missing data, not reported zeros.

use std::fmt::Write;

use htx_proto::v1 as pb;

use crate::plan::{Compute, Goal};
use crate::progress::{ProgressError, Report, UnitProgress};

/// `coverage` of a unit some node reported for.
pub const REPORTED: &str = "reported";
/// `coverage` of a unit no node's scope reaches.
pub const NO_NODE: &str = "no_node";
/// `coverage` of a unit nodes reach but none holds data for.
pub const NO_DATA: &str = "no_data";
/// `allocation` of a unit below the plan's own that has targets.
pub const ALLOCATED: &str = "allocated";
/// `allocation` of a unit below the plan's own without any target.
pub const NO_ALLOCATION: &str = "none";

/// Who stands behind one unit's figures.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The nodes that serve the unit (their scope is the unit or lies
    /// within it) or hold data for it (their records are placed there).
    pub sources: Vec<pb::Source>,
    /// Whether any node's scope reaches the unit at all.
    pub reached: bool,
}

/// The target as people read it: "≥ 10", "> 400", "5–7", "≥ 100%".
pub fn target_text(goal: Option<&Goal>, ratio: bool) -> String {
    let pct = if ratio { "%" } else { "" };
    match goal {
        None => String::new(),
        Some(Goal::AtLeast(v)) => format!("≥ {v}{pct}"),
        Some(Goal::MoreThan(v)) => format!("> {v}{pct}"),
        Some(Goal::Exactly(v)) => format!("{v}{pct}"),
        Some(Goal::Range(a, b)) => format!("{a}–{b}{pct}"),
        Some(Goal::Milestone) => "milestone".into(),
    }
}

/// A status as people read it, in Vietnamese (`design/vi-terms.md`).
pub fn status_vi(status: &str) -> &'static str {
    match status {
        "achieved" => "đạt",
        "above_target" => "vượt chỉ tiêu",
        "on_track" => "đúng tiến độ",
        "behind" => "chậm tiến độ",
        "not_achieved" => "không đạt",
        "no_data" => "chưa có số liệu",
        "no_target" => "chưa giao chỉ tiêu",
        _ => "",
    }
}

fn unit_to_wire(
    u: &UnitProgress,
    root: bool,
    names: &[(String, String, String)],
    who: Provenance,
) -> Result<pb::UnitFigures, ProgressError> {
    // A unit below the plan's own with no target at all: it says so once
    // ("no allocation"), its figures carry no status.
    let unallocated = !root && !u.allocated;
    // The engine adds in 128 bits; the wire carries 64. A total beyond that
    // is an explicit error, never a wrapped (negative) number.
    let narrow = |indicator: &str, value: i128| {
        i64::try_from(value).map_err(|_| ProgressError::TooLarge {
            indicator: indicator.to_owned(),
            unit: u.code.clone(),
            value,
        })
    };
    let coverage = match (who.sources.is_empty(), who.reached) {
        (false, _) => REPORTED,
        (true, true) => NO_DATA,
        (true, false) => NO_NODE,
    };
    // RFC 3339 times in UTC order as text; one never synced is older than all.
    let never_synced = who.sources.iter().any(|s| s.last_sync.is_empty());
    let oldest_sync = who
        .sources
        .iter()
        .map(|s| s.last_sync.as_str())
        .filter(|t| !t.is_empty())
        .min()
        .unwrap_or_default()
        .to_owned();
    Ok(pb::UnitFigures {
        unit: u.code.clone(),
        name: u.name.clone(),
        level: format!("{:?}", u.level).to_lowercase(),
        parent: u.parent.clone().unwrap_or_default(),
        figures: u
            .figures
            .iter()
            .map(|f| {
                let ratio = matches!(f.compute, Compute::Ratio);
                let status = serde_json::to_value(f.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .filter(|_| !unallocated)
                    .unwrap_or_default();
                let (name, name_vi) = names
                    .iter()
                    .find(|(id, _, _)| **id == *f.indicator)
                    .map(|(_, en, vi)| (en.clone(), vi.clone()))
                    .unwrap_or_default();
                Ok(pb::Figure {
                    indicator_name: name,
                    indicator_name_vi: name_vi,
                    status_vi: status_vi(&status).to_owned(),
                    target: target_text(f.goal.as_ref(), ratio),
                    indicator: f.indicator.to_string(),
                    phase: f.phase.to_string(),
                    compute: format!("{:?}", f.compute).to_lowercase(),
                    measure: f.measure.to_owned(),
                    numerator: narrow(&f.indicator, f.total.numerator)?,
                    denominator: narrow(&f.indicator, f.total.denominator)?,
                    value: f.value,
                    expected: f.expected,
                    share: f.share,
                    status,
                    here_numerator: narrow(&f.indicator, f.direct.numerator)?,
                    here_denominator: narrow(&f.indicator, f.direct.denominator)?,
                })
            })
            .collect::<Result<_, ProgressError>>()?,
        sources: who.sources,
        coverage: coverage.into(),
        oldest_sync,
        never_synced,
        allocation: match (root, u.allocated) {
            (true, _) => String::new(),
            (false, true) => ALLOCATED.into(),
            (false, false) => NO_ALLOCATION.into(),
        },
    })
}

/// The reply for `unit` (default: the report's first unit, the plan's
/// territory) and every unit below it, each with who stands behind its
/// figures (`provenance(unit)`). A unit the report does not hold (outside
/// the plan's territory) is refused.
pub fn to_wire(
    report: &Report,
    unit: Option<&str>,
    provenance: impl Fn(&UnitProgress) -> Provenance,
) -> Result<pb::ProgressReply, ProgressError> {
    let unit = match unit {
        None => report.territory.code.as_str(),
        Some(u) if report.unit(u).is_some() => u,
        Some(u) => {
            return Err(ProgressError::NotInTerritory {
                unit: u.to_owned(),
                version: report.hierarchy.clone(),
                plan: report.plan.clone(),
                territory: report.territory.name_en.clone(),
            });
        }
    };
    // Units come parents first: a unit is below the asked one when its
    // parent is.
    let mut below: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut units = Vec::new();
    for u in &report.units {
        if u.code == unit || u.parent.as_deref().is_some_and(|p| below.contains(p)) {
            below.insert(u.code.as_str());
            let root = u.code == report.territory.code;
            units.push(unit_to_wire(u, root, &report.indicators, provenance(u))?);
        }
    }
    let t = &report.territory;
    Ok(pb::ProgressReply {
        plan: report.plan.clone(),
        plan_name: report.plan_name.clone(),
        plan_name_vi: report.plan_name_vi.clone(),
        territory_unit: t.unit.clone(),
        territory_version: t.version.clone(),
        territory_name_vi: t.name_vi.clone(),
        territory_name: t.name_en.clone(),
        former_territory: t.former,
        outside: report.outside.len() as u32,
        incomplete: String::new(),
        hierarchy: report.hierarchy.clone(),
        as_of: crate::schema::format_date(report.as_of),
        units,
        unplaced: report.unplaced.len() as u32,
        phase_now: report.phase_now.clone(),
        unplaced_records: report
            .unplaced
            .iter()
            .map(|r| pb::UnplacedRecord {
                id: r.id.clone(),
                kind: r.kind.clone(),
                unit: r.unit.clone(),
                unit_version: r.unit_version.clone(),
                reason: r.reason.clone(),
            })
            .collect(),
    })
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_default()
}

fn last_sync(s: &pb::Source) -> &str {
    if s.last_sync.is_empty() {
        "never"
    } else {
        &s.last_sync
    }
}

/// The value of a ratio's or count's part, from its numerator and denominator.
fn part_value(compute: &str, numerator: i64, denominator: i64) -> Option<f64> {
    match compute {
        "ratio" if denominator == 0 => None,
        "ratio" => Some(100.0 * numerator as f64 / denominator as f64),
        _ => Some(numerator as f64),
    }
}

/// One row per unit, indicator and phase (`row` = `total`), and for a unit
/// with units below it in the reply one more per indicator and phase
/// (`row` = `at_this_level`): what is placed at the unit itself, so that
/// the totals of the units below plus that row make the unit's total.
pub fn to_csv(reply: &pb::ProgressReply) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "unit",
        "name",
        "level",
        "indicator",
        "phase",
        "compute",
        "numerator",
        "denominator",
        "value",
        "target",
        "expected",
        "share",
        "status",
        "as_of",
        "hierarchy",
        "sources",
        "row",
        "coverage",
        "oldest_sync",
        "status_vi",
        "indicator_name_vi",
        "indicator_name",
        "plan",
        "allocation",
        "incomplete",
    ];
    w.write_record(header).expect("writes to memory");
    for u in &reply.units {
        let sources: Vec<String> = u
            .sources
            .iter()
            .map(|s| format!("{}@{}", s.node, last_sync(s)))
            .collect();
        let has_below = reply.units.iter().any(|c| c.parent == u.unit);
        for f in &u.figures {
            let ratio = f.compute == "ratio";
            let den = |d: i64| if ratio { d.to_string() } else { String::new() };
            w.write_record([
                u.unit.as_str(),
                &u.name,
                &u.level,
                &f.indicator,
                &f.phase,
                &f.compute,
                &f.numerator.to_string(),
                &den(f.denominator),
                &num(f.value),
                &f.target,
                &num(f.expected),
                &num(f.share),
                &f.status,
                &reply.as_of,
                &reply.hierarchy,
                &sources.join(";"),
                "total",
                &u.coverage,
                &u.oldest_sync,
                &f.status_vi,
                &f.indicator_name_vi,
                &f.indicator_name,
                &reply.plan,
                &u.allocation,
                &reply.incomplete,
            ])
            .expect("writes to memory");
        }
        if !has_below {
            continue;
        }
        for f in &u.figures {
            w.write_record([
                u.unit.as_str(),
                &u.name,
                &u.level,
                &f.indicator,
                &f.phase,
                &f.compute,
                &f.here_numerator.to_string(),
                &if f.compute == "ratio" {
                    f.here_denominator.to_string()
                } else {
                    String::new()
                },
                &num(part_value(&f.compute, f.here_numerator, f.here_denominator)),
                "",
                "",
                "",
                "",
                &reply.as_of,
                &reply.hierarchy,
                &sources.join(";"),
                "at_this_level",
                &u.coverage,
                &u.oldest_sync,
                "",
                &f.indicator_name_vi,
                &f.indicator_name,
                &reply.plan,
                &u.allocation,
                &reply.incomplete,
            ])
            .expect("writes to memory");
        }
    }
    String::from_utf8(w.into_inner().expect("flushes to memory")).expect("CSV of UTF-8 text")
}

/// A cell of the units-below table: the count or sum, or for a ratio its
/// percent with the numerator and denominator (those add up, percents do not).
fn cell(compute: &str, measure: &str, numerator: i64, denominator: i64) -> String {
    match (compute, part_value(compute, numerator, denominator)) {
        ("ratio", Some(v)) => format!("{v:.0}% ({numerator}/{denominator})"),
        ("ratio", None) => "–".into(),
        _ if measure == "vnd" => format!("{} đ", grouped(numerator)),
        _ => grouped(numerator),
    }
}

/// A whole number grouped the Vietnamese way: 1.350.000.000.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// A date of the wire (`YYYY-MM-DD`) as people write it: dd/mm/yyyy.
pub fn date_vi(iso: &str) -> String {
    match crate::schema::parse_date(iso) {
        Some(d) => format!("{:02}/{:02}/{}", d.day(), u8::from(d.month()), d.year()),
        None => iso.to_owned(),
    }
}

/// Vietnam time (Asia/Ho_Chi_Minh: UTC+7 all year, no daylight saving
/// since 1975, so a fixed offset is exact), "dd/mm/yyyy HH:MM".
const VIETNAM: time::UtcOffset = time::macros::offset!(+7);

/// An RFC 3339 time as people read it: in Vietnam time, with its age
/// against `now` ("3 ngày trước / 3 days ago").
pub fn time_vi(rfc3339: &str, now: time::OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return rfc3339.to_owned();
    };
    let local = t.to_offset(VIETNAM);
    let age = now - t;
    let ago = if age.whole_days() >= 1 {
        format!(
            "{} ngày trước / {} days ago",
            age.whole_days(),
            age.whole_days()
        )
    } else if age.whole_hours() >= 1 {
        format!(
            "{} giờ trước / {} hours ago",
            age.whole_hours(),
            age.whole_hours()
        )
    } else {
        let m = age.whole_minutes().max(0);
        format!("{m} phút trước / {m} min ago")
    };
    format!(
        "{:02}/{:02}/{} {:02}:{:02} ({ago})",
        local.day(),
        u8::from(local.month()),
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// What the "last sync" column says of a unit: the oldest of its sources,
/// "never" if one of them never synced, or why there is no figure.
fn freshness(u: &pb::UnitFigures, now: time::OffsetDateTime) -> String {
    match u.coverage.as_str() {
        NO_NODE => "không có máy trạm / no node".into(),
        NO_DATA => "chưa có số liệu / no data".into(),
        _ if u.never_synced => "chưa đồng bộ / never".into(),
        _ => time_vi(&u.oldest_sync, now),
    }
}

/// A table of `rows` (the first is the header), columns from `right_from`
/// on aligned right but the last: laid out by comfy-table, which measures
/// each cell's display width and never cuts a name short (two long names
/// cut to the same width came out as duplicates).
fn columns(rows: &[Vec<String>], right_from: usize) -> String {
    use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
    let Some((header, body)) = rows.split_first() else {
        return String::new();
    };
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.clone());
    for r in body {
        t.add_row(r.clone());
    }
    let n = header.len();
    for c in right_from..n.saturating_sub(1) {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out: String = t.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// The asked unit's figures, then one line per unit below it and the line
/// "at this level", for a terminal.
pub fn to_table(reply: &pb::ProgressReply) -> String {
    let mut out = String::new();
    let now = time::OffsetDateTime::now_utc();
    let Some(top) = reply.units.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "{} {} — kế hoạch / plan {}, đến ngày / as of {}, danh mục / hierarchy {}",
        top.unit,
        top.name,
        reply.plan,
        date_vi(&reply.as_of),
        reply.hierarchy
    );
    if !reply.plan_name_vi.is_empty() || !reply.plan_name.is_empty() {
        let _ = writeln!(out, "  {} / {}", reply.plan_name_vi, reply.plan_name);
    }
    let _ = writeln!(
        out,
        "  địa bàn / territory: {} (đơn vị / unit {} của danh mục / of hierarchy {})",
        // One name where both languages have the same (a unit's own name).
        if reply.territory_name == reply.territory_name_vi {
            reply.territory_name_vi.clone()
        } else {
            format!("{} / {}", reply.territory_name_vi, reply.territory_name)
        },
        reply.territory_unit,
        reply.territory_version
    );
    if !reply.incomplete.is_empty() {
        let _ = writeln!(out, "  ⚠ {}", reply.incomplete);
    }
    if reply.outside > 0 {
        let _ = writeln!(
            out,
            "  {} bản ghi ngoài địa bàn, thuộc kế hoạch khác / record(s) outside the territory (other plans')",
            reply.outside
        );
    }
    for s in &top.sources {
        let when = match s.last_sync.as_str() {
            "" => "chưa đồng bộ / never".to_owned(),
            t => time_vi(t, now),
        };
        let _ = writeln!(
            out,
            "  gồm số liệu máy trạm / includes node {} (unit {}), đồng bộ gần nhất / last synced {when}",
            s.node, s.unit,
        );
    }
    if top.coverage != REPORTED {
        let _ = writeln!(
            out,
            "  {}: số 0 là thiếu số liệu / its zeros are missing data",
            freshness(top, now)
        );
    }
    let mut rows = vec![
        [
            "chỉ tiêu / indicator",
            "giai đoạn / phase",
            "kết quả / value",
            "mục tiêu / target",
            "tỷ lệ / share",
            "đánh giá / status",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for f in &top.figures {
        let value = match (f.compute.as_str(), f.value) {
            ("ratio", Some(v)) => format!("{v:.0}% ({}/{})", f.numerator, f.denominator),
            ("ratio", None) => format!("– (0/{})", f.denominator),
            _ => cell(&f.compute, &f.measure, f.numerator, f.denominator),
        };
        let share = f
            .share
            .map(|s| format!("{:.0}%", s * 100.0))
            .unwrap_or_default();
        rows.push(vec![
            f.indicator.clone(),
            f.phase.clone(),
            value,
            f.target.clone(),
            share,
            format!("{} ({})", f.status_vi, f.status),
        ]);
    }
    let _ = write!(out, "\n{}", columns(&rows, 2));
    let children: Vec<&pb::UnitFigures> = reply
        .units
        .iter()
        .filter(|u| u.parent == top.unit)
        .collect();
    if !children.is_empty() {
        let phase = reply.phase_now.clone();
        let shown: Vec<&pb::Figure> = top.figures.iter().filter(|f| f.phase == phase).collect();
        let _ = writeln!(
            out,
            "\nunits below, phase {phase} (counts and sums; percents for ratios, with numerator/denominator):"
        );
        let mut header = vec!["unit".to_owned(), "name".to_owned()];
        header.extend(shown.iter().map(|f| f.indicator.clone()));
        header.push("đồng bộ gần nhất / last sync".into());
        header.push("phân bổ / allocation".into());
        let mut rows = vec![header];
        for c in &children {
            let mut row = vec![c.unit.clone(), c.name.clone()];
            for top_f in &shown {
                let f = c
                    .figures
                    .iter()
                    .find(|f| f.indicator == top_f.indicator && f.phase == phase);
                row.push(match f {
                    // Nobody reported for this unit: its zeros are not figures.
                    _ if c.coverage != REPORTED => "–".into(),
                    Some(f) if f.status.is_empty() || f.status == "no_target" => {
                        cell(&f.compute, &f.measure, f.numerator, f.denominator)
                    }
                    Some(f) => format!(
                        "{} ({})",
                        cell(&f.compute, &f.measure, f.numerator, f.denominator),
                        f.status_vi
                    ),
                    None => String::new(),
                });
            }
            row.push(freshness(c, now));
            row.push(match c.allocation.as_str() {
                NO_ALLOCATION => "chưa phân bổ chỉ tiêu / no allocation".into(),
                _ => String::new(),
            });
            rows.push(row);
        }
        let mut here = vec![
            String::new(),
            "tại cấp này (không phân bổ được xuống cấp dưới) / at this level".to_owned(),
        ];
        here.extend(
            shown
                .iter()
                .map(|f| cell(&f.compute, &f.measure, f.here_numerator, f.here_denominator)),
        );
        here.push(String::new());
        here.push(String::new());
        rows.push(here);
        out.push_str(&columns(&rows, 2));
    }
    // The indicators' names, once, from the plan file.
    let _ = writeln!(out, "\nchỉ tiêu / indicators:");
    for f in top.figures.iter().filter(|f| f.phase == reply.phase_now) {
        let _ = writeln!(
            out,
            "  {}: {} / {}",
            f.indicator, f.indicator_name_vi, f.indicator_name
        );
    }
    if reply.unplaced > 0 {
        let _ = writeln!(
            out,
            "\n{} bản ghi không thuộc đơn vị nào của danh mục này / record(s) count nowhere in this hierarchy version:",
            reply.unplaced
        );
        for r in &reply.unplaced_records {
            let _ = writeln!(
                out,
                "  {} ({}), unit {} of {}: {}",
                r.id, r.kind, r.unit, r.unit_version, r.reason
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_in_dong_says_so_in_every_output_and_a_count_does_not() {
        let mut loan = crate::schema::record_from_strings(
            "activity",
            [
                ("type", "loan"),
                ("held_on", "2025-03-01"),
                ("amount_vnd", "1350000000"),
            ],
        )
        .unwrap();
        loan.id = "a1".into();
        loan.fields
            .insert("unit".into(), crate::schema::Value::Text("13633".into()));
        let plan = crate::plan::Plan::builtin();
        let as_of = crate::progress::parse_date("2025-06-30").unwrap();
        let report = crate::progress::recompute(
            &plan,
            crate::units::Hierarchy::builtin(),
            "2023",
            as_of,
            &[loan],
        )
        .unwrap();
        let reply = to_wire(&report, None, |_| Provenance::default()).unwrap();
        let figure = |id: &str| {
            reply.units[0]
                .figures
                .iter()
                .find(|f| f.indicator == id && f.phase == "1")
                .unwrap()
                .clone()
        };
        assert_eq!(figure("LOANS_VND").measure, "vnd");
        assert_eq!(figure("LOANS_VND").numerator, 1_350_000_000);
        assert_eq!(figure("ACTIVITIES").measure, "");
        let table = to_table(&reply);
        assert!(table.contains("1.350.000.000 đ"), "{table}");
        assert!(!table.contains("1 đ"), "a count is not an amount: {table}");
        // Programs read the number (JSON and gRPC also carry the measure).
        let csv = to_csv(&reply);
        assert!(
            csv.contains(",1350000000,") && !csv.contains("000 đ"),
            "{csv}"
        );
    }

    #[test]
    fn amounts_dates_and_times_are_written_the_vietnamese_way() {
        assert_eq!(grouped(1_350_000_000), "1.350.000.000");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1.000");
        assert_eq!(grouped(-12_345), "-12.345");
        assert_eq!(date_vi("2025-06-30"), "30/06/2025");
        let now = time::macros::datetime!(2025-07-03 20:00 UTC);
        // 17:30 UTC is 00:30 the next day in Vietnam.
        assert_eq!(
            time_vi("2025-06-30T17:30:00Z", now),
            "01/07/2025 00:30 (3 ngày trước / 3 days ago)"
        );
        assert_eq!(time_vi("not a time", now), "not a time");
        assert_eq!(status_vi("not_achieved"), "không đạt");
    }
}

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
use crate::units::UnitVersion;

/// `coverage` of a unit some node reported for.
pub const REPORTED: &str = "reported";
/// `coverage` of a unit no node's scope reaches.
pub const NO_NODE: &str = "no_node";
/// `coverage` of a unit nodes reach but none holds data for.
pub const NO_DATA: &str = "no_data";

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

fn unit_to_wire(u: &UnitProgress, who: Provenance) -> Result<pb::UnitFigures, ProgressError> {
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
                Ok(pb::Figure {
                    target: target_text(f.goal.as_ref(), ratio),
                    indicator: f.indicator.clone(),
                    phase: f.phase.clone(),
                    compute: format!("{:?}", f.compute).to_lowercase(),
                    numerator: narrow(&f.indicator, f.total.numerator)?,
                    denominator: narrow(&f.indicator, f.total.denominator)?,
                    value: f.value,
                    expected: f.expected,
                    share: f.share,
                    status: serde_json::to_value(f.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    here_numerator: narrow(&f.indicator, f.direct.numerator)?,
                    here_denominator: narrow(&f.indicator, f.direct.denominator)?,
                })
            })
            .collect::<Result<_, ProgressError>>()?,
        sources: who.sources,
        coverage: coverage.into(),
        oldest_sync,
        never_synced,
    })
}

/// The reply for `unit` and every unit below it, each with who stands
/// behind its figures (`provenance(unit)`).
pub fn to_wire(
    report: &Report,
    version: &UnitVersion,
    unit: &str,
    provenance: impl Fn(&UnitProgress) -> Provenance,
) -> Result<pb::ProgressReply, ProgressError> {
    Ok(pb::ProgressReply {
        plan: report.plan.clone(),
        hierarchy: report.hierarchy.clone(),
        as_of: crate::schema::format_date(report.as_of),
        units: report
            .units
            .iter()
            .filter(|u| version.within(&u.code, unit))
            .map(|u| unit_to_wire(u, provenance(u)))
            .collect::<Result<_, _>>()?,
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
            ])
            .expect("writes to memory");
        }
    }
    String::from_utf8(w.into_inner().expect("flushes to memory")).expect("CSV of UTF-8 text")
}

/// A cell of the units-below table: the count or sum, or for a ratio its
/// percent with the numerator and denominator (those add up, percents do not).
fn cell(compute: &str, numerator: i64, denominator: i64) -> String {
    match (compute, part_value(compute, numerator, denominator)) {
        ("ratio", Some(v)) => format!("{v:.0}% ({numerator}/{denominator})"),
        ("ratio", None) => "–".into(),
        _ => numerator.to_string(),
    }
}

/// What the "last sync" column says of a unit: the oldest of its sources,
/// "never" if one of them never synced, or why there is no figure.
fn freshness(u: &pb::UnitFigures) -> String {
    match u.coverage.as_str() {
        NO_NODE => "no node / không có máy trạm".into(),
        NO_DATA => "no data / chưa có số liệu".into(),
        _ if u.never_synced => "never / chưa đồng bộ".into(),
        _ => u.oldest_sync.get(..16).unwrap_or(&u.oldest_sync).to_owned(),
    }
}

/// Rows of text padded to the widest cell of each column (names are never
/// cut: two long names must not come out the same).
fn columns(rows: &[Vec<String>], right_from: usize) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, text) in r.iter().enumerate() {
            let pad = " ".repeat(widths[c] - text.chars().count());
            if c > 0 {
                line.push_str("  ");
            }
            if c >= right_from && c + 1 < r.len() {
                line.push_str(&pad);
                line.push_str(text);
            } else {
                line.push_str(text);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The asked unit's figures, then one line per unit below it and the line
/// "at this level", for a terminal.
pub fn to_table(reply: &pb::ProgressReply) -> String {
    let mut out = String::new();
    let Some(top) = reply.units.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "{} {} — plan {}, as of {}, hierarchy {}",
        top.unit, top.name, reply.plan, reply.as_of, reply.hierarchy
    );
    for s in &top.sources {
        let _ = writeln!(
            out,
            "  includes node {} (unit {}), last synced {}",
            s.node,
            s.unit,
            last_sync(s)
        );
    }
    if top.coverage != REPORTED {
        let _ = writeln!(out, "  {}: its zeros are missing data", freshness(top));
    }
    let mut rows = vec![
        ["indicator", "phase", "value", "target", "share", "status"]
            .map(String::from)
            .to_vec(),
    ];
    for f in &top.figures {
        let value = match (f.compute.as_str(), f.value) {
            ("ratio", Some(v)) => format!("{v:.0}% ({}/{})", f.numerator, f.denominator),
            ("ratio", None) => format!("– (0/{})", f.denominator),
            _ => f.numerator.to_string(),
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
            f.status.clone(),
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
        header.push("last sync".into());
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
                    Some(f) => cell(&f.compute, f.numerator, f.denominator),
                    None => String::new(),
                });
            }
            row.push(freshness(c));
            rows.push(row);
        }
        let mut here = vec![
            String::new(),
            "at this level / tại cấp này (not attributable below)".to_owned(),
        ];
        here.extend(
            shown
                .iter()
                .map(|f| cell(&f.compute, f.here_numerator, f.here_denominator)),
        );
        here.push(String::new());
        rows.push(here);
        out.push_str(&columns(&rows, 2));
    }
    if reply.unplaced > 0 {
        let _ = writeln!(
            out,
            "\n{} record(s) count nowhere in this hierarchy version:",
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

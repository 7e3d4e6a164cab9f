//! # Progress reports as people and programs read them
//!
//! Turns a [`Report`] of [`crate::progress`] into the wire reply
//! (`htx.v1.ProgressReply`, also served as JSON), and that reply into a
//! terminal table or CSV. Shared by the hub and the node, so that both show
//! progress the same way.

use std::fmt::Write;

use htx_proto::v1 as pb;

use crate::plan::{Compute, Goal};
use crate::progress::{ProgressError, Report, UnitProgress};
use crate::units::UnitVersion;

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

fn unit_to_wire(
    u: &UnitProgress,
    sources: Vec<pb::Source>,
) -> Result<pb::UnitFigures, ProgressError> {
    // The engine adds in 128 bits; the wire carries 64. A total beyond that
    // is an explicit error, never a wrapped (negative) number.
    let narrow = |indicator: &str, value: i128| {
        i64::try_from(value).map_err(|_| ProgressError::TooLarge {
            indicator: indicator.to_owned(),
            unit: u.code.clone(),
            value,
        })
    };
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
                })
            })
            .collect::<Result<_, ProgressError>>()?,
        sources,
    })
}

/// The reply for `unit` and every unit below it, each with the nodes its
/// figures include (`sources(unit code)`).
pub fn to_wire(
    report: &Report,
    version: &UnitVersion,
    unit: &str,
    sources: impl Fn(&str) -> Vec<pb::Source>,
) -> Result<pb::ProgressReply, ProgressError> {
    Ok(pb::ProgressReply {
        plan: report.plan.clone(),
        hierarchy: report.hierarchy.clone(),
        as_of: crate::schema::format_date(report.as_of),
        units: report
            .units
            .iter()
            .filter(|u| version.within(&u.code, unit))
            .map(|u| unit_to_wire(u, sources(&u.code)))
            .collect::<Result<_, _>>()?,
        unplaced: report.unplaced.len() as u32,
        phase_now: report.phase_now.clone(),
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

/// One row per unit, indicator and phase.
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
    ];
    w.write_record(header).expect("writes to memory");
    for u in &reply.units {
        let sources: Vec<String> = u
            .sources
            .iter()
            .map(|s| format!("{}@{}", s.node, last_sync(s)))
            .collect();
        for f in &u.figures {
            let ratio = f.compute == "ratio";
            w.write_record([
                u.unit.as_str(),
                &u.name,
                &u.level,
                &f.indicator,
                &f.phase,
                &f.compute,
                &f.numerator.to_string(),
                &if ratio {
                    f.denominator.to_string()
                } else {
                    String::new()
                },
                &num(f.value),
                &f.target,
                &num(f.expected),
                &num(f.share),
                &f.status,
                &reply.as_of,
                &reply.hierarchy,
                &sources.join(";"),
            ])
            .expect("writes to memory");
        }
    }
    String::from_utf8(w.into_inner().expect("flushes to memory")).expect("CSV of UTF-8 text")
}

/// The asked unit's figures, then one line per unit below it, for a terminal.
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
    let _ = writeln!(
        out,
        "\n{:<24} {:<6} {:>14} {:>10} {:>7}  status",
        "indicator", "phase", "value", "target", "share"
    );
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
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:>14} {:>10} {:>7}  {}",
            f.indicator, f.phase, value, f.target, share, f.status
        );
    }
    let children: Vec<&pb::UnitFigures> = reply
        .units
        .iter()
        .filter(|u| u.parent == top.unit)
        .collect();
    if !children.is_empty() {
        // The phase the date falls in.
        let phase = reply.phase_now.clone();
        let ids: Vec<&str> = top
            .figures
            .iter()
            .filter(|f| f.phase == phase)
            .map(|f| f.indicator.as_str())
            .collect();
        let _ = writeln!(
            out,
            "\nunits below, phase {phase} (counts and sums; percents for ratios):"
        );
        let _ = write!(out, "{:<7} {:<24}", "unit", "name");
        for id in &ids {
            let _ = write!(out, " {:>8}", id.chars().take(8).collect::<String>());
        }
        let _ = writeln!(out, "  last sync");
        for c in children {
            let _ = write!(
                out,
                "{:<7} {:<24}",
                c.unit,
                c.name.chars().take(24).collect::<String>()
            );
            for id in &ids {
                let cell = match c
                    .figures
                    .iter()
                    .find(|f| f.indicator == *id && f.phase == phase)
                {
                    Some(f) if f.compute == "ratio" => f
                        .value
                        .map(|v| format!("{v:.0}%"))
                        .unwrap_or_else(|| "–".into()),
                    Some(f) => f.numerator.to_string(),
                    None => String::new(),
                };
                let _ = write!(out, " {cell:>8}");
            }
            let last = c
                .sources
                .iter()
                .map(|s| last_sync(s).get(..16).unwrap_or("never"))
                .min()
                .unwrap_or("no node");
            let _ = writeln!(out, "  {last}");
        }
    }
    if reply.unplaced > 0 {
        let _ = writeln!(
            out,
            "\n{} record(s) count nowhere in this hierarchy version",
            reply.unplaced
        );
    }
    out
}

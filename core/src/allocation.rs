//! # Allocations: the plan's targets given to units below its territory
//!
//! A plan sets targets for its territory (the province). The province then
//! allocates them to its districts or communes, in an allocation file
//! beside the plan (TOML; `deploy/plans/allocation.example.toml` shows the
//! format by example):
//!
//! ```toml
//! format = 1
//! plan = "de-an-01-nam-dinh"          # the plan's id
//!
//! [[allocations]]
//! indicator = "HTX_CONSOLIDATED"
//! phase = "1"
//! unit = "366"                        # in the plan's hierarchy version
//! at_least = 2                        # or more_than, exactly, range = [a, b]
//!                                     # or share = 0.2 (of the plan's target)
//!
//! [[may_exceed]]                      # allocations of this target may add
//! indicator = "NEW_JOBS"              # up to more than it (say why)
//! phase = "1"
//! reason = "districts aim higher"
//! ```
//!
//! [`apply`] checks it all and adds each allocation to the plan's targets,
//! where [`crate::progress`] judges the unit against it like the
//! territory's own. A file with a mistake is refused with the line and the
//! reason: an unknown indicator, phase or unit, a unit outside the plan's
//! territory (or the territory itself), a unit given twice, a share of a
//! target that does not exist or of a percentage, a milestone, and
//! allocations that add up to more than what they divide: for counts and
//! sums, the allocations directly below a unit (the territory, or an
//! allocated district for its communes) may not add up to more than that
//! unit's target (the low end of a range), unless `[[may_exceed]]` says so.
//! Percentages are not divided: each unit's is its own.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::plan::{Compute, Goal, MAX_TARGET, Plan, Target};
use crate::units::Hierarchy;

/// An allocation file that was refused: the line (1-based) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("allocation file, line {line}: {reason} / tệp phân bổ chỉ tiêu có lỗi ở dòng {line}")]
pub struct AllocationError {
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    format: Spanned<u32>,
    plan: Spanned<String>,
    #[serde(default)]
    allocations: Vec<Spanned<AllocationDef>>,
    #[serde(default)]
    may_exceed: Vec<Spanned<ExceedDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocationDef {
    indicator: String,
    phase: String,
    unit: String,
    at_least: Option<f64>,
    more_than: Option<f64>,
    exactly: Option<f64>,
    range: Option<[f64; 2]>,
    share: Option<f64>,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceedDef {
    indicator: String,
    phase: String,
    #[serde(default)]
    #[allow(dead_code)] // for people
    reason: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn parse(text: &str) -> Result<FileDef, AllocationError> {
    toml::from_str(text).map_err(|e| AllocationError {
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        reason: e.message().trim().to_owned(),
    })
}

/// The id of the plan an allocation file is for.
pub fn plan_of(text: &str) -> Result<String, AllocationError> {
    Ok(parse(text)?.plan.into_inner())
}

/// The low end of a goal: what allocations of it add up against.
fn low(goal: Goal) -> f64 {
    match goal {
        Goal::AtLeast(x) | Goal::MoreThan(x) | Goal::Exactly(x) | Goal::Range(x, _) => x,
        Goal::Milestone => 1.0,
    }
}

/// The targets `added` as `[[targets]]` of a plan file: appended to the
/// plan's text, they make the same plan with its allocations (shares
/// worked out), which is how the hub publishes them to nodes.
pub fn as_plan_targets(added: &[Target]) -> String {
    let mut out = String::from("\n# ---- Allocations (from the hub's allocation files) ----\n");
    for t in added {
        let goal = match t.goal {
            Goal::AtLeast(x) => format!("at_least = {x:?}"),
            Goal::MoreThan(x) => format!("more_than = {x:?}"),
            Goal::Exactly(x) => format!("exactly = {x:?}"),
            Goal::Range(a, b) => format!("range = [{a:?}, {b:?}]"),
            Goal::Milestone => "milestone = true".into(),
        };
        let s = |x: &str| toml::Value::String(x.to_owned()).to_string();
        out.push_str(&format!(
            "\n[[targets]]\nindicator = {}\nphase = {}\nunit = {}\n{goal}\nnote = {}\n",
            s(&t.indicator),
            s(&t.phase),
            s(&t.unit),
            s(&t.note)
        ));
    }
    out
}

/// Checks an allocation file against `plan` and adds its allocations to
/// the plan's targets; returns them. On error the plan is left as it was.
pub fn apply(plan: &mut Plan, text: &str) -> Result<Vec<Target>, AllocationError> {
    let file = parse(text)?;
    let at = |span: std::ops::Range<usize>, reason: String| AllocationError {
        line: line_of(text, span.start),
        reason,
    };
    if *file.format.get_ref() != 1 {
        return Err(at(
            file.format.span(),
            "this build reads allocation files of format 1".into(),
        ));
    }
    if *file.plan.get_ref() != plan.id {
        return Err(at(
            file.plan.span(),
            format!(
                "this file is for plan {:?}, not {:?}",
                file.plan.get_ref(),
                plan.id
            ),
        ));
    }
    let h = Hierarchy::current();
    let own = h
        .version(&plan.hierarchy)
        .map_err(|e| at(0..0, e.to_string()))?;
    let mut added: Vec<(Target, std::ops::Range<usize>)> = Vec::new();
    for a in &file.allocations {
        let span = a.span();
        let d = a.get_ref();
        let bad = |reason: String| at(span.clone(), reason);
        let ind = plan.indicator(&d.indicator).ok_or_else(|| {
            let known: Vec<&str> = plan.indicators.iter().map(|i| i.id.as_str()).collect();
            bad(format!(
                "no indicator {:?} in the plan (indicators: {})",
                d.indicator,
                known.join(", ")
            ))
        })?;
        if plan.phase(&d.phase).is_none() {
            return Err(bad(format!("no phase {:?} in the plan", d.phase)));
        }
        if own.unit(&d.unit).is_none() {
            return Err(bad(format!(
                "unknown unit code {:?} in the {} hierarchy (the plan's)",
                d.unit, plan.hierarchy
            )));
        }
        if d.unit == plan.unit || !own.within(&d.unit, &plan.unit) {
            return Err(bad(format!(
                "unit {} is not below the plan's territory ({}): only units below it are allocated",
                d.unit, plan.unit
            )));
        }
        let own_goal = plan
            .targets
            .iter()
            .find(|t| t.indicator == d.indicator && t.phase == d.phase && t.unit == plan.unit)
            .map(|t| t.goal);
        if own_goal == Some(Goal::Milestone) {
            return Err(bad(format!(
                "{} is a milestone of the territory: it is not allocated",
                d.indicator
            )));
        }
        let given = [
            d.at_least.map(Goal::AtLeast),
            d.more_than.map(Goal::MoreThan),
            d.exactly.map(Goal::Exactly),
            d.range.map(|[a, b]| Goal::Range(a, b)),
        ];
        let n = given.iter().flatten().count() + usize::from(d.share.is_some());
        if n != 1 {
            return Err(bad(
                "give exactly one of at_least, more_than, exactly, range = [low, high], share"
                    .into(),
            ));
        }
        let goal = match (d.share, given.into_iter().flatten().next()) {
            (Some(s), _) => {
                if ind.compute == Compute::Ratio {
                    return Err(bad(format!(
                        "{} is a percentage: a share of it means nothing; give the unit's own percentage (at_least = ...)",
                        d.indicator
                    )));
                }
                if !(s > 0.0 && s <= 1.0) {
                    return Err(bad(format!(
                        "share = {s}: a share is above 0 and at most 1"
                    )));
                }
                match own_goal {
                    None => {
                        return Err(bad(format!(
                            "the plan sets no target for {} in phase {} to take a share of",
                            d.indicator, d.phase
                        )));
                    }
                    Some(Goal::AtLeast(x)) => Goal::AtLeast(x * s),
                    Some(Goal::MoreThan(x)) => Goal::MoreThan(x * s),
                    Some(Goal::Exactly(x)) => Goal::Exactly(x * s),
                    Some(Goal::Range(a, b)) => Goal::Range(a * s, b * s),
                    Some(Goal::Milestone) => unreachable!("refused above"),
                }
            }
            (None, Some(g)) => g,
            (None, None) => unreachable!("one was given"),
        };
        let (lo, hi) = match goal {
            Goal::Range(a, b) => (a, b),
            g => (low(g), low(g)),
        };
        if !(lo.is_finite()
            && hi.is_finite()
            && (0.0..=MAX_TARGET).contains(&lo)
            && hi >= lo
            && hi <= MAX_TARGET)
        {
            return Err(bad(
                "the target must be a number from 0 to at most 1e15 (a range [low, high] with low <= high)"
                    .into(),
            ));
        }
        let clash =
            |t: &Target| t.indicator == d.indicator && t.phase == d.phase && t.unit == d.unit;
        if plan.targets.iter().any(clash) || added.iter().any(|(t, _)| clash(t)) {
            return Err(bad(format!(
                "unit {} already has a target for {} in phase {}",
                d.unit, d.indicator, d.phase
            )));
        }
        added.push((
            Target {
                indicator: d.indicator.clone(),
                phase: d.phase.clone(),
                unit: d.unit.clone(),
                goal,
                note: if d.note.is_empty() {
                    "allocation / phân bổ".into()
                } else {
                    d.note.clone()
                },
            },
            span,
        ));
    }
    for e in &file.may_exceed {
        let d = e.get_ref();
        if plan.indicator(&d.indicator).is_none() || plan.phase(&d.phase).is_none() {
            return Err(at(
                e.span(),
                format!(
                    "no indicator {:?} with phase {:?} in the plan",
                    d.indicator, d.phase
                ),
            ));
        }
    }
    // What each allocation is taken out of: the nearest unit above it with
    // a target for the same indicator and phase (the territory at least).
    let mut parts: BTreeMap<(String, String, String), (f64, std::ops::Range<usize>)> =
        BTreeMap::new();
    let all: Vec<&Target> = plan
        .targets
        .iter()
        .chain(added.iter().map(|(t, _)| t))
        .collect();
    for (t, span) in &added {
        let ind = plan.indicator(&t.indicator).expect("checked");
        if ind.compute == Compute::Ratio {
            continue;
        }
        let declared = file
            .may_exceed
            .iter()
            .any(|e| e.get_ref().indicator == t.indicator && e.get_ref().phase == t.phase);
        if declared {
            continue;
        }
        let above = own.ancestors(&t.unit).into_iter().find_map(|a| {
            all.iter()
                .find(|x| x.indicator == t.indicator && x.phase == t.phase && x.unit == a.code)
        });
        let Some(above) = above else {
            continue; // nothing set above it: nothing to exceed
        };
        let sum = parts
            .entry((t.indicator.clone(), t.phase.clone(), above.unit.clone()))
            .or_insert((0.0, span.clone()));
        sum.0 += low(t.goal);
        sum.1 = span.clone();
        if sum.0 > low(above.goal) + 1e-9 {
            return Err(at(
                span.clone(),
                format!(
                    "allocations of {} (phase {}) below unit {} add up to {}, more than its target {}; \
                     add [[may_exceed]] for it if this is intended / tổng phân bổ vượt chỉ tiêu",
                    t.indicator,
                    t.phase,
                    above.unit,
                    sum.0,
                    low(above.goal)
                ),
            ));
        }
    }
    let added: Vec<Target> = added.into_iter().map(|(t, _)| t).collect();
    plan.targets.extend(added.iter().cloned());
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "format = 1\nplan = \"de-an-01-nam-dinh\"\n";

    fn alloc(body: &str) -> Result<Plan, AllocationError> {
        let mut p = Plan::builtin();
        apply(&mut p, &format!("{HEAD}{body}")).map(|_| p)
    }

    fn row(ind: &str, unit: &str, goal: &str) -> String {
        format!(
            "\n[[allocations]]\nindicator = \"{ind}\"\nphase = \"1\"\nunit = \"{unit}\"\n{goal}\n"
        )
    }

    #[test]
    fn absolute_and_shared_allocations_become_targets() {
        let text = row("HTX_CONSOLIDATED", "366", "at_least = 4")
            + &row("HTX_CONSOLIDATED", "359", "share = 0.5")
            + &row("MANAGERS_TRAINED_PCT", "366", "at_least = 100");
        let p = alloc(&text).unwrap();
        let goal = |ind: &str, unit: &str| {
            p.targets
                .iter()
                .find(|t| t.indicator == ind && t.unit == unit && t.phase == "1")
                .map(|t| t.goal)
        };
        assert_eq!(goal("HTX_CONSOLIDATED", "366"), Some(Goal::AtLeast(4.0)));
        assert_eq!(goal("HTX_CONSOLIDATED", "359"), Some(Goal::AtLeast(5.0)));
        assert_eq!(
            goal("MANAGERS_TRAINED_PCT", "366"),
            Some(Goal::AtLeast(100.0))
        );
        // As the hub publishes them: the plan's text and the allocations
        // as targets make the same targets.
        let mut plain = Plan::builtin();
        let added = apply(&mut plain, &format!("{HEAD}{text}")).unwrap();
        let published = format!(
            "{}{}",
            crate::plan::DE_AN_01_NAM_DINH,
            as_plan_targets(&added)
        );
        let again = Plan::parse(&published).unwrap();
        let key = |p: &Plan| {
            p.targets
                .iter()
                .map(|t| format!("{} {} {} {:?}", t.indicator, t.phase, t.unit, t.goal))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&again), key(&p));
    }

    #[track_caller]
    fn refused(body: &str, line: usize, why: &str) {
        let e = alloc(body).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.reason.contains(why), "{e}");
        assert!(e.to_string().contains("tệp phân bổ"), "{e}");
    }

    #[test]
    fn the_shipped_example_applies_to_the_shipped_plan() {
        let mut p = Plan::builtin();
        let before = p.targets.len();
        apply(
            &mut p,
            include_str!("../../deploy/plans/allocation.example.toml"),
        )
        .unwrap();
        assert_eq!(p.targets.len(), before + 5);
        // Without its [[may_exceed]], NEW_JOBS's 100 + 80 is above 150.
        let text = include_str!("../../deploy/plans/allocation.example.toml");
        let cut = &text[..text.rfind("[[may_exceed]]").unwrap()];
        let e = apply(&mut Plan::builtin(), cut).unwrap_err();
        assert!(
            e.reason.contains("add up to 180, more than its target 150"),
            "{e}"
        );
    }

    #[test]
    fn allocations_above_the_target_are_refused_unless_declared() {
        // 10 for the province in phase 1: 6 + 5 is more.
        let text = row("HTX_CONSOLIDATED", "366", "at_least = 6")
            + &row("HTX_CONSOLIDATED", "359", "at_least = 5");
        refused(&text, 10, "add up to 11, more than its target 10");
        let declared = format!(
            "{text}\n[[may_exceed]]\nindicator = \"HTX_CONSOLIDATED\"\nphase = \"1\"\nreason = \"aim higher\"\n"
        );
        alloc(&declared).unwrap();
        // Communes below an allocated district are taken out of the district's.
        let text = row("HTX_CONSOLIDATED", "366", "at_least = 2")
            + &row("HTX_CONSOLIDATED", "14215", "at_least = 2")
            + &row("HTX_CONSOLIDATED", "14218", "at_least = 1");
        refused(&text, 16, "below unit 366 add up to 3");
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        refused(
            &row("HTX_CONSOLIDATD", "366", "at_least = 1"),
            4,
            "no indicator",
        );
        refused(
            &row("HTX_CONSOLIDATED", "99999", "at_least = 1"),
            4,
            "unknown unit",
        );
        refused(
            &row("HTX_CONSOLIDATED", "36", "at_least = 1"),
            4,
            "not below",
        );
        refused(&row("ASSOCIATION", "366", "at_least = 1"), 4, "milestone");
        refused(
            &row("MANAGERS_TRAINED_PCT", "366", "share = 0.5"),
            4,
            "percentage",
        );
        refused(&row("ACTIVITIES", "366", "share = 0.5"), 4, "no target");
        refused(
            &row("HTX_CONSOLIDATED", "366", "share = 1.5"),
            4,
            "at most 1",
        );
        refused(
            &row("HTX_CONSOLIDATED", "366", "at_least = 1\nshare = 0.1"),
            4,
            "exactly one",
        );
        refused(
            &row("HTX_CONSOLIDATED", "366", "at_leest = 1"),
            8,
            "unknown field",
        );
        let twice = row("HTX_CONSOLIDATED", "366", "at_least = 1").repeat(2);
        refused(&twice, 10, "already has a target");
        let e = apply(&mut Plan::builtin(), "format = 1\nplan = \"other\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }
}

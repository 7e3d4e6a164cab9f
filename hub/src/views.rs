//! # What the dashboard and the reports read
//!
//! The pages and the reports read the hub's own progress API
//! ([`Hub::progress`], [`crate::progress`]) and nothing else of the engine:
//! a figure on a page is the figure `/api/progress` gives for the same unit,
//! date and hierarchy version. This module adds what several pages share:
//! the phase a date falls in, the ends of months since the plan's start
//! (trends, "change since last month"), one export for many dates, which
//! units an officer may see, how fresh each node is, and the data version
//! (a digest of every merged document's heads) that stamps a report.

use htx_core::plan::{Phase, Plan};
use std::collections::HashMap;

use htx_core::progress::{ProgressError, Rec, Slim};
use htx_core::units::{Hierarchy, UnitError};
use htx_proto::v1 as pb;
use htx_web::Account;
use sha2::{Digest, Sha256};
use time::{Date, Duration, Month, OffsetDateTime};

use crate::home::Enrolment;
use crate::hub::{Hub, NodeStats};
use crate::progress::{self, Query};

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{0}")]
    Progress(#[from] ProgressError),
    #[error("{0}")]
    Units(#[from] htx_core::units::UnitError),
    #[error("{0:#}")]
    Hub(#[from] anyhow::Error),
    #[error("{0}")]
    Index(#[from] htx_core::index::IndexError),
    #[error("no phase {0:?} in the plan / kế hoạch không có giai đoạn này")]
    NoPhase(String),
}

impl ViewError {
    /// Whether the request was at fault (a page answers 400), not the hub:
    /// a phase the plan has not, or a unit outside the plan's territory.
    pub fn is_request(&self) -> bool {
        let progress = match self {
            ViewError::NoPhase(_) => return true,
            ViewError::Progress(e) => Some(e),
            ViewError::Hub(e) => e.downcast_ref::<ProgressError>(),
            _ => None,
        };
        matches!(progress, Some(ProgressError::NotInTerritory { .. }))
    }
}

/// The phase `date` falls in: the first whose end is not past; the last
/// phase after the plan's end.
pub fn phase_at(plan: &Plan, date: Date) -> &Phase {
    plan.phases
        .iter()
        .find(|p| p.end >= date)
        .or(plan.phases.last())
        .expect("a plan has phases")
}

/// The phase named `id`, or the one `date` falls in.
pub fn phase<'p>(plan: &'p Plan, id: Option<&str>, date: Date) -> Result<&'p Phase, ViewError> {
    match id.filter(|s| !s.is_empty()) {
        Some(id) => plan
            .phase(id)
            .ok_or_else(|| ViewError::NoPhase(id.to_owned())),
        None => Ok(phase_at(plan, date)),
    }
}

/// The last day of `d`'s month.
pub fn month_end(d: Date) -> Date {
    let (y, m) = (d.year(), d.month());
    let first_next = if m == Month::December {
        Date::from_calendar_date(y + 1, Month::January, 1)
    } else {
        Date::from_calendar_date(y, m.next(), 1)
    }
    .expect("a valid date");
    first_next - Duration::days(1)
}

/// The end of the month before `d`'s.
pub fn previous_month_end(d: Date) -> Date {
    Date::from_calendar_date(d.year(), d.month(), 1).expect("a valid date") - Duration::days(1)
}

/// The end of every month from `start`'s to `until`'s; the last one is
/// `until` itself when the month is not over.
pub fn month_ends(start: Date, until: Date) -> Vec<Date> {
    let mut out = Vec::new();
    let mut d = month_end(start);
    while d < until {
        out.push(d);
        d = month_end(d + Duration::days(1));
    }
    if until >= start {
        out.push(until);
    }
    out
}

/// The records behind one figure of `plan` for `unit` (as of `as_of`, in `version`):
/// each record counted there for `indicator` in `phase`, with what it
/// adds ([`htx_core::progress::behind`]); they add up to the figure
/// `/api/progress` gives. Worked out over the live view's records, and
/// only the records listed (and their cooperatives) are read whole.
pub fn behind(
    hub: &Hub,
    plan: &Plan,
    unit: &str,
    version: &str,
    as_of: Date,
    indicator: &str,
    phase: &str,
) -> Result<Behind, ViewError> {
    let records = hub.records_for(plan)?;
    let h = Hierarchy::current();
    let tallies =
        htx_core::progress::behind(plan, h, version, as_of, unit, indicator, phase, &records)
            // The unit is one of `version` (the pages check): if the view does
            // not know it, it lies outside the plan's territory.
            .map_err(|e| match e {
                ProgressError::Unit(UnitError::UnknownUnit { .. }) => {
                    ProgressError::NotInTerritory {
                        unit: unit.to_owned(),
                        version: version.to_owned(),
                        plan: plan.id.clone(),
                        territory: plan.unit.clone(),
                    }
                }
                e => e,
            })?;
    let slim: HashMap<&str, &Slim> = records.iter().map(|r| (r.id(), &**r)).collect();
    let listed: Vec<&Slim> = tallies
        .iter()
        .filter_map(|(id, _)| slim.get(id.as_str()).copied())
        .collect();
    let coops: Vec<&Slim> = listed
        .iter()
        .filter_map(|r| r.text("cooperative"))
        .filter_map(|c| slim.get(c).copied())
        .collect();
    let mut whole = hub.whole(&[listed, coops].concat())?;
    let cooperatives = whole
        .values()
        .filter(|r| r.kind == "cooperative")
        .map(|c| (c.id.clone(), c.text("name").unwrap_or_default().to_owned()))
        .collect();
    let rows = tallies
        .into_iter()
        .filter_map(|(id, t)| whole.remove(&id).map(|r| (r, t)))
        .collect();
    Ok(Behind { rows, cooperatives })
}

/// The records behind a figure, and the names of the cooperatives they
/// belong to.
pub struct Behind {
    pub rows: Vec<(htx_core::schema::Record, htx_core::progress::Tally)>,
    pub cooperatives: std::collections::HashMap<String, String>,
}

/// Progress for `unit` (empty: the province) as of `as_of`, in `version`:
/// exactly what `/api/progress` answers.
pub fn progress_at(
    hub: &Hub,
    unit: &str,
    version: &str,
    as_of: Date,
) -> Result<pb::ProgressReply, ViewError> {
    plan_progress_at(hub, "", unit, version, as_of)
}

/// As [`progress_at`], under plan `plan` (empty: the hub's default).
pub fn plan_progress_at(
    hub: &Hub,
    plan: &str,
    unit: &str,
    version: &str,
    as_of: Date,
) -> Result<pb::ProgressReply, ViewError> {
    Ok(hub.progress(&query(plan, unit, version, as_of))?)
}

/// As [`plan_progress_at`], the date kept current in the hub's live view
/// from now on when it is in the hub's version ([`Hub::progress_kept`]):
/// the overview's dates.
pub fn plan_progress_kept(
    hub: &Hub,
    plan: &str,
    unit: &str,
    version: &str,
    as_of: Date,
) -> Result<pb::ProgressReply, ViewError> {
    Ok(hub.progress_kept(&query(plan, unit, version, as_of))?)
}

fn query(plan: &str, unit: &str, version: &str, as_of: Date) -> Query {
    Query {
        unit: Some(unit.to_owned()),
        as_of: Some(htx_core::schema::format_date(as_of)),
        hierarchy: Some(version.to_owned()),
        plan: Some(plan.to_owned()),
    }
}

/// Progress against `plan` for `unit` as of each of `dates`, from one read
/// of the merged records (a trend of 42 months reads the store once, not
/// 42 times), linked and placed once, with the figures of `unit` and its
/// children only ([`htx_core::progress::trend`]).
pub fn series(
    hub: &Hub,
    plan: &Plan,
    unit: &str,
    version: &str,
    dates: &[Date],
) -> Result<Vec<pb::ProgressReply>, ViewError> {
    let records = hub.records_for(plan)?;
    let nodes = nodes_with_stats(hub)?;
    let query = Query {
        unit: Some(unit.to_owned()),
        ..Default::default()
    };
    let h = Hierarchy::current();
    let reports = match unit {
        "" => htx_core::progress::recompute_at(plan, h, version, dates, &records)?,
        u => htx_core::progress::trend(plan, h, version, u, dates, &records)?,
    };
    reports
        .iter()
        .map(|report| Ok(progress::reply(report, &query, version, &nodes)?))
        .collect()
}

fn nodes_with_stats(hub: &Hub) -> Result<Vec<(Enrolment, NodeStats)>, ViewError> {
    Ok(hub
        .home()
        .enrolments()?
        .into_iter()
        .map(|e| {
            let s = hub.stats(&e.name);
            (e, s)
        })
        .collect())
}

/// A digest of every merged document's heads: the same digest means the
/// same merged data, so a report's figures can be reproduced from it.
pub fn data_version(hub: &Hub) -> String {
    let replica = hub.replica();
    let mut docs: Vec<&str> = replica.doc_ids().collect();
    docs.sort_unstable();
    let mut h = Sha256::new();
    for d in docs {
        h.update(d.as_bytes());
        h.update([0]);
        for head in replica.heads(d) {
            h.update(head.0);
        }
        h.update([0xff]);
    }
    hex::encode(&h.finalize()[..12])
}

/// Whether the officer may see `code` of hierarchy `version`. An officer
/// restricted to units (given in the hub's default version) sees them and
/// what lies below. Under another version a restricted unit counts only if
/// it maps to a unit of the same level (a 2023 district has no 2025
/// counterpart: its viewer sees nothing there rather than the province).
pub fn may_see(account: &Account, default_version: &str, version: &str, code: &str) -> bool {
    let h = Hierarchy::current();
    let Ok(v) = h.version(version) else {
        return false;
    };
    account.covers(code, |unit, mine| {
        let Ok(own) = h.unit(default_version, mine) else {
            return false;
        };
        let Ok(mapped) = h.resolve(default_version, mine, version) else {
            return false;
        };
        let same_level = v.unit(&mapped).is_some_and(|m| m.level == own.level);
        same_level && v.within(unit, &mapped)
    })
}

/// Whether the officer may see people's names (managers, cadres): the
/// roles that work on figures (analyst, admin). Viewers see figures and
/// record ids only; figures never name anyone (Decree 13/2023).
pub fn may_see_people(account: &Account) -> bool {
    account.role >= htx_web::Role::Analyst
}

/// The unit a page about `plan` shows when none is asked for: for an
/// officer restricted to units, her first (mapped into `version`); for
/// the others, the plan's territory when it is a unit of `version` (Nam
/// Định, 36, in 2023 and 2024), else the version's first province.
pub fn home_unit(
    account: &Account,
    default_version: &str,
    version: &str,
    plan: &Plan,
) -> Option<String> {
    let h = Hierarchy::current();
    match account.units.first() {
        None => territory_unit(plan, version).or_else(|| {
            h.version(version)
                .ok()?
                .roots()
                .next()
                .map(|u| u.code.clone())
        }),
        Some(u) => {
            let mapped = h.resolve(default_version, u, version).ok()?;
            may_see(account, default_version, version, &mapped).then_some(mapped)
        }
    }
}

/// The unit of `version` that is exactly `plan`'s territory, if any.
fn territory_unit(plan: &Plan, version: &str) -> Option<String> {
    let h = Hierarchy::current();
    htx_core::territory::Territory::new(h, &plan.hierarchy, &plan.unit)
        .ok()?
        .as_unit(h, version)
}

/// Whether unit `code` of `version` lies wholly in `plan`'s territory
/// (its figures can be shown under the plan).
pub fn in_territory(plan: &Plan, version: &str, code: &str) -> bool {
    let h = Hierarchy::current();
    htx_core::territory::Territory::new(h, &plan.hierarchy, &plan.unit)
        .is_ok_and(|t| t.part(version, code) == Some(htx_core::territory::Part::Inside))
}

/// The hierarchy version `plan`'s pages show when none is asked for: the
/// hub's default when the plan's territory is a unit of it, else the
/// plan's own (Xã Bình Lục, a 2025 commune made of three 2023 ones, is no
/// unit of 2023: its pages open in 2025).
pub fn plan_version(plan: &Plan, default_version: &str) -> String {
    if territory_unit(plan, default_version).is_some() {
        default_version.to_owned()
    } else {
        plan.hierarchy.clone()
    }
}

/// How long ago an RFC 3339 time was, in whole days; `None` if never.
pub fn age_days(rfc3339: &str, now: OffsetDateTime) -> Option<i64> {
    let then =
        OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    Some((now - then).whole_days())
}

/// Whether a node with this last completed sync is stale.
pub fn is_stale(last_sync: &str, stale_after_days: u64, now: OffsetDateTime) -> bool {
    age_days(last_sync, now).is_none_or(|d| d >= stale_after_days as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn month_ends_run_from_the_plan_start_to_the_date() {
        let ends = month_ends(date!(2023 - 05 - 01), date!(2023 - 08 - 10));
        assert_eq!(
            ends,
            vec![
                date!(2023 - 05 - 31),
                date!(2023 - 06 - 30),
                date!(2023 - 07 - 31),
                date!(2023 - 08 - 10)
            ]
        );
        assert_eq!(month_end(date!(2024 - 02 - 03)), date!(2024 - 02 - 29));
        assert_eq!(
            previous_month_end(date!(2024 - 01 - 15)),
            date!(2023 - 12 - 31)
        );
        // 32 month ends from the plan's start to the end of phase 1.
        assert_eq!(
            month_ends(date!(2023 - 05 - 01), date!(2025 - 12 - 31)).len(),
            32
        );
    }

    fn viewer(units: &[&str]) -> Account {
        Account {
            name: "v".into(),
            role: htx_web::Role::Viewer,
            units: units.iter().map(|u| u.to_string()).collect(),
            password: String::new(),
            disabled: false,
            lang: None,
            failed_logins: 0,
            locked_until: None,
            created_at: String::new(),
        }
    }

    #[test]
    fn a_district_viewer_sees_its_district_and_nothing_else() {
        let v = viewer(&["356"]);
        assert!(may_see(&v, "2023", "2023", "356"));
        assert!(may_see(&v, "2023", "2023", "13633"), "a commune of 356");
        assert!(!may_see(&v, "2023", "2023", "359"), "another district");
        assert!(!may_see(&v, "2023", "2023", "36"), "the province");
        assert!(!may_see(&v, "2023", "2023", "13741"), "a commune of 359");
        assert!(!may_see(&v, "2023", "2025", "36"), "no districts in 2025");
        let all = viewer(&[]);
        assert!(may_see(&all, "2023", "2023", "36"));
        let nam_dinh = Plan::builtin();
        assert_eq!(
            home_unit(&v, "2023", "2023", &nam_dinh).as_deref(),
            Some("356")
        );
        assert_eq!(
            home_unit(&all, "2023", "2023", &nam_dinh).as_deref(),
            Some("36")
        );
    }

    #[test]
    fn each_plan_opens_on_its_own_territory() {
        let all = viewer(&[]);
        let nam_dinh = Plan::builtin();
        let binh_luc =
            Plan::parse(include_str!("../../deploy/plans/thu-nghiem-binh-luc.toml")).unwrap();
        // Nam Định's plan: as before, 36 in the hub's 2023.
        assert_eq!(plan_version(&nam_dinh, "2023"), "2023");
        assert_eq!(
            home_unit(&all, "2023", "2023", &nam_dinh).as_deref(),
            Some("36")
        );
        // Bình Lục's: a 2025 commune, no unit of 2023; shown in 2025.
        assert_eq!(plan_version(&binh_luc, "2023"), "2025");
        assert_eq!(
            home_unit(&all, "2023", "2025", &binh_luc).as_deref(),
            Some("13504")
        );
        // A Nam Định district viewer has no unit in 2025.
        assert_eq!(
            home_unit(&viewer(&["356"]), "2023", "2025", &binh_luc),
            None
        );
    }
}

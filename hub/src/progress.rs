//! # Progress at the hub
//!
//! The hub keeps one [`Engine`] current for its default view (the default
//! hierarchy version, as of today): the records each merged batch touched
//! are fed to it, so a merged change shows up without recomputing the
//! province. It also keeps current the last few dates pages asked it to
//! keep ([`Live::report_at`], [`ASKED_DATES`]: the overview's date and the
//! end of the month before), as sums per unit; a page asking for a new one
//! waits for one evaluation of every record, once. Any other date or
//! version is computed from scratch over the live view's records (shared:
//! taken in a few milliseconds, the first time read in place from the
//! record index, [`htx_core::index::each_entry`]), holding neither the
//! replica nor the live view while it computes, so such a query never
//! holds up a sync. Today's figures are evaluated when first asked for:
//! a first query for another date after a restart does not pay for them.
//!
//! Each unit's figures name their sources: the nodes whose scope is the
//! unit or lies within it (they serve it, so their zeros are reported
//! zeros, and one that never synced shows as such), and the nodes whose
//! scope holds the unit and whose records are placed in it (a
//! province-level node is a source of a district only where it recorded
//! something there). A unit with neither says "no node" when no node's
//! scope reaches it (a province-level node does not count: it is the
//! province's own office), or "no data" when the district node that
//! reaches it holds nothing for it; either way its zeros are missing data.

use htx_core::plan::Plan;
use htx_core::progress::{self, Engine, ProgressError, Rec, Report, Slim, UnitProgress};
use htx_core::report;
use htx_core::schema::Record;
use htx_core::storage::Store;
use htx_core::units::Hierarchy;
use htx_proto::v1 as pb;
use time::Date;

use crate::home::Enrolment;
use crate::hub::NodeStats;

/// What a person or program asks for; empty fields take the defaults.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Query {
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub as_of: Option<String>,
    #[serde(default)]
    pub hierarchy: Option<String>,
    /// The plan's id; empty: the hub's first plan.
    #[serde(default)]
    pub plan: Option<String>,
}

pub fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

/// How many dates pages asked for (the overview: the end of last month,
/// or a past date and the end of the month before it) the live view keeps
/// current besides today: each is a few MB at a country's scale (the sums
/// of every unit) and adds to every merged change.
pub const ASKED_DATES: usize = 4;

/// The default view, kept current as records merge: today's figures in
/// the hub's hierarchy version, and those of the last dates pages asked
/// to keep ([`ASKED_DATES`]).
pub struct Live {
    engine: Engine,
    /// The dates kept besides today, the last asked first.
    asked: Vec<Date>,
}

impl Live {
    /// The view of `plan` in hierarchy `version`, with no records yet
    /// ([`Live::load`] them): nothing is evaluated until a report is asked
    /// for, so a first query for another date or version only loads.
    pub fn new(plan: Plan, version: &str) -> Result<Live, ProgressError> {
        let engine = Engine::empty(plan, Hierarchy::current(), version, today())?;
        Ok(Live {
            engine,
            asked: Vec::new(),
        })
    }

    /// [`Live::new`] with every record of the record index in `store`,
    /// each read in place as the store gives it and kept in the engine's
    /// compact form: no whole record is made, and the index is not copied.
    pub fn from_index(plan: Plan, version: &str, store: &dyn Store) -> anyhow::Result<Live> {
        let mut live = Live::new(plan, version)?;
        htx_core::index::each_entry(store, |e| live.engine.load(e))?;
        Ok(live)
    }

    /// Records as merged (new, changed, deleted or restored).
    pub fn merged(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            self.engine.upsert(r);
        }
    }

    /// The report of `view` if the live view keeps it (today, or a date
    /// kept, in its version); none for another view. With `keep`, a date
    /// of its version is kept from now on (evaluated once, here, over every
    /// record; the least recently asked beyond [`ASKED_DATES`] is dropped):
    /// what a page asks for again and again. Today is evaluated over every
    /// record by the first query for it (after a restart, or on a new
    /// day); any other query that does not ask to keep never makes the
    /// live view evaluate every record, so it never holds up merges for
    /// long.
    pub fn report_at(&mut self, view: &(String, Date), keep: bool) -> Option<Report> {
        let today = today();
        if self.engine.as_of() != today {
            // A new day: evaluated again (the dates kept stay as they are).
            self.engine.set_as_of(today);
        }
        if view.0 != self.engine.hierarchy_version() {
            return None;
        }
        if keep && view.1 != today {
            self.asked.retain(|d| *d != view.1);
            self.asked.insert(0, view.1);
            self.asked.truncate(ASKED_DATES);
            self.engine.keep_dates(&self.asked);
        }
        self.engine.report_at(view.1)
    }

    /// The dates kept besides today, the last asked first.
    pub fn kept_dates(&self) -> &[Date] {
        &self.asked
    }

    /// Today's figures in its version.
    pub fn report(&mut self) -> Report {
        let today = (self.version().to_owned(), today());
        self.report_at(&today, false)
            .expect("the live view keeps today")
    }

    pub fn version(&self) -> &str {
        self.engine.hierarchy_version()
    }

    /// The live records it holds, shared ([`Engine::records`]).
    pub fn records(&mut self) -> Vec<std::sync::Arc<Slim>> {
        self.engine.records()
    }
}

/// The view `query` asks for: a hierarchy version (checked) and a date.
/// `default_version` is the live view's.
pub fn view(query: &Query, default_version: &str) -> Result<(String, Date), ProgressError> {
    let version = query
        .hierarchy
        .clone()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default_version.to_owned());
    Hierarchy::current().version(&version)?;
    let as_of = match query.as_of.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => progress::parse_date(d)?,
        None => today(),
    };
    Ok((version, as_of))
}

/// The report of a view other than the live one, from scratch.
pub fn from_scratch<R: Rec>(
    plan: &Plan,
    view: &(String, Date),
    records: &[R],
) -> Result<Report, ProgressError> {
    progress::recompute(plan, Hierarchy::current(), &view.0, view.1, records)
}

/// The reply for `query`'s unit (default: the plan's territory) in `version`.
pub fn reply(
    report: &Report,
    query: &Query,
    version: &str,
    nodes: &[(Enrolment, NodeStats)],
) -> Result<pb::ProgressReply, ProgressError> {
    let h = Hierarchy::current();
    let unit = match query.unit.as_deref().filter(|u| !u.is_empty()) {
        Some(u) if report.unit(u).is_some() => Some(u),
        // A unit of the version, or an error naming the version.
        Some(u) => Some(h.unit(version, u)?.code.as_str()),
        None => None,
    };
    report::to_wire(report, unit, |u| provenance(report, version, u, nodes))
}

/// The sources of unit `u` (asked in `version`): see the module doc.
fn provenance(
    report: &Report,
    version: &str,
    u: &UnitProgress,
    nodes: &[(Enrolment, NodeStats)],
) -> report::Provenance {
    let h = Hierarchy::current();
    let Ok(v) = h.version(version) else {
        return report::Provenance::default();
    };
    // The territory as a unit of its own ("Nam Định (địa bàn cũ)"): judged
    // in the plan's version, against the territory's unit there.
    let t = &report.territory;
    let (version, v, code) = match v.unit(&u.code) {
        None if u.code == t.code => match h.version(&t.version) {
            Ok(own) => (t.version.as_str(), own, t.unit.as_str()),
            Err(_) => return report::Provenance::default(),
        },
        _ => (version, v, u.code.as_str()),
    };
    let mut out = report::Provenance::default();
    for (e, s) in nodes {
        let Ok(scope) = h.resolve(&e.unit_version, &e.unit, version) else {
            continue;
        };
        let serves = v.within(&scope, code);
        let holds = v.within(code, &scope);
        // A node whose scope is the whole province (in this version) is
        // the province's own office: it reaches a unit below only where
        // its records are.
        let whole = v.unit(&scope).is_some_and(|s| s.parent.is_none());
        out.reached |= serves || (holds && !whole);
        if serves || (holds && u.recorded_by.binary_search(&e.name).is_ok()) {
            out.sources.push(pb::Source {
                node: e.name.clone(),
                unit: e.unit.clone(),
                last_sync: s.last_sync.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_view_keeps_the_last_dates_pages_asked_for() {
        let mut live = Live::new(Plan::builtin(), "2023").unwrap();
        let day = |s| progress::parse_date(s).unwrap();
        let at = |s| ("2023".to_owned(), day(s));
        // Not asked to keep: answered only for today.
        assert!(live.report_at(&at("2025-12-31"), false).is_none());
        assert!(live.kept_dates().is_empty());
        let dates = [
            "2024-01-31",
            "2024-02-29",
            "2024-03-31",
            "2024-04-30",
            "2024-05-31",
        ];
        for d in dates {
            assert_eq!(live.report_at(&at(d), true).unwrap().as_of, day(d));
        }
        // The last ASKED_DATES, the last asked first.
        let kept: Vec<Date> = dates
            .iter()
            .rev()
            .take(ASKED_DATES)
            .map(|d| day(d))
            .collect();
        assert_eq!(live.kept_dates(), kept);
        assert!(
            live.report_at(&at("2024-01-31"), false).is_none(),
            "dropped"
        );
        assert!(live.report_at(&at("2024-03-31"), false).is_some(), "kept");
        // Asked again: first again, nothing dropped.
        live.report_at(&at("2024-03-31"), true);
        assert_eq!(live.kept_dates()[0], day("2024-03-31"));
        assert_eq!(live.kept_dates().len(), ASKED_DATES);
        // Another version is never the live view's.
        assert!(
            live.report_at(&("2025".to_owned(), day("2024-03-31")), true)
                .is_none()
        );
    }
}

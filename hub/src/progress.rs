//! # Progress at the hub
//!
//! The hub keeps one [`Engine`] current for its default view (the default
//! hierarchy version, as of today): every batch a node sends is re-read
//! and fed to it, so a merged change shows up without recomputing the
//! province. Any other date or version is computed from scratch from the
//! merged records. Each unit's figures name the nodes whose data they
//! include and when each last synced.

use htx_core::plan::Plan;
use htx_core::progress::{self, Engine, ProgressError, Report};
use htx_core::report;
use htx_core::schema::Record;
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
}

pub fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

/// The default view, kept current as records merge.
pub struct Live {
    engine: Engine,
}

impl Live {
    pub fn new(plan: Plan, version: &str, records: Vec<Record>) -> Result<Live, ProgressError> {
        let engine = Engine::new(plan, Hierarchy::builtin(), version, today(), records)?;
        Ok(Live { engine })
    }

    /// Records as merged (new, changed, deleted or restored).
    pub fn merged(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            self.engine.upsert(r);
        }
    }

    fn report(&mut self) -> Report {
        if self.engine.as_of() != today() {
            self.engine.set_as_of(today());
        }
        self.engine.report()
    }

    pub fn version(&self) -> &str {
        self.engine.hierarchy_version()
    }
}

/// Answers `query` from the live engine when it asks for the default view,
/// else from scratch over `all_records` (called only then).
pub fn answer(
    plan: &Plan,
    query: &Query,
    live: &mut Live,
    all_records: impl FnOnce() -> Vec<Record>,
    nodes: &[(Enrolment, NodeStats)],
) -> Result<pb::ProgressReply, ProgressError> {
    let h = Hierarchy::builtin();
    let version = query
        .hierarchy
        .clone()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| live.version().to_owned());
    h.version(&version)?;
    let as_of = match query.as_of.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => progress::parse_date(d)?,
        None => today(),
    };
    let report = if version == live.version() && as_of == today() {
        live.report()
    } else {
        progress::recompute(plan, h, &version, as_of, &all_records())?
    };
    let v = h.version(&version)?;
    let unit = match query.unit.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => h.unit(&version, u)?.code.clone(),
        None => v.roots().next().map(|u| u.code.clone()).unwrap_or_default(),
    };
    report::to_wire(&report, v, &unit, |code| sources(&version, code, nodes))
}

/// The nodes whose units overlap `unit` (asked in `version`).
fn sources(version: &str, unit: &str, nodes: &[(Enrolment, NodeStats)]) -> Vec<pb::Source> {
    let h = Hierarchy::builtin();
    let Ok(v) = h.version(version) else {
        return Vec::new();
    };
    nodes
        .iter()
        .filter(|(e, _)| {
            h.resolve(&e.unit_version, &e.unit, version)
                .is_ok_and(|n| v.within(&n, unit) || v.within(unit, &n))
        })
        .map(|(e, s)| pb::Source {
            node: e.name.clone(),
            unit: e.unit.clone(),
            last_sync: s.last_sync.clone(),
        })
        .collect()
}

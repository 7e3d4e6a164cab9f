//! # What the officers' pages read
//!
//! Lists with filters, one record with everything that refers to it, the
//! names to pick references by, and what needs attention. Reads only; the
//! pages' handlers call these and shape the answer, so the rules (what is
//! in scope, which records an officer's units cover) live here, beside the
//! writes in [`crate::node`].

use std::collections::BTreeMap;

use htx_core::schema::{Record, Value};
use htx_core::units::{Hierarchy, Level, UnitVersion};

use crate::node::{Node, NodeError};

/// A unit to pick by name.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRef {
    pub code: String,
    pub name: String,
}

/// What a list of cooperatives is filtered by; empty fields filter nothing.
#[derive(Debug, Clone, Default)]
pub struct CoopFilter {
    /// A commune (or any unit: its subtree).
    pub unit: String,
    /// Words in the name (case and diacritics ignored).
    pub search: String,
    /// `HTX` or `THT`.
    pub kind: String,
    /// `active` or `dissolved`.
    pub status: String,
    /// `yes` or `no`: in the plan's scope.
    pub in_scope: String,
    /// The officer's units; empty: all of the node's.
    pub scope: Vec<String>,
    pub include_deleted: bool,
}

/// Why a cooperative is in the plan's scope (empty: it is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeReason {
    /// A woman in its management now.
    WomenManage,
    /// More than half of its workers women, per its latest observation.
    MostlyWomenWorkers,
}

#[derive(Debug, Clone)]
pub struct CoopRow {
    pub record: Record,
    pub unit_name: String,
    pub in_scope: Vec<ScopeReason>,
    /// Its latest observation's date, if any.
    pub observed_on: Option<String>,
}

/// A cooperative and everything that refers to it.
#[derive(Debug, Clone)]
pub struct CoopPage {
    pub row: CoopRow,
    pub managers: Vec<Record>,
    /// Latest first.
    pub observations: Vec<Record>,
    pub trainings: Vec<Record>,
    pub activities: Vec<Record>,
}

/// What needs the officer's attention on the home page.
#[derive(Debug, Clone, Default)]
pub struct Attention {
    /// Records the hub refused (id, kind, name if any), the reason being
    /// the sync status's last error.
    pub refused: Vec<(String, String, String)>,
    /// Records with concurrent values for a field: (record, fields).
    pub conflicts: Vec<(Record, Vec<String>)>,
    /// Observations whose counts do not add up: (record, what).
    pub warnings: Vec<(Record, &'static str)>,
}

/// Lower case, without Vietnamese diacritics (đ → d), for search.
pub fn fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'đ' { 'd' } else { c })
        .collect()
}

fn int(r: &Record, f: &str) -> Option<i64> {
    match r.fields.get(f) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

fn date_of(r: &Record, f: &str) -> Option<String> {
    r.fields.get(f).map(|v| v.to_string())
}

/// A record's name for lists and pickers: its name, title, or kind and date.
pub fn label(r: &Record) -> String {
    r.text("name")
        .or_else(|| r.text("title"))
        .map(str::to_owned)
        .or_else(|| {
            ["observed_on", "held_on", "achieved_on"]
                .iter()
                .find_map(|f| date_of(r, f))
        })
        .unwrap_or_else(|| r.id.clone())
}

impl Node {
    fn version(&self) -> Result<&'static UnitVersion, NodeError> {
        Hierarchy::current()
            .version(&self.bundle().unit_version)
            .map_err(|e| NodeError::Setup(e.to_string()))
    }

    /// Whether unit `code` is `ancestor` or below it (this node's hierarchy).
    pub fn within(&self, code: &str, ancestor: &str) -> bool {
        self.version().is_ok_and(|v| v.within(code, ancestor))
    }

    /// Whether `officer_units` (empty: all) cover `unit`.
    pub fn covers(&self, officer_units: &[String], unit: &str) -> bool {
        officer_units.is_empty() || officer_units.iter().any(|u| self.within(unit, u))
    }

    pub fn unit_name(&self, code: &str) -> String {
        self.version()
            .ok()
            .and_then(|v| v.unit(code))
            .map(|u| u.name.clone())
            .unwrap_or_else(|| code.to_owned())
    }

    /// The communes of this node (its own unit if it is one), restricted to
    /// `officer_units` if given, by name.
    pub fn communes(&self, officer_units: &[String]) -> Vec<UnitRef> {
        let Ok(v) = self.version() else {
            return Vec::new();
        };
        let own = &self.bundle().unit;
        let mut out: Vec<UnitRef> = v
            .units()
            .filter(|u| u.level == Level::Commune && v.within(&u.code, own))
            .filter(|u| self.covers(officer_units, &u.code))
            .map(|u| UnitRef {
                code: u.code.clone(),
                name: u.name.clone(),
            })
            .collect();
        out.sort_by_cached_key(|u| fold(&u.name));
        out
    }

    /// This node's unit and the units above communes below it (districts),
    /// then its communes: every unit progress can be shown for.
    pub fn progress_units(&self, officer_units: &[String]) -> Vec<UnitRef> {
        let own = &self.bundle().unit;
        let mut out = Vec::new();
        if self.covers(officer_units, own) {
            out.push(UnitRef {
                code: own.clone(),
                name: self.unit_name(own),
            });
        }
        out.extend(
            self.communes(officer_units)
                .into_iter()
                .filter(|c| &c.code != own),
        );
        out
    }

    /// One record (deleted ones too), with its conflicts.
    pub fn record(&self, id: &str) -> Result<Option<Record>, NodeError> {
        Ok(self.export(true)?.into_iter().find(|r| r.id == id))
    }

    /// The records of `kinds` that `officer_units` cover, not deleted, as
    /// (id, label) sorted by label: what a form's picker offers.
    pub fn choices(
        &self,
        kinds: &[&str],
        officer_units: &[String],
    ) -> Result<Vec<(String, String)>, NodeError> {
        let mut out: Vec<(String, String)> = self
            .export(false)?
            .into_iter()
            .filter(|r| kinds.contains(&r.kind.as_str()))
            .filter(|r| self.covers(officer_units, r.text("unit").unwrap_or_default()))
            .map(|r| {
                let unit = self.unit_name(r.text("unit").unwrap_or_default());
                (r.id.clone(), format!("{} ({unit})", label(&r)))
            })
            .collect();
        out.sort_by_cached_key(|c| fold(&c.1));
        Ok(out)
    }

    /// Cooperatives and groups, filtered, by commune then name.
    pub fn cooperatives(&self, f: &CoopFilter) -> Result<Vec<CoopRow>, NodeError> {
        let all = self.export(true)?;
        let today = htx_core::schema::format_date(time::OffsetDateTime::now_utc().date());
        let rows = coop_rows(&all, &today, |c| self.unit_name(c));
        let words: Vec<String> = fold(&f.search)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut out: Vec<CoopRow> = rows
            .into_iter()
            .filter(|r| f.include_deleted || !r.record.is_deleted())
            .filter(|r| {
                let unit = r.record.text("unit").unwrap_or_default();
                self.covers(&f.scope, unit) && (f.unit.is_empty() || self.within(unit, &f.unit))
            })
            .filter(|r| f.kind.is_empty() || r.record.text("type") == Some(f.kind.as_str()))
            .filter(|r| {
                f.status.is_empty()
                    || r.record.text("status").unwrap_or("active") == f.status.as_str()
            })
            .filter(|r| match f.in_scope.as_str() {
                "yes" => !r.in_scope.is_empty(),
                "no" => r.in_scope.is_empty(),
                _ => true,
            })
            .filter(|r| {
                let name = fold(r.record.text("name").unwrap_or_default());
                words.iter().all(|w| name.contains(w.as_str()))
            })
            .collect();
        out.sort_by(|a, b| {
            (fold(&a.unit_name), fold(&label(&a.record)))
                .cmp(&(fold(&b.unit_name), fold(&label(&b.record))))
        });
        Ok(out)
    }

    /// A cooperative and everything that refers to it; `None` if there is
    /// no cooperative with this id.
    pub fn cooperative(&self, id: &str) -> Result<Option<CoopPage>, NodeError> {
        let all = self.export(true)?;
        let today = htx_core::schema::format_date(time::OffsetDateTime::now_utc().date());
        let Some(row) = coop_rows(&all, &today, |c| self.unit_name(c))
            .into_iter()
            .find(|r| r.record.id == id)
        else {
            return Ok(None);
        };
        let mut page = CoopPage {
            row,
            managers: Vec::new(),
            observations: Vec::new(),
            trainings: Vec::new(),
            activities: Vec::new(),
        };
        let managers: Vec<String> = all
            .iter()
            .filter(|r| r.kind == "manager" && r.text("cooperative") == Some(id))
            .map(|r| r.id.clone())
            .collect();
        for r in all.into_iter().filter(|r| !r.is_deleted()) {
            // A training counts for the cooperative if it names it, or if
            // one of its managers attended.
            let attended = matches!(r.fields.get("attendees"), Some(Value::List(ids)) if ids.iter().any(|a| managers.contains(a)));
            if r.text("cooperative") != Some(id) && !(r.kind == "training" && attended) {
                continue;
            }
            match r.kind.as_str() {
                "manager" => page.managers.push(r),
                "observation" => page.observations.push(r),
                "training" => page.trainings.push(r),
                "activity" => page.activities.push(r),
                _ => {}
            }
        }
        page.observations
            .sort_by_key(|r| std::cmp::Reverse(date_of(r, "observed_on")));
        page.trainings
            .sort_by_key(|r| std::cmp::Reverse(date_of(r, "held_on")));
        page.activities
            .sort_by_key(|r| std::cmp::Reverse(date_of(r, "held_on")));
        page.managers.sort_by_key(label);
        Ok(Some(page))
    }

    /// Refused records, conflicts and counts that do not add up, within
    /// `officer_units`.
    pub fn attention(&self, officer_units: &[String]) -> Result<Attention, NodeError> {
        let all = self.export(true)?;
        let refused_ids = self.sync_status().refused_records;
        let mut out = Attention::default();
        for r in &all {
            if !self.covers(officer_units, r.text("unit").unwrap_or_default()) {
                continue;
            }
            if refused_ids.contains(&r.id) {
                out.refused.push((r.id.clone(), r.kind.clone(), label(r)));
            }
            if !r.conflicts.is_empty() {
                out.conflicts
                    .push((r.clone(), r.conflicts.keys().cloned().collect()));
            }
            if r.kind == "observation" && !r.is_deleted() {
                let over = |part, whole| matches!((int(r, part), int(r, whole)), (Some(p), Some(w)) if p > w);
                if over("female_workers", "workers") {
                    out.warnings.push((r.clone(), "warning-female-workers"));
                }
                if over("female_members", "members") {
                    out.warnings.push((r.clone(), "warning-female-members"));
                }
            }
        }
        // Refused ids this node does not hold (any more) are still shown.
        for id in refused_ids {
            if !out.refused.iter().any(|(i, _, _)| *i == id) && !all.iter().any(|r| r.id == id) {
                out.refused.push((id, String::new(), String::new()));
            }
        }
        Ok(out)
    }
}

/// Every cooperative of `all` with its scope and latest observation. The
/// scope follows the plan's `in_scope` rule (`deploy/plans/*.toml`): a
/// woman in the management now, or more than half of the workers women
/// per the latest observation.
fn coop_rows(all: &[Record], today: &str, unit_name: impl Fn(&str) -> String) -> Vec<CoopRow> {
    let mut women_manage: BTreeMap<&str, bool> = BTreeMap::new();
    let mut latest: BTreeMap<&str, &Record> = BTreeMap::new();
    for r in all.iter().filter(|r| !r.is_deleted()) {
        let Some(coop) = r.text("cooperative") else {
            continue;
        };
        match r.kind.as_str() {
            "manager" => {
                let current = date_of(r, "until").is_none_or(|u| u.as_str() >= today);
                if r.text("gender") == Some("female") && current {
                    women_manage.insert(coop, true);
                }
            }
            "observation" => {
                let newer = latest
                    .get(coop)
                    .is_none_or(|o| date_of(o, "observed_on") <= date_of(r, "observed_on"));
                if newer {
                    latest.insert(coop, r);
                }
            }
            _ => {}
        }
    }
    all.iter()
        .filter(|r| r.kind == "cooperative")
        .map(|r| {
            let mut in_scope = Vec::new();
            if women_manage.contains_key(r.id.as_str()) {
                in_scope.push(ScopeReason::WomenManage);
            }
            let obs = latest.get(r.id.as_str());
            if let Some(o) = obs
                && let (Some(f), Some(w)) = (int(o, "female_workers"), int(o, "workers"))
                && w > 0
                && 2 * f > w
            {
                in_scope.push(ScopeReason::MostlyWomenWorkers);
            }
            CoopRow {
                unit_name: unit_name(r.text("unit").unwrap_or_default()),
                record: r.clone(),
                in_scope,
                observed_on: obs.and_then(|o| date_of(o, "observed_on")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn search_ignores_case_and_diacritics() {
        assert_eq!(fold("HTX Nông nghiệp Đồng Tâm"), "htx nong nghiep dong tam");
    }
}

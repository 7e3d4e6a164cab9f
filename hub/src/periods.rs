//! # Closed periods and submissions
//!
//! An analyst closes a period (a year, `2025`, or a phase, `phase-1`: what
//! [`report::parse_period`] accepts) for one of the hub's plans: the hub keeps the
//! report's indicator figures as of the period's end, for the plan's
//! territory and every unit below, with their data version, who closed it
//! and when, and a fingerprint of every record that could move those
//! figures (the territory's records dated on or before the period's end,
//! or undated: the figures are cumulative, so a record back-dated to 2024
//! moves 2025's figures too). A record that arrives or changes later does
//! not rewrite them: [`compare`] gives the closed figure, the current one,
//! and the records that make the difference (added, changed, deleted).
//! An admin reopens; the period can then be closed again.
//!
//! Districts and communes mark their part of a period as submitted
//! ([`PeriodStore::submit`]); the province sees who has and who has not.
//!
//! ## Where it is kept, and why a file
//! `DIR/periods/PLAN/PERIOD.json`, one file per period, written through a
//! temporary file, synced and renamed (a crash leaves the old file or the
//! new one), every change a read-modify-write under `DIR/periods/.lock`.
//! The hub's own state (enrolments in `nodes/`, refused batches in
//! `quarantine/`, accounts in `users.json`) lives in files like this; the
//! store holds the replicated documents and their index only. A file also
//! lets `htx-hub period list|reopen` work while `run` holds the store.
//! Each file carries a format number ([`FORMAT`]): a newer one is refused.
//!
//! Nothing here names a person: records are fingerprinted by id, kind,
//! unit and date; pages add names from the current records only for the
//! roles that may see them ([`crate::views::may_see_people`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use htx_core::plan::Plan;
use htx_core::schema::{Record, Value};
use htx_core::units::Hierarchy;
use htx_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::Date;

use crate::hub::Hub;
use crate::report::{self, Period, ReportError};
use crate::views::{self, ViewError};

/// The format of a period file this build writes and reads.
pub const FORMAT: u32 = 1;
/// Under the hub's directory.
pub const FOLDER: &str = "periods";

#[derive(Debug, thiserror::Error)]
pub enum PeriodError {
    #[error("{0}")]
    Period(Box<ReportError>),
    #[error(
        "period {0} is not over yet (it ends on {1}): close it after its end / kỳ báo cáo chưa kết thúc, chỉ chốt số liệu sau ngày kết thúc"
    )]
    NotOver(String, String),
    #[error(
        "period {0} is already closed (by {1}); an admin reopens it first / kỳ báo cáo đã được chốt số liệu, quản trị viên cần mở lại trước"
    )]
    AlreadyClosed(String, String),
    #[error("period {0} is not closed / kỳ báo cáo chưa được chốt số liệu")]
    NotClosed(String),
    #[error(
        "{0} is not a unit below the plan's territory / đơn vị không thuộc địa bàn của kế hoạch"
    )]
    NotBelow(String),
    #[error(
        "{0} has not submitted this period: there is nothing to withdraw / đơn vị chưa xác nhận gửi số liệu kỳ này, không có gì để rút lại"
    )]
    NotSubmitted(String),
    #[error(
        "{path} was written by a newer version (format {found}, this one reads {FORMAT}) / tệp do phiên bản mới hơn ghi"
    )]
    Newer { path: String, found: u32 },
    #[error("{path} is damaged: {error} / tệp bị hỏng")]
    Damaged { path: String, error: String },
    #[error("{path}: {error}")]
    Io { path: String, error: String },
    #[error("{0}")]
    View(Box<ViewError>),
}

impl From<ReportError> for PeriodError {
    fn from(e: ReportError) -> Self {
        PeriodError::Period(Box::new(e))
    }
}

impl From<ViewError> for PeriodError {
    fn from(e: ViewError) -> Self {
        PeriodError::View(Box::new(e))
    }
}

impl PeriodError {
    /// Whether the request was at fault (a page answers 400), not the hub.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            PeriodError::Period(_)
                | PeriodError::NotOver(..)
                | PeriodError::AlreadyClosed(..)
                | PeriodError::NotClosed(_)
                | PeriodError::NotBelow(_)
                | PeriodError::NotSubmitted(_)
        )
    }
}

/// One indicator's figure as closed (the report's, for one unit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedFigure {
    pub indicator: String,
    pub compute: String,
    pub numerator: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub denominator: i64,
    /// A ratio's percent; none for a count or sum (its numerator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub status: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl ClosedFigure {
    fn of(f: &pb::Figure) -> ClosedFigure {
        ClosedFigure {
            indicator: f.indicator.clone(),
            compute: f.compute.clone(),
            numerator: f.numerator,
            denominator: f.denominator,
            value: f.value.filter(|_| f.compute == "ratio"),
            status: f.status.clone(),
        }
    }
    /// The same figure: same counts (a ratio's value follows from them).
    pub fn same(&self, other: &ClosedFigure) -> bool {
        self.numerator == other.numerator && self.denominator == other.denominator
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedUnit {
    pub unit: String,
    pub name: String,
    pub parent: String,
    pub figures: Vec<ClosedFigure>,
}

/// A record as it stood at closing: enough to tell it changed, nothing
/// personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub kind: String,
    /// The unit it counts in, in the closing's hierarchy version.
    pub unit: String,
    /// Its earliest date (founded, observed, held...), `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
    pub deleted: bool,
    /// SHA-256 (first 12 bytes, hex) of its fields.
    pub digest: String,
}

/// What the hub kept when the period was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closing {
    pub data_version: String,
    pub hierarchy: String,
    /// The phase whose figures were kept (the one the period's end falls in).
    pub phase: String,
    /// The period's end, `YYYY-MM-DD`: the figures are as of this date.
    pub as_of: String,
    pub territory: String,
    pub by: String,
    /// RFC 3339.
    pub at: String,
    pub units: Vec<ClosedUnit>,
    pub records: BTreeMap<String, Mark>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub by: String,
    pub at: String,
    pub data_version: String,
}

/// One step in a period's life, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `closed`, `reopened`, `submitted`, `withdrawn`.
    pub action: String,
    pub by: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_version: String,
}

/// One period of one plan, as kept in its file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeriodFile {
    pub format: u32,
    pub plan: String,
    pub period: String,
    #[serde(default)]
    pub closing: Option<Closing>,
    /// By unit code (the hub's default hierarchy version).
    #[serde(default)]
    pub submissions: BTreeMap<String, Submission>,
    #[serde(default)]
    pub history: Vec<Event>,
}

/// The period files of a hub directory.
pub struct PeriodStore {
    root: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> PeriodError {
    PeriodError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    }
}

/// A plan id as a folder name: letters, digits, `-`, `_`, `.` only.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl PeriodStore {
    pub fn new(hub_dir: &Path) -> PeriodStore {
        PeriodStore {
            root: hub_dir.join(FOLDER),
        }
    }

    fn path(&self, plan: &str, period: &str) -> PathBuf {
        self.root
            .join(safe(plan))
            .join(format!("{}.json", safe(period)))
    }

    fn read_path(path: &Path) -> Result<Option<PeriodFile>, PeriodError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path, e)),
        };
        let damaged = |e: serde_json::Error| PeriodError::Damaged {
            path: path.display().to_string(),
            error: e.to_string(),
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(damaged)?;
        let found = v["format"].as_u64().unwrap_or(0) as u32;
        if found > FORMAT {
            return Err(PeriodError::Newer {
                path: path.display().to_string(),
                found,
            });
        }
        serde_json::from_value(v).map(Some).map_err(damaged)
    }

    /// The period's file; an empty one (open, nothing submitted) if none.
    pub fn load(&self, plan: &str, period: &str) -> Result<PeriodFile, PeriodError> {
        Ok(
            Self::read_path(&self.path(plan, period))?.unwrap_or_else(|| PeriodFile {
                format: FORMAT,
                plan: plan.to_owned(),
                period: period.to_owned(),
                ..Default::default()
            }),
        )
    }

    /// Every period of `plan` that has a file, by period id.
    pub fn list(&self, plan: &str) -> Result<Vec<PeriodFile>, PeriodError> {
        let dir = self.root.join(safe(plan));
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let path = e.map_err(|e| io(&dir, e))?.path();
            if path.extension().is_some_and(|x| x == "json")
                && let Some(f) = Self::read_path(&path)?
            {
                out.push(f);
            }
        }
        out.sort_by(|a, b| a.period.cmp(&b.period));
        Ok(out)
    }

    /// Reads, changes and writes back the period's file under the lock.
    pub fn update<R>(
        &self,
        plan: &str,
        period: &str,
        change: impl FnOnce(&mut PeriodFile) -> Result<R, PeriodError>,
    ) -> Result<R, PeriodError> {
        let path = self.path(plan, period);
        let dir = path.parent().expect("a folder").to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let lock_path = self.root.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(&lock_path, e))?;
        lock.lock().map_err(|e| io(&lock_path, e))?;
        let mut file = self.load(plan, period)?;
        let out = change(&mut file)?;
        file.format = FORMAT;
        // Compact: a province's closing holds thousands of figures.
        let bytes = serde_json::to_vec(&file).expect("serializes");
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&dir)?.sync_all()
        };
        write().map_err(|e| io(&path, e))?;
        Ok(out)
    }

    /// Reopens a closed period (admins only: the caller checks).
    pub fn reopen(&self, plan: &str, period: &Period, by: &str) -> Result<(), PeriodError> {
        self.update(plan, &period.id, |f| {
            let Some(c) = f.closing.take() else {
                return Err(PeriodError::NotClosed(period.id.clone()));
            };
            f.history.push(Event {
                action: "reopened".into(),
                by: by.to_owned(),
                at: crate::hub::now_rfc3339(),
                unit: String::new(),
                data_version: c.data_version,
            });
            Ok(())
        })
    }

    /// Marks `unit`'s part of the period as submitted (again: the latest
    /// submission counts, every one is in the history).
    pub fn submit(
        &self,
        plan: &str,
        period: &Period,
        unit: &str,
        by: &str,
        data_version: &str,
    ) -> Result<(), PeriodError> {
        self.update(plan, &period.id, |f| {
            let at = crate::hub::now_rfc3339();
            f.submissions.insert(
                unit.to_owned(),
                Submission {
                    by: by.to_owned(),
                    at: at.clone(),
                    data_version: data_version.to_owned(),
                },
            );
            f.history.push(Event {
                action: "submitted".into(),
                by: by.to_owned(),
                at,
                unit: unit.to_owned(),
                data_version: data_version.to_owned(),
            });
            Ok(())
        })
    }

    /// Takes back `unit`'s submission (confirmed by mistake, or its figures
    /// are to be checked again); the history keeps both.
    pub fn withdraw(
        &self,
        plan: &str,
        period: &Period,
        unit: &str,
        by: &str,
    ) -> Result<(), PeriodError> {
        self.update(plan, &period.id, |f| {
            let Some(s) = f.submissions.remove(unit) else {
                return Err(PeriodError::NotSubmitted(unit.to_owned()));
            };
            f.history.push(Event {
                action: "withdrawn".into(),
                by: by.to_owned(),
                at: crate::hub::now_rfc3339(),
                unit: unit.to_owned(),
                data_version: s.data_version,
            });
            Ok(())
        })
    }
}

/// A period of `plan`, checked: it parses and is over.
pub fn ended_period(plan: &Plan, s: &str) -> Result<Period, PeriodError> {
    let period = report::parse_period(plan, s)?;
    if period.to >= crate::progress::today() {
        return Err(PeriodError::NotOver(
            period.id.clone(),
            htx_web::format::date(period.to),
        ));
    }
    Ok(period)
}

/// The record's earliest date of its own (not the system's) fields.
fn earliest_date(r: &Record) -> Option<Date> {
    let spec = htx_core::schema::kind(&r.kind).ok()?;
    let is_date = |k: &str| {
        spec.field(k)
            .is_some_and(|f| matches!(f.ty, htx_core::schema::FieldType::Date))
    };
    r.fields
        .iter()
        .filter(|(k, _)| is_date(k))
        .filter_map(|(_, v)| match v {
            Value::Date(d) => Some(*d),
            Value::Text(t) => htx_core::progress::parse_date(t).ok(),
            _ => None,
        })
        .min()
}

/// The unit `r` counts in under `version`, if within `territory`.
fn unit_in(r: &Record, version: &str, territory: &str) -> Option<String> {
    let h = Hierarchy::current();
    let v = h.version(version).ok()?;
    let code = r.text("unit")?;
    let from = r.text("unit_version").unwrap_or("2023");
    let c = h.resolve(from, code, version).ok()?;
    v.within(&c, territory).then_some(c)
}

/// Every record of `territory` (deleted ones too), marked.
pub fn marks(records: &[Record], version: &str, territory: &str) -> BTreeMap<String, Mark> {
    records
        .iter()
        .filter_map(|r| {
            let unit = unit_in(r, version, territory)?;
            let mut h = Sha256::new();
            h.update(r.kind.as_bytes());
            h.update([0]);
            h.update(serde_json::to_vec(&r.fields).expect("serializes"));
            Some((
                r.id.clone(),
                Mark {
                    kind: r.kind.clone(),
                    unit,
                    date: earliest_date(r).map(htx_core::schema::format_date),
                    deleted: r.is_deleted(),
                    digest: hex::encode(&h.finalize()[..12]),
                },
            ))
        })
        .collect()
}

/// Whether a record so marked can move figures as of `to`: dated on or
/// before it, or undated.
fn counts_by(m: &Mark, to: &str) -> bool {
    m.date.as_deref().is_none_or(|d| d <= to)
}

/// Only the marks that can move figures as of `to`.
pub fn relevant(mut marks: BTreeMap<String, Mark>, to: &str) -> BTreeMap<String, Mark> {
    marks.retain(|_, m| counts_by(m, to));
    marks
}

/// How a record differs from the closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Arrived after the closing.
    Added,
    /// Changed after the closing.
    Changed,
    /// Marked deleted after the closing.
    Deleted,
    /// At the closing, no longer in the territory (moved out, re-dated
    /// after the period, or gone with a restored store).
    Removed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Changed => "changed",
            Change::Deleted => "deleted",
            Change::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordDiff {
    pub id: String,
    pub change: Change,
    /// As it stands now (or at closing, if removed).
    pub mark: Mark,
}

/// The records whose state now differs from the closing's and that can
/// move the closed figures (as of `to`).
pub fn diff_records(
    closed: &BTreeMap<String, Mark>,
    now: &BTreeMap<String, Mark>,
    to: &str,
) -> Vec<RecordDiff> {
    let ids: BTreeSet<&String> = closed.keys().chain(now.keys()).collect();
    let mut out = Vec::new();
    for id in ids {
        let (old, new) = (closed.get(id), now.get(id).filter(|m| counts_by(m, to)));
        let (change, mark) = match (old, new) {
            (None, None) => continue,
            (Some(o), Some(n)) if o.digest == n.digest => continue,
            (None, Some(n)) => (Change::Added, n),
            (Some(o), Some(n)) if n.deleted && !o.deleted => (Change::Deleted, n),
            (Some(_), Some(n)) => (Change::Changed, n),
            (Some(o), None) => (Change::Removed, o),
        };
        out.push(RecordDiff {
            id: id.clone(),
            change,
            mark: mark.clone(),
        });
    }
    out.sort_by(|a, b| (&a.mark.date, &a.id).cmp(&(&b.mark.date, &b.id)));
    out
}

/// The phase's figures of every unit of a progress reply.
pub fn closed_units(reply: &pb::ProgressReply, phase: &str) -> Vec<ClosedUnit> {
    reply
        .units
        .iter()
        .map(|u| ClosedUnit {
            unit: u.unit.clone(),
            name: u.name.clone(),
            parent: u.parent.clone(),
            figures: u
                .figures
                .iter()
                .filter(|f| f.phase == phase)
                .map(ClosedFigure::of)
                .collect(),
        })
        .collect()
}

/// One figure, closed and now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigureDiff {
    pub unit: String,
    pub unit_name: String,
    pub closed: ClosedFigure,
    /// `None`: the unit or indicator is no longer computed.
    pub now: Option<ClosedFigure>,
}

impl FigureDiff {
    pub fn differs(&self) -> bool {
        self.now.as_ref().is_none_or(|n| !n.same(&self.closed))
    }
}

/// Every closed figure beside the current one, units in the closing's
/// order.
pub fn diff_figures(closed: &[ClosedUnit], now: &[ClosedUnit]) -> Vec<FigureDiff> {
    let by_unit: BTreeMap<&str, &ClosedUnit> = now.iter().map(|u| (u.unit.as_str(), u)).collect();
    closed
        .iter()
        .flat_map(|u| {
            let current = by_unit.get(u.unit.as_str());
            u.figures.iter().map(move |f| FigureDiff {
                unit: u.unit.clone(),
                unit_name: u.name.clone(),
                closed: f.clone(),
                now: current.and_then(|c| {
                    c.figures
                        .iter()
                        .find(|g| g.indicator == f.indicator)
                        .cloned()
                }),
            })
        })
        .collect()
}

/// Closes `period` of `plan` as `by`: computes the report's figures as of
/// its end, in the version the plan's pages open in
/// ([`views::plan_version`]), and keeps them in the plan's folder (reads
/// the store: call off the async threads).
pub fn close(hub: &Hub, plan: &Plan, period: &Period, by: &str) -> Result<Closing, PeriodError> {
    let store = PeriodStore::new(&hub.home().dir);
    if let Some(c) = store.load(&plan.id, &period.id)?.closing {
        return Err(PeriodError::AlreadyClosed(period.id.clone(), c.by));
    }
    let version = views::plan_version(plan, &hub.config().default_unit_version);
    let phase = views::phase_at(plan, period.to).id.clone();
    // The data version first: records merged while the figures are
    // computed then show as differences, never as closed and unaccounted.
    let data_version = views::data_version(hub);
    let reply = views::plan_progress_at(hub, &plan.id, "", &version, period.to)?;
    let territory = reply
        .units
        .first()
        .map(|u| u.unit.clone())
        .unwrap_or_default();
    let records = hub.export(true).map_err(ViewError::from)?;
    let to = htx_core::schema::format_date(period.to);
    let closing = Closing {
        data_version,
        phase: phase.clone(),
        as_of: to.clone(),
        units: closed_units(&reply, &phase),
        records: relevant(marks(&records, &version, &territory), &to),
        hierarchy: version,
        territory,
        by: by.to_owned(),
        at: crate::hub::now_rfc3339(),
    };
    store.update(&plan.id, &period.id, |f| {
        if let Some(c) = &f.closing {
            return Err(PeriodError::AlreadyClosed(period.id.clone(), c.by.clone()));
        }
        f.closing = Some(closing.clone());
        f.history.push(Event {
            action: "closed".into(),
            by: by.to_owned(),
            at: closing.at.clone(),
            unit: String::new(),
            data_version: closing.data_version.clone(),
        });
        Ok(())
    })?;
    Ok(closing)
}

/// A closed period against the data now, for `unit` and below.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub data_version_now: String,
    /// `unit`'s figures and those of every unit below it.
    pub figures: Vec<FigureDiff>,
    pub records: Vec<RecordDiff>,
}

impl Comparison {
    /// How many figures of `unit` and below moved.
    pub fn moved(&self) -> usize {
        self.figures.iter().filter(|f| f.differs()).count()
    }
}

/// The figures of `unit` (and below) as closed and as they are now, and
/// the records that make the difference, under `plan` (reads the store).
pub fn compare(
    hub: &Hub,
    plan: &Plan,
    closing: &Closing,
    unit: &str,
) -> Result<Comparison, PeriodError> {
    let records = hub.export(true).map_err(ViewError::from)?;
    compare_with(hub, plan, closing, unit, &records)
}

/// As [`compare`], with every record (deleted ones too) already read.
pub fn compare_with(
    hub: &Hub,
    plan: &Plan,
    closing: &Closing,
    unit: &str,
    records: &[Record],
) -> Result<Comparison, PeriodError> {
    let to = htx_core::progress::parse_date(&closing.as_of).map_err(|e| PeriodError::Damaged {
        path: FOLDER.into(),
        error: e.to_string(),
    })?;
    let data_version_now = views::data_version(hub);
    let reply = views::plan_progress_at(hub, &plan.id, &closing.territory, &closing.hierarchy, to)?;
    let now_units = closed_units(&reply, &closing.phase);
    let h = Hierarchy::current();
    let v = h.version(&closing.hierarchy).map_err(ViewError::from)?;
    let inside = |code: &str| v.within(code, unit);
    let scoped: Vec<ClosedUnit> = closing
        .units
        .iter()
        .filter(|u| inside(&u.unit))
        .cloned()
        .collect();
    let now = marks(records, &closing.hierarchy, &closing.territory);
    let mut diffs = diff_records(&closing.records, &now, &closing.as_of);
    diffs.retain(|d| inside(&d.mark.unit));
    Ok(Comparison {
        data_version_now,
        figures: diff_figures(&scoped, &now_units),
        records: diffs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use htx_core::schema::record_from_strings;

    fn coop(id: &str, unit: &str, founded: &str) -> Record {
        let mut r = record_from_strings(
            "cooperative",
            [
                ("type", "HTX"),
                ("name", "HTX Thử"),
                ("unit", unit),
                ("founded_on", founded),
            ],
        )
        .unwrap();
        r.id = id.into();
        r
    }

    #[test]
    fn marks_keep_the_territory_and_name_no_one() {
        let records = vec![
            coop("a", "13633", "2025-03-01"),
            coop("b", "13741", "2026-02-01"),
            // Another province: not in Nam Định's territory.
            coop("c", "1", "2025-03-01"),
        ];
        let m = marks(&records, "2023", "36");
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m["a"].unit, "13633");
        assert_eq!(m["a"].date.as_deref(), Some("2025-03-01"));
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("HTX Thử"), "no names kept: {text}");
        let r = relevant(m, "2025-12-31");
        assert_eq!(
            r.keys().collect::<Vec<_>>(),
            ["a"],
            "2026's cannot move 2025"
        );
    }

    #[test]
    fn a_back_dated_arrival_a_change_and_a_deletion_are_the_difference() {
        let before = vec![
            coop("a", "13633", "2025-03-01"),
            coop("b", "13633", "2025-04-01"),
            coop("d", "13633", "2024-01-01"),
        ];
        let closed = relevant(marks(&before, "2023", "36"), "2025-12-31");
        let mut changed = coop("b", "13633", "2025-04-01");
        changed
            .fields
            .insert("name".into(), Value::Text("HTX Đổi tên".into()));
        let mut deleted = coop("d", "13633", "2024-01-01");
        deleted.fields.insert(
            "deleted_at".into(),
            Value::Text("2026-06-01T00:00:00Z".into()),
        );
        let after = vec![
            coop("a", "13633", "2025-03-01"),
            changed,
            deleted,
            // Arrived after the closing, dated inside the period.
            coop("e", "13741", "2025-06-30"),
            // Arrived after, dated after the period: no difference.
            coop("f", "13741", "2026-06-30"),
        ];
        let now = marks(&after, "2023", "36");
        let d = diff_records(&closed, &now, "2025-12-31");
        let got: Vec<(&str, Change)> = d.iter().map(|d| (d.id.as_str(), d.change)).collect();
        assert_eq!(
            got,
            [
                ("d", Change::Deleted),
                ("b", Change::Changed),
                ("e", Change::Added)
            ],
            "oldest date first"
        );
        assert!(diff_records(&closed, &marks(&before, "2023", "36"), "2025-12-31").is_empty());
    }

    #[test]
    fn a_record_re_dated_after_the_period_is_removed_from_it() {
        let closed = relevant(
            marks(&[coop("a", "13633", "2025-03-01")], "2023", "36"),
            "2025-12-31",
        );
        let now = marks(&[coop("a", "13633", "2026-03-01")], "2023", "36");
        let d = diff_records(&closed, &now, "2025-12-31");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].change, Change::Removed);
        assert_eq!(d[0].mark.date.as_deref(), Some("2025-03-01"), "as closed");
    }

    fn figure(n: i64) -> ClosedFigure {
        ClosedFigure {
            indicator: "HTX_NEW".into(),
            compute: "count".into(),
            numerator: n,
            denominator: 0,
            value: Some(n as f64),
            status: "on_track".into(),
        }
    }

    #[test]
    fn figures_are_compared_unit_by_unit() {
        let unit = |code: &str, n| ClosedUnit {
            unit: code.into(),
            name: code.into(),
            parent: String::new(),
            figures: vec![figure(n)],
        };
        let closed = [unit("36", 3), unit("356", 2), unit("359", 1)];
        let now = [unit("36", 4), unit("356", 2), unit("359", 2)];
        let d = diff_figures(&closed, &now);
        let moved: Vec<&str> = d
            .iter()
            .filter(|f| f.differs())
            .map(|f| f.unit.as_str())
            .collect();
        assert_eq!(moved, ["36", "359"]);
        let gone = diff_figures(&closed, &now[..1]);
        assert!(
            gone[1].differs(),
            "a unit no longer computed is a difference"
        );
    }

    #[test]
    fn period_files_are_written_whole_and_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = PeriodStore::new(dir.path());
        let plan = htx_core::plan::Plan::builtin();
        let p = report::parse_period(&plan, "2025").unwrap();
        assert!(matches!(
            store.reopen("de-an", &p, "admin"),
            Err(PeriodError::NotClosed(_))
        ));
        store.submit("de-an", &p, "356", "lan", "abc").unwrap();
        store.submit("de-an", &p, "359", "hoa", "abd").unwrap();
        let f = store.load("de-an", "2025").unwrap();
        assert_eq!(f.submissions["356"].by, "lan");
        assert_eq!(f.history.len(), 2);
        assert!(f.closing.is_none());
        assert_eq!(store.list("de-an").unwrap().len(), 1);
        // A submission withdrawn is no longer one; the history keeps both,
        // and withdrawing what was not submitted is refused.
        store.withdraw("de-an", &p, "359", "hoa").unwrap();
        let f = store.load("de-an", "2025").unwrap();
        assert!(!f.submissions.contains_key("359"));
        assert!(f.submissions.contains_key("356"));
        let last = f.history.last().unwrap();
        assert_eq!(
            (last.action.as_str(), last.unit.as_str(), last.by.as_str()),
            ("withdrawn", "359", "hoa")
        );
        assert!(matches!(
            store.withdraw("de-an", &p, "359", "hoa"),
            Err(PeriodError::NotSubmitted(_))
        ));
        assert_eq!(store.load("de-an", "2025").unwrap().history.len(), 3);
        assert!(
            !dir.path().join("periods/de-an/2025.json.tmp").exists(),
            "no temporary file left"
        );
        // A file from a newer version is refused, not misread.
        let path = dir.path().join("periods/de-an/2025.json");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"format\":1", "\"format\":9");
        std::fs::write(&path, text).unwrap();
        assert!(matches!(
            store.load("de-an", "2025"),
            Err(PeriodError::Newer { found: 9, .. })
        ));
    }
}

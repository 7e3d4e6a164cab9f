//! # The yearly report and the phase reviews
//!
//! Plan §V.1 asks for a yearly report to the central Union and the
//! provincial People's Committee, and reviews at the end of 2025 and 2030.
//! A [`Report`] is a cover ([`Stamp`]) and sections, each a
//! [`Table`]: the indicators with their targets and status, the units
//! below, activities by type, trainings and people trained, cooperatives
//! founded, consolidated and dissolved in the period. The same value is
//! written as a workbook ([`Report::to_xlsx`]: a cover sheet, one sheet
//! per section), JSON, or a printable page (`hub/templates/report.html`).
//!
//! The stamp names the plan, the period, the as-of date, the hierarchy
//! version, every node with its last sync, and the data version (a digest
//! of the merged documents' heads, [`views::data_version`]): the same
//! stamp means the same figures.

use std::collections::BTreeMap;

use htx_core::schema::{Record, Value};
use htx_core::units::Hierarchy;
use htx_web::{Lang, Tr};
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use serde::Serialize;
use time::{Date, Month};

use crate::hub::Hub;
use crate::table::{Cell, Table, sheet_name};
use crate::views::{self, ViewError};

/// Dates as `YYYY-MM-DD` in JSON.
fn ser_date<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&htx_core::schema::format_date(*d))
}

/// The span a report covers.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    /// As asked: `2025`, `phase-1`.
    pub id: String,
    #[serde(serialize_with = "ser_date")]
    pub from: Date,
    #[serde(serialize_with = "ser_date")]
    pub to: Date,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{0:?} is not a period: a year (2025) or a phase (phase-1) / kỳ báo cáo không hợp lệ: một năm (2025) hoặc một giai đoạn (phase-1)"
    )]
    BadPeriod(String),
    #[error(
        "the hub's plan is {0:?}, not {1:?} / kế hoạch của máy chủ tỉnh không phải kế hoạch được yêu cầu"
    )]
    OtherPlan(String, String),
    /// A plan the hub does not follow (the message lists those it does).
    #[error("{0}")]
    UnknownPlan(String),
    #[error("{0}")]
    View(Box<ViewError>),
    #[error("cannot write the workbook: {0}")]
    Xlsx(#[from] XlsxError),
}

impl From<ViewError> for ReportError {
    fn from(e: ViewError) -> Self {
        ReportError::View(Box::new(e))
    }
}

/// A year (`2025`) or a phase of the plan (`phase-1`, `1`).
pub fn parse_period(plan: &htx_core::plan::Plan, s: &str) -> Result<Period, ReportError> {
    let s = s.trim();
    let bad = || ReportError::BadPeriod(s.to_owned());
    if let Some(id) = s.strip_prefix("phase-").or(Some(s))
        && let Some(p) = plan.phase(id)
    {
        return Ok(Period {
            id: format!("phase-{}", p.id),
            from: p.start,
            to: p.end,
        });
    }
    let year: i32 = s.parse().map_err(|_| bad())?;
    if !(2000..=2100).contains(&year) {
        return Err(bad());
    }
    Ok(Period {
        id: s.to_owned(),
        from: Date::from_calendar_date(year, Month::January, 1).map_err(|_| bad())?,
        to: Date::from_calendar_date(year, Month::December, 31).map_err(|_| bad())?,
    })
}

/// A node named on the cover, with its last completed sync.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStamp {
    pub node: String,
    pub unit: String,
    /// RFC 3339; empty: never synced.
    pub last_sync: String,
}

/// What a report was computed from: enough to compute it again.
#[derive(Debug, Clone, Serialize)]
pub struct Stamp {
    pub plan: String,
    pub plan_name: String,
    pub period: Period,
    #[serde(serialize_with = "ser_date")]
    pub as_of: Date,
    pub phase: String,
    pub hierarchy: String,
    pub unit: String,
    pub unit_name: String,
    pub data_version: String,
    pub generated_at: String,
    pub nodes: Vec<NodeStamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub stamp: Stamp,
    pub sections: Vec<Table>,
}

/// What to report on.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The plan's id; empty: the hub's default plan.
    pub plan: String,
    /// Empty: the plan's unit (the province).
    pub unit: String,
    pub period: String,
    /// Empty: the hub's default version.
    pub hierarchy: String,
}

/// Whether `r` (recorded under its own unit and version) counts in `unit`
/// of `version`.
fn in_scope(r: &Record, version: &str, unit: &str) -> bool {
    let h = Hierarchy::current();
    let (Some(code), Ok(v)) = (r.text("unit"), h.version(version)) else {
        return false;
    };
    let from = r.text("unit_version").unwrap_or("2023");
    h.resolve(from, code, version)
        .is_ok_and(|c| v.within(&c, unit))
}

fn date_of(r: &Record, field: &str) -> Option<Date> {
    match r.fields.get(field) {
        Some(Value::Date(d)) => Some(*d),
        Some(Value::Text(t)) => htx_core::progress::parse_date(t).ok(),
        _ => None,
    }
}

fn int_of(r: &Record, field: &str) -> i64 {
    match r.fields.get(field) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    }
}

/// Builds the report (reads the store: call off the async threads).
pub fn build(hub: &Hub, lang: Lang, req: &Request) -> Result<Report, ReportError> {
    let tr = Tr::new(lang);
    let plan = hub
        .plan_by(Some(&req.plan))
        .map_err(|e| ReportError::UnknownPlan(e.to_string()))?;
    let period = parse_period(plan, &req.period)?;
    let version = if req.hierarchy.is_empty() {
        hub.config().default_unit_version.clone()
    } else {
        req.hierarchy.clone()
    };
    let as_of = period.to.min(crate::progress::today());
    let phase = views::phase_at(plan, as_of).clone();
    let data_version = views::data_version(hub);
    let reply = views::plan_progress_at(hub, &plan.id, &req.unit, &version, as_of)?;
    let records: Vec<Record> = hub
        .export(false)
        .map_err(ViewError::from)?
        .into_iter()
        .collect();
    let top = reply.units.first().cloned().unwrap_or_default();
    let within = |r: &Record| in_scope(r, &version, &top.unit);
    let in_period = |d: Option<Date>| d.is_some_and(|d| d >= period.from && d <= as_of);

    let name = |id: &str| crate::web::plan_indicator_name(plan, lang, id);
    let mut sections = Vec::new();

    // 1. Indicators, targets, status.
    let mut t = Table::new(
        tr.t("hub-report-indicators"),
        &[
            &tr.t("hub-col-code"),
            &tr.t("hub-col-indicator"),
            &tr.t("hub-col-value"),
            &tr.t("hub-col-numerator"),
            &tr.t("hub-col-denominator"),
            &tr.t("hub-col-target"),
            &tr.t("hub-col-pace"),
            &tr.t("hub-col-share"),
            &tr.t("hub-col-status"),
        ],
    );
    for f in top.figures.iter().filter(|f| f.phase == phase.id) {
        let ratio = f.compute == "ratio";
        t.rows.push(vec![
            Cell::text(&f.indicator),
            Cell::text(name(&f.indicator)),
            if ratio {
                Cell::opt(f.value)
            } else {
                Cell::Int(f.numerator)
            },
            Cell::Int(f.numerator),
            if ratio {
                Cell::Int(f.denominator)
            } else {
                Cell::Empty
            },
            Cell::text(&f.target),
            Cell::opt(f.expected),
            Cell::opt(f.share.map(|s| s * 100.0)),
            Cell::text(tr.status("hub-status-", &f.status)),
        ]);
    }
    sections.push(t);

    // 2. Units below.
    let ids: Vec<&str> = top
        .figures
        .iter()
        .filter(|f| f.phase == phase.id)
        .map(|f| f.indicator.as_str())
        .collect();
    let mut headers = vec![tr.t("hub-col-code"), tr.t("hub-col-unit")];
    headers.extend(ids.iter().map(|s| s.to_string()));
    let mut t = Table {
        title: tr.t("hub-report-units"),
        headers,
        rows: Vec::new(),
    };
    for u in reply.units.iter().filter(|u| u.parent == top.unit) {
        let mut row = vec![Cell::text(&u.unit), Cell::text(&u.name)];
        for id in &ids {
            let f = u
                .figures
                .iter()
                .find(|f| f.indicator == *id && f.phase == phase.id);
            row.push(match f {
                Some(f) if f.compute == "ratio" => Cell::opt(f.value),
                Some(f) => Cell::Int(f.numerator),
                None => Cell::Empty,
            });
        }
        t.rows.push(row);
    }
    sections.push(t);

    // 3. Activities by type.
    let mut acts: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.kind == "activity" && within(r) && in_period(date_of(r, "held_on")))
    {
        let e = acts
            .entry(r.text("type").unwrap_or("?").to_owned())
            .or_default();
        e[0] += 1;
        e[1] += int_of(r, "participants");
        e[2] += int_of(r, "women");
        e[3] += int_of(r, "amount_vnd");
    }
    let mut t = Table::new(
        tr.t("hub-report-activities"),
        &[
            &tr.t("hub-col-type"),
            &tr.t("hub-col-count"),
            &tr.t("hub-col-participants"),
            &tr.t("hub-col-women"),
            &tr.t("hub-col-amount"),
        ],
    );
    for (ty, [n, p, w, a]) in acts {
        t.rows.push(vec![
            Cell::text(tr.t(&format!("hub-activity-{ty}"))),
            Cell::Int(n),
            Cell::Int(p),
            Cell::Int(w),
            Cell::Int(a),
        ]);
    }
    sections.push(t);

    // 4. Trainings and people trained.
    let mut trainings: BTreeMap<String, [i64; 2]> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.kind == "training" && within(r) && in_period(date_of(r, "held_on")))
    {
        let e = trainings
            .entry(r.text("type").unwrap_or("?").to_owned())
            .or_default();
        e[0] += 1;
        e[1] += match r.fields.get("attendees") {
            Some(Value::List(l)) => l.len() as i64,
            _ => 0,
        };
    }
    let mut t = Table::new(
        tr.t("hub-report-trainings"),
        &[
            &tr.t("hub-col-type"),
            &tr.t("hub-col-count"),
            &tr.t("hub-col-trained"),
        ],
    );
    for (ty, [n, p]) in trainings {
        t.rows.push(vec![
            Cell::text(tr.t(&format!("hub-training-{ty}"))),
            Cell::Int(n),
            Cell::Int(p),
        ]);
    }
    sections.push(t);

    // 5. Cooperatives founded, consolidated, dissolved in the period.
    let mut coops: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.kind == "cooperative" && within(r))
    {
        let e = coops
            .entry(r.text("type").unwrap_or("?").to_owned())
            .or_default();
        e[0] += in_period(date_of(r, "founded_on")) as i64;
        e[1] += in_period(date_of(r, "consolidated_on")) as i64;
        e[2] += in_period(date_of(r, "dissolved_on")) as i64;
    }
    let mut t = Table::new(
        tr.t("hub-report-cooperatives"),
        &[
            &tr.t("hub-col-type"),
            &tr.t("hub-col-founded"),
            &tr.t("hub-col-consolidated"),
            &tr.t("hub-col-dissolved"),
        ],
    );
    for (ty, [f, c, d]) in coops {
        t.rows.push(vec![
            Cell::text(ty),
            Cell::Int(f),
            Cell::Int(c),
            Cell::Int(d),
        ]);
    }
    sections.push(t);

    let nodes = top
        .sources
        .iter()
        .map(|s| NodeStamp {
            node: s.node.clone(),
            unit: s.unit.clone(),
            last_sync: s.last_sync.clone(),
        })
        .collect();
    Ok(Report {
        stamp: Stamp {
            plan: plan.id.clone(),
            plan_name: if lang == Lang::Vi {
                plan.name_vi.clone()
            } else {
                plan.name.clone()
            },
            period,
            as_of,
            phase: crate::web::phase_name(lang, &phase),
            hierarchy: version,
            unit: top.unit.clone(),
            unit_name: top.name.clone(),
            data_version,
            generated_at: crate::hub::now_rfc3339(),
            nodes,
        },
        sections,
    })
}

impl Report {
    /// The cover as label/value pairs, in `lang`.
    pub fn cover(&self, lang: Lang) -> Vec<(String, String)> {
        let tr = Tr::new(lang);
        let s = &self.stamp;
        let d = htx_web::format::date;
        vec![
            (
                tr.t("hub-report-plan"),
                format!("{} ({})", s.plan_name, s.plan),
            ),
            (
                tr.t("hub-report-period"),
                format!(
                    "{} ({} – {})",
                    s.period.id,
                    d(s.period.from),
                    d(s.period.to)
                ),
            ),
            (tr.t("hub-as-of"), d(s.as_of)),
            (tr.t("hub-phase"), s.phase.clone()),
            (
                tr.t("hub-col-unit"),
                format!("{} ({})", s.unit_name, s.unit),
            ),
            (tr.t("hub-hierarchy"), s.hierarchy.clone()),
            (tr.t("hub-report-data-version"), s.data_version.clone()),
            (
                tr.t("hub-report-generated"),
                htx_web::format::date_text(&s.generated_at)
                    + " "
                    + s.generated_at.get(11..16).unwrap_or("")
                    + " UTC",
            ),
        ]
    }

    /// The workbook: a cover sheet, then one sheet per section.
    pub fn to_xlsx(&self, lang: Lang) -> Result<Vec<u8>, ReportError> {
        self.to_xlsx_with(lang, &[])
    }

    /// The workbook with `extra` sheets after the sections (a closed
    /// period's figures against the current ones).
    pub fn to_xlsx_with(&self, lang: Lang, extra: &[Table]) -> Result<Vec<u8>, ReportError> {
        let tr = Tr::new(lang);
        let mut wb = Workbook::new();
        let bold = Format::new().set_bold();
        let title = Format::new().set_bold().set_font_size(14);
        let ws = wb.add_worksheet();
        ws.set_name(sheet_name(&tr.t("hub-report-cover")))?;
        ws.set_column_width(0, 28)?;
        ws.set_column_width(1, 70)?;
        ws.write_string_with_format(0, 0, tr.t("hub-report-title"), &title)?;
        let mut r = 2;
        for (k, v) in self.cover(lang) {
            ws.write_string_with_format(r, 0, k, &bold)?;
            ws.write_string(r, 1, v)?;
            r += 1;
        }
        r += 1;
        ws.write_string_with_format(r, 0, tr.t("hub-sources"), &bold)?;
        r += 1;
        let mut nodes = Table::new(
            "",
            &[
                &tr.t("hub-col-node"),
                &tr.t("hub-col-unit"),
                &tr.t("hub-col-last-sync"),
            ],
        );
        for n in &self.stamp.nodes {
            nodes.rows.push(vec![
                Cell::text(&n.node),
                Cell::text(&n.unit),
                Cell::text(if n.last_sync.is_empty() {
                    tr.t("hub-never")
                } else {
                    n.last_sync.clone()
                }),
            ]);
        }
        nodes.write(ws, r)?;
        for (i, s) in self.sections.iter().enumerate() {
            let ws = wb.add_worksheet();
            ws.set_name(sheet_name(&format!("{} {}", i + 1, s.title)))?;
            s.write(ws, 0)?;
        }
        for t in extra {
            let ws = wb.add_worksheet();
            ws.set_name(sheet_name(&t.title))?;
            t.write(ws, 0)?;
        }
        Ok(wb.save_to_buffer()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_years_or_phases() {
        let plan = htx_core::plan::Plan::builtin();
        let p = parse_period(&plan, "2025").unwrap();
        assert_eq!((p.from.year(), p.to.ordinal()), (2025, 365));
        let p = parse_period(&plan, "phase-1").unwrap();
        assert_eq!(p.to, time::macros::date!(2025 - 12 - 31));
        assert!(parse_period(&plan, "2025; DROP").is_err());
        assert!(parse_period(&plan, "99999").is_err());
    }
}

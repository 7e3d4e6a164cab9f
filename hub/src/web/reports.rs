//! # Reports as a page, a workbook and JSON
//!
//! `/report?period=2025` shows the yearly report as a printable page (A4;
//! print it to PDF from the browser); `&format=xlsx` downloads the
//! workbook, `&format=json` the same data. The unit is the officer's (or
//! `?unit=`, checked like every page).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use htx_web::{SignedIn, Tr, WebError};

use super::{App, Ctx, Params};
use crate::report::{self, Report};

#[derive(Template)]
#[template(path = "report.html")]
pub struct ReportPartial<'a> {
    pub tr: Tr,
    pub report: &'a Report,
    pub cover: Vec<(String, String)>,
    pub query: String,
    /// The plan's id, for the period form, and the plan chooser's
    /// choices (none if the hub follows one plan).
    pub plan: String,
    pub plans: Vec<(String, String)>,
    pub periods: Vec<(String, String)>,
    /// Links to download (not in the file the CLI writes).
    pub links: bool,
    /// A closed period: its closed figures beside the current ones
    /// ([`super::periods::comparison`]), rendered; empty otherwise.
    pub closed: String,
}

impl ReportPartial<'_> {
    /// A cell as shown: numbers the Vietnamese way.
    pub fn cell(&self, c: &crate::table::Cell) -> String {
        use crate::table::Cell;
        match c {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => htx_web::format::count(self.tr.lang, *n),
            Cell::Num(x) => htx_web::format::decimal(self.tr.lang, *x),
            Cell::Empty => String::new(),
        }
    }
    pub fn is_num(&self, c: &crate::table::Cell) -> bool {
        matches!(c, crate::table::Cell::Int(_) | crate::table::Cell::Num(_))
    }
    pub fn node_sync(&self, s: &str) -> String {
        if s.is_empty() {
            self.tr.t("hub-never")
        } else {
            htx_web::format::date_text(s) + " " + s.get(11..16).unwrap_or("")
        }
    }
}

/// The periods offered: every year of `plan` so far, and its phases.
pub fn periods(plan: &htx_core::plan::Plan) -> Vec<(String, String)> {
    let this_year = crate::progress::today().year();
    let last = plan
        .phases
        .last()
        .map(|p| p.end.year())
        .unwrap_or(this_year);
    let mut out: Vec<(String, String)> = (plan.start.year()..=this_year.min(last))
        .map(|y| (y.to_string(), y.to_string()))
        .collect();
    out.extend(
        plan.phases
            .iter()
            .map(|p| (format!("phase-{}", p.id), p.name_vi.clone())),
    );
    out
}

pub async fn page(
    me: SignedIn,
    State(app): State<App>,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let ctx = Ctx::resolve(&app, &me, &p)?;
    let tr = me.tr();
    let period = super::given(&p.period)
        .map(str::to_owned)
        .unwrap_or_else(|| crate::progress::today().year().to_string());
    let req = report::Request {
        plan: ctx.plan.id.clone(),
        unit: ctx.unit.clone(),
        period: period.clone(),
        hierarchy: ctx.version.clone(),
    };
    let hub = app.hub.clone();
    let lang = tr.lang;
    let built = tokio::task::spawn_blocking(move || report::build(&hub, lang, &req))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let report = match built {
        Ok(r) => r,
        Err(e @ report::ReportError::BadPeriod(_)) => {
            return Err(WebError::BadRequest(e.to_string()));
        }
        Err(report::ReportError::View(e)) => return Err(super::view_error(*e)),
        Err(e) => return Err(WebError::Internal(e.to_string())),
    };
    let name = format!("bao-cao-{}-{}", report.stamp.unit, report.stamp.period.id);
    match super::given(&p.format) {
        Some("xlsx") => {
            let extra = closed_sheets(&app, &ctx.plan, &report, lang).await?;
            let bytes = report
                .to_xlsx_with(lang, &extra)
                .map_err(|e| WebError::Internal(e.to_string()))?;
            me.audit("report_downloaded", &name, &report.stamp.data_version);
            return Ok(super::file(
                bytes,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                &format!("{name}.xlsx"),
            ));
        }
        Some("json") => {
            let bytes = serde_json::to_vec_pretty(&report).expect("serializes");
            return Ok(super::file(
                bytes,
                "application/json",
                &format!("{name}.json"),
            ));
        }
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "định dạng không hỗ trợ: {other:?} (xlsx, json) / unsupported format"
            )));
        }
        None => {}
    }
    let closed = {
        let st = crate::periods::PeriodStore::new(&app.hub.home().dir);
        let file = st
            .load(&ctx.plan.id, &report.stamp.period.id)
            .map_err(|e| WebError::Internal(e.to_string()))?;
        match file.closing {
            Some(c) if c.hierarchy == report.stamp.hierarchy => {
                super::periods::comparison(
                    &app,
                    &me,
                    &ctx.plan,
                    &report.stamp.period,
                    &c,
                    &report.stamp.unit,
                    true,
                )
                .await?
            }
            _ => String::new(),
        }
    };
    let query = serde_urlencoded::to_string([
        ("plan", ctx.plan.id.as_str()),
        ("unit", &ctx.unit),
        ("hierarchy", &ctx.version),
        ("period", &period),
    ])
    .expect("encodes");
    let partial = ReportPartial {
        tr,
        cover: report.cover(lang),
        report: &report,
        query,
        plan: ctx.plan.id.clone(),
        plans: super::plan_choices(&app, lang),
        periods: periods(&ctx.plan),
        links: true,
        closed,
    }
    .render()?;
    Ok(me.page("hub-report-title", &partial)?.into_response())
}

#[derive(Template)]
#[template(path = "report_doc.html")]
struct Standalone<'a> {
    tr: Tr,
    title: &'a str,
    style: &'a str,
    body: &'a str,
}

/// The report as one HTML file with its stylesheet inside (for
/// `htx-hub report --format html`): opens and prints without the hub.
pub fn standalone(report: &Report, lang: htx_web::Lang) -> Result<String, askama::Error> {
    let tr = Tr::new(lang);
    let body = ReportPartial {
        tr,
        cover: report.cover(lang),
        report,
        query: String::new(),
        plan: String::new(),
        plans: Vec::new(),
        periods: Vec::new(),
        links: false,
        closed: String::new(),
    }
    .render()?;
    let title = format!("{} — {}", tr.t("hub-report-title"), report.stamp.unit_name);
    Standalone {
        tr,
        title: &title,
        style: htx_web::routes::STYLESHEET,
        body: &body,
    }
    .render()
}

/// A closed period's figures beside the current ones, and the records that
/// make the difference (no names: ids, kinds, units, dates), as sheets of
/// the report's workbook; none for a period not closed.
async fn closed_sheets(
    app: &App,
    plan: &htx_core::plan::Plan,
    report: &crate::report::Report,
    lang: htx_web::Lang,
) -> Result<Vec<crate::table::Table>, WebError> {
    use crate::table::{Cell, Table};
    let st = crate::periods::PeriodStore::new(&app.hub.home().dir);
    let file = st
        .load(&plan.id, &report.stamp.period.id)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let Some(closing) = file
        .closing
        .filter(|c| c.hierarchy == report.stamp.hierarchy)
    else {
        return Ok(Vec::new());
    };
    let (hub, unit, c, pl) = (
        app.hub.clone(),
        report.stamp.unit.clone(),
        closing.clone(),
        plan.clone(),
    );
    let cmp = tokio::task::spawn_blocking(move || crate::periods::compare(&hub, &pl, &c, &unit))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let tr = Tr::new(lang);
    let mut figures = Table::new(
        tr.t("hub-report-closed-sheet"),
        &[
            &tr.t("hub-col-unit"),
            &tr.t("hub-col-code"),
            &tr.t("hub-report-closed-value"),
            &tr.t("hub-report-current-value"),
            &tr.t("hub-report-differs"),
        ],
    );
    let shown = |f: &crate::periods::ClosedFigure| match f.value {
        Some(v) => format!("{v:.1}% ({}/{})", f.numerator, f.denominator),
        None => f.numerator.to_string(),
    };
    for d in &cmp.figures {
        figures.rows.push(vec![
            Cell::text(format!("{} ({})", d.unit_name, d.unit)),
            Cell::text(&d.closed.indicator),
            Cell::text(shown(&d.closed)),
            Cell::text(d.now.as_ref().map(shown).unwrap_or_default()),
            Cell::text(if d.differs() {
                tr.t("yes")
            } else {
                String::new()
            }),
        ]);
    }
    let mut records = Table::new(
        tr.t("hub-report-closed-records"),
        &[
            &tr.t("hub-col-record"),
            &tr.t("hub-col-kind"),
            &tr.t("hub-col-unit"),
            &tr.t("hub-col-date"),
            &tr.t("hub-period-change"),
        ],
    );
    for r in &cmp.records {
        records.rows.push(vec![
            Cell::text(&r.id),
            Cell::text(tr.t(&format!("kind-{}", r.mark.kind))),
            Cell::text(&r.mark.unit),
            Cell::text(r.mark.date.clone().unwrap_or_default()),
            Cell::text(tr.t(&format!("hub-period-change-{}", r.change.as_str()))),
        ]);
    }
    Ok(vec![figures, records])
}

//! # Trends: each indicator at the end of every month
//!
//! From the plan's start to the date asked, one chart per indicator of the
//! phase: the value at each month's end, the phase's target as a flat line
//! and the straight-line pace to it as a dashed line. The charts are SVG
//! drawn on the server by plotters (no JavaScript, no images to fetch; the
//! page's Content-Security-Policy stays strict). All months are computed
//! from one read of the merged records ([`crate::views::series`]).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use htx_proto::v1 as pb;
use htx_web::{Lang, SignedIn, Tr, WebError, format};
use plotters::prelude::*;
use time::Date;

use super::{App, Ctx, Params};
use crate::table::{Cell, Table};
use crate::views;

pub struct Chart {
    pub id: String,
    pub name: String,
    pub target: String,
    pub svg: String,
}

#[derive(Template)]
#[template(path = "trends.html")]
struct Partial<'a> {
    tr: Tr,
    ctx: &'a Ctx,
    query: String,
    plans: Vec<(String, String)>,
    as_of: String,
    phases: Vec<(String, String)>,
    versions: Vec<&'static str>,
    charts: Vec<Chart>,
    months: usize,
}

const BRAND: RGBColor = RGBColor(0x8a, 0x15, 0x38);
const TARGET: RGBColor = RGBColor(0x1e, 0x6b, 0x34);
const PACE: RGBColor = RGBColor(0x0b, 0x4f, 0x9c);
const GRID: RGBColor = RGBColor(0xe3, 0xe7, 0xeb);

/// One indicator's chart as SVG text.
pub fn chart(
    lang: Lang,
    dates: &[Date],
    values: &[Option<f64>],
    pace: &[Option<f64>],
    target: Option<f64>,
) -> Result<String, String> {
    let mut svg = String::new();
    let top = values
        .iter()
        .chain(pace)
        .flatten()
        .copied()
        .chain(target)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let n = dates.len().max(2);
    {
        let root = SVGBackend::with_string(&mut svg, (640, 240)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut c = ChartBuilder::on(&root)
            .margin(8)
            .margin_right(16)
            .x_label_area_size(26)
            .y_label_area_size(56)
            .build_cartesian_2d(0..n - 1, 0.0..top)
            .map_err(|e| e.to_string())?;
        let label = |i: &usize| {
            dates
                .get(*i)
                .map(|d| format!("{:02}/{}", u8::from(d.month()), d.year()))
                .unwrap_or_default()
        };
        let ylabel = |y: &f64| format::decimal(lang, *y);
        c.configure_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&label)
            .y_label_formatter(&ylabel)
            .light_line_style(GRID)
            .bold_line_style(GRID)
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| e.to_string())?;
        if let Some(t) = target {
            c.draw_series(LineSeries::new(
                [(0, t), (n - 1, t)],
                TARGET.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        }
        let pts = |s: &[Option<f64>]| -> Vec<(usize, f64)> {
            s.iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i, v)))
                .collect()
        };
        c.draw_series(DashedLineSeries::new(pts(pace), 6, 4, PACE.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        c.draw_series(LineSeries::new(pts(values), BRAND.stroke_width(3)))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One indicator over the months.
struct Line {
    id: String,
    target: String,
    values: Vec<Option<f64>>,
    pace: Vec<Option<f64>>,
}

/// Each indicator of `phase`: its values, pace and target over the months.
fn lines<'r>(replies: &'r [pb::ProgressReply], phase: &str) -> Vec<Line> {
    let Some(last) = replies.last().and_then(|r| r.units.first()) else {
        return Vec::new();
    };
    last.figures
        .iter()
        .filter(|f| f.phase == phase)
        .map(|f| {
            let at = |r: &'r pb::ProgressReply| {
                r.units.first().and_then(|u| {
                    u.figures
                        .iter()
                        .find(|g| g.indicator == f.indicator && g.phase == phase)
                })
            };
            let values = replies
                .iter()
                .map(|r| at(r).and_then(super::value_number))
                .collect();
            let pace = replies
                .iter()
                .map(|r| at(r).and_then(|g| g.expected))
                .collect();
            Line {
                id: f.indicator.clone(),
                target: f.target.clone(),
                values,
                pace,
            }
        })
        .collect()
}

pub async fn page(
    me: SignedIn,
    State(app): State<App>,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let ctx = Ctx::resolve(&app, &me, &p)?;
    let tr = me.tr();
    let start = ctx.plan.start;
    let dates = views::month_ends(start, ctx.as_of);
    let replies = {
        let (hub, c, d) = (app.hub.clone(), ctx.clone(), dates.clone());
        super::blocking(move || views::series(&hub, &c.plan, &c.unit, &c.version, &d)).await?
    };
    let lines = lines(&replies, &ctx.phase.id);
    // The table behind the charts: one row per month, one column per indicator.
    let mut headers = vec![tr.t("hub-col-date")];
    headers.extend(lines.iter().map(|l| l.id.clone()));
    let mut table = Table {
        title: format!("{} {}", tr.t("hub-nav-trends"), ctx.unit),
        headers,
        rows: Vec::new(),
    };
    for (i, d) in dates.iter().enumerate() {
        let mut row = vec![Cell::text(format::date(*d))];
        row.extend(lines.iter().map(|l| Cell::opt(l.values[i])));
        table.rows.push(row);
    }
    if let Some(file) = super::download(
        &table,
        &format!("xu-huong-{}-{}", ctx.unit, ctx.as_of),
        super::given(&p.format),
    ) {
        return Ok(file);
    }
    let mut charts = Vec::new();
    for Line {
        id,
        target,
        values,
        pace,
    } in &lines
    {
        let svg = chart(tr.lang, &dates, values, pace, super::target_number(target))
            .map_err(WebError::Internal)?;
        charts.push(Chart {
            id: id.clone(),
            name: super::plan_indicator_name(&ctx.plan, tr.lang, id),
            target: if target == "milestone" {
                tr.t("hub-milestone")
            } else {
                target.clone()
            },
            svg,
        });
    }
    let plan = &ctx.plan;
    let partial = Partial {
        tr,
        ctx: &ctx,
        query: ctx.query(),
        plans: super::plan_choices(&app, tr.lang),
        as_of: format::date(ctx.as_of),
        phases: plan
            .phases
            .iter()
            .map(|ph| (ph.id.clone(), super::phase_name(tr.lang, ph)))
            .collect(),
        versions: vec!["2023", "2024", "2025"],
        months: dates.len(),
        charts,
    }
    .render()?;
    let name = replies
        .last()
        .and_then(|r| r.units.first())
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let title = format!("{} — {}", tr.t("hub-trends-title"), name);
    Ok(me.page(&title, &partial)?.into_response())
}

//! # Drill-down: the units below one, indicator by indicator
//!
//! The province's districts (hierarchy 2023 and 2024) or communes (2025, no
//! districts), a district's communes: one row per unit, one column per
//! indicator of the phase, each cell coloured by its status. Sorted on the
//! server (`?sort=NEW_HTX&desc=1`: the column headers are links), so it
//! works without JavaScript. Each row names the age of the oldest sync
//! among its nodes, flagged when stale, and links to the unit's page.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use htx_web::{SignedIn, Tr, WebError, format};
use time::OffsetDateTime;

use super::{App, Ctx, Params};
use crate::table::{Cell, Table};
use crate::views;

pub struct Column {
    pub id: String,
    pub name: String,
    /// The link that sorts by this column (the other way if it is sorted).
    pub href: String,
    /// `ascending`/`descending` when the table is sorted by it.
    pub sorted: &'static str,
}

pub struct Cellv {
    pub text: String,
    pub status: String,
    pub label: String,
}

pub struct UnitRow {
    pub code: String,
    pub name: String,
    pub has_children: bool,
    pub cells: Vec<Cellv>,
    pub last_sync: String,
    pub stale: bool,
    /// For sorting: each column's number.
    values: Vec<Option<f64>>,
}

#[derive(Template)]
#[template(path = "units.html")]
struct Partial<'a> {
    tr: Tr,
    ctx: &'a Ctx,
    query: String,
    plans: Vec<(String, String)>,
    as_of: String,
    phases: Vec<(String, String)>,
    versions: Vec<&'static str>,
    name_href: String,
    name_sorted: &'static str,
    columns: Vec<Column>,
    rows: Vec<UnitRow>,
    parent_name: String,
}

pub async fn page(
    me: SignedIn,
    State(app): State<App>,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let ctx = Ctx::resolve(&app, &me, &p)?;
    let tr = me.tr();
    let lang = tr.lang;
    let reply = {
        let (hub, c) = (app.hub.clone(), ctx.clone());
        super::blocking(move || {
            views::plan_progress_at(&hub, &c.plan.id, &c.unit, &c.version, c.as_of)
        })
        .await?
    };
    let top = reply.units.first().ok_or(WebError::NotFound)?;
    let ids: Vec<String> = top
        .figures
        .iter()
        .filter(|f| f.phase == ctx.phase.id)
        .map(|f| f.indicator.clone())
        .collect();
    let now = OffsetDateTime::now_utc();
    let stale_days = app.hub.config().stale_after_days;
    let mut rows: Vec<UnitRow> = reply
        .units
        .iter()
        .filter(|u| u.parent == top.unit)
        .map(|u| {
            let mut cells = Vec::new();
            let mut values = Vec::new();
            for id in &ids {
                let f = u
                    .figures
                    .iter()
                    .find(|f| &f.indicator == id && f.phase == ctx.phase.id);
                values.push(f.and_then(super::value_number));
                cells.push(match f {
                    Some(f) => Cellv {
                        text: super::value_text(lang, f),
                        status: f.status.clone(),
                        label: tr.status("hub-status-", &f.status),
                    },
                    None => Cellv {
                        text: String::new(),
                        status: "no_data".into(),
                        label: String::new(),
                    },
                });
            }
            // The oldest sync among the unit's nodes: the figures are as
            // fresh as their stalest source.
            let oldest = u
                .sources
                .iter()
                .min_by(|a, b| a.last_sync.cmp(&b.last_sync));
            let (last_sync, stale) = match oldest {
                None => (tr.t("hub-no-node"), true),
                Some(s) => (
                    format::age(&tr, &s.last_sync, now).unwrap_or_else(|| tr.t("hub-never")),
                    views::is_stale(&s.last_sync, stale_days, now),
                ),
            };
            UnitRow {
                code: u.unit.clone(),
                name: u.name.clone(),
                has_children: reply.units.iter().any(|c| c.parent == u.unit),
                cells,
                last_sync,
                stale,
                values,
            }
        })
        .collect();
    // Sorting, on the server.
    let sort = super::given(&p.sort).unwrap_or("code").to_owned();
    let desc = super::given(&p.desc) == Some("1");
    match ids.iter().position(|i| *i == sort) {
        Some(col) => rows.sort_by(|a, b| {
            a.values[col]
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&b.values[col].unwrap_or(f64::NEG_INFINITY))
                .then_with(|| a.code.cmp(&b.code))
        }),
        None if sort == "name" => rows.sort_by(|a, b| a.name.cmp(&b.name)),
        None => rows.sort_by(|a, b| a.code.cmp(&b.code)),
    }
    if desc {
        rows.reverse();
    }
    let query = ctx.query();
    let link = |col: &str| {
        let flip = if sort == col && !desc { "&desc=1" } else { "" };
        format!("/units?{query}&sort={col}{flip}")
    };
    let sorted = |col: &str| match (sort == col, desc) {
        (false, _) => "",
        (true, false) => "ascending",
        (true, true) => "descending",
    };
    // The table behind the page, for downloads.
    let mut headers = vec![tr.t("hub-col-code"), tr.t("hub-col-unit")];
    headers.extend(ids.iter().cloned());
    headers.push(tr.t("hub-col-last-sync"));
    let mut table = Table {
        title: format!("{} {}", tr.t("hub-nav-units"), ctx.unit),
        headers,
        rows: Vec::new(),
    };
    for r in &rows {
        let mut row = vec![Cell::text(&r.code), Cell::text(&r.name)];
        row.extend(r.values.iter().map(|v| Cell::opt(*v)));
        row.push(Cell::text(&r.last_sync));
        table.rows.push(row);
    }
    if let Some(file) = super::download(
        &table,
        &format!("don-vi-{}-{}", ctx.unit, ctx.as_of),
        super::given(&p.format),
    ) {
        return Ok(file);
    }
    let columns = ids
        .iter()
        .map(|id| Column {
            id: id.clone(),
            name: super::plan_indicator_name(&ctx.plan, lang, id),
            href: link(id),
            sorted: sorted(id),
        })
        .collect();
    let plan = &ctx.plan;
    let partial = Partial {
        tr,
        ctx: &ctx,
        query: query.clone(),
        plans: super::plan_choices(&app, lang),
        as_of: format::date(ctx.as_of),
        phases: plan
            .phases
            .iter()
            .map(|ph| (ph.id.clone(), super::phase_name(lang, ph)))
            .collect(),
        versions: vec!["2023", "2024", "2025"],
        name_href: link("name"),
        name_sorted: sorted("name"),
        columns,
        rows,
        parent_name: top.name.clone(),
    }
    .render()?;
    let title = format!("{} — {}", tr.t("hub-units-title"), top.name);
    Ok(me.page(&title, &partial)?.into_response())
}

//! # Overview: one unit's indicators at a glance
//!
//! For the plan, phase and date asked (defaults: today, the phase it falls
//! in, the hub's hierarchy version): every indicator with its Vietnamese
//! name, value, target, a bar against the phase's target with the
//! straight-line pace marked, its status colour and the change since the
//! end of last month; then the nodes whose data the figures include, with
//! the age of their last sync (stale ones flagged). The province's page
//! and a district's or commune's are the same page (`?unit=CODE`).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use htx_core::units::Hierarchy;
use htx_proto::v1 as pb;
use htx_web::{Lang, SignedIn, Tr, WebError, format};
use time::OffsetDateTime;

use super::{App, Ctx, Params};
use crate::table::{Cell, Table};
use crate::views;

pub struct Row {
    pub id: String,
    pub name: String,
    pub value: String,
    pub target: String,
    pub share: String,
    /// Bar fill and pace marker, in percent of the target.
    pub fill: f64,
    pub pace: Option<f64>,
    pub status: String,
    pub status_label: String,
    pub change: String,
}

pub struct SourceRow {
    pub node: String,
    pub unit: String,
    pub age: String,
    pub stale: bool,
}

pub struct Crumb {
    pub code: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Partial<'a> {
    tr: Tr,
    ctx: &'a Ctx,
    query: String,
    plans: Vec<(String, String)>,
    unit_name: String,
    as_of: String,
    lead: String,
    phases: Vec<(String, String)>,
    versions: Vec<&'static str>,
    crumbs: Vec<Crumb>,
    has_children: bool,
    rows: Vec<Row>,
    sources: Vec<SourceRow>,
    unplaced: u32,
}

/// The change of `now` against `before`, signed, the Vietnamese way.
fn change_text(lang: Lang, now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(a), Some(b)) => {
            let d = a - b;
            if d.abs() < 0.05 {
                "0".into()
            } else if d > 0.0 {
                format!("+{}", format::decimal(lang, d))
            } else {
                format::decimal(lang, d)
            }
        }
        _ => String::new(),
    }
}

/// The overview's rows for `unit` of `now`, compared with `before`;
/// indicators named as `plan` names them.
pub fn rows(
    plan: &htx_core::plan::Plan,
    tr: &Tr,
    phase: &str,
    now: &pb::UnitFigures,
    before: Option<&pb::UnitFigures>,
) -> Vec<Row> {
    let lang = tr.lang;
    now.figures
        .iter()
        .filter(|f| f.phase == phase)
        .map(|f| {
            let scale = super::target_number(&f.target);
            let value = super::value_number(f);
            let pct = |x: Option<f64>| match (x, scale) {
                (Some(x), Some(s)) => Some((x / s * 100.0).clamp(0.0, 100.0)),
                _ => None,
            };
            let prev = before
                .and_then(|b| {
                    b.figures
                        .iter()
                        .find(|g| g.indicator == f.indicator && g.phase == f.phase)
                })
                .and_then(super::value_number);
            Row {
                id: f.indicator.clone(),
                name: super::plan_indicator_name(plan, lang, &f.indicator),
                value: super::value_text(lang, f),
                target: if f.target == "milestone" {
                    tr.t("hub-milestone")
                } else {
                    f.target.clone()
                },
                share: f
                    .share
                    .map(|s| format!("{}%", format::decimal(lang, s * 100.0)))
                    .unwrap_or_default(),
                fill: pct(value).unwrap_or(0.0),
                pace: pct(f.expected),
                status: f.status.clone(),
                status_label: tr.status("hub-status-", &f.status),
                change: change_text(lang, value, prev),
            }
        })
        .collect()
}

/// The nodes behind a unit's figures, with the age of their last sync.
pub fn sources(app: &App, tr: &Tr, unit: &pb::UnitFigures) -> Vec<SourceRow> {
    let now = OffsetDateTime::now_utc();
    let stale_days = app.hub.config().stale_after_days;
    let mut out: Vec<SourceRow> = unit
        .sources
        .iter()
        .map(|s| SourceRow {
            node: s.node.clone(),
            unit: s.unit.clone(),
            age: format::age(tr, &s.last_sync, now).unwrap_or_else(|| tr.t("hub-never")),
            stale: views::is_stale(&s.last_sync, stale_days, now),
        })
        .collect();
    out.sort_by_key(|s| !s.stale);
    out
}

/// The table behind the overview, for downloads.
pub fn table(tr: &Tr, ctx: &Ctx, rows: &[Row]) -> Table {
    let mut t = Table::new(
        format!("{} {}", tr.t("hub-nav-overview"), ctx.unit),
        &[
            &tr.t("hub-col-code"),
            &tr.t("hub-col-indicator"),
            &tr.t("hub-col-value"),
            &tr.t("hub-col-target"),
            &tr.t("hub-col-share"),
            &tr.t("hub-col-status"),
            &tr.t("hub-col-change"),
        ],
    );
    for r in rows {
        t.rows.push(vec![
            Cell::text(&r.id),
            Cell::text(&r.name),
            Cell::text(&r.value),
            Cell::text(&r.target),
            Cell::text(&r.share),
            Cell::text(&r.status_label),
            Cell::text(&r.change),
        ]);
    }
    t
}

pub async fn page(
    me: SignedIn,
    State(app): State<App>,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let ctx = Ctx::resolve(&app, &me, &p)?;
    let tr = me.tr();
    let (now, before) = {
        let (hub, c) = (app.hub.clone(), ctx.clone());
        super::blocking(move || {
            let at = |d| views::plan_progress_kept(&hub, &c.plan.id, &c.unit, &c.version, d);
            let prev_date = views::previous_month_end(c.as_of);
            // In the hub's version both dates are kept in the live view (the
            // first view of a date evaluates it once); in another version
            // each is computed from scratch, side by side.
            std::thread::scope(|s| {
                let before = (prev_date >= c.plan.start).then(|| s.spawn(|| at(prev_date)));
                let now = at(c.as_of)?;
                let before = match before {
                    Some(b) => Some(b.join().expect("the month before")?),
                    None => None,
                };
                Ok((now, before))
            })
        })
        .await?
    };
    let top = now.units.first().ok_or(WebError::NotFound)?;
    let rows = rows(
        &ctx.plan,
        &tr,
        &ctx.phase.id,
        top,
        before.as_ref().and_then(|b| b.units.first()),
    );
    if let Some(file) = super::download(
        &table(&tr, &ctx, &rows),
        &format!("tong-quan-{}-{}", ctx.unit, ctx.as_of),
        super::given(&p.format),
    ) {
        return Ok(file);
    }
    let h = Hierarchy::current();
    let v = h
        .version(&ctx.version)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let mut crumbs = Vec::new();
    let mut cur = v.unit(&ctx.unit).and_then(|u| u.parent.clone());
    while let Some(code) = cur {
        let Some(u) = v.unit(&code) else { break };
        // Only what the officer may see, under the plan shown.
        if views::may_see(&me.account, &ctx.default_version, &ctx.version, &code)
            && views::in_territory(&ctx.plan, &ctx.version, &code)
        {
            crumbs.push(Crumb {
                code: code.clone(),
                name: u.name.clone(),
            });
        }
        cur = u.parent.clone();
    }
    crumbs.reverse();
    let plan = &ctx.plan;
    let partial = Partial {
        tr,
        ctx: &ctx,
        query: ctx.query(),
        plans: super::plan_choices(&app, tr.lang),
        unit_name: top.name.clone(),
        as_of: format::date(ctx.as_of),
        lead: tr.ta(
            "hub-overview-lead",
            &[
                ("phase", super::phase_name(tr.lang, &ctx.phase)),
                ("date", format::date(ctx.as_of)),
                ("v", ctx.version.clone()),
            ],
        ),
        phases: plan
            .phases
            .iter()
            .map(|ph| (ph.id.clone(), super::phase_name(tr.lang, ph)))
            .collect(),
        versions: vec!["2023", "2024", "2025"],
        crumbs,
        has_children: now.units.iter().any(|u| u.parent == top.unit),
        rows,
        sources: sources(&app, &tr, top),
        unplaced: now.unplaced,
    }
    .render()?;
    let title = format!("{} — {}", tr.t("hub-overview-title"), top.name);
    Ok(me.page(&title, &partial)?.into_response())
}

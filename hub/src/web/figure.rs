//! # The records behind a figure
//!
//! `/figure?unit=&indicator=&phase=&as_of=&hierarchy=`: every record a
//! figure counts ([`views::behind`]), with what each adds, so that a
//! statistician can check a number against the records. Officers see only
//! their units (the same check as every page); people's names (managers,
//! cadres) only for roles that may see personal data (analyst, admin): a
//! viewer sees that such a record exists, not whom it names.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use htx_core::schema::Record;
use htx_core::units::Hierarchy;
use htx_web::{SignedIn, Tr, WebError, format};

use super::{App, Ctx, Params};
use crate::table::{Cell, Table};
use crate::views;

/// Kinds whose records name a person.
const PEOPLE: &[&str] = &["manager", "cadre"];

pub struct Row {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub unit: String,
    pub date: String,
    pub adds: String,
}

#[derive(Template)]
#[template(path = "figure.html")]
struct Partial {
    tr: Tr,
    query: String,
    as_of: String,
    indicator: String,
    indicator_name: String,
    unit_name: String,
    total: String,
    rows: Vec<Row>,
    hidden: usize,
}

fn label(
    tr: &Tr,
    r: &Record,
    coops: &std::collections::HashMap<String, String>,
    people: bool,
) -> String {
    if PEOPLE.contains(&r.kind.as_str()) && !people {
        return tr.t("hub-personal-hidden");
    }
    let own = r.text("name").or(r.text("title")).map(str::to_owned);
    let coop = r.text("cooperative").and_then(|c| coops.get(c)).cloned();
    match (own, coop) {
        (Some(o), Some(c)) => format!("{o} — {c}"),
        (Some(o), None) => o,
        (None, Some(c)) => c,
        (None, None) => r.text("type").unwrap_or_default().to_owned(),
    }
}

fn date_of(r: &Record) -> String {
    [
        "held_on",
        "observed_on",
        "founded_on",
        "consolidated_on",
        "since",
    ]
    .iter()
    .find_map(|f| r.fields.get(*f))
    .map(|v| match v {
        htx_core::schema::Value::Date(d) => format::date(*d),
        other => format!("{other:?}"),
    })
    .unwrap_or_default()
}

pub async fn page(
    me: SignedIn,
    State(app): State<App>,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let ctx = Ctx::resolve(&app, &me, &p)?;
    let indicator = p.indicator.clone().unwrap_or_default();
    if ctx.plan.indicator(&indicator).is_none() {
        return Err(WebError::BadRequest(format!(
            "chỉ tiêu không có trong kế hoạch: {indicator:?} / no such indicator in the plan"
        )));
    }
    let (hub, c, ind) = (app.hub.clone(), ctx.clone(), indicator.clone());
    let behind = super::blocking(move || {
        views::behind(
            &hub,
            &c.plan,
            &c.unit,
            &c.version,
            c.as_of,
            &ind,
            &c.phase.id,
        )
    })
    .await?;
    let tr = me.tr();
    let people = views::may_see_people(&me.account);
    let h = Hierarchy::current();
    let unit_name = |code: &str| {
        h.unit(&ctx.version, code)
            .map(|u| u.name.clone())
            .unwrap_or_else(|_| code.to_owned())
    };
    let mut hidden = 0;
    let (mut num, mut den) = (0i128, 0i128);
    let rows: Vec<Row> = behind
        .rows
        .iter()
        .map(|(r, t)| {
            num += t.numerator;
            den += t.denominator;
            if PEOPLE.contains(&r.kind.as_str()) && !people {
                hidden += 1;
            }
            Row {
                id: r.id.clone(),
                kind: tr.t(&format!("kind-{}", r.kind)),
                label: label(&tr, r, &behind.cooperatives, people),
                unit: unit_name(r.text("unit").unwrap_or_default()),
                date: date_of(r),
                adds: if t.denominator != 0 && t.denominator != t.numerator || t.numerator == 0 {
                    format!("{}/{}", t.numerator, t.denominator)
                } else {
                    t.numerator.to_string()
                },
            }
        })
        .collect();
    let total = if den != 0 {
        format!("{num}/{den}")
    } else {
        num.to_string()
    };
    let mut table = Table::new(
        tr.t("hub-figure-records"),
        &[
            &tr.t("hub-col-record"),
            &tr.t("hub-col-kind"),
            &tr.t("hub-col-name"),
            &tr.t("hub-col-unit"),
            &tr.t("hub-col-date"),
            &tr.t("hub-col-adds"),
        ],
    );
    for r in &rows {
        table.rows.push(vec![
            Cell::text(&r.id),
            Cell::text(&r.kind),
            Cell::text(&r.label),
            Cell::text(&r.unit),
            Cell::text(&r.date),
            Cell::text(&r.adds),
        ]);
    }
    if let Some(file) =
        super::download(&table, &format!("ban-ghi-{indicator}"), p.format.as_deref())
    {
        return Ok(file);
    }
    let body = Partial {
        tr,
        query: ctx.query(),
        as_of: format::date(ctx.as_of),
        indicator_name: super::plan_indicator_name(&ctx.plan, tr.lang, &indicator),
        indicator,
        unit_name: unit_name(&ctx.unit),
        total,
        rows,
        hidden,
    }
    .render()?;
    Ok(me.page(&tr.t("hub-figure-title"), &body)?.into_response())
}

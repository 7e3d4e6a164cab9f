//! # Nodes: who has synced, who is behind, who was refused
//!
//! Every enrolled node with its unit, the age of its last completed sync,
//! documents it has not acknowledged, quarantined batches (refusals) with
//! the last reason, certificate expiry and revocation. Stale nodes (no
//! completed sync for `stale_after_days`, default 7) come first. A viewer
//! restricted to a district sees the nodes of that district only.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use htx_web::{SignedIn, Tr, WebError, format};
use time::OffsetDateTime;

use super::{App, Params};
use crate::table::{Cell, Table};
use crate::views;

pub struct NodeRow {
    pub name: String,
    pub unit: String,
    pub unit_name: String,
    pub last_sync: String,
    pub stale: bool,
    pub documents: usize,
    pub behind: usize,
    pub refusals: usize,
    pub last_refusal: String,
    pub expires: String,
    pub expired: bool,
    pub revoked: String,
    pub last_error: String,
    /// The software version the node last said it runs (empty: never synced).
    pub software: String,
}

#[derive(Template)]
#[template(path = "nodes.html")]
struct Partial {
    tr: Tr,
    rows: Vec<NodeRow>,
    stale_days: u64,
}

pub async fn page(
    me: SignedIn,
    State(app): State<App>,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let tr = me.tr();
    let hub = app.hub.clone();
    let (views_, quarantined) = super::blocking(move || {
        let nodes = hub.nodes()?;
        let q = crate::quarantine::list(&hub.home().dir)?;
        Ok((nodes, q))
    })
    .await?;
    let now = OffsetDateTime::now_utc();
    let stale_days = app.hub.config().stale_after_days;
    let default_version = app.hub.config().default_unit_version.clone();
    let h = htx_core::units::Hierarchy::current();
    let mut rows: Vec<NodeRow> = views_
        .into_iter()
        .filter(|v| {
            views::may_see(
                &me.account,
                &default_version,
                &v.enrolment.unit_version,
                &v.enrolment.unit,
            )
        })
        .map(|v| {
            let e = &v.enrolment;
            let mine: Vec<&crate::quarantine::Entry> =
                quarantined.iter().filter(|q| q.node == e.name).collect();
            let expires = time::OffsetDateTime::parse(
                &e.expires_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok();
            NodeRow {
                name: e.name.clone(),
                unit: e.unit.clone(),
                unit_name: h
                    .unit(&e.unit_version, &e.unit)
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
                last_sync: format::age(&tr, &v.stats.last_sync, now)
                    .unwrap_or_else(|| tr.t("hub-never")),
                stale: views::is_stale(&v.stats.last_sync, stale_days, now),
                documents: v.documents,
                behind: v.documents_behind,
                refusals: mine.len(),
                last_refusal: mine
                    .iter()
                    .max_by(|a, b| a.time.cmp(&b.time))
                    .map(|q| q.reason.clone())
                    .unwrap_or_default(),
                expires: expires
                    .map(|t| format::date(t.date()))
                    .unwrap_or_else(|| e.expires_at.clone()),
                expired: expires.is_some_and(|t| t < now),
                revoked: format::date_text(&e.revoked_at),
                last_error: v.stats.last_error.clone(),
                software: v.stats.software.clone(),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.stale.cmp(&a.stale).then_with(|| a.name.cmp(&b.name)));
    let mut table = Table::new(
        tr.t("hub-nav-nodes"),
        &[
            &tr.t("hub-col-node"),
            &tr.t("hub-col-code"),
            &tr.t("hub-col-unit"),
            &tr.t("hub-col-last-sync"),
            &tr.t("hub-stale"),
            &tr.t("hub-col-documents"),
            &tr.t("hub-col-behind"),
            &tr.t("hub-col-refusals"),
            &tr.t("hub-col-last-refusal"),
            &tr.t("hub-col-cert-expiry"),
            &tr.t("hub-col-revoked"),
            &tr.t("hub-col-software"),
        ],
    );
    for r in &rows {
        table.rows.push(vec![
            Cell::text(&r.name),
            Cell::text(&r.unit),
            Cell::text(&r.unit_name),
            Cell::text(&r.last_sync),
            Cell::text(if r.stale {
                tr.t("hub-yes")
            } else {
                String::new()
            }),
            Cell::Int(r.documents as i64),
            Cell::Int(r.behind as i64),
            Cell::Int(r.refusals as i64),
            Cell::text(&r.last_refusal),
            Cell::text(&r.expires),
            Cell::text(&r.revoked),
            Cell::text(&r.software),
        ]);
    }
    if let Some(file) = super::download(&table, "nut", super::given(&p.format)) {
        return Ok(file);
    }
    let partial = Partial {
        tr,
        rows,
        stale_days,
    }
    .render()?;
    Ok(me.page("hub-nodes-title", &partial)?.into_response())
}

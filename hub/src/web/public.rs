//! # The public page: the province's progress, counts only
//!
//! `/public`, off by default, served only when the administrator sets
//! `public_progress = true` (the same switch that opens `/api/progress`
//! to programs): for the province's portal, every indicator of the current
//! phase with its value, target, bar and status, as of today, without
//! signing in. It names no node, no record and no person, and offers no
//! drill-down; anything else stays behind the sign-in.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use htx_web::{Tr, WebError, format};

use super::App;
use super::overview::Row;
use crate::views;

#[derive(Template)]
#[template(path = "public.html")]
struct Partial {
    tr: Tr,
    lead: String,
    rows: Vec<Row>,
}

pub async fn page(State(app): State<App>, headers: HeaderMap) -> Result<Response, WebError> {
    if !app.hub.config().public_progress {
        return Err(WebError::NotFound);
    }
    let version = app.hub.config().default_unit_version.clone();
    let as_of = crate::progress::today();
    let hub = app.hub.clone();
    let v = version.clone();
    let (now, before) = super::blocking(move || {
        let unit =
            views::home_unit(&htx_web::Account::nobody(), &v, &v, hub.plan()).unwrap_or_default();
        let now = views::progress_at(&hub, &unit, &v, as_of)?;
        let prev = views::previous_month_end(as_of);
        let before = if prev >= hub.plan().start {
            Some(views::progress_at(&hub, &unit, &v, prev)?)
        } else {
            None
        };
        Ok((now, before))
    })
    .await?;
    let top = now.units.first().ok_or(WebError::NotFound)?.clone();
    let phase = views::phase_at(app.hub.plan(), as_of).clone();
    let web = app.web.clone();
    htx_web::routes::public_page(&web, &headers, "/public", "hub-public-title", |tr| {
        let rows = super::overview::rows(
            app.hub.plan(),
            &tr,
            &phase.id,
            &top,
            before.as_ref().and_then(|b| b.units.first()),
        );
        let lead = tr.ta(
            "hub-public-lead",
            &[
                ("unit", top.name.clone()),
                ("phase", super::phase_name(tr.lang, &phase)),
                ("date", format::date(as_of)),
            ],
        );
        Ok(Partial { tr, lead, rows }.render()?)
    })
}

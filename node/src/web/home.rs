//! # Home: progress, sync, what needs attention
//!
//! The progress of one of the officer's units (the node's own by default)
//! against the plan, computed offline by the node's engine, for the
//! current phase; the sync banner; refused records, conflicts and counts
//! that do not add up, each with a link to the record.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use htx_web::{SignedIn, Tr, WebError, format};
use serde::Deserialize;

use super::{App, blocking};
use crate::query::{Attention, UnitRef, label};

#[derive(Deserialize, Default)]
pub struct HomeQuery {
    #[serde(default)]
    unit: String,
    #[serde(default)]
    phase: String,
}

pub struct IndicatorView {
    pub name: String,
    pub value: String,
    pub target: String,
    /// 0..=100, for the bar.
    pub bar: u32,
    pub share: String,
    pub status: String,
    pub status_label: String,
}

pub struct SyncBanner {
    pub last_success: String,
    pub pending: usize,
    pub hub_state: String,
    pub hub_ok: bool,
    pub last_error: String,
    pub records: usize,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePartial<'a> {
    tr: Tr,
    units: &'a [UnitRef],
    unit: &'a str,
    phases: Vec<(String, String)>,
    phase: &'a str,
    indicators: Vec<IndicatorView>,
    /// The unit has no targets of its own (no allocation of the plan's).
    no_allocation: bool,
    banner: SyncBanner,
    attention: Attention,
}

impl HomePartial<'_> {
    fn label(&self, r: &htx_core::schema::Record) -> String {
        label(r)
    }
}

pub async fn home(
    me: SignedIn,
    State(app): State<App>,
    Query(q): Query<HomeQuery>,
) -> Result<Html<String>, WebError> {
    let tr = me.tr();
    let units = app.node.progress_units(&me.account.units);
    let unit = if units.iter().any(|u| u.code == q.unit) {
        q.unit.clone()
    } else {
        units.first().map(|u| u.code.clone()).unwrap_or_default()
    };
    let scope = me.account.units.clone();
    let u = unit.clone();
    let (reply, plan, status, attention) = blocking(&app.node, move |n| {
        let reply = if u.is_empty() {
            None
        } else {
            Some(n.progress(Some(&u), None, None)?)
        };
        let (plan, _) = n.reference()?;
        Ok((reply, plan, n.status(), n.attention(&scope)?))
    })
    .await?;
    let today = time::OffsetDateTime::now_utc().date();
    let phase = plan
        .phases
        .iter()
        .find(|p| p.id == q.phase)
        .or_else(|| {
            plan.phases
                .iter()
                .find(|p| p.start <= today && today <= p.end)
        })
        .or(plan.phases.last())
        .map(|p| p.id.clone())
        .unwrap_or_default();
    let vi = tr.lang == htx_web::Lang::Vi;
    let phases = plan
        .phases
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                if vi {
                    p.name_vi.clone()
                } else {
                    p.name.clone()
                },
            )
        })
        .collect();
    let figures = reply
        .as_ref()
        .and_then(|r| r.units.first())
        .map(|u| u.figures.clone())
        .unwrap_or_default();
    let no_allocation = reply
        .as_ref()
        .and_then(|r| r.units.first())
        .is_some_and(|u| u.allocation == "none");
    let indicators = plan
        .indicators
        .iter()
        .filter_map(|ind| {
            let f = figures
                .iter()
                .find(|f| f.indicator == ind.id && f.phase == phase)?;
            let ratio = f.compute == "ratio";
            let value = match f.value {
                Some(v) if ratio => format!("{}%", format::decimal(tr.lang, v)),
                Some(v) if f.measure == "vnd" => format!("{} đ", format::count(tr.lang, v as i64)),
                Some(v) => format::count(tr.lang, v as i64),
                None => "—".into(),
            };
            Some(IndicatorView {
                name: if vi {
                    ind.name_vi.clone()
                } else {
                    ind.name.clone()
                },
                value,
                target: f.target.clone(),
                bar: f
                    .share
                    .map(|s| (s * 100.0).clamp(0.0, 100.0) as u32)
                    .unwrap_or(0),
                share: f
                    .share
                    .map(|s| format!("{}%", format::decimal(tr.lang, s * 100.0)))
                    .unwrap_or_default(),
                status: f.status.clone(),
                // A unit below the plan's own without an allocation has
                // no status; it says so once, above the indicators.
                status_label: tr.status("status-", &f.status),
            })
        })
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let s = &status.sync;
    let hub_ok = s.last_error.is_empty() && !s.last_success.is_empty();
    let banner = SyncBanner {
        last_success: format::age(&tr, &s.last_success, now).unwrap_or_else(|| tr.t("sync-never")),
        pending: status.documents_not_at_hub,
        hub_state: tr.t(if s.last_attempt.is_empty() {
            "hub-not-tried"
        } else if hub_ok {
            "hub-reachable"
        } else if s.refused_records.is_empty() {
            "hub-unreachable"
        } else {
            "hub-refused"
        }),
        hub_ok,
        last_error: s.last_error.clone(),
        records: status.records,
    };
    let body = HomePartial {
        tr,
        units: &units,
        unit: &unit,
        phases,
        phase: &phase,
        indicators,
        no_allocation,
        banner,
        attention,
    }
    .render()?;
    me.page("home-title", &body)
}

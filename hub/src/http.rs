//! # Progress over HTTP, for people and programs
//!
//! The dashboard's pages ([`crate::web`]) are served on the same port.
//! `/api/progress` names no one, but a district's figures are its own:
//! it answers a signed-in session (the dashboard's cookie), limited to the
//! account's units as the pages are (another unit: `403`), and anyone
//! else `401`. With `public_progress = true` in `hub.toml` it also answers
//! without a session, counts only: no node names, no record ids (the
//! province's public page of counts).
//!
//! `GET /api/progress?unit=&as_of=&hierarchy=&plan=` answers JSON;
//! `&format=csv` (or `/api/progress.csv`) answers CSV, one row per unit,
//! indicator and phase. Bad input gets `400`; every refusal gives its
//! reason in English and Vietnamese.

use axum::Router;
use axum::extract::{FromRequestParts, Query as QueryParams, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use htx_proto::v1 as pb;
use htx_web::SignedIn;
use serde::Deserialize;

use crate::progress::Query;
use crate::views;
use crate::web::App;
use htx_core::report;

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(flatten)]
    query: Query,
    #[serde(default)]
    format: Option<String>,
}

pub fn router(hub: crate::hub::Hub) -> Router {
    let app = App::new(hub);
    Router::new()
        .route("/api/progress", get(progress))
        .route("/api/progress.csv", get(progress_csv))
        .with_state(app.clone())
        .merge(crate::web::router(app))
}

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": error }))).into_response()
}

pub const SIGN_IN_FIRST: &str = "sign in to the dashboard first (its session cookie), or ask the hub's administrator for public_progress / hãy đăng nhập trang tổng hợp trước";
pub const NOT_YOUR_UNIT: &str =
    "this account may not see that unit / tài khoản này không được xem đơn vị này";

/// Who asks: an account (its units limit the answer), or, with
/// `public_progress`, anyone (counts only).
enum Caller {
    Account(Box<SignedIn>),
    Public,
}

async fn caller(app: &App, req: Request) -> Result<(Caller, Params), Response> {
    let (mut parts, _) = req.into_parts();
    let p = QueryParams::<Params>::try_from_uri(&parts.uri)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, &e.body_text()))?
        .0;
    match SignedIn::from_request_parts(&mut parts, app).await {
        Ok(me) => Ok((Caller::Account(Box::new(me)), p)),
        // The extractor sends the unsigned to the sign-in page.
        Err(r) if r.status().is_redirection() => {
            if app.hub.config().public_progress {
                Ok((Caller::Public, p))
            } else {
                Err(refuse(StatusCode::UNAUTHORIZED, SIGN_IN_FIRST))
            }
        }
        Err(r) => Err(r),
    }
}

async fn progress(State(app): State<App>, req: Request) -> Response {
    match caller(&app, req).await {
        Ok((who, p)) => {
            let csv = p.format.as_deref() == Some("csv");
            respond(app, who, p.query, csv).await
        }
        Err(r) => r,
    }
}

async fn progress_csv(State(app): State<App>, req: Request) -> Response {
    match caller(&app, req).await {
        Ok((who, p)) => respond(app, who, p.query, true).await,
        Err(r) => r,
    }
}

/// Drops what is not a count: node names and record ids.
fn counts_only(mut reply: pb::ProgressReply) -> pb::ProgressReply {
    reply.unplaced_records.clear();
    for u in &mut reply.units {
        u.sources.clear();
        u.oldest_sync.clear();
    }
    reply
}

/// Whether a query failed on the hub's own store (its record index, a
/// document, the file), not on what was asked.
fn hub_fault(e: &anyhow::Error) -> bool {
    e.downcast_ref::<htx_core::index::IndexError>().is_some()
        || e.downcast_ref::<htx_core::storage::StoreError>().is_some()
        || e.downcast_ref::<htx_core::replica::ReplicaError>()
            .is_some()
}

async fn respond(app: App, who: Caller, mut query: Query, csv: bool) -> Response {
    if let Caller::Account(me) = &who {
        let default = app.hub.config().default_unit_version.clone();
        let version = query
            .hierarchy
            .clone()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.clone());
        let asked = query.unit.clone().filter(|u| !u.is_empty());
        if !me.account.units.is_empty() {
            let plan = match app.hub.plan_by(query.plan.as_deref()) {
                Ok(p) => p,
                Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            let unit = match asked {
                Some(u) => u,
                None => match views::home_unit(&me.account, &default, &version, plan) {
                    Some(u) => u,
                    None => return refuse(StatusCode::FORBIDDEN, NOT_YOUR_UNIT),
                },
            };
            if !views::may_see(&me.account, &default, &version, &unit) {
                me.audit("unit_refused", &unit, "/api/progress");
                return refuse(StatusCode::FORBIDDEN, NOT_YOUR_UNIT);
            }
            query.unit = Some(unit);
        }
    }
    let hub = app.hub.clone();
    let result = tokio::task::spawn_blocking(move || hub.progress(&query)).await;
    match result {
        Ok(Ok(reply)) => {
            let reply = match who {
                Caller::Public => counts_only(reply),
                Caller::Account(_) => reply,
            };
            if csv {
                (
                    [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                    report::to_csv(&reply),
                )
                    .into_response()
            } else {
                axum::Json(reply).into_response()
            }
        }
        Ok(Err(e)) if hub_fault(&e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Ok(Err(e)) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

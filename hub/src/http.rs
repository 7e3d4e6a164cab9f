//! # Progress over HTTP, for people and programs
//!
//! The dashboard's pages ([`crate::web`]) are served on the same port;
//! `/api/progress` stays open to programs (it names no one).
//!
//! `GET /api/progress?unit=&as_of=&hierarchy=` answers JSON;
//! `&format=csv` (or `/api/progress.csv`) answers CSV, one row per unit,
//! indicator and phase. Bad input gets `400` with the reason in English and
//! Vietnamese.

use axum::Router;
use axum::extract::{Query as QueryParams, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::hub::Hub;
use htx_core::report;

use crate::progress::Query;

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(flatten)]
    query: Query,
    #[serde(default)]
    format: Option<String>,
}

pub fn router(hub: Hub) -> Router {
    Router::new()
        .route("/api/progress", get(progress))
        .route("/api/progress.csv", get(progress_csv))
        .with_state(hub.clone())
        .merge(crate::web::router(hub))
}

async fn progress(State(hub): State<Hub>, QueryParams(p): QueryParams<Params>) -> Response {
    let csv = p.format.as_deref() == Some("csv");
    respond(hub, p.query, csv).await
}

async fn progress_csv(State(hub): State<Hub>, QueryParams(p): QueryParams<Params>) -> Response {
    respond(hub, p.query, true).await
}

async fn respond(hub: Hub, query: Query, csv: bool) -> Response {
    let result = tokio::task::spawn_blocking(move || hub.progress(&query)).await;
    match result {
        Ok(Ok(reply)) => {
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
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

//! # Health, metrics and the session log line of a node
//!
//! A small HTTP router of its own (`/healthz`, `/readyz`, `/metrics`),
//! served on `status_listen` (`DIR/status.addr`), apart from the gRPC API
//! so that monitoring needs no gRPC client and other routers (the web app)
//! can be mounted beside it later. Counters are bumped when a sync session
//! ends; the gauges (last successful sync's age, documents the hub has not
//! acknowledged, store size, certificate expiry) are read at each scrape.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use time::OffsetDateTime;

use crate::node::Node;
use crate::sync_client::SessionReport;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// One `info` line and the counters of a sync with the hub that ended.
pub fn session_ended(node: &str, r: &SessionReport, error: Option<&str>, took: Duration) {
    let outcome = if error.is_none() {
        "completed"
    } else {
        "failed"
    };
    metrics::counter!("htx_node_sessions_total", "outcome" => outcome).increment(1);
    metrics::counter!("htx_node_bytes_sent_total").increment(r.bytes_sent);
    metrics::counter!("htx_node_bytes_received_total").increment(r.bytes_received);
    metrics::counter!("htx_node_changes_sent_total").increment(r.changes_sent.into());
    metrics::counter!("htx_node_changes_received_total").increment(r.changes_received.into());
    tracing::info!(
        node = %node,
        outcome = %outcome,
        changes_out = r.changes_sent,
        changes_in = r.changes_received,
        bytes_out = r.bytes_sent,
        bytes_in = r.bytes_received,
        duration_ms = took.as_millis() as u64,
        error = %error.unwrap_or(""),
        "sync session"
    );
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn render(node: &Node) -> anyhow::Result<String> {
    let handle = install().ok_or_else(|| anyhow::anyhow!("no metrics recorder"))?;
    let now = OffsetDateTime::now_utc();
    let status = node.status();
    if let Some(t) = parse_time(&status.sync.last_success) {
        metrics::gauge!("htx_node_last_sync_age_seconds").set((now - t).as_seconds_f64());
    }
    metrics::gauge!("htx_node_documents_not_at_hub").set(status.documents_not_at_hub as f64);
    metrics::gauge!("htx_node_records").set(status.records as f64);
    metrics::gauge!("htx_node_damaged_documents").set(status.damaged_documents.len() as f64);
    if let Some(t) = parse_time(&node.credentials().expires_at) {
        metrics::gauge!("htx_node_certificate_expiry_seconds").set((t - now).as_seconds_f64());
    }
    let store = node.replica().store().clone();
    metrics::gauge!("htx_node_store_bytes").set(store.size_on_disk()? as f64);
    metrics::gauge!(
        "htx_node_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "protocol" => htx_core::sync::PROTOCOL.to_string()
    )
    .set(1.0);
    handle.run_upkeep();
    Ok(handle.render())
}

/// Whether the node can serve its officers: the store answers and its
/// certificate is valid (it works offline, so the hub is not asked).
fn check_ready(node: &Node) -> Result<(), String> {
    let store = node.replica().store().clone();
    store
        .get(b"meta/")
        .map_err(|e| format!("the store does not answer / kho dữ liệu không phản hồi: {e}"))?;
    if let Some(t) = parse_time(&node.credentials().expires_at)
        && t <= OffsetDateTime::now_utc()
    {
        return Err(format!(
            "the node certificate expired at {t}: ask the hub administrator for a new bundle / chứng chỉ của nút đã hết hạn"
        ));
    }
    Ok(())
}

/// `/healthz`, `/readyz` and `/metrics` of this node.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(node)
}

async fn readyz(State(node): State<Node>) -> Response {
    match tokio::task::spawn_blocking(move || check_ready(&node)).await {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready / chưa sẵn sàng: {why}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn metrics_text(State(node): State<Node>) -> Response {
    match tokio::task::spawn_blocking(move || render(&node)).await {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

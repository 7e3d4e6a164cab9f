//! # Health, metrics and the session log line
//!
//! An administrator's monitoring has no client certificate, so the hub's
//! plain HTTP port (`http_listen`) answers `/healthz` (the process is up),
//! `/readyz` (its store answers and its certificate is valid) and
//! `/metrics` (Prometheus text). Counters are bumped where things happen
//! (sessions, refusals, merges); per-node gauges (last-sync age, documents
//! behind, certificate expiry) and the store size are read from the hub's
//! state at each scrape, so they are never stale. The Prometheus recorder
//! is process-global: installed once, whatever the number of hubs a process
//! opens.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use time::OffsetDateTime;

use crate::hub::{Hub, NodeStats};

pub const MERGE_SECONDS: &str = "htx_hub_merge_seconds";

/// Why the hub refused a node: the `reason` label of `htx_hub_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A certificate the hub revoked.
    Revoked,
    /// A certificate the hub never enrolled.
    NotEnrolled,
    /// More sessions than `max_sessions_per_node`.
    TooManySessions,
    /// More documents than `max_docs_per_session`.
    TooManyDocuments,
    /// A document outside the node's units.
    Scope,
    /// Changes refused for who made them (actor, scope).
    Permission,
    /// Changes refused for what they hold (schema, size).
    Invalid,
    /// A message too big or unreadable.
    BadMessage,
    /// A sync protocol the hub does not speak.
    Protocol,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Revoked => "revoked",
            Refusal::NotEnrolled => "not_enrolled",
            Refusal::TooManySessions => "too_many_sessions",
            Refusal::TooManyDocuments => "too_many_documents",
            Refusal::Scope => "scope",
            Refusal::Permission => "permission",
            Refusal::Invalid => "invalid_changes",
            Refusal::BadMessage => "bad_message",
            Refusal::Protocol => "protocol",
        }
    }
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process); `None` if another
/// recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(MERGE_SECONDS.into()), &buckets)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Counts a refusal and logs it with its reason and the node's name.
pub fn refused(reason: Refusal, node: &str, message: &str) {
    metrics::counter!("htx_hub_refusals_total", "reason" => reason.label()).increment(1);
    tracing::warn!(node = %node, reason = %reason.label(), "refused: {message}");
}

/// One `info` line and the counters of a session that ended.
pub fn session_ended(node: &str, s: &NodeStats, completed: bool, took: Duration) {
    let outcome = if completed { "completed" } else { "failed" };
    let labels = [("node", node.to_owned())];
    metrics::counter!("htx_hub_sessions_total", "node" => node.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::counter!("htx_hub_bytes_received_total", &labels).increment(s.bytes_received);
    metrics::counter!("htx_hub_bytes_sent_total", &labels).increment(s.bytes_sent);
    metrics::counter!("htx_hub_changes_merged_total", &labels).increment(s.changes_received);
    metrics::counter!("htx_hub_changes_sent_total", &labels).increment(s.changes_sent);
    tracing::info!(
        node = %node,
        outcome = %outcome,
        changes_in = s.changes_received,
        changes_out = s.changes_sent,
        bytes_in = s.bytes_received,
        bytes_out = s.bytes_sent,
        duration_ms = took.as_millis() as u64,
        error = %s.last_error,
        "sync session"
    );
}

/// How long merging one batch took (validation included).
pub fn merged(took: Duration) {
    metrics::histogram!(MERGE_SECONDS).record(took.as_secs_f64());
}

pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Seconds from now until `t` (negative once past).
fn seconds_until(t: OffsetDateTime) -> f64 {
    (t - OffsetDateTime::now_utc()).as_seconds_f64()
}

/// Sets the gauges read from the hub's state, then renders every metric.
fn render(hub: &Hub) -> anyhow::Result<String> {
    let handle = install().ok_or_else(|| anyhow::anyhow!("no metrics recorder"))?;
    let now = OffsetDateTime::now_utc();
    let mut states = [("active", 0.0), ("revoked", 0.0), ("expired", 0.0)];
    for v in hub.nodes()? {
        let state = v.enrolment.state(now);
        for (s, n) in states.iter_mut() {
            if *s == state.label() {
                *n += 1.0;
            }
        }
        if state == crate::home::NodeState::Revoked {
            continue;
        }
        let node = v.enrolment.name.clone();
        // Never synced: the age counts from enrolment, so a node set up
        // and never started shows as stale too.
        let since = parse_time(&v.stats.last_sync).or_else(|| parse_time(&v.enrolment.enrolled_at));
        if let Some(t) = since {
            metrics::gauge!("htx_hub_node_last_sync_age_seconds", "node" => node.clone())
                .set((now - t).as_seconds_f64().max(0.0)); // a sync may land after `now`
        }
        metrics::gauge!("htx_hub_node_documents_behind", "node" => node.clone())
            .set(v.documents_behind as f64);
        if let Some(t) = parse_time(&v.enrolment.expires_at) {
            metrics::gauge!("htx_hub_certificate_expiry_seconds", "certificate" => format!("node:{node}"))
                .set(seconds_until(t));
        }
    }
    for (state, n) in states {
        metrics::gauge!("htx_hub_nodes", "state" => state).set(n);
    }
    for (label, file) in [("hub", "hub.pem"), ("ca", "ca.pem")] {
        if let Ok(pem) = std::fs::read_to_string(hub.home().dir.join(file))
            && let Ok(t) = htx_core::pki::not_after(&pem)
        {
            metrics::gauge!("htx_hub_certificate_expiry_seconds", "certificate" => label)
                .set(seconds_until(t));
        }
    }
    metrics::gauge!("htx_hub_store_bytes").set(hub.store_bytes()? as f64);
    metrics::gauge!(
        "htx_hub_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "protocol" => htx_core::sync::PROTOCOL.to_string()
    )
    .set(1.0);
    handle.run_upkeep();
    Ok(handle.render())
}

/// `/healthz`, `/readyz` and `/metrics`: a router of its own, merged into
/// the HTTP port's.
pub fn router(hub: Hub) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(hub)
}

async fn readyz(State(hub): State<Hub>) -> Response {
    match tokio::task::spawn_blocking(move || hub.check_ready()).await {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready / chưa sẵn sàng: {why}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn metrics_text(State(hub): State<Hub>) -> Response {
    match tokio::task::spawn_blocking(move || render(&hub)).await {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Certificates expire in less than this: warned about in the log.
pub const EXPIRY_WARNING: time::Duration = time::Duration::days(30);

/// Warns in the log about the hub's, the CA's and active nodes'
/// certificates that expire within [`EXPIRY_WARNING`] (run at start and
/// daily). Nodes renew their own at sync; a node that does not sync in
/// time must be enrolled again.
pub fn warn_expiry(hub: &Hub) {
    let now = OffsetDateTime::now_utc();
    for (label, file, fix) in [
        ("hub", "hub.pem", "run `htx-hub rotate-cert` and restart"),
        (
            "CA",
            "ca.pem",
            "set up a new CA and enroll every node again",
        ),
    ] {
        if let Ok(pem) = std::fs::read_to_string(hub.home().dir.join(file))
            && let Ok(t) = htx_core::pki::not_after(&pem)
            && t - now < EXPIRY_WARNING
        {
            tracing::warn!(
                certificate = label,
                expires_at = %t,
                "the {label} certificate expires in {} days: {fix} / chứng chỉ sắp hết hạn",
                (t - now).whole_days()
            );
        }
    }
    let Ok(nodes) = hub.home().enrolments() else {
        return;
    };
    for e in nodes {
        if e.state(now) == crate::home::NodeState::Active
            && let Some(t) = parse_time(&e.expires_at)
            && t - now < EXPIRY_WARNING
        {
            tracing::warn!(
                node = e.name,
                expires_at = e.expires_at,
                "the certificate of node {} expires in {} days; it renews itself when it syncs, else enroll it again / chứng chỉ của nút sắp hết hạn",
                e.name,
                (t - now).whole_days()
            );
        }
    }
}

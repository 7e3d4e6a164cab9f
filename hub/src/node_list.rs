//! # `htx-hub nodes`: who is behind, revoked, or about to expire
//!
//! Turns the admin API's node list into what an administrator scans: each
//! node's state, its last sync as an age ("3 d 4 h ago") rather than a UTC
//! timestamp, documents behind, the software and protocol it last spoke,
//! days until its certificate expires, and a stale flag (no completed sync
//! for `stale_after_days`, counted from enrolment for a node that never
//! synced). Stale nodes come first.

use htx_proto::v1 as pb;
use time::{Duration, OffsetDateTime};

use crate::telemetry::parse_time;

pub struct Row {
    pub info: pb::NodeInfo,
    /// Since the last completed sync (or enrolment, if never).
    pub age: Option<Duration>,
    pub stale: bool,
    pub cert_left: Option<Duration>,
}

/// The rows, stale first, then by name.
pub fn rows(reply: pb::NodesReply, now: OffsetDateTime, stale_after: Duration) -> Vec<Row> {
    let mut rows: Vec<Row> = reply
        .nodes
        .into_iter()
        .map(|info| {
            let since = parse_time(&info.last_sync).or_else(|| parse_time(&info.enrolled_at));
            let age = since.map(|t| now - t);
            let stale = info.state != "revoked" && age.is_some_and(|a| a > stale_after);
            let cert_left = parse_time(&info.expires_at).map(|t| t - now);
            Row {
                info,
                age,
                stale,
                cert_left,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.stale.cmp(&a.stale).then(a.info.name.cmp(&b.info.name)));
    rows
}

/// "40 s", "12 min", "5 h 3 min", "3 d 4 h".
pub fn age(d: Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

pub fn to_json(rows: &[Row]) -> serde_json::Value {
    rows.iter()
        .map(|r| {
            let n = &r.info;
            serde_json::json!({
                "name": n.name, "unit": n.unit, "state": n.state, "stale": r.stale,
                "enrolled_at": n.enrolled_at, "last_seen": n.last_seen, "last_sync": n.last_sync,
                "last_sync_age_secs": r.age.map(|a| a.whole_seconds()),
                "documents": n.documents, "documents_behind": n.documents_behind,
                "software": n.software, "protocol": n.protocol,
                "cert_expires_at": n.expires_at,
                "cert_days_left": r.cert_left.map(|d| d.whole_days()),
                "bytes_received": n.bytes_received, "bytes_sent": n.bytes_sent,
                "changes_received": n.changes_received, "changes_sent": n.changes_sent,
                "sessions": n.sessions, "last_error": n.last_error,
                "recovered_changes": n.recovered_changes, "last_recovery": n.last_recovery,
            })
        })
        .collect()
}

pub fn to_text(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<16} {:<6} {:<8} {:<20} {:>6} {:<8} {:>5} {:>11}  {}\n",
        "node", "unit", "state", "last sync", "behind", "version", "proto", "cert (days)", "flags"
    );
    for r in rows {
        let n = &r.info;
        let last = if n.last_sync.is_empty() {
            "never / chưa".to_owned()
        } else {
            format!("{} ago", r.age.map(age).unwrap_or_default())
        };
        let mut flags = Vec::new();
        if r.stale {
            flags.push("STALE / quá hạn đồng bộ".to_owned());
        }
        if r.cert_left.is_some_and(|d| d < Duration::days(30)) && n.state == "active" {
            flags.push("cert expires soon / chứng chỉ sắp hết hạn".to_owned());
        }
        if !n.last_error.is_empty() {
            flags.push(format!("last error: {}", n.last_error));
        }
        let version = if n.software.is_empty() {
            "?"
        } else {
            &n.software
        };
        out.push_str(&format!(
            "{:<16} {:<6} {:<8} {:<20} {:>6} {:<8} {:>5} {:>11}  {}\n",
            n.name,
            n.unit,
            n.state,
            last,
            n.documents_behind,
            version,
            n.protocol,
            r.cert_left
                .map(|d| d.whole_days().to_string())
                .unwrap_or_default(),
            flags.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, state: &str, last_sync: &str) -> pb::NodeInfo {
        pb::NodeInfo {
            name: name.into(),
            state: state.into(),
            last_sync: last_sync.into(),
            enrolled_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-12-01T00:00:00Z".into(),
            ..Default::default()
        }
    }

    #[test]
    fn stale_nodes_come_first_and_revoked_ones_are_never_stale() {
        let now = parse_time("2026-11-20T00:00:00Z").unwrap();
        let reply = pb::NodesReply {
            nodes: vec![
                node("a-fresh", "active", "2026-11-19T22:00:00Z"),
                node("b-revoked", "revoked", ""),
                node("c-old", "active", "2026-11-01T00:00:00Z"),
                node("d-never", "active", ""),
            ],
        };
        let rows = rows(reply, now, Duration::days(7));
        let names: Vec<_> = rows
            .iter()
            .map(|r| (r.info.name.as_str(), r.stale))
            .collect();
        assert_eq!(
            names,
            [
                ("c-old", true),
                ("d-never", true),
                ("a-fresh", false),
                ("b-revoked", false)
            ]
        );
        let text = to_text(&rows);
        assert!(text.contains("19 d 0 h ago"), "{text}");
        assert!(text.contains("2 h 0 min ago"), "{text}");
        assert!(text.contains("cert expires soon"), "{text}");
    }
}

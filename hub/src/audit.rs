//! # The hub's audit log: `DIR/audit.log`
//!
//! One JSON object per line, appended and flushed to disk before the call
//! returns, never rewritten: `{"time", "event", "node", ...details}`. Events
//! written here: `accepted` (a merged batch: document, actors, number and
//! size of changes), `refused` (with its reason and quarantine id) and
//! `warning` (a data-quality warning). Enrolment, revocation and renewal can
//! be logged with [`audit_event`] too. `htx-hub audit DIR` prints it.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

pub const FILE: &str = "audit.log";

/// The `node` of a refusal no enrolment or certificate name could be tied to.
pub const UNATTRIBUTED: &str = "unattributed";

/// Serializes writers in this process, so lines never interleave.
static LOCK: Mutex<()> = Mutex::new(());

/// Appends one event to `DIR/audit.log` and syncs it to disk. `details`
/// must be a JSON object; its fields are added to the line.
pub fn audit_event(
    dir: &Path,
    event: &str,
    node: &str,
    details: serde_json::Value,
) -> std::io::Result<()> {
    let mut line = serde_json::json!({
        "time": crate::hub::now_rfc3339(),
        "event": event,
        "node": node,
    });
    if let (Some(o), serde_json::Value::Object(d)) = (line.as_object_mut(), details) {
        o.extend(d);
    }
    let mut text = line.to_string();
    text.push('\n');
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(FILE))?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

/// Every event in the log, oldest first, optionally only one node's.
pub fn read(dir: &Path, node: Option<&str>) -> std::io::Result<Vec<serde_json::Value>> {
    let text = match std::fs::read_to_string(dir.join(FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| node.is_none_or(|n| e["node"] == n))
        .collect())
}

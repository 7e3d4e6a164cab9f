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

/// The log as read: its events, and the lines that could not be read.
#[derive(Debug, Default)]
pub struct Log {
    /// Oldest first.
    pub events: Vec<serde_json::Value>,
    /// (line number from 1, why): damaged lines, skipped so that one bad
    /// line (a torn write, a stray edit) hides nothing else.
    pub bad_lines: Vec<(usize, String)>,
}

/// Every event in the log, oldest first, optionally only one node's, and
/// the lines that are not events.
pub fn read_log(dir: &Path, node: Option<&str>) -> std::io::Result<Log> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut log = Log::default();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = std::str::from_utf8(line)
            .map_err(|e| format!("not UTF-8 text ({e})"))
            .and_then(|text| {
                serde_json::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())
            })
            .and_then(|v| match v {
                serde_json::Value::Object(_) => Ok(v),
                _ => Err("not a JSON object".to_owned()),
            });
        match event {
            Ok(e) if node.is_none_or(|n| e["node"] == n) => log.events.push(e),
            Ok(_) => {}
            Err(why) => log.bad_lines.push((i + 1, why)),
        }
    }
    Ok(log)
}

/// Every event in the log, oldest first, optionally only one node's;
/// unreadable lines are skipped (see [`read_log`] to know which).
pub fn read(dir: &Path, node: Option<&str>) -> std::io::Result<Vec<serde_json::Value>> {
    Ok(read_log(dir, node)?.events)
}

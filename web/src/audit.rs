//! # Who did what
//!
//! `DIR/web-audit.log`: one JSON object per line, appended and synced to
//! disk before the officer is answered: sign-ins (and refusals, lock-outs),
//! sign-outs, every change made through the pages (the record's id, never
//! its personal data), refused forms (CSRF), account changes. A line that
//! cannot be written is logged and the action still answered: the audit
//! must not lock officers out of their work.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub const FILE: &str = "web-audit.log";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: String,
    /// The account name; empty when nobody is signed in.
    pub user: String,
    /// e.g. `sign_in`, `sign_in_refused`, `locked_out`, `sign_out`,
    /// `record_added`, `record_changed`, `csrf_refused`, `user_added`.
    pub action: String,
    /// What it was done to: a record id, an account name.
    pub target: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug)]
pub struct Audit {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Audit {
    pub fn new(dir: &Path) -> Audit {
        Audit {
            path: dir.join(FILE),
            lock: Mutex::new(()),
        }
    }

    pub fn record(&self, user: &str, action: &str, target: &str, detail: &str) {
        let entry = Entry {
            at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .expect("formats"),
            user: user.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
        };
        let mut line = serde_json::to_vec(&entry).expect("serializes");
        line.push(b'\n');
        let _guard = self.lock.lock().expect("audit lock");
        let res = (|| -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            f.write_all(&line)?;
            f.sync_data()
        })();
        if let Err(e) = res {
            tracing::error!("cannot write the audit {}: {e}", self.path.display());
        }
    }

    /// Every entry, oldest first; damaged lines are skipped.
    pub fn entries(&self) -> Vec<Entry> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

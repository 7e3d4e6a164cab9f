//! # Refused changes, kept for inspection: `DIR/quarantine/{id}.json`
//!
//! When the hub refuses a node's batch, the raw changes are written here
//! (hex-encoded) with the node, the time, the reason, the document and the
//! records the changes would have produced, then synced to disk before the
//! node is told. Nothing refused disappears silently; nothing here is ever
//! merged. The same batch refused again keeps its first file.
//! `htx-hub quarantine DIR [--show ID]` reads them.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::validate::Refusal;

pub const DIR: &str = "quarantine";

/// One refused batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub node: String,
    pub time: String,
    pub reason: String,
    /// The document the refusal names.
    pub doc: String,
    /// Every document of the batch, with its raw changes in hex.
    pub docs: Vec<QuarantinedDoc>,
    /// The records the refused changes would have produced.
    pub records: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantinedDoc {
    pub doc: String,
    pub changes: Vec<String>,
}

impl Entry {
    pub fn change_count(&self) -> usize {
        self.docs.iter().map(|d| d.changes.len()).sum()
    }
    pub fn change_bytes(&self) -> usize {
        self.docs
            .iter()
            .flat_map(|d| &d.changes)
            .map(|c| c.len() / 2)
            .sum()
    }
}

/// Keeps a refused batch; returns its id.
pub fn keep(
    dir: &Path,
    node: &str,
    refusal: &Refusal,
    batch: &[(String, Vec<Vec<u8>>)],
) -> anyhow::Result<String> {
    // The id is a digest of the batch: a node that sends the same refused
    // batch on every sync fills one file, not the disk (the audit log still
    // has every refusal).
    let mut h = Sha256::new();
    for (doc, changes) in batch {
        h.update(doc.as_bytes());
        for c in changes {
            h.update((c.len() as u64).to_be_bytes());
            h.update(c);
        }
    }
    let id = format!("{node}-{}", &hex::encode(h.finalize())[..16]);
    let folder = dir.join(DIR);
    let path = folder.join(format!("{id}.json"));
    if path.exists() {
        return Ok(id);
    }
    let time = crate::hub::now_rfc3339();
    let entry = Entry {
        id: id.clone(),
        node: node.to_owned(),
        time,
        reason: refusal.to_string(),
        doc: refusal.doc.clone(),
        docs: batch
            .iter()
            .map(|(doc, changes)| QuarantinedDoc {
                doc: doc.clone(),
                changes: changes.iter().map(hex::encode).collect(),
            })
            .collect(),
        records: refusal.records.clone(),
    };
    std::fs::create_dir_all(&folder)?;
    let tmp = folder.join(format!("{id}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(&entry)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

/// Every quarantined batch, oldest first.
pub fn list(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let folder = dir.join(DIR);
    let mut out = Vec::new();
    let Ok(items) = std::fs::read_dir(&folder) else {
        return Ok(out);
    };
    for item in items {
        let path = item?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read(&path)?;
            let entry: Entry = serde_json::from_slice(&text)
                .with_context(|| format!("reading {}", path.display()))?;
            out.push(entry);
        }
    }
    out.sort_by(|a, b| (&a.time, &a.id).cmp(&(&b.time, &b.id)));
    Ok(out)
}

/// One quarantined batch by id.
pub fn show(dir: &Path, id: &str) -> anyhow::Result<Entry> {
    list(dir)?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| anyhow::anyhow!("no quarantined batch {id:?} / không có lô bị cách ly này"))
}

/// One line per quarantined batch, for a terminal.
pub fn print_list(entries: &[Entry]) {
    if entries.is_empty() {
        println!("nothing in quarantine / không có thay đổi nào bị cách ly");
        return;
    }
    for e in entries {
        println!(
            "{}  {}  {}  {} change(s)  {}",
            e.id,
            e.time,
            e.node,
            e.change_count(),
            e.reason
        );
    }
}

/// One quarantined batch: what, from whom, why, and what it would have made.
pub fn print_one(e: &Entry) -> anyhow::Result<()> {
    println!("id:       {}", e.id);
    println!("node:     {}", e.node);
    println!("time:     {}", e.time);
    println!("document: {}", e.doc);
    println!("reason:   {}", e.reason);
    println!(
        "changes:  {} ({} bytes)",
        e.change_count(),
        e.change_bytes()
    );
    println!("records they would have produced:");
    println!("{}", serde_json::to_string_pretty(&e.records)?);
    Ok(())
}

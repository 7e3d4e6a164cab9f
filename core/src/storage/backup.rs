//! # Online backup and restore of a store
//!
//! A backup is a redb file holding every key and value of a store as of
//! one read transaction: with redb (the default backend) that is a
//! consistent snapshot taken while the store keeps serving writes, so a
//! running hub or node is never stopped for it. (sled has no snapshot; its
//! copy is taken key range by key range: stop a sled node before backing
//! it up.) The file is written whole under a temporary name, synced, then
//! renamed, so a cut backup never looks like a good one.
//!
//! Restore puts a backup in place of a home directory's store, keeping the
//! store it replaces beside it. What a restored replica lacks comes back
//! from its peers at the next sync (see the README, "How sync works").

use std::path::{Path, PathBuf};

use super::{Backend, RedbStore, Result, Store, StoreError, WriteBatch};

/// What a backup or a restore copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub entries: usize,
    pub bytes: u64,
}

/// Writes a consistent copy of `store` to `out` (a new redb file). Refuses
/// to overwrite an existing file.
pub fn backup(store: &dyn Store, out: &Path) -> Result<Copied> {
    if out.exists() {
        return Err(StoreError::Backend(format!(
            "{} already exists; choose a new file name / tệp đã tồn tại, hãy chọn tên khác",
            out.display()
        )));
    }
    // One read transaction: the snapshot.
    let entries = store.scan(b"")?;
    let tmp = temp_name(out);
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let copy = RedbStore::create(&tmp)?;
        let mut batch = WriteBatch::default();
        for (k, v) in &entries {
            batch.put(k.clone(), v.clone());
        }
        copy.commit(batch)?;
        drop(copy);
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, out)?;
        Ok::<_, StoreError>(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Copied {
        entries: entries.len(),
        bytes: std::fs::metadata(out)?.len(),
    })
}

/// Replaces the store of home directory `dir` with the backup `from`. The
/// store it replaces is kept as `store.<backend>.before-restore`. Refused
/// while a process holds the store, and for a backup that cannot be read.
pub fn restore(backend: Backend, dir: &Path, from: &Path) -> Result<(Copied, Option<PathBuf>)> {
    let source = RedbStore::open(from)?;
    let entries = source.scan(b"")?;
    drop(source);
    let name = match backend {
        Backend::Redb => "store.redb",
        Backend::Sled => "store.sled",
    };
    let current = dir.join(name);
    let mut kept = None;
    if current.exists() {
        // Refused only while a process holds it: a damaged store is what
        // restores are for, and is set aside like a good one.
        if let Err(StoreError::Locked(p)) = super::open(backend, dir) {
            return Err(StoreError::Locked(p));
        }
        let aside = dir.join(format!("{name}.before-restore"));
        if aside.exists() {
            return Err(StoreError::Backend(format!(
                "{} is in the way (left by an earlier restore); move it elsewhere first / hãy di chuyển tệp này đi trước",
                aside.display()
            )));
        }
        std::fs::rename(&current, &aside)?;
        kept = Some(aside);
    }
    let store = super::create(backend, dir)?;
    let mut batch = WriteBatch::default();
    for (k, v) in &entries {
        batch.put(k.clone(), v.clone());
    }
    store.commit(batch)?;
    let bytes = store.size_on_disk()?;
    Ok((
        Copied {
            entries: entries.len(),
            bytes,
        },
        kept,
    ))
}

fn temp_name(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every commit writes a pair of keys: a consistent copy holds either
    /// both or neither of each pair, however the writer and the backup
    /// interleave.
    #[test]
    fn a_backup_taken_during_writes_holds_whole_commits_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::create(Backend::Redb, dir.path()).unwrap();
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    let mut b = WriteBatch::default();
                    b.put(format!("a/{i:04}"), vec![1; 64]);
                    b.put(format!("b/{i:04}"), vec![2; 64]);
                    store.commit(b).unwrap();
                }
            })
        };
        let mut copies = Vec::new();
        for n in 0..5 {
            let out = dir.path().join(format!("copy-{n}.redb"));
            backup(store.as_ref(), &out).unwrap();
            copies.push(out);
        }
        writer.join().unwrap();
        for out in &copies {
            let copy = RedbStore::open(out).unwrap();
            assert_eq!(
                copy.scan(b"a/").unwrap().len(),
                copy.scan(b"b/").unwrap().len()
            );
        }
        // Refuses to overwrite.
        assert!(backup(store.as_ref(), &copies[0]).is_err());
        // Restore into a fresh home, and over an existing store (kept aside).
        let last = dir.path().join("last.redb");
        backup(store.as_ref(), &last).unwrap();
        let home = tempfile::tempdir().unwrap();
        let (copied, kept) = restore(Backend::Redb, home.path(), &last).unwrap();
        assert_eq!((copied.entries, kept), (400, None));
        let (_, kept) = restore(Backend::Redb, home.path(), &copies[0]).unwrap();
        assert!(kept.unwrap().ends_with("store.redb.before-restore"));
        let restored = super::super::open(Backend::Redb, home.path()).unwrap();
        assert_eq!(
            restored.scan(b"").unwrap(),
            RedbStore::open(&copies[0]).unwrap().scan(b"").unwrap()
        );
        // A store held by a process is not replaced.
        assert!(matches!(
            restore(Backend::Redb, home.path(), &last),
            Err(StoreError::Locked(_))
        ));
    }
}

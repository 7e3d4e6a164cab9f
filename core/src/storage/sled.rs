//! sled 0.34.7: kept because it was asked for, and measured against the
//! same suite. Not the default: large values leak into blob files that are
//! never deleted, and `flush` ends in `sync_file_range`, not `fsync`.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::{Op, Result, Store, StoreError, WriteBatch};

pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
    // sled iterators take their read lock per item, so a batch could land in
    // the middle of a scan; this makes scans see one batch or the next.
    scan_guard: RwLock<()>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens an existing store; refuses a missing one, or one whose files
    /// are gone or empty (sled would silently start a new database there).
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(StoreError::Missing(shown));
        }
        if !path.is_dir() {
            return Err(StoreError::Unreadable {
                path: shown,
                reason: "not a sled directory".into(),
            });
        }
        // sled writes `conf` when it creates a database; `db` only fills
        // once something is flushed, so it may be empty but not missing.
        super::check_existing_file(&path.join("conf")).map_err(|e| match e {
            StoreError::Missing(p) => StoreError::Unreadable {
                path: shown.clone(),
                reason: format!("{p} is missing"),
            },
            other => other,
        })?;
        if !path.join("db").is_file() {
            return Err(StoreError::Unreadable {
                path: shown,
                reason: "its db file is missing".into(),
            });
        }
        Self::open_or_create(path)
    }

    /// Creates a new store (for `init`); an existing one is opened and
    /// checked as by [`SledStore::open`].
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Self::open(path);
        }
        Self::open_or_create(path)
    }

    fn open_or_create(path: &Path) -> Result<Self> {
        let try_open = || {
            sled::open(path).map_err(|e| match e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    StoreError::Locked(path.display().to_string())
                }
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    StoreError::Locked(path.display().to_string())
                }
                other => StoreError::Unreadable {
                    path: path.display().to_string(),
                    reason: other.to_string(),
                },
            })
        };
        // sled releases its file lock from a background thread after the
        // last handle is dropped: a reopen in the same process may have to
        // wait a moment for it.
        let mut db = try_open();
        for _ in 0..50 {
            match db {
                Err(StoreError::Locked(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    db = try_open();
                }
                _ => break,
            }
        }
        let db = db?;
        Ok(SledStore {
            db,
            path: path.to_owned(),
            scan_guard: RwLock::new(()),
        })
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let _consistent = self.scan_guard.read().expect("scan lock");
        self.db
            .scan_prefix(prefix)
            .map(|entry| {
                entry
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(backend)
            })
            .collect()
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        let mut b = sled::Batch::default();
        for op in batch.ops {
            match op {
                Op::Put(k, v) => b.insert(k, v),
                Op::Delete(k) => b.remove(k),
            }
        }
        {
            let _exclusive = self.scan_guard.write().expect("scan lock");
            self.db.apply_batch(b).map_err(backend)?;
        }
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(super::disk_usage(&self.path)?)
    }

    fn compact(&self) -> Result<()> {
        // sled has no compaction call; its segment cleaner runs on its own.
        Ok(())
    }
}

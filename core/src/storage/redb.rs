//! redb: a single file, copy-on-write B-trees, one `fdatasync` per commit.
//!
//! After a commit fails on an I/O error (a full disk), redb refuses every
//! later transaction ("Previous I/O error occurred. Please close and
//! re-open the database"). The store therefore closes and reopens its file
//! itself after such a failure (reopening runs redb's recovery), so that
//! the process that holds it, the hub above all, works again once the disk
//! has room, with no restart. Found by `tests/tests/disk_full.rs`.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use redb::{Database, DatabaseError, ReadableDatabase, TableDefinition};

use super::{Op, Result, Store, StoreError, Visit, WriteBatch};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// redb's own page cache. Its default (1 GiB) kept every page the hub wrote
/// or scanned: 40 MB after building the live view from the record index,
/// and 0.2 MB more for each round of 40 syncs, without end (heaptrack, the
/// hub's scale bench; BENCHMARKS.md, "Where the hub's memory went"). The
/// system's page cache keeps the file's pages anyway.
const CACHE_BYTES: usize = 32 << 20;

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES);
    b
}

pub struct RedbStore {
    // Read and write transactions share the lock; `compact` and reopening
    // need `&mut`. None while the file could not be opened again.
    db: RwLock<Option<Database>>,
    path: PathBuf,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedbStore {
    /// Opens an existing store; refuses a missing, empty or damaged file.
    pub fn open(path: &Path) -> Result<Self> {
        super::check_existing_file(path)?;
        let unreadable = |reason: String| StoreError::Unreadable {
            path: path.display().to_string(),
            reason,
        };
        let db = builder().open(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.display().to_string()),
            other => unreadable(other.to_string()),
        })?;
        // Every store `create` made has the table: a redb file without it
        // is not ours.
        {
            let tx = db.begin_read().map_err(|e| unreadable(e.to_string()))?;
            tx.open_table(KV).map_err(|e| unreadable(e.to_string()))?;
        }
        Ok(RedbStore {
            db: RwLock::new(Some(db)),
            path: path.to_owned(),
        })
    }

    /// Creates a new store (for `init`); an existing file is opened and
    /// checked as by [`RedbStore::open`], never reset.
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Self::open(path);
        }
        let db = builder().create(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.display().to_string()),
            other => backend(other),
        })?;
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(KV).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(RedbStore {
            db: RwLock::new(Some(db)),
            path: path.to_owned(),
        })
    }
}

impl RedbStore {
    /// The open database; reopened first if an earlier failure closed it.
    fn db(&self) -> Result<RwLockReadGuard<'_, Option<Database>>> {
        {
            let guard = self.db.read().expect("store lock");
            if guard.is_some() {
                return Ok(guard);
            }
        }
        self.reopen();
        let guard = self.db.read().expect("store lock");
        if guard.is_none() {
            return Err(backend(format!(
                "the store at {} could not be opened again after an I/O error / không mở lại được kho dữ liệu",
                self.path.display()
            )));
        }
        Ok(guard)
    }

    /// Closes the file and opens it again (redb's recovery runs).
    fn reopen(&self) {
        let mut guard = self.db.write().expect("store lock");
        // The old handle holds the file's lock: it goes first.
        drop(guard.take());
        match builder().open(&self.path) {
            Ok(db) => *guard = Some(db),
            Err(e) => tracing::error!(
                "cannot open the store at {} again: {e}",
                self.path.display()
            ),
        }
    }

    fn try_commit(db: &Database, batch: &WriteBatch) -> Result<()> {
        let tx = db.begin_write().map_err(backend)?;
        {
            let mut table = tx.open_table(KV).map_err(backend)?;
            for op in &batch.ops {
                match op {
                    Op::Put(k, v) => {
                        table.insert(k.as_slice(), v.as_slice()).map_err(backend)?;
                    }
                    Op::Delete(k) => {
                        table.remove(k.as_slice()).map_err(backend)?;
                    }
                }
            }
        }
        // Default durability: the commit returns after fdatasync.
        tx.commit().map_err(backend)
    }
}

impl Store for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let guard = self.db()?;
        let db = guard.as_ref().expect("open");
        let tx = db.begin_read().map_err(backend)?;
        let table = tx.open_table(KV).map_err(backend)?;
        Ok(table.get(key).map_err(backend)?.map(|v| v.value().to_vec()))
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let guard = self.db()?;
        let db = guard.as_ref().expect("open");
        let tx = db.begin_read().map_err(backend)?;
        let table = tx.open_table(KV).map_err(backend)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Reads the entries from one read transaction as it gives them (no
    /// copy): 226,000 index entries were 60 MB copied at once. The store's
    /// handle is held meanwhile, so a reopen after an I/O error waits for
    /// the reader.
    fn for_each(&self, prefix: &[u8], f: &mut Visit<'_>) -> Result<()> {
        let guard = self.db()?;
        let db = guard.as_ref().expect("open");
        let tx = db.begin_read().map_err(backend)?;
        let table = tx.open_table(KV).map_err(backend)?;
        for entry in table.range(prefix..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            if !k.value().starts_with(prefix) || f(k.value(), v.value()).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        let result = {
            let guard = self.db()?;
            Self::try_commit(guard.as_ref().expect("open"), &batch)
        };
        if result.is_err() {
            // Nothing of the batch is kept (redb's commit is atomic); the
            // next transaction gets a freshly opened file.
            self.reopen();
        }
        result
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(super::disk_usage(&self.path)?)
    }

    fn compact(&self) -> Result<()> {
        drop(self.db()?);
        let mut guard = self.db.write().expect("store lock");
        let db = guard
            .as_mut()
            .ok_or_else(|| backend("the store is closed"))?;
        db.compact().map_err(backend)?;
        Ok(())
    }
}

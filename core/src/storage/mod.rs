//! # Storage: one small trait, several embedded databases
//!
//! Everything HTX Sync keeps on disk goes through [`Store`]: an ordered
//! key-value map with atomic, durable batches. Documents, sync state and
//! node bookkeeping are laid out on top of it by [`crate::replica`].
//!
//! Backends: [`redb`] (the default: one fsync per commit, stays near the
//! live size), [`sled`] (asked for by name; kept, measured, and off by
//! default because its disk use grows without bound and its flush is not a
//! full fsync, see the README), and [`memory`] (tests only). The same
//! conformance suite (`core/tests/storage.rs`) runs on each.

pub mod backup;
mod memory;
mod redb;
mod sled;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

pub use memory::MemoryStore;
pub use redb::RedbStore;
pub use sled::SledStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {0} is in use by another process (is `run` already running on this directory?)"
    )]
    Locked(String),
    #[error(
        "no store at {0}; a store is created only by `init`, nothing was created / không có kho dữ liệu, chỉ lệnh `init` mới tạo kho"
    )]
    Missing(String),
    #[error(
        "the store at {path} is empty or unreadable ({reason}); nothing was changed: restore it from a backup, or set the directory up again with `init` in a new directory / kho dữ liệu trống hoặc hỏng, không có gì bị thay đổi"
    )]
    Unreadable { path: String, reason: String },
    #[error("storage error: {0}")]
    Backend(String),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What [`Store::for_each`] gives each entry to (key, value); it breaks
/// to stop the reading.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// An ordered key-value store shared by every task of a process.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Gives every entry whose key starts with `prefix` to `f`, in key
    /// order, as of one point in time, until `f` breaks: for a reader
    /// that keeps a little of each entry (the record index read whole),
    /// without a copy of them all at once. A backend that cannot read
    /// while it gives (this default) copies them first, as [`Store::scan`].
    fn for_each(&self, prefix: &[u8], f: &mut Visit<'_>) -> Result<()> {
        for (k, v) in self.scan(prefix)? {
            if f(&k, &v).is_break() {
                break;
            }
        }
        Ok(())
    }
    /// Applies all of `batch` or none of it, and returns only once it would
    /// survive a crash of the process (and, where the backend allows, of the
    /// machine).
    fn commit(&self, batch: WriteBatch) -> Result<()>;
    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64>;
    /// Gives free space back to the file system where the backend can.
    fn compact(&self) -> Result<()>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// Puts and deletes applied together by [`Store::commit`].
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub ops: Vec<Op>,
}

impl WriteBatch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Put(key.into(), value.into()));
        self
    }
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete(key.into()));
        self
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
    }
}

/// Which embedded database holds a node's or the hub's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Redb,
    Sled,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "redb" => Ok(Backend::Redb),
            "sled" => Ok(Backend::Sled),
            other => Err(format!(
                "unknown storage backend {other:?} (expected redb or sled)"
            )),
        }
    }
}

/// Opens the existing store of a node or hub home directory. A missing,
/// empty or unreadable store is refused, never replaced by a new empty one:
/// an empty replica would look like a fresh node, and the hub would forget
/// every node's sync state and actor bindings.
pub fn open(backend: Backend, dir: &Path) -> Result<Arc<dyn Store>> {
    Ok(match backend {
        Backend::Redb => Arc::new(RedbStore::open(&dir.join("store.redb"))?),
        Backend::Sled => Arc::new(SledStore::open(&dir.join("store.sled"))?),
    })
}

/// Creates the store of a new home directory, for `init` only; a store that
/// is already there is opened as by [`open`] (so it is checked, not reset).
pub fn create(backend: Backend, dir: &Path) -> Result<Arc<dyn Store>> {
    Ok(match backend {
        Backend::Redb => Arc::new(RedbStore::create(&dir.join("store.redb"))?),
        Backend::Sled => Arc::new(SledStore::create(&dir.join("store.sled"))?),
    })
}

/// Refuses a store file that is missing or empty (0 bytes: a crashed copy,
/// a bad restore), before a backend gets the chance to initialise it.
pub(crate) fn check_existing_file(path: &Path) -> Result<()> {
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::Missing(shown)),
        Err(e) => Err(StoreError::Unreadable {
            path: shown,
            reason: e.to_string(),
        }),
        Ok(m) if !m.is_file() => Err(StoreError::Unreadable {
            path: shown,
            reason: "not a file".into(),
        }),
        Ok(m) if m.len() == 0 => Err(StoreError::Unreadable {
            path: shown,
            reason: "the file is 0 bytes".into(),
        }),
        Ok(_) => Ok(()),
    }
}

/// Bytes used by every file under `path` (a file or a directory).
pub(crate) fn disk_usage(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += disk_usage(&entry?.path())?;
    }
    Ok(total)
}

//! # The stored format: one version marker per store, and the migrations to it
//!
//! Each stored value carries a format byte of its own ([`crate::replica`],
//! [`crate::index`]), but what a store holds as a whole (which keys exist,
//! what must be derived from what) has a version too: [`CURRENT`], kept in
//! the store under `m\0format` (4 bytes, big-endian, then the program that
//! wrote it, e.g. `htx-hub 0.2.0`). A store with no marker is format 0:
//! every store written before markers existed (0.1.0).
//!
//! [`open`] is how the node and the hub open their replica:
//! 1. it reads the marker *before anything is written*; a store of a newer
//!    format than this build reads is refused ([`FormatError::Newer`],
//!    naming both formats, the program that wrote it and the one to
//!    upgrade) and left exactly as it was;
//! 2. it loads the replica;
//! 3. it runs, in order, every migration from the store's version to
//!    [`CURRENT`]. Each migration and the marker of the version it produces
//!    go in **one atomic commit**: a crash or a failed commit midway leaves
//!    the store at the version before that step, and the next opening runs
//!    the step again.
//!
//! This is the pattern of garage's `util/migrate.rs` (a version marker and
//! a migrate path), for a whole store rather than for each value.
//!
//! ## Adding a migration
//! When a release changes what a store must hold (a new derived table, a
//! key layout, a value's encoding that old code cannot read):
//! 1. append a [`Migration`] to [`MIGRATIONS`] whose `to` is the next
//!    number, and raise [`CURRENT`] to it (a unit test checks they agree);
//! 2. its `run` only *adds operations to the batch it is given*: it reads
//!    the store as the previous version left it and never commits itself,
//!    so it is all-or-nothing with its marker. It must also be correct when
//!    run on a store that a crash left just before its own commit (that is
//!    the same store, so "read, then write everything" is enough);
//! 3. it sees the replica as loaded by this build: a migration that changes
//!    how documents themselves are stored must read the old keys itself;
//! 4. test it on a store of the previous version made by the test (see
//!    `tests/tests/upgrades.rs`), including a failed commit and a retry;
//! 5. say in `deploy/README.md` (Upgrade) that the release migrates, and
//!    that the previous build refuses a migrated store (no downgrade except
//!    by restoring the backup taken before the upgrade).
//!
//! Never edit or reorder a migration that has shipped: stores in the field
//! are at every version in between.

use std::sync::Arc;

use automerge::ActorId;

use crate::index::{self, IndexError};
use crate::replica::{Options, Replica, ReplicaError};
use crate::storage::{RedbStore, Store, StoreError, WriteBatch};

/// The stored format this build writes and reads (and every older one it
/// migrates from).
pub const CURRENT: u32 = 1;

/// Where the marker is kept (the replica's metadata, `m\0{name}`).
pub const KEY: &[u8] = b"m\0format";

/// Which program opens the store: the node and the hub keep the same
/// documents, but the hub keeps the record index as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Node,
    Hub,
}

impl Role {
    /// The binary an administrator runs (and upgrades).
    pub fn program(self) -> &'static str {
        match self {
            Role::Node => "htx-node",
            Role::Hub => "htx-hub",
        }
    }

    /// `htx-hub 0.1.0`: written beside the marker.
    fn writer(self) -> String {
        format!("{} {}", self.program(), env!("CARGO_PKG_VERSION"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(
        "kho dữ liệu có định dạng {found} (do {writer} ghi), mới hơn định dạng {supported} mà {program} {version} đọc được; không có gì bị thay đổi: hãy nâng cấp {program} lên phiên bản của {writer} hoặc mới hơn / the store has format {found} (written by {writer}), newer than format {supported} that {program} {version} reads; nothing was changed: upgrade {program} to the version of {writer} or later"
    )]
    Newer {
        found: u32,
        supported: u32,
        writer: String,
        program: &'static str,
        version: &'static str,
    },
    #[error(
        "dấu định dạng của kho dữ liệu bị hỏng ({0} byte); không có gì bị thay đổi: hãy khôi phục từ bản sao lưu / the store's format marker is damaged ({0} bytes); nothing was changed: restore the store from a backup"
    )]
    DamagedMarker(usize),
    #[error(
        "chuyển kho dữ liệu từ định dạng {from} sang {to} thất bại, kho vẫn ở định dạng {from}; mở lại sẽ chạy lại bước này / migrating the store from format {from} to {to} failed ({source}); the store is still at format {from}, and opening it again runs this step again"
    )]
    Migration {
        from: u32,
        to: u32,
        #[source]
        source: Box<FormatError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// A step from format `to - 1` to format `to`.
pub struct Migration {
    pub to: u32,
    /// What it does, for the log.
    pub what: &'static str,
    /// Adds the step's writes to the batch (committed with the new marker).
    pub run: fn(&mut Replica, Role, &mut WriteBatch) -> Result<(), FormatError>,
}

/// Every migration, oldest first; `MIGRATIONS[i].to == i + 1`.
pub const MIGRATIONS: &[Migration] = &[Migration {
    to: 1,
    what: "format markers; the hub's record index built in the migration (before: an \"is it indexed?\" check)",
    run: to_1,
}];

/// 0 → 1. A 0.1.0 hub indexed its records when it first opened a store and
/// marked that with `m\0record_index` = the index's format: such an index
/// is kept, any other is built again from the documents. The old mark goes;
/// this marker replaces it. A node's store only gets the marker.
fn to_1(replica: &mut Replica, role: Role, batch: &mut WriteBatch) -> Result<(), FormatError> {
    const OLD_MARK: &str = "record_index";
    if role == Role::Hub && replica.meta(OLD_MARK)?.as_deref() != Some(&[index::FORMAT]) {
        index::rebuild(replica, batch)?;
    }
    batch.delete(b"m\0record_index".to_vec());
    Ok(())
}

/// The store's format version: 0 for a store without a marker.
pub fn stored(store: &dyn Store) -> Result<u32, FormatError> {
    Ok(read_marker(store)?.map_or(0, |(v, _)| v))
}

fn read_marker(store: &dyn Store) -> Result<Option<(u32, String)>, FormatError> {
    let Some(v) = store.get(KEY)? else {
        return Ok(None);
    };
    let (num, by) = v
        .split_first_chunk::<4>()
        .ok_or(FormatError::DamagedMarker(v.len()))?;
    Ok(Some((
        u32::from_be_bytes(*num),
        String::from_utf8_lossy(by).into_owned(),
    )))
}

/// Refuses a store this build cannot read ([`FormatError::Newer`]) without
/// writing anything; otherwise returns its version. For a backup about to
/// be restored, too.
pub fn check(store: &dyn Store, role: Role) -> Result<u32, FormatError> {
    check_against(store, role, CURRENT)
}

fn check_against(store: &dyn Store, role: Role, supported: u32) -> Result<u32, FormatError> {
    match read_marker(store)? {
        Some((found, writer)) if found > supported => Err(FormatError::Newer {
            found,
            supported,
            writer,
            program: role.program(),
            version: env!("CARGO_PKG_VERSION"),
        }),
        marker => Ok(marker.map_or(0, |(v, _)| v)),
    }
}

/// As [`check`], for a backup file (a redb store, see
/// [`crate::storage::backup`]) before a restore puts it in place.
pub fn check_file(path: &std::path::Path, role: Role) -> Result<u32, FormatError> {
    check(&RedbStore::open(path)?, role)
}

/// What [`open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The store's format before opening.
    pub was: u32,
    /// The migrations run (their `what`), in order; empty if none was due.
    pub migrated: Vec<&'static str>,
}

/// Opens the replica kept in `store` for `role`: refuses a newer format,
/// then migrates an older one to [`CURRENT`], step by step (module docs).
pub fn open(store: Arc<dyn Store>, role: Role) -> Result<(Replica, Opened), FormatError> {
    open_migrating(
        store,
        role,
        ActorId::random(),
        Options::EVERYTHING,
        MIGRATIONS,
    )
}

/// As [`open`], with the replica's [`Options`] (the hub: documents loaded
/// on first use, a bounded cache).
pub fn open_with_options(
    store: Arc<dyn Store>,
    role: Role,
    options: Options,
) -> Result<(Replica, Opened), FormatError> {
    open_migrating(store, role, ActorId::random(), options, MIGRATIONS)
}

/// As [`open_with_options`], with the replica's actor id given (the
/// deterministic simulation; see [`Replica::open_as`]).
pub fn open_as_with_options(
    store: Arc<dyn Store>,
    role: Role,
    actor: ActorId,
    options: Options,
) -> Result<(Replica, Opened), FormatError> {
    open_migrating(store, role, actor, options, MIGRATIONS)
}

/// Adds to `batch` the marker of the current format: for a store written
/// whole by a program that kept it current as it went (a benchmark's
/// province written in bulk, its index with it).
pub fn put_current(batch: &mut WriteBatch, role: Role) {
    batch.put(KEY.to_vec(), marker(CURRENT, role));
}

/// As [`open`], with the replica's actor id given (the deterministic
/// simulation; see [`Replica::open_as`]).
pub fn open_as(
    store: Arc<dyn Store>,
    role: Role,
    actor: ActorId,
) -> Result<(Replica, Opened), FormatError> {
    open_migrating(store, role, actor, Options::EVERYTHING, MIGRATIONS)
}

fn open_migrating(
    store: Arc<dyn Store>,
    role: Role,
    actor: ActorId,
    options: Options,
    migrations: &[Migration],
) -> Result<(Replica, Opened), FormatError> {
    let target = migrations.last().map_or(0, |m| m.to);
    let was = check_against(store.as_ref(), role, target)?;
    let mut replica = Replica::open_as_with(store, actor, options)?;
    let mut migrated = Vec::new();
    for m in migrations.iter().filter(|m| m.to > was) {
        let mut step = || -> Result<(), FormatError> {
            let mut batch = WriteBatch::default();
            (m.run)(&mut replica, role, &mut batch)?;
            batch.put(KEY.to_vec(), marker(m.to, role));
            replica.commit(batch)?;
            Ok(())
        };
        step().map_err(|e| FormatError::Migration {
            from: m.to - 1,
            to: m.to,
            source: Box::new(e),
        })?;
        tracing::info!(
            "migrated the store from format {} to {}: {} / đã chuyển kho dữ liệu sang định dạng {}",
            m.to - 1,
            m.to,
            m.what,
            m.to
        );
        migrated.push(m.what);
    }
    Ok((replica, Opened { was, migrated }))
}

fn marker(version: u32, role: Role) -> Vec<u8> {
    [&version.to_be_bytes()[..], role.writer().as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::storage::{self, MemoryStore};

    #[test]
    fn the_list_of_migrations_ends_at_the_current_format() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.to as usize, i + 1, "{}", m.what);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.to), Some(CURRENT));
    }

    /// A store whose commits fail while `fail` is set.
    struct Failing {
        inner: MemoryStore,
        fail: AtomicBool,
    }
    impl Store for Failing {
        fn get(&self, key: &[u8]) -> storage::Result<Option<Vec<u8>>> {
            self.inner.get(key)
        }
        fn scan(&self, prefix: &[u8]) -> storage::Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.inner.scan(prefix)
        }
        fn commit(&self, batch: WriteBatch) -> storage::Result<()> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Io(std::io::Error::from_raw_os_error(28)));
            }
            self.inner.commit(batch)
        }
        fn size_on_disk(&self) -> storage::Result<u64> {
            self.inner.size_on_disk()
        }
        fn compact(&self) -> storage::Result<()> {
            self.inner.compact()
        }
    }

    fn step_1(_: &mut Replica, _: Role, b: &mut WriteBatch) -> Result<(), FormatError> {
        b.put(b"m\0step1".to_vec(), b"done".to_vec());
        Ok(())
    }
    fn step_2(r: &mut Replica, _: Role, b: &mut WriteBatch) -> Result<(), FormatError> {
        // Depends on what step 1 committed: steps run in order.
        let one = r.meta("step1")?.expect("step 1 ran before");
        b.put(b"m\0step2".to_vec(), [one, b" twice".to_vec()].concat());
        Ok(())
    }
    const TWO: &[Migration] = &[
        Migration {
            to: 1,
            what: "one",
            run: step_1,
        },
        Migration {
            to: 2,
            what: "two",
            run: step_2,
        },
    ];

    #[test]
    fn steps_run_in_order_each_committed_with_its_marker_and_a_failed_one_runs_again() {
        let store = Arc::new(Failing {
            inner: MemoryStore::default(),
            fail: AtomicBool::new(false),
        });
        // Only step 1 is known: the store ends at 1.
        let (_, opened) = open_migrating(
            store.clone(),
            Role::Node,
            ActorId::random(),
            Options::EVERYTHING,
            &TWO[..1],
        )
        .expect("step 1");
        assert_eq!((opened.was, opened.migrated), (0, vec!["one"]));
        assert_eq!(stored(store.as_ref()).unwrap(), 1);

        // Step 2's commit fails: the store stays at 1, without step 2's write.
        store.fail.store(true, Ordering::SeqCst);
        let e = open_migrating(
            store.clone(),
            Role::Node,
            ActorId::random(),
            Options::EVERYTHING,
            TWO,
        )
        .err()
        .expect("failed");
        assert!(
            matches!(e, FormatError::Migration { from: 1, to: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("vẫn ở định dạng 1"), "{e}");
        assert_eq!(stored(store.as_ref()).unwrap(), 1);
        assert_eq!(store.get(b"m\0step2").unwrap(), None);

        // The retry runs step 2 only, once.
        store.fail.store(false, Ordering::SeqCst);
        let (_, opened) = open_migrating(
            store.clone(),
            Role::Node,
            ActorId::random(),
            Options::EVERYTHING,
            TWO,
        )
        .expect("retry");
        assert_eq!((opened.was, opened.migrated), (1, vec!["two"]));
        assert_eq!(stored(store.as_ref()).unwrap(), 2);
        assert_eq!(
            store.get(b"m\0step2").unwrap().as_deref(),
            Some(&b"done twice"[..])
        );
        let (_, opened) = open_migrating(
            store.clone(),
            Role::Node,
            ActorId::random(),
            Options::EVERYTHING,
            TWO,
        )
        .unwrap();
        assert!(opened.migrated.is_empty());
    }

    #[test]
    fn a_newer_store_is_refused_naming_both_formats_and_the_program_to_upgrade() {
        let store = Arc::new(MemoryStore::default());
        let mut b = WriteBatch::default();
        b.put(
            KEY.to_vec(),
            [&2u32.to_be_bytes()[..], b"htx-node 0.2.0"].concat(),
        );
        b.put(b"d\0x\0s".to_vec(), b"not even a document".to_vec());
        store.commit(b).unwrap();
        let before = store.scan(b"").unwrap();
        let e = open_migrating(
            store.clone(),
            Role::Node,
            ActorId::random(),
            Options::EVERYTHING,
            &TWO[..1],
        )
        .err()
        .expect("refused");
        let text = e.to_string();
        for part in [
            "định dạng 2",
            "htx-node 0.2.0",
            "nâng cấp htx-node",
            "format 1",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        // Refused before the replica loaded (which would have set the
        // unreadable document aside): nothing changed.
        assert_eq!(store.scan(b"").unwrap(), before);
    }

    /// A 0.1.0 hub store: documents, maybe an index with its own mark.
    fn hub_store_0(index_mark: Option<u8>, stale: bool) -> (Arc<MemoryStore>, Vec<String>) {
        let store = Arc::new(MemoryStore::default());
        let mut r = Replica::open(store.clone()).unwrap();
        let mut ids = Vec::new();
        for name in ["HTX Hạ Long", "HTX 12"] {
            let mut rec = crate::schema::record_from_strings(
                "cooperative",
                [("type", "HTX"), ("name", name), ("unit", "13633")],
            )
            .unwrap();
            rec.id = crate::schema::new_id();
            r.change("u/2023/13633", |d| crate::docs::put_record(d, &rec))
                .unwrap()
                .unwrap();
            ids.push(rec.id);
        }
        let mut b = WriteBatch::default();
        if let Some(m) = index_mark {
            index::rebuild(&mut r, &mut b).unwrap();
            b.put(b"m\0record_index".to_vec(), vec![m]);
        }
        if stale {
            b.put(b"r\0u/2023/13633\0gone".to_vec(), b"\x01{}".to_vec());
        }
        r.commit(b).unwrap();
        ids.sort();
        (store, ids)
    }

    fn indexed_ids(store: &dyn Store) -> Vec<String> {
        let mut ids: Vec<String> = index::read_all(store)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn format_0_hub_stores_get_an_index_that_says_what_the_documents_say() {
        // Never indexed; indexed by 0.1.0 (kept); indexed in an older index
        // format, with an entry no document has (built again).
        for (mark, stale) in [(None, false), (Some(index::FORMAT), false), (Some(0), true)] {
            let (store, ids) = hub_store_0(mark, stale);
            let (_, opened) = open(store.clone(), Role::Hub).unwrap();
            assert_eq!(opened.was, 0);
            assert_eq!(indexed_ids(store.as_ref()), ids, "{mark:?}");
            assert_eq!(store.get(b"m\0record_index").unwrap(), None);
            assert_eq!(stored(store.as_ref()).unwrap(), CURRENT);
            let (_, again) = open(store.clone(), Role::Hub).unwrap();
            assert!(again.migrated.is_empty());
        }
        // A node keeps no index.
        let (store, _) = hub_store_0(None, false);
        open(store.clone(), Role::Node).unwrap();
        assert!(store.scan(b"r\0").unwrap().is_empty());
        assert_eq!(stored(store.as_ref()).unwrap(), CURRENT);
    }

    #[test]
    fn a_damaged_marker_is_refused() {
        let store = Arc::new(MemoryStore::default());
        let mut b = WriteBatch::default();
        b.put(KEY.to_vec(), vec![0, 1]);
        store.commit(b).unwrap();
        let e = open(store.clone(), Role::Hub).err().expect("refused");
        assert!(matches!(e, FormatError::DamagedMarker(2)), "{e}");
    }
}

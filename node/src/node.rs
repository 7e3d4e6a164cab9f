//! # The node's state: one cheap handle per process
//!
//! [`Node`] holds the replica of this node's units, its bundle and its
//! sync status. Officers' writes are validated here (schema, unit, references)
//! and return only once on disk. Nothing here knows about gRPC.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{ROOT, ReadDoc};
use htx_core::docs;
use htx_core::format::{self, FormatError, Role};
use htx_core::pki::Bundle;
use htx_core::plan::Plan;
use htx_core::replica::{Replica, ReplicaError};
use htx_core::schema::{self, FieldError, FieldType, Record, Value};
use htx_core::storage::{self, StoreError, WriteBatch};
use htx_core::units::Hierarchy;
use serde::{Deserialize, Serialize};

use crate::config::NodeConfig;
use crate::locations::{Known, Loc, Locations};

/// The peer name under which the node keeps its sync state with the hub.
pub const HUB_PEER: &str = "hub";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Every bad record of a write, numbered from 1 in the order given.
    #[error("{}", .0.iter().map(|(i, e)| format!("record {i}: {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<(usize, FieldError)>),
    #[error("no record with id {0:?} on this node / không tìm thấy bản ghi")]
    NotFound(String),
    /// Deleting or restoring a record needs a reason, and a short one.
    #[error(
        "cần ghi lý do (tối đa {max} ký tự) / a reason is required (at most {max} characters)",
        max = htx_core::schema::MAX_REASON_CHARS
    )]
    Reason,
    /// A conflict was settled by someone else in the meantime.
    #[error(
        "xung đột này đã được giải quyết hoặc đã thay đổi; hãy xem lại bản ghi / this conflict was settled or has changed meanwhile; look at the record again"
    )]
    Settled,
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// The store is of a newer format, or its migration failed.
    #[error(transparent)]
    Format(Box<FormatError>),
    /// Every bad row of an import (unreadable, or refused by the checks
    /// here), by its row number in the file.
    #[error("{}", .0.iter().map(|(i, e)| format!("row {i}: {e}")).collect::<Vec<_>>().join("\n"))]
    BadRows(Vec<(u64, String)>),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store refused a write's commit; what is on disk was checked
    /// afterwards (see [`Written`]).
    #[error("{}", commit_failed(.written, .total, .error))]
    CommitFailed {
        written: Written,
        total: usize,
        error: String,
    },
    /// An earlier commit failed and the store could not be opened again.
    #[error(
        "the store could not be opened again after a failed write ({0}); free disk space or restart `htx-node run` / không mở lại được kho dữ liệu sau lỗi ghi"
    )]
    StoreUnavailable(String),
    #[error("{0}")]
    Setup(String),
}

/// Boxed: the format errors are large and rare.
impl From<FormatError> for NodeError {
    fn from(e: FormatError) -> Self {
        NodeError::Format(Box::new(e))
    }
}

/// A row of an import file that could not be read into a record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unreadable {
    pub row: u64,
    /// Its id column, if it had one.
    pub id: String,
    pub reason: String,
}

/// The officer making a change through the pages: recorded with the node
/// (`recorded_by`, `changed_by`, `deleted_by` are `officer@node`), and
/// held to their units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Officer {
    pub name: String,
    /// The units the officer may change (and those below); empty: all of
    /// this node's.
    pub units: Vec<String>,
}

impl Officer {
    /// Who a change is recorded as: `officer@node`, or the node alone.
    fn who(officer: Option<&Officer>, node: &str) -> String {
        match officer {
            Some(o) => format!("{}@{node}", o.name),
            None => node.to_owned(),
        }
    }

    /// Refuses a unit outside the officer's.
    fn check_unit(
        officer: Option<&Officer>,
        version: &htx_core::units::UnitVersion,
        unit: &str,
    ) -> Result<(), FieldError> {
        match officer {
            Some(o) if !o.units.is_empty() && !o.units.iter().any(|u| version.within(unit, u)) => {
                Err(FieldError::BadUnit(format!(
                    "unit {unit} is outside the units of officer {} ({}) / đơn vị nằm ngoài phạm vi được giao cho cán bộ",
                    o.name,
                    o.units.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Bad records of a write, numbered from 1 in the order given.
type BadRecords = Vec<(usize, FieldError)>;

/// What reading the store back after a failed commit showed.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Every record of the write is there, as written.
    All,
    /// None is.
    Nothing,
    /// This many are (a commit is atomic, so this means a damaged store).
    Some(usize),
    /// The store could not be read back, for this reason.
    Unknown(String),
}

fn commit_failed(written: &Written, total: &usize, error: &str) -> String {
    match written {
        Written::All => format!(
            "the store reported an error ({error}), but reading it back shows all {total} record(s) there: they were written / kho dữ liệu báo lỗi nhưng kiểm tra lại cho thấy đã ghi đủ {total} bản ghi"
        ),
        Written::Nothing => format!(
            "the store refused the write ({error}); reading it back shows none of the {total} record(s) there: nothing was written / kho dữ liệu từ chối ghi; đã kiểm tra lại: không ghi bản ghi nào"
        ),
        Written::Some(n) => format!(
            "the store refused the write ({error}); reading it back shows {n} of the {total} record(s) there: partly written; once the problem is fixed, run the same import again: it adds nothing twice / chỉ ghi được {n} trên {total} bản ghi; hãy nhập lại cùng tệp sau khi khắc phục, không bị trùng"
        ),
        Written::Unknown(why) => format!(
            "the store refused the write ({error}) and could not be read back ({why}): unknown whether the {total} record(s) were written; check with `htx-node export` once the problem is fixed / không rõ đã ghi hay chưa; hãy kiểm tra bằng `htx-node export` sau khi khắc phục"
        ),
    }
}

/// What `htx-node status` shows; persisted between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SyncStatus {
    pub last_attempt: String,
    pub last_success: String,
    pub last_error: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Records the hub refused in the last sync, for the officer to fix;
    /// the reasons are in `last_error`.
    #[serde(default)]
    pub refused_records: Vec<String>,
    /// Changes sent to the hub again because it had lost them after
    /// acknowledging them (a hub restored from a backup), in all.
    #[serde(default)]
    pub recovered_changes: u64,
    /// When that last happened, and what was done.
    #[serde(default)]
    pub last_recovery: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub node: String,
    pub unit: String,
    pub hub: String,
    pub documents: usize,
    pub records: usize,
    pub documents_not_at_hub: usize,
    /// Documents that failed their checks when the store was opened and
    /// were set aside (kept under the store's quarantine prefix).
    pub damaged_documents: Vec<String>,
    #[serde(flatten)]
    pub sync: SyncStatus,
}

/// A node's certificate and private key (PEM), and the certificate's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub cert: String,
    pub key: String,
    pub issued_at: String,
    pub expires_at: String,
}

impl From<&Bundle> for Credentials {
    fn from(b: &Bundle) -> Self {
        Credentials {
            cert: b.cert.clone(),
            key: b.key.clone(),
            issued_at: b.cert_issued_at.clone(),
            expires_at: b.cert_expires_at.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Node(Arc<Inner>);

struct Inner {
    dir: PathBuf,
    config: NodeConfig,
    bundle: Bundle,
    replica: Mutex<Replica>,
    /// The node's certificate and key: renewed while the node runs.
    credentials: std::sync::RwLock<Credentials>,
    /// One sync session at a time, whoever asks (the loop or `sync --once`).
    session: tokio::sync::Mutex<()>,
    /// Wakes the sync loop early, e.g. after a local write.
    wake: tokio::sync::Notify,
    /// The plan and unit lists last read from the hub's reference document,
    /// with that document's heads.
    reference: Mutex<Option<(Vec<automerge::ChangeHash>, Plan, &'static Hierarchy)>>,
    /// Set when a commit failed and the store could not be opened again;
    /// the replica then holds nothing and writes are refused until a reopen
    /// succeeds.
    unavailable: Mutex<Option<String>>,
    /// Where each record is; locked after the replica.
    locations: Mutex<Locations>,
    /// Records read per document, with the heads they were read at (pages
    /// read them on every request); locked after the replica.
    records: Mutex<RecordCache>,
}

/// Records per document, kept while the document's heads stay the same,
/// up to [`RecordCache::MAX`] records in all: reading a record out of
/// Automerge costs about 0.1 ms, so a page over a few hundred records
/// would otherwise spend most of its time re-reading what has not changed.
#[derive(Default)]
struct RecordCache {
    docs: HashMap<String, (Vec<automerge::ChangeHash>, Arc<Vec<Record>>)>,
    held: usize,
}

impl RecordCache {
    const MAX: usize = 50_000;
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// What a node's figures say until it has synced once: it has not yet
/// received the facts about its people from records it does not hold.
pub const INCOMPLETE: &str = "chưa nhận được từ máy chủ tỉnh số liệu về người của đơn vị tham gia hoạt động ngoài phạm vi máy trạm (ví dụ lớp tập huấn cấp tỉnh): số liệu có thể chưa đầy đủ / not yet received from the hub: the facts about this node's people in records it does not hold (e.g. a province-level training); figures may be incomplete";

impl Node {
    pub const BUNDLE_FILE: &'static str = "bundle.json";

    /// Opens the node kept in `dir` (set up by `htx-node init`).
    pub fn open(dir: &Path) -> Result<Node, NodeError> {
        Self::open_with(dir, |config| Ok(storage::open(config.backend, dir)?))
    }

    /// As [`Node::open`], with the store `open_store` gives (e.g. one that
    /// wraps the configured store to inject faults in tests). After a failed
    /// commit the node reopens the configured store itself.
    pub fn open_with(
        dir: &Path,
        open_store: impl FnOnce(&NodeConfig) -> Result<Arc<dyn storage::Store>, NodeError>,
    ) -> Result<Node, NodeError> {
        let config = NodeConfig::load(dir).map_err(|e| NodeError::Setup(e.to_string()))?;
        let bundle_path = dir.join(Self::BUNDLE_FILE);
        let text = std::fs::read_to_string(&bundle_path).map_err(|e| {
            NodeError::Setup(format!(
                "{} is not a node directory ({e}); run `htx-node init {} --bundle FILE` first / thư mục chưa được khởi tạo",
                dir.display(),
                dir.display()
            ))
        })?;
        let bundle = Bundle::parse(&text).map_err(|e| NodeError::Setup(e.to_string()))?;
        bundle
            .install_units()
            .map_err(|e| NodeError::Setup(e.to_string()))?;
        // Refuses a store of a newer format; migrates an older one.
        let (replica, _) = format::open(open_store(&config)?, Role::Node)?;
        Ok(Node(Arc::new(Inner {
            dir: dir.to_owned(),
            config,
            replica: Mutex::new(replica),
            credentials: std::sync::RwLock::new(Credentials::from(&bundle)),
            bundle,
            session: Default::default(),
            wake: Default::default(),
            reference: Default::default(),
            unavailable: Default::default(),
            locations: Default::default(),
            records: Default::default(),
        })))
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }
    pub fn config(&self) -> &NodeConfig {
        &self.0.config
    }
    pub fn bundle(&self) -> &Bundle {
        &self.0.bundle
    }
    /// The certificate and key to connect with (the latest renewal).
    pub fn credentials(&self) -> Credentials {
        self.0.credentials.read().expect("credentials lock").clone()
    }

    /// Whether two thirds of the certificate's life have passed.
    pub fn needs_renewal(&self) -> bool {
        let c = self.credentials();
        let parse = |t: &str| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        };
        match (parse(&c.issued_at), parse(&c.expires_at)) {
            (Some(issued), Some(expires)) => {
                let now = time::OffsetDateTime::now_utc();
                expires - now < (expires - issued) / 3
            }
            _ => false,
        }
    }

    /// Keeps a renewed certificate: on disk first (the bundle file), then
    /// for the next connection.
    pub fn store_renewal(&self, renewed: Credentials) -> Result<(), NodeError> {
        let mut b = self.0.bundle.clone();
        b.cert = renewed.cert.clone();
        b.key = renewed.key.clone();
        b.cert_issued_at = renewed.issued_at.clone();
        b.cert_expires_at = renewed.expires_at.clone();
        htx_core::pki::write_private(&self.0.dir.join(Self::BUNDLE_FILE), b.to_json().as_bytes())
            .map_err(|e| NodeError::Setup(format!("cannot save the renewed certificate: {e}")))?;
        *self.0.credentials.write().expect("credentials lock") = renewed;
        Ok(())
    }

    pub fn hub_url(&self) -> &str {
        self.0
            .config
            .hub_url
            .as_deref()
            .unwrap_or(&self.0.bundle.hub_url)
    }

    pub fn session_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.0.session
    }
    pub fn wake(&self) -> &tokio::sync::Notify {
        &self.0.wake
    }

    /// The replica, for the sync client. Hold the guard briefly.
    pub fn replica(&self) -> MutexGuard<'_, Replica> {
        self.0.replica.lock().expect("replica lock")
    }

    /// The record id index; take it only while holding the replica.
    fn locations(&self) -> MutexGuard<'_, Locations> {
        self.0.locations.lock().expect("locations lock")
    }

    /// Records new records or changes to existing ones, all or nothing.
    /// Returns their ids once every change is on disk.
    pub fn write(&self, records: Vec<Record>) -> Result<Vec<String>, NodeError> {
        self.write_by(records, None)
    }

    /// As [`Node::write`], by an officer (through the pages): recorded as
    /// theirs, and refused outside their units.
    pub fn write_as(
        &self,
        records: Vec<Record>,
        officer: &Officer,
    ) -> Result<Vec<String>, NodeError> {
        self.write_by(records, Some(officer))
    }

    fn write_by(
        &self,
        records: Vec<Record>,
        officer: Option<&Officer>,
    ) -> Result<Vec<String>, NodeError> {
        match self.check_and_write(records, false, officer)? {
            Ok(ids) => Ok(ids),
            Err(errors) => Err(NodeError::Invalid(errors)),
        }
    }

    /// Checks records exactly as [`Node::write`] would (schema, unit,
    /// references, the ones given before each other included) and writes
    /// nothing: the bad ones, numbered from 1 in the order given, each with
    /// its first error.
    pub fn check(&self, records: Vec<Record>) -> Result<Vec<(usize, FieldError)>, NodeError> {
        self.check_by(records, None)
    }

    /// As [`Node::check`], for what `officer` may write.
    pub fn check_as(
        &self,
        records: Vec<Record>,
        officer: &Officer,
    ) -> Result<Vec<(usize, FieldError)>, NodeError> {
        self.check_by(records, Some(officer))
    }

    fn check_by(
        &self,
        records: Vec<Record>,
        officer: Option<&Officer>,
    ) -> Result<Vec<(usize, FieldError)>, NodeError> {
        Ok(self
            .check_and_write(records, true, officer)?
            .err()
            .unwrap_or_default())
    }

    /// Records the rows of an import file, all or nothing, and returns how
    /// many. `rows` are the rows that could be read, with their row number;
    /// `unreadable` the others, with why. Every row is checked (schema,
    /// unit, references) before anything is refused, so a file's every
    /// error is reported at once, by row; nothing is written unless all are
    /// good.
    pub fn import(
        &self,
        rows: Vec<(u64, Record)>,
        unreadable: Vec<Unreadable>,
    ) -> Result<usize, NodeError> {
        self.import_by(rows, unreadable, None)
    }

    /// As [`Node::import`], by an officer: recorded as theirs, and refused
    /// outside their units.
    pub fn import_as(
        &self,
        rows: Vec<(u64, Record)>,
        officer: &Officer,
    ) -> Result<usize, NodeError> {
        self.import_by(rows, Vec::new(), Some(officer))
    }

    fn import_by(
        &self,
        rows: Vec<(u64, Record)>,
        unreadable: Vec<Unreadable>,
        officer: Option<&Officer>,
    ) -> Result<usize, NodeError> {
        let (numbers, records): (Vec<u64>, Vec<Record>) = rows.into_iter().unzip();
        match self.check_and_write(records, !unreadable.is_empty(), officer)? {
            Ok(ids) => Ok(ids.len()),
            Err(errors) => {
                // A reference to a bad row of the same file is not "no such
                // record on this node": it names the row to fix.
                let bad_ids: HashMap<&str, u64> = unreadable
                    .iter()
                    .filter(|u| !u.id.is_empty())
                    .map(|u| (u.id.as_str(), u.row))
                    .collect();
                let explain = |e: FieldError| match &e {
                    FieldError::BadRef {
                        kind, field, value, ..
                    } if bad_ids.contains_key(value.as_str()) => format!(
                        "{kind}: field {field:?}: {value:?} is the id of row {}, which is refused / tham chiếu tới dòng {} bị lỗi",
                        bad_ids[value.as_str()],
                        bad_ids[value.as_str()]
                    ),
                    _ => e.to_string(),
                };
                let mut all: Vec<(u64, String)> = errors
                    .into_iter()
                    .map(|(i, e)| (numbers[i - 1], explain(e)))
                    .collect();
                all.extend(unreadable.into_iter().map(|u| (u.row, u.reason)));
                all.sort_by_key(|(row, _)| *row);
                Err(NodeError::BadRows(all))
            }
        }
    }

    /// Checks every record; writes them all if every one is good and
    /// `refuse` is false. Otherwise returns the bad ones (numbered from 1),
    /// and writes nothing.
    fn check_and_write(
        &self,
        mut records: Vec<Record>,
        refuse: bool,
        officer: Option<&Officer>,
    ) -> Result<Result<Vec<String>, BadRecords>, NodeError> {
        let mut replica = self.replica();
        self.reopen_if_unavailable(&mut replica)?;
        // The one place every record enters: text is stored in NFC.
        records.iter_mut().for_each(Record::normalize);
        let mut locations = self.locations();
        locations.refresh(&replica);
        let mut known = Known::new(&locations);
        let b = &self.0.bundle;
        let h = Hierarchy::current();
        let version = h
            .version(&b.unit_version)
            .map_err(|e| NodeError::Setup(e.to_string()))?;
        let now = now_rfc3339();
        let who = Officer::who(officer, &b.node);
        let mut errors = Vec::new();
        for (i, rec) in records.iter_mut().enumerate() {
            let mut one = || -> Result<(), FieldError> {
                let existing = if rec.id.is_empty() {
                    rec.id = schema::new_id();
                    None
                } else {
                    known.get(&rec.id).cloned()
                };
                if let Some(loc) = &existing
                    && loc.kind != rec.kind
                {
                    return Err(FieldError::UnknownKind(format!(
                        "{} (record {} is a {})",
                        rec.kind, rec.id, loc.kind
                    )));
                }
                let unit_version = match rec.fields.get("unit_version") {
                    Some(v) => v.to_string(),
                    None => b.unit_version.clone(),
                };
                if unit_version != b.unit_version {
                    return Err(FieldError::BadUnit(format!(
                        "unit_version {unit_version:?}: this node records under the {} hierarchy / phiên bản danh mục không khớp",
                        b.unit_version
                    )));
                }
                rec.fields
                    .insert("unit_version".into(), Value::Text(unit_version));
                // The unit: given, else the record's own, else its cooperative's,
                // else the node's own unit when that is a commune.
                if !rec.fields.contains_key("unit") {
                    let from_coop = rec
                        .text("cooperative")
                        .and_then(|c| known.get(c))
                        .map(|l| l.unit.clone());
                    let unit = existing
                        .as_ref()
                        .map(|l| l.unit.clone())
                        .or(from_coop)
                        .or_else(|| {
                            (version.unit(&b.unit).map(|u| u.level)
                                == Some(htx_core::units::Level::Commune))
                            .then(|| b.unit.clone())
                        });
                    if let Some(u) = unit {
                        rec.fields.insert("unit".into(), Value::Text(u));
                    }
                }
                let mut full = rec.clone();
                match &existing {
                    Some(loc) => {
                        let old =
                            docs::read_record(replica.doc(&loc.doc).expect("located"), &rec.id)
                                .map_err(|e| {
                                    FieldError::BadUnit(format!(
                                        "cannot read record {}: {e}",
                                        rec.id
                                    ))
                                })?
                                .expect("located record exists");
                        for (k, v) in old.fields {
                            full.fields.entry(k).or_insert(v);
                        }
                        for (k, v) in [("changed_at", &now), ("changed_by", &who)] {
                            rec.fields.insert(k.into(), Value::Text(v.clone()));
                            full.fields.insert(k.into(), Value::Text(v.clone()));
                        }
                        if full.text("unit") != Some(loc.unit.as_str()) {
                            return Err(FieldError::BadUnit(format!(
                                "record {} belongs to unit {}; a record cannot move to another unit / không thể chuyển bản ghi sang đơn vị khác",
                                rec.id, loc.unit
                            )));
                        }
                    }
                    None => {
                        rec.fields
                            .insert("recorded_at".into(), Value::Text(now.clone()));
                        rec.fields
                            .insert("recorded_by".into(), Value::Text(who.clone()));
                        full = rec.clone();
                    }
                }
                // A reference to nothing first: it is also why a record that
                // takes its unit from its cooperative has none.
                check_refs(&full, &known)?;
                full.validate()?;
                let unit = full.text("unit").unwrap_or_default().to_owned();
                if version.unit(&unit).is_none() {
                    return Err(FieldError::BadUnit(format!(
                        "unknown unit code {unit:?} in the {} hierarchy / mã đơn vị hành chính không tồn tại",
                        b.unit_version
                    )));
                }
                if !version.within(&unit, &b.unit) {
                    return Err(FieldError::BadUnit(format!(
                        "unit {unit} is outside the units this node serves ({} and below) / đơn vị nằm ngoài phạm vi của nút",
                        b.unit
                    )));
                }
                Officer::check_unit(officer, version, &unit)?;
                known.insert(
                    rec.id.clone(),
                    Loc {
                        doc: docs::unit_doc_id(&b.unit_version, &unit),
                        kind: rec.kind.clone(),
                        unit,
                    },
                );
                Ok(())
            };
            if let Err(e) = one() {
                errors.push((i + 1, e));
            }
        }
        if !errors.is_empty() || refuse {
            return Ok(Err(errors));
        }
        let mut by_doc: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        for rec in &records {
            by_doc
                .entry(known.get(&rec.id).expect("checked").doc.clone())
                .or_default()
                .push(rec);
        }
        let ids: Vec<String> = by_doc.keys().cloned().collect();
        let res = replica.change_each(&ids, |doc_id, doc| {
            by_doc[doc_id]
                .iter()
                .try_for_each(|rec| docs::put_record(doc, rec))
        });
        match res {
            Ok(edited) => edited.map_err(ReplicaError::from)?,
            Err(ReplicaError::Store(e)) => {
                let written = self.read_back(&mut replica, &records);
                if written == Written::All {
                    tracing::warn!(
                        "{}",
                        commit_failed(&written, &records.len(), &e.to_string())
                    );
                } else {
                    return Err(NodeError::CommitFailed {
                        written,
                        total: records.len(),
                        error: e.to_string(),
                    });
                }
            }
            Err(e) => return Err(e.into()),
        }
        // The index learns the write from the write itself.
        let added = known.into_added();
        locations.wrote(&replica, added);
        Ok(Ok(records.into_iter().map(|r| r.id).collect()))
    }

    /// After a failed commit: opens the store again (a store may refuse
    /// everything after an I/O error until it is reopened, and reopening
    /// runs its recovery) and reports which of `records` are there, with
    /// the values written. Never assumes: a commit can fail after its data
    /// reached the disk.
    fn read_back(&self, replica: &mut Replica, records: &[Record]) -> Written {
        if let Err(e) = self.reopen(replica) {
            return Written::Unknown(e.to_string());
        }
        // A fresh index: this runs inside a write that holds the shared one,
        // and after a reopen nothing cached can be trusted.
        let mut known = Locations::default();
        known.refresh(replica);
        let there = records
            .iter()
            .filter(|rec| {
                let Some(loc) = known.get(&rec.id) else {
                    return false;
                };
                let Some(doc) = replica.doc(&loc.doc) else {
                    return false;
                };
                match docs::read_record(doc, &rec.id) {
                    Ok(Some(stored)) => rec
                        .fields
                        .iter()
                        .all(|(k, v)| stored.fields.get(k).is_some_and(|s| same_value(s, v))),
                    _ => false,
                }
            })
            .count();
        match there {
            n if n == records.len() => Written::All,
            0 => Written::Nothing,
            n => Written::Some(n),
        }
    }

    /// Closes the store and opens it again from disk into `replica`. If it
    /// cannot be opened, the replica is left empty (on memory) and the node
    /// refuses writes until [`Node::reopen_if_unavailable`] succeeds.
    fn reopen(&self, replica: &mut Replica) -> Result<(), NodeError> {
        // The old store must be dropped first: it holds the file's lock.
        let empty = Replica::open(Arc::new(storage::MemoryStore::default()))?;
        drop(std::mem::replace(replica, empty));
        let opened: Result<Replica, NodeError> = storage::open(self.0.config.backend, &self.0.dir)
            .map_err(NodeError::from)
            .and_then(|store| Ok(format::open(store, Role::Node)?.0));
        let mut unavailable = self.0.unavailable.lock().expect("unavailable lock");
        match opened {
            Ok(fresh) => {
                *replica = fresh;
                *unavailable = None;
                Ok(())
            }
            Err(e) => {
                *unavailable = Some(e.to_string());
                Err(NodeError::StoreUnavailable(e.to_string()))
            }
        }
    }

    fn reopen_if_unavailable(&self, replica: &mut Replica) -> Result<(), NodeError> {
        let failed = self.0.unavailable.lock().expect("unavailable lock").clone();
        match failed {
            Some(_) => self.reopen(replica),
            None => Ok(()),
        }
    }

    /// Marks a record deleted (who, when, why), or restores it. Nothing is
    /// erased. The reason is required: a figure that drops needs one.
    pub fn delete(&self, id: &str, restore: bool, reason: &str) -> Result<(), NodeError> {
        self.delete_by(id, restore, reason, None)
    }

    /// As [`Node::delete`], by an officer: recorded as theirs, and refused
    /// outside their units.
    pub fn delete_as(
        &self,
        id: &str,
        restore: bool,
        reason: &str,
        officer: &Officer,
    ) -> Result<(), NodeError> {
        self.delete_by(id, restore, reason, Some(officer))
    }

    fn delete_by(
        &self,
        id: &str,
        restore: bool,
        reason: &str,
        officer: Option<&Officer>,
    ) -> Result<(), NodeError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > htx_core::schema::MAX_REASON_CHARS {
            return Err(NodeError::Reason);
        }
        let mut replica = self.replica();
        self.reopen_if_unavailable(&mut replica)?;
        let loc = self.location(&replica, id)?;
        let version = Hierarchy::current()
            .version(&self.0.bundle.unit_version)
            .map_err(|e| NodeError::Setup(e.to_string()))?;
        if let Err(e) = Officer::check_unit(officer, version, &loc.unit) {
            return Err(NodeError::Invalid(vec![(1, e)]));
        }
        let who = Value::Text(Officer::who(officer, &self.0.bundle.node));
        let when = Value::Text(now_rfc3339());
        let mut rec = Record {
            id: id.to_owned(),
            kind: loc.kind.clone(),
            ..Default::default()
        };
        let (set, clear) = if restore {
            (
                ["restored_at", "restored_by", "restored_reason"],
                ["deleted_at", "deleted_by", "deleted_reason"],
            )
        } else {
            (
                ["deleted_at", "deleted_by", "deleted_reason"],
                ["restored_at", "restored_by", "restored_reason"],
            )
        };
        rec.fields.insert(set[0].into(), when);
        rec.fields.insert(set[1].into(), who);
        rec.fields.insert(
            set[2].into(),
            Value::Text(htx_core::schema::normalize_text(reason)),
        );
        replica
            .change(&loc.doc, |doc| {
                docs::put_record(doc, &rec)?;
                clear
                    .iter()
                    .try_for_each(|f| docs::remove_field(doc, id, f))
            })?
            .map_err(ReplicaError::from)?;
        self.locations()
            .wrote(&replica, HashMap::from([(id.to_owned(), loc)]));
        Ok(())
    }

    /// The values concurrent edits left side by side in `field` of record
    /// `id`, with who set each and when (empty: no conflict).
    pub fn contenders(&self, id: &str, field: &str) -> Result<Vec<docs::Contender>, NodeError> {
        let mut replica = self.replica();
        self.reopen_if_unavailable(&mut replica)?;
        let loc = self.location(&replica, id)?;
        let doc = replica
            .doc(&loc.doc)
            .ok_or(NodeError::NotFound(id.to_owned()))?;
        Ok(docs::contenders(doc, id, field).map_err(ReplicaError::from)?)
    }

    /// Settles a conflict: `field` of record `id` takes `value`, one of the
    /// values concurrent edits left, chosen by `officer` (recorded as the
    /// record's last change, and synced like any edit). A value that is no
    /// longer one of them (someone settled it meanwhile) is refused.
    pub fn settle_as(
        &self,
        id: &str,
        field: &str,
        value: &Value,
        officer: &Officer,
    ) -> Result<(), NodeError> {
        let mut replica = self.replica();
        self.reopen_if_unavailable(&mut replica)?;
        let loc = self.location(&replica, id)?;
        let version = Hierarchy::current()
            .version(&self.0.bundle.unit_version)
            .map_err(|e| NodeError::Setup(e.to_string()))?;
        if let Err(e) = Officer::check_unit(Some(officer), version, &loc.unit) {
            return Err(NodeError::Invalid(vec![(1, e)]));
        }
        let doc = replica
            .doc(&loc.doc)
            .ok_or(NodeError::NotFound(id.to_owned()))?;
        let now = docs::contenders(doc, id, field).map_err(ReplicaError::from)?;
        if now.len() < 2 || !now.iter().any(|c| &c.value == value) {
            return Err(NodeError::Settled);
        }
        let mut rec = Record {
            id: id.to_owned(),
            kind: loc.kind.clone(),
            ..Default::default()
        };
        let who = Officer::who(Some(officer), &self.0.bundle.node);
        rec.fields
            .insert("changed_at".into(), Value::Text(now_rfc3339()));
        rec.fields.insert("changed_by".into(), Value::Text(who));
        replica
            .change(&loc.doc, |doc| {
                docs::put_record(doc, &rec)?;
                docs::settle_field(doc, id, field, value)
            })?
            .map_err(ReplicaError::from)?;
        self.locations()
            .wrote(&replica, HashMap::from([(id.to_owned(), loc)]));
        Ok(())
    }

    /// Where record `id` is kept.
    fn location(&self, replica: &Replica, id: &str) -> Result<Loc, NodeError> {
        let mut locations = self.locations();
        locations.refresh(replica);
        locations
            .get(id)
            .cloned()
            .ok_or_else(|| NodeError::NotFound(id.to_owned()))
    }

    /// Every record this node holds, deleted ones only if asked.
    pub fn export(&self, include_deleted: bool) -> Result<Vec<Record>, NodeError> {
        let mut replica = self.replica();
        // Never an empty list for a store that could not be read.
        self.reopen_if_unavailable(&mut replica)?;
        let mut cache = self.0.records.lock().expect("record cache lock");
        let cache = &mut *cache;
        cache.docs.retain(|d, _| replica.doc(d).is_some());
        cache.held = cache.docs.values().map(|(_, r)| r.len()).sum();
        let mut out = Vec::new();
        for id in replica.doc_ids() {
            let heads = replica.heads(id);
            let records = match cache.docs.get(id) {
                Some((h, recs)) if *h == heads => recs.clone(),
                _ => {
                    let doc = replica.doc(id).expect("listed");
                    let recs = Arc::new(docs::read_records(doc).map_err(ReplicaError::from)?);
                    if let Some((_, old)) = cache.docs.remove(id) {
                        cache.held -= old.len();
                    }
                    if cache.held + recs.len() <= RecordCache::MAX {
                        cache.held += recs.len();
                        cache.docs.insert(id.to_owned(), (heads, recs.clone()));
                    }
                    recs
                }
            };
            out.extend(
                records
                    .iter()
                    .filter(|r| include_deleted || !r.is_deleted())
                    .cloned(),
            );
        }
        Ok(out)
    }

    /// Progress against the plan for this node's own units, computed here,
    /// offline, from what this node holds (default: its unit, today, its
    /// hierarchy version).
    pub fn progress(
        &self,
        unit: Option<&str>,
        as_of: Option<&str>,
        hierarchy: Option<&str>,
    ) -> Result<htx_proto::v1::ProgressReply, NodeError> {
        use htx_core::progress;
        let b = &self.0.bundle;
        let h = Hierarchy::current();
        let bad = |e: progress::ProgressError| NodeError::Setup(e.to_string());
        let version = hierarchy
            .filter(|v| !v.is_empty())
            .unwrap_or(&b.unit_version);
        let v = h
            .version(version)
            .map_err(|e| NodeError::Setup(e.to_string()))?;
        let own = h
            .resolve(&b.unit_version, &b.unit, version)
            .map_err(|e| NodeError::Setup(e.to_string()))?;
        let unit = match unit.filter(|u| !u.is_empty()) {
            Some(u) => Some(
                h.unit(version, u)
                    .map_err(|e| NodeError::Setup(e.to_string()))?
                    .code
                    .clone(),
            ),
            None => None,
        };
        let as_of = match as_of.filter(|d| !d.is_empty()) {
            Some(d) => progress::parse_date(d).map_err(bad)?,
            None => time::OffsetDateTime::now_utc().date(),
        };
        let mut records = self.export(true)?;
        // The trainings its people attended that it does not hold, as the
        // hub published them (dates and types only: htx_core::facts).
        let facts = self
            .replica()
            .doc(&htx_core::facts::doc_id(&b.node))
            .and_then(htx_core::facts::read);
        if let Some(f) = facts {
            let own: std::collections::HashSet<String> =
                records.iter().map(|r| r.id.clone()).collect();
            records.extend(f.trainings.into_iter().filter(|t| !own.contains(&t.id)));
        }
        let synced = !self.sync_status().last_success.is_empty();
        let (plan, h) = self.reference()?;
        let report = progress::recompute(&plan, h, version, as_of, &records).map_err(bad)?;
        let me = htx_proto::v1::Source {
            node: b.node.clone(),
            unit: b.unit.clone(),
            last_sync: self.sync_status().last_success,
        };
        // This node serves the units its scope lies within, and holds data
        // for the units below its scope where records are placed.
        // Its own unit by default; where that is not a unit of the plan's
        // territory in this version (a district, asked under 2025, became
        // the merged province), the territory, labelled as such.
        let unit = unit.or_else(|| report.unit(&own).map(|_| own.clone()));
        htx_core::report::to_wire(&report, unit.as_deref(), |u| {
            // The territory as a unit of its own: this node holds data for
            // it where its records are.
            if v.unit(&u.code).is_none() {
                return htx_core::report::Provenance {
                    sources: match u.recorded_by.is_empty() {
                        false => vec![me.clone()],
                        true => Vec::new(),
                    },
                    reached: true,
                };
            }
            let serves = v.within(&own, &u.code);
            let holds = v.within(&u.code, &own);
            htx_core::report::Provenance {
                sources: match serves || (holds && !u.recorded_by.is_empty()) {
                    true => vec![me.clone()],
                    false => Vec::new(),
                },
                reached: serves || (holds && v.unit(&own).is_some_and(|s| s.parent.is_some())),
            }
        })
        .map(|mut reply| {
            if !synced {
                reply.incomplete = INCOMPLETE.into();
            }
            reply
        })
        .map_err(bad)
    }

    /// The plan and unit lists the hub published (read-only), or the ones
    /// built in before the first sync. Of the hub's plans, the one whose
    /// territory holds this node's unit ([`own_plan`]).
    pub fn reference(&self) -> Result<(Plan, &'static Hierarchy), NodeError> {
        let heads = self.replica().heads(docs::REFERENCE_DOC);
        if heads.is_empty() {
            return Ok((Plan::builtin(), Hierarchy::current()));
        }
        let mut cache = self.0.reference.lock().expect("reference lock");
        if let Some((_, plan, units)) = cache.as_ref().filter(|(h, _, _)| *h == heads) {
            return Ok((plan.clone(), *units));
        }
        let r = docs::read_reference(self.replica().doc(docs::REFERENCE_DOC).expect("has heads"))
            .ok_or_else(|| {
            NodeError::Setup("the hub's reference document has no plan".into())
        })?;
        let lists: Vec<(&str, &str)> = r
            .lists
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let units = Hierarchy::from_lists(&lists).map_err(|e| NodeError::Setup(e.to_string()))?;
        // One hierarchy per published version of the lists, kept for the
        // life of the process (they change once in years).
        let units: &'static Hierarchy = Box::leak(Box::new(units));
        let b = &self.0.bundle;
        let plan = own_plan(&r, units, &b.unit_version, &b.unit)?;
        *cache = Some((heads, plan.clone(), units));
        Ok((plan, units))
    }

    /// A consistent copy of the store, written to `out` while the node
    /// keeps working (the replica is not held meanwhile).
    pub fn backup(&self, out: &Path) -> Result<htx_core::storage::backup::Copied, NodeError> {
        let store = self.replica().store().clone();
        Ok(htx_core::storage::backup::backup(store.as_ref(), out)?)
    }

    pub fn sync_status(&self) -> SyncStatus {
        self.replica()
            .meta("sync_status")
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    pub fn put_sync_status(&self, s: &SyncStatus) -> Result<(), NodeError> {
        let mut b = WriteBatch::default();
        Replica::put_meta(
            &mut b,
            "sync_status",
            serde_json::to_vec(s).expect("serializes"),
        );
        self.replica().commit(b)?;
        Ok(())
    }

    pub fn status(&self) -> StatusView {
        let sync = self.sync_status();
        let replica = self.replica();
        let ids: Vec<&str> = replica.doc_ids().collect();
        let records = ids
            .iter()
            .filter(|d| docs::parse_unit_doc_id(d).is_some())
            .map(|d| {
                replica
                    .doc(d)
                    .map(|doc| doc.keys(ROOT).count())
                    .unwrap_or(0)
            })
            .sum();
        let not_at_hub = ids
            .iter()
            .filter(|d| match replica.belief(HUB_PEER, d) {
                Ok(Some((mut h, _))) => {
                    h.sort();
                    h != replica.heads(d)
                }
                _ => true,
            })
            .count();
        StatusView {
            node: self.0.bundle.node.clone(),
            unit: self.0.bundle.unit.clone(),
            hub: self.hub_url().to_owned(),
            documents: ids.len(),
            records,
            documents_not_at_hub: not_at_hub,
            damaged_documents: damaged_lines(&replica),
            sync,
        }
    }
}

/// The documents found damaged in the store, as the officer reads them.
fn damaged_lines(replica: &Replica) -> Vec<String> {
    let damaged = replica.damaged().unwrap_or_else(|e| {
        tracing::warn!("cannot list the damaged documents: {e}");
        Vec::new()
    });
    damaged
        .into_iter()
        .map(|d| {
            let now = if replica.has_doc(&d.doc) {
                "recovered from the hub since / đã được khôi phục từ máy chủ tỉnh"
            } else {
                "the next sync downloads it from the hub / lần đồng bộ tới sẽ tải lại từ máy chủ tỉnh"
            };
            format!(
                "{}: damaged in the store ({}), set aside at {}; {now} / tài liệu bị hỏng, đã được tách riêng",
                d.doc, d.reason, d.set_aside_at
            )
        })
        .collect()
}

/// Whether a stored value is the one written (dates may travel as text,
/// lists in any order).
fn same_value(stored: &Value, written: &Value) -> bool {
    match (stored, written) {
        (Value::List(a), Value::List(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.sort();
            b.sort();
            a == b
        }
        (a, b) => a == b || a.to_string() == b.to_string(),
    }
}

fn check_refs(rec: &Record, known: &Known) -> Result<(), FieldError> {
    let spec = schema::kind(&rec.kind)?;
    for field in spec.fields {
        let (targets, ids): (&[&str], Vec<&str>) = match (field.ty, rec.fields.get(field.name)) {
            (FieldType::Ref(t), Some(Value::Text(id))) => (t, vec![id.as_str()]),
            (FieldType::RefList(t), Some(Value::List(ids))) => {
                (t, ids.iter().map(String::as_str).collect())
            }
            _ => continue,
        };
        for id in ids {
            if !known
                .get(id)
                .is_some_and(|l| targets.contains(&l.kind.as_str()))
            {
                return Err(FieldError::BadRef {
                    kind: rec.kind.clone(),
                    field: field.name.into(),
                    value: id.into(),
                    target: targets.join(" or "),
                });
            }
        }
    }
    Ok(())
}

/// Of the plans the hub published, the one to compute this node's figures
/// with: the default plan if its territory holds the node's unit, else the
/// first other plan whose territory does, else the default (its records
/// then show as outside the territory, as at the hub). A plan this version
/// cannot read, other than the default, is passed over.
fn own_plan(
    r: &docs::Reference,
    units: &Hierarchy,
    version: &str,
    unit: &str,
) -> Result<Plan, NodeError> {
    let first = Plan::parse(&r.plan)
        .map_err(|e| NodeError::Setup(format!("the plan the hub published: {e}")))?;
    let holds = |p: &Plan| {
        htx_core::territory::Territory::new(units, &p.hierarchy, &p.unit)
            .is_ok_and(|t| t.part(version, unit) == Some(htx_core::territory::Part::Inside))
    };
    if holds(&first) {
        return Ok(first);
    }
    let other = r
        .plans
        .iter()
        .filter_map(|(_, text)| Plan::parse(text).ok())
        .find(|p| holds(p));
    Ok(other.unwrap_or(first))
}

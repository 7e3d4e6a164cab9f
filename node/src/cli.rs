//! # The `htx-node` commands
//!
//! While `run` holds a node directory, the other commands reach it through
//! its local API (address in `DIR/api.addr`); otherwise they open the store
//! themselves. Either way they do the same thing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use htx_core::pki::{Bundle, fingerprint, write_atomic, write_private};
use htx_core::schema::{self, Record};
use htx_core::storage::Backend;
use htx_core::units::Hierarchy;
use htx_core::wire;
use htx_proto::v1::{self as pb, node_api_client::NodeApiClient};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::config::NodeConfig;
use crate::node::{Node, NodeError, StatusView, Unreadable};
use crate::sheets;
use crate::sync_client::{self, SessionReport};

#[derive(Parser, Debug)]
#[command(
    name = "htx-node",
    version,
    about = "HTX Sync district node: records offline, syncs with the provincial hub"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sets up a node directory from the bundle `htx-hub enroll` wrote.
    Init {
        dir: PathBuf,
        #[arg(long)]
        bundle: PathBuf,
        /// Embedded database (redb is the default; see the README).
        #[arg(long, default_value = "redb")]
        backend: Backend,
    },
    /// Serves the local API and syncs with the hub in the background.
    Run { dir: PathBuf },
    /// Records one record: `add DIR cooperative --type HTX --name "HTX Lúa" --unit 13633`.
    Add {
        dir: PathBuf,
        /// cooperative, observation, manager, cadre, training, activity or milestone
        kind: String,
        /// `--field value` pairs (see the README for each kind's fields)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        fields: Vec<String>,
    },
    /// Imports a spreadsheet (.xlsx, or .csv with Vietnamese or English
    /// headers), a CSV with a `kind` column, or a JSON file; all or nothing.
    Import {
        dir: PathBuf,
        file: PathBuf,
        /// Default: from the file's extension.
        #[arg(long)]
        format: Option<FileFormat>,
        /// Only check: print every error and write nothing (exit 1 on errors).
        #[arg(long)]
        check: bool,
    },
    /// Writes an empty .xlsx template for one kind of record.
    Template {
        dir: PathBuf,
        /// cooperative, observation, manager, cadre, training, activity or milestone
        kind: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints every record this node holds (json), or writes one kind's
    /// records as a spreadsheet (xlsx, csv).
    Export {
        dir: PathBuf,
        #[arg(long, default_value = "json")]
        format: ExportFormat,
        /// Also records marked deleted (json only).
        #[arg(long)]
        include_deleted: bool,
        /// The kind of records (xlsx and csv).
        #[arg(long)]
        kind: Option<String>,
        /// Only records of this unit and below (xlsx and csv).
        #[arg(long)]
        unit: Option<String>,
        /// Where to write (xlsx and csv; required for xlsx).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Installs the web app's HTTPS certificate for the office LAN (a file
    /// from `htx-hub web-cert`); `htx-node run` serves HTTPS from then on.
    /// Restart the service to use a new one.
    WebCert { dir: PathBuf, file: PathBuf },
    /// Marks a record deleted (who, when, why); `--restore` undoes it.
    Delete {
        dir: PathBuf,
        id: String,
        #[arg(long)]
        restore: bool,
        /// Why (required; shown in the record's history): "trùng với bản ghi khác".
        #[arg(long)]
        reason: String,
    },
    /// Syncs with the hub now.
    Sync {
        dir: PathBuf,
        /// Run one sync session and exit: 0 when node and hub hold the same data.
        #[arg(long, required = true)]
        once: bool,
    },
    /// Progress against the plan for this node's units, computed offline.
    Progress {
        dir: PathBuf,
        /// A unit of this node's subtree (default: its own unit).
        #[arg(long)]
        unit: Option<String>,
        /// YYYY-MM-DD (default: today)
        #[arg(long)]
        as_of: Option<String>,
        /// 2023, 2024 or 2025 (default: the node's)
        #[arg(long)]
        hierarchy: Option<String>,
        #[arg(long, default_value = "table")]
        format: ProgressFormat,
    },
    /// Shows what this node holds and how its sync stands.
    Status {
        dir: PathBuf,
        #[arg(long, default_value = "text")]
        format: StatusFormat,
    },
    /// Writes a consistent copy of the store to FILE, while `run` runs (or not).
    Backup {
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Puts a backup in place of the store (the node must be stopped); the
    /// store it replaces is kept as `store.redb.before-restore`.
    Restore {
        dir: PathBuf,
        #[arg(long)]
        from: PathBuf,
    },
    /// Officers' accounts for the web app (kept in DIR/users.json).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Creates an account; the password is asked for (or read from stdin).
    Add {
        dir: PathBuf,
        name: String,
        /// admin, editor or viewer
        #[arg(long)]
        role: String,
        /// Restricts the officer to this unit (and those below); repeat for
        /// several. Default: every unit of the node.
        #[arg(long = "unit")]
        units: Vec<String>,
    },
    /// Sets a new password (asked for, or read from stdin); lifts a lock-out.
    Passwd { dir: PathBuf, name: String },
    /// Disables an account (`--enable` enables it again).
    Disable {
        dir: PathBuf,
        name: String,
        #[arg(long)]
        enable: bool,
    },
    /// Lists the accounts (never the password hashes).
    List { dir: PathBuf },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FileFormat {
    Csv,
    Json,
    Xlsx,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    Json,
    Xlsx,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProgressFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

/// Why an import failed, and what that says of the store.
enum ImportError {
    /// Rows were refused before anything was written.
    Refused(String),
    /// The commit failed; the message says what reading the store back showed.
    Checked(String),
    /// Anything else (e.g. the running node stopped answering half-way):
    /// whether the rows were written is not known here.
    Unknown(String),
}

/// A node directory reached through the running process, or opened here.
enum Access {
    /// The running process's loopback API.
    Remote(Channel),
    Local(Node),
}

pub const API_ADDR_FILE: &str = "api.addr";
/// Where `run` writes the web app's address.
pub const WEB_ADDR_FILE: &str = "web.addr";
/// Where `run` writes the status port's address (health, metrics).
pub const STATUS_ADDR_FILE: &str = "status.addr";

async fn access(dir: &Path) -> anyhow::Result<Access> {
    if let Ok(addr) = std::fs::read_to_string(dir.join(API_ADDR_FILE)) {
        let url = format!("http://{}", addr.trim());
        let endpoint =
            Channel::from_shared(url.clone())?.connect_timeout(std::time::Duration::from_secs(3));
        if let Ok(ch) = endpoint.connect().await {
            return Ok(Access::Remote(ch));
        }
    }
    match Node::open(dir) {
        Ok(node) => Ok(Access::Local(node)),
        Err(crate::node::NodeError::Store(htx_core::storage::StoreError::Locked(p))) => bail!(
            "{p} is held by a running `htx-node run`, but its API does not answer; is it starting or stopping? / nút đang chạy nhưng không phản hồi"
        ),
        Err(e) => Err(e.into()),
    }
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", s.message())
}

impl Access {
    /// Writes a consistent copy of the store to `out`: streamed from the
    /// running node, or taken from the store directly.
    async fn backup(&mut self, out: &Path) -> anyhow::Result<u64> {
        if out.exists() {
            bail!(
                "{} already exists; choose a new file name / tệp đã tồn tại, hãy chọn tên khác",
                out.display()
            );
        }
        match self {
            Access::Remote(ch) => {
                let mut c = NodeApiClient::new(ch.clone()).max_decoding_message_size(usize::MAX);
                let mut stream = c
                    .backup(pb::BackupRequest {})
                    .await
                    .map_err(status_error)?
                    .into_inner();
                let mut chunks = Vec::new();
                while let Some(chunk) = stream.message().await.map_err(status_error)? {
                    chunks.push(chunk);
                }
                Ok(wire::backup_from_chunks(&chunks, out)
                    .with_context(|| format!("writing {}", out.display()))?)
            }
            Access::Local(n) => Ok(n.backup(out)?.entries as u64),
        }
    }

    async fn write(&mut self, records: Vec<Record>) -> anyhow::Result<Vec<String>> {
        match self {
            Access::Remote(ch) => {
                let mut c = NodeApiClient::new(ch.clone()).max_decoding_message_size(256 << 20);
                let records = records.iter().map(wire::record_to_wire).collect();
                Ok(c.write(pb::WriteRequest { records })
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .ids)
            }
            Access::Local(n) => Ok(n.write(records)?),
        }
    }

    /// Imports a file's rows, all or nothing; returns how many.
    async fn import(&mut self, file: ImportFile) -> Result<usize, ImportError> {
        match self {
            Access::Remote(ch) => {
                use prost::Message;
                // Chunks of about IMPORT_CHUNK_BYTES; the node writes
                // nothing before the last one has arrived.
                let mut chunks = vec![pb::ImportChunk {
                    rows: Vec::new(),
                    unreadable: file
                        .unreadable
                        .into_iter()
                        .map(|u| pb::UnreadableRow {
                            row: u.row,
                            reason: u.reason,
                            id: u.id,
                        })
                        .collect(),
                }];
                let mut size = 0;
                for (row, rec) in &file.rows {
                    let r = pb::ImportRow {
                        row: *row,
                        record: Some(wire::record_to_wire(rec)),
                    };
                    size += r.encoded_len() + 8;
                    if size > IMPORT_CHUNK_BYTES {
                        chunks.push(pb::ImportChunk::default());
                        size = r.encoded_len() + 8;
                    }
                    chunks.last_mut().expect("one chunk").rows.push(r);
                }
                let mut c = NodeApiClient::new(ch.clone());
                match c.import(tokio_stream::iter(chunks)).await {
                    Ok(reply) => Ok(reply.into_inner().imported as usize),
                    Err(s) if s.code() == tonic::Code::InvalidArgument => {
                        Err(ImportError::Refused(s.message().to_owned()))
                    }
                    Err(s) if s.code() == tonic::Code::DataLoss => {
                        Err(ImportError::Checked(s.message().to_owned()))
                    }
                    Err(s) => Err(ImportError::Unknown(s.message().to_owned())),
                }
            }
            Access::Local(n) => match n.import(file.rows, file.unreadable) {
                Ok(n) => Ok(n),
                Err(e @ NodeError::BadRows(_)) => Err(ImportError::Refused(e.to_string())),
                Err(e @ NodeError::CommitFailed { .. }) => Err(ImportError::Checked(e.to_string())),
                Err(e) => Err(ImportError::Unknown(e.to_string())),
            },
        }
    }

    async fn delete(&mut self, id: &str, restore: bool, reason: &str) -> anyhow::Result<()> {
        match self {
            Access::Remote(ch) => {
                let mut c = NodeApiClient::new(ch.clone()).max_decoding_message_size(256 << 20);
                c.delete(pb::DeleteRequest {
                    id: id.into(),
                    restore,
                    reason: reason.into(),
                })
                .await
                .map_err(status_error)?;
                Ok(())
            }
            Access::Local(n) => Ok(n.delete(id, restore, reason)?),
        }
    }

    async fn export(&mut self, include_deleted: bool) -> anyhow::Result<Vec<Record>> {
        match self {
            Access::Remote(ch) => {
                let mut c = NodeApiClient::new(ch.clone()).max_decoding_message_size(256 << 20);
                Ok(c.export(pb::ExportRequest { include_deleted })
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .records
                    .iter()
                    .map(wire::record_from_wire)
                    .collect())
            }
            Access::Local(n) => Ok(n.export(include_deleted)?),
        }
    }

    async fn status(&mut self) -> anyhow::Result<serde_json::Value> {
        match self {
            Access::Remote(ch) => {
                let mut c = NodeApiClient::new(ch.clone()).max_decoding_message_size(256 << 20);
                let s = c
                    .status(pb::StatusRequest {})
                    .await
                    .map_err(status_error)?
                    .into_inner();
                Ok(serde_json::json!({
                    "node": s.node, "unit": s.unit, "hub": s.hub, "documents": s.documents,
                    "records": s.records, "documents_not_at_hub": s.documents_not_at_hub,
                    "last_attempt": s.last_attempt, "last_success": s.last_success,
                    "last_error": s.last_error, "bytes_sent": s.bytes_sent, "bytes_received": s.bytes_received, "refused_records": s.refused_records,
                    "damaged_documents": s.damaged_documents,
                    "running": true,
                }))
            }
            Access::Local(n) => {
                let s: StatusView = n.status();
                let mut v = serde_json::to_value(s)?;
                v["running"] = false.into();
                Ok(v)
            }
        }
    }

    async fn progress(
        &mut self,
        unit: Option<String>,
        as_of: Option<String>,
        hierarchy: Option<String>,
    ) -> anyhow::Result<pb::ProgressReply> {
        match self {
            Access::Remote(ch) => {
                let req = pb::ProgressRequest {
                    unit: unit.unwrap_or_default(),
                    as_of: as_of.unwrap_or_default(),
                    hierarchy: hierarchy.unwrap_or_default(),
                    plan: String::new(),
                };
                let mut client = pb::progress_client::ProgressClient::new(ch.clone());
                Ok(client.get(req).await.map_err(status_error)?.into_inner())
            }
            Access::Local(n) => {
                Ok(n.progress(unit.as_deref(), as_of.as_deref(), hierarchy.as_deref())?)
            }
        }
    }

    async fn sync_once(&mut self) -> anyhow::Result<SessionReport> {
        match self {
            Access::Remote(ch) => {
                let mut c = NodeApiClient::new(ch.clone()).max_decoding_message_size(256 << 20);
                let r = c
                    .sync_now(pb::SyncNowRequest {})
                    .await
                    .map_err(status_error)?
                    .into_inner();
                Ok(r.into())
            }
            Access::Local(n) => Ok(sync_client::sync_once(n).await?),
        }
    }
}

/// What a spreadsheet is checked against while `run` holds the store: the
/// running node's records. Units and references are checked again by the
/// running node when it imports.
struct RunningNode {
    bundle: Bundle,
    records: Vec<Record>,
}

impl sheets::Holder for RunningNode {
    fn bundle(&self) -> &Bundle {
        &self.bundle
    }
    fn records(&self) -> Result<Vec<Record>, NodeError> {
        Ok(self.records.clone())
    }
    fn check(&self, _: Vec<Record>) -> Result<Vec<(usize, schema::FieldError)>, NodeError> {
        Ok(Vec::new())
    }
}

impl Access {
    /// The node as [`sheets`] sees it.
    async fn holder(&mut self, dir: &Path) -> anyhow::Result<Box<dyn sheets::Holder + '_>> {
        match self {
            Access::Local(n) => Ok(Box::new(n.clone())),
            Access::Remote(_) => {
                let text = std::fs::read_to_string(dir.join(Node::BUNDLE_FILE))
                    .with_context(|| format!("cannot read {}", dir.display()))?;
                let bundle = Bundle::parse(&text)?;
                let records = self.export(false).await?;
                Ok(Box::new(RunningNode { bundle, records }))
            }
        }
    }
}

/// Whether a file is a spreadsheet for [`sheets`]: an `.xlsx` file, or a
/// CSV file without a `kind` column (a CSV with one is a record file, read
/// by [`read_import`], one kind per row).
fn is_sheet(path: &Path, format: Option<FileFormat>) -> anyhow::Result<bool> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase);
    match (format, ext.as_deref()) {
        (Some(FileFormat::Xlsx), _) => return Ok(true),
        (Some(FileFormat::Json), _) | (None, Some("json")) => return Ok(false),
        (None, Some("csv")) | (Some(FileFormat::Csv), _) => {}
        _ => return Ok(true),
    }
    // The first line: is one of its columns `kind`?
    let mut head = vec![0u8; 64 << 10];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path)
            .with_context(|| format!("cannot read {} / không đọc được tệp", path.display()))?;
        f.read(&mut head)?
    };
    head.truncate(n);
    let (text, _) = sheets::decode(&head);
    let delimiter = sheets::delimiter(&text) as char;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Ok(!first
        .split(delimiter)
        .any(|h| h.trim().trim_matches('"') == "kind"))
}

/// `htx-node import` of a spreadsheet: reads it, previews it, prints every
/// error, and imports it if it has none (and `check` is not set).
async fn import_sheet(dir: &Path, file: &Path, check: bool) -> anyhow::Result<i32> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {} / không đọc được tệp", file.display()))?
        .len();
    if size > sheets::MAX_FILE_BYTES {
        bail!(
            "{}: {}",
            file.display(),
            sheets::SheetError::TooLarge { bytes: size }
        );
    }
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read {} / không đọc được tệp", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let wb = sheets::read(&bytes, name).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    drop(bytes);
    let mut access = access(dir).await?;
    let preview = sheets::preview_with(&*access.holder(dir).await?, &wb)?;
    drop(wb);
    let kinds: Vec<String> = preview
        .kinds
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    if !preview.errors.is_empty() {
        for e in &preview.errors {
            eprintln!("{e}");
        }
        bail!(
            "{} lỗi trong {}; không nhập gì cả / {} error(s) in {}; nothing was imported ({} row(s) good; {})",
            preview.errors.len(),
            file.display(),
            preview.errors.len(),
            file.display(),
            preview.rows_ok,
            kinds.join(", ")
        );
    }
    if check {
        println!(
            "{} dòng hợp lệ, không có lỗi; chưa ghi gì / {} row(s) good, no errors; nothing written ({})",
            preview.rows_ok,
            preview.rows_ok,
            kinds.join(", ")
        );
        if matches!(access, Access::Remote(_)) {
            println!(
                "the running node checks units and references again when importing / nút đang chạy sẽ kiểm tra lại đơn vị và tham chiếu khi nhập"
            );
        }
        return Ok(0);
    }
    let officer = format!("cli:{}", std::env::var("USER").unwrap_or_default());
    let n = match &access {
        Access::Local(n) => sheets::commit(n, preview, &officer)?,
        Access::Remote(_) => {
            let (rows, sheet_names) = preview.into_parts();
            let file_rows = ImportFile {
                rows,
                unreadable: Vec::new(),
            };
            match access.import(file_rows).await {
                Ok(n) => n,
                Err(ImportError::Refused(rows)) => {
                    // "row N: ..." with N the file's row id: name the sheet and row.
                    let lines: Vec<String> = rows
                        .lines()
                        .map(|l| {
                            l.strip_prefix("row ")
                                .and_then(|r| r.split_once(": "))
                                .and_then(|(n, rest)| {
                                    Some(format!(
                                        "{}: {rest}",
                                        sheets::place(&sheet_names, n.parse().ok()?)
                                    ))
                                })
                                .unwrap_or_else(|| l.to_owned())
                        })
                        .collect();
                    bail!(
                        "{} bad row(s) in {}; nothing was imported / không nhập gì cả:\n{}",
                        lines.len(),
                        file.display(),
                        lines.join("\n")
                    )
                }
                Err(ImportError::Checked(what)) => bail!("{}: {what}", file.display()),
                Err(ImportError::Unknown(e)) => bail!(
                    "{}: {e}\nunknown whether the records were written: check with `htx-node export`; importing the same file again adds nothing twice / không rõ đã ghi hay chưa",
                    file.display()
                ),
            }
        }
    };
    println!("imported {n} records / đã nhập {n} bản ghi");
    Ok(0)
}

/// `htx-node import --check` of a record file (CSV with a `kind` column,
/// or JSON): every bad row, nothing written.
async fn check_records(dir: &Path, file: &Path, rows: ImportFile) -> anyhow::Result<i32> {
    let Access::Local(node) = access(dir).await? else {
        bail!(
            "--check of a record file needs the node's store; while `run` runs, import the file (a bad file is refused whole, nothing written) / khi nút đang chạy, hãy nhập trực tiếp: tệp lỗi sẽ bị từ chối toàn bộ"
        );
    };
    let (numbers, records): (Vec<u64>, Vec<Record>) = rows.rows.into_iter().unzip();
    let mut bad: Vec<(u64, String)> = node
        .check(records)?
        .into_iter()
        .map(|(i, e)| (numbers[i - 1], e.to_string()))
        .collect();
    bad.extend(rows.unreadable.into_iter().map(|u| (u.row, u.reason)));
    bad.sort_by_key(|(r, _)| *r);
    if !bad.is_empty() {
        for (row, e) in &bad {
            eprintln!("row {row}: {e}");
        }
        bail!(
            "{} bad row(s) in {}; nothing was imported / không nhập gì cả",
            bad.len(),
            file.display()
        );
    }
    println!(
        "{} row(s) good, no errors; nothing written / {} dòng hợp lệ; chưa ghi gì",
        numbers.len(),
        numbers.len()
    );
    Ok(0)
}

/// `--name value --type HTX` into (field, value) pairs.
fn field_pairs(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!("expected --field value, got {flag:?} / cần dạng --tên-trường giá-trị");
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => {
                let v = it
                    .next()
                    .with_context(|| format!("--{name} needs a value / thiếu giá trị"))?;
                (name.to_owned(), v.clone())
            }
        };
        out.push((name.replace('-', "_"), value));
    }
    Ok(out)
}

/// The largest import file, offline or through a running node: the whole
/// file is held in memory and committed at once.
pub const MAX_IMPORT_BYTES: u64 = 256 << 20;

/// Rows of a stream chunk sent to a running node: about this many bytes,
/// well under the 4 MiB a gRPC message may hold.
const IMPORT_CHUNK_BYTES: usize = 1 << 20;

/// An import file, read: the rows that are records, by row number (from 1,
/// after the header line), and the rows that could not be read, with why.
#[derive(Debug, Default)]
pub struct ImportFile {
    pub rows: Vec<(u64, Record)>,
    pub unreadable: Vec<Unreadable>,
}

/// Reads an import file. A row without an id gets one derived from the
/// file's content and its row number ([`schema::import_id`]), so the same
/// file imported twice adds nothing the second time.
pub fn read_import(path: &Path, format: Option<FileFormat>) -> anyhow::Result<ImportFile> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {} / không đọc được tệp", path.display()))?
        .len();
    if size > MAX_IMPORT_BYTES {
        bail!(
            "{} holds {} MiB; an import may hold at most {} MiB: split the file / tệp nhập quá lớn, hãy chia nhỏ",
            path.display(),
            size >> 20,
            MAX_IMPORT_BYTES >> 20
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {} / không đọc được tệp", path.display()))?;
    let hash = schema::file_hash(&bytes);
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text ({e}); save it as UTF-8 / tệp phải được lưu ở dạng UTF-8",
            path.display()
        )
    })?;
    let format = format.unwrap_or(match path.extension().and_then(|e| e.to_str()) {
        Some("json") => FileFormat::Json,
        _ => FileFormat::Csv,
    });
    if let FileFormat::Xlsx = format {
        bail!(
            "an .xlsx file is read by the spreadsheet import / tệp .xlsx được nhập như bảng tính"
        );
    }
    let mut file = ImportFile::default();
    // `id`: the row's id column, kept for a bad row so that rows that
    // refer to it can say so.
    let mut read = |row: u64, id: &str, rec: Result<Record, schema::FieldError>| match rec {
        Ok(mut r) => {
            if r.id.is_empty() {
                r.id = schema::import_id(&hash, row);
            }
            file.rows.push((row, r));
        }
        Err(e) => file.unreadable.push(Unreadable {
            row,
            id: id.trim().to_owned(),
            reason: e.to_string(),
        }),
    };
    match format {
        FileFormat::Json => {
            let rows: Vec<serde_json::Value> = serde_json::from_str(&text)
                .with_context(|| format!(
                    "{} is not a JSON array of records / tệp không phải là một mảng JSON các bản ghi",
                    path.display()
                ))?;
            for (i, row) in rows.iter().enumerate() {
                let id = row.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                read(i as u64 + 1, id, schema::record_from_json(row));
            }
        }
        FileFormat::Csv | FileFormat::Xlsx => {
            let mut rdr = csv::ReaderBuilder::new()
                .flexible(false)
                .from_reader(text.as_bytes());
            let headers = rdr.headers()?.clone();
            if !headers.iter().any(|h| h == "kind") {
                bail!(
                    "{}: the first line must name the columns, one of them `kind` / dòng đầu phải ghi tên các cột, trong đó có cột `kind`",
                    path.display()
                );
            }
            for (i, row) in rdr.records().enumerate() {
                let row_no = i as u64 + 1;
                let row = match row {
                    Ok(r) => r,
                    Err(e) => {
                        read(row_no, "", Err(schema::FieldError::BadUnit(e.to_string())));
                        continue;
                    }
                };
                let column = |name: &str| {
                    headers
                        .iter()
                        .zip(row.iter())
                        .find(|(h, _)| *h == name)
                        .map(|(_, v)| v)
                        .unwrap_or("")
                };
                read(
                    row_no,
                    column("id"),
                    schema::record_from_strings(column("kind"), headers.iter().zip(row.iter())),
                );
            }
        }
    }
    Ok(file)
}

/// `htx-node init`: checks the bundle and sets up `dir`.
pub fn init(dir: &Path, bundle_path: &Path, backend: Backend) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(bundle_path)
        .with_context(|| format!("cannot read {}", bundle_path.display()))?;
    let bundle = Bundle::parse(&text)?;
    let ca = CertificateDer::from_pem_slice(bundle.ca_cert.as_bytes())
        .context("the bundle's CA certificate is not PEM")?;
    if fingerprint(&ca) != bundle.ca_fingerprint {
        bail!(
            "the bundle's CA certificate does not match its fingerprint: the file is damaged / tệp bị hỏng"
        );
    }
    bundle.install_units()?;
    Hierarchy::current().unit(&bundle.unit_version, &bundle.unit)?;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create {}; run init as the service's user (sudo -u htx) in a directory it owns / không tạo được thư mục",
            dir.display()
        )
    })?;
    let probe = dir.join(".init-probe");
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "cannot write in {}; run init as the user that owns it (sudo -u htx) / không ghi được vào thư mục",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    let existing = dir.join(Node::BUNDLE_FILE);
    if let Ok(old) = std::fs::read_to_string(&existing) {
        let old = Bundle::parse(&old)?;
        if old.ca_fingerprint != bundle.ca_fingerprint || old.node != bundle.node {
            bail!(
                "{} already belongs to node {:?} of another hub or name; use a new directory / thư mục đã thuộc nút khác",
                dir.display(),
                old.node
            );
        }
    }
    write_private(&existing, bundle.to_json().as_bytes())?;
    let cfg_path = dir.join(NodeConfig::FILE);
    if !cfg_path.exists() {
        let cfg = NodeConfig {
            backend,
            ..Default::default()
        };
        std::fs::write(&cfg_path, cfg.commented()?)?;
    }
    // Only `init` creates a store; `Node::open` refuses a missing one. An
    // existing store is checked, never reset.
    let cfg = NodeConfig::load(dir)?;
    drop(htx_core::storage::create(cfg.backend, dir)?);
    let node = Node::open(dir)?;
    println!(
        "node {:?} set up in {} for unit {} ({}); hub {}",
        bundle.node,
        dir.display(),
        bundle.unit,
        bundle.unit_version,
        node.hub_url()
    );
    Ok(())
}

/// `htx-node run`: the local API and the sync loop, until SIGINT or SIGTERM.
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let node = Node::open(dir)?;
    let listener = tokio::net::TcpListener::bind(&node.config().api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", node.config().api_listen))?;
    let addr_file = dir.join(API_ADDR_FILE);
    write_atomic(&addr_file, listener.local_addr()?.to_string().as_bytes())?;
    tracing::info!(
        "node {} serving its API on {}",
        node.bundle().node,
        listener.local_addr()?
    );
    let web_tls = web_tls(dir, &node)?;
    let web_listener = tokio::net::TcpListener::bind(&node.config().web_listen)
        .await
        .with_context(|| format!("cannot listen on {}", node.config().web_listen))?;
    let web_addr_file = dir.join(WEB_ADDR_FILE);
    write_atomic(
        &web_addr_file,
        web_listener.local_addr()?.to_string().as_bytes(),
    )?;
    tracing::info!(
        "officers' web app on {}://{} / trang web cho cán bộ",
        if web_tls.is_some() { "https" } else { "http" },
        web_listener.local_addr()?
    );
    let status = tokio::net::TcpListener::bind(&node.config().status_listen)
        .await
        .with_context(|| format!("cannot listen on {}", node.config().status_listen))?;
    let status_file = dir.join(STATUS_ADDR_FILE);
    write_atomic(&status_file, status.local_addr()?.to_string().as_bytes())?;
    tracing::info!(
        "health and metrics on http://{}/metrics",
        status.local_addr()?
    );
    crate::telemetry::install();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut status_stop = stop_rx.clone();
    let status_server = tokio::spawn(
        axum::serve(status, crate::telemetry::router(node.clone()))
            .with_graceful_shutdown(async move {
                let _ = status_stop.changed().await;
            })
            .into_future(),
    );
    let sync = tokio::spawn(sync_client::run_loop(node.clone(), stop_rx.clone()));
    let mut web_stop = stop_rx.clone();
    let web = tokio::spawn(crate::web::serve(
        crate::web::App::new(node.clone(), web_tls.is_some()),
        web_listener,
        web_tls,
        async move {
            let _ = web_stop.changed().await;
        },
    ));
    let mut api_stop = stop_rx.clone();
    let api = tokio::spawn(crate::api::serve(node, listener, async move {
        let _ = api_stop.changed().await;
    }));
    // systemd (Type=notify): the store is open, both ports are bound.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let _ = sync.await;
    let res = api.await?;
    if let Err(e) = web.await? {
        tracing::warn!("the web app stopped with an error: {e}");
    }
    let _ = status_server.await;
    let _ = std::fs::remove_file(addr_file);
    let _ = std::fs::remove_file(web_addr_file);
    let _ = std::fs::remove_file(status_file);
    res
}

/// The web app's TLS configuration, if an identity is installed; refuses
/// a LAN address without one unless plain HTTP was chosen.
fn web_tls(dir: &Path, node: &Node) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let path = crate::web::tls::identity_path(dir);
    if path.exists() {
        let id = crate::web::tls::read_identity(&path, &node.bundle().node)?;
        return Ok(Some(crate::web::tls::server_config(&id)?));
    }
    let cfg = node.config();
    if !crate::web::tls::is_loopback(&cfg.web_listen) && !cfg.web_plain_http {
        bail!(
            "web_listen = {:?} is on the LAN but no HTTPS certificate is installed: passwords would travel in clear. Ask the province for `htx-hub web-cert --node {} --name <this PC's address>` and install it with `htx-node web-cert {} FILE` (docs/office-https.md), or set web_listen back to 127.0.0.1:0. / Trang web nghe trên mạng nội bộ nhưng chưa cài chứng chỉ HTTPS: mật khẩu sẽ truyền không mã hóa. Hãy xin tỉnh cấp chứng chỉ web và cài bằng `htx-node web-cert`.",
            cfg.web_listen,
            node.bundle().node,
            dir.display()
        );
    }
    if !crate::web::tls::is_loopback(&cfg.web_listen) {
        tracing::warn!(
            "web app on {} over plain HTTP (web_plain_http = true): passwords travel in clear / trang web không mã hóa",
            cfg.web_listen
        );
    }
    Ok(None)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs one command; the exit code is what the process returns.
pub async fn main(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Init {
            dir,
            bundle,
            backend,
        } => init(&dir, &bundle, backend)?,
        Command::Run { dir } => run(&dir).await?,
        Command::Backup { dir, out } => {
            let entries = access(&dir).await?.backup(&out).await?;
            println!(
                "backup of {} written to {} ({entries} keys) / đã sao lưu",
                dir.display(),
                out.display()
            );
        }
        Command::Restore { dir, from } => {
            let cfg = NodeConfig::load(&dir)?;
            // A backup of a newer format is refused before anything moves.
            htx_core::format::check_file(&from, htx_core::format::Role::Node)
                .map_err(|e| anyhow::anyhow!("{}: {e}", from.display()))?;
            let (copied, kept) = htx_core::storage::backup::restore(cfg.backend, &dir, &from)
                .map_err(|e| match e {
                    htx_core::storage::StoreError::Locked(p) => anyhow::anyhow!(
                        "{p} is held by a running node: stop it first (systemctl stop htx-node) / hãy dừng nút trước khi khôi phục"
                    ),
                    other => anyhow::anyhow!("{}: {other}", from.display()),
                })?;
            println!(
                "restored {} keys from {} into {} / đã khôi phục",
                copied.entries,
                from.display(),
                dir.display()
            );
            if let Some(k) = kept {
                println!("the replaced store is kept as {}", k.display());
            }
            println!(
                "start the node: the hub sends back what the backup lacks at the next sync / khởi động lại nút"
            );
        }
        Command::Add { dir, kind, fields } => {
            let pairs = field_pairs(&fields)?;
            let rec = schema::record_from_strings(
                &kind,
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?;
            let ids = access(&dir).await?.write(vec![rec]).await?;
            println!("{}", ids[0]);
        }
        Command::Import {
            dir,
            file,
            format,
            check,
        } => {
            if is_sheet(&file, format)? {
                return import_sheet(&dir, &file, check).await;
            }
            let rows = read_import(&file, format)?;
            if check {
                return check_records(&dir, &file, rows).await;
            }
            match access(&dir).await?.import(rows).await {
                Ok(n) => println!("imported {n} records / đã nhập {n} bản ghi"),
                Err(ImportError::Refused(rows)) => bail!(
                    "{} bad row(s) in {}; nothing was imported / không nhập gì cả:\n{rows}",
                    rows.lines().count(),
                    file.display()
                ),
                Err(ImportError::Checked(what)) => bail!("{}: {what}", file.display()),
                Err(ImportError::Unknown(e)) => bail!(
                    "{}: {e}\nunknown whether the records were written: check with `htx-node export`; importing the same file again adds nothing twice / không rõ đã ghi hay chưa: hãy kiểm tra bằng `htx-node export`; nhập lại cùng tệp sẽ không bị trùng",
                    file.display()
                ),
            }
        }
        Command::Template { dir, kind, out } => {
            let mut access = access(&dir).await?;
            let bytes = sheets::template(&*access.holder(&dir).await?, &kind)?;
            write_atomic(&out, &bytes)?;
            println!("wrote {} / đã ghi mẫu {}", out.display(), out.display());
        }
        Command::Export {
            dir,
            format: format @ (ExportFormat::Xlsx | ExportFormat::Csv),
            kind,
            unit,
            out,
            ..
        } => {
            let kind = kind.context("--kind is required for xlsx and csv / cần ghi --kind")?;
            let format = match format {
                ExportFormat::Xlsx => sheets::Format::Xlsx,
                _ => sheets::Format::Csv,
            };
            let mut access = access(&dir).await?;
            let bytes =
                sheets::export(&*access.holder(&dir).await?, &kind, unit.as_deref(), format)?;
            match out {
                Some(out) => {
                    write_atomic(&out, &bytes)?;
                    println!("wrote {} / đã ghi {}", out.display(), out.display());
                }
                None if format == sheets::Format::Csv => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
                None => bail!("--out FILE is required for xlsx / cần ghi --out TỆP"),
            }
        }
        Command::Export {
            dir,
            format: ExportFormat::Json,
            include_deleted,
            ..
        } => {
            let records = access(&dir).await?.export(include_deleted).await?;
            let json: Vec<_> = records.iter().map(Record::to_json).collect();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Command::WebCert { dir, file } => {
            let bundle = htx_core::pki::Bundle::parse(
                &std::fs::read_to_string(dir.join(Node::BUNDLE_FILE))
                    .with_context(|| format!("{} is not a node directory", dir.display()))?,
            )?;
            let id = crate::web::tls::read_identity(&file, &bundle.node)?;
            htx_core::pki::write_private(
                &crate::web::tls::identity_path(&dir),
                serde_json::to_string_pretty(&id)?.as_bytes(),
            )?;
            println!(
                "web certificate for {} ({}) installed, valid until {}; restart the node to serve https:// / đã cài chứng chỉ web, khởi động lại nút để dùng",
                id.node,
                id.names.join(", "),
                id.expires_at
            );
        }
        Command::Delete {
            dir,
            id,
            restore,
            reason,
        } => {
            access(&dir).await?.delete(&id, restore, &reason).await?;
            println!("{} {id}", if restore { "restored" } else { "deleted" });
        }
        Command::Sync { dir, once: _ } => {
            let r = access(&dir).await?.sync_once().await?;
            println!(
                "{}: {} round trip(s), sent {} change(s) in {} B, received {} change(s) in {} B",
                if r.in_sync {
                    "in sync / đã đồng bộ"
                } else {
                    "not yet in sync / chưa đồng bộ xong"
                },
                r.round_trips,
                r.changes_sent,
                r.bytes_sent,
                r.changes_received,
                r.bytes_received
            );
            if !r.in_sync {
                return Ok(3);
            }
        }
        Command::Progress {
            dir,
            unit,
            as_of,
            hierarchy,
            format,
        } => {
            let reply = access(&dir).await?.progress(unit, as_of, hierarchy).await?;
            match format {
                ProgressFormat::Table => print!("{}", htx_core::report::to_table(&reply)),
                ProgressFormat::Csv => print!("{}", htx_core::report::to_csv(&reply)),
                ProgressFormat::Json => println!("{}", serde_json::to_string_pretty(&reply)?),
            }
        }
        Command::User { command } => crate::users::main(command)?,
        Command::Status { dir, format } => {
            let s = access(&dir).await?.status().await?;
            match format {
                StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&s)?),
                StatusFormat::Text => {
                    for (k, v) in s.as_object().expect("object") {
                        println!(
                            "{k:>22}: {}",
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        );
                    }
                }
            }
        }
    }
    Ok(0)
}

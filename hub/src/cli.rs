//! # The `htx-hub` commands
//!
//! While `run` holds the hub directory, `nodes` and `export` reach it
//! through its admin API (address in `DIR/admin.addr`); otherwise they open
//! the store themselves. `init` and `enroll` only touch files, so they work
//! either way.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use htx_core::pki::{write_atomic, write_private};
use htx_core::schema::Record;
use htx_core::storage::Backend;
use htx_core::wire;
use htx_proto::v1::{self as pb, hub_admin_client::HubAdminClient};
use tonic::transport::Channel;

use crate::config::HubConfig;
use crate::home::Home;
use crate::hub::Hub;

#[derive(Parser, Debug)]
#[command(
    name = "htx-hub",
    version,
    about = "HTX Sync provincial hub: merges every node's data"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Creates a hub home: its CA, its certificate, its config file.
    Init {
        dir: PathBuf,
        /// Where nodes connect (default 0.0.0.0:7443).
        #[arg(long)]
        listen: Option<String>,
        /// How nodes reach the hub, written into their bundles (default https://localhost:7443).
        #[arg(long)]
        public_url: Option<String>,
        /// A name or address the hub certificate is valid for (repeat; the first is checked by nodes).
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        #[arg(long, default_value = "redb")]
        backend: Backend,
    },
    /// Writes a node bundle: certificate and key, CA, hub address.
    Enroll {
        dir: PathBuf,
        /// The unit the node serves, with its subtree (a GSO code).
        #[arg(long)]
        unit: String,
        /// How the hub names this node (unique; default: the unit code).
        #[arg(long)]
        name: Option<String>,
        /// Hierarchy version of --unit (default: the hub's, 2023 out of the box).
        #[arg(long)]
        unit_version: Option<String>,
        #[arg(long)]
        out: PathBuf,
        /// A new certificate for an enrolled node's new machine (its old one
        /// died); the old certificate is no longer accepted.
        #[arg(long)]
        replace: bool,
    },
    /// Withdraws a node's certificate: the hub refuses it from now on, even
    /// on a connection already open.
    Revoke {
        dir: PathBuf,
        /// The node's name, as given at enrolment.
        name: String,
    },
    /// Issues the hub a new server certificate from the same CA (nodes need
    /// no new bundle); restart the hub to use it.
    RotateCert { dir: PathBuf },
    /// Issues an office's web app its HTTPS certificate for the addresses
    /// the office's browsers use (renew by issuing again), from the office
    /// web CA: install the file with `htx-node web-cert`, and the CA
    /// (`web-ca.pem`, also in the file) in the office's browsers.
    WebCert {
        dir: PathBuf,
        /// The enrolled node's name.
        #[arg(long)]
        node: String,
        /// An address or LAN name browsers use: 192.168.1.10, vu-ban.lan
        /// (repeat for several).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// How long it is valid, in days.
        #[arg(long, default_value_t = 730)]
        days: i64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Serves nodes (mutual TLS) and the admin API.
    Run { dir: PathBuf },
    /// Prints every merged record.
    Export {
        dir: PathBuf,
        /// json: every record; table: records per unit and kind.
        #[arg(long, default_value = "json")]
        format: HubExportFormat,
        #[arg(long)]
        include_deleted: bool,
    },
    /// Progress against the plan for a unit (default: the province), as of a
    /// date (default: today), under a hierarchy version (default: the hub's).
    Progress {
        dir: PathBuf,
        #[arg(long)]
        unit: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        as_of: Option<String>,
        /// 2023, 2024 or 2025
        #[arg(long)]
        hierarchy: Option<String>,
        /// The plan's id (one of `plan_files`); default: the first.
        #[arg(long)]
        plan: Option<String>,
        #[arg(long, default_value = "table")]
        format: ProgressFormat,
    },
    /// Shows every enrolled node: state, last sync as an age, documents
    /// behind, versions, certificate expiry; stale nodes first.
    Nodes {
        dir: PathBuf,
        #[arg(long, default_value = "text")]
        format: NodesFormat,
        /// Flag nodes with no completed sync for this many days (default:
        /// `stale_after_days` in hub.toml, 7).
        #[arg(long)]
        stale_days: Option<u64>,
    },
    /// Writes a consistent copy of the store to FILE, while `run` runs (or not).
    Backup {
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Puts a backup in place of the store (the hub must be stopped); the
    /// store it replaces is kept as `store.redb.before-restore`.
    Restore {
        dir: PathBuf,
        #[arg(long)]
        from: PathBuf,
    },
    /// Lists the batches of changes the hub refused, or shows one.
    Quarantine {
        dir: PathBuf,
        /// A quarantined batch's id: its reason, node, changes and records.
        #[arg(long)]
        show: Option<String>,
    },
    /// Prints the audit log: accepted and refused batches, warnings.
    Audit {
        dir: PathBuf,
        /// Only this node's events.
        #[arg(long)]
        node: Option<String>,
    },
    /// Accounts of the dashboard (the pages on the HTTP port).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Closed periods: close one (the hub keeps its figures), reopen it, list them.
    Period {
        #[command(subcommand)]
        command: PeriodCommand,
    },
    /// The yearly report or a phase review: cover and sections, stamped
    /// with plan, period, as-of date, hierarchy version, nodes and data version.
    Report {
        dir: PathBuf,
        /// The plan's id (checked against the hub's plan).
        #[arg(long)]
        plan: Option<String>,
        /// A year (2025) or a phase (phase-1).
        #[arg(long)]
        period: String,
        /// A unit (GSO code; default: the province).
        #[arg(long)]
        unit: Option<String>,
        /// 2023, 2024 or 2025 (default: the hub's).
        #[arg(long)]
        hierarchy: Option<String>,
        #[arg(long, default_value = "xlsx")]
        format: ReportFormat,
        /// Where to write it (default: bao-cao-UNIT-PERIOD.EXT here; `-` for stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// English instead of Vietnamese.
        #[arg(long)]
        english: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Creates an account; the password is read from standard input (one line).
    Add {
        dir: PathBuf,
        name: String,
        /// admin (everything, accounts included), analyst (figures and
        /// reports; closes periods) or viewer (reads).
        #[arg(long)]
        role: String,
        /// Restricts the account to this unit and those below it (GSO code in
        /// the hub's hierarchy version; repeat for several). None: every unit.
        #[arg(long = "unit")]
        units: Vec<String>,
    },
    /// Sets a new password (read from standard input) and lifts a lock-out.
    Passwd { dir: PathBuf, name: String },
    /// Disables an account at once (its open sessions stop working), or
    /// enables it again with --enable.
    Disable {
        dir: PathBuf,
        name: String,
        #[arg(long)]
        enable: bool,
    },
    /// Lists the accounts: name, role, units, state.
    List { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum PeriodCommand {
    /// Closes a period: keeps the report's figures as of its end, with
    /// their data version (opens the store: while `run` runs, close it on
    /// the dashboard's /periods page).
    Close {
        dir: PathBuf,
        /// The plan's id (checked against the hub's plan).
        #[arg(long)]
        plan: Option<String>,
        /// A year (2025) or a phase (phase-1).
        #[arg(long)]
        period: String,
        /// Who closes it (written in the period's log and the audit).
        #[arg(long)]
        by: String,
    },
    /// Reopens a closed period (works while `run` runs).
    Reopen {
        dir: PathBuf,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        period: String,
        #[arg(long)]
        by: String,
    },
    /// Lists the periods that were closed or submitted to (works while `run` runs).
    List {
        dir: PathBuf,
        #[arg(long)]
        plan: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    Xlsx,
    Html,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HubExportFormat {
    Json,
    Table,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProgressFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NodesFormat {
    Text,
    Json,
}

pub const ADMIN_ADDR_FILE: &str = "admin.addr";
pub const SYNC_ADDR_FILE: &str = "sync.addr";
pub const HTTP_ADDR_FILE: &str = "http.addr";

enum Access {
    /// The running process's loopback API.
    Remote(Channel),
    Local(Hub),
}

async fn access(dir: &Path) -> anyhow::Result<Access> {
    if let Ok(addr) = std::fs::read_to_string(dir.join(ADMIN_ADDR_FILE)) {
        let endpoint = Channel::from_shared(format!("http://{}", addr.trim()))?
            .connect_timeout(std::time::Duration::from_secs(3));
        if let Ok(ch) = endpoint.connect().await {
            return Ok(Access::Remote(ch));
        }
    }
    match Hub::open(dir) {
        Ok(h) => Ok(Access::Local(h)),
        Err(e) => match e.downcast_ref::<htx_core::storage::StoreError>() {
            Some(htx_core::storage::StoreError::Locked(p)) => {
                bail!(
                    "{p} is held by a running `htx-hub run`, but its admin API does not answer / máy chủ đang chạy nhưng không phản hồi"
                )
            }
            _ => Err(e),
        },
    }
}

impl Access {
    async fn nodes(&mut self) -> anyhow::Result<pb::NodesReply> {
        match self {
            Access::Remote(ch) => {
                let mut c = HubAdminClient::new(ch.clone()).max_decoding_message_size(usize::MAX);
                Ok(c.nodes(pb::NodesRequest {}).await?.into_inner())
            }
            Access::Local(h) => {
                let now = time::OffsetDateTime::now_utc();
                Ok(pb::NodesReply {
                    nodes: h
                        .nodes()?
                        .into_iter()
                        .map(|v| crate::admin::node_info(v, now))
                        .collect(),
                })
            }
        }
    }

    /// Writes a consistent copy of the store to `out`: streamed from the
    /// running hub, or taken from the store directly.
    async fn backup(&mut self, out: &Path) -> anyhow::Result<u64> {
        if out.exists() {
            bail!(
                "{} already exists; choose a new file name / tệp đã tồn tại, hãy chọn tên khác",
                out.display()
            );
        }
        match self {
            Access::Remote(ch) => {
                let mut c = HubAdminClient::new(ch.clone()).max_decoding_message_size(usize::MAX);
                let mut stream = c.backup(pb::BackupRequest {}).await?.into_inner();
                let mut chunks = Vec::new();
                while let Some(chunk) = stream.message().await? {
                    chunks.push(chunk);
                }
                Ok(wire::backup_from_chunks(&chunks, out)
                    .with_context(|| format!("writing {}", out.display()))?)
            }
            Access::Local(h) => Ok(h.backup(out)?.entries as u64),
        }
    }

    async fn progress(
        &mut self,
        query: crate::progress::Query,
    ) -> anyhow::Result<pb::ProgressReply> {
        match self {
            Access::Remote(ch) => {
                let req = pb::ProgressRequest {
                    unit: query.unit.unwrap_or_default(),
                    as_of: query.as_of.unwrap_or_default(),
                    hierarchy: query.hierarchy.unwrap_or_default(),
                    plan: query.plan.unwrap_or_default(),
                };
                let mut client = pb::progress_client::ProgressClient::new(ch.clone())
                    .max_decoding_message_size(usize::MAX);
                Ok(client
                    .get(req)
                    .await
                    .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?
                    .into_inner())
            }
            Access::Local(h) => h.progress(&query),
        }
    }

    async fn export(&mut self, include_deleted: bool) -> anyhow::Result<Vec<Record>> {
        match self {
            Access::Remote(ch) => {
                let mut c = HubAdminClient::new(ch.clone()).max_decoding_message_size(usize::MAX);
                Ok(c.export(pb::ExportRequest { include_deleted })
                    .await?
                    .into_inner()
                    .records
                    .iter()
                    .map(wire::record_from_wire)
                    .collect())
            }
            Access::Local(h) => Ok(h.export(include_deleted)?),
        }
    }
}

/// Records per unit and kind, with the unit's name, for a terminal.
fn print_table(records: &[Record]) {
    use std::collections::BTreeMap;
    let h = htx_core::units::Hierarchy::current();
    let kinds: Vec<&str> = htx_core::schema::KINDS.iter().map(|k| k.name).collect();
    let mut rows: BTreeMap<(String, String), BTreeMap<&str, usize>> = BTreeMap::new();
    for r in records {
        let unit = r.text("unit").unwrap_or("?").to_owned();
        let version = r.text("unit_version").unwrap_or("2023").to_owned();
        let kind = kinds.iter().find(|k| **k == r.kind).copied().unwrap_or("?");
        *rows
            .entry((version, unit))
            .or_default()
            .entry(kind)
            .or_default() += 1;
    }
    print!("{:<7} {:<28}", "unit", "name");
    for k in &kinds {
        print!(" {:>11}", k);
    }
    println!();
    for ((version, unit), counts) in rows {
        let name = h
            .unit(&version, &unit)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        print!(
            "{unit:<7} {:<28}",
            name.chars().take(28).collect::<String>()
        );
        for k in &kinds {
            print!(" {:>11}", counts.get(k).copied().unwrap_or(0));
        }
        println!();
    }
}

/// `htx-hub run`: both servers until SIGINT or SIGTERM.
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let hub = Hub::open(dir)?;
    let sync = tokio::net::TcpListener::bind(&hub.config().listen)
        .await
        .with_context(|| format!("cannot listen on {}", hub.config().listen))?;
    let admin = tokio::net::TcpListener::bind(&hub.config().admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", hub.config().admin_listen))?;
    write_atomic(
        &dir.join(SYNC_ADDR_FILE),
        sync.local_addr()?.to_string().as_bytes(),
    )?;
    write_atomic(
        &dir.join(ADMIN_ADDR_FILE),
        admin.local_addr()?.to_string().as_bytes(),
    )?;
    tracing::info!(
        "hub serving nodes on {} (mutual TLS), admin API on {}",
        sync.local_addr()?,
        admin.local_addr()?
    );
    let http = tokio::net::TcpListener::bind(&hub.config().http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", hub.config().http_listen))?;
    write_atomic(
        &dir.join(HTTP_ADDR_FILE),
        http.local_addr()?.to_string().as_bytes(),
    )?;
    tracing::info!(
        "progress over HTTP on http://{}/api/progress",
        http.local_addr()?
    );
    // systemd (Type=notify): every port is bound, the store is open.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let daily = {
        let hub = hub.clone();
        tokio::spawn(async move {
            loop {
                crate::telemetry::warn_expiry(&hub);
                tokio::time::sleep(std::time::Duration::from_secs(86_400)).await;
            }
        })
    };
    let res = crate::admin::serve(hub, sync, admin, http, shutdown_signal()).await;
    daily.abort();
    let _ = std::fs::remove_file(dir.join(HTTP_ADDR_FILE));
    let _ = std::fs::remove_file(dir.join(ADMIN_ADDR_FILE));
    let _ = std::fs::remove_file(dir.join(SYNC_ADDR_FILE));
    res
}

pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn main(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Init {
            dir,
            listen,
            public_url,
            server_names,
            backend,
        } => {
            let mut cfg = HubConfig {
                backend,
                ..Default::default()
            };
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(u) = public_url {
                cfg.public_url = u;
            }
            if !server_names.is_empty() {
                cfg.server_names = server_names;
            }
            Home::new(&dir).init(&cfg)?;
            println!(
                "hub home created in {}: CA, certificate for {:?}, {}",
                dir.display(),
                cfg.server_names,
                HubConfig::FILE
            );
        }
        Command::Enroll {
            dir,
            unit,
            name,
            unit_version,
            out,
            replace,
        } => {
            let cfg = HubConfig::load(&dir)?;
            let bundle = Home::new(&dir).enroll(
                &cfg,
                &unit,
                unit_version.as_deref(),
                name.as_deref(),
                replace,
            )?;
            write_private(&out, bundle.to_json().as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "enrolled node {:?} for unit {} ({}); bundle written to {}",
                bundle.node,
                bundle.unit,
                bundle.unit_version,
                out.display()
            );
        }
        Command::Revoke { dir, name } => {
            let e = Home::new(&dir).revoke(&name)?;
            println!(
                "node {:?} revoked at {} / đã thu hồi chứng chỉ của nút",
                e.name, e.revoked_at
            );
        }
        Command::RotateCert { dir } => {
            let cfg = HubConfig::load(&dir)?;
            let fp = Home::new(&dir).rotate_server_cert(&cfg)?;
            println!(
                "new hub certificate {fp} for {:?}; restart the hub to use it",
                cfg.server_names
            );
        }
        Command::WebCert {
            dir,
            node,
            names,
            days,
            out,
        } => {
            let cfg = HubConfig::load(&dir)?;
            let home = Home::new(&dir);
            let id = home.web_cert(&cfg, &node, &names, days)?;
            write_private(&out, serde_json::to_string_pretty(&id)?.as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "web certificate for {node} ({}) until {} written to {}; install it with `htx-node web-cert NODE_DIR {}`, and {} in the office's browsers / đã cấp chứng chỉ web",
                names.join(", "),
                id.expires_at,
                out.display(),
                out.display(),
                dir.join("web-ca.pem").display()
            );
        }
        Command::Run { dir } => run(&dir).await?,
        Command::Export {
            dir,
            format,
            include_deleted,
        } => {
            let records = access(&dir).await?.export(include_deleted).await?;
            match format {
                HubExportFormat::Json => {
                    let json: Vec<_> = records.iter().map(Record::to_json).collect();
                    println!("{}", serde_json::to_string_pretty(&json)?);
                }
                HubExportFormat::Table => print_table(&records),
            }
        }
        Command::Progress {
            dir,
            unit,
            as_of,
            hierarchy,
            plan,
            format,
        } => {
            let query = crate::progress::Query {
                unit,
                as_of,
                hierarchy,
                plan,
            };
            let reply = access(&dir).await?.progress(query).await?;
            match format {
                ProgressFormat::Table => print!("{}", htx_core::report::to_table(&reply)),
                ProgressFormat::Csv => print!("{}", htx_core::report::to_csv(&reply)),
                ProgressFormat::Json => println!("{}", serde_json::to_string_pretty(&reply)?),
            }
        }
        Command::Quarantine { dir, show } => match show {
            Some(id) => crate::quarantine::print_one(&crate::quarantine::show(&dir, &id)?)?,
            None => crate::quarantine::print_list(&crate::quarantine::list(&dir)?),
        },
        Command::Audit { dir, node } => {
            let log = crate::audit::read_log(&dir, node.as_deref())?;
            for e in &log.events {
                println!("{e}");
            }
            for (line, why) in &log.bad_lines {
                eprintln!(
                    "{}: line {line} is not a readable entry and was skipped: {why} / dòng {line} của nhật ký không đọc được, đã bỏ qua",
                    dir.join(crate::audit::FILE).display()
                );
            }
        }
        Command::User { command } => user(command)?,
        Command::Period { command } => period(command)?,
        Command::Report {
            dir,
            plan,
            period,
            unit,
            hierarchy,
            format,
            out,
            english,
        } => {
            report(ReportArgs {
                dir,
                plan,
                period,
                unit,
                hierarchy,
                format,
                out,
                english,
            })?;
        }
        Command::Nodes {
            dir,
            format,
            stale_days,
        } => {
            let stale_days = match stale_days {
                Some(d) => d,
                None => HubConfig::load(&dir)?.stale_after_days,
            };
            let reply = access(&dir).await?.nodes().await?;
            let rows = crate::node_list::rows(
                reply,
                time::OffsetDateTime::now_utc(),
                time::Duration::days(stale_days as i64),
            );
            match format {
                NodesFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::node_list::to_json(&rows))?
                ),
                NodesFormat::Text => print!("{}", crate::node_list::to_text(&rows)),
            }
        }
        Command::Backup { dir, out } => {
            let entries = access(&dir).await?.backup(&out).await?;
            println!(
                "backup of {} written to {} ({entries} keys) / đã sao lưu",
                dir.display(),
                out.display()
            );
        }
        Command::Restore { dir, from } => {
            let cfg = HubConfig::load(&dir)?;
            // A backup of a newer format is refused before anything moves.
            htx_core::format::check_file(&from, htx_core::format::Role::Hub)
                .map_err(|e| anyhow::anyhow!("{}: {e}", from.display()))?;
            let (copied, kept) = htx_core::storage::backup::restore(cfg.backend, &dir, &from)
                .map_err(|e| match e {
                    htx_core::storage::StoreError::Locked(p) => anyhow::anyhow!(
                        "{p} is held by a running hub: stop it first (systemctl stop htx-hub) / hãy dừng máy chủ tỉnh trước khi khôi phục"
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
                "start the hub: nodes send back what the backup lacks at their next sync / khởi động lại máy chủ tỉnh"
            );
        }
    }
    Ok(0)
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `htx-hub user ...`: the dashboard's accounts in `DIR/users.json`.
fn user(command: UserCommand) -> anyhow::Result<()> {
    let accounts = |dir: &Path| -> anyhow::Result<htx_web::Accounts> {
        HubConfig::load(dir)?; // a hub home, or a clear error
        Ok(htx_web::Accounts::new(
            dir,
            htx_web::accounts::Lockout::default(),
        ))
    };
    match command {
        UserCommand::Add {
            dir,
            name,
            role,
            units,
        } => {
            let role: htx_web::Role = role.parse()?;
            if role == htx_web::Role::Editor {
                bail!(
                    "the hub has no editors (records are written on nodes): admin, analyst or viewer / máy chủ tỉnh không có vai trò nhập liệu"
                );
            }
            let cfg = HubConfig::load(&dir)?;
            let h = htx_core::units::Hierarchy::current();
            for u in &units {
                h.unit(&cfg.default_unit_version, u).map_err(|e| {
                    anyhow::anyhow!("--unit {u}: {e} / mã đơn vị không có trong danh mục")
                })?;
            }
            let password = read_password()?;
            let a = accounts(&dir)?.add(&name, role, units, &password)?;
            println!(
                "account {:?} created ({}{}) / đã tạo tài khoản",
                a.name,
                a.role.as_str(),
                if a.units.is_empty() {
                    String::new()
                } else {
                    format!(", units {}", a.units.join(", "))
                }
            );
        }
        UserCommand::Passwd { dir, name } => {
            let password = read_password()?;
            accounts(&dir)?.set_password(&name, &password)?;
            println!("password of {name:?} changed / đã đổi mật khẩu");
        }
        UserCommand::Disable { dir, name, enable } => {
            accounts(&dir)?.set_disabled(&name, !enable)?;
            if enable {
                println!("account {name:?} enabled / đã mở lại tài khoản");
            } else {
                println!("account {name:?} disabled / đã khóa tài khoản");
            }
        }
        UserCommand::List { dir } => {
            println!("{:<20} {:<8} {:<9} units", "name", "role", "state");
            for a in accounts(&dir)?.list()? {
                let state = if a.disabled {
                    "disabled"
                } else if a.locked_until.is_some() {
                    "locked?"
                } else {
                    "active"
                };
                let units = if a.units.is_empty() {
                    "all".to_owned()
                } else {
                    a.units.join(",")
                };
                println!("{:<20} {:<8} {:<9} {units}", a.name, a.role.as_str(), state);
            }
        }
    }
    Ok(())
}

/// The hub's plan, checked against `--plan`.
fn checked_plan(dir: &Path, asked: Option<&str>) -> anyhow::Result<htx_core::plan::Plan> {
    let plan = crate::hub::default_plan(dir)?;
    if let Some(p) = asked
        && p != plan.id
    {
        return Err(crate::report::ReportError::OtherPlan(plan.id.clone(), p.to_owned()).into());
    }
    Ok(plan)
}

/// `htx-hub period ...`: the period files in `DIR/periods/`, audited in
/// `DIR/web-audit.log` as the dashboard's forms are.
fn period(command: PeriodCommand) -> anyhow::Result<()> {
    use crate::periods::{self, PeriodStore};
    let audit = |dir: &Path, by: &str, action: &str, period: &str, detail: &str| {
        htx_web::audit::Audit::new(dir).record(by, action, period, detail);
    };
    match command {
        PeriodCommand::Close {
            dir,
            plan,
            period,
            by,
        } => {
            checked_plan(&dir, plan.as_deref())?;
            let hub = match Hub::open(&dir) {
                Ok(h) => h,
                Err(e) => match e.downcast_ref::<htx_core::storage::StoreError>() {
                    Some(htx_core::storage::StoreError::Locked(_)) => bail!(
                        "the hub is running: close the period on the dashboard's /periods page, or stop it first / máy chủ đang chạy: chốt số liệu trên trang Chốt số liệu"
                    ),
                    _ => return Err(e),
                },
            };
            let p = periods::ended_period(hub.plan(), &period)?;
            let c = periods::close(&hub, hub.plan(), &p, &by)?;
            audit(&dir, &by, "period_closed", &p.id, &c.data_version);
            println!(
                "period {} closed by {by}: figures as of {} kept, data version {} / đã chốt số liệu",
                p.id, c.as_of, c.data_version
            );
        }
        PeriodCommand::Reopen {
            dir,
            plan,
            period,
            by,
        } => {
            let plan = checked_plan(&dir, plan.as_deref())?;
            let p = crate::report::parse_period(&plan, &period)?;
            PeriodStore::new(&dir).reopen(&plan.id, &p, &by)?;
            audit(&dir, &by, "period_reopened", &p.id, "");
            println!("period {} reopened by {by} / đã mở lại kỳ báo cáo", p.id);
        }
        PeriodCommand::List { dir, plan } => {
            let plan = checked_plan(&dir, plan.as_deref())?;
            println!(
                "{:<10} {:<8} {:<22} {:<16} submitted",
                "period", "state", "closed at", "by"
            );
            for f in PeriodStore::new(&dir).list(&plan.id)? {
                let (state, at, by) = match &f.closing {
                    Some(c) => ("closed", c.at.as_str(), c.by.as_str()),
                    None => ("open", "", ""),
                };
                let units: Vec<&str> = f.submissions.keys().map(String::as_str).collect();
                println!(
                    "{:<10} {:<8} {:<22} {:<16} {}",
                    f.period,
                    state,
                    at,
                    by,
                    units.join(",")
                );
            }
        }
    }
    Ok(())
}

struct ReportArgs {
    dir: PathBuf,
    plan: Option<String>,
    period: String,
    unit: Option<String>,
    hierarchy: Option<String>,
    format: ReportFormat,
    out: Option<PathBuf>,
    english: bool,
}

/// `htx-hub report`: opens the hub's store (stop `run` first, or download
/// the same report from the dashboard's report page).
fn report(a: ReportArgs) -> anyhow::Result<()> {
    let hub = match Hub::open(&a.dir) {
        Ok(h) => h,
        Err(e) => match e.downcast_ref::<htx_core::storage::StoreError>() {
            Some(htx_core::storage::StoreError::Locked(_)) => bail!(
                "the hub is running: download the report from its report page (/report), or stop it first / máy chủ đang chạy: tải báo cáo từ trang Báo cáo"
            ),
            _ => return Err(e),
        },
    };
    let lang = if a.english {
        htx_web::Lang::En
    } else {
        htx_web::Lang::Vi
    };
    let req = crate::report::Request {
        plan: a.plan.unwrap_or_default(),
        unit: a.unit.unwrap_or_default(),
        period: a.period,
        hierarchy: a.hierarchy.unwrap_or_default(),
    };
    let report = crate::report::build(&hub, lang, &req)?;
    let (bytes, ext) = match a.format {
        ReportFormat::Xlsx => (report.to_xlsx(lang)?, "xlsx"),
        ReportFormat::Json => (serde_json::to_vec_pretty(&report)?, "json"),
        ReportFormat::Html => (
            crate::web::reports::standalone(&report, lang)?.into_bytes(),
            "html",
        ),
    };
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "bao-cao-{}-{}.{ext}",
            report.stamp.unit, report.stamp.period.id
        ))
    });
    if out.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(&bytes)?;
    } else {
        write_atomic(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "report written to {} (data version {}) / đã ghi báo cáo",
            out.display(),
            report.stamp.data_version
        );
    }
    Ok(())
}

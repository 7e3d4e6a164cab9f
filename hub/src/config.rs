//! The hub's configuration: `DIR/hub.toml`, written by `htx-hub init`,
//! with environment overrides for every field (`HTX_HUB_<FIELD>`, layered
//! by figment). `deploy/hub.example.toml` documents each field.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use htx_core::storage::Backend;
use serde::{Deserialize, Serialize};

/// Environment variables `HTX_HUB_<FIELD>` override `hub.toml`'s `<field>`.
pub const ENV_PREFIX: &str = "HTX_HUB_";

/// The documented example, every field explained (`init` writes it).
pub const EXAMPLE: &str = include_str!("../../deploy/hub.example.toml");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Name of this hub's CA (its certificates' issuer).
    pub ca_name: String,
    /// Where nodes connect (gRPC over mutual TLS).
    pub listen: String,
    /// The address written into node bundles: how nodes reach `listen`.
    pub public_url: String,
    /// Names and addresses the hub's certificate is valid for; the first is
    /// the name nodes check.
    pub server_names: Vec<String>,
    /// The administration API (loopback only; port 0 picks a free one,
    /// written to `DIR/admin.addr` while `run` is running).
    pub admin_listen: String,
    /// The dashboard and progress as JSON and CSV over plain HTTP
    /// (`/api/progress`); port 0 picks a free one, written to
    /// `DIR/http.addr` while `run` is running.
    pub http_listen: String,
    /// Serve `/api/progress` without sign-in, counts only (no node names,
    /// no record ids): the province's public page of counts. Off: it
    /// answers signed-in dashboard sessions only, limited to their units.
    pub public_progress: bool,
    pub backend: Backend,
    /// The plan file progress is computed with, published read-only to
    /// every node; empty: the built-in Đề án 01 plan of Nam Định
    /// (`deploy/plans/de-an-01-nam-dinh.toml`).
    pub plan_file: String,
    /// More plans to follow besides `plan_file` (paths, relative to the
    /// hub's directory): `htx-hub progress --plan ID` picks one. The first
    /// plan followed (`plan_file`, else the first of these, else the
    /// built-in one) is the default and the one published to nodes.
    pub plan_files: Vec<String>,
    /// Allocation files (paths, relative to the hub's directory): targets
    /// of units below a plan's territory, each file naming its plan.
    pub allocation_files: Vec<String>,
    /// Hierarchy version for units named without one (the plan's own).
    pub default_unit_version: String,
    /// A directory (relative to the hub's) holding unit lists in place of
    /// the built-in ones (the four files of `core/admin-units/`, by name):
    /// e.g. a hub over more than one province. Empty: the built-in lists.
    /// Nodes are sent the hub's lists.
    pub units_dir: String,
    /// Lifetime of the certificates `enroll` and renewals issue.
    pub node_cert_days: i64,
    /// If set, overrides `node_cert_days` (seconds; for tests of expiry).
    pub node_cert_secs: Option<i64>,
    /// Largest message accepted from a node.
    pub max_message_bytes: usize,
    /// Upper bound of one batch of changes sent to a node.
    pub max_batch_bytes: usize,
    /// Largest a document may grow to with a node's changes; a batch that
    /// would take it over is refused and quarantined.
    pub max_doc_bytes: u64,
    /// Sync sessions one node may have open at once; more are refused.
    pub max_sessions_per_node: usize,
    /// Documents one session may send or ask for.
    pub max_docs_per_session: usize,
    /// gRPC streams one connection may open at once.
    pub max_streams_per_connection: u32,
    /// A session that sends nothing for this long is closed.
    pub idle_timeout_secs: u64,
    /// `htx-hub nodes` flags a node with no completed sync for this many days.
    pub stale_after_days: u64,
    /// Most documents kept loaded in memory (least recently used dropped
    /// first; they stay in the store); 0: no bound.
    pub doc_cache_docs: usize,
    /// Most stored bytes of the documents kept loaded; 0: no bound.
    pub doc_cache_bytes: u64,
    /// Load and check every document when the hub starts, rather than each
    /// one when first used.
    pub check_documents_at_start: bool,
    /// Seconds between two returns of freed memory to the system
    /// ([`crate::memory`]); 0: never.
    pub memory_trim_secs: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ca_name: "HTX Sync hub CA".into(),
            listen: "0.0.0.0:7443".into(),
            public_url: "https://localhost:7443".into(),
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            admin_listen: "127.0.0.1:0".into(),
            http_listen: "127.0.0.1:0".into(),
            public_progress: false,
            backend: Backend::Redb,
            plan_file: String::new(),
            plan_files: Vec::new(),
            allocation_files: Vec::new(),
            default_unit_version: htx_core::units::DEFAULT_VERSION.into(),
            units_dir: String::new(),
            node_cert_days: 365,
            node_cert_secs: None,
            max_message_bytes: 16 << 20,
            max_batch_bytes: htx_core::sync::MAX_BATCH_BYTES,
            max_doc_bytes: 16 << 20,
            max_sessions_per_node: 2,
            max_docs_per_session: 10_000,
            max_streams_per_connection: 16,
            idle_timeout_secs: 120,
            stale_after_days: 7,
            doc_cache_docs: 256,
            doc_cache_bytes: 16 << 20,
            check_documents_at_start: false,
            memory_trim_secs: 30,
        }
    }
}

impl HubConfig {
    pub const FILE: &'static str = "hub.toml";

    /// Every field documented, as `deploy/hub.example.toml` explains it,
    /// with this config's values: what `init` writes.
    pub fn commented(&self) -> Result<String, toml::ser::Error> {
        let values = toml::Table::try_from(self)?;
        Ok(htx_core::settings::commented(EXAMPLE, &values))
    }

    /// How the hub's replica keeps documents in memory.
    pub fn replica_options(&self) -> htx_core::replica::Options {
        htx_core::replica::Options {
            check_at_open: self.check_documents_at_start,
            cache_docs: (self.doc_cache_docs > 0).then_some(self.doc_cache_docs),
            cache_bytes: (self.doc_cache_bytes > 0).then_some(self.doc_cache_bytes),
        }
    }

    pub fn node_cert_lifetime(&self) -> time::Duration {
        match self.node_cert_secs {
            Some(s) => time::Duration::seconds(s),
            None => time::Duration::days(self.node_cert_days),
        }
    }

    /// Reads `DIR/hub.toml` over the defaults, then any `HTX_HUB_<FIELD>`
    /// environment variable over both (every field, the same way; lists as
    /// `[a, b]`), and checks the result. With `units_dir` set, its lists
    /// become this process's hierarchy ([`Hierarchy::install`]): every
    /// command reads the hub's configuration first.
    ///
    /// [`Hierarchy::install`]: htx_core::units::Hierarchy::install
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            anyhow::bail!(
                "{}: not found; run `htx-hub init {}` first / chưa khởi tạo máy chủ tỉnh",
                path.display(),
                dir.display()
            );
        }
        let cfg: HubConfig = Figment::from(Serialized::defaults(HubConfig::default()))
            .merge(Toml::file_exact(&path))
            .merge(Env::prefixed(ENV_PREFIX))
            .extract()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e} / cấu hình không hợp lệ (tệp hoặc biến môi trường {ENV_PREFIX}*)",
                    path.display()
                )
            })?;
        if !cfg.units_dir.is_empty() {
            let lists = htx_core::units::read_lists(&dir.join(&cfg.units_dir))
                .and_then(htx_core::units::Hierarchy::install);
            lists.map_err(|e| {
                anyhow::anyhow!(
                    "{}: units_dir = {:?}: {e} / không đọc được danh mục đơn vị",
                    path.display(),
                    cfg.units_dir
                )
            })?;
        }
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Refuses settings that make no sense, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive: [(&str, u64); 9] = [
            ("node_cert_days", self.node_cert_days.max(0) as u64),
            ("max_message_bytes", self.max_message_bytes as u64),
            ("max_batch_bytes", self.max_batch_bytes as u64),
            ("max_doc_bytes", self.max_doc_bytes),
            ("max_sessions_per_node", self.max_sessions_per_node as u64),
            ("max_docs_per_session", self.max_docs_per_session as u64),
            (
                "max_streams_per_connection",
                self.max_streams_per_connection as u64,
            ),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("stale_after_days", self.stale_after_days),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(format!(
                    "{field} must be at least 1 / {field} phải lớn hơn hoặc bằng 1"
                ));
            }
        }
        if let Some(s) = self.node_cert_secs
            && s < 1
        {
            return Err(format!(
                "node_cert_secs = {s}: must be at least 1 / node_cert_secs phải lớn hơn hoặc bằng 1"
            ));
        }
        // What the hub sends in one batch must fit in what a node accepts in
        // one message (64 MiB), with room for the message around it.
        if self.max_batch_bytes > 32 << 20 {
            return Err(format!(
                "max_batch_bytes = {}: at most {} (32 MiB; a node accepts messages up to 64 MiB) / max_batch_bytes tối đa 32 MiB",
                self.max_batch_bytes,
                32 << 20
            ));
        }
        if self.server_names.is_empty() {
            return Err(
                "server_names is empty: name at least the one nodes connect to / server_names không được để trống"
                    .into(),
            );
        }
        use htx_core::settings::{check_listen, check_loopback};
        check_listen("listen", &self.listen)?;
        check_listen("http_listen", &self.http_listen)?;
        check_loopback("admin_listen", &self.admin_listen)?;
        if htx_core::units::Hierarchy::current()
            .version(&self.default_unit_version)
            .is_err()
        {
            return Err(format!(
                "default_unit_version = {:?}: not a known hierarchy version (2023, 2024, 2025) / phiên bản danh mục không tồn tại",
                self.default_unit_version
            ));
        }
        Ok(())
    }
}

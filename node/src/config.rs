//! The node's configuration: `DIR/node.toml`, every field optional, with
//! environment overrides for every field (`HTX_NODE_<FIELD>`, e.g.
//! `HTX_NODE_HUB_URL`, layered by figment). `deploy/node.example.toml`
//! documents each field.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use htx_core::storage::Backend;
use serde::{Deserialize, Serialize};

/// Environment variables `HTX_NODE_<FIELD>` override `node.toml`'s `<field>`.
pub const ENV_PREFIX: &str = "HTX_NODE_";

/// The documented example, every field explained (`init` writes it).
pub const EXAMPLE: &str = include_str!("../../deploy/node.example.toml");

/// 50 kbit/s: the slow link the sync is tested over (RELIABILITY.md).
pub const MIN_LINK_BYTES_PER_SEC: u64 = 50_000 / 8;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Embedded database: `redb` (durable, bounded disk) or `sled`.
    pub backend: Backend,
    /// Where the local API listens: loopback only; port 0 picks a free one,
    /// written to `DIR/api.addr` while `run` is running.
    pub api_listen: String,
    /// Where the officers' web app listens; port 0 picks a free one,
    /// written to `DIR/web.addr` while `run` is running. Loopback by
    /// default; a LAN address (`0.0.0.0:8443`) needs the HTTPS identity
    /// from `htx-hub web-cert`, installed with `htx-node web-cert`
    /// (docs/office-https.md), unless `web_plain_http` is set.
    pub web_listen: String,
    /// Serve the web app over plain HTTP on the LAN: passwords and session
    /// cookies then travel in clear. Only an administrator's explicit
    /// choice, for a LAN they trust; off by default.
    pub web_plain_http: bool,
    /// `/healthz`, `/readyz` and `/metrics` over plain HTTP (no data is
    /// served there); port 0 picks a free one, written to `DIR/status.addr`
    /// while `run` is running.
    pub status_listen: String,
    /// Seconds between sync sessions while the link is up.
    pub sync_interval_secs: u64,
    /// Reconnect back-off after a failure: doubles from min to max, with jitter.
    pub retry_min_secs: u64,
    pub retry_max_secs: u64,
    /// Upper bound of one batch of changes: what a cut link can lose.
    pub max_batch_bytes: usize,
    /// Overrides the hub address written in the bundle.
    pub hub_url: Option<String>,
    /// Seconds to wait for the hub to answer before giving up a session,
    /// on top of the time the message's bytes need at `min_link_bytes_per_sec`.
    pub timeout_secs: u64,
    /// The slowest link the node must work over, in bytes per second: each
    /// wait for the hub grows by the time the bytes that must cross the
    /// link first (a batch sent, a batch to come) need at this rate.
    /// Default 6,250 (50 kbit/s).
    pub min_link_bytes_per_sec: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            backend: Backend::Redb,
            api_listen: "127.0.0.1:0".into(),
            web_listen: "127.0.0.1:0".into(),
            web_plain_http: false,
            status_listen: "127.0.0.1:0".into(),
            sync_interval_secs: 30,
            retry_min_secs: 1,
            retry_max_secs: 300,
            max_batch_bytes: htx_core::sync::MAX_BATCH_BYTES,
            hub_url: None,
            timeout_secs: 20,
            min_link_bytes_per_sec: MIN_LINK_BYTES_PER_SEC,
        }
    }
}

impl NodeConfig {
    pub const FILE: &'static str = "node.toml";

    /// Every field documented, as `deploy/node.example.toml` explains it,
    /// with this config's values: what `init` writes.
    pub fn commented(&self) -> Result<String, toml::ser::Error> {
        let values = toml::Table::try_from(self)?;
        Ok(htx_core::settings::commented(EXAMPLE, &values))
    }

    /// Reads `DIR/node.toml` (defaults if absent), then any
    /// `HTX_NODE_<FIELD>` environment variable over it (every field, the
    /// same way), and checks the result.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(Self::FILE);
        let cfg: NodeConfig = Figment::from(Serialized::defaults(NodeConfig::default()))
            .merge(Toml::file(&path))
            .merge(Env::prefixed(ENV_PREFIX))
            .extract()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e} / cấu hình không hợp lệ (tệp hoặc biến môi trường {ENV_PREFIX}*)",
                    path.display()
                )
            })?;
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Refuses settings that make no sense (a zero interval would sync in a
    /// busy loop, a zero timeout fail every session), naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let at_least_one = [
            ("sync_interval_secs", self.sync_interval_secs),
            ("retry_min_secs", self.retry_min_secs),
            ("retry_max_secs", self.retry_max_secs),
            ("timeout_secs", self.timeout_secs),
        ];
        for (field, v) in at_least_one {
            if v == 0 {
                return Err(format!(
                    "{field} = 0: must be at least 1 (seconds) / {field} phải lớn hơn hoặc bằng 1"
                ));
            }
        }
        if self.min_link_bytes_per_sec == 0 {
            return Err(
                "min_link_bytes_per_sec = 0: must be at least 1 (bytes per second) / min_link_bytes_per_sec phải lớn hơn hoặc bằng 1"
                    .into(),
            );
        }
        if self.retry_min_secs > self.retry_max_secs {
            return Err(format!(
                "retry_min_secs = {} is above retry_max_secs = {}; the back-off goes from min up to max / retry_min_secs phải nhỏ hơn hoặc bằng retry_max_secs",
                self.retry_min_secs, self.retry_max_secs
            ));
        }
        // The hub refuses a message over its max_message_bytes (16 MiB by
        // default) and the node accepts at most 64 MiB.
        if self.max_batch_bytes == 0 || self.max_batch_bytes > 64 << 20 {
            return Err(format!(
                "max_batch_bytes = {}: must be between 1 and {} (64 MiB) / max_batch_bytes phải từ 1 đến 64 MiB",
                self.max_batch_bytes,
                64 << 20
            ));
        }
        htx_core::settings::check_loopback("api_listen", &self.api_listen)?;
        htx_core::settings::check_listen("web_listen", &self.web_listen)?;
        htx_core::settings::check_listen("status_listen", &self.status_listen)?;
        if let Some(url) = &self.hub_url
            && !url.starts_with("https://")
        {
            return Err(format!(
                "hub_url = {url:?}: must be an https:// address / hub_url phải là địa chỉ https://"
            ));
        }
        Ok(())
    }
}

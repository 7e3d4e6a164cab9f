//! # The hub's home directory
//!
//! `hub.toml`, the CA (`ca.pem`, `ca.key`), the hub's certificate
//! (`hub.pem`, `hub.key`), one file per enrolled node under `nodes/`, and
//! the store. Enrolment works while `run` is running: the running hub reads
//! `nodes/` again when it meets a certificate it does not know.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use htx_core::pki::{self, Bundle, Role, write_private};
use htx_core::units::Hierarchy;
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::config::HubConfig;

/// A node the hub has issued a certificate to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Enrolment {
    pub name: String,
    pub unit: String,
    pub unit_version: String,
    /// SHA-256 of the node certificate: how the hub recognises the node.
    pub fingerprint: String,
    pub enrolled_at: String,
    pub expires_at: String,
}

pub struct Home {
    pub dir: PathBuf,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// Names are used in file names and logs: keep them simple.
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        bail!(
            "node name {name:?}: use 1-64 letters, digits, '-', '_' or '.' / tên nút không hợp lệ"
        );
    }
    Ok(())
}

impl Home {
    pub fn new(dir: &Path) -> Home {
        Home {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates a hub home: config, CA and the hub's certificate.
    pub fn init(&self, cfg: &HubConfig) -> anyhow::Result<()> {
        if self.path(HubConfig::FILE).exists() {
            bail!(
                "{} is already a hub home; nothing was changed / thư mục đã được khởi tạo",
                self.dir.display()
            );
        }
        std::fs::create_dir_all(self.path("nodes"))?;
        let ca = pki::new_ca(&cfg.ca_name, 3650)?;
        let server = pki::issue(
            &cfg.ca_name,
            &ca.key_pem,
            cfg.server_names
                .first()
                .map(String::as_str)
                .unwrap_or("localhost"),
            Role::Server(&cfg.server_names),
            Duration::days(825),
        )?;
        std::fs::write(self.path("ca.pem"), &ca.cert_pem)?;
        write_private(&self.path("ca.key"), ca.key_pem.as_bytes())?;
        std::fs::write(self.path("hub.pem"), &server.cert_pem)?;
        write_private(&self.path("hub.key"), server.key_pem.as_bytes())?;
        std::fs::write(self.path(HubConfig::FILE), toml::to_string(cfg)?)?;
        Ok(())
    }

    pub fn ca_pem(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(self.path("ca.pem")).context("reading ca.pem")
    }

    pub fn server_identity(&self) -> anyhow::Result<(String, String)> {
        Ok((
            std::fs::read_to_string(self.path("hub.pem")).context("reading hub.pem")?,
            std::fs::read_to_string(self.path("hub.key")).context("reading hub.key")?,
        ))
    }

    /// Issues a node certificate and returns its bundle. NAME must be new.
    pub fn enroll(
        &self,
        cfg: &HubConfig,
        unit: &str,
        unit_version: Option<&str>,
        name: Option<&str>,
    ) -> anyhow::Result<Bundle> {
        let version = unit_version.unwrap_or(&cfg.default_unit_version);
        Hierarchy::builtin().unit(version, unit)?;
        let name = name.unwrap_or(unit);
        check_name(name)?;
        let ca_key = std::fs::read_to_string(self.path("ca.key")).context("reading ca.key")?;
        let ca_cert = self.ca_pem()?;
        let days = cfg.node_cert_days;
        let leaf = pki::issue(
            &cfg.ca_name,
            &ca_key,
            name,
            Role::Client,
            Duration::days(days),
        )?;
        let now = time::OffsetDateTime::now_utc();
        let enrolment = Enrolment {
            name: name.to_owned(),
            unit: unit.to_owned(),
            unit_version: version.to_owned(),
            fingerprint: leaf.fingerprint.clone(),
            enrolled_at: rfc3339(now),
            expires_at: rfc3339(now + Duration::days(days)),
        };
        // create_new: two enrolments can never take the same name.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path("nodes").join(format!("{name}.json")));
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!(
                    "a node named {name:?} is already enrolled; choose another --name / tên nút đã tồn tại"
                )
            }
            Err(e) => return Err(e.into()),
        };
        use std::io::Write;
        file.write_all(serde_json::to_string_pretty(&enrolment)?.as_bytes())?;
        file.sync_all()?;
        let ca_der = rustls::pki_types::CertificateDer::from_pem_slice(ca_cert.as_bytes())?;
        Ok(Bundle {
            format: 1,
            node: name.to_owned(),
            unit: unit.to_owned(),
            unit_version: version.to_owned(),
            hub_url: cfg.public_url.clone(),
            hub_name: cfg
                .server_names
                .first()
                .cloned()
                .unwrap_or_else(|| "localhost".into()),
            ca_fingerprint: pki::fingerprint(&ca_der),
            ca_cert,
            cert: leaf.cert_pem,
            key: leaf.key_pem,
        })
    }

    /// Every enrolled node.
    pub fn enrolments(&self) -> anyhow::Result<Vec<Enrolment>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.path("nodes"))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("json") {
                let text = std::fs::read_to_string(&path)?;
                out.push(
                    serde_json::from_str(&text)
                        .with_context(|| format!("reading {}", path.display()))?,
                );
            }
        }
        out.sort_by(|a: &Enrolment, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

use rustls::pki_types::pem::PemObject;

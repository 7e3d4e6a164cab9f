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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Enrolment {
    pub name: String,
    pub unit: String,
    pub unit_version: String,
    /// SHA-256 of the node certificate: how the hub recognises the node.
    pub fingerprint: String,
    pub enrolled_at: String,
    pub expires_at: String,
    /// Fingerprints of earlier certificates of this node, still accepted
    /// until they expire (a renewal the node did not finish storing).
    #[serde(default)]
    pub previous_fingerprints: Vec<String>,
    /// Set by `htx-hub revoke`: the hub refuses this node from then on.
    #[serde(default)]
    pub revoked_at: String,
}

/// Where a node stands with the hub, as `htx-hub nodes` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Active,
    /// `htx-hub revoke` withdrew its certificate.
    Revoked,
    /// Its certificate ran out before the node renewed it: enroll it again.
    Expired,
}

impl NodeState {
    pub fn label(self) -> &'static str {
        match self {
            NodeState::Active => "active",
            NodeState::Revoked => "revoked",
            NodeState::Expired => "expired",
        }
    }
}

impl Enrolment {
    pub fn state(&self, now: time::OffsetDateTime) -> NodeState {
        let expires = time::OffsetDateTime::parse(
            &self.expires_at,
            &time::format_description::well_known::Rfc3339,
        );
        if !self.revoked_at.is_empty() {
            NodeState::Revoked
        } else if expires.is_ok_and(|t| t <= now) {
            NodeState::Expired
        } else {
            NodeState::Active
        }
    }
}

pub struct Home {
    pub dir: PathBuf,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// The hub's server certificate, valid for every `server_names`.
/// The office web CA's name: the sync CA's, marked for the web.
fn web_ca_name(cfg: &HubConfig) -> String {
    format!("{} - web (LAN)", cfg.ca_name)
}

fn issue_server_cert(cfg: &HubConfig, ca_key_pem: &str) -> anyhow::Result<pki::Issued> {
    let name = cfg
        .server_names
        .first()
        .map(String::as_str)
        .unwrap_or("localhost");
    Ok(pki::issue(
        &cfg.ca_name,
        ca_key_pem,
        name,
        Role::Server(&cfg.server_names),
        Duration::days(825),
    )?)
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
        std::fs::create_dir_all(&self.dir).with_context(|| {
            format!(
                "cannot create {}; run init as the service's user (sudo -u htx) in a directory it owns / không tạo được thư mục",
                self.dir.display()
            )
        })?;
        // Writable? (A directory made by root for the service's user, say.)
        let probe = self.path(".init-probe");
        std::fs::write(&probe, b"").with_context(|| {
            format!(
                "cannot write in {}; run init as the user that owns it (sudo -u htx) / không ghi được vào thư mục",
                self.dir.display()
            )
        })?;
        let _ = std::fs::remove_file(probe);
        // Only `init` creates the store; `Hub::open` refuses a missing,
        // empty or damaged one rather than starting from nothing.
        drop(htx_core::storage::create(cfg.backend, &self.dir)?);
        std::fs::create_dir_all(self.path("nodes"))?;
        let ca = pki::new_ca(&cfg.ca_name, 3650)?;
        let server = issue_server_cert(cfg, &ca.key_pem)?;
        std::fs::write(self.path("ca.pem"), &ca.cert_pem)?;
        write_private(&self.path("ca.key"), ca.key_pem.as_bytes())?;
        std::fs::write(self.path("hub.pem"), &server.cert_pem)?;
        write_private(&self.path("hub.key"), server.key_pem.as_bytes())?;
        std::fs::write(self.path(HubConfig::FILE), cfg.commented()?)?;
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

    /// Issues a node certificate and returns its bundle. NAME must be new,
    /// unless `replace`: then it must exist, serving the same unit.
    pub fn enroll(
        &self,
        cfg: &HubConfig,
        unit: &str,
        unit_version: Option<&str>,
        name: Option<&str>,
        replace: bool,
    ) -> anyhow::Result<Bundle> {
        let version = unit_version.unwrap_or(&cfg.default_unit_version);
        Hierarchy::current().unit(version, unit)?;
        let name = name.unwrap_or(unit);
        check_name(name)?;
        let ca_key = std::fs::read_to_string(self.path("ca.key")).context("reading ca.key")?;
        let ca_cert = self.ca_pem()?;
        let now = time::OffsetDateTime::now_utc();
        let leaf = pki::issue(
            &cfg.ca_name,
            &ca_key,
            name,
            Role::Client(&format!("{version}/{unit}")),
            cfg.node_cert_lifetime(),
        )?;
        let enrolment = Enrolment {
            name: name.to_owned(),
            unit: unit.to_owned(),
            unit_version: version.to_owned(),
            fingerprint: leaf.fingerprint.clone(),
            enrolled_at: rfc3339(now),
            expires_at: rfc3339(now + cfg.node_cert_lifetime()),
            previous_fingerprints: Vec::new(),
            revoked_at: String::new(),
        };
        if replace {
            // A new machine for an enrolled node (the old one died): a new
            // certificate under the same name and unit; the old one is no
            // longer accepted.
            let old = self.enrolment(name)?;
            if (old.unit.as_str(), old.unit_version.as_str()) != (unit, version) {
                bail!(
                    "node {name:?} serves unit {} ({}), not {unit} ({version}); a replacement serves the same unit / máy thay thế phải phục vụ cùng đơn vị",
                    old.unit,
                    old.unit_version
                );
            }
            self.save_enrolment(&enrolment)?;
            self.audit(
                "replaced",
                name,
                serde_json::json!({ "old_fingerprint": old.fingerprint, "fingerprint": enrolment.fingerprint,
                    "expires_at": enrolment.expires_at }),
            );
            return self.bundle(cfg, &enrolment, ca_cert, leaf);
        }
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
        self.audit(
            "enrolled",
            &enrolment.name,
            serde_json::json!({ "unit": enrolment.unit, "unit_version": enrolment.unit_version,
                "fingerprint": enrolment.fingerprint, "expires_at": enrolment.expires_at }),
        );
        self.bundle(cfg, &enrolment, ca_cert, leaf)
    }

    /// The bundle a node is set up from, for an enrolment just written.
    fn bundle(
        &self,
        cfg: &HubConfig,
        enrolment: &Enrolment,
        ca_cert: String,
        leaf: pki::Issued,
    ) -> anyhow::Result<Bundle> {
        let ca_der = rustls::pki_types::CertificateDer::from_pem_slice(ca_cert.as_bytes())?;
        Ok(Bundle {
            format: 1,
            node: enrolment.name.clone(),
            unit: enrolment.unit.clone(),
            unit_version: enrolment.unit_version.clone(),
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
            cert_issued_at: enrolment.enrolled_at.clone(),
            cert_expires_at: enrolment.expires_at.clone(),
            units: match cfg.units_dir.is_empty() {
                true => Vec::new(),
                false => htx_core::units::Hierarchy::current_lists(),
            },
        })
    }

    fn enrolment_path(&self, name: &str) -> PathBuf {
        self.path("nodes").join(format!("{name}.json"))
    }

    pub fn enrolment(&self, name: &str) -> anyhow::Result<Enrolment> {
        let path = self.enrolment_path(name);
        let bytes = std::fs::read(&path).with_context(|| {
            format!("no node named {name:?} is enrolled / không có nút tên {name:?}")
        })?;
        read_enrolment(&path, &bytes)
    }

    fn save_enrolment(&self, e: &Enrolment) -> anyhow::Result<()> {
        write_private(
            &self.enrolment_path(&e.name),
            serde_json::to_string_pretty(e)?.as_bytes(),
        )?;
        Ok(())
    }

    /// Withdraws a node's certificates: the hub refuses it from now on.
    pub fn revoke(&self, name: &str) -> anyhow::Result<Enrolment> {
        let mut e = self.enrolment(name)?;
        if e.revoked_at.is_empty() {
            e.revoked_at = rfc3339(time::OffsetDateTime::now_utc());
            self.save_enrolment(&e)?;
            self.audit(
                "revoked",
                name,
                serde_json::json!({ "fingerprint": e.fingerprint }),
            );
        }
        Ok(e)
    }

    /// Signs a new certificate for an enrolled node's own public key and
    /// records it; the previous one stays accepted until it expires.
    pub fn renew(
        &self,
        cfg: &HubConfig,
        name: &str,
        public_key: Vec<u8>,
    ) -> anyhow::Result<(String, Enrolment)> {
        let mut e = self.enrolment(name)?;
        if !e.revoked_at.is_empty() {
            bail!("node {name:?} was revoked / nút đã bị thu hồi");
        }
        let ca_key = std::fs::read_to_string(self.path("ca.key")).context("reading ca.key")?;
        let lifetime = cfg.node_cert_lifetime();
        let (cert, fingerprint) = pki::issue_for_key(
            &cfg.ca_name,
            &ca_key,
            name,
            &format!("{}/{}", e.unit_version, e.unit),
            &pki::NodePublicKey(public_key),
            lifetime,
        )?;
        let now = time::OffsetDateTime::now_utc();
        let old = std::mem::replace(&mut e.fingerprint, fingerprint);
        e.previous_fingerprints.insert(0, old);
        e.previous_fingerprints.truncate(2);
        e.enrolled_at = rfc3339(now);
        e.expires_at = rfc3339(now + lifetime);
        self.save_enrolment(&e)?;
        self.audit(
            "renewed",
            name,
            serde_json::json!({ "fingerprint": e.fingerprint, "expires_at": e.expires_at }),
        );
        Ok((cert, e))
    }

    /// Records an administrative event in the audit log; a log that cannot
    /// be written is reported, and does not undo the event.
    fn audit(&self, event: &str, node: &str, details: serde_json::Value) {
        if let Err(e) = crate::audit::audit_event(&self.dir, event, node, details) {
            tracing::error!("cannot write the audit log: {e}");
        }
    }

    /// Issues the hub a new server certificate from the same CA: nodes keep
    /// trusting it without re-enrolment. Takes effect when the hub restarts.
    pub fn rotate_server_cert(&self, cfg: &HubConfig) -> anyhow::Result<String> {
        let ca_key = std::fs::read_to_string(self.path("ca.key")).context("reading ca.key")?;
        let server = issue_server_cert(cfg, &ca_key)?;
        std::fs::write(self.path("hub.pem.tmp"), &server.cert_pem)?;
        write_private(&self.path("hub.key"), server.key_pem.as_bytes())?;
        std::fs::rename(self.path("hub.pem.tmp"), self.path("hub.pem"))?;
        self.audit(
            "hub_certificate_rotated",
            "",
            serde_json::json!({ "fingerprint": server.fingerprint }),
        );
        Ok(server.fingerprint)
    }

    /// The office web CA (`web-ca.pem`, `web-ca.key`), made on first use:
    /// name-constrained to LAN addresses and names ([`pki::new_web_ca`]).
    pub fn web_ca(&self, cfg: &HubConfig) -> anyhow::Result<(String, String)> {
        let (cert, key) = (self.path("web-ca.pem"), self.path("web-ca.key"));
        if !cert.exists() {
            let ca = pki::new_web_ca(&web_ca_name(cfg), 3650)?;
            write_private(&key, ca.key_pem.as_bytes())?;
            pki::write_atomic(&cert, ca.cert_pem.as_bytes())?;
            self.audit(
                "web_ca_created",
                "",
                serde_json::json!({ "fingerprint": ca.fingerprint }),
            );
        }
        Ok((
            std::fs::read_to_string(&cert).context("reading web-ca.pem")?,
            std::fs::read_to_string(&key).context("reading web-ca.key")?,
        ))
    }

    /// An HTTPS identity for enrolled node `node`'s web app on its office
    /// LAN, for `names` (addresses or LAN names), valid for `days`.
    pub fn web_cert(
        &self,
        cfg: &HubConfig,
        node: &str,
        names: &[String],
        days: i64,
    ) -> anyhow::Result<pki::WebIdentity> {
        let e = self.enrolment(node)?;
        anyhow::ensure!(
            e.revoked_at.is_empty(),
            "node {node:?} is revoked / nút {node:?} đã bị thu hồi chứng chỉ"
        );
        let (ca_cert, ca_key) = self.web_ca(cfg)?;
        let issued = pki::issue_web(
            &web_ca_name(cfg),
            &ca_key,
            node,
            names,
            time::Duration::days(days),
        )?;
        let expires_at = pki::not_after(&issued.cert_pem)?
            .format(&time::format_description::well_known::Rfc3339)?;
        self.audit(
            "web_certificate_issued",
            node,
            serde_json::json!({ "names": names, "fingerprint": issued.fingerprint, "expires_at": expires_at }),
        );
        Ok(pki::WebIdentity {
            node: node.to_owned(),
            names: names.to_vec(),
            cert: issued.cert_pem,
            key: issued.key_pem,
            ca_cert,
            expires_at,
        })
    }

    /// Every enrolled node.
    pub fn enrolments(&self) -> anyhow::Result<Vec<Enrolment>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.path("nodes"))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("json") {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("{} / không đọc được tệp", path.display()))?;
                out.push(read_enrolment(&path, &bytes)?);
            }
        }
        out.sort_by(|a: &Enrolment, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Reads an enrolment file; a damaged one (not UTF-8, not the JSON of an
/// enrolment) is named in the error, so the operator knows which to fix.
fn read_enrolment(path: &Path, bytes: &[u8]) -> anyhow::Result<Enrolment> {
    serde_json::from_slice(bytes)
        .with_context(|| format!("{} is damaged / tệp đăng ký nút bị hỏng", path.display()))
}

use rustls::pki_types::pem::PemObject;

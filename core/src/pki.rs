//! # The hub's PKI
//!
//! `htx-hub init` makes a CA; the hub's server certificate and each node's
//! client certificate are signed by it. The hub knows a node by the SHA-256
//! fingerprint of the certificate it presents, recorded at enrolment. A
//! node's bundle carries everything it needs to reach its hub.

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate error: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("bundle {0}")]
    Bundle(String),
    #[error("{0}")]
    Refused(String),
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the certificate's DER, hex.
    pub fingerprint: String,
}

pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The subject's common name (CN) of a DER certificate, if it can be read:
/// to name who a refused certificate claims to be. Not a validation: the
/// name is whatever the certificate says.
///
/// A certificate's TBS part holds the issuer's name, then the subject's; the
/// subject's CN is therefore the last `id-at-commonName` attribute before the
/// extensions (which never hold that OID as a name attribute here).
pub fn common_name(der: &[u8]) -> Option<String> {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(CN_OID.len()).rposition(|w| w == CN_OID)? + CN_OID.len();
    let tag = *der.get(at)?;
    // UTF8String, PrintableString, IA5String, T61String, BMPString excluded.
    if !matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
        return None;
    }
    let len = usize::from(*der.get(at + 1)?);
    if len >= 0x80 {
        return None; // names this long are not ours
    }
    let bytes = der.get(at + 2..at + 2 + len)?;
    let name = std::str::from_utf8(bytes).ok()?;
    (!name.is_empty() && name.chars().all(|c| !c.is_control())).then(|| name.to_owned())
}

/// When a PEM certificate stops being valid (its `notAfter`): for expiry
/// warnings and the certificate-expiry metrics.
pub fn not_after(pem: &str) -> Result<OffsetDateTime> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PkiError::Bundle(format!("is not a PEM certificate: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| PkiError::Bundle(format!("is not a readable certificate: {e}")))?;
    Ok(cert.validity().not_after.to_datetime())
}

// The CA's parameters are a pure function of its name, so the issuer can be
// rebuilt from the name and the key without parsing the CA certificate.
fn ca_params(ca_name: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "HTX Sync");
    dn.push(DnType::CommonName, ca_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// A new CA named `ca_name`, valid for `days`.
pub fn new_ca(ca_name: &str, days: i64) -> Result<Issued> {
    let key = KeyPair::generate()?;
    let mut p = ca_params(ca_name)?;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    let cert = p.self_signed(&key)?;
    Ok(Issued {
        fingerprint: fingerprint(cert.der()),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The DNS suffixes an office web CA may vouch for: names that exist only
/// on a LAN (RFC 6762 `.local`, RFC 8375 `.home.arpa`, and the customary
/// `.lan` and `.internal`).
pub const OFFICE_DNS_SUFFIXES: &[&str] = &["lan", "local", "internal", "home.arpa", "localhost"];

/// The address ranges an office web CA may vouch for: private, link-local
/// and loopback addresses (RFC 1918, RFC 4193).
pub const OFFICE_NETS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
];

/// A CA for the offices' web apps (HTTPS on the office LAN). Office
/// browsers install it, so it is name-constrained (RFC 5280 §4.2.1.10):
/// it can vouch only for LAN addresses and names ([`OFFICE_NETS`],
/// [`OFFICE_DNS_SUFFIXES`]), never for a public site, even if its key
/// were stolen. It is not the sync CA: a node's web certificate cannot
/// sync, and a sync certificate is no web server's.
pub fn new_web_ca(ca_name: &str, days: i64) -> Result<Issued> {
    let key = KeyPair::generate()?;
    let mut p = ca_params(ca_name)?;
    let mut permitted: Vec<GeneralSubtree> = OFFICE_DNS_SUFFIXES
        .iter()
        .map(|s| GeneralSubtree::DnsName((*s).to_owned()))
        .collect();
    permitted.extend(OFFICE_NETS.iter().map(|n| {
        GeneralSubtree::IpAddress(n.parse::<CidrSubnet>().expect("the ranges above parse"))
    }));
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    let cert = p.self_signed(&key)?;
    Ok(Issued {
        fingerprint: fingerprint(cert.der()),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Checks that `name` is an address or a name on an office LAN, which the
/// office web CA may vouch for; why not otherwise, in both languages.
pub fn check_office_name(name: &str) -> std::result::Result<(), String> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        let inside = OFFICE_NETS.iter().any(|n| {
            let (net, bits) = n.split_once('/').expect("cidr");
            let bits: u32 = bits.parse().expect("prefix");
            match (ip, net.parse::<std::net::IpAddr>().expect("net")) {
                (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                    u32::from(a) & mask == u32::from(b) & mask
                }
                (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    u128::from(a) & mask == u128::from(b) & mask
                }
                _ => false,
            }
        });
        return if inside {
            Ok(())
        } else {
            Err(format!(
                "{name} is not an office LAN address ({}) / {name} không phải địa chỉ mạng nội bộ",
                OFFICE_NETS.join(", ")
            ))
        };
    }
    let lower = name.to_ascii_lowercase();
    let valid = !lower.is_empty()
        && lower.len() <= 253
        && lower.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    let on_lan = OFFICE_DNS_SUFFIXES
        .iter()
        .any(|s| lower == *s || lower.ends_with(&format!(".{s}")));
    if valid && on_lan {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an office LAN name: use an address such as 192.168.1.10 or a name ending in {} / {name:?} không phải tên trong mạng nội bộ",
            OFFICE_DNS_SUFFIXES
                .iter()
                .map(|s| format!(".{s}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// A web server certificate from the office web CA for the LAN `names` of
/// one office (checked with [`check_office_name`]), with a new key.
pub fn issue_web(
    ca_name: &str,
    ca_key_pem: &str,
    node: &str,
    names: &[String],
    valid: Duration,
) -> Result<Issued> {
    if names.is_empty() {
        return Err(PkiError::Refused(
            "a web certificate needs at least one --name / cần ít nhất một --name".into(),
        ));
    }
    for n in names {
        check_office_name(n).map_err(PkiError::Refused)?;
    }
    issue(ca_name, ca_key_pem, node, Role::Server(names), valid)
}

/// What a leaf certificate is for.
pub enum Role<'a> {
    /// The hub's server certificate, valid for these DNS names / IPs.
    Server(&'a [String]),
    /// A node's client certificate, naming the units it serves
    /// (`{version}/{code}`, the unit and everything below it).
    Client(&'a str),
}

/// Signs a certificate for `common_name` with the CA's key, for a new key
/// made here (returned with it).
pub fn issue(
    ca_name: &str,
    ca_key_pem: &str,
    common_name: &str,
    role: Role<'_>,
    valid: Duration,
) -> Result<Issued> {
    let key = KeyPair::generate()?;
    let (cert_pem, fingerprint) = sign(ca_name, ca_key_pem, common_name, role, valid, &key)?;
    Ok(Issued {
        cert_pem,
        fingerprint,
        key_pem: key.serialize_pem(),
    })
}

/// A node's public key, as it sends it to renew its certificate: the raw
/// ECDSA P-256 point of a key it made itself. The private key never leaves
/// the node.
pub struct NodePublicKey(pub Vec<u8>);

impl rcgen::PublicKeyData for NodePublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A new key for a node (PEM) and its public half, to send for renewal.
pub fn new_node_key() -> Result<(String, Vec<u8>)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    Ok((key.serialize_pem(), key.public_key_raw().to_vec()))
}

/// Signs a client certificate for a node's own public key; returns the
/// certificate (PEM) and its fingerprint.
pub fn issue_for_key(
    ca_name: &str,
    ca_key_pem: &str,
    common_name: &str,
    units: &str,
    public_key: &NodePublicKey,
    valid: Duration,
) -> Result<(String, String)> {
    if public_key.0.len() != 65 || public_key.0[0] != 4 {
        return Err(PkiError::Bundle(
            "renewal: not an uncompressed P-256 public key / gia hạn: khóa công khai không hợp lệ"
                .into(),
        ));
    }
    sign(
        ca_name,
        ca_key_pem,
        common_name,
        Role::Client(units),
        valid,
        public_key,
    )
}

fn sign(
    ca_name: &str,
    ca_key_pem: &str,
    common_name: &str,
    role: Role<'_>,
    valid: Duration,
    key: &impl rcgen::PublicKeyData,
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(ca_name)?, ca_key);
    let sans = match role {
        Role::Server(names) => names.to_vec(),
        Role::Client(_) => Vec::new(),
    };
    let mut p = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "HTX Sync");
    dn.push(DnType::CommonName, common_name);
    if let Role::Client(units) = role {
        dn.push(
            DnType::OrganizationalUnitName,
            format!("units {units} and below"),
        );
    }
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = match role {
        Role::Server(_) => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Role::Client(_) => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + valid;
    let mut serial = [0u8; 16];
    serial.copy_from_slice(&Sha256::digest(format!("{common_name}{now}").as_bytes())[..16]);
    serial[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = p.signed_by(key, &issuer)?;
    Ok((cert.pem(), fingerprint(cert.der())))
}

/// An office web app's HTTPS identity, written by `htx-hub web-cert` and
/// installed on the node with `htx-node web-cert`: its certificate and key
/// for its LAN names, and the office web CA that browsers install.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebIdentity {
    pub node: String,
    pub names: Vec<String>,
    pub cert: String,
    pub key: String,
    pub ca_cert: String,
    pub expires_at: String,
}

/// Everything a node needs to join its hub, written by `htx-hub enroll`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    pub format: u32,
    /// The name the hub knows this node by.
    pub node: String,
    /// The unit the node serves, with its subtree, and that unit's version.
    pub unit: String,
    pub unit_version: String,
    /// `https://host:port` of the hub's sync endpoint.
    pub hub_url: String,
    /// The name in the hub's certificate (TLS server name).
    pub hub_name: String,
    /// The hub CA's fingerprint: a node refuses a hub signed by another CA.
    pub ca_fingerprint: String,
    pub ca_cert: String,
    pub cert: String,
    pub key: String,
    /// When `cert` was issued and stops being valid (RFC 3339): the node
    /// renews it once two thirds of its life have passed.
    #[serde(default)]
    pub cert_issued_at: String,
    #[serde(default)]
    pub cert_expires_at: String,
    /// The hub's unit lists when they are not the built-in ones (its
    /// `units_dir`), by file name: the node serves the same hierarchy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<(String, String)>,
}

impl Bundle {
    /// Makes the hub's unit lists, if the bundle carries them, this
    /// process's hierarchy ([`crate::units::Hierarchy::install`]), before
    /// the node checks or serves any unit.
    pub fn install_units(&self) -> std::result::Result<(), crate::units::UnitError> {
        if !self.units.is_empty() {
            crate::units::Hierarchy::install(self.units.clone())?;
        }
        Ok(())
    }

    /// Bundles are one JSON file: easy to inspect, PEM newlines escaped.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("bundles serialize")
    }

    pub fn parse(text: &str) -> Result<Bundle> {
        let b: Bundle = serde_json::from_str(text).map_err(|e| {
            PkiError::Bundle(format!(
                "is not readable: {e} / tệp cấu hình nút không đọc được"
            ))
        })?;
        if b.format != 1 {
            return Err(PkiError::Bundle(format!(
                "has format {}, this build reads format 1 / tệp cấu hình nút có định dạng {}, phiên bản này chỉ đọc định dạng 1",
                b.format, b.format
            )));
        }
        Ok(b)
    }
}

/// Writes a file only its owner can read (it holds a private key), via a
/// temporary file and a rename, so a crash never leaves half a key.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Writes a file through a temporary file and a rename, so that a reader
/// sees the old content or the new, never half of it.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_signed_by_the_ca_rebuilt_from_its_name_and_key() {
        let ca = new_ca("HTX test CA", 365).unwrap();
        let leaf = issue(
            "HTX test CA",
            &ca.key_pem,
            "node-356",
            Role::Client("2023/356"),
            Duration::days(30),
        )
        .unwrap();
        assert_ne!(leaf.fingerprint, ca.fingerprint);
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn not_after_reads_the_lifetime_it_was_issued_with() {
        let ca = new_ca("HTX test CA", 365).unwrap();
        let leaf = issue(
            "HTX test CA",
            &ca.key_pem,
            "node-356",
            Role::Client("2023/356"),
            Duration::days(30),
        )
        .unwrap();
        let left = not_after(&leaf.cert_pem).unwrap() - OffsetDateTime::now_utc();
        assert!(
            left > Duration::days(29) && left <= Duration::days(30),
            "{left}"
        );
        assert!(not_after("not a certificate").is_err());
    }
}

//! # Administrative units, by version
//!
//! The hierarchy is data: the GSO lists under `core/admin-units/` are
//! compiled in. Codes are reused across versions (2025's 13777 is not
//! 2023's 13777), so a unit is always named with its version.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The version the plan was written for, and the default everywhere.
pub const DEFAULT_VERSION: &str = "2023";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Province,
    District,
    Commune,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Unit {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub parent: Option<String>,
}

/// One version of the hierarchy: every unit by its code.
#[derive(Debug, Default)]
pub struct UnitVersion {
    pub version: String,
    units: BTreeMap<String, Unit>,
}

impl UnitVersion {
    pub fn unit(&self, code: &str) -> Option<&Unit> {
        self.units.get(code)
    }

    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// Whether `code` is `ancestor` or lies below it.
    pub fn within(&self, code: &str, ancestor: &str) -> bool {
        let mut cur = self.units.get(code);
        while let Some(u) = cur {
            if u.code == ancestor {
                return true;
            }
            cur = u.parent.as_deref().and_then(|p| self.units.get(p));
        }
        false
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UnitError {
    #[error(
        "unknown hierarchy version {0:?} (known: 2023, 2024, 2025) / phiên bản danh mục không tồn tại"
    )]
    UnknownVersion(String),
    #[error(
        "unknown unit code {code:?} in the {version} hierarchy / mã đơn vị hành chính không tồn tại"
    )]
    UnknownUnit { code: String, version: String },
}

/// Every version of the hierarchy known to this build.
#[derive(Debug)]
pub struct Hierarchy {
    versions: BTreeMap<String, UnitVersion>,
}

#[derive(Deserialize)]
struct Row {
    level: String,
    code: String,
    name: String,
    parent_code: String,
}

fn parse(version: &str, csv_text: &str) -> UnitVersion {
    let mut units = BTreeMap::new();
    for row in csv::Reader::from_reader(csv_text.as_bytes()).deserialize::<Row>() {
        let row = row.expect("built-in unit list is valid CSV");
        let level = match row.level.as_str() {
            "province" => Level::Province,
            "district" => Level::District,
            _ => Level::Commune,
        };
        let parent = (!row.parent_code.is_empty()).then_some(row.parent_code);
        units.insert(
            row.code.clone(),
            Unit {
                code: row.code,
                name: row.name,
                level,
                parent,
            },
        );
    }
    UnitVersion {
        version: version.to_owned(),
        units,
    }
}

impl Hierarchy {
    /// The built-in GSO lists.
    pub fn builtin() -> &'static Hierarchy {
        static H: OnceLock<Hierarchy> = OnceLock::new();
        H.get_or_init(|| {
            let mut versions = BTreeMap::new();
            for (v, text) in [
                (
                    "2023",
                    include_str!("../admin-units/nam_dinh_units_2023.csv"),
                ),
                (
                    "2024",
                    include_str!("../admin-units/nam_dinh_units_2024.csv"),
                ),
                (
                    "2025",
                    include_str!("../admin-units/ninh_binh_units_2025.csv"),
                ),
            ] {
                versions.insert(v.to_owned(), parse(v, text));
            }
            Hierarchy { versions }
        })
    }

    pub fn version(&self, version: &str) -> Result<&UnitVersion, UnitError> {
        self.versions
            .get(version)
            .ok_or_else(|| UnitError::UnknownVersion(version.to_owned()))
    }

    pub fn unit(&self, version: &str, code: &str) -> Result<&Unit, UnitError> {
        self.version(version)?
            .unit(code)
            .ok_or_else(|| UnitError::UnknownUnit {
                code: code.to_owned(),
                version: version.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lists_have_the_documented_sizes() {
        let h = Hierarchy::builtin();
        let count = |v: &str, l: Level| {
            h.version(v)
                .unwrap()
                .units()
                .filter(|u| u.level == l)
                .count()
        };
        assert_eq!(count("2023", Level::District), 10);
        assert_eq!(count("2023", Level::Commune), 226);
        assert_eq!(count("2024", Level::Commune), 175);
        assert_eq!(count("2025", Level::Commune), 129);
    }

    #[test]
    fn codes_are_read_with_their_version() {
        let h = Hierarchy::builtin();
        assert_eq!(h.unit("2023", "13777").unwrap().name, "Xã Thành Lợi");
        assert_eq!(h.unit("2025", "13777").unwrap().name, "Phường Trường Thi");
        let v = h.version("2023").unwrap();
        assert!(v.within("13777", "359"));
        assert!(v.within("13777", "36"));
        assert!(!v.within("13777", "356"));
        assert_eq!(
            h.version("1999").unwrap_err(),
            UnitError::UnknownVersion("1999".into())
        );
    }
}

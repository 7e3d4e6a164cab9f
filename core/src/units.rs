//! # Administrative units, by version
//!
//! The hierarchy is data: the GSO lists under `core/admin-units/` are
//! compiled in. Codes are reused across versions (2025's 13777 is not
//! 2023's 13777), so a unit is always named with its version.
//!
//! ## Moving a unit between versions
//!
//! Between two consecutive versions a unit *becomes* one unit of the next:
//! the one the mapping lists it under (`nam_dinh_2023_to_2024.csv`; the
//! `old_codes` column of `ninh_binh_units_2025.csv`), else whatever its
//! parent became (a 2024 district, abolished in 2025, becomes what province
//! 36 became: province 37), else, for a root, the next version's root. If a
//! code were listed under several new units (a split), it becomes their
//! common ancestor, so nothing is ever counted twice. Old codes that are not
//! in the older list are ignored: they belong to the other provinces merged
//! in 2025 (35, old 37), and also to the one known slip in the source, Xã
//! Nam Đồng 14014 listing 14380 of old Ninh Bình (see `SOURCE.md` §2).
//!
//! [`Hierarchy::resolve`] answers "under which unit of version `to` does a
//! unit of version `from` count?":
//! - forward (`from` older): follow "becomes" step by step
//!   (2023 commune → 2024 commune → 2025 commune; a district → the province);
//! - backward (`from` newer): the smallest unit of `to` that wholly contains
//!   it: the common ancestor of every unit of `to` that becomes it or a part
//!   of it (its old communes' district, else the province). A 2025 commune
//!   made only of Hà Nam or old Ninh Bình communes has no such unit and gets
//!   [`UnitError::NoCounterpart`]; province 37 goes back to province 36, the
//!   root of the older lists.
//!
//! Every pair of versions is worked out once, when the lists are loaded, so
//! `resolve` is a map lookup.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

const LIST_2023: &str = "nam_dinh_units_2023.csv";
const LIST_2024: &str = "nam_dinh_units_2024.csv";
const LIST_2025: &str = "ninh_binh_units_2025.csv";
const MAP_2023_2024: &str = "nam_dinh_2023_to_2024.csv";

/// The files of `core/admin-units/` compiled into this build, by name.
pub const BUILTIN_LISTS: [(&str, &str); 4] = [
    (
        LIST_2023,
        include_str!("../admin-units/nam_dinh_units_2023.csv"),
    ),
    (
        LIST_2024,
        include_str!("../admin-units/nam_dinh_units_2024.csv"),
    ),
    (
        LIST_2025,
        include_str!("../admin-units/ninh_binh_units_2025.csv"),
    ),
    (
        MAP_2023_2024,
        include_str!("../admin-units/nam_dinh_2023_to_2024.csv"),
    ),
];

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
    children: BTreeMap<String, Vec<String>>,
}

impl UnitVersion {
    pub fn unit(&self, code: &str) -> Option<&Unit> {
        self.units.get(code)
    }

    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// The units directly below `code`, by code.
    pub fn children(&self, code: &str) -> impl Iterator<Item = &Unit> {
        self.children
            .get(code)
            .into_iter()
            .flatten()
            .filter_map(|c| self.units.get(c))
    }

    /// The units above `code`: its parent first, the root last.
    pub fn ancestors(&self, code: &str) -> Vec<&Unit> {
        let mut out = Vec::new();
        let mut cur = self.units.get(code).and_then(|u| u.parent.as_deref());
        while let Some(u) = cur.and_then(|p| self.units.get(p)) {
            out.push(u);
            cur = u.parent.as_deref();
        }
        out
    }

    /// The units with no parent (the province).
    pub fn roots(&self) -> impl Iterator<Item = &Unit> {
        self.units.values().filter(|u| u.parent.is_none())
    }

    /// `code` and its ancestors, lowest first.
    fn chain<'a>(&'a self, code: &'a str) -> Vec<&'a str> {
        let mut out = vec![code];
        out.extend(self.ancestors(code).iter().map(|u| u.code.as_str()));
        out
    }

    /// The lowest unit that is or contains every one of `codes`.
    fn common_ancestor<'a>(&self, codes: impl IntoIterator<Item = &'a str>) -> Option<String> {
        let mut codes = codes.into_iter().filter(|c| self.units.contains_key(*c));
        let mut common = self.chain(codes.next()?);
        for c in codes {
            let other = self.chain(c);
            common.retain(|a| other.contains(a));
        }
        common.first().map(|c| (*c).to_owned())
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

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UnitError {
    #[error(
        "unknown hierarchy version {0:?} (known: 2023, 2024, 2025) / phiên bản danh mục không tồn tại"
    )]
    UnknownVersion(String),
    #[error(
        "unknown unit code {code:?} in the {version} hierarchy / mã đơn vị hành chính không tồn tại"
    )]
    UnknownUnit { code: String, version: String },
    #[error(
        "unit {code} of the {from} hierarchy lies outside the {to} hierarchy / đơn vị {code} ({from}) không thuộc danh mục {to}"
    )]
    NoCounterpart {
        code: String,
        from: String,
        to: String,
    },
    #[error("unit list {version}: {reason} / danh mục đơn vị không hợp lệ")]
    BadList { version: String, reason: String },
}

/// Every version of the hierarchy known to this build.
#[derive(Debug)]
pub struct Hierarchy {
    versions: BTreeMap<String, UnitVersion>,
    /// `moves[(from, to)][code]`: the unit of `to` that `code` of `from`
    /// counts under, for every pair of distinct versions.
    moves: BTreeMap<(String, String), BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Row {
    level: String,
    code: String,
    name: String,
    parent_code: String,
    /// 2025 list only: the codes of the previous version it absorbed.
    #[serde(default)]
    old_codes: String,
}

#[derive(Deserialize)]
struct MappingRow {
    old_code: String,
    new_code: String,
}

/// Old code -> the new codes that list it.
type Listed = BTreeMap<String, Vec<String>>;

fn parse(version: &str, csv_text: &str) -> Result<(UnitVersion, Listed), UnitError> {
    let bad = |e: csv::Error| UnitError::BadList {
        version: version.to_owned(),
        reason: e.to_string(),
    };
    let mut units = BTreeMap::new();
    let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut listed = Listed::new();
    for row in csv::Reader::from_reader(csv_text.as_bytes()).deserialize::<Row>() {
        let row = row.map_err(bad)?;
        for old in row.old_codes.split(';').filter(|c| !c.is_empty()) {
            listed
                .entry(old.to_owned())
                .or_default()
                .push(row.code.clone());
        }
        if !row.parent_code.is_empty() {
            children
                .entry(row.parent_code.clone())
                .or_default()
                .push(row.code.clone());
        }
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
    if let Some(code) = in_a_cycle(&units) {
        return Err(UnitError::BadList {
            version: version.to_owned(),
            reason: format!("unit {code} is its own ancestor (a cycle of parent codes)"),
        });
    }
    let unit = UnitVersion {
        version: version.to_owned(),
        units,
        children,
    };
    Ok((unit, listed))
}

/// A unit whose chain of parents comes back to itself, if there is one.
/// Every walk up the tree ([`UnitVersion::ancestors`], `within`, the moves
/// between versions) relies on there being none: a damaged list with a
/// cycle would make them loop for ever.
fn in_a_cycle(units: &BTreeMap<String, Unit>) -> Option<&str> {
    // Units whose chain is known to end at a root (or at a code outside
    // the list), so each unit is walked past once.
    let mut ends: std::collections::BTreeSet<&str> = Default::default();
    for start in units.keys() {
        let mut path: Vec<&str> = Vec::new();
        let mut cur = Some(start.as_str());
        while let Some(code) = cur {
            if ends.contains(code) {
                break;
            }
            if path.contains(&code) {
                return Some(code);
            }
            path.push(code);
            cur = units.get(code).and_then(|u| u.parent.as_deref());
        }
        ends.extend(path);
    }
    None
}

/// What each unit of `old` becomes in `new`, the next version (see the
/// module doc for the rules).
fn step(old: &UnitVersion, new: &UnitVersion, listed: &Listed) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut by_level: Vec<&Unit> = old.units().collect();
    by_level.sort_by_key(|u| u.level); // parents before children
    let new_roots: Vec<&Unit> = new.roots().collect();
    for u in by_level {
        let listed = listed.get(&u.code).map(|n| n.iter().map(String::as_str));
        let target = match (listed.and_then(|n| new.common_ancestor(n)), &u.parent) {
            (Some(t), _) => Some(t),
            (None, Some(p)) => out.get(p).cloned(),
            (None, None) => (new_roots.len() == 1).then(|| new_roots[0].code.clone()),
        };
        if let Some(t) = target {
            out.insert(u.code.clone(), t);
        }
    }
    out
}

/// The lists a process was given in place of the built-in ones, read once
/// (see [`Hierarchy::install`]).
static INSTALLED: OnceLock<(Vec<(String, String)>, &'static Hierarchy)> = OnceLock::new();

/// The file names a unit-list directory holds (those of [`BUILTIN_LISTS`]).
pub fn list_names() -> impl Iterator<Item = &'static str> {
    BUILTIN_LISTS.iter().map(|(n, _)| *n)
}

/// The four files of a unit-list directory, by name, as text.
pub fn read_lists(dir: &std::path::Path) -> Result<Vec<(String, String)>, UnitError> {
    list_names()
        .map(|name| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(|text| (name.to_owned(), text))
                .map_err(|e| UnitError::BadList {
                    version: String::new(),
                    reason: format!("{}: {e}", path.display()),
                })
        })
        .collect()
}

impl Hierarchy {
    /// The hierarchy this process serves: the lists given to
    /// [`Hierarchy::install`] (a hub configured with `units_dir`, e.g. a
    /// national one), else the built-in GSO lists.
    pub fn current() -> &'static Hierarchy {
        INSTALLED.get().map_or_else(Hierarchy::builtin, |(_, h)| h)
    }

    /// The files behind [`Hierarchy::current`], as nodes are sent them.
    pub fn current_lists() -> Vec<(String, String)> {
        match INSTALLED.get() {
            Some((lists, _)) => lists.clone(),
            None => BUILTIN_LISTS
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        }
    }

    /// Makes `lists` the hierarchy of this process, once, before it serves
    /// anything: a process serves one hierarchy, so installing other lists
    /// afterwards is refused (the same lists again are accepted).
    pub fn install(lists: Vec<(String, String)>) -> Result<&'static Hierarchy, UnitError> {
        if let Some((have, h)) = INSTALLED.get() {
            return match *have == lists {
                true => Ok(h),
                false => Err(UnitError::BadList {
                    version: String::new(),
                    reason: "this process already serves other unit lists".into(),
                }),
            };
        }
        let files: Vec<(&str, &str)> = lists.iter().map(|(n, t)| (&n[..], &t[..])).collect();
        let h: &'static Hierarchy = Box::leak(Box::new(Hierarchy::from_lists(&files)?));
        // Two threads installing at once: the first wins, the other checks.
        let _ = INSTALLED.set((lists.clone(), h));
        Hierarchy::install(lists)
    }

    /// The built-in GSO lists.
    pub fn builtin() -> &'static Hierarchy {
        static H: OnceLock<Hierarchy> = OnceLock::new();
        H.get_or_init(|| {
            Hierarchy::from_lists(&BUILTIN_LISTS).expect("built-in unit lists are valid")
        })
    }

    /// The hierarchy from its files, named as in [`BUILTIN_LISTS`]: the
    /// three unit lists and the 2023→2024 mapping (2024→2025 is in the
    /// 2025 list's `old_codes`). This is how a node reads the lists its
    /// hub publishes.
    pub fn from_lists(files: &[(&str, &str)]) -> Result<Hierarchy, UnitError> {
        let file = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .ok_or_else(|| UnitError::BadList {
                    version: String::new(),
                    reason: format!("{name} is missing"),
                })
        };
        let (v2023, _) = parse("2023", file(LIST_2023)?)?;
        let (v2024, _) = parse("2024", file(LIST_2024)?)?;
        let (v2025, to_2025) = parse("2025", file(LIST_2025)?)?;
        let mut to_2024 = Listed::new();
        for row in
            csv::Reader::from_reader(file(MAP_2023_2024)?.as_bytes()).deserialize::<MappingRow>()
        {
            let row = row.map_err(|e| UnitError::BadList {
                version: "2024".into(),
                reason: format!("{MAP_2023_2024}: {e}"),
            })?;
            to_2024.insert(row.old_code, vec![row.new_code]);
        }
        let steps = vec![
            step(&v2023, &v2024, &to_2024),
            step(&v2024, &v2025, &to_2025),
        ];
        Ok(Hierarchy::linked(vec![v2023, v2024, v2025], steps))
    }

    /// A hierarchy with one version read from a unit list in the format of
    /// `core/admin-units/` (`level,code,name,type,parent_code`), e.g. a
    /// synthetic national list for benchmarks.
    pub fn single(version: &str, csv_text: &str) -> Result<Hierarchy, UnitError> {
        Ok(Hierarchy::linked(vec![parse(version, csv_text)?.0], vec![]))
    }

    /// `versions` in order, oldest first; `steps[i]` says what each unit of
    /// `versions[i]` becomes in `versions[i + 1]`.
    fn linked(versions: Vec<UnitVersion>, steps: Vec<BTreeMap<String, String>>) -> Hierarchy {
        let mut moves = BTreeMap::new();
        for (i, old) in versions.iter().enumerate() {
            // Forward, one step at a time.
            let mut fwd: BTreeMap<String, String> =
                old.units.keys().map(|c| (c.clone(), c.clone())).collect();
            for (new, step) in versions[i + 1..].iter().zip(&steps[i..]) {
                fwd = fwd
                    .into_iter()
                    .filter_map(|(c, cur)| Some((c, step.get(&cur)?.clone())))
                    .collect();
                // Backward: each new unit is wholly contained by the common
                // ancestor of the old units that become it or a part of it.
                let mut pre: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for (from, to) in &fwd {
                    for x in new.chain(to) {
                        pre.entry(x).or_default().push(from);
                    }
                }
                let back = pre
                    .into_iter()
                    .filter_map(|(x, olds)| Some((x.to_owned(), old.common_ancestor(olds)?)))
                    .collect();
                moves.insert((old.version.clone(), new.version.clone()), fwd.clone());
                moves.insert((new.version.clone(), old.version.clone()), back);
            }
        }
        let versions = versions
            .into_iter()
            .map(|v| (v.version.clone(), v))
            .collect();
        Hierarchy { versions, moves }
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

    /// The names of the versions, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.versions.keys().map(String::as_str)
    }

    /// The unit of version `to` under which unit `code` of version `from`
    /// counts (see the module doc): what it became, or, going back, the
    /// smallest unit that wholly contains it.
    pub fn resolve(&self, from: &str, code: &str, to: &str) -> Result<String, UnitError> {
        self.unit(from, code)?;
        self.version(to)?;
        if from == to {
            return Ok(code.to_owned());
        }
        self.moves
            .get(&(from.to_owned(), to.to_owned()))
            .and_then(|m| m.get(code))
            .cloned()
            .ok_or_else(|| UnitError::NoCounterpart {
                code: code.to_owned(),
                from: from.to_owned(),
                to: to.to_owned(),
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
    fn a_cycle_of_parents_is_refused_by_name() {
        let list = "level,code,name,type,parent_code\n\
                    province,36,Tỉnh Nam Định,Tỉnh,\n\
                    district,356,Thành phố Nam Định,Thành phố,13633\n\
                    commune,13633,Phường Hạ Long,Phường,356\n";
        let err = Hierarchy::single("2023", list).unwrap_err();
        assert!(
            matches!(&err, UnitError::BadList { reason, .. } if reason.contains("356") || reason.contains("13633")),
            "{err}"
        );
        let own = "level,code,name,type,parent_code\ncommune,1,A,Xã,1\n";
        assert!(Hierarchy::single("2023", own).is_err());
        // A parent outside the list ends the chain; that is not a cycle.
        let outside = "level,code,name,type,parent_code\ncommune,1,A,Xã,99\n";
        assert!(Hierarchy::single("2023", outside).is_ok());
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

    #[test]
    fn a_unit_counts_under_what_it_became() {
        let h = Hierarchy::builtin();
        let r = |from: &str, code: &str, to: &str| h.resolve(from, code, to);
        // Phường Hạ Long, merged into 13681 Quang Trung in 2024, which went
        // into 13669 Phường Nam Định in 2025.
        assert_eq!(r("2023", "13633", "2024").unwrap(), "13681");
        assert_eq!(r("2023", "13633", "2025").unwrap(), "13669");
        assert_eq!(r("2024", "13681", "2025").unwrap(), "13669");
        // Districts: Mỹ Lộc joined Nam Định city; under 2025 there are none.
        assert_eq!(r("2023", "358", "2024").unwrap(), "356");
        assert_eq!(r("2023", "358", "2025").unwrap(), "37");
        assert_eq!(r("2024", "366", "2025").unwrap(), "37");
        assert_eq!(r("2023", "36", "2025").unwrap(), "37");
        assert_eq!(r("2023", "13633", "2023").unwrap(), "13633");
    }

    #[test]
    fn a_newer_unit_counts_under_the_smallest_older_unit_that_holds_it() {
        let h = Hierarchy::builtin();
        let r = |from: &str, code: &str, to: &str| h.resolve(from, code, to);
        // 2024's Quang Trung = 2023's Hạ Long + Quang Trung + Thống Nhất, all in 356.
        assert_eq!(r("2024", "13681", "2023").unwrap(), "356");
        // A 2024 commune that absorbed nothing is itself.
        assert_eq!(r("2024", "13684", "2023").unwrap(), "13684");
        // 2024's city absorbed Mỹ Lộc: only the province holds it.
        assert_eq!(r("2024", "356", "2023").unwrap(), "36");
        // 2025's Xã Vụ Bản (13741) is three communes of 2023's Vụ Bản (359);
        // 2023's own 13741 is another unit, in the same district.
        assert_eq!(r("2025", "13741", "2023").unwrap(), "359");
        // Phường Nam Định spans three 2023 districts.
        assert_eq!(r("2025", "13669", "2023").unwrap(), "36");
        // Nam Đồng: the source's stray old code 14380 (old Ninh Bình) is ignored.
        assert_eq!(r("2025", "14014", "2024").unwrap(), "362");
        assert_eq!(r("2025", "37", "2023").unwrap(), "36");
        // Phủ Lý was Hà Nam's: there is no Nam Định unit to hold it.
        assert!(matches!(
            r("2025", "13285", "2023"),
            Err(UnitError::NoCounterpart { .. })
        ));
        assert!(matches!(
            r("2023", "99999", "2025"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            r("2023", "13633", "2030"),
            Err(UnitError::UnknownVersion(_))
        ));
    }

    #[test]
    fn every_old_unit_goes_forward_and_back_into_a_unit_that_holds_it() {
        let h = Hierarchy::builtin();
        for (old, new) in [("2023", "2024"), ("2023", "2025"), ("2024", "2025")] {
            let v = h.version(old).unwrap();
            for u in v.units() {
                let there = h.resolve(old, &u.code, new).unwrap();
                let back = h.resolve(new, &there, old).unwrap();
                assert!(
                    v.within(&u.code, &back),
                    "{old} {} -> {there} -> {back}",
                    u.code
                );
            }
        }
    }

    #[test]
    fn ancestors_and_children_follow_each_version() {
        let h = Hierarchy::builtin();
        let v23 = h.version("2023").unwrap();
        let codes = |us: Vec<&Unit>| us.iter().map(|u| u.code.clone()).collect::<Vec<_>>();
        assert_eq!(codes(v23.ancestors("13633")), ["356", "36"]);
        assert_eq!(v23.children("358").count(), 11);
        assert_eq!(v23.children("36").count(), 10);
        let v25 = h.version("2025").unwrap();
        assert_eq!(codes(v25.ancestors("13669")), ["37"]);
        assert_eq!(v25.children("37").count(), 129);
        assert_eq!(codes(v25.roots().collect()), ["37"]);
    }
}

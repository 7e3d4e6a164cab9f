//! # A plan's territory, in every hierarchy version
//!
//! A plan covers one unit (`[plan] unit`) of the hierarchy version it was
//! written for (`[plan] hierarchy`): Nam Định as of 2023 for Đề án 01. Its
//! figures cover that territory and nothing else, whatever version they are
//! asked under. For every unit of every version, [`Territory`] says whether
//! it lies wholly in the territory ([`Part::Inside`]), straddles its border
//! ([`Part::Partly`]: Tỉnh Ninh Bình of 2025 holds Nam Định and more), or
//! lies outside it ([`Part::Outside`]: a 2025 commune made only of Hà Nam
//! communes).
//!
//! - In the plan's own version: the territory's unit and those below it
//!   are inside, its ancestors partly, the rest outside.
//! - In another version, a unit without units below it is inside when the
//!   smallest unit of the plan's version that wholly contains it
//!   ([`Hierarchy::resolve`] going back) lies in the territory; a unit with
//!   units below it is inside when that holds and every unit below it is
//!   inside too (2025's province goes back to 2023's province only because
//!   the older lists hold no Hà Nam units, but Phường Phủ Lý below it is
//!   outside, so it is not inside). A unit that is not inside is partly
//!   inside when a unit of the territory becomes it or a unit below it.
//!
//! The territory *is* a unit of another version when exactly one unit
//! there is inside with no inside parent and the territory becomes it
//! (Nam Định 2023 is Nam Định 2024). Otherwise the figures are shown under
//! a unit of their own, the territory labelled as such ("Tỉnh Nam Định
//! (địa bàn cũ)"), holding the units inside it ([`Territory::tops`]).

use std::collections::{HashMap, HashSet};

use crate::units::{Hierarchy, UnitError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Inside,
    Partly,
    Outside,
}

/// One plan's territory: a unit of one version, and where every unit of
/// every version stands against it.
#[derive(Debug, Clone)]
pub struct Territory {
    pub version: String,
    pub code: String,
    /// The territory's name in its own version ("Tỉnh Nam Định").
    pub name: String,
    /// version -> code -> part.
    parts: HashMap<String, HashMap<String, Part>>,
}

impl Territory {
    pub fn new(h: &Hierarchy, version: &str, code: &str) -> Result<Territory, UnitError> {
        let own = h.version(version)?;
        let name = h.unit(version, code)?.name.clone();
        let mut parts = HashMap::new();
        for x in h.versions() {
            let v = h.version(x)?;
            let mut part: HashMap<String, Part> = HashMap::new();
            if x == version {
                for u in v.units() {
                    let p = if v.within(&u.code, code) {
                        Part::Inside
                    } else if v.within(code, &u.code) {
                        Part::Partly
                    } else {
                        Part::Outside
                    };
                    part.insert(u.code.clone(), p);
                }
                parts.insert(x.to_owned(), part);
                continue;
            }
            // Inside, children first (deepest units first).
            let mut units: Vec<_> = v.units().collect();
            units.sort_by_key(|u| std::cmp::Reverse(v.ancestors(&u.code).len()));
            let mut touched: HashSet<String> = HashSet::new();
            for p in own.units().filter(|p| own.within(&p.code, code)) {
                if let Ok(to) = h.resolve(version, &p.code, x) {
                    touched.insert(to.clone());
                    touched.extend(v.ancestors(&to).iter().map(|a| a.code.clone()));
                }
            }
            for u in units {
                let back = h
                    .resolve(x, &u.code, version)
                    .is_ok_and(|b| own.within(&b, code));
                let inside = back
                    && v.children(&u.code)
                        .all(|c| part.get(&c.code) == Some(&Part::Inside));
                if inside {
                    touched.extend(v.ancestors(&u.code).iter().map(|a| a.code.clone()));
                }
                part.insert(
                    u.code.clone(),
                    if inside { Part::Inside } else { Part::Outside },
                );
            }
            for c in touched {
                if let Some(p) = part.get_mut(&c)
                    && *p == Part::Outside
                {
                    *p = Part::Partly;
                }
            }
            parts.insert(x.to_owned(), part);
        }
        Ok(Territory {
            version: version.to_owned(),
            code: code.to_owned(),
            name,
            parts,
        })
    }

    /// Where unit `code` of `version` stands; none for an unknown unit.
    pub fn part(&self, version: &str, code: &str) -> Option<Part> {
        self.parts.get(version)?.get(code).copied()
    }

    /// The units of `version` inside the territory whose parent is not, by
    /// code: what the territory became there.
    pub fn tops(&self, h: &Hierarchy, version: &str) -> Vec<String> {
        let Ok(v) = h.version(version) else {
            return Vec::new();
        };
        let inside = |c: &str| self.part(version, c) == Some(Part::Inside);
        let mut out: Vec<String> = v
            .units()
            .filter(|u| inside(&u.code) && !u.parent.as_deref().is_some_and(inside))
            .map(|u| u.code.clone())
            .collect();
        out.sort();
        out
    }

    /// The unit of `version` the territory is exactly, if there is one.
    pub fn as_unit(&self, h: &Hierarchy, version: &str) -> Option<String> {
        let tops = self.tops(h, version);
        let became = h.resolve(&self.version, &self.code, version).ok()?;
        (tops.len() == 1 && tops[0] == became).then_some(became)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nam_dinh_2023_in_every_version() {
        let h = Hierarchy::builtin();
        let t = Territory::new(h, "2023", "36").unwrap();
        assert_eq!(t.as_unit(h, "2023").as_deref(), Some("36"));
        // 2024's Nam Định is the same territory.
        assert_eq!(t.as_unit(h, "2024").as_deref(), Some("36"));
        // 2025: no unit is Nam Định; the merged province straddles it.
        assert_eq!(t.as_unit(h, "2025"), None);
        assert_eq!(t.part("2025", "37"), Some(Part::Partly));
        assert_eq!(t.part("2025", "13285"), Some(Part::Outside)); // Phủ Lý, Hà Nam's
        assert_eq!(t.part("2025", "13669"), Some(Part::Inside)); // Phường Nam Định
        let tops = t.tops(h, "2025");
        let v25 = h.version("2025").unwrap();
        let from_36 = v25
            .units()
            .filter(|u| h.resolve("2025", &u.code, "2023").is_ok_and(|b| b != "36"))
            .count();
        // Every 2025 commune of Nam Định: those that go back to a 2023
        // district or commune, and those spanning districts (back to 36).
        assert!(tops.len() >= from_36, "{} < {from_36}", tops.len());
        assert!(!tops.contains(&"37".to_owned()) && !tops.contains(&"13285".to_owned()));
    }

    #[test]
    fn a_district_territory_in_the_plans_version_and_later() {
        let h = Hierarchy::builtin();
        let t = Territory::new(h, "2023", "366").unwrap();
        assert_eq!(t.part("2023", "36"), Some(Part::Partly));
        assert_eq!(t.part("2023", "359"), Some(Part::Outside));
        assert_eq!(t.as_unit(h, "2023").as_deref(), Some("366"));
        // 2025 has no districts: Hải Hậu is some of its communes.
        assert_eq!(t.as_unit(h, "2025"), None);
        assert!(!t.tops(h, "2025").is_empty());
        assert_eq!(t.part("2025", "37"), Some(Part::Partly));
    }
}

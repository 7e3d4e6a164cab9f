//! # Progress against the plan
//!
//! For one hierarchy version and one date, every unit of that version gets,
//! for every indicator and phase, a [`Figure`]: the value, the target, the
//! share achieved and a [`Status`]. Nothing here does I/O: records go in,
//! figures come out.
//!
//! ## How a figure is made
//!
//! 0. **Territory.** The figures cover the plan's territory
//!    ([`crate::territory`]): the units of the asked version inside it,
//!    under the territory's unit, or under the territory itself labelled
//!    as such ("Tỉnh Nam Định (địa bàn cũ)") where no unit of that version
//!    is it. A record of a unit wholly outside the territory is another
//!    plan's: named in [`Report::outside`], counted by no figure.
//! 1. **Place.** A record counts under the unit of the asked version that
//!    its own unit (with its own `unit_version`) resolves to
//!    ([`Hierarchy::resolve`]), or at the territory itself when that unit
//!    lies outside the tree (2024's Nam Định, asked under 2025). A record
//!    that cannot be placed (unknown unit, a unit outside the asked
//!    version, or one straddling the territory's border) counts nowhere
//!    and is listed in [`Report::unplaced`], so nothing is silently
//!    dropped.
//! 2. **Evaluate.** Each record of an indicator's kind (a *root*) gives a
//!    [`Tally`] per indicator and phase, as of the date capped at the
//!    phase's end: 1 for a count, the field for a sum, 1/1 or 0/1 for a
//!    ratio. Deleted records do not exist.
//! 3. **Roll up.** A unit's `direct` tally is the sum over the roots placed
//!    at it; its `total` adds the totals of its children. Tallies always
//!    add up; the percent of a ratio is computed from the totals.
//! 4. **Judge.** Targets are set for units of the plan's own version (the
//!    plan's, and those of an allocation file: [`crate::allocation`]) and
//!    resolved to the asked version; the territory's own go to the root,
//!    and one whose unit has no counterpart in the tree is not guessed. The status compares the value with the
//!    target and with a straight line to the target at the phase's end,
//!    from where the phase starts: phase 1 from 0 at its start, a later
//!    phase from the value the previous phase reached (when the indicator
//!    counts the same way in both, i.e. does not look at the phase's
//!    bounds; else from 0). On and after a phase's last day a target not
//!    met is [`Status::NotAchieved`]: there is no line left to be on.
//!
//! ## Keeping it current
//!
//! [`Engine`] keeps the records (compactly: [`Slim`]) and the unit
//! aggregates of its date and of any other dates asked to be kept. When a
//! record changes, only the roots within [`Plan::reach`] links of it
//! (before and after the change) can see a difference: for the shipped
//! plan, a cooperative and the records that point at it (its observations
//! and managers, a training and its attendees). What those roots add is
//! evaluated with the record as it was, taken off their unit and its
//! ancestors, and evaluated again with the record as it is and put on.
//! That is a few records and three levels of units per change, whatever
//! the size of the data, and nothing kept per record but the record. [`recompute`] computes the same thing from scratch, rolling up
//! bottom-up; the tests hold the two to agree.

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use rustc_hash::FxHashMap;
use serde::Serialize;
use time::Date;

use crate::plan::{Compute, Goal, Indicator, Operand, Plan, Pred, Related, Target};
use crate::schema::{self, FieldType, Key, Record, Value};
use crate::territory::{Part, Territory};
use crate::units::{Hierarchy, Level, Unit, UnitError};

mod slim;
use slim::{ById, RECORDED_BY, UNIT, UNIT_VERSION};
pub use slim::{Field, Fields, Items, Name, Names, Rec, Slim, Whole};

/// How the territory is labelled in a later version where no unit is it
/// ("Tỉnh Nam Định (địa bàn cũ)"), and in an earlier one.
pub const FORMER: (&str, &str) = ("địa bàn cũ", "former territory");
pub const LATER: (&str, &str) = ("địa bàn kế hoạch", "the plan's territory");

/// Where the records of one unit count.
#[derive(Debug, Clone, Copy)]
enum Place {
    At(usize),
    /// The unit straddles the territory's border: its records cannot be
    /// said to be in it or not.
    Partly,
    /// Wholly outside the plan's territory: another plan's records.
    Outside,
}

/// Why a record counts under no unit of the view.
enum Miss {
    Unit(UnitError),
    Partly,
    Outside,
}

impl From<UnitError> for Miss {
    fn from(e: UnitError) -> Miss {
        Miss::Unit(e)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProgressError {
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error("{0:?} is not a date of the form YYYY-MM-DD / ngày {0:?} không hợp lệ")]
    BadDate(String),
    #[error(
        "unit {unit} of the {version} hierarchy is not in the territory of plan {plan} ({territory}) / đơn vị {unit} không thuộc địa bàn của kế hoạch {plan}"
    )]
    NotInTerritory {
        unit: String,
        version: String,
        plan: String,
        territory: String,
    },
    /// A total too large for the wire's 64-bit integers: records above the
    /// schema's bounds that were stored before the bounds existed.
    #[error(
        "{indicator} at unit {unit}: the total {value} is beyond what can be reported (at most {max}); check the records of this unit for impossible values / tổng {value} của {indicator} tại {unit} quá lớn, hãy kiểm tra các bản ghi"
    , max = i64::MAX)]
    TooLarge {
        indicator: String,
        unit: String,
        value: i128,
    },
}

/// Reads the date progress is asked for (`YYYY-MM-DD`).
pub fn parse_date(text: &str) -> Result<Date, ProgressError> {
    schema::parse_date(text).ok_or_else(|| ProgressError::BadDate(text.to_owned()))
}

/// A numerator and, for ratios, a denominator (0 for counts and sums).
///
/// Kept in 128 bits: every term is one record's value, a 64-bit integer,
/// and there are fewer than 2^63 records, so no sum, partial or total,
/// added or taken off, can leave the range (64 bits wrapped: two counts of
/// i64::MAX made a sum of -2). Narrowed, checked, only at the wire
/// ([`crate::report::to_wire`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub numerator: i128,
    pub denominator: i128,
}

impl Tally {
    fn add(&mut self, t: Tally, sign: i128) {
        self.numerator += sign * t.numerator;
        self.denominator += sign * t.denominator;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Achieved,
    /// Over the top of a range or an exact target.
    AboveTarget,
    /// Not achieved, but at or above the straight line to the target.
    OnTrack,
    Behind,
    /// The phase's last day has come and the target is not met.
    NotAchieved,
    /// A ratio with nothing to divide by (no female managers, no cadres).
    NoData,
    NoTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// Shared with every figure of the same slot (a national report has
    /// about 110,000 figures): a name each would be as many allocations.
    pub indicator: Name,
    pub phase: Name,
    pub compute: Compute,
    /// `"vnd"` for amounts in đồng ([`crate::plan::Indicator::measure`]).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub measure: &'static str,
    /// Everything placed at this unit or below it.
    pub total: Tally,
    /// What was placed at this unit itself and not below it: records
    /// entered for it, or newer units only it wholly contains. Shown as
    /// the row "at this level / not attributable below": with the totals
    /// of the units below it, it adds up to `total`.
    pub direct: Tally,
    /// A count or sum; for a ratio the percent, none when nothing to divide by.
    pub value: Option<f64>,
    pub goal: Option<Goal>,
    /// Where the straight line from the phase's start stands on the date.
    pub expected: Option<f64>,
    /// Value divided by the target (the low end of a range).
    pub share: Option<f64>,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitProgress {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub parent: Option<String>,
    /// One per indicator and phase, in the plan's order.
    pub figures: Vec<Figure>,
    /// The nodes (`recorded_by`) whose live records are placed at this unit
    /// or below it, by name: who holds data for it, for its freshness.
    pub recorded_by: Vec<String>,
    /// Whether any target is set for this unit (the plan's, or one its
    /// allocation file gives it).
    pub allocated: bool,
}

impl UnitProgress {
    pub fn figure(&self, indicator: &str, phase: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| &*f.indicator == indicator && &*f.phase == phase)
    }
}

/// A record that counts nowhere in this version, and why: named by its id
/// and the unit (and version) it was entered for, so it can be found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unplaced {
    pub id: String,
    pub kind: String,
    pub unit: String,
    pub unit_version: String,
    pub reason: String,
}

/// The territory a report covers, as people read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TerritoryInfo {
    /// The code of the report's first unit (the territory's own code in
    /// its version when no unit of the asked version is it).
    pub code: String,
    /// The plan's version and unit.
    pub version: String,
    pub unit: String,
    pub name_vi: String,
    pub name_en: String,
    /// Shown as "địa bàn cũ / former territory": no unit of the asked
    /// version is the territory.
    pub former: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub plan: String,
    pub plan_name: String,
    pub plan_name_vi: String,
    pub territory: TerritoryInfo,
    /// Records wholly outside the plan's territory (another plan's), by
    /// id: counted by no figure of this plan, and not lost.
    pub outside: Vec<String>,
    pub hierarchy: String,
    #[serde(serialize_with = "ser_date")]
    pub as_of: Date,
    /// The phase the date falls in (the last one after the plan's end, the
    /// first before its start).
    pub phase_now: String,
    /// Each indicator's names from the plan file, by id, in the plan's
    /// order: (id, English, Vietnamese).
    pub indicators: Vec<(String, String, String)>,
    /// Every unit of the version, each parent before its children.
    pub units: Vec<UnitProgress>,
    /// By record id.
    pub unplaced: Vec<Unplaced>,
}

impl Report {
    pub fn unit(&self, code: &str) -> Option<&UnitProgress> {
        self.units.iter().find(|u| u.code == code)
    }
}

fn ser_date<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&schema::format_date(*d))
}

// ---- Records and the links between them ---------------------------------

/// The live records, with who points at whom.
#[derive(Default)]
struct World {
    /// Shared, so that a from-scratch query can borrow them
    /// ([`Engine::records`]) rather than read them again.
    records: HashSet<ById>,
    /// id -> the records whose reference fields hold that id.
    referrers: HashMap<Name, Vec<Name>>,
    /// Every text the records hold, once.
    names: Names,
}

/// The ids `rec` points at (its `Ref` and `RefList` fields).
fn links<R: Rec + ?Sized>(rec: &R) -> Vec<&str> {
    let mut out = Vec::new();
    links_into(rec, link_fields(rec.kind()), &mut out);
    out
}

/// The reference fields (`Ref`, `RefList`) of each kind, numbered once.
static LINK_FIELDS: LazyLock<Vec<(&'static str, Vec<Key>)>> = LazyLock::new(|| {
    let refs = |k: &schema::KindSpec| {
        let refs = k
            .fields
            .iter()
            .filter(|f| matches!(f.ty, FieldType::Ref(_) | FieldType::RefList(_)));
        refs.map(|f| Key::new(f.name)).collect()
    };
    schema::KINDS.iter().map(|k| (k.name, refs(k))).collect()
});

/// The reference fields of records of `kind`.
fn link_fields(kind: &str) -> &'static [Key] {
    let found = LINK_FIELDS.iter().find(|(k, _)| *k == kind);
    found.map_or(&[], |(_, keys)| keys)
}

/// As [`links`], for a record whose kind's reference fields are
/// `fields` ([`link_fields`]), appended to `out`.
fn links_into<'r, R: Rec + ?Sized>(rec: &'r R, fields: &[Key], out: &mut Vec<&'r str>) {
    for f in fields {
        match rec.get(f) {
            Some(Field::Text(id)) => out.push(id),
            Some(Field::List(ids)) => out.extend(ids.iter()),
            _ => {}
        }
    }
}

/// The fields of a record that progress under a plan reads: those the
/// plan's conditions name, every link, and where and by whom it was
/// recorded. The [`Engine`] keeps only these of each record, and a
/// from-scratch computation need read no more (a name, an address or a
/// note is most of a record and no figure reads it).
#[derive(Debug, Clone, Copy)]
pub struct Kept(slim::Fields);

impl Kept {
    pub fn of(plan: &Plan) -> Kept {
        let links = schema::KINDS.iter().flat_map(|k| k.fields).filter_map(|f| {
            matches!(f.ty, FieldType::Ref(_) | FieldType::RefList(_)).then_some(f.name)
        });
        let names = plan.fields_read().into_iter().chain(links);
        Kept(slim::Fields::of(names.chain([
            "unit",
            "unit_version",
            "recorded_by",
            "deleted_at",
        ])))
    }
}

impl World {
    fn insert(&mut self, rec: Arc<Slim>) {
        self.remove(rec.id());
        for to in links(&*rec) {
            let to = self.names.name(to);
            let from = self.referrers.entry(to).or_default();
            if !from.contains(rec.name()) {
                from.push(rec.name().clone());
            }
        }
        self.records.insert(ById(rec));
    }

    fn remove(&mut self, id: &str) {
        let Some(ById(rec)) = self.records.take(id) else {
            return;
        };
        for to in links(&*rec) {
            if let Some(from) = self.referrers.get_mut(to) {
                from.retain(|x| &**x != id);
                if from.is_empty() {
                    self.referrers.remove(to);
                }
            }
        }
        self.names.let_go();
    }

    fn get(&self, id: &str) -> Option<&Arc<Slim>> {
        self.records.get(id).map(|r| &r.0)
    }

    /// Records `id` points at and records that point at it.
    fn neighbours(&self, id: &str) -> Vec<Name> {
        let mut out: Vec<Name> = self
            .get(id)
            .map(|r| {
                links(&**r)
                    .into_iter()
                    .filter_map(|to| self.names.get(to).cloned())
                    .collect()
            })
            .unwrap_or_default();
        out.extend(self.referrers.get(id).into_iter().flatten().cloned());
        out
    }
}

/// What evaluating a condition needs of the records: one by id, and those
/// that point at one. [`World`] keeps them for the [`Engine`], owned and
/// changing; [`Snapshot`] borrows them for one [`recompute`].
trait Links {
    type R: Rec;
    fn record(&self, id: &str) -> Option<&Self::R>;
    /// The records whose reference fields hold `id`, each once.
    fn referrers<'s>(&'s self, id: &'s str) -> impl Iterator<Item = &'s Self::R>;
}

impl Links for World {
    type R = Slim;

    fn record(&self, id: &str) -> Option<&Slim> {
        self.get(id).map(|r| &**r)
    }

    fn referrers<'s>(&'s self, id: &'s str) -> impl Iterator<Item = &'s Slim> {
        self.referrers
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|x| self.get(x).map(|r| &**r))
    }
}

/// The live records of one recomputation, borrowed from the caller: a
/// national set is 175,000 records, and copying them (and a set of
/// referrer ids per record) into a [`World`] took most of the time.
struct Snapshot<'r, R> {
    input: Vec<&'r R>,
    /// id -> the last record of that id in `input`, if not deleted.
    by_id: HashMap<&'r str, usize>,
    /// By position in `input`: whether it is the record its id counts as.
    live: Vec<bool>,
    referrers: HashMap<&'r str, Vec<&'r R>>,
}

impl<'r, R: Rec> Snapshot<'r, R> {
    /// Deleted records are skipped; if an id comes twice the last one counts.
    fn new(input: &'r [R]) -> Snapshot<'r, R> {
        let input: Vec<&'r R> = input.iter().collect();
        let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(input.len());
        let mut live = vec![false; input.len()];
        for (i, &r) in input.iter().enumerate() {
            let before = match r.is_deleted() {
                true => by_id.remove(r.id()),
                false => {
                    live[i] = true;
                    by_id.insert(r.id(), i)
                }
            };
            if let Some(j) = before {
                live[j] = false;
            }
        }
        let mut snapshot = Snapshot {
            input,
            by_id,
            live,
            referrers: HashMap::new(),
        };
        let mut referrers: HashMap<&str, Vec<&R>> = HashMap::with_capacity(snapshot.input.len());
        let mut to = Vec::new();
        // Records of one kind usually come together: look the kind up once.
        let mut fields: Option<(&str, &[Key])> = None;
        for r in snapshot.records() {
            if fields.is_none_or(|(k, _)| k != r.kind()) {
                fields = Some((r.kind(), link_fields(r.kind())));
            }
            to.clear();
            links_into(r, fields.map_or(&[], |(_, f)| f), &mut to);
            // Each referrer once, as the engine's sets keep them.
            to.sort_unstable();
            to.dedup();
            for &id in &to {
                referrers.entry(id).or_default().push(r);
            }
        }
        snapshot.referrers = referrers;
        snapshot
    }

    /// The live records, in the order they were given (the order they
    /// were read in, so neighbours in memory are visited together).
    fn records(&self) -> impl Iterator<Item = &'r R> + '_ {
        self.input
            .iter()
            .zip(&self.live)
            .filter_map(|(r, live)| live.then_some(*r))
    }
}

impl<R: Rec> Links for Snapshot<'_, R> {
    type R = R;

    fn record(&self, id: &str) -> Option<&R> {
        self.by_id.get(id).map(|&i| self.input[i])
    }

    fn referrers<'s>(&'s self, id: &'s str) -> impl Iterator<Item = &'s R> {
        self.referrers.get(id).into_iter().flatten().copied()
    }
}

// ---- Evaluating conditions ----------------------------------------------

fn int<R: Rec + ?Sized>(rec: &R, field: &Key) -> Option<i64> {
    match rec.get(field) {
        Some(Field::Int(n)) => Some(n),
        _ => None,
    }
}

fn compare(v: Field<'_>, rhs: &Value) -> Option<Ordering> {
    match (v, rhs) {
        (Field::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Field::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Field::Text(a), Value::Text(b)) => Some(a.cmp(b.as_str())),
        (_, Value::Date(b)) => v.date().map(|a| a.cmp(b)),
        _ => None,
    }
}

/// The world as of one date, for one phase.
struct Eval<'a, W: Links> {
    plan: &'a Plan,
    world: &'a W,
    as_of: Date,
    phase_start: Date,
    phase_end: Date,
    /// What this evaluation already worked out. A cooperative is asked
    /// whether it is in scope by five indicators, and for its latest
    /// observation by four: each is answered once (the answers only
    /// depend on the record, the date and the phase, all fixed here).
    memo: RefCell<Memo<'a, W::R>>,
}

/// Records are told apart by address: they do not move while evaluated.
struct Memo<'a, R> {
    /// (record, rule number) -> whether the rule holds.
    rules: Vec<(*const R, usize, bool)>,
    /// (record, relation) -> its latest related record.
    latest: Vec<(*const R, &'a Related, Option<&'a R>)>,
}

impl<R> Default for Memo<'_, R> {
    fn default() -> Self {
        Memo {
            rules: Vec::new(),
            latest: Vec::new(),
        }
    }
}

impl<'a, W: Links> Eval<'a, W> {
    fn lifespan_date(&self, r: &W::R, field: Option<&Key>) -> Option<Date> {
        field.and_then(|f| r.get(f)).and_then(Field::date)
    }

    /// Whether `r` exists on the date.
    fn alive(&self, r: &W::R) -> bool {
        let Some(l) = self.plan.lifespan(r.kind()) else {
            return true;
        };
        let from = self.lifespan_date(r, l.from.as_ref());
        let until = self.lifespan_date(r, l.until.as_ref());
        from.is_none_or(|d| d <= self.as_of) && until.is_none_or(|d| d >= self.as_of)
    }

    fn operand<'o>(&self, o: &'o Operand) -> Cow<'o, Value> {
        let date = match o {
            Operand::Value(v) => return Cow::Borrowed(v),
            Operand::AsOf => self.as_of,
            Operand::PlanStart => self.plan.start,
            Operand::PhaseStart => self.phase_start,
            Operand::PhaseEnd => self.phase_end,
        };
        Cow::Owned(Value::Date(date))
    }

    /// The living records of `rel.kind` whose `rel.via` points at `r`.
    fn related(&self, r: &'a W::R, rel: &'a Related) -> impl Iterator<Item = &'a W::R> + '_ {
        self.world.referrers(r.id()).filter(move |x| {
            x.kind() == rel.kind
                && match x.get(&rel.via) {
                    Some(Field::Text(id)) => id == r.id(),
                    Some(Field::List(ids)) => ids.contains(r.id()),
                    _ => false,
                }
                && self.alive(x)
        })
    }

    /// The latest of them, by the date its life starts, then by id.
    fn latest(&self, r: &'a W::R, rel: &'a Related) -> Option<&'a W::R> {
        let known = self.memo.borrow().latest.iter().find_map(|&(x, k, found)| {
            (std::ptr::eq(x, r) && k.kind == rel.kind && k.via == rel.via).then_some(found)
        });
        if let Some(found) = known {
            return found;
        }
        let from = self.plan.lifespan(&rel.kind).and_then(|l| l.from.as_ref());
        let found = self
            .related(r, rel)
            .max_by_key(|&x| (self.lifespan_date(x, from), x.id()));
        self.memo.borrow_mut().latest.push((r, rel, found));
        found
    }

    fn rule(&self, r: &'a W::R, number: usize, preds: &'a [Pred]) -> bool {
        let known = self
            .memo
            .borrow()
            .rules
            .iter()
            .find_map(|&(x, n, holds)| (std::ptr::eq(x, r) && n == number).then_some(holds));
        if let Some(holds) = known {
            return holds;
        }
        let holds = self.all(r, preds);
        self.memo.borrow_mut().rules.push((r, number, holds));
        holds
    }

    fn all(&self, r: &'a W::R, preds: &'a [Pred]) -> bool {
        preds.iter().all(|p| self.test(r, p))
    }

    fn test(&self, r: &'a W::R, p: &'a Pred) -> bool {
        match p {
            Pred::Cmp { field, op, rhs } => r
                .get(field)
                .and_then(|v| compare(v, &self.operand(rhs)))
                .is_some_and(|o| op.holds(o)),
            Pred::In { field, values } => r.get(field).is_some_and(|v| {
                values
                    .iter()
                    .any(|x| compare(v, x) == Some(Ordering::Equal))
            }),
            Pred::Set { field, present } => r.get(field).is_some() == *present,
            Pred::Share { num, den, op, rhs } => match (int(r, num), int(r, den)) {
                (Some(n), Some(d)) if d > 0 => (n as f64 / d as f64)
                    .partial_cmp(rhs)
                    .is_some_and(|o| op.holds(o)),
                _ => false,
            },
            Pred::Has(rel, cond) => self.related(r, rel).any(|x| self.all(x, cond)),
            Pred::Latest(rel, cond) => self.latest(r, rel).is_some_and(|x| self.all(x, cond)),
            Pred::Ref { field, cond } => r
                .get_text(field)
                .and_then(|id| self.world.record(id))
                .is_some_and(|x| self.alive(x) && self.all(x, cond)),
            Pred::Any(ps) => ps.iter().any(|p| self.test(r, p)),
            Pred::All(ps) => self.all(r, ps),
            Pred::Rule(number, ps) => self.rule(r, *number, ps),
            Pred::Not(p) => !self.test(r, p),
        }
    }

    /// What root `r` adds to indicator `ind`, if anything.
    fn tally(&self, ind: &'a Indicator, r: &'a W::R) -> Option<Tally> {
        if !self.alive(r) || !self.all(r, &ind.filter) {
            return None;
        }
        let t = match ind.compute {
            Compute::Count => Tally {
                numerator: 1,
                denominator: 0,
            },
            Compute::Sum => {
                let (field, from) = ind.sum.as_ref()?;
                let source = match from {
                    None => Some(r),
                    Some(rel) => self.latest(r, rel),
                };
                Tally {
                    numerator: source.and_then(|s| int(s, field)).unwrap_or(0).into(),
                    denominator: 0,
                }
            }
            Compute::Ratio => Tally {
                numerator: i128::from(self.all(r, &ind.numerator)),
                denominator: 1,
            },
        };
        (t != Tally::default()).then_some(t)
    }
}

// ---- One version, one date ------------------------------------------------

/// What does not change while records do: the plan, the units of the
/// asked version in order, and the targets placed on them.
struct View {
    plan: Plan,
    hierarchy: &'static Hierarchy,
    version: String,
    as_of: Date,
    /// Parents before children; the first is the root: the plan's
    /// territory (a unit of its own when no unit of the version is it).
    units: Vec<Cow<'static, Unit>>,
    index: HashMap<String, usize>,
    /// The plan's territory; none when the hierarchy does not know the
    /// plan's version (a synthetic one): then every unit counts.
    territory: Option<Territory>,
    /// When the root is the territory labelled as such, not a unit: the
    /// label (Vietnamese, English).
    former: Option<(&'static str, &'static str)>,
    /// version -> code -> where a record of that unit counts, for every
    /// unit of every version that has an answer (so placing a record is
    /// two lookups, with a fast hash: the maps are built from the
    /// hierarchy, never from what a record holds).
    placements: FxHashMap<String, FxHashMap<String, Place>>,
    parent: Vec<Option<usize>>,
    /// Units are in preorder: unit `u` and those below it are `u..end[u]`.
    end: Vec<usize>,
    /// (unit, slot) -> goal. A slot is an (indicator, phase) pair.
    goals: HashMap<(usize, usize), Goal>,
    /// kind -> the indicators whose roots are of that kind, in order.
    by_kind: FxHashMap<String, Vec<usize>>,
    /// By indicator: whether it looks at the phase's bounds.
    phase_bounds: Vec<bool>,
    /// By slot: its indicator's and its phase's ids, for its figures.
    slot_names: Vec<(Name, Name)>,
}

impl View {
    fn new(
        plan: Plan,
        hierarchy: &'static Hierarchy,
        version: &str,
        as_of: Date,
    ) -> Result<View, ProgressError> {
        let v = hierarchy.version(version)?;
        let territory = match hierarchy.version(&plan.hierarchy) {
            Ok(_) => Some(Territory::new(hierarchy, &plan.hierarchy, &plan.unit)?),
            Err(_) => None,
        };
        // The roots of the tree, and the territory as a unit of its own
        // when no unit of this version is it.
        let (tops, former): (Vec<&'static Unit>, Option<Unit>) = match &territory {
            None => (v.roots().collect(), None),
            Some(t) => match t.as_unit(hierarchy, version) {
                Some(code) => (vec![hierarchy.unit(version, &code)?], None),
                None => {
                    let mut code = t.code.clone();
                    if v.unit(&code).is_some() {
                        code = format!("{}@{}", t.code, t.version);
                    }
                    let tops = t
                        .tops(hierarchy, version)
                        .iter()
                        .filter_map(|c| v.unit(c))
                        .collect();
                    let level = hierarchy.unit(&t.version, &t.code)?.level;
                    let name = format!("{} ({})", t.name, label(hierarchy, t, version).0);
                    (
                        tops,
                        Some(Unit {
                            code,
                            name,
                            level,
                            parent: None,
                        }),
                    )
                }
            },
        };
        let mut units: Vec<Cow<'static, Unit>> = Vec::new();
        if let Some(root) = &former {
            units.push(Cow::Owned(root.clone()));
        }
        let mut stack: Vec<&Unit> = tops.clone();
        stack.reverse();
        while let Some(u) = stack.pop() {
            // The territory's tops hang from the territory; a territory
            // that is a unit is the top of the tree (Xã Bình Lục's
            // province is not in its plan's figures).
            let top = territory.is_some() && tops.iter().any(|t| t.code == u.code);
            match &former {
                Some(root) if top => {
                    let mut top = u.clone();
                    top.parent = Some(root.code.clone());
                    units.push(Cow::Owned(top));
                }
                None if top && u.parent.is_some() => {
                    let mut top = u.clone();
                    top.parent = None;
                    units.push(Cow::Owned(top));
                }
                _ => units.push(Cow::Borrowed(u)),
            }
            let mut children: Vec<&Unit> = v.children(&u.code).collect();
            children.reverse();
            stack.extend(children);
        }
        let index: HashMap<String, usize> = units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.code.clone(), i))
            .collect();
        let parent: Vec<Option<usize>> = units
            .iter()
            .map(|u| u.parent.as_ref().and_then(|p| index.get(p).copied()))
            .collect();
        let mut end: Vec<usize> = (1..=units.len()).collect();
        for u in (0..units.len()).rev() {
            if let Some(p) = parent[u] {
                end[p] = end[p].max(end[u]);
            }
        }
        let mut placements: FxHashMap<String, FxHashMap<String, Place>> = FxHashMap::default();
        for from in hierarchy.versions() {
            let found = hierarchy.version(from)?.units().filter_map(|u| {
                let part = territory.as_ref().map(|t| t.part(from, &u.code));
                let place = match part {
                    Some(Some(Part::Outside)) => Place::Outside,
                    Some(Some(Part::Partly)) => Place::Partly,
                    _ => {
                        let to = hierarchy.resolve(from, &u.code, version).ok();
                        match to.and_then(|c| index.get(&c).copied()) {
                            Some(i) => Place::At(i),
                            // Inside the territory, counted under no unit
                            // of the tree (2024's Nam Định asked under
                            // 2025): at the territory itself.
                            None if part.is_some() => Place::At(0),
                            None => return None,
                        }
                    }
                };
                Some((u.code.clone(), place))
            });
            placements.insert(from.to_owned(), found.collect());
        }
        let mut view = View {
            plan,
            hierarchy,
            version: version.to_owned(),
            as_of,
            units,
            index,
            former: former
                .as_ref()
                .and(territory.as_ref())
                .map(|t| label(hierarchy, t, version)),
            territory,
            placements,
            parent,
            end,
            goals: HashMap::new(),
            by_kind: FxHashMap::default(),
            phase_bounds: Vec::new(),
            slot_names: Vec::new(),
        };
        for (i, ind) in view.plan.indicators.iter().enumerate() {
            view.by_kind.entry(ind.kind.clone()).or_default().push(i);
            view.phase_bounds.push(ind.uses_phase_bounds());
            let id: Name = ind.id.as_str().into();
            let phases = view.plan.phases.iter();
            let slots = phases.map(|p| (id.clone(), p.id.as_str().into()));
            view.slot_names.extend(slots);
        }
        view.goals = view.place_goals();
        Ok(view)
    }

    fn slots(&self) -> usize {
        self.plan.indicators.len() * self.plan.phases.len()
    }

    fn slot(&self, indicator: &str, phase: &str) -> Option<usize> {
        let i = self
            .plan
            .indicators
            .iter()
            .position(|x| x.id == indicator)?;
        let p = self.plan.phases.iter().position(|x| x.id == phase)?;
        Some(i * self.plan.phases.len() + p)
    }

    /// Targets are set for units of the plan's version. When several land
    /// on one unit of the asked version, the one set for a unit holding all
    /// the others wins (the province's over its districts'); otherwise
    /// at-least, exact and range targets of counts and sums are added up
    /// (two districts merged into one). Anything else is left without a
    /// target rather than guessed.
    fn place_goals(&self) -> HashMap<(usize, usize), Goal> {
        let plan = &self.plan;
        let mut landed: BTreeMap<(usize, usize), Vec<&Target>> = BTreeMap::new();
        for t in &plan.targets {
            let resolved = self
                .hierarchy
                .resolve(&plan.hierarchy, &t.unit, &self.version);
            // The territory's own targets are the root's; a unit's go to
            // the unit it counts under, if that is in the territory.
            let at = match &self.territory {
                Some(terr) if t.unit == terr.code => Some(0),
                _ => resolved.ok().and_then(|c| self.index.get(&c).copied()),
            };
            if let (Some(u), Some(slot)) = (at, self.slot(&t.indicator, &t.phase)) {
                landed.entry((u, slot)).or_default().push(t);
            }
        }
        let Ok(own) = self.hierarchy.version(&plan.hierarchy) else {
            return HashMap::new();
        };
        let mut goals = HashMap::new();
        for (key, ts) in landed {
            let widest = ts
                .iter()
                .find(|t| ts.iter().all(|o| own.within(&o.unit, &t.unit)));
            let additive = plan.indicators[key.1 / plan.phases.len()].compute != Compute::Ratio;
            let goal = match widest {
                Some(t) => Some(t.goal),
                None if additive => {
                    ts.iter()
                        .skip(1)
                        .try_fold(ts[0].goal, |a, t| match (a, t.goal) {
                            (Goal::AtLeast(x), Goal::AtLeast(y)) => Some(Goal::AtLeast(x + y)),
                            (Goal::Exactly(x), Goal::Exactly(y)) => Some(Goal::Exactly(x + y)),
                            (Goal::Range(a, b), Goal::Range(c, d)) => {
                                Some(Goal::Range(a + c, b + d))
                            }
                            _ => None,
                        })
                }
                None => None,
            };
            if let Some(g) = goal {
                goals.insert(key, g);
            }
        }
        goals
    }

    /// The unit code `rec` was entered for, and its hierarchy version.
    fn unit_of<'r, R: Rec + ?Sized>(&'r self, rec: &'r R) -> (&'r str, &'r str) {
        let code = rec.get_text(&UNIT).unwrap_or_default();
        let from = rec.get_text(&UNIT_VERSION).unwrap_or(&self.plan.hierarchy);
        (code, from)
    }

    /// The unit `rec` counts under, as an index into `units`.
    /// A record without `unit_version` is taken to be in the plan's version.
    fn place<R: Rec + ?Sized>(&self, rec: &R) -> Result<usize, Miss> {
        let (code, from) = self.unit_of(rec);
        match self.placements.get(from).and_then(|p| p.get(code)) {
            Some(Place::At(u)) => return Ok(*u),
            Some(Place::Outside) => return Err(Miss::Outside),
            Some(Place::Partly) => return Err(Miss::Partly),
            None => {}
        }
        // Not placed: let the hierarchy say why.
        let to = self.hierarchy.resolve(from, code, &self.version)?;
        self.index.get(&to).copied().ok_or_else(|| {
            Miss::Unit(UnitError::NoCounterpart {
                code: code.to_owned(),
                from: from.to_owned(),
                to: self.version.clone(),
            })
        })
    }

    /// Every (slot, tally) root `rec` adds, as of the view's date,
    /// appended to `out`.
    fn tallies_into<W: Links>(&self, world: &W, rec: &W::R, out: &mut Vec<(usize, Tally)>) {
        let plan = &self.plan;
        let np = plan.phases.len();
        let Some(indicators) = self.by_kind.get(rec.kind()) else {
            return;
        };
        let first = out.len();
        for (p, phase) in plan.phases.iter().enumerate() {
            // One evaluation per phase, shared by the indicators, so what
            // one works out (a rule, a latest record) serves the others.
            let eval = Eval {
                plan,
                world,
                as_of: self.as_of.min(phase.end),
                phase_start: phase.start,
                phase_end: phase.end,
                memo: RefCell::default(),
            };
            for &i in indicators {
                // What an evaluation depends on: the phase's date, and its
                // bounds only if the indicator looks at them.
                let key = |q: usize| {
                    let phase = &plan.phases[q];
                    let bounds = self.phase_bounds[i].then_some((phase.start, phase.end));
                    (self.as_of.min(phase.end), bounds)
                };
                // A phase that sees what an earlier one saw (the date is
                // before both ends) gets the same tally: copy it.
                let t = match (0..p).find(|&q| key(q) == key(p)) {
                    Some(q) => out[first..]
                        .iter()
                        .find(|(s, _)| *s == i * np + q)
                        .map(|&(_, t)| t),
                    None => eval.tally(&plan.indicators[i], rec),
                };
                if let Some(t) = t {
                    out.push((i * np + p, t));
                }
            }
        }
    }

    /// Where phase `p`'s straight line starts for indicator `i`: the value
    /// the previous phase reached, if the two phases follow each other and
    /// the indicator counts the same way in both; else none (from 0).
    fn line_from(&self, i: usize, p: usize) -> Option<usize> {
        let phases = &self.plan.phases;
        let prev = phases.get(p.checked_sub(1)?)?;
        let follows = prev.end.next_day() == Some(phases[p].start);
        (follows && !self.phase_bounds[i]).then(|| i * phases.len() + p - 1)
    }

    fn figure(&self, unit: usize, slot: usize, direct: Tally, total: &[Tally]) -> Figure {
        let plan = &self.plan;
        let np = plan.phases.len();
        let ind = &plan.indicators[slot / np];
        let phase = &plan.phases[slot % np];
        let n = self.slots();
        let value_of = |t: Tally| match ind.compute {
            Compute::Ratio if t.denominator == 0 => None,
            Compute::Ratio => Some(100.0 * t.numerator as f64 / t.denominator as f64),
            _ => Some(t.numerator as f64),
        };
        let from = self
            .line_from(slot / np, slot % np)
            .and_then(|s| value_of(total[unit * n + s]));
        let total = total[unit * n + slot];
        let value = value_of(total);
        let goal = self.goals.get(&(unit, slot)).copied();
        let (expected, share, status) = match (goal, value) {
            (None, _) => (None, None, Status::NoTarget),
            (Some(_), None) => (None, None, Status::NoData),
            (Some(g), Some(v)) => {
                let line = Line {
                    start: phase.start,
                    end: phase.end,
                    from: from.unwrap_or(0.0),
                };
                judge(g, v, self.as_of, line)
            }
        };
        Figure {
            indicator: self.slot_names[slot].0.clone(),
            phase: self.slot_names[slot].1.clone(),
            compute: ind.compute,
            measure: ind.measure(),
            total,
            direct,
            value,
            goal,
            expected,
            share,
            status,
        }
    }

    fn unit_progress(
        &self,
        u: usize,
        direct: &[Tally],
        total: &[Tally],
        recorded_by: Vec<String>,
    ) -> UnitProgress {
        let n = self.slots();
        let unit = &self.units[u];
        UnitProgress {
            recorded_by,
            allocated: (0..n).any(|s| self.goals.contains_key(&(u, s))),
            code: unit.code.clone(),
            name: unit.name.clone(),
            level: unit.level,
            parent: unit.parent.clone(),
            figures: (0..n)
                .map(|s| self.figure(u, s, direct[u * n + s], total))
                .collect(),
        }
    }

    /// Who recorded what is placed at or below each unit, from who
    /// recorded what is placed at each (children come after parents).
    fn roll_up_holders(&self, mut held: Vec<BTreeSet<String>>) -> Vec<Vec<String>> {
        for u in (0..self.units.len()).rev() {
            if let Some(p) = self.parent[u].filter(|_| !held[u].is_empty()) {
                let mine = held[u].clone();
                held[p].extend(mine);
            }
        }
        held.into_iter().map(|h| h.into_iter().collect()).collect()
    }

    fn report(
        &self,
        direct: &[Tally],
        total: &[Tally],
        held: Vec<BTreeSet<String>>,
        unplaced: Vec<Unplaced>,
        outside: Vec<String>,
    ) -> Report {
        let holders = self.roll_up_holders(held);
        self.report_of(direct, total, &holders, unplaced, outside, None)
    }

    /// As [`View::report`], with the holders rolled up, and with the
    /// figures of unit `only` and its children alone when given.
    fn report_of(
        &self,
        direct: &[Tally],
        total: &[Tally],
        holders: &[Vec<String>],
        mut unplaced: Vec<Unplaced>,
        mut outside: Vec<String>,
        only: Option<usize>,
    ) -> Report {
        unplaced.sort_by(|a, b| a.id.cmp(&b.id));
        outside.sort();
        let root = self.units.first();
        let (name, unit) = match &self.territory {
            Some(t) => (t.name.clone(), t.code.clone()),
            None => (
                root.map(|u| u.name.clone()).unwrap_or_default(),
                self.plan.unit.clone(),
            ),
        };
        let territory = TerritoryInfo {
            code: root.map(|u| u.code.clone()).unwrap_or_default(),
            version: self.plan.hierarchy.clone(),
            unit,
            name_vi: match self.former {
                Some((vi, _)) => format!("{name} ({vi})"),
                None => root.map(|u| u.name.clone()).unwrap_or_default(),
            },
            name_en: match self.former {
                Some((_, en)) => format!("{name} ({en})"),
                None => root.map(|u| u.name.clone()).unwrap_or_default(),
            },
            former: self.former.is_some(),
        };
        let phases = &self.plan.phases;
        let now = phases
            .iter()
            .find(|p| self.as_of <= p.end)
            .or(phases.last())
            .map(|p| p.id.clone())
            .unwrap_or_default();
        Report {
            plan: self.plan.id.clone(),
            plan_name: self.plan.name.clone(),
            plan_name_vi: self.plan.name_vi.clone(),
            territory,
            outside,
            hierarchy: self.version.clone(),
            as_of: self.as_of,
            phase_now: now,
            indicators: self
                .plan
                .indicators
                .iter()
                .map(|i| (i.id.clone(), i.name.clone(), i.name_vi.clone()))
                .collect(),
            units: (0..self.units.len())
                .filter(|&u| only.is_none_or(|o| u == o || self.parent[u] == Some(o)))
                .map(|u| self.unit_progress(u, direct, total, holders[u].clone()))
                .collect(),
            unplaced,
        }
    }
}

/// The label of territory `t` asked under `version`: "former" in a later
/// version, "the plan's territory" in an earlier one.
fn label(h: &Hierarchy, t: &Territory, version: &str) -> (&'static str, &'static str) {
    let at = |v: &str| h.versions().position(|x| x == v);
    if at(version) > at(&t.version) {
        FORMER
    } else {
        LATER
    }
}

/// A phase's straight line: from `from` on its first day to the target on
/// its last.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: Date,
    end: Date,
    from: f64,
}

/// Expected value on the straight line, share achieved and status.
fn judge(goal: Goal, value: f64, as_of: Date, line: Line) -> (Option<f64>, Option<f64>, Status) {
    let Line { start, end, from } = line;
    let (low, high) = match goal {
        Goal::AtLeast(x) | Goal::MoreThan(x) => (x, None),
        Goal::Exactly(x) => (x, Some(x)),
        Goal::Range(a, b) => (a, Some(b)),
        Goal::Milestone => (1.0, None),
    };
    let met = match goal {
        Goal::MoreThan(x) => value > x,
        _ => value >= low,
    };
    let days = (end - start).whole_days().max(1) as f64;
    let elapsed = ((as_of - start).whole_days() as f64 / days).clamp(0.0, 1.0);
    // A line that starts above the target (a ratio that fell) stays flat.
    let from = from.min(low);
    let expected = (goal != Goal::Milestone).then_some(from + (low - from) * elapsed);
    let share = (low > 0.0).then(|| value / low);
    let status = if high.is_some_and(|h| value > h) {
        Status::AboveTarget
    } else if met {
        Status::Achieved
    } else if as_of >= end {
        Status::NotAchieved
    } else if expected.is_none_or(|e| value >= e) {
        Status::OnTrack
    } else {
        Status::Behind
    };
    (expected, share, status)
}

/// `rec` as listed when it counts nowhere; none when it is wholly
/// outside the territory.
fn unplaced<R: Rec + ?Sized>(view: &View, rec: &R, miss: Miss) -> Option<Unplaced> {
    let (unit, version) = view.unit_of(rec);
    let reason = match miss {
        Miss::Outside => return None,
        Miss::Unit(e) => e.to_string(),
        Miss::Partly => {
            let (name, code, v) = view
                .territory
                .as_ref()
                .map(|t| (t.name.as_str(), t.code.as_str(), t.version.as_str()))
                .unwrap_or_default();
            format!(
                "unit {unit} ({version}) lies partly outside the plan's territory, {name} ({code}, {v}) / đơn vị nằm một phần ngoài địa bàn của kế hoạch"
            )
        }
    };
    Some(Unplaced {
        id: rec.id().to_owned(),
        kind: rec.kind().to_owned(),
        unit: unit.to_owned(),
        unit_version: version.to_owned(),
        reason,
    })
}

// ---- From scratch ---------------------------------------------------------

/// Progress from all records at once, with no state kept. Deleted records
/// are skipped; if an id comes twice the last one counts. The records may
/// be owned or shared, whole or as the live engine keeps them
/// ([`Engine::records`]).
pub fn recompute<R: Rec>(
    plan: &Plan,
    hierarchy: &'static Hierarchy,
    version: &str,
    as_of: Date,
    records: &[R],
) -> Result<Report, ProgressError> {
    let mut reports = recompute_at(plan, hierarchy, version, &[as_of], records)?;
    Ok(reports.pop().expect("one date, one report"))
}

/// As [`recompute`], as of each of `dates` (a trend): the records are
/// read, linked and placed once (where a record counts does not depend on
/// the date), and, when the dates ascend, a record is evaluated again only
/// at the dates where one of the dates it could be compared with is
/// reached or passed.
pub fn recompute_at<R: Rec>(
    plan: &Plan,
    hierarchy: &'static Hierarchy,
    version: &str,
    dates: &[Date],
    records: &[R],
) -> Result<Vec<Report>, ProgressError> {
    recompute_dates(plan, hierarchy, version, None, dates, records)
}

/// As [`recompute_at`], each report holding only the figures of `unit`
/// and its children (a trend page's unit; none if the unit is not in the
/// plan's figures): the figures of a country's every unit, 43 times over,
/// cost more than the evaluation.
pub fn trend<R: Rec>(
    plan: &Plan,
    hierarchy: &'static Hierarchy,
    version: &str,
    unit: &str,
    dates: &[Date],
    records: &[R],
) -> Result<Vec<Report>, ProgressError> {
    recompute_dates(plan, hierarchy, version, Some(unit), dates, records)
}

/// The records behind one figure, from scratch: as [`Engine::behind`]
/// gives them for its own date (the records counted at `unit` or below for
/// `indicator` in `phase` as of `as_of`, each with what it adds, by id),
/// with only the records placed under `unit` evaluated.
#[allow(clippy::too_many_arguments)]
pub fn behind<R: Rec>(
    plan: &Plan,
    hierarchy: &'static Hierarchy,
    version: &str,
    as_of: Date,
    unit: &str,
    indicator: &str,
    phase: &str,
    records: &[R],
) -> Result<Vec<(String, Tally)>, ProgressError> {
    let view = View::new(plan.clone(), hierarchy, version, as_of)?;
    let u = *view.index.get(unit).ok_or_else(|| UnitError::UnknownUnit {
        code: unit.to_owned(),
        version: version.to_owned(),
    })?;
    let Some(slot) = view.slot(indicator, phase) else {
        return Ok(Vec::new());
    };
    let below = u..view.end[u];
    let world = Snapshot::new(records);
    let mut out = Vec::new();
    let mut tallies = Vec::new();
    let mut last: Option<(&str, &str, Option<usize>)> = None;
    for rec in world.records() {
        let (code, from) = view.unit_of(rec);
        let at = match last {
            Some((c, f, at)) if c == code && f == from => at,
            _ => view.place(rec).ok(),
        };
        last = Some((code, from, at));
        if !at.is_some_and(|at| below.contains(&at)) {
            continue;
        }
        tallies.clear();
        view.tallies_into(&world, rec, &mut tallies);
        out.extend(
            tallies
                .iter()
                .filter(|(s, t)| *s == slot && (t.numerator != 0 || t.denominator != 0))
                .map(|&(_, t)| (rec.id().to_owned(), t)),
        );
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn recompute_dates<R: Rec>(
    plan: &Plan,
    hierarchy: &'static Hierarchy,
    version: &str,
    only: Option<&str>,
    dates: &[Date],
    records: &[R],
) -> Result<Vec<Report>, ProgressError> {
    let Some(&first) = dates.first() else {
        return Ok(Vec::new());
    };
    let mut view = View::new(plan.clone(), hierarchy, version, first)?;
    // A unit outside the view has no figures: reports without units (as
    // the whole report has none of it).
    let only = only.map(|code| view.index.get(code).copied().unwrap_or(usize::MAX));
    let world = Snapshot::new(records);
    let mut placed: Vec<(&R, usize)> = Vec::new();
    let mut held: Vec<BTreeSet<String>> = vec![BTreeSet::new(); view.units.len()];
    let mut last_holder: Option<(usize, &str)> = None;
    let mut lost = Vec::new();
    let mut outside = Vec::new();
    // Records of one commune usually come together: place its unit once.
    let mut last: Option<(&str, &str, usize)> = None;
    for rec in world.records() {
        let (code, from) = view.unit_of(rec);
        let at = match last {
            Some((c, f, u)) if c == code && f == from => Ok(u),
            _ => view.place(rec),
        };
        match at {
            Err(miss) => match unplaced(&view, rec, miss) {
                Some(l) => lost.push(l),
                None => outside.push(rec.id().to_owned()),
            },
            Ok(u) => {
                last = Some((code, from, u));
                let by = rec.get_text(&RECORDED_BY).unwrap_or_default();
                if !by.is_empty() && last_holder != Some((u, by)) {
                    held[u].insert(by.to_owned());
                    last_holder = Some((u, by));
                }
                placed.push((rec, u));
            }
        }
    }
    let n = view.slots();
    // A record evaluated as of one date gives the same tallies as of a
    // later one if no date it could be compared with lies between them
    // (for each phase, the date asked capped at the phase's end). So each
    // record is evaluated at the first date and again only at the dates
    // where one of its own dates is reached or passed: `due[i]` lists the
    // records to evaluate again at `dates[i]`, and `direct` carries over.
    let ascending = dates.windows(2).all(|w| w[0] <= w[1]);
    let reach = view.plan.reach();
    let mut due: Vec<Vec<usize>> = vec![Vec::new(); dates.len()];
    let mut at = Vec::new();
    for (k, (rec, _)) in placed.iter().enumerate() {
        // For two dates, evaluating every record at both costs less than
        // finding each record's dates.
        if !ascending || dates.len() == 2 {
            due.iter_mut().for_each(|d| d.push(k));
            continue;
        }
        at.clear();
        at.push(0);
        if dates.len() > 1 {
            for x in dates_within_reach(&world, rec, reach) {
                for phase in &view.plan.phases {
                    if x <= phase.end {
                        at.push(dates.partition_point(|d| *d < x));
                    }
                    if x < phase.end {
                        at.push(dates.partition_point(|d| *d <= x));
                    }
                }
            }
        }
        at.sort_unstable();
        at.dedup();
        for &i in at.iter().filter(|&&i| i < dates.len()) {
            due[i].push(k);
        }
    }
    let holders = view.roll_up_holders(held);
    let mut kept: Vec<Vec<(usize, Tally)>> = vec![Vec::new(); placed.len()];
    let mut direct = vec![Tally::default(); view.units.len() * n];
    let mut reports = Vec::with_capacity(dates.len());
    for (i, &as_of) in dates.iter().enumerate() {
        view.as_of = as_of;
        for &k in &due[i] {
            let (rec, u) = placed[k];
            for &(s, t) in &kept[k] {
                direct[u * n + s].add(t, -1);
            }
            kept[k].clear();
            view.tallies_into(&world, rec, &mut kept[k]);
            for &(s, t) in &kept[k] {
                direct[u * n + s].add(t, 1);
            }
        }
        // Children come after their parents: add each unit into its
        // parent, last unit first.
        let mut total = direct.clone();
        for u in (0..view.units.len()).rev() {
            if let Some(p) = view.parent[u] {
                for s in 0..n {
                    let t = total[u * n + s];
                    total[p * n + s].add(t, 1);
                }
            }
        }
        let report = view.report_of(
            &direct,
            &total,
            &holders,
            lost.clone(),
            outside.clone(),
            only,
        );
        reports.push(report);
    }
    Ok(reports)
}

/// Every date a record's evaluation may compare the date asked with: the
/// dates in it and in the records within the plan's reach of it (the
/// conditions only compare record dates with `$as_of` and constants).
fn dates_within_reach<R: Rec>(world: &Snapshot<'_, R>, rec: &R, reach: usize) -> Vec<Date> {
    let mut seen: HashSet<*const R> = HashSet::from([rec as *const R]);
    let mut all = vec![rec];
    let mut frontier = vec![rec];
    let mut ids = Vec::new();
    for _ in 0..reach {
        let mut next = Vec::new();
        for r in frontier {
            ids.clear();
            links_into(r, link_fields(r.kind()), &mut ids);
            let linked = ids.iter().filter_map(|id| world.record(id));
            for x in linked.chain(world.referrers(r.id())) {
                if seen.insert(x as *const R) {
                    next.push(x);
                    all.push(x);
                }
            }
        }
        frontier = next;
    }
    let mut out = Vec::new();
    all.iter().for_each(|r| r.dates_into(&mut out));
    out.sort_unstable();
    out.dedup();
    out
}

// ---- Incrementally --------------------------------------------------------

/// Progress kept current as records arrive, change and go.
pub struct Engine {
    view: View,
    world: World,
    /// What the engine keeps of each record.
    kept: Kept,
    /// Where a record is placed does not depend on the date: what follows
    /// is counted as records come and go ([`Engine::count`]).
    unplaced: HashMap<Name, Unplaced>,
    /// Records wholly outside the plan's territory.
    outside: HashSet<Name>,
    /// Per unit, how many records each node recorded there.
    holders: Vec<HashMap<Name, u32>>,
    /// The figures as of the engine's own date (the first) and of the
    /// other dates kept current too ([`Engine::keep_dates`]).
    marks: Vec<Mark>,
}

/// The figures as of one date, kept current as records change. Only the
/// sums are kept: what the records around a change add is evaluated before
/// the change and again after it, rather than kept per record (a few MB a
/// date at a country's scale, and nothing per record).
struct Mark {
    as_of: Date,
    /// `[unit * slots + slot]`
    direct: Vec<Tally>,
    total: Vec<Tally>,
}

/// Adds (`sign` 1) or takes off (-1) what a record placed at `unit` adds.
fn apply(
    view: &View,
    direct: &mut [Tally],
    total: &mut [Tally],
    unit: usize,
    tallies: &[(usize, Tally)],
    sign: i128,
) {
    let n = view.slots();
    for &(s, t) in tallies {
        direct[unit * n + s].add(t, sign);
        let mut u = Some(unit);
        while let Some(x) = u {
            total[x * n + s].add(t, sign);
            u = view.parent[x];
        }
    }
}

impl Engine {
    /// An engine for one hierarchy version and date, loaded with `records`
    /// and evaluated as of its date.
    pub fn new(
        plan: Plan,
        hierarchy: &'static Hierarchy,
        version: &str,
        as_of: Date,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Engine, ProgressError> {
        let mut engine = Engine::empty(plan, hierarchy, version, as_of)?;
        records.into_iter().for_each(|r| engine.load(&r));
        engine.evaluate();
        Ok(engine)
    }

    /// An engine with no records, for records to be [`Engine::load`]ed
    /// into. Nothing is evaluated until a figure is asked for: loading is
    /// then only keeping each record, and a caller that first asks for
    /// another date or version ([`Engine::records`]) never pays for the
    /// engine's own.
    pub fn empty(
        plan: Plan,
        hierarchy: &'static Hierarchy,
        version: &str,
        as_of: Date,
    ) -> Result<Engine, ProgressError> {
        let view = View::new(plan, hierarchy, version, as_of)?;
        let units = view.units.len();
        let kept = Kept::of(&view.plan);
        Ok(Engine {
            view,
            world: World::default(),
            kept,
            unplaced: HashMap::new(),
            outside: HashSet::new(),
            holders: vec![HashMap::new(); units],
            marks: Vec::new(),
        })
    }

    /// Keeps `rec` as read from storage, from any whole form of a record
    /// ([`Whole`]); cheap while nothing is evaluated yet. A deleted one is
    /// skipped, not applied as a delete (unlike [`Engine::upsert`]): a
    /// store's records are each loaded once, and a deleted one has nothing
    /// to take away.
    pub fn load<R: Whole + ?Sized>(&mut self, rec: &R) {
        if rec.is_deleted() {
            return;
        }
        let rec = Arc::new(Slim::new(rec, self.kept.0, &mut self.world.names));
        self.change(rec.name().clone(), Some(rec));
    }

    /// Evaluates the engine's own date now if it was not yet (what the
    /// first figure asked for would do).
    pub fn evaluate(&mut self) {
        let own = self.view.as_of;
        if !self.marks.iter().any(|m| m.as_of == own) {
            self.add_mark(own);
        }
    }

    pub fn as_of(&self) -> Date {
        self.view.as_of
    }

    /// The live records the engine holds (as it keeps them: the fields
    /// progress reads), shared: a from-scratch computation for another
    /// date or version can use them instead of reading every record again.
    pub fn records(&self) -> Vec<Arc<Slim>> {
        let mut out: Vec<Arc<Slim>> = self.world.records.iter().map(|r| r.0.clone()).collect();
        // In memory order, which is mostly the order they were loaded in (a
        // commune's records together): a computation over them then places
        // a commune once and reads memory forwards, not in hash order.
        out.sort_unstable_by_key(|r| Arc::as_ptr(r) as usize);
        out
    }

    pub fn hierarchy_version(&self) -> &str {
        &self.view.version
    }

    /// Moves the engine to another date (e.g. a new day): it is evaluated
    /// again when a figure is next asked for (the other dates kept stay as
    /// they are).
    pub fn set_as_of(&mut self, as_of: Date) {
        let kept = self.kept_dates();
        self.view.as_of = as_of;
        self.keep_dates(&kept);
    }

    /// Keeps the figures as of each of `dates` current as well, besides the
    /// engine's own date (a page compares today with the end of last
    /// month): a date not kept yet is evaluated once, over every record;
    /// dates kept before and not in `dates` are dropped.
    pub fn keep_dates(&mut self, dates: &[Date]) {
        let own = self.view.as_of;
        self.marks
            .retain(|m| m.as_of == own || dates.contains(&m.as_of));
        for &as_of in dates {
            if !self.marks.iter().any(|m| m.as_of == as_of) {
                self.add_mark(as_of);
            }
        }
    }

    /// Evaluates every record as of `as_of` and keeps the sums current.
    fn add_mark(&mut self, as_of: Date) {
        let size = self.view.units.len() * self.view.slots();
        self.marks.push(Mark {
            as_of,
            direct: vec![Tally::default(); size],
            total: vec![Tally::default(); size],
        });
        self.mark(self.marks.len() - 1, None, 1);
    }

    /// The dates kept besides the engine's own.
    pub fn kept_dates(&self) -> Vec<Date> {
        let own = self.view.as_of;
        self.marks
            .iter()
            .map(|m| m.as_of)
            .filter(|d| *d != own)
            .collect()
    }

    /// The figures of every unit as of `as_of`: the engine's own date or
    /// one it keeps ([`Engine::keep_dates`]); none for another date.
    pub fn report_at(&mut self, as_of: Date) -> Option<Report> {
        if as_of == self.view.as_of {
            self.evaluate();
        }
        let m = self.marks.iter().position(|m| m.as_of == as_of)?;
        let (lost, held) = (
            self.unplaced.values().cloned().collect(),
            self.holders_held(),
        );
        let outside = self.outside.iter().map(|n| n.to_string()).collect();
        let own = std::mem::replace(&mut self.view.as_of, as_of);
        let mark = &self.marks[m];
        let report = self
            .view
            .report(&mark.direct, &mark.total, held, lost, outside);
        self.view.as_of = own;
        Some(report)
    }

    /// The sums as of the engine's own date ([`Engine::evaluate`] first).
    fn own(&self) -> &Mark {
        let own = self.view.as_of;
        self.marks
            .iter()
            .find(|m| m.as_of == own)
            .expect("the engine's own date is evaluated")
    }

    /// A new or changed record, as merged. One with `deleted_at` set is a
    /// delete; one that comes back without it is restored.
    pub fn upsert(&mut self, rec: Record) {
        if rec.is_deleted() {
            return self.delete(&rec.id);
        }
        self.load(&rec);
    }

    /// A record gone (by id).
    pub fn delete(&mut self, id: &str) {
        // No record holds the id: nothing counted it or points at it.
        if let Some(id) = self.world.names.get(id).cloned() {
            self.change(id, None);
        }
    }

    /// Record `id` becomes `new` (none: it goes). Only the records within
    /// the plan's reach of it can see a difference: those around its old
    /// version (`before`, found with it in place) and those around the new
    /// one (`after`). Each date's sums lose what `before` added with the
    /// old version and gain what `after` adds with the new one; a record
    /// in only one of them is out of reach of the other version, so it is
    /// evaluated as it stands with neither.
    fn change(&mut self, id: Name, new: Option<Arc<Slim>>) {
        let old = self.world.get(&id).cloned();
        // Nothing evaluated yet (the engine loading): no sums to mend.
        let evaluated = !self.marks.is_empty();
        let before = match &old {
            Some(_) if evaluated => self.around(&id),
            _ => HashSet::new(),
        };
        self.mark_all(&before, -1);
        if let Some(old) = &old {
            self.count(old, false);
            self.world.remove(&id);
        }
        let after = match &new {
            Some(rec) if evaluated => {
                self.world.insert(rec.clone());
                let after = self.around(&id);
                self.world.remove(&id);
                after
            }
            _ => HashSet::new(),
        };
        self.mark_all(&before.difference(&after).cloned().collect(), 1);
        self.mark_all(&after.difference(&before).cloned().collect(), -1);
        if let Some(rec) = new {
            self.count(&rec, true);
            self.world.insert(rec);
        }
        self.mark_all(&after, 1);
    }

    /// [`Engine::mark`] for every date kept.
    fn mark_all(&mut self, ids: &HashSet<Name>, sign: i128) {
        if ids.is_empty() {
            return;
        }
        let ids: Vec<Name> = ids.iter().cloned().collect();
        for m in 0..self.marks.len() {
            self.mark(m, Some(&ids), sign);
        }
    }

    /// Adds to (1) or takes off (-1) kept date `m` what the records `ids`
    /// (those the world holds; none: every one) add as of that date.
    fn mark(&mut self, m: usize, ids: Option<&[Name]>, sign: i128) {
        let own = std::mem::replace(&mut self.view.as_of, self.marks[m].as_of);
        let (view, world) = (&self.view, &self.world);
        let mark = &mut self.marks[m];
        let mut tallies = Vec::new();
        let mut add = |rec: &Arc<Slim>| {
            if let Ok(u) = view.place(&**rec) {
                tallies.clear();
                view.tallies_into(world, rec, &mut tallies);
                apply(view, &mut mark.direct, &mut mark.total, u, &tallies, sign);
            }
        };
        match ids {
            Some(ids) => ids.iter().filter_map(|id| world.get(id)).for_each(&mut add),
            None => world.records.iter().for_each(|r| add(&r.0)),
        }
        self.view.as_of = own;
    }

    /// Counts (`up`) or uncounts `rec` where it is placed: who recorded
    /// it, or why it counts nowhere.
    fn count(&mut self, rec: &Slim, up: bool) {
        let id = rec.name();
        let at = match self.view.place(rec) {
            Ok(u) => u,
            Err(miss) => {
                match (up, unplaced(&self.view, rec, miss)) {
                    (true, Some(l)) => drop(self.unplaced.insert(id.clone(), l)),
                    (true, None) => drop(self.outside.insert(id.clone())),
                    (false, _) => {
                        self.unplaced.remove(id);
                        self.outside.remove(id);
                    }
                }
                return;
            }
        };
        let Some(by) = rec.text_name(&RECORDED_BY).filter(|b| !b.is_empty()) else {
            return;
        };
        let counts = &mut self.holders[at];
        if up {
            *counts.entry(by.clone()).or_default() += 1;
        } else if let Some(c) = counts.get_mut(by) {
            *c -= 1;
            if *c == 0 {
                counts.remove(by);
            }
        }
    }

    /// The figures of one unit of the engine's version.
    pub fn unit(&mut self, code: &str) -> Result<UnitProgress, ProgressError> {
        let u = self.unit_index(code)?;
        self.evaluate();
        // Only the units below it, not the whole country, for one unit.
        let holders: BTreeSet<String> = self.holders[u..self.view.end[u]]
            .iter()
            .flat_map(|h| h.keys().map(|k| k.to_string()))
            .collect();
        let holders = holders.into_iter().collect();
        let own = self.own();
        Ok(self.view.unit_progress(u, &own.direct, &own.total, holders))
    }

    fn unit_index(&self, code: &str) -> Result<usize, ProgressError> {
        let u = self
            .view
            .index
            .get(code)
            .ok_or_else(|| UnitError::UnknownUnit {
                code: code.to_owned(),
                version: self.view.version.clone(),
            })?;
        Ok(*u)
    }

    /// The records behind one figure: the records counted at `code` or
    /// below for `indicator` in `phase` (the roots whose tally there is not
    /// zero), each with what it adds, by id. Their tallies add up to the
    /// figure's.
    pub fn behind(
        &self,
        code: &str,
        indicator: &str,
        phase: &str,
    ) -> Result<Vec<(String, Tally)>, ProgressError> {
        let u = self.unit_index(code)?;
        let Some(slot) = self.view.slot(indicator, phase) else {
            return Ok(Vec::new());
        };
        let below = u..self.view.end[u];
        let mut out = Vec::new();
        let mut tallies = Vec::new();
        for ById(rec) in &self.world.records {
            if !self.view.place(&**rec).is_ok_and(|at| below.contains(&at)) {
                continue;
            }
            tallies.clear();
            self.view.tallies_into(&self.world, rec, &mut tallies);
            out.extend(
                tallies
                    .iter()
                    .filter(|(s, t)| *s == slot && (t.numerator != 0 || t.denominator != 0))
                    .map(|&(_, t)| (rec.id().to_owned(), t)),
            );
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The figures of every unit.
    pub fn report(&mut self) -> Report {
        self.evaluate();
        let lost = self.unplaced.values().cloned().collect();
        let held = self.holders_held();
        let outside = self.outside.iter().map(|n| n.to_string()).collect();
        let own = self.own();
        self.view
            .report(&own.direct, &own.total, held, lost, outside)
    }

    /// Per unit, the nodes that recorded something placed there.
    fn holders_held(&self) -> Vec<BTreeSet<String>> {
        self.holders
            .iter()
            .map(|h| h.keys().map(|k| k.to_string()).collect())
            .collect()
    }

    /// `id` and every record within the plan's reach of it.
    fn around(&self, id: &Name) -> HashSet<Name> {
        let mut seen = HashSet::from([id.clone()]);
        let mut frontier = vec![id.clone()];
        for _ in 0..self.view.plan.reach() {
            let mut next = Vec::new();
            for x in &frontier {
                for n in self.world.neighbours(x) {
                    if seen.insert(n.clone()) {
                        next.push(n);
                    }
                }
            }
            frontier = next;
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    #[test]
    fn the_straight_line_decides_on_track_or_behind() {
        let (start, end) = (day("2023-01-01"), day("2025-01-01"));
        let line = Line {
            start,
            end,
            from: 0.0,
        };
        let mid = day("2024-01-01"); // 365 of 731 days
        let (e, s, st) = judge(Goal::AtLeast(10.0), 5.0, mid, line);
        assert!((e.unwrap() - 10.0 * 365.0 / 731.0).abs() < 1e-9);
        assert_eq!((s, st), (Some(0.5), Status::OnTrack));
        assert_eq!(judge(Goal::AtLeast(10.0), 4.0, mid, line).2, Status::Behind);
        assert_eq!(
            judge(Goal::Range(5.0, 7.0), 6.0, mid, line).2,
            Status::Achieved
        );
        assert_eq!(
            judge(Goal::Range(5.0, 7.0), 8.0, mid, line).2,
            Status::AboveTarget
        );
        assert_eq!(
            judge(Goal::Exactly(3.0), 3.0, mid, line).2,
            Status::Achieved
        );
        assert_eq!(
            judge(Goal::Milestone, 0.0, mid, line),
            (None, Some(0.0), Status::OnTrack)
        );
        assert_eq!(judge(Goal::Milestone, 1.0, mid, line).2, Status::Achieved);
    }

    #[test]
    fn on_and_after_the_last_day_a_target_not_met_is_not_achieved() {
        let (start, end) = (day("2023-01-01"), day("2025-01-01"));
        let line = Line {
            start,
            end,
            from: 0.0,
        };
        let before = day("2024-12-31");
        let after = day("2025-01-02");
        use Status::*;
        assert_eq!(judge(Goal::MoreThan(4.0), 4.0, before, line).2, OnTrack);
        assert_eq!(judge(Goal::MoreThan(4.0), 4.0, end, line).2, NotAchieved);
        assert_eq!(judge(Goal::MoreThan(4.0), 4.0, after, line).2, NotAchieved);
        assert_eq!(judge(Goal::Milestone, 0.0, before, line).2, OnTrack);
        assert_eq!(judge(Goal::Milestone, 0.0, end, line).2, NotAchieved);
        assert_eq!(judge(Goal::AtLeast(10.0), 10.0, end, line).2, Achieved);
        assert_eq!(
            judge(Goal::Range(5.0, 7.0), 8.0, after, line).2,
            AboveTarget
        );
    }

    #[test]
    fn a_later_phase_line_starts_at_its_start_from_the_value_reached() {
        // Phase 2: 2026-01-01 to 2030-12-31 (1825 days), from 12 reached
        // by the end of phase 1, to at least 20.
        let line = Line {
            start: day("2026-01-01"),
            end: day("2030-12-31"),
            from: 12.0,
        };
        // Before the phase starts the line stands at where it starts.
        let (e, _, st) = judge(Goal::AtLeast(20.0), 12.0, day("2025-06-30"), line);
        assert_eq!((e, st), (Some(12.0), Status::OnTrack));
        // On its first day, still 12: 12 is on track, 11 behind.
        assert_eq!(
            judge(Goal::AtLeast(20.0), 12.0, line.start, line).0,
            Some(12.0)
        );
        assert_eq!(
            judge(Goal::AtLeast(20.0), 11.0, line.start, line).2,
            Status::Behind
        );
        // Halfway (912 of 1825 days): 12 + 8 * 912/1825.
        let (e, _, _) = judge(Goal::AtLeast(20.0), 15.0, day("2028-07-01"), line);
        assert!((e.unwrap() - (12.0 + 8.0 * 912.0 / 1825.0)).abs() < 1e-9);
    }

    #[test]
    fn a_date_that_does_not_parse_is_refused_in_both_languages() {
        let e = parse_date("2025-02-30").unwrap_err();
        assert_eq!(e, ProgressError::BadDate("2025-02-30".into()));
        assert!(e.to_string().contains("not a date") && e.to_string().contains("không hợp lệ"));
    }
}

//! # The plan as data
//!
//! A plan file (TOML; the real one is `deploy/plans/de-an-01-nam-dinh.toml`,
//! whose header shows the format by example) holds the plan, its phases,
//! its indicators and its targets. [`Plan::parse`] reads it and checks it
//! all: every kind and field against [`crate::schema`], every value against
//! the field's type, every unit against the plan's hierarchy version, every
//! reference to a rule, indicator or phase. A file with a mistake is refused
//! with the line and the reason ([`PlanError`]), typos in keys included
//! (every table is `deny_unknown_fields`).
//!
//! ## Indicators
//!
//! An indicator is one kind of record (the *root*), a `compute` (`count`
//! the roots that match, `sum` a count or amount field of the matching
//! roots, or of their latest related record with `from_latest`, or `ratio`:
//! the matching roots are the denominator, those that also match
//! `numerator` the numerator), and conditions. Conditions are compiled here
//! into [`Pred`]s, with rules inlined, and evaluated by
//! [`crate::progress`]. A condition may look at related records: those
//! that point at the root (`has`, `latest`) and the one the root points at
//! (`ref`). How deep these lookups nest is the plan's [`Plan::reach`]: a
//! change to one record can only change the figures of roots within that
//! many links of it, which is what lets progress be kept up to date
//! incrementally.
//!
//! ## Time
//!
//! `[lifespans]` says which date fields bound the life of each kind of
//! record. As of a date, only living records exist, for the root and for
//! every related record a condition looks at: "the latest observation as of
//! the date" is the latest living one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use time::Date;
use toml::Spanned;

use crate::schema::{self, FieldType, Key, Value};
use crate::units::Hierarchy;

/// The real plan, as shipped in `deploy/plans/`.
pub const DE_AN_01_NAM_DINH: &str = include_str!("../../deploy/plans/de-an-01-nam-dinh.toml");

/// A plan file that was refused: the line (1-based) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("plan file, line {line}: {reason} / tệp kế hoạch có lỗi ở dòng {line}")]
pub struct PlanError {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub name_vi: String,
    /// The straight line of "on track" starts here.
    pub start: Date,
    /// The hierarchy version the plan (and its target units) were written for.
    pub hierarchy: String,
    /// The unit the plan covers; targets without a unit are for it.
    pub unit: String,
    pub phases: Vec<Phase>,
    pub indicators: Vec<Indicator>,
    pub targets: Vec<Target>,
    lifespans: BTreeMap<String, Lifespan>,
    reach: usize,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub id: String,
    pub name: String,
    pub name_vi: String,
    pub start: Date,
    pub end: Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compute {
    Count,
    Sum,
    Ratio,
}

#[derive(Debug, Clone)]
pub struct Indicator {
    pub id: String,
    pub name: String,
    pub name_vi: String,
    pub plan_text: String,
    /// How it is computed, in words.
    pub how: String,
    /// The kind of record counted.
    pub kind: String,
    pub compute: Compute,
    pub(crate) filter: Vec<Pred>,
    pub(crate) numerator: Vec<Pred>,
    /// For `sum`: the field summed, and the kind of related record it is
    /// read from (its latest), if not the root.
    pub(crate) sum: Option<(Key, Option<Related>)>,
}

/// A goal to compare a figure with. For ratios the numbers are percents.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtLeast(f64),
    MoreThan(f64),
    Exactly(f64),
    Range(f64, f64),
    /// Done once the count reaches 1.
    Milestone,
}

/// The largest target (the largest amount a record may hold).
pub const MAX_TARGET: f64 = crate::schema::MAX_AMOUNT_VND as f64;

#[derive(Debug, Clone)]
pub struct Target {
    pub indicator: String,
    pub phase: String,
    /// A unit of the plan's hierarchy version.
    pub unit: String,
    pub goal: Goal,
    pub note: String,
}

/// When records of a kind exist: from the date in `from` through the date in
/// `until`, both inclusive; a missing date bounds nothing.
#[derive(Debug, Clone)]
pub(crate) struct Lifespan {
    pub from: Option<Key>,
    pub until: Option<Key>,
}

/// A compiled condition on one record.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Cmp {
        field: Key,
        op: Op,
        rhs: Operand,
    },
    In {
        field: Key,
        values: Vec<Value>,
    },
    Set {
        field: Key,
        present: bool,
    },
    /// `num / den` compared with a number; false when `den` is 0 or missing.
    Share {
        num: Key,
        den: Key,
        op: Op,
        rhs: f64,
    },
    Has(Related, Vec<Pred>),
    Latest(Related, Vec<Pred>),
    Ref {
        field: Key,
        cond: Vec<Pred>,
    },
    Any(Vec<Pred>),
    All(Vec<Pred>),
    Not(Box<Pred>),
    /// A rule's conditions (all must hold), with the rule's number: every
    /// use of one rule has the same number, so a record's result for it is
    /// worked out once per date however many indicators use it.
    Rule(usize, Vec<Pred>),
}

/// Records of `kind` whose field `via` points at the record in hand.
#[derive(Debug, Clone)]
pub(crate) struct Related {
    pub kind: String,
    pub via: Key,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
            Op::Gt => ord == Greater,
            Op::Ge => ord != Less,
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Value(Value),
    AsOf,
    PlanStart,
    PhaseStart,
    PhaseEnd,
}

impl Plan {
    /// The real plan (`deploy/plans/de-an-01-nam-dinh.toml`).
    pub fn builtin() -> Plan {
        Plan::parse_in(DE_AN_01_NAM_DINH, Hierarchy::builtin()).expect("the shipped plan is valid")
    }

    /// Reads and checks a plan file, against the hierarchy this process
    /// serves ([`Hierarchy::current`]).
    pub fn parse(text: &str) -> Result<Plan, PlanError> {
        Plan::parse_in(text, Hierarchy::current())
    }

    /// Reads and checks a plan file, against hierarchy `h`.
    pub fn parse_in(text: &str, h: &Hierarchy) -> Result<Plan, PlanError> {
        let file: FileDef = toml::from_str(text).map_err(|e| PlanError {
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            reason: e.message().trim().to_owned(),
        })?;
        Compiler {
            text,
            h,
            rules: &file.rules,
            compiled: BTreeMap::new(),
            visiting: Vec::new(),
        }
        .plan(&file)
    }

    pub fn phase(&self, id: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.id == id)
    }

    pub fn indicator(&self, id: &str) -> Option<&Indicator> {
        self.indicators.iter().find(|i| i.id == id)
    }

    /// How many links away from a record its changes can reach: the
    /// deepest nesting of `has`, `latest`, `ref` and `from_latest`.
    pub fn reach(&self) -> usize {
        self.reach
    }

    pub(crate) fn lifespan(&self, kind: &str) -> Option<&Lifespan> {
        self.lifespans.get(kind)
    }

    /// Every field a condition, sum or lifespan of the plan reads, of any
    /// kind: what progress must keep of a record (with its links and
    /// placement), and all it may drop.
    pub fn fields_read(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        for l in self.lifespans.values() {
            out.extend(l.from.iter().chain(&l.until).map(Key::name));
        }
        for ind in &self.indicators {
            for p in ind.filter.iter().chain(&ind.numerator) {
                p.fields_into(&mut out);
            }
            if let Some((field, related)) = &ind.sum {
                out.insert(field);
                out.extend(related.iter().map(|r| r.via.name()));
            }
        }
        out
    }
}

impl Indicator {
    /// What its value is counted in: `"vnd"` for a sum of amounts in đồng
    /// (a field named `*_vnd`), empty for a count or anything else.
    pub fn measure(&self) -> &'static str {
        match &self.sum {
            Some((field, _)) if self.compute == Compute::Sum && field.ends_with("_vnd") => "vnd",
            _ => "",
        }
    }

    /// Whether its conditions look at the phase's bounds (`$phase_start`,
    /// `$phase_end`). When they do not, two phases that see the same date
    /// give every record the same tally, and progress evaluates it once.
    pub(crate) fn uses_phase_bounds(&self) -> bool {
        self.filter
            .iter()
            .chain(&self.numerator)
            .any(Pred::uses_phase_bounds)
    }
}

impl Pred {
    fn fields_into<'p>(&'p self, out: &mut BTreeSet<&'p str>) {
        let inner: &[Pred] = match self {
            Pred::Cmp { field, .. } | Pred::In { field, .. } | Pred::Set { field, .. } => {
                out.insert(field);
                &[]
            }
            Pred::Share { num, den, .. } => {
                out.extend([num.name(), den.name()]);
                &[]
            }
            Pred::Has(rel, ps) | Pred::Latest(rel, ps) => {
                out.insert(&rel.via);
                ps
            }
            Pred::Ref { field, cond } => {
                out.insert(field);
                cond
            }
            Pred::Any(ps) | Pred::All(ps) | Pred::Rule(_, ps) => ps,
            Pred::Not(p) => std::slice::from_ref(p.as_ref()),
        };
        inner.iter().for_each(|p| p.fields_into(out));
    }

    fn uses_phase_bounds(&self) -> bool {
        let all = |ps: &[Pred]| ps.iter().any(Pred::uses_phase_bounds);
        match self {
            Pred::Cmp { rhs, .. } => matches!(rhs, Operand::PhaseStart | Operand::PhaseEnd),
            Pred::In { .. } | Pred::Set { .. } | Pred::Share { .. } => false,
            Pred::Has(_, cond) | Pred::Latest(_, cond) | Pred::Ref { cond, .. } => all(cond),
            Pred::Any(ps) | Pred::All(ps) | Pred::Rule(_, ps) => all(ps),
            Pred::Not(p) => p.uses_phase_bounds(),
        }
    }
}

// ---- The file as written -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    format: Spanned<u32>,
    plan: PlanDef,
    phases: Vec<Spanned<PhaseDef>>,
    #[serde(default)]
    lifespans: BTreeMap<String, Spanned<LifespanDef>>,
    #[serde(default)]
    rules: BTreeMap<String, Spanned<RuleDef>>,
    indicators: Vec<Spanned<IndicatorDef>>,
    #[serde(default)]
    targets: Vec<Spanned<TargetDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanDef {
    id: String,
    name: String,
    #[serde(default)]
    name_vi: String,
    start: Day,
    hierarchy: Spanned<String>,
    unit: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseDef {
    id: String,
    name: String,
    #[serde(default)]
    name_vi: String,
    start: Day,
    end: Day,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LifespanDef {
    from: Option<String>,
    until: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    #[serde(default)]
    #[allow(dead_code)] // documentation for people
    about: String,
    kind: String,
    #[serde(rename = "where")]
    cond: Vec<Spanned<PredDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorDef {
    id: String,
    name: String,
    #[serde(default)]
    name_vi: String,
    #[serde(default)]
    plan_text: String,
    #[serde(default)]
    how: String,
    kind: Spanned<String>,
    compute: Compute,
    field: Option<Spanned<String>>,
    from_latest: Option<Spanned<String>>,
    #[serde(default, rename = "where")]
    filter: Vec<Spanned<PredDef>>,
    #[serde(default)]
    numerator: Vec<Spanned<PredDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetDef {
    indicator: Spanned<String>,
    phase: Spanned<String>,
    unit: Option<Spanned<String>>,
    at_least: Option<f64>,
    more_than: Option<f64>,
    exactly: Option<f64>,
    range: Option<Spanned<[f64; 2]>>,
    milestone: Option<bool>,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredDef {
    field: Option<String>,
    share: Option<[String; 2]>,
    eq: Option<Lit>,
    ne: Option<Lit>,
    #[serde(rename = "in")]
    one_of: Option<Vec<Lit>>,
    gt: Option<Lit>,
    ge: Option<Lit>,
    lt: Option<Lit>,
    le: Option<Lit>,
    set: Option<bool>,
    has: Option<String>,
    latest: Option<String>,
    #[serde(rename = "ref")]
    follow: Option<String>,
    via: Option<String>,
    #[serde(rename = "where")]
    cond: Option<Vec<Spanned<PredDef>>>,
    any: Option<Vec<Spanned<PredDef>>>,
    all: Option<Vec<Spanned<PredDef>>>,
    not: Option<Box<Spanned<PredDef>>>,
    rule: Option<String>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum Lit {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A `YYYY-MM-DD` date, refused where it is written when it is not one.
struct Day(Date);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Day, D::Error> {
        let s = String::deserialize(d)?;
        schema::parse_date(&s)
            .map(Day)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a date YYYY-MM-DD")))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

// ---- Checking and compiling -----------------------------------------------

struct Compiler<'a> {
    text: &'a str,
    /// The hierarchy the plan's units are checked against.
    h: &'a Hierarchy,
    rules: &'a BTreeMap<String, Spanned<RuleDef>>,
    /// Rules compiled so far: kind, conditions and number.
    compiled: BTreeMap<String, (String, Vec<Pred>, usize)>,
    /// Rules being compiled, to refuse a rule that uses itself.
    visiting: Vec<String>,
}

type Res<T> = Result<T, PlanError>;

/// The type of `field` of `kind`: a schema field, or a system field (text).
fn field_type(kind: &str, field: &str) -> Result<FieldType, String> {
    let spec = schema::kind(kind).map_err(|e| e.to_string())?;
    if let Some(f) = spec.field(field) {
        return Ok(f.ty);
    }
    if schema::SYSTEM_FIELDS.contains(&field) {
        return Ok(FieldType::Text);
    }
    let known: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
    Err(format!(
        "{kind} has no field {field:?} (fields: {}) / trường không tồn tại",
        known.join(", ")
    ))
}

fn check_kind(kind: &str) -> Result<(), String> {
    schema::kind(kind).map(|_| ()).map_err(|e| e.to_string())
}

/// The fields of `kind` that point at records of `target`.
fn links_to(kind: &str, target: &str) -> Vec<&'static str> {
    schema::kind(kind)
        .map(|k| {
            k.fields
                .iter()
                .filter(|f| matches!(f.ty, FieldType::Ref(t) | FieldType::RefList(t) if t.contains(&target)))
                .map(|f| f.name)
                .collect()
        })
        .unwrap_or_default()
}

/// A literal checked against the type of the field it is compared with.
fn operand(ty: FieldType, lit: &Lit, ordered: bool) -> Result<Operand, String> {
    use FieldType::*;
    if ordered && !matches!(ty, Date | Count | Amount) {
        return Err("gt, ge, lt and le compare dates, counts and amounts only".into());
    }
    let v = match (ty, lit) {
        (Date, Lit::Str(s)) if s.starts_with('$') => {
            return match s.as_str() {
                "$as_of" => Ok(Operand::AsOf),
                "$plan_start" => Ok(Operand::PlanStart),
                "$phase_start" => Ok(Operand::PhaseStart),
                "$phase_end" => Ok(Operand::PhaseEnd),
                _ => Err(format!(
                    "{s:?}: known dates are $as_of, $plan_start, $phase_start, $phase_end"
                )),
            };
        }
        (Date, Lit::Str(s)) => Value::Date(
            schema::parse_date(s)
                .ok_or_else(|| format!("{s:?} is not a date YYYY-MM-DD / ngày không hợp lệ"))?,
        ),
        (Count | Amount, Lit::Int(n)) => Value::Int(*n),
        (Bool, Lit::Bool(b)) => Value::Bool(*b),
        (Enum(allowed), Lit::Str(s)) if allowed.contains(&s.as_str()) => Value::Text(s.clone()),
        (Enum(allowed), Lit::Str(s)) => {
            return Err(format!(
                "{s:?} is not one of {} / giá trị không hợp lệ",
                allowed.join(", ")
            ));
        }
        (Text | Ref(_), Lit::Str(s)) => Value::Text(s.clone()),
        (ty, lit) => return Err(format!("{lit:?} does not fit a field of type {ty:?}")),
    };
    Ok(Operand::Value(v))
}

impl Compiler<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, reason: impl Into<String>) -> Res<T> {
        Err(PlanError {
            line: line_of(self.text, span.start),
            reason: reason.into(),
        })
    }

    fn plan(mut self, f: &FileDef) -> Res<Plan> {
        if *f.format.get_ref() != 1 {
            return self.err(f.format.span(), "this build reads plan files of format 1");
        }
        let h = self.h;
        let p = &f.plan;
        let hierarchy = p.hierarchy.get_ref().clone();
        if let Err(e) = h.version(&hierarchy) {
            return self.err(p.hierarchy.span(), e.to_string());
        }
        let in_hierarchy = |c: &Spanned<String>| {
            h.unit(&hierarchy, c.get_ref())
                .map(|_| c.get_ref().clone())
                .map_err(|e| (c.span(), e.to_string()))
        };
        let unit = in_hierarchy(&p.unit).or_else(|(s, e)| self.err(s, e))?;

        let mut phases: Vec<Phase> = Vec::new();
        for ph in &f.phases {
            let d = ph.get_ref();
            if d.end.0 < d.start.0 || d.end.0 <= p.start.0 {
                return self.err(ph.span(), "the phase ends before it or the plan starts");
            }
            if phases.iter().any(|x| x.id == d.id) {
                return self.err(ph.span(), format!("phase {:?} is given twice", d.id));
            }
            phases.push(Phase {
                id: d.id.clone(),
                name: d.name.clone(),
                name_vi: d.name_vi.clone(),
                start: d.start.0,
                end: d.end.0,
            });
        }

        let mut lifespans = BTreeMap::new();
        for (kind, l) in &f.lifespans {
            let d = l.get_ref();
            check_kind(kind).or_else(|e| self.err(l.span(), e))?;
            for field in d.from.iter().chain(&d.until) {
                match field_type(kind, field) {
                    Ok(FieldType::Date) => {}
                    Ok(_) => return self.err(l.span(), format!("{kind}.{field} is not a date")),
                    Err(e) => return self.err(l.span(), e),
                }
            }
            let key = |f: &Option<String>| f.as_deref().map(Key::new);
            let (from, until) = (key(&d.from), key(&d.until));
            lifespans.insert(kind.clone(), Lifespan { from, until });
        }

        let rules = self.rules;
        for name in rules.keys() {
            self.rule(name, None)?;
        }

        let mut indicators: Vec<Indicator> = Vec::new();
        for ind in &f.indicators {
            let d = ind.get_ref();
            if indicators.iter().any(|i| i.id == d.id) {
                return self.err(ind.span(), format!("indicator {:?} is given twice", d.id));
            }
            let kind = d.kind.get_ref().clone();
            check_kind(&kind).or_else(|e| self.err(d.kind.span(), e))?;
            let filter = self.preds(&kind, &d.filter)?;
            let numerator = self.preds(&kind, &d.numerator)?;
            let sum = match (d.compute, &d.field, &d.from_latest) {
                (Compute::Sum, Some(field), latest) => {
                    let related = match latest {
                        None => None,
                        Some(l) => Some(
                            self.related(&kind, l.get_ref(), None)
                                .or_else(|e| self.err(l.span(), e))?,
                        ),
                    };
                    let of = related.as_ref().map_or(kind.as_str(), |r| r.kind.as_str());
                    match field_type(of, field.get_ref()) {
                        Ok(FieldType::Count | FieldType::Amount) => {}
                        Ok(_) => {
                            return self.err(field.span(), "a sum needs a count or amount field");
                        }
                        Err(e) => return self.err(field.span(), e),
                    }
                    Some((Key::new(field.get_ref()), related))
                }
                (Compute::Sum, None, _) => {
                    return self.err(ind.span(), "compute = \"sum\" needs `field`");
                }
                (_, Some(field), _) => {
                    return self.err(field.span(), "`field` is for compute = \"sum\" only");
                }
                (_, None, Some(l)) => {
                    return self.err(l.span(), "`from_latest` is for compute = \"sum\" only");
                }
                (_, None, None) => None,
            };
            if (d.compute == Compute::Ratio) == d.numerator.is_empty() {
                return self.err(
                    ind.span(),
                    "`numerator` is needed for compute = \"ratio\", and only there",
                );
            }
            indicators.push(Indicator {
                id: d.id.clone(),
                name: d.name.clone(),
                name_vi: d.name_vi.clone(),
                plan_text: d.plan_text.clone(),
                how: d.how.clone(),
                kind,
                compute: d.compute,
                filter,
                numerator,
                sum,
            });
        }

        let mut targets: Vec<Target> = Vec::new();
        for t in &f.targets {
            let d = t.get_ref();
            let ind = indicators
                .iter()
                .find(|i| &i.id == d.indicator.get_ref())
                .map_or_else(
                    || {
                        self.err(
                            d.indicator.span(),
                            format!("no indicator {:?}", d.indicator.get_ref()),
                        )
                    },
                    Ok,
                )?;
            if !phases.iter().any(|p| &p.id == d.phase.get_ref()) {
                return self.err(d.phase.span(), format!("no phase {:?}", d.phase.get_ref()));
            }
            let unit = match &d.unit {
                Some(u) => in_hierarchy(u).or_else(|(s, e)| self.err(s, e))?,
                None => unit.clone(),
            };
            let goals: Vec<Goal> = [
                d.at_least.map(Goal::AtLeast),
                d.more_than.map(Goal::MoreThan),
                d.exactly.map(Goal::Exactly),
                d.range
                    .as_ref()
                    .map(|r| Goal::Range(r.get_ref()[0], r.get_ref()[1])),
                d.milestone.filter(|m| *m).map(|_| Goal::Milestone),
            ]
            .into_iter()
            .flatten()
            .collect();
            let &[goal] = goals.as_slice() else {
                return self.err(
                    t.span(),
                    "a target needs exactly one of at_least, more_than, exactly, range, milestone = true",
                );
            };
            let numbers = match goal {
                Goal::AtLeast(x) | Goal::MoreThan(x) | Goal::Exactly(x) => vec![x],
                Goal::Range(a, b) if a > b => {
                    let span = d.range.as_ref().map_or(t.span(), |r| r.span());
                    return self.err(span, "a range is [low, high]");
                }
                Goal::Range(a, b) => vec![a, b],
                Goal::Milestone => vec![],
            };
            if numbers.iter().any(|x| *x < 0.0)
                || (ind.compute == Compute::Ratio && numbers.iter().any(|x| *x > 100.0))
            {
                return self.err(
                    t.span(),
                    "targets are not negative; percents are at most 100",
                );
            }
            // Sub-targets of one level are added up into their parent's
            // goal: a bound keeps those sums finite and exact.
            if numbers.iter().any(|x| !x.is_finite() || *x > MAX_TARGET) {
                return self.err(
                    t.span(),
                    "a target is a number of at most 1e15 (inf and nan are not targets)",
                );
            }
            if targets
                .iter()
                .any(|x| x.indicator == ind.id && &x.phase == d.phase.get_ref() && x.unit == unit)
            {
                return self.err(
                    t.span(),
                    "this indicator, phase and unit already have a target",
                );
            }
            targets.push(Target {
                indicator: ind.id.clone(),
                phase: d.phase.get_ref().clone(),
                unit,
                goal,
                note: d.note.clone(),
            });
        }

        let reach = indicators
            .iter()
            .map(|i| {
                let sum = usize::from(matches!(i.sum, Some((_, Some(_)))));
                depth(&i.filter).max(depth(&i.numerator)).max(sum)
            })
            .max()
            .unwrap_or(0);
        Ok(Plan {
            id: p.id.clone(),
            name: p.name.clone(),
            name_vi: p.name_vi.clone(),
            start: p.start.0,
            hierarchy,
            unit,
            phases,
            indicators,
            targets,
            lifespans,
            reach,
        })
    }

    /// A rule's conditions, compiled once; `kind` is the kind it is used on.
    fn rule(&mut self, name: &str, used_on: Option<(&str, std::ops::Range<usize>)>) -> Res<Pred> {
        let at = used_on.as_ref().map(|(_, s)| s.clone());
        let rules = self.rules;
        let Some(def) = rules.get(name) else {
            let known: Vec<&str> = rules.keys().map(String::as_str).collect();
            return self.err(
                at.unwrap_or(0..0),
                format!("no rule {name:?} (rules: {})", known.join(", ")),
            );
        };
        if !self.compiled.contains_key(name) {
            if self.visiting.iter().any(|v| v == name) {
                return self.err(def.span(), format!("rule {name:?} uses itself"));
            }
            let d = def.get_ref();
            check_kind(&d.kind).or_else(|e| self.err(def.span(), e))?;
            self.visiting.push(name.to_owned());
            let preds = self.preds(&d.kind, &d.cond)?;
            self.visiting.pop();
            let number = self.compiled.len();
            self.compiled
                .insert(name.to_owned(), (d.kind.clone(), preds, number));
        }
        let (kind, preds, number) = &self.compiled[name];
        if let Some((used, span)) = used_on
            && used != kind
        {
            return self.err(
                span,
                format!("rule {name:?} is about {kind} records, not {used}"),
            );
        }
        Ok(Pred::Rule(*number, preds.clone()))
    }

    fn preds(&mut self, kind: &str, defs: &[Spanned<PredDef>]) -> Res<Vec<Pred>> {
        defs.iter().map(|d| self.pred(kind, d)).collect()
    }

    fn related(&self, kind: &str, other: &str, via: Option<&str>) -> Result<Related, String> {
        check_kind(other)?;
        let links = links_to(other, kind);
        let via = match (via, &links[..]) {
            (Some(v), _) if links.contains(&v) => v,
            (Some(v), _) => return Err(format!("{other}.{v} does not point at a {kind}")),
            (None, [one]) => one,
            (None, []) => return Err(format!("no field of {other} points at a {kind}")),
            (None, _) => {
                return Err(format!(
                    "several fields of {other} point at a {kind}: say which with via = (one of {})",
                    links.join(", ")
                ));
            }
        };
        Ok(Related {
            kind: other.to_owned(),
            via: Key::new(via),
        })
    }

    fn pred(&mut self, kind: &str, def: &Spanned<PredDef>) -> Res<Pred> {
        let span = def.span();
        let d = def.get_ref();
        let at = |reason: String| PlanError {
            line: line_of(self.text, span.start),
            reason,
        };
        let ops: Vec<(&str, Op, &Lit)> = [
            ("eq", Op::Eq, &d.eq),
            ("ne", Op::Ne, &d.ne),
            ("gt", Op::Gt, &d.gt),
            ("ge", Op::Ge, &d.ge),
            ("lt", Op::Lt, &d.lt),
            ("le", Op::Le, &d.le),
        ]
        .into_iter()
        .filter_map(|(n, op, l)| Some((n, op, l.as_ref()?)))
        .collect();
        let n_ops = ops.len() + usize::from(d.one_of.is_some()) + usize::from(d.set.is_some());
        let heads = [
            d.field.is_some(),
            d.share.is_some(),
            d.has.is_some(),
            d.latest.is_some(),
            d.follow.is_some(),
            d.any.is_some(),
            d.all.is_some(),
            d.not.is_some(),
            d.rule.is_some(),
        ];
        let related = d.has.is_some() || d.latest.is_some() || d.follow.is_some();
        let shape_ok = heads.iter().filter(|h| **h).count() == 1
            && n_ops == usize::from(d.field.is_some() || d.share.is_some())
            && (d.share.is_none() || ops.len() == 1)
            && (related || (d.cond.is_none() && d.via.is_none()))
            && (d.follow.is_none() || d.via.is_none());
        if !shape_ok {
            return Err(at(
                "a condition is one of: { field, eq|ne|in|gt|ge|lt|le|set }, { share, gt|ge|lt|le }, \
                 { has|latest, where, via? }, { ref, where }, { any }, { all }, { not }, { rule }"
                    .into(),
            ));
        }
        let empty = Vec::new();
        let cond = d.cond.as_ref().unwrap_or(&empty);
        if let Some(field) = &d.field {
            let ty = field_type(kind, field).map_err(at)?;
            if let Some(present) = d.set {
                return Ok(Pred::Set {
                    field: Key::new(field),
                    present,
                });
            }
            if let Some(list) = &d.one_of {
                let values = list
                    .iter()
                    .map(|l| match operand(ty, l, false)? {
                        Operand::Value(v) => Ok(v),
                        _ => Err("`in` takes plain values".to_owned()),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| at(format!("{kind}.{field}: {e}")))?;
                return Ok(Pred::In {
                    field: Key::new(field),
                    values,
                });
            }
            let (_, op, lit) = ops[0];
            let ordered = !matches!(op, Op::Eq | Op::Ne);
            let rhs = operand(ty, lit, ordered).map_err(|e| at(format!("{kind}.{field}: {e}")))?;
            return Ok(Pred::Cmp {
                field: Key::new(field),
                op,
                rhs,
            });
        }
        if let Some([num, den]) = &d.share {
            for f in [num, den] {
                match field_type(kind, f) {
                    Ok(FieldType::Count | FieldType::Amount) => {}
                    Ok(_) => return Err(at(format!("share: {kind}.{f} is not a count or amount"))),
                    Err(e) => return Err(at(e)),
                }
            }
            let (name, op, lit) = ops[0];
            let rhs = match lit {
                Lit::Int(n) => *n as f64,
                Lit::Float(x) => *x,
                other => return Err(at(format!("share: {name} needs a number, not {other:?}"))),
            };
            if matches!(op, Op::Eq | Op::Ne) {
                return Err(at("share compares with gt, ge, lt or le".into()));
            }
            return Ok(Pred::Share {
                num: Key::new(num),
                den: Key::new(den),
                op,
                rhs,
            });
        }
        if let Some(other) = d.has.as_ref().or(d.latest.as_ref()) {
            let rel = self.related(kind, other, d.via.as_deref()).map_err(at)?;
            let inner = self.preds(&rel.kind, cond)?;
            return Ok(if d.has.is_some() {
                Pred::Has(rel, inner)
            } else {
                Pred::Latest(rel, inner)
            });
        }
        if let Some(field) = &d.follow {
            let target = match field_type(kind, field).map_err(at)? {
                FieldType::Ref([one]) => *one,
                _ => {
                    return Err(at(format!(
                        "{kind}.{field} does not point at one kind of record"
                    )));
                }
            };
            let inner = self.preds(target, cond)?;
            return Ok(Pred::Ref {
                field: Key::new(field),
                cond: inner,
            });
        }
        if let Some(list) = d.any.as_ref() {
            return Ok(Pred::Any(self.preds(kind, list)?));
        }
        if let Some(list) = d.all.as_ref() {
            return Ok(Pred::All(self.preds(kind, list)?));
        }
        if let Some(inner) = &d.not {
            return Ok(Pred::Not(Box::new(self.pred(kind, inner)?)));
        }
        let name = d.rule.as_deref().expect("the one head left");
        self.rule(name, Some((kind, span)))
    }
}

/// How deeply lookups of related records nest.
fn depth(preds: &[Pred]) -> usize {
    preds
        .iter()
        .map(|p| match p {
            Pred::Has(_, c) | Pred::Latest(_, c) => 1 + depth(c),
            Pred::Ref { cond, .. } => 1 + depth(cond),
            Pred::Any(c) | Pred::All(c) | Pred::Rule(_, c) => depth(c),
            Pred::Not(p) => depth(std::slice::from_ref(p.as_ref())),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_plan_encodes_every_target() {
        let p = Plan::builtin();
        assert_eq!(p.start, schema::parse_date("2023-05-01").unwrap());
        assert_eq!(p.phases.len(), 2);
        assert_eq!(p.phases[0].end, schema::parse_date("2025-12-31").unwrap());
        assert_eq!(p.phases[1].start, schema::parse_date("2026-01-01").unwrap());
        assert_eq!(p.reach(), 1);
        let goal = |ind: &str, phase: &str| {
            p.targets
                .iter()
                .find(|t| t.indicator == ind && t.phase == phase)
                .map(|t| t.goal)
        };
        assert_eq!(goal("HTX_CONSOLIDATED", "1"), Some(Goal::AtLeast(10.0)));
        assert_eq!(goal("THT_CONSOLIDATED", "2"), Some(Goal::AtLeast(60.0)));
        assert_eq!(goal("STABLE_JOBS_HTX", "2"), Some(Goal::MoreThan(400.0)));
        assert_eq!(goal("NEW_HTX", "1"), Some(Goal::Range(5.0, 7.0)));
        assert_eq!(goal("ASSOCIATION", "1"), Some(Goal::Milestone));
        assert_eq!(goal("CADRES_SKILLS_PCT", "2"), Some(Goal::AtLeast(90.0)));
        assert_eq!(p.targets.len(), 17);
        assert!(p.targets.iter().all(|t| t.unit == "36"));
    }

    /// The shipped plan with one line replaced.
    fn with(line: &str, replacement: &str) -> (usize, Result<Plan, PlanError>) {
        let n = DE_AN_01_NAM_DINH
            .lines()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no line {line:?}"));
        let mut lines: Vec<&str> = DE_AN_01_NAM_DINH.lines().collect();
        lines[n] = replacement;
        let text = lines.join("\n");
        (n + 1, Plan::parse(&text))
    }

    #[track_caller]
    fn refused(line: &str, replacement: &str, why: &str) {
        let (n, r) = with(line, replacement);
        let e = r.expect_err("refused");
        assert_eq!(e.line, n, "{e}");
        assert!(e.reason.contains(why), "{e}");
        assert!(e.to_string().contains(&format!("line {n}")), "{e}");
    }

    #[test]
    fn an_unbounded_target_is_refused() {
        for bad in ["at_least = inf", "at_least = nan", "at_least = 1e300"] {
            let (n, r) = with("at_least = 10", bad);
            let e = r.expect_err("refused");
            // The error points at the target's `[[targets]]` line.
            assert_eq!(e.line, n - 3, "{e}");
            assert!(e.reason.contains("at most 1e15"), "{e}");
        }
        let (_, ok) = with("at_least = 10", "at_least = 1e15");
        ok.expect("a target at the bound is accepted");
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        // A typo in a value that has a fixed list.
        refused(
            "compute = \"sum\"",
            "compute = \"summ\"",
            "unknown variant `summ`",
        );
        // A typo in a key, at the top of a table and inside a condition.
        refused(
            "how = \"as STABLE_JOBS, HTX only\"",
            "hwo = \"x\"",
            "unknown field `hwo`",
        );
        refused(
            "  { field = \"type\", eq = \"HTX\" },",
            "  { field = \"type\", equals = \"HTX\" },",
            "unknown field `equals`",
        );
        // A field the schema does not have, and a value its type does not allow.
        refused(
            "    { field = \"gender\", eq = \"female\" },",
            "    { field = \"gendr\", eq = \"female\" },",
            "no field \"gendr\"",
        );
        refused(
            "    { field = \"gender\", eq = \"female\" },",
            "    { field = \"gender\", eq = \"femal\" },",
            "not one of female, male",
        );
        // An unknown kind, rule, date and comparison.
        refused(
            "kind = \"milestone\"",
            "kind = \"milestones\"",
            "unknown record kind",
        );
        refused(
            "where = [{ rule = \"in_scope\" }]",
            "where = [{ rule = \"in_scop\" }]",
            "no rule \"in_scop\"",
        );
        refused("end = \"2025-12-31\"", "end = \"2025-12-32\"", "not a date");
        refused("range = [5, 7]", "range = [7, 5]", "[low, high]");
        // A target with no comparison: the line of its table.
        let (n, r) = with("milestone = true", "milestone = false");
        let e = r.unwrap_err();
        assert!(e.reason.contains("exactly one of"), "{e}");
        assert_eq!(e.line, n - 3, "{e}");
        refused("unit = \"36\"", "unit = \"37\"", "unknown unit code");
        refused(
            "  { field = \"consolidated_on\", le = \"$as_of\" },",
            "  { field = \"consolidated_on\", le = \"$today\" },",
            "$as_of, $plan_start",
        );
        refused(
            "  { field = \"consolidated_on\", le = \"$as_of\" },",
            "  { field = \"consolidated_on\", le = \"$as_of\", any = [] },",
            "a condition is one of",
        );
    }

    #[test]
    fn sub_targets_need_no_code() {
        let text = format!(
            "{DE_AN_01_NAM_DINH}\n[[targets]]\nindicator = \"HTX_CONSOLIDATED\"\nphase = \"1\"\nunit = \"366\"\nat_least = 2\n"
        );
        let p = Plan::parse(&text).unwrap();
        assert!(
            p.targets
                .iter()
                .any(|t| t.unit == "366" && t.goal == Goal::AtLeast(2.0))
        );
        let bad =
            format!("{text}\n[[targets]]\nindicator = \"NEW_HTX\"\nphase = \"3\"\nexactly = 1\n");
        let e = Plan::parse(&bad).unwrap_err();
        assert_eq!(e.line, bad.lines().count() - 1, "{e}");
    }
}

//! # Records as progress reads them
//!
//! Evaluation asks three things of a record ([`Rec`]): its id, its kind
//! and a field by name. Two forms answer:
//! - [`Record`], as read from the documents or the index, for a
//!   from-scratch computation over records a caller holds;
//! - [`Slim`], the compact form the live [`super::Engine`] keeps of every
//!   record: only the fields progress reads, numbered rather than named,
//!   in one boxed slice, with every text (ids, unit codes, who recorded
//!   it, the values of an enumeration) held once in the engine's
//!   [`Names`], however many records carry it.
//!
//! A [`Record`]'s fields are a `BTreeMap` of owned names and values: a
//! B-tree leaf has room for 11 entries whatever the record holds, and
//! each name and text is a separate allocation. At a country's scale
//! that was 1.4 KB a record, seven times its JSON; a [`Slim`] is a few
//! hundred bytes (see BENCHMARKS.md, "compact records").

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use time::Date;

use crate::schema::{self, Key, Record, Value};

/// A text held once by the engine and shared by every record that has it.
pub type Name = Arc<str>;

/// A field's value as evaluation reads it, borrowed from either form.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
    Date(Date),
    List(Items<'a>),
}

/// The texts of a list field (a `RefList`'s ids).
#[derive(Debug, Clone, Copy)]
pub enum Items<'a> {
    Strings(&'a [String]),
    Names(&'a [Name]),
}

impl<'a> Items<'a> {
    pub fn iter(self) -> impl Iterator<Item = &'a str> {
        let (strings, names) = match self {
            Items::Strings(s) => (s, &[][..]),
            Items::Names(n) => (&[][..], n),
        };
        strings
            .iter()
            .map(String::as_str)
            .chain(names.iter().map(|n| &**n))
    }

    pub fn contains(self, text: &str) -> bool {
        self.iter().any(|x| x == text)
    }
}

impl<'a> Field<'a> {
    pub fn of(v: &'a Value) -> Field<'a> {
        match v {
            Value::Text(s) => Field::Text(s),
            Value::Int(n) => Field::Int(*n),
            Value::Bool(b) => Field::Bool(*b),
            Value::Date(d) => Field::Date(*d),
            Value::List(items) => Field::List(Items::Strings(items)),
        }
    }

    /// A date, or a text that reads as one.
    pub fn date(self) -> Option<Date> {
        match self {
            Field::Date(d) => Some(d),
            Field::Text(s) => schema::parse_date(s),
            _ => None,
        }
    }
}

/// What progress asks of a record.
pub trait Rec {
    fn id(&self) -> &str;
    fn kind(&self) -> &str;
    fn field(&self, name: &str) -> Option<Field<'_>>;
    /// Every value it holds that is a date (or reads as one).
    fn dates_into(&self, out: &mut Vec<Date>);

    /// Field `key`: as [`Rec::field`], faster for a form that keeps its
    /// fields by number.
    fn get(&self, key: &Key) -> Option<Field<'_>> {
        self.field(key)
    }

    fn text(&self, name: &str) -> Option<&str> {
        match self.field(name) {
            Some(Field::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// Text field `key`: as [`Rec::text`], faster for a form that keeps
    /// its fields by number.
    fn get_text(&self, key: &Key) -> Option<&str> {
        match self.get(key) {
            Some(Field::Text(s)) => Some(s),
            _ => None,
        }
    }

    fn is_deleted(&self) -> bool {
        self.get(&DELETED_AT).is_some()
    }
}

impl Rec for Record {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn field(&self, name: &str) -> Option<Field<'_>> {
        self.fields.get(name).map(Field::of)
    }
    fn dates_into(&self, out: &mut Vec<Date>) {
        out.extend(self.fields.values().filter_map(|v| Field::of(v).date()));
    }
}

/// A record as read whole (every field it has, by name): what a [`Slim`]
/// is made from. Besides [`Record`], the record index's entries read in
/// place ([`crate::index::Entry`]), so that loading the engine makes no
/// whole record first.
pub trait Whole: Rec {
    fn fields(&self) -> impl Iterator<Item = (&str, Field<'_>)>;
}

impl Whole for Record {
    fn fields(&self) -> impl Iterator<Item = (&str, Field<'_>)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), Field::of(v)))
    }
}

impl<T: Rec + ?Sized> Rec for &T {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn kind(&self) -> &str {
        (**self).kind()
    }
    fn field(&self, name: &str) -> Option<Field<'_>> {
        (**self).field(name)
    }
    fn get(&self, key: &Key) -> Option<Field<'_>> {
        (**self).get(key)
    }
    fn dates_into(&self, out: &mut Vec<Date>) {
        (**self).dates_into(out)
    }
}

impl<T: Rec + ?Sized> Rec for Arc<T> {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn kind(&self) -> &str {
        (**self).kind()
    }
    fn field(&self, name: &str) -> Option<Field<'_>> {
        (**self).field(name)
    }
    fn get(&self, key: &Key) -> Option<Field<'_>> {
        (**self).get(key)
    }
    fn dates_into(&self, out: &mut Vec<Date>) {
        (**self).dates_into(out)
    }
}

// ---- The compact form -----------------------------------------------------

/// The number of field `name` (below 64: [`Slim`]'s mask has a bit each).
fn number(name: &str) -> Option<u32> {
    below_64(schema::field_number(name))
}

fn below_64(n: Option<u32>) -> Option<u32> {
    n.filter(|n| *n < 64)
}

/// A set of fields, by number: one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields(u64);

impl Fields {
    /// Every field a record can have.
    pub const ALL: Fields = Fields(u64::MAX);

    /// The fields named (a name no kind has is left out).
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Fields {
        Fields(
            names
                .into_iter()
                .filter_map(number)
                .fold(0, |m, n| m | 1 << n),
        )
    }

    fn has(self, n: u32) -> bool {
        self.0 & 1 << n != 0
    }
}

/// The system fields progress reads of every record, numbered once.
pub(crate) static UNIT: LazyLock<Key> = LazyLock::new(|| Key::new("unit"));
pub(crate) static UNIT_VERSION: LazyLock<Key> = LazyLock::new(|| Key::new("unit_version"));
pub(crate) static RECORDED_BY: LazyLock<Key> = LazyLock::new(|| Key::new("recorded_by"));
static DELETED_AT: LazyLock<Key> = LazyLock::new(|| Key::new("deleted_at"));

/// A value other than a text, in 16 bytes (a list, rare, is boxed twice).
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Int(i64),
    Bool(bool),
    Date(Date),
    List(Box<Box<[Name]>>),
}

/// A record as the engine keeps it (see the module doc).
#[derive(Debug)]
pub struct Slim {
    id: Name,
    kind: Name,
    /// Bit `n` set: field number `n` is present. If its bit is set in
    /// `text` too, its value is in `texts`, else in `values`, at the
    /// number of bits set below `n` among the fields kept there.
    mask: u64,
    text: u64,
    texts: Box<[Name]>,
    values: Box<[Val]>,
}

/// Where a value of `n` is, in a list of the fields in `mask`.
fn place(mask: u64, n: u32) -> Option<usize> {
    let below = mask & ((1 << n) - 1);
    (mask & (1 << n) != 0).then(|| below.count_ones() as usize)
}

impl Slim {
    /// `rec`'s fields that are in `keep` (those progress reads), and no
    /// conflicts, every text taken from (or added to) `names`.
    pub fn new<R: Whole + ?Sized>(rec: &R, keep: Fields, names: &mut Names) -> Slim {
        let mut fields: Vec<(u32, Field<'_>)> = rec
            .fields()
            .filter_map(|(k, v)| Some((number(k)?, v)))
            .filter(|(n, _)| keep.has(*n))
            .collect();
        // One value a field, whatever the source holds: the last, as a
        // map read from it keeps (a stable sort of the fields reversed).
        fields.reverse();
        fields.sort_by_key(|(n, _)| *n);
        fields.dedup_by_key(|(n, _)| *n);
        let (mut mask, mut text) = (0, 0);
        let (mut texts, mut values) = (Vec::new(), Vec::new());
        for (n, v) in fields {
            mask |= 1 << n;
            match v {
                Field::Text(s) => {
                    text |= 1 << n;
                    texts.push(names.name(s));
                }
                Field::Int(i) => values.push(Val::Int(i)),
                Field::Bool(b) => values.push(Val::Bool(b)),
                Field::Date(d) => values.push(Val::Date(d)),
                Field::List(items) => {
                    let items: Box<[Name]> = items.iter().map(|i| names.name(i)).collect();
                    values.push(Val::List(Box::new(items)))
                }
            }
        }
        Slim {
            id: names.name(rec.id()),
            kind: names.name(rec.kind()),
            mask,
            text,
            texts: texts.into(),
            values: values.into(),
        }
    }

    /// The record's id, shared.
    pub fn name(&self) -> &Name {
        &self.id
    }

    /// The text of field `field`, shared.
    pub fn text_name(&self, key: &Key) -> Option<&Name> {
        self.texts.get(place(self.text, below_64(key.number())?)?)
    }
}

impl Rec for Slim {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn field(&self, name: &str) -> Option<Field<'_>> {
        self.numbered(number(name)?)
    }
    fn get(&self, key: &Key) -> Option<Field<'_>> {
        self.numbered(below_64(key.number())?)
    }
    fn dates_into(&self, out: &mut Vec<Date>) {
        let dates = self.values.iter().filter_map(|v| match v {
            Val::Date(d) => Some(*d),
            _ => None,
        });
        out.extend(dates.chain(self.texts.iter().filter_map(|s| schema::parse_date(s))));
    }
}

impl Slim {
    /// Field number `n`.
    fn numbered(&self, n: u32) -> Option<Field<'_>> {
        if let Some(at) = place(self.text, n) {
            return Some(Field::Text(&self.texts[at]));
        }
        Some(match &self.values[place(self.mask & !self.text, n)?] {
            Val::Int(i) => Field::Int(*i),
            Val::Bool(b) => Field::Bool(*b),
            Val::Date(d) => Field::Date(*d),
            Val::List(items) => Field::List(Items::Names(items)),
        })
    }
}

/// A [`Slim`] found by its id in a set (one pointer a record, where a
/// map from an id would hold the id again).
#[derive(Debug, Clone)]
pub(super) struct ById(pub Arc<Slim>);

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state)
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

/// The texts the engine's records hold, each once.
#[derive(Debug, Default)]
pub struct Names {
    set: HashSet<Name>,
    /// Records let go since the last sweep.
    dropped: usize,
}

impl Names {
    /// The shared copy of `text`.
    pub fn name(&mut self, text: &str) -> Name {
        if let Some(n) = self.set.get(text) {
            return n.clone();
        }
        let n: Name = text.into();
        self.set.insert(n.clone());
        n
    }

    /// Notes that the engine let a record go: once as many records have
    /// gone as there are names, the names no record holds any more are
    /// dropped (a record's texts may still be shared with a query running
    /// over the engine's records, so they are not dropped with it).
    pub(super) fn let_go(&mut self) {
        self.dropped += 1;
        if self.dropped >= self.set.len().max(1024) {
            self.set.retain(|n| Arc::strong_count(n) > 1);
            self.dropped = 0;
        }
    }

    /// The shared copy of `text`, if a record holds it.
    pub fn get(&self, text: &str) -> Option<&Name> {
        self.set.get(text)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_field() -> impl Iterator<Item = &'static str> {
        let kinds = schema::KINDS.iter().flat_map(|k| k.fields).map(|f| f.name);
        kinds.chain(schema::SYSTEM_FIELDS.iter().copied())
    }

    #[test]
    fn every_field_has_a_bit_in_the_mask() {
        for f in every_field() {
            // A field without one would be dropped from every record the
            // engine keeps, and a plan that reads it would count nothing.
            assert!(
                number(f).is_some(),
                "{f}: number {:?}",
                schema::field_number(f)
            );
        }
    }

    #[test]
    fn a_slim_record_answers_as_the_record_and_shares_its_texts() {
        let mut r = Record {
            id: "c1".into(),
            kind: "cooperative".into(),
            ..Default::default()
        };
        let d = schema::parse_date("2024-02-01").unwrap();
        r.fields.insert("unit".into(), Value::Text("13633".into()));
        r.fields.insert("founded_on".into(), Value::Date(d));
        r.fields.insert("union_supported".into(), Value::Bool(true));
        r.fields.insert("name".into(), Value::Text("HTX A".into()));
        let mut o = Record {
            id: "o1".into(),
            kind: "observation".into(),
            ..Default::default()
        };
        o.fields.insert("unit".into(), Value::Text("13633".into()));
        o.fields
            .insert("cooperative".into(), Value::Text("c1".into()));
        o.fields.insert("workers".into(), Value::Int(7));
        o.fields
            .insert("observed_on".into(), Value::Text("2025-03-31".into()));
        let mut names = Names::default();
        let keep = Fields::of(every_field().filter(|f| *f != "name"));
        let (sc, so) = (
            Slim::new(&r, keep, &mut names),
            Slim::new(&o, keep, &mut names),
        );
        assert_eq!((sc.id(), sc.kind()), ("c1", "cooperative"));
        assert_eq!(sc.text("unit"), Some("13633"));
        assert!(matches!(sc.field("founded_on"), Some(Field::Date(x)) if x == d));
        assert!(matches!(
            sc.field("union_supported"),
            Some(Field::Bool(true))
        ));
        assert!(sc.field("name").is_none(), "not kept");
        assert!(sc.field("sector").is_none() && sc.field("no such field").is_none());
        assert!(matches!(so.field("workers"), Some(Field::Int(7))));
        assert_eq!(so.text("cooperative"), Some("c1"));
        // By a numbered key, the same as by name.
        for f in [
            "unit",
            "founded_on",
            "union_supported",
            "name",
            "sector",
            "no such field",
        ] {
            let by_key = format!("{:?}", sc.get(&Key::new(f)));
            assert_eq!(by_key, format!("{:?}", sc.field(f)), "{f}");
        }
        assert_eq!(so.get_text(&Key::new("cooperative")), Some("c1"));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        so.dates_into(&mut a);
        o.dates_into(&mut b);
        assert_eq!(a, b);
        assert_eq!(a, [schema::parse_date("2025-03-31").unwrap()]);
        // One copy of "13633" and of "c1" for both records.
        let (a, b) = (sc.text_name(&UNIT).unwrap(), so.text_name(&UNIT).unwrap());
        assert!(Arc::ptr_eq(a, b));
        assert!(Arc::ptr_eq(
            so.text_name(&Key::new("cooperative")).unwrap(),
            sc.name()
        ));
        assert!(Arc::ptr_eq(sc.name(), &names.name("c1")));
    }

    #[test]
    fn names_no_record_holds_are_dropped() {
        let mut names = Names::default();
        let recs: Vec<Slim> = (0..2000)
            .map(|i| {
                let r = Record {
                    id: format!("r{i}"),
                    kind: "cadre".into(),
                    ..Default::default()
                };
                Slim::new(&r, Fields::ALL, &mut names)
            })
            .collect();
        assert_eq!(names.len(), 2001);
        drop(recs);
        (0..2001).for_each(|_| names.let_go());
        assert_eq!(names.len(), 0);
    }
}

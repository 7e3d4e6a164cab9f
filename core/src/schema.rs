//! # The records the plan's indicators need
//!
//! Records are schema-driven: each kind lists its fields and their types
//! here, and everything else (validation, the CLI's `--field value`, CSV
//! columns, JSON, the Automerge layout) follows from this one table. Every
//! record also carries the system fields in [`SYSTEM_FIELDS`].

use std::collections::BTreeMap;
use std::fmt;

use time::Date;
use time::macros::format_description;
use unicode_normalization::UnicodeNormalization;

/// Text as it is stored: trimmed, and in Unicode NFC. The same Vietnamese
/// name typed on two keyboards can arrive precomposed (NFC) or as base
/// letters plus combining marks (NFD); stored as given, the two would not
/// match in search, de-duplication or conflicts.
pub fn normalize_text(s: &str) -> String {
    let s = s.trim();
    if unicode_normalization::is_nfc(s) {
        s.to_owned()
    } else {
        s.nfc().collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Date,
    /// A non-negative whole number of people, jobs, products...
    Count,
    /// A non-negative amount in VND.
    Amount,
    Bool,
    Enum(&'static [&'static str]),
    /// The id of a record of the given kind(s).
    Ref(&'static [&'static str]),
    /// Ids of records of the given kind(s), e.g. who attended a training.
    RefList(&'static [&'static str]),
}

/// The largest count a record may hold: more people, jobs or products than
/// a province could have is a typing slip or a crafted value, and sums of
/// such values would overflow.
pub const MAX_COUNT: i64 = 1_000_000;
/// The largest amount of money a record may hold, in VND (10^15 đồng).
pub const MAX_AMOUNT_VND: i64 = 1_000_000_000_000_000;

#[derive(Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

#[derive(Debug)]
pub struct KindSpec {
    pub name: &'static str,
    pub about: &'static str,
    pub fields: &'static [FieldSpec],
}

const fn f(name: &'static str, ty: FieldType, required: bool) -> FieldSpec {
    FieldSpec { name, ty, required }
}

use FieldType::*;

const COOP: &[&str] = &["cooperative"];
const PEOPLE: &[&str] = &["manager", "cadre"];

/// Every kind of record, with its fields.
pub const KINDS: &[KindSpec] = &[
    KindSpec {
        name: "cooperative",
        about: "a cooperative (HTX) or cooperative group (THT)",
        fields: &[
            f("type", Enum(&["HTX", "THT"]), true),
            f("name", Text, true),
            f("sector", Text, false),
            f("founded_on", Date, false),
            f("union_supported", Bool, false),
            f("under_plan", Bool, false),
            f("consolidated_on", Date, false),
            f(
                "classification",
                Enum(&["good", "fair", "average", "weak"]),
                false,
            ),
            f("classified_on", Date, false),
            f("status", Enum(&["active", "dissolved"]), false),
            f("dissolved_on", Date, false),
            f("converted_to_htx_on", Date, false),
        ],
    },
    KindSpec {
        name: "observation",
        about: "a cooperative's counts as observed on a date",
        fields: &[
            f("cooperative", Ref(COOP), true),
            f("observed_on", Date, true),
            f("members", Count, false),
            f("female_members", Count, false),
            f("workers", Count, false),
            f("female_workers", Count, false),
            f("stable_jobs_women", Count, false),
            f("new_jobs_women", Count, false),
            f("priority_workers", Count, false),
            f("ocop_products", Count, false),
        ],
    },
    KindSpec {
        name: "manager",
        about: "a person in a cooperative's management",
        fields: &[
            f("cooperative", Ref(COOP), true),
            f("name", Text, true),
            f("gender", Enum(&["female", "male"]), true),
            f(
                "role",
                Enum(&["chair", "board_member", "director", "supervisory_board"]),
                true,
            ),
            f("since", Date, false),
            f("until", Date, false),
        ],
    },
    KindSpec {
        name: "cadre",
        about: "a Women's Union cadre",
        fields: &[
            f("name", Text, true),
            f("gender", Enum(&["female", "male"]), false),
            f("level", Enum(&["province", "district", "commune"]), true),
            f("kttt_support", Bool, false),
            f("since", Date, false),
            f("until", Date, false),
        ],
    },
    KindSpec {
        name: "training",
        about: "a training and who attended it",
        fields: &[
            f("held_on", Date, true),
            f(
                "type",
                Enum(&[
                    "governance",
                    "digital_skills",
                    "cadre_kttt",
                    "cadre_skills",
                    "vocational",
                ]),
                true,
            ),
            f("title", Text, false),
            f("attendees", RefList(PEOPLE), false),
            f("cooperative", Ref(COOP), false),
        ],
    },
    KindSpec {
        name: "activity",
        about: "an activity of section III of the plan",
        fields: &[
            f(
                "type",
                Enum(&[
                    "communication",
                    "contest",
                    "forum",
                    "trade_promotion",
                    "loan",
                    "insurance",
                    "ocop",
                    "ecommerce",
                    "award",
                ]),
                true,
            ),
            f("held_on", Date, true),
            f("title", Text, false),
            f("participants", Count, false),
            f("women", Count, false),
            f("amount_vnd", Amount, false),
            f("cooperative", Ref(COOP), false),
        ],
    },
    KindSpec {
        name: "milestone",
        about: "a one-off milestone, e.g. the Women Entrepreneurs Association founded",
        fields: &[
            f("type", Enum(&["women_entrepreneurs_association"]), true),
            f("achieved_on", Date, true),
            f("name", Text, false),
        ],
    },
];

/// Who changed a record last. Concurrent edits of different fields each set
/// them, so several values here are not a conflict for officers to resolve:
/// Automerge picks the same one on every replica, and that one is shown.
pub const LAST_CHANGE_FIELDS: &[&str] = &["changed_at", "changed_by"];

/// Fields every record has, set by the system (`unit` and `unit_version` by
/// the officer too).
pub const SYSTEM_FIELDS: &[&str] = &[
    "unit",
    "unit_version",
    "recorded_at",
    "recorded_by",
    "changed_at",
    "changed_by",
    "deleted_at",
    "deleted_by",
    "deleted_reason",
    "restored_at",
    "restored_by",
    "restored_reason",
];

/// Longest reason an officer may give for deleting or restoring a record.
pub const MAX_REASON_CHARS: usize = 500;

/// Every field a record can have (each kind's and the system's), by
/// name: a field's number is its place in the sorted list. Asked for by
/// every condition a plan compiles, so hashed with a fast hash (the keys
/// are our own field names, never a user's input).
static FIELD_NUMBERS: std::sync::LazyLock<rustc_hash::FxHashMap<&'static str, u32>> =
    std::sync::LazyLock::new(|| {
        let mut all: Vec<&'static str> = KINDS
            .iter()
            .flat_map(|k| k.fields.iter().map(|f| f.name))
            .chain(SYSTEM_FIELDS.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all.into_iter().zip(0..).collect()
    });

/// The number of field `name` among every field a record can have; none
/// for a name no kind has.
pub fn field_number(name: &str) -> Option<u32> {
    FIELD_NUMBERS.get(name).copied()
}

/// A field's name with its number ([`field_number`]) worked out once,
/// where a plan is compiled: a record kept with its fields numbered (the
/// progress engine's) is then read without looking the name up, which
/// was a fifth of the time progress took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    name: Box<str>,
    number: Option<u32>,
}

impl Key {
    pub fn new(name: &str) -> Key {
        Key {
            name: name.into(),
            number: field_number(name),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn number(&self) -> Option<u32> {
        self.number
    }
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

pub fn kind(name: &str) -> Result<&'static KindSpec, FieldError> {
    KINDS
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| FieldError::UnknownKind(name.to_owned()))
}

impl KindSpec {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    #[serde(serialize_with = "ser_date")]
    Date(Date),
    List(Vec<String>),
}

fn ser_date<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_date(*d))
}

pub fn format_date(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .expect("dates format")
}

pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s.trim(), format_description!("[year]-[month]-[day]")).ok()
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::List(items) => f.write_str(&items.join(";")),
        }
    }
}

/// What is wrong with a record, in English and Vietnamese.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldError {
    #[error(
        "unknown record kind {0:?} (known: cooperative, observation, manager, cadre, training, activity, milestone) / loại bản ghi không tồn tại"
    )]
    UnknownKind(String),
    #[error("{kind}: unknown field {field:?} / trường không tồn tại")]
    UnknownField { kind: String, field: String },
    #[error("{kind}: field {field:?} is required / thiếu trường bắt buộc")]
    Missing { kind: String, field: String },
    #[error(
        "{kind}: field {field:?}: {value:?} is not a date of the form YYYY-MM-DD / ngày không hợp lệ"
    )]
    BadDate {
        kind: String,
        field: String,
        value: String,
    },
    #[error("{kind}: field {field:?}: {value:?} is not a whole number / không phải số nguyên")]
    BadNumber {
        kind: String,
        field: String,
        value: String,
    },
    #[error(
        "{kind}: field {field:?}: {value} is negative; counts and amounts cannot be / số lượng không được âm"
    )]
    Negative {
        kind: String,
        field: String,
        value: i64,
    },
    #[error(
        "{kind}: field {field:?}: {value} is above the largest plausible value, {max} / giá trị {value} vượt quá mức tối đa {max}"
    )]
    TooLarge {
        kind: String,
        field: String,
        value: i64,
        max: i64,
    },
    #[error("{kind}: field {field:?}: {value:?} is not true or false / phải là true hoặc false")]
    BadBool {
        kind: String,
        field: String,
        value: String,
    },
    #[error("{kind}: field {field:?}: {value:?} is not one of {allowed} / giá trị không hợp lệ")]
    BadChoice {
        kind: String,
        field: String,
        value: String,
        allowed: String,
    },
    #[error(
        "{kind}: field {field:?}: no {target} with id {value:?} on this node / không tìm thấy bản ghi được tham chiếu"
    )]
    BadRef {
        kind: String,
        field: String,
        value: String,
        target: String,
    },
    #[error("{0}")]
    BadUnit(String),
    #[error("id {0:?} is not a UUID / mã bản ghi không hợp lệ")]
    BadId(String),
    #[error(
        "{kind}: field {field:?}: a JSON {got} is not text; give a single value / giá trị phải là văn bản, không phải mảng hay đối tượng JSON"
    )]
    NotText {
        kind: String,
        field: String,
        got: &'static str,
    },
}

/// The name of a JSON value's type when it cannot stand for one value.
impl FieldError {
    /// The field the error is about, if it is about one (forms show the
    /// error beside it).
    pub fn field(&self) -> Option<&str> {
        match self {
            FieldError::UnknownField { field, .. }
            | FieldError::Missing { field, .. }
            | FieldError::BadDate { field, .. }
            | FieldError::BadNumber { field, .. }
            | FieldError::Negative { field, .. }
            | FieldError::TooLarge { field, .. }
            | FieldError::BadBool { field, .. }
            | FieldError::BadChoice { field, .. }
            | FieldError::BadRef { field, .. }
            | FieldError::NotText { field, .. } => Some(field),
            FieldError::UnknownKind(_) | FieldError::BadUnit(_) | FieldError::BadId(_) => None,
        }
    }
}

fn json_compound(v: &serde_json::Value) -> Option<&'static str> {
    match v {
        serde_json::Value::Array(_) => Some("array"),
        serde_json::Value::Object(_) => Some("object"),
        _ => None,
    }
}

/// A JSON value given for a single text value (system fields, ids), as text.
fn json_text(kind: &str, field: &str, v: &serde_json::Value) -> Result<String, FieldError> {
    if let Some(got) = json_compound(v) {
        return Err(FieldError::NotText {
            kind: kind.into(),
            field: field.into(),
            got,
        });
    }
    Ok(normalize_text(
        &v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string()),
    ))
}

impl FieldSpec {
    /// The largest value a count or amount field accepts.
    pub const fn max(&self) -> Option<i64> {
        match self.ty {
            Count => Some(MAX_COUNT),
            Amount => Some(MAX_AMOUNT_VND),
            _ => None,
        }
    }

    /// Reads a value typed by a person (CLI flag, CSV cell).
    pub fn parse(&self, kind: &str, raw: &str) -> Result<Value, FieldError> {
        let raw = &normalize_text(raw);
        let err_ctx = || (kind.to_owned(), self.name.to_owned(), raw.to_owned());
        match self.ty {
            Text | Ref(_) => Ok(Value::Text(raw.to_owned())),
            Date => parse_date(raw).map(Value::Date).ok_or_else(|| {
                let (kind, field, value) = err_ctx();
                FieldError::BadDate { kind, field, value }
            }),
            Count | Amount => {
                let n: i64 = raw.parse().map_err(|_| {
                    let (kind, field, value) = err_ctx();
                    FieldError::BadNumber { kind, field, value }
                })?;
                self.check(kind, Value::Int(n))
            }
            Bool => match raw.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "có" => Ok(Value::Bool(true)),
                "false" | "no" | "0" | "không" => Ok(Value::Bool(false)),
                _ => {
                    let (kind, field, value) = err_ctx();
                    Err(FieldError::BadBool { kind, field, value })
                }
            },
            Enum(_) => self.check(kind, Value::Text(raw.to_owned())),
            RefList(_) => Ok(Value::List(
                raw.split([';', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
        }
    }

    /// Reads a JSON value, accepting strings for every type. An array or
    /// object is refused where one value is expected (it used to be stored
    /// as its JSON text, e.g. a name `["HTX","Lúa"]`).
    pub fn from_json(&self, kind: &str, v: &serde_json::Value) -> Result<Value, FieldError> {
        let not_text = |got| FieldError::NotText {
            kind: kind.into(),
            field: self.name.into(),
            got,
        };
        match (self.ty, v) {
            (_, serde_json::Value::String(s)) => self.parse(kind, s),
            (Count | Amount, serde_json::Value::Number(n)) => match n.as_i64() {
                Some(n) => self.check(kind, Value::Int(n)),
                None => Err(FieldError::BadNumber {
                    kind: kind.into(),
                    field: self.name.into(),
                    value: n.to_string(),
                }),
            },
            (Bool, serde_json::Value::Bool(b)) => Ok(Value::Bool(*b)),
            (RefList(_), serde_json::Value::Array(items)) => Ok(Value::List(
                items
                    .iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => Ok(normalize_text(s)),
                        other => Err(not_text(json_compound(other).unwrap_or("number"))),
                    })
                    .collect::<Result<_, _>>()?,
            )),
            (_, other) => match json_compound(other) {
                Some(got) => Err(not_text(got)),
                None => self.parse(kind, &other.to_string()),
            },
        }
    }

    /// Checks a typed value against this field's type.
    pub fn check(&self, kind: &str, v: Value) -> Result<Value, FieldError> {
        let field = self.name.to_owned();
        let kind = kind.to_owned();
        match (self.ty, v) {
            (Text | Ref(_), Value::Text(s)) => Ok(Value::Text(s)),
            (Date, Value::Date(d)) => Ok(Value::Date(d)),
            (Date, Value::Text(s)) => self.parse(&kind, &s),
            (Count | Amount, Value::Int(n)) if n < 0 => Err(FieldError::Negative {
                kind,
                field,
                value: n,
            }),
            (Count | Amount, Value::Int(n)) if n > self.max().unwrap_or(i64::MAX) => {
                Err(FieldError::TooLarge {
                    kind,
                    field,
                    value: n,
                    max: self.max().unwrap_or(i64::MAX),
                })
            }
            (Count | Amount, Value::Int(n)) => Ok(Value::Int(n)),
            (Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
            (Enum(allowed), Value::Text(s)) if allowed.contains(&s.as_str()) => Ok(Value::Text(s)),
            (Enum(allowed), Value::Text(s)) => Err(FieldError::BadChoice {
                kind,
                field,
                value: s,
                allowed: allowed.join(", "),
            }),
            (RefList(_), Value::List(l)) => Ok(Value::List(l)),
            (_, other) => Err(FieldError::BadNumber {
                kind,
                field,
                value: other.to_string(),
            }),
        }
    }
}

/// One record: a kind, an id, and its fields (system fields included).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub id: String,
    pub kind: String,
    pub fields: BTreeMap<String, Value>,
    /// Fields that concurrent edits left with several values; `fields`
    /// holds the one every replica agrees to show.
    pub conflicts: BTreeMap<String, Vec<Value>>,
}

impl Record {
    pub fn text(&self, field: &str) -> Option<&str> {
        match self.fields.get(field) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.fields.contains_key("deleted_at")
    }

    /// Puts every text of the record in the form it is stored in (trimmed,
    /// Unicode NFC; see [`normalize_text`]), whichever way it came: CLI,
    /// import file or a program on the local API.
    pub fn normalize(&mut self) {
        self.id = normalize_text(&self.id);
        self.kind = normalize_text(&self.kind);
        for v in self.fields.values_mut() {
            match v {
                Value::Text(s) => *s = normalize_text(s),
                Value::List(items) => items.iter_mut().for_each(|i| *i = normalize_text(i)),
                _ => {}
            }
        }
    }

    /// Checks every field against the kind's schema and that required
    /// fields are present. References and units are checked by the caller,
    /// which knows what exists.
    pub fn validate(&self) -> Result<(), FieldError> {
        let spec = kind(&self.kind)?;
        uuid::Uuid::parse_str(&self.id).map_err(|_| FieldError::BadId(self.id.clone()))?;
        for (name, value) in &self.fields {
            if SYSTEM_FIELDS.contains(&name.as_str()) {
                continue;
            }
            let field = spec.field(name).ok_or_else(|| FieldError::UnknownField {
                kind: self.kind.clone(),
                field: name.clone(),
            })?;
            field.check(&self.kind, value.clone())?;
        }
        for field in spec.fields.iter().filter(|f| f.required) {
            if !self.fields.contains_key(field.name) {
                return Err(FieldError::Missing {
                    kind: self.kind.clone(),
                    field: field.name.into(),
                });
            }
        }
        if !self.fields.contains_key("unit") {
            return Err(FieldError::Missing {
                kind: self.kind.clone(),
                field: "unit".into(),
            });
        }
        Ok(())
    }

    /// The record as one flat JSON object, as `export` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("id".into(), self.id.clone().into());
        obj.insert("kind".into(), self.kind.clone().into());
        for (k, v) in &self.fields {
            obj.insert(
                k.clone(),
                serde_json::to_value(v).expect("values serialize"),
            );
        }
        if !self.conflicts.is_empty() {
            obj.insert(
                "conflicts".into(),
                serde_json::to_value(&self.conflicts).expect("values serialize"),
            );
        }
        serde_json::Value::Object(obj)
    }
}

/// Builds a record of `kind` from (field, text) pairs typed by a person, as
/// given on the command line or in a CSV row. Empty values are skipped.
pub fn record_from_strings<'a>(
    kind_name: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Record, FieldError> {
    let spec = kind(kind_name)?;
    let mut rec = Record {
        kind: kind_name.to_owned(),
        ..Default::default()
    };
    for (name, raw) in pairs {
        if raw.trim().is_empty() || name == "kind" {
            continue;
        }
        match name {
            "id" => rec.id = normalize_text(raw),
            "unit" | "unit_version" => {
                rec.fields
                    .insert(name.to_owned(), Value::Text(normalize_text(raw)));
            }
            _ => {
                let field = spec.field(name).ok_or_else(|| FieldError::UnknownField {
                    kind: kind_name.to_owned(),
                    field: name.to_owned(),
                })?;
                rec.fields
                    .insert(name.to_owned(), field.parse(kind_name, raw)?);
            }
        }
    }
    Ok(rec)
}

/// Builds a record from one flat JSON object with a `kind`.
pub fn record_from_json(obj: &serde_json::Value) -> Result<Record, FieldError> {
    let map = obj
        .as_object()
        .ok_or_else(|| FieldError::UnknownKind(obj.to_string()))?;
    let kind_name = map.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    let spec = kind(kind_name)?;
    let mut rec = Record {
        kind: kind_name.to_owned(),
        ..Default::default()
    };
    for (name, v) in map {
        if v.is_null() || name == "kind" || name == "conflicts" {
            continue;
        }
        match name.as_str() {
            // An id that is not a string would have been dropped, and the
            // row recorded under a new id.
            "id" => match v {
                serde_json::Value::String(s) => rec.id = normalize_text(s),
                other => {
                    return Err(FieldError::NotText {
                        kind: kind_name.to_owned(),
                        field: name.clone(),
                        got: json_compound(other).unwrap_or("number or boolean"),
                    });
                }
            },
            n if SYSTEM_FIELDS.contains(&n) => {
                let text = json_text(kind_name, n, v)?;
                rec.fields.insert(name.clone(), Value::Text(text));
            }
            _ => {
                let field = spec.field(name).ok_or_else(|| FieldError::UnknownField {
                    kind: kind_name.to_owned(),
                    field: name.clone(),
                })?;
                rec.fields
                    .insert(name.clone(), field.from_json(kind_name, v)?);
            }
        }
    }
    Ok(rec)
}

/// A new client-generated record id: UUID v7, ordered by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// SHA-256 of an import file's bytes, for [`import_id`].
pub fn file_hash(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

/// The id of row `row` of an import file whose content has SHA-256
/// `file_hash`, for a row that names none: a UUID v8 whose first half is
/// the start of the file's hash and whose second half is the row number.
/// The same file imported again gives its rows the same ids, so a retried
/// import (after an error, or a cut connection) changes what is there
/// instead of adding it twice. A file's ids share their first half and
/// count up, as v7 ids made one after another do, which keeps the stored
/// documents compact.
pub fn import_id(file_hash: &[u8; 32], row: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&file_hash[..8]);
    bytes[8..].copy_from_slice(&row.to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_typed_values_are_checked() {
        let r = record_from_strings(
            "observation",
            [
                ("cooperative", "x"),
                ("observed_on", "2025-06-30"),
                ("workers", "12"),
            ],
        )
        .unwrap();
        assert_eq!(r.fields["workers"], Value::Int(12));
        let e = record_from_strings("observation", [("workers", "-3")]).unwrap_err();
        assert!(matches!(e, FieldError::Negative { value: -3, .. }), "{e}");
        let e = record_from_strings("observation", [("observed_on", "2025-13-01")]).unwrap_err();
        assert!(e.to_string().contains("not a date"), "{e}");
        let e = record_from_strings("cooperative", [("type", "ABC")]).unwrap_err();
        assert!(e.to_string().contains("HTX, THT"), "{e}");
        let e = record_from_strings("cooperative", [("colour", "red")]).unwrap_err();
        assert!(matches!(e, FieldError::UnknownField { .. }));
    }

    #[test]
    fn validation_needs_required_fields_and_unit() {
        let mut r =
            record_from_strings("cooperative", [("type", "HTX"), ("name", "HTX Lúa")]).unwrap();
        r.id = new_id();
        assert!(matches!(r.validate(), Err(FieldError::Missing { field, .. }) if field == "unit"));
        r.fields.insert("unit".into(), Value::Text("13633".into()));
        r.validate().unwrap();
        r.fields.remove("name");
        assert!(matches!(r.validate(), Err(FieldError::Missing { field, .. }) if field == "name"));
    }

    #[test]
    fn text_is_stored_in_nfc() {
        let nfd = "Ha\u{306}\u{300}ng";
        let r = record_from_strings("cadre", [("name", nfd), ("level", "commune")]).unwrap();
        assert_eq!(r.text("name"), Some("Hằng"));
        let r =
            record_from_json(&serde_json::json!({"kind": "cadre", "name": nfd, "unit": " 13633 "}))
                .unwrap();
        assert_eq!(r.text("name"), Some("Hằng"));
        assert_eq!(r.text("unit"), Some("13633"));
        let mut r = Record {
            fields: [("name".to_owned(), Value::Text(nfd.into()))].into(),
            ..Default::default()
        };
        r.normalize();
        assert_eq!(r.text("name"), Some("Hằng"));
    }

    #[test]
    fn json_arrays_and_objects_are_not_text() {
        for (field, v) in [
            ("name", serde_json::json!(["a", "b"])),
            ("name", serde_json::json!({"vi": "a"})),
            ("unit", serde_json::json!(["13633"])),
            ("id", serde_json::json!(7)),
        ] {
            let mut obj = serde_json::json!({"kind": "cadre", "name": "A", "level": "commune"});
            obj[field] = v;
            let e = record_from_json(&obj).unwrap_err();
            assert!(
                matches!(&e, FieldError::NotText { field: f, .. } if f == field),
                "{e}"
            );
        }
        let e = record_from_json(&serde_json::json!({"kind": "training", "attendees": [1, 2]}))
            .unwrap_err();
        assert!(matches!(e, FieldError::NotText { .. }), "{e}");
    }

    #[test]
    fn import_ids_are_stable_uuids() {
        let a = import_id(&[1; 32], 1);
        assert_eq!(a, import_id(&[1; 32], 1));
        assert_ne!(a, import_id(&[1; 32], 2));
        assert_ne!(a, import_id(&[2; 32], 1));
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 8);
    }

    #[test]
    fn json_numbers_and_strings_are_read_alike() {
        let r = record_from_json(&serde_json::json!({
            "kind": "observation", "cooperative": "c", "observed_on": "2024-01-02", "workers": 5, "female_workers": "3"
        }))
        .unwrap();
        assert_eq!(r.fields["workers"], Value::Int(5));
        assert_eq!(r.fields["female_workers"], Value::Int(3));
        let e = record_from_json(&serde_json::json!({"kind": "observation", "workers": -1}))
            .unwrap_err();
        assert!(matches!(e, FieldError::Negative { .. }));
    }
}

//! # Preview and commit
//!
//! A preview turns every row into a record and checks it, listing every
//! bad cell and row in one pass:
//! 1. each cell against its column's type ([`super::values`], then the
//!    schema's own parser), and each required column of the kind;
//! 2. names: the unit (a code or a commune's name within the node's
//!    units), the cooperative (by name within its commune, among the
//!    node's records and the file's own rows), the people at a training;
//! 3. the node's own checks of a write ([`Node::check`]: schema, unit,
//!    references, ids), run without writing.
//!
//! [`commit`] writes a preview that has no error, all or nothing, through
//! [`Node::import`], which checks everything again.

use std::collections::HashMap;

use htx_core::schema::{self, FieldError, FieldType, Record, Value};
use htx_core::units::{Hierarchy, Level};

use super::names::{self, Target, fold};
use super::values::{self, Refusal};
use super::{Cell, CellError, SheetError, Workbook};
use crate::node::Node;

/// What importing a file would do: how many rows are good, and every
/// error. Holds the records to write; [`commit`] writes them.
#[derive(Debug)]
pub struct Preview {
    /// Rows that passed every check.
    pub rows_ok: usize,
    /// Every bad cell, row, column and sheet, by sheet and row.
    pub errors: Vec<CellError>,
    /// Rows per kind, as (kind, rows), in the order they are written.
    pub kinds: Vec<(&'static str, usize)>,
    rows: Vec<(u64, Record)>,
    /// Sheet names by their place in the file.
    sheet_names: Vec<String>,
}

impl Preview {
    /// The records to write, by their row in the file, and the sheets'
    /// names to say where a row is ([`place`]).
    pub(crate) fn into_parts(self) -> (Vec<(u64, Record)>, Vec<String>) {
        (self.rows, self.sheet_names)
    }
}

/// Where a row of [`Preview::into_parts`] is: "sheet, dòng/row N".
pub fn place(sheet_names: &[String], file_row: u64) -> String {
    let sheet = sheet_names
        .get((file_row >> 32) as usize)
        .map_or("?", String::as_str);
    format!("{sheet}, dòng/row {}", file_row & 0xffff_ffff)
}

/// A row's place, to report its errors.
struct Place {
    sheet: String,
    row: u32,
    /// Field (or `unit`, `id`) → the column's header in the file.
    headers: HashMap<String, String>,
    /// Fields whose cell was already refused (no second error for them).
    refused: Vec<String>,
}

/// One record named by the people's name for it.
struct Named {
    fold: String,
    name: String,
    unit: String,
    id: String,
}

/// Records by their folded name ([`fold`]), and each id's folded name.
#[derive(Default)]
struct Names {
    by_name: HashMap<String, Vec<Named>>,
    by_id: HashMap<String, String>,
}

impl Names {
    /// Adds a record, or replaces the one of the same id.
    fn put(&mut self, n: Named) {
        if let Some(old) = self.by_id.insert(n.id.clone(), n.fold.clone())
            && let Some(list) = self.by_name.get_mut(&old)
        {
            list.retain(|o| o.id != n.id);
        }
        self.by_name.entry(n.fold.clone()).or_default().push(n);
    }
}

/// What a preview checks rows against: a node's records and its checks.
pub trait Holder {
    fn bundle(&self) -> &htx_core::pki::Bundle;
    /// Every record held, deleted ones left out.
    fn records(&self) -> Result<Vec<Record>, crate::node::NodeError>;
    /// The node's checks of a write, writing nothing ([`Node::check`]).
    fn check(
        &self,
        records: Vec<Record>,
    ) -> Result<Vec<(usize, FieldError)>, crate::node::NodeError>;
}

impl Holder for Node {
    fn bundle(&self) -> &htx_core::pki::Bundle {
        Node::bundle(self)
    }
    fn records(&self) -> Result<Vec<Record>, crate::node::NodeError> {
        self.export(false)
    }
    fn check(
        &self,
        records: Vec<Record>,
    ) -> Result<Vec<(usize, FieldError)>, crate::node::NodeError> {
        Node::check(self, records)
    }
}

/// A node as an officer sees it: the records they may refer to are the
/// node's, but a row outside their units is refused by the check.
pub struct AsOfficer<'a> {
    pub node: &'a Node,
    pub officer: &'a crate::node::Officer,
}

impl Holder for AsOfficer<'_> {
    fn bundle(&self) -> &htx_core::pki::Bundle {
        self.node.bundle()
    }
    fn records(&self) -> Result<Vec<Record>, crate::node::NodeError> {
        self.node.export(false)
    }
    fn check(
        &self,
        records: Vec<Record>,
    ) -> Result<Vec<(usize, FieldError)>, crate::node::NodeError> {
        self.node.check_as(records, self.officer)
    }
}

/// Writes a preview's records as [`commit`] does, recorded as `officer`'s
/// and refused outside their units.
pub fn commit_as(
    node: &Node,
    preview: Preview,
    officer: &crate::node::Officer,
) -> Result<usize, SheetError> {
    if !preview.errors.is_empty() {
        return Err(SheetError::HasErrors(preview.errors.len()));
    }
    let n = node.import_as(preview.rows, officer)?;
    tracing::info!("{} imported {n} records from a spreadsheet", officer.name);
    Ok(n)
}

/// Checks every row of `wb` against what `node` holds; writes nothing.
pub fn preview(node: &Node, wb: &Workbook) -> Result<Preview, SheetError> {
    preview_with(node, wb)
}

/// [`preview`] against any [`Holder`] (the CLI's view of a running node).
pub fn preview_with(node: &dyn Holder, wb: &Workbook) -> Result<Preview, SheetError> {
    let mut errors = wb.problems.clone();
    let b = node.bundle();
    let version = Hierarchy::current()
        .version(&b.unit_version)
        .map_err(|e| crate::node::NodeError::Setup(e.to_string()))?;
    let own_is_commune = version.unit(&b.unit).map(|u| u.level) == Some(Level::Commune);

    // Sheets in the order kinds are declared: cooperatives before what
    // refers to them, people before trainings.
    let mut sheets: Vec<_> = wb.sheets.iter().collect();
    sheets.sort_by_key(|s| {
        schema::KINDS
            .iter()
            .position(|k| k.name == s.kind.name)
            .unwrap_or(usize::MAX)
    });

    let existing = node.records()?;
    let mut coops = Names::default();
    let mut people = Names::default();
    let named = |r: &Record| Named {
        fold: fold(r.text("name").unwrap_or_default()),
        name: r.text("name").unwrap_or_default().to_owned(),
        unit: r.text("unit").unwrap_or_default().to_owned(),
        id: r.id.clone(),
    };
    for r in &existing {
        match r.kind.as_str() {
            "cooperative" => coops.put(named(r)),
            "manager" | "cadre" => people.put(named(r)),
            _ => {}
        }
    }

    let held: std::collections::HashSet<&str> = existing.iter().map(|r| r.id.as_str()).collect();
    let mut records: Vec<(u64, Record)> = Vec::new();
    let mut places: Vec<Place> = Vec::new();
    let mut kinds: Vec<(&'static str, usize)> = Vec::new();
    for sheet in sheets {
        let kind = sheet.kind;
        match kinds.iter_mut().find(|(k, _)| *k == kind.name) {
            Some((_, n)) => *n += sheet.rows.len(),
            None => kinds.push((kind.name, sheet.rows.len())),
        }
        let headers: HashMap<String, String> = sheet
            .columns
            .iter()
            .map(|c| {
                let key = match c.target {
                    Target::Id => "id".to_owned(),
                    Target::Unit => "unit".to_owned(),
                    Target::Field(f) => f.name.to_owned(),
                };
                (key, c.header.clone())
            })
            .collect();
        for row in &sheet.rows {
            let mut place = Place {
                sheet: sheet.name.clone(),
                row: row.number,
                headers: headers.clone(),
                refused: Vec::new(),
            };
            let mut rec = Record {
                kind: kind.name.to_owned(),
                ..Default::default()
            };
            let mut refuse = |place: &mut Place, field: &str, r: Refusal| {
                place.refused.push(field.to_owned());
                errors.push(CellError {
                    sheet: place.sheet.clone(),
                    row: place.row,
                    column: place.headers.get(field).cloned().unwrap_or_default(),
                    reason_vi: r.vi,
                    reason_en: r.en,
                });
            };
            // References are resolved after the row's unit is known.
            let mut refs: Vec<(&'static schema::FieldSpec, String)> = Vec::new();
            for (col, cell) in sheet.columns.iter().zip(&row.cells) {
                if *cell == Cell::Empty {
                    continue;
                }
                match col.target {
                    Target::Id => rec.id = schema::normalize_text(&cell.to_text()),
                    Target::Unit => match unit_of(version, &b.unit, &cell.to_text()) {
                        Ok(code) => {
                            rec.fields.insert("unit".into(), Value::Text(code));
                        }
                        Err(r) => refuse(&mut place, "unit", r),
                    },
                    Target::Field(f) => {
                        let text = match values::canonical(f, cell) {
                            Ok(t) => t,
                            Err(r) => {
                                refuse(&mut place, f.name, r);
                                continue;
                            }
                        };
                        if matches!(f.ty, FieldType::Ref(_) | FieldType::RefList(_)) {
                            refs.push((f, text));
                            continue;
                        }
                        match f.parse(kind.name, &text) {
                            Ok(v) => {
                                rec.fields.insert(f.name.into(), v);
                            }
                            Err(e) => refuse(&mut place, f.name, explain(&e, cell)),
                        }
                    }
                }
            }
            let unit = rec.text("unit").map(str::to_owned);
            let scope = unit
                .clone()
                .or_else(|| own_is_commune.then(|| b.unit.clone()));
            for (f, text) in refs {
                let resolved = match f.ty {
                    FieldType::Ref(_) => {
                        let coop = find(&coops, &text, scope.as_deref(), "HTX/THT", "cooperative");
                        coop.map(Value::Text)
                    }
                    _ => text
                        .split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|n| find(&people, n, scope.as_deref(), "người", "person"))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Value::List),
                };
                match resolved {
                    Ok(v) => {
                        rec.fields.insert(f.name.into(), v);
                    }
                    Err(r) => refuse(&mut place, f.name, r),
                }
            }
            // Every required column, not only the first one missing (a
            // row that changes a held record needs none).
            let changes_held = !rec.id.is_empty() && held.contains(rec.id.as_str());
            for f in kind.fields.iter().filter(|f| f.required && !changes_held) {
                if !rec.fields.contains_key(f.name) && !place.refused.iter().any(|r| r == f.name) {
                    let header = names::header(kind.name, f.name);
                    refuse(
                        &mut place,
                        f.name,
                        Refusal {
                            vi: format!("thiếu «{header}» (bắt buộc)"),
                            en: format!("{} is required", f.name),
                        },
                    );
                }
            }
            let file_row = (u64::from(sheet.index) << 32) | u64::from(row.number);
            if rec.id.is_empty() {
                rec.id = schema::import_id(&wb.hash, file_row);
            }
            // A row with the id of a held record changes it: its name
            // replaces the held one.
            let list = match kind.name {
                "cooperative" => Some(&mut coops),
                "manager" | "cadre" => Some(&mut people),
                _ => None,
            };
            if let Some(list) = list {
                list.put(named(&rec));
            }
            records.push((file_row, rec));
            places.push(place);
        }
    }

    // The node's checks, on every row at once, writing nothing.
    let checked = node.check(records.iter().map(|(_, r)| r.clone()).collect())?;
    for (i, e) in checked {
        let place = &places[i - 1];
        let field = field_of(&e);
        if field
            .as_deref()
            .is_some_and(|f| place.refused.iter().any(|r| r == f))
        {
            continue;
        }
        let (vi, en) = node_reason(&e);
        errors.push(CellError {
            sheet: place.sheet.clone(),
            row: place.row,
            column: field
                .and_then(|f| place.headers.get(&f).cloned())
                .unwrap_or_default(),
            reason_vi: vi,
            reason_en: en,
        });
    }
    let bad_rows: std::collections::HashSet<(&str, u32)> = errors
        .iter()
        .filter(|e| e.row > 0)
        .map(|e| (e.sheet.as_str(), e.row))
        .collect();
    let rows_ok = places
        .iter()
        .filter(|p| !bad_rows.contains(&(p.sheet.as_str(), p.row)))
        .count();
    errors.sort_by(|a, b| (&a.sheet, a.row).cmp(&(&b.sheet, b.row)));
    let count = wb
        .sheets
        .iter()
        .map(|s| s.index as usize + 1)
        .max()
        .unwrap_or(0);
    let mut sheet_names = vec![String::new(); count];
    for s in &wb.sheets {
        if let Some(n) = sheet_names.get_mut(s.index as usize) {
            *n = s.name.clone();
        }
    }
    Ok(Preview {
        rows_ok,
        errors,
        kinds,
        rows: records,
        sheet_names,
    })
}

/// Writes a preview's records, all or nothing, once it has no error;
/// returns how many. `officer` is who confirmed it (logged with the count).
pub fn commit(node: &Node, preview: Preview, officer: &str) -> Result<usize, SheetError> {
    if !preview.errors.is_empty() {
        return Err(SheetError::HasErrors(preview.errors.len()));
    }
    let n = node.import(preview.rows, Vec::new())?;
    tracing::info!("{officer} imported {n} records from a spreadsheet");
    Ok(n)
}

/// A unit cell: a GSO code ("13633", "13633 - Xã Yên Lợi") or a unit's
/// name ("Xã Yên Lợi", "Yên Lợi") among the units this node serves.
fn unit_of(
    version: &htx_core::units::UnitVersion,
    own: &str,
    text: &str,
) -> Result<String, Refusal> {
    let t = text.trim();
    let code: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !code.is_empty() {
        return match version.unit(&code) {
            None => Err(Refusal {
                vi: format!("mã đơn vị «{code}» không có trong danh mục đơn vị hành chính"),
                en: format!("unknown unit code {code:?}"),
            }),
            Some(u) if !version.within(&code, own) => Err(Refusal {
                vi: format!(
                    "{} ({code}) nằm ngoài phạm vi của nút ({own} và các đơn vị trực thuộc)",
                    u.name
                ),
                en: format!("unit {code} is outside the units this node serves ({own} and below)"),
            }),
            Some(_) => Ok(code),
        };
    }
    let f = fold(t);
    let strip = |n: &str| {
        let n = fold(n);
        for p in ["xa", "phuong", "thitran", "huyen", "thanhpho", "thixa"] {
            if let Some(rest) = n.strip_prefix(p) {
                return rest.to_owned();
            }
        }
        n
    };
    let found: Vec<_> = version
        .units()
        .filter(|u| version.within(&u.code, own))
        .filter(|u| fold(&u.name) == f || strip(&u.name) == f || strip(&u.name) == strip(t))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.code.clone()),
        [] => Err(Refusal {
            vi: format!(
                "không có đơn vị «{t}» trong phạm vi của nút; hãy ghi mã đơn vị (ví dụ 13633)"
            ),
            en: format!("no unit {t:?} among this node's units; give its code (e.g. 13633)"),
        }),
        many => {
            let list = many
                .iter()
                .map(|u| format!("{} ({})", u.name, u.code))
                .collect::<Vec<_>>()
                .join("; ");
            Err(Refusal {
                vi: format!("có nhiều đơn vị tên «{t}»: {list}; hãy ghi mã đơn vị"),
                en: format!("several units are named {t:?}: {list}; give the code"),
            })
        }
    }
}

/// The id of the record named `text` (a name, or an id), within `unit`
/// if known.
fn find(
    all: &Names,
    text: &str,
    unit: Option<&str>,
    what_vi: &str,
    what_en: &str,
) -> Result<String, Refusal> {
    let t = schema::normalize_text(text);
    if uuid::Uuid::parse_str(&t).is_ok() {
        return Ok(t);
    }
    let f = fold(&t);
    let found: Vec<&Named> = all
        .by_name
        .get(&f)
        .into_iter()
        .flatten()
        .filter(|n| unit.is_none_or(|u| n.unit == u))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(Refusal {
            vi: match unit {
                Some(u) => format!("không tìm thấy {what_vi} tên «{t}» ở đơn vị {u}"),
                None => format!("không tìm thấy {what_vi} tên «{t}»"),
            },
            en: match unit {
                Some(u) => format!("no {what_en} named {t:?} in unit {u}"),
                None => format!("no {what_en} named {t:?}"),
            },
        }),
        many => {
            let list = many
                .iter()
                .map(|n| format!("{} (đơn vị/unit {}, mã/id {})", n.name, n.unit, n.id))
                .collect::<Vec<_>>()
                .join("; ");
            Err(Refusal {
                vi: format!(
                    "có {} {what_vi} cùng tên «{t}»: {list}; hãy ghi cột đơn vị hoặc dùng mã bản ghi",
                    many.len()
                ),
                en: format!(
                    "{} {what_en}s are named {t:?}: {list}; fill in the unit column or use the id",
                    many.len()
                ),
            })
        }
    }
}

/// The field a node error is about, if one.
fn field_of(e: &FieldError) -> Option<String> {
    match e {
        FieldError::UnknownField { field, .. }
        | FieldError::Missing { field, .. }
        | FieldError::BadDate { field, .. }
        | FieldError::BadNumber { field, .. }
        | FieldError::Negative { field, .. }
        | FieldError::TooLarge { field, .. }
        | FieldError::BadBool { field, .. }
        | FieldError::BadChoice { field, .. }
        | FieldError::BadRef { field, .. }
        | FieldError::NotText { field, .. } => Some(field.clone()),
        FieldError::BadUnit(_) => Some("unit".into()),
        FieldError::BadId(_) => Some("id".into()),
        FieldError::UnknownKind(_) => None,
    }
}

/// A schema error on a cell, in Vietnamese and English, with the value as
/// the officer typed it.
fn explain(e: &FieldError, cell: &Cell) -> Refusal {
    let shown = cell.to_text();
    let en = english(e);
    let vi = match e {
        FieldError::BadNumber { .. } => format!("«{shown}» không phải là số nguyên"),
        FieldError::Negative { .. } => format!("«{shown}» là số âm; số lượng không được âm"),
        FieldError::TooLarge { max, .. } => {
            format!("«{shown}» vượt quá mức tối đa {}", names::group(*max))
        }
        FieldError::BadBool { .. } => format!("«{shown}» phải là Có hoặc Không"),
        FieldError::BadChoice { allowed, .. } => {
            let labels: Vec<&str> = allowed
                .split(", ")
                .map(|v| match names::choice_label(v) {
                    "" => v,
                    l => l,
                })
                .collect();
            format!("«{shown}» không phải là một trong: {}", labels.join("; "))
        }
        FieldError::BadDate { .. } => format!("«{shown}» không phải là ngày hợp lệ (dd/mm/yyyy)"),
        other => return node_reason(other).into(),
    };
    Refusal { vi, en }
}

impl From<(String, String)> for Refusal {
    fn from((vi, en): (String, String)) -> Self {
        Refusal { vi, en }
    }
}

/// The English half of a schema or node message ("English / Vietnamese").
fn english(e: &FieldError) -> String {
    let s = e.to_string();
    match s.rsplit_once(" / ") {
        Some((en, _)) => en.to_owned(),
        None => s,
    }
}

/// A node's refusal of a row, in Vietnamese and English.
fn node_reason(e: &FieldError) -> (String, String) {
    let s = e.to_string();
    let (en, vi_short) = match s.rsplit_once(" / ") {
        Some((en, vi)) => (en.to_owned(), vi.to_owned()),
        None => (s.clone(), s.clone()),
    };
    let vi = match e {
        FieldError::BadRef { value, .. } => {
            format!("không tìm thấy bản ghi được tham chiếu «{value}» trên nút này")
        }
        FieldError::BadUnit(_) => format!("đơn vị không hợp lệ: {vi_short}"),
        FieldError::BadId(id) => format!("mã bản ghi «{id}» không hợp lệ (phải là UUID)"),
        FieldError::Missing { field, .. } if field == "unit" => format!(
            "thiếu đơn vị: hãy ghi cột «{}» (hoặc tên HTX, THT để lấy đơn vị của HTX)",
            names::UNIT_HEADER
        ),
        FieldError::Missing { kind, field } => {
            format!("thiếu «{}» (bắt buộc)", names::header(kind, field))
        }
        _ => vi_short,
    };
    (vi, en)
}

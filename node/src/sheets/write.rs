//! # Templates and exports
//!
//! A template is an empty sheet of one kind with the Vietnamese headers a
//! preview reads, a note on each header saying what the column expects,
//! choice lists (from a hidden `Danh mục` sheet) on columns of choices and
//! yes/no, dates formatted dd/mm/yyyy, and the node's units as the unit
//! column's list. An export writes the same columns with the records'
//! values (choices as their Vietnamese labels, references as names), so an
//! exported file edited in Excel imports back onto the same records (its
//! `Mã bản ghi` column holds their ids).
//!
//! Text is always written as text: in `.xlsx` as string cells (never a
//! formula), in CSV with a leading `'` before `=`, `+`, `-` or `@` so that
//! Excel does not run it. CSV is UTF-8 with a byte-order mark, which Excel
//! needs to show Vietnamese correctly.

use std::collections::HashMap;

use htx_core::schema::{self, FieldType, KindSpec, Record, Value};
use htx_core::units::Hierarchy;
use rust_xlsxwriter::{DataValidation, ExcelDateTime, Format as XFormat, Formula, Note, Workbook};

use super::Holder;
use super::names::{self, Target};
use super::{SheetError, column_name};

/// An export's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Xlsx,
    Csv,
}

/// Rows a template's lists and formats cover.
const TEMPLATE_ROWS: u32 = 5000;
const LISTS_SHEET: &str = "Danh mục";

fn xerr(e: rust_xlsxwriter::XlsxError) -> SheetError {
    SheetError::Write(e.to_string())
}

/// The columns of a kind's sheet: id, unit, then every field.
fn columns(kind: &'static KindSpec) -> Vec<(Target, &'static str)> {
    let mut out = vec![
        (Target::Id, names::ID_HEADER),
        (Target::Unit, names::UNIT_HEADER),
    ];
    out.extend(
        kind.fields
            .iter()
            .map(|f| (Target::Field(f), names::header(kind.name, f.name))),
    );
    out
}

/// The node's units, as "code - name", for the unit column's list.
fn unit_choices(node: &dyn Holder) -> Vec<String> {
    let b = node.bundle();
    let Ok(v) = Hierarchy::current().version(&b.unit_version) else {
        return Vec::new();
    };
    v.units()
        .filter(|u| v.within(&u.code, &b.unit))
        .map(|u| format!("{} - {}", u.code, u.name))
        .collect()
}

/// An `.xlsx` template for `kind` (a schema name or its Vietnamese name).
pub fn template(node: &dyn Holder, kind: &str) -> Result<Vec<u8>, SheetError> {
    let kind = names::kind_of_sheet(kind).ok_or_else(|| SheetError::UnknownKind(kind.into()))?;
    let mut book = Workbook::new();
    let bold = XFormat::new()
        .set_bold()
        .set_text_wrap()
        .set_background_color("#DDEBF7");
    let date = XFormat::new().set_num_format("dd/mm/yyyy");
    let text = XFormat::new().set_num_format("@");
    let cols = columns(kind);
    // The lists behind the choices, on a hidden sheet: inline lists cannot
    // hold labels with commas ("Tuyên truyền, vận động").
    let mut lists: Vec<(u32, Vec<String>)> = Vec::new();
    for (i, (target, _)) in cols.iter().enumerate() {
        let items: Vec<String> = match target {
            Target::Unit => unit_choices(node),
            Target::Field(f) => match f.ty {
                FieldType::Enum(values) => values
                    .iter()
                    .map(|v| match names::choice_label(v) {
                        "" => (*v).to_owned(),
                        l => l.to_owned(),
                    })
                    .collect(),
                FieldType::Bool => vec!["Có".into(), "Không".into()],
                _ => continue,
            },
            Target::Id => continue,
        };
        if !items.is_empty() {
            lists.push((i as u32, items));
        }
    }
    {
        let ws = book.add_worksheet();
        ws.set_name(names::kind_names(kind.name).0).map_err(xerr)?;
        ws.set_row_height(0, 45).map_err(xerr)?;
        ws.set_freeze_panes(1, 0).map_err(xerr)?;
        for (i, (target, header)) in cols.iter().enumerate() {
            let col = i as u16;
            ws.write_string_with_format(0, col, *header, &bold)
                .map_err(xerr)?;
            ws.set_column_width(col, 22).map_err(xerr)?;
            let note = match target {
                Target::Id => "Không bắt buộc. Để trống khi thêm mới; khi sửa bản ghi đã có, giữ mã của nó (như trong tệp xuất dữ liệu). (id)".to_owned(),
                Target::Unit => "Mã đơn vị hành chính (ví dụ 13633) hoặc tên xã, phường, thị trấn. Có thể để trống nếu đã ghi tên HTX, THT (lấy theo đơn vị của HTX) hoặc khi nút là của một xã. (unit)".to_owned(),
                Target::Field(f) => names::expects(kind.name, f),
            };
            ws.insert_note(0, col, &Note::new(note).set_author("HTX Sync"))
                .map_err(xerr)?;
            if let Target::Field(f) = target {
                match f.ty {
                    FieldType::Date => {
                        ws.set_column_format(col, &date).map_err(xerr)?;
                    }
                    FieldType::Text | FieldType::Ref(_) | FieldType::RefList(_) => {
                        ws.set_column_format(col, &text).map_err(xerr)?;
                    }
                    _ => {}
                }
            }
        }
        for (list_col, (col, items)) in lists.iter().enumerate() {
            let range = format!(
                "='{LISTS_SHEET}'!${c}$1:${c}${n}",
                c = column_name(list_col as u32),
                n = items.len()
            );
            let dv = DataValidation::new()
                .allow_list_formula(Formula::new(range))
                .set_error_title("Giá trị không hợp lệ")
                .map_err(xerr)?
                .set_error_message("Hãy chọn một giá trị trong danh sách.")
                .map_err(xerr)?;
            ws.add_data_validation(1, *col as u16, TEMPLATE_ROWS, *col as u16, &dv)
                .map_err(xerr)?;
        }
    }
    if !lists.is_empty() {
        let ws = book.add_worksheet();
        ws.set_name(LISTS_SHEET).map_err(xerr)?;
        for (list_col, (_, items)) in lists.iter().enumerate() {
            for (r, item) in items.iter().enumerate() {
                ws.write_string(r as u32, list_col as u16, item)
                    .map_err(xerr)?;
            }
        }
        ws.set_hidden(true);
    }
    book.save_to_buffer().map_err(xerr)
}

/// One exported value as a person reads it, or a date.
enum Out {
    Text(String),
    Number(i64),
    Date(time::Date),
}

fn out_value(field: &schema::FieldSpec, v: &Value, names_by_id: &HashMap<&str, &str>) -> Out {
    match (field.ty, v) {
        (_, Value::Date(d)) => Out::Date(*d),
        (FieldType::Date, Value::Text(t)) => match schema::parse_date(t) {
            Some(d) => Out::Date(d),
            None => Out::Text(t.clone()),
        },
        (_, Value::Int(n)) => Out::Number(*n),
        (_, Value::Bool(b)) => Out::Text(if *b { "Có" } else { "Không" }.into()),
        (FieldType::Enum(_), Value::Text(t)) => Out::Text(match names::choice_label(t) {
            "" => t.clone(),
            l => l.to_owned(),
        }),
        (FieldType::Ref(_), Value::Text(id)) => Out::Text(
            names_by_id
                .get(id.as_str())
                .map_or(id.as_str(), |n| n)
                .to_owned(),
        ),
        (_, Value::List(ids)) => Out::Text(
            ids.iter()
                .map(|id| names_by_id.get(id.as_str()).map_or(id.as_str(), |n| n))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (_, Value::Text(t)) => Out::Text(t.clone()),
    }
}

/// The records of `kind` this node holds (deleted ones left out), those
/// of `unit` and below if given, as an `.xlsx` or CSV file.
pub fn export(
    node: &dyn Holder,
    kind: &str,
    unit: Option<&str>,
    format: Format,
) -> Result<Vec<u8>, SheetError> {
    let kind = names::kind_of_sheet(kind).ok_or_else(|| SheetError::UnknownKind(kind.into()))?;
    let all = node.records()?;
    let b = node.bundle();
    let version = Hierarchy::current()
        .version(&b.unit_version)
        .map_err(|e| crate::node::NodeError::Setup(e.to_string()))?;
    let names_by_id: HashMap<&str, &str> = all
        .iter()
        .filter_map(|r| r.text("name").map(|n| (r.id.as_str(), n)))
        .collect();
    let mut rows: Vec<&Record> = all
        .iter()
        .filter(|r| r.kind == kind.name)
        .filter(|r| match unit {
            Some(u) => r.text("unit").is_some_and(|ru| version.within(ru, u)),
            None => true,
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.text("unit"), a.text("name"), &a.id).cmp(&(b.text("unit"), b.text("name"), &b.id))
    });
    let cols = columns(kind);
    let cells = |r: &Record| -> Vec<Out> {
        cols.iter()
            .map(|(t, _)| match t {
                Target::Id => Out::Text(r.id.clone()),
                Target::Unit => Out::Text(r.text("unit").unwrap_or_default().to_owned()),
                Target::Field(f) => match r.fields.get(f.name) {
                    Some(v) => out_value(f, v, &names_by_id),
                    None => Out::Text(String::new()),
                },
            })
            .collect()
    };
    match format {
        Format::Csv => {
            let mut buf = "\u{feff}".as_bytes().to_vec();
            {
                let mut w = csv::Writer::from_writer(&mut buf);
                w.write_record(cols.iter().map(|(_, h)| *h))
                    .map_err(|e| SheetError::Write(e.to_string()))?;
                for r in rows {
                    let line: Vec<String> = cells(r)
                        .into_iter()
                        .map(|c| match c {
                            Out::Text(t) if t.starts_with(['=', '+', '-', '@']) => format!("'{t}"),
                            Out::Text(t) => t,
                            Out::Number(n) => n.to_string(),
                            Out::Date(d) => {
                                format!("{:02}/{:02}/{}", d.day(), u8::from(d.month()), d.year())
                            }
                        })
                        .collect();
                    w.write_record(&line)
                        .map_err(|e| SheetError::Write(e.to_string()))?;
                }
                w.flush().map_err(|e| SheetError::Write(e.to_string()))?;
            }
            Ok(buf)
        }
        Format::Xlsx => {
            let mut book = Workbook::new();
            let bold = XFormat::new().set_bold().set_background_color("#DDEBF7");
            let date = XFormat::new().set_num_format("dd/mm/yyyy");
            let ws = book.add_worksheet();
            ws.set_name(names::kind_names(kind.name).0).map_err(xerr)?;
            ws.set_freeze_panes(1, 0).map_err(xerr)?;
            for (i, (_, h)) in cols.iter().enumerate() {
                ws.write_string_with_format(0, i as u16, *h, &bold)
                    .map_err(xerr)?;
                ws.set_column_width(i as u16, 22).map_err(xerr)?;
            }
            for (r, rec) in rows.into_iter().enumerate() {
                let row = r as u32 + 1;
                for (c, cell) in cells(rec).into_iter().enumerate() {
                    let col = c as u16;
                    match cell {
                        Out::Text(t) if t.is_empty() => {}
                        // Always a string cell, never a formula.
                        Out::Text(t) => {
                            ws.write_string(row, col, &t).map_err(xerr)?;
                        }
                        Out::Number(n) => {
                            ws.write_number(row, col, n as f64).map_err(xerr)?;
                        }
                        Out::Date(d) => {
                            let dt = ExcelDateTime::from_ymd(
                                d.year() as u16,
                                u8::from(d.month()),
                                d.day(),
                            )
                            .map_err(xerr)?;
                            ws.write_datetime_with_format(row, col, &dt, &date)
                                .map_err(xerr)?;
                        }
                    }
                }
            }
            book.save_to_buffer().map_err(xerr)
        }
    }
}

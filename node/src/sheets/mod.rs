//! # Spreadsheets: import `.xlsx`/`.csv` with a preview, templates, exports
//!
//! Officers keep their lists in Excel, in Vietnamese. This module reads
//! such files, checks every row with the schema's and the node's own rules
//! (the same as the CLI, the local API and the hub: nothing is re-implemented
//! here), and writes nothing until the whole file is good and the caller
//! confirms. The web pages and the `htx-node import`/`template`/`export`
//! commands call it; the API is four calls:
//!
//! ```text
//! let wb = sheets::read(&bytes, "hop-tac-xa.xlsx")?;      // Workbook (no store access)
//! let p  = sheets::preview(&node, &wb)?;                   // Preview { rows_ok, errors, .. }
//! if p.errors.is_empty() { sheets::commit(&node, p, "officer")?; }   // all or nothing
//! let bytes = sheets::template(&node, "cooperative")?;     // .xlsx with notes and lists
//! let bytes = sheets::export(&node, "cooperative", None, Format::Xlsx)?;
//! ```
//!
//! **The file.** One sheet per kind of record, named in Vietnamese or
//! English (`Hợp tác xã`, `cooperative`; see [`names`]); a CSV file holds
//! one kind, named by its file name (`hop-tac-xa.csv`). The first row that
//! names a known column is the header; columns may come in any order and
//! be left out. References are by name where a person would type a name:
//! a cooperative by its name within its commune (an ambiguous name is
//! refused with the candidates), the people at a training by their names;
//! an id works too. Dates are dd/mm/yyyy, ISO or Excel dates; numbers
//! take Vietnamese grouping (1.350.000).
//!
//! **What is refused, and why.** Every refusal writes nothing.
//! - Files over [`MAX_FILE_BYTES`], unpacking to over
//!   [`MAX_UNPACKED_BYTES`], or with over [`MAX_ROWS`] rows: refused as
//!   soon as the size or the row count shows it, before the rest is read.
//! - Files that are not `.xlsx`/`.csv` (checked by content: a program
//!   renamed `.xlsx` is not a zip archive), and `.xls`.
//! - Cells with a formula: refused, not read for their cached value. The
//!   cached value is whatever the program that saved the file last
//!   computed (programs that write files without computing leave 0 or
//!   nothing), and a figure the plan's progress counts must be one the
//!   officer saw. Paste Special → Values fixes such a file in seconds.
//! - Merged cells at or below the header: which row a merged value is
//!   meant for is a guess.
//! - Hidden sheets named as a kind: the officer would import rows they
//!   cannot see. Other hidden sheets (the lists behind a template's
//!   choices) are ignored.
//! - Text, HTML and script included, is stored as text; pages escape it,
//!   and exports never write it as a formula (a CSV cell starting with
//!   `=`, `+`, `-` or `@` is written with a leading `'`).
//!
//! **Memory.** `.xlsx` sheets are streamed cell by cell (only the cells of
//! known columns are kept) and a file stops being read at the first row
//! over [`MAX_ROWS`]; what a preview holds is the records, as the CLI's
//! import always has.

pub mod names;
mod preview;
mod read;
pub mod values;
mod write;

use htx_core::schema::KindSpec;

pub use preview::{AsOfficer, Holder, Preview, commit, commit_as, place, preview, preview_with};
pub use read::{column_name, decode, delimiter, read};
pub use write::{Format, export, template};

/// The largest file read (an upload or a file on disk), in bytes.
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// The most an `.xlsx` file may unpack to, in bytes, as its parts declare.
pub const MAX_UNPACKED_BYTES: u64 = 256 << 20;
/// The most data rows a file may hold, all sheets together.
pub const MAX_ROWS: usize = 100_000;

/// Why a file cannot be read at all (as opposed to bad rows or cells,
/// which a [`Preview`] lists), in Vietnamese first, then English.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error(
        "tệp quá lớn ({} MiB); tối đa {} MiB: hãy chia nhỏ tệp / the file is too large ({} MiB); at most {} MiB: split it",
        .bytes >> 20, MAX_FILE_BYTES >> 20, .bytes >> 20, MAX_FILE_BYTES >> 20
    )]
    TooLarge { bytes: u64 },
    #[error(
        "tệp .xlsx giải nén ra {} MiB, vượt mức tối đa {} MiB: không đọc / the .xlsx file unpacks to {} MiB, over the {} MiB allowed: not read",
        .bytes >> 20, MAX_UNPACKED_BYTES >> 20, .bytes >> 20, MAX_UNPACKED_BYTES >> 20
    )]
    Unpacked { bytes: u64 },
    #[error(
        "tệp có hơn {MAX_ROWS} dòng dữ liệu: hãy chia thành nhiều tệp / the file holds more than {MAX_ROWS} data rows: split it"
    )]
    TooManyRows,
    #[error(
        "không phải tệp .xlsx hoặc .csv ({0}); hãy lưu tệp dạng Excel Workbook (.xlsx) hoặc CSV / not an .xlsx or .csv file ({0}); save it as an Excel Workbook (.xlsx) or CSV"
    )]
    WrongType(String),
    #[error("không đọc được tệp .xlsx: {0} / the .xlsx file cannot be read: {0}")]
    Unreadable(String),
    #[error("tệp không có trang tính nào có dữ liệu / the file holds no sheet with data")]
    NoSheet,
    #[error(
        "tệp còn {0} lỗi: không ghi gì; hãy sửa rồi nhập lại / the file has {0} error(s): nothing was written; fix them and import again"
    )]
    HasErrors(usize),
    #[error("loại bản ghi không tồn tại: {0:?} / unknown record kind {0:?}")]
    UnknownKind(String),
    #[error("không tạo được tệp Excel: {0} / cannot write the Excel file: {0}")]
    Write(String),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
}

/// One bad cell, row, column or sheet, as the officer sees it. `row` is
/// the row number the spreadsheet shows (the header is usually row 1); 0
/// for the whole sheet. `column` is the column's header (or a cell or
/// range such as `C7`, `A5:A7`); empty for a whole row or sheet.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CellError {
    pub sheet: String,
    pub row: u32,
    pub column: String,
    pub reason_vi: String,
    pub reason_en: String,
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.sheet)?;
        if self.row > 0 {
            write!(f, ", dòng/row {}", self.row)?;
        }
        if !self.column.is_empty() {
            write!(f, ", cột/column «{}»", self.column)?;
        }
        write!(f, ": {} / {}", self.reason_vi, self.reason_en)
    }
}

/// A cell as read, before it is given to its column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Date(time::Date),
    Bool(bool),
}

impl Cell {
    /// The cell as a person would read it.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(t) => t.clone(),
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Cell::Number(n) => n.to_string(),
            Cell::Date(d) => format!("{:02}/{:02}/{}", d.day(), u8::from(d.month()), d.year()),
            Cell::Bool(true) => "Có".into(),
            Cell::Bool(false) => "Không".into(),
        }
    }
}

/// A file, read: its sheets of known kinds, and what is wrong with the
/// file itself (formulas, merged cells, unknown columns or sheets).
#[derive(Debug)]
pub struct Workbook {
    hash: [u8; 32],
    pub sheets: Vec<Sheet>,
    problems: Vec<CellError>,
}

/// One sheet: a kind, its known columns, its non-empty rows.
#[derive(Debug)]
pub struct Sheet {
    pub name: String,
    pub kind: &'static KindSpec,
    /// Its place in the file, from 0 (row ids of the file count on it).
    index: u32,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

#[derive(Debug)]
pub struct Column {
    /// As written in the file.
    pub header: String,
    pub target: names::Target,
    /// Its position in the sheet, from 0.
    pos: u32,
}

#[derive(Debug)]
pub struct Row {
    /// As the spreadsheet shows it, from 1.
    pub number: u32,
    /// One per column of the sheet, in the same order.
    pub cells: Vec<Cell>,
}

//! # Reading a spreadsheet file into a [`Workbook`]
//!
//! `.xlsx` is read with calamine's streaming cell reader, one sheet at a
//! time, so memory holds the cells of the columns we know and no more; the
//! file's size, its unpacked size and its number of rows are bounded
//! ([`MAX_FILE_BYTES`], [`MAX_UNPACKED_BYTES`], [`MAX_ROWS`]) and a file
//! past a bound is refused as soon as that is known.
//!
//! `.csv` text is decoded as follows, and the first line that names a
//! known column is the header:
//! - a UTF-8 byte-order mark, or bytes that are valid UTF-8: UTF-8
//!   (Vietnamese Windows-1258 text with accents is practically never valid
//!   UTF-8: its accented letters are single bytes above 0x7F, which UTF-8
//!   allows only inside multi-byte sequences);
//! - a UTF-16 byte-order mark (Excel's "Unicode text"): UTF-16;
//! - anything else: Windows-1258, what Excel on a Vietnamese Windows saves
//!   as "CSV (Comma delimited)" (its tone marks are combining characters,
//!   made NFC when stored).
//!
//! The delimiter is the one of `,` `;` and tab that the header line holds
//! most of, outside quotes (Excel writes `;` where Windows' list separator
//! is `;`, as in Vietnamese regional settings).

use std::io::Cursor;

use calamine::{DataRef, Reader, SheetVisible, Xlsx};
use htx_core::schema::KindSpec;

use super::names;
use super::{
    Cell, CellError, Column, MAX_FILE_BYTES, MAX_ROWS, MAX_UNPACKED_BYTES, Row, Sheet, SheetError,
    Workbook,
};

/// Reads `bytes`, named `filename` (its extension says the format; its stem
/// names the kind of a CSV file, or of a workbook's only sheet when the
/// sheet's own name does not).
pub fn read(bytes: &[u8], filename: &str) -> Result<Workbook, SheetError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(SheetError::TooLarge {
            bytes: bytes.len() as u64,
        });
    }
    let lower = filename.to_lowercase();
    let stem = std::path::Path::new(filename)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let mut wb = Workbook {
        hash: htx_core::schema::file_hash(bytes),
        sheets: Vec::new(),
        problems: Vec::new(),
    };
    let mut total = 0usize;
    if lower.ends_with(".xlsx") {
        read_xlsx(bytes, stem, &mut wb, &mut total)?;
    } else if lower.ends_with(".csv") {
        read_csv(bytes, stem, &mut wb, &mut total)?;
    } else {
        return Err(SheetError::WrongType(filename.to_owned()));
    }
    if wb.sheets.is_empty() && wb.problems.is_empty() {
        return Err(SheetError::NoSheet);
    }
    Ok(wb)
}

/// Builds one sheet row by row: finds the header, maps columns, skips
/// empty rows, counts rows against [`MAX_ROWS`].
struct SheetBuilder<'a> {
    sheet: Sheet,
    header_row: Option<u32>,
    /// Columns with data but no header, reported once each.
    headless: Vec<u32>,
    total_rows: &'a mut usize,
    problems: &'a mut Vec<CellError>,
}

impl<'a> SheetBuilder<'a> {
    fn new(
        name: &str,
        kind: &'static KindSpec,
        index: u32,
        total_rows: &'a mut usize,
        problems: &'a mut Vec<CellError>,
    ) -> Self {
        SheetBuilder {
            sheet: Sheet {
                name: name.to_owned(),
                kind,
                index,
                columns: Vec::new(),
                rows: Vec::new(),
            },
            header_row: None,
            headless: Vec::new(),
            total_rows,
            problems,
        }
    }

    fn problem(&mut self, row: u32, column: &str, vi: String, en: String) {
        self.problems.push(CellError {
            sheet: self.sheet.name.clone(),
            row,
            column: column.to_owned(),
            reason_vi: vi,
            reason_en: en,
        });
    }

    /// One whole row: `number` from 1, cells as (column from 0, cell).
    fn row(&mut self, number: u32, cells: Vec<(u32, Cell)>) -> Result<(), SheetError> {
        if self.header_row.is_none() {
            return {
                self.header(number, cells);
                Ok(())
            };
        }
        let mut row = Row {
            number,
            cells: vec![Cell::Empty; self.sheet.columns.len()],
        };
        let mut any = false;
        for (col, cell) in cells {
            if cell == Cell::Empty {
                continue;
            }
            match self.sheet.columns.iter().position(|c| c.pos == col) {
                Some(i) => {
                    row.cells[i] = cell;
                    any = true;
                }
                None if !self.headless.contains(&col) => {
                    self.headless.push(col);
                    let name = column_name(col);
                    self.problem(
                        number,
                        &name,
                        format!("cột {name} có dữ liệu nhưng không có tên cột ở dòng tiêu đề"),
                        format!("column {name} holds data but has no header"),
                    );
                }
                None => {}
            }
        }
        if any {
            *self.total_rows += 1;
            if *self.total_rows > MAX_ROWS {
                return Err(SheetError::TooManyRows);
            }
            self.sheet.rows.push(row);
        }
        Ok(())
    }

    /// A row before the header: the header if it names a known column.
    fn header(&mut self, number: u32, cells: Vec<(u32, Cell)>) {
        let kind = self.sheet.kind;
        let texts: Vec<(u32, String)> = cells
            .into_iter()
            .filter(|(_, c)| *c != Cell::Empty)
            .map(|(col, c)| (col, c.to_text()))
            .collect();
        if !texts.iter().any(|(_, t)| names::target(kind, t).is_some()) {
            return;
        }
        self.header_row = Some(number);
        for (col, text) in texts {
            let name = column_name(col);
            match names::target(kind, &text) {
                Some(target) if self.sheet.columns.iter().any(|c| c.target == target) => self
                    .problem(
                        number,
                        &text,
                        format!("cột {name} «{text}» trùng với một cột đã có"),
                        format!("column {name} {text:?} repeats another column"),
                    ),
                Some(target) => self.sheet.columns.push(Column {
                    header: text,
                    target,
                    pos: col,
                }),
                None => self.problem(
                    number,
                    &text,
                    format!(
                        "cột {name} «{text}» không phải là cột của {}; các cột: {}",
                        names::kind_names(kind.name).0,
                        known_headers(kind)
                    ),
                    format!(
                        "column {name} {text:?} is not a column of {}; columns: {}",
                        kind.name,
                        kind.fields
                            .iter()
                            .map(|f| f.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
    }

    fn finish(mut self) -> Sheet {
        if self.header_row.is_none() {
            let vi = format!(
                "không tìm thấy dòng tiêu đề; các cột của {}: {}",
                names::kind_names(self.sheet.kind.name).0,
                known_headers(self.sheet.kind)
            );
            self.problem(
                0,
                "",
                vi,
                "no header line naming the columns was found".into(),
            );
        }
        self.sheet
    }
}

fn known_headers(kind: &KindSpec) -> String {
    let mut all = vec![names::ID_HEADER, names::UNIT_HEADER];
    all.extend(kind.fields.iter().map(|f| names::header(kind.name, f.name)));
    all.join("; ")
}

/// A column's letters as Excel shows them (0 → A, 26 → AA).
pub fn column_name(mut col: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

/// A sheet's kind: its name, or else the file's stem for the only sheet.
fn sheet_kind(name: &str, stem: &str, only: bool) -> Option<&'static KindSpec> {
    names::kind_of_sheet(name).or_else(|| {
        if only {
            names::kind_of_sheet(stem)
        } else {
            None
        }
    })
}

fn unknown_sheet(wb: &mut Workbook, name: &str) {
    let known: Vec<&str> = htx_core::schema::KINDS
        .iter()
        .map(|k| names::kind_names(k.name).0)
        .collect();
    wb.problems.push(CellError {
        sheet: name.to_owned(),
        row: 0,
        column: String::new(),
        reason_vi: format!(
            "trang tính «{name}» có dữ liệu nhưng tên không phải loại bản ghi nào; hãy đặt tên là một trong: {}",
            known.join("; ")
        ),
        reason_en: format!(
            "sheet {name:?} holds data but its name is no record kind; name it one of: {}",
            htx_core::schema::KINDS
                .iter()
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
}

/// Refuses a file that is not a zip archive, or one whose parts unpack to
/// more than [`MAX_UNPACKED_BYTES`] (a "zip bomb"), before calamine
/// unpacks anything. The sizes are those the archive declares; a part that
/// unpacks past its declared size fails its checksum in the zip reader.
fn check_archive(bytes: &[u8]) -> Result<(), SheetError> {
    if !bytes.starts_with(b"PK\x03\x04") {
        let what = if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
            "an Excel 97-2003 (.xls) file"
        } else if bytes.starts_with(b"MZ") {
            "a Windows program"
        } else {
            "not an .xlsx file"
        };
        return Err(SheetError::WrongType(what.into()));
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| SheetError::Unreadable(e.to_string()))?;
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| SheetError::Unreadable(e.to_string()))?;
        total = total.saturating_add(f.size());
    }
    if total > MAX_UNPACKED_BYTES {
        return Err(SheetError::Unpacked { bytes: total });
    }
    Ok(())
}

fn read_xlsx(
    bytes: &[u8],
    stem: &str,
    wb: &mut Workbook,
    total: &mut usize,
) -> Result<(), SheetError> {
    check_archive(bytes)?;
    let mut book: Xlsx<_> =
        Xlsx::new(Cursor::new(bytes)).map_err(|e| SheetError::Unreadable(e.to_string()))?;
    let metas = book.sheets_metadata().to_vec();
    let visible: Vec<_> = metas
        .iter()
        .filter(|m| m.visible == SheetVisible::Visible)
        .collect();
    let only = visible.len() == 1;
    for (index, meta) in metas.iter().enumerate() {
        let kind = sheet_kind(&meta.name, stem, only);
        if meta.visible != SheetVisible::Visible {
            // A hidden sheet is never imported: the officer would not see
            // what goes in. One named as a kind is refused (unhide or
            // delete it); others (lists behind a template's choices) are
            // left alone.
            if let Some(k) = names::kind_of_sheet(&meta.name) {
                wb.problems.push(CellError {
                    sheet: meta.name.clone(),
                    row: 0,
                    column: String::new(),
                    reason_vi: format!(
                        "trang tính «{}» ({}) đang bị ẩn: hãy bỏ ẩn để kiểm tra dữ liệu, hoặc xóa trang này",
                        meta.name,
                        names::kind_names(k.name).0
                    ),
                    reason_en: format!(
                        "sheet {:?} ({}) is hidden: unhide it to check what it holds, or delete it",
                        meta.name, k.name
                    ),
                });
            }
            continue;
        }
        let merged = book
            .merge_cells_by_sheet_name(&meta.name)
            .map_err(|e| SheetError::Unreadable(e.to_string()))?;
        let mut problems = Vec::new();
        let sheet = {
            let mut reader = book
                .worksheet_cells_reader(&meta.name)
                .map_err(|e| SheetError::Unreadable(e.to_string()))?;
            let Some(kind) = kind else {
                // Not a kind: refused only if it holds something.
                let mut any = false;
                while let Some(c) = reader
                    .next_cell()
                    .map_err(|e| SheetError::Unreadable(e.to_string()))?
                {
                    if !matches!(c.get_value(), DataRef::Empty) {
                        any = true;
                        break;
                    }
                }
                drop(reader);
                if any {
                    unknown_sheet(wb, &meta.name);
                }
                continue;
            };
            let mut b = SheetBuilder::new(&meta.name, kind, index as u32, total, &mut problems);
            let mut row_no = u32::MAX;
            let mut cells: Vec<(u32, Cell)> = Vec::new();
            while let Some(c) = reader
                .next_cell_with_formula()
                .map_err(|e| SheetError::Unreadable(e.to_string()))?
            {
                let (r, col) = c.pos;
                if r != row_no {
                    if row_no != u32::MAX {
                        b.row(row_no + 1, std::mem::take(&mut cells))?;
                    }
                    row_no = r;
                }
                if c.formula.as_ref().is_some_and(|f| !f.is_empty()) {
                    let name = format!("{}{}", column_name(col), r + 1);
                    b.problem(
                        r + 1,
                        &name,
                        format!(
                            "ô {name} chứa công thức: hãy sao chép và dán đặc biệt dạng giá trị (Paste Special → Values) rồi nhập lại"
                        ),
                        format!(
                            "cell {name} holds a formula: copy it and paste as values (Paste Special → Values), then import again"
                        ),
                    );
                    continue;
                }
                match cell_of(&c.value) {
                    Ok(cell) => cells.push((col, cell)),
                    Err(why) => {
                        let name = format!("{}{}", column_name(col), r + 1);
                        b.problem(
                            r + 1,
                            &name,
                            format!("ô {name} chứa lỗi Excel {why}"),
                            format!("cell {name} holds the Excel error {why}"),
                        );
                    }
                }
            }
            if row_no != u32::MAX {
                b.row(row_no + 1, cells)?;
            }
            let header = b.header_row;
            let sheet = b.finish();
            // Merged cells where rows are read: a merged value belongs to
            // several cells, and which row it is meant for is a guess.
            if let Some(h) = header {
                for d in merged.iter().filter(|d| d.end.0 + 1 >= h) {
                    let range = format!(
                        "{}{}:{}{}",
                        column_name(d.start.1),
                        d.start.0 + 1,
                        column_name(d.end.1),
                        d.end.0 + 1
                    );
                    problems.push(CellError {
                        sheet: meta.name.clone(),
                        row: d.start.0 + 1,
                        column: range.clone(),
                        reason_vi: format!(
                            "các ô {range} đang được gộp (Merge): hãy bỏ gộp và ghi giá trị vào từng dòng"
                        ),
                        reason_en: format!(
                            "cells {range} are merged: unmerge them and write the value on each row"
                        ),
                    });
                }
            }
            sheet
        };
        wb.problems.extend(problems);
        wb.sheets.push(sheet);
    }
    Ok(())
}

/// A cell's value as we keep it; `Err` for an Excel error value.
fn cell_of(v: &DataRef<'_>) -> Result<Cell, String> {
    Ok(match v {
        DataRef::Empty => Cell::Empty,
        DataRef::String(s) => text_cell(s),
        DataRef::SharedString(s) => text_cell(s),
        DataRef::Float(f) => Cell::Number(*f),
        DataRef::Int(i) => Cell::Number(*i as f64),
        DataRef::Bool(b) => Cell::Bool(*b),
        DataRef::DateTime(d) => match super::values::excel_serial_date(d.as_f64()) {
            Some(date) => Cell::Date(date),
            None => Cell::Number(d.as_f64()),
        },
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => text_cell(s),
        DataRef::Error(e) => return Err(e.to_string()),
    })
}

fn text_cell(s: &str) -> Cell {
    if s.trim().is_empty() {
        Cell::Empty
    } else {
        Cell::Text(s.to_owned())
    }
}

/// Decodes a CSV file's bytes (see the module's doc); the name of the
/// encoding found is returned with the text.
pub fn decode(bytes: &[u8]) -> (String, &'static str) {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom..]);
        return (text.into_owned(), enc.name());
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), "UTF-8"),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1258.decode(bytes);
            (text.into_owned(), "windows-1258")
        }
    }
}

/// The delimiter the first line holds most of, outside quotes.
pub fn delimiter(text: &str) -> u8 {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let (mut quoted, mut counts) = (false, [0usize; 3]);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => counts[0] += 1,
            ';' if !quoted => counts[1] += 1,
            '\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    [b',', b';', b'\t'][best]
}

fn read_csv(
    bytes: &[u8],
    stem: &str,
    wb: &mut Workbook,
    total: &mut usize,
) -> Result<(), SheetError> {
    let (text, _) = decode(bytes);
    if text.contains('\0') {
        return Err(SheetError::WrongType("binary data, not CSV text".into()));
    }
    let Some(kind) = names::kind_of_sheet(stem) else {
        unknown_sheet(wb, stem);
        return Ok(());
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter(&text))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut problems = Vec::new();
    let mut b = SheetBuilder::new(stem, kind, 0, total, &mut problems);
    let mut fields = csv::StringRecord::new();
    let mut number = 0u32;
    loop {
        match rdr.read_record(&mut fields) {
            Ok(false) => break,
            Ok(true) => {
                number += 1;
                let cells = fields
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as u32, csv_cell(v)))
                    .collect();
                b.row(number, cells)?;
            }
            Err(e) => {
                number += 1;
                b.problem(
                    number,
                    "",
                    format!("dòng {number} không đọc được: {e}"),
                    format!("row {number} cannot be read: {e}"),
                );
            }
        }
    }
    let sheet = b.finish();
    wb.problems.extend(problems);
    wb.sheets.push(sheet);
    Ok(())
}

/// A CSV cell; a leading `'` before `=`, `+`, `-` or `@` (how exports keep
/// such text from being run as a formula) is dropped.
fn csv_cell(v: &str) -> Cell {
    match v.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => text_cell(rest),
        _ => text_cell(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_excels() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(27), "AB");
        assert_eq!(column_name(701), "ZZ");
        assert_eq!(column_name(702), "AAA");
    }

    #[test]
    fn encodings_and_delimiters_are_found() {
        let (t, e) = decode("\u{feff}Tên;Ngày\n".as_bytes());
        assert_eq!((t.as_str(), e), ("Tên;Ngày\n", "UTF-8"));
        assert_eq!(delimiter(&t), b';');
        let (t, e) = decode("Tên,Ngày\n".as_bytes());
        assert_eq!((t.as_str(), e), ("Tên,Ngày\n", "UTF-8"));
        assert_eq!(delimiter(&t), b',');
        // "Tên" in Windows-1258: T, e with circumflex (0xEA), n.
        let (t, e) = decode(b"T\xEAn\n");
        assert_eq!((t.as_str(), e), ("Tên\n", "windows-1258"));
        assert_eq!(delimiter("\"a;b\",c,d"), b',');
    }
}

//! # A page's table, also as a file
//!
//! Every table the dashboard shows is first a [`Table`]: the page renders
//! it, and the same value is what `.csv` and `.xlsx` downloads and the
//! report's sheets are written from, so a download can never disagree with
//! the page. Numbers stay numbers in the workbook (a spreadsheet can add
//! them up); CSV is UTF-8 with a byte-order mark, which Excel needs to read
//! Vietnamese text correctly.

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

/// One cell: text, a whole number, or a number with decimals.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Cell {
    Text(String),
    Int(i64),
    Num(f64),
    Empty,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }
    pub fn opt(v: Option<f64>) -> Cell {
        v.map(|x| Cell::Num((x * 100.0).round() / 100.0))
            .unwrap_or(Cell::Empty)
    }
    fn csv(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Num(x) => format!("{x}"),
            Cell::Empty => String::new(),
        }
    }
}

/// A titled table: column headers and rows of cells.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Table {
    /// Also the sheet's name in a workbook (cut to Excel's 31 characters).
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Table {
        Table {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn to_csv(&self) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
        w.write_record(&self.headers).expect("writes to memory");
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::csv))
                .expect("writes to memory");
        }
        w.into_inner().expect("flushes to memory")
    }

    /// Writes the table on `ws` from row `first`: a bold header, then the
    /// rows. Returns the next free row.
    pub fn write(&self, ws: &mut Worksheet, first: u32) -> Result<u32, XlsxError> {
        let bold = Format::new().set_bold().set_background_color("#EEF1F4");
        for (c, h) in self.headers.iter().enumerate() {
            ws.write_string_with_format(first, c as u16, h, &bold)?;
            ws.set_column_width(c as u16, if c == 1 { 40 } else { 16 })?;
        }
        let mut r = first + 1;
        for row in &self.rows {
            for (c, cell) in row.iter().enumerate() {
                let c = c as u16;
                match cell {
                    Cell::Text(s) => {
                        ws.write_string(r, c, s)?;
                    }
                    Cell::Int(n) => {
                        ws.write_number(r, c, *n as f64)?;
                    }
                    Cell::Num(x) => {
                        ws.write_number(r, c, *x)?;
                    }
                    Cell::Empty => {}
                }
            }
            r += 1;
        }
        Ok(r)
    }

    pub fn to_xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name(sheet_name(&self.title))?;
        self.write(ws, 0)?;
        wb.save_to_buffer()
    }
}

/// A valid sheet name: at most 31 characters, none of `[]:*?/\`.
pub fn sheet_name(title: &str) -> String {
    let clean: String = title
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '-' } else { c })
        .take(31)
        .collect();
    if clean.trim().is_empty() {
        "Sheet".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_keeps_vietnamese_and_numbers() {
        let mut t = Table::new("Chỉ tiêu", &["mã", "tên", "giá trị"]);
        t.rows.push(vec![
            Cell::text("NEW_HTX"),
            Cell::text("HTX thành lập mới"),
            Cell::Int(12),
        ]);
        let csv = String::from_utf8(t.to_csv()).unwrap();
        assert!(csv.starts_with('\u{feff}'));
        assert!(csv.contains("NEW_HTX,HTX thành lập mới,12"));
        assert!(t.to_xlsx().unwrap().starts_with(b"PK"), "a zip file");
        assert_eq!(sheet_name("a/b: c"), "a-b- c");
    }
}

//! # A cell's value as the schema reads it
//!
//! Officers type dates as dd/mm/yyyy and numbers with Vietnamese grouping
//! (1.350.000); Excel gives dates as date cells or serial numbers. Each
//! cell is turned here into the text the schema's own parser takes
//! ([`htx_core::schema::FieldSpec::parse`]: `YYYY-MM-DD`, `1350000`, the
//! English choice), so every rule (types, bounds, choices, required
//! fields) stays in one place, shared with the CLI and the hub. Only what
//! cannot be a value of its column at all is refused here, with a reason
//! in Vietnamese and English.

use htx_core::schema::{FieldSpec, FieldType};
use time::{Date, Duration, Month};

use super::Cell;
use super::names;

/// Excel's day 0 in the 1900 date system (serial 60, 29/02/1900, never
/// existed; serials from 61 on count from here).
fn excel_epoch() -> Date {
    Date::from_calendar_date(1899, Month::December, 30).expect("a date")
}

/// The date of an Excel serial number (1900 date system), if it is a
/// plausible one (years 1900 to 9999, whole days).
pub fn excel_serial_date(serial: f64) -> Option<Date> {
    if !(61.0..2_958_466.0).contains(&serial) {
        return None;
    }
    excel_epoch().checked_add(Duration::days(serial.floor() as i64))
}

/// dd/mm/yyyy (also d/m/yyyy, with `-` or `.`), or yyyy-mm-dd.
pub fn parse_date(text: &str) -> Option<Date> {
    let t = text.trim();
    if let Some(d) = htx_core::schema::parse_date(t) {
        return Some(d);
    }
    let parts: Vec<&str> = t.split(['/', '-', '.']).map(str::trim).collect();
    let [d, m, y] = parts.as_slice() else {
        return None;
    };
    if y.len() != 4 || d.is_empty() || d.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// A whole number as typed: digits grouped by `.` or spaces in threes
/// (1.350.000, 1 350 000), a sign, and for money an `đ`/`đồng`/`VNĐ`
/// suffix. `None` if it is not one (the schema then says why).
pub fn parse_whole(text: &str) -> Option<i64> {
    let mut t = text.trim().to_owned();
    for suffix in ["VNĐ", "vnđ", "đồng", "đ", "VND"] {
        if let Some(rest) = t.strip_suffix(suffix) {
            t = rest.trim().to_owned();
        }
    }
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest.to_owned()),
        None => (1, t),
    };
    let groups: Vec<&str> = digits.split(['.', ' ', '\u{a0}', '\u{202f}']).collect();
    let grouped = groups.len() > 1
        && !groups[0].is_empty()
        && groups[0].len() <= 3
        && groups[1..].iter().all(|g| g.len() == 3);
    if groups.len() > 1 && !grouped {
        return None;
    }
    let joined: String = groups.concat();
    if joined.is_empty() || !joined.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    joined.parse::<i64>().ok().map(|n| sign * n)
}

/// A reason a cell cannot be a value of its column, in Vietnamese and English.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub vi: String,
    pub en: String,
}

/// The text the schema parses for `cell` in a column of `field`.
pub fn canonical(field: &FieldSpec, cell: &Cell) -> Result<String, Refusal> {
    let shown = cell.to_text();
    match (field.ty, cell) {
        (_, Cell::Empty) => Ok(String::new()),
        (FieldType::Date, Cell::Date(d)) => Ok(htx_core::schema::format_date(*d)),
        (FieldType::Date, Cell::Number(n)) => excel_serial_date(*n)
            .map(htx_core::schema::format_date)
            .ok_or_else(|| Refusal {
                vi: format!("«{shown}» không phải là ngày (dạng dd/mm/yyyy)"),
                en: format!("{shown:?} is not a date (dd/mm/yyyy)"),
            }),
        (FieldType::Date, _) => parse_date(&shown)
            .map(htx_core::schema::format_date)
            .ok_or_else(|| Refusal {
                vi: format!(
                    "«{shown}» không phải là ngày hợp lệ dạng dd/mm/yyyy (ví dụ 15/01/2024)"
                ),
                en: format!(
                    "{shown:?} is not a valid date of the form dd/mm/yyyy (e.g. 15/01/2024)"
                ),
            }),
        (FieldType::Count | FieldType::Amount, Cell::Number(n)) => {
            if n.fract() != 0.0 || !n.is_finite() {
                Err(Refusal {
                    vi: format!("«{shown}» không phải là số nguyên"),
                    en: format!("{shown:?} is not a whole number"),
                })
            } else {
                Ok(format!("{}", *n as i64))
            }
        }
        (FieldType::Count | FieldType::Amount, _) => {
            Ok(parse_whole(&shown).map(|n| n.to_string()).unwrap_or(shown))
        }
        (FieldType::Bool, Cell::Bool(b)) => Ok(b.to_string()),
        (FieldType::Bool, _) => Ok(names::yes_no(&shown)
            .map(|b| b.to_string())
            .unwrap_or(shown)),
        (FieldType::Enum(allowed), _) => Ok(names::choice(allowed, &shown)),
        (FieldType::Text | FieldType::Ref(_) | FieldType::RefList(_), _) => Ok(shown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_officers_type_them() {
        let d = |y, m, day| Date::from_calendar_date(y, Month::try_from(m).unwrap(), day).unwrap();
        assert_eq!(parse_date("15/01/2024"), Some(d(2024, 1, 15)));
        assert_eq!(parse_date("5/1/2024"), Some(d(2024, 1, 5)));
        assert_eq!(parse_date("2024-01-15"), Some(d(2024, 1, 15)));
        assert_eq!(parse_date("31/02/2024"), None);
        assert_eq!(parse_date("01/15/2024"), None, "no month 15");
        assert_eq!(parse_date("15/01/24"), None, "two-digit years are refused");
        // Excel serials: 45306 is 15/01/2024; 1 is before any plausible date.
        assert_eq!(excel_serial_date(45306.0), Some(d(2024, 1, 15)));
        assert_eq!(excel_serial_date(45306.75), Some(d(2024, 1, 15)));
        assert_eq!(excel_serial_date(1.0), None);
    }

    #[test]
    fn numbers_with_vietnamese_grouping() {
        assert_eq!(parse_whole("1.350.000"), Some(1_350_000));
        assert_eq!(parse_whole("1 350 000 đ"), Some(1_350_000));
        assert_eq!(parse_whole("12"), Some(12));
        assert_eq!(parse_whole("-3"), Some(-3));
        assert_eq!(parse_whole("12,5"), None);
        assert_eq!(parse_whole("1.35"), None, "a decimal, not grouping");
        assert_eq!(parse_whole("1.3500"), None);
        assert_eq!(parse_whole("abc"), None);
    }
}

//! # Numbers, dates and ages the Vietnamese way
//!
//! Thousands with a dot and decimals with a comma (1.350.000; 57,1%), dates
//! dd/mm/yyyy, ages in words ("5 phút trước"). English pages get commas and
//! points. Dates typed by officers are read as dd/mm/yyyy (also d/m/yyyy and
//! yyyy-mm-dd, as exports write them).

use time::{Date, Month, OffsetDateTime};

use crate::i18n::{Lang, Tr};

/// A whole number with thousands separators: 1.350.000 (vi), 1,350,000 (en).
pub fn count(lang: Lang, n: i64) -> String {
    let sep = if lang == Lang::Vi { '.' } else { ',' };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A number with one decimal: 57,1 (vi), 57.1 (en); whole numbers without.
pub fn decimal(lang: Lang, x: f64) -> String {
    let rounded = (x * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 && rounded.abs() < 1e15 {
        return count(lang, rounded as i64);
    }
    let whole = count(lang, rounded.trunc() as i64);
    let tenth = ((rounded.fract().abs()) * 10.0).round() as i64;
    let point = if lang == Lang::Vi { ',' } else { '.' };
    format!("{whole}{point}{tenth}")
}

/// A date as dd/mm/yyyy.
pub fn date(d: Date) -> String {
    format!("{:02}/{:02}/{}", d.day(), u8::from(d.month()), d.year())
}

/// The date part of an RFC 3339 or yyyy-mm-dd text as dd/mm/yyyy; the text
/// unchanged if it is neither.
pub fn date_text(s: &str) -> String {
    let day = s.get(..10).unwrap_or(s);
    parse_date(day).map(date).unwrap_or_else(|| s.to_owned())
}

/// Reads a date typed by an officer: dd/mm/yyyy, d/m/yyyy, dd-mm-yyyy,
/// dd.mm.yyyy, or yyyy-mm-dd.
pub fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    let parts: Vec<&str> = s.split(['/', '-', '.']).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let num = |t: &str| t.parse::<i32>().ok();
    let (day, month, year) = if a.len() == 4 {
        (num(c)?, num(b)?, num(a)?)
    } else if c.len() == 4 {
        (num(a)?, num(b)?, num(c)?)
    } else {
        return None;
    };
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()
}

/// How long ago an RFC 3339 time was, in words: "5 phút trước".
pub fn age(tr: &Tr, rfc3339: &str, now: OffsetDateTime) -> Option<String> {
    let then =
        OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = (now - then).whole_seconds().max(0);
    let (key, n) = match secs {
        0..60 => ("age-seconds", secs),
        60..3600 => ("age-minutes", secs / 60),
        3600..86400 => ("age-hours", secs / 3600),
        _ => ("age-days", secs / 86400),
    };
    Some(tr.t1(key, "n", count(tr.lang, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_numbers_and_dates() {
        assert_eq!(count(Lang::Vi, 1_350_000), "1.350.000");
        assert_eq!(count(Lang::En, 1_350_000), "1,350,000");
        assert_eq!(count(Lang::Vi, 999), "999");
        assert_eq!(decimal(Lang::Vi, 57.14), "57,1");
        assert_eq!(decimal(Lang::En, 57.14), "57.1");
        assert_eq!(decimal(Lang::Vi, 100.0), "100");
        let d = parse_date("05/03/2024").unwrap();
        assert_eq!(date(d), "05/03/2024");
        assert_eq!(parse_date("5/3/2024"), Some(d));
        assert_eq!(parse_date("2024-03-05"), Some(d));
        assert_eq!(parse_date("31/02/2024"), None);
        assert_eq!(parse_date("hôm qua"), None);
        assert_eq!(date_text("2024-03-05T10:00:00Z"), "05/03/2024");
    }
}

//! # The words of a spreadsheet: sheet names, column headers, choices
//!
//! Officers name sheets, columns and choices in Vietnamese, typed by hand
//! on office PCs: with or without diacritics, in any case, with extra
//! spaces. Every name is compared through [`fold`], which keeps only
//! lowercase ASCII letters and digits (đ becomes d, marks are dropped), so
//! "Ngày thành lập", "ngay thanh lap" and "NGÀY  THÀNH LẬP" are one header.
//! The English names of the schema (`founded_on`, `HTX`, `female`) are
//! always accepted too. The Vietnamese words are the plan's own
//! (docs/vi-terms: `hợp tác xã`, `tổ hợp tác`, `nữ quản lý`, `cán bộ Hội`…).

use htx_core::schema::{FieldSpec, FieldType, KindSpec};
use unicode_normalization::UnicodeNormalization;

/// A name reduced for comparison: NFD, marks dropped, `đ` → `d`, lowercase,
/// only ASCII letters and digits kept.
pub fn fold(s: &str) -> String {
    s.nfd()
        .filter_map(|c| match c {
            'đ' | 'Đ' => Some('d'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// A kind's sheet name in Vietnamese, and other names accepted for it.
pub fn kind_names(kind: &str) -> (&'static str, &'static [&'static str]) {
    match kind {
        "cooperative" => ("Hợp tác xã", &["HTX", "HTX, THT", "Hợp tác xã, tổ hợp tác"]),
        "observation" => ("Số liệu HTX", &["Số liệu", "Lao động"]),
        "manager" => ("Người quản lý", &["Quản lý", "Nữ quản lý"]),
        "cadre" => ("Cán bộ Hội", &["Cán bộ"]),
        "training" => ("Tập huấn", &["Bồi dưỡng, tập huấn", "Đào tạo"]),
        "activity" => ("Hoạt động", &[]),
        "milestone" => ("Mốc", &["Sự kiện"]),
        _ => ("", &[]),
    }
}

/// The kind a sheet (or CSV file stem) name stands for, if any.
pub fn kind_of_sheet(name: &str) -> Option<&'static KindSpec> {
    let f = fold(name);
    htx_core::schema::KINDS.iter().find(|k| {
        let (vi, others) = kind_names(k.name);
        f == fold(k.name) || f == fold(vi) || others.iter().any(|o| f == fold(o))
    })
}

/// The column of the record's id (optional: rows without one get an id
/// from the file, so the same file imported twice adds nothing twice).
pub const ID_HEADER: &str = "Mã bản ghi";
/// The column of the record's unit: a GSO code or a commune's name.
pub const UNIT_HEADER: &str = "Đơn vị (mã hoặc tên xã)";

/// A field's Vietnamese column header (never with a comma or semicolon:
/// officers type headers into CSV files too).
pub fn header(kind: &str, field: &str) -> &'static str {
    match (kind, field) {
        ("cooperative", "type") => "Loại hình (HTX/THT)",
        ("cooperative", "name") => "Tên HTX/THT",
        ("cooperative", "sector") => "Lĩnh vực hoạt động",
        ("cooperative", "founded_on") => "Ngày thành lập",
        ("cooperative", "union_supported") => "Được các cấp Hội hỗ trợ thành lập",
        ("cooperative", "under_plan") => "Thuộc Đề án 01",
        ("cooperative", "consolidated_on") => "Ngày được củng cố",
        ("cooperative", "classification") => "Xếp loại",
        ("cooperative", "classified_on") => "Ngày xếp loại",
        ("cooperative", "status") => "Tình trạng",
        ("cooperative", "dissolved_on") => "Ngày giải thể",
        ("cooperative", "converted_to_htx_on") => "Ngày chuyển đổi thành HTX",
        (_, "cooperative") => "HTX/THT (tên)",
        ("observation", "observed_on") => "Ngày ghi nhận",
        ("observation", "members") => "Số thành viên",
        ("observation", "female_members") => "Số thành viên nữ",
        ("observation", "workers") => "Số người lao động",
        ("observation", "female_workers") => "Số lao động nữ",
        ("observation", "stable_jobs_women") => "Việc làm ổn định cho phụ nữ",
        ("observation", "new_jobs_women") => "Việc làm mới cho phụ nữ",
        ("observation", "priority_workers") => "Lao động nữ thuộc nhóm ưu tiên",
        ("observation", "ocop_products") => "Sản phẩm đạt chất lượng OCOP",
        ("milestone", "name") => "Tên",
        (_, "name") => "Họ và tên",
        (_, "gender") => "Giới tính",
        ("manager", "role") => "Chức vụ",
        (_, "since") => "Từ ngày",
        (_, "until") => "Đến ngày",
        ("cadre", "level") => "Cấp Hội",
        ("cadre", "kttt_support") => "Phụ trách hỗ trợ KTTT",
        (_, "held_on") => "Ngày tổ chức",
        ("training", "type") => "Nội dung bồi dưỡng/tập huấn",
        ("training", "title") => "Tên lớp bồi dưỡng/tập huấn",
        (_, "title") => "Tên hoạt động",
        ("training", "attendees") => "Người tham dự (họ tên)",
        ("activity", "type") => "Loại hoạt động",
        ("activity", "participants") => "Số người tham gia",
        ("activity", "women") => "Số phụ nữ tham gia",
        ("activity", "amount_vnd") => "Số tiền (đồng)",
        ("milestone", "type") => "Loại mốc",
        ("milestone", "achieved_on") => "Ngày đạt được",
        _ => "",
    }
}

/// Where a column's cells go.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Id,
    Unit,
    Field(&'static FieldSpec),
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Target::Id, Target::Id) | (Target::Unit, Target::Unit) => true,
            (Target::Field(a), Target::Field(b)) => a.name == b.name,
            _ => false,
        }
    }
}

/// The column a header names for `kind`, if any: the Vietnamese header,
/// its part before a parenthesis ("Loại hình" for "Loại hình (HTX/THT)"),
/// or the schema's English name.
pub fn target(kind: &'static KindSpec, text: &str) -> Option<Target> {
    let f = fold(text);
    if f.is_empty() {
        return None;
    }
    let matches = |name: &str, vi: &str| {
        let short = vi.split('(').next().unwrap_or(vi);
        f == fold(name) || f == fold(vi) || f == fold(short)
    };
    if matches("id", ID_HEADER) || f == "ma" {
        return Some(Target::Id);
    }
    if matches("unit", UNIT_HEADER) || f == "madonvi" || f == "maxa" || f == "xa" {
        return Some(Target::Unit);
    }
    kind.fields
        .iter()
        .find(|field| matches(field.name, header(kind.name, field.name)))
        .map(Target::Field)
}

/// The Vietnamese label of a choice, for templates and exports.
pub fn choice_label(value: &str) -> &'static str {
    match value {
        "HTX" => "Hợp tác xã (HTX)",
        "THT" => "Tổ hợp tác (THT)",
        "good" => "Tốt",
        "fair" => "Khá",
        "average" => "Trung bình",
        "weak" => "Yếu",
        "active" => "Đang hoạt động",
        "dissolved" => "Giải thể",
        "female" => "Nữ",
        "male" => "Nam",
        "chair" => "Chủ tịch",
        "board_member" => "Thành viên Hội đồng quản trị",
        "director" => "Giám đốc",
        "supervisory_board" => "Thành viên Ban kiểm soát",
        "province" => "Tỉnh",
        "district" => "Huyện",
        "commune" => "Xã",
        "governance" => "Năng lực quản trị, điều hành",
        "digital_skills" => "Kỹ năng công nghệ số",
        "cadre_kttt" => "Cán bộ Hội phụ trách KTTT",
        "cadre_skills" => "Kỹ năng cho cán bộ Hội",
        "vocational" => "Đào tạo nghề",
        "communication" => "Tuyên truyền, vận động",
        "contest" => "Hội thi",
        "forum" => "Diễn đàn",
        "trade_promotion" => "Xúc tiến thương mại",
        "loan" => "Vay vốn",
        "insurance" => "Bảo hiểm",
        "ocop" => "Sản phẩm OCOP",
        "ecommerce" => "Thương mại điện tử",
        "award" => "Khen thưởng",
        "women_entrepreneurs_association" => "Thành lập Hội Doanh nhân nữ tỉnh",
        _ => "",
    }
}

/// The schema's value for a choice typed by a person: the value itself,
/// its Vietnamese label, or the label's part before a parenthesis ("Hợp
/// tác xã" for "Hợp tác xã (HTX)"). Anything else is returned as given,
/// for the schema to refuse with the allowed values.
pub fn choice(allowed: &[&'static str], typed: &str) -> String {
    let f = fold(typed);
    allowed
        .iter()
        .find(|v| {
            let label = choice_label(v);
            let short = label.split('(').next().unwrap_or(label);
            f == fold(v) || (!label.is_empty() && (f == fold(label) || f == fold(short)))
        })
        .map(|v| (*v).to_owned())
        .unwrap_or_else(|| typed.trim().to_owned())
}

/// Yes and no as officers type them.
pub fn yes_no(typed: &str) -> Option<bool> {
    match fold(typed).as_str() {
        "co" | "x" | "true" | "yes" | "1" | "dung" => Some(true),
        "khong" | "false" | "no" | "0" | "sai" => Some(false),
        _ => None,
    }
}

/// What a column expects, in Vietnamese: the note on its header in a
/// template.
pub fn expects(kind: &str, field: &FieldSpec) -> String {
    let need = if field.required {
        "Bắt buộc. "
    } else {
        "Không bắt buộc. "
    };
    let what = match field.ty {
        FieldType::Text => "Văn bản.".to_owned(),
        FieldType::Date => "Ngày, dạng dd/mm/yyyy (ví dụ 15/01/2024).".to_owned(),
        FieldType::Count => format!(
            "Số nguyên không âm, tối đa {} (ví dụ 1.350).",
            group(htx_core::schema::MAX_COUNT)
        ),
        FieldType::Amount => "Số tiền bằng đồng, số nguyên không âm (ví dụ 1.350.000).".to_owned(),
        FieldType::Bool => "Có hoặc Không.".to_owned(),
        FieldType::Enum(values) => format!(
            "Chọn một trong: {}.",
            values
                .iter()
                .map(|v| choice_label(v))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        FieldType::Ref(_) => {
            "Tên HTX/THT như đã ghi trong danh sách của xã (hoặc mã bản ghi).".to_owned()
        }
        FieldType::RefList(_) => {
            "Họ tên người quản lý hoặc cán bộ Hội đã có, cách nhau bởi dấu chấm phẩy (;)."
                .to_owned()
        }
    };
    format!("{need}{what} ({kind}.{})", field.name)
}

/// A whole number with Vietnamese grouping: 1.350.000.
pub fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_with_or_without_diacritics() {
        let coop = htx_core::schema::kind("cooperative").unwrap();
        for typed in [
            "Ngày thành lập",
            "ngay thanh lap",
            "NGÀY  THÀNH LẬP",
            "founded_on",
        ] {
            assert!(
                matches!(target(coop, typed), Some(Target::Field(f)) if f.name == "founded_on"),
                "{typed}"
            );
        }
        assert!(matches!(target(coop, "Loại hình"), Some(Target::Field(f)) if f.name == "type"));
        assert_eq!(target(coop, "Mã xã"), Some(Target::Unit));
        assert_eq!(target(coop, "Màu sắc"), None);
        assert_eq!(kind_of_sheet("hop tac xa").unwrap().name, "cooperative");
        assert_eq!(kind_of_sheet("Cán bộ Hội").unwrap().name, "cadre");
    }

    #[test]
    fn headers_never_hold_a_delimiter() {
        for k in htx_core::schema::KINDS {
            for f in k.fields {
                let h = header(k.name, f.name);
                assert!(!h.is_empty(), "{}.{} has a header", k.name, f.name);
                assert!(!h.contains([',', ';', '\t']), "{h}");
            }
        }
    }

    #[test]
    fn choices_are_read_in_vietnamese() {
        assert_eq!(choice(&["female", "male"], "nữ"), "female");
        assert_eq!(choice(&["HTX", "THT"], "Tổ hợp tác"), "THT");
        assert_eq!(choice(&["HTX", "THT"], "htx"), "HTX");
        assert_eq!(choice(&["good", "weak"], "Xuất sắc"), "Xuất sắc");
        assert_eq!(group(1_350_000), "1.350.000");
        assert_eq!(group(12), "12");
    }
}

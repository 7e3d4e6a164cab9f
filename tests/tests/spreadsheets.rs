//! Spreadsheets through the real `htx-node` binary: `.xlsx` and `.csv`
//! files as officers make them (Vietnamese headers, names instead of ids,
//! dd/mm/yyyy, 1.350.000, Excel dates, Windows-1258), a check that lists
//! every bad cell and writes nothing, templates, exports that import back
//! onto the same records, and files made to hurt: a program renamed
//! `.xlsx`, a zip bomb, formulas, merged cells, hidden sheets, too many
//! rows, too many bytes, script in text.

use std::path::{Path, PathBuf};

use calamine::{Data, Reader, Xlsx};
use htx_tests::{Output, TestHub, TestNode, parse_export, run};
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

/// A cell of a test workbook.
enum C {
    S(&'static str),
    N(f64),
    /// An Excel date cell (year, month, day).
    D(u16, u8, u8),
    F(&'static str),
    E,
}
use C::*;

fn xlsx(sheets: &[(&str, Vec<Vec<C>>)]) -> Vec<u8> {
    let mut book = Workbook::new();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    for (name, rows) in sheets {
        let ws = book.add_worksheet();
        ws.set_name(*name).unwrap();
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (r, c) = (r as u32, c as u16);
                match cell {
                    S(s) => {
                        ws.write_string(r, c, *s).unwrap();
                    }
                    N(n) => {
                        ws.write_number(r, c, *n).unwrap();
                    }
                    D(y, m, d) => {
                        let dt = ExcelDateTime::from_ymd(*y, *m, *d).unwrap();
                        ws.write_datetime_with_format(r, c, &dt, &date).unwrap();
                    }
                    F(f) => {
                        ws.write_formula(r, c, Formula::new(*f)).unwrap();
                    }
                    E => {}
                }
            }
        }
    }
    book.save_to_buffer().unwrap()
}

struct Setup {
    _hub: TestHub,
    node: TestNode,
    files: tempfile::TempDir,
}

impl Setup {
    /// A node of Thành phố Nam Định (356), its store closed for the CLI.
    fn new() -> Setup {
        let t = std::time::Instant::now();
        let hub = TestHub::create();
        eprintln!("TIMING hub {:?}", t.elapsed());
        let mut node = hub.enroll_node("356", "sheets-356");
        node.close();
        Setup {
            _hub: hub,
            node,
            files: tempfile::TempDir::new().unwrap(),
        }
    }

    fn dir(&self) -> &str {
        self.node.dir().to_str().unwrap()
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    async fn import(&self, file: &Path, check: bool) -> Output {
        let mut args = vec!["import", self.dir(), file.to_str().unwrap()];
        if check {
            args.push("--check");
        }
        let t = std::time::Instant::now();
        let o = run("htx-node", &args).await;
        eprintln!("TIMING import {:?}", t.elapsed());
        o
    }

    async fn export(&self) -> Vec<serde_json::Value> {
        parse_export(run("htx-node", &["export", self.dir()]).await.ok())
    }

    async fn of_kind(&self, kind: &str) -> Vec<serde_json::Value> {
        self.export()
            .await
            .into_iter()
            .filter(|r| r["kind"] == kind)
            .collect()
    }
}

fn named<'a>(records: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    records
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no record named {name}: {records:#?}"))
}

/// The workbook an officer fills in: Vietnamese headers in any order,
/// labels for choices, names for references, dates and numbers as typed
/// in Vietnam, Excel dates and serials, an empty row, a title row.
/// With `bad_row`, row 3 of "Số liệu HTX" names a cooperative (typed
/// loosely) but no date.
fn officers_workbook(bad_row: bool) -> Vec<u8> {
    let mut observations = vec![
        vec![S("HTX, THT (tên)"), S("Ngày ghi nhận"), S("Số người lao động"), S("Số lao động nữ")],
        vec![S("HTX Lúa Vàng"), S("30/06/2025"), S("1.350"), N(800.0)],
        vec![S("Tổ hợp tác Mây Tre"), N(45838.0), N(12.0), S("7")],
    ];
    if bad_row {
        observations.insert(2, vec![S("ht x lúa vàng"), E, E, E]);
    }
    xlsx(&[
        ("Số liệu HTX", observations),
        (
            "Hợp tác xã",
            vec![
                vec![S("DANH SÁCH HỢP TÁC XÃ NĂM 2025")],
                vec![
                    S("Tên HTX, THT"),
                    S("loai hinh"),
                    S("Đơn vị (mã hoặc tên xã)"),
                    S("Ngày thành lập"),
                    S("Được các cấp Hội hỗ trợ thành lập"),
                    S("Xếp loại"),
                ],
                vec![S("HTX Lúa Vàng"), S("Hợp tác xã"), S("13633"), S("15/01/2020"), S("Có"), S("Khá")],
                vec![E, E, E, E, E, E],
                vec![S("Tổ hợp tác Mây Tre"), S("THT"), S("Phường Trần Tế Xương"), D(2021, 3, 8), S("không"), E],
            ],
        ),
        (
            "Người quản lý",
            vec![
                vec![S("Họ và tên"), S("Giới tính"), S("Chức vụ"), S("HTX, THT (tên)"), S("Từ ngày")],
                vec![S("Nguyễn Thị Hằng"), S("Nữ"), S("Chủ tịch"), S("HTX Lúa Vàng"), S("2020-01-15")],
            ],
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officers_workbook_is_checked_then_imported() {
    let s = Setup::new();
    let wb = s.file("so-lieu.xlsx", &officers_workbook(true));
    // Row 3 of "Số liệu HTX" names the cooperative but has no date: the
    // check says so, in Vietnamese first.
    let out = s.import(&wb, true).await;
    let err = out.failed();
    assert!(
        err.contains("Số liệu HTX, dòng/row 3, cột/column «Ngày ghi nhận»: thiếu «Ngày ghi nhận» (bắt buộc)"),
        "{err}"
    );
    assert!(err.contains("1 lỗi") && err.contains("nothing was imported"), "{err}");
    assert!(s.export().await.is_empty(), "a check writes nothing");

    // Fixed (the row removed): the check passes and still writes nothing.
    let wb = s.file("so-lieu-2.xlsx", &officers_workbook(false));
    let out = s.import(&wb, true).await;
    assert!(out.ok().contains("5 row(s) good"), "{out:?}");
    assert!(s.export().await.is_empty(), "a check writes nothing");

    let out = s.import(&wb, false).await;
    assert!(out.ok().contains("imported 5 records"), "{out:?}");
    let coops = s.of_kind("cooperative").await;
    let lua = named(&coops, "HTX Lúa Vàng");
    assert_eq!(lua["type"], "HTX");
    assert_eq!(lua["unit"], "13633");
    assert_eq!(lua["founded_on"], "2020-01-15");
    assert_eq!(lua["union_supported"], true);
    assert_eq!(lua["classification"], "fair");
    let may = named(&coops, "Tổ hợp tác Mây Tre");
    assert_eq!(may["type"], "THT");
    assert_eq!(may["unit"], "13636", "the unit found by its name");
    assert_eq!(may["founded_on"], "2021-03-08", "an Excel date cell");
    assert_eq!(may["union_supported"], false);

    let obs = s.of_kind("observation").await;
    let of = |id: &serde_json::Value| obs.iter().find(|o| o["cooperative"] == *id).unwrap().clone();
    let o = of(&lua["id"]);
    assert_eq!(o["workers"], 1350, "1.350 is one thousand three hundred and fifty");
    assert_eq!(o["female_workers"], 800);
    assert_eq!(o["observed_on"], "2025-06-30");
    assert_eq!(o["unit"], "13633", "the cooperative's unit");
    let o = of(&may["id"]);
    assert_eq!(o["observed_on"], "2025-06-30", "Excel serial 45838");
    assert_eq!(o["female_workers"], 7);

    let managers = s.of_kind("manager").await;
    let m = named(&managers, "Nguyễn Thị Hằng");
    assert_eq!((m["gender"].as_str(), m["role"].as_str()), (Some("female"), Some("chair")));
    assert_eq!(m["cooperative"], lua["id"]);

    // The same file again adds nothing twice.
    s.import(&wb, false).await.ok();
    assert_eq!(s.export().await.len(), 5);
}


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
        let hub = TestHub::create();
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
        run("htx-node", &args).await
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
        vec![
            S("HTX/THT (tên)"),
            S("Ngày ghi nhận"),
            S("Số người lao động"),
            S("Số lao động nữ"),
        ],
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
                    S("Tên HTX/THT"),
                    S("loai hinh"),
                    S("Đơn vị (mã hoặc tên xã)"),
                    S("Ngày thành lập"),
                    S("Được các cấp Hội hỗ trợ thành lập"),
                    S("Xếp loại"),
                ],
                vec![
                    S("HTX Lúa Vàng"),
                    S("Hợp tác xã"),
                    S("13633"),
                    S("15/01/2020"),
                    S("Có"),
                    S("Khá"),
                ],
                vec![E, E, E, E, E, E],
                vec![
                    S("Tổ hợp tác Mây Tre"),
                    S("THT"),
                    S("Phường Trần Tế Xương"),
                    D(2021, 3, 8),
                    S("không"),
                    E,
                ],
            ],
        ),
        (
            "Người quản lý",
            vec![
                vec![
                    S("Họ và tên"),
                    S("Giới tính"),
                    S("Chức vụ"),
                    S("HTX/THT (tên)"),
                    S("Từ ngày"),
                ],
                vec![
                    S("Nguyễn Thị Hằng"),
                    S("Nữ"),
                    S("Chủ tịch"),
                    S("HTX Lúa Vàng"),
                    S("2020-01-15"),
                ],
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
        err.contains(
            "Số liệu HTX, dòng/row 3, cột/column «Ngày ghi nhận»: thiếu «Ngày ghi nhận» (bắt buộc)"
        ),
        "{err}"
    );
    assert!(
        err.contains("1 lỗi") && err.contains("nothing was imported"),
        "{err}"
    );
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
    let of = |id: &serde_json::Value| {
        obs.iter()
            .find(|o| o["cooperative"] == *id)
            .unwrap()
            .clone()
    };
    let o = of(&lua["id"]);
    assert_eq!(
        o["workers"], 1350,
        "1.350 is one thousand three hundred and fifty"
    );
    assert_eq!(o["female_workers"], 800);
    assert_eq!(o["observed_on"], "2025-06-30");
    assert_eq!(o["unit"], "13633", "the cooperative's unit");
    let o = of(&may["id"]);
    assert_eq!(o["observed_on"], "2025-06-30", "Excel serial 45838");
    assert_eq!(o["female_workers"], 7);

    let managers = s.of_kind("manager").await;
    let m = named(&managers, "Nguyễn Thị Hằng");
    assert_eq!(
        (m["gender"].as_str(), m["role"].as_str()),
        (Some("female"), Some("chair"))
    );
    assert_eq!(m["cooperative"], lua["id"]);

    // The same file again adds nothing twice.
    s.import(&wb, false).await.ok();
    assert_eq!(s.export().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_cell_is_listed_in_one_pass_and_nothing_is_written() {
    let s = Setup::new();
    let wb = s.file(
        "hop-tac-xa.xlsx",
        &xlsx(&[(
            "Hợp tác xã",
            vec![
                vec![
                    S("Tên HTX/THT"),
                    S("Loại hình"),
                    S("Đơn vị"),
                    S("Ngày thành lập"),
                    S("Xếp loại"),
                    S("Màu sắc"),
                ],
                vec![
                    S("HTX Một"),
                    S("HTX"),
                    S("13633"),
                    S("31/02/2024"),
                    S("Xuất sắc"),
                    E,
                ],
                vec![
                    S("HTX Hai"),
                    S("HTX"),
                    S("13633"),
                    S("15/01/2024"),
                    S("Tốt"),
                    E,
                ],
                vec![E, S("Công ty"), S("99999"), E, E, E],
            ],
        )]),
    );
    for check in [true, false] {
        let out = s.import(&wb, check).await;
        let err = out.failed();
        for expected in [
            // The unknown column, once.
            "cột F «Màu sắc» không phải là cột của Hợp tác xã",
            // Row 2: two bad cells.
            "dòng/row 2, cột/column «Ngày thành lập»: «31/02/2024» không phải là ngày hợp lệ",
            "dòng/row 2, cột/column «Xếp loại»: «Xuất sắc» không phải là một trong: Tốt; Khá; Trung bình; Yếu",
            // Row 4: a bad choice, a missing name, a unit that does not exist.
            "dòng/row 4, cột/column «Loại hình»: «Công ty» không phải là một trong: Hợp tác xã (HTX); Tổ hợp tác (THT)",
            "dòng/row 4, cột/column «Tên HTX/THT»: thiếu «Tên HTX/THT» (bắt buộc)",
            "dòng/row 4, cột/column «Đơn vị»: mã đơn vị «99999» không có trong danh mục",
        ] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }
        assert!(!err.contains("dòng/row 3"), "row 3 is good:\n{err}");
        assert!(
            err.contains("6 lỗi") && err.contains("1 row(s) good"),
            "{err}"
        );
        assert!(
            s.export().await.is_empty(),
            "nothing written (check: {check})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooperative_named_twice_is_refused_with_the_candidates() {
    let s = Setup::new();
    let seed = s.file(
        "hop-tac-xa.csv",
        "Tên HTX/THT,Loại hình,Đơn vị\nHTX Lúa,HTX,13633\nHTX Lúa,HTX,13636\n".as_bytes(),
    );
    s.import(&seed, false).await.ok();
    let ids: Vec<String> = s
        .of_kind("cooperative")
        .await
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let obs = s.file(
        "so-lieu-htx.csv",
        "HTX/THT (tên);Ngày ghi nhận;Đơn vị\nHTX Lúa;30/06/2025;\n".as_bytes(),
    );
    let err = s.import(&obs, false).await;
    let err = err.failed();
    assert!(err.contains("có 2 HTX/THT cùng tên «HTX Lúa»"), "{err}");
    for id in &ids {
        assert!(err.contains(id.as_str()), "candidate {id} listed:\n{err}");
    }
    // With the commune, the name is one cooperative.
    let obs = s.file(
        "so-lieu-htx.csv",
        "HTX/THT (tên);Ngày ghi nhận;Đơn vị\nhtx lua;30/06/2025;Phường Hạ Long\n".as_bytes(),
    );
    s.import(&obs, false).await.ok();
    let o = &s.of_kind("observation").await[0];
    let lua_13633 = s
        .of_kind("cooperative")
        .await
        .into_iter()
        .find(|c| c["unit"] == "13633")
        .unwrap();
    assert_eq!(o["cooperative"], lua_13633["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_files_as_excel_saves_them() {
    let s = Setup::new();
    // Vietnamese Excel: semicolons, Windows-1258 (tone marks as combining
    // characters), no byte-order mark.
    let text = "Tên HTX/THT;Loa\u{323}i hi\u{300}nh;Đơn vi\u{323}\r\nHơ\u{323}p ta\u{301}c xa\u{303} Đông;HTX;13633\r\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1258.encode(text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&bytes).is_err(), "not UTF-8");
    let f = s.file("hop-tac-xa.csv", &bytes);
    s.import(&f, false).await.ok();
    // UTF-8 with a byte-order mark, commas, quotes, Vietnamese grouping.
    let f = s.file(
        "so-lieu-htx.csv",
        "\u{feff}HTX/THT (tên),Ngày ghi nhận,Số người lao động\n\"Hợp tác xã Đông\",01/07/2025,\"1.350\"\n".as_bytes(),
    );
    s.import(&f, false).await.ok();
    let coop = &s.of_kind("cooperative").await[0];
    assert_eq!(coop["name"], "Hợp tác xã Đông", "stored in NFC");
    let o = &s.of_kind("observation").await[0];
    assert_eq!(o["cooperative"], coop["id"]);
    assert_eq!(o["workers"], 1350);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_and_exports_read_back() {
    let s = Setup::new();
    let t = s.files.path().join("mau.xlsx");
    run(
        "htx-node",
        &["template", s.dir(), "manager", "--out", t.to_str().unwrap()],
    )
    .await
    .ok();
    let bytes = std::fs::read(&t).unwrap();
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let sheets: Vec<(String, calamine::SheetVisible)> = book
        .sheets_metadata()
        .iter()
        .map(|m| (m.name.clone(), m.visible))
        .collect();
    assert_eq!(
        sheets[0],
        ("Người quản lý".into(), calamine::SheetVisible::Visible)
    );
    assert_eq!(
        sheets[1],
        ("Danh mục".into(), calamine::SheetVisible::Hidden)
    );
    let range = book.worksheet_range("Người quản lý").unwrap();
    let headers: Vec<String> = range
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert!(headers.contains(&"Chức vụ".to_owned()), "{headers:?}");
    // A note on each header, choice lists on the choices.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut sheet1 = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(),
        &mut sheet1,
    )
    .unwrap();
    assert!(sheet1.contains("<dataValidation "), "choice lists");
    let mut notes = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("xl/comments1.xml").unwrap(), &mut notes)
        .unwrap();
    assert!(notes.contains("Chọn một trong: Chủ tịch"), "{notes}");
    assert!(notes.contains("dd/mm/yyyy"), "{notes}");

    // Filled in with the template's own headers, it imports.
    let filled = s.file(
        "quan-ly.xlsx",
        &xlsx(&[
            (
                "Hợp tác xã",
                vec![
                    vec![S("Tên HTX/THT"), S("Loại hình"), S("Đơn vị")],
                    vec![S("HTX Sen"), S("HTX"), S("13633")],
                ],
            ),
            (
                "Người quản lý",
                vec![
                    headers
                        .iter()
                        .map(|h| S(Box::leak(h.clone().into_boxed_str())))
                        .collect(),
                    {
                        let mut row: Vec<C> = headers.iter().map(|_| E).collect();
                        for (i, h) in headers.iter().enumerate() {
                            row[i] = match h.as_str() {
                                "Họ và tên" => S("<script>alert('x')</script>"),
                                "Giới tính" => S("Nữ"),
                                "Chức vụ" => S("Giám đốc"),
                                "HTX/THT (tên)" => S("HTX Sen"),
                                _ => E,
                            };
                        }
                        row
                    },
                ],
            ),
        ]),
    );
    s.import(&filled, false).await.ok();
    let m = &s.of_kind("manager").await[0];
    assert_eq!(m["name"], "<script>alert('x')</script>", "stored as text");

    // Exported, edited, imported back: the same records, changed.
    let out = s.files.path().join("export.xlsx");
    run(
        "htx-node",
        &[
            "export",
            s.dir(),
            "--format",
            "xlsx",
            "--kind",
            "cooperative",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    let mut book: Xlsx<_> = calamine::open_workbook(&out).unwrap();
    let range = book.worksheet_range("Hợp tác xã").unwrap();
    assert_eq!(range.get_size().0, 2, "a header and one cooperative");
    s.import(&out, false).await.ok();
    assert_eq!(
        s.of_kind("cooperative").await.len(),
        1,
        "imported back onto itself"
    );

    // CSV export: UTF-8 with a byte-order mark; text that Excel would run
    // as a formula is written with a leading quote.
    let coop_id = s.of_kind("cooperative").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let csv = s.file(
        "hop-tac-xa.csv",
        format!("Mã bản ghi,Tên HTX/THT\n{coop_id},\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\n")
            .as_bytes(),
    );
    s.import(&csv, false).await.ok();
    let out = run(
        "htx-node",
        &[
            "export",
            s.dir(),
            "--format",
            "csv",
            "--kind",
            "cooperative",
        ],
    )
    .await;
    let text = out.ok();
    assert!(text.starts_with('\u{feff}'), "byte-order mark");
    assert!(text.contains("\"'=HYPERLINK("), "{text}");
    let out = s.files.path().join("export2.xlsx");
    run(
        "htx-node",
        &[
            "export",
            s.dir(),
            "--format",
            "xlsx",
            "--kind",
            "cooperative",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    let mut book: Xlsx<_> = calamine::open_workbook(&out).unwrap();
    let formulas = book.worksheet_formula("Hợp tác xã").unwrap();
    assert!(
        formulas.used_cells().all(|(_, _, f)| f.is_empty()),
        "no formula written"
    );
    let range = book.worksheet_range("Hợp tác xã").unwrap();
    assert!(
        range
            .used_cells()
            .any(|(_, _, v)| *v == Data::String("=HYPERLINK(\"http://x\",\"y\")".into())),
        "kept as text"
    );
}

/// A refused file: the reason shown, nothing written.
async fn refused(s: &Setup, file: &Path, reason: &str) {
    for check in [true, false] {
        let out = s.import(file, check).await;
        let err = out.failed();
        assert!(err.contains(reason), "{reason:?} not in:\n{err}");
    }
    assert!(s.export().await.is_empty(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_made_to_hurt_are_refused_and_write_nothing() {
    let s = Setup::new();
    let coop_header = || vec![S("Tên HTX/THT"), S("Loại hình"), S("Đơn vị")];

    // A Windows program renamed .xlsx; text renamed .xlsx; an old .xls.
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
    exe.extend(std::iter::repeat_n(0u8, 4096));
    refused(&s, &s.file("hop-tac-xa.xlsx", &exe), "a Windows program").await;
    refused(
        &s,
        &s.file("hop-tac-xa.xlsx", b"name,type\nA,HTX\n"),
        "not an .xlsx file",
    )
    .await;
    refused(
        &s,
        &s.file("hop-tac-xa.xls", &[0xD0, 0xCF, 0x11, 0xE0, 0, 0]),
        "không phải tệp .xlsx hoặc .csv",
    )
    .await;

    // A zip bomb: 300 MiB of zeros packed into a few hundred KiB.
    let mut bomb = std::io::Cursor::new(Vec::new());
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(&mut bomb);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        z.start_file("xl/worksheets/sheet1.xml", opts).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            z.write_all(&zeros).unwrap();
        }
        z.finish().unwrap();
    }
    let bomb = bomb.into_inner();
    assert!(bomb.len() < 2 << 20, "{} bytes packed", bomb.len());
    refused(&s, &s.file("hop-tac-xa.xlsx", &bomb), "giải nén ra 300 MiB").await;

    // Over the size limit: refused from its size, before it is read.
    let big = s.files.path().join("hop-tac-xa.csv");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(33 << 20)
        .unwrap();
    refused(&s, &big, "tệp quá lớn (33 MiB); tối đa 32 MiB").await;

    // 100,001 rows: refused at the row past the limit.
    let mut text = String::from("Tên HTX/THT,Loại hình,Đơn vị\n");
    for i in 0..=100_000 {
        text.push_str(&format!("HTX {i},HTX,13633\n"));
    }
    refused(
        &s,
        &s.file("hop-tac-xa.csv", text.as_bytes()),
        "tệp có hơn 100000 dòng dữ liệu",
    )
    .await;

    // A formula: refused, not read for its cached value (here 0: the
    // program that wrote it never computed it).
    let f = s.file(
        "so-lieu-htx.xlsx",
        &xlsx(&[(
            "Số liệu HTX",
            vec![
                vec![
                    S("HTX/THT (tên)"),
                    S("Ngày ghi nhận"),
                    S("Số người lao động"),
                    S("Số lao động nữ"),
                ],
                vec![S("HTX A"), S("30/06/2025"), N(10.0), F("=C2/2")],
            ],
        )]),
    );
    refused(&s, &f, "ô D2 chứa công thức").await;

    // Merged cells below the header; a hidden sheet of records.
    let mut book = Workbook::new();
    {
        let ws = book.add_worksheet().set_name("Hợp tác xã").unwrap();
        for (c, h) in ["Tên HTX/THT", "Loại hình", "Đơn vị"].iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        ws.write_string(1, 0, "HTX A").unwrap();
        ws.write_string(2, 0, "HTX B").unwrap();
        ws.merge_range(1, 1, 2, 1, "HTX", &Format::new()).unwrap();
        ws.merge_range(1, 2, 2, 2, "13633", &Format::new()).unwrap();
        let ws = book.add_worksheet().set_name("Cán bộ Hội").unwrap();
        ws.write_string(0, 0, "Họ và tên").unwrap();
        ws.write_string(0, 1, "Cấp Hội").unwrap();
        ws.write_string(1, 0, "Trần Thị Lan").unwrap();
        ws.write_string(1, 1, "Xã").unwrap();
        ws.set_hidden(true);
        // Lists behind a template's choices: hidden, ignored.
        let ws = book.add_worksheet().set_name("Danh mục").unwrap();
        ws.write_string(0, 0, "Có").unwrap();
        ws.set_hidden(true);
    }
    let f = s.file("bang.xlsx", &book.save_to_buffer().unwrap());
    refused(&s, &f, "các ô B2:B3 đang được gộp (Merge)").await;
    refused(&s, &f, "các ô C2:C3 đang được gộp (Merge)").await;
    refused(&s, &f, "trang tính «Cán bộ Hội» (Cán bộ Hội) đang bị ẩn").await;
    let err = s.import(&f, true).await;
    assert!(!err.failed().contains("Danh mục"), "{err:?}");

    // A sheet that is no kind of record, with data.
    let f = s.file(
        "bang.xlsx",
        &xlsx(&[
            ("Ghi chú", vec![vec![S("ghi chú của cán bộ")]]),
            ("Hợp tác xã", vec![coop_header()]),
        ]),
    );
    refused(
        &s,
        &f,
        "trang tính «Ghi chú» có dữ liệu nhưng tên không phải loại bản ghi nào",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spreadsheet_goes_through_the_running_node() {
    let s = Setup::new();
    let mut running = htx_tests::spawn(
        "htx-node",
        &["run", s.dir()],
        &s.files.path().join("node.log"),
    );
    htx_tests::wait_for_api(
        &s.node.dir().join("api.addr"),
        std::time::Duration::from_secs(20),
    )
    .await;

    let wb = s.file("so-lieu.xlsx", &officers_workbook(false));
    let out = s.import(&wb, true).await;
    assert!(out.ok().contains("5 row(s) good"), "{out:?}");
    assert!(s.export().await.is_empty(), "a check writes nothing");
    s.import(&wb, false).await.ok();
    assert_eq!(s.export().await.len(), 5);

    // What only the node knows (an id of nothing) is refused by it, and
    // named by sheet and row.
    let f = s.file(
        "so-lieu-htx.csv",
        "HTX/THT (tên),Ngày ghi nhận\nHTX Lúa Vàng,01/07/2025\n0190a2b4-0000-7000-8000-00000000dead,01/07/2025\n"
            .as_bytes(),
    );
    let out = s.import(&f, false).await;
    let err = out.failed();
    assert!(
        err.contains("so-lieu-htx, dòng/row 3: observation: field \"cooperative\""),
        "{err}"
    );
    assert!(err.contains("00000000dead"), "{err}");
    assert_eq!(s.export().await.len(), 5, "nothing written");
    assert!(running.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_file_can_be_checked_without_writing() {
    let s = Setup::new();
    let good = "kind,type,name,unit\ncooperative,HTX,HTX Một,13633\n";
    let f = s.file("records.csv", good.as_bytes());
    let out = s.import(&f, true).await;
    assert!(out.ok().contains("1 row(s) good"), "{out:?}");
    let f = s.file(
        "records.csv",
        format!("{good}cooperative,HTX,HTX Hai,99999\ncooperative,XYZ,HTX Ba,13633\n").as_bytes(),
    );
    let out = s.import(&f, true).await;
    let err = out.failed();
    assert!(err.contains("row 2: ") && err.contains("99999"), "{err}");
    assert!(err.contains("row 3: ") && err.contains("XYZ"), "{err}");
    assert!(err.contains("2 bad row(s)"), "{err}");
    assert!(s.export().await.is_empty(), "a check writes nothing");
}

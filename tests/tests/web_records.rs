//! A record's life after it is written, in a real browser: a conflict made
//! on two nodes (the same field edited on the office PC's web app and on a
//! laptop while apart) is shown with each value, who set it and when, and
//! settled with one click; the choice syncs to the hub and to the laptop.
//! Then the record is deleted and restored, each with a reason that the
//! history shows; without a reason nothing changes. Screenshots at 1280 px
//! and 360 px in `target/screenshots/`.
//!
//! Spreadsheets on the pages: an `.xlsx` with two bad rows shows both
//! errors and writes nothing; fixed, it is checked, confirmed and written
//! as the officer's. Templates and exports download.
//!
//! Accounts from the admin's pages: add one restricted to a commune,
//! change its role, set a new password (its old sessions end), disable it.
//!
//! And what a browser would never send: a forged or stale settle, a delete
//! by a viewer, by an officer of another commune, or without a token; an
//! upload without a token, by a viewer, of the wrong type, too large, with
//! a formula, merged cells or over 100,000 rows, rows of another commune,
//! a confirmation of a file never checked.

use std::time::Duration;

use fantoccini::Locator;
use htx_tests::web::http::{form, multipart, request, request_typed, sign_in};
use htx_tests::web::{Browser, WebNode, browser_installed};
use htx_tests::{edit, eventually};

const PW: &str = "mật khẩu của Lan";
const COOP: &str = "01890005-a6ae-7a8c-a6f8-f3b28c497c68"; // HTX Mây tre đan Gôi, 13741

async fn node() -> WebNode {
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sample/vu-ban.csv");
    WebNode::start(
        "359",
        "vu-ban",
        Some(&csv),
        &[
            ("lan", "editor", &[], PW),
            // Restricted to Xã Tân Khánh (13750), not Thị trấn Gôi.
            ("hoa", "editor", &["13750"], PW),
            ("xem", "viewer", &[], PW),
            ("chi", "admin", &[], PW),
        ],
    )
    .await
}

/// The cooperative as the web node's own store holds it.
async fn stored(node: &WebNode) -> serde_json::Value {
    node.export()
        .await
        .into_iter()
        .find(|r| r["id"] == COOP)
        .expect("the cooperative is on the node")
}

async fn sign_in_browser(b: &Browser, node: &WebNode) {
    b.goto(&node.url("/login")).await;
    b.fill("name", "lan").await;
    b.fill("password", PW).await;
    b.submit().await;
    assert_eq!(b.path().await, "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_made_on_two_nodes_is_settled_in_the_browser_and_a_record_deleted_with_a_reason()
{
    assert!(
        browser_installed(),
        "chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver"
    );
    let node = node().await;
    let hub = &node.hub;
    // The office PC syncs every second: its records reach the hub.
    assert!(
        eventually(Duration::from_secs(30), || hub
            .export()
            .iter()
            .any(|r| r.id == COOP))
        .await,
        "the office PC's records reach the hub"
    );
    let laptop = hub.enroll_node("359", "laptop");
    laptop.sync().await.expect("the laptop syncs");
    assert_eq!(laptop.record(COOP).text("sector"), Some("thủ công"));

    // Apart: the laptop changes the sector, and does not sync yet...
    laptop
        .write(vec![edit(COOP, "cooperative", &[("sector", "thủy sản")])])
        .expect("laptop edit");
    // ...while Lan changes it on the office PC's pages.
    let b = Browser::start().await;
    sign_in_browser(&b, &node).await;
    b.goto(&node.url(&format!("/records/{COOP}/edit"))).await;
    b.fill("f-sector", "mây tre đan").await;
    b.submit().await;
    assert_eq!(b.path().await, format!("/records/{COOP}"));
    assert!(
        eventually(Duration::from_secs(30), || hub
            .export()
            .iter()
            .any(|r| r.id == COOP && r.text("sector") == Some("mây tre đan")))
        .await,
        "the office PC's edit reaches the hub"
    );
    // Then the laptop syncs: both edits meet, at the hub and on both nodes.
    laptop.sync().await.expect("the laptop syncs");
    assert_eq!(laptop.record(COOP).conflicts["sector"].len(), 2);
    let mut conflicted = false;
    for _ in 0..60 {
        if stored(&node).await.get("conflicts").is_some() {
            conflicted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(conflicted, "the office PC receives the laptop's edit");

    // The page shows each value, who set it and when, and a choice.
    b.goto(&node.url(&format!("/records/{COOP}"))).await;
    let page = b.text().await;
    assert!(page.contains("Xung đột dữ liệu"), "{page}");
    for shown in ["thủy sản", "mây tre đan", "lan@vu-ban", "laptop"] {
        assert!(page.contains(shown), "{shown:?} on the page:\n{page}");
    }
    b.screenshots("21-conflict").await;
    b.click_and_wait(Locator::XPath(
        "//ul[@class='contenders']/li[contains(., 'thủy sản')]//button",
    ))
    .await;
    assert_eq!(b.path().await, format!("/records/{COOP}"));
    let page = b.text().await;
    assert!(!page.contains("Xung đột dữ liệu"), "settled:\n{page}");
    assert!(page.contains("thủy sản"));
    let rec = stored(&node).await;
    assert_eq!(rec["sector"], "thủy sản");
    assert!(rec.get("conflicts").is_none(), "{rec}");
    assert_eq!(rec["changed_by"], "lan@vu-ban");
    // The choice syncs: the hub and the laptop hold it, with no conflict.
    assert!(
        eventually(Duration::from_secs(30), || hub.export().iter().any(|r| r
            .id
            == COOP
            && r.conflicts.is_empty()
            && r.text("sector") == Some("thủy sản")))
        .await,
        "the hub holds the chosen value and no conflict"
    );
    laptop.sync().await.expect("the laptop syncs");
    let on_laptop = laptop.record(COOP);
    assert!(on_laptop.conflicts.is_empty(), "{on_laptop:?}");
    assert_eq!(on_laptop.text("sector"), Some("thủy sản"));

    // Delete without a reason: the error beside the field, nothing changed.
    b.click_and_wait(Locator::Css("form[action$='/delete'] button"))
        .await;
    let page = b.text().await;
    assert!(page.contains("Cần ghi lý do"), "{page}");
    assert!(stored(&node).await.get("deleted_at").is_none());
    b.screenshots("22-delete-needs-reason").await;
    // With a reason: deleted, and the history says who and why.
    b.fill("f-reason", "nhập trùng với HTX Mây tre Gôi").await;
    b.click_and_wait(Locator::Css("form[action$='/delete'] button"))
        .await;
    let page = b.text().await;
    assert!(page.contains("đã xóa"), "{page}");
    assert!(
        page.contains("lý do: nhập trùng với HTX Mây tre Gôi"),
        "{page}"
    );
    let rec = stored(&node).await;
    assert_eq!(rec["deleted_reason"], "nhập trùng với HTX Mây tre Gôi");
    assert_eq!(rec["deleted_by"], "lan@vu-ban");
    b.screenshots("23-deleted").await;
    // Restored, with its own reason; the delete's reason is gone with it.
    b.fill("f-reason", "xóa nhầm").await;
    b.click_and_wait(Locator::Css("form[action$='/restore'] button"))
        .await;
    let rec = stored(&node).await;
    assert!(rec.get("deleted_at").is_none(), "{rec}");
    assert_eq!(rec["restored_reason"], "xóa nhầm");
    assert!(rec.get("deleted_reason").is_none(), "{rec}");
    assert!(b.text().await.contains("lý do: xóa nhầm"));
    assert!(
        eventually(Duration::from_secs(30), || hub
            .export()
            .iter()
            .any(
                |r| r.id == COOP && r.text("restored_reason") == Some("xóa nhầm")
            ))
        .await,
        "the restore and its reason reach the hub"
    );
    let audit = node.audit();
    for action in ["conflict_settled", "record_deleted", "record_restored"] {
        assert!(
            audit.iter().any(|e| e["action"] == action),
            "{action} audited: {audit:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_out_of_scope_deletes_and_settles_change_nothing() {
    let node = node().await;
    let lan = sign_in(node.addr, "lan", PW).await.expect("lan signs in");
    let hoa = sign_in(node.addr, "hoa", PW).await.expect("hoa signs in");
    let xem = sign_in(node.addr, "xem", PW).await.expect("xem signs in");
    let before = stored(&node).await;
    let delete = format!("/records/{COOP}/delete");
    let reason = |csrf: &str| form(&[("csrf", csrf), ("reason", "thử")]);

    // No token, another session's token: refused.
    for (what, body) in [
        ("no token", form(&[("reason", "thử")])),
        ("another session's token", reason(&xem.csrf)),
    ] {
        let r = request(node.addr, "POST", &delete, Some(&lan.cookie), &body).await;
        assert_eq!(r.status, 403, "{what}: {r:?}");
    }
    // A viewer may not delete; an officer of another commune finds nothing.
    let r = request(
        node.addr,
        "POST",
        &delete,
        Some(&xem.cookie),
        &reason(&xem.csrf),
    )
    .await;
    assert_eq!(r.status, 403, "viewer: {r:?}");
    let r = request(
        node.addr,
        "POST",
        &delete,
        Some(&hoa.cookie),
        &reason(&hoa.csrf),
    )
    .await;
    assert_eq!(r.status, 404, "another commune: {r:?}");
    // No reason, or one over 500 characters: the form again, 422.
    for why in ["   ", &"x".repeat(501)] {
        let body = form(&[("csrf", &lan.csrf), ("reason", why)]);
        let r = request(node.addr, "POST", &delete, Some(&lan.cookie), &body).await;
        assert_eq!(r.status, 422, "{r:?}");
        assert!(r.body.contains("Cần ghi lý do"), "{}", r.body);
    }
    // An id that is no record.
    let r = request(
        node.addr,
        "POST",
        "/records/no-such-record/delete",
        Some(&lan.cookie),
        &reason(&lan.csrf),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");

    // A settle for a field with no conflict, or a choice the page never
    // showed: 409, nothing written.
    let settle = format!("/records/{COOP}/settle");
    for (field, choice, value) in [
        ("sector", "0", "thủ công"),
        ("name", "7", "HTX giả"),
        ("name", "x", "HTX giả"),
    ] {
        let body = form(&[
            ("csrf", &lan.csrf),
            ("field", field),
            ("choice", choice),
            ("value", value),
        ]);
        let r = request(node.addr, "POST", &settle, Some(&lan.cookie), &body).await;
        assert!(
            [400, 409, 422].contains(&r.status),
            "{field} {choice}: {r:?}"
        );
    }
    let r = request(
        node.addr,
        "POST",
        &settle,
        Some(&hoa.cookie),
        &form(&[
            ("csrf", &hoa.csrf),
            ("field", "sector"),
            ("choice", "0"),
            ("value", "thủ công"),
        ]),
    )
    .await;
    assert_eq!(r.status, 404, "another commune: {r:?}");

    assert_eq!(stored(&node).await, before, "nothing written");
}

/// A sheet of cooperatives as an officer fills it in: (name, type, unit,
/// founded on) per row, under Vietnamese headers.
fn coops_xlsx(rows: &[(&str, &str, &str, &str)]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    ws.set_name("Hợp tác xã").unwrap();
    for (c, h) in ["Tên HTX/THT", "Loại hình", "Đơn vị", "Ngày thành lập"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in [row.0, row.1, row.2, row.3].iter().enumerate() {
            if let Some(f) = v.strip_prefix('=') {
                ws.write_formula(r as u32 + 1, c as u16, rust_xlsxwriter::Formula::new(f))
                    .unwrap();
            } else {
                ws.write_string(r as u32 + 1, c as u16, *v).unwrap();
            }
        }
    }
    book.save_to_buffer().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spreadsheet_with_two_bad_rows_writes_nothing_then_imports_once_fixed() {
    assert!(
        browser_installed(),
        "chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver"
    );
    let node = node().await;
    let before = node.export().await.len();
    let files = tempfile::TempDir::new().unwrap();
    let bad = files.path().join("hop-tac-xa.xlsx");
    std::fs::write(
        &bad,
        coops_xlsx(&[
            ("HTX Nấm Tân Khánh", "HTX", "13750", "15/01/2024"),
            ("HTX Rau Gôi", "HTX", "13741", "31/02/2024"),
            ("Tổ hợp tác Cói", "THT", "13633", "01/03/2024"),
        ]),
    )
    .unwrap();
    let b = Browser::start().await;
    sign_in_browser(&b, &node).await;
    b.click_and_wait(Locator::LinkText("Nhập, xuất dữ liệu"))
        .await;
    assert_eq!(b.path().await, "/import");
    b.screenshots("24-import").await;
    let upload = |path: std::path::PathBuf| {
        let b = &b;
        async move {
            b.client
                .find(Locator::Id("f-file"))
                .await
                .expect("the file field")
                .send_keys(path.to_str().unwrap())
                .await
                .expect("choose the file");
            b.click_and_wait(Locator::Css("form[action='/import'] button[type=submit]"))
                .await;
        }
    };
    upload(bad).await;
    let page = b.text().await;
    assert!(page.contains("Tệp có 2 lỗi: chưa ghi gì"), "{page}");
    // Each bad row, by its row in the sheet, with its reason.
    assert!(
        page.contains("31/02/2024") || page.contains("Ngày thành lập"),
        "{page}"
    );
    let rows: Vec<String> = {
        let mut out = Vec::new();
        for tr in b
            .client
            .find_all(Locator::Css("table.errors tbody tr"))
            .await
            .unwrap()
        {
            out.push(tr.text().await.unwrap());
        }
        out
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].contains("Hợp tác xã") && rows[0].contains(" 3 "),
        "{rows:?}"
    );
    assert!(rows[1].contains(" 4 "), "{rows:?}");
    b.screenshots("25-import-errors").await;
    assert_eq!(node.export().await.len(), before, "nothing written");

    // Fixed: checked, shown, confirmed, written as Lan's.
    let good = files.path().join("hop-tac-xa-da-sua.xlsx");
    std::fs::write(
        &good,
        coops_xlsx(&[
            ("HTX Nấm Tân Khánh", "HTX", "13750", "15/01/2024"),
            ("HTX Rau Gôi", "HTX", "13741", "28/02/2024"),
            ("Tổ hợp tác Cói", "THT", "Xã Tân Khánh", "01/03/2024"),
        ]),
    )
    .unwrap();
    upload(good).await;
    let page = b.text().await;
    assert!(page.contains("Tệp không có lỗi"), "{page}");
    assert!(
        page.contains("HTX, THT: 3") || page.contains(": 3"),
        "{page}"
    );
    b.screenshots("26-import-ready").await;
    assert_eq!(node.export().await.len(), before, "not before confirming");
    b.submit().await;
    let page = b.text().await;
    assert!(page.contains("Đã ghi 3 bản ghi"), "{page}");
    b.screenshots("27-import-written").await;
    let records = node.export().await;
    assert_eq!(records.len(), before + 3);
    let rau = records
        .iter()
        .find(|r| r["name"] == "HTX Rau Gôi")
        .expect("imported");
    assert_eq!(rau["recorded_by"], "lan@vu-ban");
    assert_eq!(rau["founded_on"], "2024-02-28");
    let coi = records
        .iter()
        .find(|r| r["name"] == "Tổ hợp tác Cói")
        .expect("imported");
    assert_eq!(coi["unit"], "13750", "a commune named by its name");

    // The template and the export download as files.
    let lan = sign_in(node.addr, "lan", PW).await.unwrap();
    let t = request(
        node.addr,
        "GET",
        "/import/template/cooperative",
        Some(&lan.cookie),
        b"",
    )
    .await;
    assert_eq!(t.status, 200);
    assert!(
        t.header("content-disposition")
            .unwrap()
            .contains("mau-hop-tac-xa.xlsx")
    );
    let e = request(
        node.addr,
        "GET",
        "/export/cooperative?format=csv",
        Some(&lan.cookie),
        b"",
    )
    .await;
    assert_eq!(e.status, 200);
    assert!(e.body.contains("HTX Rau Gôi"), "{}", e.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_a_browser_would_never_send_write_nothing() {
    let node = node().await;
    let before = node.export().await;
    let lan = sign_in(node.addr, "lan", PW).await.expect("lan");
    let hoa = sign_in(node.addr, "hoa", PW).await.expect("hoa");
    let xem = sign_in(node.addr, "xem", PW).await.expect("xem");
    let good = coops_xlsx(&[("HTX Nấm Tân Khánh", "HTX", "13750", "15/01/2024")]);
    let post =
        |cookie: String, fields: Vec<(&'static str, String)>, file: (&'static str, Vec<u8>)| {
            let addr = node.addr;
            async move {
                let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let (ty, body) = multipart(&f, (file.0, &file.1));
                request_typed(addr, "POST", "/import", Some(&cookie), Some(&ty), &body).await
            }
        };
    // No token; another session's token; a viewer.
    let r = post(lan.cookie.clone(), vec![], ("a.xlsx", good.clone())).await;
    assert_eq!(r.status, 403, "no token: {r:?}");
    let r = post(
        lan.cookie.clone(),
        vec![("csrf", xem.csrf.clone())],
        ("a.xlsx", good.clone()),
    )
    .await;
    assert_eq!(r.status, 403, "another session's token: {r:?}");
    let r = post(
        xem.cookie.clone(),
        vec![("csrf", xem.csrf.clone())],
        ("a.xlsx", good.clone()),
    )
    .await;
    assert_eq!(r.status, 403, "a viewer: {r:?}");
    // A program renamed .xlsx; an .xls; no file at all.
    let lan_form = || vec![("csrf", lan.csrf.clone())];
    let r = post(
        lan.cookie.clone(),
        lan_form(),
        ("bang.xlsx", b"MZ\x90\x00 not a workbook".to_vec()),
    )
    .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(
        r.body.contains("không phải tệp .xlsx hoặc .csv"),
        "{}",
        r.body
    );
    let r = post(lan.cookie.clone(), lan_form(), ("", Vec::new())).await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.body.contains("Hãy chọn một tệp"), "{}", r.body);
    // Over the limit: refused before it is read.
    let huge = vec![b'a'; (32 << 20) + (128 << 10)];
    let r = post(lan.cookie.clone(), lan_form(), ("to.csv", huge)).await;
    assert_eq!(r.status, 413, "too large");
    // A formula; script in a name (shown escaped, never run); a row of a
    // commune the officer does not serve.
    let r = post(
        lan.cookie.clone(),
        lan_form(),
        (
            "f.xlsx",
            coops_xlsx(&[("=HYPERLINK(\"http://x\")", "HTX", "13750", "01/01/2024")]),
        ),
    )
    .await;
    assert_eq!(r.status, 422, "a formula: {r:?}");
    assert!(r.body.contains("công thức"), "{}", r.body);
    // Merged cells below the header: which row a value is for is a guess.
    let merged = {
        let mut book = rust_xlsxwriter::Workbook::new();
        let ws = book.add_worksheet();
        ws.set_name("Hợp tác xã").unwrap();
        for (c, h) in ["Tên HTX/THT", "Loại hình", "Đơn vị"].iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        ws.write_string(1, 0, "HTX A").unwrap();
        ws.write_string(2, 0, "HTX B").unwrap();
        ws.merge_range(1, 1, 2, 1, "HTX", &rust_xlsxwriter::Format::new())
            .unwrap();
        ws.write_string(1, 2, "13750").unwrap();
        ws.write_string(2, 2, "13750").unwrap();
        book.save_to_buffer().unwrap()
    };
    let r = post(lan.cookie.clone(), lan_form(), ("m.xlsx", merged)).await;
    assert_eq!(r.status, 422, "merged cells: {r:?}");
    assert!(r.body.contains("gộp"), "{}", r.body);
    // Over 100,000 rows: refused as soon as the count shows it.
    let mut many = String::from("Tên HTX/THT;Loại hình;Đơn vị\n");
    for i in 0..100_001 {
        many.push_str(&format!("H{i};HTX;13750\n"));
    }
    let r = post(
        lan.cookie.clone(),
        lan_form(),
        ("hop-tac-xa.csv", many.into_bytes()),
    )
    .await;
    assert_eq!(r.status, 422, "too many rows: {r:?}");
    assert!(r.body.contains("100000 dòng"), "{}", r.body);
    let r = post(
        lan.cookie.clone(),
        lan_form(),
        (
            "s.xlsx",
            coops_xlsx(&[("<script>alert(1)</script>", "HTX", "sai", "01/01/2024")]),
        ),
    )
    .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(!r.body.contains("<script>alert(1)"), "escaped: {}", r.body);
    let r = post(
        hoa.cookie.clone(),
        vec![("csrf", hoa.csrf.clone())],
        (
            "gôi.xlsx",
            coops_xlsx(&[("HTX Rau Gôi", "HTX", "13741", "01/01/2024")]),
        ),
    )
    .await;
    assert_eq!(r.status, 422, "another commune's row: {r:?}");
    assert!(r.body.contains("Tệp có 1 lỗi"), "{}", r.body);

    // Confirming a file that was never checked, or another session's.
    let r = post(lan.cookie.clone(), lan_form(), ("a.xlsx", good.clone())).await;
    assert_eq!(r.status, 200, "{r:?}");
    let digest = r
        .body
        .split("name=\"digest\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    for (who, digest) in [(&hoa, digest.as_str()), (&lan, "00ff")] {
        let r = request(
            node.addr,
            "POST",
            "/import/confirm",
            Some(&who.cookie),
            &form(&[("csrf", &who.csrf), ("digest", digest)]),
        )
        .await;
        assert_eq!(r.status, 409, "{r:?}");
    }
    assert_eq!(node.export().await, before, "nothing written");
    // The export of a commune the officer does not serve: not found.
    let r = request(
        node.addr,
        "GET",
        "/export/cooperative?unit=13741",
        Some(&hoa.cookie),
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_accounts_from_the_pages() {
    assert!(
        browser_installed(),
        "chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver"
    );
    let node = node().await;
    let b = Browser::start().await;
    b.goto(&node.url("/login")).await;
    b.fill("name", "chi").await;
    b.fill("password", PW).await;
    b.submit().await;
    b.click_and_wait(Locator::LinkText("Tài khoản")).await;
    assert_eq!(b.path().await, "/admin/users");
    let page = b.text().await;
    for who in [
        "lan",
        "hoa",
        "xem",
        "chi",
        "Xã Tân Khánh (13750)",
        "tất cả đơn vị",
    ] {
        assert!(page.contains(who), "{who:?}:\n{page}");
    }
    b.screenshots("28-accounts").await;

    // Add Mai, an editor of Xã Tân Khánh: first with passwords that differ.
    let mai_pw = "mật khẩu của Mai";
    b.fill("f-name", "mai").await;
    b.choose("f-role", "cán bộ nhập liệu").await;
    b.choose("f-units", "Xã Tân Khánh (13750)").await;
    b.fill("f-password", mai_pw).await;
    b.fill("f-password2", "khác hẳn nhau").await;
    b.submit().await;
    assert!(b.text().await.contains("Hai lần nhập mật khẩu không khớp"));
    b.screenshots("29-account-errors").await;
    b.fill("f-password", mai_pw).await;
    b.fill("f-password2", mai_pw).await;
    b.submit().await;
    assert_eq!(b.path().await, "/admin/users");
    let mai = sign_in(node.addr, "mai", mai_pw)
        .await
        .expect("mai signs in");
    let r = request(node.addr, "GET", "/new/cooperative", Some(&mai.cookie), b"").await;
    assert_eq!(r.status, 200, "an editor may record");
    assert!(
        r.body.contains("Xã Tân Khánh") && !r.body.contains("Thị trấn Gôi"),
        "only her commune"
    );

    // A viewer now; then disabled: her session ends at once.
    b.click_and_wait(Locator::LinkText("mai")).await;
    assert_eq!(b.path().await, "/admin/users/mai");
    b.choose("f-role", "người xem").await;
    b.submit().await;
    assert!(b.text().await.contains("Đã lưu"));
    let r = request(node.addr, "GET", "/new/cooperative", Some(&mai.cookie), b"").await;
    assert_eq!(r.status, 403, "a viewer may not record");
    b.screenshots("30-account").await;
    b.click_and_wait(Locator::Css("form[action$='/state'] button"))
        .await;
    assert!(b.text().await.contains("đã khóa"));
    let r = request(node.addr, "GET", "/", Some(&mai.cookie), b"").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    assert!(
        sign_in(node.addr, "mai", mai_pw).await.is_none(),
        "disabled"
    );

    // A new password for Lan: her old session ends; the new one works.
    let lan = sign_in(node.addr, "lan", PW).await.unwrap();
    b.goto(&node.url("/admin/users/lan")).await;
    b.fill("f-password", "mật khẩu mới của Lan").await;
    b.fill("f-password2", "mật khẩu mới của Lan").await;
    b.click_and_wait(Locator::Css("form[action$='/password'] button"))
        .await;
    assert!(b.text().await.contains("Đã đặt mật khẩu mới"));
    let r = request(node.addr, "GET", "/", Some(&lan.cookie), b"").await;
    assert_eq!(r.status, 303, "the old session ended");
    assert!(
        sign_in(node.addr, "lan", "mật khẩu mới của Lan")
            .await
            .is_some()
    );
    assert!(sign_in(node.addr, "lan", PW).await.is_none());
    let audit = node.audit();
    for action in [
        "user_added",
        "user_changed",
        "user_disabled",
        "password_set",
    ] {
        assert!(audit.iter().any(|e| e["action"] == action), "{action}");
    }
    assert!(
        !std::fs::read_to_string(node.dir().join(htx_web::audit::FILE))
            .unwrap()
            .contains(mai_pw),
        "no password in the audit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_pages_refuse_what_a_browser_would_never_send() {
    let node = node().await;
    let lan = sign_in(node.addr, "lan", PW).await.unwrap();
    let chi = sign_in(node.addr, "chi", PW).await.unwrap();
    let users = || std::fs::read_to_string(node.dir().join("users.json")).unwrap();
    let before = users();
    let add = |csrf: &str, name: &str, role: &str, unit: &str| {
        form(&[
            ("csrf", csrf),
            ("name", name),
            ("role", role),
            ("units", unit),
            ("password", "đủ dài rồi nhé"),
            ("password2", "đủ dài rồi nhé"),
        ])
    };
    // Not an admin: the pages and the forms are refused.
    let r = request(node.addr, "GET", "/admin/users", Some(&lan.cookie), b"").await;
    assert_eq!(r.status, 403);
    let r = request(
        node.addr,
        "POST",
        "/admin/users",
        Some(&lan.cookie),
        &add(&lan.csrf, "x", "admin", ""),
    )
    .await;
    assert_eq!(r.status, 403, "an editor making an admin");
    let r = request(
        node.addr,
        "POST",
        "/admin/users/lan",
        Some(&lan.cookie),
        &form(&[("csrf", &lan.csrf), ("role", "admin")]),
    )
    .await;
    assert_eq!(r.status, 403, "an editor raising herself");
    // An admin's forged or bad forms.
    let r = request(
        node.addr,
        "POST",
        "/admin/users",
        Some(&chi.cookie),
        &add(&lan.csrf, "x", "editor", ""),
    )
    .await;
    assert_eq!(r.status, 403, "another session's token");
    for (what, body, needle) in [
        (
            "a unit of another district",
            add(&chi.csrf, "x", "editor", "13633"),
            "không thuộc phạm vi",
        ),
        (
            "an unknown role",
            add(&chi.csrf, "x", "superuser", ""),
            "Hãy chọn một vai trò",
        ),
        (
            "an analyst at a node",
            add(&chi.csrf, "x", "analyst", ""),
            "Hãy chọn một vai trò",
        ),
        (
            "script in the name",
            add(&chi.csrf, "<script>alert(1)</script>", "editor", ""),
            "Tên đăng nhập chỉ gồm",
        ),
        (
            "a name taken",
            add(&chi.csrf, "lan", "editor", ""),
            "Đã có tài khoản",
        ),
    ] {
        let r = request(node.addr, "POST", "/admin/users", Some(&chi.cookie), &body).await;
        assert_eq!(r.status, 422, "{what}: {r:?}");
        assert!(r.body.contains(needle), "{what}: {}", r.body);
        assert!(!r.body.contains("<script>alert(1)"), "escaped");
    }
    let short = form(&[
        ("csrf", &chi.csrf),
        ("name", "y"),
        ("role", "viewer"),
        ("password", "ngắn"),
        ("password2", "ngắn"),
    ]);
    let r = request(node.addr, "POST", "/admin/users", Some(&chi.cookie), &short).await;
    assert_eq!(r.status, 422, "a short password");
    // The last admin cannot disable herself or step down.
    let r = request(
        node.addr,
        "POST",
        "/admin/users/chi/state",
        Some(&chi.cookie),
        &form(&[("csrf", &chi.csrf), ("disable", "1")]),
    )
    .await;
    assert_eq!(r.status, 422, "{r:?}");
    let r = request(
        node.addr,
        "POST",
        "/admin/users/chi",
        Some(&chi.cookie),
        &form(&[("csrf", &chi.csrf), ("role", "viewer")]),
    )
    .await;
    assert_eq!(r.status, 422, "{r:?}");
    // An account that does not exist.
    let r = request(
        node.addr,
        "GET",
        "/admin/users/khong-co",
        Some(&chi.cookie),
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(users(), before, "no account changed");
}

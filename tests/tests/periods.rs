//! Closing a period (issue 11) as the province meets it: an analyst closes
//! 2025 in a real browser; a node that was offline syncs a record dated
//! inside 2025; the closed figures stand, the current ones are beside
//! them, and the records that make the difference are flagged (people's
//! names only for those who may see them). An admin reopens and closes
//! again; a district confirms it has submitted and the province sees who
//! has not; the audit names each step. Then what a browser would never
//! send: a viewer closing, a forged form, a district closing the province
//! or submitting for another district, a period that does not parse, and
//! `/api/progress` without a session or outside the account's units.
//!
//! Real hub (served on loopback), real nodes over mutual TLS, headless
//! Chromium for the story (screenshots at 1280 and 360 px in
//! `target/screenshots/`), plain HTTP for the attacks, the real
//! `htx-hub period` command.

use fantoccini::Locator;
use htx_tests::web::http::{form, request, sign_in};
use htx_tests::web::{Browser, browser_installed};
use htx_tests::{TestHub, consolidated_htx_on};

const PW: &str = "mật khẩu kiểm thử đủ dài";

async fn add_account(hub: &TestHub, name: &str, role: &str, units: &[&str]) {
    let accounts = htx_web::Accounts::new(hub.dir(), Default::default());
    accounts
        .add(
            name,
            role.parse().unwrap(),
            units.iter().map(|u| u.to_string()).collect(),
            PW,
        )
        .unwrap();
}

/// The number in the cell `attr="HTX_CONSOLIDATED"` of a page's source.
fn cell(source: &str, attr: &str) -> i64 {
    let key = format!("{attr}=\"HTX_CONSOLIDATED\">");
    let at = source.find(&key).unwrap_or_else(|| panic!("no {key}")) + key.len();
    source[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn web_audit(hub: &TestHub) -> Vec<serde_json::Value> {
    std::fs::read_to_string(hub.dir().join(htx_web::audit::FILE))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn sign_in_browser(b: &Browser, base: &str, name: &str) {
    b.client.delete_all_cookies().await.unwrap();
    b.goto(&format!("{base}/login")).await;
    b.fill("name", name).await;
    b.fill("password", PW).await;
    b.submit().await;
    for _ in 0..100 {
        if b.path().await != "/login" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{name} not signed in: {}", b.text().await);
}

/// Clicks the button `#id` (a form post) and waits for the page it leads
/// to: the old page gone, the new one loaded.
async fn click(b: &Browser, id: &str) {
    b.click_and_wait(Locator::Id(id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_period_keeps_its_figures_and_flags_a_back_dated_record() {
    assert!(
        browser_installed(),
        "chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver"
    );
    let hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    let vu_ban = hub.enroll_node("359", "node-359");
    consolidated_htx_on(
        &city,
        "13633",
        "HTX Dệt may Hạ Long",
        "2025-03-01",
        "2025-03-01",
    );
    consolidated_htx_on(
        &vu_ban,
        "13741",
        "HTX Mây tre Gôi",
        "2025-04-01",
        "2025-04-01",
    );
    city.sync().await.unwrap();
    vu_ban.sync().await.unwrap();
    add_account(&hub, "phan-tich", "analyst", &[]).await;
    add_account(&hub, "quan-tri", "admin", &[]).await;
    add_account(&hub, "lan", "viewer", &["356"]).await;
    let base = hub.http_url();
    let b = Browser::start().await;

    // The analyst closes 2025.
    sign_in_browser(&b, &base, "phan-tich").await;
    b.goto(&format!("{base}/periods")).await;
    assert!(b.text().await.contains("Chốt số liệu kỳ báo cáo"));
    b.screenshots("periods-list").await;
    b.goto(&format!("{base}/periods?period=2025")).await;
    assert!(b.text().await.contains("chưa chốt"));
    assert!(
        b.client.find(Locator::Id("reopen-period")).await.is_err(),
        "an analyst cannot reopen"
    );
    click(&b, "close-period").await;
    let text = b.text().await;
    assert!(text.contains("Đã chốt số liệu bởi phan-tich"), "{text}");
    assert!(text.contains("Số liệu hiện tại trùng với số liệu đã chốt"));
    let src = b.client.source().await.unwrap();
    assert_eq!(cell(&src, "data-closed"), 2);
    assert_eq!(cell(&src, "data-now"), 2);

    // Node 356 was offline for months; it syncs a record dated in 2025.
    let (late, chair) =
        consolidated_htx_on(&city, "13633", "HTX Về muộn", "2025-06-15", "2025-06-15");
    city.sync().await.unwrap();
    b.goto(&format!("{base}/periods?period=2025")).await;
    let text = b.text().await;
    assert!(
        text.contains("số liệu đã thay đổi so với khi chốt"),
        "{text}"
    );
    assert!(text.contains("có chênh lệch"));
    assert!(text.contains("gửi lên sau khi chốt"));
    let src = b.client.source().await.unwrap();
    assert_eq!(cell(&src, "data-closed"), 2, "the closed figure stands");
    assert_eq!(cell(&src, "data-now"), 3, "the current one beside it");
    assert!(src.contains(&format!("data-record=\"{late}\"")));
    assert!(src.contains(&format!("data-record=\"{chair}\"")));
    assert!(src.contains("Nguyễn Thị Hoa"), "an analyst may see names");
    assert!(src.contains("HTX Về muộn"));
    assert!(src.contains("data-unit=\"356\""), "the district that moved");
    assert!(
        !src.contains("data-unit=\"359\""),
        "not the one that did not"
    );
    b.screenshots("period-closed-difference").await;
    // The report of the period shows the same.
    b.goto(&format!("{base}/report?period=2025")).await;
    let src = b.client.source().await.unwrap();
    assert_eq!(cell(&src, "data-closed"), 2);
    assert_eq!(cell(&src, "data-now"), 3);
    b.screenshots("period-report").await;
    // And its workbook: the closed figures beside the current ones, and the
    // records that make the difference, by id, without names.
    let cookie = format!(
        "htx_session={}",
        b.client
            .get_named_cookie("htx_session")
            .await
            .unwrap()
            .value()
    );
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let bytes =
        htx_tests::web::http::request_bytes(addr, "/report?period=2025&format=xlsx", &cookie).await;
    let path = hub.dir().join("bao-cao-2025.xlsx");
    std::fs::write(&path, bytes).unwrap();
    {
        use calamine::{Reader, Xlsx, open_workbook};
        let mut wb: Xlsx<_> = open_workbook(&path).unwrap();
        let closed = wb
            .worksheet_range("Số liệu đã chốt")
            .expect("a closed-figures sheet");
        let row = closed
            .rows()
            .find(|r| r[0].to_string().contains("(36)") && r[1] == "HTX_CONSOLIDATED")
            .expect("the province's figure");
        assert_eq!(
            (row[2].to_string(), row[3].to_string(), row[4].to_string()),
            ("2".into(), "3".into(), "Có".into())
        );
        let records = wb.worksheet_range("Bản ghi thay đổi sau chốt").unwrap();
        let ids: Vec<String> = records.rows().map(|r| r[0].to_string()).collect();
        assert!(ids.contains(&late) && ids.contains(&chair), "{ids:?}");
        let all: String = records.rows().flatten().map(|c| c.to_string()).collect();
        assert!(
            !all.contains("Nguyễn Thị Hoa") && !all.contains("HTX Về muộn"),
            "no names"
        );
    }

    // The district viewer sees her district's part, without names, and
    // confirms her district has submitted.
    sign_in_browser(&b, &base, "lan").await;
    b.goto(&format!("{base}/periods?period=2025")).await;
    let src = b.client.source().await.unwrap();
    assert!(src.contains(&format!("data-record=\"{chair}\"")));
    assert!(!src.contains("Nguyễn Thị Hoa"), "a viewer sees no names");
    assert!(
        b.client.find(Locator::Id("close-period")).await.is_err(),
        "a viewer cannot close"
    );
    click(&b, "submit-356").await;
    let text = b.text().await;
    assert!(
        text.contains("Xác nhận lại") && text.contains("lan xác nhận"),
        "{text}"
    );
    b.screenshots("period-district").await;

    // The admin sees who has submitted, reopens, and closes again.
    sign_in_browser(&b, &base, "quan-tri").await;
    b.goto(&format!("{base}/periods?period=2025")).await;
    let src = b.client.source().await.unwrap();
    let row = |unit: &str| {
        let at = src
            .find(&format!("data-submission=\"{unit}\""))
            .unwrap_or_else(|| panic!("{unit} listed"));
        src[at..at + src[at..].find("</tr>").unwrap()].to_owned()
    };
    assert!(row("356").contains("đã gửi") && row("356").contains("lan"));
    assert!(row("359").contains("chưa gửi"));
    b.screenshots("period-province-submissions").await;
    click(&b, "reopen-period").await;
    assert!(b.text().await.contains("chưa chốt"));
    click(&b, "close-period").await;
    let text = b.text().await;
    assert!(text.contains("Đã chốt số liệu bởi quan-tri"), "{text}");
    assert!(text.contains("Số liệu hiện tại trùng với số liệu đã chốt"));
    let src = b.client.source().await.unwrap();
    assert_eq!(cell(&src, "data-closed"), 3);
    b.screenshots("period-closed-again").await;

    // Every step audited, by whom; and in the period's own log.
    let audit = web_audit(&hub);
    let steps: Vec<(String, String)> = audit
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("period_"))
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("period_closed", "phan-tich"),
        ("period_submitted", "lan"),
        ("period_reopened", "quan-tri"),
        ("period_closed", "quan-tri"),
    ];
    assert_eq!(
        steps,
        expect.map(|(a, u)| (a.to_owned(), u.to_owned())),
        "{audit:?}"
    );
    let file: serde_json::Value = serde_json::from_slice(
        &std::fs::read(hub.dir().join("periods/de-an-01-nam-dinh/2025.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["history"].as_array().unwrap().len(), 4);
    let kept = serde_json::to_string(&file).unwrap();
    assert!(!kept.contains("Nguyễn Thị Hoa"), "the hub keeps no names");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn period_forms_and_the_progress_api_refuse_what_they_must() {
    let mut hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    consolidated_htx_on(
        &city,
        "13633",
        "HTX Dệt may Hạ Long",
        "2025-03-01",
        "2025-03-01",
    );
    city.sync().await.unwrap();
    add_account(&hub, "xem", "viewer", &[]).await;
    add_account(&hub, "phan-tich", "analyst", &[]).await;
    add_account(&hub, "huyen", "analyst", &["359"]).await;
    add_account(&hub, "lan", "viewer", &["356"]).await;
    let addr = hub.http_addr();
    let file = hub.dir().join("periods/de-an-01-nam-dinh/2025.json");
    let post = |path: &'static str, cookie: String, body: Vec<u8>| async move {
        request(addr, "POST", path, Some(&cookie), &body).await
    };

    // A viewer cannot close, even with her session's token.
    let xem = sign_in(addr, "xem", PW).await.unwrap();
    let r = post(
        "/periods/close",
        xem.cookie.clone(),
        form(&[("csrf", &xem.csrf), ("period", "2025")]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Không có quyền"));
    // A forged post (no token, a wrong one, another session's) is refused.
    let analyst = sign_in(addr, "phan-tich", PW).await.unwrap();
    for body in [
        form(&[("period", "2025")]),
        form(&[("csrf", "00ff"), ("period", "2025")]),
        form(&[("csrf", &xem.csrf), ("period", "2025")]),
    ] {
        let r = post("/periods/close", analyst.cookie.clone(), body).await;
        assert_eq!(r.status, 403);
        assert!(r.body.contains("Biểu mẫu không hợp lệ") && r.body.contains("Form refused"));
    }
    assert!(!file.exists(), "nothing closed");
    // An analyst of a district cannot close the province, nor submit
    // for another district; for her own she can.
    let huyen = sign_in(addr, "huyen", PW).await.unwrap();
    let r = post(
        "/periods/close",
        huyen.cookie.clone(),
        form(&[("csrf", &huyen.csrf), ("period", "2025")]),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        "/periods/submit",
        huyen.cookie.clone(),
        form(&[("csrf", &huyen.csrf), ("period", "2025"), ("unit", "356")]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(!file.exists(), "nothing submitted");
    let submit_359 = || {
        post(
            "/periods/submit",
            huyen.cookie.clone(),
            form(&[("csrf", &huyen.csrf), ("period", "2025"), ("unit", "359")]),
        )
    };
    let r = submit_359().await;
    assert_eq!(r.status, 303, "{r:?}");
    // She may withdraw her own submission, not another district's, not
    // without the form's token, and not twice.
    let submitted = || {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        json["submissions"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(submitted(), ["359"]);
    for (unit, csrf, status) in [("356", huyen.csrf.as_str(), 403), ("359", "", 403)] {
        let r = post(
            "/periods/withdraw",
            huyen.cookie.clone(),
            form(&[("csrf", csrf), ("period", "2025"), ("unit", unit)]),
        )
        .await;
        assert_eq!(r.status, status, "{unit} {r:?}");
        assert_eq!(submitted(), ["359"], "nothing withdrawn");
    }
    let withdraw = || {
        post(
            "/periods/withdraw",
            huyen.cookie.clone(),
            form(&[("csrf", &huyen.csrf), ("period", "2025"), ("unit", "359")]),
        )
    };
    assert_eq!(withdraw().await.status, 303);
    assert!(submitted().is_empty());
    let page = request(
        addr,
        "GET",
        "/periods?period=2025",
        Some(&huyen.cookie),
        b"",
    )
    .await;
    assert!(
        page.body.contains("rút lại xác nhận đã gửi"),
        "the history says so"
    );
    let again = withdraw().await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("chưa xác nhận gửi") && again.body.contains("nothing to withdraw"));
    let r = submit_359().await;
    assert_eq!(r.status, 303, "submitted again: {r:?}");
    // A period that does not parse: a clear error in both languages.
    for path in ["/periods?period=h%C3%B4m-qua", "/report?period=2025%3BDROP"] {
        let r = request(addr, "GET", path, Some(&analyst.cookie), b"").await;
        assert_eq!(r.status, 400, "{path}");
        assert!(r.body.contains("kỳ báo cáo không hợp lệ"), "{path}");
        assert!(r.body.contains("is not a period"), "{path}");
    }
    let r = post(
        "/periods/close",
        analyst.cookie.clone(),
        form(&[("csrf", &analyst.csrf), ("period", "năm ngoái")]),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("kỳ báo cáo không hợp lệ") && r.body.contains("is not a period"));
    // A period not over yet cannot be closed.
    let this_year = time::OffsetDateTime::now_utc().year().to_string();
    let r = post(
        "/periods/close",
        analyst.cookie.clone(),
        form(&[("csrf", &analyst.csrf), ("period", &this_year)]),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("chưa kết thúc"));
    // The analyst closes 2025; twice is refused; she cannot reopen.
    let r = post(
        "/periods/close",
        analyst.cookie.clone(),
        form(&[("csrf", &analyst.csrf), ("period", "2025")]),
    )
    .await;
    assert_eq!(r.status, 303, "{r:?}");
    let page = request(
        addr,
        "GET",
        "/periods?period=2025",
        Some(&analyst.cookie),
        b"",
    )
    .await;
    assert!(
        page.body.contains("Vốn vay hỗ trợ HTX (đồng)") && page.body.contains("0 đ"),
        "a closed amount in đồng says so"
    );
    let r = post(
        "/periods/close",
        analyst.cookie.clone(),
        form(&[("csrf", &analyst.csrf), ("period", "2025")]),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("đã được chốt"));
    let r = post(
        "/periods/reopen",
        analyst.cookie.clone(),
        form(&[("csrf", &analyst.csrf), ("period", "2025")]),
    )
    .await;
    assert_eq!(r.status, 403);
    let refused: Vec<String> = web_audit(&hub)
        .iter()
        .filter(|e| e["action"].as_str().unwrap().ends_with("_refused"))
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for a in [
        "csrf_refused",
        "period_close_refused",
        "period_submit_refused",
        "period_withdraw_refused",
        "period_reopen_refused",
    ] {
        assert!(refused.iter().any(|r| r == a), "{a} audited: {refused:?}");
    }

    // /api/progress: no session, 401 in both languages.
    for path in ["/api/progress", "/api/progress.csv?unit=356"] {
        let r = request(addr, "GET", path, None, b"").await;
        assert_eq!(r.status, 401, "{path}");
        assert!(r.body.contains("sign in") && r.body.contains("đăng nhập"));
    }
    // A district viewer: her district and its communes, nothing else.
    let lan = sign_in(addr, "lan", PW).await.unwrap();
    for path in [
        "/api/progress?unit=36",
        "/api/progress?unit=359",
        "/api/progress.csv?unit=13741",
        "/api/progress?hierarchy=2025",
    ] {
        let r = request(addr, "GET", path, Some(&lan.cookie), b"").await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("may not see") && r.body.contains("không được xem"));
    }
    let r = request(addr, "GET", "/api/progress", Some(&lan.cookie), b"").await;
    assert_eq!(r.status, 200);
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["units"][0]["unit"], "356", "her district by default");
    assert!(!r.body.contains("\"unit\":\"359\""));
    let r = request(
        addr,
        "GET",
        "/api/progress?unit=13633",
        Some(&lan.cookie),
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "a commune of hers");
    let r = request(addr, "GET", "/api/progress?unit=36", Some(&xem.cookie), b"").await;
    assert_eq!(r.status, 200, "a province-wide account");
    assert!(r.body.contains("node-356"), "signed in: its sources");

    // Off by default: no public page.
    let r = request(addr, "GET", "/public", None, b"").await;
    assert_eq!(r.status, 404, "no public page unless chosen");

    // public_progress = true: counts only, to anyone.
    let toml = hub.dir().join("hub.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains("public_progress = false"), "documented, off");
    std::fs::write(
        &toml,
        text.replace("public_progress = false", "public_progress = true"),
    )
    .unwrap();
    hub.restart().await;
    let addr = hub.http_addr();
    let r = request(addr, "GET", "/api/progress?unit=36", None, b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["units"][0]["unit"], "36");
    assert!(!r.body.contains("node-356"), "no node named");
    let r = request(addr, "GET", "/api/progress.csv", None, b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("HTX_CONSOLIDATED") && !r.body.contains("node-356"));
    // The public page: the province's indicators, no node, no record, no name.
    let r = request(addr, "GET", "/public", None, b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Tiến độ thực hiện Đề án 01") && r.body.contains("Tỉnh Nam Định"));
    assert!(r.body.contains("data-indicator=\"HTX_CONSOLIDATED\""));
    for private in ["node-356", "/figure", "/units", "Nguyễn"] {
        assert!(!r.body.contains(private), "{private} on the public page");
    }

    // The command: list and reopen while the hub runs; close when stopped.
    let dir = hub.dir().to_owned();
    let cmd = |args: Vec<&str>| {
        let mut all: Vec<std::ffi::OsString> = vec![args[0].into(), args[1].into()];
        all.push(dir.clone().into_os_string());
        all.extend(args[2..].iter().map(|a| a.into()));
        async move { htx_tests::run("htx-hub", &all).await }
    };
    let out = cmd(vec!["period", "list"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("2025") && out.stdout.contains("closed"));
    assert!(out.stdout.contains("359"), "huyen's submission");
    let out = cmd(vec![
        "period",
        "reopen",
        "--period",
        "2025",
        "--by",
        "cli-admin",
    ])
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    let out = cmd(vec![
        "period",
        "close",
        "--period",
        "2025",
        "--by",
        "cli-admin",
    ])
    .await;
    assert!(
        !out.status.success(),
        "the store is held by the running hub"
    );
    assert!(out.stderr.contains("/periods"), "{}", out.stderr);
    hub.stop().await;
    let out = cmd(vec![
        "period",
        "close",
        "--period",
        "2025",
        "--by",
        "cli-admin",
    ])
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("data version"));
    let out = cmd(vec![
        "period", "close", "--plan", "khac", "--period", "2025", "--by", "x",
    ])
    .await;
    assert!(!out.status.success() && out.stderr.contains("kế hoạch"));
    let out = cmd(vec!["period", "reopen", "--period", "bogus", "--by", "x"]).await;
    assert!(!out.status.success() && out.stderr.contains("kỳ báo cáo không hợp lệ"));
    let cli: Vec<String> = web_audit(&hub)
        .iter()
        .filter(|e| e["user"] == "cli-admin")
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cli, ["period_reopened", "period_closed"]);
}

//! The officers' web app in a real browser (headless Chromium through
//! chromedriver): sign in, read the progress, add a cooperative with a
//! female chair and an observation through the forms only, see the
//! node's progress change, switch to English and back. Every page is saved
//! as a screenshot at 1280 px and at 360 px (`target/screenshots/`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them); without them the test says so and fails.

use std::path::Path;

use fantoccini::Locator;
use htx_tests::web::{Browser, WebNode, browser_installed};

const PASSWORD: &str = "mật khẩu của Lan";

/// The value shown under an indicator on the home page ("Kết quả thực hiện: N").
fn indicator_value(text: &str, name: &str) -> i64 {
    let at = text
        .find(name)
        .unwrap_or_else(|| panic!("indicator {name:?} not on the page:\n{text}"));
    let rest = &text[at + name.len()..];
    let v = rest
        .find("Kết quả thực hiện: ")
        .map(|i| &rest[i + "Kết quả thực hiện: ".len()..])
        .expect("a value");
    v.chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {name:?}: {v:.40}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_records_a_cooperative_through_the_pages_and_sees_progress_change() {
    assert!(
        browser_installed(),
        "chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver"
    );
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sample/vu-ban.csv");
    let node = WebNode::start(
        "359",
        "vu-ban",
        Some(&csv),
        &[("lan", "editor", &[], PASSWORD)],
    )
    .await;
    let b = Browser::start().await;

    // Not signed in: every page leads to the sign-in form, in Vietnamese.
    b.goto(&node.url("/cooperatives")).await;
    assert_eq!(b.path().await, "/login");
    assert!(b.text().await.contains("Đăng nhập"));
    b.screenshots("01-sign-in").await;

    // A wrong password: refused, in words.
    b.fill("name", "lan").await;
    b.fill("password", "sai mật khẩu").await;
    b.submit().await;
    assert!(
        b.text()
            .await
            .contains("Tên đăng nhập hoặc mật khẩu không đúng")
    );
    b.screenshots("02-sign-in-refused").await;

    // Signed in with the keyboard only: type, Tab, type, Enter.
    let name = b.client.find(Locator::Id("name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("lan\u{E004}").await.unwrap(); // Tab
    let focused = b
        .client
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(
        focused, "password",
        "Tab moves from the name to the password"
    );
    b.client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(&format!("{PASSWORD}\u{E007}")) // Enter
        .await
        .unwrap();
    b.wait_for_path("/").await;
    let home = b.text().await;
    assert!(home.contains("Tình hình thực hiện kế hoạch"), "{home}");
    assert!(home.contains("lan (cán bộ nhập liệu)"));
    // A district without an allocation of the plan's targets says so once,
    // and shows no status (never a missing translation's key).
    assert_eq!(home.matches("Chưa phân bổ chỉ tiêu").count(), 1, "{home}");
    assert!(!home.contains("status-"), "{home}");
    let new_jobs_before = indicator_value(&home, "Việc làm mới cho lao động nữ");
    let stable_before = indicator_value(
        &home,
        "Việc làm ổn định cho thành viên, lao động nữ trong HTX, THT",
    );
    b.screenshots("03-home").await;

    // The list per commune, with a filter.
    b.goto(&node.url("/cooperatives")).await;
    assert!(b.text().await.contains("HTX Mây tre đan Gôi"));
    b.choose("unit", "Xã Thành Lợi").await;
    b.click_and_wait(Locator::Css("form.filters button[type=submit]"))
        .await;
    let filtered = b.text().await;
    assert!(filtered.contains("THT Nuôi ong Thành Lợi"));
    assert!(!filtered.contains("HTX Mây tre đan Gôi"));
    b.screenshots("04-cooperatives").await;

    // Add a cooperative: first with mistakes, shown beside their fields.
    b.goto(&node.url("/new/cooperative")).await;
    b.screenshots("05-new-cooperative").await;
    b.choose("f-unit", "Xã Tân Khánh").await;
    b.choose("f-type", "Hợp tác xã (HTX)").await;
    b.fill("f-founded_on", "31/02/2024").await;
    b.submit().await;
    let errors = b.text().await;
    assert!(errors.contains("Biểu mẫu có lỗi, chưa lưu"), "{errors}");
    assert!(
        errors.contains("Bắt buộc nhập."),
        "the missing name is named"
    );
    assert!(
        errors.contains("Ngày không hợp lệ"),
        "the impossible date is named"
    );
    b.screenshots("06-form-errors").await;
    let before = node.export().await.len();

    b.fill("f-name", "HTX Rau an toàn Tân Khánh").await;
    b.fill("f-founded_on", "05/01/2024").await;
    b.choose("f-union_supported", "Có").await;
    b.fill("f-consolidated_on", "10/03/2025").await;
    b.submit().await;
    let coop_url = b.path().await;
    assert!(
        coop_url.starts_with("/records/"),
        "lands on the cooperative: {coop_url}"
    );
    let page = b.text().await;
    assert!(page.contains("HTX Rau an toàn Tân Khánh"));
    assert!(page.contains("10/03/2025"), "dates shown dd/mm/yyyy");
    assert!(
        page.contains("lan@vu-ban"),
        "the officer is recorded: {page}"
    );

    // A female chair, picked from the cooperative's page.
    b.click_and_wait(Locator::LinkText("Thêm người quản lý"))
        .await;
    b.fill("f-name", "Phạm Thị Hạnh").await;
    b.choose("f-gender", "Nữ").await;
    b.choose("f-role", "Chủ tịch").await;
    b.fill("f-since", "05/01/2024").await;
    b.screenshots("07-new-manager").await;
    b.submit().await;
    assert_eq!(b.path().await, coop_url, "back on the cooperative's page");

    // Figures, with the cooperative already chosen by name.
    b.click_and_wait(Locator::LinkText("Thêm số liệu")).await;
    let chosen = b
        .client
        .execute(
            "var s = document.getElementById('f-cooperative'); return s.options[s.selectedIndex].text",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        chosen
            .as_str()
            .unwrap()
            .starts_with("HTX Rau an toàn Tân Khánh"),
        "the cooperative is picked by name: {chosen}"
    );
    let today = time::OffsetDateTime::now_utc().date();
    b.fill("f-observed_on", &htx_web::format::date(today)).await;
    b.fill("f-workers", "10").await;
    b.fill("f-female_workers", "8").await;
    b.fill("f-stable_jobs_women", "6").await;
    b.fill("f-new_jobs_women", "7").await;
    b.submit().await;
    assert_eq!(b.path().await, coop_url);
    let page = b.text().await;
    assert!(page.contains("Phạm Thị Hạnh"));
    assert!(
        page.contains("phụ nữ tham gia quản lý, điều hành"),
        "in scope, and why"
    );
    b.screenshots("08-cooperative").await;

    // Written once each, by the officer, on the node's disk.
    let records = node.export().await;
    assert_eq!(records.len(), before + 3);
    let coop = records
        .iter()
        .find(|r| r["name"] == "HTX Rau an toàn Tân Khánh")
        .expect("the cooperative is stored");
    assert_eq!(coop["recorded_by"], "lan@vu-ban");
    assert_eq!(coop["unit"], "13750");
    assert_eq!(coop["founded_on"], "2024-01-05");

    // The progress moved by what was recorded.
    b.goto(&node.url("/")).await;
    let home = b.text().await;
    assert_eq!(
        indicator_value(&home, "Việc làm mới cho lao động nữ"),
        new_jobs_before + 7
    );
    assert_eq!(
        indicator_value(
            &home,
            "Việc làm ổn định cho thành viên, lao động nữ trong HTX, THT"
        ),
        stable_before + 6
    );

    // English on request, remembered for the officer; then back.
    b.click_and_wait(Locator::Css("header form[action='/lang'] button"))
        .await;
    let en = b.text().await;
    assert!(en.contains("Progress against the plan"), "{en}");
    b.screenshots("09-home-english").await;
    b.goto(&node.url("/cooperatives")).await;
    assert!(
        b.text()
            .await
            .contains("Cooperatives (HTX) and cooperative groups (THT)")
    );
    b.click_and_wait(Locator::Css("header form[action='/lang'] button"))
        .await;
    assert!(
        b.text()
            .await
            .contains("Hợp tác xã (HTX) và tổ hợp tác (THT)")
    );

    // An unknown page: an error page in both languages.
    b.goto(&node.url("/no/such/page")).await;
    let text = b.text().await;
    assert!(text.contains("Không tìm thấy trang") && text.contains("Page not found"));
    b.screenshots("10-not-found").await;

    // Sign out: the pages need signing in again.
    b.goto(&node.url("/")).await;
    b.click_and_wait(Locator::Css("header form[action='/logout'] button"))
        .await;
    assert_eq!(b.path().await, "/login");
    b.goto(&node.url("/")).await;
    assert_eq!(b.path().await, "/login");
    let _ = b.client.clone().close().await;
}

//! The province's dashboard in a real browser (headless Chromium): a
//! district viewer signs in and sees her district only; the admin drills
//! down from the province to a district and its communes, reads the trends,
//! the nodes and the yearly report, and the report's workbook (opened with
//! calamine) holds the progress API's figures. Every page is saved at
//! 1280 px and 360 px (`target/screenshots/hub-*`).

use fantoccini::Locator;
use htx_tests::web::http::request;
use htx_tests::web::{Browser, browser_installed};
use htx_tests::{TestHub, TestNode};

const PW: &str = "mật khẩu đủ dài 2025";

fn add_user(dir: &std::path::Path, name: &str, role: &str, units: &[&str]) {
    let out = htx_tests::hub_user_add(dir, name, role, units, PW);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn consolidated_htx(node: &TestNode, unit: &str, name: &str) {
    htx_tests::consolidated_htx(node, unit, name, "2024-02-01");
}

async fn sign_in(b: &Browser, base: &str, name: &str) {
    b.goto(&format!("{base}/login")).await;
    b.fill("name", name).await;
    b.fill("password", PW).await;
    b.submit().await;
    assert_eq!(b.path().await, "/", "{name} signed in");
}

async fn sign_out(b: &Browser) {
    b.click_and_wait(Locator::Css("form[action='/logout'] button"))
        .await;
}

async fn click(b: &Browser, text: &str) {
    b.click_and_wait(Locator::LinkText(text)).await;
}

fn figure(api: &serde_json::Value, unit: &str, indicator: &str) -> i64 {
    api["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == unit)
        .unwrap()["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["indicator"] == indicator && f["phase"] == "1")
        .unwrap()["numerator"]
        .as_i64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_sees_its_own_and_the_province_drills_down_and_reports() {
    assert!(
        browser_installed(),
        "chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver"
    );
    let hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    let vu_ban = hub.enroll_node("359", "node-359");
    consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long");
    consolidated_htx(&city, "13636", "HTX Rau sạch Lộc Hạ");
    consolidated_htx(&vu_ban, "13741", "HTX Mây tre Gôi");
    city.sync().await.unwrap();
    vu_ban.sync().await.unwrap();
    add_user(hub.dir(), "lan", "viewer", &["356"]);
    add_user(hub.dir(), "admin", "admin", &[]);
    let base = hub.http_url();
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let b = Browser::start().await;

    // The district viewer: her district, and no other, whatever the URL.
    sign_in(&b, &base, "lan").await;
    b.goto(&format!("{base}/?as_of=2024-12-31")).await;
    let page = b.text().await;
    assert!(page.contains("Thành phố Nam Định"), "{page}");
    assert!(
        page.contains("node-356") && !page.contains("node-359"),
        "{page}"
    );
    b.screenshots("hub-01-district-overview").await;
    // The records behind her figure: her two cooperatives, nobody's name.
    b.click_and_wait(Locator::Css("#ind-HTX_CONSOLIDATED a[href^='/figure']"))
        .await;
    assert_eq!(b.path().await, "/figure");
    let page = b.text().await;
    assert!(
        page.contains("HTX Dệt may Hạ Long") && page.contains("HTX Rau sạch Lộc Hạ"),
        "{page}"
    );
    assert!(!page.contains("HTX Mây tre Gôi"), "another district's");
    assert_eq!(
        b.client
            .find(Locator::Css("[data-total]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "2"
    );
    b.screenshots("hub-10-figure-records").await;
    b.goto(&format!(
        "{base}/figure?indicator=MANAGERS_TRAINED_PCT&as_of=2024-12-31"
    ))
    .await;
    let page = b.text().await;
    assert!(
        page.contains("dữ liệu cá nhân") && !page.contains("Nguyễn Thị Hoa"),
        "{page}"
    );
    for (bad, status) in [
        (
            "/figure?unit=359&indicator=HTX_CONSOLIDATED",
            "Không có quyền",
        ),
        (
            "/figure?indicator=%3Cscript%3Ealert(1)%3C/script%3E",
            "chỉ tiêu không có trong kế hoạch",
        ),
    ] {
        b.goto(&format!("{base}{bad}")).await;
        let page = b.text().await;
        assert!(page.contains(status), "{bad}: {page}");
        let html = b.client.source().await.unwrap();
        assert!(!html.contains("<script>alert(1)"), "escaped");
    }
    b.goto(&format!("{base}/?unit=359")).await;
    assert!(b.text().await.contains("Không có quyền"));
    b.screenshots("hub-02-another-district").await;
    b.goto(&format!("{base}/")).await;
    sign_out(&b).await;

    // The province: overview, then down to Vụ Bản and its communes.
    sign_in(&b, &base, "admin").await;
    b.goto(&format!("{base}/?as_of=2024-12-31")).await;
    b.screenshots("hub-03-province-overview").await;
    click(&b, "Đơn vị").await;
    assert_eq!(b.path().await, "/units");
    b.screenshots("hub-04-units").await;
    b.click_and_wait(Locator::Css("tr[data-unit='359'] th a"))
        .await;
    let page = b.text().await;
    assert!(
        page.contains("Huyện Vụ Bản") && page.contains("node-359"),
        "{page}"
    );
    b.screenshots("hub-05-district").await;
    b.goto(&format!("{base}/units?unit=359&as_of=2024-12-31"))
        .await;
    assert!(
        b.client
            .find(Locator::Css("tr[data-unit='13741']"))
            .await
            .is_ok(),
        "its communes"
    );
    click(&b, "Xu hướng").await;
    assert!(b.client.find(Locator::Css("svg")).await.is_ok(), "a chart");
    b.screenshots("hub-06-trends").await;
    click(&b, "Nút đồng bộ").await;
    let page = b.text().await;
    assert!(page.contains("node-356") && page.contains("node-359"));
    let mut versions = Vec::new();
    for td in b
        .client
        .find_all(Locator::Css("td[data-software]"))
        .await
        .unwrap()
    {
        versions.push(td.text().await.unwrap());
    }
    assert_eq!(
        versions,
        [env!("CARGO_PKG_VERSION"); 2],
        "each node's software version, as it said at its last sync"
    );
    b.screenshots("hub-07-nodes").await;
    // An analyst or admin reads people's names behind a figure.
    b.goto(&format!(
        "{base}/figure?unit=36&indicator=MANAGERS_TRAINED_PCT&as_of=2024-12-31"
    ))
    .await;
    let page = b.text().await;
    assert!(
        page.contains("Nguyễn Thị Hoa") && page.contains("0/3"),
        "{page}"
    );
    b.goto(&format!("{base}/report?period=2024")).await;
    assert!(b.text().await.contains("Phiên bản dữ liệu"));
    b.screenshots("hub-08-report").await;
    b.goto(&format!("{base}/admin/users")).await;
    let page = b.text().await;
    assert!(
        page.contains("cán bộ phân tích") && page.contains("Thành phố Nam Định"),
        "hub roles and units: {page}"
    );
    b.screenshots("hub-09-accounts").await;

    // The yearly report's workbook, downloaded with the browser's session,
    // holds the progress API's figures.
    let cookie = b
        .client
        .get_named_cookie("htx_session")
        .await
        .expect("the session cookie");
    let cookie = format!("htx_session={}", cookie.value());
    let api = request(
        addr,
        "GET",
        "/api/progress?unit=36&as_of=2024-12-31",
        Some(&cookie),
        b"",
    )
    .await;
    assert_eq!(api.status, 200, "{api:?}");
    let api: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(figure(&api, "36", "HTX_CONSOLIDATED"), 3);
    let xlsx =
        htx_tests::web::http::request_bytes(addr, "/report?period=2024&format=xlsx", &cookie).await;
    let path = hub.dir().join("bao-cao-2024.xlsx");
    std::fs::write(&path, &xlsx).unwrap();
    use calamine::{DataType, Reader, Xlsx, open_workbook};
    let mut wb: Xlsx<_> = open_workbook(&path).expect("an .xlsx");
    let names = wb.sheet_names().to_vec();
    let sheet = wb.worksheet_range(&names[1]).unwrap();
    let mut checked = 0;
    for row in sheet.rows().skip(1) {
        let id = row[0].to_string();
        let value = row[3].as_f64().unwrap_or(0.0) as i64;
        assert_eq!(value, figure(&api, "36", &id), "{id}");
        checked += 1;
    }
    assert!(checked >= 10, "every indicator: {checked}");
}

/// A hub following two plans: the overview names its plan and offers the
/// other; choosing it shows the other plan's territory and figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_chooser_shows_the_other_plan() {
    assert!(
        browser_installed(),
        "chromium and chromium-driver are needed"
    );
    let (hub, _city, _binh_luc) = TestHub::with_two_plans().await;
    add_user(hub.dir(), "admin", "admin", &[]);
    let base = hub.http_url();
    let b = Browser::start().await;
    sign_in(&b, &base, "admin").await;
    b.goto(&format!("{base}/?as_of=2025-12-31")).await;
    let value = |b: &Browser| {
        let b = b.client.clone();
        async move {
            b.find(Locator::Css("[data-indicator=HTX_CONSOLIDATED]"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(value(&b).await, "1", "Nam Định's, the default");
    b.screenshots("hub-14-plan-chooser").await;
    let bl =
        htx_core::plan::Plan::parse(include_str!("../../deploy/plans/thu-nghiem-binh-luc.toml"))
            .unwrap();
    b.choose("plan", &bl.name_vi).await;
    b.click_and_wait(Locator::Id("choose-plan")).await;
    let page = b.text().await;
    assert!(
        page.contains("Xã Bình Lục") && page.contains("node-binh-luc"),
        "{page}"
    );
    assert!(
        page.contains(&format!("Kế hoạch: {}", bl.name_vi)),
        "{page}"
    );
    assert_eq!(value(&b).await, "2", "Bình Lục's");
    b.screenshots("hub-15-second-plan").await;
}

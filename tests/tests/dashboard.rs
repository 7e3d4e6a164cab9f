//! The province's dashboard as its users meet it: a district viewer signs
//! in and sees that district only (whatever the URL says), an admin drills
//! down from the province, downloads tables and the yearly report, and
//! every figure on a page or in a file is the progress API's. Forged forms
//! and bad queries are refused with a page, and nothing changes.
//!
//! Real hub (served on loopback), real nodes syncing over mutual TLS, real
//! HTTP (a few lines of client below, with its cookie), the real
//! `htx-hub user` and `htx-hub report` commands.

use htx_core::schema::record_from_strings;
use htx_tests::{TestHub, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "mật khẩu đủ dài 2025";

/// `htx-hub user add`, with the test's password.
fn add_user(dir: &std::path::Path, name: &str, role: &str, units: &[&str]) -> std::process::Output {
    htx_tests::hub_user_add(dir, name, role, units, PASSWORD)
}

fn consolidated_htx(node: &TestNode, unit: &str, name: &str) {
    htx_tests::consolidated_htx(node, unit, name, "2024-02-01");
}

fn activity(node: &TestNode, unit: &str, kind: &str, held_on: &str, women: &str) {
    let mut a = record_from_strings(
        "activity",
        [
            ("type", kind),
            ("held_on", held_on),
            ("unit", unit),
            ("participants", "40"),
            ("women", women),
        ],
    )
    .unwrap();
    a.id = htx_core::schema::new_id();
    node.write(vec![a]).expect("recorded");
}

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// A browser without a browser: one cookie, HTTP/1.1, `Connection: close`.
struct Client {
    addr: String,
    cookie: Option<String>,
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

impl Client {
    fn new(base: &str) -> Client {
        Client {
            addr: base.strip_prefix("http://").unwrap().to_owned(),
            cookie: None,
        }
    }

    async fn send(&mut self, method: &str, path: &str, body: &str) -> Reply {
        let mut s = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(c) = &self.cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut body = raw[split + 4..].to_vec();
        let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
        let reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if reply
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        for l in reply.headers.lines() {
            if let Some(v) = l
                .strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
                && v.starts_with("htx_session=")
            {
                self.cookie = Some(v.split(';').next().unwrap().to_owned());
            }
        }
        Reply { body, ..reply }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, "").await
    }

    /// The CSRF token of the page at `path` (every form carries it).
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await.text();
        let at = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
        page[at..at + page[at..].find('"').unwrap()].to_owned()
    }

    async fn sign_in(base: &str, name: &str) -> Client {
        let mut c = Client::new(base);
        let csrf = c.csrf("/login").await;
        let body =
            serde_urlencoded_pairs(&[("csrf", &csrf), ("name", name), ("password", PASSWORD)]);
        let r = c.send("POST", "/login", &body).await;
        assert_eq!(r.status, 303, "{name} signs in: {}", r.text());
        c
    }
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// With `HTX_SAVE_PAGES=DIR`, keeps a page (stylesheet inlined) to look
/// at in a browser or screenshot: `deploy/screenshots.sh` does both.
fn keep(name: &str, page: &str) {
    let Ok(dir) = std::env::var("HTX_SAVE_PAGES") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    let css = format!("<style>{}</style>", htx_web::routes::STYLESHEET);
    let page = page.replace(r#"<link rel="stylesheet" href="/static/style.css">"#, &css);
    std::fs::write(
        std::path::Path::new(&dir).join(format!("{name}.html")),
        page,
    )
    .unwrap();
}

fn api_figure(json: &serde_json::Value, unit: &str, indicator: &str, phase: &str) -> i64 {
    json["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == unit)
        .unwrap()["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["indicator"] == indicator && f["phase"] == phase)
        .unwrap()["numerator"]
        .as_i64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_province_and_a_district_see_their_own_figures() {
    let hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    let vu_ban = hub.enroll_node("359", "node-359");
    consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long");
    consolidated_htx(&city, "13633", "HTX Rau sạch Lộc Hạ");
    consolidated_htx(&vu_ban, "13741", "HTX Mây tre Gôi");
    activity(&city, "356", "forum", "2024-03-10", "30");
    activity(&vu_ban, "359", "forum", "2024-04-10", "25");
    activity(&vu_ban, "359", "communication", "2023-04-10", "10"); // before 2024
    city.sync().await.unwrap();
    vu_ban.sync().await.unwrap();

    // Accounts, through the real command.
    let out = add_user(hub.dir(), "lan", "viewer", &["356"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(add_user(hub.dir(), "admin", "admin", &[]).status.success());
    let out = add_user(hub.dir(), "bad", "viewer", &["99999"]);
    assert!(!out.status.success(), "an unknown unit is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("danh mục"));
    let out = add_user(hub.dir(), "ed", "editor", &[]);
    assert!(!out.status.success(), "the hub has no editors");

    let base = hub.http_url();
    let as_of = "as_of=2024-12-31";

    // Not signed in: to the sign-in page, for every page.
    let mut anon = Client::new(&base);
    for p in ["/", "/units", "/nodes", "/trends", "/report"] {
        let r = anon.get(p).await;
        assert_eq!(r.status, 303, "{p}");
        assert_eq!(r.header("location").as_deref(), Some("/login"));
    }

    // The district viewer: her district, its communes, nothing else.
    let mut lan = Client::sign_in(&base, "lan").await;
    let home = lan.get(&format!("/?{as_of}")).await;
    assert_eq!(home.status, 200);
    let page = home.text();
    keep("district-overview", &page);
    assert!(page.contains("Thành phố Nam Định"), "her district's page");
    assert!(
        page.contains("HTX do phụ nữ tham gia quản lý"),
        "Vietnamese indicator names"
    );
    assert!(page.contains("node-356"), "its source");
    assert!(!page.contains("node-359"));
    assert!(
        page.contains("Vốn vay hỗ trợ HTX (đồng)") && page.contains("0 đ"),
        "an amount in đồng says so"
    );
    for forbidden in [
        "/?unit=359",
        "/?unit=36",
        "/?unit=13741",
        "/units?unit=36",
        "/units?unit=359",
        "/trends?unit=359",
        "/report?unit=36&period=2024",
        "/?unit=359&format=csv",
        "/units?unit=36&format=xlsx",
    ] {
        let r = lan.get(forbidden).await;
        assert_eq!(r.status, 403, "{forbidden}");
        assert!(
            r.text().contains("Không có quyền"),
            "{forbidden}: a Vietnamese page"
        );
    }
    // In 2025 there are no districts: her view has no counterpart there.
    assert_eq!(lan.get("/?hierarchy=2025").await.status, 403);
    let units = lan.get(&format!("/units?{as_of}")).await.text();
    assert!(units.contains("data-unit=\"13633\""), "her communes");
    assert!(!units.contains("data-unit=\"13741\""));
    let nodes = lan.get("/nodes").await.text();
    assert!(nodes.contains("data-node=\"node-356\""));
    assert!(!nodes.contains("node-359"), "another district's node");
    let csv = lan.get("/nodes?format=csv").await.text();
    assert!(!csv.contains("node-359"), "nor in the download");

    // Forged forms: no token, a wrong token; the session stays.
    let r = lan.send("POST", "/logout", "").await;
    assert_eq!(r.status, 403);
    let r = lan
        .send("POST", "/lang", "lang=en&back=/&csrf=forged")
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        lan.get("/").await.status,
        200,
        "still signed in, still Vietnamese"
    );
    assert!(lan.get("/").await.text().contains("Tổng quan"));

    // The admin drills down from the province.
    let mut admin = Client::sign_in(&base, "admin").await;
    let api: serde_json::Value = serde_json::from_slice(
        &admin
            .get("/api/progress?unit=36&as_of=2024-12-31")
            .await
            .body,
    )
    .unwrap();
    let page = admin.get(&format!("/?{as_of}")).await.text();
    keep("overview", &page);
    keep("login", &Client::new(&base).get("/login").await.text());
    keep("forbidden", &lan.get("/?unit=359").await.text());
    keep(
        "units",
        &admin.get(&format!("/units?unit=36&{as_of}")).await.text(),
    );
    keep("nodes", &admin.get("/nodes").await.text());
    keep("report", &admin.get("/report?period=2024").await.text());
    keep("overview-en", &{
        let csrf = admin.csrf("/").await;
        admin
            .send("POST", "/lang", &format!("lang=en&back=/&csrf={csrf}"))
            .await;
        let p = admin.get(&format!("/?{as_of}")).await.text();
        let csrf = admin.csrf("/").await;
        admin
            .send("POST", "/lang", &format!("lang=vi&back=/&csrf={csrf}"))
            .await;
        p
    });
    let n = api_figure(&api, "36", "HTX_CONSOLIDATED", "1");
    assert_eq!(n, 3);
    assert!(
        page.contains(&format!("data-indicator=\"HTX_CONSOLIDATED\">{n}<")),
        "the overview shows the API's figure"
    );
    let drill = admin
        .get(&format!(
            "/units?unit=36&{as_of}&sort=HTX_CONSOLIDATED&desc=1"
        ))
        .await
        .text();
    let (a, b) = (
        drill.find("data-unit=\"356\"").unwrap(),
        drill.find("data-unit=\"359\"").unwrap(),
    );
    assert!(a < b, "356 (2) before 359 (1), largest first");
    let drill = admin
        .get(&format!("/units?unit=36&{as_of}&sort=HTX_CONSOLIDATED"))
        .await
        .text();
    let (a, b) = (
        drill.find("data-unit=\"356\"").unwrap(),
        drill.find("data-unit=\"359\"").unwrap(),
    );
    assert!(b < a, "smallest first");
    let csv = admin
        .get(&format!("/units?unit=36&{as_of}&format=csv"))
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-disposition").unwrap().contains(".csv"));
    let csv = csv.text();
    let line = csv.lines().find(|l| l.starts_with("356,")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "HTX_CONSOLIDATED")
        .unwrap();
    assert_eq!(line.split(',').nth(col), Some("2"));
    let trends = admin.get(&format!("/trends?{as_of}")).await;
    assert_eq!(trends.status, 200);
    let trends = trends.text();
    keep("trends", &trends);
    assert!(trends.contains("<svg"), "charts drawn on the server");

    // The yearly report as a workbook, checked against the API.
    let r = admin.get("/report?period=2024").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Phiên bản dữ liệu"));
    let r = admin.get("/report?period=2024&format=xlsx").await;
    assert_eq!(r.status, 200);
    let path = hub.dir().join("report.xlsx");
    std::fs::write(&path, &r.body).unwrap();
    check_workbook(&path, &api);

    // Bad input: a page that says so, in Vietnamese first.
    for (bad, status) in [
        ("/?as_of=hôm-qua", 400),
        ("/?hierarchy=1999", 400),
        ("/?phase=9", 400),
        ("/?format=exe", 400),
        ("/?unit=%3Cscript%3E", 404),
        ("/report?period=2025;DROP", 400),
        ("/report?period=2024&format=pdf", 400),
    ] {
        let r = admin.get(bad).await;
        assert_eq!(r.status, status, "{bad}");
        assert!(!r.text().contains("<script>"), "{bad}: escaped");
    }
    let huge = "x".repeat(64 * 1024);
    let r = admin
        .send("POST", "/lang", &format!("lang=en&back={huge}"))
        .await;
    assert_eq!(r.status, 413, "an oversized form");

    // A disabled account is out at once.
    let out = std::process::Command::new(htx_tests::bin("htx-hub"))
        .args(["user", "disable"])
        .arg(hub.dir())
        .arg("lan")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(lan.get("/").await.status, 303);
}

/// The workbook's indicator sheet holds the API's figures, and its cover
/// the stamp.
fn check_workbook(path: &std::path::Path, api: &serde_json::Value) {
    use calamine::{DataType, Reader, Xlsx, open_workbook};
    let mut wb: Xlsx<_> = open_workbook(path).expect("an .xlsx");
    let names = wb.sheet_names().to_vec();
    assert!(names.len() >= 6, "cover and five sections: {names:?}");
    let cover = wb.worksheet_range(&names[0]).unwrap();
    let cover_text: Vec<String> = cover.rows().flatten().map(|c| c.to_string()).collect();
    assert!(cover_text.iter().any(|c| c == "Phiên bản dữ liệu"));
    assert!(cover_text.iter().any(|c| c.contains("node-356")));
    let sheet = wb.worksheet_range(&names[1]).unwrap();
    let mut checked = 0;
    for row in sheet.rows().skip(1) {
        let id = row[0].to_string();
        let value = row[3].as_f64().unwrap_or(0.0) as i64;
        assert_eq!(value, api_figure(api, "36", &id, "1"), "{id}");
        checked += 1;
    }
    assert!(checked >= 10, "every indicator: {checked}");
    // Activities of 2024: two forums, 55 women; the 2023 one is not counted.
    let acts = wb.worksheet_range(&names[3]).unwrap();
    let forum = acts
        .rows()
        .find(|r| r[0].get_string() == Some("Diễn đàn"))
        .expect("forums");
    assert_eq!(forum[1].as_f64(), Some(2.0));
    assert_eq!(forum[3].as_f64(), Some(55.0));
    assert!(
        !acts
            .rows()
            .any(|r| r[0].to_string().contains("Tuyên truyền"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_command_writes_the_same_report_with_its_stamp() {
    let mut hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long");
    city.sync().await.unwrap();
    hub.stop().await;
    let out_file = hub.dir().join("r.json");
    let out = htx_tests::run(
        "htx-hub",
        &[
            "report".as_ref(),
            hub.dir().as_os_str(),
            "--plan".as_ref(),
            "de-an-01-nam-dinh".as_ref(),
            "--period".as_ref(),
            "2024".as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
            "--out".as_ref(),
            out_file.as_os_str(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    let stamp = &json["stamp"];
    assert_eq!(stamp["plan"], "de-an-01-nam-dinh");
    assert_eq!(stamp["as_of"], "2024-12-31");
    assert_eq!(stamp["hierarchy"], "2023");
    assert_eq!(stamp["nodes"][0]["node"], "node-356");
    let version = stamp["data_version"].as_str().unwrap().to_owned();
    assert_eq!(version.len(), 24);
    // The same data gives the same data version; the workbook is written too.
    let xlsx = hub.dir().join("r.xlsx");
    let out = htx_tests::run(
        "htx-hub",
        &[
            "report".as_ref(),
            hub.dir().as_os_str(),
            "--period".as_ref(),
            "2024".as_ref(),
            "--out".as_ref(),
            xlsx.as_os_str(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains(&version));
    // Another plan or a bad period is refused, in both languages.
    let out = htx_tests::run(
        "htx-hub",
        &[
            "report".as_ref(),
            hub.dir().as_os_str(),
            "--plan".as_ref(),
            "other".as_ref(),
            "--period".as_ref(),
            "2024".as_ref(),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(out.stderr.contains("kế hoạch"));
    let out = htx_tests::run(
        "htx-hub",
        &[
            "report".as_ref(),
            hub.dir().as_os_str(),
            "--period".as_ref(),
            "hôm qua".as_ref(),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(out.stderr.contains("kỳ báo cáo"));
}

/// The test plan over Xã Bình Lục (a 2025 commune), the hub's second plan.
const BINH_LUC: &str = "thu-nghiem-binh-luc";

/// The value of column `col` in the last row of a CSV download.
fn last_row_value(csv: &str, col: &str) -> String {
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == col).expect(col);
    let last = csv.lines().last().unwrap();
    last.split(',').nth(at).unwrap().to_owned()
}

/// An indicator's figure in a report workbook's indicator sheet.
fn workbook_figure(bytes: &[u8], indicator: &str) -> i64 {
    use calamine::{DataType, Reader, Xlsx};
    let mut wb = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).expect("an .xlsx");
    let names = wb.sheet_names().to_vec();
    let sheet = wb.worksheet_range(&names[1]).unwrap();
    let row = sheet
        .rows()
        .find(|r| r[0].get_string() == Some(indicator))
        .expect(indicator);
    row[3].as_f64().unwrap_or(0.0) as i64
}

/// A hub following two plans (Nam Định's, its default, and the test plan
/// over Xã Bình Lục) with data in both territories: every page shows the
/// plan asked for (`?plan=`), with that plan's figures, the progress
/// API's; the default is Nam Định's as before; a plan the hub does not
/// follow, or a hostile value, is a 400 that repeats nothing; a Nam Định
/// district's viewer gets nothing of the other plan; closing a period of
/// the second plan keeps it in that plan's folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_shows_the_plan_asked_for() {
    let (hub, _city, _binh_luc) = TestHub::with_two_plans().await;
    assert!(add_user(hub.dir(), "admin", "admin", &[]).status.success());
    assert!(
        add_user(hub.dir(), "lan", "viewer", &["356"])
            .status
            .success()
    );
    let base = hub.http_url();
    let mut admin = Client::sign_in(&base, "admin").await;
    let as_of = "as_of=2025-12-31";

    // What the progress API says for each plan: 1 in Nam Định, 2 in Bình Lục.
    let api = |body: Vec<u8>| -> serde_json::Value { serde_json::from_slice(&body).unwrap() };
    let nd = api(admin.get(&format!("/api/progress?{as_of}")).await.body);
    let bl = api(admin
        .get(&format!(
            "/api/progress?plan={BINH_LUC}&hierarchy=2025&{as_of}"
        ))
        .await
        .body);
    let (n_nd, n_bl) = (
        api_figure(&nd, "36", "HTX_CONSOLIDATED", "1"),
        api_figure(&bl, "13504", "HTX_CONSOLIDATED", "1"),
    );
    assert_eq!((n_nd, n_bl), (1, 2));

    // The overview: the default plan as before, with a chooser of both.
    let page = admin.get(&format!("/?{as_of}")).await;
    assert_eq!(page.status, 200);
    let page = page.text();
    assert!(page.contains(&format!("data-indicator=\"HTX_CONSOLIDATED\">{n_nd}<")));
    assert!(page.contains("Tỉnh Nam Định") && page.contains("node-356"));
    assert!(
        page.contains("data-plan=\"de-an-01-nam-dinh\""),
        "names its plan"
    );
    assert!(
        page.contains(&format!("<option value=\"{BINH_LUC}\">Kế hoạch THỬ NGHIỆM")),
        "the chooser offers the other plan by its Vietnamese name"
    );
    // The other plan: its territory, its figures, its sources only; the
    // page's links and forms keep it.
    let page = admin.get(&format!("/?plan={BINH_LUC}&{as_of}")).await;
    assert_eq!(page.status, 200);
    let page = page.text();
    keep("overview-second-plan", &page);
    assert!(page.contains(&format!("data-indicator=\"HTX_CONSOLIDATED\">{n_bl}<")));
    assert!(page.contains("Xã Bình Lục") && page.contains("node-binh-luc"));
    assert!(!page.contains("node-356"), "nothing of Nam Định's");
    assert!(
        page.contains("Tỉnh Nam Định, Xã Bình Lục · Hội LHPN"),
        "the header names both plans' territories, not only the default's"
    );
    assert!(page.contains(&format!("data-plan=\"{BINH_LUC}\"")));
    assert!(page.contains(&format!("<option value=\"{BINH_LUC}\" selected>")));
    assert!(page.contains(&format!("/trends?plan={BINH_LUC}&#38;")));
    assert!(page.contains(&format!("name=\"plan\" value=\"{BINH_LUC}\"")));
    assert!(
        !page.contains("Tỉnh Ninh Bình"),
        "no way up to a province outside the plan's territory"
    );
    // The records behind its figure.
    let figure = admin
        .get(&format!(
            "/figure?plan={BINH_LUC}&{as_of}&indicator=HTX_CONSOLIDATED"
        ))
        .await;
    assert_eq!(figure.status, 200);
    assert!(figure.text().contains(&format!("data-total>{n_bl}<")));

    // Its trend and its report carry its figures; Nam Định's carry theirs.
    for (plan, n) in [("", n_nd), (BINH_LUC, n_bl)] {
        let csv = admin
            .get(&format!("/trends?plan={plan}&{as_of}&format=csv"))
            .await
            .text();
        assert_eq!(
            last_row_value(&csv, "HTX_CONSOLIDATED"),
            n.to_string(),
            "{plan}"
        );
        let xlsx = admin
            .get(&format!("/report?plan={plan}&period=2025&format=xlsx"))
            .await;
        assert_eq!(xlsx.status, 200, "{plan}");
        assert_eq!(workbook_figure(&xlsx.body, "HTX_CONSOLIDATED"), n, "{plan}");
    }
    let report = admin
        .get(&format!("/report?plan={BINH_LUC}&period=2025"))
        .await
        .text();
    assert!(
        report.contains("Kế hoạch THỬ NGHIỆM"),
        "the report names its plan"
    );

    // A plan the hub does not follow, or a hostile value: a 400 page, in
    // both languages, that repeats nothing of what was asked.
    let long = "x".repeat(4000);
    for lang in ["vi", "en"] {
        let csrf = admin.csrf("/").await;
        admin
            .send("POST", "/lang", &format!("lang={lang}&back=/&csrf={csrf}"))
            .await;
        for bad in [
            "khong-co",
            "../../etc/passwd",
            "<script>alert(1)</script>",
            long.as_str(),
        ] {
            let q = serde_urlencoded_pairs(&[("plan", bad)]);
            for page in ["/", "/units", "/trends", "/report", "/periods", "/figure"] {
                let r = admin.get(&format!("{page}?{q}&indicator=NEW_HTX")).await;
                assert_eq!(r.status, 400, "{page} {lang}: {bad:.20}");
                let text = r.text();
                assert!(
                    text.contains("không theo dõi kế hoạch này")
                        && text.contains("follows no such plan"),
                    "{page} {lang}: {text}"
                );
                assert!(!text.contains(bad), "{page}: nothing repeated");
                assert!(!text.contains("<script>alert"), "{page}");
            }
        }
    }

    // A Nam Định district's viewer: nothing of the other plan, in any
    // hierarchy version, on any page (a page, not a crash).
    let mut lan = Client::sign_in(&base, "lan").await;
    for page in [
        format!("/?plan={BINH_LUC}"),
        format!("/?plan={BINH_LUC}&hierarchy=2023"),
        format!("/units?plan={BINH_LUC}&hierarchy=2023"),
        format!("/trends?plan={BINH_LUC}&hierarchy=2023"),
        format!("/figure?plan={BINH_LUC}&hierarchy=2023&indicator=HTX_CONSOLIDATED"),
        format!("/report?plan={BINH_LUC}&period=2025&hierarchy=2023"),
        format!("/report?plan={BINH_LUC}&period=2025&hierarchy=2023&format=xlsx"),
        format!("/api/progress?plan={BINH_LUC}&hierarchy=2023"),
    ] {
        let r = lan.get(&page).await;
        assert!(r.status == 400 || r.status == 403, "{page}: {}", r.status);
        let text = r.text();
        assert!(
            !text.contains("data-indicator") && !text.contains("node-binh-luc"),
            "{page}: {text}"
        );
    }

    // Closing 2025 of the second plan: from its period page's form, into
    // its own folder; Nam Định's 2025 stays open.
    let page = admin
        .get(&format!("/periods?plan={BINH_LUC}&period=2025"))
        .await
        .text();
    let form = &page[page
        .find("action=\"/periods/close\"")
        .expect("a close form")..];
    let form = &form[..form.find("</form>").unwrap()];
    assert!(
        form.contains(&format!("name=\"plan\" value=\"{BINH_LUC}\"")),
        "{form}"
    );
    let csrf = admin.csrf(&format!("/periods?plan={BINH_LUC}")).await;
    let body = serde_urlencoded_pairs(&[("csrf", &csrf), ("plan", BINH_LUC), ("period", "2025")]);
    let r = admin.send("POST", "/periods/close", &body).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let periods = hub.dir().join("periods");
    let kept: serde_json::Value = serde_json::from_slice(
        &std::fs::read(periods.join(BINH_LUC).join("2025.json")).expect("the plan's folder"),
    )
    .unwrap();
    let top = &kept["closing"]["units"][0];
    assert_eq!(top["unit"], "13504");
    let closed = top["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["indicator"] == "HTX_CONSOLIDATED")
        .unwrap();
    assert_eq!(closed["numerator"], n_bl);
    assert!(!periods.join("de-an-01-nam-dinh").join("2025.json").exists());
    let nd_list = admin.get("/periods").await.text();
    let row = &nd_list[nd_list.find("data-period=\"2025\"").unwrap()..];
    assert!(
        row[..row.find("</tr>").unwrap()].contains("status no_data"),
        "Nam Định's 2025 still open"
    );
}

//! The web app against what a browser would never send: forged forms
//! without (or with another session's) CSRF token, password guessing,
//! HTML and script in text fields, another unit's record ids, tampered
//! session cookies, oversized bodies, a viewer writing, a disabled
//! account. Each gets a clear refusal and changes nothing. Plain HTTP
//! from the test, against the real `htx-node run`.

use htx_tests::web::WebNode;
use htx_tests::web::http::{form, login_attempt, request, sign_in};

const PW: &str = "mật khẩu đủ dài 1";

async fn node() -> WebNode {
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sample/vu-ban.csv");
    WebNode::start(
        "359",
        "vu-ban",
        Some(&csv),
        &[
            ("lan", "editor", &[], PW),
            // Restricted to Thị trấn Gôi (13741).
            ("hoa", "editor", &["13741"], PW),
            ("xem", "viewer", &[], PW),
        ],
    )
    .await
}

fn coop_form(csrf: &str, name: &str) -> Vec<u8> {
    form(&[
        ("csrf", csrf),
        ("unit", "13750"),
        ("type", "HTX"),
        ("name", name),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_and_oversized_posts_change_nothing() {
    let node = node().await;
    let lan = sign_in(node.addr, "lan", PW).await.expect("lan signs in");
    let before = node.export().await.len();

    // No token, a wrong token, a token of another session.
    let other = sign_in(node.addr, "xem", PW).await.expect("xem signs in");
    for (what, body) in [
        (
            "no token",
            form(&[("unit", "13750"), ("type", "HTX"), ("name", "Giả mạo")]),
        ),
        ("wrong token", coop_form("00ff", "Giả mạo")),
        ("another session's token", coop_form(&other.csrf, "Giả mạo")),
    ] {
        let r = request(
            node.addr,
            "POST",
            "/new/cooperative",
            Some(&lan.cookie),
            &body,
        )
        .await;
        assert_eq!(r.status, 403, "{what}: {r:?}");
        assert!(r.body.contains("Biểu mẫu không hợp lệ") && r.body.contains("Form refused"));
    }
    // No session at all, and a tampered session id: sent to sign in.
    let r = request(
        node.addr,
        "POST",
        "/new/cooperative",
        None,
        &coop_form(&lan.csrf, "Giả mạo"),
    )
    .await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    let mut tampered = lan.cookie.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let r = request(
        node.addr,
        "POST",
        "/new/cooperative",
        Some(&tampered),
        &coop_form(&lan.csrf, "Giả mạo"),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/login")),
        "a tampered cookie is no session"
    );
    let r = request(node.addr, "GET", "/", Some(&tampered), b"").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));

    // A body above the limit (64 KiB): 413, as a page.
    let mut big = coop_form(&lan.csrf, "To");
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    let r = request(
        node.addr,
        "POST",
        "/new/cooperative",
        Some(&lan.cookie),
        &big,
    )
    .await;
    assert_eq!(r.status, 413, "{:?}", r.status);

    // A viewer may read but not write, even with a good token.
    let r = request(
        node.addr,
        "POST",
        "/new/cooperative",
        Some(&other.cookie),
        &coop_form(&other.csrf, "Giả mạo"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Không có quyền"));

    assert_eq!(node.export().await.len(), before, "nothing was written");
    let refused = node
        .audit()
        .iter()
        .filter(|e| e["action"] == "csrf_refused")
        .count();
    assert!(refused >= 3, "forged forms are audited ({refused})");

    // The genuine form works, and says who did it.
    let r = request(
        node.addr,
        "POST",
        "/new/cooperative",
        Some(&lan.cookie),
        &coop_form(&lan.csrf, "HTX Thật"),
    )
    .await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(node.export().await.len(), before + 1);
    assert!(
        node.audit()
            .iter()
            .any(|e| e["action"] == "record_added" && e["user"] == "lan")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_passwords_locks_the_account() {
    let node = node().await;
    for i in 1..=4 {
        let (r, _) = login_attempt(node.addr, "lan", &format!("đoán sai {i}")).await;
        assert_eq!(r.status, 401, "attempt {i}");
        assert!(r.body.contains("Tên đăng nhập hoặc mật khẩu không đúng"));
    }
    let (r, _) = login_attempt(node.addr, "lan", "đoán sai 5").await;
    assert_eq!(r.status, 429);
    assert!(r.body.contains("Tài khoản tạm khóa"), "{}", r.body);
    // Locked: even the right password is refused now.
    let (r, _) = login_attempt(node.addr, "lan", PW).await;
    assert_eq!(r.status, 429);
    assert!(sign_in(node.addr, "lan", PW).await.is_none());
    // Unknown names get the same answer as wrong passwords.
    let (r, _) = login_attempt(node.addr, "không-có-ai", PW).await;
    assert_eq!(r.status, 401);
    let audit = node.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "locked_out" && e["target"] == "lan")
    );
    assert!(
        !std::fs::read_to_string(node.dir().join("web-audit.log"))
            .unwrap()
            .contains("đoán sai"),
        "no password in the audit"
    );
    // Other officers are not affected.
    assert!(sign_in(node.addr, "hoa", PW).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_text_is_shown_as_text_and_other_units_are_not_found() {
    let node = node().await;
    let lan = sign_in(node.addr, "lan", PW).await.unwrap();
    let evil = "<script>alert('x')</script><b onmouseover=\"x()\">HTX đậm</b>";
    let r = request(
        node.addr,
        "POST",
        "/new/cooperative",
        Some(&lan.cookie),
        &coop_form(&lan.csrf, evil),
    )
    .await;
    assert_eq!(r.status, 303, "{r:?}");
    let page = r.header("location").unwrap().to_owned();
    for path in [page.as_str(), "/cooperatives", "/"] {
        let r = request(node.addr, "GET", path, Some(&lan.cookie), b"").await;
        assert!(!r.body.contains("<script>alert"), "{path} has live script");
        assert!(!r.body.contains("<b onmouseover"), "{path} has live markup");
        if path != "/" {
            assert!(
                r.body.contains("&lt;script&gt;") || r.body.contains("&#60;script&#62;"),
                "{path} shows it as text"
            );
        }
    }
    // In a search and the language switch's return path too.
    let r = request(
        node.addr,
        "GET",
        "/cooperatives?q=%3Cscript%3Ealert(1)%3C/script%3E",
        Some(&lan.cookie),
        b"",
    )
    .await;
    assert!(!r.body.contains("<script>alert(1)"));
    let r = request(
        node.addr,
        "POST",
        "/lang",
        Some(&lan.cookie),
        &form(&[
            ("csrf", &lan.csrf),
            ("lang", "en"),
            ("back", "//evil.example/"),
        ]),
    )
    .await;
    assert_eq!(
        r.header("location"),
        Some("/"),
        "never sent to another site"
    );

    // Hoa may only see and change Thị trấn Gôi (13741). The Tân Khánh
    // cooperative (13750) and the markup one are "not found" for her.
    let hoa = sign_in(node.addr, "hoa", PW).await.unwrap();
    let tan_khanh = "01890007-e95a-773f-b043-ea9003ba33db";
    let goi = "01890005-a6ae-7a8c-a6f8-f3b28c497c68";
    let list = request(node.addr, "GET", "/cooperatives", Some(&hoa.cookie), b"").await;
    assert!(list.body.contains("HTX Mây tre đan Gôi"));
    assert!(
        !list.body.contains("Tân Khánh"),
        "another unit's cooperatives are not listed"
    );
    for path in [
        format!("/records/{tan_khanh}"),
        format!("/records/{tan_khanh}/edit"),
    ] {
        let r = request(node.addr, "GET", &path, Some(&hoa.cookie), b"").await;
        assert_eq!(r.status, 404, "{path}");
    }
    let r = request(
        node.addr,
        "POST",
        &format!("/records/{tan_khanh}/edit"),
        Some(&hoa.cookie),
        &form(&[("csrf", &hoa.csrf), ("name", "Đổi tên trái phép")]),
    )
    .await;
    assert_eq!(r.status, 404);
    // Nor can she create a record there.
    let r = request(
        node.addr,
        "POST",
        "/new/cooperative",
        Some(&hoa.cookie),
        &coop_form(&hoa.csrf, "HTX ngoài phạm vi"),
    )
    .await;
    assert_eq!(r.status, 422, "refused with the reason on the form");
    assert!(r.body.contains("Giá trị không có trong danh sách"));
    // Her own unit's record she may edit.
    let r = request(
        node.addr,
        "POST",
        &format!("/records/{goi}/edit"),
        Some(&hoa.cookie),
        &form(&[("csrf", &hoa.csrf), ("sector", "thủ công mỹ nghệ")]),
    )
    .await;
    assert_eq!(r.status, 303, "{r:?}");
    let records = node.export().await;
    let tk = records.iter().find(|r| r["id"] == tan_khanh).unwrap();
    assert_eq!(tk["name"], "HTX Lúa chất lượng cao Tân Khánh", "unchanged");
    assert!(!records.iter().any(|r| r["name"] == "HTX ngoài phạm vi"));
    let g = records.iter().find(|r| r["id"] == goi).unwrap();
    assert_eq!(g["sector"], "thủ công mỹ nghệ");
    assert_eq!(g["changed_by"], "hoa@vu-ban");

    // A disabled account is signed out at its next request.
    let out = htx_tests::run(
        "htx-node",
        &[
            "user".as_ref(),
            "disable".as_ref(),
            node.dir().as_os_str(),
            "hoa".as_ref(),
        ],
    )
    .await;
    out.ok();
    let r = request(node.addr, "GET", "/", Some(&hoa.cookie), b"").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
}

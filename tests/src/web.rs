//! # Helpers for the web app's tests
//!
//! - [`WebNode`]: a hub served in this process and a node run by the real
//!   `htx-node run` binary, with officers' accounts made by the real
//!   `htx-node user add` (password on stdin) and the web app's address;
//! - [`http`]: a bare HTTP/1.1 client for the attack tests, which must send
//!   what no browser would (no CSRF token, a forged cookie, a huge body);
//! - [`Browser`]: one chromedriver (Debian's `chromium-driver`, headless,
//!   `--no-sandbox` as root) driven with fantoccini; screenshots of a page
//!   at desktop width and at 360 px go to `target/screenshots/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::{Process, TestHub, bin, free_port, spawn, wait_for_api};

/// A node with its web app, run by the real binary, and its hub.
pub struct WebNode {
    pub hub: TestHub,
    root: TempDir,
    pub process: Process,
    pub addr: SocketAddr,
}

impl WebNode {
    /// Enrols a node for `unit` at a new hub, imports `csv` if given, adds
    /// the officers (name, role, units, password), and runs it.
    pub async fn start(
        unit: &str,
        name: &str,
        csv: Option<&Path>,
        officers: &[(&str, &str, &[&str], &str)],
    ) -> WebNode {
        let hub = TestHub::start().await;
        let root = TempDir::new().expect("temp dir");
        let dir = root.path().join("node");
        hub.init_node_dir(unit, name, &dir).await;
        crate::configure(&dir, |c| c.sync_interval_secs = 1);
        if let Some(csv) = csv {
            crate::run(
                "htx-node",
                &["import".as_ref(), dir.as_os_str(), csv.as_os_str()],
            )
            .await
            .ok();
        }
        for (who, role, units, password) in officers {
            add_user(&dir, who, role, units, password).await;
        }
        let process = spawn(
            "htx-node",
            &["run".as_ref(), dir.as_os_str()],
            &root.path().join("node.log"),
        );
        let addr = wait_for_api(&dir.join("web.addr"), Duration::from_secs(30)).await;
        WebNode {
            hub,
            root,
            process,
            addr,
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.path().join("node")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The web app's audit, as JSON values.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir().join(htx_web::audit::FILE))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }

    /// Every record, as `htx-node export` prints it.
    pub async fn export(&self) -> Vec<serde_json::Value> {
        let dir = self.dir();
        let out = crate::run(
            "htx-node",
            &[
                "export".as_ref(),
                dir.as_os_str(),
                "--include-deleted".as_ref(),
            ],
        )
        .await;
        crate::parse_export(out.ok())
    }
}

/// `htx-node user add DIR NAME --role ROLE [--unit U]...`, the password on stdin.
pub async fn add_user(dir: &Path, name: &str, role: &str, units: &[&str], password: &str) {
    let mut cmd = tokio::process::Command::new(bin("htx-node"));
    cmd.arg("user")
        .arg("add")
        .arg(dir)
        .arg(name)
        .args(["--role", role]);
    for u in units {
        cmd.args(["--unit", u]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start htx-node user add");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .expect("write password");
    drop(stdin);
    let out = child.wait_with_output().await.expect("user add");
    assert!(
        out.status.success(),
        "htx-node user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub mod http {
    //! A bare HTTP/1.1 client: one request per connection.

    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[derive(Debug)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
        /// The body as sent (a file: `.xlsx`).
        pub bytes: Vec<u8>,
    }

    impl Response {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        /// The value of the cookie `name` set by this response.
        pub fn cookie(&self, name: &str) -> Option<String> {
            self.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
                .find_map(|(_, v)| {
                    let first = v.split(';').next()?;
                    let (k, val) = first.split_once('=')?;
                    (k.trim() == name).then(|| val.trim().to_owned())
                })
        }
        /// The first hidden CSRF token in the page.
        pub fn csrf(&self) -> Option<String> {
            let at = self.body.find("name=\"csrf\" value=\"")? + 19;
            Some(self.body[at..].split('"').next()?.to_owned())
        }
    }

    /// Sends one request; `cookie` is the `Cookie` header's value if any.
    /// A POST's body is a form ([`form`]).
    pub async fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: &[u8],
    ) -> Response {
        let ty = (method == "POST").then_some("application/x-www-form-urlencoded");
        request_typed(addr, method, path, cookie, ty, body).await
    }

    /// A form with a file, as a browser sends it: its content type and body.
    pub fn multipart(fields: &[(&str, &str)], file: (&str, &[u8])) -> (String, Vec<u8>) {
        let boundary = "----htxsyncTestBoundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                file.0
            )
            .as_bytes(),
        );
        body.extend_from_slice(file.1);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }

    /// As [`request`], with the body's content type given.
    pub async fn request_typed(
        addr: SocketAddr,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Response {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(ty) = content_type {
            head.push_str(&format!("Content-Type: {ty}\r\n"));
        }
        if let Some(c) = cookie {
            head.push_str(&format!("Cookie: {c}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.expect("send");
        // A server may answer (413) before reading a huge body, and close:
        // the body is written while the answer is read.
        let (mut rd, mut wr) = s.into_split();
        let body = body.to_vec();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&body).await;
            wr
        });
        let mut raw = Vec::new();
        let _ = rd.read_to_end(&mut raw).await;
        writer.abort();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(raw.len(), |i| i + 4);
        let bytes = raw[split..].to_vec();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {text:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
            bytes,
        }
    }

    /// `GET path` with a session cookie: the body's bytes (a file), after
    /// checking it was served.
    pub async fn request_bytes(addr: SocketAddr, path: &str, cookie: &str) -> Vec<u8> {
        let r = request(addr, "GET", path, Some(cookie), b"").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.bytes
    }

    /// Form encoding of `pairs`.
    pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    }

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// A signed-in session: its cookie header and its CSRF token.
    pub struct Session {
        pub cookie: String,
        pub csrf: String,
    }

    /// Signs in as a browser would; `None` if refused.
    pub async fn sign_in(addr: SocketAddr, name: &str, password: &str) -> Option<Session> {
        let (r, cookie) = login_attempt(addr, name, password).await;
        if r.status != 303 {
            return None;
        }
        let cookie = format!("htx_session={}", r.cookie("htx_session").unwrap_or(cookie));
        let page = request(addr, "GET", "/", Some(&cookie), b"").await;
        assert_eq!(page.status, 200, "home after sign-in: {page:?}");
        Some(Session {
            csrf: page.csrf().expect("a CSRF token on the page"),
            cookie,
        })
    }

    /// One sign-in attempt with a fresh anonymous session: the answer, and
    /// the anonymous session id.
    pub async fn login_attempt(addr: SocketAddr, name: &str, password: &str) -> (Response, String) {
        let form_page = request(addr, "GET", "/login", None, b"").await;
        let anon = form_page.cookie("htx_session").expect("a session cookie");
        let csrf = form_page.csrf().expect("a CSRF token on the sign-in form");
        let body = form(&[("csrf", &csrf), ("name", name), ("password", password)]);
        let r = request(
            addr,
            "POST",
            "/login",
            Some(&format!("htx_session={anon}")),
            &body,
        )
        .await;
        (r, anon)
    }
}

/// A chromedriver process, killed when dropped.
struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium driven over WebDriver.
pub struct Browser {
    pub client: fantoccini::Client,
    _driver: Driver,
    shots: PathBuf,
}

/// Whether Debian's chromium and chromium-driver are installed
/// (`.ci/run` installs them).
pub fn browser_installed() -> bool {
    Path::new("/usr/bin/chromedriver").exists() && Path::new("/usr/bin/chromium").exists()
}

impl Browser {
    pub async fn start() -> Browser {
        let port = free_port();
        let child = std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (apt-get install chromium-driver)");
        let driver = Driver { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", driver.port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,900", "--lang=vi"]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a WebDriver session");
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Browser {
            client,
            _driver: driver,
            shots,
        }
    }

    /// Saves the page at 1280 px and at 360 px wide, whole height:
    /// `target/screenshots/NAME-desktop.png`, `NAME-phone.png`.
    pub async fn screenshots(&self, name: &str) {
        for (suffix, width) in [("desktop", 1280u32), ("phone", 360)] {
            self.client
                .set_window_size(width, 900)
                .await
                .expect("resize");
            let h = self
                .client
                .execute("return document.documentElement.scrollHeight", vec![])
                .await
                .expect("page height")
                .as_u64()
                .unwrap_or(900)
                .clamp(600, 5000) as u32;
            self.client
                .set_window_size(width, h + 140)
                .await
                .expect("resize");
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(self.shots.join(format!("{name}-{suffix}.png")), png)
                .expect("save screenshot");
        }
        self.client
            .set_window_size(1280, 900)
            .await
            .expect("resize");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The visible text of the page.
    /// A page still loading after a click or a redirect can replace its
    /// body between the find and the read ("stale element"): read again.
    pub async fn text(&self) -> String {
        let mut tries = 0;
        loop {
            let body = self
                .client
                .find(fantoccini::Locator::Css("body"))
                .await
                .expect("body");
            match body.text().await {
                Ok(text) => return text,
                Err(e) if e.is_stale_element_reference() && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("text: {e:?}"),
            }
        }
    }

    /// Types `value` into the field labelled by id `id`.
    pub async fn fill(&self, id: &str, value: &str) {
        let e = self
            .client
            .find(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no field #{id}: {e}"));
        e.clear().await.expect("clear");
        e.send_keys(value).await.expect("type");
    }

    /// Chooses the option with this visible label in the list with id `id`.
    pub async fn choose(&self, id: &str, label: &str) {
        let e = self
            .client
            .find(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no list #{id}: {e}"));
        e.select_by_label(label)
            .await
            .unwrap_or_else(|e| panic!("no option {label:?} in #{id}: {e}"));
    }

    /// Clicks the submit button of the page's main form, and waits for the
    /// page it leads to.
    pub async fn submit(&self) {
        self.click_and_wait(fantoccini::Locator::Css(
            "main form button[type=submit].primary",
        ))
        .await;
    }

    /// Clicks what `locator` finds (a link, a form's button) and waits for
    /// the page it leads to: the old page gone and the new one loaded. A
    /// click returns before the browser has left the page, so reading the
    /// address or the text right after it can read the old page.
    pub async fn click_and_wait(&self, locator: fantoccini::Locator<'_>) {
        let old = self
            .client
            .find(fantoccini::Locator::Css("html"))
            .await
            .expect("a page");
        let what = format!("{locator:?}");
        self.client
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("nothing to click at {what}: {e}"))
            .click()
            .await
            .expect("click");
        for _ in 0..150 {
            let gone = old.tag_name().await.is_err();
            let ready = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .is_ok_and(|v| v == "complete");
            if gone && ready {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{what}: no new page within 15 s");
    }

    /// Waits (up to 15 s) until the browser is at `path`, and says where it
    /// is if it never gets there.
    pub async fn wait_for_path(&self, path: &str) {
        for _ in 0..150 {
            if self.path().await == path {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(self.path().await, path, "not there within 15 s");
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_owned()
    }
}

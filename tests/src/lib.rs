//! # Harness for the end-to-end tests
//!
//! Tests read as stories: start a hub, enroll nodes, record, cut links,
//! restart things, and check what an officer or the provincial admin would
//! see. Everything is real: mutual TLS on loopback, ephemeral ports, stores
//! in temporary directories, and for the process tests the `htx-node` and
//! `htx-hub` binaries themselves.
//!
//! # Layout
//! - [`TestHub`]: a hub home served in this process; stop it, restart it on
//!   the same directory and port, enroll nodes;
//! - [`TestNode`]: a node directory opened in this process;
//! - [`Proxy`]: a TCP forwarder that can cut the link after N bytes, or
//!   hold back the hub's replies;
//! - [`bin`], [`run`], [`spawn`]: the real binaries, built once per process;
//! - [`bench`]: what the benchmarks read of a process and their timings;
//! - [`web`]: the web app's node, a bare HTTP client, a headless browser.
//! - [`link`]: a slow, lossy link between two network namespaces (a
//!   userspace relay between TUN devices), for real processes;
//! - [`slow_store`]: a store whose commits are delayed, held or refused (a full disk) on command
//!   (a slow disk);
//! - [`sim`]: the deterministic simulation of a whole network (no sockets,
//!   no clock), driven by one seed (`tests/tests/simulation.rs`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod bench;
pub mod web;

use htx_core::schema::record_from_strings;
pub use htx_core::schema::{Record, Value};
use htx_core::storage::{Backend, StoreError};
use htx_hub::config::HubConfig;
use htx_hub::home::Home;
use htx_hub::hub::{Hub, NodeView};
use htx_node::config::NodeConfig;
use htx_node::node::{Node, NodeError};
use htx_node::sync_client::{self, SessionReport, SyncError};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod link;
pub mod sim;
pub mod slow_store;

/// Installs the ring crypto provider, once per process.
pub fn init_crypto() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A socket bound to `127.0.0.1:port` but not listening: the port stays
/// ours, and connections to it are refused at once, as with a hub that is
/// down.
fn reserve(port: u16) -> TcpSocket {
    let s = TcpSocket::new_v4().expect("socket");
    s.set_reuseaddr(true).expect("SO_REUSEADDR");
    s.bind(([127, 0, 0, 1], port).into())
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:{port}: {e}"));
    s
}

/// Polls `check` until it holds or `timeout` passes; returns whether it held.
/// For what other tasks or processes do in their own time.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the process that writes `addr_file` (`api.addr`,
/// `admin.addr`) answers at the address in it. A file left behind by a
/// killed process names a port that refuses connections.
pub async fn wait_for_api(addr_file: &Path, timeout: Duration) -> std::net::SocketAddr {
    let deadline = Instant::now() + timeout;
    loop {
        let addr = std::fs::read_to_string(addr_file)
            .ok()
            .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok());
        if let Some(addr) = addr
            && TcpStream::connect(addr).await.is_ok()
        {
            return addr;
        }
        assert!(
            Instant::now() < deadline,
            "nothing answered at the address in {} within {timeout:?}",
            addr_file.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records sorted by id, so that two replicas' exports compare equal.
pub fn sorted(mut records: Vec<Record>) -> Vec<Record> {
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

/// A cooperative in `unit`, as an officer types it.
pub fn coop(unit: &str, name: &str) -> Record {
    record_from_strings(
        "cooperative",
        [("type", "HTX"), ("name", name), ("unit", unit)],
    )
    .expect("a valid cooperative")
}

/// An in-scope HTX (a woman chairs it), founded with the Union's support
/// on `founded_on` and consolidated on 2024-06-01: one more for
/// HTX_CONSOLIDATED. Returns the cooperative's id.
pub fn consolidated_htx(node: &TestNode, unit: &str, name: &str, founded_on: &str) -> String {
    consolidated_htx_on(node, unit, name, founded_on, "2024-06-01").0
}

/// As [`consolidated_htx`], consolidated on `consolidated_on`; returns the
/// cooperative's id and its chair's.
pub fn consolidated_htx_on(
    node: &TestNode,
    unit: &str,
    name: &str,
    founded_on: &str,
    consolidated_on: &str,
) -> (String, String) {
    let mut coop = record_from_strings(
        "cooperative",
        [
            ("type", "HTX"),
            ("name", name),
            ("unit", unit),
            ("union_supported", "true"),
            ("founded_on", founded_on),
            ("consolidated_on", consolidated_on),
        ],
    )
    .expect("a valid cooperative");
    coop.id = htx_core::schema::new_id();
    let mut chair = record_from_strings(
        "manager",
        [
            ("cooperative", coop.id.as_str()),
            ("name", "Nguyễn Thị Hoa"),
            ("gender", "female"),
            ("role", "chair"),
        ],
    )
    .expect("a valid manager");
    chair.id = htx_core::schema::new_id();
    let ids = (coop.id.clone(), chair.id.clone());
    node.write(vec![coop, chair]).expect("recorded");
    ids
}

/// `htx-hub user add DIR NAME --role ROLE [--unit U]...`, the password on
/// stdin, as an administrator types it.
pub fn hub_user_add(
    dir: &Path,
    name: &str,
    role: &str,
    units: &[&str],
    password: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut cmd = std::process::Command::new(bin("htx-hub"));
    cmd.args(["user", "add"])
        .arg(dir)
        .args([name, "--role", role]);
    for u in units {
        cmd.args(["--unit", u]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("htx-hub runs");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("password sent");
    child.wait_with_output().expect("htx-hub ends")
}

/// A change to fields of an existing record.
pub fn edit(id: &str, kind: &str, fields: &[(&str, &str)]) -> Record {
    let mut r = record_from_strings(kind, fields.iter().copied()).expect("valid fields");
    r.id = id.to_owned();
    r
}

struct Serving {
    hub: Hub,
    http_addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A hub home in a temporary directory, served in this process on a fixed
/// (ephemeral) port that survives restarts.
pub struct TestHub {
    dir: TempDir,
    port: u16,
    serving: Option<Serving>,
    /// Holds the port while the hub is down.
    reserved: Option<TcpSocket>,
    /// The dashboard session [`TestHub::api_get`] asks with.
    api_cookie: Mutex<Option<String>>,
}

impl TestHub {
    /// A hub home whose hub is not running yet: nodes get "connection refused".
    pub fn create() -> TestHub {
        init_crypto();
        let dir = TempDir::new().expect("temp dir");
        let reserved = reserve(0);
        let port = reserved.local_addr().expect("bound").port();
        let cfg = HubConfig {
            listen: format!("127.0.0.1:{port}"),
            public_url: format!("https://127.0.0.1:{port}"),
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            ..Default::default()
        };
        Home::new(dir.path()).init(&cfg).expect("hub init");
        TestHub {
            dir,
            port,
            serving: None,
            reserved: Some(reserved),
            api_cookie: Mutex::new(None),
        }
    }

    /// A hub home, served.
    pub async fn start() -> TestHub {
        let mut hub = TestHub::create();
        hub.serve().await;
        hub
    }

    /// A served hub following two plans ([`TestHub::follow_two_plans`])
    /// with data in both territories, synced: one HTX of Thành phố Nam
    /// Định's node (13633) and two of Xã Bình Lục's (13504), each
    /// consolidated with the Union's support. Returns the hub and the two
    /// nodes (`node-356`, `node-binh-luc`).
    pub async fn with_two_plans() -> (TestHub, TestNode, TestNode) {
        let mut hub = TestHub::create();
        hub.follow_two_plans();
        hub.serve().await;
        let city = hub.enroll_node("356", "node-356");
        let binh_luc = hub.enroll_node_in(Some("2025"), "13504", "node-binh-luc", |_| {});
        consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long", "2024-02-01");
        consolidated_htx(&binh_luc, "13504", "HTX Bình Lục A", "2024-02-01");
        consolidated_htx(&binh_luc, "13504", "HTX Bình Lục B", "2024-02-01");
        city.sync().await.expect("synced");
        binh_luc.sync().await.expect("synced");
        (hub, city, binh_luc)
    }

    /// Makes this hub (not served yet) follow two plans: Nam Định's, its
    /// default, and the test plan over Xã Bình Lục
    /// (`deploy/plans/thu-nghiem-binh-luc.toml`, a 2025 commune).
    pub fn follow_two_plans(&self) {
        std::fs::write(
            self.dir().join("nam-dinh.toml"),
            htx_core::plan::DE_AN_01_NAM_DINH,
        )
        .expect("write the plan");
        std::fs::write(
            self.dir().join("binh-luc.toml"),
            include_str!("../../deploy/plans/thu-nghiem-binh-luc.toml"),
        )
        .expect("write the plan");
        let mut cfg = HubConfig::load(self.dir()).expect("hub.toml");
        cfg.plan_files = vec!["nam-dinh.toml".into(), "binh-luc.toml".into()];
        std::fs::write(
            self.dir().join("hub.toml"),
            toml::to_string(&cfg).expect("serializes"),
        )
        .expect("write hub.toml");
    }

    /// Opens the hub's store and serves it on the hub's port.
    pub async fn serve(&mut self) {
        self.serve_with(|store| store).await
    }

    /// As [`TestHub::serve`], with the store wrapped by `wrap` (e.g. a
    /// [`slow_store::Gate`]).
    pub async fn serve_with(
        &mut self,
        wrap: impl Fn(Arc<dyn htx_core::storage::Store>) -> Arc<dyn htx_core::storage::Store>,
    ) {
        assert!(self.serving.is_none(), "the hub is already serving");
        let hub = open_hub(self.dir.path(), &wrap).await;
        let socket = self.reserved.take().unwrap_or_else(|| reserve(self.port));
        let sync = socket.listen(1024).expect("listen");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let http_addr = http.local_addr().expect("bound");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(htx_hub::admin::serve(
            hub.clone(),
            sync,
            admin,
            http,
            async {
                let _ = stopped.await;
            },
        ));
        self.serving = Some(Serving {
            hub,
            stop,
            task,
            http_addr,
        });
    }

    /// Shuts the hub down and closes its store; its port refuses connections.
    pub async fn stop(&mut self) {
        let Serving {
            hub, stop, task, ..
        } = self.serving.take().expect("the hub is serving");
        drop(hub);
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the hub stops within 20 s")
            .expect("hub task")
            .expect("hub served without error");
        self.reserved = Some(reserve(self.port));
    }

    /// Stops the hub and starts it again on the same directory and port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.serve().await;
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `http://127.0.0.1:PORT` of the hub's progress API.
    pub fn http_url(&self) -> String {
        format!(
            "http://{}",
            self.serving.as_ref().expect("the hub is serving").http_addr
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address of the hub's HTTP port (dashboard, `/api/progress`).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.serving.as_ref().expect("the hub is serving").http_addr
    }

    /// A dashboard session of a new account (`Cookie` header value):
    /// what `/api/progress` asks for. `units` restricts the account.
    pub async fn dashboard_session(&self, name: &str, role: &str, units: &[&str]) -> String {
        const PW: &str = "mật khẩu kiểm thử đủ dài";
        let accounts = htx_web::Accounts::new(self.dir(), Default::default());
        if accounts.get(name).expect("users.json").is_none() {
            accounts
                .add(
                    name,
                    role.parse().expect("a role"),
                    units.iter().map(|u| u.to_string()).collect(),
                    PW,
                )
                .expect("account added");
        }
        web::http::sign_in(self.http_addr(), name, PW)
            .await
            .expect("signs in")
            .cookie
    }

    /// `GET path` on the HTTP port as a signed-in admin of the dashboard
    /// (signed in once, again after a restart): status and body.
    pub async fn api_get(&self, path: &str) -> (u16, String) {
        for _ in 0..2 {
            let cookie = self.api_cookie.lock().unwrap().clone();
            let cookie = match cookie {
                Some(c) => c,
                None => {
                    let c = self.dashboard_session("api-test", "admin", &[]).await;
                    *self.api_cookie.lock().unwrap() = Some(c.clone());
                    c
                }
            };
            let r = web::http::request(self.http_addr(), "GET", path, Some(&cookie), b"").await;
            if r.status != 401 {
                return (r.status, r.body);
            }
            *self.api_cookie.lock().unwrap() = None;
        }
        panic!("{path}: still 401 after signing in");
    }

    /// The address in this hub's bundles.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The running hub's handle (what its admin API serves).
    pub fn hub(&self) -> &Hub {
        &self.serving.as_ref().expect("the hub is serving").hub
    }

    /// Every merged record, by id.
    pub fn export(&self) -> Vec<Record> {
        sorted(self.hub().export(false).expect("hub export"))
    }

    /// Every record as read out of the hub's Automerge documents themselves
    /// (deleted ones included), by id: what the record index must agree with.
    pub fn export_from_documents(&self) -> Vec<Record> {
        let mut r = self.hub().replica();
        let mut out = Vec::new();
        let ids: Vec<String> = r.doc_ids().map(str::to_owned).collect();
        for id in ids {
            let doc = r.load(&id).expect("readable").expect("listed");
            out.extend(htx_core::docs::read_records(doc).expect("readable"));
        }
        sorted(out)
    }

    /// What the hub knows of every node.
    pub fn nodes(&self) -> Vec<NodeView> {
        self.hub().nodes().expect("hub nodes")
    }

    pub fn node_view(&self, name: &str) -> NodeView {
        self.nodes()
            .into_iter()
            .find(|v| v.enrolment.name == name)
            .unwrap_or_else(|| panic!("node {name} is not enrolled"))
    }

    /// The hub's digest of `docs`: equal to a node's digest of the same
    /// documents when both hold the same data.
    pub fn digest(&self, docs: &[String]) -> [u8; 32] {
        self.hub().replica().digest(docs.iter().map(String::as_str))
    }

    /// Number of Automerge changes the hub holds in `docs`.
    pub fn change_count(&self, docs: &[String]) -> usize {
        let mut r = self.hub().replica();
        docs.iter()
            .map(|d| r.changes_since(d, &[]).expect("readable").len())
            .sum()
    }

    /// Writes a bundle for a new node, as `htx-hub enroll` does.
    pub fn write_bundle(&self, unit: &str, name: &str, out: &Path) {
        self.write_bundle_in(None, unit, name, out)
    }

    /// As [`TestHub::write_bundle`], for a unit of hierarchy `version`
    /// (default: the hub's).
    pub fn write_bundle_in(&self, version: Option<&str>, unit: &str, name: &str, out: &Path) {
        let cfg = HubConfig::load(self.dir()).expect("hub config");
        let bundle = Home::new(self.dir())
            .enroll(&cfg, unit, version, Some(name), false)
            .expect("enroll");
        std::fs::write(out, bundle.to_json()).expect("write bundle");
    }

    /// Sets up a node directory at `dir` as an administrator does, with the
    /// real binary: a bundle from this hub (in a temporary file, so that it
    /// takes no room on `dir`'s disk), then `htx-node init`.
    pub async fn init_node_dir(&self, unit: &str, name: &str, dir: &Path) {
        let file = tempfile::NamedTempFile::new().expect("bundle file");
        let bundle = file.path();
        self.write_bundle(unit, name, bundle);
        run(
            "htx-node",
            &[
                "init".as_ref(),
                dir.as_os_str(),
                "--bundle".as_ref(),
                bundle.as_os_str(),
            ],
        )
        .await
        .ok();
    }

    /// Enrolls a node for `unit` and sets up its directory (`htx-node init`).
    pub fn enroll_node(&self, unit: &str, name: &str) -> TestNode {
        self.enroll_node_with(unit, name, |_| {})
    }

    /// As [`TestHub::enroll_node`], with changes to the node's `node.toml`.
    pub fn enroll_node_with(
        &self,
        unit: &str,
        name: &str,
        config: impl FnOnce(&mut NodeConfig),
    ) -> TestNode {
        self.enroll_node_in(None, unit, name, config)
    }

    /// As [`TestHub::enroll_node_with`], for a unit of hierarchy `version`.
    pub fn enroll_node_in(
        &self,
        version: Option<&str>,
        unit: &str,
        name: &str,
        config: impl FnOnce(&mut NodeConfig),
    ) -> TestNode {
        let root = TempDir::new().expect("temp dir");
        let bundle = root.path().join("bundle.json");
        self.write_bundle_in(version, unit, name, &bundle);
        let dir = root.path().join("node");
        htx_node::cli::init(&dir, &bundle, Backend::Redb).expect("htx-node init");
        configure(&dir, config);
        let node = Node::open(&dir).expect("open node");
        TestNode {
            _root: root,
            dir,
            name: name.to_owned(),
            node: Some(node),
        }
    }
}

/// Opens a hub's store, waiting while a hub that was just stopped in this
/// process still holds it (its last sessions finish in their own time).
async fn open_hub(
    dir: &Path,
    wrap: &dyn Fn(Arc<dyn htx_core::storage::Store>) -> Arc<dyn htx_core::storage::Store>,
) -> Hub {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Hub::open_with(dir, |cfg| {
            Ok(wrap(htx_core::storage::open(cfg.backend, dir)?))
        }) {
            Ok(hub) => return hub,
            Err(e)
                if matches!(e.downcast_ref(), Some(StoreError::Locked(_)))
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("cannot open the hub: {e:#}"),
        }
    }
}

/// Rewrites `DIR/node.toml`.
pub fn configure(dir: &Path, change: impl FnOnce(&mut NodeConfig)) {
    let mut cfg = NodeConfig::load(dir).expect("node config");
    change(&mut cfg);
    std::fs::write(
        dir.join(NodeConfig::FILE),
        toml::to_string(&cfg).expect("config serializes"),
    )
    .expect("write node.toml");
}

/// A node directory, opened in this process (or closed, for the binaries).
pub struct TestNode {
    _root: TempDir,
    dir: PathBuf,
    pub name: String,
    node: Option<Node>,
}

impl TestNode {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("the node is open")
    }

    /// Closes the store, e.g. for a binary to open it, or to simulate a restart.
    pub fn close(&mut self) {
        self.node = None;
    }

    pub fn open(&mut self) {
        assert!(self.node.is_none(), "already open");
        self.node = Some(Node::open(&self.dir).expect("open node"));
    }

    /// Drops the node and opens it again from its directory.
    pub fn restart(&mut self) {
        self.close();
        self.open();
    }

    /// Changes `node.toml` and reopens the node so that it applies.
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut NodeConfig)) {
        self.close();
        configure(&self.dir, change);
        self.open();
    }

    pub fn write(&self, records: Vec<Record>) -> Result<Vec<String>, NodeError> {
        self.node().write(records)
    }

    /// Records a cooperative; returns its id.
    pub fn add_coop(&self, unit: &str, name: &str) -> String {
        self.write(vec![coop(unit, name)])
            .expect("cooperative recorded")
            .remove(0)
    }

    pub async fn sync(&self) -> Result<SessionReport, SyncError> {
        sync_client::sync_once(self.node()).await
    }

    /// Every record the node holds, by id.
    pub fn export(&self) -> Vec<Record> {
        sorted(self.node().export(false).expect("node export"))
    }

    pub fn record(&self, id: &str) -> Record {
        self.export()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("node {} has no record {id}", self.name))
    }

    /// The node's documents.
    pub fn docs(&self) -> Vec<String> {
        self.node().replica().doc_ids().map(str::to_owned).collect()
    }

    /// Digest of every document the node holds.
    pub fn digest(&self) -> [u8; 32] {
        let r = self.node().replica();
        r.digest(r.doc_ids())
    }

    /// Number of Automerge changes the node holds.
    pub fn change_count(&self) -> usize {
        let mut r = self.node().replica();
        let docs: Vec<String> = r.doc_ids().map(str::to_owned).collect();
        docs.iter()
            .map(|d| r.changes_since(d, &[]).expect("readable").len())
            .sum()
    }
}

/// A TCP forwarder from a local port to `upstream`, which can cut the link
/// once a given number of bytes went upstream (node to hub), or hold back
/// what comes downstream (the hub's replies) for a while.
pub struct Proxy {
    port: u16,
    link: Arc<Link>,
    task: JoinHandle<()>,
}

struct Link {
    cut_after: Mutex<Option<u64>>,
    forwarded: AtomicU64,
    returned: AtomicU64,
    cuts: AtomicU64,
    /// TCP connections accepted.
    connections: AtomicU64,
    /// True while the hub's replies are held back.
    hold: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("bound").port();
        let link = Arc::new(Link {
            cut_after: Mutex::new(None),
            forwarded: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            hold: tokio::sync::watch::channel(false).0,
        });
        let l = link.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                l.connections.fetch_add(1, Ordering::SeqCst);
                let l = l.clone();
                tokio::spawn(async move {
                    if let Ok(up) = TcpStream::connect(("127.0.0.1", upstream_port)).await {
                        pipe(conn, up, l).await;
                    }
                });
            }
        });
        Proxy { port, link, task }
    }

    /// The address a node should use instead of the hub's.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Cuts the link (once) after `bytes` more bytes went upstream.
    pub fn cut_after(&self, bytes: u64) {
        *self.link.cut_after.lock().expect("lock") = Some(bytes);
    }

    /// Bytes sent back downstream (hub to node) so far.
    pub fn returned(&self) -> u64 {
        self.link.returned.load(Ordering::SeqCst)
    }

    /// Bytes forwarded upstream so far.
    pub fn forwarded(&self) -> u64 {
        self.link.forwarded.load(Ordering::SeqCst)
    }

    /// TCP connections opened through the proxy so far.
    pub fn connections(&self) -> u64 {
        self.link.connections.load(Ordering::SeqCst)
    }

    /// How many times the link was cut.
    pub fn cuts(&self) -> u64 {
        self.link.cuts.load(Ordering::SeqCst)
    }

    /// Holds back everything the hub sends until [`Proxy::release_replies`].
    pub fn hold_replies(&self) {
        self.link.hold.send_replace(true);
    }

    pub fn release_replies(&self) {
        self.link.hold.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(down: TcpStream, up: TcpStream, link: Arc<Link>) {
    let (mut down_r, mut down_w) = down.into_split();
    let (mut up_r, mut up_w) = up.into_split();
    let mut held = link.hold.subscribe();
    let back_link = link.clone();
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match up_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if held.wait_for(|held| !*held).await.is_err()
                || down_w.write_all(&buf[..n]).await.is_err()
            {
                break;
            }
            back_link.returned.fetch_add(n as u64, Ordering::SeqCst);
        }
        let _ = down_w.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match down_r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // How much of this read may pass before the cut, if one is due.
        let allowed = {
            let mut cut = link.cut_after.lock().expect("lock");
            match *cut {
                Some(left) if left <= n as u64 => {
                    *cut = None;
                    Some(left as usize)
                }
                Some(left) => {
                    *cut = Some(left - n as u64);
                    None
                }
                None => None,
            }
        };
        let pass = allowed.unwrap_or(n);
        if up_w.write_all(&buf[..pass]).await.is_err() {
            break;
        }
        link.forwarded.fetch_add(pass as u64, Ordering::SeqCst);
        if allowed.is_some() {
            // Cut: both sides lose the connection at once, mid-stream.
            link.cuts.fetch_add(1, Ordering::SeqCst);
            back.abort();
            return;
        }
    }
    let _ = up_w.shutdown().await;
    let _ = back.await;
}

// ---------------------------------------------------------------------------
// The real binaries

/// Path of `htx-node` or `htx-hub`, built (once per test process) into the
/// target directory this test runs from.
pub fn bin(name: &str) -> PathBuf {
    static PROFILE_DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = PROFILE_DIR.get_or_init(|| {
        // target/<profile>/deps/<test exe>
        let exe = std::env::current_exe().expect("test executable");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps")
            .to_owned();
        let profile = match dir.file_name().and_then(OsStr::to_str) {
            Some("debug") | None => "dev".to_owned(),
            Some(p) => p.to_owned(),
        };
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo
            .args(["build", "--bins", "-p", "htx-node", "-p", "htx-hub"])
            .args(["--profile", &profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // What cargo sets for a test process is not the build's business:
        // some build scripts (ring's) rerun when CARGO_MANIFEST_DIR changes,
        // which would rebuild half the tree here and again in `cargo test`.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&key.as_ref())
            {
                cargo.env_remove(key.as_ref());
            }
        }
        let out = cargo.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build of the binaries failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Its standard output, after checking that it succeeded.
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "command failed: {self:#?}");
        &self.stdout
    }

    /// Its standard error, after checking that it failed.
    pub fn failed(&self) -> &str {
        assert!(
            !self.status.success(),
            "command should have failed: {self:#?}"
        );
        &self.stderr
    }
}

/// `program` is one of ours by name (built if needed), or a path (a copy
/// of an older build, as a benchmark's baseline).
fn command<S: AsRef<OsStr>>(program: &str, args: &[S]) -> tokio::process::Command {
    let path = if program.contains('/') {
        PathBuf::from(program)
    } else {
        bin(program)
    };
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `program args...` to completion (at most a minute).
pub async fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Output {
    run_within(Duration::from_secs(60), program, args).await
}

/// Runs `program args...` to completion, within `limit` (large imports).
pub async fn run_within<S: AsRef<OsStr>>(limit: Duration, program: &str, args: &[S]) -> Output {
    let out = tokio::time::timeout(limit, command(program, args).output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A long-running process (`htx-node run`, `htx-hub run`), killed if the
/// test ends without stopping it. Its log goes to `log`.
pub struct Process {
    pub child: tokio::process::Child,
}

/// Starts `program args...` in the background.
pub fn spawn<S: AsRef<OsStr>>(program: &str, args: &[S], log: &Path) -> Process {
    spawn_env(program, args, log, &[])
}

/// Starts `program args...` in the background with more environment.
pub fn spawn_env<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    log: &Path,
    env: &[(&str, &str)],
) -> Process {
    let log = std::fs::File::create(log).expect("log file");
    let child = command(program, args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Process { child }
}

impl Process {
    /// SIGKILL, as a power cut or the OOM killer would.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill");
    }

    /// SIGTERM, and waits (at most 20 s) for the process to exit by itself.
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().expect("still running");
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the process exits within 20 s of SIGTERM")
            .expect("wait")
    }
}

/// The records `htx-node export` or `htx-hub export` printed.
pub fn parse_export(stdout: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("export is not a JSON array ({e}):\n{stdout}"))
}

/// The ids in an export's output.
pub fn export_ids(stdout: &str) -> Vec<String> {
    parse_export(stdout)
        .iter()
        .map(|r| r["id"].as_str().expect("records have ids").to_owned())
        .collect()
}

/// A port that was free a moment ago, for a process that binds it itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("bound")
        .port()
}

/// `GET path` over plain HTTP/1.1 (health and metrics ports): the status
/// code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the Prometheus sample `name{...}` whose labels include
/// every one of `labels` (each as printed, e.g. `node="office-pc"`).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        let (metric, rest) = key.split_once('{').unwrap_or((key, ""));
        (metric == name && labels.iter().all(|l| rest.contains(l))).then(|| value.parse().ok())?
    })
}

/// Writes into `dir` the four unit-list files of a synthetic hierarchy
/// (the names and columns of `core/admin-units/`): one province `root`
/// named `name`, `districts` districts of `communes` communes each (codes
/// `{root}{d:02}` and `{root}{d:02}{c:02}`), the same in 2023, 2024 and
/// 2025, each unit becoming itself (codes wider past 100). For a hub over units other than the
/// built-in ones (`units_dir`), e.g. a national-size tree for benchmarks.
pub fn write_synthetic_units(
    dir: &Path,
    root: &str,
    name: &str,
    districts: usize,
    communes: usize,
) {
    let mut units = vec![("province", root.to_owned(), name.to_owned(), String::new())];
    let width = |n: usize| (n.max(2) - 1).to_string().len().max(2);
    let (dw, cw) = (width(districts), width(communes));
    for d in 0..districts {
        let district = format!("{root}{d:0dw$}");
        units.push((
            "district",
            district.clone(),
            format!("Huyện {d}"),
            root.to_owned(),
        ));
        for c in 0..communes {
            let code = format!("{district}{c:0cw$}");
            units.push(("commune", code, format!("Xã {d}-{c}"), district.clone()));
        }
    }
    let (mut list, mut list_2025, mut map) = (
        String::from("level,code,name,type,parent_code\n"),
        String::from("level,code,name,type,parent_code,old_codes,old_province_codes\n"),
        String::from("old_code,old_name,new_code,new_name,new_parent_code,change\n"),
    );
    for (level, code, name, parent) in &units {
        list += &format!("{level},{code},{name},,{parent}\n");
        list_2025 += &format!("{level},{code},{name},,{parent},{code},{root}\n");
        map += &format!("{code},{name},{code},{name},{parent},same\n");
    }
    std::fs::create_dir_all(dir).expect("units dir");
    let files = htx_core::units::list_names().zip([&list, &list, &list_2025, &map]);
    for (file, text) in files {
        std::fs::write(dir.join(file), text).expect("unit list written");
    }
}

/// The figure of `indicator` in `phase` at `unit` in a progress reply, or
/// a panic naming what is missing.
pub fn figure<'a>(
    reply: &'a htx_proto::v1::ProgressReply,
    unit: &str,
    indicator: &str,
    phase: &str,
) -> &'a htx_proto::v1::Figure {
    reply
        .units
        .iter()
        .find(|u| u.unit == unit)
        .unwrap_or_else(|| panic!("unit {unit} in the reply"))
        .figures
        .iter()
        .find(|f| f.indicator == indicator && f.phase == phase)
        .unwrap_or_else(|| panic!("{indicator} phase {phase}"))
}

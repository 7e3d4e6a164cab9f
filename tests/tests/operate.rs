//! What an administrator operates with, on the real binaries: health,
//! readiness and metrics of a running hub and node, the session log line
//! and refusals in the log (no colour codes off a terminal, JSON on
//! request), systemd readiness, `htx-hub nodes`, and online backup then
//! restore of a running hub with nothing lost.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use htx_tests::{free_port, http_get, metric, run, spawn, spawn_env, wait_for_api};

struct Setup {
    root: tempfile::TempDir,
}

impl Setup {
    fn path(&self, name: &str) -> String {
        self.root.path().join(name).to_str().unwrap().to_owned()
    }

    /// A hub home and one node (`office-pc`, Thành phố Nam Định), set up
    /// with the commands the README gives.
    async fn new() -> Setup {
        let s = Setup {
            root: tempfile::TempDir::new().unwrap(),
        };
        let port = free_port();
        run(
            "htx-hub",
            &[
                "init",
                &s.path("hub"),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--public-url",
                &format!("https://127.0.0.1:{port}"),
                "--server-name",
                "127.0.0.1",
            ],
        )
        .await
        .ok();
        let bundle = s.path("office-pc.json");
        run(
            "htx-hub",
            &[
                "enroll",
                &s.path("hub"),
                "--unit",
                "356",
                "--name",
                "office-pc",
                "--out",
                &bundle,
            ],
        )
        .await
        .ok();
        run("htx-node", &["init", &s.path("node"), "--bundle", &bundle])
            .await
            .ok();
        s
    }

    async fn add(&self, name: &str) -> String {
        run(
            "htx-node",
            &[
                "add",
                &self.path("node"),
                "cooperative",
                "--type",
                "HTX",
                "--name",
                name,
                "--unit",
                "13633",
            ],
        )
        .await
        .ok()
        .trim()
        .to_owned()
    }

    async fn hub_ids(&self) -> Vec<String> {
        let mut ids =
            htx_tests::export_ids(run("htx-hub", &["export", &self.path("hub")]).await.ok());
        ids.sort();
        ids
    }
}

async fn addr(file: &str) -> std::net::SocketAddr {
    wait_for_api(Path::new(file), Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_logs_and_nodes_of_running_processes() {
    let s = Setup::new().await;
    let hub_log = s.root.path().join("hub.log");
    let mut hub = spawn("htx-hub", &["run", &s.path("hub")], &hub_log);
    let hub_http = addr(&s.path("hub/http.addr")).await;
    let node_log = s.root.path().join("node.log");
    let mut node = spawn("htx-node", &["run", &s.path("node")], &node_log);
    let node_http = addr(&s.path("node/status.addr")).await;
    addr(&s.path("node/api.addr")).await;

    // Health and readiness, without any certificate.
    assert_eq!(http_get(hub_http, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http_get(hub_http, "/readyz").await, (200, "ready\n".into()));
    assert_eq!(http_get(node_http, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(
        http_get(node_http, "/readyz").await,
        (200, "ready\n".into())
    );

    s.add("HTX Mỹ Tân").await;
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .ok();

    let (code, m) = http_get(hub_http, "/metrics").await;
    assert_eq!(code, 200, "{m}");
    let office = r#"node="office-pc""#;
    assert!(
        metric(
            &m,
            "htx_hub_sessions_total",
            &[office, r#"outcome="completed""#]
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "htx_hub_changes_merged_total", &[office]).unwrap() >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "htx_hub_bytes_received_total", &[office]).unwrap() > 0.0,
        "{m}"
    );
    let age = metric(&m, "htx_hub_node_last_sync_age_seconds", &[office]).unwrap();
    assert!((0.0..60.0).contains(&age), "{m}");
    assert_eq!(
        metric(&m, "htx_hub_node_documents_behind", &[office]),
        Some(0.0),
        "{m}"
    );
    assert!(
        metric(&m, "htx_hub_merge_seconds_count", &[]).unwrap() >= 1.0,
        "{m}"
    );
    assert!(metric(&m, "htx_hub_store_bytes", &[]).unwrap() > 0.0, "{m}");
    // A node certificate lives a year by default, the hub's 825 days.
    let node_cert = metric(
        &m,
        "htx_hub_certificate_expiry_seconds",
        &[r#"certificate="node:office-pc""#],
    )
    .unwrap();
    assert!(
        (360.0 * 86400.0..=366.0 * 86400.0).contains(&node_cert),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "htx_hub_certificate_expiry_seconds",
            &[r#"certificate="hub""#]
        )
        .unwrap()
            > 800.0 * 86400.0
    );
    assert_eq!(
        metric(&m, "htx_hub_nodes", &[r#"state="active""#]),
        Some(1.0),
        "{m}"
    );

    let (code, m) = http_get(node_http, "/metrics").await;
    assert_eq!(code, 200, "{m}");
    assert!(
        metric(&m, "htx_node_sessions_total", &[r#"outcome="completed""#]).unwrap() >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "htx_node_changes_sent_total", &[]).unwrap() >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "htx_node_documents_not_at_hub", &[]),
        Some(0.0),
        "{m}"
    );
    assert!(
        metric(&m, "htx_node_last_sync_age_seconds", &[]).unwrap() < 60.0,
        "{m}"
    );
    assert!(metric(&m, "htx_node_certificate_expiry_seconds", &[]).unwrap() > 300.0 * 86400.0);

    // `nodes`: state, age, versions, certificate days; then revoked.
    let text = run("htx-hub", &["nodes", &s.path("hub")])
        .await
        .ok()
        .to_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("office-pc"))
        .expect(&text);
    assert!(
        line.contains("active") && line.contains(" s ago") && line.contains("0.1.0"),
        "{text}"
    );
    assert!(!line.contains("STALE"), "{text}");
    run("htx-hub", &["revoke", &s.path("hub"), "office-pc"])
        .await
        .ok();
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .failed();
    let json: serde_json::Value = serde_json::from_str(
        run("htx-hub", &["nodes", &s.path("hub"), "--format", "json"])
            .await
            .ok(),
    )
    .unwrap();
    let n = &json[0];
    assert_eq!(
        (n["state"].as_str(), n["stale"].as_bool()),
        (Some("revoked"), Some(false)),
        "{json}"
    );
    assert_eq!(
        (n["software"].as_str(), n["protocol"].as_u64()),
        (Some("0.1.0"), Some(1)),
        "{json}"
    );
    assert!(n["cert_days_left"].as_i64().unwrap() >= 364, "{json}");
    // With a stale threshold of 0 days, a node that has not synced since
    // is flagged (revoked ones never are): none here.
    let text = run("htx-hub", &["nodes", &s.path("hub"), "--stale-days", "0"])
        .await
        .ok()
        .to_owned();
    assert!(
        text.contains("revoked") && !text.contains("STALE"),
        "{text}"
    );

    let (_, m) = http_get(hub_http, "/metrics").await;
    assert!(
        metric(&m, "htx_hub_refusals_total", &[r#"reason="revoked""#]).unwrap() >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "htx_hub_nodes", &[r#"state="revoked""#]),
        Some(1.0),
        "{m}"
    );

    hub.terminate().await;
    node.terminate().await;
    let hub_text = std::fs::read_to_string(&hub_log).unwrap();
    let node_text = std::fs::read_to_string(&node_log).unwrap();
    // One info line per session, with its figures; one per refusal.
    let session = hub_text
        .lines()
        .find(|l| l.contains("sync session") && l.contains("outcome=completed"))
        .expect(&hub_text);
    for field in [
        "node=office-pc",
        "changes_in=",
        "changes_out=",
        "bytes_in=",
        "bytes_out=",
        "duration_ms=",
    ] {
        assert!(session.contains(field), "{session}");
    }
    assert!(
        hub_text
            .lines()
            .any(|l| l.contains("reason=\"revoked\"") || l.contains("reason=revoked")),
        "{hub_text}"
    );
    assert!(
        node_text
            .lines()
            .any(|l| l.contains("sync session") && l.contains("changes_out=")),
        "{node_text}"
    );
    // Not a terminal: no colour codes.
    assert!(!hub_text.contains('\u{1b}') && !node_text.contains('\u{1b}'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_systemd_readiness() {
    let s = Setup::new().await;
    let socket_path = s.root.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let log = s.root.path().join("hub.log");
    let mut hub = spawn_env(
        "htx-hub",
        &["run", &s.path("hub")],
        &log,
        &[
            ("HTX_LOG_FORMAT", "json"),
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ],
    );
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(20), notify.recv(&mut buf))
        .await
        .expect("the hub tells systemd it is ready")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // Ready means serving: the health endpoint answers at once.
    let http = addr(&s.path("hub/http.addr")).await;
    assert_eq!(http_get(http, "/readyz").await.0, 200);
    hub.terminate().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

/// The running hub gives freed memory back every `memory_trim_secs`, and
/// never with 0 (`hub/src/memory.rs`): each return is counted in
/// `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_gives_freed_memory_back_as_configured() {
    let s = Setup::new().await;
    for (secs, expected) in [("1", true), ("0", false)] {
        let log = s.root.path().join(format!("hub-trim-{secs}.log"));
        let env = [("HTX_HUB_MEMORY_TRIM_SECS", secs)];
        let mut hub = spawn_env("htx-hub", &["run", &s.path("hub")], &log, &env);
        let http = addr(&s.path("hub/http.addr")).await;
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let (code, m) = http_get(http, "/metrics").await;
        assert_eq!(code, 200, "{m}");
        let trims = metric(&m, "htx_hub_memory_trim_seconds_count", &[]);
        match expected {
            true => assert!(trims.is_some_and(|n| n >= 2.0), "every second: {trims:?}"),
            false => assert_eq!(trims, None, "never with 0"),
        }
        hub.terminate().await;
        std::fs::remove_file(s.path("hub/http.addr")).ok();
    }
}

/// A backup taken while the hub runs and the node writes; the hub is then
/// restored from it and gets back, from the node, everything written since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_then_restore_loses_nothing() {
    let s = Setup::new().await;
    let mut hub = spawn(
        "htx-hub",
        &["run", &s.path("hub")],
        &s.root.path().join("hub.log"),
    );
    addr(&s.path("hub/admin.addr")).await;
    let mut node = spawn(
        "htx-node",
        &["run", &s.path("node")],
        &s.root.path().join("node.log"),
    );
    addr(&s.path("node/api.addr")).await;

    s.add("HTX trước sao lưu").await;
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .ok();
    let backup = s.path("hub-backup.redb");
    run("htx-hub", &["backup", &s.path("hub"), "--out", &backup])
        .await
        .ok();
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never over an existing file.
    let again = run("htx-hub", &["backup", &s.path("hub"), "--out", &backup]).await;
    assert!(again.failed().contains("already exists"));
    // The node's, while it runs, too.
    let node_backup = s.path("node-backup.redb");
    run(
        "htx-node",
        &["backup", &s.path("node"), "--out", &node_backup],
    )
    .await
    .ok();
    assert!(std::fs::metadata(&node_backup).unwrap().len() > 0);

    // Edits after the backup reach the hub, then the hub loses them.
    s.add("HTX sau sao lưu").await;
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .ok();
    let before = s.hub_ids().await;
    assert_eq!(before.len(), 2);

    // Restore refuses while the hub runs.
    let busy = run("htx-hub", &["restore", &s.path("hub"), "--from", &backup]).await;
    assert!(busy.failed().contains("stop it first"), "{busy:?}");
    hub.terminate().await;
    run("htx-hub", &["restore", &s.path("hub"), "--from", &backup])
        .await
        .ok();
    assert_eq!(
        s.hub_ids().await.len(),
        1,
        "the backup holds the first record only"
    );
    let mut hub = spawn(
        "htx-hub",
        &["run", &s.path("hub")],
        &s.root.path().join("hub2.log"),
    );
    addr(&s.path("hub/admin.addr")).await;
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .ok();
    assert_eq!(
        s.hub_ids().await,
        before,
        "the node gave the hub back what it lost"
    );
    hub.terminate().await;
    node.terminate().await;

    // A node restored offline from its own backup converges too.
    run(
        "htx-node",
        &["restore", &s.path("node"), "--from", &node_backup],
    )
    .await
    .ok();
    let mut hub = spawn(
        "htx-hub",
        &["run", &s.path("hub")],
        &s.root.path().join("hub3.log"),
    );
    addr(&s.path("hub/admin.addr")).await;
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .ok();
    let ids = htx_tests::export_ids(run("htx-node", &["export", &s.path("node")]).await.ok());
    assert_eq!(ids.len(), 2);
    hub.terminate().await;
}

/// Runs `program args` with extra environment; (success, stdout + stderr).
async fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = tokio::process::Command::new(htx_tests::bin(program))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_a_documented_config_and_every_field_comes_from_the_environment() {
    use htx_hub::config::HubConfig;
    use htx_node::config::NodeConfig;
    let s = Setup::new().await;
    // Every field is documented in the example `init` copies, comments and all.
    for (example, fields) in [
        (
            htx_hub::config::EXAMPLE,
            toml::Table::try_from(HubConfig::default()).unwrap(),
        ),
        (
            htx_node::config::EXAMPLE,
            toml::Table::try_from(NodeConfig::default()).unwrap(),
        ),
    ] {
        for field in fields.keys() {
            assert!(
                example.lines().any(|l| l
                    .trim_start_matches("# ")
                    .starts_with(&format!("{field} = "))),
                "{field} is not documented"
            );
        }
    }
    assert!(htx_hub::config::EXAMPLE.contains("# node_cert_secs = "));
    assert!(htx_node::config::EXAMPLE.contains("# hub_url = "));
    let hub_toml = std::fs::read_to_string(s.path("hub/hub.toml")).unwrap();
    assert!(hub_toml.contains("# Where nodes connect"), "{hub_toml}");
    let written: HubConfig = toml::from_str(&hub_toml).unwrap();
    assert_eq!(
        written.listen,
        HubConfig::load(Path::new(&s.path("hub"))).unwrap().listen
    );
    assert_ne!(
        written.listen,
        HubConfig::default().listen,
        "the --listen flag is kept"
    );
    let node_toml = std::fs::read_to_string(s.path("node/node.toml")).unwrap();
    assert!(
        node_toml.contains("# Seconds between sync sessions"),
        "{node_toml}"
    );
    assert_eq!(
        toml::from_str::<NodeConfig>(&node_toml).unwrap(),
        NodeConfig::default()
    );

    // Overrides, one scheme for every field: a bad value is refused naming
    // the field, whichever field it is; an unknown name too.
    let hub = s.path("hub");
    for (var, field) in [
        ("HTX_HUB_MAX_SESSIONS_PER_NODE", "max_sessions_per_node"),
        ("HTX_HUB_IDLE_TIMEOUT_SECS", "idle_timeout_secs"),
        ("HTX_HUB_STALE_AFTER_DAYS", "stale_after_days"),
    ] {
        let (ok, text) = run_env("htx-hub", &["export", &hub], &[(var, "0")]).await;
        assert!(!ok && text.contains(field), "{var}: {text}");
    }
    let (ok, text) = run_env(
        "htx-hub",
        &["export", &hub],
        &[("HTX_HUB_ADMIN_LISTEN", "0.0.0.0:1")],
    )
    .await;
    assert!(!ok && text.contains("loopback"), "{text}");
    let (ok, text) = run_env(
        "htx-hub",
        &["export", &hub],
        &[("HTX_HUB_NO_SUCH_FIELD", "1")],
    )
    .await;
    assert!(!ok && text.contains("no_such_field"), "{text}");
    let (ok, text) = run_env(
        "htx-hub",
        &["nodes", &hub],
        &[("HTX_HUB_STALE_AFTER_DAYS", "3")],
    )
    .await;
    assert!(ok, "{text}");
    let node = s.path("node");
    for (var, field) in [
        ("HTX_NODE_TIMEOUT_SECS", "timeout_secs"),
        ("HTX_NODE_RETRY_MIN_SECS", "retry_min_secs"),
    ] {
        let (ok, text) = run_env("htx-node", &["status", &node], &[(var, "0")]).await;
        assert!(!ok && text.contains(field), "{var}: {text}");
    }
    let (ok, text) = run_env(
        "htx-node",
        &["status", &node],
        &[("HTX_NODE_HUB_URL", "http://plain")],
    )
    .await;
    assert!(!ok && text.contains("hub_url"), "{text}");
}

/// A dead office PC replaced in three commands: a new certificate for the
/// same node, a new directory from it, one sync that brings everything
/// the hub holds back; the dead PC's certificate is refused from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_office_pc_is_replaced_in_three_commands() {
    let s = Setup::new().await;
    let mut hub = spawn(
        "htx-hub",
        &["run", &s.path("hub")],
        &s.root.path().join("hub.log"),
    );
    addr(&s.path("hub/admin.addr")).await;
    s.add("HTX Mỹ Tân").await;
    s.add("HTX Lộc Hòa").await;
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .ok();
    // The PC dies; its directory is gone (a copy of its bundle is not).
    let old = tempfile::TempDir::new().unwrap();
    std::fs::rename(s.path("node/bundle.json"), old.path().join("bundle.json")).unwrap();
    std::fs::remove_dir_all(s.path("node")).unwrap();

    let bundle = s.path("new-pc.json");
    let hub_dir = s.path("hub");
    // Only an enrolled name, and only for its own unit.
    let e = run(
        "htx-hub",
        &[
            "enroll",
            &hub_dir,
            "--unit",
            "356",
            "--name",
            "nobody",
            "--replace",
            "--out",
            &bundle,
        ],
    )
    .await;
    assert!(e.failed().contains("nobody"), "{e:?}");
    let e = run(
        "htx-hub",
        &[
            "enroll",
            &hub_dir,
            "--unit",
            "359",
            "--name",
            "office-pc",
            "--replace",
            "--out",
            &bundle,
        ],
    )
    .await;
    assert!(e.failed().contains("same unit"), "{e:?}");
    // The three commands.
    run(
        "htx-hub",
        &[
            "enroll",
            &hub_dir,
            "--unit",
            "356",
            "--name",
            "office-pc",
            "--replace",
            "--out",
            &bundle,
        ],
    )
    .await
    .ok();
    run("htx-node", &["init", &s.path("node"), "--bundle", &bundle])
        .await
        .ok();
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .ok();

    let mut got = htx_tests::export_ids(run("htx-node", &["export", &s.path("node")]).await.ok());
    got.sort();
    assert_eq!(got, s.hub_ids().await);
    assert_eq!(got.len(), 2);
    // The new PC records and syncs on; the dead PC's certificate is refused.
    s.add("HTX máy mới").await;
    run("htx-node", &["sync", &s.path("node"), "--once"])
        .await
        .ok();
    assert_eq!(s.hub_ids().await.len(), 3);
    let dead = s.path("dead");
    let e = run(
        "htx-node",
        &[
            "init",
            &dead,
            "--bundle",
            old.path().join("bundle.json").to_str().unwrap(),
        ],
    )
    .await;
    e.ok();
    let e = run("htx-node", &["sync", &dead, "--once"]).await;
    assert!(
        e.failed().contains("revoked") || e.stderr.contains("thu hồi"),
        "{e:?}"
    );
    hub.terminate().await;
}

/// The sync port speaks TLS 1.3 only, as the README says: a client offering
/// only TLS 1.2 fails the handshake, while one offering 1.3 gets through it
/// (and is then asked for its certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_port_refuses_tls_1_2() {
    let hub = htx_tests::TestHub::start().await;
    let ca = std::fs::read_to_string(hub.dir().join("ca.pem")).unwrap();
    let port = hub.port();
    let handshake = move |version: &'static rustls::SupportedProtocolVersion| {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_protocol_versions(&[version])
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        conn.complete_io(&mut tcp).map(|_| conn.protocol_version())
    };
    let old = tokio::task::spawn_blocking({
        let h = handshake.clone();
        move || h(&rustls::version::TLS12)
    })
    .await
    .unwrap();
    assert!(old.is_err(), "a TLS 1.2 handshake succeeded: {old:?}");
    let new = tokio::task::spawn_blocking(move || handshake(&rustls::version::TLS13))
        .await
        .unwrap();
    assert_eq!(new.ok().flatten(), Some(rustls::ProtocolVersion::TLSv1_3));
}

//! Refusals people can understand: each refused connection the hub can
//! attribute is in its audit log, and the node says precisely what is wrong.

use std::time::Duration;

use htx_hub::config::HubConfig;
use htx_node::sync_client::SyncError;
use htx_tests::TestHub;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn set_hub_config(hub: &TestHub, change: impl FnOnce(&mut HubConfig)) {
    let mut cfg = HubConfig::load(hub.dir()).unwrap();
    change(&mut cfg);
    std::fs::write(
        hub.dir().join(HubConfig::FILE),
        toml::to_string(&cfg).unwrap(),
    )
    .unwrap();
}

/// The hub's `refused` audit entries for `node`.
fn refusals(hub: &TestHub, node: &str) -> Vec<serde_json::Value> {
    htx_hub::audit::read(hub.dir(), Some(node))
        .unwrap()
        .into_iter()
        .filter(|e| e["event"] == "refused")
        .collect()
}

fn edit_bundle(dir: &std::path::Path, change: impl FnOnce(&mut htx_core::pki::Bundle)) {
    let path = dir.join("bundle.json");
    let mut b = htx_core::pki::Bundle::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut b);
    std::fs::write(&path, b.to_json()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_audited_and_explained() {
    let hub_a = TestHub::start().await;
    let hub_b = TestHub::start().await;
    let mut node = hub_b.enroll_node("356", "intruder");
    let a = hub_a.enroll_node("359", "honest").node().bundle().clone();
    node.close();
    edit_bundle(node.dir(), |b| {
        b.ca_cert = a.ca_cert;
        b.ca_fingerprint = a.ca_fingerprint;
        b.hub_url = hub_a.url();
    });
    node.open();
    let err = node.sync().await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("not issued by the CA in this node's bundle"),
        "the node names the problem: {text}"
    );
    assert!(text.contains("CA"), "{text}");

    // Knocking anyway (a client that does not check itself): audited.
    let b = node.node().bundle().clone();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&b.ca_cert))
        .identity(Identity::from_pem(&b.cert, &b.key))
        .domain_name(b.hub_name.clone());
    let _ = knock(&hub_a.url(), tls).await;
    // One entry per refused handshake (the client may retry once).
    let refused = refusals(&hub_a, "intruder");
    assert!(!refused.is_empty(), "audited");
    for r in &refused {
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("not issued by this hub's CA"),
            "{refused:#?}"
        );
        assert_eq!(r["stage"], "tls handshake");
    }
    assert!(hub_a.export().is_empty());
}

/// Connects with `tls` and makes one call; the error, if any.
async fn knock(url: &str, tls: ClientTlsConfig) -> Result<(), String> {
    let ch = Endpoint::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_explained_by_the_node_and_audited_by_the_hub() {
    let mut hub = TestHub::create();
    set_hub_config(&hub, |c| c.node_cert_secs = Some(2));
    hub.serve().await;
    // Never synced, so never renewed: its one certificate runs out.
    let node = hub.enroll_node("356", "forgetful");
    tokio::time::sleep(Duration::from_millis(3000)).await;

    let err = node.sync().await.expect_err("expired");
    let expires = node.node().credentials().expires_at;
    let text = err.to_string();
    assert!(matches!(err, SyncError::Expired { .. }), "{err:?}");
    assert!(
        text.contains(&format!("this node's certificate expired at {expires}")),
        "{text}"
    );
    assert!(text.contains("hết hạn"), "{text}");
    assert_eq!(
        node.node().status().sync.last_error,
        text,
        "`htx-node status` shows the same"
    );

    let b = node.node().bundle().clone();
    let c = node.node().credentials();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&b.ca_cert))
        .identity(Identity::from_pem(&c.cert, &c.key))
        .domain_name(b.hub_name.clone());
    assert!(knock(&hub.url(), tls).await.is_err());
    let refused = refusals(&hub, "forgetful");
    assert!(!refused.is_empty(), "audited");
    for r in &refused {
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("certificate expired"),
            "{refused:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_certificate_in_the_bundle_is_not_called_a_network_problem() {
    let hub = TestHub::start().await;
    let mut node = hub.enroll_node("356", "node-356");
    node.close();
    edit_bundle(node.dir(), |b| {
        // A few characters lost in the middle of the certificate.
        let mid = b.cert.len() / 2;
        b.cert.replace_range(mid..mid + 8, "");
    });
    node.open();
    let err = node.sync().await.expect_err("damaged");
    let text = err.to_string();
    assert!(matches!(err, SyncError::BadCertificate(_)), "{err:?}");
    assert!(!text.contains("cannot reach"), "{text}");
    assert!(
        text.contains("the certificate in this node's bundle is damaged"),
        "{text}"
    );
    assert!(text.contains("hỏng"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_line_does_not_hide_the_rest_of_the_audit_log() {
    let hub = TestHub::create();
    let dir = hub.dir();
    htx_hub::audit::audit_event(
        dir,
        "refused",
        "node-a",
        serde_json::json!({"reason": "first"}),
    )
    .unwrap();
    // A torn write: half a line and bytes that are not text.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(htx_hub::audit::FILE))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"time\": \"2025-\xff\xfe\n").unwrap();
    drop(f);
    htx_hub::audit::audit_event(
        dir,
        "refused",
        "node-a",
        serde_json::json!({"reason": "last"}),
    )
    .unwrap();

    let out = htx_tests::run(
        "htx-hub",
        &["audit", dir.to_str().unwrap(), "--node", "node-a"],
    )
    .await;
    let printed: Vec<serde_json::Value> = out
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 2, "both good entries: {printed:?}");
    assert_eq!(printed[0]["reason"], "first");
    assert_eq!(printed[1]["reason"], "last");
    assert!(
        out.stderr
            .contains("line 2 is not a readable entry and was skipped"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("đã bỏ qua"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cooperative_is_named_not_reported_as_a_missing_unit() {
    use htx_core::schema::{Record, Value};
    let hub = TestHub::create();
    let node = hub.enroll_node("356", "node-356");
    let before = node.export();
    let ghost = htx_core::schema::new_id();
    let mut obs = Record {
        kind: "observation".into(),
        ..Default::default()
    };
    for (k, v) in [
        ("cooperative", Value::Text(ghost.clone())),
        ("observed_on", Value::Text("2025-06-30".into())),
        ("members", Value::Int(3)),
    ] {
        obs.fields.insert(k.into(), v);
    }
    let err = node.write(vec![obs]).expect_err("unknown cooperative");
    let text = err.to_string();
    assert!(
        text.contains(&format!("no cooperative with id \"{ghost}\" on this node")),
        "{text}"
    );
    assert!(!text.contains("\"unit\" is required"), "{text}");
    assert_eq!(node.export(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_s_refusal_is_audited_under_its_name() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "laptop");
    node.sync().await.expect("sync");
    htx_hub::home::Home::new(hub.dir())
        .revoke("laptop")
        .expect("revoke");
    let err = node.sync().await.expect_err("revoked");
    assert!(err.to_string().contains("node laptop is revoked"), "{err}");
    let out = htx_tests::run(
        "htx-hub",
        &["audit", hub.dir().to_str().unwrap(), "--node", "laptop"],
    )
    .await;
    let refused: Vec<serde_json::Value> = out
        .ok()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "refused")
        .collect();
    assert!(!refused.is_empty(), "{}", out.stdout);
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("certificate revoked at "),
        "{refused:?}"
    );
}

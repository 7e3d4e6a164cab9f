//! Node identity over the life of a certificate: a certificate from another
//! CA or an expired one is refused, a node renews its own before it
//! expires, a revoked node is refused even on a connection already open,
//! and the hub's certificate rotates without re-enrolling anyone.

use std::time::Duration;

use htx_hub::config::HubConfig;
use htx_node::sync_client;
use htx_tests::TestHub;

fn set_hub_config(hub: &TestHub, change: impl FnOnce(&mut HubConfig)) {
    let mut cfg = HubConfig::load(hub.dir()).unwrap();
    change(&mut cfg);
    std::fs::write(
        hub.dir().join(HubConfig::FILE),
        toml::to_string(&cfg).unwrap(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let hub_a = TestHub::start().await;
    let hub_b = TestHub::start().await;
    let mut node = hub_b.enroll_node("356", "intruder");
    node.add_coop("13633", "HTX Hạ Long");
    // It trusts hub A's CA and knocks there with hub B's certificate.
    let a = hub_a.enroll_node("359", "honest").node().bundle().clone();
    node.close();
    let path = node.dir().join("bundle.json");
    let mut b: htx_core::pki::Bundle =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    b.ca_cert = a.ca_cert;
    b.ca_fingerprint = a.ca_fingerprint;
    b.hub_url = hub_a.url();
    std::fs::write(&path, b.to_json()).unwrap();
    node.open();
    let err = node.sync().await.expect_err("refused");
    assert!(
        !matches!(err, sync_client::SyncError::WrongHub { .. }),
        "the node trusts A: {err}"
    );
    assert!(hub_a.export().is_empty(), "nothing reached hub A");
    assert!(hub_a.nodes().iter().all(|n| n.stats.sessions == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_renews_its_certificate_across_the_expiry_and_an_expired_one_is_refused() {
    let mut hub = TestHub::create();
    set_hub_config(&hub, |c| c.node_cert_secs = Some(9));
    hub.serve().await;
    let renewing = hub.enroll_node("356", "renewing");
    let forgetful = hub.enroll_node("359", "forgetful");
    let first = renewing.node().credentials();
    renewing.sync().await.expect("a fresh certificate works");
    assert_eq!(
        renewing.node().credentials(),
        first,
        "no renewal needed yet"
    );
    forgetful.sync().await.expect("a fresh certificate works");

    // Two thirds of its life have passed: the next sync renews it.
    tokio::time::sleep(Duration::from_millis(6800)).await;
    assert!(renewing.node().needs_renewal());
    renewing.sync().await.expect("sync and renew");
    let renewed = renewing.node().credentials();
    assert_ne!(renewed.cert, first.cert);
    assert_ne!(renewed.key, first.key, "a new key, made on the node");
    assert!(!renewing.node().needs_renewal());
    let on_disk = std::fs::read_to_string(renewing.dir().join("bundle.json")).unwrap();
    assert!(
        on_disk.contains(&renewed.expires_at),
        "the renewal survives a restart"
    );

    // Past the first certificate's expiry: the renewed one still works,
    // the one that was never renewed is refused.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    renewing.add_coop("13633", "HTX Hạ Long");
    renewing
        .sync()
        .await
        .expect("the renewed certificate works after the old one expired");
    assert_eq!(hub.export().len(), 1);
    let err = forgetful.sync().await.expect_err("expired");
    assert!(!err.to_string().is_empty());
    assert!(hub.hub().progress(&Default::default()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_refused_even_on_an_open_connection() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "laptop");
    node.add_coop("13633", "HTX Hạ Long");
    let channel = sync_client::connect(node.node()).await.expect("connected");
    let mut report = Default::default();
    sync_client::session(node.node(), channel.clone(), &mut report)
        .await
        .expect("a session");
    let before = hub.export();

    htx_hub::home::Home::new(hub.dir())
        .revoke("laptop")
        .expect("revoke");
    node.add_coop("13636", "HTX Trần Tế Xương");
    let mut report = Default::default();
    let err = sync_client::session(node.node(), channel, &mut report)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("revoked"), "{err}");
    assert_eq!(
        hub.export(),
        before,
        "nothing from a revoked node is merged"
    );
    let err = node
        .sync()
        .await
        .expect_err("refused on a new connection too");
    assert!(err.to_string().contains("revoked"), "{err}");
    let e = htx_hub::home::Home::new(hub.dir())
        .enrolment("laptop")
        .unwrap();
    assert!(!e.revoked_at.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_certificate_rotates_without_reenrolling_nodes() {
    let mut hub = TestHub::start().await;
    let node = hub.enroll_node("356", "office");
    node.add_coop("13633", "HTX Hạ Long");
    node.sync().await.unwrap();
    let old = std::fs::read_to_string(hub.dir().join("hub.pem")).unwrap();
    let cfg = HubConfig::load(hub.dir()).unwrap();
    htx_hub::home::Home::new(hub.dir())
        .rotate_server_cert(&cfg)
        .unwrap();
    assert_ne!(
        std::fs::read_to_string(hub.dir().join("hub.pem")).unwrap(),
        old
    );
    hub.restart().await;
    node.add_coop("13636", "HTX Trần Tế Xương");
    let r = node
        .sync()
        .await
        .expect("the same bundle works with the new hub certificate");
    assert!(r.in_sync);
    assert_eq!(hub.export().len(), 2);
}

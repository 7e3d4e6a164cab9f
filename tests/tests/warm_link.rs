//! A node keeps its connection to the hub between sessions: a warm session
//! opens no new TCP or TLS connection, an edit travels with the hello and
//! reaches the hub in one round trip, and a dead link is noticed by the
//! connection's own pings rather than at the session's time-out.

use std::time::{Duration, Instant};

use htx_node::sync_client::{self, Link};
use htx_tests::{Proxy, TestHub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_link_carries_an_edit_in_one_round_trip() {
    let hub = TestHub::start().await;
    let proxy = Proxy::start(hub.port()).await;
    let node = hub.enroll_node_with("356", "node-356", |c| {
        c.hub_url = Some(proxy.url());
    });
    node.add_coop("13633", "HTX Hạ Long");
    let mut link: Option<Link> = None;
    let first = sync_client::sync_with(node.node(), &mut link)
        .await
        .expect("first sync");
    assert!(first.in_sync);
    assert_eq!(proxy.connections(), 1);

    // Nothing new: one round trip, same connection.
    let idle = sync_client::sync_with(node.node(), &mut link)
        .await
        .expect("no-op");
    assert!(idle.in_sync);
    assert_eq!((idle.round_trips, idle.changes_sent), (1, 0), "{idle:?}");

    // An edit: it goes with the hello, and the hub's answer already says
    // both sides agree.
    let id = node.add_coop("13633", "HTX Mỹ Xá");
    let before = proxy.forwarded();
    let edit = sync_client::sync_with(node.node(), &mut link)
        .await
        .expect("edit");
    assert!(edit.in_sync, "{edit:?}");
    assert_eq!((edit.round_trips, edit.changes_sent), (1, 1), "{edit:?}");
    assert!(hub.export().iter().any(|r| r.id == id), "at the hub");
    assert_eq!(proxy.connections(), 1, "no new connection");
    assert!(
        proxy.forwarded() - before < 2_000,
        "no TLS handshake again: {} bytes",
        proxy.forwarded() - before
    );
    assert_eq!(node.node().status().documents_not_at_hub, 0);
    // The node's own session counts are the hub's too.
    assert_eq!(hub.node_view("node-356").stats.changes_received, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eager_edit_the_hub_refuses_is_refused_as_any_batch() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    node.add_coop("13633", "HTX Hạ Long");
    let mut link: Option<Link> = None;
    sync_client::sync_with(node.node(), &mut link)
        .await
        .expect("first sync");
    let before = hub.export();
    // A record of another district's commune, past the node's own checks.
    let mut rec = htx_tests::coop("13741", "HTX Ngoài");
    rec.id = htx_core::schema::new_id();
    node.node()
        .replica()
        .change("u/2023/13633", |d| htx_core::docs::put_record(d, &rec))
        .expect("stored")
        .expect("written");
    let err = sync_client::sync_with(node.node(), &mut link)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains(&rec.id), "{err}");
    assert_eq!(hub.export(), before);
    assert!(
        link.is_none(),
        "a failed link is dropped, to be opened afresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_link_is_noticed_by_its_pings() {
    let hub = TestHub::start().await;
    let proxy = Proxy::start(hub.port()).await;
    // A session time-out far longer than the pings' 5 + 20.3 seconds on a
    // link declared fast (1 MB/s: one batch queued ahead of a ping is
    // 0.3 s of it).
    let node = hub.enroll_node_with("356", "node-356", |c| {
        c.hub_url = Some(proxy.url());
        c.timeout_secs = 300;
        c.min_link_bytes_per_sec = 1_000_000;
    });
    let mut link: Option<Link> = None;
    sync_client::sync_with(node.node(), &mut link)
        .await
        .expect("first sync");
    // The link goes silent: nothing comes back from the hub any more.
    proxy.hold_replies();
    let t = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(120),
        sync_client::sync_with(node.node(), &mut link),
    )
    .await
    .expect("the session ends by itself, long before its own time-out");
    assert!(res.is_err(), "{res:?}");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "noticed after {:?}",
        t.elapsed()
    );
    proxy.release_replies();
}

//! One node cannot starve the others: its sessions are capped, and a
//! thousand rapid reconnects leave the hub serving everyone, with no growth
//! in open files or memory.

use htx_node::sync_client;
use htx_proto::v1 as pb;
use htx_tests::{TestHub, TestNode};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// Opens a session and leaves it open (hello sent, welcome received).
async fn hold_session(
    node: &TestNode,
) -> Result<
    (
        mpsc::Sender<pb::NodeMessage>,
        tonic::Streaming<pb::HubMessage>,
    ),
    tonic::Status,
> {
    let channel = sync_client::connect(node.node()).await.expect("connect");
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::NodeMessage {
        body: Some(pb::node_message::Body::Hello(pb::Hello {
            protocol: 1,
            digest: vec![0; 32],
            documents: 0,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut inbound = pb::sync_client::SyncClient::new(channel)
        .session(ReceiverStream::new(rx))
        .await?
        .into_inner();
    inbound.message().await?;
    Ok((tx, inbound))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_may_hold_only_a_few_sessions_at_once() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "greedy");
    let other = hub.enroll_node("359", "patient");
    let first = hold_session(&node).await.expect("first session");
    let second = hold_session(&node).await.expect("second session");
    let third = hold_session(&node).await.expect_err("a third is refused");
    assert_eq!(third.code(), tonic::Code::ResourceExhausted, "{third:?}");
    assert!(
        third.message().contains("too many") || third.message().contains("sessions open"),
        "{third:?}"
    );
    // Another node is served meanwhile.
    other.add_coop("13741", "HTX Gôi");
    other.sync().await.expect("the other node syncs");
    // Closing a session frees its slot.
    drop(first);
    drop(second);
    let mut freed = false;
    for _ in 0..50 {
        if hold_session(&node).await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(freed, "slots come back when sessions end");
    let audit = htx_hub::audit::read(hub.dir(), Some("greedy")).unwrap();
    assert!(audit.iter().any(|e| e["event"] == "refused"), "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_rapid_reconnects_leave_the_hub_serving_the_others() {
    let hub = TestHub::start().await;
    let flood = hub.enroll_node("356", "flood");
    let other = hub.enroll_node("359", "other");
    flood.add_coop("13633", "HTX Hạ Long");
    let round = |n: usize| {
        let node = flood.node().clone();
        async move {
            let mut ok = 0;
            for _ in 0..n {
                // Four at once, each a new TLS connection and a session.
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..4 {
                    let node = node.clone();
                    set.spawn(async move {
                        let ch = sync_client::connect(&node).await.ok()?;
                        let mut report = Default::default();
                        sync_client::session(&node, ch, &mut report).await.ok()
                    });
                }
                ok += set
                    .join_all()
                    .await
                    .into_iter()
                    .filter(Option::is_some)
                    .count();
            }
            ok
        }
    };
    round(25).await; // warm up: caches, pools, allocator
    let (files, memory) = (open_files(), resident_bytes());
    let served = round(250).await; // 1,000 connections
    assert!(served > 0);
    other.add_coop("13741", "HTX Gôi");
    let r = other.sync().await.expect("the other node is still served");
    assert!(r.in_sync);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (files_after, memory_after) = (open_files(), resident_bytes());
    assert!(
        files_after <= files + 20,
        "open files grew from {files} to {files_after}"
    );
    assert!(
        memory_after <= memory + (64 << 20),
        "memory grew from {} MB to {} MB",
        memory >> 20,
        memory_after >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_logged_and_changes_nothing() {
    let mut hub = TestHub::create();
    let mut cfg = htx_hub::config::HubConfig::load(hub.dir()).unwrap();
    cfg.max_message_bytes = 64 * 1024;
    std::fs::write(hub.dir().join("hub.toml"), toml::to_string(&cfg).unwrap()).unwrap();
    hub.serve().await;
    let mut node = hub.enroll_node("356", "bulky");
    // The node's batches may be far larger than the hub accepts.
    node.reconfigure(|c| c.max_batch_bytes = 8 << 20);
    let big = "x".repeat(200 * 1024);
    let id = node.add_coop("13633", "HTX Hạ Long");
    node.write(vec![htx_tests::edit(
        &id,
        "cooperative",
        &[("sector", big.as_str())],
    )])
    .unwrap();
    let err = node.sync().await.expect_err("refused");
    assert!(
        err.to_string().contains("exceeded") || err.to_string().contains("too large"),
        "{err}"
    );
    assert!(
        hub.export().is_empty(),
        "nothing of the refused message was merged"
    );
    let audit = htx_hub::audit::read(hub.dir(), Some("bulky")).unwrap();
    assert!(
        audit.iter().any(|e| e["event"] == "refused"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("exceeded") || r.contains("too large"))),
        "{audit:#?}"
    );
}

//! Upgrades one side at a time: a hub serves a node of the previous release
//! (its hello replayed from a fixture), and a protocol outside the hub's
//! range is refused with a message naming the side to upgrade.

use htx_node::sync_client;
use htx_proto::v1 as pb;
use htx_tests::{TestHub, TestNode};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Sends `hello` and returns the hub's first reply.
async fn open(node: &TestNode, hello: pb::Hello) -> Result<pb::HubMessage, tonic::Status> {
    let channel = sync_client::connect(node.node()).await.expect("connect");
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::NodeMessage {
        body: Some(pb::node_message::Body::Hello(hello)),
    })
    .await
    .unwrap();
    let mut inbound = pb::sync_client::SyncClient::new(channel)
        .session(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = inbound.message().await?.expect("a reply");
    drop(tx);
    Ok(first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_hello_is_served() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "old-office");
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/wire-v1/hello.bin"
    ))
    .unwrap();
    let hello = pb::Hello::decode(bytes.as_slice()).expect("today's types read 0.1.0's hello");
    assert_eq!((hello.protocol, hello.software.as_str()), (1, ""));
    let reply = open(&node, hello).await.expect("served");
    assert!(
        matches!(reply.body, Some(pb::hub_message::Body::Welcome(_))),
        "{reply:?}"
    );
    // And the node, as built today, syncs in full.
    node.add_coop("13633", "HTX Mỹ Tân");
    node.sync().await.expect("sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_out_of_range_is_refused_naming_the_side_to_upgrade() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "office");
    let newer = pb::Hello {
        protocol: htx_core::sync::PROTOCOL + 1,
        digest: vec![0; 32],
        ..Default::default()
    };
    let e = open(&node, newer).await.expect_err("refused");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("upgrade the hub"), "{e:?}");
    let older = pb::Hello {
        protocol: htx_core::sync::MIN_PROTOCOL - 1,
        digest: vec![0; 32],
        ..Default::default()
    };
    let e = open(&node, older).await.expect_err("refused");
    assert!(e.message().contains("upgrade the node"), "{e:?}");
    assert!(e.message().contains("nâng cấp"), "{e:?}");
}

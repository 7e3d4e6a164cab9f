//! Upgrades one side at a time: a hub serves a node of the previous release
//! (its hello replayed from a fixture), and a protocol outside the hub's
//! range is refused with a message naming the side to upgrade.
//!
//! Stored formats (`htx_core::format`): a store of the previous format
//! (0.1.0's, made here through the layer below the hub) is migrated when
//! opened and keeps every record; a migration whose commit fails leaves the
//! old format and runs again at the next opening; a store of a newer format
//! is refused by the real binaries and left as it was (every key and value).

use std::path::Path;

use htx_core::docs;
use htx_core::format::{self, FormatError, Role};
use htx_core::replica::Replica;
use htx_core::storage::{self, Backend, WriteBatch};
use htx_node::sync_client;
use htx_proto::v1 as pb;
use htx_tests::slow_store::Gate;
use htx_tests::{TestHub, TestNode, coop, run};
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

/// Writes records into the hub store of `dir` as 0.1.0 left a store: the
/// documents, with neither a format marker nor a record index. Returns
/// their ids, sorted.
fn previous_format_hub_store(dir: &Path) -> Vec<String> {
    let store = storage::open(Backend::Redb, dir).expect("the store `init` made");
    let mut replica = Replica::open(store.clone()).expect("replica");
    let mut ids = Vec::new();
    for (unit, name) in [
        ("13633", "HTX Hạ Long"),
        ("13633", "HTX Mỹ Tân"),
        ("13636", "HTX Lộc Hòa"),
    ] {
        let mut rec = coop(unit, name);
        rec.id = htx_core::schema::new_id();
        replica
            .change(&docs::unit_doc_id("2023", unit), |d| {
                docs::put_record(d, &rec)
            })
            .expect("stored")
            .expect("written");
        ids.push(rec.id);
    }
    assert_eq!(format::stored(store.as_ref()).unwrap(), 0, "no marker");
    assert!(store.scan(b"r\0").unwrap().is_empty(), "no index");
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_store_of_the_previous_format_is_migrated_and_keeps_every_record() {
    let mut hub = TestHub::create();
    let ids = previous_format_hub_store(hub.dir());

    hub.serve().await;
    let exported = hub.export();
    assert_eq!(
        exported.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids,
        "every record is served from the index the migration built"
    );
    assert_eq!(exported, hub.export_from_documents());
    let store = hub.hub().replica().store().clone();
    assert_eq!(format::stored(store.as_ref()).unwrap(), format::CURRENT);
    assert!(
        store.get(b"m\0record_index").unwrap().is_none(),
        "0.1.0's own index mark is replaced by the format marker"
    );
    drop(store);

    // Opened again: nothing to migrate, the same records.
    hub.restart().await;
    assert_eq!(hub.export(), exported);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_store_of_the_previous_format_is_migrated_and_keeps_every_record() {
    let hub = TestHub::start().await;
    let mut node = hub.enroll_node("356", "office");
    node.add_coop("13633", "HTX Hạ Long");
    node.add_coop("13636", "HTX Lộc Hòa");
    let before = node.export();
    node.close();
    // 0.1.0 wrote the same layout without the marker.
    {
        let store = storage::open(Backend::Redb, node.dir()).unwrap();
        assert_eq!(format::stored(store.as_ref()).unwrap(), format::CURRENT);
        let mut b = WriteBatch::default();
        b.delete(format::KEY.to_vec());
        store.commit(b).unwrap();
        assert_eq!(format::stored(store.as_ref()).unwrap(), 0);
    }
    node.open();
    assert_eq!(node.export(), before);
    node.close();
    let store = storage::open(Backend::Redb, node.dir()).unwrap();
    assert_eq!(format::stored(store.as_ref()).unwrap(), format::CURRENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_leaves_the_previous_format_and_runs_again() {
    let mut hub = TestHub::create();
    let ids = previous_format_hub_store(hub.dir());
    {
        let full = Gate::new();
        full.set_full(true);
        let store = full.wrap(storage::open(Backend::Redb, hub.dir()).unwrap());
        let e = format::open(store.clone(), Role::Hub)
            .err()
            .expect("the migration's commit failed");
        assert!(
            matches!(e, FormatError::Migration { from: 0, to: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("vẫn ở định dạng 0"), "{e}");
        assert_eq!(format::stored(store.as_ref()).unwrap(), 0);
        assert!(store.scan(b"r\0").unwrap().is_empty(), "no half index");
    }
    // The hub, started again on the same store, migrates it.
    hub.serve().await;
    assert_eq!(
        hub.export()
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    let store = hub.hub().replica().store().clone();
    assert_eq!(format::stored(store.as_ref()).unwrap(), format::CURRENT);
}

/// Marks the store of `dir` as written by a newer `writer`.
type Contents = Vec<(Vec<u8>, Vec<u8>)>;

fn mark_newer(dir: &Path, writer: &str) -> Contents {
    {
        let store = storage::open(Backend::Redb, dir).unwrap();
        let mut b = WriteBatch::default();
        b.put(
            format::KEY.to_vec(),
            [&(format::CURRENT + 1).to_be_bytes()[..], writer.as_bytes()].concat(),
        );
        store.commit(b).unwrap();
    }
    contents(dir)
}

/// Every key and value of the store of `dir`. (Not the file's bytes: redb
/// rewrites its header's bookkeeping whenever a database is opened, even
/// when nothing is written.)
fn contents(dir: &Path) -> Contents {
    let store = storage::open(Backend::Redb, dir).unwrap();
    store.scan(b"").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_a_newer_format_is_refused_and_left_unchanged() {
    let hub = TestHub::create();
    let node_dir = tempfile::TempDir::new().unwrap();
    hub.init_node_dir("356", "office", node_dir.path()).await;
    let newer = format::CURRENT + 1;
    for (program, dir, writer) in [
        ("htx-hub", hub.dir(), "htx-hub 9.0.0"),
        ("htx-node", node_dir.path(), "htx-node 9.0.0"),
    ] {
        let bytes = mark_newer(dir, writer);
        // As systemd starts it, and as an administrator's command opens it.
        let sub = if program == "htx-hub" {
            "nodes"
        } else {
            "export"
        };
        for args in [
            vec!["run".as_ref(), dir.as_os_str()],
            vec![sub.as_ref(), dir.as_os_str()],
        ] {
            let out = run(program, &args).await;
            let err = out.failed();
            for part in [
                format!("định dạng {newer}"),
                format!("nâng cấp {program}"),
                writer.to_owned(),
                format!("format {newer}"),
                format!("upgrade {program}"),
                format!("format {}", format::CURRENT),
            ] {
                assert!(
                    err.contains(&part),
                    "{program} {args:?}: {part:?} missing from {err}"
                );
            }
            assert!(
                contents(dir) == bytes,
                "{program} {args:?} changed the store"
            );
        }
    }

    // A backup of a newer format is not restored over a store.
    let backup = node_dir.path().join("newer.redb");
    std::fs::copy(node_dir.path().join("store.redb"), &backup).unwrap();
    let hub_bytes = contents(hub.dir());
    let out = run(
        "htx-hub",
        &[
            "restore".as_ref(),
            hub.dir().as_os_str(),
            "--from".as_ref(),
            backup.as_os_str(),
        ],
    )
    .await;
    assert!(out.failed().contains("nâng cấp htx-hub"), "{out:?}");
    assert!(
        contents(hub.dir()) == hub_bytes,
        "the restore changed the store"
    );
    assert!(!hub.dir().join("store.redb.before-restore").exists());
}

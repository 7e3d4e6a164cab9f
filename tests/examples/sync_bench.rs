//! Sync costs, measured against their baselines in the same run:
//!
//! 1. a no-op session of a node holding 30 documents, against plain
//!    Automerge sync of the same documents in memory with persisted state;
//! 2. catching up after 2,000 offline edits, against the size of the
//!    changes themselves and against plain Automerge sync in memory.
//!
//! `cargo run --release -p htx-tests --example sync_bench [-- EDITS]`

use std::time::Instant;

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use htx_core::units::{Hierarchy, Level};
use htx_tests::{Proxy, TestHub, edit, init_crypto};

/// Plain Automerge sync of `a` into `b` (both directions until quiet), with
/// sync states that start from the given persisted forms, as after a
/// reconnect. Returns (bytes, messages, round trips).
fn automerge_sync(
    a: &mut AutoCommit,
    b: &mut AutoCommit,
    sa: &[u8],
    sb: &[u8],
) -> (usize, usize, usize) {
    let mut sa = if sa.is_empty() {
        sync::State::new()
    } else {
        sync::State::decode(sa).unwrap()
    };
    let mut sb = if sb.is_empty() {
        sync::State::new()
    } else {
        sync::State::decode(sb).unwrap()
    };
    let (mut bytes, mut msgs, mut rounds) = (0, 0, 0);
    loop {
        let m1 = a.sync().generate_sync_message(&mut sa);
        let m2 = b.sync().generate_sync_message(&mut sb);
        if m1.is_none() && m2.is_none() {
            return (bytes, msgs, rounds);
        }
        rounds += 1;
        if let Some(m) = m1 {
            let enc = m.encode();
            bytes += enc.len();
            msgs += 1;
            b.sync()
                .receive_sync_message(&mut sb, sync::Message::decode(&enc).unwrap())
                .unwrap();
        }
        if let Some(m) = m2 {
            let enc = m.encode();
            bytes += enc.len();
            msgs += 1;
            a.sync()
                .receive_sync_message(&mut sa, sync::Message::decode(&enc).unwrap())
                .unwrap();
        }
    }
}

/// Fully syncs copies of the documents and returns their persisted states.
fn settled_states(docs: &mut [(AutoCommit, AutoCommit)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    docs.iter_mut()
        .map(|(a, b)| {
            let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
            loop {
                let m1 = a.sync().generate_sync_message(&mut sa);
                let m2 = b.sync().generate_sync_message(&mut sb);
                if m1.is_none() && m2.is_none() {
                    break;
                }
                if let Some(m) = m1 {
                    b.sync().receive_sync_message(&mut sb, m).unwrap();
                }
                if let Some(m) = m2 {
                    a.sync().receive_sync_message(&mut sa, m).unwrap();
                }
            }
            (sa.encode(), sb.encode())
        })
        .collect()
}

#[tokio::main]
async fn main() {
    init_crypto();
    let edits: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("EDITS is a number"))
        .unwrap_or(2000);
    let hub = TestHub::start().await;
    // Hải Hậu (366): 34 communes; the node records in 30 of them.
    let mut node = hub.enroll_node("366", "hai-hau");
    // Every byte between node and hub goes through a counting proxy:
    // TLS records, HTTP/2 frames, gzip-compressed gRPC messages.
    let proxy = Proxy::start(hub.port()).await;
    let url = proxy.url();
    node.reconfigure(|c| c.hub_url = Some(url));
    let tcp = |p: &Proxy| p.forwarded() + p.returned();
    let v = Hierarchy::builtin().version("2023").unwrap();
    let communes: Vec<String> = v
        .units()
        .filter(|u| u.level == Level::Commune && u.parent.as_deref() == Some("366"))
        .map(|u| u.code.clone())
        .take(30)
        .collect();
    let mut coops = Vec::new();
    for (i, c) in communes.iter().enumerate() {
        coops.push(node.add_coop(c, &format!("HTX {i}")));
    }
    node.sync().await.expect("first sync");
    // 30 unit documents, and the plan the hub publishes to every node.
    assert_eq!(node.docs().len(), 31);

    // 1. No-op session.
    let t0 = tcp(&proxy);
    let noop = node.sync().await.expect("no-op sync");
    let noop_tcp = tcp(&proxy) - t0;
    let snapshot = |n: &htx_tests::TestNode| -> Vec<(String, AutoCommit)> {
        let r = n.node().replica();
        r.doc_ids()
            .map(|d| (d.to_owned(), r.doc(d).unwrap().clone()))
            .collect()
    };
    let mut pairs: Vec<(AutoCommit, AutoCommit)> = snapshot(&node)
        .into_iter()
        .map(|(_, d)| (d.clone(), d))
        .collect();
    let states = settled_states(&mut pairs);
    let (mut am_bytes, mut am_msgs, mut am_rounds) = (0, 0, 0);
    for ((a, b), (sa, sb)) in pairs.iter_mut().zip(&states) {
        let (by, m, r) = automerge_sync(a, b, sa, sb);
        am_bytes += by;
        am_msgs += m;
        am_rounds = am_rounds.max(r);
    }
    println!(
        "## No-op sync, node holding {} documents\n",
        node.docs().len()
    );
    println!(
        "| | round trips | message bytes | TCP bytes (new TLS connection included) |\n|---|---|---|---|"
    );
    println!(
        "| HTX Sync session (digest first) | {} | {} ({} sent, {} received) | {noop_tcp} |",
        noop.round_trips,
        noop.bytes_sent + noop.bytes_received,
        noop.bytes_sent,
        noop.bytes_received
    );
    println!(
        "| plain Automerge sync, persisted state, one exchange per document | {am_rounds} | {am_bytes} in {am_msgs} messages | (in memory) |\n"
    );

    // 2. Catch-up after offline edits.
    let before: Vec<(String, AutoCommit)> = snapshot(&node);
    let heads_before: Vec<(String, Vec<ChangeHash>)> = before
        .iter()
        .map(|(d, doc)| (d.clone(), doc.clone().get_heads()))
        .collect();
    let t = Instant::now();
    for i in 0..edits {
        let k = i % coops.len();
        // Mostly field edits, some new records: what a district office does.
        let rec = if i % 4 == 0 {
            htx_tests::Record {
                kind: "observation".into(),
                fields: [
                    (
                        "cooperative".to_owned(),
                        htx_tests::Value::Text(coops[k].clone()),
                    ),
                    (
                        "observed_on".to_owned(),
                        htx_tests::Value::Text(format!("2025-{:02}-15", 1 + i % 12)),
                    ),
                    (
                        "workers".to_owned(),
                        htx_tests::Value::Int(10 + i as i64 % 7),
                    ),
                    (
                        "female_workers".to_owned(),
                        htx_tests::Value::Int(6 + i as i64 % 4),
                    ),
                ]
                .into_iter()
                .collect(),
                ..Default::default()
            }
        } else {
            edit(
                &coops[k],
                "cooperative",
                &[("sector", &format!("nông nghiệp {i}"))],
            )
        };
        node.write(vec![rec]).expect("offline edit");
    }
    let write_secs = t.elapsed().as_secs_f64();
    let change_bytes: usize = {
        let mut r = node.node().replica();
        heads_before
            .iter()
            .map(|(d, h)| {
                r.changes_since(d, h)
                    .expect("readable")
                    .iter()
                    .map(|c| c.raw_bytes().len())
                    .sum::<usize>()
            })
            .sum()
    };
    let after = snapshot(&node);
    let t0 = tcp(&proxy);
    let t = Instant::now();
    let report = node.sync().await.expect("catch-up");
    let catchup_tcp = tcp(&proxy) - t0;
    let sync_secs = t.elapsed().as_secs_f64();
    assert!(report.in_sync);
    // Baseline: the same documents, synced by plain Automerge in memory from
    // the same starting point (hub = `before`, node = `after`).
    let mut pairs: Vec<(AutoCommit, AutoCommit)> =
        before.iter().map(|(_, d)| (d.clone(), d.clone())).collect();
    let states = settled_states(&mut pairs);
    let t = Instant::now();
    let (mut base_bytes, mut base_msgs, mut base_rounds) = (0, 0, 0);
    for (((_, node_doc), (hub_doc, _)), (sa, sb)) in after.iter().zip(pairs.iter()).zip(&states) {
        let (mut a, mut b) = (node_doc.clone(), hub_doc.clone());
        let (by, m, r) = automerge_sync(&mut a, &mut b, sa, sb);
        base_bytes += by;
        base_msgs += m;
        base_rounds = base_rounds.max(r);
    }
    let base_secs = t.elapsed().as_secs_f64();
    let wire = report.bytes_sent + report.bytes_received;
    println!("## Catch-up after {edits} offline edits over 30 documents\n");
    println!("| | bytes | vs change bytes | round trips | time |\n|---|---|---|---|---|");
    println!(
        "| HTX Sync session, on the wire (TCP: TLS, HTTP/2, gzip) | {catchup_tcp} | {:.2}x | | |",
        catchup_tcp as f64 / change_bytes as f64
    );
    println!(
        "| the changes themselves | {change_bytes} | 1.00x | | (writing them: {write_secs:.2} s, one fsync each) |"
    );
    println!(
        "| HTX Sync session, messages before compression | {wire} | {:.2}x | {} ({} batches) | {:.3} s |",
        wire as f64 / change_bytes as f64,
        report.round_trips,
        report.batches_sent,
        sync_secs
    );
    println!(
        "| plain Automerge sync in memory, persisted state | {base_bytes} | {:.2}x | {base_rounds} ({base_msgs} messages) | {:.3} s (no I/O) |",
        base_bytes as f64 / change_bytes as f64,
        base_secs
    );
    println!(
        "\nchanges sent: {}, hub digest matched: {}",
        report.changes_sent, report.in_sync
    );
}

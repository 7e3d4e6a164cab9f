//! Round trips per session over a link with 100 ms of round-trip time: a
//! cold session (new TCP + TLS connection, as every session was before the
//! node kept its link) against a warm one (the kept link), for a no-op and
//! for one edit. The edit is at the hub when the session returns.
//!
//! `cargo run --release -p htx-tests --example latency_bench`

use std::time::{Duration, Instant};

use htx_node::sync_client::{self, Link};
use htx_tests::{TestHub, init_crypto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const ONE_WAY: Duration = Duration::from_millis(50);

/// Copies `from` to `to`, each chunk delivered `ONE_WAY` after it was read
/// (a delay line: chunks in flight together stay together).
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until((at + ONE_WAY).into()).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// A TCP relay to `port` that adds `ONE_WAY` of latency each way.
async fn latency_proxy(port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(up) = TcpStream::connect(("127.0.0.1", port)).await else {
                    return;
                };
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::join!(delayed(dr, uw), delayed(ur, dw));
            });
        }
    });
    local
}

fn rtts(d: Duration) -> f64 {
    d.as_secs_f64() / (2.0 * ONE_WAY.as_secs_f64())
}

#[tokio::main]
async fn main() {
    init_crypto();
    let hub = TestHub::start().await;
    let port = latency_proxy(hub.port()).await;
    let node = hub.enroll_node_with("356", "node-356", |c| {
        c.hub_url = Some(format!("https://127.0.0.1:{port}"));
    });
    node.add_coop("13633", "HTX Hạ Long");
    sync_client::sync_once(node.node())
        .await
        .expect("first sync");

    let mut rows = Vec::new();
    for round in 0..5 {
        // Before: every session on a new connection.
        let t = Instant::now();
        sync_client::sync_once(node.node())
            .await
            .expect("cold no-op");
        let cold_noop = t.elapsed();
        let id = node.add_coop("13633", &format!("HTX lạnh {round}"));
        let t = Instant::now();
        sync_client::sync_once(node.node())
            .await
            .expect("cold edit");
        let cold_edit = t.elapsed();
        assert!(hub.export().iter().any(|r| r.id == id));

        // Now: the link is kept.
        let mut link: Option<Link> = None;
        sync_client::sync_with(node.node(), &mut link)
            .await
            .expect("open");
        let t = Instant::now();
        sync_client::sync_with(node.node(), &mut link)
            .await
            .expect("warm no-op");
        let warm_noop = t.elapsed();
        let id = node.add_coop("13633", &format!("HTX ấm {round}"));
        let t = Instant::now();
        let r = sync_client::sync_with(node.node(), &mut link)
            .await
            .expect("warm edit");
        let warm_edit = t.elapsed();
        assert!(r.in_sync && hub.export().iter().any(|x| x.id == id));
        rows.push((cold_noop, cold_edit, warm_noop, warm_edit));
    }
    let median = |f: fn(&(Duration, Duration, Duration, Duration)) -> Duration| {
        let mut v: Vec<Duration> = rows.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "round-trip time {} ms; median of {} rounds",
        2 * ONE_WAY.as_millis(),
        rows.len()
    );
    println!("\n| session | no-op | one edit (at the hub when it returns) |");
    println!("|---|---|---|");
    let cell = |d: Duration| format!("{:.0} ms = {:.1} RTT", d.as_secs_f64() * 1e3, rtts(d));
    println!(
        "| cold: new TCP + TLS connection (before) | {} | {} |",
        cell(median(|r| r.0)),
        cell(median(|r| r.1))
    );
    println!(
        "| warm: the kept link, the edit with the hello (now) | {} | {} |",
        cell(median(|r| r.2)),
        cell(median(|r| r.3))
    );
}

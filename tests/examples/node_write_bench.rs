//! One officer's write on a node that already holds 200,000 records: the
//! time of `Node::write` for one new cooperative, against a full scan of
//! every record's location (what every write did before the id index), in
//! the same run.
//!
//! `cargo run --release -p htx-tests --example node_write_bench [-- RECORDS]`

use std::time::{Duration, Instant};

use htx_node::locations::Locations;
use htx_tests::{TestHub, coop};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let hub = TestHub::create();
    let node = hub.enroll_node("356", "node-356");
    // Thành phố Nam Định's communes, round robin, in writes of 5,000.
    let units = [
        "13633", "13636", "13639", "13642", "13645", "13648", "13651",
    ];
    let t = Instant::now();
    let mut n = 0;
    while n < total {
        let batch: Vec<_> = (n..(n + 5_000).min(total))
            .map(|i| coop(units[i % units.len()], &format!("HTX số {i}")))
            .collect();
        n += batch.len();
        node.write(batch).expect("written");
    }
    println!(
        "node holding {total} records ({} documents), loaded in {:.0} s",
        node.docs().len(),
        t.elapsed().as_secs_f64()
    );

    let (mut write, mut scan) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let t = Instant::now();
        node.add_coop(units[i % units.len()], &format!("HTX mới {i}"));
        write.push(t.elapsed());
        // Before: every write listed every record's location first.
        let t = Instant::now();
        let mut fresh = Locations::default();
        fresh.refresh(&node.node().replica());
        scan.push(t.elapsed());
    }
    println!("\n| at {total} records | median of 20 |");
    println!("|---|---|");
    println!(
        "| full scan of every record's location (each write, before) | {:.0} ms |",
        median(scan).as_secs_f64() * 1e3
    );
    println!(
        "| one write now: the id index learns the write itself; checks, fsync | {:.0} ms |",
        median(write).as_secs_f64() * 1e3
    );
}

//! What the record index saves the hub: reading every record for a query,
//! and feeding one merged change to the live view, with and without it.
//! A redb store of 30 unit documents × 2,000 cooperatives (60,000 records).
//!
//! `cargo run --release -p htx-core --example index_bench`

use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use htx_core::docs;
use htx_core::index;
use htx_core::replica::Replica;
use htx_core::schema::{Record, Value, new_id, record_from_strings};
use htx_core::storage::{self, Backend, WriteBatch};

const DOCS: usize = 30;
const PER_DOC: usize = 2_000;

fn coop(unit: &str, i: usize) -> Record {
    let name = format!("HTX số {i}");
    let mut r = record_from_strings(
        "cooperative",
        [
            ("type", "HTX"),
            ("name", name.as_str()),
            ("sector", "nông nghiệp"),
            ("founded_on", "2024-03-01"),
        ],
    )
    .expect("valid");
    r.id = new_id();
    r.fields.insert("unit".into(), Value::Text(unit.into()));
    r
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let store = storage::create(Backend::Redb, dir.path()).expect("store");
    let mut replica = Replica::open(store.clone()).expect("replica");
    let ids: Vec<String> = (0..DOCS).map(|d| format!("u/2023/{}", 13600 + d)).collect();
    for (d, id) in ids.iter().enumerate() {
        let unit = format!("{}", 13600 + d);
        replica
            .change(id, |doc| {
                for i in 0..PER_DOC {
                    docs::put_record(doc, &coop(&unit, i))?;
                }
                Ok::<_, automerge::AutomergeError>(())
            })
            .expect("stored")
            .expect("written");
    }
    let t = Instant::now();
    let mut batch = WriteBatch::default();
    index::rebuild(&mut replica, &mut batch).expect("indexed");
    replica.commit(batch).expect("stored");
    let build = t.elapsed();
    println!(
        "store: {} records in {DOCS} documents; indexing them once took {:.2} s",
        DOCS * PER_DOC,
        build.as_secs_f64()
    );

    // Every record, as a from-scratch query or an export needs them. The
    // index first, so that the documents' read cannot hand it freed memory.
    let (rss0, t) = (rss_mb(), Instant::now());
    let from_index = index::read_all(store.as_ref()).expect("read");
    let index_time = t.elapsed();
    let index_rss = rss_mb() - rss0;
    let (rss0, t) = (rss_mb(), Instant::now());
    let mut from_docs = Vec::new();
    for id in &ids {
        from_docs.extend(docs::read_records(replica.doc(id).unwrap()).unwrap());
    }
    let docs_time = t.elapsed();
    let docs_rss = rss_mb() - rss0;
    assert_eq!(from_docs.len(), from_index.len());
    drop(from_docs);
    println!(
        "\n| every record ({}) | time | RSS growth |",
        from_index.len()
    );
    println!("|---|---|---|");
    println!(
        "| read out of the Automerge documents (before) | {:.0} ms | {:.0} MB |",
        docs_time.as_secs_f64() * 1e3,
        docs_rss
    );
    println!(
        "| read from the record index (now) | {:.0} ms | {:.0} MB |",
        index_time.as_secs_f64() * 1e3,
        index_rss
    );

    // One merged change to one record: what the live view is fed.
    let mut before = Vec::new();
    let mut now = Vec::new();
    for round in 0..20 {
        let doc = &ids[round % DOCS];
        let target = docs::list_records(replica.doc(doc).unwrap())[round]
            .0
            .clone();
        replica
            .change(doc, |d| {
                let obj = match d.get(automerge::ROOT, target.as_str())? {
                    Some((_, obj)) => obj,
                    None => unreachable!("listed"),
                };
                d.put(&obj, "sector", format!("thủy sản {round}"))
            })
            .expect("stored")
            .expect("edited");
        // Before: every record of the touched document was read again.
        let t = Instant::now();
        let all = docs::read_records(replica.doc(doc).unwrap()).unwrap();
        before.push(t.elapsed());
        assert_eq!(all.len(), PER_DOC);
        // Now: validation reads only the touched record, which goes to the
        // live view and into the index in the merge's own commit.
        let t = Instant::now();
        let rec = docs::read_record(replica.doc(doc).unwrap(), &target)
            .unwrap()
            .unwrap();
        let mut b = WriteBatch::default();
        index::put(&mut b, doc, &rec);
        now.push(t.elapsed());
        replica.commit(b).unwrap();
    }
    println!("\n| one merged change, document of {PER_DOC} records | median per batch |");
    println!("|---|---|");
    println!(
        "| re-read the touched document (before) | {:.2} ms |",
        median(before).as_secs_f64() * 1e3
    );
    println!(
        "| the touched record only, plus its index entry (now) | {:.3} ms |",
        median(now).as_secs_f64() * 1e3
    );
    let _ = Arc::strong_count(&store);
}

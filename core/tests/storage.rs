//! # One conformance suite for every storage backend
//!
//! The tests are plain functions in [`suite`] over a [`Subject`] (a store
//! and the directory it lives in). The `logic_tests!` macro instantiates the
//! ones that need no disk for `memory`, `redb` and `sled`; `disk_tests!`
//! adds, for `redb` and `sled`, the ones about reopening, locking and real
//! crashes. The disk bound runs the churn shared with
//! `examples/storage_churn.rs` (`support/churn.rs`).
//!
//! Crash tests use real processes: the test re-executes its own binary
//! (`child_process`, told what to do by `HTX_STORE_CHILD`), lets the child
//! commit and print `ack N` after each commit returns, SIGKILLs it at a
//! random moment, reopens the store and compares it with a model replayed
//! from the same seed.
//!
//! One test fails on sled 0.34.7 and is ignored there: the disk bound
//! (replaced blob files pile up under `blobs/`). Reproduce it with
//! `cargo test -p htx-core --test storage -- --ignored`. (Point-in-time
//! scans failed on sled too, until `SledStore` made scans and commits
//! exclude each other.)

#[path = "support/churn.rs"]
mod churn;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use htx_core::storage::{self, Backend, MemoryStore, Op, Store, StoreError, WriteBatch};
use tempfile::TempDir;

use churn::Rng;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// A store under test, and the directory it lives in (none for memory).
struct Subject {
    store: Arc<dyn Store>,
    home: Option<(Backend, TempDir)>,
}

impl Subject {
    fn memory() -> Self {
        Subject {
            store: Arc::new(MemoryStore::default()),
            home: None,
        }
    }

    fn on_disk(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = storage::create(backend, dir.path()).expect("open a new store");
        Subject {
            store,
            home: Some((backend, dir)),
        }
    }

    fn contents(&self) -> Map {
        contents(&*self.store)
    }

    /// Closes the store and opens it again from disk.
    fn reopen(&mut self) {
        let (backend, dir) = self
            .home
            .as_ref()
            .expect("only stores on disk can be reopened");
        // Close first: both backends refuse a second open of the same files.
        self.store = Arc::new(MemoryStore::default());
        self.store = storage::open(*backend, dir.path()).expect("reopen the store");
    }
}

impl std::ops::Deref for Subject {
    type Target = dyn Store;
    fn deref(&self) -> &dyn Store {
        &*self.store
    }
}

fn batch(ops: impl IntoIterator<Item = Op>) -> WriteBatch {
    WriteBatch {
        ops: ops.into_iter().collect(),
    }
}

fn apply(model: &mut Map, batch: &WriteBatch) {
    for op in &batch.ops {
        match op {
            Op::Put(k, v) => model.insert(k.clone(), v.clone()),
            Op::Delete(k) => model.remove(k),
        };
    }
}

fn contents(store: &dyn Store) -> Map {
    store.scan(b"").expect("scan").into_iter().collect()
}

fn show(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key))
}

/// The first few differences between two store contents, for failure messages.
fn differences(expected: &Map, actual: &Map) -> String {
    let mut out = Vec::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => out.push(format!("missing {}", show(k))),
            Some(a) if a != v => out.push(format!(
                "{} holds {} bytes, expected {} other bytes",
                show(k),
                a.len(),
                v.len()
            )),
            Some(_) => {}
        }
    }
    out.extend(
        actual
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .map(|k| format!("unexpected {}", show(k))),
    );
    let n = out.len();
    out.truncate(10);
    format!("{n} differences: {}", out.join("; "))
}

mod suite {
    use super::*;

    pub fn get_put_delete(s: &Subject) {
        assert_eq!(s.get(b"a").unwrap(), None);
        s.commit(batch([
            Op::Put(b"a".to_vec(), b"1".to_vec()),
            Op::Put(b"empty".to_vec(), Vec::new()),
        ]))
        .unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(
            s.get(b"empty").unwrap(),
            Some(Vec::new()),
            "an empty value is not an absent one"
        );
        assert_eq!(s.get(b"b").unwrap(), None);
        s.commit(batch([Op::Delete(b"a".to_vec())])).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        // Deleting what is not there, and committing nothing, are not errors.
        s.commit(batch([Op::Delete(b"never".to_vec())])).unwrap();
        s.commit(WriteBatch::default()).unwrap();
        assert_eq!(s.contents(), Map::from([(b"empty".to_vec(), Vec::new())]));
    }

    pub fn overwrite_keeps_only_the_last_value(s: &Subject) {
        let big = Rng::new(1).bytes(300 * 1024);
        let steps: [&[u8]; 4] = [b"small", &big, b"small again", b""];
        for value in steps {
            s.commit(batch([Op::Put(b"k".to_vec(), value.to_vec())]))
                .unwrap();
            assert_eq!(s.get(b"k").unwrap().as_deref(), Some(value));
            assert_eq!(s.scan(b"k").unwrap(), vec![(b"k".to_vec(), value.to_vec())]);
        }
    }

    pub fn scan_returns_exactly_the_prefixed_keys_in_order(s: &Subject) {
        let keys: [&[u8]; 12] = [
            b"a",
            b"a\0",
            b"a\0\0",
            b"a\0x",
            b"a\x01",
            b"ab",
            b"abc",
            b"a\xff",
            b"a\xff\xff",
            b"b",
            b"\0",
            b"\xff\xff",
        ];
        // Committed in reverse so that order on disk cannot come from order of arrival.
        s.commit(batch(
            keys.iter()
                .rev()
                .map(|k| Op::Put(k.to_vec(), [b"v:", *k].concat())),
        ))
        .unwrap();
        let scanned_keys = |prefix: &[u8]| -> Vec<Vec<u8>> {
            let entries = s.scan(prefix).unwrap();
            for (k, v) in &entries {
                assert_eq!(v, &[b"v:", k.as_slice()].concat(), "value of {}", show(k));
            }
            // Given one at a time, the same entries; none after a break.
            let mut given = Vec::new();
            s.for_each(prefix, &mut |k, v| {
                given.push((k.to_vec(), v.to_vec()));
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(given, entries, "for_each of {}", show(prefix));
            let mut two = Vec::new();
            s.for_each(prefix, &mut |k, _| {
                two.push(k.to_vec());
                match two.len() {
                    2 => std::ops::ControlFlow::Break(()),
                    _ => std::ops::ControlFlow::Continue(()),
                }
            })
            .unwrap();
            assert_eq!(
                two,
                given
                    .iter()
                    .take(2)
                    .map(|(k, _)| k.clone())
                    .collect::<Vec<_>>()
            );
            entries.into_iter().map(|(k, _)| k).collect()
        };
        let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        sorted.sort();
        assert_eq!(scanned_keys(b""), sorted);
        assert_eq!(scanned_keys(b"a"), &sorted[1..10]);
        assert_eq!(
            scanned_keys(b"a\0"),
            vec![b"a\0".to_vec(), b"a\0\0".to_vec(), b"a\0x".to_vec()]
        );
        assert_eq!(scanned_keys(b"ab"), vec![b"ab".to_vec(), b"abc".to_vec()]);
        assert_eq!(
            scanned_keys(b"a\xff"),
            vec![b"a\xff".to_vec(), b"a\xff\xff".to_vec()]
        );
        assert_eq!(scanned_keys(b"\xff"), vec![b"\xff\xff".to_vec()]);
        assert_eq!(scanned_keys(b"\xff\xff\xff"), Vec::<Vec<u8>>::new());
        assert_eq!(scanned_keys(b"c"), Vec::<Vec<u8>>::new());
        assert_eq!(scanned_keys(b"abcd"), Vec::<Vec<u8>>::new());
    }

    pub fn ops_in_one_batch_apply_in_order(s: &Subject) {
        let (put, del) = (
            |k: &[u8], v: &[u8]| Op::Put(k.to_vec(), v.to_vec()),
            |k: &[u8]| Op::Delete(k.to_vec()),
        );
        s.commit(batch([put(b"old", b"x")])).unwrap();
        s.commit(batch([
            put(b"put-then-delete", b"1"),
            del(b"put-then-delete"),
            del(b"old"),
            put(b"old", b"back"),
            put(b"twice", b"first"),
            put(b"twice", b"second"),
        ]))
        .unwrap();
        assert_eq!(
            s.contents(),
            Map::from([
                (b"old".to_vec(), b"back".to_vec()),
                (b"twice".to_vec(), b"second".to_vec())
            ])
        );
    }

    /// The store agrees with a `BTreeMap` after each batch, and on every
    /// prefix scan and get afterwards.
    pub fn agrees_with_an_ordered_map(s: &Subject, batches: &[Vec<Op>]) {
        let mut model = Map::new();
        for ops in batches {
            let b = batch(ops.iter().cloned());
            s.commit(b.clone()).unwrap();
            apply(&mut model, &b);
            assert_eq!(s.contents(), model);
        }
        let mut prefixes = vec![Vec::new()];
        for a in KEY_BYTES {
            prefixes.push(vec![a]);
            prefixes.extend(KEY_BYTES.iter().map(|b| vec![a, *b]));
        }
        for p in prefixes {
            let expected: Vec<_> = model
                .iter()
                .filter(|(k, _)| k.starts_with(&p))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(s.scan(&p).unwrap(), expected, "scan of {}", show(&p));
        }
        for op in batches.iter().flatten() {
            let (Op::Put(k, _) | Op::Delete(k)) = op;
            assert_eq!(
                s.get(k).unwrap(),
                model.get(k).cloned(),
                "get of {}",
                show(k)
            );
        }
    }

    pub const KEY_BYTES: [u8; 5] = [0, 1, b'a', b'b', 0xff];

    /// A batch of many puts and deletes, some values large, is visible
    /// whole once `commit` returns; `then` runs after each commit.
    pub fn a_big_batch_is_visible_whole(s: &mut Subject, mut then: impl FnMut(&mut Subject)) {
        let mut rng = Rng::new(2);
        let mut model = Map::new();
        let mut first = WriteBatch::default();
        for i in 0..1000 {
            let len = if i % 250 == 7 {
                200 * 1024
            } else {
                rng.range(0..300)
            };
            first.put(format!("k{i:04}"), rng.bytes(len));
        }
        let mut second = WriteBatch::default();
        for i in 0..1000 {
            if i % 2 == 0 {
                second.delete(format!("k{i:04}"));
            } else if i % 3 == 0 {
                second.put(format!("k{i:04}"), rng.bytes(100));
            }
        }
        for i in 1000..1500 {
            let len = rng.range(0..300);
            second.put(format!("k{i:04}"), rng.bytes(len));
        }
        second.put("k9999", rng.bytes(300 * 1024));
        for b in [first, second] {
            s.commit(b.clone()).unwrap();
            apply(&mut model, &b);
            let got = s.contents();
            assert!(
                got == model,
                "right after commit: {}",
                differences(&model, &got)
            );
            then(s);
            let got = s.contents();
            assert!(
                got == model,
                "after `then` (a reopen, for stores on disk): {}",
                differences(&model, &got)
            );
        }
    }

    /// While one thread commits batches that rewrite a whole group of keys,
    /// another scans the group and must see one batch's result or the next
    /// one's, never a mixture.
    pub fn readers_never_see_half_a_batch(s: &Subject) {
        const KEYS: usize = 40;
        const GENERATIONS: u64 = 300;
        let generation = |g: u64| {
            let mut b = WriteBatch::default();
            for i in 0..KEYS {
                b.put(format!("atom/{i:02}"), g.to_be_bytes().to_vec());
            }
            // Present in odd generations only: the batch deletes too.
            if g % 2 == 1 {
                b.put("atom/odd", g.to_be_bytes().to_vec());
            } else {
                b.delete("atom/odd");
            }
            b
        };
        s.commit(generation(0)).unwrap();
        let store = s.store.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The writer starts once the reader is scanning: on a loaded machine
        // a fast store could otherwise finish before the reader ever ran.
        let started = Arc::new(std::sync::Barrier::new(2));
        let reader = {
            let done = done.clone();
            let started = started.clone();
            thread::spawn(move || {
                let mut scans = 0u64;
                started.wait();
                while scans == 0 || !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let entries = store.scan(b"atom/").unwrap();
                    let g = u64::from_be_bytes(entries[0].1.as_slice().try_into().unwrap());
                    let seen: Vec<u64> = entries
                        .iter()
                        .map(|(_, v)| u64::from_be_bytes(v.as_slice().try_into().unwrap()))
                        .collect();
                    assert!(
                        seen.iter().all(|x| *x == g) && entries.len() == KEYS + (g % 2) as usize,
                        "scan {scans} saw part of a batch (not one point in time): {} entries of generations {seen:?}",
                        entries.len()
                    );
                    scans += 1;
                }
                scans
            })
        };
        started.wait();
        for g in 1..=GENERATIONS {
            s.commit(generation(g)).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let scans = reader
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        assert!(scans > 0);
    }

    pub fn compact_keeps_every_entry(s: &Subject) {
        let mut rng = Rng::new(3);
        let mut model = Map::new();
        for round in 0..20 {
            let mut b = WriteBatch::default();
            for i in 0..50 {
                let len = rng.range(0..2000);
                b.put(format!("k{round:02}/{i:02}"), rng.bytes(len));
            }
            if round > 0 {
                for i in (0..50).step_by(2) {
                    b.delete(format!("k{:02}/{i:02}", round - 1));
                }
            }
            s.commit(b.clone()).unwrap();
            apply(&mut model, &b);
        }
        s.compact().unwrap();
        assert_eq!(s.contents(), model);
        let mut b = WriteBatch::default();
        b.put("after", "compact");
        s.commit(b.clone()).unwrap();
        apply(&mut model, &b);
        assert_eq!(s.contents(), model);
    }

    pub fn size_on_disk_counts_what_was_written(s: &Subject) {
        let before = s.size_on_disk().unwrap();
        let mut rng = Rng::new(4);
        for i in 0..16 {
            let mut b = WriteBatch::default();
            b.put(format!("big{i:02}"), rng.bytes(256 * 1024));
            s.commit(b).unwrap();
        }
        let after = s.size_on_disk().unwrap();
        assert!(
            after >= before + 4 * 1024 * 1024,
            "4 MiB of random bytes written, size on disk went from {before} to {after}"
        );
    }

    /// The file (redb) or the main file inside the directory (sled) that a
    /// crashed copy or a bad restore would leave empty or damaged.
    fn store_file(backend: Backend, home: &Path) -> std::path::PathBuf {
        match backend {
            Backend::Redb => home.join("store.redb"),
            Backend::Sled => home.join("store.sled").join("conf"),
        }
    }

    /// Only `create` (used by `init`) makes a store: `open` refuses a
    /// missing, empty or damaged one, names it, and leaves it as it was.
    pub fn open_refuses_a_missing_empty_or_damaged_store(backend: Backend) {
        let home = tempfile::tempdir().unwrap();
        match storage::open(backend, home.path()) {
            Err(StoreError::Missing(p)) => assert!(p.contains("store."), "{p}"),
            Err(other) => panic!("a missing store must be reported missing, got: {other}"),
            Ok(_) => panic!("opened a store that does not exist"),
        }
        assert_eq!(
            std::fs::read_dir(home.path()).unwrap().count(),
            0,
            "open must create nothing"
        );

        let store = storage::create(backend, home.path()).expect("create a store");
        let mut b = WriteBatch::default();
        b.put(b"k".to_vec(), b"v".to_vec());
        store.commit(b).unwrap();
        drop(store);
        let store = storage::open(backend, home.path()).expect("a created store opens");
        assert_eq!(store.get(b"k").unwrap(), Some(b"v".to_vec()));
        drop(store);

        let file = store_file(backend, home.path());
        for (what, bytes) in [
            ("empty", Vec::new()),
            (
                "garbage",
                b"this is not a database, only a damaged copy".repeat(200),
            ),
        ] {
            std::fs::write(&file, &bytes).unwrap();
            for attempt in ["open", "create"] {
                let result = match attempt {
                    "open" => storage::open(backend, home.path()),
                    _ => storage::create(backend, home.path()),
                };
                match result {
                    Err(e @ StoreError::Unreadable { .. }) => {
                        let text = e.to_string();
                        assert!(text.contains("store."), "names the store: {text}");
                        assert!(text.contains("hỏng"), "in Vietnamese too: {text}");
                    }
                    Err(other) => panic!("{what} store, {attempt}: wrong error: {other}"),
                    Ok(_) => panic!("{what} store, {attempt}: opened as if it were fine"),
                }
                assert_eq!(
                    std::fs::read(&file).unwrap(),
                    bytes,
                    "{what} store, {attempt}: the file must be left as it was"
                );
            }
        }
    }

    pub fn a_second_open_is_refused_while_a_process_holds_the_store(backend: Backend) {
        let home = tempfile::tempdir().unwrap();
        let mut holder = ChildProcess::spawn("hold", backend, 0, home.path());
        holder.wait_ready();
        match storage::open(backend, home.path()) {
            Err(StoreError::Locked(_)) => {}
            Err(other) => panic!("a held store must be reported as locked, got: {other}"),
            Ok(_) => panic!("opened a store another process holds"),
        }
        holder.kill();
        storage::open(backend, home.path()).expect("the store opens once its holder is gone");
    }

    /// What crash-test children commit in round `round`: batch `i` is a
    /// function of (round, i), so the parent can replay it. Keys:
    /// `r{round}/c{i}` chunks of 200 B–4 KB (some 200 KB), `r{round}/s` a
    /// snapshot of 50–300 KB written in the same batch that deletes the chunks
    /// it replaces, `r{round}/p` the last batch number, overwritten by each.
    pub struct Workload {
        round: u32,
        rng: Rng,
        next: u64,
        first_live_chunk: u64,
    }

    pub struct Step {
        pub index: u64,
        pub batch: WriteBatch,
        /// A snapshot replacing chunks: must never be seen half done.
        pub group: bool,
    }

    impl Workload {
        pub fn new(round: u32) -> Self {
            Workload {
                round,
                rng: Rng::new(0x5EED_0000 + u64::from(round)),
                next: 0,
                first_live_chunk: 0,
            }
        }

        fn key(&self, what: &str) -> Vec<u8> {
            format!("r{:02}/{what}", self.round).into_bytes()
        }

        pub fn next_step(&mut self) -> Step {
            let index = self.next;
            self.next += 1;
            let mut b = WriteBatch::default();
            let roll = self.rng.below(100);
            let group = roll < 10 && self.first_live_chunk < index;
            let value =
                |rng: &mut Rng, len: usize| [&index.to_be_bytes()[..], &rng.bytes(len)].concat();
            if group {
                for c in self.first_live_chunk..index {
                    b.delete(self.key(&format!("c{c:08}")));
                }
                let len = self.rng.range(50_000..300_000);
                b.put(self.key("s"), value(&mut self.rng, len));
                self.first_live_chunk = index + 1;
            } else {
                let len = if roll < 15 {
                    200 * 1024
                } else {
                    self.rng.range(200..4096)
                };
                b.put(self.key(&format!("c{index:08}")), value(&mut self.rng, len));
            }
            b.put(self.key("p"), index.to_be_bytes().to_vec());
            Step {
                index,
                batch: b,
                group,
            }
        }
    }

    pub fn acknowledged_batches_survive_sigkill(backend: Backend) {
        const ROUNDS: u32 = 10;
        let home = tempfile::tempdir().unwrap();
        let mut verified = Map::new();
        let (mut acked_total, mut acked_groups, mut in_flight_landed) = (0, 0, 0);
        let mut per_round = Vec::new();
        for round in 0..ROUNDS {
            let mut child = ChildProcess::spawn("batches", backend, u64::from(round), home.path());
            child.wait_ready();
            thread::sleep(random_kill_delay());
            let acks = ack_numbers(&child.kill());
            per_round.push(acks.len());
            assert!(
                acks.iter().copied().eq(0..acks.len() as u64),
                "round {round}: acks out of order: {acks:?}"
            );
            let store = storage::open(backend, home.path())
                .unwrap_or_else(|e| panic!("round {round}: reopening after SIGKILL failed: {e}"));
            let actual = contents(&*store);
            drop(store);

            let mut workload = Workload::new(round);
            let mut model = verified.clone();
            for _ in &acks {
                let step = workload.next_step();
                acked_groups += u64::from(step.group);
                apply(&mut model, &step.batch);
            }
            acked_total += acks.len() as u64;
            if actual != model {
                // The batch in flight when the child died may have landed, but whole.
                let mut with_in_flight = model.clone();
                apply(&mut with_in_flight, &workload.next_step().batch);
                assert!(
                    actual == with_in_flight,
                    "round {round}: after {} acknowledged batches the store is neither their result nor that plus the \
                     batch in flight; against the acknowledged state: {}",
                    acks.len(),
                    differences(&model, &actual)
                );
                in_flight_landed += 1;
            }
            verified = actual;
        }
        eprintln!(
            "{backend:?}: {ROUNDS} SIGKILLs, {acked_total} acknowledged batches ({acked_groups} snapshot+delete groups) \
             all present, in-flight batch landed whole {in_flight_landed} times; acks per round {per_round:?}"
        );
        assert!(
            acked_groups > 0,
            "no atomic group was acknowledged: the test exercised nothing"
        );
    }

    pub const REPLICA_DOCS: u64 = 4;

    pub fn replica_doc(i: u64) -> String {
        churn::doc_id((i % REPLICA_DOCS) as usize)
    }

    pub fn replica_value(i: u64) -> Vec<u8> {
        let mut rng = Rng::new(0xED17_0000 + i);
        let len = rng.range(2000..10_000);
        rng.bytes(len)
    }

    /// The value edit `i` put in its document, if the document has it.
    fn edit_in(replica: &htx_core::replica::Replica, i: u64) -> Option<Vec<u8>> {
        use automerge::ReadDoc;
        let doc = replica.doc(&replica_doc(i))?;
        let (value, _) = doc
            .get(automerge::ROOT, format!("k{i}"))
            .expect("read the document")?;
        Some(value.as_bytes().expect("edits put bytes").to_vec())
    }

    pub fn replica_edits_survive_sigkill_across_compactions(backend: Backend) {
        use automerge::ReadDoc;
        const ROUNDS: u32 = 10;
        let home = tempfile::tempdir().unwrap();
        let (mut on_disk, mut compactions, mut in_flight_landed) = (0u64, 0, 0);
        let mut per_round = Vec::new();
        for round in 0..ROUNDS {
            let mut child = ChildProcess::spawn("replica", backend, on_disk, home.path());
            child.wait_ready();
            thread::sleep(random_kill_delay());
            let lines = child.kill();
            let acks = ack_numbers(&lines);
            per_round.push(acks.len());
            assert!(
                acks.iter()
                    .copied()
                    .eq(on_disk..on_disk + acks.len() as u64),
                "round {round}: acks out of order: {acks:?}"
            );
            compactions += lines.iter().filter(|l| l.ends_with(" compacted")).count();
            let acked_end = on_disk + acks.len() as u64;

            let store = storage::open(backend, home.path())
                .unwrap_or_else(|e| panic!("round {round}: reopening after SIGKILL failed: {e}"));
            let replica = htx_core::replica::Replica::open(store).unwrap_or_else(|e| {
                panic!("round {round}: Replica::open after SIGKILL failed: {e}")
            });
            for i in 0..acked_end {
                assert!(
                    edit_in(&replica, i) == Some(replica_value(i)),
                    "round {round}: acknowledged edit {i} is missing or different after SIGKILL"
                );
            }
            let landed = match edit_in(&replica, acked_end) {
                Some(v) => {
                    assert!(
                        v == replica_value(acked_end),
                        "round {round}: the edit in flight landed damaged"
                    );
                    1
                }
                None => 0,
            };
            in_flight_landed += landed;
            on_disk = acked_end + landed;
            let keys: u64 = replica
                .doc_ids()
                .map(|id| replica.doc(id).unwrap().length(automerge::ROOT) as u64)
                .sum();
            assert_eq!(
                keys, on_disk,
                "round {round}: edits that were never made are in the documents"
            );
        }
        eprintln!(
            "{backend:?}: {ROUNDS} SIGKILLs, {on_disk} edits on disk, {compactions} acknowledged compactions, \
             in-flight edit landed {in_flight_landed} times; acks per round {per_round:?}"
        );
        assert!(
            compactions > 0,
            "no compaction was acknowledged: the test exercised nothing"
        );
    }

    /// Runs the node-like churn (`support/churn.rs`) through a replica,
    /// closing and reopening the store after each of its checkpoints like a
    /// node switched off at night, then calls `Store::compact` and asserts
    /// the store takes at most 3x the live data. The ratio at each checkpoint
    /// is printed; it is not asserted because redb doubles its file as it
    /// grows (below 4 GiB), which alone can take it past 3x for a while.
    pub fn disk_stays_within_3x_live_over_a_long_churn(backend: Backend) {
        let home = tempfile::tempdir().unwrap();
        let churn = churn::Churn {
            docs: 8,
            edits_per_doc: 130,
            seed: 5,
            checkpoints: 5,
            restarts: true,
        };
        let open = || storage::create(backend, home.path()).expect("open the store");
        let outcome = churn
            .run(open, |u| {
                eprintln!(
                    "{backend:?}: live {} B, disk {} B, ratio {:.2}",
                    u.live,
                    u.disk,
                    u.ratio()
                );
                assert!(
                    u.disk >= u.live,
                    "disk {} B < live {} B: size_on_disk undercounts",
                    u.disk,
                    u.live
                );
            })
            .expect("churn");
        assert!(
            outcome.large_snapshots > churn.docs as u64,
            "the churn must replace snapshots larger than {} B (wrote {}, largest {} B)",
            churn::SLED_BLOB_THRESHOLD,
            outcome.large_snapshots,
            outcome.largest_snapshot
        );
        eprintln!(
            "{backend:?}: {} commits in {:.1} s of writing ({:.0}/s)",
            outcome.commits,
            outcome.elapsed.as_secs_f64(),
            outcome.commits_per_sec()
        );
        let store = open();
        store.compact().unwrap();
        let u = churn::Usage::of(&*store);
        eprintln!(
            "{backend:?} after compact(): live {} B, disk {} B, ratio {:.2}",
            u.live,
            u.disk,
            u.ratio()
        );
        assert!(
            u.disk <= 3 * u.live,
            "after compact(): disk {} B > 3x live {} B (ratio {:.2})",
            u.disk,
            u.live,
            u.ratio()
        );
    }
}

fn random_kill_delay() -> Duration {
    use rand::Rng as _;
    Duration::from_millis(rand::rng().random_range(100..=400))
}

/// The numbers of `ack N` lines, in order.
fn ack_numbers(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ack "))
        .map(|rest| rest.split(' ').next().unwrap().parse().expect("ack number"))
        .collect()
}

// ---------------------------------------------------------------------------
// Child processes

const CHILD_ENV: &str = "HTX_STORE_CHILD";
/// Starts every line a child means for its parent (the test harness writes
/// its own lines to the same stdout).
const MARKER: &str = "htx-child: ";

/// This test binary, re-executed as a child that runs `child_process`.
struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    reader: Option<thread::JoinHandle<()>>,
}

impl ChildProcess {
    fn spawn(mode: &str, backend: Backend, arg: u64, dir: &Path) -> Self {
        let backend = match backend {
            Backend::Redb => "redb",
            Backend::Sled => "sled",
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--include-ignored",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{mode}:{backend}:{arg}:{}", dir.display()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a child process");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((_, msg)) = line.split_once(MARKER) {
                    let _ = tx.send(msg.to_owned());
                }
            }
        });
        ChildProcess {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    /// Waits until the child has opened its store.
    fn wait_ready(&mut self) {
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line == "ready" => {}
            other => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the child did not get ready ({other:?}); its stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// SIGKILLs the child and returns every line it printed.
    fn kill(&mut self) -> Vec<String> {
        self.child.kill().expect("kill the child");
        let status = self.child.wait().expect("reap the child");
        let stderr = self.stderr();
        assert_eq!(
            status.signal(),
            Some(9),
            "the child must die of our SIGKILL, not on its own ({status}); stderr:\n{stderr}"
        );
        self.reader.take().unwrap().join().unwrap();
        self.lines.try_iter().collect()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn say(msg: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARKER}{msg}")
        .and_then(|()| out.flush())
        .expect("write to the parent");
}

/// The child side of the crash and lock tests; does nothing unless started
/// by [`ChildProcess::spawn`].
#[test]
#[ignore = "not a test: the child process of the crash and lock tests"]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(4, ':');
    let (Some(mode), Some(backend), Some(arg), Some(dir)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("bad {CHILD_ENV}: {spec}")
    };
    let backend: Backend = backend.parse().unwrap();
    let arg: u64 = arg.parse().unwrap();
    let store = storage::create(backend, Path::new(dir)).expect("the child opens the store");
    // Never outlive a parent that forgot us.
    let deadline = Instant::now() + Duration::from_secs(60);
    match mode {
        "hold" => {
            say("ready");
            while Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
        }
        "batches" => {
            say("ready");
            let mut workload = suite::Workload::new(arg as u32);
            while Instant::now() < deadline {
                let step = workload.next_step();
                store.commit(step.batch).expect("commit");
                say(&format!("ack {}", step.index));
            }
        }
        "replica" => {
            use automerge::transaction::Transactable;
            let mut replica =
                htx_core::replica::Replica::open(store.clone()).expect("Replica::open");
            say("ready");
            for i in arg.. {
                if Instant::now() > deadline {
                    break;
                }
                let doc = suite::replica_doc(i);
                replica
                    .change(&doc, |d| {
                        d.put(automerge::ROOT, format!("k{i}"), suite::replica_value(i))
                    })
                    .expect("store the edit")
                    .expect("edit");
                let compacted = store.get(&churn::first_chunk_key(&doc)).unwrap().is_none();
                say(&format!(
                    "ack {i}{}",
                    if compacted { " compacted" } else { "" }
                ));
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

// ---------------------------------------------------------------------------
// Instances

macro_rules! logic_tests {
    ($subject:expr) => {
        use super::*;
        use proptest::prelude::*;

        #[test]
        fn get_put_delete() {
            suite::get_put_delete(&$subject);
        }

        #[test]
        fn overwrite_keeps_only_the_last_value() {
            suite::overwrite_keeps_only_the_last_value(&$subject);
        }

        #[test]
        fn scan_returns_exactly_the_prefixed_keys_in_order() {
            suite::scan_returns_exactly_the_prefixed_keys_in_order(&$subject);
        }

        #[test]
        fn ops_in_one_batch_apply_in_order() {
            suite::ops_in_one_batch_apply_in_order(&$subject);
        }

        #[test]
        fn a_big_batch_is_visible_whole() {
            suite::a_big_batch_is_visible_whole(&mut $subject, |_| {});
        }

        #[test]
        fn compact_keeps_every_entry() {
            suite::compact_keeps_every_entry(&$subject);
        }

        fn key() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(prop::sample::select(suite::KEY_BYTES.to_vec()), 1..4)
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (key(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(k, v)| Op::Put(k, v)),
                1 => key().prop_map(Op::Delete),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(32))]
            #[test]
            fn agrees_with_an_ordered_map(batches in prop::collection::vec(prop::collection::vec(op(), 0..12), 1..12)) {
                suite::agrees_with_an_ordered_map(&$subject, &batches);
            }
        }
    };
}

macro_rules! disk_tests {
    ($backend:expr) => {
        #[test]
        fn a_big_batch_survives_reopen() {
            suite::a_big_batch_is_visible_whole(&mut Subject::on_disk($backend), Subject::reopen);
        }

        #[test]
        fn size_on_disk_counts_what_was_written() {
            suite::size_on_disk_counts_what_was_written(&Subject::on_disk($backend));
        }

        #[test]
        fn open_refuses_a_missing_empty_or_damaged_store() {
            suite::open_refuses_a_missing_empty_or_damaged_store($backend);
        }

        #[test]
        fn a_second_open_is_refused_while_a_process_holds_the_store() {
            suite::a_second_open_is_refused_while_a_process_holds_the_store($backend);
        }

        #[test]
        fn acknowledged_batches_survive_sigkill() {
            suite::acknowledged_batches_survive_sigkill($backend);
        }

        #[test]
        fn replica_edits_survive_sigkill_across_compactions() {
            suite::replica_edits_survive_sigkill_across_compactions($backend);
        }
    };
}

mod memory {
    logic_tests!(Subject::memory());

    #[test]
    fn readers_never_see_half_a_batch() {
        suite::readers_never_see_half_a_batch(&Subject::memory());
    }
}

mod redb {
    logic_tests!(Subject::on_disk(Backend::Redb));
    disk_tests!(Backend::Redb);

    #[test]
    fn readers_never_see_half_a_batch() {
        suite::readers_never_see_half_a_batch(&Subject::on_disk(Backend::Redb));
    }

    /// Asserted after `compact()`, which brings redb's file back from its last doubling.
    #[test]
    fn disk_stays_within_3x_live_over_a_long_churn() {
        suite::disk_stays_within_3x_live_over_a_long_churn(Backend::Redb);
    }
}

mod sled {
    logic_tests!(Subject::on_disk(Backend::Sled));
    disk_tests!(Backend::Sled);

    #[test]
    fn readers_never_see_half_a_batch() {
        suite::readers_never_see_half_a_batch(&Subject::on_disk(Backend::Sled));
    }

    #[test]
    #[ignore = "sled 0.34.7 leaks blob files; see README/BENCHMARKS"]
    fn disk_stays_within_3x_live_over_a_long_churn() {
        suite::disk_stays_within_3x_live_over_a_long_churn(Backend::Sled);
    }
}

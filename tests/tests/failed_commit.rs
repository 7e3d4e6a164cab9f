//! A commit that reports an error is checked against the disk before the
//! officer is told anything: "written" when the records are there,
//! "nothing was written" only when verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use htx_core::storage::{self, Store, StoreError, WriteBatch};
use htx_node::node::{Node, NodeError, Written};
use htx_tests::{TestHub, coop};

/// The node's own store, whose next commit fails: after writing the batch
/// (as when a store wrote its header and a later write failed), or before.
struct Faulty {
    inner: Arc<dyn Store>,
    fail_next: Arc<AtomicBool>,
    write_first: bool,
}

impl Store for Faulty {
    fn get(&self, key: &[u8]) -> storage::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn scan(&self, prefix: &[u8]) -> storage::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(prefix)
    }
    fn commit(&self, batch: WriteBatch) -> storage::Result<()> {
        if !self.fail_next.swap(false, Ordering::SeqCst) {
            return self.inner.commit(batch);
        }
        if self.write_first {
            self.inner.commit(batch)?;
        }
        Err(StoreError::Io(std::io::Error::from_raw_os_error(28)))
    }
    fn size_on_disk(&self) -> storage::Result<u64> {
        self.inner.size_on_disk()
    }
    fn compact(&self) -> storage::Result<()> {
        self.inner.compact()
    }
}

fn open_faulty(dir: &std::path::Path, write_first: bool) -> (Node, Arc<AtomicBool>) {
    let fail_next = Arc::new(AtomicBool::new(false));
    let flag = fail_next.clone();
    let node = Node::open_with(dir, move |cfg| {
        Ok(Arc::new(Faulty {
            inner: storage::open(cfg.backend, dir)?,
            fail_next: flag,
            write_first,
        }))
    })
    .expect("open node");
    (node, fail_next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_reported_as_what_the_disk_holds() {
    let hub = TestHub::create();
    let mut test_node = hub.enroll_node("356", "faulty-disk");
    test_node.close();
    let dir = test_node.dir().to_owned();

    // The commit wrote, then failed: the records are there, and the write
    // is reported as done (the issue: "nothing was imported", yet all rows
    // were in the store).
    let (node, fail_next) = open_faulty(&dir, true);
    fail_next.store(true, Ordering::SeqCst);
    let ids = node
        .write(vec![coop("13633", "HTX Một"), coop("13636", "HTX Hai")])
        .expect("verified written");
    assert_eq!(ids.len(), 2);
    let held: Vec<String> = node
        .export(false)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(held.len(), 2);
    assert!(ids.iter().all(|id| held.contains(id)));
    // The node goes on working on the reopened store.
    node.write(vec![coop("13633", "HTX Ba")]).unwrap();
    assert_eq!(node.export(false).unwrap().len(), 3);
    drop(node);

    // The commit failed before writing: "nothing was written", verified.
    let (node, fail_next) = open_faulty(&dir, false);
    fail_next.store(true, Ordering::SeqCst);
    let err = node
        .write(vec![coop("13633", "HTX Bốn")])
        .expect_err("not written");
    assert!(
        matches!(
            err,
            NodeError::CommitFailed {
                written: Written::Nothing,
                total: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("nothing was written") && msg.contains("không ghi bản ghi nào"),
        "{msg}"
    );
    assert!(msg.contains("os error 28"), "says why: {msg}");
    assert_eq!(node.export(false).unwrap().len(), 3, "as the message says");
    node.write(vec![coop("13633", "HTX Bốn")]).unwrap();
    assert_eq!(node.export(false).unwrap().len(), 4);
}

//! # A slow or full disk, on command
//!
//! [`Gate`] wraps any [`Store`] so that its commits are delayed, held
//! until released, or refused as on a full disk, while its reads go
//! straight through: a disk whose fsync takes seconds (a worn card, a
//! saturated array), as a test can hold it at the exact moment it wants.
//! A held commit has written nothing yet; released, it commits as the
//! wrapped store does. A refused one writes nothing.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use htx_core::storage::{Result, Store, StoreError, WriteBatch};

#[derive(Default)]
struct State {
    /// Commits wait until released.
    held: bool,
    /// Commits waiting at the gate now.
    waiting: usize,
    /// Added to every commit.
    delay: Duration,
    /// Commits that have gone through.
    done: u64,
    /// Commits fail with "No space left on device", writing nothing.
    full: bool,
}

/// The switch of one or more slowed stores.
#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// `inner`, with its commits going through this gate.
    pub fn wrap(self: &Arc<Self>, inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(Slowed {
            inner,
            gate: self.clone(),
        })
    }

    /// Commits from now on wait until [`Gate::release`].
    pub fn hold(&self) {
        self.state.lock().unwrap().held = true;
    }

    /// Lets every held commit, and the ones to come, go through.
    pub fn release(&self) {
        self.state.lock().unwrap().held = false;
        self.changed.notify_all();
    }

    /// Every commit takes `delay` longer.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// While `full`, every commit fails as on a full disk (ENOSPC) and
    /// writes nothing.
    pub fn set_full(&self, full: bool) {
        self.state.lock().unwrap().full = full;
    }

    /// Commits waiting at the gate now.
    pub fn waiting(&self) -> usize {
        self.state.lock().unwrap().waiting
    }

    /// Commits that have gone through.
    pub fn commits(&self) -> u64 {
        self.state.lock().unwrap().done
    }

    /// Blocks until a commit waits at the gate; false if none came within
    /// `limit` (a guard against hanging, not a measurement).
    pub fn wait_for_held_commit(&self, limit: Duration) -> bool {
        let state = self.state.lock().unwrap();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, limit, |s| s.waiting == 0)
            .unwrap();
        state.waiting > 0
    }

    fn pass(&self) {
        let delay = self.state.lock().unwrap().delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut state = self.state.lock().unwrap();
        if state.held {
            state.waiting += 1;
            self.changed.notify_all();
            state = self.changed.wait_while(state, |s| s.held).unwrap();
            state.waiting -= 1;
        }
    }
}

struct Slowed {
    inner: Arc<dyn Store>,
    gate: Arc<Gate>,
}

impl Store for Slowed {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(prefix)
    }
    fn commit(&self, batch: WriteBatch) -> Result<()> {
        if self.gate.state.lock().unwrap().full {
            return Err(StoreError::Io(std::io::Error::from_raw_os_error(28)));
        }
        self.gate.pass();
        self.inner.commit(batch)?;
        self.gate.state.lock().unwrap().done += 1;
        Ok(())
    }
    fn size_on_disk(&self) -> Result<u64> {
        self.inner.size_on_disk()
    }
    fn compact(&self) -> Result<()> {
        self.inner.compact()
    }
}

//! An in-memory store for unit tests of the layers above storage.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Op, Result, Store, WriteBatch};

#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.lock().expect("store lock").get(key).cloned())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let map = self.map.lock().expect("store lock");
        Ok(map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        let mut map = self.map.lock().expect("store lock");
        for op in batch.ops {
            match op {
                Op::Put(k, v) => {
                    map.insert(k, v);
                }
                Op::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64> {
        let map = self.map.lock().expect("store lock");
        Ok(map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum())
    }

    fn compact(&self) -> Result<()> {
        Ok(())
    }
}

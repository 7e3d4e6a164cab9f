//! # Where each record is: an id index, refreshed per document
//!
//! A write checks the ids it names (is this an edit, of which kind, in
//! which unit; do its references exist), so it needs every record's
//! location. Listing them all again on every write costs a scan of every
//! document: seconds at 200,000 records. [`Locations`] keeps the list per
//! document with the heads it was read at, and on each use re-reads only
//! the documents whose heads moved since (a write, a sync, a damaged copy
//! set aside): after one write, one document.

use std::collections::HashMap;

use automerge::ChangeHash;
use htx_core::docs;
use htx_core::replica::Replica;

/// Where one record is.
#[derive(Debug, Clone, PartialEq)]
pub struct Loc {
    pub doc: String,
    pub kind: String,
    pub unit: String,
}

#[derive(Default)]
pub struct Locations {
    /// Per document: the heads it was read at, and the ids it held.
    docs: HashMap<String, (Vec<ChangeHash>, Vec<String>)>,
    by_id: HashMap<String, Loc>,
}

impl Locations {
    /// Brings the index up to `replica`, re-reading only the documents that
    /// changed since the last call.
    pub fn refresh(&mut self, replica: &Replica) {
        let gone: Vec<String> = self
            .docs
            .keys()
            .filter(|d| replica.doc(d).is_none())
            .cloned()
            .collect();
        for d in gone {
            self.forget(&d);
        }
        for doc_id in replica.doc_ids() {
            let heads = replica.heads(doc_id);
            if self.docs.get(doc_id).is_some_and(|(h, _)| *h == heads) {
                continue;
            }
            self.forget(doc_id);
            let unit = docs::parse_unit_doc_id(doc_id)
                .map(|(_, u)| u.to_owned())
                .unwrap_or_default();
            let doc = replica.doc(doc_id).expect("listed");
            let mut ids = Vec::new();
            for (id, kind) in docs::list_records(doc) {
                let loc = Loc {
                    doc: doc_id.to_owned(),
                    kind,
                    unit: unit.clone(),
                };
                self.by_id.insert(id.clone(), loc);
                ids.push(id);
            }
            self.docs.insert(doc_id.to_owned(), (heads, ids));
        }
    }

    fn forget(&mut self, doc: &str) {
        if let Some((_, ids)) = self.docs.remove(doc) {
            for id in ids {
                if self.by_id.get(&id).is_some_and(|l| l.doc == doc) {
                    self.by_id.remove(&id);
                }
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Loc> {
        self.by_id.get(id)
    }

    /// After a write this process made to `replica` while holding it, with
    /// the index refreshed just before: adds what it wrote and moves the
    /// written documents to their new heads, without re-reading them.
    pub fn wrote(&mut self, replica: &Replica, added: HashMap<String, Loc>) {
        let mut written = std::collections::BTreeSet::new();
        for (id, loc) in added {
            written.insert(loc.doc.clone());
            let doc = loc.doc.clone();
            if self.by_id.insert(id.clone(), loc).is_none() {
                self.docs.entry(doc).or_default().1.push(id);
            }
        }
        for doc in written {
            let heads = replica.heads(&doc);
            self.docs.entry(doc).or_default().0 = heads;
        }
    }
}

/// The index as one write sees it: what is stored, and the records the
/// write adds before it commits (a write that fails leaves the index as it
/// was).
pub struct Known<'a> {
    stored: &'a Locations,
    added: HashMap<String, Loc>,
}

impl<'a> Known<'a> {
    pub fn new(stored: &'a Locations) -> Self {
        Known {
            stored,
            added: HashMap::new(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Loc> {
        self.added.get(id).or_else(|| self.stored.get(id))
    }

    pub fn insert(&mut self, id: String, loc: Loc) {
        self.added.insert(id, loc);
    }

    /// What the write added, for [`Locations::wrote`] once it is stored.
    pub fn into_added(self) -> HashMap<String, Loc> {
        self.added
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use htx_core::schema::{Value, new_id, record_from_strings};
    use htx_core::storage::MemoryStore;

    use super::*;

    fn add(r: &mut Replica, doc: &str, unit: &str) -> String {
        let mut rec =
            record_from_strings("cooperative", [("type", "HTX"), ("name", "HTX")]).unwrap();
        rec.id = new_id();
        rec.fields.insert("unit".into(), Value::Text(unit.into()));
        r.change(doc, |d| docs::put_record(d, &rec))
            .unwrap()
            .unwrap();
        rec.id
    }

    /// The index always says what a full scan says, across writes to
    /// several documents, and only re-reads what changed.
    #[test]
    fn the_index_follows_the_documents() {
        let mut r = Replica::open(Arc::new(MemoryStore::default())).unwrap();
        let mut l = Locations::default();
        let a = add(&mut r, "u/2023/13633", "13633");
        l.refresh(&r);
        let b = add(&mut r, "u/2023/13636", "13636");
        let c = add(&mut r, "u/2023/13633", "13633");
        l.refresh(&r);
        for (id, doc) in [
            (&a, "u/2023/13633"),
            (&b, "u/2023/13636"),
            (&c, "u/2023/13633"),
        ] {
            assert_eq!(l.get(id).unwrap().doc, doc);
        }
        assert_eq!(l.get(&b).unwrap().unit, "13636");
        assert!(l.get("nope").is_none());
        // Unchanged documents keep their entry as it was read.
        let before = l.docs["u/2023/13636"].clone();
        add(&mut r, "u/2023/13633", "13633");
        l.refresh(&r);
        assert_eq!(l.docs["u/2023/13636"], before);
        assert_eq!(l.by_id.len(), 4);
        // A write's own additions are seen by that write only.
        let mut k = Known::new(&l);
        k.insert(
            "new".into(),
            Loc {
                doc: "u/2023/13633".into(),
                kind: "cooperative".into(),
                unit: "13633".into(),
            },
        );
        assert!(k.get("new").is_some() && k.get(&a).is_some());
        assert!(l.get("new").is_none());
        // A write's own result is taken in without re-reading, and a later
        // refresh (heads unchanged) agrees with a full scan.
        drop(k);
        let d = add(&mut r, "u/2023/13639", "13639");
        let mut added = HashMap::new();
        added.insert(
            d.clone(),
            Loc {
                doc: "u/2023/13639".into(),
                kind: "cooperative".into(),
                unit: "13639".into(),
            },
        );
        l.wrote(&r, added);
        l.refresh(&r);
        let mut full = Locations::default();
        full.refresh(&r);
        assert_eq!(l.by_id, full.by_id);
        assert_eq!(l.docs["u/2023/13639"].0, full.docs["u/2023/13639"].0);
    }
}

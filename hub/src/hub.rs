//! # The hub's state: one cheap handle per process
//!
//! The merged replica of every node's documents, the enrolled nodes, and
//! what the hub knows of each node's sync. No gRPC here.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use htx_core::docs::{self, REFERENCE_DOC, Reference};
use htx_core::facts::Attendance;
use htx_core::plan::Plan;
use htx_core::progress::{Rec, Slim};
use htx_core::replica::{Replica, ReplicaError};
use htx_core::schema::Record;
use htx_core::storage::{self, WriteBatch};
use htx_core::units::Hierarchy;
use serde::{Deserialize, Serialize};

use crate::config::HubConfig;
use crate::home::{Enrolment, Home};
use crate::progress::{self, Live, Query};

/// What the hub records of each node's sync, persisted in its store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeStats {
    pub last_seen: String,
    pub last_sync: String,
    pub sessions: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub changes_received: u64,
    pub changes_sent: u64,
    pub last_error: String,
    /// Changes sent again because one side had lost them after
    /// acknowledging them (a node or the hub restored from a backup).
    #[serde(default)]
    pub recovered_changes: u64,
    /// When that last happened, and what was done.
    #[serde(default)]
    pub last_recovery: String,
    /// The software version and sync protocol the node last said it runs.
    #[serde(default)]
    pub software: String,
    #[serde(default)]
    pub protocol: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub enrolment: Enrolment,
    #[serde(flatten)]
    pub stats: NodeStats,
    pub documents: usize,
    pub documents_behind: usize,
}

#[derive(Clone)]
pub struct Hub(Arc<Inner>);

/// One open sync session of a node; closing it frees the slot.
pub struct SessionGuard {
    hub: Hub,
    node: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut open = self.hub.0.sessions.lock().expect("sessions lock");
        if let Some(n) = open.get_mut(&self.node) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.node);
            }
        }
    }
}

struct Inner {
    home: Home,
    config: HubConfig,
    replica: Mutex<Replica>,
    /// The replica's store, for reads that need not wait for the replica
    /// (the record index).
    store: Arc<dyn htx_core::storage::Store>,
    /// Enrolments by certificate fingerprint, and when `nodes/` was read.
    enrolments: RwLock<(Option<std::time::SystemTime>, HashMap<String, Enrolment>)>,
    /// The plans progress is computed with, the default first (it is the
    /// one published to nodes).
    plans: Vec<Plan>,
    /// Sync sessions open per node, for `max_sessions_per_node`.
    sessions: Mutex<HashMap<String, usize>>,
    /// Progress in the default view, per plan id, built on first use,
    /// then kept current.
    live: Mutex<HashMap<String, Live>>,
    /// What the facts published to nodes are worked out from, built on
    /// the first session, then kept current.
    attendance: Mutex<Option<Attendance>>,
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// The hub's default plan (the first it follows), read from its files
/// without opening the store (for commands that work while `run` runs).
pub fn default_plan(dir: &Path) -> anyhow::Result<Plan> {
    let config = HubConfig::load(dir)?;
    Ok(load_plans(dir, &config)?.0.swap_remove(0))
}

/// A plan as nodes get it: its id, and its text with its allocations as
/// targets.
type PublishedPlan = (String, String);

/// The plans `config` names (`plan_file`, then `plan_files`; none: the
/// built-in one), each with the allocation files naming it, and, for each,
/// its id and its text with those allocations as targets, as published to
/// nodes.
fn load_plans(dir: &Path, config: &HubConfig) -> anyhow::Result<(Vec<Plan>, Vec<PublishedPlan>)> {
    let files: Vec<&String> = std::iter::once(&config.plan_file)
        .filter(|f| !f.is_empty())
        .chain(&config.plan_files)
        .collect();
    let mut texts = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(dir.join(path)).with_context(|| {
            format!("reading the plan file {path} / không đọc được tệp kế hoạch")
        })?;
        texts.push((path.as_str(), text));
    }
    if texts.is_empty() {
        texts.push(("(built-in)", htx_core::plan::DE_AN_01_NAM_DINH.to_owned()));
    }
    let mut plans: Vec<Plan> = Vec::new();
    for (path, text) in &texts {
        let plan = Plan::parse(text).map_err(|e| anyhow::anyhow!("plan file {path}: {e}"))?;
        if plans.iter().any(|p| p.id == plan.id) {
            anyhow::bail!(
                "plan file {path}: another plan file has the id {:?} / hai tệp kế hoạch trùng mã",
                plan.id
            );
        }
        plans.push(plan);
    }
    let mut allocated = vec![Vec::new(); plans.len()];
    for path in &config.allocation_files {
        let text = std::fs::read_to_string(dir.join(path)).with_context(|| {
            format!("reading the allocation file {path} / không đọc được tệp phân bổ chỉ tiêu")
        })?;
        let target = htx_core::allocation::plan_of(&text)
            .map_err(|e| anyhow::anyhow!("allocation file {path}: {e}"))?;
        let Some(i) = plans.iter().position(|p| p.id == target) else {
            anyhow::bail!(
                "allocation file {path}: it is for plan {target:?}, which this hub does not follow / tệp phân bổ cho kế hoạch không được theo dõi"
            );
        };
        let added = htx_core::allocation::apply(&mut plans[i], &text)
            .map_err(|e| anyhow::anyhow!("allocation file {path}: {e}"))?;
        allocated[i].extend(added);
    }
    // Nodes get every plan with its allocations, as targets.
    let published = plans
        .iter()
        .zip(texts)
        .zip(allocated)
        .map(|((plan, (_, mut text)), allocated)| {
            if !allocated.is_empty() {
                text.push_str(&htx_core::allocation::as_plan_targets(&allocated));
            }
            (plan.id.clone(), text)
        })
        .collect();
    Ok((plans, published))
}

fn stats_key(name: &str) -> String {
    format!("node/{name}")
}

impl Hub {
    pub fn open(dir: &Path) -> anyhow::Result<Hub> {
        Self::open_with(dir, |config| storage::open(config.backend, dir))
    }

    /// As [`Hub::open`], with the store `open_store` gives (e.g. one that
    /// wraps the configured store to slow or hold its commits in tests).
    pub fn open_with(
        dir: &Path,
        open_store: impl FnOnce(&HubConfig) -> Result<Arc<dyn storage::Store>, storage::StoreError>,
    ) -> anyhow::Result<Hub> {
        let config = HubConfig::load(dir)?;
        let home = Home::new(dir);
        let (plans, published) = load_plans(dir, &config)?;
        let store = open_store(&config)?;
        // Refuses a store of a newer format; migrates an older one.
        let (mut replica, _) = htx_core::format::open_with_options(
            store.clone(),
            htx_core::format::Role::Hub,
            config.replica_options(),
        )?;
        // Publish the plan and the unit lists to every node, read-only.
        let reference = Reference {
            plan: published[0].1.clone(),
            plans: published[1..].to_vec(),
            lists: Hierarchy::current_lists(),
        };
        replica.change(REFERENCE_DOC, |doc| docs::put_reference(doc, &reference))??;
        replica.commit(crate::validate::claim_own_actor(&replica))?;
        let hub = Hub(Arc::new(Inner {
            home,
            config,
            replica: Mutex::new(replica),
            store,
            enrolments: RwLock::default(),
            plans,
            sessions: Mutex::default(),
            live: Mutex::default(),
            attendance: Mutex::default(),
        }));
        hub.reload_enrolments()?;
        Ok(hub)
    }

    pub fn config(&self) -> &HubConfig {
        &self.0.config
    }
    pub fn home(&self) -> &Home {
        &self.0.home
    }
    /// The default plan (the first followed; published to nodes).
    pub fn plan(&self) -> &Plan {
        &self.0.plans[0]
    }

    /// Every plan followed, the default first.
    pub fn plans(&self) -> &[Plan] {
        &self.0.plans
    }

    /// The plan with this id (none or empty: the default), or a clear
    /// error naming the plans followed.
    pub fn plan_by(&self, id: Option<&str>) -> anyhow::Result<&Plan> {
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            return Ok(self.plan());
        };
        self.0.plans.iter().find(|p| p.id == id).ok_or_else(|| {
            let known: Vec<&str> = self.0.plans.iter().map(|p| p.id.as_str()).collect();
            anyhow::anyhow!(
                "unknown plan {id:?}; this hub follows {} / máy chủ tỉnh không theo dõi kế hoạch {id:?} (các kế hoạch: {})",
                known.join(", "),
                known.join(", ")
            )
        })
    }

    /// The merged replica. If a task panicked while holding it (a bug met on
    /// a crafted input, say), memory may differ from the disk: the replica
    /// is loaded again from its store, which holds only what was committed,
    /// and the hub goes on serving every other node.
    pub fn replica(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.0.replica.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            tracing::error!(
                "a task panicked while holding the replica; loading it again from the store"
            );
            match Replica::open_with(guard.store().clone(), guard.options()) {
                Ok(fresh) => *guard = fresh,
                Err(e) => tracing::error!("cannot load the replica again: {e}"),
            }
            self.0.replica.clear_poison();
            guard
        })
    }

    /// Reads `nodes/` again if it changed since last read (an enrolment,
    /// a renewal or a revocation, made by this process or by a command).
    fn reload_enrolments(&self) -> anyhow::Result<()> {
        let stamp = std::fs::metadata(self.0.home.dir.join("nodes"))?.modified()?;
        let mut cache = self.0.enrolments.write().expect("lock");
        if cache.0 == Some(stamp) {
            return Ok(());
        }
        let mut map = HashMap::new();
        for e in self.0.home.enrolments()? {
            for fp in std::iter::once(&e.fingerprint).chain(&e.previous_fingerprints) {
                map.insert(fp.clone(), e.clone());
            }
        }
        *cache = (Some(stamp), map);
        Ok(())
    }

    /// The node that presents the certificate with this fingerprint, unless
    /// it was revoked.
    pub fn identify(&self, fingerprint: &str) -> Option<Enrolment> {
        if let Err(e) = self.reload_enrolments() {
            tracing::warn!("cannot read the enrolled nodes: {e:#}");
        }
        let cache = self.0.enrolments.read().expect("lock");
        cache
            .1
            .get(fingerprint)
            .filter(|e| e.revoked_at.is_empty())
            .cloned()
    }

    /// The enrolment a certificate fingerprint belongs to, revoked or not:
    /// to name the node in the log and the audit when it is refused.
    pub fn enrolment_by_fingerprint(&self, fingerprint: &str) -> Option<Enrolment> {
        if let Err(e) = self.reload_enrolments() {
            tracing::warn!("cannot read the enrolled nodes: {e:#}");
        }
        let cache = self.0.enrolments.read().expect("lock");
        cache.1.get(fingerprint).cloned()
    }

    /// Counts a session of `node` open until the guard drops, unless the
    /// node already has `max_sessions_per_node` open.
    pub fn begin_session(&self, node: &str) -> Option<SessionGuard> {
        let mut open = self.0.sessions.lock().expect("sessions lock");
        let n = open.entry(node.to_owned()).or_default();
        if *n >= self.0.config.max_sessions_per_node {
            return None;
        }
        *n += 1;
        Some(SessionGuard {
            hub: self.clone(),
            node: node.to_owned(),
        })
    }

    /// Whether a node was revoked since it connected.
    pub fn is_revoked(&self, fingerprint: &str) -> bool {
        self.identify(fingerprint).is_none()
    }

    /// Whether the node may read `doc`: its units' documents and what the
    /// hub publishes (the plan and unit lists, and the facts about its own
    /// people: [`htx_core::facts`]).
    pub fn readable(node: &Enrolment, doc: &str) -> bool {
        doc == REFERENCE_DOC
            || doc == htx_core::facts::doc_id(&node.name)
            || Self::writable(node, doc)
    }

    /// Works out the facts about `node`'s people from the records it does
    /// not hold ([`htx_core::facts`]) and writes them to its facts
    /// document, if they changed. Called at the start of each of its
    /// sessions, so the node gets them in the same session.
    pub fn publish_facts(&self, node: &Enrolment) -> anyhow::Result<bool> {
        let held = |r: &Record| {
            let version = r.text("unit_version").unwrap_or(&node.unit_version);
            let unit = r.text("unit").unwrap_or_default();
            Self::writable(node, &docs::unit_doc_id(version, unit))
        };
        let trainings = {
            let mut attendance = self.0.attendance.lock().expect("attendance lock");
            if attendance.is_none() {
                let mut built = Attendance::default();
                htx_core::index::each(self.0.store.as_ref(), |r| built.upsert(&r))?;
                *attendance = Some(built);
            }
            attendance.as_ref().expect("built").facts(held)
        };
        let facts = htx_core::facts::Facts {
            computed_at: now_rfc3339(),
            trainings,
        };
        let id = htx_core::facts::doc_id(&node.name);
        let mut r = self.replica();
        // No document while there is nothing to say: a node that synced
        // and has none has no such facts.
        if facts.trainings.is_empty() && !r.has_doc(&id) {
            return Ok(false);
        }
        Ok(r.change(&id, |doc| htx_core::facts::put(doc, &facts))??)
    }

    /// Whether the node may write `doc`: only the documents of its units.
    pub fn writable(node: &Enrolment, doc: &str) -> bool {
        let Some((version, unit)) = docs::parse_unit_doc_id(doc) else {
            return false;
        };
        version == node.unit_version
            && Hierarchy::current()
                .version(version)
                .is_ok_and(|v| v.within(unit, &node.unit))
    }

    /// The hub's documents the node may read.
    pub fn scope(replica: &Replica, node: &Enrolment) -> Vec<String> {
        replica
            .doc_ids()
            .filter(|d| Self::readable(node, d))
            .map(str::to_owned)
            .collect()
    }

    /// Read from the store, without the replica: a merge being committed
    /// (on a slow disk, seconds) must not hold up progress and the node
    /// list, which show these figures.
    pub fn stats(&self, name: &str) -> NodeStats {
        Replica::meta_in(self.0.store.as_ref(), &stats_key(name))
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    /// Adds one session's figures to a node's record.
    pub fn record_session(
        &self,
        name: &str,
        session: &NodeStats,
        completed: bool,
    ) -> Result<(), ReplicaError> {
        let mut s = self.stats(name);
        s.last_seen = now_rfc3339();
        if completed {
            s.last_sync = s.last_seen.clone();
            s.last_error.clear();
        } else {
            s.last_error = session.last_error.clone();
        }
        s.sessions += 1;
        s.bytes_received += session.bytes_received;
        s.bytes_sent += session.bytes_sent;
        s.changes_received += session.changes_received;
        s.changes_sent += session.changes_sent;
        s.recovered_changes += session.recovered_changes;
        if !session.last_recovery.is_empty() {
            s.last_recovery = session.last_recovery.clone();
        }
        if session.protocol != 0 {
            s.protocol = session.protocol;
            s.software = session.software.clone();
        }
        let mut b = WriteBatch::default();
        Replica::put_meta(
            &mut b,
            &stats_key(name),
            serde_json::to_vec(&s).expect("serializes"),
        );
        self.replica().commit(b)
    }

    /// Bytes the store occupies on disk.
    pub fn store_bytes(&self) -> Result<u64, htx_core::storage::StoreError> {
        self.0.store.size_on_disk()
    }

    /// Whether the hub can serve: its store answers a read, and its own
    /// certificate has not expired. The reason, in both languages, if not.
    pub fn check_ready(&self) -> Result<(), String> {
        self.0
            .store
            .get(b"meta/")
            .map_err(|e| format!("the store does not answer / kho dữ liệu không phản hồi: {e}"))?;
        let pem = std::fs::read_to_string(self.0.home.dir.join("hub.pem"))
            .map_err(|e| format!("hub.pem: {e}"))?;
        let expires = htx_core::pki::not_after(&pem).map_err(|e| format!("hub.pem: {e}"))?;
        if expires <= time::OffsetDateTime::now_utc() {
            return Err(format!(
                "the hub certificate expired at {expires}: run `htx-hub rotate-cert` / chứng chỉ máy chủ tỉnh đã hết hạn"
            ));
        }
        Ok(())
    }

    /// A consistent copy of the store, written to `out` while the hub runs.
    pub fn backup(
        &self,
        out: &Path,
    ) -> Result<htx_core::storage::backup::Copied, htx_core::storage::StoreError> {
        htx_core::storage::backup::backup(self.0.store.as_ref(), out)
    }

    /// Every enrolled node, with its sync figures and how far behind it is.
    pub fn nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        let mut out = Vec::new();
        for e in self.0.home.enrolments()? {
            let stats = self.stats(&e.name);
            let r = self.replica();
            let scope = Self::scope(&r, &e);
            let mut behind = 0;
            for d in &scope {
                // What the node last confirmed, in whichever incarnation.
                let mut shared = r.belief(&e.name, d)?.map(|(h, _)| h).unwrap_or_default();
                shared.sort();
                if shared != r.heads(d) {
                    behind += 1;
                }
            }
            out.push(NodeView {
                enrolment: e,
                stats,
                documents: scope.len(),
                documents_behind: behind,
            });
        }
        Ok(out)
    }

    /// Progress as asked: today (and any date a page asked to keep) in the
    /// hub's version from the live engine, any other date or hierarchy
    /// version computed from the merged records.
    pub fn progress(&self, query: &Query) -> anyhow::Result<htx_proto::v1::ProgressReply> {
        self.answer(query, false)
    }

    /// As [`Hub::progress`], for a page that shows one unit and is looked
    /// at again and again (the overview, and the end of the month before
    /// its date): the figures of the query's unit and of the units just
    /// below it, not of every unit below, and a date of the hub's version
    /// kept current in the live view from now on ([`Live::report_at`]).
    pub fn progress_kept(&self, query: &Query) -> anyhow::Result<htx_proto::v1::ProgressReply> {
        self.answer(query, true)
    }

    /// The reply to `query`; `page`: asked by a page that shows one unit
    /// ([`Hub::progress_kept`]): its date is kept in the live view, and the
    /// reply holds the asked unit and its children only.
    fn answer(&self, query: &Query, page: bool) -> anyhow::Result<htx_proto::v1::ProgressReply> {
        let nodes: Vec<(Enrolment, NodeStats)> = self
            .0
            .home
            .enrolments()?
            .into_iter()
            .map(|e| {
                let s = self.stats(&e.name);
                (e, s)
            })
            .collect();
        let plan = self.plan_by(query.plan.as_deref())?;
        let default_version = &self.0.config.default_unit_version;
        let view = progress::view(query, default_version)?;
        let mut report = match self.with_live(plan, |l| l.report_at(&view, page))? {
            Some(report) => report,
            None => progress::from_scratch(plan, &view, &self.records_for(plan)?)?,
        };
        if page {
            // A country's root has thousands of units below it: writing
            // them out was most of the overview's time.
            let unit = query.unit.as_deref().filter(|u| !u.is_empty());
            let unit = unit.unwrap_or(&report.territory.code).to_owned();
            report
                .units
                .retain(|u| u.code == unit || u.parent.as_deref() == Some(&unit));
        }
        Ok(progress::reply(&report, query, &view.0, &nodes)?)
    }

    /// Runs `f` on the live view of `plan`, built from the record index on
    /// first use (then kept current by [`Hub::merged`]).
    fn with_live<T>(&self, plan: &Plan, f: impl FnOnce(&mut Live) -> T) -> anyhow::Result<T> {
        let mut live = self.0.live.lock().expect("progress lock");
        if !live.contains_key(&plan.id) {
            let version = &self.0.config.default_unit_version;
            let built = Live::from_index(plan.clone(), version, self.0.store.as_ref())?;
            live.insert(plan.id.clone(), built);
        }
        Ok(f(live.get_mut(&plan.id).expect("built")))
    }

    /// Feeds records that just merged to the live view and to what the
    /// nodes' facts are worked out from.
    pub fn merged(&self, records: Vec<Record>) {
        if let Some(a) = self.0.attendance.lock().expect("attendance lock").as_mut() {
            records.iter().for_each(|r| a.upsert(r));
        }
        let mut live = self.0.live.lock().expect("progress lock");
        // Every plan's engine: a record counts for each plan whose
        // territory holds it (each engine leaves the others' aside).
        for engine in live.values_mut() {
            engine.merged(records.iter().cloned());
        }
    }

    /// The dates the live view of `plan` keeps current besides today
    /// ([`Hub::progress_kept`]), the last asked first.
    pub fn kept_dates(&self, plan: &Plan) -> anyhow::Result<Vec<time::Date>> {
        self.with_live(plan, |l| l.kept_dates().to_vec())
    }

    /// Every live merged record, as the live view keeps it (only what
    /// progress under `plan` reads: [`Slim`]), shared, so that a query for
    /// another date or version neither reads every record again (0.8 s at
    /// 175,000) nor holds a second copy.
    pub fn records_for(&self, plan: &Plan) -> anyhow::Result<Vec<Arc<Slim>>> {
        self.with_live(plan, |l| l.records())
    }

    /// The whole records (every field, as merged) of records as the live
    /// view keeps them ([`Hub::records_for`]), by id: read from the
    /// documents of their units, where nodes put them, and from one scan
    /// of the record index for any found elsewhere.
    pub fn whole(
        &self,
        slim: &[&Slim],
    ) -> Result<HashMap<String, Record>, htx_core::index::IndexError> {
        let mut by_doc: std::collections::BTreeMap<String, HashSet<&str>> = Default::default();
        for r in slim {
            let (version, unit) = (r.text("unit_version"), r.text("unit"));
            let doc = docs::unit_doc_id(version.unwrap_or_default(), unit.unwrap_or_default());
            by_doc.entry(doc).or_default().insert(r.id());
        }
        let store = self.0.store.as_ref();
        let mut out = HashMap::new();
        for (doc, ids) in &by_doc {
            for rec in htx_core::index::read_doc(store, doc)? {
                if ids.contains(rec.id.as_str()) {
                    out.insert(rec.id.clone(), rec);
                }
            }
        }
        if slim.iter().any(|r| !out.contains_key(r.id())) {
            let wanted: HashSet<&str> = slim.iter().map(|r| r.id()).collect();
            htx_core::index::each(store, |rec| {
                if wanted.contains(rec.id.as_str()) && !out.contains_key(&rec.id) {
                    out.insert(rec.id.clone(), rec);
                }
            })?;
        }
        Ok(out)
    }

    /// Every merged record; deleted ones only if asked. Read from the record
    /// index, as of one point in time, without holding the replica.
    pub fn export(
        &self,
        include_deleted: bool,
    ) -> Result<Vec<Record>, htx_core::index::IndexError> {
        let mut all = htx_core::index::read_all(self.0.store.as_ref())?;
        all.retain(|rec| include_deleted || !rec.is_deleted());
        Ok(all)
    }
}

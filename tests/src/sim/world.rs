//! The simulated network: the hub, the nodes, the open sessions, what was
//! acknowledged, and the scheduler that picks each step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use automerge::{ActorId, ChangeHash};
use htx_core::docs::{self, REFERENCE_DOC, Reference};
use htx_core::plan::Plan;
use htx_core::replica::Replica;
use htx_core::storage::{MemoryStore, Store, WriteBatch};
use htx_core::units::{BUILTIN_LISTS, Hierarchy, Level};
use htx_hub::config::HubConfig;
use htx_hub::home::Enrolment;
use htx_hub::progress::Live;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::session::{self, Session};
use super::{check, officer};

/// One run of the simulation.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Nodes (at most 20): district nodes, two of them sharing a
    /// district, commune nodes inside those districts, and nodes under the
    /// 2025 hierarchy, two of them sharing a commune; one is adversarial.
    pub nodes: usize,
    /// Steps before healing.
    pub steps: usize,
    /// Whether faults are injected (cuts, crashes, restores, duplicates...).
    pub faults: bool,
}

/// What a run did: the figures RELIABILITY.md reports.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub steps: u64,
    pub writes_acked: u64,
    /// Acknowledged writes that a restore rolled back on every replica
    /// that held them (not a loss: the backups were older).
    pub writes_rolled_back: u64,
    pub writes_refused: u64,
    pub sessions: u64,
    pub sessions_completed: u64,
    pub messages: u64,
    pub bytes: u64,
    pub batches_merged: u64,
    pub batches_refused: u64,
    pub cuts: u64,
    pub late_deliveries: u64,
    pub duplicated: u64,
    pub swapped: u64,
    pub node_crashes: u64,
    pub hub_crashes: u64,
    pub node_restores: u64,
    pub hub_restores: u64,
    pub attacks: u64,
    pub attacks_refused: u64,
    pub healing_rounds: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        macro_rules! sum { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        sum!(
            steps,
            writes_acked,
            writes_rolled_back,
            writes_refused,
            sessions,
            sessions_completed,
            messages,
            bytes,
            batches_merged,
            batches_refused,
            cuts,
            late_deliveries,
            duplicated,
            swapped,
            node_crashes,
            hub_crashes,
            node_restores,
            hub_restores,
            attacks,
            attacks_refused,
            healing_rounds
        );
    }
}

pub(super) const HUB_VERSION: &str = "2023";

pub(super) struct SimHub {
    pub store: Arc<MemoryStore>,
    pub replica: Replica,
    pub live: Live,
    pub config: HubConfig,
    pub backups: Vec<Arc<MemoryStore>>,
    pub plan: Plan,
    /// The plan file's text as the hub publishes it (revised now and then:
    /// a comment added, the same plan).
    pub plan_text: String,
}

pub(super) struct SimNode {
    pub enrolment: Enrolment,
    pub store: Arc<MemoryStore>,
    pub replica: Replica,
    /// The communes (or the 2025 commune) this node writes records for.
    pub communes: Vec<String>,
    /// Seconds this node's clock is off by.
    pub skew_secs: i64,
    pub adversarial: bool,
    pub backups: Vec<Arc<MemoryStore>>,
    /// The hub incarnation met on the kept link (a warm session sends its
    /// changes with the hello), or none after a failure.
    pub link: Option<Vec<u8>>,
    /// Its open session, if any (one at a time, as the node's lock has it).
    pub session: Option<u64>,
    pub max_batch_bytes: usize,
}

/// An acknowledged write: the change it made, where.
#[derive(Debug, Clone)]
pub(super) struct Write {
    pub node: usize,
    pub doc: String,
    pub hash: ChangeHash,
    pub step: u64,
    pub rolled_back: bool,
}

pub(super) struct World {
    pub rng: StdRng,
    pub seed: u64,
    pub step: u64,
    pub faults: bool,
    pub hub: SimHub,
    pub nodes: Vec<SimNode>,
    pub sessions: BTreeMap<u64, Session>,
    pub next_session: u64,
    pub writes: Vec<Write>,
    /// Every actor id handed out, and the node (or None: the hub) it was
    /// handed to: the ground truth of who made a change.
    pub actors: BTreeMap<ActorId, Option<usize>>,
    /// Changes an adversary made under another node's actor id: must never
    /// reach the hub.
    pub forged: BTreeSet<ChangeHash>,
    pub stats: Stats,
    /// The last events, printed with a failure.
    pub trace: Vec<String>,
    /// `SIM_TRACE=1`: every event printed as it happens.
    pub print_trace: bool,
}

/// A copy of a store, as a backup of its file would hold.
pub(super) fn copy_store(s: &MemoryStore) -> Arc<MemoryStore> {
    let copy = Arc::new(MemoryStore::default());
    let mut b = WriteBatch::default();
    for (k, v) in s.scan(b"").expect("memory scan") {
        b.put(k, v);
    }
    copy.commit(b).expect("memory commit");
    copy
}

fn enrolment(name: &str, unit: &str, version: &str) -> Enrolment {
    Enrolment {
        name: name.to_owned(),
        unit: unit.to_owned(),
        unit_version: version.to_owned(),
        fingerprint: format!("sim-{name}"),
        enrolled_at: String::new(),
        expires_at: String::new(),
        previous_fingerprints: Vec::new(),
        revoked_at: String::new(),
    }
}

impl World {
    pub fn note(&mut self, event: String) {
        if self.print_trace {
            eprintln!("[{}] {event}", self.step);
        }
        if self.trace.len() >= 60 {
            self.trace.remove(0);
        }
        self.trace.push(format!("[{}] {event}", self.step));
    }

    /// A fresh actor id for `owner` (None: the hub), from the seed.
    pub fn new_actor(&mut self, owner: Option<usize>) -> ActorId {
        let bytes: [u8; 16] = self.rng.random();
        let actor = ActorId::from(&bytes[..]);
        self.actors.insert(actor.clone(), owner);
        actor
    }

    pub fn open_hub(&mut self, store: Arc<MemoryStore>) -> Result<(), String> {
        let actor = self.new_actor(None);
        let replica = open_hub_replica(store.clone(), actor, &self.hub.plan_text)?;
        // As the hub builds its live view.
        let plan = self.hub.plan.clone();
        self.hub.live =
            Live::from_index(plan, HUB_VERSION, store.as_ref()).map_err(|e| e.to_string())?;
        self.hub.replica = replica;
        self.hub.store = store;
        Ok(())
    }

    pub fn open_node(&mut self, i: usize, store: Arc<MemoryStore>) -> Result<(), String> {
        let actor = self.new_actor(Some(i));
        let replica = Replica::open_as(store.clone(), actor).map_err(|e| e.to_string())?;
        let n = &mut self.nodes[i];
        n.replica = replica;
        n.store = store;
        n.link = None;
        Ok(())
    }
}

/// The hub's replica as `Hub::open` prepares it: the reference document
/// (plan and unit lists) published, its own actor claimed, the record
/// index in place.
fn open_hub_replica(
    store: Arc<MemoryStore>,
    actor: ActorId,
    plan: &str,
) -> Result<Replica, String> {
    // As `Hub::open` does, documents are loaded on first use; a cache of
    // two makes the hub drop and reload them all the time.
    let options = htx_core::replica::Options {
        check_at_open: false,
        cache_docs: Some(2),
        cache_bytes: None,
    };
    let (mut r, _) =
        htx_core::format::open_as_with_options(store, htx_core::format::Role::Hub, actor, options)
            .map_err(|e| e.to_string())?;
    let reference = Reference {
        plan: plan.to_owned(),
        plans: Vec::new(),
        lists: BUILTIN_LISTS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
    };
    r.change(REFERENCE_DOC, |doc| docs::put_reference(doc, &reference))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    r.commit(htx_hub::validate::claim_own_actor(&r))
        .map_err(|e| e.to_string())?;
    Ok(r)
}

/// The nodes of a network of `n`: (unit, version, communes it writes to).
fn population(rng: &mut StdRng, n: usize) -> Vec<(String, String, Vec<String>)> {
    let h = Hierarchy::builtin();
    let v23 = h.version("2023").expect("2023");
    let v25 = h.version("2025").expect("2025");
    let districts: Vec<&str> = v23
        .units()
        .filter(|u| u.level == Level::District)
        .map(|u| u.code.as_str())
        .collect();
    let communes_of =
        |d: &str| -> Vec<String> { v23.children(d).map(|u| u.code.clone()).collect() };
    // 2025 communes that took in 2023 Nam Định communes.
    let c25: Vec<String> = v25
        .units()
        .filter(|u| u.level == Level::Commune)
        .filter(|u| h.resolve("2025", &u.code, "2023").is_ok())
        .map(|u| u.code.clone())
        .collect();
    let mut out = Vec::new();
    let mut d = 0;
    while out.len() < n {
        let k = out.len();
        match k % 5 {
            // A district node; the first district gets two.
            0 | 3 => {
                let district = districts[d % districts.len()];
                if k != 3 {
                    d += 1;
                }
                let communes: Vec<String> = communes_of(district).into_iter().take(4).collect();
                out.push((district.to_owned(), "2023".to_owned(), communes));
            }
            // A commune node inside a district that has a district node.
            1 => {
                let district = districts[(d - 1) % districts.len()];
                let communes = communes_of(district);
                let c = communes[rng.random_range(0..communes.len().min(4))].clone();
                out.push((c.clone(), "2023".to_owned(), vec![c]));
            }
            // Nodes under the 2025 hierarchy, two per commune.
            _ => {
                let c = c25[(k / 5) % c25.len().max(1)].clone();
                out.push((c.clone(), "2025".to_owned(), vec![c]));
            }
        }
    }
    out
}

impl World {
    pub fn new(cfg: &Config) -> Result<World, String> {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let plan = Plan::builtin();
        let hub_store = Arc::new(MemoryStore::default());
        let pop = population(&mut rng, cfg.nodes.clamp(1, 20));
        let live = Live::new(plan.clone(), HUB_VERSION).map_err(|e| e.to_string())?;
        let placeholder = Replica::open_as(
            Arc::new(MemoryStore::default()),
            ActorId::from(&[0u8; 16][..]),
        )
        .map_err(|e| e.to_string())?;
        let mut w = World {
            rng,
            seed: cfg.seed,
            step: 0,
            faults: cfg.faults,
            hub: SimHub {
                store: hub_store.clone(),
                replica: placeholder,
                live,
                config: HubConfig {
                    // Small batches: sessions of several batches, cut between them.
                    max_batch_bytes: 4 * 1024,
                    ..HubConfig::default()
                },
                backups: Vec::new(),
                plan,
                plan_text: htx_core::plan::DE_AN_01_NAM_DINH.to_owned(),
            },
            nodes: Vec::new(),
            sessions: BTreeMap::new(),
            next_session: 1,
            writes: Vec::new(),
            actors: BTreeMap::new(),
            forged: BTreeSet::new(),
            stats: Stats::default(),
            trace: Vec::new(),
            print_trace: std::env::var_os("SIM_TRACE").is_some(),
        };
        w.open_hub(hub_store)?;
        let adversary = if pop.len() >= 3 {
            Some(pop.len() - 1)
        } else {
            None
        };
        for (i, (unit, version, communes)) in pop.into_iter().enumerate() {
            let name = format!("n{i}-{unit}-{version}");
            let skew_secs = if w.rng.random_bool(0.3) {
                w.rng.random_range(-400 * 86_400..400 * 86_400)
            } else {
                0
            };
            let max_batch_bytes = [1024, 4096, 256 * 1024][w.rng.random_range(0..3)];
            let store = Arc::new(MemoryStore::default());
            let placeholder = Replica::open_as(
                Arc::new(MemoryStore::default()),
                ActorId::from(&[0u8; 16][..]),
            )
            .map_err(|e| e.to_string())?;
            w.nodes.push(SimNode {
                enrolment: enrolment(&name, &unit, &version),
                store: store.clone(),
                replica: placeholder,
                communes,
                skew_secs,
                adversarial: adversary == Some(i),
                backups: Vec::new(),
                link: None,
                session: None,
                max_batch_bytes,
            });
            w.open_node(i, store)?;
        }
        Ok(w)
    }

    /// Fails with everything needed to replay.
    pub fn fail(&self, what: &str) -> String {
        format!(
            "simulation failed at step {} of seed {}: {what}\nlast events:\n  {}\nreplay: SIM_SEED={} cargo test -p htx-tests --test simulation -- --nocapture",
            self.step,
            self.seed,
            self.trace.join("\n  "),
            self.seed
        )
    }

    fn step_once(&mut self) -> Result<(), String> {
        self.step += 1;
        self.stats.steps += 1;
        let roll = self.rng.random_range(0..1000);
        let faults = self.faults;
        match roll {
            0..300 => officer::write(self)?,
            300..420 => self.open_session()?,
            420..900 => self.deliver()?,
            900..930 if faults => self.cut()?,
            930..945 if faults => session::duplicate_or_swap(self),
            945..960 if faults => self.crash_node()?,
            960..966 if faults => self.crash_hub()?,
            966..980 if faults => self.backup(),
            980..986 if faults => self.restore_node()?,
            986..989 if faults => self.restore_hub()?,
            989..992 => self.publish_plan()?,
            992..1000 if faults => self.attack()?,
            _ => self.deliver()?,
        }
        check::always(self)
    }

    fn open_session(&mut self) -> Result<(), String> {
        let i = self.rng.random_range(0..self.nodes.len());
        if self.nodes[i].session.is_some() {
            return self.deliver();
        }
        session::open(self, i, None)
    }

    /// Delivers the next message of a random open session.
    fn deliver(&mut self) -> Result<(), String> {
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let id = ids[self.rng.random_range(0..ids.len())];
        session::deliver(self, id)
    }

    fn cut(&mut self) -> Result<(), String> {
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let id = ids[self.rng.random_range(0..ids.len())];
        // Half the time the hub still handles what had reached it.
        let late = self.rng.random_bool(0.5);
        session::cut(self, id, late);
        Ok(())
    }

    fn crash_node(&mut self) -> Result<(), String> {
        let i = self.rng.random_range(0..self.nodes.len());
        self.note(format!("node {i} crashes"));
        self.stats.node_crashes += 1;
        session::node_gone(self, i);
        let before = heads_of(&self.nodes[i].replica);
        let store = self.nodes[i].store.clone();
        self.open_node(i, store)?;
        let after = heads_of(&self.nodes[i].replica);
        if before != after {
            return Err(self.fail(&format!(
                "node {i} reopened after a crash with other heads: committed data lost"
            )));
        }
        Ok(())
    }

    fn crash_hub(&mut self) -> Result<(), String> {
        self.note("the hub crashes".into());
        self.stats.hub_crashes += 1;
        session::hub_gone(self);
        let before = heads_of(&self.hub.replica);
        let store = self.hub.store.clone();
        self.open_hub(store)?;
        if before != heads_of(&self.hub.replica) {
            return Err(self.fail("the hub reopened after a crash with other heads"));
        }
        Ok(())
    }

    fn backup(&mut self) {
        if self.rng.random_bool(0.3) {
            self.note("backup of the hub".into());
            let b = copy_store(&self.hub.store);
            self.hub.backups.push(b);
        } else {
            let i = self.rng.random_range(0..self.nodes.len());
            self.note(format!("backup of node {i}"));
            let b = copy_store(&self.nodes[i].store);
            self.nodes[i].backups.push(b);
        }
    }

    fn restore_node(&mut self) -> Result<(), String> {
        let i = self.rng.random_range(0..self.nodes.len());
        if self.nodes[i].backups.is_empty() {
            return Ok(());
        }
        let k = self.rng.random_range(0..self.nodes[i].backups.len());
        self.note(format!("node {i} restored from backup {k}"));
        self.stats.node_restores += 1;
        session::node_gone(self, i);
        let store = copy_store(&self.nodes[i].backups[k]);
        self.open_node(i, store)?;
        self.rolled_back();
        Ok(())
    }

    /// The hub's administrator revises the plan file (a comment: the same
    /// plan) and restarts the hub, which publishes it to every node.
    fn publish_plan(&mut self) -> Result<(), String> {
        self.hub.plan_text = format!(
            "{}\n# revision at step {}\n",
            self.hub.plan_text.trim_end(),
            self.step
        );
        self.note("the hub publishes a revised plan file".into());
        session::hub_gone(self);
        let store = self.hub.store.clone();
        self.open_hub(store)
    }

    fn restore_hub(&mut self) -> Result<(), String> {
        if self.hub.backups.is_empty() {
            return Ok(());
        }
        let k = self.rng.random_range(0..self.hub.backups.len());
        self.note(format!("the hub restored from backup {k}"));
        self.stats.hub_restores += 1;
        session::hub_gone(self);
        let store = copy_store(&self.hub.backups[k]);
        self.open_hub(store)?;
        self.rolled_back();
        Ok(())
    }

    /// Marks the acknowledged writes no replica holds any more.
    fn rolled_back(&mut self) {
        let mut newly = 0;
        for w in self.writes.iter_mut().filter(|w| !w.rolled_back) {
            let held = std::iter::once(&mut self.hub.replica)
                .chain(self.nodes.iter_mut().map(|n| &mut n.replica))
                .any(|r| !r.known(&w.doc, &[w.hash]).expect("readable").is_empty());
            if !held {
                w.rolled_back = true;
                newly += 1;
            }
        }
        if newly > 0 {
            self.stats.writes_rolled_back += newly;
            self.note(format!(
                "{newly} acknowledged write(s) rolled back on every replica"
            ));
        }
    }

    fn attack(&mut self) -> Result<(), String> {
        let Some(i) = self.nodes.iter().position(|n| n.adversarial) else {
            return Ok(());
        };
        if self.nodes[i].session.is_some() {
            return self.deliver();
        }
        let Some(attack) = officer::attack(self, i)? else {
            return Ok(());
        };
        self.stats.attacks += 1;
        session::open(self, i, Some(attack))
    }

    /// Faults off: every node syncs, in turn, until a whole round changes
    /// nothing anywhere.
    fn heal(&mut self) -> Result<(), String> {
        self.faults = false;
        self.note("healing: faults off".into());
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            session::cut(self, id, true);
        }
        while !self.sessions.is_empty() {
            let id = *self.sessions.keys().next().expect("some");
            session::deliver(self, id)?;
        }
        for round in 0..8 {
            self.stats.healing_rounds += 1;
            let before = self.all_heads();
            for i in 0..self.nodes.len() {
                session::open(self, i, None)?;
                let mut guard = 0;
                while let Some(id) = self.nodes[i].session {
                    session::deliver(self, id)?;
                    guard += 1;
                    if guard > 100_000 {
                        return Err(self.fail("a healing session does not end"));
                    }
                }
                // A session whose hub side still has work (it does not
                // here: no cut) would be finished by the loop above.
                check::always(self)?;
            }
            if round > 0 && before == self.all_heads() {
                return Ok(());
            }
        }
        Err(self.fail("the network did not settle within 8 healing rounds"))
    }

    /// Every replica's changes of `doc` (hash, actor, sequence number), for
    /// `SIM_TRACE` runs.
    pub fn dump(&mut self, doc: &str) {
        let mut lines = Vec::new();
        let mut one = |name: String, r: &mut Replica| {
            let cs: Vec<String> = r
                .changes_since(doc, &[])
                .expect("readable")
                .iter()
                .map(|c| {
                    format!(
                        "{}:{}:{}",
                        &c.hash().to_string()[..6],
                        &c.actor_id().to_hex_string()[..6],
                        c.seq()
                    )
                })
                .collect();
            lines.push(format!("{name}: {}", cs.join(" ")));
        };
        one("hub".into(), &mut self.hub.replica);
        for (i, n) in self.nodes.iter_mut().enumerate() {
            one(format!("node {i}"), &mut n.replica);
        }
        eprintln!("changes of {doc}:\n{}", lines.join("\n"));
    }

    fn all_heads(&self) -> Vec<Vec<(String, Vec<ChangeHash>)>> {
        std::iter::once(&self.hub.replica)
            .chain(self.nodes.iter().map(|n| &n.replica))
            .map(heads_of)
            .collect()
    }
}

pub(super) fn heads_of(r: &Replica) -> Vec<(String, Vec<ChangeHash>)> {
    r.doc_ids().map(|d| (d.to_owned(), r.heads(d))).collect()
}

/// Runs one seed: steps with faults, healing, then every check.
pub fn run(cfg: &Config) -> Result<Stats, String> {
    let mut w = World::new(cfg)?;
    // The first backups hold the published reference document.
    w.hub.backups.push(copy_store(&w.hub.store));
    for _ in 0..cfg.steps {
        w.step_once()?;
    }
    w.heal()?;
    check::healed(&mut w)?;
    Ok(w.stats.clone())
}

//! The invariants: [`always`] after every step, [`healed`] once the
//! network has healed.

use htx_core::docs::{self, REFERENCE_DOC, parse_unit_doc_id};
use htx_core::progress::{self, Report};
use htx_core::schema::Record;
use htx_core::units::Hierarchy;
use htx_hub::hub::Hub;

use super::world::{HUB_VERSION, World};

/// Every this many steps, the hub's live progress is compared with a
/// recomputation from scratch (every step would be slow; healing checks
/// it again).
const PROGRESS_EVERY: u64 = 25;

/// What must hold at any time, faults or not.
pub(super) fn always(w: &mut World) -> Result<(), String> {
    // No acknowledged write is gone from every replica, unless a restore
    // rolled all its holders back (marked when it happened).
    for k in 0..w.writes.len() {
        let wr = w.writes[k].clone();
        if wr.rolled_back {
            continue;
        }
        let held = !w.nodes[wr.node]
            .replica
            .known(&wr.doc, &[wr.hash])
            .expect("readable")
            .is_empty()
            || !w
                .hub
                .replica
                .known(&wr.doc, &[wr.hash])
                .expect("readable")
                .is_empty()
            || w.nodes.iter_mut().any(|n| {
                !n.replica
                    .known(&wr.doc, &[wr.hash])
                    .expect("readable")
                    .is_empty()
            });
        if !held {
            return Err(w.fail(&format!(
                "write acknowledged by node {} at step {} ({} in {}) is on no replica",
                wr.node, wr.step, wr.hash, wr.doc
            )));
        }
    }
    // The hub holds only documents some node may write, and the plan.
    let docs: Vec<String> = w.hub.replica.doc_ids().map(str::to_owned).collect();
    for d in &docs {
        if d != REFERENCE_DOC && !w.nodes.iter().any(|n| Hub::writable(&n.enrolment, d)) {
            return Err(w.fail(&format!("the hub holds {d}, which no node may write")));
        }
        let forged: Vec<_> = w.forged.iter().copied().collect();
        if !w
            .hub
            .replica
            .known(d, &forged)
            .expect("readable")
            .is_empty()
        {
            return Err(w.fail(&format!(
                "the hub merged a change forged under another node's actor id in {d}"
            )));
        }
    }
    if w.step.is_multiple_of(PROGRESS_EVERY) {
        live_equals_scratch(w)?;
    }
    Ok(())
}

fn sorted(mut r: Report) -> Report {
    r.unplaced.sort_by(|a, b| a.id.cmp(&b.id));
    r
}

/// Every record of the hub's documents in `docs` (all if None), read from
/// the documents themselves.
fn hub_records(w: &mut World, only: Option<&dyn Fn(&str) -> bool>) -> Vec<Record> {
    let mut out = Vec::new();
    let ids: Vec<String> = w.hub.replica.doc_ids().map(str::to_owned).collect();
    for d in ids {
        if parse_unit_doc_id(&d).is_none() || only.is_some_and(|f| !f(&d)) {
            continue;
        }
        // The hub keeps few documents loaded (see `open_hub_replica`).
        let doc = w.hub.replica.load(&d).expect("readable").expect("listed");
        out.extend(docs::read_records(doc).expect("readable"));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The hub's live progress equals a recomputation from its record index,
/// and the index holds exactly what the documents hold.
fn live_equals_scratch(w: &mut World) -> Result<(), String> {
    let mut index = htx_core::index::read_all(w.hub.store.as_ref())
        .map_err(|e| w.fail(&format!("the hub's record index is unreadable: {e}")))?;
    index.sort_by(|a, b| a.id.cmp(&b.id));
    let from_docs = hub_records(w, None);
    if index != from_docs {
        let ids = |v: &[Record]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        let first = index
            .iter()
            .zip(&from_docs)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("index {a:?}\n documents {b:?}"));
        return Err(w.fail(&format!(
            "the hub's record index ({} records) differs from its documents ({}): {:?}",
            index.len(),
            from_docs.len(),
            first.unwrap_or_else(|| format!(
                "{:?} vs {:?}",
                ids(&index).len(),
                ids(&from_docs).len()
            ))
        )));
    }
    let live = sorted(w.hub.live.report());
    let scratch = sorted(
        progress::recompute(
            &w.hub.plan,
            Hierarchy::builtin(),
            HUB_VERSION,
            live.as_of,
            &index,
        )
        .map_err(|e| e.to_string())?,
    );
    if live != scratch {
        let unit = live
            .units
            .iter()
            .zip(&scratch.units)
            .find(|(a, b)| a != b)
            .map(|(a, b)| {
                format!(
                    "unit {}: live {:?}\n scratch {:?}",
                    a.code, a.figures, b.figures
                )
            });
        return Err(w.fail(&format!(
            "the hub's live progress differs from a recomputation: {}",
            unit.unwrap_or_else(|| "unplaced records differ".into())
        )));
    }
    Ok(())
}

/// After healing: convergence, acknowledged writes everywhere, scope, and
/// progress.
pub(super) fn healed(w: &mut World) -> Result<(), String> {
    always(w)?;
    live_equals_scratch(w)?;
    // Convergence: every node holds exactly the hub's documents in its
    // scope, with identical heads.
    for i in 0..w.nodes.len() {
        let e = w.nodes[i].enrolment.clone();
        let scope = Hub::scope(&w.hub.replica, &e);
        let mine: Vec<String> = w.nodes[i].replica.doc_ids().map(str::to_owned).collect();
        for d in &mine {
            if !Hub::readable(&e, d) {
                return Err(w.fail(&format!("node {i} holds {d}, outside its scope")));
            }
            if !scope.contains(d) {
                return Err(w.fail(&format!("node {i} holds {d}, which the hub does not")));
            }
        }
        for d in &scope {
            if w.nodes[i].replica.heads(d) != w.hub.replica.heads(d) {
                if w.print_trace {
                    w.dump(d);
                }
                return Err(w.fail(&format!(
                    "node {i} and the hub did not converge on {d}: {:?} vs {:?}",
                    w.nodes[i].replica.heads(d),
                    w.hub.replica.heads(d)
                )));
            }
        }
    }
    // Every acknowledged write that a restore did not roll back is at the
    // hub and on every node whose scope holds its document.
    for k in 0..w.writes.len() {
        let wr = w.writes[k].clone();
        if wr.rolled_back {
            continue;
        }
        if w.hub
            .replica
            .known(&wr.doc, &[wr.hash])
            .expect("readable")
            .is_empty()
        {
            return Err(w.fail(&format!(
                "write acknowledged by node {} at step {} never reached the hub",
                wr.node, wr.step
            )));
        }
        for j in 0..w.nodes.len() {
            if Hub::readable(&w.nodes[j].enrolment, &wr.doc)
                && w.nodes[j]
                    .replica
                    .known(&wr.doc, &[wr.hash])
                    .expect("readable")
                    .is_empty()
            {
                return Err(w.fail(&format!(
                    "node {j} lacks the write node {} acknowledged at step {}",
                    wr.node, wr.step
                )));
            }
        }
    }
    // Nothing outside a node's scope was merged: every change at the hub
    // was made by a node that may write its document (or by the hub, in
    // the plan document).
    let docs: Vec<String> = w.hub.replica.doc_ids().map(str::to_owned).collect();
    for d in &docs {
        for c in w.hub.replica.changes_since(d, &[]).expect("readable") {
            let owner = w.actors.get(c.actor_id()).copied();
            let fine = match owner {
                None => false,
                Some(None) => d == REFERENCE_DOC,
                Some(Some(j)) => Hub::writable(&w.nodes[j].enrolment, d),
            };
            if !fine {
                return Err(w.fail(&format!(
                    "the hub holds a change in {d} by {owner:?}, who may not write it"
                )));
            }
        }
    }
    node_figures(w)
}

/// Each node's progress for its own units, computed on the node from what
/// it holds, equals the hub's.
///
/// The hub's figures for a unit also count records outside the node's
/// scope that land in it (records of another hierarchy version, mapped):
/// those the node cannot have. So the node's figures are compared with the
/// hub's computed from the node's scope only, always; and with the hub's
/// answer as a person would ask it (the live view for the hub's version,
/// from scratch for another) wherever no record outside the node's scope
/// counts in its units.
fn node_figures(w: &mut World) -> Result<(), String> {
    let h = Hierarchy::builtin();
    let as_of = w.hub.live.report().as_of;
    let all = hub_records(w, None);
    for i in 0..w.nodes.len() {
        let e = w.nodes[i].enrolment.clone();
        let version = e.unit_version.clone();
        let v = h.version(&version).expect("version");
        let r = &w.nodes[i].replica;
        let mut mine = Vec::new();
        for d in r.doc_ids().filter(|d| parse_unit_doc_id(d).is_some()) {
            mine.extend(docs::read_records(r.doc(d).expect("listed")).expect("readable"));
        }
        let plan = match r.doc(REFERENCE_DOC).and_then(docs::read_reference) {
            Some(reference) => {
                htx_core::plan::Plan::parse(&reference.plan).map_err(|e| e.to_string())?
            }
            None => w.hub.plan.clone(),
        };
        let node =
            progress::recompute(&plan, h, &version, as_of, &mine).map_err(|e| e.to_string())?;
        let in_scope = |d: &str| Hub::readable(&e, d);
        let in_scope_records = hub_records(w, Some(&in_scope));
        let hub_scope = progress::recompute(&w.hub.plan, h, &version, as_of, &in_scope_records)
            .map_err(|e| e.to_string())?;
        let others: Vec<Record> = all
            .iter()
            .filter(|rec| {
                let doc = docs::unit_doc_id(
                    rec.text("unit_version").unwrap_or_default(),
                    rec.text("unit").unwrap_or_default(),
                );
                !in_scope(&doc)
            })
            .cloned()
            .collect();
        let outside = progress::recompute(&w.hub.plan, h, &version, as_of, &others)
            .map_err(|e| e.to_string())?;
        let answer = if version == HUB_VERSION {
            w.hub.live.report()
        } else {
            progress::recompute(&w.hub.plan, h, &version, as_of, &all).map_err(|e| e.to_string())?
        };
        for u in v.units().filter(|u| v.within(&u.code, &e.unit)) {
            let ours = node.unit(&u.code);
            if ours != hub_scope.unit(&u.code) {
                return Err(w.fail(&format!(
                    "node {i}'s figures for {} differ from the hub's over the same records:\n node {:?}\n hub {:?}",
                    u.code,
                    ours.map(|x| &x.figures),
                    hub_scope.unit(&u.code).map(|x| &x.figures)
                )));
            }
            let untouched = outside.unit(&u.code).is_some_and(|x| {
                x.figures
                    .iter()
                    .all(|f| f.total.numerator == 0 && f.total.denominator == 0)
            });
            // Figures only: which nodes recorded there (the sources) is
            // known to the hub for records the node never receives.
            if untouched && ours.map(|x| &x.figures) != answer.unit(&u.code).map(|x| &x.figures) {
                return Err(w.fail(&format!(
                    "node {i}'s figures for {} differ from the hub's answer:\n node {:?}\n hub {:?}",
                    u.code,
                    ours.map(|x| &x.figures),
                    answer.unit(&u.code).map(|x| &x.figures)
                )));
            }
        }
    }
    Ok(())
}

//! Runs a district node's storage churn on redb and on sled, one after the
//! other, and prints a markdown table for BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p htx-core --example storage_churn -- [--docs N] [--edits M] [--seed S]
//!     [--checkpoints C] [--dir PATH] [--only redb|sled] [--no-restarts]
//! ```
//!
//! `--edits` counts edits per document; each edit is two acknowledged
//! writes (the document change, then the sync state). The churn itself is
//! `tests/support/churn.rs`, the same one the disk-bound tests run. The
//! store is closed and reopened after each checkpoint, as a node switched off
//! at night would (`--no-restarts` keeps it open). Usage at each checkpoint
//! goes to stderr.
//!
//! Columns: writes/s counts the time spent writing only; `ratio` is disk
//! over live bytes at the end of the churn, `worst ratio seen` the highest
//! at any checkpoint; `disk after compact()` reopens the store and calls
//! `Store::compact` (a no-op on sled).

#[path = "../tests/support/churn.rs"]
mod churn;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use churn::{Churn, Usage};
use htx_core::storage::{self, Backend};

struct Args {
    churn: Churn,
    dir: Option<PathBuf>,
    backends: Vec<(&'static str, Backend)>,
}

fn parse_args() -> Result<Args, String> {
    let mut churn = Churn {
        docs: 30,
        edits_per_doc: 200,
        seed: 1,
        checkpoints: 8,
        restarts: true,
    };
    let mut dir = None;
    let mut backends = vec![("redb", Backend::Redb), ("sled", Backend::Sled)];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--docs" => churn.docs = number(value()?)?,
            "--edits" => churn.edits_per_doc = number(value()?)?,
            "--seed" => churn.seed = number(value()?)? as u64,
            "--checkpoints" => churn.checkpoints = number(value()?)?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--no-restarts" => churn.restarts = false,
            "--only" => {
                let only: Backend = value()?.parse()?;
                backends.retain(|(_, b)| *b == only);
            }
            "-h" | "--help" => {
                return Err("usage: storage_churn [--docs N] [--edits M per document] [--seed S] [--checkpoints C] \
                            [--dir PATH] [--only redb|sled] [--no-restarts]"
                    .into());
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    Ok(Args {
        churn,
        dir,
        backends,
    })
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// sled's blob files, if any.
fn blobs(home: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(home.join("store.sled").join("blobs")) else {
        return String::new();
    };
    let sizes: Vec<u64> = entries
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .collect();
    format!(" ({} blob files, {})", sizes.len(), mb(sizes.iter().sum()))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Churn {
        docs,
        edits_per_doc,
        seed,
        restarts,
        ..
    } = args.churn;
    let mut rows = Vec::new();
    for &(name, backend) in &args.backends {
        let home = match &args.dir {
            Some(d) => tempfile::tempdir_in(d),
            None => tempfile::tempdir(),
        }
        .expect("a temporary directory");
        let open = || storage::create(backend, home.path()).expect("open the store");
        let started = std::time::Instant::now();
        let mut worst: Option<Usage> = None;
        let outcome = args
            .churn
            .run(open, |u| {
                eprintln!(
                    "{name}: live {}, disk {}, ratio {:.2}{}",
                    mb(u.live),
                    mb(u.disk),
                    u.ratio(),
                    blobs(home.path())
                );
                if worst.is_none_or(|w| u.ratio() > w.ratio()) {
                    worst = Some(u);
                }
            })
            .expect("churn");
        let churned = started.elapsed();
        let compacting = std::time::Instant::now();
        let store = open();
        store.compact().expect("compact");
        let compacted = store.size_on_disk().expect("size on disk");
        drop(store);
        let compacting = compacting.elapsed();
        let end = outcome.end;
        let worst = worst.expect("at least one checkpoint");
        rows.push(format!(
            "| {name} | {:.0} | {} | {} | {:.2}× | {:.2}× | {} ({:.2}×) | {:.1} s / {:.1} s / {:.1} s |",
            outcome.commits_per_sec(),
            mb(end.live),
            mb(end.disk),
            end.ratio(),
            worst.ratio(),
            mb(compacted),
            compacted as f64 / end.live as f64,
            outcome.elapsed.as_secs_f64(),
            churned.as_secs_f64(),
            compacting.as_secs_f64(),
        ));
        eprintln!(
            "{name}: {} commits, {} snapshots over {} B written, largest {}",
            outcome.commits,
            outcome.large_snapshots,
            churn::SLED_BLOB_THRESHOLD,
            mb(outcome.largest_snapshot)
        );
    }
    println!(
        "Churn: {docs} documents × {edits_per_doc} edits (200 B–6 KB of random bytes each), each edit followed by \
         a ~40 B sync-state overwrite; every write acknowledged after the store's durability call (seed {seed}){}.",
        if restarts {
            "; the store closed and reopened after each checkpoint"
        } else {
            ""
        }
    );
    println!();
    println!(
        "| backend | acknowledged writes/s | live bytes | disk bytes | ratio | worst ratio seen | disk after `compact()` | time: writing / whole churn / `compact()` |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    ExitCode::SUCCESS
}

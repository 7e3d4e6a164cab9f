//! # Giving freed memory back to the system
//!
//! The hub frees most of what a sync session allocates, but glibc's malloc
//! keeps freed memory in its arenas rather than giving it back: the hub's
//! resident memory grew by about 0.66 MB a round of 40 syncs while what it
//! held stayed the same (heaptrack; `scale_bench`), and the 100 MB a live
//! view's build passes through stayed resident after it. `malloc_trim(0)`
//! gives back every free page. The hub calls it every `memory_trim_secs`
//! (`hub.toml`): resident memory then stays flat over the rounds
//! (BENCHMARKS.md, "Where the hub's memory went").

use std::time::{Duration, Instant};

/// Gives the pages malloc holds free back to the system; how long it took.
/// Does nothing where the C library is not glibc.
pub fn give_back() -> Duration {
    let t = Instant::now();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes malloc's own locks and releases only
    // memory malloc holds free; it may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
    t.elapsed()
}

/// Calls [`give_back`] every `every`, off the async threads, until `stop`
/// changes. `every` zero: never.
pub async fn give_back_every(every: Duration, mut stop: tokio::sync::watch::Receiver<()>) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is at once
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Ok(took) = tokio::task::spawn_blocking(give_back).await {
            metrics::histogram!("htx_hub_memory_trim_seconds").record(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the C library is glibc, memory freed in the middle of the heap
    /// is resident until it is given back, and not after.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_is_given_back() {
        fn rss_kb() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        // 64 MB in blocks of 64 KB (below malloc's mmap threshold: on its
        // heap), touched; every other one freed, so that the free memory
        // is spread through the heap, not at its top.
        let mut blocks: Vec<Option<Vec<u8>>> =
            (0..1024).map(|_| Some(vec![1u8; 64 << 10])).collect();
        for b in blocks.iter_mut().step_by(2) {
            *b = None;
        }
        let before = rss_kb();
        give_back();
        let after = rss_kb();
        assert!(
            after + 16_000 < before,
            "32 MB freed, RSS {before} kB before, {after} kB after"
        );
        drop(blocks);
    }
}

//! # A slow, lossy link between two network namespaces, in userspace
//!
//! The kernels these tests run on have no `netem` queueing discipline, so
//! the link is emulated here: two network namespaces, each with a TUN
//! device, and a relay in this process that moves every IP packet from one
//! device to the other through a model of the link. The processes on
//! either side are the real binaries, with the kernel's own TCP: a dropped
//! packet is a real loss that TCP notices and retransmits.
//!
//! The model, per direction: packets leave one after the other at the
//! link's rate (serialization), wait in a queue of bounded size (tail
//! drop beyond it), arrive `delay` later, and each is lost with
//! probability `loss` (from a seeded generator: a run repeats). The link
//! can be cut and restored on command ([`LossyLink::set_down`]): while it
//! is down every packet is dropped, also those already on the way.
//!
//! Needs root (network namespaces, `/dev/net/tun`), and `ip` from
//! iproute2; the namespaces are deleted when the link is dropped.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the link does to packets, each way.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    /// Bits per second; 0: unlimited.
    pub rate_bps: u64,
    /// One-way delay.
    pub delay: Duration,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Bytes that may wait to be sent; beyond, packets are dropped.
    pub queue_bytes: u64,
}

impl LinkSpec {
    /// A clean link: no delay, no loss, no rate limit.
    pub const CLEAN: LinkSpec = LinkSpec {
        rate_bps: 0,
        delay: Duration::ZERO,
        loss: 0.0,
        queue_bytes: u64::MAX,
    };
}

#[derive(Default)]
struct Counters {
    /// Bytes delivered a→b and b→a.
    delivered: [AtomicU64; 2],
    packets: [AtomicU64; 2],
    lost: AtomicU64,
    queue_drops: AtomicU64,
    cut_drops: AtomicU64,
}

/// Two namespaces joined by the emulated link: `a` (address
/// [`LossyLink::A_ADDR`]) and `b` ([`LossyLink::B_ADDR`]).
pub struct LossyLink {
    pub a: String,
    pub b: String,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    spec: Arc<std::sync::Mutex<LinkSpec>>,
    counters: Arc<Counters>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Opens a new TUN device named `name` in this process's namespace.
fn open_tun(name: &str) -> std::io::Result<OwnedFd> {
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads a struct ifreq (40 bytes) from the pointer.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, ifr.as_mut_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

fn ip(args: &[&str]) -> std::io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Waits up to 100 ms for a packet on `fd`; None if none came.
fn read_packet(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 100) };
    if n <= 0 {
        return Ok(None);
    }
    // SAFETY: buf is valid for buf.len() bytes.
    let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as usize))
}

fn write_packet(fd: &OwnedFd, p: &[u8]) {
    // SAFETY: p is valid for p.len() bytes. A failed write is a lost packet.
    unsafe { libc::write(fd.as_raw_fd(), p.as_ptr().cast(), p.len()) };
}

impl LossyLink {
    pub const A_ADDR: &'static str = "10.77.0.1";
    pub const B_ADDR: &'static str = "10.77.0.2";

    /// Creates namespaces `htx-{tag}-a` and `htx-{tag}-b` and the link
    /// between them.
    pub fn start(tag: &str, spec: LinkSpec, seed: u64) -> std::io::Result<LossyLink> {
        let (a, b) = (format!("htx-{tag}-a"), format!("htx-{tag}-b"));
        let (ta, tb) = (format!("htx{tag}a"), format!("htx{tag}b"));
        for ns in [&a, &b] {
            let _ = ip(&["netns", "del", ns]);
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let fa = open_tun(&ta)?;
        let fb = open_tun(&tb)?;
        for (ns, dev, addr) in [(&a, &ta, Self::A_ADDR), (&b, &tb, Self::B_ADDR)] {
            ip(&["link", "set", dev, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "mtu", "1500", "up"])?;
        }
        let mut link = LossyLink {
            a,
            b,
            down: Arc::default(),
            stop: Arc::default(),
            spec: Arc::new(std::sync::Mutex::new(spec)),
            counters: Arc::default(),
            threads: Vec::new(),
        };
        let (fa, fb) = (Arc::new(fa), Arc::new(fb));
        for (dir, from, to) in [(0, fa.clone(), fb.clone()), (1, fb, fa)] {
            link.relay(dir, from, to, seed.wrapping_add(dir as u64));
        }
        Ok(link)
    }

    /// One direction: a thread that takes packets in and schedules them,
    /// and one that delivers them on time.
    fn relay(&mut self, dir: usize, from: Arc<OwnedFd>, to: Arc<OwnedFd>, seed: u64) {
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let (down, stop, spec, counters) = (
            self.down.clone(),
            self.stop.clone(),
            self.spec.clone(),
            self.counters.clone(),
        );
        self.threads.push(std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut buf = vec![0u8; 65_536];
            // When the link is next free to send.
            let mut free_at = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let n = match read_packet(&from, &mut buf) {
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    Err(_) => return,
                };
                let s = *spec.lock().expect("spec");
                let now = Instant::now();
                if down.load(Ordering::Relaxed) {
                    counters.cut_drops.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let start = free_at.max(now);
                if s.rate_bps > 0 {
                    let backlog = (start - now).as_secs_f64() * s.rate_bps as f64 / 8.0;
                    if backlog > s.queue_bytes as f64 {
                        counters.queue_drops.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    free_at = start + Duration::from_secs_f64(n as f64 * 8.0 / s.rate_bps as f64);
                } else {
                    free_at = now;
                }
                if s.loss > 0.0 && rng.random_bool(s.loss) {
                    counters.lost.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if tx.send((free_at + s.delay, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }));
        let (down, stop, counters) = (self.down.clone(), self.stop.clone(), self.counters.clone());
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((at, p)) = rx.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if down.load(Ordering::Relaxed) {
                    counters.cut_drops.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                counters.delivered[dir].fetch_add(p.len() as u64, Ordering::Relaxed);
                counters.packets[dir].fetch_add(1, Ordering::Relaxed);
                write_packet(&to, &p);
            }
        }));
    }

    /// Cuts the link (every packet dropped) or restores it.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// The switch [`LossyLink::set_down`] turns, for another task.
    pub fn down_handle(&self) -> Arc<AtomicBool> {
        self.down.clone()
    }

    /// Changes what the link does from now on.
    pub fn set_spec(&self, spec: LinkSpec) {
        *self.spec.lock().expect("spec") = spec;
    }

    /// IP bytes delivered a→b and b→a so far.
    pub fn delivered(&self) -> (u64, u64) {
        (
            self.counters.delivered[0].load(Ordering::Relaxed),
            self.counters.delivered[1].load(Ordering::Relaxed),
        )
    }

    /// Packets lost at random, dropped by a full queue, dropped while cut.
    pub fn drops(&self) -> (u64, u64, u64) {
        (
            self.counters.lost.load(Ordering::Relaxed),
            self.counters.queue_drops.load(Ordering::Relaxed),
            self.counters.cut_drops.load(Ordering::Relaxed),
        )
    }

    /// A command that runs `program` (a path) in namespace `ns`.
    pub fn command(ns: &str, program: &std::path::Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd.env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

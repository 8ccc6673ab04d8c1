//! The placement probe: which placement of this VM's two vCPUs a
//! measurement ran in.
//!
//! The host moves the two vCPUs between placements every few seconds to
//! minutes, and the placement changes the time of a cache-line transfer
//! between them from about 29 to about 480 ns. A ratio is therefore only
//! meaningful between two runs made in one placement: scripts/bench-paired.sh
//! runs this probe before and after each pair and keeps a pair for a
//! placement only if both probes name it.
//!
//! The probe measures three figures, well under 0.1 s in all on a quiet
//! machine (each half stops after `LIMIT`):
//!
//! - `pp_ns`: one-way latency of a cache-line ping-pong between two
//!   processes (a Release store of a counter, the other side spinning on an
//!   Acquire load of it, and back on a line 256 bytes away, so the two
//!   words share neither a line nor an adjacent-line prefetch pair).
//!   `PP_BLOCKS` blocks of `PP_ROUNDS` round trips; the figure is the
//!   median over blocks of the block's time / (2 x rounds), so a
//!   preemption spoils one block, not the figure. It is the time of one
//!   line transfer between the two vCPUs, and it names the placement.
//! - `ring_mps`: the bare shared-mapping ring (shmring.rs), 64 B, one
//!   message at a time, `RING_N` messages (a few milliseconds): printed to
//!   check the placements against, not used to name them.
//! - `cpu_share`: the CPU time each process got during the ring run as a
//!   share of its own loop's wall time (getrusage), the smaller of the two.
//!   Both sides busy-poll, so anything well under 1 means a third process
//!   ran on one of the two vCPUs: the figures then say nothing about the
//!   placement, and the probe says `busy`.
//!
//! The figures and the placement they name are printed as
//! `RESULT {"kind":"probe",...}`; the thresholds are in [`classify`].

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use memmap2::MmapMut;

use crate::{env, say, scratch, shmring, Peer, SLOTS};

const PP_ROUNDS: u64 = 1000;
const PP_BLOCKS: usize = 21;
const RING_N: usize = 1_000_000;
/// Each half of the probe stops after this long (a probe on a machine
/// where a third process runs can otherwise take many seconds); it then
/// says `busy` anyway.
const LIMIT: Duration = Duration::from_millis(500);
/// Offsets of the words in the probe file: the two ping-pong counters, the
/// child's CPU share of its ring loop (f64 bits), its "done" flag, and the
/// number of ring messages the parent sent (0 until it knows).
const PING: usize = 0;
const PONG: usize = 256;
const SHARE: usize = 512;
const DONE: usize = 768;
const COUNT: usize = 1024;
/// A ping that ends the ping-pong early.
const STOP: u64 = u64::MAX;

/// A placement name from a probe's figures. The line transfer time falls
/// in four clusters on this VM, with wide gaps between them (the probes of
/// scripts/bench-paired.sh's runs, in BENCHMARKS.md "Protocol v2, paired"):
///
/// - `close`: under 45 ns (observed 27-39 ns, the probe's ring at 175 M msg/s
///   median): seen for a few seconds at a time;
/// - `near`: 45 to 160 ns (observed 56-86 ns, ring 141 median): most of the
///   time;
/// - `far`: 160 to 380 ns (observed 235-335 ns, ring 70 median);
/// - `farthest`: 380 ns or more (observed 434-630 ns, ring 72 median): rare;
/// - `busy`: either process of the ring run got less than 0.9 of its wall
///   time on a CPU (another process shared the two vCPUs), whatever the
///   figures.
///
/// The ring figure is not used: within one placement it moves with the
/// other tenants of the host; it is printed to check the clusters.
pub fn classify(pp_ns: f64, _ring_mps: f64, cpu_share: f64) -> &'static str {
    if cpu_share < 0.9 {
        "busy"
    } else if pp_ns < 45.0 {
        "close"
    } else if pp_ns < 160.0 {
        "near"
    } else if pp_ns < 380.0 {
        "far"
    } else {
        "farthest"
    }
}

fn map(path: &std::path::Path, create: bool) -> MmapMut {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)
        .expect("probe file");
    if create {
        f.set_len(4096).expect("size");
    }
    // SAFETY: a bench-private file, touched only through the atomic words
    // below.
    unsafe { MmapMut::map_mut(&f) }.expect("map")
}

fn word(m: &MmapMut, off: usize) -> &AtomicU64 {
    // SAFETY: PING, PONG, SHARE, DONE and COUNT are inside the 4096-byte mapping
    // and 8-aligned (the mapping is page-aligned).
    unsafe { &*(m.as_ptr().add(off) as *const AtomicU64) }
}

/// User plus system CPU time of this process, in seconds.
fn cpu_secs() -> f64 {
    // SAFETY: rusage is plain old data; all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The child: answer every ping with the same count on the pong word, then
/// consume the ring's messages and report its CPU share of that loop.
pub fn child() {
    let m = map(std::path::Path::new(&env("PATH")), false);
    let ring = shmring::Ring::open(std::path::Path::new(&env("RING")));
    let (ping, pong) = (word(&m, PING), word(&m, PONG));
    say("ready");
    let total = PP_ROUNDS * PP_BLOCKS as u64;
    let mut seen = 0;
    while seen < total {
        // SYNC POINT: pairs with the parent's Release store of ping.
        let v = ping.load(Acquire);
        if v == STOP {
            break;
        }
        if v != seen {
            seen = v;
            // SYNC POINT: pairs with the parent's Acquire load of pong.
            pong.store(v, Release);
        }
    }
    let mut buf = [0u8; 64];
    let (c0, t) = (cpu_secs(), Instant::now());
    let mut got = 0;
    while got < RING_N {
        if ring.pop_batch(&mut buf, 1) == 1 {
            got += 1;
        } else {
            // Empty: did the parent stop early? SYNC POINT: pairs with its
            // Release store of COUNT after its last push.
            let n = word(&m, COUNT).load(Acquire) as usize;
            if n != 0 && got >= n {
                break;
            }
        }
    }
    let share = (cpu_secs() - c0) / t.elapsed().as_secs_f64();
    word(&m, SHARE).store(share.to_bits(), Relaxed);
    // SYNC POINT: pairs with the parent's Acquire load of DONE (it then
    // reads SHARE).
    word(&m, DONE).store(1, Release);
}

/// One probe: returns (pp_ns, ring_mps, cpu_share) and prints them.
pub fn run() -> (f64, f64, f64) {
    let dir = scratch();
    let p = dir.path().join("probe");
    let rp = dir.path().join("ring");
    let m = map(&p, true);
    let ring = shmring::Ring::create(&rp, SLOTS, 64);
    let (ping, pong) = (word(&m, PING), word(&m, PONG));
    let mut c = Peer::spawn(
        "probe",
        &[
            ("PATH", p.display().to_string()),
            ("RING", rp.display().to_string()),
        ],
    );
    c.expect("ready");
    let mut blocks = Vec::with_capacity(PP_BLOCKS);
    let mut i = 0;
    let start = Instant::now();
    'blocks: for _ in 0..PP_BLOCKS {
        let t = Instant::now();
        for _ in 0..PP_ROUNDS {
            i += 1;
            // SYNC POINT: pairs with the child's Acquire load of ping.
            ping.store(i, Release);
            // SYNC POINT: pairs with the child's Release store of pong.
            let mut spins = 0u32;
            while pong.load(Acquire) != i {
                spins = spins.wrapping_add(1);
                // A clock read only when one round trip is already slow.
                if spins.is_multiple_of(65536) && start.elapsed() > LIMIT {
                    ping.store(STOP, Release);
                    break 'blocks;
                }
            }
        }
        blocks.push(t.elapsed().as_nanos() as f64 / (2 * PP_ROUNDS) as f64);
    }
    blocks.sort_by(|a, b| a.total_cmp(b));
    let pp_ns = match blocks.len() {
        0 => start.elapsed().as_nanos() as f64 / (2 * i) as f64,
        k => blocks[k / 2],
    };
    let msg = [0x5Au8; 64];
    let (c0, t) = (cpu_secs(), Instant::now());
    let mut sent = 0;
    while sent < RING_N {
        ring.push_batch(&msg, 1);
        sent += 1;
        if sent.is_multiple_of(65536) && t.elapsed() > LIMIT {
            break;
        }
    }
    // SYNC POINT: pairs with the child's Acquire load of COUNT.
    word(&m, COUNT).store(sent as u64, Release);
    // SYNC POINT: pairs with the child's Release store of DONE.
    while word(&m, DONE).load(Acquire) == 0 {
        std::hint::spin_loop();
    }
    let wall = t.elapsed().as_secs_f64();
    let mine = (cpu_secs() - c0) / wall;
    let theirs = f64::from_bits(word(&m, SHARE).load(Relaxed));
    c.finish();
    let ring_mps = sent as f64 / wall / 1e6;
    let cpu_share = if sent < RING_N || blocks.len() < PP_BLOCKS {
        0.0
    } else {
        mine.min(theirs)
    };
    let place = classify(pp_ns, ring_mps, cpu_share);
    println!(
        "probe      line transfer {pp_ns:>6.1} ns  ring 64 B {ring_mps:>6.2} M msg/s  cpu {cpu_share:.2}  placement {place}"
    );
    println!(
        "RESULT {{\"kind\":\"probe\",\"pp_ns\":{pp_ns:.1},\"ring_mps\":{ring_mps:.2},\"cpu_share\":{cpu_share:.2},\"placement\":\"{place}\"}}"
    );
    (pp_ns, ring_mps, cpu_share)
}

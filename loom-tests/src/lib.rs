//! Loom models of shmq's racing transitions (docs/design.md §4, §5, §9, §10).
//!
//! The models live in `tests/` and run the very core the queue runs
//! ([`shmq::internal::Ring`]) on heap memory with loom's atomics:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=4 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p shmq-loom-tests --release
//! ```
//!
//! Each model must be able to fail: `run-mutations.sh` builds the core with
//! one `--cfg shmq_mutation="NAME"` at a time and checks that the model named
//! for it in design.md §10 fails.
//!
//! Time is explicit: every operation takes `now` in milliseconds, so a model
//! states "the holder acks at 20, the receiver sweeps at 30" and loom explores
//! every interleaving of those calls.
#![cfg(loom)]

pub use loom;

use loom::sync::Arc;
use shmq::internal::{HeapMemory, Params, Ring};
use shmq::Delivery;
use std::sync::Arc as StdArc;

/// The pid every model's ring records as owner.
pub const PID: u32 = 4242;
/// The identity of every model's queue (receipts carry it).
pub const QUEUE: u64 = 0x51;
/// Lease length the models use unless they say otherwise.
pub const VT: u64 = 10;
/// Claim timeout of the models' rings.
pub const CLAIM_MS: u64 = 10;
/// A payload that spans two 8-byte words, so a torn copy is visible.
pub const MSG_A: &[u8; 16] = b"alpha-0123456789";
/// Another two-word payload.
pub const MSG_B: &[u8; 16] = b"bravo-9876543210";

/// A core over `slots` free heap slots of 16 payload bytes.
pub fn ring(slots: u32, max_receives: u32) -> Arc<Ring<HeapMemory>> {
    ring_with(slots, max_receives, |_| true)
}

/// As [`ring`], with the given liveness oracle for owner pids.
pub fn ring_with(
    slots: u32,
    max_receives: u32,
    is_alive: fn(u32) -> bool,
) -> Arc<Ring<HeapMemory>> {
    Arc::new(Ring::new(
        HeapMemory::new(slots, 16),
        params(max_receives, is_alive),
    ))
}

/// The parameters of every model's core: 16-byte slots, no checksums.
fn params(max_receives: u32, is_alive: fn(u32) -> bool) -> Params {
    Params {
        slot_size: 16,
        max_receives,
        visibility_ms: VT,
        claim_ms: CLAIM_MS,
        checksums: false,
        identity: QUEUE,
        pid: PID,
        is_alive,
        wake: shmq::internal::no_wake,
    }
}

/// One process's core over memory that other processes' cores share.
pub type ProcessRing = Ring<StdArc<HeapMemory>>;

/// Two processes' views of one queue: two cores over the same memory of
/// `slots` free heap slots, each with its own process memory (its last
/// reading of `fill`, its guess of the next ticket, ...).
pub fn two_processes(slots: u32) -> (Arc<ProcessRing>, Arc<ProcessRing>) {
    let mem = StdArc::new(HeapMemory::new(slots, 16));
    let p = params(5, |_| true);
    (
        Arc::new(Ring::new(mem.clone(), p)),
        Arc::new(Ring::new(mem, p)),
    )
}

/// One receive attempt: the main path, then a sweep of the whole ring.
pub fn receive(r: &Ring<HeapMemory>, now: u64, buf: &mut Vec<u8>) -> Option<Delivery> {
    r.try_receive(now, VT, buf, false, u64::from(r.slot_count()))
}

/// Run `a` and `b` concurrently, one on the model's main thread and one on a
/// spawned thread; `swap` says which. Models call [`model_both`] so that each
/// role runs first once: loom 0.7's DPOR remembers only the last access to an
/// atomic, so a load that precedes another thread's load-then-CAS of the same
/// word is never reordered after that CAS (tokio-rs/loom#166, #392). Letting
/// each side run first covers both directions of every such race.
pub fn race<A, B, FA, FB>(swap: bool, a: FA, b: FB) -> (A, B)
where
    FA: FnOnce() -> A + Send + 'static,
    FB: FnOnce() -> B + Send + 'static,
    A: Send + 'static,
    B: Send + 'static,
{
    if swap {
        let t = loom::thread::spawn(b);
        let ra = a();
        (ra, t.join().unwrap())
    } else {
        let t = loom::thread::spawn(a);
        let rb = b();
        (t.join().unwrap(), rb)
    }
}

/// [`model`] twice: with `f(false)` and with `f(true)` (see [`race`]).
pub fn model_both<F>(f: F)
where
    F: Fn(bool) + Sync + Send + 'static,
{
    let f = std::sync::Arc::new(f);
    for swap in [false, true] {
        let f = f.clone();
        model(move || f(swap));
    }
}

/// Run `f` under loom. The preemption bound comes from `LOOM_MAX_PREEMPTIONS`
/// and defaults to 2, so an unset variable cannot make a model run for hours.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let start = std::time::Instant::now();
    b.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    // Shown with `--nocapture`: how much of the interleaving space was explored.
    println!(
        "{}: {} interleavings in {:.1?}",
        std::thread::current().name().unwrap_or("model"),
        runs.load(std::sync::atomic::Ordering::Relaxed),
        start.elapsed()
    );
}

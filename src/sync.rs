//! The one door to atomics: std's normally, loom's under `--cfg loom`.
//!
//! All code in the crate reaches atomics and fences only through this module,
//! so the loom models in `loom-tests/` run exactly the code the real queue runs
//! (the same facade tokio and thingbuf use).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A hint inside a spin loop; under loom, a yield so the model can progress.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// A SeqCst load that is the load half of a store-then-load (Dekker) pair:
/// each side writes its word, then loads the other's, and at least one of
/// them must see the other's write. The real build compiles a plain SeqCst
/// load, which C++'s single total order of SeqCst operations makes enough.
/// Loom treats SeqCst loads as Acquire loads (its README, Limitations), so
/// it would report every such pair as a race; under loom a SeqCst fence
/// before the load gives the model the guarantee the real code has (the
/// store-buffering litmus test with fences), and nothing more.
#[inline]
pub(crate) fn dekker_load(word: &AtomicU64) -> u64 {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
    word.load(Ordering::SeqCst)
}

/// [`dekker_load`] of a 32-bit word (the futex words).
#[inline]
pub(crate) fn dekker_load32(word: &AtomicU32) -> u32 {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
    word.load(Ordering::SeqCst)
}

/// Whether a [`prefetch`] is for writing or for reading.
#[derive(Clone, Copy)]
pub(crate) enum For {
    /// `prefetchw`: the line comes exclusive, ready for a store or a CAS.
    Write,
    /// `prefetcht0`: the line comes shared, ready for loads.
    Read,
}

/// Ask the CPU to bring the cache line at `at` into this core's cache,
/// without waiting for it. A sender prefetches for writing the lines of the
/// slot its next send will claim, so that the claim's CAS does not wait for
/// the lines the receiver's ack left in the other core (§5.1); a receiver
/// that learns of a message prefetches its payload line for reading, so
/// that its transfer runs beside the control line's instead of after the
/// lease CAS (§5.2). Only a hint: it cannot fault whatever the address,
/// reads and writes no memory, and CPUs without `prefetchw` treat its
/// opcode as a no-op. Elsewhere, and under loom, nothing.
#[inline]
pub(crate) fn prefetch(at: *const u8, kind: For) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: a prefetch is a hint to the cache: it dereferences nothing
    // (no fault, whatever `at` is), touches no stack and no flags.
    unsafe {
        match kind {
            For::Write => core::arch::asm!(
                "prefetchw [{0}]",
                in(reg) at,
                options(nostack, preserves_flags, readonly)
            ),
            For::Read => core::arch::asm!(
                "prefetcht0 [{0}]",
                in(reg) at,
                options(nostack, preserves_flags, readonly)
            ),
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = (at, kind);
}

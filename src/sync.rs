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

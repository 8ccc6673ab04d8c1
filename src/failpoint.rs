//! Named crash points for the torture tests (docs/design.md §7).
//!
//! With the `failpoints` feature, `failpoint!("name")` aborts the process when
//! the environment variable `SHMQ_FAILPOINT` equals `name` (and, if
//! `SHMQ_FAILPOINT_SKIP=k` is set, only on the k+1-th hit). Without the
//! feature it compiles to nothing.

/// Every crash point the library defines, in protocol order.
pub const FAILPOINTS: &[&str] = &[
    "send.after_claim",
    "send.mid_payload",
    "send.before_publish",
    "receive.after_lease",
    "ack.inside",
    "nack.inside",
    "deadletter.inside",
    "redrive.inside",
    "purge.inside",
    "recover.inside",
];

#[cfg(all(feature = "failpoints", not(loom)))]
pub(crate) fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let armed = ARMED.get_or_init(|| {
        let name = std::env::var("SHMQ_FAILPOINT").ok()?;
        let skip = std::env::var("SHMQ_FAILPOINT_SKIP")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Some((name, skip))
    });
    if let Some((armed, skip)) = armed {
        if armed == name && HITS.fetch_add(1, Ordering::Relaxed) >= *skip {
            // The point of a failpoint: die here, as SIGKILL would, with no unwinding.
            std::process::abort();
        }
    }
}

macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(all(feature = "failpoints", not(loom)))]
        $crate::failpoint::hit($name);
    };
}
pub(crate) use failpoint;

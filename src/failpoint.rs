//! Named crash points for the torture tests (docs/design.md §7).
//!
//! With the `failpoints` feature, `failpoint!("name")` aborts the process when
//! the environment variable `SHMQ_FAILPOINT` equals `name` (and, if
//! `SHMQ_FAILPOINT_SKIP=k` is set, only on the k+1-th hit). Without the
//! feature it compiles to nothing.
//!
//! `SHMQ_FAILPOINT_ACTION=stop` stops the process there instead
//! (`raise(SIGSTOP)`): it goes on where it was when someone sends SIGCONT.
//! That is a stalled process rather than a dead one, the case of §7's
//! "stopped (not dead) processes" (a zombie sender resuming after its claim
//! was abandoned). A stopping point fires once per process.

/// Every crash point the library defines, in protocol order.
pub const FAILPOINTS: &[&str] = &[
    "create.before_link",
    "send.before_owner",
    "send.after_claim",
    "send.mid_payload",
    "send.before_publish",
    "receive.after_lease",
    "ack.before",
    "nack.before",
    "deadletter.before",
    "deadletter.before_move",
    "deadletter.after_move",
    "redrive.before",
    "purge.before",
    "recover.before",
    "sync.before",
    "sync.after",
];

#[cfg(all(feature = "failpoints", not(loom)))]
pub(crate) fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    if let Some(h) = POINT_HOOK.read().unwrap_or_else(|e| e.into_inner()).clone() {
        h(name);
    }
    static ARMED: OnceLock<Option<(String, u64, bool)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let armed = ARMED.get_or_init(|| {
        let name = std::env::var("SHMQ_FAILPOINT").ok()?;
        let skip = std::env::var("SHMQ_FAILPOINT_SKIP")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let stop = std::env::var("SHMQ_FAILPOINT_ACTION").is_ok_and(|a| a == "stop");
        Some((name, skip, stop))
    });
    if let Some((armed, skip, stop)) = armed {
        if armed == name {
            let hit = HITS.fetch_add(1, Ordering::Relaxed);
            if *stop && hit == *skip {
                // SAFETY: raise(2) with a valid signal number; SIGSTOP cannot be
                // caught, so this only suspends the process until SIGCONT.
                unsafe { libc::raise(libc::SIGSTOP) };
            } else if !*stop && hit >= *skip {
                // The point of a failpoint: die here, as SIGKILL would, with no unwinding.
                std::process::abort();
            }
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

/// A function that stands in for `fdatasync` of the queue file at `path`
/// (tests built with the `failpoints` feature: the power-cut simulator's
/// "disk", injected sync errors).
#[cfg(all(feature = "failpoints", not(loom)))]
pub type SyncHook = Box<dyn Fn(&std::path::Path) -> std::io::Result<()> + Send + Sync>;

#[cfg(all(feature = "failpoints", not(loom)))]
static SYNC_HOOK: std::sync::RwLock<Option<std::sync::Arc<SyncHook>>> =
    std::sync::RwLock::new(None);

/// Install (or, with `None`, remove) the process's sync hook: every sync
/// of every queue in this process calls it instead of `fdatasync`.
#[cfg(all(feature = "failpoints", not(loom)))]
pub fn set_sync_hook(hook: Option<SyncHook>) {
    let mut h = SYNC_HOOK.write().unwrap_or_else(|e| e.into_inner());
    *h = hook.map(std::sync::Arc::new);
}

/// The hook's answer for a sync of `path`, if one is installed.
#[cfg(all(feature = "failpoints", not(loom)))]
pub(crate) fn sync_hook(path: &std::path::Path) -> Option<std::io::Result<()>> {
    let h = SYNC_HOOK
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()?;
    Some(h(path))
}

/// A function every failpoint calls with its name, in the thread that
/// reaches it (the power-cut simulator snapshots the file there: the states
/// between a send's claim and its publish).
#[cfg(all(feature = "failpoints", not(loom)))]
pub type PointHook = Box<dyn Fn(&str) + Send + Sync>;

#[cfg(all(feature = "failpoints", not(loom)))]
static POINT_HOOK: std::sync::RwLock<Option<std::sync::Arc<PointHook>>> =
    std::sync::RwLock::new(None);

/// Install (or, with `None`, remove) the process's failpoint hook.
#[cfg(all(feature = "failpoints", not(loom)))]
pub fn set_point_hook(hook: Option<PointHook>) {
    let mut h = POINT_HOOK.write().unwrap_or_else(|e| e.into_inner());
    *h = hook.map(std::sync::Arc::new);
}

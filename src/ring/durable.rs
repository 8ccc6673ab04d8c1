//! Group commit across processes (docs/design.md §12): a durable sender
//! waits, after its publish, for a sync that began after it; one waiter at
//! a time runs that sync, and the others park until it covers them.

use super::*;

/// Bit 63 of `done`: a sync failed. Sticky until `recover` clears it
/// (§12.3).
pub const SYNC_FAILED: u64 = 1 << 63;
/// The syncer's role lasts this many seconds (at one-second granularity:
/// two to three); after that a waiter may run a sync beside it.
pub const SYNCER_LEASE_S: u64 = 2;
/// The longest a durable waiter parks before it looks at `done` and the
/// syncer again (a syncer killed before its wake costs at most this).
pub const SYNC_PARK_MS: u64 = 20;

const HOLDER_SHIFT: u32 = 36;
const DEADLINE_MASK: u64 = (1 << HOLDER_SHIFT) - 1;

/// How a waiter runs a sync and parks: the file's `fdatasync` and a futex
/// wait for the queue; the models' own for loom.
pub trait SyncOps {
    /// Make every store to the queue's memory made before the call durable.
    /// `Err(errno)` on failure.
    fn sync(&self) -> std::result::Result<(), i32>;
    /// Sleep while `*word == expected`, at most `ms` milliseconds.
    fn park(&self, word: &AtomicU32, expected: u32, ms: u64);
    /// The host clock, in milliseconds.
    fn now_ms(&self) -> u64;
}

impl<M: Memory> Ring<M> {
    /// The sync epoch that covers everything this thread published before
    /// the call (§12.2). Call it after the publish.
    pub fn sync_target(&self) -> u64 {
        // SYNC POINT (§12.2): the load half of a Dekker pair with the
        // syncer's `begun.fetch_add` and the fence after it: this thread's
        // publish (a SeqCst CAS) came before this load, so either this load
        // sees the epoch that syncer took (and waits for a later one), or
        // the syncer's sync sees the publish.
        let begun = dekker_load(&self.mem.durability().begun);
        // Mutant (design.md §10): the sync running now counts, though it
        // may have begun before the publish.
        #[cfg(shmq_mutation = "sync_target_running")]
        return begun;
        #[cfg(not(shmq_mutation = "sync_target_running"))]
        begun.wrapping_add(1)
    }

    /// The errno of the sync failure this queue recorded, if any (§12.3).
    pub fn sync_failure(&self) -> Option<i32> {
        let d = self.mem.durability();
        if d.done.load(Acquire) & SYNC_FAILED == 0 {
            return None;
        }
        Some(match d.errno.load(Acquire) {
            e @ 1..=4095 => e as i32,
            // Not yet stored, or garbage: the failure is what counts.
            _ => libc_eio(),
        })
    }

    /// Wait until a sync of epoch `target` or later has completed, running
    /// it when nobody else is (§12.2). `Err(errno)` when a sync failed,
    /// now or before (§12.3).
    pub fn wait_synced(&self, target: u64, ops: &dyn SyncOps) -> std::result::Result<(), i32> {
        let d = self.mem.durability();
        d.waits.fetch_add(1, Relaxed);
        loop {
            let done = dekker_load(&d.done);
            if done & SYNC_FAILED != 0 {
                return Err(self.sync_failure().unwrap_or_else(libc_eio));
            }
            let covered = done >= target;
            if covered {
                return Ok(());
            }
            let now = ops.now_ms();
            // No data rides on the role word: it only says who syncs. The
            // Acquire load and AcqRel CAS keep its holder and deadline read
            // whole against the CAS that wrote them; correctness never
            // depends on the role being exclusive (§12.2).
            let s = d.syncer.load(Acquire);
            if self.syncer_free(s, now) {
                let mine = u64::from(self.claimer()) << HOLDER_SHIFT
                    | ((now / 1000 + SYNCER_LEASE_S) & DEADLINE_MASK);
                if d.syncer.compare_exchange(s, mine, AcqRel, Relaxed).is_ok() {
                    self.run_sync(ops);
                    // Give the role back, unless a waiter took it over.
                    let _ = d.syncer.compare_exchange(mine, 0, Release, Relaxed);
                    self.wake_sync_waiters();
                    continue;
                }
            }
            // Park: set the waiter bit, look at `done` once more, sleep.
            let w = d.wake.load(Relaxed);
            let w = if w & 1 == 0 {
                match d.wake.compare_exchange(w, w | 1, SeqCst, Relaxed) {
                    Ok(_) => w | 1,
                    Err(_) => continue,
                }
            } else {
                w
            };
            // SYNC POINT: the load half of a Dekker pair with the syncer's
            // raise of `done` and its SeqCst load of `wake` in
            // `wake_sync_waiters`: either this load sees the new `done`,
            // or the syncer sees the waiter bit and wakes.
            let done = dekker_load(&d.done);
            if done & SYNC_FAILED != 0 || done >= target {
                continue;
            }
            ops.park(&d.wake, w, SYNC_PARK_MS);
        }
    }

    /// Whether the syncer's role is free to take: nobody holds it, its
    /// holder is gone, or its deadline passed.
    fn syncer_free(&self, s: u64, now: u64) -> bool {
        if s == 0 {
            return true;
        }
        let holder = (s >> HOLDER_SHIFT) as u32;
        let deadline_s = s & DEADLINE_MASK;
        now / 1000 > deadline_s || self.holder_gone(holder, now)
    }

    /// One sync round: take an epoch, sync, record the outcome.
    fn run_sync(&self, ops: &dyn SyncOps) {
        let d = self.mem.durability();
        #[cfg(not(shmq_mutation = "sync_epoch_after"))]
        let e = d.begun.fetch_add(1, SeqCst).wrapping_add(1);
        // SYNC POINT: the fence half of the Dekker pair of `sync_target`:
        // every publish whose sender read `begun` below `e` is visible to
        // the sync below.
        fence(SeqCst);
        failpoint!("sync.before");
        let r = ops.sync();
        // Mutant (design.md §10): the epoch is taken after the sync, so a
        // publish during the sync passes for covered.
        #[cfg(shmq_mutation = "sync_epoch_after")]
        let e = d.begun.fetch_add(1, SeqCst).wrapping_add(1);
        match r {
            Ok(()) => {
                d.syncs.fetch_add(1, Relaxed);
                let mut cur = d.done.load(Relaxed);
                // SYNC POINT: the SeqCst raise of `done` is the store half of
                // the Dekker pair with a waiter's waiter bit and its reload of
                // `done` (`wait_synced`); `wake_sync_waiters` is the load half.
                while cur & SYNC_FAILED == 0 && cur < e {
                    match d.done.compare_exchange_weak(cur, e, SeqCst, Relaxed) {
                        Ok(_) => break,
                        Err(c) => cur = c,
                    }
                }
            }
            Err(errno) => {
                // SYNC POINT: this Relaxed store is published by the SeqCst
                // (so Release) `fetch_or` below; a waiter that sees FAILED
                // in `done` reads the errno with Acquire in `sync_failure`.
                d.errno.store(errno.max(1) as u64, Relaxed);
                // Mutant (design.md §10): the failure is not recorded, and
                // the next sync's success is trusted.
                #[cfg(not(shmq_mutation = "sync_error_retry"))]
                d.done.fetch_or(SYNC_FAILED, SeqCst);
            }
        }
        failpoint!("sync.after");
    }

    /// Wake the durable waiters parked on `wake`, if any (§12.2).
    fn wake_sync_waiters(&self) {
        let wake = &self.mem.durability().wake;
        // SYNC POINT: the store-then-load half of the pair in `wait_synced`.
        let w = dekker_load32(wake);
        if w & 1 != 0
            && wake
                .compare_exchange(w, w.wrapping_add(2) & !1, SeqCst, Relaxed)
                .is_ok()
        {
            (self.p.wake)(wake);
        }
    }

    /// Clear a recorded sync failure (§12.3): `redirty` writes every page
    /// again, then one sync; the failure is cleared only if it succeeds.
    /// `Ok(false)`: there was none.
    pub fn clear_sync_failure(
        &self,
        redirty: &dyn Fn(),
        ops: &dyn SyncOps,
    ) -> std::result::Result<bool, i32> {
        let d = self.mem.durability();
        if d.done.load(Acquire) & SYNC_FAILED == 0 {
            return Ok(false);
        }
        redirty();
        let e = d.begun.fetch_add(1, SeqCst).wrapping_add(1);
        fence(SeqCst);
        ops.sync()?;
        d.syncs.fetch_add(1, Relaxed);
        let mut cur = d.done.load(Relaxed);
        while cur & SYNC_FAILED != 0 {
            let next = (cur & !SYNC_FAILED).max(e);
            match d.done.compare_exchange_weak(cur, next, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(c) => cur = c,
            }
        }
        d.errno.store(0, Relaxed);
        self.wake_sync_waiters();
        Ok(true)
    }

    /// The group-commit counters: (syncs completed, durable waits, epoch
    /// completed).
    pub fn sync_counters(&self) -> (u64, u64, u64) {
        let d = self.mem.durability();
        (
            d.syncs.load(Relaxed),
            d.waits.load(Relaxed),
            d.done.load(Relaxed) & !SYNC_FAILED,
        )
    }
}

fn libc_eio() -> i32 {
    5 // EIO: the same on every Linux architecture.
}

//! The lock-free core: slots, cursors and every transition of docs/design.md.
//!
//! # Algorithm
//!
//! A fixed array of slots, each with a state word (`time_ms << 24 | gen << 4
//! | code`). Every transition is one CAS of that word from exactly the value
//! read to the next state, the next generation (mod 2^20) and the new time.
//! The side word `aux` (receive count and holder) is written by a second CAS
//! right after, tagged with the generation it belongs to, so a stale write
//! can never pass for a later one. Because every transition but an extend
//! bumps the generation, a receipt `(slot, gen, id)` fences a lease against
//! anyone who held the slot before; the message id in it keeps a wrapped
//! generation from passing for another message's lease. A process that dies
//! between any two instructions leaves each slot in the state before or
//! after one CAS. No step waits for another process.
//!
//! Senders take tickets from `fill` for slots they have seen free and claim
//! the slot `ticket % N`, stepping over slots still in use. Receivers follow
//! the tickets with `rcur` (best-effort FIFO); messages that become visible
//! again behind `rcur` (nacks, expired leases, redrives, delays) are found
//! by the *sweep*, a second cursor that every receive advances by a bounded
//! number of slots.
//!
//! The core is generic over [`Memory`]: the queue runs it on the file mapping,
//! the loom models and unit tests on the heap. Time is always a parameter
//! (`now`, milliseconds of the host clock), so tests control it.
//!
//! # Files
//!
//! One file per part of docs/design.md: this one holds the types, the slot
//! read and the transition of §4 (one CAS, the `aux` word, quarantine); `send.rs` §5.1, `receive.rs` §5.2, `sweep.rs` §5.3 (and the
//! lease transition and expiry both paths use), `lease.rs` the operations by
//! receipt (ack, nack, extend, reject, dead-letter), `repair.rs` dead
//! letters, snapshots and `recover`'s repairs.

use crate::error::{Error, Result};
use crate::failpoint::failpoint;
use crate::layout::{Memory, SlotWords};
use crate::slot::{
    aux_holder, aux_is_for, aux_receives, dead_code, gen_of, next_gen, pack, pack_aux, pack_state,
    prev_gen, time_of, with_time, St, View,
};
use crate::sync::{
    dekker_load, dekker_load32, fence, prefetch, spin_hint, AtomicU32, AtomicU64, For, Ordering::*,
};

mod durable;
pub use durable::{SyncOps, SYNC_FAILED};
mod lease;
mod receive;
mod repair;
pub(crate) use repair::slot_info;
mod send;
mod sweep;

/// How far beyond the caller's clock a state word's time may lie: the
/// longest delay, lease or claim any transition writes, plus ten minutes for
/// clock readings taken at different moments. A time further out is no
/// time a transition writes, so the slot is corrupt (§8).
pub(crate) const TIME_AHEAD_MAX_MS: u64 = crate::layout::MAX_TIMEOUT_MS + 600_000;
/// How long a sender trusts another sender's finding that every slot was in
/// use, when no slot was freed since (§5.1).
pub(crate) const FULL_HINT_MS: u64 = 100;
/// How many times a caught-up receiver looks again at the newest ticket's
/// slot while its sender writes it, and the spin pauses between looks
/// (§5.2). Under loom a pause is a yield, so the models look once.
#[cfg(not(loom))]
const PUBLISH_WAIT_LOOKS: u32 = 16;
#[cfg(loom)]
const PUBLISH_WAIT_LOOKS: u32 = 1;
#[cfg(not(loom))]
const PUBLISH_WAIT_PAUSES: u32 = 8;
#[cfg(loom)]
const PUBLISH_WAIT_PAUSES: u32 = 1;
/// The full-queue hint is `(t + 1) << HINT_CREDIT_BITS | credits`: found
/// full at clock time `t`, and `credits` slots freed since that no send has
/// taken yet (§5.1).
const HINT_CREDIT_BITS: u32 = 24;
const HINT_CREDIT_MASK: u64 = (1 << HINT_CREDIT_BITS) - 1;
/// Credits at which a freer drops the hint: the queue is no longer full.
const HINT_DROP_CREDITS: u64 = 64;

/// The full-queue hint of a lap that found every slot busy at `now`.
pub(crate) fn full_hint_at(now: u64) -> u64 {
    (now.wrapping_add(1) & (u64::MAX >> HINT_CREDIT_BITS)) << HINT_CREDIT_BITS
}
/// How soon the sweep comes back to a lease it found held, to judge its
/// holder again: a dead consumer's messages return within about this, one
/// lap and the verdict cache's age (§7.4).
pub(crate) const HOLDER_CHECK_MS: u64 = 50;
/// Slots a receive sweeps when the main path is empty, or periodically.
pub(crate) const SWEEP_STEP: u64 = 32;
/// Bound on retries of one CAS against interference (a hostile writer could
/// otherwise livelock us).
const CAS_RETRIES: usize = 64;

/// Why a dead message died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadReason {
    /// Delivered `max_receives` times without an ack.
    MaxReceives,
    /// Its slot held values no protocol step writes; quarantined.
    Corrupt,
    /// Quarantined by `recover` (an abandoned claim it could not prove empty).
    Recovered,
    /// Its consumer dead-lettered it at once ([`crate::Lease::dead_letter`]),
    /// as AMQP's `basic.reject` without requeue.
    Rejected,
    /// A reason code this build does not know.
    Unknown(u32),
}

impl DeadReason {
    /// The code stored in a slot.
    pub fn code(self) -> u32 {
        match self {
            DeadReason::MaxReceives => 1,
            DeadReason::Corrupt => 2,
            DeadReason::Recovered => 3,
            DeadReason::Rejected => 4,
            DeadReason::Unknown(c) => c,
        }
    }
    /// The reason a code stored in a slot stands for.
    pub fn from_code(c: u32) -> DeadReason {
        match c {
            1 => DeadReason::MaxReceives,
            2 => DeadReason::Corrupt,
            3 => DeadReason::Recovered,
            4 => DeadReason::Rejected,
            c => DeadReason::Unknown(c),
        }
    }
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            DeadReason::MaxReceives => "max-receives",
            DeadReason::Corrupt => "corrupt",
            DeadReason::Recovered => "recovered",
            DeadReason::Rejected => "rejected",
            DeadReason::Unknown(_) => "unknown",
        }
    }
}

/// Names one lease: the queue, the slot, the generation its lease
/// transition produced and the message id. Copy it anywhere (another
/// thread, another process): ack, nack and extend work with it for as long
/// as the lease is the current one. Its text form (`Display`, `FromStr`)
/// is `QUEUE-SLOT-GEN-ID` in hexadecimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Receipt {
    /// The queue's identity ([`crate::Queue::identity`]): a receipt used on
    /// another queue is refused, not taken for that queue's lease.
    pub queue: u64,
    /// Slot index.
    pub slot: u32,
    /// Generation of the lease (20 bits).
    pub gen: u64,
    /// The message id: a generation that wrapped (2^20 transitions of the
    /// slot) cannot make this receipt pass for another message's lease.
    pub id: u64,
}

impl std::fmt::Display for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:x}-{:x}-{:x}-{:x}",
            self.queue, self.slot, self.gen, self.id
        )
    }
}

impl std::str::FromStr for Receipt {
    type Err = crate::error::ParseReceiptError;
    fn from_str(s: &str) -> std::result::Result<Receipt, Self::Err> {
        let bad = |what| crate::error::ParseReceiptError {
            input: s.chars().take(80).collect(),
            what,
        };
        let mut parts = s.trim().split('-');
        let mut next = |what| {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.len() <= 16)
                .and_then(|p| u64::from_str_radix(p, 16).ok())
                .ok_or_else(|| bad(what))
        };
        let queue = next("bad queue identity")?;
        let slot = u32::try_from(next("bad slot")?).map_err(|_| bad("bad slot"))?;
        let gen = next("bad generation")?;
        let id = next("bad message id")?;
        if parts.next().is_some() {
            return Err(bad("more than four parts"));
        }
        Ok(Receipt {
            queue,
            slot,
            gen,
            id,
        })
    }
}

/// What a receive hands out besides the payload. Its times are readings of
/// the host's CLOCK_MONOTONIC in milliseconds ([`now_ms`](crate::now_ms)),
/// the clock every process shares; [`sent_at`](Delivery::sent_at) and
/// [`remaining`](Delivery::remaining) turn them into wall-clock time and a
/// duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The lease's receipt.
    pub receipt: Receipt,
    /// Message id: unique per queue, increasing in send order.
    pub id: u64,
    /// How many times the message has been delivered, this time included.
    pub receives: u32,
    /// Lease deadline, host clock milliseconds.
    pub deadline_ms: u64,
    /// When the message was sent, host clock milliseconds.
    pub sent_ms: u64,
}

#[cfg(not(loom))]
impl Delivery {
    /// When the message was sent, on the wall clock.
    pub fn sent_at(&self) -> std::time::SystemTime {
        crate::clock::wall_time(self.sent_ms)
    }

    /// Time left until the lease expires (zero if it has).
    pub fn remaining(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.deadline_ms.saturating_sub(crate::clock::now_ms()))
    }
}

/// Outcome of a nack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nacked {
    /// Visible again (now, or after the delay).
    Requeued,
    /// It had reached max receives: now dead.
    DeadLettered,
}

/// A best-effort snapshot of one slot, for stats, inspect and recover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot index.
    pub slot: u32,
    /// The state, or `None` when the state word is corrupt.
    pub state: Option<St>,
    /// The state word holds a value no transition writes.
    pub corrupt: bool,
    /// Generation.
    pub gen: u64,
    /// The state word's time (meaning depends on the state, see design.md §3).
    pub time_ms: u64,
    /// Message id.
    pub id: u64,
    /// Payload length as stored (may exceed the slot size if corrupt).
    pub len: u32,
    /// Deliveries so far.
    pub receives: u32,
    /// Send time.
    pub sent_ms: u64,
    /// The claimer or lease holder as the `aux` word names it (0: none).
    pub holder: u32,
    /// Whether `aux` was written for this generation's lease, or for this
    /// claim (WRITING, or ABANDONED one generation on).
    pub holder_current: bool,
    /// Dead reason code (0 unless DEAD).
    pub reason: u32,
}

/// Per-queue constants the core needs; validated before a `Ring` is built.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Payload capacity of a slot in bytes.
    pub slot_size: u32,
    /// Deliveries after which a message is dead-lettered.
    pub max_receives: u32,
    /// The queue's visibility timeout in milliseconds.
    pub visibility_ms: u64,
    /// How long a claim may last, in milliseconds.
    pub claim_ms: u64,
    /// Whether payloads carry a CRC.
    pub checksums: bool,
    /// The queue's identity, which receipts carry.
    pub identity: u64,
    /// This process's holder id, recorded in `aux` for claims and leases.
    pub pid: u32,
    /// Whether a holder names a live process.
    pub is_alive: fn(u32) -> bool,
    /// Wake every process parked on a futex word of the header
    /// (FUTEX_WAKE for the real queue; nothing under loom, whose models
    /// check the word instead).
    pub wake: fn(&AtomicU32),
}

/// A transition did not happen: its CAS lost, someone else changed the
/// slot first.
#[derive(Debug, PartialEq, Eq)]
struct Raced;

/// How a ring names its process in `aux` and judges the holders other
/// processes named (docs/design.md §7.4).
enum Holders {
    /// A fixed holder (`Params::pid`) judged by `Params::is_alive`: loom
    /// models and unit tests, which run without a registration table.
    Fixed,
    /// The queue file's process registration table.
    #[cfg(not(loom))]
    Registry {
        reg: crate::registry::Registration,
        cache: crate::registry::VerdictCache,
        me: crate::registry::Identity,
    },
}

/// Which path examines a slot (§5.2, §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// The main path, at ticket `rcur`.
    Main(u64),
    /// The sweep, which also repairs.
    Sweep,
}

/// A [`Params::wake`] that wakes nobody: for rings no process parks on
/// (unit tests, loom models).
pub fn no_wake(_: &AtomicU32) {}

/// A word of the published head's bookkeeping (§5.2): process memory that
/// only steers which word a caught-up receiver reads, `head` or `fill`, so
/// threads racing on it can cost a look of `fill`, never a message. A std
/// atomic even under loom: as a loom atomic each access would be one more
/// point for the models to interleave at (a lease model ran past five
/// minutes), for no ordering that any guarantee rests on. `fill` and `head`
/// themselves stay loom's.
type LocalU64 = std::sync::atomic::AtomicU64;

/// The core. See the module docs.
pub struct Ring<M> {
    mem: M,
    n: u32,
    p: Params,
    sweep_interval_ms: u64,
    /// This process's last reading of `fill` (process memory, not the
    /// mapping). `fill` only grows, so a stale reading is a lower bound: a
    /// receiver below it has work to look at without touching the senders'
    /// cache line, and reloads `fill` only when it catches up (§5.2).
    fill_seen: AtomicU64,
    /// The ticket this process's last send left next (process memory): the
    /// next send looks at its slot and CASes `fill` from it without loading
    /// `fill` first, which a receiver polling `fill` would make one more
    /// line transfer. A wrong guess (another sender took tickets) only
    /// makes the CAS fail and return the real value (§5.1).
    fill_next: AtomicU64,
    /// The clock time (ms) of this process's last load of `fill` on the
    /// receive path: within that tick a caught-up receiver polls the
    /// published head instead (§5.2). `u64::MAX`: load `fill` at the next
    /// look ([`look_at_fill`](Ring::look_at_fill)).
    fill_looked_ms: LocalU64,
    /// This process's last reading of `head` (§5.2, the published head).
    head_seen: LocalU64,
    /// `fill` and `head` at this process's last load of `fill`, and
    /// whether `head` moved whenever `fill` did (senders of builds before
    /// `head` store none: then every look loads `fill`).
    fill_at_look: LocalU64,
    head_at_look: LocalU64,
    head_trusted: std::sync::atomic::AtomicBool,
    /// The holder recorded for claims and leases when there is no
    /// registration table in use (loom models, unit tests): `Params::pid`.
    pid: std::sync::atomic::AtomicU32,
    /// How this process names itself in `aux` and judges the holders
    /// others name (§7.4).
    holders: Holders,
    /// Leases name no holder (0): for short-lived tools whose leases
    /// outlive them (§7.4).
    anonymous_leases: std::sync::atomic::AtomicBool,
    /// Whether the sweep notes the dead letters it passes for the queue to
    /// move to its dead-letter queue (§5.5), and the slots it noted
    /// (process memory).
    collect_dead: std::sync::atomic::AtomicBool,
    dead_seen: std::sync::Mutex<Vec<(u32, u64)>>,
    /// `dead_seen` may be non-empty (checked before taking its lock).
    dead_noted: std::sync::atomic::AtomicBool,
    /// Deliveries this process's sweep made (process memory; for tests of
    /// the main path's order, `Ring::sweep_deliveries`).
    swept: AtomicU64,
}

impl<M: Memory> Ring<M> {
    /// A core over `mem` (whose slots must already be initialised).
    pub fn new(mem: M, p: Params) -> Ring<M> {
        let n = mem.slot_count();
        assert!(n > 0, "a ring needs at least one slot");
        Ring {
            n,
            p,
            // At most 200 ms: a dead holder's leases come back within about
            // one interval and one lap, whatever the visibility timeout
            // (§5.3, dead holders).
            sweep_interval_ms: (p.visibility_ms / 4).clamp(10, 200),
            mem,
            fill_seen: AtomicU64::new(0),
            fill_next: AtomicU64::new(0),
            fill_looked_ms: LocalU64::new(u64::MAX),
            head_seen: LocalU64::new(0),
            fill_at_look: LocalU64::new(0),
            head_at_look: LocalU64::new(0),
            head_trusted: std::sync::atomic::AtomicBool::new(true),
            pid: std::sync::atomic::AtomicU32::new(p.pid),
            holders: Holders::Fixed,
            anonymous_leases: std::sync::atomic::AtomicBool::new(false),
            collect_dead: std::sync::atomic::AtomicBool::new(false),
            dead_seen: std::sync::Mutex::new(Vec::new()),
            dead_noted: std::sync::atomic::AtomicBool::new(false),
            swept: AtomicU64::new(0),
        }
    }

    /// A core over a queue file's memory, naming this process through the
    /// file's registration table (§7.4) instead of `Params::pid`.
    #[cfg(not(loom))]
    pub fn with_registry(mem: M, p: Params) -> Ring<M> {
        let mut r = Ring::new(mem, p);
        r.holders = Holders::Registry {
            reg: crate::registry::Registration::new(),
            cache: crate::registry::VerdictCache::new(crate::registry::ENTRIES),
            me: crate::registry::Identity::current(),
        };
        r
    }

    /// This process's holder for a claim: its registration (made on first
    /// use, and again in a forked child), or `Params::pid` without a table.
    /// 0 when the table is full: the claim names nobody.
    fn claimer(&self) -> u32 {
        match &self.holders {
            Holders::Fixed => self.pid(),
            #[cfg(not(loom))]
            Holders::Registry { reg, .. } => reg.holder(
                self.mem.registry(),
                crate::registry::Identity::current,
                crate::registry::os_probe,
            ),
        }
    }

    /// This process's holder for a lease: as for a claim, or 0 when leases
    /// are anonymous.
    fn lessee(&self) -> u32 {
        if self
            .anonymous_leases
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0
        } else {
            self.claimer()
        }
    }

    /// Whether holder `h` is known to be gone: a registration judged dead
    /// (its process exited, its pid was reused, it is from another boot, or
    /// it was released). 0 (no holder) is never gone: nothing is known.
    fn holder_gone(&self, h: u32, now: u64) -> bool {
        if h == 0 {
            return false;
        }
        match &self.holders {
            Holders::Fixed => !(self.p.is_alive)(h),
            #[cfg(not(loom))]
            Holders::Registry { cache, me, .. } => {
                crate::registry::verdict(
                    self.mem.registry(),
                    h,
                    me,
                    crate::registry::os_probe,
                    now,
                    cache,
                ) == crate::registry::Verdict::Dead
            }
        }
    }

    /// Whether holder `h` may be alive, as `recover` and the tool judge
    /// it (the negation of [`holder_gone`](Self::holder_gone), public).
    pub fn holder_alive(&self, h: u32, now: u64) -> bool {
        !self.holder_gone(h, now)
    }

    /// End this process's registration (the last handle closing): its
    /// leases and claims then name a holder that is gone.
    pub fn release_registration(&self) {
        #[cfg(not(loom))]
        if let Holders::Registry { reg, .. } = &self.holders {
            reg.release(self.mem.registry());
        }
    }

    /// Have the sweep note the dead letters it passes (max receives or
    /// rejected: messages that were sent whole), for [`take_dead`](Self::take_dead).
    pub fn collect_dead(&self, on: bool) {
        self.collect_dead
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The dead letters (slot, generation) the sweep noted since the last
    /// call, at most 64.
    pub fn take_dead(&self) -> Vec<(u32, u64)> {
        self.dead_noted
            .store(false, std::sync::atomic::Ordering::Relaxed);
        match self.dead_seen.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => Vec::new(),
        }
    }

    fn note_dead(&self, i: u32, gen: u64) {
        if let Ok(mut v) = self.dead_seen.lock() {
            if v.len() < 64 && !v.contains(&(i, gen)) {
                v.push((i, gen));
            }
        }
        self.dead_noted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the sweep noted dead letters since the last
    /// [`take_dead`](Self::take_dead) (a hint: one Relaxed load).
    pub fn has_dead(&self) -> bool {
        self.dead_noted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Leases taken through this ring name no holder (`shmq recv` from a
    /// script: the process that works on the message is its caller, which
    /// shmq cannot name; a wrapper such as `timeout` would be named instead).
    pub fn set_anonymous_leases(&self, on: bool) {
        self.anonymous_leases
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The memory the core runs on.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.p
    }

    /// Number of slots.
    pub fn slot_count(&self) -> u32 {
        self.n
    }

    /// Record `pid` as the holder of what this ring claims and leases
    /// (without a registration table: models and tests).
    pub fn set_pid(&self, pid: u32) {
        // Process memory, read only by this process's own operations: no
        // ordering with anything in the mapping.
        self.pid.store(pid, std::sync::atomic::Ordering::Relaxed);
    }

    fn pid(&self) -> u32 {
        self.pid.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many messages (fresh or redelivered) this process's receives
    /// took from the sweep (§5.3) rather than the main path (§5.2).
    pub fn sweep_deliveries(&self) -> u64 {
        self.swept.load(Relaxed)
    }

    /// How often a sweep round starts on an idle queue.
    pub fn sweep_interval_ms(&self) -> u64 {
        self.sweep_interval_ms
    }

    fn w(&self, i: u32) -> &SlotWords {
        self.mem.slot(i)
    }

    /// Read slot `i`'s state word and classify it (§4).
    /// SYNC POINT: this load pairs with the Release of the transition CAS
    /// of whoever last changed the slot.
    ///
    /// SeqCst: it is the load half of the receiver's side of the §5.1
    /// Dekker pair and of the sender's side of the full-queue pair (free on
    /// x86, `ldar` on Arm); see [`dekker_load`].
    fn read(&self, i: u32) -> View {
        View::classify(dekker_load(&self.w(i).state))
    }

    /// §4: one CAS of slot `i`'s state word from exactly `s` to state
    /// `code` (see [`St::code`], [`dead_code`]), the next generation and
    /// `time`. Returns the new generation.
    fn cas(&self, i: u32, s: u64, code: u64, time: u64) -> std::result::Result<u64, Raced> {
        let w = self.w(i);
        let g1 = next_gen(gen_of(s));
        let new = pack(code, g1, time);
        // SYNC POINT: Release pairs with the Acquire (SeqCst) load of the
        // state in the next actor's `read` (who then sees the side data and
        // the payload written before); Acquire pairs with the previous
        // transition's Release. SeqCst because sends and receives also use
        // this CAS as the store half of the Dekker pairs of §5.1 and §6.
        #[cfg(not(any(
            shmq_mutation = "check_then_store",
            shmq_mutation = "transition_relaxed"
        )))]
        w.state
            .compare_exchange(s, new, SeqCst, Acquire)
            .map_err(|_| Raced)?;
        // Mutants (design.md §10): a load, a compare and a store; a Relaxed
        // CAS.
        #[cfg(shmq_mutation = "check_then_store")]
        if w.state.load(Acquire) == s {
            w.state.store(new, SeqCst);
        } else {
            return Err(Raced);
        }
        #[cfg(shmq_mutation = "transition_relaxed")]
        w.state
            .compare_exchange(s, new, Relaxed, Relaxed)
            .map_err(|_| Raced)?;
        if code == St::Free.code() {
            self.note_freed();
        }
        Ok(g1)
    }

    /// [`cas`](Self::cas) to a state other than DEAD.
    fn transition(&self, i: u32, s: u64, to: St, time: u64) -> std::result::Result<u64, Raced> {
        self.cas(i, s, to.code(), time)
    }

    /// Write slot `i`'s `aux` word for generation `gen`, a transition this
    /// actor just made: `receives` and `holder`. A CAS from `seen`, the
    /// value this actor read before its transition CAS: if `aux` changed
    /// since, and the state word no longer carries `gen`, the slot moved on
    /// while we stalled and we write nothing (so a stalled actor's late CAS
    /// never lands on a later transition's `aux`); if the state word still
    /// carries `gen`, the change was a stale actor's and we retry past it.
    /// Returns whether the state word still carries `gen` after our CAS:
    /// false means the transition is no longer ours (a claimer then writes
    /// nothing into the slot).
    fn set_aux(&self, i: u32, gen: u64, seen: u64, receives: u32, holder: u32) -> bool {
        let w = self.w(i);
        let new = pack_aux(receives, holder, gen);
        let mut a = seen;
        for _ in 0..CAS_RETRIES {
            // Mutant (design.md §10): a plain store, which a stalled actor's
            // late write can land on top of.
            #[cfg(shmq_mutation = "aux_store")]
            {
                let _ = a;
                w.aux.store(new, Release);
                return gen_of(w.state.load(SeqCst)) == gen;
            }
            // SYNC POINT (Dekker, §4 "Naming the claimer"): this SeqCst CAS
            // then the SeqCst load of the state word below, against the
            // sweep's abandoning CAS of the state word then its SeqCst load
            // of `aux` (`claimer_lives`): either the sweep sees us named,
            // or we see the slot abandoned and write nothing into it. The
            // loom model `stalled_claimer_against_reuse` found a torn
            // message with Release/Acquire here.
            #[cfg(not(shmq_mutation = "aux_store"))]
            match w.aux.compare_exchange(a, new, SeqCst, Acquire) {
                // The word may have moved on while we stalled before the
                // CAS (nobody wrote `aux` meanwhile): then what we wrote
                // describes nothing (its tag is a past generation) and the
                // current owner's own CAS retries past it.
                #[cfg(not(shmq_mutation = "aux_no_recheck"))]
                Ok(_) => return gen_of(dekker_load(&w.state)) == gen,
                // Mutant (design.md §10): trust the CAS alone.
                #[cfg(shmq_mutation = "aux_no_recheck")]
                Ok(_) => return true,
                Err(x) => a = x,
            }
            if gen_of(w.state.load(SeqCst)) != gen {
                return false;
            }
        }
        false
    }

    /// Write slot `i`'s `aux` word *before* a transition from state word
    /// `s`, for the generation that transition will produce: for a
    /// transition after which the next actor must already see the new
    /// `aux` (a redrive resets the receive count: a receiver leasing the
    /// redriven message must not count the deliveries before it). A CAS
    /// from `seen`, retried while the slot still holds `s`; false if it
    /// moved on (then the transition is not ours to make either). If the
    /// transition then fails, the `aux` written names a generation that
    /// whoever changed the slot overwrites with its own CAS.
    fn set_aux_ahead(&self, i: u32, s: u64, seen: u64, receives: u32, holder: u32) -> bool {
        self.set_aux_while(i, s, seen, pack_aux(receives, holder, next_gen(gen_of(s))))
    }

    /// CAS slot `i`'s `aux` word from `seen` to `new`, retried while the
    /// slot still holds state word `s`; false if it moved on.
    fn set_aux_while(&self, i: u32, s: u64, seen: u64, new: u64) -> bool {
        let w = self.w(i);
        let mut a = seen;
        for _ in 0..CAS_RETRIES {
            // SYNC POINT: Release, so the lessee that reads the state word
            // our transition then writes (Acquire) sees this `aux`.
            match w.aux.compare_exchange(a, new, AcqRel, Acquire) {
                Ok(_) => return true,
                Err(x) => a = x,
            }
            if w.state.load(SeqCst) != s {
                return false;
            }
        }
        false
    }

    /// Slot `i`'s `aux` word, read before a transition (the `seen` of
    /// [`set_aux`](Self::set_aux)). SYNC POINT: Acquire pairs with the
    /// Release of the last `aux` CAS.
    fn aux(&self, i: u32) -> u64 {
        self.w(i).aux.load(Acquire)
    }

    /// Quarantine a slot whose state word is corrupt: DEAD with reason
    /// `Corrupt`, by a CAS from exactly the value read.
    fn quarantine(&self, i: u32, s: u64, now: u64) -> bool {
        self.cas(i, s, dead_code(DeadReason::Corrupt.code()), now)
            .is_ok()
    }

    /// The header's shared words (cursors and counters).
    pub fn shared(&self) -> &crate::layout::Shared {
        self.mem.shared()
    }
}

/// The checksum a slot stores (§8). It covers the message id and the length
/// as well as the payload, so that a slot a hostile writer turns READY (id,
/// length and payload all zero, say) does not check out as an empty message.
///
/// - A payload of at most [`CRC32C_MAX`] bytes: CRC-32C (Castagnoli) of the
///   id (8 bytes) and the length (4 bytes), little-endian, then the payload.
/// - A longer payload: CRC-32 (IEEE) of the payload, XOR [`seal`] of the id
///   and the length.
///
/// Each is the faster of the two for its sizes (benches/checksum.rs): on
/// x86_64, CRC-32C is one SSE4.2 instruction per 8 bytes, under a third of
/// crc32fast's time at 64 bytes; crc32fast's carry-less multiply folding
/// is level at 384 bytes and faster above.
pub(crate) fn message_crc(id: u64, payload: &[u8]) -> u32 {
    let len = payload.len() as u32;
    if payload.len() <= CRC32C_MAX {
        crc32c_with_head(id, len, payload)
    } else {
        crc32fast::hash(payload) ^ seal(id, len)
    }
}

/// The longest payload whose checksum is CRC-32C (part of format 2).
const CRC32C_MAX: usize = 256;

/// A 32-bit mix of the message id and length (splitmix64's finaliser over
/// both, offset so that id 0 and length 0 do not give 0), for payloads
/// longer than [`CRC32C_MAX`]. A dozen instructions instead of feeding 12
/// more bytes to the CRC, whose short inputs take its slow path.
fn seal(id: u64, len: u32) -> u32 {
    let mut x = id ^ (u64::from(len) << 40 | u64::from(len)) ^ 0x5348_4d51_0000_0001;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x ^ (x >> 32)) as u32
}

/// CRC-32C of `id` and `len`, little-endian, followed by `payload`.
fn crc32c_with_head(id: u64, len: u32, payload: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2 (checked on the line above), the only
        // requirement of `crc32c_sse42`.
        return unsafe { crc32c_sse42(id, len, payload) };
    }
    crc32c_portable(id, len, payload)
}

/// [`crc32c_with_head`] by the crc32c crate: its table, or aarch64's CRC
/// instructions when built with Rust 1.80 or newer.
fn crc32c_portable(id: u64, len: u32, payload: &[u8]) -> u32 {
    let mut head = [0u8; 12];
    head[..8].copy_from_slice(&id.to_le_bytes());
    head[8..].copy_from_slice(&len.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), payload)
}

/// [`crc32c_with_head`] by SSE4.2's `crc32`, 8 bytes an instruction, in
/// one loop: a fifth (at 64 bytes) to a half (at 256) of the crc32c
/// crate's time for the same value, whose set-up costs more than the CRC
/// on short inputs.
///
/// # Safety
///
/// The CPU must support SSE4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
// The intrinsics are safe to call here from Rust 1.86 on, unsafe before.
#[allow(unused_unsafe)]
unsafe fn crc32c_sse42(id: u64, len: u32, payload: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    let mut words = payload.chunks_exact(8);
    // SAFETY: the intrinsics need SSE4.2, which the caller guarantees.
    unsafe {
        let mut c = _mm_crc32_u64(u64::from(u32::MAX), id);
        c = u64::from(_mm_crc32_u32(c as u32, len));
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            c = _mm_crc32_u64(c, u64::from_le_bytes(b));
        }
        let mut c = c as u32;
        for &b in words.remainder() {
            c = _mm_crc32_u8(c, b);
        }
        !c
    }
}

#[cfg(test)]
mod checksum_tests {
    use super::{crc32c_portable, crc32c_with_head, message_crc, seal, CRC32C_MAX};

    /// CRC-32C of whole byte strings, through the crate's entry point.
    fn crc32c(bytes: &[u8]) -> u32 {
        crc32c::crc32c(bytes)
    }

    #[test]
    fn crc32c_known_vectors() {
        // The check value of the CRC catalogue and RFC 3720's (iSCSI) B.4.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let up: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&up), 0x46dd_794e);
        let down: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&down), 0x113f_db5c);
        // message_crc's head, computed bit by bit elsewhere.
        let id = 0x0102_0304_0506_0708;
        assert_eq!(message_crc(id, b"123456789"), 0x9171_cdaa);
        assert_eq!(message_crc(1, b""), 0x1a11_616d);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(message_crc(u64::MAX, &all), 0x3af0_f6fe);
    }

    #[test]
    fn every_path_gives_the_value_of_the_format() {
        // The hardware loop (x86_64 with SSE4.2), the crate, and the
        // definition: CRC-32C of id, length and payload concatenated.
        let data: Vec<u8> = (0..CRC32C_MAX + 20).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..=CRC32C_MAX {
            for &(id, skip) in &[(0u64, 0usize), (7, 1), (u64::MAX - 3, 5)] {
                let p = &data[skip..skip + n];
                let mut whole = id.to_le_bytes().to_vec();
                whole.extend_from_slice(&(n as u32).to_le_bytes());
                whole.extend_from_slice(p);
                let want = crc32c(&whole);
                assert_eq!(crc32c_with_head(id, n as u32, p), want, "len {n}");
                assert_eq!(crc32c_portable(id, n as u32, p), want, "len {n}");
                assert_eq!(message_crc(id, p), want, "len {n}");
            }
        }
        let long = vec![3u8; CRC32C_MAX + 1];
        assert_eq!(
            message_crc(9, &long),
            crc32fast::hash(&long) ^ seal(9, long.len() as u32)
        );
    }

    /// A never-used slot a hostile writer turns READY holds zero words: id 0,
    /// a zero payload and CRC 0, whatever length it forges.
    #[test]
    fn a_zero_slot_never_checks_out() {
        let zeros = vec![0u8; 1 << 16];
        for n in (0..=4 * CRC32C_MAX).chain((1..=64).map(|k| k << 10)) {
            assert_ne!(message_crc(0, &zeros[..n]), 0, "len {n}");
        }
    }

    /// A receiver that copies while a sender overwrites the slot gets the
    /// first words of one message and the rest of another; the stored CRC
    /// and id are either message's.
    #[test]
    fn a_torn_payload_never_checks_out() {
        for &n in &[8usize, 24, 64, 200, CRC32C_MAX, CRC32C_MAX + 8, 1024, 4096] {
            let a: Vec<u8> = (0..n).map(|i| (i * 7 + 1) as u8).collect();
            let b: Vec<u8> = (0..n).map(|i| (i * 13 + 5) as u8).collect();
            let (ida, idb) = (1000, 1001);
            let stored = [message_crc(ida, &a), message_crc(idb, &b)];
            for cut in (8..n).step_by(8) {
                for torn in [
                    [&a[..cut], &b[cut..]].concat(),
                    [&b[..cut], &a[cut..]].concat(),
                ] {
                    for id in [ida, idb] {
                        assert!(
                            !stored.contains(&message_crc(id, &torn)),
                            "len {n}, cut at {cut}, id {id}"
                        );
                    }
                }
            }
            // One word of the other message in the middle.
            let mut one = a.clone();
            one[n / 2 / 8 * 8..][..8].copy_from_slice(&b[n / 2 / 8 * 8..][..8]);
            assert!(!stored.contains(&message_crc(ida, &one)), "len {n}");
            // The right words under the other message's id or length.
            assert_ne!(message_crc(idb, &a), stored[0], "len {n}");
            assert_ne!(message_crc(ida, &a[..n - 1]), stored[0], "len {n}");
        }
    }
}

/// Copy `msg` into payload words, little-endian, zero-padding the last word.
fn write_payload(words: &[AtomicU64], msg: &[u8]) {
    let mut chunks = msg.chunks_exact(8);
    for (w, ch) in words.iter().zip(&mut chunks) {
        let mut b = [0u8; 8];
        b.copy_from_slice(ch);
        w.store(u64::from_le_bytes(b), Relaxed);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        if let Some(w) = words.get(msg.len() / 8) {
            w.store(u64::from_le_bytes(b), Relaxed);
        }
    }
    if msg.len() > 8 {
        failpoint!("send.mid_payload");
    }
}

/// Copy `len` bytes out of payload words into `buf` (cleared first). `len`
/// must already be checked against the slot size.
fn read_payload(words: &[AtomicU64], len: usize, buf: &mut Vec<u8>) {
    // Every byte below is overwritten: zero-fill only what the buffer
    // lacks (nothing, in a loop that reuses a buffer for messages of one
    // size; `resize` writes the fill a byte at a time).
    buf.truncate(len);
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let mut chunks = buf.chunks_exact_mut(8);
    for (chunk, w) in (&mut chunks).zip(words) {
        chunk.copy_from_slice(&w.load(Relaxed).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    if let Some(w) = words.get(len / 8) {
        let n = rest.len();
        rest.copy_from_slice(&w.load(Relaxed).to_le_bytes()[..n]);
    }
}

#[cfg(test)]
#[path = "../ring_tests.rs"]
mod tests;

//! The lock-free core: slots, cursors and every transition of docs/design.md.
//!
//! # Algorithm
//!
//! A fixed array of slots, each with a state word (`gen << 8 | st`) and a
//! clock word (`time_ms << 24 | tag`). Every transition is *reserve* (CAS the
//! clock word to the new time, tagged with the next generation), *side data*
//! (plain atomic stores the next owner reads), *commit* (CAS the state word to
//! the next generation and state). Because every actor must win the clock CAS
//! first, a reservation is exclusive; because every commit bumps the
//! generation, a receipt `(slot, gen)` fences a lease against anyone who held
//! the slot before. A process that dies between reserve and commit leaves a
//! *pending* slot, which anyone aborts once its time plus [`GRACE_MS`] has
//! passed. No step waits for another process.
//!
//! Senders take tickets from `fill` and claim the slot `ticket % N` when it is
//! free, stepping over slots still in use. Receivers follow the tickets with
//! `rcur` (best-effort FIFO); messages that become visible again behind
//! `rcur` (nacks, expired leases, redrives, delays) are found by the *sweep*,
//! a second cursor that every receive advances by a bounded number of slots.
//!
//! The core is generic over [`Memory`]: the queue runs it on the file mapping,
//! the loom models and unit tests on the heap. Time is always a parameter
//! (`now`, milliseconds of the host clock), so tests control it.
//!
//! # Files
//!
//! One file per part of docs/design.md: this one holds the types, the slot
//! read and the transition of §4 (reserve, side data, commit, abort,
//! quarantine); `send.rs` §5.1, `receive.rs` §5.2, `sweep.rs` §5.3 (and the
//! lease transition and expiry both paths use), `lease.rs` the operations by
//! receipt (ack, nack, extend, reject, dead-letter), `repair.rs` dead
//! letters, snapshots and `recover`'s repairs.

use crate::error::{Error, Result};
use crate::failpoint::failpoint;
use crate::layout::{Memory, SlotWords};
use crate::slot::{gen_of, next_gen, pack_clock, pack_state, time_of, St, View};
use crate::sync::{
    dekker_load, dekker_load32, fence, spin_hint, AtomicU32, AtomicU64, Ordering::*,
};

mod lease;
mod receive;
mod repair;
mod send;
mod sweep;

/// How long a pending transition may stay pending beyond its own time before
/// anyone aborts it (§4).
pub const GRACE_MS: u64 = 1000;
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

/// Names one lease: the slot and the generation its lease commit produced.
/// Copy it anywhere (another thread, another process): ack, nack and extend
/// work with it for as long as the lease is the current one. Its text form
/// (`Display`, `FromStr`) is `SLOT:GEN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Receipt {
    /// Slot index.
    pub slot: u32,
    /// Generation of the lease.
    pub gen: u64,
}

impl std::fmt::Display for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.slot, self.gen)
    }
}

impl std::str::FromStr for Receipt {
    type Err = crate::error::ParseReceiptError;
    fn from_str(s: &str) -> std::result::Result<Receipt, Self::Err> {
        let bad = |what| crate::error::ParseReceiptError {
            input: s.chars().take(64).collect(),
            what,
        };
        let (a, b) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        Ok(Receipt {
            slot: a.parse().map_err(|_| bad("bad slot"))?,
            gen: b.parse().map_err(|_| bad("bad generation"))?,
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
    /// A transition was in flight (reserved, not committed).
    pub pending: bool,
    /// The clock tag contradicts the generation.
    pub corrupt: bool,
    /// Generation.
    pub gen: u64,
    /// The clock time (meaning depends on the state, see design.md §3).
    pub time_ms: u64,
    /// Message id.
    pub id: u64,
    /// Payload length as stored (may exceed the slot size if corrupt).
    pub len: u32,
    /// Deliveries so far.
    pub receives: u32,
    /// Send time.
    pub sent_ms: u64,
    /// Pid of the claimer or lease holder (0 if unknown).
    pub owner_pid: u32,
    /// Whether `owner` was written for this generation's lease or claim.
    pub owner_current: bool,
    /// Dead reason code.
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
    /// This process's pid, recorded as owner of claims and leases.
    pub pid: u32,
    /// Whether a pid names a live process (kill(pid, 0) for the real queue).
    pub is_alive: fn(u32) -> bool,
    /// Wake every process parked on a futex word of the header
    /// (FUTEX_WAKE for the real queue; nothing under loom, whose models
    /// check the word instead).
    pub wake: fn(&AtomicU32),
}

/// Why a transition did not happen.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The reservation CAS lost: someone else changed the slot first.
    Raced,
    /// The commit CAS lost: our pending reservation was aborted (we stalled).
    Aborted,
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

pub(crate) fn owner_word(pid: u32, gen: u64) -> u64 {
    (u64::from(pid) << 32) | (gen & 0xffff_ffff)
}

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
    /// The pid recorded as owner of claims and leases (process memory;
    /// starts as `Params::pid`, changed by [`Ring::set_pid`]).
    pid: std::sync::atomic::AtomicU32,
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
            sweep_interval_ms: (p.visibility_ms / 4).clamp(10, 1000),
            mem,
            fill_seen: AtomicU64::new(0),
            fill_next: AtomicU64::new(0),
            pid: std::sync::atomic::AtomicU32::new(p.pid),
            swept: AtomicU64::new(0),
        }
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

    /// Record `pid` as the owner of what this ring claims and leases.
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

    /// Step 1 of §4: read the state word, then the clock word, and classify.
    /// SYNC POINT: these Acquire loads pair with the Release of the commit
    /// (and reservation) CASes of whoever last changed the slot.
    ///
    /// Two transitions can land between the two loads, pairing a state of
    /// gen g with a clock of tag g+2: that pair looks corrupt but is only
    /// stale. A `Corrupt` view is therefore trusted only if the state word is
    /// unchanged after the clock load (while the state stays at gen g the
    /// clock can only carry tag g or g+1, because every transition reserves
    /// the clock before it commits the state). The retry costs nothing on
    /// healthy slots.
    ///
    /// The state load is SeqCst: it is the load half of the receiver's side
    /// of the §5.1 Dekker pair and of the sender's side of the full-queue
    /// pair (free on x86, `ldar` on Arm); see [`dekker_load`].
    fn read(&self, i: u32) -> View {
        let w = self.w(i);
        let mut s = dekker_load(&w.state);
        for _ in 0..CAS_RETRIES {
            let c = w.clock.load(Acquire);
            let view = View::classify(s, c);
            if !matches!(view, View::Corrupt { .. }) {
                return view;
            }
            // Mutant (design.md §10): trust the first corrupt-looking pair.
            #[cfg(shmq_mutation = "no_reread")]
            return view;
            let again = dekker_load(&w.state);
            if again == s {
                return view;
            }
            s = again;
        }
        View::classify(s, w.clock.load(Acquire))
    }

    /// Steps 2-4 of §4. `side` runs inside the reservation, with exclusive
    /// access to the slot's side words; its result is returned with the new
    /// generation.
    fn transition<R>(
        &self,
        i: u32,
        s: u64,
        c: u64,
        to: St,
        time: u64,
        side: impl FnOnce(&SlotWords, u64) -> R,
    ) -> Result<(u64, R), Step> {
        let w = self.w(i);
        let g1 = next_gen(gen_of(s));
        // Reserve. SYNC POINT: AcqRel; the Acquire half pairs with the previous
        // reservation or extend, the Release half with step-1 loads of others.
        #[cfg(not(any(
            shmq_mutation = "check_then_store",
            shmq_mutation = "transition_relaxed"
        )))]
        w.clock
            .compare_exchange(c, pack_clock(time, g1), AcqRel, Acquire)
            .map_err(|_| Step::Raced)?;
        // Mutants (design.md §10): reserve by load, compare, store; reserve
        // with a Relaxed CAS.
        #[cfg(shmq_mutation = "check_then_store")]
        if w.clock.load(Acquire) == c {
            w.clock.store(pack_clock(time, g1), Release);
        } else {
            return Err(Step::Raced);
        }
        #[cfg(shmq_mutation = "transition_relaxed")]
        w.clock
            .compare_exchange(c, pack_clock(time, g1), Relaxed, Relaxed)
            .map_err(|_| Step::Raced)?;
        let r = side(w, g1);
        // Commit. SYNC POINT: Release pairs with the Acquire load of `state` in
        // step 1 of the next actor (who then sees the side data and payload).
        // SeqCst because sends and receives also use this CAS as the store
        // half of the Dekker pairs of §5.1 and §6.
        #[cfg(not(any(
            shmq_mutation = "check_then_store",
            shmq_mutation = "transition_relaxed",
            shmq_mutation = "commit_relaxed",
            shmq_mutation = "commit_store"
        )))]
        w.state
            .compare_exchange(s, pack_state(g1, to), SeqCst, Acquire)
            .map_err(|_| Step::Aborted)?;
        // Mutants (design.md §10): commit by load, compare, store; commit
        // with a Relaxed CAS; commit with a plain store that trusts the
        // reservation.
        #[cfg(shmq_mutation = "check_then_store")]
        if w.state.load(SeqCst) == s {
            w.state.store(pack_state(g1, to), SeqCst);
        } else {
            return Err(Step::Aborted);
        }
        #[cfg(any(shmq_mutation = "transition_relaxed", shmq_mutation = "commit_relaxed"))]
        w.state
            .compare_exchange(s, pack_state(g1, to), Relaxed, Relaxed)
            .map_err(|_| Step::Aborted)?;
        #[cfg(shmq_mutation = "commit_store")]
        w.state.store(pack_state(g1, to), SeqCst);
        if to == St::Free {
            self.note_freed();
        }
        Ok((g1, r))
    }

    /// Step A of §4: abort a pending transition whose time + GRACE passed.
    /// A message left READY this way is visible behind the cursors, so the
    /// sweep is told to run a full lap.
    fn abort(&self, i: u32, s: u64, st: St) -> bool {
        // SYNC POINT: AcqRel like a commit: pairs with the step-1 Acquire
        // loads of the next actor, and acquires the stalled actor's
        // reservation (its clock CAS) whose time the slot keeps.
        let done = self
            .w(i)
            .state
            .compare_exchange(s, pack_state(next_gen(gen_of(s)), st), AcqRel, Acquire)
            .is_ok();
        if done && st == St::Ready {
            self.signal_return();
        }
        if done && st == St::Free {
            self.note_freed();
        }
        done
    }

    /// Quarantine a slot whose words are corrupt: DEAD with reason `Corrupt`,
    /// by CASes from exactly the values read.
    fn quarantine(&self, i: u32, s: u64, c: u64, now: u64) -> bool {
        self.transition(i, s, c, St::Dead, now, |w, g1| {
            w.reason.store(DeadReason::Corrupt.code(), Relaxed);
            w.owner.store(owner_word(self.pid(), g1), Relaxed);
        })
        .is_ok()
    }

    /// The header's shared words (cursors and counters).
    pub fn shared(&self) -> &crate::layout::Shared {
        self.mem.shared()
    }
}

/// The checksum a slot stores: CRC-32 of the message id, the length and the
/// payload, so that a slot a hostile writer turns READY (id, length and
/// payload all zero, say) does not check out as an empty message (§8).
pub(crate) fn message_crc(id: u64, payload: &[u8]) -> u32 {
    crc32fast::hash(payload) ^ seal(id, payload.len() as u32)
}

/// A 32-bit mix of the message id and length (splitmix64's finaliser over
/// both, offset so that id 0 and length 0 do not give 0). A dozen
/// instructions instead of feeding 12 more bytes to the CRC, whose short
/// inputs take its slow path.
fn seal(id: u64, len: u32) -> u32 {
    let mut x = id ^ (u64::from(len) << 40 | u64::from(len)) ^ 0x5348_4d51_0000_0001;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x ^ (x >> 32)) as u32
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

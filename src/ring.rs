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

use crate::error::{Error, Result};
use crate::failpoint::failpoint;
use crate::layout::{Memory, SlotWords};
use crate::slot::{gen_of, next_gen, pack_clock, pack_state, time_of, St, View};
use crate::sync::{
    dekker_load, dekker_load32, fence, spin_hint, AtomicU32, AtomicU64, Ordering::*,
};

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
/// work with it for as long as the lease is the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// What a receive hands out besides the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The pid recorded as owner of claims and leases (process memory;
    /// starts as `Params::pid`, changed by [`Ring::set_pid`]).
    pid: std::sync::atomic::AtomicU32,
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
            pid: std::sync::atomic::AtomicU32::new(p.pid),
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

    // ----------------------------------------------------------------- send

    /// Send `msg`, visible from `now + delay_ms`. Returns the message id.
    pub fn send(&self, msg: &[u8], delay_ms: u64, now: u64) -> Result<u64> {
        self.send_with(msg, delay_ms, now, true)
    }

    /// A sender found the queue full and is about to wait for room: set the
    /// waiter bit of `room` and return the value to park on. The caller then
    /// sends with [`send_looking`](Self::send_looking) once more and parks
    /// only if that fails `Full` (§5.1, waiting for room).
    pub fn room_wait_word(&self) -> u32 {
        let room = &self.mem.shared().room;
        // SYNC POINT: the waiter bit, set (SeqCst RMW, or found set by a
        // SeqCst load) before `send_looking` loads the slots, against the
        // freer's commit then load of `room` in `note_freed`.
        let mut w = dekker_load32(room);
        for _ in 0..CAS_RETRIES {
            if w & 1 != 0 {
                return w;
            }
            match room.compare_exchange(w, w | 1, SeqCst, SeqCst) {
                Ok(_) => return w | 1,
                Err(x) => w = x,
            }
        }
        // A hostile writer keeps changing the word: parking on a stale value
        // returns at once, and the caller's wait is bounded anyway.
        w
    }

    /// The `park` futex word (for tests).
    pub fn park_word(&self) -> u32 {
        self.mem.shared().park.load(SeqCst)
    }

    /// The `room` futex word (for models and tests).
    pub fn room_word(&self) -> u32 {
        self.mem.shared().room.load(SeqCst)
    }

    /// Wake every sender waiting for room (a shutdown of the waiting handle).
    pub fn wake_room_waiters(&self) {
        let room = &self.mem.shared().room;
        // Bump the sequence keeping the waiter bit: parked senders of every
        // process return from their futex wait, look, and park again.
        room.fetch_add(2, SeqCst);
        (self.p.wake)(room);
    }

    /// `send`, looking at the slots even when the full-queue hint says the
    /// queue is full. A sender about to wait for room calls this after it
    /// set the waiter bit of `room` (§5.1, waiting for room): the look at
    /// every slot is the load half of its Dekker pair with `note_freed`.
    pub fn send_looking(&self, msg: &[u8], delay_ms: u64, now: u64) -> Result<u64> {
        self.send_with(msg, delay_ms, now, false)
    }

    fn send_with(&self, msg: &[u8], delay_ms: u64, now: u64, trust_hint: bool) -> Result<u64> {
        self.check_len(msg)?;
        if trust_hint && self.full_without_credit(now) {
            return Err(Error::Full);
        }
        let sh = self.mem.shared();
        // Before the ticket: a receiver that moves `rcur` past it does so
        // after this load (§5.1). SeqCst: ordered before the ticket's
        // SeqCst `fetch_add`, which the receiver's SeqCst load of `fill`
        // follows, which its increment of `skips` follows.
        let skips = sh.skips.load(SeqCst);
        let (t, i, g) = self.take_slot(now)?;
        self.spend_credits(1);
        self.write_and_publish(t, i, g, msg, delay_ms, now)?;
        sh.sent.fetch_add(1, Relaxed);
        if delay_ms > 0 {
            self.note_due(now + delay_ms);
        } else {
            self.recheck_rcur(skips, t);
        }
        Ok(t)
    }

    /// Send the messages of `msgs` in order, each visible at once, pushing
    /// each id into `ids` (cleared first). The tickets of the batch are
    /// taken with one `fill` update (as many as there are free slots in a
    /// row; the rest as `send` takes them), and the `sent` counter, the
    /// full-queue credits and the §5.1 re-check of `rcur` are done once,
    /// after the last publish. Each message is still claimed and published
    /// on its own (§4), so a batch cut short by an error has sent exactly
    /// `msgs[..ids.len()]`.
    pub fn send_many<T: AsRef<[u8]>>(
        &self,
        msgs: &[T],
        now: u64,
        ids: &mut Vec<u64>,
    ) -> Result<()> {
        ids.clear();
        if self.full_without_credit(now) {
            return match msgs.first() {
                Some(m) => self.check_len(m.as_ref()).and(Err(Error::Full)),
                None => Ok(()),
            };
        }
        let sh = self.mem.shared();
        // Before the block's tickets, as in `send`.
        let skips = sh.skips.load(SeqCst);
        let n = u64::from(self.n);
        let max = self.p.slot_size as usize;
        let fit = msgs.iter().take_while(|m| m.as_ref().len() <= max).count() as u64;
        // The block: as many tickets as there are free slots in a row from
        // the next ticket on (looked at before taking them, so that a busy
        // slot costs no ticket and ids stay aligned with the ring).
        let f = sh.fill.load(SeqCst);
        let block = (0..fit.min(n))
            .take_while(|j| self.is_free((f.wrapping_add(*j) % n) as u32))
            .count() as u64;
        // SeqCst as in `take_slot`.
        let mut next = if block > 0 {
            sh.fill.fetch_add(block, SeqCst)
        } else {
            0
        };
        // A hostile `fill` near the top only shortens the block.
        let end = next.saturating_add(block);
        let mut outcome = Ok(());
        for m in msgs {
            let m = m.as_ref();
            let step = self.check_len(m).and_then(|()| {
                // The block's next ticket whose slot is free; past the block,
                // a ticket as `send` takes one. Either way ids keep increasing.
                let mut claimed = None;
                while claimed.is_none() && next < end {
                    let i = (next % n) as u32;
                    claimed = self.claim(i, now).map(|g| (next, i, g));
                    next += 1;
                }
                let (t, i, g) = match claimed {
                    Some(c) => c,
                    None => self.take_slot(now)?,
                };
                self.write_and_publish(t, i, g, m, 0, now).map(|()| t)
            });
            match step {
                Ok(t) => ids.push(t),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if let Some(&first) = ids.first() {
            self.spend_credits(ids.len() as u64);
            sh.sent.fetch_add(ids.len() as u64, Relaxed);
            // The load of `rcur` follows every publish commit of the batch,
            // so one re-check with the smallest id covers them all (§5.1).
            #[cfg(not(shmq_mutation = "batch_rewind_last"))]
            self.recheck_rcur(skips, first);
            // Mutant (design.md §10): re-check with the batch's last id.
            #[cfg(shmq_mutation = "batch_rewind_last")]
            self.recheck_rcur(skips, ids[ids.len() - 1]);
        }
        outcome
    }

    fn check_len(&self, msg: &[u8]) -> Result<()> {
        let max = self.p.slot_size as usize;
        if msg.len() > max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max,
            });
        }
        Ok(())
    }

    /// Claim slot `i` if it is free (§4: FREE -> WRITING). Returns the claim
    /// generation. Quarantines the slot if its words are corrupt.
    fn claim(&self, i: u32, now: u64) -> Option<u64> {
        match self.read(i) {
            View::AtRest {
                s, c, st: St::Free, ..
            } => self
                .transition(i, s, c, St::Writing, now + self.p.claim_ms, |w, g1| {
                    w.owner.store(owner_word(self.pid(), g1), Relaxed);
                })
                .ok()
                .map(|(g, ())| g),
            View::Corrupt { s, c } => {
                self.quarantine(i, s, c, now);
                None
            }
            _ => None,
        }
    }

    /// §5.1: take a ticket and claim its slot; if the slot is in use, find
    /// a free slot further on without taking a ticket per slot looked at,
    /// and take the tickets up to it with one CAS of `fill`. Returns
    /// (ticket, slot, claim generation), or `Full` when a whole lap of slots
    /// was busy.
    fn take_slot(&self, now: u64) -> Result<(u64, u32, u64)> {
        let sh = self.mem.shared();
        let n = u64::from(self.n);
        // SeqCst: part of the Dekker pair of §6 (a parked receiver that sees
        // the publish must also see the ticket). No other ordering is
        // needed: the slot's own CASes order the message.
        let t = sh.fill.fetch_add(1, SeqCst);
        let i = (t % n) as u32;
        if let Some(g) = self.claim(i, now) {
            return Ok((t, i, g));
        }
        // Mutant (design.md §10): a slot still in use ends the send.
        #[cfg(shmq_mutation = "send_no_step_over")]
        return Err(Error::Full);
        let mut hinted = false;
        for _ in 0..CAS_RETRIES {
            let f = sh.fill.load(SeqCst);
            let Some(j) = self.find_free(f, now) else {
                if hinted {
                    return Err(Error::Full);
                }
                // SYNC POINT (§5.1, full queue): store the hint, then look at
                // every slot once more, against a freeing commit followed by
                // a load of the hint (`note_freed`). Store-then-load on both
                // sides: either the freer sees the hint and credits it, or
                // this second look sees the free slot.
                // Swaps rather than stores, here and below: the same
                // instruction on x86 (a SeqCst store is an `xchg`), and loom
                // 0.7 let this thread's later load read a credit a freer's
                // CAS wrote before this store, which C++ coherence forbids.
                sh.full_hint.swap(full_hint_at(now), SeqCst);
                hinted = true;
                #[cfg(shmq_mutation = "full_hint_no_second_look")]
                return Err(Error::Full);
                #[cfg(not(shmq_mutation = "full_hint_no_second_look"))]
                continue;
            };
            if std::mem::take(&mut hinted) {
                // The second look found a free slot: the hint is void, and
                // so are any credits freers gave it meanwhile (they may count
                // this slot, while another freed slot went uncounted because
                // its freer saw no hint). Dropping it costs only a look.
                sh.full_hint.swap(0, SeqCst);
            }
            // The tickets up to the free slot's in one step; if other senders
            // took tickets meanwhile, take the next one.
            let t = f.wrapping_add(j);
            let t = match sh
                .fill
                .compare_exchange(f, t.wrapping_add(1), SeqCst, Relaxed)
            {
                Ok(_) => t,
                Err(_) => sh.fill.fetch_add(1, SeqCst),
            };
            let i = (t % n) as u32;
            if let Some(g) = self.claim(i, now) {
                return Ok((t, i, g));
            }
        }
        Err(Error::Full)
    }

    /// Whether slot `i` is FREE and at rest.
    fn is_free(&self, i: u32) -> bool {
        matches!(self.read(i), View::AtRest { st: St::Free, .. })
    }

    /// The distance from ticket `f` to the first ticket whose slot is free,
    /// looking at one lap of slots; `None` if every slot is in use.
    fn find_free(&self, f: u64, now: u64) -> Option<u64> {
        let n = u64::from(self.n);
        (0..n).find(|j| {
            let i = (f.wrapping_add(*j) % n) as u32;
            match self.read(i) {
                View::AtRest { st: St::Free, .. } => true,
                View::Corrupt { s, c } => {
                    self.quarantine(i, s, c, now);
                    false
                }
                _ => false,
            }
        })
    }

    /// Whether a sender found every slot in use within the last
    /// [`FULL_HINT_MS`] and no slot was freed since that no later send took
    /// (the hint's credits are 0): then a send fails `Full` at once, without
    /// a ticket. A hint only: a freer killed between its commit and
    /// `note_freed` leaves a credit out, so the hint expires; a hostile value
    /// can only make sends fail `Full` for as long as it is rewritten.
    fn full_without_credit(&self, now: u64) -> bool {
        // No pairing: a hint read, right or stale. (SeqCst, like every access
        // to the hint, so that all of them sit in the one order the Dekker
        // pair of `take_slot` and `note_freed` is argued in; free on x86.)
        let h = self.mem.shared().full_hint.load(SeqCst);
        let Some(t) = (h >> HINT_CREDIT_BITS).checked_sub(1) else {
            return false;
        };
        h & HINT_CREDIT_MASK == 0 && t <= now && now <= t.saturating_add(FULL_HINT_MS)
    }

    /// A send claimed `k` slots: take `k` credits off the full-queue hint,
    /// if it has any (§5.1). Only a queue that was full has credits.
    fn spend_credits(&self, k: u64) {
        // The count needs only the RMWs' single modification order of this
        // one word; nothing else is published through it (SeqCst as in
        // `full_without_credit`).
        let hint = &self.mem.shared().full_hint;
        let mut h = hint.load(SeqCst);
        for _ in 0..CAS_RETRIES {
            let credits = h & HINT_CREDIT_MASK;
            if h == 0 || credits == 0 {
                return;
            }
            match hint.compare_exchange(h, h - credits.min(k), SeqCst, SeqCst) {
                Ok(_) => return,
                Err(x) => h = x,
            }
        }
    }

    /// A slot became FREE: if a sender left the full-queue hint, give it a
    /// credit, so that the next send tries instead of failing (§5.1); with
    /// many credits the queue is no longer full, and the hint is dropped.
    /// SYNC POINT: SeqCst load after the SeqCst commit that freed the slot,
    /// against the sender's store of the hint then second look.
    fn note_freed(&self) {
        self.credit_hint();
        // SYNC POINT (§5.1, waiting for room): SeqCst load after the SeqCst
        // commit that freed the slot, against a waiting sender's SeqCst RMW
        // of the waiter bit followed by its look at every slot
        // (`send_looking`): either it sees this slot free or we see its bit.
        // The same line as the hint just loaded: no extra line transfer.
        // Mutant (design.md §10): the freer never looks at `room`.
        #[cfg(not(shmq_mutation = "room_no_wake"))]
        {
            let room = &self.mem.shared().room;
            let w = dekker_load32(room);
            if w & 1 != 0 {
                self.wake_room(w);
            }
        }
    }

    /// Clear the waiter bit of `room` (seen as `w`), bump its sequence and
    /// wake every sender parked on it. A CAS loses only to another waker or
    /// a new waiter, either of which leaves the word changed, so the parked
    /// senders' futex wait returns anyway.
    fn wake_room(&self, w: u32) {
        let room = &self.mem.shared().room;
        // SYNC POINT: SeqCst like the waiter's RMW of the bit.
        if room
            .compare_exchange(w, w.wrapping_add(2) & !1, SeqCst, Relaxed)
            .is_ok()
        {
            (self.p.wake)(room);
        }
    }

    /// Give the full-queue hint a credit for a freed slot (see `note_freed`).
    fn credit_hint(&self) {
        let hint = &self.mem.shared().full_hint;
        let mut h = dekker_load(hint);
        // The credit CAS needs only the hint word's modification order; the
        // load above is the Dekker half.
        for _ in 0..CAS_RETRIES {
            if h == 0 {
                return;
            }
            let credits = h & HINT_CREDIT_MASK;
            let new = if credits + 1 >= HINT_DROP_CREDITS {
                0
            } else {
                h + 1
            };
            match hint.compare_exchange(h, new, SeqCst, SeqCst) {
                Ok(_) => return,
                Err(x) => h = x,
            }
        }
    }

    /// Write the message into claimed slot `i` (claim generation `g`) and
    /// publish it: WRITING -> READY, visible from `now + delay_ms`.
    fn write_and_publish(
        &self,
        t: u64,
        i: u32,
        g: u64,
        msg: &[u8],
        delay_ms: u64,
        now: u64,
    ) -> Result<()> {
        failpoint!("send.after_claim");
        let w = self.w(i);
        // Release: pairs with the Acquire load in `holds_published`, which
        // must see the claim commit above when it sees this id.
        w.msg_id.store(t, Release);
        w.len.store(msg.len() as u32, Relaxed);
        w.receives.store(0, Relaxed);
        w.sent_ms.store(now, Relaxed);
        w.reason.store(0, Relaxed);
        let crc = if self.p.checksums {
            message_crc(t, msg)
        } else {
            0
        };
        w.crc.store(crc, Relaxed);
        // SYNC POINT: pairs with the fence(Acquire) of `peek`'s seqlock read:
        // a peeker that sees any payload word below also sees our claim.
        fence(Release);
        write_payload(self.mem.payload(i), msg);
        failpoint!("send.before_publish");

        // Publish: WRITING -> READY. Our claim reservation is the expected clock.
        let s = pack_state(g, St::Writing);
        let c = pack_clock(now + self.p.claim_ms, g);
        if self
            .transition(i, s, c, St::Ready, now + delay_ms, |_, _| ())
            .is_err()
        {
            self.release_abandoned(i, g, now);
            return Err(Error::ClaimExpired);
        }
        Ok(())
    }

    /// §5.1 after publishing ticket `t` (the smallest of a batch): if
    /// receivers already walked past it, move `rcur` back to it. `skips` is
    /// the `skips` counter read before the ticket was taken: unless it moved
    /// since, no receiver stepped over any ticket meanwhile, and `rcur` (a
    /// line the receivers write on every receive) is not read at all.
    /// SYNC POINT: SeqCst load of `skips` after the SeqCst publish
    /// commit(s), against the receiver's `skips` increment then state load
    /// (`receive_main`). One of the two sees the other.
    fn recheck_rcur(&self, skips: u64, t: u64) {
        let sh = self.mem.shared();
        if dekker_load(&sh.skips) == skips {
            return;
        }
        let rcur = &sh.rcur;
        let mut r = rcur.load(SeqCst);
        for _ in 0..CAS_RETRIES {
            if r <= t {
                break;
            }
            match rcur.compare_exchange(r, t, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now_r) => r = now_r,
            }
        }
    }

    /// After a failed publish: our claim was abandoned. Free the slot, which
    /// nobody else frees while we live (§7).
    fn release_abandoned(&self, i: u32, claim_gen: u64, now: u64) {
        let me = owner_word(self.pid(), claim_gen);
        for _ in 0..CAS_RETRIES {
            match self.read(i) {
                View::AtRest {
                    s,
                    c,
                    st: St::Abandoned,
                    gen,
                    ..
                } if gen == next_gen(claim_gen) && self.w(i).owner.load(Relaxed) == me => {
                    let _ = self.transition(i, s, c, St::Free, now, |_, _| ());
                    return;
                }
                View::Pending {
                    st: St::Writing,
                    gen,
                    ..
                } if gen == claim_gen => spin_hint(),
                _ => return,
            }
        }
    }

    // -------------------------------------------------------------- receive

    /// Lease one visible message (or an expired lease) into `buf`.
    ///
    /// `sweep_first`: take a sweep step before the main path (receivers do this
    /// every few receives so that a busy queue still finds returned messages).
    /// `sweep_budget`: slots to sweep when the main path is empty.
    pub fn try_receive(
        &self,
        now: u64,
        visibility_ms: u64,
        buf: &mut Vec<u8>,
        sweep_first: bool,
        sweep_budget: u64,
    ) -> Option<Delivery> {
        if sweep_first {
            if let Some(d) = self.sweep(now, SWEEP_STEP, visibility_ms, buf) {
                return Some(d);
            }
        }
        if let Some(d) = self.receive_main(now, visibility_ms, buf) {
            return Some(d);
        }
        self.sweep(now, sweep_budget, visibility_ms, buf)
    }

    /// §5.2: follow the senders' tickets.
    fn receive_main(&self, now: u64, vt: u64, buf: &mut Vec<u8>) -> Option<Delivery> {
        let sh = self.mem.shared();
        let n = u64::from(self.n);
        for _ in 0..2 * n + 8 {
            let r = sh.rcur.load(SeqCst);
            let mut f = self.fill_seen.load(Relaxed);
            if r >= f {
                // Caught up with our last reading: read the senders' word.
                f = sh.fill.load(SeqCst);
                self.fill_seen.store(f, Relaxed);
                if r > f {
                    // Ahead of every ticket: only a foreign write does that
                    // (receivers never pass `fill`). Bring it back, or the
                    // main path would skip the next messages sent (§8).
                    let _ = sh.rcur.compare_exchange(r, f, SeqCst, Relaxed);
                    self.fill_seen.store(0, Relaxed);
                    return None;
                }
                if r == f {
                    return None;
                }
            }
            if f - r > n {
                if sh.rcur.compare_exchange(r, f - n, SeqCst, Relaxed).is_ok() {
                    self.note_skip();
                }
                continue;
            }
            let i = (r % n) as u32;
            if let Some(d) = self.try_take(i, now, vt, buf, false) {
                // A message other than ticket r's (a returned one that sat in
                // the slot) leaves ticket r unleased: that is a skip too.
                if sh.rcur.compare_exchange(r, r + 1, SeqCst, Relaxed).is_ok() && d.id != r {
                    self.note_skip();
                }
                return Some(d);
            }
            // The newest ticket's slot is still being claimed or written:
            // its sender publishes in a moment. With nothing beyond it,
            // stepping over it would only make the sender move `rcur` back
            // (§5.1). Wait a little for the publish, looking at the slot
            // only every few pauses (each look takes the line from the
            // writing sender); then report the main path empty. The next
            // ticket taken makes the slot one to step over.
            if r + 1 == f && self.in_flight(i) {
                // `f` may be this process's stale reading: look at `fill`
                // before waiting on a ticket that may not be the newest.
                let f2 = sh.fill.load(SeqCst);
                self.fill_seen.store(f2, Relaxed);
                if f2 != f {
                    continue;
                }
                if self.wait_publish(i) {
                    continue;
                }
                return None;
            }
            // SYNC POINT (§5.1): advance, count the skip, then look again,
            // against the sender's publish commit then load of `skips`. One
            // of us sees the other.
            if sh.rcur.compare_exchange(r, r + 1, SeqCst, Relaxed).is_ok() {
                #[cfg(not(shmq_mutation = "no_skip_mark"))]
                if !self.holds_published(i, r) {
                    self.note_skip();
                }
                if let Some(d) = self.try_take(i, now, vt, buf, false) {
                    return Some(d);
                }
            }
        }
        None
    }

    /// Whether slot `i` holds ticket `t`'s own message, published (READY,
    /// LEASED or DEAD, at rest): then nobody will publish ticket `t` again,
    /// and stepping over it needs no count in `skips` (§5.2). This is the
    /// common step with competing receivers: another receiver leased the
    /// message and has not advanced `rcur` yet.
    ///
    /// The id is read between two reads of the state word: a sender that
    /// claims the slot meanwhile changes the state before it stores its id
    /// (Release), so an id read from a newer claim is caught by the second
    /// read (Acquire on the id, then the state).
    fn holds_published(&self, i: u32, t: u64) -> bool {
        let View::AtRest {
            s,
            st: St::Ready | St::Leased | St::Dead,
            ..
        } = self.read(i)
        else {
            return false;
        };
        let w = self.w(i);
        w.msg_id.load(Acquire) == t && dekker_load(&w.state) == s
    }

    /// A receiver moved `rcur` past a ticket it did not lease (§5.2).
    /// SYNC POINT: SeqCst RMW after the `rcur` CAS and before the re-check
    /// load of the slot, against the sender's publish then load of `skips`
    /// (`recheck_rcur`).
    fn note_skip(&self) {
        self.mem.shared().skips.fetch_add(1, SeqCst);
    }

    /// Wait up to [`PUBLISH_WAIT_LOOKS`] looks, a few spin pauses apart, for
    /// slot `i` to stop being in flight. A sender publishes within about a
    /// hundred nanoseconds of taking its ticket, so this bounds the wait at
    /// a few microseconds, spent only when a sender is mid-send (or died
    /// there, until the next ticket is taken).
    fn wait_publish(&self, i: u32) -> bool {
        for _ in 0..PUBLISH_WAIT_LOOKS {
            for _ in 0..PUBLISH_WAIT_PAUSES {
                spin_hint();
            }
            if !self.in_flight(i) {
                return true;
            }
        }
        false
    }

    /// Whether slot `i` is being claimed or written: FREE (a sender holds
    /// its ticket and has not claimed yet), WRITING, or a transition pending.
    fn in_flight(&self, i: u32) -> bool {
        matches!(
            self.read(i),
            View::AtRest {
                st: St::Free | St::Writing,
                ..
            } | View::Pending { .. }
        )
    }

    /// §5.2 for a batch: lease the messages of consecutive tickets from
    /// `rcur` while their slots hold visible READY messages, at most `max`,
    /// then advance `rcur` over all of them with one CAS. Each lease is the
    /// single transition of §4. Deliveries are pushed to `got` and the
    /// payload of `got[k]` is copied into `bufs[k]` (grown as needed).
    /// Returns how many were leased; 0 when the next ticket's slot holds
    /// anything else, which the single-message path then steps over.
    ///
    /// Skipping only slots it leased itself, the advance hides nothing
    /// from other receivers: a leased slot holds no other message, and no
    /// sender publishes into it while the lease lasts.
    pub fn receive_many(
        &self,
        now: u64,
        vt: u64,
        bufs: &mut Vec<Vec<u8>>,
        got: &mut Vec<Delivery>,
        max: usize,
    ) -> usize {
        let sh = self.mem.shared();
        let n = u64::from(self.n);
        let r = sh.rcur.load(SeqCst);
        let mut f = self.fill_seen.load(Relaxed);
        if r >= f {
            f = sh.fill.load(SeqCst);
            self.fill_seen.store(f, Relaxed);
        }
        if r >= f || f - r > n {
            return 0;
        }
        let want = (f - r).min(max as u64);
        let mut k = 0u64;
        // Whether a leased message was not its ticket's own (a returned one
        // sitting in the slot): the advance then passes a ticket unleased,
        // which counts as a skip (§5.2).
        let mut foreign = false;
        while k < want {
            let i = ((r + k) % n) as u32;
            let View::AtRest {
                s,
                c,
                st: St::Ready,
                time,
                ..
            } = self.read(i)
            else {
                break;
            };
            if !self.visible(i, time, now) {
                break;
            }
            let at = got.len();
            if bufs.len() <= at {
                bufs.resize_with(at + 1, Vec::new);
            }
            let Some(d) = self.lease(i, s, c, now, vt, &mut bufs[at]) else {
                break;
            };
            foreign |= d.id != r + k;
            got.push(d);
            k += 1;
        }
        if k > 0 {
            #[cfg(not(shmq_mutation = "batch_skip_one_more"))]
            let to = r + k;
            // Mutant (design.md §10): advance over one ticket more than was
            // leased.
            #[cfg(shmq_mutation = "batch_skip_one_more")]
            let to = r + k + 1;
            if sh.rcur.compare_exchange(r, to, SeqCst, Relaxed).is_ok() && foreign {
                self.note_skip();
            }
        }
        k as usize
    }

    /// §5.3: advance the sweep cursor by up to `budget` slots, repairing what
    /// it passes and leasing the first message it can.
    fn sweep(&self, now: u64, budget: u64, vt: u64, buf: &mut Vec<u8>) -> Option<Delivery> {
        let sh = self.mem.shared();
        let due = sh.sweep_due.load(SeqCst);
        if now < due {
            return None;
        }
        let n = u64::from(self.n);
        for _ in 0..budget.min(n) {
            let k = sh.sweep_cursor.fetch_add(1, Relaxed);
            let i = (k % n) as u32;
            let got = self.try_take(i, now, vt, buf, true);
            if k % n == n - 1 {
                self.end_lap(due, now);
            }
            if got.is_some() {
                return got;
            }
        }
        None
    }

    /// The end of a sweep lap: schedule the next round at the earliest time
    /// the lap saw (or one interval from now), unless a message became
    /// visible behind the cursors meanwhile (then sweep on at once).
    fn end_lap(&self, due_seen: u64, now: u64) {
        let sh = self.mem.shared();
        let next = sh
            .sweep_next
            .swap(u64::MAX, SeqCst)
            .min(now + self.sweep_interval_ms);
        let _ = sh
            .sweep_due
            .compare_exchange(due_seen, next, SeqCst, SeqCst);
        // SYNC POINT: SeqCst against `signal_return` (store pending, then due).
        if sh.sweep_pending.swap(0, SeqCst) != 0 {
            sh.sweep_due.store(0, SeqCst);
        }
    }

    /// Something in the queue changes at time `t` (a delayed message becomes
    /// visible, a lease expires): make sure a sweep round starts by then.
    fn note_due(&self, t: u64) {
        let sh = self.mem.shared();
        // Loads first: the RMWs are needed only when `t` is the new earliest.
        // SYNC POINT: the SeqCst RMWs pair with `end_lap`'s SeqCst swap of
        // `sweep_next` and CAS of `sweep_due`: a time noted before the swap
        // is folded into the next due time, one noted after stays for the
        // next lap, and one that lowers `sweep_due` after the lap read it
        // makes the lap's CAS fail (§5.3).
        if t < sh.sweep_next.load(Relaxed) {
            sh.sweep_next.fetch_min(t, SeqCst);
        }
        if t < sh.sweep_due.load(Relaxed) {
            sh.sweep_due.fetch_min(t, SeqCst);
        }
    }

    /// A message became visible behind the cursors: make the sweep run a full
    /// lap from now on (§5.3).
    fn signal_return(&self) {
        let sh = self.mem.shared();
        sh.sweep_pending.store(1, SeqCst);
        sh.sweep_due.store(0, SeqCst);
    }

    /// Examine slot `i` once and take what it offers. On the main path only
    /// READY messages (and corrupt slots) are handled; the sweep also repairs.
    fn try_take(
        &self,
        i: u32,
        now: u64,
        vt: u64,
        buf: &mut Vec<u8>,
        sweeping: bool,
    ) -> Option<Delivery> {
        match self.read(i) {
            View::AtRest {
                s,
                c,
                st: St::Ready,
                time,
                ..
            } if self.visible(i, time, now) && (!sweeping || self.behind_main_path(i)) => {
                self.lease(i, s, c, now, vt, buf)
            }
            View::AtRest {
                s,
                c,
                st: St::Leased,
                time,
                ..
            } if sweeping && time <= now => self.expire(i, s, c, now, vt, buf),
            View::AtRest {
                s,
                c,
                st: St::Writing,
                time,
                ..
            } if sweeping && time <= now => {
                self.abandon(i, s, c, now);
                None
            }
            View::AtRest {
                s,
                c,
                st: St::Abandoned,
                gen,
                ..
            } if sweeping => {
                let owner = self.w(i).owner.load(Relaxed);
                let pid = (owner >> 32) as u32;
                // The owner was recorded for the claim generation, one before.
                let current = owner & 0xffff_ffff == gen.wrapping_sub(1) & 0xffff_ffff;
                if !current || !(self.p.is_alive)(pid) {
                    let _ = self.transition(i, s, c, St::Free, now, |_, _| ());
                }
                None
            }
            View::Pending { s, st, time, .. }
                if sweeping && time.saturating_add(GRACE_MS) < now =>
            {
                self.abort(i, s, st);
                None
            }
            View::Corrupt { s, c } => {
                self.quarantine(i, s, c, now);
                None
            }
            View::AtRest {
                st: St::Ready | St::Leased | St::Writing,
                time,
                ..
            } if sweeping => {
                self.note_due(time);
                None
            }
            View::Pending { time, .. } if sweeping => {
                self.note_due(time.saturating_add(GRACE_MS + 1));
                None
            }
            _ => None,
        }
    }

    /// Whether a READY message with clock time `time` is visible to a
    /// receiver whose clock reading is `now`. A message sent without a delay
    /// is visible at once, even to a receiver that read the clock a tick
    /// before the sender did: its visible time equals its send time.
    fn visible(&self, i: u32, time: u64, now: u64) -> bool {
        time <= now || time <= self.w(i).sent_ms.load(Relaxed)
    }

    /// Whether the message in slot `i` is one the main path will not reach:
    /// its id (its ticket) is behind `rcur`, or is no ticket ever handed out.
    /// The sweep leaves the others to the main path, so that in a busy queue
    /// it keeps moving (and finds expired leases) instead of stopping at every
    /// fresh message (§5.3).
    fn behind_main_path(&self, i: u32) -> bool {
        let sh = self.mem.shared();
        let id = self.w(i).msg_id.load(Relaxed);
        id < sh.rcur.load(Relaxed) || id >= sh.fill.load(Relaxed)
    }

    /// READY (or expired LEASED) -> LEASED, then copy the message out.
    fn lease(
        &self,
        i: u32,
        s: u64,
        c: u64,
        now: u64,
        vt: u64,
        buf: &mut Vec<u8>,
    ) -> Option<Delivery> {
        let deadline = now + vt;
        let (g1, before) = self
            .transition(i, s, c, St::Leased, deadline, |w, g1| {
                let r = w.receives.load(Relaxed);
                w.receives.store(r.saturating_add(1), Relaxed);
                w.owner.store(owner_word(self.pid(), g1), Relaxed);
                r
            })
            .ok()?;
        failpoint!("receive.after_lease");
        if before > 0 {
            self.mem.shared().redelivered.fetch_add(1, Relaxed);
        }
        let w = self.w(i);
        let len = w.len.load(Relaxed) as usize;
        if len > self.p.slot_size as usize {
            self.quarantine_held(i, g1, now);
            return None;
        }
        read_payload(self.mem.payload(i), len, buf);
        let id = w.msg_id.load(Relaxed);
        if self.p.checksums && message_crc(id, buf) != w.crc.load(Relaxed) {
            self.quarantine_held(i, g1, now);
            return None;
        }
        Some(Delivery {
            receipt: Receipt { slot: i, gen: g1 },
            id,
            receives: before.saturating_add(1),
            deadline_ms: deadline,
            sent_ms: w.sent_ms.load(Relaxed),
        })
    }

    /// A lease we just took turned out to hold a corrupt message.
    fn quarantine_held(&self, i: u32, gen: u64, now: u64) {
        if let View::AtRest {
            s,
            c,
            st: St::Leased,
            gen: g,
            ..
        } = self.read(i)
        {
            if g == gen {
                let _ = self.transition(i, s, c, St::Dead, now, |w, _| {
                    w.reason.store(DeadReason::Corrupt.code(), Relaxed);
                });
            }
        }
    }

    /// An expired lease: redeliver it, or dead-letter it at max receives.
    fn expire(
        &self,
        i: u32,
        s: u64,
        c: u64,
        now: u64,
        vt: u64,
        buf: &mut Vec<u8>,
    ) -> Option<Delivery> {
        if self.w(i).receives.load(Relaxed) >= self.p.max_receives {
            self.dead_letter(i, s, c, now);
            return None;
        }
        self.lease(i, s, c, now, vt, buf)
    }

    fn dead_letter(&self, i: u32, s: u64, c: u64, now: u64) -> bool {
        self.kill(i, s, c, now, DeadReason::MaxReceives)
    }

    /// LEASED -> DEAD with `reason`, counted in `dead_lettered`.
    fn kill(&self, i: u32, s: u64, c: u64, now: u64, reason: DeadReason) -> bool {
        // Mutant (design.md §10): side data written before the reservation.
        #[cfg(shmq_mutation = "reason_before_reserve")]
        self.w(i).reason.store(reason.code(), Relaxed);
        let ok = self
            .transition(i, s, c, St::Dead, now, |w, g1| {
                failpoint!("deadletter.inside");
                w.reason.store(reason.code(), Relaxed);
                w.owner.store(owner_word(self.pid(), g1), Relaxed);
            })
            .is_ok();
        if ok {
            self.mem.shared().dead_lettered.fetch_add(1, Relaxed);
        }
        ok
    }

    /// An expired claim: WRITING -> ABANDONED; straight on to FREE if the
    /// claimer is gone.
    /// Returns whether the claim was abandoned by this call.
    fn abandon(&self, i: u32, s: u64, c: u64, now: u64) -> bool {
        let pid = (self.w(i).owner.load(Relaxed) >> 32) as u32;
        let Ok((g1, ())) = self.transition(i, s, c, St::Abandoned, now, |_, _| ()) else {
            return false;
        };
        if !(self.p.is_alive)(pid) {
            let _ = self.transition(
                i,
                pack_state(g1, St::Abandoned),
                pack_clock(now, g1),
                St::Free,
                now,
                |_, _| (),
            );
        }
        true
    }

    // ------------------------------------------------- ack, nack, extend

    /// The slot's words if `rc` is still the current lease.
    fn held(&self, rc: Receipt) -> Result<(u64, u64, u64)> {
        if rc.slot >= self.n {
            return Err(Error::BadReceipt);
        }
        match self.read(rc.slot) {
            #[cfg(not(shmq_mutation = "no_gen_fence"))]
            View::AtRest {
                s,
                c,
                st: St::Leased,
                gen,
                time,
            } if gen == rc.gen => Ok((s, c, time)),
            // Mutant (design.md §10): any lease of the slot passes for ours.
            #[cfg(shmq_mutation = "no_gen_fence")]
            View::AtRest {
                s,
                c,
                st: St::Leased,
                time,
                ..
            } => Ok((s, c, time)),
            _ => Err(Error::LeaseLost),
        }
    }

    /// Delete the message for good.
    pub fn ack(&self, rc: Receipt, now: u64) -> Result<()> {
        self.free_lease(rc, now)?;
        self.mem.shared().acked.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Ack every receipt; one update of the `acked` counter for the batch.
    /// Returns how many were acked; each receipt whose ack failed is pushed
    /// to `failed` with its error, and does not stop the rest.
    pub fn ack_many(
        &self,
        receipts: impl IntoIterator<Item = Receipt>,
        now: u64,
        failed: &mut Vec<(Receipt, Error)>,
    ) -> usize {
        let mut acked = 0;
        for rc in receipts {
            match self.free_lease(rc, now) {
                Ok(()) => acked += 1,
                Err(e) => failed.push((rc, e)),
            }
        }
        if acked > 0 {
            self.mem.shared().acked.fetch_add(acked as u64, Relaxed);
        }
        acked
    }

    /// The ack transition, LEASED -> FREE, without the counter.
    fn free_lease(&self, rc: Receipt, now: u64) -> Result<()> {
        for _ in 0..CAS_RETRIES {
            let (s, c, _) = self.held(rc)?;
            match self.transition(rc.slot, s, c, St::Free, now, |w, _| {
                failpoint!("ack.inside");
                w.reason.store(0, Relaxed);
            }) {
                Ok(_) => return Ok(()),
                // An extend from another handle moved the clock: look again.
                Err(Step::Raced) => continue,
                Err(Step::Aborted) => return Err(Error::LeaseLost),
            }
        }
        Err(Error::Contended)
    }

    /// Release the lease: visible again after `delay_ms`, or dead at max receives.
    pub fn nack(&self, rc: Receipt, delay_ms: u64, now: u64) -> Result<Nacked> {
        for _ in 0..CAS_RETRIES {
            let (s, c, _) = self.held(rc)?;
            if self.w(rc.slot).receives.load(Relaxed) >= self.p.max_receives {
                if self.dead_letter(rc.slot, s, c, now) {
                    return Ok(Nacked::DeadLettered);
                }
                continue;
            }
            match self.transition(rc.slot, s, c, St::Ready, now + delay_ms, |_, _| {
                failpoint!("nack.inside");
            }) {
                Ok(_) => {
                    if delay_ms == 0 {
                        self.signal_return();
                    } else {
                        self.note_due(now + delay_ms);
                    }
                    return Ok(Nacked::Requeued);
                }
                Err(Step::Raced) => continue,
                Err(Step::Aborted) => return Err(Error::LeaseLost),
            }
        }
        Err(Error::Contended)
    }

    /// Dead-letter the leased message at once, whatever its receive count
    /// (reason `Rejected`): LEASED -> DEAD, the same transition as a nack at
    /// max receives (§3).
    pub fn reject(&self, rc: Receipt, now: u64) -> Result<()> {
        for _ in 0..CAS_RETRIES {
            let (s, c, _) = self.held(rc)?;
            if self.kill(rc.slot, s, c, now, DeadReason::Rejected) {
                return Ok(());
            }
            // Lost the reservation (an extend moved the clock) or the commit
            // (aborted after a stall): look again; `held` tells which.
        }
        Err(Error::Contended)
    }

    /// Move the lease deadline to `now + timeout_ms`. Returns the deadline.
    pub fn extend(&self, rc: Receipt, timeout_ms: u64, now: u64) -> Result<u64> {
        let deadline = now + timeout_ms;
        for _ in 0..CAS_RETRIES {
            let (_, c, _) = self.held(rc)?;
            // Clock only: the generation (and so every copy of the receipt)
            // stays valid. SYNC POINT: a takeover must CAS this same word
            // first (§4 Extend), so exactly one of us wins.
            #[cfg(not(shmq_mutation = "extend_no_cas"))]
            if self
                .w(rc.slot)
                .clock
                .compare_exchange(c, pack_clock(deadline, rc.gen), AcqRel, Acquire)
                .is_ok()
            {
                return Ok(deadline);
            }
            // Mutant (design.md §10): a plain store over whatever the clock
            // holds now, a takeover's reservation included.
            #[cfg(shmq_mutation = "extend_no_cas")]
            {
                let _ = c;
                self.w(rc.slot)
                    .clock
                    .store(pack_clock(deadline, rc.gen), Release);
                return Ok(deadline);
            }
        }
        Err(Error::Contended)
    }

    // ------------------------------------------------------- dead letters

    /// DEAD -> READY with the receive count reset. `gen`, if given, must match.
    pub fn redrive(&self, i: u32, gen: Option<u64>, now: u64) -> Result<bool> {
        self.leave_dead(i, gen, now, St::Ready)
    }

    /// DEAD -> FREE. `gen`, if given, must match.
    pub fn purge(&self, i: u32, gen: Option<u64>, now: u64) -> Result<bool> {
        self.leave_dead(i, gen, now, St::Free)
    }

    fn leave_dead(&self, i: u32, want: Option<u64>, now: u64, to: St) -> Result<bool> {
        if i >= self.n {
            return Err(Error::BadReceipt);
        }
        for _ in 0..CAS_RETRIES {
            let View::AtRest {
                s,
                c,
                st: St::Dead,
                gen,
                ..
            } = self.read(i)
            else {
                return Ok(false);
            };
            if want.is_some_and(|g| g != gen) {
                return Ok(false);
            }
            // A claim that `recover --force-abandoned` quarantined (reason
            // Recovered) still belongs to its stalled sender: if that sender
            // resumes, it writes its message words and payload into the slot
            // before its publish fails. Freeing or redriving the slot while
            // the sender lives would let those late writes land in the next
            // message to use the slot (§7, stopped processes), so it stays
            // dead until the sender is gone. Regression test:
            // tests/failpoints.rs, a_forced_hole_that_is_purged_and_reused_*.
            let w = self.w(i);
            if w.reason.load(Relaxed) == DeadReason::Recovered.code()
                && (self.p.is_alive)((w.owner.load(Relaxed) >> 32) as u32)
            {
                return Ok(false);
            }
            let done = self.transition(i, s, c, to, now, |w, _| {
                if to == St::Ready {
                    failpoint!("redrive.inside");
                    w.receives.store(0, Relaxed);
                } else {
                    failpoint!("purge.inside");
                }
                w.reason.store(0, Relaxed);
            });
            match done {
                Ok(_) => {
                    if to == St::Ready {
                        self.signal_return();
                    }
                    return Ok(true);
                }
                Err(Step::Raced) => continue,
                Err(Step::Aborted) => return Ok(false),
            }
        }
        Err(Error::Contended)
    }

    // -------------------------------------------------- inspection, repair

    /// A best-effort snapshot of slot `i` (`i < slot_count`).
    pub fn info(&self, i: u32) -> SlotInfo {
        let w = self.w(i);
        let view = self.read(i);
        let (s, c) = match view {
            View::AtRest { s, c, .. } | View::Pending { s, c, .. } | View::Corrupt { s, c } => {
                (s, c)
            }
        };
        let gen = gen_of(s);
        let state = match view {
            View::Corrupt { .. } => St::from_bits(s & 0xff),
            View::AtRest { st, .. } | View::Pending { st, .. } => Some(st),
        };
        let owner = w.owner.load(Relaxed);
        // A claim's owner is written for the claim generation; the publish
        // (and an abandon) bump the generation once more.
        let owner_gen = owner & 0xffff_ffff;
        let owner_current =
            owner_gen == gen & 0xffff_ffff || owner_gen == gen.wrapping_sub(1) & 0xffff_ffff;
        SlotInfo {
            slot: i,
            state,
            pending: matches!(view, View::Pending { .. }),
            corrupt: matches!(view, View::Corrupt { .. }),
            gen,
            time_ms: time_of(c),
            id: w.msg_id.load(Relaxed),
            len: w.len.load(Relaxed),
            receives: w.receives.load(Relaxed),
            sent_ms: w.sent_ms.load(Relaxed),
            owner_pid: (owner >> 32) as u32,
            owner_current,
            reason: w.reason.load(Relaxed),
        }
    }

    /// Copy the message in slot `i` without leasing it (a seqlock read, §4).
    /// `None` if the slot holds no message or changed while being read.
    pub fn peek(&self, i: u32, buf: &mut Vec<u8>) -> Option<SlotInfo> {
        let w = self.w(i);
        let s1 = w.state.load(Acquire);
        let info = self.info(i);
        if info.pending
            || info.corrupt
            || !matches!(info.state, Some(St::Ready | St::Leased | St::Dead))
        {
            return None;
        }
        let len = info.len as usize;
        if len > self.p.slot_size as usize {
            return None;
        }
        read_payload(self.mem.payload(i), len, buf);
        // SYNC POINT: pairs with the sender's fence(Release) after its claim.
        fence(Acquire);
        if w.state.load(Relaxed) != s1 || gen_of(s1) != info.gen {
            return None;
        }
        Some(info)
    }

    /// One repair step for `recover`: abort a stale pending transition,
    /// quarantine a corrupt slot, expire an overdue lease or claim, reclaim an
    /// abandoned slot whose owner is gone, or (`force_abandoned`) quarantine
    /// an abandoned slot whose owner lives. Returns what it did.
    pub fn repair(&self, i: u32, now: u64, force_abandoned: bool) -> Option<&'static str> {
        failpoint!("recover.inside");
        match self.read(i) {
            View::Corrupt { s, c } => self
                .quarantine(i, s, c, now)
                .then_some("quarantined corrupt slot"),
            View::Pending { s, st, time, .. } if time.saturating_add(GRACE_MS) < now => self
                .abort(i, s, st)
                .then_some("aborted stale pending transition"),
            View::AtRest {
                s,
                c,
                st: St::Leased,
                time,
                ..
            } if time <= now => {
                if self.w(i).receives.load(Relaxed) >= self.p.max_receives {
                    self.dead_letter(i, s, c, now)
                        .then_some("dead-lettered expired lease at max receives")
                } else {
                    self.transition(i, s, c, St::Ready, now, |_, _| ())
                        .ok()
                        .map(|_| {
                            self.signal_return();
                            "returned expired lease to visible"
                        })
                }
            }
            View::AtRest {
                s,
                c,
                st: St::Leased,
                gen,
                ..
            } => {
                let owner = self.w(i).owner.load(Relaxed);
                let pid = (owner >> 32) as u32;
                let known = owner & 0xffff_ffff == gen & 0xffff_ffff && pid != 0;
                if known
                    && !(self.p.is_alive)(pid)
                    && self.w(i).receives.load(Relaxed) >= self.p.max_receives
                {
                    self.dead_letter(i, s, c, now)
                        .then_some("dead-lettered lease of a dead process at max receives")
                } else if known && !(self.p.is_alive)(pid) {
                    self.transition(i, s, c, St::Ready, now, |_, _| ())
                        .ok()
                        .map(|_| {
                            self.signal_return();
                            "returned lease of a dead process to visible"
                        })
                } else {
                    None
                }
            }
            View::AtRest {
                s,
                c,
                st: St::Writing,
                time,
                ..
            } if time <= now => self
                .abandon(i, s, c, now)
                .then_some("abandoned expired claim"),
            View::AtRest {
                s,
                c,
                st: St::Abandoned,
                gen,
                ..
            } => {
                let owner = self.w(i).owner.load(Relaxed);
                let pid = (owner >> 32) as u32;
                let current = owner & 0xffff_ffff == gen.wrapping_sub(1) & 0xffff_ffff;
                if !current || !(self.p.is_alive)(pid) {
                    self.transition(i, s, c, St::Free, now, |_, _| ())
                        .ok()
                        .map(|_| "reclaimed abandoned claim")
                } else if force_abandoned {
                    self.transition(i, s, c, St::Dead, now, |w, _| {
                        w.reason.store(DeadReason::Recovered.code(), Relaxed);
                    })
                    .ok()
                    .map(|_| "quarantined abandoned claim of a live process")
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Reset every clock to 0 after a reboot (§7): every lease and claim is
    /// expired and every delayed message visible. Pending transitions are
    /// aborted. Call only with exclusive access to the file.
    pub fn reset_clocks(&self) {
        for i in 0..self.n {
            let w = self.w(i);
            let s = w.state.load(Acquire);
            let c = w.clock.load(Acquire);
            match View::classify(s, c) {
                View::AtRest { gen, .. } => w.clock.store(pack_clock(0, gen), Release),
                View::Pending { st, gen, .. } => {
                    let g1 = next_gen(gen);
                    w.clock.store(pack_clock(0, g1), Release);
                    w.state.store(pack_state(g1, st), Release);
                }
                View::Corrupt { .. } => {}
            }
        }
        let sh = self.mem.shared();
        sh.sweep_due.store(0, SeqCst);
        sh.sweep_pending.store(1, SeqCst);
        sh.full_hint.store(0, SeqCst);
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
#[path = "ring_tests.rs"]
mod tests;

//! Scan and repair: classify every slot of a queue after a crash, and apply
//! the repairs that are safe.
//!
//! # Algorithm
//!
//! One pass over the slots, in index order. For each slot, a snapshot
//! ([`Ring::info`]) is classified ([`classify`]) into one of the [`Class`]es
//! below, and the classes that need a repair become [`Finding`]s that say
//! what would be done. With [`Options::apply`], the pass then calls
//! [`Ring::repair`] on the slot until it reports nothing more to do (at most
//! [`MAX_STEPS`] times: an abort can leave an expired lease, whose return is
//! a second step), so that one applied pass reaches a fixed point and a
//! second pass repairs nothing.
//!
//! Every repair is one of the ordinary lock-free transitions of
//! docs/design.md §4, a CAS from exactly the words it read: recover needs no
//! exclusive access, is safe while other processes send and receive (if one
//! of them changes the slot first, the repair's CAS fails and the slot is
//! left to them), and is safe to kill at any point (each slot is consistent
//! after every step, and a re-run finishes the job). It never deletes a
//! message: the only ways out of a message-holding state are "visible
//! again", "dead" (kept for inspection) or, for an abandoned claim whose
//! send never returned, "free".
//!
//! [`run_queue`] keeps every finding in the [`Report`];
//! [`run_queue_each`] hands each one to the caller as it is made and keeps
//! none, so a pass over a queue of any size takes the same memory (the
//! command-line tool streams its findings this way).
//!
//! Liveness of a lease holder or claimer is `kill(pid, 0)` in the caller's
//! pid namespace (`kill(pid, 0)` for a mapped queue): run recover in the
//! same pid namespace as the processes that use the queue.

use std::ops::ControlFlow;

use crate::layout::Memory;
use crate::queue::Queue;
use crate::ring::{Params, Ring, SlotInfo};
use crate::slot::St;

/// How many repair steps one slot may take in one pass.
pub const MAX_STEPS: usize = 4;

/// What a slot holds, as recover sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Class {
    /// No message (never used, acked or purged).
    Free,
    /// A message visible now.
    Visible,
    /// A message that becomes visible later (delayed send or nack).
    Delayed,
    /// Leased, deadline in the future, holder alive (or not known).
    LeasedLive,
    /// Leased, deadline in the future, but the holder process is gone.
    LeasedDead,
    /// Leased, deadline passed: due for redelivery (or death at max receives).
    LeaseExpired,
    /// A sender is writing it; its claim deadline is in the future.
    Writing,
    /// A sender claimed it and its claim deadline passed (never published).
    ClaimExpired,
    /// An expired claim, waiting for its owner to go before it is reused.
    Abandoned,
    /// A dead-lettered or quarantined message.
    Dead,
    /// Words no protocol step writes.
    Corrupt,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 11] = [
        Class::Free,
        Class::Visible,
        Class::Delayed,
        Class::LeasedLive,
        Class::LeasedDead,
        Class::LeaseExpired,
        Class::Writing,
        Class::ClaimExpired,
        Class::Abandoned,
        Class::Dead,
        Class::Corrupt,
    ];

    /// Lower-case, hyphenated name, as the CLI and its JSON spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Class::Free => "free",
            Class::Visible => "visible",
            Class::Delayed => "delayed",
            Class::LeasedLive => "leased-live",
            Class::LeasedDead => "leased-dead",
            Class::LeaseExpired => "lease-expired",
            Class::Writing => "writing",
            Class::ClaimExpired => "claim-expired",
            Class::Abandoned => "abandoned",
            Class::Dead => "dead",
            Class::Corrupt => "corrupt",
        }
    }

    /// The class named `name` (see [`Class::name`]).
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    fn index(self) -> usize {
        Class::ALL
            .iter()
            .position(|c| *c == self)
            .expect("every class is in ALL")
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Classify one slot snapshot at clock time `now` (host clock ms).
/// `p` gives the slot size, max receives and the liveness check.
#[doc(hidden)]
pub fn classify(info: &SlotInfo, now: u64, p: &Params, alive: impl Fn(u32) -> bool) -> Class {
    let Some(st) = info.state else {
        return Class::Corrupt;
    };
    if info.corrupt {
        return Class::Corrupt;
    }
    // A time no transition writes (§8): the next sweep quarantines it.
    if matches!(st, St::Ready | St::Leased | St::Writing)
        && info.time_ms > now.saturating_add(crate::ring::TIME_AHEAD_MAX_MS)
    {
        return Class::Corrupt;
    }
    // A message longer than a slot can only come from a corrupt length word;
    // a dead one is already out of the way.
    if matches!(st, St::Ready | St::Leased) && info.len > p.slot_size {
        return Class::Corrupt;
    }
    match st {
        St::Free => Class::Free,
        St::Writing if info.time_ms <= now => Class::ClaimExpired,
        St::Writing => Class::Writing,
        St::Ready if info.time_ms <= now => Class::Visible,
        St::Ready => Class::Delayed,
        St::Leased if info.time_ms <= now => Class::LeaseExpired,
        St::Leased if holder_gone(info, &alive) => Class::LeasedDead,
        St::Leased => Class::LeasedLive,
        St::Dead => Class::Dead,
        St::Abandoned => Class::Abandoned,
    }
}

/// Whether the slot's owner word names this generation's holder and that
/// process is gone. An owner we cannot attribute is presumed alive.
fn holder_gone(info: &SlotInfo, alive: impl Fn(u32) -> bool) -> bool {
    info.holder_current && info.holder != 0 && !alive(info.holder)
}

/// What recover does about a slot of class `class`: `Some((action, true))`
/// when it repairs it, `Some((why, false))` when it reports it but leaves it,
/// `None` when there is nothing to say.
fn plan(
    class: Class,
    info: &SlotInfo,
    p: &Params,
    force_abandoned: bool,
    alive: impl Fn(u32) -> bool,
) -> Option<(&'static str, bool)> {
    Some(match class {
        Class::LeasedDead => ("return to visible: its holder process is gone", true),
        Class::LeaseExpired if info.receives >= p.max_receives => {
            ("dead-letter: lease expired at max receives", true)
        }
        Class::LeaseExpired => ("return to visible: lease expired", true),
        Class::ClaimExpired => (
            "abandon the expired claim (and free it if the sender is gone)",
            true,
        ),
        Class::Abandoned if !info.holder_current || !alive(info.holder) => {
            ("free the slot: the abandoned claim's sender is gone", true)
        }
        Class::Abandoned if force_abandoned => (
            "quarantine as dead (reason recovered): its sender is alive but stalled",
            true,
        ),
        Class::Abandoned => (
            "left alone: its sender is alive (--force-abandoned quarantines it)",
            false,
        ),
        Class::Corrupt if !info.corrupt && info.state.is_some() => (
            "left alone: payload length exceeds the slot size; a receiver quarantines it on delivery",
            false,
        ),
        Class::Corrupt => ("quarantine as dead (reason corrupt)", true),
        _ => return None,
    })
}

/// How to run a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Repair, not only report.
    pub apply: bool,
    /// Quarantine abandoned claims whose sender is still alive (a stalled
    /// sender; its late publish then fails, as it would anyway).
    pub force_abandoned: bool,
}

/// One slot that needs (or got) attention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Slot index.
    pub slot: u32,
    /// Its class when scanned.
    pub class: Class,
    /// Message id (meaningful for slots that hold a message).
    pub id: u64,
    /// Deliveries so far.
    pub receives: u32,
    /// The holder or claimer the slot names (0: none or not current).
    pub holder: u32,
    /// What recover does (or would do) about it, or why it leaves it.
    pub action: &'static str,
    /// Whether recover repairs this class of slot.
    pub repairable: bool,
    /// The repair steps taken (empty unless applied).
    pub done: Vec<&'static str>,
}

/// The result of a pass: counts by class (as scanned, before any repair)
/// and the findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Number of slots scanned (all of them unless a [`run_queue_each`]
    /// caller stopped the pass).
    pub slots: u32,
    /// Clock time of the pass (host clock ms).
    pub now_ms: u64,
    /// The options it ran with.
    pub options: Options,
    counts: [u64; Class::ALL.len()],
    /// Repairable findings, counted as they were made.
    to_repair: usize,
    /// Findings with repair steps taken, counted as they were made.
    repaired: usize,
    /// Slots that need or got attention, by slot index (empty after
    /// [`run_queue_each`], which hands them out instead).
    pub findings: Vec<Finding>,
}

impl Report {
    /// Slots of class `c`.
    pub fn count(&self, c: Class) -> u64 {
        self.counts[c.index()]
    }

    /// Every class with its count, in report order.
    pub fn counts(&self) -> impl Iterator<Item = (Class, u64)> + '_ {
        Class::ALL.into_iter().map(|c| (c, self.count(c)))
    }

    /// Findings recover repairs (or would repair, without `apply`).
    pub fn to_repair(&self) -> usize {
        self.to_repair
    }

    /// Slots on which an applied pass changed something.
    pub fn repaired(&self) -> usize {
        self.repaired
    }
}

/// Classify every slot of `q` at `now` and say what would be repaired;
/// changes nothing.
pub fn scan(q: &Queue, now: u64, force_abandoned: bool) -> Report {
    run(
        q.ring(),
        now,
        Options {
            apply: false,
            force_abandoned,
        },
        |_| {},
    )
}

/// Classify every slot of `q` at `now` and repair what is safe. Safe while
/// other processes use the queue; idempotent.
pub fn apply(q: &Queue, now: u64, force_abandoned: bool) -> Report {
    run(
        q.ring(),
        now,
        Options {
            apply: true,
            force_abandoned,
        },
        |_| {},
    )
}

/// A pass over `q` at `now` (a reading of [`now_ms`](crate::now_ms)) with
/// `options`. `progress` is called with the number of slots done, every few
/// thousand slots and once at the end (for a progress bar on large queues).
pub fn run_queue(q: &Queue, now: u64, options: Options, progress: impl FnMut(u32)) -> Report {
    run(q.ring(), now, options, progress)
}

/// A pass as [`run_queue`] that hands each finding to `each` as soon as
/// its slot is done, in slot order, and keeps none: the report's
/// `findings` is empty, its counts, [`to_repair`](Report::to_repair) and
/// [`repaired`](Report::repaired) are the pass's. When `each` returns
/// `ControlFlow::Break`, the pass stops after that slot (safe: every slot is
/// consistent after every step) and the report covers the slots scanned.
pub fn run_queue_each(
    q: &Queue,
    now: u64,
    options: Options,
    progress: impl FnMut(u32),
    each: impl FnMut(Finding) -> ControlFlow<()>,
) -> Report {
    pass(q.ring(), now, options, progress, each)
}

/// The pass over any ring (the core's form of [`run_queue`]).
#[doc(hidden)]
pub fn run<M: Memory>(
    ring: &Ring<M>,
    now: u64,
    options: Options,
    progress: impl FnMut(u32),
) -> Report {
    let mut findings = Vec::new();
    let mut report = pass(ring, now, options, progress, |f| {
        findings.push(f);
        ControlFlow::Continue(())
    });
    report.findings = findings;
    report
}

/// The pass itself: findings go to `each`.
fn pass<M: Memory>(
    ring: &Ring<M>,
    now: u64,
    options: Options,
    mut progress: impl FnMut(u32),
    mut each: impl FnMut(Finding) -> ControlFlow<()>,
) -> Report {
    let p = ring.params();
    let n = ring.slot_count();
    let mut report = Report {
        slots: n,
        now_ms: now,
        options,
        counts: [0; Class::ALL.len()],
        to_repair: 0,
        repaired: 0,
        findings: Vec::new(),
    };
    for i in 0..n {
        let info = ring.info(i);
        let alive = |h| ring.holder_alive(h, now);
        let class = classify(&info, now, p, alive);
        report.counts[class.index()] += 1;
        let planned = plan(class, &info, p, options.force_abandoned, alive);
        let mut done = Vec::new();
        // Mutant (design.md §10, tests/powercut.rs): a pass repairs at most
        // 4 slots (bounded work per pass), so one pass no longer reaches the
        // fixed point.
        #[cfg(shmq_mutation = "recover_budget")]
        let apply = options.apply && report.repaired < 4;
        #[cfg(not(shmq_mutation = "recover_budget"))]
        let apply = options.apply;
        if apply {
            for _ in 0..MAX_STEPS {
                match ring.repair(i, now, options.force_abandoned) {
                    Some(what) => done.push(what),
                    None => break,
                }
            }
        }
        if planned.is_some() || !done.is_empty() {
            let (action, repairable) = planned.unwrap_or(("changed since it was scanned", true));
            report.to_repair += usize::from(repairable);
            report.repaired += usize::from(!done.is_empty());
            let step = each(Finding {
                slot: i,
                class,
                id: info.id,
                receives: info.receives,
                holder: if info.holder_current { info.holder } else { 0 },
                action,
                repairable,
                done,
            });
            if step.is_break() {
                report.slots = i + 1;
                progress(i + 1);
                return report;
            }
        }
        if (i + 1) % 4096 == 0 {
            progress(i + 1);
        }
    }
    progress(n);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::HeapMemory;
    use crate::slot::{gen_of, pack_state};
    use crate::sync::Ordering::Relaxed;

    const LIVE: u32 = 100;
    const DEAD: u32 = 200;
    const T0: u64 = 1_000_000;
    const VT: u64 = 30_000;

    fn alive(pid: u32) -> bool {
        pid == LIVE
    }

    fn ring(pid: u32) -> Ring<HeapMemory> {
        Ring::new(
            HeapMemory::new(8, 64),
            Params {
                slot_size: 64,
                max_receives: 2,
                visibility_ms: VT,
                claim_ms: 2000,
                checksums: true,
                identity: 1,
                pid,
                is_alive: alive,
                wake: crate::ring::no_wake,
            },
        )
    }

    /// One `--apply` pass over the ring at `now`, without progress.
    fn apply_at(r: &Ring<HeapMemory>, now: u64) -> Report {
        run(
            r,
            now,
            Options {
                apply: true,
                ..Options::default()
            },
            |_| {},
        )
    }

    fn receive(r: &Ring<HeapMemory>, now: u64) -> crate::ring::Delivery {
        let mut buf = Vec::new();
        r.try_receive(now, VT, &mut buf, false, 8)
            .expect("a message to receive")
    }

    #[test]
    fn an_idle_queue_needs_nothing() {
        let r = ring(LIVE);
        r.send(b"a", 0, T0).unwrap();
        r.send(b"b", 5000, T0).unwrap();
        let rep = apply_at(&r, T0);
        assert_eq!(rep.count(Class::Visible), 1);
        assert_eq!(rep.count(Class::Delayed), 1);
        assert_eq!(rep.count(Class::Free), 6);
        assert!(rep.findings.is_empty(), "{:?}", rep.findings);
    }

    #[test]
    fn a_lease_of_a_dead_holder_is_returned_once() {
        let r = ring(DEAD);
        r.send(b"m", 0, T0).unwrap();
        let d = receive(&r, T0);
        let scan = run(&r, T0 + 1, Options::default(), |_| {});
        assert_eq!(scan.count(Class::LeasedDead), 1);
        assert_eq!(scan.to_repair(), 1);
        assert_eq!(scan.findings[0].slot, d.receipt.slot);
        assert_eq!(scan.findings[0].holder, DEAD);
        assert_eq!(scan.repaired(), 0, "a scan changes nothing");
        assert_eq!(r.info(d.receipt.slot).state, Some(St::Leased));

        let first = apply_at(&r, T0 + 1);
        assert_eq!(first.repaired(), 1);
        assert_eq!(r.info(d.receipt.slot).state, Some(St::Ready));
        let second = apply_at(&r, T0 + 1);
        assert_eq!(second.repaired(), 0, "{:?}", second.findings);
        assert_eq!(second.count(Class::Visible), 1);
    }

    #[test]
    fn a_lease_of_a_live_holder_is_left_until_it_expires() {
        let r = ring(LIVE);
        r.send(b"m", 0, T0).unwrap();
        receive(&r, T0);
        let rep = apply_at(&r, T0 + 1);
        assert_eq!(rep.count(Class::LeasedLive), 1);
        assert_eq!(rep.repaired(), 0);
        let later = apply_at(&r, T0 + VT);
        assert_eq!(later.count(Class::LeaseExpired), 1);
        assert_eq!(later.repaired(), 1);
        assert_eq!(
            run(&r, T0 + VT, Options::default(), |_| {}).count(Class::Visible),
            1
        );
    }

    #[test]
    fn an_expired_lease_at_max_receives_is_dead_lettered() {
        let r = ring(LIVE);
        r.send(b"m", 0, T0).unwrap();
        let d = receive(&r, T0);
        r.nack(d.receipt, 0, T0).unwrap();
        receive(&r, T0 + 1);
        let rep = apply_at(&r, T0 + 1 + VT);
        assert_eq!(
            rep.findings[0].action,
            "dead-letter: lease expired at max receives"
        );
        assert_eq!(r.info(d.receipt.slot).state, Some(St::Dead));
    }

    #[test]
    fn a_lease_whose_holder_died_before_naming_itself_counts_its_delivery() {
        let r = ring(LIVE);
        r.send(b"m", 0, T0).unwrap();
        // A receiver that died between its lease CAS and its `aux` CAS:
        // the state word is LEASED, `aux` still the claim's.
        let w = r.memory().slot(0);
        let s = w.state.load(Relaxed);
        w.state
            .store(pack_state(St::Leased, gen_of(s) + 1, T0 + VT), Relaxed);
        let rep = apply_at(&r, T0 + VT);
        assert_eq!(rep.count(Class::LeaseExpired), 1);
        assert_eq!(r.info(0).state, Some(St::Ready));
        assert_eq!(r.info(0).receives, 1, "the lost lease still counts");
        let second = apply_at(&r, T0 + VT);
        assert_eq!(second.repaired(), 0, "{:?}", second.findings);
        assert_eq!(second.count(Class::Visible), 1);
    }

    #[test]
    fn claims_are_abandoned_then_freed_only_when_the_sender_is_gone() {
        for (pid, force, want) in [
            (DEAD, false, St::Free),
            (LIVE, false, St::Abandoned),
            (LIVE, true, St::Dead),
        ] {
            let r = ring(pid);
            let w = r.memory().slot(3);
            w.state.store(pack_state(St::Writing, 1, T0), Relaxed);
            w.aux.store(crate::slot::pack_aux(0, pid, 1), Relaxed);
            assert_eq!(
                run(&r, T0 - 1, Options::default(), |_| {}).count(Class::Writing),
                1
            );
            let opts = Options {
                apply: true,
                force_abandoned: force,
            };
            let first = run(&r, T0, opts, |_| {});
            assert_eq!(first.count(Class::ClaimExpired), 1);
            assert_eq!(r.info(3).state, Some(want), "pid {pid} force {force}");
            let second = run(&r, T0, opts, |_| {});
            assert_eq!(second.repaired(), 0, "{:?}", second.findings);
        }
    }

    #[test]
    fn corrupt_words_are_quarantined_once() {
        let r = ring(LIVE);
        r.memory().slot(5).state.store(0, Relaxed);
        r.memory()
            .slot(6)
            .state
            .store(pack_state(St::Leased, 3, T0 + (1 << 36)), Relaxed);
        let scan = run(&r, T0, Options::default(), |_| {});
        assert_eq!(scan.count(Class::Corrupt), 2);
        let first = apply_at(&r, T0);
        assert_eq!(first.repaired(), 2);
        let second = apply_at(&r, T0);
        assert_eq!(second.count(Class::Dead), 2);
        assert_eq!(second.repaired(), 0);
    }

    #[test]
    fn an_oversize_length_is_reported_not_repaired() {
        let r = ring(LIVE);
        r.send(b"m", 0, T0).unwrap();
        r.memory().slot(0).len.store(65, Relaxed);
        let rep = apply_at(&r, T0);
        assert_eq!(rep.count(Class::Corrupt), 1);
        assert_eq!(rep.to_repair(), 0);
        assert_eq!(rep.repaired(), 0);
    }

    #[test]
    fn a_streamed_pass_hands_out_what_a_kept_one_holds_and_can_stop() {
        let r = ring(LIVE);
        for slot in [1, 4, 6] {
            r.memory().slot(slot).state.store(0, Relaxed);
        }
        let kept = run(&r, T0, Options::default(), |_| {});
        assert_eq!(kept.findings.len(), 3);
        let mut got = Vec::new();
        let streamed = pass(
            &r,
            T0,
            Options::default(),
            |_| {},
            |f| {
                got.push(f);
                ControlFlow::Continue(())
            },
        );
        assert_eq!(got, kept.findings);
        assert!(streamed.findings.is_empty(), "nothing held");
        assert_eq!((streamed.to_repair(), streamed.slots), (3, 8));
        assert!(streamed.counts().eq(kept.counts()));

        // Stopped at the second finding: slots 0..=4 scanned and repaired.
        let mut seen = 0;
        let mut last = 0;
        let opts = Options {
            apply: true,
            ..Options::default()
        };
        let stopped = pass(
            &r,
            T0,
            opts,
            |k| last = k,
            |_| {
                seen += 1;
                if seen == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!((seen, stopped.slots, last), (2, 5, 5));
        assert_eq!((stopped.repaired(), stopped.count(Class::Corrupt)), (2, 2));
        assert_eq!(r.info(6).state, None, "slot 6 left for the next pass");
        assert_eq!(apply_at(&r, T0).repaired(), 1);
    }

    #[test]
    fn progress_reaches_the_slot_count_and_names_round_trip() {
        let r = ring(LIVE);
        let mut last = 0;
        run(&r, T0, Options::default(), |k| last = k);
        assert_eq!(last, 8);
        for c in Class::ALL {
            assert_eq!(Class::from_name(c.name()), Some(c));
        }
    }
}

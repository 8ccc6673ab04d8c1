//! Models of the registration table (docs/registry.md): registrations racing
//! for one entry, a checker freeing a dead entry against its reuse, a
//! registration judged while in progress, and the reboot reset against a
//! registration of the new boot.
//!
//! Each "process" is a thread with its own made-up [`Identity`] and its own
//! [`VerdictCache`]; the fake probe says a process lives when its (pid,
//! start) is one of the live ones below.
#![cfg(loom)]

use shmq::internal::{
    new_table, register, reset_all, unregister, verdict, Identity, Verdict, VerdictCache,
};
use shmq_loom_tests::loom::sync::atomic::AtomicU64;
use shmq_loom_tests::loom::sync::Arc;
use shmq_loom_tests::{model_both, race};

const BOOT: u32 = 2;
const NS: u32 = 0xefff_fffc;

/// A process that died without unregistering.
const DEAD: Identity = Identity {
    pid: 7,
    start: 70,
    ns: NS,
    boot: BOOT,
};
const A: Identity = Identity {
    pid: 11,
    start: 110,
    ns: NS,
    boot: BOOT,
};
const B: Identity = Identity {
    pid: 13,
    start: 130,
    ns: NS,
    boot: BOOT,
};

/// The fake OS: A and B live, every other (pid, start) is dead.
fn probe(pid: u32, start: u64) -> Verdict {
    if [A, B].iter().any(|p| p.pid == pid && p.start == start) {
        Verdict::Alive
    } else {
        Verdict::Dead
    }
}

/// What a third process, after the race, says about `holder`.
fn judged(t: &[AtomicU64], holder: u32) -> Verdict {
    let me = Identity {
        pid: 99,
        start: 990,
        ..A
    };
    verdict(t, holder, &me, probe, 1000, &VerdictCache::new(t.len() / 4))
}

/// Two processes register at once on a table of one entry: exactly one gets
/// it, the other gets 0 (anonymous), and the winner's entry holds the
/// winner's words (a verdict probes the winner's own pid and start: Alive).
#[test]
fn two_registrations_race_for_one_entry() {
    model_both(|swap| {
        let t: Arc<Box<[AtomicU64]>> = Arc::new(new_table(1));
        let (ta, tb) = (t.clone(), t.clone());
        let (ha, hb) = race(
            swap,
            move || register(&ta, &A, probe),
            move || register(&tb, &B, probe),
        );
        let winner = match (ha, hb) {
            (h, 0) | (0, h) if h != 0 => h,
            other => panic!("exactly one registration must get the entry, got {other:?}"),
        };
        assert_eq!(
            judged(&t, winner),
            Verdict::Alive,
            "the winner's words, intact"
        );
    });
}

/// A process died holding entry 0 (the only one). A checker finds its holder
/// dead and frees the entry while a new process, finding the table full,
/// proves the same owner dead, frees the entry and claims it. The new holder
/// is alive afterwards: a free is a CAS from exactly the word read, so the
/// checker's late free cannot land on the new registration.
#[test]
fn freeing_a_dead_entry_against_its_reuse() {
    model_both(|swap| {
        let t: Arc<Box<[AtomicU64]>> = Arc::new(new_table(1));
        let dead = register(&t, &DEAD, probe);
        assert_ne!(dead, 0);
        let (tc, ta) = (t.clone(), t.clone());
        let (seen, ha) = race(
            swap,
            move || {
                let me = Identity {
                    pid: 99,
                    start: 990,
                    ..A
                };
                verdict(&tc, dead, &me, probe, 0, &VerdictCache::new(1))
            },
            move || register(&ta, &A, probe),
        );
        assert_eq!(seen, Verdict::Dead, "the dead owner's holder");
        assert_ne!(ha, 0, "the dead owner's entry is reused");
        assert_ne!(ha, dead);
        assert_eq!(
            judged(&t, ha),
            Verdict::Alive,
            "the new holder was freed by a stale free"
        );
    });
}

/// A process that left (entry 0 free, its words still there, tagged with its
/// generation) is followed by two registrations at once. The loser finds
/// the entry taken, maybe before the winner stored its start time: it must
/// judge nothing from the previous owner's words (Unknown), so it never
/// probes the winner's pid with the previous start, finds it "dead" and
/// takes the entry from under it.
#[test]
fn a_registration_in_progress_is_not_judged() {
    model_both(|swap| {
        let t: Arc<Box<[AtomicU64]>> = Arc::new(new_table(1));
        let gone = register(&t, &DEAD, probe);
        assert!(unregister(&t, gone));
        let (ta, tb) = (t.clone(), t.clone());
        let (ha, hb) = race(
            swap,
            move || register(&ta, &A, probe),
            move || register(&tb, &B, probe),
        );
        let winner = match (ha, hb) {
            (h, 0) | (0, h) if h != 0 => h,
            other => panic!("exactly one registration must get the entry, got {other:?}"),
        };
        assert_eq!(
            judged(&t, winner),
            Verdict::Alive,
            "the winner lost its entry"
        );
    });
}

/// Entry 0 holds a registration of the previous boot. A process of this boot
/// registers (proving that entry dead by its boot and reusing it) while
/// another opener runs the reboot reset. The reset frees only registrations
/// of another boot, so the new one survives it, whatever the order.
#[test]
fn reboot_reset_against_a_new_registration() {
    model_both(|swap| {
        let t: Arc<Box<[AtomicU64]>> = Arc::new(new_table(1));
        let old = register(&t, &Identity { boot: 1, ..DEAD }, probe);
        assert_ne!(old, 0);
        let (tr, ta) = (t.clone(), t.clone());
        let (_, ha) = race(
            swap,
            move || reset_all(&tr, BOOT),
            move || register(&ta, &A, probe),
        );
        assert_ne!(ha, 0, "the previous boot's entry is reused");
        assert_eq!(
            judged(&t, ha),
            Verdict::Alive,
            "the reset freed a registration of this boot"
        );
        assert_eq!(judged(&t, old), Verdict::Dead);
    });
}

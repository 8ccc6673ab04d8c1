//! Models of the lease's life against everyone who may end it: a late ack
//! against a takeover (the generation fence), extend against takeover, ack
//! against slot reuse, a stale receipt after the generation wrapped, and a
//! copy against a takeover and reuse (docs/design.md §3, §4).
#![cfg(loom)]

use shmq::internal::{HeapMemory, Ring, St};
use shmq::{Delivery, Error, Receipt};
use shmq_loom_tests::loom::sync::Arc;
use shmq_loom_tests::{model_both, race, receive, ring, MSG_A, MSG_B};

fn lease_lost<T: std::fmt::Debug>(r: shmq::Result<T>) -> bool {
    matches!(r, Err(Error::LeaseLost))
}

/// A 1-slot ring holding MSG_A, leased at 0 until 10; returns the receipt.
fn leased(max_receives: u32) -> (Arc<Ring<HeapMemory>>, Receipt) {
    let r = ring(1, max_receives);
    r.send(MSG_A, 0, 0).unwrap();
    let rc = receive(&r, 0, &mut Vec::new()).unwrap().receipt;
    (r, rc)
}

/// A receive at `now` on another thread: what it got and the payload.
fn receiver(r: &Arc<Ring<HeapMemory>>, now: u64) -> impl FnOnce() -> (Option<Delivery>, Vec<u8>) {
    let r = r.clone();
    move || {
        let mut buf = Vec::new();
        (receive(&r, now, &mut buf), buf)
    }
}

/// The lease (deadline 10) expired; the holder acks late, at 20, while a
/// receiver sweeps at 30 and takes the message over. Never both "ack Ok" and
/// "takeover delivered"; after a takeover the stale receipt is rejected.
#[test]
fn late_ack_against_takeover() {
    model_both(|swap| {
        let (r, old) = leased(5);
        let r2 = r.clone();
        let (acked, (taken, buf)) = race(swap, move || r2.ack(old, 20), receiver(&r, 30));

        match (&acked, taken) {
            (Ok(()), None) => assert_eq!(r.info(0).state, Some(St::Free)),
            (Err(Error::LeaseLost), Some(d)) => {
                assert_eq!(buf, MSG_A);
                assert_eq!(d.receives, 2);
                assert_ne!(d.receipt, old);
                assert!(lease_lost(r.ack(old, 31)), "stale receipt acked");
                assert!(lease_lost(r.nack(old, 0, 31)), "stale receipt nacked");
                assert!(lease_lost(r.extend(old, 10, 31)), "stale receipt extended");
                r.ack(d.receipt, 32).expect("the new holder acks");
            }
            (acked, taken) => panic!(
                "exactly one of ack and takeover must win: ack {acked:?}, takeover {taken:?}"
            ),
        }
    });
}

/// The holder extends its lease (deadline 10) at 5 to 105 while a receiver
/// sweeps at 20. If extend returned `Ok(D)`, no takeover happens before `D`;
/// if the takeover won, the extend fails with `LeaseLost`.
#[test]
fn extend_against_takeover() {
    model_both(|swap| {
        let (r, rc) = leased(5);
        let r2 = r.clone();
        let (extended, (taken, buf)) = race(swap, move || r2.extend(rc, 100, 5), receiver(&r, 20));

        let info = r.info(0);
        assert!(!info.corrupt, "slot left inconsistent: {info:?}");
        match (extended, taken) {
            (Ok(deadline), None) => {
                assert_eq!(deadline, 105);
                assert_eq!(info.time_ms, 105);
                let mut buf = Vec::new();
                assert!(receive(&r, 104, &mut buf).is_none(), "taken before the deadline");
                assert!(receive(&r, 105, &mut buf).is_some(), "expired at the deadline");
            }
            (Err(Error::LeaseLost), Some(d)) => {
                assert_eq!(buf, MSG_A);
                assert_ne!(d.receipt, rc);
            }
            (extended, taken) => panic!(
                "exactly one of extend and takeover must win: extend {extended:?}, takeover {taken:?}"
            ),
        }
    });
}

/// The holder acks (and then tries its receipt again) while a sender reuses
/// the slot. The old receipt's ack, nack and extend all fail; the new message
/// is intact, with its receive count reset.
#[test]
fn ack_against_slot_reuse() {
    model_both(|swap| {
        let (r, old) = leased(5);
        let (rh, rs) = (r.clone(), r.clone());
        let holder = move || {
            rh.ack(old, 1).expect("the holder's prompt ack");
            assert!(lease_lost(rh.ack(old, 1)), "acked twice");
            assert!(lease_lost(rh.nack(old, 0, 1)), "nacked after ack");
            assert!(lease_lost(rh.extend(old, 10, 1)), "extended after ack");
        };
        let ((), sent) = race(swap, holder, move || rs.send(MSG_B, 0, 1));
        let id = match sent {
            Ok(id) => id,
            // The ack had not committed yet: the slot is free now.
            Err(Error::Full) => r.send(MSG_B, 0, 1).expect("the acked slot is free"),
            Err(e) => panic!("send: {e:?}"),
        };

        let mut buf = Vec::new();
        let d = receive(&r, 2, &mut buf).expect("the new message");
        assert_eq!(buf, MSG_B);
        assert_eq!(d.id, id);
        assert_eq!(d.receives, 1, "the receive count starts again");
        assert!(
            lease_lost(r.ack(old, 3)),
            "a stale receipt acked the new lease"
        );
        assert!(
            lease_lost(r.nack(old, 0, 3)),
            "a stale receipt nacked the new lease"
        );
        assert!(
            lease_lost(r.extend(old, 10, 3)),
            "a stale receipt extended the new lease"
        );
        r.ack(d.receipt, 3).expect("the new holder acks");
    });
}

/// The generation is 3 bits under loom, so it wraps after 8 transitions:
/// a holder's receipt for message 0 (acked long ago) names the same slot
/// and generation as the lease message 2 gets two messages later. The
/// stale ack races that lease: it must fail in every interleaving (the
/// receipt's message id differs), and message 2's holder acks it. Mutant
/// `receipt_no_id`: the generation alone names the lease.
#[test]
fn stale_receipt_after_generation_wrap() {
    model_both(|swap| {
        let r = ring(1, 5);
        let mut buf = Vec::new();
        r.send(MSG_A, 0, 1).unwrap();
        let stale = receive(&r, 1, &mut buf).expect("message 0").receipt;
        r.ack(stale, 1).unwrap();
        r.send(MSG_B, 0, 1).unwrap();
        let d1 = receive(&r, 1, &mut buf).expect("message 1");
        r.ack(d1.receipt, 1).unwrap();
        r.send(MSG_A, 0, 1).unwrap();
        let (rh, rr) = (r.clone(), r.clone());
        let (acked, got) = race(
            swap,
            move || rh.ack(stale, 2),
            move || {
                let mut buf = Vec::new();
                receive(&rr, 2, &mut buf)
            },
        );
        assert!(
            lease_lost(acked),
            "a receipt from before the wrap acked: {:?}",
            r.info(0)
        );
        let d2 = got.expect("message 2, untouched by the stale ack");
        assert_eq!(d2.receipt.gen, stale.gen, "the generation did wrap");
        r.ack(d2.receipt, 3).expect("its own holder acks it");
    });
}

/// A receiver leases MSG_A (deadline 10) and copies it while its lease may
/// be lost under it: another receiver takes the expired lease over at 30,
/// acks it, and a sender reuses the slot for MSG_B. Whatever the first
/// receiver gets is one whole message with its own id (MSG_A, or MSG_B if
/// its receive came after the reuse): never a mix of the two, never one
/// message's payload under the other's id. The ring runs without checksums,
/// so only the generation re-check after the copy stands between the
/// receiver and a torn payload.
#[test]
fn copy_against_takeover_and_reuse() {
    model_both(|swap| {
        let r = ring(1, 5);
        let id_a = r.send(MSG_A, 0, 0).unwrap();
        let (rr, rt) = (r.clone(), r.clone());
        let ((got, buf), reused) = race(
            swap,
            move || {
                let mut buf = Vec::new();
                (receive(&rr, 0, &mut buf), buf)
            },
            move || {
                let mut buf = Vec::new();
                let d = receive(&rt, 30, &mut buf)?;
                rt.ack(d.receipt, 31).ok()?;
                rt.send(MSG_B, 0, 32).ok()
            },
        );
        if let Some(d) = got {
            let whole = (d.id == id_a && buf == MSG_A) || (Some(d.id) == reused && buf == MSG_B);
            assert!(
                whole,
                "a torn copy was delivered: id {} (MSG_A is {id_a}, MSG_B {reused:?}), payload {:?}",
                d.id,
                String::from_utf8_lossy(&buf)
            );
            // MSG_B can reach this receiver only through a lease of its own
            // (its receive came after the reuse), never through the lease
            // of MSG_A that it lost while copying.
            if d.id != id_a {
                let info = r.info(0);
                assert!(
                    info.state == Some(St::Leased) && info.gen == d.receipt.gen,
                    "MSG_B was delivered under a lost lease: {d:?}, slot now {info:?}"
                );
            }
        }
    });
}

/// A reboot reset (every slot's time set to 0, design.md §7) runs while a
/// holder acks its lease: an opener that misread the boot id, or a reset
/// racing a process of the new boot. The reset CASes each slot from the
/// word it read, so whichever comes first, the ack stands: the acked
/// message never comes back, and no slot is left with a word no
/// transition writes. Mutant `reset_store`: the reset stores the word it
/// read with time 0, which can put the acked lease back.
#[test]
fn reboot_reset_against_ack() {
    model_both(|swap| {
        let (r, rc) = leased(5);
        let (rh, rr) = (r.clone(), r.clone());
        let (acked, ()) = race(swap, move || rh.ack(rc, 1), move || rr.reset_clocks());
        acked.expect("the holder's ack");
        let info = r.info(0);
        assert!(!info.corrupt, "{info:?}");
        assert_eq!(
            info.state,
            Some(St::Free),
            "the acked message came back: {info:?}"
        );
        let mut buf = Vec::new();
        assert!(receive(&r, 100, &mut buf).is_none());
    });
}

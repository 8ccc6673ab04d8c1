//! Models of dead letters: dead-lettering an expired lease against the
//! holder's ack, and redrive against a receiver (docs/design.md §3, §4).
#![cfg(loom)]

use shmq::internal::St;
use shmq::{Error, Nacked};
use shmq_loom_tests::{model_both, race, receive, ring, MSG_A};

/// max_receives = 1: the lease (deadline 10) expired, so a sweep at 30
/// dead-letters it while the holder acks at 20. Exactly one wins: the slot
/// ends FREE (acked) or DEAD with reason max-receives, never both, never
/// neither, and the message is not delivered again.
#[test]
fn dead_letter_against_ack() {
    model_both(|swap| {
        let r = ring(1, 1);
        r.send(MSG_A, 0, 0).unwrap();
        let rc = receive(&r, 0, &mut Vec::new()).unwrap().receipt;

        let (rh, rr) = (r.clone(), r.clone());
        let (acked, taken) = race(
            swap,
            move || rh.ack(rc, 20),
            move || receive(&rr, 30, &mut Vec::new()),
        );

        assert!(taken.is_none(), "delivered beyond max receives: {taken:?}");
        let info = r.info(0);
        assert!(!info.corrupt, "slot left inconsistent: {info:?}");
        match (&acked, info.state) {
            (Ok(()), Some(St::Free)) => assert_eq!(info.reason, 0, "a freed slot with a reason"),
            // Reason 1: max receives reached (design.md §3).
            (Err(Error::LeaseLost), Some(St::Dead)) => {
                assert_eq!(info.reason, 1, "dead with the wrong reason")
            }
            (acked, st) => panic!("ack {acked:?} but the slot ended {st:?}"),
        }
    });
}

/// A dead message (max_receives = 1) is redriven while a receiver polls. The
/// receiver gets it at most once, with the receive count reset.
#[test]
fn redrive_against_receive() {
    model_both(|swap| {
        let r = ring(1, 1);
        let id = r.send(MSG_A, 0, 0).unwrap();
        let rc = receive(&r, 0, &mut Vec::new()).unwrap().receipt;
        assert_eq!(r.nack(rc, 0, 1).unwrap(), Nacked::DeadLettered);

        let (rd, rr) = (r.clone(), r.clone());
        let (redriven, first) = race(
            swap,
            move || rd.redrive(0, None, 2),
            move || {
                let mut buf = Vec::new();
                receive(&rr, 3, &mut buf).map(|d| (d, buf))
            },
        );
        assert!(redriven.unwrap(), "redrive of a dead message");
        let mut buf = Vec::new();
        let second = receive(&r, 4, &mut buf).map(|d| (d, buf.clone()));

        let (d, payload) = match (first, second) {
            (Some(got), None) | (None, Some(got)) => got,
            (a, b) => panic!("expected exactly one delivery, got {a:?} and {b:?}"),
        };
        assert_eq!(payload, MSG_A);
        assert_eq!(d.id, id);
        assert_eq!(d.receives, 1, "redrive resets the receive count");
    });
}

/// The holder rejects its message (dead-letter now, reason `Rejected`) at
/// 20 while a receiver at 30 takes over the lease, whose deadline (10)
/// passed. Exactly one wins: the message is dead with reason 4 and not
/// delivered again, or the takeover leased it and the reject fails
/// `LeaseLost`; never both, never a slot left inconsistent.
#[test]
fn reject_against_takeover() {
    model_both(|swap| {
        let r = ring(1, 5);
        r.send(MSG_A, 0, 0).unwrap();
        let rc = receive(&r, 0, &mut Vec::new()).unwrap().receipt;

        let (rh, rr) = (r.clone(), r.clone());
        let (rejected, taken) = race(
            swap,
            move || rh.reject(rc, 20),
            move || receive(&rr, 30, &mut Vec::new()),
        );
        let info = r.info(0);
        assert!(!info.corrupt, "slot left inconsistent: {info:?}");
        match (&rejected, &taken, info.state) {
            // Reason 4: rejected by its consumer (design.md §3).
            (Ok(()), None, Some(St::Dead)) => assert_eq!(info.reason, 4, "wrong reason"),
            (Err(Error::LeaseLost), Some(d), Some(St::Leased)) => {
                assert_eq!(d.receives, 2, "the takeover is a redelivery")
            }
            (rejected, taken, st) => {
                panic!("reject {rejected:?}, takeover {taken:?}, slot ended {st:?}")
            }
        }
    });
}

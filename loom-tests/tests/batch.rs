//! Models of the batch paths and of a send on a full queue: a batch send
//! (one block of tickets, one re-check of `rcur` after the last publish)
//! against a batch receive (one advance of `rcur` over the leases it took),
//! and the full-queue hint against an ack that frees a slot
//! (docs/design.md §5.1, §5.2).
#![cfg(loom)]

use shmq::internal::{HeapMemory, Ring};
use shmq::{Delivery, Error};
use shmq_loom_tests::loom::sync::atomic::{AtomicBool, Ordering::*};
use shmq_loom_tests::loom::sync::Arc;
use shmq_loom_tests::{model_both, race, receive, ring, MSG_A, MSG_B, VT};

const MSG_C: &[u8; 16] = b"charlie-01234567";

/// Receive from the main path only (no sweep): what `rcur` leads to.
fn main_path(r: &Ring<HeapMemory>, now: u64, buf: &mut Vec<u8>) -> Option<Delivery> {
    r.try_receive(now, VT, buf, false, 0)
}

/// A producer sends three messages in one batch while a consumer takes a
/// batch of at most two and then one more receive from the main path, on a
/// four-slot ring. Afterwards the main path alone must lead to every
/// message not yet received: the batch receive skipped only what it leased,
/// and the batch send's one re-check moved `rcur` back over any ticket the
/// consumer walked past before its publish. Every message is received
/// exactly once, intact, with its id.
#[test]
fn batch_send_against_batch_receive() {
    model_both(|swap| {
        let r = ring(4, 5);
        let (rs, rr) = (r.clone(), r.clone());
        let (ids, mut got) = race(
            swap,
            move || {
                let mut ids = Vec::new();
                rs.send_many(&[MSG_A, MSG_B, MSG_C], 1, &mut ids)
                    .expect("an empty ring takes three messages");
                ids
            },
            move || {
                let (mut bufs, mut got) = (Vec::new(), Vec::new());
                let k = rr.receive_many(1, VT, &mut bufs, &mut got, 2);
                let mut out: Vec<(Delivery, Vec<u8>)> = got.into_iter().zip(bufs).take(k).collect();
                let mut buf = Vec::new();
                if let Some(d) = main_path(&rr, 1, &mut buf) {
                    out.push((d, buf));
                }
                out
            },
        );
        assert_eq!(ids.len(), 3);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
        let mut buf = Vec::new();
        while let Some(d) = main_path(&r, 2, &mut buf) {
            got.push((d, buf.clone()));
        }
        let mut seen: Vec<(u64, Vec<u8>)> = got.iter().map(|(d, p)| (d.id, p.clone())).collect();
        seen.sort();
        let want: Vec<(u64, Vec<u8>)> = ids
            .iter()
            .zip([MSG_A, MSG_B, MSG_C])
            .map(|(id, m)| (*id, m.to_vec()))
            .collect();
        assert_eq!(
            seen,
            want,
            "every message once, by the main path: {:?} {:?} {:?} {:?}",
            r.info(0),
            r.info(1),
            r.info(2),
            r.info(3)
        );
        for (d, _) in &got {
            assert_eq!(d.receives, 1);
        }
    });
}

/// Three slots all leased. A consumer acks the lease of slot 2 while a
/// producer sends twice: the first send's ticket lands on busy slot 0, so
/// it looks for a free slot and, finding none, leaves the full-queue hint.
/// Once the producer knows the ack finished, its next send (whose ticket
/// lands on busy slot 1) must not trust a hint the ack should have cleared:
/// it finds slot 2. Either the ack saw the hint and cleared it, or the
/// sender's second look (after storing the hint) saw the free slot.
#[test]
fn full_hint_against_ack() {
    model_both(|swap| {
        let r = ring(3, 5);
        for m in [MSG_A, MSG_B, MSG_C] {
            r.send(m, 0, 1).unwrap();
        }
        let mut buf = Vec::new();
        let mut rcs: Vec<_> = (0..3)
            .map(|_| receive(&r, 1, &mut buf).unwrap().receipt)
            .collect();
        rcs.sort_by_key(|rc| rc.slot);
        let done = Arc::new(AtomicBool::new(false));
        let (rc, rp, done_c) = (r.clone(), r.clone(), done.clone());
        let slot2 = rcs[2];
        let ((), (first, second)) = race(
            swap,
            move || {
                rc.ack(slot2, 2).expect("a prompt ack succeeds");
                // SYNC POINT: pairs with the producer's Acquire load.
                done_c.store(true, Release);
            },
            move || {
                let first = rp.send(MSG_A, 0, 2);
                let knew = done.load(Acquire);
                let second = rp.send(MSG_B, 0, 2);
                if knew {
                    assert!(
                        first.is_ok() || second.is_ok(),
                        "Full after the ack finished: {first:?} {second:?} {:?} {:?} {:?}",
                        rp.info(0),
                        rp.info(1),
                        rp.info(2)
                    );
                }
                (first, second)
            },
        );
        let sent = [&first, &second].iter().filter(|s| s.is_ok()).count();
        assert!(
            sent <= 1,
            "one free slot, two messages: {first:?} {second:?}"
        );
        for s in [first, second] {
            assert!(matches!(s, Ok(_) | Err(Error::Full)), "{s:?}");
        }
    });
}

/// Two slots, both leased. A consumer acks one while a producer sends: the
/// producer finds the queue full, sets the waiter bit of `room`, looks at
/// every slot once more (`send_looking`) and, finding none free, would park
/// on the word. Either its last look found the freed slot, or the ack saw
/// the waiter bit and changed the word (so the futex wait returns at once):
/// a sender never sleeps while a slot is free (§5.1, waiting for room).
#[test]
fn room_wait_against_ack() {
    model_both(|swap| {
        let r = ring(2, 5);
        for m in [MSG_A, MSG_B] {
            r.send(m, 0, 1).unwrap();
        }
        let mut buf = Vec::new();
        let mut rcs: Vec<_> = (0..2)
            .map(|_| receive(&r, 1, &mut buf).unwrap().receipt)
            .collect();
        rcs.sort_by_key(|rc| rc.slot);
        let (rc, rp) = (r.clone(), r.clone());
        let slot1 = rcs[1];
        let ((), parked_on) = race(
            swap,
            move || rc.ack(slot1, 2).expect("a prompt ack succeeds"),
            move || match rp.send(MSG_C, 0, 2) {
                Ok(_) => None,
                Err(Error::Full) => {
                    let w = rp.room_wait_word();
                    assert_eq!(w & 1, 1, "the waiter bit is set");
                    match rp.send_looking(MSG_C, 0, 2) {
                        Ok(_) => None,
                        Err(Error::Full) => Some(w),
                        Err(e) => panic!("{e:?}"),
                    }
                }
                Err(e) => panic!("{e:?}"),
            },
        );
        if let Some(w) = parked_on {
            assert_ne!(
                r.room_word(),
                w,
                "the sender would sleep on an unchanged word while slot 1 is free: {:?}",
                r.info(1)
            );
        }
    });
}

//! Models of senders racing each other and receivers: the claim of a free
//! slot, publish against receive, and tickets wrapping around a small ring
//! (docs/design.md §4, §5.1, §5.2).
#![cfg(loom)]

use shmq::internal::{HeapMemory, Ring};
use shmq::Error;
use shmq_loom_tests::loom::sync::atomic::{AtomicU64, Ordering::*};
use shmq_loom_tests::loom::sync::Arc;
use shmq_loom_tests::loom::thread;
use shmq_loom_tests::{model_both, race, receive, ring, two_processes, MSG_A, MSG_B};
use std::sync::Arc as StdArc;

/// Two producers race for the only slot: exactly one send wins, the other
/// gets `Full`, and the winner's message is received intact.
#[test]
fn two_producers_race_for_one_slot() {
    model_both(|swap| {
        let r = ring(1, 5);
        let (ra, rb) = (r.clone(), r.clone());
        let (a, b) = race(
            swap,
            move || ra.send(MSG_A, 0, 1),
            move || rb.send(MSG_B, 0, 2),
        );
        let (msg, id) = match (&a, &b) {
            (Ok(id), Err(Error::Full)) => (MSG_A, *id),
            (Err(Error::Full), Ok(id)) => (MSG_B, *id),
            other => panic!("exactly one send must win the slot, got {other:?}"),
        };
        let mut buf = Vec::new();
        let d = receive(&r, 5, &mut buf)
            .unwrap_or_else(|| panic!("no message: {a:?} {b:?} {:?}", r.info(0)));
        assert_eq!(buf, msg, "the winner's payload, intact");
        assert_eq!(d.id, id);
        assert_eq!(d.receives, 1);
        assert!(
            receive(&r, 6, &mut buf).is_none(),
            "the loser's message must not be in the ring"
        );
    });
}

/// A receiver polls while the message is being published: it gets nothing or
/// the complete message (payload and id), never a torn one; and a message
/// whose send returned `Ok` is receivable afterwards if the poll missed it.
#[test]
fn publish_against_receive() {
    model_both(|swap| {
        let r = ring(1, 5);
        let (rs, rr) = (r.clone(), r.clone());
        let (sent, got) = race(
            swap,
            move || rs.send(MSG_A, 0, 1),
            move || {
                let mut buf = Vec::new();
                receive(&rr, 1, &mut buf).map(|d| (d, buf))
            },
        );
        let id = sent.expect("an empty ring accepts a message");
        match got {
            Some((d, buf)) => {
                assert_eq!(buf, MSG_A, "a concurrent receive copied a torn payload");
                assert_eq!(d.id, id, "a concurrent receive read a stale id");
            }
            None => {
                // After the lap's end the sweep runs again (sweep interval 10).
                let mut buf = Vec::new();
                let d = receive(&r, 100, &mut buf)
                    .unwrap_or_else(|| panic!("a sent message is never lost {:?}", r.info(0)));
                assert_eq!(buf, MSG_A);
                assert_eq!(d.id, id);
            }
        }
        let info = r.info(0);
        assert!(!info.corrupt, "slot left inconsistent: {info:?}");
    });
}

fn msg(k: u64) -> [u8; 16] {
    let mut m = *b"message #0......";
    m[9] = b'0' + k as u8;
    m
}

/// Wrap-around on a 2-slot ring. Tickets 0 and 1 fill both slots; a consumer
/// receives both and acks them (the second first), while the producer sends
/// two more messages on the next lap (tickets 2, 3, ...: slot 0 may still be
/// leased, so the sender must step over it).
///
/// Asserts: a send never returns `Full` when the producer knows (through an
/// Acquire load of the consumer's ack count) that a slot is free; message ids
/// are distinct; every message sent is received exactly once, intact.
#[test]
fn wrap_around_two_slots() {
    model_both(|swap| {
        let r = ring(2, 5);
        let mut sent = vec![
            (r.send(&msg(0), 0, 1).unwrap(), msg(0)),
            (r.send(&msg(1), 0, 1).unwrap(), msg(1)),
        ];
        // How many acks the consumer has finished.
        let acked = Arc::new(AtomicU64::new(0));
        let (rc, acked_c) = (r.clone(), acked.clone());
        let consumer = move || {
            let mut got = Vec::new();
            let mut buf = Vec::new();
            for _ in 0..4 {
                if let Some(d) = receive(&rc, 2, &mut buf) {
                    got.push((d, buf.clone()));
                    if got.len() == 2 {
                        break;
                    }
                } else {
                    thread::yield_now();
                }
            }
            assert_eq!(got.len(), 2, "both ready messages are received");
            for (d, _) in got.iter().rev() {
                rc.ack(d.receipt, 3).expect("a prompt ack succeeds");
                // SYNC POINT: pairs with the producer's Acquire load.
                acked_c.fetch_add(1, Release);
            }
            got
        };
        let rp = r.clone();
        let producer = move || {
            for k in 2..4 {
                let seen = acked.load(Acquire);
                match rp.send(&msg(k), 0, 2) {
                    Ok(id) => sent.push((id, msg(k))),
                    Err(Error::Full) => assert!(
                        sent.len() as u64 - seen >= 2,
                        "Full although {seen} of {} messages were acked (a slot was free): {:?} {:?}",
                        sent.len(),
                        rp.info(0),
                        rp.info(1)
                    ),
                    Err(e) => panic!("send {k}: {e:?}"),
                }
            }
            sent
        };
        let (sent, mut got) = race(swap, producer, consumer);

        let mut buf = Vec::new();
        while let Some(d) = receive(&r, 100, &mut buf) {
            r.ack(d.receipt, 100).unwrap();
            got.push((d, buf.clone()));
        }
        let mut ids: Vec<u64> = sent.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), sent.len(), "message ids are unique");
        for (d, payload) in &got {
            let (_, m) = sent
                .iter()
                .find(|(id, _)| *id == d.id)
                .unwrap_or_else(|| panic!("received id {} that was never sent", d.id));
            assert_eq!(payload, m, "message {} intact", d.id);
            assert_eq!(d.receives, 1);
        }
        let mut got_ids: Vec<u64> = got.iter().map(|(d, _)| d.id).collect();
        got_ids.sort_unstable();
        assert_eq!(got_ids, ids, "every sent message received exactly once");
    });
}

/// A full queue drained in order (docs/design.md §5.1, §5.2): two slots
/// hold messages 0 and 1; a consumer receives and acks each in turn while
/// the producer sends message 2, retrying `Full`. The consumer sees 0, 1,
/// 2 in that order, each once; a send that returns `Full` leaves `fill` as
/// it found it (mutant `full_burns_ticket`: it uses up a ticket, which puts
/// later ids a lap ahead of their slots). Message 2's id is 2, or 3 when
/// the producer's look passed slot 0 just before the ack freed it and found
/// slot 1 freed (a ticket stepped over, not a reorder).
#[test]
fn full_queue_keeps_order() {
    model_both(|swap| {
        let r = ring(2, 5);
        for k in 0..2 {
            assert_eq!(r.send(&msg(k), 0, 1).unwrap(), k);
        }
        let rp = r.clone();
        let producer = move || {
            for _ in 0..8 {
                let fill = rp.fill_word();
                match rp.send(&msg(2), 0, 1) {
                    Ok(id) => return id,
                    Err(Error::Full) => {
                        // Only this thread takes tickets: its own last value.
                        assert_eq!(rp.fill_word(), fill, "Full took a ticket");
                        thread::yield_now()
                    }
                    Err(e) => panic!("send: {e:?}"),
                }
            }
            panic!("Full after every slot but one was acked")
        };
        let rc = r.clone();
        let consumer = move || {
            let mut got = Vec::new();
            let mut buf = Vec::new();
            for _ in 0..8 {
                if let Some(d) = receive(&rc, 1, &mut buf) {
                    rc.ack(d.receipt, 1).expect("a prompt ack succeeds");
                    got.push((d.id, buf.clone()));
                    if got.len() == 3 {
                        break;
                    }
                } else {
                    thread::yield_now();
                }
            }
            got
        };
        let (id, got) = race(swap, producer, consumer);
        assert!(id == 2 || id == 3, "message 2 took ticket {id}");
        let want: Vec<(u64, [u8; 16])> = [(0, msg(0)), (1, msg(1)), (id, msg(2))].into();
        let got: Vec<(u64, [u8; 16])> = got
            .into_iter()
            .map(|(id, p)| (id, p.try_into().unwrap()))
            .collect();
        assert_eq!(got, want, "every message once, in send order");
    });
}

/// A sender claims the only slot at 1 (claim deadline 11) and may stall
/// anywhere in its send, before or after naming itself as the claimer in
/// `aux`; at 20 another process sweeps (abandoning the expired claim, and
/// freeing it at once if it names no claimer) and sends MSG_B. Whatever
/// the interleaving, the stalled sender never writes into the slot once it
/// is someone else's: MSG_B is received intact, and the stalled sender's
/// MSG_A is received exactly when its send returned `Ok`. Mutants:
/// `claim_no_owner` (a claim that names nobody, so the slot is reused
/// while its claimer still writes) and `aux_no_recheck` (the claimer's
/// `aux` CAS succeeds after the slot moved on, nobody having written `aux`
/// meanwhile, and the claimer takes the slot for its own).
#[test]
fn stalled_claimer_against_reuse() {
    model_both(|swap| {
        let r = ring(1, 5);
        let (rz, ro) = (r.clone(), r.clone());
        let other = move || {
            let mut buf = Vec::new();
            // The sweep at 20 abandons the expired claim (or finds the
            // message published, or the slot free).
            let got = receive(&ro, 20, &mut buf).map(|d| (d, buf));
            (got, ro.send(MSG_B, 0, 20))
        };
        let (zombie, (early, sent_b)) = race(swap, move || rz.send(MSG_A, 0, 1), other);
        let mut got = Vec::new();
        if let Some((d, buf)) = early {
            r.ack(d.receipt, 21).unwrap();
            got.push(buf);
        }
        let mut buf = Vec::new();
        while let Some(d) = receive(&r, 40, &mut buf) {
            r.ack(d.receipt, 40).unwrap();
            got.push(buf.clone());
        }
        let a = got.iter().filter(|p| p.as_slice() == MSG_A).count();
        let b = got.iter().filter(|p| p.as_slice() == MSG_B).count();
        assert_eq!(
            a + b,
            got.len(),
            "a torn message: {got:?} (zombie {zombie:?}, B {sent_b:?})"
        );
        assert_eq!(
            a,
            usize::from(zombie.is_ok()),
            "MSG_A: zombie {zombie:?}, B {sent_b:?}, {:?}",
            r.info(0)
        );
        assert_eq!(b, usize::from(sent_b.is_ok()), "MSG_B: send {sent_b:?}");
    });
}

/// §5.2, the published head: a caught-up receiver of another process
/// loads `fill` (and `head`) at a new clock tick while a send races it.
/// From then on, within that tick, it polls `head` instead of `fill`, and
/// must still find the message: in the look that races the send, or in
/// the next one, because `head` changed since that look read it.
#[test]
fn a_receiver_polling_the_published_head_misses_no_send() {
    model_both(|swap| {
        let (sender, receiver) = two_processes(2);
        let main_path = |r: &Ring<StdArc<HeapMemory>>, now: u64| {
            let mut buf = Vec::new();
            r.try_receive(now, shmq_loom_tests::VT, &mut buf, false, 0)
                .map(|d| (d.id, buf))
        };
        assert!(main_path(&receiver, 1).is_none(), "an empty queue");
        let rr = receiver.clone();
        let (sent, first) = race(
            swap,
            move || sender.send(MSG_A, 0, 2),
            move || main_path(&rr, 2),
        );
        let id = sent.expect("room for one message");
        let got = first.or_else(|| main_path(&receiver, 2));
        let (got_id, buf) = got.unwrap_or_else(|| {
            panic!(
                "a sent message missed in the same tick: head {}, fill {}",
                receiver.head_word(),
                receiver.fill_word()
            )
        });
        assert_eq!((got_id, buf.as_slice()), (id, &MSG_A[..]));
    });
}

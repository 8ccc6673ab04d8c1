//! Deterministic tests of the core on heap memory, with time as a parameter.
//! Crashes are simulated by performing a protocol's first steps by hand and
//! never the rest.

use super::*;
use crate::layout::HeapMemory;
use crate::slot::{pack_aux, pack_state, St};

const VT: u64 = 1000;

fn params(max_receives: u32) -> Params {
    Params {
        slot_size: 64,
        max_receives,
        visibility_ms: VT,
        claim_ms: 500,
        checksums: true,
        identity: 0x5157,
        pid: 4242,
        is_alive: |pid| pid == 4242,
        wake: crate::ring::no_wake,
    }
}

fn ring(n: u32) -> Ring<HeapMemory> {
    Ring::new(HeapMemory::new(n, 64), params(3))
}

fn recv(r: &Ring<HeapMemory>, now: u64) -> Option<(Delivery, Vec<u8>)> {
    let mut buf = Vec::new();
    // A full sweep budget, so returns are found deterministically.
    r.try_receive(now, VT, &mut buf, false, u64::from(r.slot_count()))
        .map(|d| (d, buf))
}

fn state_of(r: &Ring<HeapMemory>, i: u32) -> Option<St> {
    r.info(i).state
}

#[test]
fn send_receive_ack_in_fifo_order() {
    let r = ring(8);
    for k in 0..5u8 {
        assert_eq!(r.send(&[k; 10], 0, 100).unwrap(), u64::from(k));
    }
    for k in 0..5u8 {
        let (d, p) = recv(&r, 100).expect("a message");
        assert_eq!(d.id, u64::from(k));
        assert_eq!(p, vec![k; 10]);
        assert_eq!(d.receives, 1);
        assert_eq!(d.deadline_ms, 100 + VT);
        r.ack(d.receipt, 101).unwrap();
    }
    assert!(recv(&r, 100).is_none());
    assert_eq!(r.shared().acked.load(Relaxed), 5);
}

#[test]
fn payload_lengths_round_trip_at_every_word_boundary() {
    let r = ring(4);
    for len in 0..=64usize {
        let msg: Vec<u8> = (0..len as u8).collect();
        r.send(&msg, 0, 1).unwrap();
        let (d, p) = recv(&r, 1).unwrap();
        assert_eq!(p, msg, "length {len}");
        r.ack(d.receipt, 1).unwrap();
    }
}

#[test]
fn full_queue_hands_back_an_error_and_recovers_after_ack() {
    let r = ring(3);
    for _ in 0..3 {
        r.send(b"x", 0, 1).unwrap();
    }
    assert!(matches!(r.send(b"y", 0, 1), Err(Error::Full)));
    let (d, _) = recv(&r, 1).unwrap();
    assert!(
        matches!(r.send(b"y", 0, 1), Err(Error::Full)),
        "a leased message still holds its slot"
    );
    r.ack(d.receipt, 1).unwrap();
    r.send(b"y", 0, 1).unwrap();
}

#[test]
fn too_large_is_refused() {
    let r = ring(2);
    assert!(matches!(
        r.send(&[0; 65], 0, 1),
        Err(Error::TooLarge { len: 65, max: 64 })
    ));
}

#[test]
fn expired_lease_is_redelivered_and_the_stale_receipt_is_fenced() {
    let r = ring(4);
    r.send(b"job", 0, 0).unwrap();
    let (first, _) = recv(&r, 0).unwrap();
    assert!(recv(&r, VT - 1).is_none(), "leased until the deadline");
    let (second, p) = recv(&r, VT + 1).expect("redelivered after the deadline");
    assert_eq!(p, b"job");
    assert_eq!(second.id, first.id);
    assert_eq!(second.receives, 2);
    assert_ne!(second.receipt, first.receipt);
    assert!(matches!(
        r.ack(first.receipt, VT + 2),
        Err(Error::LeaseLost)
    ));
    assert!(matches!(
        r.nack(first.receipt, 0, VT + 2),
        Err(Error::LeaseLost)
    ));
    assert!(matches!(
        r.extend(first.receipt, 10, VT + 2),
        Err(Error::LeaseLost)
    ));
    r.ack(second.receipt, VT + 2).unwrap();
    assert_eq!(r.shared().redelivered.load(Relaxed), 1);
}

#[test]
fn extend_keeps_the_lease_and_the_receipt() {
    let r = ring(4);
    r.send(b"long job", 0, 0).unwrap();
    let (d, _) = recv(&r, 0).unwrap();
    assert_eq!(r.extend(d.receipt, 5 * VT, VT - 1).unwrap(), 6 * VT - 1);
    assert!(
        recv(&r, 3 * VT).is_none(),
        "extended lease is not taken over"
    );
    r.ack(d.receipt, 3 * VT).unwrap();
}

#[test]
fn an_expired_lease_not_yet_taken_over_can_still_be_acked_or_extended() {
    let r = ring(4);
    r.send(b"late", 0, 0).unwrap();
    let (d, _) = recv(&r, 0).unwrap();
    r.extend(d.receipt, VT, 2 * VT).unwrap();
    assert!(recv(&r, 2 * VT + 1).is_none());
    r.ack(d.receipt, 2 * VT + 2).unwrap();
}

#[test]
fn nack_makes_the_message_visible_now_or_after_a_delay() {
    let r = ring(4);
    r.send(b"retry me", 0, 0).unwrap();
    let (d, _) = recv(&r, 0).unwrap();
    assert_eq!(r.nack(d.receipt, 0, 1).unwrap(), Nacked::Requeued);
    let (d, _) = recv(&r, 1).expect("visible again at once");
    assert_eq!(d.receives, 2);
    assert_eq!(r.nack(d.receipt, 300, 2).unwrap(), Nacked::Requeued);
    assert!(recv(&r, 301).is_none(), "not before the delay");
    let (d, _) = recv(&r, 302).expect("visible after the delay");
    r.ack(d.receipt, 302).unwrap();
}

#[test]
fn delayed_send_is_invisible_until_its_time() {
    let r = ring(4);
    r.send(b"later", 500, 0).unwrap();
    r.send(b"now", 0, 0).unwrap();
    let (d, p) = recv(&r, 0).unwrap();
    assert_eq!(p, b"now");
    r.ack(d.receipt, 0).unwrap();
    assert!(recv(&r, 499).is_none());
    let (_, p) = recv(&r, 500).expect("delayed message");
    assert_eq!(p, b"later");
}

#[test]
fn max_receives_dead_letters_then_redrive_and_purge() {
    let r = ring(4);
    r.send(b"poison", 0, 0).unwrap();
    let mut now = 0;
    for k in 1..=3 {
        let (d, _) = recv(&r, now).unwrap();
        assert_eq!(d.receives, k);
        let out = r.nack(d.receipt, 0, now).unwrap();
        assert_eq!(
            out,
            if k == 3 {
                Nacked::DeadLettered
            } else {
                Nacked::Requeued
            }
        );
        now += 1;
    }
    assert!(recv(&r, now).is_none(), "dead messages are not delivered");
    let slot = (0..4).find(|&i| state_of(&r, i) == Some(St::Dead)).unwrap();
    assert_eq!(
        DeadReason::from_code(r.info(slot).reason),
        DeadReason::MaxReceives
    );
    assert_eq!(r.shared().dead_lettered.load(Relaxed), 1);
    assert!(
        r.redrive(slot, Some(r.info(slot).gen + 1), now)
            .is_ok_and(|done| !done),
        "wrong gen is refused"
    );
    assert!(r.redrive(slot, None, now).unwrap());
    let (d, p) = recv(&r, now).unwrap();
    assert_eq!((d.receives, p.as_slice()), (1, &b"poison"[..]));
    // Dies again by expiry this time.
    for k in 2..=3 {
        now += VT + 1;
        let (d, _) = recv(&r, now).expect("redelivered after expiry");
        assert_eq!(d.receives, k);
    }
    now += VT + 1;
    assert!(recv(&r, now).is_none(), "third expiry dead-letters");
    assert_eq!(state_of(&r, slot), Some(St::Dead));
    assert!(r.purge(slot, None, now).unwrap());
    assert_eq!(state_of(&r, slot), Some(St::Free));
}

#[test]
fn a_long_lease_or_dead_message_blocks_nothing_else() {
    let r = ring(4);
    r.send(b"held", 0, 0).unwrap();
    let (_held, _) = recv(&r, 0).unwrap();
    r.send(b"poison", 0, 0).unwrap();
    let (p, _) = recv(&r, 0).unwrap();
    let mut now = 0;
    // Kill the second one.
    let mut rc = p.receipt;
    for _ in 0..3 {
        if r.nack(rc, 0, now).unwrap() == Nacked::DeadLettered {
            break;
        }
        rc = recv(&r, now).unwrap().0.receipt;
        now += 1;
    }
    for k in 0..100u32 {
        r.send(&k.to_le_bytes(), 0, now).unwrap();
        let (d, b) = recv(&r, now).unwrap();
        assert_eq!(b, k.to_le_bytes());
        r.ack(d.receipt, now).unwrap();
    }
}

#[test]
fn a_crashed_claim_is_abandoned_and_reclaimed_once_its_owner_is_gone() {
    let r = ring(2);
    // A sender with pid 7 (dead) claims slot 0 and dies before publishing.
    let w = r.memory().slot(0);
    w.aux.store(pack_aux(0, 7, 1), Relaxed);
    w.state.store(pack_state(St::Writing, 1, 500), Relaxed);
    r.shared().fill.store(1, Relaxed);
    r.send(b"other", 0, 0).unwrap();
    let (d, _) = recv(&r, 0).expect("the hole stops nothing");
    r.ack(d.receipt, 0).unwrap();
    assert_eq!(state_of(&r, 0), Some(St::Writing));
    assert!(recv(&r, 501).is_none());
    assert_eq!(
        state_of(&r, 0),
        Some(St::Free),
        "dead owner: straight back to free"
    );
}

#[test]
fn an_abandoned_claim_of_a_live_owner_is_kept_until_the_owner_gives_up() {
    let r = ring(2);
    // We (pid 4242, alive) claim slot 0 by hand and stall.
    let w = r.memory().slot(0);
    w.aux.store(pack_aux(0, 4242, 1), Relaxed);
    w.state.store(pack_state(St::Writing, 1, 500), Relaxed);
    assert!(recv(&r, 501).is_none());
    assert_eq!(
        state_of(&r, 0),
        Some(St::Abandoned),
        "not reused while the owner lives"
    );
    assert!(recv(&r, 5000).is_none());
    assert_eq!(state_of(&r, 0), Some(St::Abandoned));
    // The zombie resumes: its publish (a CAS from its claim's word) fails.
    let s = pack_state(St::Writing, 1, 500);
    assert!(r.transition(0, s, St::Ready, 600).is_err());
    r.release_abandoned(0, 1, 600);
    assert_eq!(state_of(&r, 0), Some(St::Free));
}

#[test]
fn a_claim_whose_claimer_died_before_naming_itself_is_reclaimed() {
    let r = ring(2);
    // A sender claimed slot 0 and died before its `aux` CAS: `aux` is still
    // the previous message's (its tag names an older generation).
    let w = r.memory().slot(0);
    w.aux.store(pack_aux(2, 4242, 0), Relaxed);
    w.state.store(pack_state(St::Writing, 1, 500), Relaxed);
    assert!(recv(&r, 501).is_none());
    assert_eq!(
        state_of(&r, 0),
        Some(St::Free),
        "no claimer named: it wrote nothing, the slot is reused at once"
    );
}

#[test]
fn a_lease_whose_holder_died_before_naming_itself_still_counts() {
    let r = Ring::new(HeapMemory::new(1, 64), params(2));
    r.send(b"m", 0, 0).unwrap();
    // A receiver leased the message and died before its `aux` CAS.
    let w = r.memory().slot(0);
    let s = w.state.load(Relaxed);
    w.state.store(
        pack_state(St::Leased, crate::slot::gen_of(s) + 1, VT),
        Relaxed,
    );
    let (d, _) = recv(&r, VT).expect("redelivered after the deadline");
    assert_eq!(d.receives, 2, "the crashed lease counts as a delivery");
    r.nack(d.receipt, 0, VT).unwrap();
    assert_eq!(state_of(&r, 0), Some(St::Dead), "max receives 2 reached");
}

#[test]
fn corrupt_words_are_quarantined_not_delivered() {
    let r = ring(4);
    r.send(b"good", 0, 0).unwrap();
    r.send(b"bad len", 0, 0).unwrap();
    r.send(b"bad crc", 0, 0).unwrap();
    // Slot 3: a garbage state word.
    r.memory()
        .slot(3)
        .state
        .store(0xdead_beef_0000_00ff, Relaxed);
    r.shared().fill.store(4, Relaxed);
    r.memory().slot(1).len.store(10_000, Relaxed);
    r.memory().payload(2)[0].store(0x4141_4141, Relaxed);
    let (d, p) = recv(&r, 0).unwrap();
    assert_eq!(p, b"good");
    r.ack(d.receipt, 0).unwrap();
    assert!(recv(&r, 0).is_none(), "corrupt messages are not delivered");
    for i in 1..4 {
        assert_eq!(state_of(&r, i), Some(St::Dead), "slot {i} quarantined");
        assert_eq!(DeadReason::from_code(r.info(i).reason), DeadReason::Corrupt);
    }
}

#[test]
fn any_bytes_in_the_words_never_panic() {
    // A cheap exhaustive-ish pass: every state code with several
    // generations and times, and garbage in `aux`.
    for code in 0..16u64 {
        for (gen, time) in [(0, 0), (1, 5), (0xFFFFF, u64::MAX), (3, 1 << 39)] {
            for aux in [0, u64::MAX, 0x1234_5678_9abc_def0] {
                let r = ring(2);
                let w = r.memory().slot(0);
                w.state.store(crate::slot::pack(code, gen, time), Relaxed);
                w.aux.store(aux, Relaxed);
                w.len.store(u32::MAX, Relaxed);
                r.shared().fill.store(u64::MAX - 1, Relaxed);
                r.shared().rcur.store(u64::MAX - 5, Relaxed);
                r.shared().sweep_cursor.store(u64::MAX, Relaxed);
                let _ = recv(&r, 10_000);
                let _ = r.send(b"x", 0, 10_000);
                let _ = recv(&r, 10_000);
                let _ = r.repair(0, 20_000, true);
                let _ = r.ack(receipt(0, 1, 0), 0);
                let _ = r.ack(receipt(9, 1, 0), 0);
                let mut buf = Vec::new();
                let _ = r.peek(0, &mut buf);
            }
        }
    }
}

fn receipt(slot: u32, gen: u64, id: u64) -> Receipt {
    Receipt {
        queue: 0x5157,
        slot,
        gen,
        id,
    }
}

#[test]
fn a_time_no_transition_writes_is_quarantined() {
    let r = ring(2);
    r.send(b"m", 0, 0).unwrap();
    let w = r.memory().slot(0);
    let s = w.state.load(Relaxed);
    // READY, visible in 2^39 ms (17 years): stuck for good if trusted.
    w.state.store(crate::slot::with_time(s, 1 << 39), Relaxed);
    assert!(recv(&r, 1).is_none());
    assert_eq!(state_of(&r, 0), Some(St::Dead));
    assert_eq!(DeadReason::from_code(r.info(0).reason), DeadReason::Corrupt);
}

#[test]
fn peek_reads_without_leasing() {
    let r = ring(2);
    r.send(b"look", 0, 0).unwrap();
    let mut buf = Vec::new();
    let info = r.peek(0, &mut buf).expect("a message");
    assert_eq!(
        (info.state, buf.as_slice()),
        (Some(St::Ready), &b"look"[..])
    );
    let (d, _) = recv(&r, 0).expect("still receivable");
    assert_eq!(d.receives, 1);
}

/// A sender takes ticket 0, reads `skips` and claims slot 0; a receiver
/// finds ticket 0 still WRITING; a second sender sends ticket 1 and the
/// receiver takes it, stepping over ticket 0. Returns the stalled sender's
/// reading of `skips`.
fn receiver_walks_past_a_stalled_claim(r: &Ring<HeapMemory>) -> u64 {
    let skips = r.shared().skips.load(Relaxed);
    let w = r.memory().slot(0);
    w.aux.store(pack_aux(0, 4242, 1), Relaxed);
    w.state.store(pack_state(St::Writing, 1, 500), Relaxed);
    r.shared().fill.store(1, Relaxed);
    let mut buf = Vec::new();
    assert!(r.try_receive(0, VT, &mut buf, false, 0).is_none());
    assert_eq!(
        r.shared().rcur.load(Relaxed),
        0,
        "the newest ticket, still being written, is not stepped over"
    );
    r.send(b"next", 0, 0).unwrap(); // ticket 1 (slot 1)
    let d = r.try_receive(0, VT, &mut buf, false, 0).unwrap();
    assert_eq!(buf, b"next");
    assert_eq!(r.shared().rcur.load(Relaxed), 2);
    assert_ne!(
        r.shared().skips.load(Relaxed),
        skips,
        "the step was counted"
    );
    r.ack(d.receipt, 0).unwrap();
    // The stalled sender publishes ticket 0.
    w.msg_id.store(0, Relaxed);
    w.len.store(3, Relaxed);
    w.crc.store(crate::ring::message_crc(0, b"old"), Relaxed);
    crate::ring::write_payload(r.memory().payload(0), b"old");
    r.transition(0, pack_state(St::Writing, 1, 500), St::Ready, 0)
        .unwrap();
    skips
}

#[test]
fn a_publish_behind_the_receive_cursor_is_found() {
    // The sender's re-check sees that `skips` moved and brings `rcur` back:
    // the main path finds the message at once.
    let r = ring(4);
    let skips = receiver_walks_past_a_stalled_claim(&r);
    r.recheck_rcur(skips, 0);
    assert_eq!(r.shared().rcur.load(Relaxed), 0);
    let mut buf = Vec::new();
    r.try_receive(0, VT, &mut buf, false, 0)
        .expect("found by the main path");
    assert_eq!(buf, b"old");
    // With `skips` unchanged the re-check does not touch `rcur`.
    r.shared().rcur.store(3, Relaxed);
    r.recheck_rcur(r.shared().skips.load(Relaxed), 0);
    assert_eq!(r.shared().rcur.load(Relaxed), 3);

    // Without the re-check (a sender killed after its publish), the sweep
    // still finds it within one interval.
    let r = ring(4);
    receiver_walks_past_a_stalled_claim(&r);
    let (_, p) = recv(&r, r.sweep_interval_ms() + 1).expect("found by the sweep");
    assert_eq!(p, b"old");
}

#[test]
fn in_a_busy_queue_the_sweep_passes_fresh_messages_to_find_an_expired_lease() {
    let r = ring(64);
    r.send(b"expires", 0, 0).unwrap();
    let (held, _) = recv(&r, 0).unwrap();
    for k in 0..60u32 {
        r.send(&k.to_le_bytes(), 0, 0).unwrap();
    }
    // The sweep starts just past the expired lease: it must walk over the
    // 60 fresh messages (the main path's) to come back to it.
    r.shared().sweep_cursor.store(1, Relaxed);
    let mut buf = Vec::new();
    let now = VT + 1;
    let found = (0..3)
        .filter_map(|_| r.try_receive(now, VT, &mut buf, true, 0))
        .any(|d| d.id == held.id);
    assert!(found, "two periodic sweep steps of 32 slots reach slot 0");
}

#[test]
fn a_slot_turned_ready_by_a_stranger_fails_its_checksum() {
    let r = ring(2);
    // Never used: id 0, length 0, payload 0, crc 0. A hostile writer makes it READY.
    let w = r.memory().slot(1);
    w.state.store(pack_state(St::Ready, 0, 0), Relaxed);
    r.shared().fill.store(2, Relaxed);
    assert!(recv(&r, 0).is_none(), "no phantom empty message");
    assert_eq!(state_of(&r, 1), Some(St::Dead));
}

#[test]
fn a_message_sent_without_delay_is_visible_to_a_receiver_with_an_older_clock_reading() {
    let r = ring(4);
    // The receiver read the clock a tick before the sender did.
    r.send(b"now", 0, 1001).unwrap();
    r.send(b"later", 500, 1001).unwrap();
    let (d, p) = recv(&r, 1000).expect("visible at once, not a sweep interval later");
    assert_eq!(p, b"now");
    r.ack(d.receipt, 1000).unwrap();
    assert!(
        recv(&r, 1000).is_none(),
        "a delayed message still waits for its time"
    );
    assert!(recv(&r, 1501).is_some());
}

/// Fill `n` slots, lease them all; returns the receipts in slot order.
fn fill_and_lease(r: &Ring<HeapMemory>, now: u64) -> Vec<Receipt> {
    let n = r.slot_count();
    for _ in 0..n {
        r.send(b"x", 0, now).unwrap();
    }
    let mut rcs: Vec<Receipt> = (0..n).map(|_| recv(r, now).unwrap().0.receipt).collect();
    rcs.sort_by_key(|rc| rc.slot);
    rcs
}

#[test]
fn a_send_on_a_full_queue_takes_no_ticket_and_finds_the_one_free_slot() {
    let r = ring(1024);
    let rcs = fill_and_lease(&r, 1);
    let fill = r.shared().fill.load(Relaxed);
    for _ in 0..2000 {
        assert!(matches!(r.send(b"y", 0, 1), Err(Error::Full)));
    }
    // The first failed send looked at every slot (twice) and left the hint;
    // the others trusted it. None took a ticket.
    assert_eq!(r.shared().fill.load(Relaxed), fill);
    // A slot far from the next ticket's is freed: the ack credits the hint,
    // and the very next send finds the slot, at the same clock reading,
    // taking the tickets up to it.
    r.ack(rcs[700], 1).unwrap();
    let id = r.send(b"z", 0, 1).unwrap();
    let (d, p) = recv(&r, 1).unwrap();
    assert_eq!((d.id, d.receipt.slot, p.as_slice()), (id, 700, &b"z"[..]));
    assert_eq!(id, fill + 700, "the id is the ticket of the slot it took");
    assert!(
        matches!(r.send(b"w", 0, 1), Err(Error::Full)),
        "the send spent the credit"
    );
}

#[test]
fn a_full_queue_drained_in_order_takes_each_freed_slot_without_a_walk() {
    // Consumers ack the oldest message, producers retry on Full. A failed
    // send takes no ticket, so each freed slot is the next ticket's: each
    // send is one claim, each failed send a load of the hint, and ids stay
    // consecutive (§5.1).
    let r = ring(8);
    let rcs = fill_and_lease(&r, 1);
    assert!(matches!(r.send(b"y", 0, 1), Err(Error::Full)));
    for (k, rc) in rcs.iter().enumerate() {
        r.ack(*rc, 1).unwrap();
        let fill = r.shared().fill.load(Relaxed);
        assert_eq!(fill, 8 + k as u64, "round {k}: no ticket used up");
        assert_eq!(r.send(b"y", 0, 1).unwrap(), fill, "round {k}");
        assert!(matches!(r.send(b"y", 0, 1), Err(Error::Full)));
        assert_eq!(r.shared().fill.load(Relaxed), fill + 1, "round {k}");
    }
}

#[test]
fn the_main_path_keeps_ticket_order_past_a_walk() {
    // Competing consumers ack out of order, so senders walk: m3 takes
    // ticket 4 (slot 1), m4 ticket 6 (slot 0), while m2 (ticket 2, slot 2)
    // is still unread. The receiver at ticket 3 finds slot 0 holding m4, a
    // later lap's message: it must step over it, or m4 would be delivered
    // before m3 (§5.2).
    let r = ring(3);
    for k in 0..3u8 {
        r.send(&[k], 0, 1).unwrap();
    }
    let (a, _) = recv(&r, 1).unwrap();
    let (b, _) = recv(&r, 1).unwrap();
    r.ack(b.receipt, 1).unwrap();
    assert_eq!(r.send(&[3], 0, 1).unwrap(), 4, "stepped over leased slot 0");
    r.ack(a.receipt, 1).unwrap();
    assert_eq!(r.send(&[4], 0, 1).unwrap(), 6, "stepped over ready slot 2");
    let got: Vec<u8> = std::iter::from_fn(|| recv(&r, 1))
        .map(|(d, p)| {
            r.ack(d.receipt, 1).unwrap();
            p[0]
        })
        .collect();
    assert_eq!(got, [2, 3, 4], "send order");
}

#[test]
fn every_way_of_freeing_a_slot_credits_the_full_hint() {
    // Purge of a dead message, and reclaim of an abandoned claim whose
    // owner is gone, free slots as an ack does.
    let r = ring(4);
    let rcs = fill_and_lease(&r, 1);
    assert!(matches!(r.send(b"y", 0, 1), Err(Error::Full)));
    assert_ne!(
        r.shared().full_hint.load(Relaxed),
        0,
        "the full lap left a hint"
    );
    assert_eq!(r.nack(rcs[2], 0, 1).unwrap(), Nacked::Requeued);
    // max_receives is 3: the third delivery's nack kills it.
    let (d, _) = recv(&r, 1).unwrap();
    assert_eq!(r.nack(d.receipt, 0, 1).unwrap(), Nacked::Requeued);
    let (d, _) = recv(&r, 1).unwrap();
    assert_eq!(r.nack(d.receipt, 0, 1).unwrap(), Nacked::DeadLettered);
    assert!(
        matches!(r.send(b"y", 0, 1), Err(Error::Full)),
        "dead holds its slot"
    );
    assert!(r.purge(2, None, 1).unwrap());
    assert_eq!(r.shared().full_hint.load(Relaxed), full_hint_at(1) + 1);
    r.send(b"y", 0, 1).unwrap();

    // An abandoned claim of a dead owner, reclaimed by the sweep.
    let r = ring(2);
    let _ = fill_and_lease(&r, 1);
    assert!(matches!(r.send(b"y", 0, 1), Err(Error::Full)));
    let rc = recv(&r, 1 + VT).unwrap().0.receipt; // slot 0 or 1, taken over
    r.ack(rc, 1 + VT).unwrap();
    let w = r.memory().slot(rc.slot);
    let s = w.state.load(Relaxed);
    let g1 = next_gen(gen_of(s));
    // A sender claims the slot by hand and dies (owner pid 7 is not alive).
    w.aux.store(pack_aux(0, 7, g1), Relaxed);
    w.state.store(pack_state(St::Writing, g1, 2 + VT), Relaxed);
    let _ = recv(&r, 2 + 2 * VT); // the other slot's lease expires and is taken
    r.shared()
        .full_hint
        .store(full_hint_at(2 + 2 * VT), Relaxed);
    assert!(matches!(r.send(b"y", 0, 2 + 2 * VT), Err(Error::Full)));
    // Claim expired at 2 + VT + 500: the sweep abandons it, the owner is
    // gone, so it is freed at once, and the hint credited.
    let _ = recv(&r, 3 + 2 * VT);
    assert_eq!(state_of(&r, rc.slot), Some(St::Free));
    assert_eq!(
        r.shared().full_hint.load(Relaxed),
        full_hint_at(2 + 2 * VT) + 1
    );
    r.send(b"y", 0, 3 + 2 * VT).unwrap();
}

#[test]
fn a_stale_full_hint_expires() {
    // A freer killed between its commit and crediting the hint leaves it
    // without the credit: sends trust it for FULL_HINT_MS, then look again.
    let r = ring(4);
    for m in [b"a", b"b", b"c"] {
        r.send(m, 0, 1).unwrap(); // slots 0, 1, 2; slot 3 stays free
    }
    r.shared().fill.store(4, Relaxed);
    r.shared().full_hint.store(full_hint_at(10), Relaxed);
    assert!(matches!(r.send(b"d", 0, 10), Err(Error::Full)));
    assert!(matches!(
        r.send(b"d", 0, 10 + FULL_HINT_MS),
        Err(Error::Full)
    ));
    // The hint is stale: the send finds ticket 4's slot busy, looks on
    // and takes ticket 7 (slot 3).
    assert_eq!(r.send(b"d", 0, 11 + FULL_HINT_MS).unwrap(), 7);
    // A hint from the future (hostile, or another boot) is not trusted.
    let r = ring(4);
    r.send(b"a", 0, 1).unwrap();
    r.shared().fill.store(4, Relaxed);
    r.shared().full_hint.store(full_hint_at(1_000_000), Relaxed);
    r.send(b"b", 0, 10).unwrap();
}

#[test]
fn send_many_takes_a_block_of_tickets_and_steps_over_busy_slots() {
    let r = ring(8);
    // Slot 2 holds a long-leased message, slots 0, 1 and 3.. are free again.
    for _ in 0..3 {
        r.send(b"x", 0, 1).unwrap();
    }
    let ds: Vec<Delivery> = (0..3).map(|_| recv(&r, 1).unwrap().0).collect();
    r.ack(ds[0].receipt, 1).unwrap();
    r.ack(ds[1].receipt, 1).unwrap();
    r.shared().fill.store(8, Relaxed);
    r.shared().rcur.store(8, Relaxed);
    let msgs: Vec<Vec<u8>> = (0..6u8).map(|k| vec![k; usize::from(k) + 1]).collect();
    let mut ids = Vec::new();
    r.send_many(&msgs, 5, &mut ids).unwrap();
    // Tickets 8..14 were taken at once; 10 (slot 2) was busy and stepped
    // over, so the sixth message took the next ticket there was.
    assert_eq!(ids, vec![8, 9, 11, 12, 13, 14]);
    assert_eq!(r.shared().fill.load(Relaxed), 15);
    assert_eq!(r.shared().sent.load(Relaxed), 3 + 6);
    let (mut bufs, mut got) = (Vec::new(), Vec::new());
    let mut taken = 0;
    while taken < 6 {
        let k = r.receive_many(5, VT, &mut bufs, &mut got, 6 - taken);
        if k == 0 {
            let (d, p) = recv(&r, 5).expect("every message is received");
            got.push(d);
            bufs.push(p);
        }
        taken = got.len();
    }
    let mut seen: Vec<(u64, Vec<u8>)> = got.iter().map(|d| d.id).zip(bufs).collect();
    seen.sort();
    let want: Vec<(u64, Vec<u8>)> = ids.iter().copied().zip(msgs).collect();
    assert_eq!(seen, want);
    let mut failed = Vec::new();
    let mut rcs: Vec<Receipt> = got.iter().map(|d| d.receipt).collect();
    rcs.push(ds[0].receipt); // acked before: reported, does not stop the rest
    assert_eq!(r.ack_many(rcs, 5, &mut failed), 6);
    assert_eq!(failed.len(), 1);
    assert!(matches!(failed[0], (rc, Error::LeaseLost) if rc == ds[0].receipt));
    assert_eq!(r.shared().acked.load(Relaxed), 2 + 6);
}

#[test]
fn send_many_cut_short_leaves_no_claim_behind() {
    let r = ring(4);
    let mut ids = Vec::new();
    let big = [0u8; 65];
    let msgs: [&[u8]; 3] = [b"a", &big, b"c"];
    let err = r.send_many(&msgs, 1, &mut ids).unwrap_err();
    assert!(matches!(err, Error::TooLarge { len: 65, .. }));
    assert_eq!(ids, vec![0]);
    // Full in the middle of a batch: what was sent stays sent.
    let err = r
        .send_many(&[b"b", b"c", b"d", b"e"], 1, &mut ids)
        .unwrap_err();
    assert!(matches!(err, Error::Full));
    assert_eq!(ids.len(), 3);
    for i in 0..4 {
        let info = r.info(i);
        assert_eq!(info.state, Some(St::Ready), "slot {i}: {info:?}");
    }
}

#[test]
fn receive_many_takes_consecutive_ready_messages_and_advances_rcur_once() {
    let r = ring(8);
    let mut ids = Vec::new();
    r.send_many(&[b"a", b"b", b"c", b"d", b"e"], 1, &mut ids)
        .unwrap();
    // Ticket 2's message is leased elsewhere (by the sweep, say).
    let w = r.memory().slot(2);
    let s = w.state.load(Relaxed);
    let mut buf = Vec::new();
    let held = r.lease(2, s, r.aux(2), 1, VT, &mut buf).unwrap();
    let (mut bufs, mut got) = (Vec::new(), Vec::new());
    assert_eq!(r.receive_many(1, VT, &mut bufs, &mut got, 8), 2);
    assert_eq!(r.shared().rcur.load(Relaxed), 2);
    assert_eq!(
        r.receive_many(1, VT, &mut bufs, &mut got, 8),
        0,
        "stops at a leased slot"
    );
    let (d, _) = recv(&r, 1).unwrap(); // the single path steps over it
    assert_eq!(d.id, 3);
    assert_eq!(r.receive_many(1, VT, &mut bufs, &mut got, 1), 1);
    let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![0, 1, 4]);
    assert_eq!(&bufs[..3], &[b"a".to_vec(), b"b".to_vec(), b"e".to_vec()]);
    assert_eq!(r.receive_many(1, VT, &mut bufs, &mut got, 8), 0, "empty");
    assert_eq!(held.id, 2);
}

#[test]
fn a_receive_cursor_written_past_every_ticket_is_brought_back() {
    // A foreign write puts `rcur` ahead of `fill`. Senders no longer read
    // `rcur` unless a receiver stepped over a ticket, so the receiver side
    // repairs it: the next messages are found by the main path, not left
    // to the next sweep round.
    let r = ring(8);
    r.shared().rcur.store(1_000, Relaxed);
    let mut buf = Vec::new();
    assert!(r.try_receive(0, VT, &mut buf, false, 0).is_none());
    assert_eq!(r.shared().rcur.load(Relaxed), 0);
    r.send(b"a", 0, 0).unwrap();
    r.send(b"b", 0, 0).unwrap();
    for want in [b"a", b"b"] {
        r.try_receive(0, VT, &mut buf, false, 0)
            .expect("main path only");
        assert_eq!(buf, want);
    }
}

#[test]
fn stepping_over_a_message_another_receiver_leased_counts_no_skip() {
    // Receiver A has leased ticket 0's message and not yet advanced `rcur`;
    // receiver B steps over it. Ticket 0 was published, so no sender needs
    // to look at `rcur` again: `skips` stays, and senders keep not reading
    // the receivers' line.
    let r = ring(8);
    r.send(b"a", 0, 1).unwrap();
    r.send(b"b", 0, 1).unwrap();
    let w = r.memory().slot(0);
    let s = w.state.load(Relaxed);
    let mut buf = Vec::new();
    r.lease(0, s, r.aux(0), 1, VT, &mut buf).unwrap();
    let skips = r.shared().skips.load(Relaxed);
    let d = r.try_receive(1, VT, &mut buf, false, 0).unwrap();
    assert_eq!((d.id, buf.as_slice()), (1, &b"b"[..]));
    assert_eq!(r.shared().skips.load(Relaxed), skips);
    // A slot that holds another ticket's message (a returned one) is a skip.
    r.nack(d.receipt, 0, 1).unwrap(); // ticket 1's message, visible again
    r.shared().rcur.store(9, Relaxed); // slot 1 is ticket 9's, one lap on
    r.shared().fill.store(11, Relaxed);
    // Written by "another process" within the clock tick of this
    // receiver's last load of `fill`, with no store of `head`: a receive at
    // the next tick would load `fill` again (§5.2, the published head).
    r.look_at_fill();
    let got = r.try_receive(1, VT, &mut buf, false, 0).unwrap();
    assert_eq!(got.id, 1, "the returned message, taken at ticket 9");
    assert_ne!(r.shared().skips.load(Relaxed), skips);
}

#[test]
fn a_batch_receive_that_leases_returned_messages_counts_a_skip() {
    // Tickets 4 and 5 were taken while slots 0 and 1 held returned messages
    // (ids 0 and 1): a batch receive leases those and advances `rcur` past
    // tickets 4 and 5, whose own messages it did not lease.
    let r = ring(4);
    let rcs = fill_and_lease(&r, 1);
    r.nack(rcs[0], 0, 1).unwrap();
    r.nack(rcs[1], 0, 1).unwrap();
    r.shared().fill.store(6, Relaxed);
    let skips = r.shared().skips.load(Relaxed);
    let (mut bufs, mut got) = (Vec::new(), Vec::new());
    assert_eq!(r.receive_many(1, VT, &mut bufs, &mut got, 2), 2);
    let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![0, 1]);
    assert_eq!(r.shared().rcur.load(Relaxed), 6);
    assert_eq!(r.shared().skips.load(Relaxed), skips + 1);
}

#[test]
fn a_quarantined_slot_is_never_redriven_into_an_acked_message() {
    // Issue 9, item 4: a quarantine keeps the slot's words, which may be
    // those of its previous message, acked long ago.
    let r = ring(2);
    r.send(b"paid", 0, 0).unwrap();
    let (d, _) = recv(&r, 0).unwrap();
    r.ack(d.receipt, 0).unwrap();
    // A live sender (4242) claims slot 0 and stalls past its claim timeout;
    // `recover --force-abandoned` quarantines the claim.
    let w = r.memory().slot(0);
    let g1 = next_gen(gen_of(w.state.load(Relaxed)));
    w.aux.store(pack_aux(0, 4242, g1), Relaxed);
    w.state.store(pack_state(St::Writing, g1, 500), Relaxed);
    assert_eq!(r.repair(0, 501, true), Some("abandoned expired claim"));
    assert_eq!(
        r.repair(0, 501, true),
        Some("quarantined abandoned claim of a live process")
    );
    assert!(matches!(
        r.redrive(0, None, 600),
        Err(Error::NotRedrivable {
            reason: DeadReason::Recovered,
            ..
        })
    ));
    // A freed slot whose state word a stranger scribbled on is quarantined
    // as corrupt, with the acked message's words still in it.
    r.send(b"also paid", 0, 600).unwrap();
    let (d, _) = recv(&r, 600).unwrap();
    r.ack(d.receipt, 600).unwrap();
    r.memory().slot(1).state.store(0x0F, Relaxed);
    assert!(recv(&r, 700).is_none());
    assert_eq!(DeadReason::from_code(r.info(1).reason), DeadReason::Corrupt);
    assert!(matches!(
        r.redrive(1, None, 700),
        Err(Error::NotRedrivable { .. })
    ));
    assert!(recv(&r, 800).is_none(), "no acked message comes back");
    assert_eq!(r.shared().acked.load(Relaxed), 2);
}

/// A power cut can keep an older `fill` than the slots it wrote (different
/// pages, design.md §12.5): the reboot reset raises `fill` past every id a
/// slot holds, acked messages' included, so no later send reuses an id
/// (a message still in the queue is safe anyway: its ticket's slot is busy).
#[test]
fn the_reboot_reset_raises_fill_past_every_id_in_the_slots() {
    let r = ring(4);
    let mut ids = Vec::new();
    for m in [b"a", b"b", b"c", b"d"] {
        ids.push(r.send(m, 0, 1).unwrap());
    }
    while let Some((d, _)) = recv(&r, 2) {
        r.ack(d.receipt, 2).unwrap();
    }
    // The cut kept `fill` from before the four sends.
    r.shared().fill.store(0, Relaxed);
    r.reset_clocks();
    let e = r.send(b"e", 0, 3).unwrap();
    assert!(!ids.contains(&e), "id {e} reused ({ids:?})");
}

/// Another process's send: this ring's guess of the next ticket stays
/// where it was, as a receiving process's would.
fn send_as_another_process(r: &Ring<HeapMemory>, msg: &[u8], now: u64) -> u64 {
    let before = r.fill_next.load(Relaxed);
    let id = r.send(msg, 0, now).unwrap();
    r.fill_next.store(before, Relaxed);
    id
}

/// A send by a build before the published head: it stores no `head`.
fn send_storing_no_head(r: &Ring<HeapMemory>, msg: &[u8], now: u64) -> u64 {
    let head = r.shared().head.load(Relaxed);
    let id = send_as_another_process(r, msg, now);
    r.shared().head.store(head, Relaxed);
    id
}

#[test]
fn a_caught_up_receiver_polls_the_published_head_not_fill() {
    // §5.2: once caught up, a receiver learns of the next messages from
    // `head`, which senders only store to, not from `fill`.
    let r = ring(8);
    let mut buf = Vec::new();
    assert!(r.try_receive(5, VT, &mut buf, false, 0).is_none());
    for k in 0..20u8 {
        let id = send_as_another_process(&r, &[k], 5);
        let d = r
            .try_receive(5, VT, &mut buf, false, 0)
            .expect("by the head");
        assert_eq!((d.id, buf.as_slice()), (id, &[k][..]));
        r.ack(d.receipt, 5).unwrap();
        assert!(r.try_receive(5, VT, &mut buf, false, 0).is_none());
    }
    // Twenty messages, and `fill` was loaded only by the first look.
    assert_eq!(r.fill_at_look.load(Relaxed), 0);
    // A sender that took a ticket and died before its claim: the next
    // message's head says the tickets below it were taken, and the
    // receiver steps over the dead one at once.
    r.shared().fill.fetch_add(1, SeqCst);
    let id = send_as_another_process(&r, b"past", 5);
    let d = r
        .try_receive(5, VT, &mut buf, false, 0)
        .expect("past the dead ticket");
    assert_eq!((d.id, buf.as_slice()), (id, &b"past"[..]));
}

#[test]
fn senders_that_store_no_head_are_found_by_loads_of_fill() {
    let r = ring(32);
    let mut buf = Vec::new();
    let mut now = 10;
    assert!(r.try_receive(now, VT, &mut buf, false, 0).is_none());
    // A new sender moves `head`; then, within the same tick, a sender of
    // an older build: the receiver sees no change of `head` and waits
    // for the next tick's load of `fill` (a delay, not a loss).
    let a = send_as_another_process(&r, b"a", now);
    assert_eq!(r.try_receive(now, VT, &mut buf, false, 0).unwrap().id, a);
    let b = send_storing_no_head(&r, b"b", now);
    assert!(r.try_receive(now, VT, &mut buf, false, 0).is_none());
    now += 1;
    assert_eq!(r.try_receive(now, VT, &mut buf, false, 0).unwrap().id, b);
    // `head` moved since the last load of `fill` too (message a), so it
    // is still trusted: with both kinds of senders at work, the older
    // kind's messages can wait up to a tick each.
    let b2 = send_storing_no_head(&r, b"b2", now);
    assert!(r.try_receive(now, VT, &mut buf, false, 0).is_none());
    now += 1;
    assert_eq!(r.try_receive(now, VT, &mut buf, false, 0).unwrap().id, b2);
    // That load saw `fill` move and `head` not: from then on every look
    // loads `fill`, and such senders' messages come at once.
    assert!(!r.head_trusted.load(Relaxed));
    for k in 0..5u8 {
        let id = send_storing_no_head(&r, &[k], now);
        let d = r.try_receive(now, VT, &mut buf, false, 0).expect("by fill");
        assert_eq!(d.id, id);
    }
    // Until `head` moves again.
    let c = send_as_another_process(&r, b"c", now);
    assert_eq!(r.try_receive(now, VT, &mut buf, false, 0).unwrap().id, c);
    let d = send_as_another_process(&r, b"d", now);
    assert_eq!(r.try_receive(now, VT, &mut buf, false, 0).unwrap().id, d);
    assert!(r.head_trusted.load(Relaxed));
    // A receiver about to park loads `fill` whatever the tick.
    let e = send_storing_no_head(&r, b"e", now);
    assert!(r.try_receive(now, VT, &mut buf, false, 0).is_none());
    r.look_at_fill();
    assert_eq!(r.try_receive(now, VT, &mut buf, false, 0).unwrap().id, e);
    // A process that sends, then receives, sees its own message in the
    // same tick, `head` or not.
    let before = r.shared().head.load(Relaxed);
    let mine = r.send(b"mine", 0, now).unwrap();
    r.shared().head.store(before, Relaxed);
    assert_eq!(r.try_receive(now, VT, &mut buf, false, 0).unwrap().id, mine);
}

#[test]
fn a_forged_head_is_no_bound_on_fill() {
    // `head` is trusted only within one lap of `rcur`: a foreign write far
    // ahead must not make receivers jump `rcur` and leave the next
    // messages to the sweep.
    let r = ring(8);
    let mut buf = Vec::new();
    assert!(r.try_receive(5, VT, &mut buf, false, 0).is_none());
    r.shared().head.store(1_000, Relaxed);
    let id = send_as_another_process(&r, b"x", 5);
    let d = r
        .try_receive(5, VT, &mut buf, false, 0)
        .expect("main path, no sweep");
    assert_eq!(d.id, id);
    assert_eq!(r.shared().rcur.load(Relaxed), id + 1);
    assert_eq!(r.shared().skips.load(Relaxed), 0);
}

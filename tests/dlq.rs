//! A dead-letter queue that is a queue (docs/design.md §5.5; the queue's
//! edges issue, item 2): a poison storm no longer fills the queue, dead
//! letters move with their envelope, wait in place while the dead-letter
//! queue is full, and come back by redrive.

use std::time::Duration;

use shmq::{Config, DeadLetterEnvelope, DeadReason, Queue};

fn queues(dir: &std::path::Path, slots: u32, dlq_slots: u32) -> (Queue, Queue) {
    let q = Queue::create(
        dir.join("orders.q"),
        &Config::default().slots(slots).slot_size(64).max_receives(1),
    )
    .unwrap();
    let dlq = Queue::create(
        dir.join("orders.dlq"),
        &Config::default()
            .slots(dlq_slots)
            .slot_size(64 + DeadLetterEnvelope::LEN as u32),
    )
    .unwrap();
    (q, dlq)
}

/// Every message fails: without a dead-letter queue the 8-slot queue is
/// full of dead letters after 8 messages; with one, it takes 1000.
#[test]
fn a_poison_storm_keeps_the_queue_accepting_sends() {
    let dir = tempfile::tempdir().unwrap();
    let (q, dlq) = queues(dir.path(), 8, 2048);
    // Without: the ninth send fails.
    for k in 0..8u64 {
        q.send(&k.to_le_bytes()).unwrap();
        let l = q.try_receive().unwrap();
        l.nack(Duration::ZERO).unwrap();
    }
    assert!(q.send(b"ninth").is_err(), "8 dead letters fill 8 slots");
    q.purge_all(100).unwrap();

    q.set_dead_letter_queue(&dlq).unwrap();
    assert_eq!(
        q.dead_letter_queue_path(),
        Some(dir.path().join("orders.dlq"))
    );
    let mut ids = Vec::new();
    for k in 0..1000u64 {
        let id = q
            .send(&k.to_le_bytes())
            .expect("the storm never fills the queue");
        ids.push(id);
        let l = q.try_receive().unwrap();
        if k % 2 == 0 {
            l.nack(Duration::ZERO).unwrap(); // dies at max receives 1
        } else {
            l.dead_letter().unwrap(); // rejected
        }
    }
    assert_eq!(q.stats().dead, 0, "moved, not kept");
    let mut moved = Vec::new();
    while let Some(l) = dlq.try_receive() {
        let (env, payload) = DeadLetterEnvelope::parse(l.payload()).expect("an envelope");
        assert_eq!(env.source, q.identity());
        assert_eq!(env.receives, 1);
        let k = u64::from_le_bytes(payload.try_into().unwrap());
        let want = if k % 2 == 0 {
            DeadReason::MaxReceives
        } else {
            DeadReason::Rejected
        };
        assert_eq!(env.reason, want);
        moved.push((env.id, k));
        l.ack().unwrap();
    }
    moved.sort();
    let want: Vec<(u64, u64)> = ids.iter().copied().zip(0..).collect();
    assert_eq!(
        moved, want,
        "every dead letter once, with its id and payload"
    );
}

/// Another process's handle learns the name from the file; a message that
/// dies while the dead-letter queue is full stays dead here and moves once
/// there is room; redrive brings messages back with their receive count
/// starting again.
#[test]
fn dead_letters_wait_while_the_dead_letter_queue_is_full_and_come_back_by_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let (q, dlq) = queues(dir.path(), 8, 2);
    q.set_dead_letter_queue(&dlq).unwrap();
    let other = Queue::open(q.path()).unwrap();
    for k in 0..3u64 {
        other.send(&k.to_le_bytes()).unwrap();
        other.try_receive().unwrap().dead_letter().unwrap();
    }
    assert_eq!(dlq.stats().visible, 2, "the dead-letter queue holds 2");
    assert_eq!(q.stats().dead, 1, "the third waits here, dead");
    // Room there: the next receive's sweep here moves it.
    let first = dlq.try_receive().unwrap();
    first.ack().unwrap();
    let moved = (0..100).any(|_| {
        let _ = other.try_receive();
        std::thread::sleep(Duration::from_millis(5));
        q.stats().dead == 0
    });
    assert!(moved, "moved once there was room: {:?}", q.stats());
    assert_eq!(dlq.stats().visible, 2);
    // Redrive: back here, new messages, payloads intact.
    assert_eq!(q.redrive_from_dead_letter_queue(10).unwrap(), 2);
    assert_eq!(dlq.stats().visible, 0);
    let mut back = Vec::new();
    while let Some(l) = q.try_receive() {
        assert_eq!(l.receives(), 1, "the receive count starts again");
        back.push(u64::from_le_bytes(l.payload().try_into().unwrap()));
        l.ack().unwrap();
    }
    back.sort();
    assert_eq!(back, [1, 2]);
    q.clear_dead_letter_queue();
    assert_eq!(other.dead_letter_queue_path(), None);
}

#[test]
fn a_dead_letter_queue_too_small_or_the_queue_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(dir.path().join("q"), &Config::default().slot_size(64)).unwrap();
    let small = Queue::create(dir.path().join("small"), &Config::default().slot_size(64)).unwrap();
    let e = q.set_dead_letter_queue(&small).unwrap_err();
    assert!(e.to_string().contains("at least 96"), "{e}");
    assert!(q.set_dead_letter_queue(&q).is_err());
    assert_eq!(q.dead_letter_queue_path(), None);
}

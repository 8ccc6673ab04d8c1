//! Run every operation on a queue file of arbitrary bytes: what the byte-flip
//! test (tests/corrupt.rs) and the fuzz target (fuzz/) share.
//!
//! The promise under test (docs/design.md §8): whatever the bytes, `open`
//! returns a typed error or a queue; on a queue, recover, receive, ack,
//! nack, extend, send, peek, stats and the dead-letter calls return (no
//! panic, no hang, no undefined behaviour), and `recover --apply` run twice
//! at the same clock time changes nothing the second time.

use std::path::Path;
use std::time::Duration;

use shmq::{recover, Config, Queue};

/// Slots and slot size of the baseline file.
pub const BASE_SLOTS: u32 = 4;
pub const BASE_SLOT_SIZE: u32 = 64;

/// A small queue file (4 slots of 64 bytes, 4608 bytes in all) whose slots
/// hold one of each interesting state: slot 0 leased by a process that is
/// gone, slot 1 dead (max receives), slot 2 visible, slot 3 delayed.
pub fn baseline(dir: &Path) -> Vec<u8> {
    let path = dir.join("baseline.q");
    let _ = std::fs::remove_file(&path);
    let cfg = Config::default()
        .slots(BASE_SLOTS)
        .slot_size(BASE_SLOT_SIZE)
        .max_receives(1);
    let q = Queue::create(&path, &cfg).expect("create the baseline");
    for m in ["leased by the dead", "dead letter", "visible"] {
        q.send(m.as_bytes()).expect("send");
    }
    q.send_delayed(&b"delayed an hour"[..], Duration::from_secs(3600))
        .expect("send");
    // The lease names this handle's registration, which ends when the
    // handle is dropped below: a lease of a process that is gone.
    let leased = q.try_receive_into(&mut Vec::new(), None).expect("slot 0");
    assert_eq!(leased.receipt.slot, 0);
    let d = q.try_receive_into(&mut Vec::new(), None).expect("slot 1");
    q.nack(d.receipt, Duration::ZERO)
        .expect("dead-letter slot 1");
    drop(q);
    let bytes = std::fs::read(&path).expect("read the baseline");
    std::fs::remove_file(&path).expect("remove the baseline");
    bytes
}

/// What happened to one file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `open` refused it (with this error's text).
    pub refused: Option<String>,
    /// Slots the first recover pass repaired.
    pub repaired: usize,
    /// Messages delivered.
    pub delivered: usize,
}

/// Write `bytes` to `path` and exercise the queue. Panics (the failure the
/// callers look for) only where a promise is broken. `park`: also make one
/// blocking receive that parks for up to 1 ms on the (possibly garbage)
/// futex word.
pub fn exercise(path: &Path, bytes: &[u8], park: bool) -> Outcome {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).expect("write the case");
    let mut out = Outcome::default();
    let q = match Queue::open(path) {
        Ok(q) => q,
        Err(e) => {
            out.refused = Some(e.to_string());
            return out;
        }
    };
    let now = shmq::now_ms();
    // Recover twice at the same time: the second pass repairs nothing and
    // leaves every byte as the first left it.
    let first = recover::apply(&q, now, false);
    out.repaired = first.repaired();
    let after_first = std::fs::read(path).expect("read back");
    let second = recover::apply(&q, now, false);
    let after_second = std::fs::read(path).expect("read back");
    assert_eq!(
        second.repaired(),
        0,
        "recover applied twice repaired again: {:?}",
        second.findings
    );
    if let Some(at) = (0..after_first.len()).find(|&i| after_first[i] != after_second[i]) {
        panic!("the second recover pass changed byte {at}");
    }

    // Use it: bounded loops only (a queue of 4 slots has at most 4 messages).
    let mut buf = Vec::new();
    let cap = u64::from(q.ring().slot_count()).min(64) as usize;
    for k in 0..cap + 2 {
        let Some(d) = q.try_receive_into(&mut buf, None) else {
            break;
        };
        out.delivered += 1;
        assert!(buf.len() <= q.config().slot_size as usize);
        let _ = match k % 3 {
            0 => q.ack(d.receipt),
            1 => q.nack(d.receipt, Duration::ZERO).map(|_| ()),
            _ => q.extend(d.receipt, Duration::from_secs(1)).map(|_| ()),
        };
    }
    let _ = q.send(&b"after"[..]);
    let wait = if park { 1 } else { 0 };
    let _ = q.receive(Duration::from_millis(wait)).map(|l| l.ack());
    let _ = q.stats();
    let _ = q.peek(8);
    let _ = q.dead_letters();
    let _ = q.redrive_all(8);
    let _ = q.purge_all(8);
    for i in 0..cap as u32 {
        let _ = q.slot_info(i);
    }
    out
}

//! Models of group commit (docs/design.md §12.2, §12.3): durable senders
//! that publish, take their sync target and wait, one of them running the
//! sync. The "disk" is what the sync read of the slots: a sender whose wait
//! returned Ok must find its message there.
#![cfg(loom)]

use shmq::internal::{HeapMemory, Ring, St, SyncOps};
use shmq_loom_tests::loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};
use shmq_loom_tests::loom::sync::{Arc, Mutex};
use shmq_loom_tests::{model_both, race, ring, MSG_A, MSG_B};

/// The sync of the models: copy the slots' (state, id) to the disk.
struct Disk {
    ring: Arc<Ring<HeapMemory>>,
    /// The slots as the last sync read them.
    disk: Mutex<Vec<(Option<St>, u64)>>,
    /// Sync calls so far; the first `fail_first` of them fail.
    calls: AtomicUsize,
    fail_first: usize,
}

impl Disk {
    fn new(ring: Arc<Ring<HeapMemory>>, fail_first: usize) -> Arc<Disk> {
        Arc::new(Disk {
            ring,
            disk: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            fail_first,
        })
    }

    /// Whether the disk holds message `id`, ready.
    fn holds(&self, id: u64) -> bool {
        self.disk
            .lock()
            .unwrap()
            .iter()
            .any(|&(st, i)| st == Some(St::Ready) && i == id)
    }
}

impl SyncOps for Disk {
    fn sync(&self) -> Result<(), i32> {
        if self.calls.fetch_add(1, Relaxed) < self.fail_first {
            return Err(5);
        }
        let copy = (0..self.ring.slot_count())
            .map(|i| {
                let info = self.ring.info(i);
                (info.state, info.id)
            })
            .collect();
        *self.disk.lock().unwrap() = copy;
        Ok(())
    }
    fn park(&self, _word: &AtomicU32, _expected: u32, _ms: u64) {
        shmq_loom_tests::loom::thread::yield_now();
    }
    fn now_ms(&self) -> u64 {
        1
    }
}

/// Send `msg` durably: publish, take the target, wait.
fn durable_send(r: &Ring<HeapMemory>, disk: &Disk, msg: &[u8]) -> Result<u64, i32> {
    let id = r.send(msg, 0, 1).expect("a free slot");
    let target = r.sync_target();
    r.wait_synced(target, disk).map(|()| id)
}

/// Two durable senders at once. Each one's wait returns only once a sync
/// that read its published message completed: right after its wait, the
/// disk holds the message. Killed by `sync_target_running` (a sender counts
/// the sync already running, which may have read the slots before its
/// publish) and `sync_epoch_after` (the syncer takes its epoch after the
/// sync, so a publish during the sync passes for covered).
#[test]
fn durable_senders_wait_for_a_sync_that_saw_them() {
    model_both(|swap| {
        let r = ring(2, 5);
        let disk = Disk::new(r.clone(), 0);
        let (ra, da, rb, db) = (r.clone(), disk.clone(), r.clone(), disk.clone());
        // Whether the disk held the message right after the wait: checked
        // after the race (a panic inside a model thread aborts loom).
        let (a, b) = race(
            swap,
            move || {
                let id = durable_send(&ra, &da, MSG_A).expect("no sync fails");
                (id, da.holds(id))
            },
            move || {
                let id = durable_send(&rb, &db, MSG_B).expect("no sync fails");
                (id, db.holds(id))
            },
        );
        assert!(a.1, "sender A returned before a sync saw {}", a.0);
        assert!(b.1, "sender B returned before a sync saw {}", b.0);
        assert_ne!(a, b);
        let (syncs, waits, _) = r.sync_counters();
        assert_eq!(waits, 2);
        assert!((1..=2).contains(&syncs), "{syncs} syncs");
    });
}

/// The first sync fails (a later one would succeed). No durable sender
/// may then return Ok: its
/// message is not known to be on disk, and a later sync that succeeds
/// cannot vouch for pages the failed one dropped (§12.3). Killed by
/// `sync_error_retry` (a failed sync is not recorded; the next one is
/// trusted).
#[test]
fn a_failed_sync_fails_every_durable_sender() {
    model_both(|swap| {
        let r = ring(2, 5);
        let disk = Disk::new(r.clone(), 1);
        let (ra, da, rb, db) = (r.clone(), disk.clone(), r.clone(), disk.clone());
        let (a, b) = race(
            swap,
            move || durable_send(&ra, &da, MSG_A),
            move || durable_send(&rb, &db, MSG_B),
        );
        assert_eq!(
            (a, b),
            (Err(5), Err(5)),
            "a durable send survived a failed sync"
        );
        assert_eq!(r.sync_failure(), Some(5));
    });
}

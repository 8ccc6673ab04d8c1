//! The queue file: create/open rules, byte-patched headers and slots, threads.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use shmq::internal::St;
use shmq::{Config, DeadReason, Error, Nacked, Queue, SendError};

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    (dir, path)
}

fn patch(path: &Path, off: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn read_at(path: &Path, off: u64, len: usize) -> Vec<u8> {
    let f = OpenOptions::new().read(true).open(path).unwrap();
    let mut b = vec![0; len];
    f.read_exact_at(&mut b, off).unwrap();
    b
}

/// Where slot 0 starts: after the header page and the process
/// registration table (`HEADER_LEN`, docs/design.md §2).
const SLOT0: u64 = 36864;

#[test]
fn create_refuses_an_existing_file_and_open_reads_the_config() {
    let (_d, path) = tmp();
    let cfg = Config::default()
        .slots(16)
        .slot_size(100)
        .visibility_timeout(Duration::from_millis(1500))
        .max_receives(7)
        .mode(0o640);
    let q = Queue::create(&path, &cfg).unwrap();
    assert!(matches!(
        Queue::create(&path, &cfg),
        Err(Error::AlreadyExists { .. })
    ));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    let o = Queue::open(&path).unwrap();
    assert_eq!(o.config(), q.config());
    assert_eq!(o.config().slots, 16);
    assert_eq!(o.config().max_receives, 7);
    // The same config, asked of an existing file: opened as it is.
    let same = Queue::open_or_create(&path, &cfg).unwrap();
    assert_eq!(same.identity(), q.identity());
    // Another config: refused, naming the first difference.
    let other = Config::default().slots(4).slot_size(8);
    match Queue::open_or_create(&path, &other) {
        Err(Error::ConfigMismatch {
            field,
            found,
            wanted,
            ..
        }) => assert_eq!(
            (field, found.as_str(), wanted.as_str()),
            ("slots", "16", "4")
        ),
        other => panic!("a different config must be refused: {other:?}"),
    }
    let longer = cfg.clone().visibility_timeout(Duration::from_secs(2));
    match Queue::open_or_create(&path, &longer) {
        Err(Error::ConfigMismatch { field, .. }) => assert_eq!(field, "visibility_timeout"),
        other => panic!("a different timeout must be refused: {other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
    let oc = Queue::open_or_create(&path, &other).unwrap();
    assert_eq!(oc.config().slots, 4);
}

#[test]
fn open_of_a_missing_file_is_not_found() {
    let (_d, path) = tmp();
    assert!(matches!(Queue::open(&path), Err(Error::NotFound { .. })));
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    let (_d, path) = tmp();
    for cfg in [
        Config::default().slots(0).slot_size(64),
        Config::default().slots(4).slot_size(0),
        Config::default().slots(4).slot_size(64).max_receives(0),
    ] {
        let e = Queue::create(&path, &cfg).expect_err("refused");
        assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
        assert!(!path.exists(), "a refused create leaves no file");
    }
}

#[test]
fn a_file_that_is_not_a_queue_is_not_a_queue() {
    let (_d, path) = tmp();
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    assert!(matches!(Queue::open(&path), Err(Error::NotAQueue { .. })));
}

#[test]
fn patched_header_bytes_give_typed_errors() {
    let (_d, path) = tmp();
    Queue::create(&path, &Config::default().slots(8).slot_size(64)).unwrap();
    let pristine = read_at(&path, 0, 128);
    let reset = |p: &Path| patch(p, 0, &pristine);

    patch(&path, 0, b"NOTSHMQ!");
    assert!(matches!(Queue::open(&path), Err(Error::NotAQueue { .. })));
    reset(&path);

    patch(&path, 8, &1u32.to_le_bytes());
    let e = Queue::open(&path).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Incompatible {
                found: 1,
                supported: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("drain it"), "says what to do: {e}");
    patch(&path, 8, &3u32.to_le_bytes());
    assert!(matches!(
        Queue::open(&path),
        Err(Error::Incompatible {
            found: 3,
            supported: 2,
            ..
        })
    ));
    reset(&path);

    // Each layout field, and the CRC itself: the checksum catches them all.
    for off in [12u64, 16, 20, 24, 28, 32, 40, 56, 64] {
        let mut b = read_at(&path, off, 1);
        b[0] ^= 0x40;
        patch(&path, off, &b);
        match Queue::open(&path) {
            Err(Error::Corrupt { what, .. }) => assert!(!what.is_empty()),
            other => panic!(
                "offset {off}: expected Corrupt, got {:?}",
                other.map(|_| ())
            ),
        }
        reset(&path);
    }
    Queue::open(&path).expect("pristine header opens again");
}

#[test]
fn a_header_that_never_gets_its_version_is_not_initialised() {
    let (_d, path) = tmp();
    Queue::create(&path, &Config::default().slots(8).slot_size(64)).unwrap();
    patch(&path, 8, &0u32.to_le_bytes());
    let t = Instant::now();
    assert!(matches!(
        Queue::open(&path),
        Err(Error::NotInitialised { .. })
    ));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "bounded wait, never a hang"
    );
}

#[test]
fn a_file_whose_length_disagrees_with_its_header_is_refused() {
    let (_d, path) = tmp();
    Queue::create(&path, &Config::default().slots(8).slot_size(64)).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 64).unwrap();
    assert!(matches!(Queue::open(&path), Err(Error::Corrupt { .. })));
    f.set_len(len + 4096).unwrap();
    assert!(matches!(Queue::open(&path), Err(Error::Corrupt { .. })));
    f.set_len(100).unwrap();
    assert!(matches!(
        Queue::open(&path),
        Err(Error::Corrupt { .. } | Error::NotInitialised { .. })
    ));
}

#[test]
fn patched_slot_words_are_quarantined_and_never_delivered() {
    let (_d, path) = tmp();
    let q = Queue::create(&path, &Config::default().slots(4).slot_size(64)).unwrap();
    for m in [&b"zero"[..], b"one", b"two", b"three"] {
        q.send(m).unwrap();
    }
    let stride = 64 + 64;
    // slot 0: state code 0xF (no state); slot 1: len 10 000; slot 2: a
    // payload byte; slot 3 intact.
    patch(&path, SLOT0, &[0x7F]);
    patch(&path, SLOT0 + stride + 24, &10_000u32.to_le_bytes());
    patch(&path, SLOT0 + 2 * stride + 64, b"T");
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.try_receive())
        .map(|l| l.payload().to_vec())
        .collect();
    assert_eq!(got, vec![b"three".to_vec()]);
    let dead = q.dead_letters();
    assert_eq!(
        dead.len(),
        2,
        "slots 1 and 2 quarantined with their message"
    );
    assert!(dead.iter().all(|d| d.reason == DeadReason::Corrupt));
    let s0 = q.slot_info(0).unwrap();
    assert_eq!(
        s0.state,
        Some(St::Dead),
        "a corrupt state word is quarantined too"
    );
}

#[test]
fn after_a_reboot_every_lease_is_expired() {
    let (_d, path) = tmp();
    let q = Queue::create(
        &path,
        &Config::default()
            .slots(4)
            .slot_size(64)
            .visibility_timeout(Duration::from_secs(3600)),
    )
    .unwrap();
    q.send(b"held over a reboot").unwrap();
    let lease = q.try_receive().unwrap();
    assert!(q.try_receive().is_none());
    drop(lease);
    // A different boot id in the header: what the file looks like after a reboot.
    patch(&path, 128, &[0xab; 16]);
    let q2 = Queue::open(&path).unwrap();
    let again = q2
        .receive(Duration::from_secs(5))
        .expect("lease treated as expired");
    assert_eq!(again.payload(), b"held over a reboot");
    assert_eq!(again.receives(), 2);
    assert_eq!(read_at(&path, 128, 16), {
        let [a, b] = shmq::internal::boot_id();
        [a.to_le_bytes(), b.to_le_bytes()].concat()
    });
}

#[test]
fn a_parked_receiver_is_woken_by_a_send() {
    let (_d, path) = tmp();
    let q = Arc::new(Queue::create(&path, &Config::default().slots(4).slot_size(64)).unwrap());
    let parked = Arc::new(Barrier::new(2));
    let rx = {
        let (q, parked) = (q.clone(), parked.clone());
        std::thread::spawn(move || {
            parked.wait();
            q.receive(Duration::from_secs(20))
                .map(|l| l.payload().to_vec())
        })
    };
    parked.wait();
    // Wait (bounded) until the receiver has set the waiter bit, then send.
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_at(&path, 512, 4)[0] & 1 == 0 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let t = Instant::now();
    q.send(b"wake up").unwrap();
    assert_eq!(rx.join().unwrap().as_deref(), Some(&b"wake up"[..]));
    assert!(t.elapsed() < Duration::from_secs(20));
}

#[test]
fn receive_times_out_with_none() {
    let (_d, path) = tmp();
    let q = Queue::create(&path, &Config::default().slots(4).slot_size(64)).unwrap();
    assert!(q.receive(Duration::from_millis(20)).is_none());
}

#[test]
fn a_failed_send_leaves_the_message_with_the_caller() {
    let (_d, path) = tmp();
    let q = Queue::create(&path, &Config::default().slots(2).slot_size(64)).unwrap();
    q.send(b"a").unwrap();
    q.send(b"b").unwrap();
    let c = String::from("c");
    let e = q.send(&c).unwrap_err();
    assert!(e.is_full());
    assert_eq!(e, SendError::Full);
    let big = vec![0u8; 65];
    let e = q.send(&big).unwrap_err();
    assert_eq!(e, SendError::TooLarge { len: 65, max: 64 });
    // Still the caller's: a retry after room is made sends it.
    q.try_receive().unwrap().ack().unwrap();
    let id = q.send(&c).unwrap();
    assert!(q.peek(8).iter().any(|p| p.id == id && p.payload == b"c"));
}

#[test]
fn lease_api_ack_nack_extend_and_dead_letter_workflow() {
    let (_d, path) = tmp();
    let q = Queue::create(
        &path,
        &Config::default().slots(8).slot_size(64).max_receives(2),
    )
    .unwrap();
    let id = q.send(b"poison").unwrap();
    let mut l = q.try_receive().unwrap();
    l.extend(Duration::from_secs(60)).unwrap();
    assert!(l.remaining() > Duration::from_secs(50));
    assert_eq!(l.nack(Duration::ZERO).unwrap(), Nacked::Requeued);
    let l = q.receive(Duration::from_secs(5)).expect("requeued");
    assert_eq!((l.id(), l.receives()), (id, 2));
    assert_eq!(l.nack(Duration::ZERO).unwrap(), Nacked::DeadLettered);
    let dead = q.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id, dead[0].receives, dead[0].payload.as_slice()),
        (id, 2, &b"poison"[..])
    );
    let st = q.stats();
    assert_eq!((st.dead, st.dead_lettered, st.visible), (1, 1, 0));
    q.redrive(id).unwrap();
    assert!(matches!(q.redrive(id), Err(Error::NoSuchMessage { .. })));
    let l = q.receive(Duration::from_secs(5)).expect("redriven");
    assert_eq!(l.receives(), 1);
    let rc = l.receipt();
    l.ack().unwrap();
    assert!(matches!(q.ack(rc), Err(Error::LeaseLost)));
    assert_eq!(q.stats().acked, 1);
}

#[test]
fn purge_deletes_dead_messages_only() {
    let (_d, path) = tmp();
    let q = Queue::create(
        &path,
        &Config::default().slots(8).slot_size(64).max_receives(1),
    )
    .unwrap();
    q.send(b"alive").unwrap();
    let id = q.send(b"dies").unwrap();
    let a = q.try_receive().unwrap();
    let b = q.try_receive().unwrap();
    assert_eq!(b.id(), id);
    assert_eq!(b.nack(Duration::ZERO).unwrap(), Nacked::DeadLettered);
    assert_eq!(
        a.nack(Duration::from_secs(60)).unwrap(),
        Nacked::DeadLettered,
        "max receives 1: dead too"
    );
    assert_eq!(q.purge_all(usize::MAX).unwrap(), 2);
    assert!(q.dead_letters().is_empty());
    assert_eq!(q.stats().free, 8);
}

#[test]
fn peek_and_stats_do_not_lease() {
    let (_d, path) = tmp();
    let q = Queue::create(&path, &Config::default().slots(8).slot_size(64)).unwrap();
    q.send(b"one").unwrap();
    q.send(b"two").unwrap();
    q.send_delayed(b"later", Duration::from_secs(60)).unwrap();
    let p = q.peek(10);
    assert_eq!(
        p.iter().map(|m| m.payload.as_slice()).collect::<Vec<_>>(),
        vec![&b"one"[..], b"two"]
    );
    let st = q.stats();
    assert_eq!(
        (st.visible, st.delayed, st.in_flight, st.free, st.sent),
        (2, 1, 0, 5, 3)
    );
    assert!(st.oldest_visible_age.is_some());
    let _l = q.try_receive().unwrap();
    assert_eq!(q.stats().in_flight, 1);
}

#[test]
fn threads_compete_and_every_message_is_acked_once() {
    let (_d, path) = tmp();
    let q = Arc::new(Queue::create(&path, &Config::default().slots(64).slot_size(64)).unwrap());
    const PER: u64 = 5_000;
    let acked = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(vec![0u8; (4 * PER) as usize]));
    let mut handles = Vec::new();
    for p in 0..4u64 {
        let q = q.clone();
        handles.push(std::thread::spawn(move || {
            for k in 0..PER {
                let v = p * PER + k;
                let msg = v.to_le_bytes();
                loop {
                    match q.send(&msg) {
                        Ok(_) => break,
                        Err(e) if e.is_full() => {
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for _ in 0..4 {
        let (q, acked, seen) = (q.clone(), acked.clone(), seen.clone());
        handles.push(std::thread::spawn(move || {
            let mut buf = Vec::new();
            while acked.load(Ordering::SeqCst) < (4 * PER) as usize {
                if let Some(d) = q.receive_into(&mut buf, Duration::from_millis(50), None) {
                    let v = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    q.ack(d.receipt).unwrap();
                    seen.lock().unwrap()[v as usize] += 1;
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|&n| n == 1),
        "every message acked exactly once"
    );
    let st = q.stats();
    assert_eq!((st.sent, st.acked, st.free), (4 * PER, 4 * PER, 64));
}

#[test]
fn queue_and_its_tokens_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Queue>();
    send_sync::<shmq::Receipt>();
    send_sync::<shmq::Delivery>();
    send_sync::<shmq::Error>();
}

#[test]
fn identity_is_shared_by_every_opener_and_changes_when_the_queue_is_created_again() {
    let (_d, path) = tmp();
    let cfg = Config::default().slots(4).slot_size(64);
    let q = Queue::create(&path, &cfg).unwrap();
    let o = Queue::open(&path).unwrap();
    assert_eq!(q.identity(), o.identity());
    let first = q.identity();
    drop((q, o));
    std::fs::remove_file(&path).unwrap();
    // Created again in a later millisecond: a new identity.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2) {
        std::hint::spin_loop();
    }
    let again = Queue::create(&path, &cfg).unwrap();
    let reopened = Queue::open(&path).unwrap();
    assert_eq!(again.identity(), reopened.identity());
    assert_ne!(
        again.identity(),
        first,
        "a queue created again is another queue"
    );
    let (_d2, other) = tmp();
    let unrelated = Queue::create(&other, &Config::default().slots(8).slot_size(64)).unwrap();
    assert_ne!(unrelated.identity(), again.identity());
}

/// A consumer that took messages and stopped (crashed, hung) leaves leases
/// whose deadline passes with no receiver running: stats and peek count
/// them as visible again (or dead at max receives) at once, as a receive
/// would treat them, and the oldest-unfinished age keeps growing.
#[test]
fn stats_and_peek_count_expired_leases_as_a_receive_would() {
    let (_d, path) = tmp();
    let q = Queue::create(&path, &Config::default().slots(8).max_receives(2)).unwrap();
    let first = q.send(b"first").unwrap();
    q.send(b"second").unwrap();
    q.send(b"third").unwrap();
    let mut buf = Vec::new();
    // Two short leases (1 ms), one long one; the holder then stops.
    let short = Some(shmq::Visibility::new(Duration::from_millis(1)).unwrap());
    let a = q.try_receive_into(&mut buf, short).unwrap();
    let b = q.try_receive_into(&mut buf, short).unwrap();
    let _long = q.try_receive().unwrap();
    // The second short lease is a redelivery: nack it at once and lease it
    // again short, so it is at max receives (2) when it expires.
    q.nack(b.receipt, Duration::ZERO).unwrap();
    let b2 = q.try_receive_into(&mut buf, short).unwrap();
    assert_eq!(b2.receives, 2);
    let start = Instant::now();
    while shmq::now_ms() <= a.deadline_ms.max(b2.deadline_ms) + 1 {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::yield_now();
    }
    let st = q.stats();
    assert_eq!(
        st.visible, 1,
        "the expired lease below max receives: {st:?}"
    );
    assert_eq!(st.expired_leases, 1);
    assert_eq!(st.dead, 1, "the expired lease at max receives: {st:?}");
    assert_eq!(st.in_flight, 1, "the live lease");
    assert!(st.oldest_unfinished_age.is_some());
    assert!(st.oldest_visible_age.is_some());
    let shown = q.peek(10);
    assert_eq!(shown.len(), 1);
    assert_eq!((shown[0].id, &shown[0].payload[..]), (first, &b"first"[..]));
    // What the stats promised is what a receive does.
    let again = q.try_receive().expect("the expired lease is taken over");
    assert_eq!((again.id(), again.receives()), (first, 2));
    assert_eq!(q.stats().dead, 1);
    again.ack().unwrap();
    let st = q.stats();
    assert_eq!(
        q.depth_estimate(),
        st.sent + st.redriven - st.acked - st.dead_lettered,
        "{st:?}"
    );
    assert_eq!(
        q.depth_estimate(),
        2,
        "sent 3, acked 1; the dead one not yet counted"
    );
}

#[test]
fn peek_keeps_only_the_oldest_up_to_its_limit() {
    let (_d, path) = tmp();
    let q = Queue::create(&path, &Config::default().slots(64)).unwrap();
    let ids: Vec<u64> = (0..40u8).map(|n| q.send(&[n]).unwrap()).collect();
    let shown = q.peek(3);
    assert_eq!(
        shown.iter().map(|p| p.id).collect::<Vec<_>>(),
        ids[..3].to_vec()
    );
    assert!(q.peek(0).is_empty());
    assert_eq!(q.peek(100).len(), 40);
}

/// Squatting in a shared directory: a file another user made first (or one
/// every user may write) is refused by `open` and `open_or_create` unless
/// the caller says it trusts it.
#[test]
fn open_refuses_world_writable_and_foreign_files_unless_trusted() {
    let (_d, path) = tmp();
    Queue::create(&path, &Config::default().mode(0o666)).unwrap();
    for refused in [
        Queue::open(&path).map(|_| ()),
        Queue::open_or_create(&path, &Config::default().mode(0o666)).map(|_| ()),
    ] {
        match refused {
            Err(e @ Error::Untrusted { .. }) => {
                assert!(e.to_string().contains("every user may write it"), "{e}")
            }
            other => panic!("a world-writable queue must be refused: {other:?}"),
        }
    }
    shmq::OpenOptions::new()
        .allow_world_writable(true)
        .open(&path)
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
    Queue::open(&path).unwrap();
    // Another owner: only root can hand the file to another user.
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; uid/gid 65534 (nobody).
    if unsafe { libc::chown(c.as_ptr(), 65534, 65534) } != 0 {
        eprintln!("not root: the foreign-owner half of this test needs chown");
        return;
    }
    match Queue::open(&path) {
        Err(e @ Error::Untrusted { .. }) => assert!(e.to_string().contains("uid 65534"), "{e}"),
        other => panic!("a file owned by another user must be refused: {other:?}"),
    }
    shmq::OpenOptions::new()
        .allow_other_owner(true)
        .open(&path)
        .unwrap();
}

/// A sparse copy of a queue file (holes where its slots were): `open`
/// allocates the holes, so a full file system fails the open with an error
/// instead of a later store with SIGBUS.
#[test]
fn open_allocates_the_holes_of_a_sparse_file() {
    use std::os::unix::fs::MetadataExt;
    let (_d, path) = tmp();
    let q = Queue::create(&path, &Config::default().slots(256).slot_size(4096)).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    drop(q);
    let sparse = path.with_extension("sparse");
    let header = read_at(&path, 0, 4096);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&sparse)
        .unwrap();
    f.write_all_at(&header, 0).unwrap();
    f.set_len(len).unwrap();
    assert!(f.metadata().unwrap().blocks() * 512 < len, "made sparse");
    drop(f);
    let q = Queue::open(&sparse).unwrap();
    assert!(
        std::fs::metadata(&sparse).unwrap().blocks() * 512 >= len,
        "holes allocated"
    );
    // Zero-filled slots read as corrupt: quarantined, never delivered.
    assert!(q.try_receive().is_none());
}

/// Without checksums, a lease that expires while its receiver copies a
/// large payload, is taken over, acked and its slot reused by a sender,
/// must not deliver a mix of two messages: the receiver re-checks the
/// generation after its copy (design.md §4, Payload). Every payload is one
/// byte value repeated, so a torn copy shows as two values. The copying
/// receivers run at SCHED_IDLE, so the sender and a normal-priority
/// receiver preempt them mid-copy as often as the scheduler allows.
#[test]
fn a_lease_lost_during_the_copy_never_delivers_a_torn_payload() {
    let (_d, path) = tmp();
    const SIZE: usize = 4 << 20;
    let cfg = Config::default()
        .slots(2)
        .slot_size(SIZE as u32)
        .checksums(false)
        .max_receives(65_535);
    let q = Queue::create(&path, &cfg).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let torn = Arc::new(AtomicUsize::new(0));
    let copies = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (q, stop) = (q.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut k = 0u8;
            while !stop.load(Ordering::Relaxed) {
                k = k.wrapping_add(1);
                let _ = q.send(&vec![k; SIZE]);
            }
        })
    };
    let receivers: Vec<_> = (0..3)
        .map(|n| {
            let (q, stop, torn, copies) = (q.clone(), stop.clone(), torn.clone(), copies.clone());
            std::thread::spawn(move || {
                if n > 0 {
                    // SAFETY: sched_setscheduler(0, ...) changes only this
                    // thread's policy; a zeroed sched_param is priority 0,
                    // the one SCHED_IDLE takes.
                    unsafe {
                        let p: libc::sched_param = std::mem::zeroed();
                        libc::sched_setscheduler(0, libc::SCHED_IDLE, &p);
                    }
                }
                let mut buf = Vec::with_capacity(SIZE);
                while !stop.load(Ordering::Relaxed) {
                    // A 1 ms lease: shorter than a preempted copy.
                    if let Some(d) = q.try_receive_into(
                        &mut buf,
                        Some(shmq::Visibility::new(Duration::from_millis(1)).unwrap()),
                    ) {
                        copies.fetch_add(1, Ordering::Relaxed);
                        if buf.iter().any(|b| *b != buf[0]) {
                            torn.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = q.ack(d.receipt);
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    for r in receivers {
        r.join().unwrap();
    }
    assert!(
        copies.load(Ordering::Relaxed) > 0,
        "some messages were received"
    );
    assert_eq!(
        torn.load(Ordering::Relaxed),
        0,
        "torn payloads delivered out of {} copies",
        copies.load(Ordering::Relaxed)
    );
}

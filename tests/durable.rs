//! Durable queues (docs/design.md §12), as their users run them: sends
//! that return once on disk, shared syncs across threads and processes,
//! `sync` on a queue that is not durable, and the file systems refused.
//! Queues live under the build's temporary directory, which is on the
//! same (disk) file system as the checkout.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use shmq::{Config, Error, Queue};
use support::*;

fn disk_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    assert!(
        !is_tmpfs(dir.path()),
        "the build directory is on tmpfs: durable queues need a disk file system"
    );
    dir
}

fn is_tmpfs(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a writable statfs.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as u64 as u32 == 0x0102_1994
}

fn durable(slots: u32) -> Config {
    Config::default().slots(slots).slot_size(64).durable(true)
}

#[test]
fn child() {
    let Some(role) = role() else { return };
    let q = Queue::open(env_str("T_QUEUE")).expect("open");
    match role.as_str() {
        "send" => {
            let (from, n) = (env_u64("T_FROM", 0), env_u64("T_COUNT", 0));
            for v in from..from + n {
                q.send_blocking(&v.to_le_bytes()).expect("durable send");
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_durable_send_returns_after_a_sync_and_survives_reopening() {
    let dir = disk_dir();
    let path = dir.path().join("orders.q");
    let q = Queue::create(&path, &durable(16)).unwrap();
    assert!(q.is_durable());
    let before = q.stats();
    let id = q.send("order 1").unwrap();
    let after = q.stats();
    assert!(after.syncs > before.syncs, "the send ran a sync");
    assert_eq!(after.durable_waits, before.durable_waits + 1);
    assert_eq!(after.sync_failed, None);
    drop(q);
    let q = Queue::open(&path).unwrap();
    assert!(q.config().durable, "the flag is in the file");
    let lease = q.try_receive().expect("the message");
    assert_eq!((lease.id(), lease.payload()), (id, b"order 1".as_slice()));
    lease.ack().unwrap();
    // A batch shares one sync.
    let mut ids = Vec::new();
    let s0 = q.stats().syncs;
    q.send_batch(&["a", "b", "c"], &mut ids).unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(q.stats().syncs, s0 + 1, "one sync for the batch");
}

#[test]
fn durable_queues_are_refused_on_tmpfs() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() || !is_tmpfs(shm) {
        eprintln!("no tmpfs at /dev/shm here: nothing to refuse");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let path = dir.path().join("q");
    match Queue::create(&path, &durable(4)) {
        Err(Error::VolatileStorage { fs, .. }) => assert_eq!(fs, "tmpfs"),
        other => panic!("expected VolatileStorage, got {other:?}"),
    }
    assert!(!path.exists(), "nothing left behind");
    let e = Queue::create(&path, &durable(4)).unwrap_err().to_string();
    assert!(e.contains("disk file system"), "says what to do: {e}");
    // Not durable: fine there.
    Queue::create(&path, &durable(4).durable(false)).unwrap();
    // A durable queue's file copied onto tmpfs is refused at open too.
    let disk = disk_dir();
    let made = disk.path().join("d.q");
    drop(Queue::create(&made, &durable(4)).unwrap());
    let copy = dir.path().join("copy.q");
    std::fs::copy(&made, &copy).unwrap();
    assert!(matches!(
        Queue::open(&copy),
        Err(Error::VolatileStorage { .. })
    ));
}

#[test]
fn open_or_create_tells_a_durable_queue_from_one_that_is_not() {
    let dir = disk_dir();
    let path = dir.path().join("q");
    Queue::create(&path, &durable(8)).unwrap();
    match Queue::open_or_create(&path, &durable(8).durable(false)) {
        Err(Error::ConfigMismatch { field, .. }) => assert_eq!(field, "durable"),
        other => panic!("expected ConfigMismatch, got {other:?}"),
    }
}

#[test]
fn sync_makes_a_batch_of_plain_sends_durable() {
    let dir = disk_dir();
    let q = Queue::create(dir.path().join("q"), &durable(64).durable(false)).unwrap();
    for i in 0..50u32 {
        q.send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(q.stats().syncs, 0, "plain sends never sync");
    q.sync().unwrap();
    let st = q.stats();
    assert_eq!((st.syncs, st.durable_waits), (1, 1));
}

/// Eight threads sending durably at once: every message arrives, and
/// fewer syncs than sends ran (they were shared).
#[test]
fn concurrent_durable_senders_share_syncs() {
    let dir = disk_dir();
    let q = Queue::create(dir.path().join("q"), &durable(2048)).unwrap();
    let (threads, each) = (8u64, 100u64);
    std::thread::scope(|s| {
        for t in 0..threads {
            let q = q.clone();
            s.spawn(move || {
                for k in 0..each {
                    q.send(&(t * each + k).to_le_bytes()).unwrap();
                }
            });
        }
    });
    let st = q.stats();
    assert_eq!(st.durable_waits, threads * each);
    assert!(
        st.syncs < st.durable_waits,
        "group commit: {} syncs for {} sends",
        st.syncs,
        st.durable_waits
    );
    let mut seen = vec![false; (threads * each) as usize];
    while let Some(l) = q.try_receive() {
        let v = u64::from_le_bytes(l.payload().try_into().unwrap());
        assert!(!std::mem::replace(&mut seen[v as usize], true), "{v} twice");
        l.ack().unwrap();
    }
    assert!(seen.iter().all(|s| *s), "every message arrived");
}

/// Four processes sending durably at once share syncs too: the syncer's
/// role and the epochs are in the file.
#[test]
fn durable_senders_in_several_processes_share_syncs() {
    let dir = disk_dir();
    let path: PathBuf = dir.path().join("q");
    let q = Queue::create(&path, &durable(1024)).unwrap();
    let log = dir.path().join("children.log");
    let (procs, each) = (4u64, 150u64);
    let children: Vec<_> = (0..procs)
        .map(|p| {
            spawn(
                "send",
                &[
                    ("T_QUEUE", path.display().to_string()),
                    ("T_FROM", (p * each).to_string()),
                    ("T_COUNT", each.to_string()),
                ],
                &log,
            )
        })
        .collect();
    for mut c in children {
        let st = c.wait().unwrap();
        assert!(
            st.success(),
            "sender: {st}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let st = q.stats();
    assert_eq!(st.durable_waits, procs * each);
    assert!(st.syncs < st.durable_waits, "{} syncs", st.syncs);
    let mut n = 0;
    while let Some(l) = q.receive(Duration::from_millis(50)) {
        l.ack().unwrap();
        n += 1;
    }
    assert_eq!(n, procs * each);
}

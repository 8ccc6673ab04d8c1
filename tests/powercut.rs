//! Power cuts, simulated (docs/design.md §12.5), and failed syncs (§12.3).
//!
//! The simulator keeps a "disk" apart from the "page cache". The page cache
//! is the queue file's shared mapping, which the workload's threads write as
//! always; the disk is a copy of it that only the queue's syncs update: with
//! the `failpoints` feature, a sync hook stands in for `fdatasync` and copies
//! the mapping to the disk. A snapshot thread reads the mapping at random
//! moments and keeps, for each 512-byte sector, every version it saw since
//! the last sync. A power cut at a snapshot yields an image in which each
//! sector holds the disk's version or any of those later versions, chosen at
//! random sector by sector: a page torn at sectors.
//!
//! Each image is then opened as after a reboot (another boot id), repaired
//! with `recover`, drained, and checked against the workload's journal:
//!
//! - *lost*: a message whose durable send returned Ok before the cut, and
//!   whose ack had not begun, is neither delivered nor kept as a dead letter;
//! - *corrupt*: a delivered payload is not, byte for byte, one that was sent;
//! - *phantom*: a delivered message whose send had not begun at the cut;
//! - *stuck*: after the drain, a slot still leased, being written, delayed or
//!   visible;
//! - *recover twice*: a second `recover --apply` still repairs something.
//!
//! Each count must be zero. `scripts/powercut.sh` runs the long form (100,000
//! images) and the mutants that must make each count non-zero.
//!
//! Knobs: SHMQ_POWERCUT_IMAGES (default 1000), SHMQ_SEED.

#![cfg(feature = "failpoints")]

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shmq::internal::{set_point_hook, set_sync_hook};
use shmq::{recover, Config, Error, Queue, SendError, Visibility};
use support::{disk_dir, env_u64, seed, Rng};

const SECTOR: usize = 512;
const SLOTS: u32 = 24;
/// A slot of 704 payload bytes takes 768 bytes: most slots span two
/// sectors, so a cut can tear a message between its words and its tail.
const SLOT_SIZE: u32 = 700;
const MAX_RECEIVES: u32 = 3;
const SENDERS: u64 = 2;

/// The sync hook is process-wide: the tests of this file take turns.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------- messages

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The payload of message `key`: the key, then bytes derived from it, of a
/// length derived from it (16 ..= SLOT_SIZE).
fn payload(key: u64) -> Vec<u8> {
    let len = 16 + (mix(key) % u64::from(SLOT_SIZE - 15)) as usize;
    let mut p = key.to_le_bytes().to_vec();
    p.extend_from_slice(&(len as u64).to_le_bytes());
    for i in 16..len {
        p.push(mix(key ^ (i as u64) << 40) as u8);
    }
    p
}

/// The key of a payload that is exactly one that was sent.
fn key_of(p: &[u8]) -> Option<u64> {
    let key = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    (payload(key) == p).then_some(key)
}

// ------------------------------------------------------------ simulator

/// What the workload did, each step stamped with the simulator's clock.
#[derive(Default)]
struct Journal {
    /// key -> (clock when the send began, clock when it returned Ok).
    sends: HashMap<u64, (u64, Option<u64>)>,
    /// key -> clock when its first ack began.
    acks: HashMap<u64, u64>,
}

/// A disk image taken at a cut: sectors from the disk or later versions.
struct Image {
    bytes: Vec<u8>,
    /// The clock before the snapshot read the mapping, and after.
    before: u64,
    after: u64,
}

struct Sim {
    /// The simulator's own mapping of the queue file: the page cache.
    map: memmap2::MmapRaw,
    clock: AtomicU64,
    /// How many images this run cuts.
    wanted: AtomicU64,
    state: Mutex<SimState>,
}

struct SimState {
    /// The last synced image of the file.
    disk: Vec<u8>,
    /// For each sector, the versions the snapshots saw since the last sync
    /// (the disk's excluded), oldest first.
    since: HashMap<usize, Vec<Arc<[u8]>>>,
    images: Vec<Image>,
    syncs: u64,
}

impl Sim {
    fn new(path: &Path) -> Arc<Sim> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let map = memmap2::MmapOptions::new().map_raw(&file).unwrap();
        let sim = Arc::new(Sim {
            map,
            clock: AtomicU64::new(1),
            wanted: AtomicU64::new(0),
            state: Mutex::new(SimState {
                disk: Vec::new(),
                since: HashMap::new(),
                images: Vec::new(),
                syncs: 0,
            }),
        });
        // The file as created was synced whole.
        let cache = sim.read_cache();
        sim.state.lock().unwrap().disk = cache;
        sim
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, SeqCst)
    }

    /// The mapping's bytes, read as atomic words (other threads write them).
    fn read_cache(&self) -> Vec<u8> {
        let words = self.map.len() / 8;
        let base = self.map.as_ptr() as *const std::sync::atomic::AtomicU64;
        let mut out = Vec::with_capacity(words * 8);
        for i in 0..words {
            // SAFETY: the mapping is page-aligned, `words * 8` bytes long,
            // and shared only through atomic accesses.
            let w = unsafe { &*base.add(i) }.load(Relaxed);
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The sync hook: the disk becomes the page cache as it is now, and
    /// the call returns after a disk's delay (20 to 200 µs), during which
    /// other senders publish and wait for the next sync.
    fn sync(&self) {
        let cache = self.read_cache();
        let n = {
            let mut st = self.state.lock().unwrap();
            st.disk = cache;
            st.since.clear();
            st.syncs += 1;
            st.syncs
        };
        std::thread::sleep(Duration::from_micros(20 + mix(n) % 180));
    }

    /// A snapshot from a failpoint: as [`snapshot`](Self::snapshot), with a
    /// cut at one in four of them while the image budget lasts.
    fn snapshot_at_point(&self, k: u64) {
        let want = self.wanted.load(Relaxed);
        let have = self.state.lock().unwrap().images.len();
        let n = usize::from(have < want as usize && (k >> 8) % 4 == 0);
        self.snapshot(&mut Rng::new(k), n);
    }

    /// A snapshot: note each sector's version, and maybe cut the power
    /// here, `images` times.
    fn snapshot(&self, rng: &mut Rng, images: usize) {
        let mut st = self.state.lock().unwrap();
        let before = self.tick();
        let cache = self.read_cache();
        let after = self.tick();
        let SimState { disk, since, .. } = &mut *st;
        for (s, sector) in cache.chunks(SECTOR).enumerate() {
            let seen = since.entry(s).or_default();
            let last = seen
                .last()
                .map_or(&disk[s * SECTOR..(s + 1) * SECTOR], |v| v);
            if last != sector {
                seen.push(sector.into());
            }
        }
        since.retain(|_, v| !v.is_empty());
        for _ in 0..images {
            let mut bytes = st.disk.clone();
            for (s, versions) in &st.since {
                // The disk's version, or one of those seen since, at even
                // odds between "kept" and each later version.
                let k = rng.below(versions.len() as u64 + 1) as usize;
                if k > 0 {
                    bytes[s * SECTOR..(s + 1) * SECTOR].copy_from_slice(&versions[k - 1]);
                }
            }
            st.images.push(Image {
                bytes,
                before,
                after,
            });
        }
    }
}

// -------------------------------------------------------------- workload

fn config() -> Config {
    Config::default()
        .slots(SLOTS)
        .slot_size(SLOT_SIZE)
        .max_receives(MAX_RECEIVES)
        .visibility_timeout(Duration::from_secs(30))
        .claim_timeout(Duration::from_secs(2))
        .durable(true)
}

/// Run the workload on a new durable queue in `dir` until `images` images
/// are cut; return them with the journal.
fn run_workload(dir: &Path, images: usize, seed: u64) -> (Vec<Image>, Journal, u64) {
    let path = dir.join("live.q");
    let q = Queue::create(&path, &config()).unwrap();
    let sim = Sim::new(&path);
    sim.wanted.store(images as u64, Relaxed);
    {
        let sim = sim.clone();
        set_sync_hook(Some(Box::new(move |_p| {
            sim.sync();
            Ok(())
        })));
    }
    // Versions between a transition's steps (a claim not yet published, a
    // payload half written, a lease before its holder is named): snapshot
    // at the failpoints too, now and then.
    {
        let sim = sim.clone();
        let calls = AtomicU64::new(seed);
        set_point_hook(Some(Box::new(move |_point| {
            let k = mix(calls.fetch_add(1, Relaxed));
            if k % 8 == 0 {
                sim.snapshot_at_point(k);
            }
        })));
    }
    let journal = Mutex::new(Journal::default());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..SENDERS {
            let (q, sim, journal, stop) = (&q, &sim, &journal, &stop);
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ (t + 1));
                let mut n = 0u64;
                while !stop.load(Relaxed) {
                    let key = (t + 1) << 32 | n;
                    n += 1;
                    let p = payload(key);
                    let start = sim.tick();
                    journal.lock().unwrap().sends.insert(key, (start, None));
                    let r = if rng.chance(100) {
                        let mut ids = Vec::new();
                        q.send_batch(&[&p], &mut ids).map(|()| ids[0])
                    } else {
                        q.send(&p).map_err(Error::from)
                    };
                    match r {
                        Ok(_) => {
                            let ok = sim.tick();
                            journal.lock().unwrap().sends.get_mut(&key).unwrap().1 = Some(ok);
                        }
                        Err(Error::Full) => {
                            journal.lock().unwrap().sends.remove(&key);
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                }
            });
        }
        for t in 0..2u64 {
            let (q, sim, journal, stop) = (&q, &sim, &journal, &stop);
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ (0x100 + t));
                let short = Visibility::new(Duration::from_millis(5)).unwrap();
                let mut buf = Vec::new();
                while !stop.load(Relaxed) {
                    // Now and then a short lease that expires unacked.
                    let vt = rng.chance(100).then_some(short);
                    let Some(d) = q.receive_into(&mut buf, Duration::from_millis(2), vt) else {
                        if rng.chance(50) {
                            let _ = q.redrive_all(4);
                        }
                        continue;
                    };
                    let key = key_of(&buf).expect("the live queue delivers what was sent");
                    if vt.is_some() {
                        continue;
                    }
                    match rng.below(100) {
                        0..=59 => {
                            let start = sim.tick();
                            journal.lock().unwrap().acks.entry(key).or_insert(start);
                            let _ = q.ack(d.receipt);
                        }
                        60..=79 => {
                            let _ = q.nack(d.receipt, Duration::from_millis(rng.below(10)));
                        }
                        80..=87 => {
                            let _ = q.dead_letter(d.receipt);
                        }
                        88..=93 => {
                            let _ = q.extend(d.receipt, Duration::from_secs(30));
                            let _ = q.nack(d.receipt, Duration::ZERO);
                        }
                        _ => {
                            // Keep the lease past the cut: held at the power cut.
                        }
                    }
                }
            });
        }
        let (sim, stop) = (&sim, &stop);
        s.spawn(move || {
            let mut rng = Rng::new(seed ^ 0x200);
            loop {
                std::thread::sleep(Duration::from_micros(rng.range(20, 400)));
                let have = sim.state.lock().unwrap().images.len();
                if have >= images {
                    stop.store(true, Relaxed);
                    break;
                }
                // Cut at about one snapshot in three, once or twice.
                let n = if rng.chance(330) {
                    1 + rng.below(2) as usize
                } else {
                    0
                };
                sim.snapshot(&mut rng, n.min(images - have));
            }
        });
    });
    set_sync_hook(None);
    set_point_hook(None);
    let syncs = sim.state.lock().unwrap().syncs;
    let images = std::mem::take(&mut sim.state.lock().unwrap().images);
    (images, journal.into_inner().unwrap(), syncs)
}

// --------------------------------------------------------------- checker

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    images: u64,
    durable: u64,
    lost: u64,
    corrupt: u64,
    phantom: u64,
    stuck: u64,
    recover_twice: u64,
    quarantined: u64,
    delivered: u64,
    syncs: u64,
    /// Slots the first recover repaired.
    repaired: u64,
}

/// Make `bytes`, a queue file, look as after a reboot: another boot id in
/// the header, and in every taken registration (word 3 of each entry,
/// docs/registry.md), so that the open resets the clocks and judges every
/// registration gone.
fn as_after_a_reboot(bytes: &mut [u8]) {
    bytes[128..144].copy_from_slice(&[0x5a; 16]);
    for e in 0..1024 {
        let at = 4096 + e * 32;
        if u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) != 0 {
            let b = at + 28;
            let boot = u32::from_le_bytes(bytes[b..b + 4].try_into().unwrap());
            bytes[b..b + 4].copy_from_slice(&(boot ^ 0x5a5a_5a5a).to_le_bytes());
        }
    }
}

/// What a queue file held after a cut, once opened, recovered twice and
/// drained.
struct Drained {
    /// The key of each delivered payload that is one that was sent.
    delivered: Vec<u64>,
    /// Delivered keys, and the keys of dead letters whose payload is one
    /// that was sent.
    present: HashSet<u64>,
    /// Deliveries whose payload is no payload that was sent.
    corrupt: u64,
    /// Dead letters quarantined as corrupt (torn messages).
    quarantined: u64,
    /// Slots still visible, in flight, delayed, being written or abandoned.
    stuck: u64,
    /// Whether the second recover still repaired something.
    recover_twice: bool,
    /// Slots the first recover repaired.
    repaired: u64,
}

fn reopen_and_drain(path: &Path) -> Drained {
    let q = Queue::open(path).expect("the image opens");
    let first = recover::apply(&q, shmq::now_ms(), false);
    let second = recover::apply(&q, shmq::now_ms(), false);
    let mut out = Drained {
        delivered: Vec::new(),
        present: HashSet::new(),
        corrupt: 0,
        quarantined: 0,
        stuck: 0,
        recover_twice: second.to_repair() > 0 || second.repaired() > 0,
        repaired: first.repaired() as u64,
    };
    let mut buf = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        match q.receive_into(&mut buf, Duration::from_millis(5), None) {
            Some(d) => {
                empty = 0;
                match key_of(&buf) {
                    Some(key) => {
                        out.delivered.push(key);
                        out.present.insert(key);
                    }
                    None => out.corrupt += 1,
                }
                q.ack(d.receipt).unwrap();
            }
            None => empty += 1,
        }
    }
    for dead in q.dead_letters() {
        out.quarantined += u64::from(dead.reason == shmq::DeadReason::Corrupt);
        if let Some(key) = key_of(&dead.payload) {
            out.present.insert(key);
        }
    }
    let st = q.stats();
    out.stuck = st.visible + st.in_flight + st.delayed + st.writing + st.abandoned;
    if out.stuck > 0 {
        let slots: Vec<_> = (0..q.config().slots)
            .filter_map(|i| q.slot_info(i))
            .filter(|s| {
                !matches!(
                    s.state,
                    Some(shmq::internal::St::Free | shmq::internal::St::Dead)
                )
            })
            .collect();
        eprintln!("stuck after the drain: {st:?}\n{slots:#?}");
    }
    out
}

fn check_image(dir: &Path, n: usize, img: &Image, journal: &Journal, counts: &mut Counts) {
    let path: PathBuf = dir.join(format!("image-{}.q", n % 4));
    let _ = std::fs::remove_file(&path);
    let mut bytes = img.bytes.clone();
    as_after_a_reboot(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let d = reopen_and_drain(&path);
    counts.images += 1;
    counts.repaired += d.repaired;
    counts.recover_twice += u64::from(d.recover_twice);
    counts.delivered += d.delivered.len() as u64 + d.corrupt;
    counts.corrupt += d.corrupt;
    counts.quarantined += d.quarantined;
    counts.stuck += u64::from(d.stuck > 0);
    counts.phantom += d
        .delivered
        .iter()
        .filter(|key| journal.sends.get(key).map_or(true, |s| s.0 >= img.after))
        .count() as u64;
    for (key, &(_, ok)) in &journal.sends {
        let Some(ok) = ok else { continue };
        if ok >= img.before {
            continue;
        }
        counts.durable += 1;
        let acked = journal.acks.get(key).is_some_and(|&a| a < img.after);
        if !acked && !d.present.contains(key) {
            counts.lost += 1;
        }
    }
}

fn run(images: usize, seed: u64) -> Counts {
    let dir = disk_dir();
    let mut counts = Counts::default();
    let mut round = 0u64;
    while (counts.images as usize) < images {
        let want = (images - counts.images as usize).min(200);
        let (cut, journal, syncs) =
            run_workload(dir.path(), want, seed ^ round.wrapping_mul(0x9e37));
        counts.syncs += syncs;
        let _ = std::fs::remove_file(dir.path().join("live.q"));
        for (n, img) in cut.iter().enumerate() {
            check_image(dir.path(), n, img, &journal, &mut counts);
        }
        round += 1;
    }
    counts
}

#[test]
fn power_cuts_lose_no_durable_send() {
    let _turn = turn();
    let images = env_u64("SHMQ_POWERCUT_IMAGES", 1000) as usize;
    let seed = seed("power cuts");
    let c = run(images, seed);
    eprintln!("power cuts (SHMQ_SEED={seed}): {c:?}");
    assert_eq!(
        (c.lost, c.corrupt, c.phantom, c.stuck, c.recover_twice),
        (0, 0, 0, 0, 0),
        "lost, corrupt, phantom, stuck, recover twice (SHMQ_SEED={seed}): {c:?}"
    );
    assert!(
        c.durable > 0 && c.delivered > 0 && c.syncs > 0 && c.quarantined > 0,
        "the workload sent, synced, delivered and tore messages: {c:?}"
    );
}

// ---------------------------------------------------------- failed syncs

/// A sync hook that fails with `errno` while `failing` is set.
fn failing_hook(failing: Arc<AtomicBool>, errno: i32) {
    set_sync_hook(Some(Box::new(move |p| {
        if failing.load(SeqCst) {
            return Err(std::io::Error::from_raw_os_error(errno));
        }
        std::fs::File::open(p)?.sync_data()
    })));
}

#[test]
fn a_failed_sync_fails_the_send_and_every_durable_send_after_it() {
    let _turn = turn();
    let dir = disk_dir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, &config()).unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    failing_hook(failing.clone(), libc::EIO);
    q.send("before").unwrap();
    failing.store(true, SeqCst);
    let id = match q.send("during") {
        Err(SendError::SyncFailed {
            sent: Some(id),
            errno,
        }) => {
            assert_eq!(errno, libc::EIO);
            id
        }
        other => panic!("expected SyncFailed with the message sent, got {other:?}"),
    };
    // The disk is fine again, but the failure sticks: a retried sync could
    // report success for pages the failed writeback dropped.
    failing.store(false, SeqCst);
    assert_eq!(
        q.send("after"),
        Err(SendError::SyncFailed {
            sent: None,
            errno: libc::EIO
        })
    );
    assert!(matches!(q.sync(), Err(Error::SyncFailed { errno, .. }) if errno == libc::EIO));
    let mut ids = Vec::new();
    assert!(matches!(
        q.send_batch(&["x"], &mut ids),
        Err(Error::SyncFailed { .. })
    ));
    assert!(ids.is_empty(), "nothing sent");
    assert_eq!(q.stats().sync_failed, Some(libc::EIO));
    assert!(q.sync_failure().is_some());
    // Another process sees it too (it is in the file).
    let other = Queue::open(&path).unwrap();
    assert!(matches!(
        other.send("other"),
        Err(SendError::SyncFailed { sent: None, .. })
    ));
    let text = SendError::SyncFailed {
        sent: None,
        errno: libc::EIO,
    }
    .to_string();
    assert!(text.contains("shmq recover"), "says what to do: {text}");
    // recover clears it only with a sync that works.
    failing.store(true, SeqCst);
    assert!(matches!(
        q.clear_sync_failure(),
        Err(Error::SyncFailed { .. })
    ));
    assert!(q.sync_failure().is_some(), "still failed");
    failing.store(false, SeqCst);
    assert!(q.clear_sync_failure().unwrap());
    assert!(!q.clear_sync_failure().unwrap(), "nothing left to clear");
    assert_eq!(q.stats().sync_failed, None);
    q.send("healed").unwrap();
    // Every message sent, the failed one too, is in the queue.
    let mut got = Vec::new();
    while let Some(l) = q.try_receive() {
        got.push((l.id(), l.payload().to_vec()));
        l.ack().unwrap();
    }
    assert!(got.iter().any(|(i, p)| *i == id && p == b"during"));
    assert_eq!(got.len(), 3, "before, during, healed: {got:?}");
    set_sync_hook(None);
}

/// Every sender waiting on a sync that fails gets the failure, in any
/// thread: none returns Ok.
#[test]
fn every_waiter_on_a_failed_sync_fails() {
    let _turn = turn();
    let dir = disk_dir();
    let q = Queue::create(dir.path().join("q"), &config().slots(512).slot_size(64)).unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    {
        let (failing, calls) = (failing.clone(), calls.clone());
        set_sync_hook(Some(Box::new(move |_| {
            // The tenth sync fails, and every one after it would too.
            if calls.fetch_add(1, SeqCst) >= 10 {
                failing.store(true, SeqCst);
            }
            std::thread::sleep(Duration::from_micros(300));
            if failing.load(SeqCst) {
                Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
            } else {
                Ok(())
            }
        })));
    }
    let results: Vec<Vec<Result<u64, SendError>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                let q = q.clone();
                s.spawn(move || (0..20).map(|_| q.send("m")).collect())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    set_sync_hook(None);
    let all: Vec<_> = results.into_iter().flatten().collect();
    let ok = all.iter().filter(|r| r.is_ok()).count();
    let failed_sent = all
        .iter()
        .filter(|r| matches!(r, Err(SendError::SyncFailed { sent: Some(_), .. })))
        .count();
    let refused = all
        .iter()
        .filter(|r| matches!(r, Err(SendError::SyncFailed { sent: None, .. })))
        .count();
    assert_eq!(ok + failed_sent + refused, all.len(), "{all:?}");
    assert!(ok > 0 && failed_sent > 0, "ok {ok}, failed {failed_sent}");
    // Every Ok came from a sync that succeeded: at most 10 syncs did, and
    // a send that returned Ok was synced by one of them.
    assert!(calls.load(SeqCst) >= 11);
    assert_eq!(q.stats().sync_failed, Some(libc::ENOSPC));
    // And the queue holds every message that was sent (Ok or not).
    let mut n = 0;
    while let Some(l) = q.try_receive() {
        l.ack().unwrap();
        n += 1;
    }
    assert_eq!(n, ok + failed_sent);
}

// ------------------------------------------- real files: a loop device

/// The real-kernel check's workload (`scripts/powercut-loop.sh`): durable
/// senders and receivers on `SHMQ_LOOP_QUEUE` (a file on an ext4 mounted
/// from a loop device) until `SHMQ_LOOP_STOP` exists. Each send that
/// returned `Ok` and each ack about to begin is appended to
/// `SHMQ_LOOP_JOURNAL` (on another file system) with one `write(2)`: `S key`
/// after the send returned, `a key` before the ack. The script copies the
/// loop device's backing file now and then, noting the journal's length
/// before and after each copy: a copy is a disk that kept every write the
/// device was given and lost every dirty page the kernel had not written.
#[test]
#[ignore = "run by scripts/powercut-loop.sh (needs root, a loop device)"]
fn loop_workload() {
    use std::io::Write;
    let path = PathBuf::from(std::env::var("SHMQ_LOOP_QUEUE").expect("SHMQ_LOOP_QUEUE"));
    let journal = std::env::var("SHMQ_LOOP_JOURNAL").expect("SHMQ_LOOP_JOURNAL");
    let stop = PathBuf::from(std::env::var("SHMQ_LOOP_STOP").expect("SHMQ_LOOP_STOP"));
    let q = Queue::create(&path, &config().slots(256)).expect("create on the loop file system");
    let j = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal)
            .unwrap(),
    );
    let log = |line: String| {
        let mut f = j.lock().unwrap();
        f.write_all(line.as_bytes()).unwrap();
    };
    let done = AtomicBool::new(false);
    let seed = seed("loop workload");
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (q, log, done) = (&q, &log, &done);
            s.spawn(move || {
                let mut n = 0u64;
                while !done.load(Relaxed) {
                    let key = (t + 1) << 32 | n;
                    n += 1;
                    match q.send(&payload(key)) {
                        Ok(_) => log(format!("S {key}\n")),
                        Err(SendError::Full) => std::thread::sleep(Duration::from_millis(1)),
                        Err(e) => panic!("send: {e}"),
                    }
                }
            });
        }
        for t in 0..2u64 {
            let (q, log, done) = (&q, &log, &done);
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ t);
                let mut buf = Vec::new();
                while !done.load(Relaxed) {
                    // Dead letters come back now and then (they would fill
                    // the queue otherwise).
                    if rng.chance(20) {
                        let _ = q.redrive_all(16);
                    }
                    let Some(d) = q.receive_into(&mut buf, Duration::from_millis(5), None) else {
                        continue;
                    };
                    let key = key_of(&buf).expect("intact");
                    match rng.below(10) {
                        0..=6 => {
                            log(format!("a {key}\n"));
                            let _ = q.ack(d.receipt);
                        }
                        7 | 8 => {
                            let _ = q.nack(d.receipt, Duration::from_millis(rng.below(5)));
                        }
                        _ => {
                            let _ = q.dead_letter(d.receipt);
                        }
                    }
                }
            });
        }
        while !stop.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        done.store(true, Relaxed);
    });
    eprintln!("loop workload: {:?}", q.stats());
}

/// The real-kernel check's checker: `SHMQ_LOOP_QUEUE` is the queue file in
/// a copy of the device, mounted (ext4 replayed its journal); the journal's
/// first `SHMQ_LOOP_BEFORE` bytes were written before the copy began, its
/// first `SHMQ_LOOP_AFTER` bytes before it ended. As after a reboot (another
/// boot id), open, recover twice, drain, and check: every send that returned
/// `Ok` before the copy is delivered or kept dead, or its ack had begun;
/// every delivery is a payload that was sent; nothing stuck.
#[test]
#[ignore = "run by scripts/powercut-loop.sh"]
fn loop_check() {
    let path = PathBuf::from(std::env::var("SHMQ_LOOP_QUEUE").expect("SHMQ_LOOP_QUEUE"));
    let journal = std::fs::read(std::env::var("SHMQ_LOOP_JOURNAL").unwrap()).unwrap();
    let before = env_u64("SHMQ_LOOP_BEFORE", 0) as usize;
    let after = env_u64("SHMQ_LOOP_AFTER", 0) as usize;
    let parse = |bytes: &[u8], tag: &str| -> HashSet<u64> {
        String::from_utf8_lossy(bytes)
            .lines()
            .filter_map(|l| l.strip_prefix(tag)?.trim().parse().ok())
            .collect()
    };
    let sent = parse(&journal[..before.min(journal.len())], "S ");
    let acking = parse(&journal[..after.min(journal.len())], "a ");
    let sent_ever = parse(&journal[..after.min(journal.len())], "S ");
    let mut bytes = std::fs::read(&path).unwrap();
    as_after_a_reboot(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let d = reopen_and_drain(&path);
    // The workload's producers are numbered 1 to 4 in the key's high half.
    let phantom = d
        .delivered
        .iter()
        .filter(|k| **k >> 32 == 0 || **k >> 32 > 4)
        .count();
    let lost: Vec<u64> = sent
        .iter()
        .filter(|k| !acking.contains(k) && !d.present.contains(k))
        .copied()
        .collect();
    println!(
        "LOOPCHECK durable_ok={} present={} lost={} corrupt={} phantom={phantom} stuck={} recover_twice={} quarantined={} sent_by_copy_end={}",
        sent.len(),
        d.present.len(),
        lost.len(),
        d.corrupt,
        d.stuck,
        usize::from(d.recover_twice),
        d.quarantined,
        sent_ever.len(),
    );
    eprintln!("first recover repaired {} slots", d.repaired);
    assert!(
        lost.is_empty() && d.corrupt == 0 && phantom == 0 && d.stuck == 0,
        "lost {:?}",
        &lost[..lost.len().min(10)]
    );
    assert!(!d.recover_twice, "recover twice");
}

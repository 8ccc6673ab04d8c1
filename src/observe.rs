//! `QueueView`: a queue file watched with read access only.
//!
//! Monitoring (`shmq stat`, `peek`, `inspect`, `dlq list`, `ls`) must work
//! for a user who may read the queue file but not write it. A [`Queue`]
//! opens the file read-write and may change it on open (the boot-id reset of
//! design.md §7) and on every receive (the sweep), so a watcher gets its own
//! type: the file is opened `O_RDONLY` and mapped `PROT_READ`, and the type
//! offers only calls that load words (configuration, identity, stats, peek,
//! dead letters, slot snapshots).
//!
//! Why this is sound: a store through a `PROT_READ` mapping is a SIGSEGV,
//! and the standard library promises that only *relaxed* atomic loads of at
//! most 8 bytes (on x86-64, AArch64 and the other 64-bit Linux targets) work
//! on read-only memory; an `Acquire` or `SeqCst` load, or any
//! read-modify-write, is not promised to. So a view never touches the lock-free
//! core ([`Ring`], whose reads use `Acquire` and `SeqCst` loads): it reads
//! the slot words itself, here, with relaxed loads each followed by an
//! `Acquire` fence (which gives the load the pairing an `Acquire` load has),
//! mirroring [`Ring::info`] and [`Ring::peek`] step for step. No store, no
//! compare-and-swap, no futex call and no boot check is reachable from a
//! `QueueView`.
//!
//! What it cannot do: the boot-id reset. After a reboot the clock words of a
//! file on a disk file system refer to the previous boot's CLOCK_MONOTONIC,
//! so the times a view derives from them (ages, deadlines, "visible now") are
//! stale until a writer opens the queue with [`Queue::open`]; a view says so
//! with [`QueueView::clocks_current`].
//!
//! [`Queue`]: crate::Queue
//! [`Queue::open`]: crate::Queue::open
//! [`Ring`]: crate::internal::Ring
//! [`Ring::info`]: crate::internal::Ring::info
//! [`Ring::peek`]: crate::internal::Ring::peek

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use memmap2::MmapOptions;

use crate::clock::{boot_id, now_ms, wall_time};
use crate::error::{Error, Result};
use crate::layout::*;
use crate::queue::{io_err, Peeked, Stats};
use crate::queue::{
    open_file, params_of, read_header, visible_now, Config, DeadLetter, HeaderError, MapMemory,
};
use crate::ring::{no_wake, DeadReason, Params, Receipt, SlotInfo};
use crate::slot::{gen_of, St};
use crate::sync::{fence, AtomicU64, Ordering::*};

/// A queue file opened for reading only: it works for a user with read
/// permission alone, and never changes the file.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use shmq::{Config, Queue, QueueView};
/// let path = dir.path().join("orders.q");
/// let q = Queue::create(&path, &Config::default())?;
/// q.send("order 1")?;
/// let view = QueueView::open(&path)?;
/// assert_eq!(view.stats().visible, 1);
/// assert_eq!(view.peek(10)[0].payload, b"order 1");
/// assert_eq!(view.identity(), q.identity());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct QueueView {
    /// PROT_READ: read only through `load64`, `load_acquire` and `ring::slot_info`.
    mem: MapMemory,
    params: Params,
    path: PathBuf,
    config: Config,
    identity: u64,
    /// Verdicts on registered holders (process memory), and this process's
    /// identity they are judged from (§7.4).
    cache: crate::registry::VerdictCache,
    me: crate::registry::Identity,
    _file: File,
}

impl std::fmt::Debug for QueueView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueView")
            .field("path", &self.path)
            .field("identity", &format_args!("{:016x}", self.identity))
            .field("config", &self.config)
            .finish()
    }
}

impl QueueView {
    /// Open the queue file at `path` read-only. Unlike [`Queue::open`] it
    /// does not wait for a creator that has not finished the header: it
    /// returns [`Error::NotInitialised`] at once (look again later).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::NotAQueue`], [`Error::Incompatible`],
    /// [`Error::NotInitialised`], [`Error::Corrupt`] as [`Queue::open`];
    /// [`Error::Io`] (`EACCES` if the caller may not even read the file).
    ///
    /// [`Queue::open`]: crate::Queue::open
    pub fn open(path: impl AsRef<Path>) -> Result<QueueView> {
        let path = path.as_ref();
        let file = open_file(path, false)?;
        let meta = file.metadata().map_err(io_err("stat", path))?;
        let len = meta.len();
        let got = if (len as usize) < OFF_SHARED {
            // Too short for the immutable header: a creator that has not
            // written it yet, or another kind of file.
            let mut head = vec![0u8; len as usize];
            file.read_exact_at(&mut head, 0)
                .map_err(io_err("read header", path))?;
            if head.iter().all(|&x| x == 0) {
                Err(HeaderError::Uninitialised)
            } else {
                Err(HeaderError::BadMagic)
            }
        } else {
            read_header(&file, path, len)?
        };
        let header = got.map_err(|e| e.into_error(path))?;
        // PROT_READ, MAP_SHARED: this process sees the writers' stores and
        // can make none (a store would fault, and nothing below stores).
        let map = MmapOptions::new()
            .map_raw_read_only(&file)
            .map_err(io_err("mmap", path))?;
        if (map.len() as u64) < header.file_len {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                what: "file shrank while opening".into(),
            });
        }
        let mut config = header.config;
        config.mode = meta.permissions().mode() & 0o7777;
        if config.durable {
            // Faults without read-ahead, as the writers' (§12.4).
            crate::queue::durable::advise_random(&map);
        }
        let mem = MapMemory::new(map, config.slots, slot_stride(config.slot_size));
        // Never woken through: a view makes no transition.
        let params = params_of(&config, header.identity, no_wake);
        Ok(QueueView {
            mem,
            params,
            path: path.to_path_buf(),
            config,
            identity: header.identity,
            cache: crate::registry::VerdictCache::new(crate::registry::ENTRIES),
            me: crate::registry::Identity::current(),
            _file: file,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The queue's identity, as [`Queue::identity`](crate::Queue::identity).
    pub fn identity(&self) -> u64 {
        self.identity
    }

    /// The queue's configuration (as read from the file; `mode` is the
    /// file's permission bits).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the file's clock words belong to this boot. `false` after a
    /// reboot until a writer opens the queue: ages, deadlines and
    /// visibility read through this view are then stale.
    pub fn clocks_current(&self) -> bool {
        let host = boot_id();
        let sh = self.mem.shared();
        load64(&sh.boot_id[0]) == host[0] && load64(&sh.boot_id[1]) == host[1]
    }

    /// The queue's parameters as the core would use them (for
    /// [`recover::classify`](crate::recover::classify)).
    #[doc(hidden)]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether the process holder `h` names may still be alive (0, no
    /// holder: nothing is known, so yes). Judged as the queue judges it
    /// (design.md §7.4), without freeing anything: the view is read-only.
    #[doc(hidden)]
    pub fn holder_alive(&self, h: u32, now: u64) -> bool {
        h == 0
            || crate::registry::verdict_read_only(
                self.mem.registry(),
                h,
                &self.me,
                crate::registry::os_probe,
                now,
                &self.cache,
            ) != crate::registry::Verdict::Dead
    }

    /// The path of the dead-letter queue this queue names, if any (see
    /// [`Queue::set_dead_letter_queue`](crate::Queue::set_dead_letter_queue)).
    pub fn dead_letter_queue_path(&self) -> Option<PathBuf> {
        let (identity, name) =
            crate::queue::read_dead_letter_queue_name(self.mem.dead_letter_queue())?;
        (identity != 0).then(|| crate::queue::resolve_dead_letter_queue(&self.path, &name))
    }

    /// The pid of the process holder `h` names, while its registration
    /// stands.
    #[doc(hidden)]
    pub fn holder_pid(&self, h: u32) -> Option<u32> {
        crate::registry::holder_pid(self.mem.registry(), h)
    }

    /// A snapshot of slot `i`; `None` if there is no such slot.
    #[doc(hidden)]
    pub fn slot_info(&self, i: u32) -> Option<SlotInfo> {
        (i < self.mem.slot_count()).then(|| info(&self.mem, i))
    }

    /// Counts by state and the header's counters, as
    /// [`Queue::stats`](crate::Queue::stats).
    pub fn stats(&self) -> Stats {
        stats(&self.mem, self.params.max_receives)
    }

    /// Up to `limit` visible messages, oldest id first, as
    /// [`Queue::peek`](crate::Queue::peek).
    pub fn peek(&self, limit: usize) -> Vec<Peeked> {
        peek(
            &self.mem,
            self.params.slot_size,
            self.params.max_receives,
            limit,
        )
    }

    /// Every dead message, oldest id first, as
    /// [`Queue::dead_letters`](crate::Queue::dead_letters). It copies every
    /// dead payload: [`dead_letters_up_to`](Self::dead_letters_up_to) and
    /// [`find_dead_letter`](Self::find_dead_letter) hold less.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        dead_letters(&self.mem, &self.params)
    }

    /// Up to `limit` dead messages, oldest id first (a scan of every slot).
    /// At most `limit + 1` payloads are held at once, whatever the queue's
    /// size: `dead_letters_up_to(n)` is `dead_letters()` cut to `n`, without
    /// copying the rest.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue, QueueView};
    /// let path = dir.path().join("q");
    /// let q = Queue::create(&path, &Config::default())?;
    /// for m in ["first", "second"] {
    ///     q.send(m)?;
    ///     q.try_receive().unwrap().dead_letter()?;
    /// }
    /// let view = QueueView::open(&path)?;
    /// let dead = view.dead_letters_up_to(1);
    /// assert_eq!((dead.len(), dead[0].payload.as_slice()), (1, b"first".as_slice()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dead_letters_up_to(&self, limit: usize) -> Vec<DeadLetter> {
        dead_letters_up_to(&self.mem, &self.params, limit)
    }

    /// The dead message with this `id`; `None` if there is none (a scan of
    /// every slot that copies only that message's payload).
    pub fn find_dead_letter(&self, id: u64) -> Option<DeadLetter> {
        find_dead_letter(&self.mem, &self.params, id)
    }
}

// The reads. Every load of the mapping is one of these two: relaxed (the
// only atomic access promised to work on read-only memory), then an
// Acquire fence where the core's own read uses an Acquire (or SeqCst) load.

/// A relaxed load of a shared 64-bit word.
fn load64(w: &AtomicU64) -> u64 {
    w.load(Relaxed)
}

/// A load with Acquire's effect: relaxed, then an Acquire fence.
/// SYNC POINT: as the Acquire loads of `Ring::read`, this pairs with the
/// Release of the commit (or reservation) CAS of whoever last changed the
/// slot, so the side words read after it are at least as new.
fn load_acquire(w: &AtomicU64) -> u64 {
    let v = w.load(Relaxed);
    fence(Acquire);
    v
}

/// A snapshot of slot `i`, field for field as `Ring::info` (the same
/// function: relaxed loads and Acquire fences only).
fn info<M: Memory>(mem: &M, i: u32) -> SlotInfo {
    crate::ring::slot_info(mem.slot(i), i)
}

/// The message in slot `i` copied without leasing it, as `Ring::peek` (a
/// seqlock read): `None` if the slot holds no message, its length is out of
/// bounds, or it changed while being read.
fn peek_slot<M: Memory>(mem: &M, slot_size: u32, i: u32, buf: &mut Vec<u8>) -> Option<SlotInfo> {
    let w = mem.slot(i);
    let s1 = load_acquire(&w.state);
    let info = info(mem, i);
    if info.corrupt || !matches!(info.state, Some(St::Ready | St::Leased | St::Dead)) {
        return None;
    }
    let len = info.len as usize;
    if len > slot_size as usize {
        return None;
    }
    let words = mem.payload(i);
    buf.clear();
    buf.reserve(len);
    for w in words.iter().take(len.div_ceil(8)) {
        buf.extend_from_slice(&load64(w).to_le_bytes());
    }
    buf.truncate(len);
    // SYNC POINT: pairs with the sender's fence(Release) after its claim (as
    // in `Ring::peek`): the payload loads above come before the state is
    // read again.
    fence(Acquire);
    if load64(&w.state) != s1 || gen_of(s1) != info.gen {
        return None;
    }
    Some(info)
}

// The scans. They only read, so they serve a view and a read-write queue
// alike: `Queue::stats`, `peek` and `dead_letters` call them with the
// core's memory.

/// Counts by state (a scan of every slot) and the header's counters, each
/// slot judged at one clock reading as a receive would judge it, with no
/// receiver needed (design.md §5.4): an expired lease is visible again (or
/// dead at max receives), an expired claim abandoned.
pub(crate) fn stats<M: Memory>(mem: &M, max_receives: u32) -> Stats {
    let now = now_ms();
    let mut st = Stats {
        capacity: u64::from(mem.slot_count()),
        ..Stats::default()
    };
    let (mut oldest, mut unfinished): (Option<u64>, Option<u64>) = (None, None);
    let older = |o: Option<u64>, t: u64| Some(o.map_or(t, |o: u64| o.min(t)));
    for i in 0..mem.slot_count() {
        let info = info(mem, i);
        if info.corrupt {
            st.other += 1;
            continue;
        }
        match info.state {
            Some(St::Free) => st.free += 1,
            Some(St::Writing) if info.time_ms < now => st.abandoned += 1,
            Some(St::Writing) => st.writing += 1,
            Some(St::Ready) if visible_now(&info, now) => {
                st.visible += 1;
                oldest = older(oldest, info.sent_ms);
                unfinished = older(unfinished, info.sent_ms);
            }
            Some(St::Ready) => {
                st.delayed += 1;
                unfinished = older(unfinished, info.sent_ms);
            }
            Some(St::Leased) if info.time_ms < now && info.receives >= max_receives => st.dead += 1,
            Some(St::Leased) if info.time_ms < now => {
                st.visible += 1;
                st.expired_leases += 1;
                oldest = older(oldest, info.sent_ms);
                unfinished = older(unfinished, info.sent_ms);
            }
            Some(St::Leased) => {
                st.in_flight += 1;
                unfinished = older(unfinished, info.sent_ms);
            }
            Some(St::Dead) => st.dead += 1,
            Some(St::Abandoned) => st.abandoned += 1,
            None => st.other += 1,
        }
    }
    let sh = mem.shared();
    st.sent = load64(&sh.sent);
    st.acked = load64(&sh.acked);
    st.redelivered = load64(&sh.redelivered);
    st.dead_lettered = load64(&sh.dead_lettered);
    st.redriven = load64(&sh.redriven);
    let d = mem.durability();
    st.syncs = load64(&d.syncs);
    st.durable_waits = load64(&d.waits);
    if load64(&d.done) & crate::ring::SYNC_FAILED != 0 {
        st.sync_failed = Some(match load64(&d.errno) {
            e @ 1..=4095 => e as i32,
            _ => libc::EIO,
        });
    }
    let age = |t: u64| Duration::from_millis(now.saturating_sub(t));
    st.oldest_visible_age = oldest.map(age);
    st.oldest_unfinished_age = unfinished.map(age);
    st
}

/// A copied message and the snapshot it was copied under, ordered by
/// (message id, slot) for [`smallest_ids`]'s heap.
struct Kept {
    info: SlotInfo,
    payload: Vec<u8>,
}

impl Kept {
    fn key(&self) -> (u64, u32) {
        (self.info.id, self.info.slot)
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Kept) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Kept) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Kept) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The `limit` messages with the smallest ids among the slots `wanted`
/// accepts, copied, oldest id first. `wanted` judges a snapshot taken
/// before the copy; the copy is kept only if the slot's generation did not
/// change in between. At most `limit + 1` payloads are held at once,
/// whatever the queue's size, and a slot whose id cannot be among the
/// `limit` smallest seen so far is not copied at all.
fn smallest_ids<M: Memory>(
    mem: &M,
    slot_size: u32,
    limit: usize,
    wanted: impl Fn(&SlotInfo) -> bool,
) -> Vec<Kept> {
    // The `limit` smallest so far, in a max-heap.
    let mut kept = std::collections::BinaryHeap::new();
    if limit == 0 {
        return Vec::new();
    }
    let mut buf = Vec::new();
    for i in 0..mem.slot_count() {
        let first = info(mem, i);
        if first.corrupt || !wanted(&first) {
            continue;
        }
        if kept.len() == limit
            && kept
                .peek()
                .is_some_and(|top: &Kept| top.key() <= (first.id, i))
        {
            continue;
        }
        let Some(seen) = peek_slot(mem, slot_size, i, &mut buf) else {
            continue;
        };
        if seen.gen != first.gen || seen.state != first.state {
            continue;
        }
        kept.push(Kept {
            info: seen,
            payload: std::mem::take(&mut buf),
        });
        if kept.len() > limit {
            kept.pop();
        }
    }
    kept.into_sorted_vec()
}

/// Up to `limit` visible messages (judged as `stats` judges them: due, or
/// leased past the deadline below max receives), oldest id first, read
/// without leasing. At most `limit + 1` payloads are held at once, whatever
/// the queue's size.
pub(crate) fn peek<M: Memory>(
    mem: &M,
    slot_size: u32,
    max_receives: u32,
    limit: usize,
) -> Vec<Peeked> {
    let now = now_ms();
    let visible = |info: &SlotInfo| match info.state {
        Some(St::Ready) => visible_now(info, now),
        Some(St::Leased) => info.time_ms < now && info.receives < max_receives,
        _ => false,
    };
    smallest_ids(mem, slot_size, limit, visible)
        .into_iter()
        .map(|k| Peeked {
            id: k.info.id,
            receives: k.info.receives,
            sent_at: wall_time(k.info.sent_ms),
            payload: k.payload,
        })
        .collect()
}

/// A dead letter from the snapshot its payload was copied under.
fn dead_letter(identity: u64, info: &SlotInfo, payload: Vec<u8>) -> DeadLetter {
    DeadLetter {
        id: info.id,
        receipt: Receipt {
            queue: identity,
            slot: info.slot,
            gen: info.gen,
            id: info.id,
        },
        receives: info.receives,
        died_at: wall_time(info.time_ms),
        reason: DeadReason::from_code(info.reason),
        payload,
    }
}

/// Every dead message, oldest id first.
pub(crate) fn dead_letters<M: Memory>(mem: &M, p: &Params) -> Vec<DeadLetter> {
    dead_letters_up_to(mem, p, usize::MAX)
}

/// Up to `limit` dead messages, oldest id first. At most `limit + 1`
/// payloads are held at once, whatever the queue's size.
pub(crate) fn dead_letters_up_to<M: Memory>(mem: &M, p: &Params, limit: usize) -> Vec<DeadLetter> {
    smallest_ids(mem, p.slot_size, limit, |info| info.state == Some(St::Dead))
        .into_iter()
        .map(|k| dead_letter(p.identity, &k.info, k.payload))
        .collect()
}

/// The dead message `id` (the one in the lowest slot, should a damaged file
/// hold two); `None` if no dead message has this id. Only its payload is
/// copied.
pub(crate) fn find_dead_letter<M: Memory>(mem: &M, p: &Params, id: u64) -> Option<DeadLetter> {
    let mut buf = Vec::new();
    (0..mem.slot_count()).find_map(|i| {
        let first = info(mem, i);
        if first.corrupt || first.state != Some(St::Dead) || first.id != id {
            return None;
        }
        let seen = peek_slot(mem, p.slot_size, i, &mut buf)?;
        (seen.gen == first.gen && seen.state == first.state)
            .then(|| dead_letter(p.identity, &seen, std::mem::take(&mut buf)))
    })
}

/// Whether the file at `path` starts with a queue file's magic bytes (read
/// without mapping it; for listing the queues of a directory).
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be opened or read.
pub fn is_queue_file(path: impl AsRef<Path>) -> Result<bool> {
    let path = path.as_ref();
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut b = [0u8; 8];
    match file.read_exact_at(&mut b, OFF_MAGIC as u64) {
        Ok(()) => Ok(b == MAGIC),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_err("read header", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Queue;

    #[test]
    fn a_view_sees_what_a_writer_did() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let q = Queue::create(&path, &Config::default().slots(8).slot_size(64)).unwrap();
        q.send("a").unwrap();
        q.send("b").unwrap();
        q.send_delayed("later", Duration::from_secs(3600)).unwrap();
        let lease = q.try_receive().unwrap();
        let v = QueueView::open(&path).unwrap();
        let same_tick = |mut s: Stats| {
            s.oldest_visible_age = None;
            s
        };
        assert_eq!(same_tick(v.stats()), same_tick(q.stats()));
        // Wall-clock times are derived at each call: compare the rest.
        let peeked = |p: Vec<Peeked>| -> Vec<(u64, u32, Vec<u8>)> {
            p.into_iter()
                .map(|m| (m.id, m.receives, m.payload))
                .collect()
        };
        assert_eq!(peeked(v.peek(10)), peeked(q.peek(10)));
        lease.dead_letter().unwrap();
        let dead = |d: Vec<DeadLetter>| -> Vec<(u64, Receipt, DeadReason, Vec<u8>)> {
            d.into_iter()
                .map(|m| (m.id, m.receipt, m.reason, m.payload))
                .collect()
        };
        assert_eq!(dead(v.dead_letters()), dead(q.dead_letters()));
        assert_eq!(v.dead_letters().len(), 1);
        assert_eq!(v.identity(), q.identity());
        assert_eq!(v.config(), q.config());
        assert!(v.clocks_current());
        for i in 0..8 {
            assert_eq!(v.slot_info(i), q.slot_info(i));
        }
        assert_eq!(v.slot_info(8), None);
    }

    #[test]
    fn dead_letters_up_to_a_limit_or_by_id_are_those_of_the_full_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let q = Queue::create(&path, &Config::default().slots(16).slot_size(64)).unwrap();
        // Ids 0..16 in slots 0..16; then 0..8 acked and 16..24 sent into
        // their slots, so the lowest slots hold the highest ids.
        for n in 0..16 {
            q.send(&format!("m{n}")).unwrap();
        }
        for _ in 0..8 {
            q.try_receive().unwrap().ack().unwrap();
        }
        for n in 16..24 {
            q.send(&format!("m{n}")).unwrap();
        }
        while let Some(l) = q.try_receive() {
            l.dead_letter().unwrap();
        }
        let v = QueueView::open(&path).unwrap();
        let key = |d: &DeadLetter| (d.id, d.receipt, d.reason, d.payload.clone());
        let all: Vec<_> = v.dead_letters().iter().map(key).collect();
        assert_eq!(
            all.iter().map(|d| d.0).collect::<Vec<_>>(),
            (8..24).collect::<Vec<u64>>()
        );
        assert!(all[8].1.slot < all[0].1.slot, "ids out of slot order");
        for n in 0..=20 {
            let some: Vec<_> = v.dead_letters_up_to(n).iter().map(key).collect();
            assert_eq!(some, all[..n.min(all.len())], "limit {n}");
        }
        for d in &all {
            let found = v.find_dead_letter(d.0).expect("a dead letter by id");
            assert_eq!(key(&found), *d);
            assert_eq!(found.payload, format!("m{}", d.0).into_bytes());
        }
        assert!(v.find_dead_letter(3).is_none(), "acked, not dead");
        assert!(v.find_dead_letter(99).is_none());
        q.purge(20).unwrap();
        assert!(v.find_dead_letter(20).is_none(), "purged");
        assert_eq!(v.dead_letters_up_to(100).len(), 15);
    }

    #[test]
    fn a_view_reads_consistent_snapshots_while_a_writer_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let q = Queue::create(&path, &Config::default().slots(16).slot_size(64)).unwrap();
        let v = QueueView::open(&path).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (q, stop) = (q.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 2000 {
                    // Every payload is one byte repeated: a torn read shows.
                    let b = (n % 251) as u8;
                    let _ = q.send(&vec![b; 8 + (n % 50) as usize]);
                    if n % 3 == 0 {
                        if let Some(l) = q.try_receive() {
                            if n % 2 == 0 {
                                l.ack().unwrap();
                            } else {
                                l.dead_letter().unwrap();
                            }
                        }
                    }
                    if n % 7 == 0 {
                        let _ = q.purge_all(4);
                    }
                    n += 1;
                }
            })
        };
        for _ in 0..300 {
            let st = v.stats();
            let sum = st.free
                + st.visible
                + st.in_flight
                + st.delayed
                + st.dead
                + st.writing
                + st.abandoned
                + st.other;
            assert_eq!(sum, 16, "{st:?}");
            for m in v.peek(16) {
                assert!(m.payload.iter().all(|&b| b == m.payload[0]), "{m:?}");
            }
            for d in v.dead_letters() {
                assert!(d.payload.iter().all(|&b| b == d.payload[0]), "{d:?}");
            }
            for d in v.dead_letters_up_to(2) {
                assert!(d.payload.iter().all(|&b| b == d.payload[0]), "{d:?}");
                if let Some(same) = v.find_dead_letter(d.id) {
                    assert!(same.payload.iter().all(|&b| b == same.payload[0]));
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
    }

    #[test]
    fn a_read_only_file_can_be_watched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let q = Queue::create(&path, &Config::default().slots(4).slot_size(64)).unwrap();
        q.send("x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let v = QueueView::open(&path).unwrap();
        assert_eq!(v.stats().visible, 1);
        assert_eq!(v.config().mode, 0o444);
        // The view's mapping is read-only: the kernel says so.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let name = path.canonicalize().unwrap();
        let perms: Vec<&str> = maps
            .lines()
            .filter(|l| l.ends_with(name.to_str().unwrap()))
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert!(perms.contains(&"r--s"), "{perms:?}");
    }

    #[test]
    fn other_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            QueueView::open(&empty),
            Err(Error::NotInitialised { .. })
        ));
        assert!(!is_queue_file(&empty).unwrap());
        let text = dir.path().join("text");
        std::fs::write(&text, b"hello").unwrap();
        assert!(matches!(
            QueueView::open(&text),
            Err(Error::NotAQueue { .. })
        ));
        assert!(matches!(
            QueueView::open(dir.path().join("none")),
            Err(Error::NotFound { .. })
        ));
        let q = dir.path().join("q");
        Queue::create(&q, &Config::default().slots(1).slot_size(8)).unwrap();
        assert!(is_queue_file(&q).unwrap());
    }
}

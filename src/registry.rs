//! The registration table: names for process incarnations that a reused pid,
//! a forked child or a wrapper process cannot impersonate (docs/registry.md).
//!
//! # Algorithm
//!
//! The queue file's header holds a table of [`ENTRIES`] entries of four
//! words. A process *registers* by CASing a free entry (pid 0) to its pid and
//! the next entry generation, then storing its start time, pid namespace and
//! boot, each word tagged with that generation. Its *holder* is the entry
//! index and the low 18 bits of the generation; leases and claims record the
//! holder instead of a pid. Anyone who holds a holder can ask for a
//! [`verdict`]: if the entry no longer names that generation, the
//! registration is gone and the holder is dead, with no system call;
//! otherwise the process named by the entry is probed (`kill(pid, 0)` and
//! its start time from `/proc`) and, when it is gone, the entry is freed by a
//! CAS from exactly the word that was read, so every later verdict on that
//! holder is answered from the table alone. A process-local [`VerdictCache`]
//! keeps probes to one per entry per [`CACHE_MS`].
//!
//! The generation moves on every claim and every free, so a freed and reused
//! entry never names an old holder (until 2^17 reuses of one entry wrap its
//! low 18 bits; a wrapped holder is judged by the new owner's liveness, which
//! errs towards "alive": see docs/registry.md).
//!
//! Every operation is a bounded number of loads and CASes on words any
//! process may have written anything into: no word value makes an operation
//! panic, loop without bound or touch memory outside the table.
//!
//! The OS-facing parts ([`Identity::current`], [`os_probe`], the fork epoch
//! and [`Registration`]) are compiled out under loom; the models drive the
//! table with made-up identities and a fake probe.

use crate::sync::{AtomicU64, Ordering::*};

/// Entries in the table. A holder's index has 10 bits.
pub const ENTRIES: usize = 1024;
/// Words per entry.
pub const ENTRY_WORDS: usize = 4;
/// Words of a full table (32 KiB).
pub const TABLE_WORDS: usize = ENTRIES * ENTRY_WORDS;
/// How long a probed verdict is reused before the process is probed again.
pub const CACHE_MS: u64 = 50;

/// The holder's generation bits (the low 18 bits of the entry generation).
const GEN18: u32 = 0x3_ffff;
/// Bits of a holder: 18 of generation above 10 of index.
const HOLDER_BITS: u32 = 28;
const INDEX_BITS: u32 = 10;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// The tag of w1 (low 24 bits of the claim generation).
const TAG24: u64 = 0xff_ffff;
/// The start time field of w1 (40 bits of clock ticks since boot).
pub const START_MASK: u64 = (1 << 40) - 1;
/// How many times an operation re-reads an entry whose words moved under it
/// before it gives up (the words are untrusted: a writer could change them
/// forever).
const RETRIES: usize = 4;
/// How many processes one registration may probe while it looks for an entry
/// whose owner is dead in a full table (each probe is a few system calls).
const PROBE_BUDGET: u32 = 64;

/// What is known about the process a holder names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The process lives (or lived at most [`CACHE_MS`] ago).
    Alive,
    /// The registration is gone or its process is gone. Final: a holder
    /// found dead never lives again.
    Dead,
    /// Nothing can be said (an anonymous holder, a registration in progress,
    /// another pid namespace, an unreadable `/proc`). Callers treat it as
    /// alive: leases wait for their deadline, claims are not reused.
    Unknown,
}

impl Verdict {
    fn code(self) -> u64 {
        match self {
            Verdict::Alive => 1,
            Verdict::Dead => 2,
            Verdict::Unknown => 3,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(Verdict::Alive),
            2 => Some(Verdict::Dead),
            3 => Some(Verdict::Unknown),
            _ => None,
        }
    }
}

/// A process incarnation, as it registers itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The process id (`getpid`), in the process's own pid namespace.
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`),
    /// truncated to 40 bits; 0 if unknown.
    pub start: u64,
    /// The pid namespace's inode number (low 32 bits, never 0 when known);
    /// 0 if unknown.
    pub ns: u32,
    /// A 32-bit tag of the boot id ([`boot_tag`]); 0 if unknown.
    pub boot: u32,
}

/// A fresh table of `entries` free entries on the heap (unit tests, loom
/// models). The queue's table lives in its file.
pub fn new_table(entries: usize) -> Box<[AtomicU64]> {
    (0..entries * ENTRY_WORDS)
        .map(|_| AtomicU64::new(0))
        .collect()
}

/// A 32-bit tag of a boot id (as [`crate::clock::boot_id`] gives it): 0 only
/// for the unknown id `[0, 0]`.
pub fn boot_tag(id: [u64; 2]) -> u32 {
    if id == [0, 0] {
        return 0;
    }
    let x = id[0] ^ id[1].rotate_left(17);
    let t = (x ^ (x >> 32)) as u32;
    if t == 0 {
        1
    } else {
        t
    }
}

// ---------------------------------------------------------------------------
// Words
//
// w0 = gen:32 << 32 | pid:32        pid 0: free. gen moves on every claim and
//                                   every free.
// w1 = start:40 << 24 | tag:24      tag: low 24 bits of the claim's gen
// w2 = ns:32 << 32 | tag:32         tag: the claim's gen
// w3 = boot:32 << 32 | tag:32       tag: the claim's gen
//
// w1..w3 belong to the registration w0 names only while their tags equal its
// gen; a reader that finds them otherwise is looking at a registration in
// progress (or at a writer's garbage) and judges nothing.
// ---------------------------------------------------------------------------

fn pack_w0(gen: u32, pid: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(pid)
}

fn gen_of(w0: u64) -> u32 {
    (w0 >> 32) as u32
}

fn pid_of(w0: u64) -> u32 {
    w0 as u32
}

fn holder_of(index: usize, gen: u32) -> u32 {
    ((gen & GEN18) << INDEX_BITS) | (index as u32 & INDEX_MASK)
}

/// Entries a slice of words holds: whole entries, at most [`ENTRIES`].
fn entries(words: &[AtomicU64]) -> usize {
    (words.len() / ENTRY_WORDS).min(ENTRIES)
}

/// Entry `i`'s four words; `i < entries(words)`.
fn entry(words: &[AtomicU64], i: usize) -> &[AtomicU64] {
    &words[i * ENTRY_WORDS..(i + 1) * ENTRY_WORDS]
}

/// The entry index a holder names, if it names one of this table's entries.
/// Holder 0 (anonymous) and values with bits above the 28 a holder uses name
/// none.
fn index_of(holder: u32, n: usize) -> Option<usize> {
    if holder == 0 || holder >> HOLDER_BITS != 0 {
        return None;
    }
    let i = (holder & INDEX_MASK) as usize;
    (i < n).then_some(i)
}

/// Whether `w0` is the registration `holder` names (its index already
/// checked): taken, with the holder's generation bits.
fn names(w0: u64, holder: u32) -> bool {
    pid_of(w0) != 0 && gen_of(w0) & GEN18 == holder >> INDEX_BITS
}

/// Where a pid starts looking for a free entry: spread over the table so
/// that registering processes do not all contend for entry 0.
fn home(pid: u32, n: usize) -> usize {
    ((u64::from(pid.wrapping_mul(0x9e37_79b1)) * n as u64) >> 32) as usize
}

/// A whole registration, read consistently.
#[derive(Clone, Copy, Debug)]
struct Entry {
    w0: u64,
    start: u64,
    ns: u32,
    boot: u32,
}

enum Read {
    /// w0 changed while w1..w3 were read: here is its new value.
    Moved(u64),
    /// w1..w3 do not carry w0's generation: the claimer has not finished
    /// storing them (or a writer scribbled on them).
    InProgress,
    Whole(Entry),
}

/// Read w1..w3 of the registration `w0` (just loaded from `e[0]`), then `w0`
/// again (a seqlock read: the tags say the words belong to the generation,
/// the second load says the generation did not move meanwhile).
fn read_entry(e: &[AtomicU64], w0: u64) -> Read {
    // SYNC POINT: Acquire pairs with the claimer's Release stores of w1..w3
    // (`claim`); the Acquire loads also keep the second load of w0 after them.
    let w1 = e[1].load(Acquire);
    let w2 = e[2].load(Acquire);
    let w3 = e[3].load(Acquire);
    let again = e[0].load(Acquire);
    if again != w0 {
        return Read::Moved(again);
    }
    let g = gen_of(w0);
    let tags_match = w1 & TAG24 == u64::from(g) & TAG24 && w2 as u32 == g && w3 as u32 == g;
    // Mutant (loom-tests/tests/registry.rs): trust w1..w3 whatever their tags.
    #[cfg(shmq_mutation = "no_tag_check")]
    let tags_match = tags_match || true;
    if !tags_match {
        return Read::InProgress;
    }
    Read::Whole(Entry {
        w0,
        start: w1 >> 24,
        ns: (w2 >> 32) as u32,
        boot: (w3 >> 32) as u32,
    })
}

/// What the table alone says about a whole registration, as seen by `me`:
/// `Some(Dead)` for a registration of another boot, `Some(Unknown)` when the
/// pid cannot be probed from here (another or an unknown pid namespace), and
/// `None` when the probe must decide.
fn by_table(en: &Entry, me: &Identity) -> Option<Verdict> {
    if en.boot != 0 && me.boot != 0 && en.boot != me.boot {
        return Some(Verdict::Dead);
    }
    if en.ns == 0 || me.ns == 0 || en.ns != me.ns {
        // kill(2) and /proc would answer about another process.
        return Some(Verdict::Unknown);
    }
    None
}

/// Free the registration `w0` (taken): CAS it to the next generation with
/// pid 0, from exactly the value read, so a registration that reused the
/// entry meanwhile is never freed. Returns the new word, or the word found.
fn free(e: &[AtomicU64], w0: u64) -> Result<u64, u64> {
    let freed = pack_w0(gen_of(w0).wrapping_add(1), 0);
    // SYNC POINT: Release pairs with the Acquire of the next claim's CAS and
    // of readers' w0 loads; Acquire on failure pairs with whoever moved w0.
    #[cfg(not(shmq_mutation = "free_store"))]
    return e[0]
        .compare_exchange(w0, freed, AcqRel, Acquire)
        .map(|_| freed);
    // Mutant (loom-tests/tests/registry.rs): free with a plain store.
    #[cfg(shmq_mutation = "free_store")]
    {
        e[0].store(freed, Release);
        Ok(freed)
    }
}

/// Claim entry `i`, free in `w0` (just read), for `me`: CAS w0 to the next
/// generation and `me.pid`, then store w1..w3 tagged with that generation.
/// Returns the holder, or the word found if the CAS lost.
fn claim(e: &[AtomicU64], i: usize, w0: u64, me: &Identity) -> Result<u32, u64> {
    let mut g1 = gen_of(w0).wrapping_add(1);
    if holder_of(i, g1) == 0 {
        // Holder 0 means anonymous: skip the generation that would give it.
        g1 = g1.wrapping_add(1);
    }
    let taken = pack_w0(g1, me.pid);
    // SYNC POINT: Acquire pairs with the Release of the free (or of the
    // claim and free before it); Release with readers' Acquire loads of w0.
    #[cfg(not(shmq_mutation = "claim_check_then_store"))]
    e[0].compare_exchange(w0, taken, AcqRel, Acquire)?;
    // Mutant (loom-tests/tests/registry.rs): claim by load, compare, store.
    #[cfg(shmq_mutation = "claim_check_then_store")]
    {
        let now = e[0].load(Acquire);
        if now != w0 {
            return Err(now);
        }
        e[0].store(taken, Release);
    }
    let g = u64::from(g1);
    // SYNC POINT: Release pairs with the Acquire loads of `read_entry`.
    e[1].store(((me.start & START_MASK) << 24) | (g & TAG24), Release);
    e[2].store((u64::from(me.ns) << 32) | g, Release);
    e[3].store((u64::from(me.boot) << 32) | g, Release);
    Ok(holder_of(i, g1))
}

/// Register `me` in the table: claim a free entry (starting at a hash of the
/// pid), or, when none is free, free one whose process is proven dead (of
/// another boot, or dead by `probe`, at most 64 probes) and claim it.
/// Returns the holder, never 0; or 0 (anonymous: never judged dead) when the
/// table is full of live or undecidable registrations, the table has no
/// entry, `me.pid` is 0, or `me.ns` is unknown (no other process could ever
/// prove such a registration dead, so it would only leak its entry).
///
/// `probe(pid, start)` says whether the process `pid` that started at
/// `start` lives: [`os_probe`] in the queue, a fake in tests.
pub fn register<P>(words: &[AtomicU64], me: &Identity, probe: P) -> u32
where
    P: Fn(u32, u64) -> Verdict,
{
    let n = entries(words);
    if n == 0 || me.pid == 0 || me.ns == 0 {
        return 0;
    }
    let first = home(me.pid, n);
    let mut budget = PROBE_BUDGET;
    // First pass: free entries only (loads, no system call). Second pass:
    // also free the registrations proven dead.
    for judge in [false, true] {
        for k in 0..n {
            let i = (first + k) % n;
            if let Some(h) = try_entry(words, i, me, judge.then_some((&probe, &mut budget))) {
                return h;
            }
        }
    }
    0
}

/// One entry of [`register`]'s scan: claim it if free; with `judge`, free it
/// first if its registration is proven dead.
fn try_entry<P>(
    words: &[AtomicU64],
    i: usize,
    me: &Identity,
    mut judge: Option<(&P, &mut u32)>,
) -> Option<u32>
where
    P: Fn(u32, u64) -> Verdict,
{
    let e = entry(words, i);
    let mut w0 = e[0].load(Acquire);
    for _ in 0..RETRIES {
        if pid_of(w0) == 0 {
            match claim(e, i, w0, me) {
                Ok(h) => return Some(h),
                Err(now) => {
                    w0 = now;
                    continue;
                }
            }
        }
        let (probe, budget) = judge.as_mut()?;
        let en = match read_entry(e, w0) {
            Read::Moved(now) => {
                w0 = now;
                continue;
            }
            // Someone is registering here right now: not ours to judge.
            Read::InProgress => return None,
            Read::Whole(en) => en,
        };
        let v = match by_table(&en, me) {
            Some(v) => v,
            None if **budget > 0 => {
                **budget -= 1;
                probe(pid_of(w0), en.start)
            }
            None => return None,
        };
        if v != Verdict::Dead {
            return None;
        }
        w0 = match free(e, w0) {
            Ok(freed) | Err(freed) => freed,
        };
    }
    None
}

/// Free the registration `holder` names, if the entry still names it (the
/// process leaves; its holders are dead from now on). Returns whether this
/// call freed it.
pub fn unregister(words: &[AtomicU64], holder: u32) -> bool {
    let Some(i) = index_of(holder, entries(words)) else {
        return false;
    };
    let e = entry(words, i);
    let mut w0 = e[0].load(Acquire);
    for _ in 0..RETRIES {
        if !names(w0, holder) {
            return false;
        }
        match free(e, w0) {
            Ok(_) => return true,
            Err(now) => w0 = now,
        }
    }
    false
}

/// Whether the process `holder` names lives, as seen by `me` (only
/// `me.ns` and `me.boot` are used) at `now_ms`.
///
/// - Holder 0 (anonymous), or a value that names no entry: `Unknown`.
/// - The entry is free or names another generation: `Dead` (the
///   registration is gone), from one load.
/// - A verdict for this very registration cached less than [`CACHE_MS`] ago
///   (or a `Dead` one, whatever its age): that verdict.
/// - The entry's words are not all tagged with its generation (the owner is
///   registering): `Unknown`.
/// - Registered on another boot: `Dead`. In another or an unknown pid
///   namespace: `Unknown`.
/// - Otherwise `probe(pid, start)`, cached.
///
/// A `Dead` verdict on a taken entry frees it (a CAS from exactly the word
/// read), so every process sees the holder dead from then on without a
/// system call.
pub fn verdict<P>(
    words: &[AtomicU64],
    holder: u32,
    me: &Identity,
    probe: P,
    now_ms: u64,
    cache: &VerdictCache,
) -> Verdict
where
    P: Fn(u32, u64) -> Verdict,
{
    verdict_with(words, holder, me, probe, now_ms, cache, true)
}

/// [`verdict`] without freeing anything: for a read-only mapping (the
/// tool's inspecting verbs), where a CAS would fault.
pub fn verdict_read_only<P>(
    words: &[AtomicU64],
    holder: u32,
    me: &Identity,
    probe: P,
    now_ms: u64,
    cache: &VerdictCache,
) -> Verdict
where
    P: Fn(u32, u64) -> Verdict,
{
    verdict_with(words, holder, me, probe, now_ms, cache, false)
}

/// The pid of the process holder `holder` names, while its registration
/// stands (`None` once it was freed, or for 0).
pub fn holder_pid(words: &[AtomicU64], holder: u32) -> Option<u32> {
    let i = index_of(holder, entries(words))?;
    let w0 = entry(words, i)[0].load(Acquire);
    names(w0, holder).then(|| pid_of(w0))
}

fn verdict_with<P>(
    words: &[AtomicU64],
    holder: u32,
    me: &Identity,
    probe: P,
    now_ms: u64,
    cache: &VerdictCache,
    free_dead: bool,
) -> Verdict
where
    P: Fn(u32, u64) -> Verdict,
{
    let Some(i) = index_of(holder, entries(words)) else {
        return Verdict::Unknown;
    };
    let e = entry(words, i);
    // SYNC POINT: Acquire pairs with the Release of the claim and the free.
    let mut w0 = e[0].load(Acquire);
    for _ in 0..RETRIES {
        if !names(w0, holder) {
            return Verdict::Dead;
        }
        let gen = gen_of(w0);
        if let Some(v) = cache.get(i, gen, now_ms) {
            if v == Verdict::Dead && free_dead {
                // Freed already, unless a writer restored the word.
                let _ = free(e, w0);
            }
            return v;
        }
        let en = match read_entry(e, w0) {
            Read::Moved(now) => {
                w0 = now;
                continue;
            }
            Read::InProgress => return Verdict::Unknown,
            Read::Whole(en) => en,
        };
        let v = match by_table(&en, me) {
            Some(v) => v,
            None => {
                let v = probe(pid_of(w0), en.start);
                cache.put(i, gen, v, now_ms);
                v
            }
        };
        if v == Verdict::Dead && free_dead {
            let _ = free(e, en.w0);
        }
        return v;
    }
    Verdict::Unknown
}

/// Free every registration of another boot than `boot` (a reboot: all of
/// them are dead). Each entry is freed by a CAS from the word read, and only
/// when its words say it was registered on another known boot, so a
/// registration of this boot, finished or in progress, is never freed,
/// however this races with it. Returns how many entries this call freed.
///
/// [`verdict`] and [`register`] already treat such entries as dead; this
/// frees them in one pass so that registrations find free entries at once.
pub fn reset_all(words: &[AtomicU64], boot: u32) -> usize {
    let mut freed = 0;
    if boot == 0 {
        return 0;
    }
    for i in 0..entries(words) {
        let e = entry(words, i);
        let w0 = e[0].load(Acquire);
        if pid_of(w0) == 0 {
            continue;
        }
        // Mutant (loom-tests/tests/registry.rs): free every taken entry, as
        // a reset that cannot tell this boot's registrations from others.
        #[cfg(shmq_mutation = "reset_any_boot")]
        let other_boot = true;
        #[cfg(not(shmq_mutation = "reset_any_boot"))]
        let other_boot =
            matches!(read_entry(e, w0), Read::Whole(en) if en.boot != 0 && en.boot != boot);
        if other_boot && free(e, w0).is_ok() {
            freed += 1;
        }
    }
    freed
}

/// A process-local cache of probed verdicts, one word per entry (never in the
/// file). Shared by the threads of a process; every access is Relaxed: a
/// lost or stale update only costs one more probe or reuses a verdict a
/// little older.
pub struct VerdictCache {
    /// Per entry: `gen:32 << 32 | verdict:2 << 30 | checked_at_ms:30`. `gen`
    /// is the entry's full generation (32 bits, not the holder's 18, so a
    /// `Dead` kept as final can never be taken for a later registration
    /// whose low 18 bits wrapped to the same value); `verdict` is 0 (none),
    /// 1 alive, 2 dead, 3 unknown; `checked_at_ms` is the low 30 bits of the
    /// caller's clock (the age is computed modulo 2^30 ms, 12 days: a word
    /// untouched for a multiple of that looks fresh, which only reuses an
    /// old `Alive` or `Unknown` once).
    words: Box<[AtomicU64]>,
}

const AT_MASK: u64 = (1 << 30) - 1;

impl VerdictCache {
    /// A cache for a table of `entries` entries (at most [`ENTRIES`]).
    pub fn new(entries: usize) -> Self {
        VerdictCache {
            words: (0..entries.min(ENTRIES))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn get(&self, i: usize, gen: u32, now_ms: u64) -> Option<Verdict> {
        let w = self.words.get(i)?.load(Relaxed);
        if (w >> 32) as u32 != gen {
            return None;
        }
        let v = Verdict::from_code((w >> 30) & 3)?;
        let age = now_ms.wrapping_sub(w) & AT_MASK;
        (v == Verdict::Dead || age < CACHE_MS).then_some(v)
    }

    fn put(&self, i: usize, gen: u32, v: Verdict, now_ms: u64) {
        let Some(word) = self.words.get(i) else {
            return;
        };
        let old = word.load(Relaxed);
        if (old >> 32) as u32 == gen && (old >> 30) & 3 == Verdict::Dead.code() {
            return; // Dead is final for this registration.
        }
        let new = (u64::from(gen) << 32) | (v.code() << 30) | (now_ms & AT_MASK);
        let _ = word.compare_exchange(old, new, Relaxed, Relaxed);
    }
}

// ---------------------------------------------------------------------------
// The OS: who this process is, whether another one lives, and forks.
// ---------------------------------------------------------------------------

#[cfg(not(loom))]
pub use os::{fork_epoch, os_probe, Registration};

#[cfg(not(loom))]
mod os {
    //! Process-global state lives in std atomics, not `crate::sync`: it is
    //! not in the file, loom does not model it (and cannot hold statics),
    //! and it is compiled out under loom.

    use super::{boot_tag, register, unregister, Identity, Verdict, START_MASK};
    use crate::sync::AtomicU64;
    use std::sync::atomic::{AtomicU64 as ProcessU64, Ordering::*};
    use std::sync::Once;

    /// How many forks separate this process from the first process of its
    /// line that loaded shmq: a `pthread_atfork` child handler adds one in
    /// every child. Constant in any one process (only a child's handler,
    /// before the child runs anything else, moves it), so a value cached
    /// with the epoch is this process's own while the epochs match.
    static FORK_EPOCH: ProcessU64 = ProcessU64::new(1);
    static ATFORK: Once = Once::new();
    /// 1 once the handler is installed, 2 if `pthread_atfork` failed.
    static ATFORK_STATE: ProcessU64 = ProcessU64::new(0);

    unsafe extern "C" fn forked_child() {
        // Async-signal-safe: one atomic add.
        FORK_EPOCH.fetch_add(1, Relaxed);
    }

    /// This process's fork epoch (see [`Registration`]), after installing
    /// the handler that moves it in forked children (once per process).
    pub fn fork_epoch() -> u64 {
        ATFORK.call_once(|| {
            // SAFETY: the handler is a plain `extern "C" fn()` that only adds
            // to a static atomic, which is valid in a forked child.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
            ATFORK_STATE.store(if rc == 0 { 1 } else { 2 }, Relaxed);
        });
        FORK_EPOCH.load(Relaxed)
    }

    fn atfork_ok() -> bool {
        fork_epoch();
        ATFORK_STATE.load(Relaxed) == 1
    }

    /// [`Identity::current`]'s cache: the epoch it was computed in (0: none),
    /// stored last, then the identity's words.
    static ID_EPOCH: ProcessU64 = ProcessU64::new(0);
    static ID_PID_NS: ProcessU64 = ProcessU64::new(0);
    static ID_START: ProcessU64 = ProcessU64::new(0);
    static ID_BOOT: ProcessU64 = ProcessU64::new(0);

    impl Identity {
        /// This process: its pid, its start time (0 if `/proc` is missing
        /// or shows another pid namespace than the process's own), its pid
        /// namespace's inode (0 if unknown) and its boot. Computed once per
        /// process, and again in a forked child.
        pub fn current() -> Identity {
            let epoch = fork_epoch();
            // SYNC POINT: Acquire pairs with the Release store of ID_EPOCH
            // below: the words stored before it are visible.
            if ID_EPOCH.load(Acquire) == epoch {
                let pn = ID_PID_NS.load(Relaxed);
                return Identity {
                    pid: pn as u32,
                    start: ID_START.load(Relaxed),
                    ns: (pn >> 32) as u32,
                    boot: ID_BOOT.load(Relaxed) as u32,
                };
            }
            let me = Identity::read();
            // Racing computations in one process store the same values.
            ID_PID_NS.store((u64::from(me.ns) << 32) | u64::from(me.pid), Relaxed);
            ID_START.store(me.start, Relaxed);
            ID_BOOT.store(u64::from(me.boot), Relaxed);
            // SYNC POINT: Release pairs with the Acquire load above.
            ID_EPOCH.store(epoch, Release);
            me
        }

        fn read() -> Identity {
            let pid = std::process::id();
            let start = std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| parse_stat(&s))
                // /proc/self of a /proc mounted for another pid namespace
                // names this process by another pid: its numbers are not
                // ours to compare.
                .filter(|st| st.pid == pid)
                .map_or(0, |st| st.start & START_MASK);
            Identity {
                pid,
                start,
                ns: ns_inode("/proc/self/ns/pid"),
                boot: boot_tag(crate::clock::boot_id()),
            }
        }
    }

    /// The low 32 bits of the inode of a namespace link (never 0), or 0.
    fn ns_inode(path: &str) -> u32 {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(path) {
            Ok(m) => {
                let ino = m.ino();
                let low = ino as u32;
                if low != 0 {
                    low
                } else {
                    (ino >> 32) as u32 | 1
                }
            }
            Err(_) => 0,
        }
    }

    /// The fields of `/proc/PID/stat` the registry uses.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Stat {
        pub(super) pid: u32,
        pub(super) start: u64,
    }

    /// Parse `/proc/PID/stat`: `pid (comm) state ppid ... starttime ...`.
    /// `comm` can hold spaces and parentheses, so the fields after it start
    /// after the *last* `)`; starttime is field 22, the 20th after `comm`.
    pub(super) fn parse_stat(text: &str) -> Option<Stat> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        if close < open {
            return None;
        }
        let pid = text[..open].trim().parse().ok()?;
        let start = text[close + 1..]
            .split_ascii_whitespace()
            .nth(19)?
            .parse()
            .ok()?;
        Some(Stat { pid, start })
    }

    /// The real probe: whether the process `pid` that started at `start`
    /// (clock ticks since boot, 40 bits; 0 unknown) lives, as this process
    /// can tell.
    ///
    /// - `kill(pid, 0)` fails with ESRCH: `Dead` (no such pid in this pid
    ///   namespace; callers ask only about registrations of their own).
    ///   Success or EPERM: a process with that pid exists.
    /// - Its start time (`/proc/PID/stat`) differs from `start`: `Dead` (the
    ///   pid was reused). Gone from `/proc` meanwhile: `Dead`.
    /// - The same: `Alive`. A zombie counts as alive until it is reaped (a
    ///   process whose main thread exited shows as one too).
    /// - `start` unknown, this process's `/proc` unusable ([`Identity::current`]
    ///   found no start time) or unreadable: `Unknown`.
    pub fn os_probe(pid: u32, start: u64) -> Verdict {
        if pid == 0 || pid > i32::MAX as u32 {
            // kill(0) and kill(-n) address process groups.
            return Verdict::Unknown;
        }
        // SAFETY: signal 0 performs only the existence and permission
        // checks, no signal is delivered; the pid is a positive i32.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        if rc != 0 {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ESRCH) => Verdict::Dead,
                Some(libc::EPERM) => probe_start(pid, start),
                _ => Verdict::Unknown,
            };
        }
        probe_start(pid, start)
    }

    fn probe_start(pid: u32, start: u64) -> Verdict {
        if start == 0 || Identity::current().start == 0 {
            return Verdict::Unknown;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(text) => match parse_stat(&text) {
                Some(st) if st.pid == pid => {
                    if st.start & START_MASK == start & START_MASK {
                        Verdict::Alive
                    } else {
                        Verdict::Dead
                    }
                }
                _ => Verdict::Unknown,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Verdict::Dead,
            Err(_) => Verdict::Unknown,
        }
    }

    /// A process's registration in one table, kept across calls: what a
    /// queue handle holds. [`holder`](Registration::holder) registers on
    /// first use and again in a forked child (whose fork epoch differs from
    /// the cached one), so a child never acts under its parent's holder.
    ///
    /// Forks are seen through `pthread_atfork`, so through libc's `fork`:
    /// a child made by a raw `clone(2)` system call is not noticed.
    pub struct Registration {
        /// `epoch:32 << 32 | holder:32`: the holder registered in the fork
        /// epoch `epoch`. 0 (epoch 0, which no process has): none yet.
        cached: ProcessU64,
    }

    impl Default for Registration {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Registration {
        /// No registration yet. Installs the fork handler (once per process).
        pub fn new() -> Self {
            fork_epoch();
            Registration {
                cached: ProcessU64::new(0),
            }
        }

        /// This process's holder in the table `words`: the cached one (one
        /// Relaxed load of the fork epoch and one Acquire load of the cache,
        /// no system call, no RMW), or, on first use and in a forked child, a
        /// new registration of `me()` (usually [`Identity::current`]) with
        /// `probe` (usually [`os_probe`]). 0 (anonymous) if the table is full
        /// or forks cannot be tracked; an anonymous result is kept too.
        #[inline]
        pub fn holder<I, P>(&self, words: &[AtomicU64], me: I, probe: P) -> u32
        where
            I: FnOnce() -> Identity,
            P: Fn(u32, u64) -> Verdict,
        {
            let epoch = FORK_EPOCH.load(Relaxed) & 0xffff_ffff;
            // SYNC POINT: Acquire pairs with the Release of the CAS in
            // `register_now`: a thread that uses a holder another thread
            // registered has seen the registration's words, so whatever it
            // publishes the holder with (a Release CAS of a slot) carries
            // them too.
            let c = self.cached.load(Acquire);
            if c >> 32 == epoch {
                return c as u32;
            }
            self.register_now(words, epoch, c, me, probe)
        }

        #[cold]
        fn register_now<I, P>(
            &self,
            words: &[AtomicU64],
            epoch: u64,
            mut c: u64,
            me: I,
            probe: P,
        ) -> u32
        where
            I: FnOnce() -> Identity,
            P: Fn(u32, u64) -> Verdict,
        {
            let h = if atfork_ok() {
                register(words, &me(), probe)
            } else {
                0
            };
            let new = (epoch << 32) | u64::from(h);
            // Bounded: only `release` (storing 0) makes the CAS fail without
            // a current-epoch value to adopt.
            for _ in 0..16 {
                // SYNC POINT: Release pairs with the Acquire load in
                // `holder`; Acquire (on failure) with another thread's store.
                match self.cached.compare_exchange(c, new, AcqRel, Acquire) {
                    Ok(_) => return h,
                    Err(now) if now >> 32 == epoch => {
                        // Another thread of this process registered first:
                        // use its holder and give ours back.
                        if h != 0 {
                            unregister(words, h);
                        }
                        return now as u32;
                    }
                    // A value of an older epoch (inherited from the
                    // parent), or 0 from a racing `release`.
                    Err(now) => c = now,
                }
            }
            // Still racing `release`: give the entry back, act anonymously.
            if h != 0 {
                unregister(words, h);
            }
            0
        }

        /// Give the registration back (the handle closes). Only a
        /// registration made in this very process is freed: a forked child
        /// dropping an inherited handle leaves its parent's alone. Returns
        /// whether an entry was freed.
        pub fn release(&self, words: &[AtomicU64]) -> bool {
            let epoch = FORK_EPOCH.load(Relaxed) & 0xffff_ffff;
            // SYNC POINT: AcqRel pairs with `register_now`'s CAS.
            let c = self.cached.swap(0, AcqRel);
            c >> 32 == epoch && c as u32 != 0 && unregister(words, c as u32)
        }
    }
}

#[cfg(all(test, not(loom)))]
#[path = "registry_tests.rs"]
mod tests;

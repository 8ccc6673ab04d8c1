//! `Queue`: create and open queue files, and the public operations on them.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};

use crate::failpoint::failpoint;
use std::path::{Path, PathBuf};
// Process memory, not the mapping: plain std atomics, outside the loom facade.
use std::sync::atomic::{
    AtomicBool, AtomicU32 as AtomicU32Local, AtomicU64 as AtomicU64Local, Ordering as LocalOrdering,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use memmap2::{MmapOptions, MmapRaw};

use crate::clock::{boot_id, millis, now_ms, pid_alive, unix_ms};
use crate::error::{Error, Result, SendError};
use crate::layout::*;
use crate::lease::Lease;
use crate::ring::{DeadReason, Delivery, Nacked, Params, Receipt, Ring, SlotInfo, SWEEP_STEP};
use crate::slot::St;
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering::*};
use crate::wait::{futex_wait, futex_wake_all};

mod dlq;
pub use dlq::DeadLetterEnvelope;
pub(crate) mod durable;
pub(crate) use dlq::{
    read_name as read_dead_letter_queue_name, resolve as resolve_dead_letter_queue,
};

/// How a queue is made. Read back from the file by [`Queue::open`].
///
/// Built from [`Config::default`] with named setters:
///
/// ```
/// use shmq::Config;
/// use std::time::Duration;
/// let cfg = Config::default()
///     .slots(4096)
///     .slot_size(512)
///     .visibility_timeout(Duration::from_secs(60))
///     .max_receives(3);
/// assert_eq!(cfg.slots, 4096);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Number of message slots (capacity), 1 ..= 16 777 216.
    pub slots: u32,
    /// Largest payload in bytes, 8 ..= 16 MiB.
    pub slot_size: u32,
    /// How long a received message stays leased before it is redelivered.
    pub visibility_timeout: Duration,
    /// Deliveries without an ack after which a message is dead-lettered.
    pub max_receives: u32,
    /// Unix permission bits of the file.
    pub mode: u32,
    /// Store a CRC-32 of each payload and check it on receive.
    pub checksums: bool,
    /// How long a sender may take between claiming a slot and publishing
    /// before its claim is abandoned (the bound on a dead sender's hole).
    pub claim_timeout: Duration,
    /// Every send returns only once its message is on stable storage
    /// (docs/design.md §12). Refused on tmpfs.
    pub durable: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            slots: 1024,
            slot_size: 1024,
            visibility_timeout: Duration::from_secs(30),
            max_receives: 5,
            mode: 0o600,
            checksums: true,
            claim_timeout: Duration::from_secs(2),
            durable: false,
        }
    }
}

impl Config {
    /// Set the number of slots: how many messages the queue holds at most,
    /// 1 ..= 16 777 216 (default 1024).
    pub fn slots(mut self, n: u32) -> Config {
        self.slots = n;
        self
    }
    /// Set the largest payload in bytes, 8 ..= 16 MiB (default 1024). Every
    /// slot takes this much room in the file, rounded up to 64, plus 64.
    pub fn slot_size(mut self, bytes: u32) -> Config {
        self.slot_size = bytes;
        self
    }
    /// Set the visibility timeout, 1 ms ..= 12 h (default 30 s).
    pub fn visibility_timeout(mut self, d: Duration) -> Config {
        self.visibility_timeout = d;
        self
    }
    /// Set max receives, 1 ..= 65 535 (default 5).
    pub fn max_receives(mut self, n: u32) -> Config {
        self.max_receives = n;
        self
    }
    /// Set the file mode (default 0o600).
    pub fn mode(mut self, mode: u32) -> Config {
        self.mode = mode;
        self
    }
    /// Turn payload checksums on or off.
    pub fn checksums(mut self, on: bool) -> Config {
        self.checksums = on;
        self
    }
    /// Set the claim timeout, 1 ms ..= 12 h (default 2 s).
    pub fn claim_timeout(mut self, d: Duration) -> Config {
        self.claim_timeout = d;
        self
    }
    /// Make the queue durable (default off): every send returns only once
    /// its message is on stable storage, and concurrent senders in any
    /// process share one `fdatasync` (docs/design.md §12). The file must be
    /// on a disk file system: tmpfs (`/dev/shm`) is refused with
    /// [`Error::VolatileStorage`]. Without it, [`Queue::sync`] makes what
    /// was sent so far durable on demand.
    pub fn durable(mut self, on: bool) -> Config {
        self.durable = on;
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.slots == 0 || self.slots > MAX_SLOTS {
            return bad(format!("slots must be 1..={MAX_SLOTS}, got {}", self.slots));
        }
        if self.slot_size < MIN_SLOT_SIZE || self.slot_size > MAX_SLOT_SIZE {
            return bad(format!(
                "slot size must be {MIN_SLOT_SIZE}..={MAX_SLOT_SIZE} bytes, got {}",
                self.slot_size
            ));
        }
        if self.max_receives == 0 || self.max_receives > MAX_RECEIVES_LIMIT {
            return bad(format!(
                "max receives must be 1..={MAX_RECEIVES_LIMIT}, got {}",
                self.max_receives
            ));
        }
        for (name, d) in [
            ("visibility timeout", self.visibility_timeout),
            ("claim timeout", self.claim_timeout),
        ] {
            let ms = d.as_millis();
            if ms == 0 || ms > u128::from(MAX_TIMEOUT_MS) {
                return bad(format!("{name} must be 1 ms ..= 12 h, got {d:?}"));
            }
        }
        if self.mode > 0o7777 {
            return bad(format!("mode {:o} is not a permission mode", self.mode));
        }
        Ok(())
    }

    /// The first setting in which a queue file's configuration (`self`)
    /// differs from `wanted`, as (name, file's value, wanted value). The
    /// mode is not compared: it is the file's, and `chmod` changes it.
    fn difference(&self, wanted: &Config) -> Option<(&'static str, String, String)> {
        let pair = |name, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            Some((name, format!("{a:?}"), format!("{b:?}")))
        };
        if self.slots != wanted.slots {
            return pair("slots", &self.slots, &wanted.slots);
        }
        if self.slot_size != wanted.slot_size {
            return pair("slot_size", &self.slot_size, &wanted.slot_size);
        }
        if self.visibility_timeout != wanted.visibility_timeout {
            return pair(
                "visibility_timeout",
                &self.visibility_timeout,
                &wanted.visibility_timeout,
            );
        }
        if self.max_receives != wanted.max_receives {
            return pair("max_receives", &self.max_receives, &wanted.max_receives);
        }
        if self.checksums != wanted.checksums {
            return pair("checksums", &self.checksums, &wanted.checksums);
        }
        if self.claim_timeout != wanted.claim_timeout {
            return pair("claim_timeout", &self.claim_timeout, &wanted.claim_timeout);
        }
        if self.durable != wanted.durable {
            return pair("durable", &self.durable, &wanted.durable);
        }
        None
    }

    fn file_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.slots) * slot_stride(self.slot_size) as u64
    }
}

/// What `stats` reports: a scan of every slot plus the header's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Number of slots.
    pub capacity: u64,
    /// Slots with no message.
    pub free: u64,
    /// Messages a receive would take now: sent or returned and due, or
    /// leased past their deadline (see `expired_leases`).
    pub visible: u64,
    /// Messages leased to a receiver whose lease has not expired.
    pub in_flight: u64,
    /// Messages sent with a delay (or nacked with one) not yet visible.
    pub delayed: u64,
    /// Of `visible`: leases whose deadline passed (their holder crashed,
    /// stalled or is late), which the next receive takes over.
    pub expired_leases: u64,
    /// Dead messages, and leases past their deadline at max receives (the
    /// next receive dead-letters them).
    pub dead: u64,
    /// Slots a sender is writing.
    pub writing: u64,
    /// Abandoned claims waiting for their owner to go, and claims past
    /// their timeout (the next receive abandons them).
    pub abandoned: u64,
    /// Slots with a transition in flight or corrupt words.
    pub other: u64,
    /// Sends that returned Ok.
    pub sent: u64,
    /// Acks.
    pub acked: u64,
    /// Deliveries of messages received before.
    pub redelivered: u64,
    /// Messages dead-lettered: at max receives, or rejected by a consumer.
    pub dead_lettered: u64,
    /// Dead messages redriven.
    pub redriven: u64,
    /// Age of the oldest visible message.
    pub oldest_visible_age: Option<Duration>,
    /// Age of the oldest message no consumer has finished: visible,
    /// delayed or in flight (the age an alert or an autoscaler watches).
    pub oldest_unfinished_age: Option<Duration>,
    /// Syncs to stable storage completed (durable queues and
    /// [`Queue::sync`]).
    pub syncs: u64,
    /// Durable waits: durable sends and batches and `sync` calls. Against
    /// `syncs`, how many waits each sync served (group commit).
    pub durable_waits: u64,
    /// The errno of a failed sync the queue recorded: durable sends fail
    /// until `shmq recover` clears it (docs/design.md §12.3).
    pub sync_failed: Option<i32>,
}

/// A dead message, read without changing it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Message id.
    pub id: u64,
    /// Slot and generation (redrive and purge check them).
    pub receipt: Receipt,
    /// Deliveries before it died.
    pub receives: u32,
    /// When it died, on the wall clock.
    pub died_at: SystemTime,
    /// Why.
    pub reason: DeadReason,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A message read without leasing it (`peek`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peeked {
    /// Message id.
    pub id: u64,
    /// Deliveries so far.
    pub receives: u32,
    /// When it was sent, on the wall clock.
    pub sent_at: SystemTime,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A file with holes (a sparse file: made by `truncate`, copied sparsely,
/// or forged) would raise SIGBUS on the first store into a hole when the
/// file system is full, and make every reader of the hole allocate a page
/// on tmpfs: allocate the holes now, so a full disk fails `open` with an
/// error instead. A file whose blocks already cover its length (every file
/// `create` made) costs one `fstat`.
fn allocate_holes(path: &Path, file: &File, len: u64) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata().map_err(io_err("stat", path))?;
    if m.blocks().saturating_mul(512) >= len {
        return Ok(());
    }
    // SAFETY: a valid open fd; offset 0 and a length `decode_header` checked
    // against the layout (at most 4096 + 2^24 * (64 + 16 MiB)), which fits
    // off_t.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    if rc != 0 {
        return Err(Error::Io {
            op: "allocate the holes of a sparse queue file",
            path: path.to_path_buf(),
            source: io::Error::from_raw_os_error(rc),
        });
    }
    Ok(())
}

/// A new, empty file with `mode` in the directory of `path`, for `create`
/// to fill: without a name (`O_TMPFILE`) where the file system supports it
/// and `/proc/self/fd` can name it for the link, otherwise under a hidden
/// temporary name (returned, for removal once linked).
fn unnamed_file(path: &Path, mode: u32) -> Result<(File, Option<PathBuf>)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let io = |op| io_err(op, path);
    if Path::new("/proc/self/fd").is_dir() {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(mode)
            .open(dir)
        {
            Ok(f) => return Ok((f, None)),
            // The file system cannot make unnamed files: use a name.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) => {}
            Err(e) => return Err(io("create")(e)),
        }
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temp = dir.join(format!(".{name}.creating.{}.{nanos}", std::process::id()));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(io("create"))?;
    Ok((f, Some(temp)))
}

/// Give the finished file its name: a hard link, which fails if anything
/// is at `path` already (never replaces it).
fn link_into_place(file: &File, temp: Option<&Path>, path: &Path) -> Result<()> {
    let linked = match temp {
        Some(t) => std::fs::hard_link(t, path),
        None => {
            use std::os::unix::ffi::OsStrExt;
            let src = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
                .expect("no NUL in a number");
            let dst =
                std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Io {
                    op: "link",
                    path: path.to_path_buf(),
                    source: io::Error::from(io::ErrorKind::InvalidInput),
                })?;
            // SAFETY: two valid NUL-terminated paths relative to the working
            // directory (AT_FDCWD); AT_SYMLINK_FOLLOW makes linkat follow the
            // /proc magic link to the open, unnamed file.
            let rc = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    src.as_ptr(),
                    libc::AT_FDCWD,
                    dst.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
    };
    linked.map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => Error::AlreadyExists {
            path: path.to_path_buf(),
        },
        _ => Error::Io {
            op: "link",
            path: path.to_path_buf(),
            source: e,
        },
    })
}

/// The file mapping, seen as the core's [`Memory`].
pub struct MapMemory {
    map: MmapRaw,
    n: u32,
    stride: usize,
}

// SAFETY: MapMemory only hands out shared references to atomics inside the
// mapping (and the mapping's address, which never changes while it lives);
// atomics may be used from any thread.
unsafe impl Send for MapMemory {}
// SAFETY: as above: every access through `&MapMemory` is an atomic access.
unsafe impl Sync for MapMemory {}

impl MapMemory {
    /// The memory over `map` (read-write, or read-only for a
    /// [`QueueView`](crate::QueueView)), whose length the caller checked
    /// against the header: `HEADER_LEN + n * stride` at least.
    pub(crate) fn new(map: MmapRaw, n: u32, stride: usize) -> MapMemory {
        MapMemory { map, n, stride }
    }

    /// Write every page of the mapping again without changing it (an
    /// atomic `fetch_add(0)` on its first word: a write access, so the page
    /// is dirty and the next sync writes it; docs/design.md §12.3).
    pub(crate) fn redirty(&self) {
        for off in (0..self.map.len()).step_by(4096) {
            let w: &AtomicU64 = self.at(off);
            w.fetch_add(0, Relaxed);
        }
    }

    #[inline]
    fn at<T>(&self, off: usize) -> &T {
        debug_assert!(off + std::mem::size_of::<T>() <= self.map.len());
        debug_assert_eq!(off % std::mem::align_of::<T>(), 0);
        // SAFETY: `open` checked that the mapping is as long as the header
        // says (HEADER_LEN + n * stride) and every caller stays inside it; the
        // mapping is page-aligned and every offset used is a multiple of 8.
        // `T` is a struct of atomics (or atomics), for which another process
        // writing the same bytes concurrently is defined behaviour, and every
        // bit pattern is a valid value.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const T) }
    }
}

impl Memory for MapMemory {
    #[inline]
    fn shared(&self) -> &Shared {
        self.at(OFF_SHARED)
    }
    #[inline]
    fn slot_count(&self) -> u32 {
        self.n
    }
    #[inline]
    fn slot(&self, i: u32) -> &SlotWords {
        assert!(i < self.n);
        self.at(HEADER_LEN + i as usize * self.stride)
    }
    #[inline]
    fn payload(&self, i: u32) -> &[AtomicU64] {
        assert!(i < self.n);
        let off = HEADER_LEN + i as usize * self.stride + SLOT_HEADER_LEN;
        let words = (self.stride - SLOT_HEADER_LEN) / 8;
        debug_assert!(off + words * 8 <= self.map.len());
        // SAFETY: as in `at`: in bounds (stride was validated against the
        // file length), 8-aligned, and AtomicU64 tolerates concurrent writes.
        unsafe {
            std::slice::from_raw_parts(self.map.as_mut_ptr().add(off) as *const AtomicU64, words)
        }
    }
    #[inline]
    fn dead_letter_queue(&self) -> &crate::layout::DeadLetterQueueWords {
        self.at(OFF_DEAD_LETTER_QUEUE)
    }
    #[inline]
    fn durability(&self) -> &crate::layout::DurabilityWords {
        self.at(OFF_DURABILITY)
    }
    #[inline]
    fn registry(&self) -> &[AtomicU64] {
        // SAFETY: as in `payload`: the table lies inside the header, which
        // `open` checked the mapping covers; 8-aligned; atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_mut_ptr().add(OFF_REGISTRY) as *const AtomicU64,
                REGISTRY_WORDS,
            )
        }
    }
}

/// How long an opener waits for another opener's reset after a reboot
/// (or for whoever else holds a lock on the file) before it fails.
const BOOT_LOCK_WAIT: Duration = Duration::from_secs(5);

/// A queue file, mapped. `Send + Sync`: threads share one `Queue` and compete
/// exactly as processes do.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

/// What every clone of a [`Queue`] shares: one mapping, one file.
struct Inner {
    ring: Ring<MapMemory>,
    path: PathBuf,
    file: File,
    config: Config,
    identity: u64,
    spin_tries: AtomicU32Local,
    /// Set by [`Queue::shutdown`]: waits on this handle (and its clones) end.
    shutdown: AtomicBool,
    /// Device and inode of the mapped file.
    file_id: (u64, u64),
    /// When `file_ok` last looked at the file (clock ms).
    file_checked_ms: AtomicU64Local,
    /// The path no longer names the mapped file (removed or replaced).
    orphaned: AtomicBool,
    /// The dead-letter queue this queue names, as last read (§5.5).
    dlq: dlq::Cache,
    /// The async receivers and senders waiting on this handle (asynk.rs).
    #[cfg(feature = "tokio")]
    waiters: crate::asynk::Waiters,
}

impl Drop for Inner {
    /// The last clone of a handle closes: its registration ends (§7.4), so
    /// a claim or lease still naming it (none can be in use: leases hold a
    /// clone) is judged gone at once.
    fn drop(&mut self) {
        self.ring.release_registration();
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("path", &self.inner.path)
            .field("identity", &format_args!("{:016x}", self.inner.identity))
            .field("config", &self.inner.config)
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

thread_local! {
    static RECEIVES: Cell<u32> = const { Cell::new(0) };
}

/// An `Error::Io` for `op` on `path`.
pub(crate) fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> Error + 'p {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The immutable header fields, parsed and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub config: Config,
    pub file_len: u64,
    pub identity: u64,
}

/// The queue's identity: its creation time in Unix milliseconds (shifted
/// up 20 bits), its header checksum and the 8 random bytes drawn at its
/// creation, folded together. Stable for the file's life, different for a
/// file created again at the same path, and for two queues created in the
/// same millisecond with the same configuration.
fn identity_of(b: &[u8; OFF_SHARED]) -> u64 {
    let created = le64(b, OFF_CREATED_MS);
    let crc = u64::from(le32(b, OFF_HEADER_CRC));
    (created << 20) ^ crc ^ le64(b, OFF_NONCE)
}

/// 8 bytes from the kernel's random pool (getrandom(2)); where that fails,
/// the clock's nanoseconds, the pid and a process-wide counter, mixed.
fn nonce() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom(2) writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        return u64::from_le_bytes(b);
    }
    static COUNT: AtomicU64Local = AtomicU64Local::new(0);
    let t = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut x =
        t ^ (u64::from(std::process::id()) << 32) ^ COUNT.fetch_add(1, LocalOrdering::Relaxed);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Encode the immutable header (bytes 0..128), version included.
pub(crate) fn encode_header(cfg: &Config) -> [u8; OFF_SHARED] {
    let mut b = [0u8; OFF_SHARED];
    b[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&MAGIC);
    b[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let flags =
        if cfg.checksums { FLAG_CHECKSUMS } else { 0 } | if cfg.durable { FLAG_DURABLE } else { 0 };
    b[OFF_FLAGS..OFF_FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
    b[OFF_SLOT_COUNT..OFF_SLOT_COUNT + 4].copy_from_slice(&cfg.slots.to_le_bytes());
    b[OFF_SLOT_SIZE..OFF_SLOT_SIZE + 4].copy_from_slice(&cfg.slot_size.to_le_bytes());
    b[OFF_SLOT_STRIDE..OFF_SLOT_STRIDE + 4]
        .copy_from_slice(&(slot_stride(cfg.slot_size) as u32).to_le_bytes());
    b[OFF_MAX_RECEIVES..OFF_MAX_RECEIVES + 4].copy_from_slice(&cfg.max_receives.to_le_bytes());
    b[OFF_VISIBILITY_MS..OFF_VISIBILITY_MS + 8]
        .copy_from_slice(&millis(cfg.visibility_timeout).to_le_bytes());
    b[OFF_CLAIM_MS..OFF_CLAIM_MS + 8].copy_from_slice(&millis(cfg.claim_timeout).to_le_bytes());
    b[OFF_CREATED_MS..OFF_CREATED_MS + 8].copy_from_slice(&unix_ms().to_le_bytes());
    b[OFF_FILE_LEN..OFF_FILE_LEN + 8].copy_from_slice(&cfg.file_len().to_le_bytes());
    let crc = crc32fast::hash(&b[..CRC_COVERED]);
    b[OFF_HEADER_CRC..OFF_HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    b[OFF_NONCE..OFF_NONCE + 8].copy_from_slice(&nonce().to_le_bytes());
    b
}

/// Why a header could not be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Uninitialised,
    BadMagic,
    Version(u32),
    Corrupt(String),
}

/// Parse and validate the immutable header. `actual_len` is the file's length.
pub(crate) fn decode_header(b: &[u8; OFF_SHARED], actual_len: u64) -> Result<Header, HeaderError> {
    let version = le32(b, OFF_VERSION);
    if version == 0 {
        return Err(HeaderError::Uninitialised);
    }
    if b[OFF_MAGIC..OFF_MAGIC + 8] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if version != FORMAT_VERSION {
        return Err(HeaderError::Version(version));
    }
    let crc = le32(b, OFF_HEADER_CRC);
    if crc32fast::hash(&b[..CRC_COVERED]) != crc {
        return Err(HeaderError::Corrupt("header checksum mismatch".into()));
    }
    let flags = le32(b, OFF_FLAGS);
    if flags & !(FLAG_CHECKSUMS | FLAG_DURABLE) != 0 {
        return Err(HeaderError::Corrupt(format!("unknown flags {flags:#x}")));
    }
    let config = Config {
        slots: le32(b, OFF_SLOT_COUNT),
        slot_size: le32(b, OFF_SLOT_SIZE),
        visibility_timeout: Duration::from_millis(le64(b, OFF_VISIBILITY_MS)),
        max_receives: le32(b, OFF_MAX_RECEIVES),
        mode: 0,
        checksums: flags & FLAG_CHECKSUMS != 0,
        claim_timeout: Duration::from_millis(le64(b, OFF_CLAIM_MS)),
        durable: flags & FLAG_DURABLE != 0,
    };
    config
        .validate()
        .map_err(|e| HeaderError::Corrupt(e.to_string()))?;
    let stride = le32(b, OFF_SLOT_STRIDE) as usize;
    if stride != slot_stride(config.slot_size) {
        return Err(HeaderError::Corrupt(format!(
            "slot stride {stride} does not match slot size {}",
            config.slot_size
        )));
    }
    let file_len = le64(b, OFF_FILE_LEN);
    if file_len != config.file_len() {
        return Err(HeaderError::Corrupt(format!(
            "header length {file_len} does not match its layout"
        )));
    }
    if actual_len != file_len {
        return Err(HeaderError::Corrupt(format!(
            "file is {actual_len} bytes, header says {file_len}"
        )));
    }
    Ok(Header {
        config,
        file_len,
        identity: identity_of(b),
    })
}

impl HeaderError {
    /// The typed error a header that cannot be used gives.
    pub(crate) fn into_error(self, path: &Path) -> Error {
        let path = path.to_path_buf();
        match self {
            HeaderError::Uninitialised => Error::NotInitialised { path },
            HeaderError::BadMagic => Error::NotAQueue { path },
            HeaderError::Version(found) => Error::Incompatible {
                path,
                found,
                supported: FORMAT_VERSION,
            },
            HeaderError::Corrupt(what) => Error::Corrupt { path, what },
        }
    }
}

/// Open the queue file at `path` for reading (and writing, if `write`);
/// a missing file is `NotFound`.
pub(crate) fn open_file(path: &Path, write: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound {
                path: path.to_path_buf(),
            },
            _ => Error::Io {
                op: "open",
                path: path.to_path_buf(),
                source: e,
            },
        })
}

/// Read and decode the immutable header of `file`, which is `len` bytes
/// long, at least `OFF_SHARED`: the outer error is the read's, the inner
/// one what the header's bytes say.
pub(crate) fn read_header(
    file: &File,
    path: &Path,
    len: u64,
) -> Result<Result<Header, HeaderError>> {
    let mut b = [0u8; OFF_SHARED];
    file.read_exact_at(&mut b, 0)
        .map_err(io_err("read header", path))?;
    Ok(match decode_header(&b, len) {
        Ok(_) if len < HEADER_LEN as u64 => Err(HeaderError::Corrupt(format!(
            "file is {len} bytes, shorter than its header"
        ))),
        other => other,
    })
}

/// The core's parameters for a queue of `config`, waking parked processes
/// with `wake`.
pub(crate) fn params_of(config: &Config, identity: u64, wake: fn(&AtomicU32)) -> Params {
    Params {
        slot_size: config.slot_size,
        max_receives: config.max_receives,
        visibility_ms: millis(config.visibility_timeout),
        claim_ms: millis(config.claim_timeout),
        checksums: config.checksums,
        identity,
        pid: std::process::id(),
        is_alive: pid_alive,
        wake,
    }
}

/// Whether a READY slot's message is visible: its time has come, or it was
/// sent without a delay (as the receive path judges it, ring/sweep.rs `visible`).
pub(crate) fn visible_now(info: &SlotInfo, now: u64) -> bool {
    info.time_ms <= now || info.time_ms <= info.sent_ms
}

/// The longest delay a send or a nack accepts: 12 hours (SQS allows 15
/// minutes; a delayed message here costs only its slot).
pub const MAX_DELAY: Duration = Duration::from_millis(MAX_TIMEOUT_MS);

/// The longest lease: a visibility timeout or an extension, 12 hours (as
/// SQS).
pub const MAX_LEASE: Duration = Duration::from_millis(MAX_TIMEOUT_MS);

/// How often a handle looks whether its file was removed or replaced.
const ORPHAN_CHECK_MS: u64 = 100;

/// How long a sender waiting for room sleeps at most before it looks again
/// on its own (a freer killed between its commit and its wake).
const ROOM_RECHECK: Duration = Duration::from_millis(100);

/// `d` in milliseconds if it lies in `min_ms ..= max_ms`.
/// A lease length that overrides the queue's visibility timeout for one
/// receive: 1 ms ..= 12 h ([`MAX_LEASE`]), checked when it is made, so a
/// receive never clamps or wraps one.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use std::time::Duration;
/// use shmq::{Config, Queue, Visibility};
/// let q = Queue::create(dir.path().join("q"), &Config::default())?;
/// q.send("slow job")?;
/// let an_hour = Visibility::new(Duration::from_secs(3600))?;
/// let d = q.try_receive_into(&mut Vec::new(), Some(an_hour)).unwrap();
/// assert!(Visibility::new(Duration::from_secs(13 * 3600)).is_err(), "over 12 h");
/// # let _ = d;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Visibility(u64);

impl Visibility {
    /// `d` as a lease length.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`], naming the range, for `d` under 1 ms or over
    /// 12 h.
    pub fn new(d: Duration) -> Result<Visibility> {
        checked_ms("visibility timeout", d, 1, MAX_TIMEOUT_MS).map(Visibility)
    }

    /// The lease length.
    pub fn get(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl TryFrom<Duration> for Visibility {
    type Error = Error;
    fn try_from(d: Duration) -> Result<Visibility> {
        Visibility::new(d)
    }
}

fn checked_ms(what: &'static str, d: Duration, min_ms: u64, max_ms: u64) -> Result<u64> {
    match u64::try_from(d.as_millis()) {
        Ok(ms) if (min_ms..=max_ms).contains(&ms) => Ok(ms),
        _ => Err(Error::OutOfRange {
            what,
            got: d,
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
        }),
    }
}

/// A send delay in milliseconds, or the send error that names the range.
fn delay_ms(delay: Duration) -> Result<u64, SendError> {
    checked_ms("send delay", delay, 0, MAX_TIMEOUT_MS).map_err(|_| SendError::DelayOutOfRange {
        delay,
        max: MAX_DELAY,
    })
}

/// The leases of a queue, as they become visible, until the handle is shut
/// down. Made by [`Queue::incoming`].
#[derive(Debug)]
pub struct Incoming {
    queue: Queue,
}

impl Iterator for Incoming {
    type Item = Lease;

    fn next(&mut self) -> Option<Lease> {
        while !self.queue.is_shut_down() {
            // Each round is bounded only so that a shutdown of a handle
            // that missed its wake (there is none) could not hang us; the
            // wait itself returns at once on `shutdown`.
            if let Some(lease) = self.queue.receive(Duration::from_secs(3600)) {
                return Some(lease);
            }
        }
        None
    }
}

/// How long `open` waits for a concurrent creator to finish the header.
const INIT_WAIT: Duration = Duration::from_secs(2);

impl Queue {
    /// Create a new queue file at `path` with `config`. The file is
    /// preallocated, so a full disk fails here rather than with SIGBUS later.
    /// Put it on tmpfs (`/dev/shm`) for speed, or on a disk file system to
    /// keep messages across a reboot.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] if there is a file at `path` (the file is
    /// left alone), [`Error::InvalidConfig`] for a value out of range,
    /// [`Error::Io`] if the file cannot be made or preallocated (the partial
    /// file is removed).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Error, Queue};
    /// use std::time::Duration;
    /// let path = dir.path().join("orders.q");
    /// let cfg = Config::default()
    ///     .slots(4096)
    ///     .slot_size(512)
    ///     .visibility_timeout(Duration::from_secs(60));
    /// let q = Queue::create(&path, &cfg)?;
    /// assert_eq!(q.config().slots, 4096);
    /// assert!(matches!(Queue::create(&path, &cfg), Err(Error::AlreadyExists { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>, config: &Config) -> Result<Queue> {
        let path = path.as_ref();
        config.validate()?;
        // A cheap early answer; the link below is the real, atomic check.
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        // Built in a file without a name (or, where the file system cannot
        // make one, a hidden temporary name), linked at `path` only once
        // complete: no process ever opens a half-made queue, and a creator
        // that dies midway leaves nothing at `path` (design.md §7.3).
        let (file, temp) = unnamed_file(path, config.mode)?;
        let made = Self::init(path, file, config).and_then(|q| {
            failpoint!("create.before_link");
            link_into_place(&q.inner.file, temp.as_deref(), path)?;
            if config.durable {
                durable::sync_dir(path)?;
            }
            Ok(q)
        });
        if let Some(t) = &temp {
            let _ = std::fs::remove_file(t);
        }
        made
    }

    fn init(path: &Path, file: File, config: &Config) -> Result<Queue> {
        // The umask may have cleared bits of the mode; set exactly what was asked.
        file.set_permissions(std::fs::Permissions::from_mode(config.mode))
            .map_err(io_err("chmod", path))?;
        let len = config.file_len();
        if config.durable {
            durable::check_storage(&file, path)?;
        }
        // SAFETY: a valid open fd; offset 0 and a positive length that fits off_t
        // (at most 4096 + 2^24 * (64 + 16 MiB), far below i64::MAX).
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
        if rc != 0 {
            return Err(Error::Io {
                op: "preallocate",
                path: path.to_path_buf(),
                source: io::Error::from_raw_os_error(rc),
            });
        }
        if config.durable {
            durable::write_through(&file, path, len)?;
        }
        let map = MmapOptions::new()
            .map_raw(&file)
            .map_err(io_err("mmap", path))?;
        if config.durable {
            durable::advise_random(&map);
        }
        let mem = MapMemory {
            map,
            n: config.slots,
            stride: slot_stride(config.slot_size),
        };
        for i in 0..config.slots {
            let w = mem.slot(i);
            w.state
                .store(crate::slot::pack_state(St::Free, 0, 0), Relaxed);
        }
        let [a, b] = boot_id();
        mem.shared().boot_id[0].store(a, Relaxed);
        mem.shared().boot_id[1].store(b, Relaxed);
        let header = encode_header(config);
        // Everything but the version word, then the version word last.
        file.write_all_at(&header[..OFF_VERSION], 0)
            .map_err(io_err("write header", path))?;
        file.write_all_at(&header[OFF_VERSION + 4..], (OFF_VERSION + 4) as u64)
            .map_err(io_err("write header", path))?;
        // SYNC POINT: the Release store of the version pairs with the opener's
        // read of it: an opener that sees the version sees the whole header and
        // every initialised slot. (The header went through the page cache by
        // pwrite; the fence orders it before the version as seen through the map.)
        fence(Release);
        let version: &AtomicU32 = mem.at(OFF_VERSION);
        version.store(FORMAT_VERSION, Release);
        if config.durable {
            // The whole file, before its name exists (§12.4).
            durable::fdatasync(&file).map_err(|errno| Error::Io {
                op: "sync the new queue file",
                path: path.to_path_buf(),
                source: io::Error::from_raw_os_error(errno),
            })?;
        }
        Ok(Self::from_parts(
            path,
            file,
            mem,
            config.clone(),
            identity_of(&header),
        ))
    }

    fn from_parts(path: &Path, file: File, mem: MapMemory, config: Config, identity: u64) -> Queue {
        // The file this handle maps, to tell later whether the path still
        // names it (`file_ok`). An fstat that fails leaves zeros, which no
        // later stat of the path matches: the handle then reports itself
        // orphaned rather than send into a file it cannot identify.
        let (dev, ino) = file
            .metadata()
            .map(|m| {
                (
                    std::os::unix::fs::MetadataExt::dev(&m),
                    std::os::unix::fs::MetadataExt::ino(&m),
                )
            })
            .unwrap_or((0, 0));
        let params = params_of(&config, identity, futex_wake_all);
        Queue {
            inner: Arc::new(Inner {
                ring: Ring::with_registry(mem, params),
                path: path.to_path_buf(),
                file,
                config,
                identity,
                spin_tries: AtomicU32Local::new(200),
                shutdown: AtomicBool::new(false),
                file_id: (dev, ino),
                file_checked_ms: AtomicU64Local::new(now_ms()),
                orphaned: AtomicBool::new(false),
                dlq: dlq::Cache::default(),
                #[cfg(feature = "tokio")]
                waiters: crate::asynk::Waiters::default(),
            }),
        }
    }

    /// Open an existing queue file; its configuration is read from the
    /// file and validated before any slot is mapped.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::NotAQueue`] (not a queue file),
    /// [`Error::Incompatible`] (another format version),
    /// [`Error::NotInitialised`] (its creator has not finished within 2 s),
    /// [`Error::Corrupt`] (the header contradicts itself or the file's
    /// length), [`Error::Io`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("orders.q");
    /// # shmq::Queue::create(&path, &shmq::Config::default())?;
    /// use shmq::Queue;
    /// // In another process than the creator's:
    /// let q = Queue::open(&path)?;
    /// println!("{} slots of {} bytes", q.config().slots, q.config().slot_size);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Queue> {
        Queue::open_with(path.as_ref(), &crate::open::OpenOptions::new())
    }

    pub(crate) fn open_with(path: &Path, opts: &crate::open::OpenOptions) -> Result<Queue> {
        let file = open_file(path, true)?;
        opts.check_trust(path, &file)?;
        let started = Instant::now();
        let header = loop {
            let len = file.metadata().map_err(io_err("stat", path))?.len();
            let got = if (len as usize) < OFF_SHARED {
                Err(HeaderError::Uninitialised)
            } else {
                read_header(&file, path, len)?
            };
            match got {
                Ok(h) => break h,
                Err(HeaderError::Uninitialised) if started.elapsed() < INIT_WAIT => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e.into_error(path)),
            }
        };
        let map = MmapOptions::new()
            .map_raw(&file)
            .map_err(io_err("mmap", path))?;
        if (map.len() as u64) < header.file_len {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                what: "file shrank while opening".into(),
            });
        }
        let mut config = header.config;
        config.mode = file
            .metadata()
            .map_err(io_err("stat", path))?
            .permissions()
            .mode()
            & 0o7777;
        if config.durable {
            durable::check_storage(&file, path)?;
            durable::advise_random(&map);
        }
        let mem = MapMemory {
            map,
            n: config.slots,
            stride: slot_stride(config.slot_size),
        };
        allocate_holes(path, &file, header.file_len)?;
        let q = Self::from_parts(path, file, mem, config, header.identity);
        q.check_boot()?;
        Ok(q)
    }

    /// Open the queue at `path`, creating it with `config` if there is none.
    /// Every process of a deployment can call it at start, in any order.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigMismatch`] if the queue exists with another
    /// configuration (other than its mode), naming the first difference: a
    /// queue whose slots are smaller than the caller expects would fail its
    /// sends later. Otherwise as [`create`](Self::create) and
    /// [`open`](Self::open).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("orders.q");
    /// use shmq::{Config, Error, Queue};
    /// let cfg = Config::default().slot_size(1024);
    /// let a = Queue::open_or_create(&path, &cfg)?; // creates it
    /// let b = Queue::open_or_create(&path, &cfg)?; // opens it
    /// assert_eq!(a.identity(), b.identity());
    /// let small = Config::default().slot_size(64);
    /// assert!(matches!(
    ///     Queue::open_or_create(&path, &small),
    ///     Err(Error::ConfigMismatch { field: "slot_size", .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(path: impl AsRef<Path>, config: &Config) -> Result<Queue> {
        crate::open::OpenOptions::new().open_or_create(path, config)
    }

    pub(crate) fn open_or_create_with(
        path: &Path,
        config: &Config,
        opts: &crate::open::OpenOptions,
    ) -> Result<Queue> {
        match Queue::create(path, config) {
            Err(Error::AlreadyExists { .. }) => {
                let q = Queue::open_with(path, opts)?;
                match q.config().difference(config) {
                    None => Ok(q),
                    Some((field, found, wanted)) => Err(Error::ConfigMismatch {
                        path: path.to_path_buf(),
                        field,
                        found,
                        wanted,
                    }),
                }
            }
            other => other,
        }
    }

    /// After a reboot the times in the slots are meaningless and every
    /// registration is of a dead process: reset them (§7).
    fn check_boot(&self) -> Result<()> {
        let host = boot_id();
        // A boot id this process cannot read (no /proc in a sandbox) says
        // nothing about a reboot: resetting on it would revoke every live
        // lease of the processes that can read it.
        if host == [0, 0] {
            return Ok(());
        }
        // Mutant (design.md §10, tests/powercut.rs): no reset after a reboot.
        #[cfg(shmq_mutation = "reboot_no_reset")]
        return Ok(());
        let sh = self.inner.ring.shared();
        let same =
            || sh.boot_id[0].load(Acquire) == host[0] && sh.boot_id[1].load(Acquire) == host[1];
        if same() {
            return Ok(());
        }
        let fd = self.inner.file.as_raw_fd();
        // One opener resets; the others wait for it, a bounded time: a lock
        // someone else holds on the file (a backup tool, say) must not
        // hang every open.
        let start = Instant::now();
        loop {
            // SAFETY: a valid fd we own; flock takes a kernel lock (not in
            // the mapping) that the kernel drops if we die.
            if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock || start.elapsed() > BOOT_LOCK_WAIT {
                return Err(Error::Io {
                    op: "lock the file to reset it after a reboot (another process holds a lock on it)",
                    path: self.inner.path.clone(),
                    source: e,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if !same() {
            self.inner.ring.reset_clocks();
            crate::registry::reset_all(
                self.inner.ring.memory().registry(),
                crate::registry::boot_tag(host),
            );
            sh.boot_id[0].store(host[0], Release);
            sh.boot_id[1].store(host[1], Release);
        }
        // SAFETY: as above; unlocking a lock we hold.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A number that names this queue file for its whole life: the same in
    /// every process that opens it, different for a queue created again at
    /// the same path (it is derived from the creation time and the header).
    /// Message ids are unique within one identity, so `(identity, id)` names
    /// a message across queues (the bridge uses it for de-duplication).
    pub fn identity(&self) -> u64 {
        self.inner.identity
    }

    /// The queue's configuration (as read from the file).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The lock-free core (for the tool and tests).
    #[doc(hidden)]
    pub fn ring(&self) -> &Ring<MapMemory> {
        &self.inner.ring
    }

    /// Take leases that name no holder (this handle and its clones). A
    /// lease normally names this process, so that it comes back at once if
    /// the process dies (design.md §7.4); a short-lived tool whose leases
    /// outlive it (such as `shmq recv` run from a script, whose caller does
    /// the work) takes anonymous leases instead, which come back when their
    /// visibility timeout passes.
    pub fn set_anonymous_leases(&self, on: bool) {
        self.inner.ring.set_anonymous_leases(on);
    }

    /// How many times a blocking receive polls before it parks (default 200).
    pub fn set_spin_tries(&self, tries: u32) {
        self.inner.spin_tries.store(tries, LocalOrdering::Relaxed);
    }

    // ------------------------------------------------------------- shutdown

    /// Stop waiting. Every [`receive`](Self::receive),
    /// [`incoming`](Self::incoming) iterator and
    /// [`send_timeout`](Self::send_timeout) blocked on this handle or any of
    /// its clones, in any thread, returns within microseconds (a receive
    /// with `None`, `incoming` ends, a waiting send with
    /// [`SendError::Full`]); later waits return at once. Operations that do
    /// not wait keep working, so a worker can still ack, nack or
    /// dead-letter the leases it holds, and producers can still send.
    ///
    /// Handles opened separately (another [`Queue::open`] of the same file,
    /// other processes) are not shut down; their parked receivers wake, look
    /// once and park again.
    ///
    /// Async-signal-safe: an atomic store, two atomic read-modify-writes and
    /// two `futex` wakes, no allocation and no lock, so a signal handler may
    /// call it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// let q = Queue::create(dir.path().join("jobs.q"), &Config::default())?;
    /// let worker = {
    ///     let q = q.clone();
    ///     std::thread::spawn(move || {
    ///         for lease in q.incoming() {
    ///             lease.ack().unwrap();
    ///         }
    ///         // `incoming` ended: the queue was shut down.
    ///     })
    /// };
    /// q.send("job")?;
    /// q.shutdown();
    /// worker.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) {
        let inner = &*self.inner;
        // SYNC POINT: the flag is stored (SeqCst) before the futex words
        // change; a waiter loads its futex word (SeqCst) before it checks
        // the flag, so it either sees the flag or parks on a value that is
        // already stale (and FUTEX_WAIT returns at once).
        inner.shutdown.store(true, LocalOrdering::SeqCst);
        let park = &inner.ring.shared().park;
        // Keep the waiter bit: other handles' parked receivers re-park.
        park.fetch_add(2, SeqCst);
        futex_wake_all(park);
        inner.ring.wake_room_waiters();
    }

    /// Whether the path this handle was opened by still names the file it
    /// maps: false once the file was removed or replaced (say by a `rm` and
    /// a `create` at the same path). Sends through an orphaned handle fail
    /// with [`SendError::Orphaned`]: their messages would go to a file no
    /// new process can open, and vanish with the last handle. Receives, acks
    /// and the rest keep working, so consumers can drain what it holds.
    ///
    /// Looked at with two `stat` calls at most every 100 ms per handle
    /// (and its clones), on the send path; between looks, a comparison.
    pub fn is_orphaned(&self) -> bool {
        !self.file_ok(now_ms(), true)
    }

    /// Whether the file is still the one at the path, looking again if the
    /// last look is `ORPHAN_CHECK_MS` old at `now` (or if `force`).
    pub(crate) fn file_ok(&self, now: u64, force: bool) -> bool {
        let inner = &*self.inner;
        // Process memory; no ordering: a stale reading only delays a look.
        if inner.orphaned.load(LocalOrdering::Relaxed) {
            return false;
        }
        let last = inner.file_checked_ms.load(LocalOrdering::Relaxed);
        if !force && now.saturating_sub(last) < ORPHAN_CHECK_MS {
            return true;
        }
        inner.file_checked_ms.store(now, LocalOrdering::Relaxed);
        use std::os::unix::fs::MetadataExt;
        let removed = inner.file.metadata().map_or(true, |m| m.nlink() == 0);
        let replaced =
            std::fs::metadata(&inner.path).map_or(true, |m| (m.dev(), m.ino()) != inner.file_id);
        if removed || replaced {
            inner.orphaned.store(true, LocalOrdering::Relaxed);
            return false;
        }
        true
    }

    /// Whether [`shutdown`](Self::shutdown) was called on this handle or a
    /// clone of it.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.load(LocalOrdering::SeqCst)
    }

    // ----------------------------------------------------------------- send

    /// Send a message, visible at once. Returns its id (unique in this
    /// queue, increasing in send order).
    ///
    /// The message is borrowed: a failed send leaves it with the caller, who
    /// can retry it as it is. Never waits: a full queue is
    /// [`SendError::Full`] at once (see [`send_timeout`](Self::send_timeout)
    /// to wait for room).
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when every slot holds a message,
    /// [`SendError::TooLarge`] when the message exceeds the slot size, and
    /// the rare [`SendError::ClaimExpired`] and [`SendError::Contended`]
    /// (retry).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// let q = Queue::create(dir.path().join("orders.q"), &Config::default().slots(2))?;
    /// let first = q.send(b"order 1")?;
    /// let second = q.send("order 2")?;
    /// assert!(second > first);
    /// assert!(q.send(&vec![3u8; 10]).unwrap_err().is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<M: AsRef<[u8]> + ?Sized>(&self, msg: &M) -> Result<u64, SendError> {
        self.send_after_ms(msg.as_ref(), 0)
    }

    /// Send a message that becomes visible after `delay` (at most
    /// [`MAX_DELAY`]).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`SendError::DelayOutOfRange`] for a
    /// delay over [`MAX_DELAY`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// use std::time::Duration;
    /// let q = Queue::create(dir.path().join("reminders.q"), &Config::default())?;
    /// q.send_delayed("call back", Duration::from_secs(60))?;
    /// assert!(q.try_receive().is_none(), "not visible for a minute");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_delayed<M: AsRef<[u8]> + ?Sized>(
        &self,
        msg: &M,
        delay: Duration,
    ) -> Result<u64, SendError> {
        self.send_after_ms(msg.as_ref(), delay_ms(delay)?)
    }

    /// `send_delayed` with the delay in range, in milliseconds.
    fn send_after_ms(&self, msg: &[u8], delay_ms: u64) -> Result<u64, SendError> {
        let now = now_ms();
        if !self.file_ok(now, false) {
            return Err(SendError::Orphaned);
        }
        // One load of the flag for both checks (the path without them is
        // the one every send of a queue that is not durable takes).
        let durable = self.inner.config.durable;
        if durable {
            self.durable_refuses()?;
        }
        let id = self
            .inner
            .ring
            .send(msg, delay_ms, now)
            .map_err(SendError::from_core)?;
        if delay_ms == 0 {
            self.wake_parked();
        }
        if durable {
            return self.durable_wait(id);
        }
        Ok(id)
    }

    /// After a publish: on a durable queue, wait until a sync covers it.
    #[inline]
    pub(crate) fn sent(&self, id: u64) -> Result<u64, SendError> {
        if self.inner.config.durable {
            return self.durable_wait(id);
        }
        Ok(id)
    }

    /// Send a message, waiting up to `wait` for room if the queue is full.
    /// The wait parks on a futex word in the file that every freed slot
    /// (an ack, a purge, in any process) wakes: no spinning, no CPU while
    /// the queue stays full.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] if the queue was still full when `wait` passed or
    /// the handle was [shut down](Self::shutdown); otherwise as
    /// [`send`](Self::send).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// use std::time::Duration;
    /// let q = Queue::create(dir.path().join("q"), &Config::default().slots(1))?;
    /// q.send("first")?;
    /// let consumer = {
    ///     let q = q.clone();
    ///     std::thread::spawn(move || q.receive(Duration::from_secs(5)).unwrap().ack())
    /// };
    /// // Waits until the consumer's ack frees the slot.
    /// q.send_timeout("second", Duration::from_secs(5))?;
    /// consumer.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_timeout<M: AsRef<[u8]> + ?Sized>(
        &self,
        msg: &M,
        wait: Duration,
    ) -> Result<u64, SendError> {
        self.send_until(msg.as_ref(), Instant::now().checked_add(wait))
    }

    /// Send a message, waiting as long as it takes for room (or until the
    /// handle is [shut down](Self::shutdown)). See
    /// [`send_timeout`](Self::send_timeout).
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] only after a shutdown; otherwise as
    /// [`send`](Self::send).
    pub fn send_blocking<M: AsRef<[u8]> + ?Sized>(&self, msg: &M) -> Result<u64, SendError> {
        self.send_until(msg.as_ref(), None)
    }

    /// Send, waiting for room until `deadline` (`None`: no deadline).
    fn send_until(&self, msg: &[u8], deadline: Option<Instant>) -> Result<u64, SendError> {
        let ring = &self.inner.ring;
        let room = &ring.shared().room;
        loop {
            match self.send(msg) {
                Err(SendError::Full) => {}
                other => return other,
            }
            // §5.1, waiting for room: set the waiter bit, look at every slot
            // once more, and park only if that look found none free.
            let w = ring.room_wait_word();
            match ring.send_looking(msg, 0, now_ms()) {
                Ok(id) => {
                    self.wake_parked();
                    return self.sent(id);
                }
                Err(Error::Full) => {}
                Err(e) => return Err(SendError::from_core(e)),
            }
            if self.is_shut_down() {
                return Err(SendError::Full);
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Err(SendError::Full),
                },
                None => ROOM_RECHECK,
            };
            // Bounded even without a deadline: a freer killed between its
            // commit and its wake, or one built before this word existed,
            // costs a waiting sender at most ROOM_RECHECK.
            futex_wait(room, w, left.min(ROOM_RECHECK));
        }
    }

    /// Wake parked receivers, if any (§6). One load when nobody is parked.
    pub(crate) fn wake_parked(&self) {
        let park = &self.inner.ring.shared().park;
        // SYNC POINT: SeqCst load after the SeqCst publish commit, against the
        // receiver's SeqCst CAS of the waiter bit before its last look (a
        // blocking receiver's in `receive_into`, an async one's in asynk.rs).
        let w = park.load(SeqCst);
        if w & 1 != 0
            && park
                .compare_exchange(w, (w.wrapping_add(2)) & !1, SeqCst, Relaxed)
                .is_ok()
        {
            futex_wake_all(park);
        }
    }

    // -------------------------------------------------------------- receive

    fn try_once(&self, vt: u64, buf: &mut Vec<u8>, budget: u64) -> Option<Delivery> {
        let periodic = RECEIVES.with(|c| {
            let k = c.get().wrapping_add(1);
            c.set(k);
            k % 16 == 0
        });
        let d = self
            .inner
            .ring
            .try_receive(now_ms(), vt, buf, periodic, budget);
        self.move_dead_letters(None);
        d
    }

    /// The last look of a receiver about to park, after it set the waiter
    /// bit (§6): a load of `fill` whatever the clock says (not of `head`,
    /// §5.2), and the rest of the sweep lap.
    fn last_look(&self, vt: u64, buf: &mut Vec<u8>) -> Option<Delivery> {
        self.inner.ring.look_at_fill();
        let n = u64::from(self.inner.ring.slot_count());
        self.try_once(vt, buf, n)
    }

    /// The lease length of a receive: the override, or the queue's
    /// visibility timeout (checked against the same range when the queue
    /// was opened).
    pub(crate) fn vt_ms(&self, visibility: Option<Visibility>) -> u64 {
        visibility.map_or_else(|| millis(self.inner.config.visibility_timeout), |v| v.0)
    }

    /// Lease one visible message, if there is one, without waiting.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// let q = Queue::create(dir.path().join("q"), &Config::default())?;
    /// assert!(q.try_receive().is_none());
    /// q.send("hello")?;
    /// let lease = q.try_receive().expect("a message");
    /// assert_eq!(lease.payload(), b"hello");
    /// lease.ack()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_receive(&self) -> Option<Lease> {
        let mut buf = Vec::new();
        let d = self.try_receive_into(&mut buf, None)?;
        Some(Lease::new(self.clone(), d, buf))
    }

    /// Lease one message, waiting up to `wait` for one to become visible.
    /// `None` when nothing came within `wait`, or the handle was
    /// [shut down](Self::shutdown). The lease lasts the queue's visibility
    /// timeout; it owns what it needs, so it can move to another thread.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// use std::time::Duration;
    /// let q = Queue::create(dir.path().join("q"), &Config::default())?;
    /// q.send("resize image 7")?;
    /// let lease = q.receive(Duration::from_secs(1)).expect("a message");
    /// // Work on it in another thread, and ack it there.
    /// std::thread::spawn(move || lease.ack()).join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn receive(&self, wait: Duration) -> Option<Lease> {
        let mut buf = Vec::new();
        let d = self.receive_into(&mut buf, wait, None)?;
        Some(Lease::new(self.clone(), d, buf))
    }

    /// Leases, one after another, for as long as the handle is not
    /// [shut down](Self::shutdown): each `next` waits (parked, no CPU) until
    /// a message is visible. The worker loop of a consumer process.
    ///
    /// ```no_run
    /// use shmq::Queue;
    /// use std::time::Duration;
    /// let q = Queue::open("/dev/shm/emails.q")?;
    /// for lease in q.incoming() {
    ///     match std::str::from_utf8(lease.payload()) {
    ///         Ok(text) => { println!("{text}"); lease.ack()?; }
    ///         Err(_) => lease.dead_letter()?, // never will be valid: do not retry
    ///     }
    /// }
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn incoming(&self) -> Incoming {
        Incoming {
            queue: self.clone(),
        }
    }

    /// Like [`try_receive`](Self::try_receive), with the payload copied into
    /// `buf` (no allocation once `buf` has the capacity) and an optional lease
    /// length instead of the queue's visibility timeout (a [`Visibility`],
    /// in range by construction).
    pub fn try_receive_into(
        &self,
        buf: &mut Vec<u8>,
        visibility: Option<Visibility>,
    ) -> Option<Delivery> {
        self.try_once(self.vt_ms(visibility), buf, SWEEP_STEP)
    }

    /// Like [`receive`](Self::receive), into `buf`. Spins briefly, then parks
    /// on the queue's futex word until a sender wakes it, `wait` passes, or
    /// the handle is [shut down](Self::shutdown).
    pub fn receive_into(
        &self,
        buf: &mut Vec<u8>,
        wait: Duration,
        visibility: Option<Visibility>,
    ) -> Option<Delivery> {
        let vt = self.vt_ms(visibility);
        // A message there already: one clock read in all (the coarse one of
        // `try_once`); the wait's own clock starts only when it has to.
        if let Some(d) = self.try_once(vt, buf, SWEEP_STEP) {
            return Some(d);
        }
        let start = Instant::now();
        // Spin with exponential backoff between polls (yielding the CPU once
        // the backoff is long), then park.
        let backoff = crossbeam_utils::Backoff::new();
        for _ in 0..self.inner.spin_tries.load(LocalOrdering::Relaxed) {
            if let Some(d) = self.try_once(vt, buf, SWEEP_STEP) {
                return Some(d);
            }
            if start.elapsed() >= wait || self.is_shut_down() {
                return None;
            }
            backoff.snooze();
        }
        let park = &self.inner.ring.shared().park;
        loop {
            if let Some(d) = self.try_once(vt, buf, SWEEP_STEP) {
                return Some(d);
            }
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return None;
            }
            let w = park.load(SeqCst);
            // After the load of the futex word: see `shutdown`.
            if self.is_shut_down() {
                return None;
            }
            if w & 1 == 0 && park.compare_exchange(w, w | 1, SeqCst, Relaxed).is_err() {
                continue;
            }
            // SYNC POINT (§6): the waiter bit is set (SeqCst) before this last
            // look; a sender publishing after it will see the bit and wake us.
            fence(SeqCst);
            // Before sleeping, finish the sweep lap (bounded by the slot count).
            if let Some(d) = self.last_look(vt, buf) {
                return Some(d);
            }
            let now = now_ms();
            let due = self.inner.ring.shared().sweep_due.load(Relaxed);
            let until_sweep = Duration::from_millis(due.saturating_sub(now).max(1));
            // Returns on a wake, a timeout or a signal (EINTR); the loop looks
            // again and re-checks the shutdown flag either way.
            futex_wait(park, w | 1, left.min(until_sweep));
        }
    }

    // ------------------------------------------- ack, nack, extend, reject

    /// Delete the message the receipt leases.
    ///
    /// # Errors
    ///
    /// [`Error::LeaseLost`] if the lease is over (acked, released, or expired
    /// and taken by another receiver); [`Error::BadReceipt`] for a receipt
    /// naming a slot this queue does not have.
    pub fn ack(&self, receipt: Receipt) -> Result<()> {
        self.inner.ring.ack(receipt, now_ms())
    }

    /// Release the lease: the message is visible again after `delay` (at
    /// most [`MAX_DELAY`]; zero: at once), or dead if it reached max
    /// receives.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack), and [`Error::OutOfRange`] for a delay over
    /// [`MAX_DELAY`] (the lease is left as it was).
    pub fn nack(&self, receipt: Receipt, delay: Duration) -> Result<Nacked> {
        let ms = checked_ms("nack delay", delay, 0, MAX_TIMEOUT_MS)?;
        let r = self.inner.ring.nack(receipt, ms, now_ms())?;
        if r == Nacked::Requeued && ms == 0 {
            self.wake_parked();
        }
        if r == Nacked::DeadLettered {
            self.move_dead_letters(Some(receipt.slot));
        }
        Ok(r)
    }

    /// Extend the lease to `timeout` from now (1 ms ..= 12 h). Returns the
    /// new deadline in CLOCK_MONOTONIC milliseconds (see
    /// [`Lease::remaining`] for a duration).
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack), and [`Error::OutOfRange`] for a timeout outside
    /// 1 ms ..= 12 h (the lease is left as it was).
    pub fn extend(&self, receipt: Receipt, timeout: Duration) -> Result<u64> {
        let ms = checked_ms("lease extension", timeout, 1, MAX_TIMEOUT_MS)?;
        self.inner.ring.extend(receipt, ms, now_ms())
    }

    /// Dead-letter the leased message at once, whatever its receive count
    /// (reason [`DeadReason::Rejected`]): for a message that can never
    /// succeed, as AMQP's `basic.reject` without requeue. It stays in the
    /// queue's dead letters for inspection, [`redrive`](Self::redrive) or
    /// [`purge`](Self::purge).
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack).
    pub fn dead_letter(&self, receipt: Receipt) -> Result<()> {
        self.inner.ring.reject(receipt, now_ms())?;
        self.move_dead_letters(Some(receipt.slot));
        Ok(())
    }

    // ------------------------------------------------------- dead letters

    /// Every dead message, oldest id first (a scan of every slot).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, DeadReason, Queue};
    /// use std::time::Duration;
    /// let q = Queue::create(dir.path().join("q"), &Config::default().max_receives(1))?;
    /// q.send("bad input")?;
    /// q.try_receive().unwrap().nack(Duration::ZERO)?; // its one delivery failed
    /// let dead = q.dead_letters();
    /// assert_eq!(dead[0].reason, DeadReason::MaxReceives);
    /// assert_eq!(dead[0].payload, b"bad input");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        crate::observe::dead_letters(self.inner.ring.memory(), self.inner.ring.params())
    }

    fn find_dead(&self, id: u64) -> Option<(u32, u64)> {
        (0..self.inner.ring.slot_count()).find_map(|i| {
            let info = self.inner.ring.info(i);
            (info.state == Some(St::Dead) && !info.corrupt && info.id == id)
                .then_some((i, info.gen))
        })
    }

    /// Make the dead message `id` visible again, with its receive count reset.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchMessage`] if no dead message has this id (it was
    /// redriven or purged already); [`Error::NotRedrivable`] if it was
    /// quarantined (reason `Corrupt` or `Recovered`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// let id = q.send("fixed now")?;
    /// q.try_receive().unwrap().dead_letter()?;
    /// q.redrive(id)?;
    /// let again = q.try_receive().unwrap();
    /// assert_eq!((again.id(), again.receives()), (id, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redrive(&self, id: u64) -> Result<()> {
        let (i, gen) = self.find_dead(id).ok_or(Error::NoSuchMessage { id })?;
        if self.inner.ring.redrive(i, Some(gen), now_ms())? {
            self.wake_parked();
            Ok(())
        } else {
            Err(Error::NoSuchMessage { id })
        }
    }

    /// Redrive up to `limit` dead messages, oldest first. Returns how many.
    /// Quarantined dead letters (reason `Corrupt` or `Recovered`) are left
    /// dead: they hold no message known to have been sent whole.
    ///
    /// # Errors
    ///
    /// [`Error::Contended`] if another process kept changing a slot.
    pub fn redrive_all(&self, limit: usize) -> Result<usize> {
        // Oldest first, from a scan that copies no payload: 16 bytes per
        // dead letter, whatever the slot size (issue 9, item 10).
        let mut dead: Vec<(u64, u32, u64)> = (0..self.inner.ring.slot_count())
            .filter_map(|i| {
                let info = self.inner.ring.info(i);
                (info.state == Some(St::Dead) && !info.corrupt).then_some((info.id, i, info.gen))
            })
            .collect();
        dead.sort_unstable();
        let mut done = 0;
        for (_, slot, gen) in dead {
            if done == limit {
                break;
            }
            // Quarantined dead letters are not messages to redrive: skipped.
            match self.inner.ring.redrive(slot, Some(gen), now_ms()) {
                Ok(true) => done += 1,
                Ok(false) | Err(Error::NotRedrivable { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if done > 0 {
            self.wake_parked();
        }
        Ok(done)
    }

    /// Delete the dead message `id`.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchMessage`] if no dead message has this id.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// let id = q.send("junk")?;
    /// q.try_receive().unwrap().dead_letter()?;
    /// q.purge(id)?;
    /// assert!(q.dead_letters().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn purge(&self, id: u64) -> Result<()> {
        let (i, gen) = self.find_dead(id).ok_or(Error::NoSuchMessage { id })?;
        if self.inner.ring.purge(i, Some(gen), now_ms())? {
            Ok(())
        } else {
            Err(Error::NoSuchMessage { id })
        }
    }

    /// Delete up to `limit` dead messages. Returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Contended`] if another process kept changing a slot.
    pub fn purge_all(&self, limit: usize) -> Result<usize> {
        let mut done = 0;
        for i in 0..self.inner.ring.slot_count() {
            if done >= limit {
                break;
            }
            if self.inner.ring.purge(i, None, now_ms())? {
                done += 1;
            }
        }
        Ok(done)
    }

    // -------------------------------------------------------------- reading

    /// Up to `limit` visible messages, oldest id first, read without leasing
    /// them (a scan of every slot).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// q.send("first")?;
    /// q.send("second")?;
    /// let shown = q.peek(1);
    /// assert_eq!(shown[0].payload, b"first");
    /// assert_eq!(q.stats().visible, 2, "peek leases nothing");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peek(&self, limit: usize) -> Vec<Peeked> {
        let c = &self.inner.config;
        crate::observe::peek(self.inner.ring.memory(), c.slot_size, c.max_receives, limit)
    }

    /// A snapshot of slot `i`; `None` if there is no such slot (for the
    /// tool's `inspect` and the tests).
    #[doc(hidden)]
    pub fn slot_info(&self, i: u32) -> Option<SlotInfo> {
        (i < self.inner.ring.slot_count()).then(|| self.inner.ring.info(i))
    }

    /// Counts by state (a scan of every slot) and the header's counters.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// q.send("a")?;
    /// q.send("b")?;
    /// let lease = q.try_receive().unwrap();
    /// let st = q.stats();
    /// assert_eq!((st.visible, st.in_flight, st.sent), (1, 1, 2));
    /// # drop(lease);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        crate::observe::stats(self.inner.ring.memory(), self.inner.config.max_receives)
    }

    /// An O(1) estimate of the messages in the queue that are not dead
    /// (visible, delayed or in flight), from the header's counters: sends
    /// plus redrives, less acks and dead-letterings. Four loads, no scan:
    /// for monitoring loops. Approximate: the counters are read one after
    /// another while others change them, quarantined messages are not
    /// counted out, and a process built before the `redriven` counter
    /// existed does not count its redrives. [`stats`](Self::stats) scans
    /// every slot for the exact figures.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// q.send("a")?;
    /// q.send("b")?;
    /// q.try_receive().unwrap().ack()?;
    /// assert_eq!(q.depth_estimate(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn depth_estimate(&self) -> u64 {
        let sh = self.inner.ring.shared();
        // No ordering with anything: counters, each read once.
        let added = sh
            .sent
            .load(Relaxed)
            .wrapping_add(sh.redriven.load(Relaxed));
        let gone = sh
            .acked
            .load(Relaxed)
            .wrapping_add(sh.dead_lettered.load(Relaxed));
        added.saturating_sub(gone)
    }
}

/// What the async futures (asynk.rs, §6 "Async waiters") need of a handle.
#[cfg(feature = "tokio")]
impl Queue {
    pub(crate) fn waiters(&self) -> &crate::asynk::Waiters {
        &self.inner.waiters
    }

    /// The futex word receivers park on (§6).
    pub(crate) fn park_word(&self) -> &AtomicU32 {
        &self.inner.ring.shared().park
    }

    /// The futex word senders waiting for room park on (§5.1).
    pub(crate) fn room_word(&self) -> &AtomicU32 {
        &self.inner.ring.shared().room
    }

    /// When the next sweep round is due (CLOCK_MONOTONIC ms).
    pub(crate) fn sweep_due_ms(&self) -> u64 {
        self.inner.ring.shared().sweep_due.load(Relaxed)
    }

    /// The last look of a receiver about to wait: `try_receive`, finishing
    /// the sweep lap as `receive_into` does before it parks.
    pub(crate) fn try_receive_last_look(&self) -> Option<Lease> {
        let mut buf = Vec::new();
        let d = self.last_look(self.vt_ms(None), &mut buf)?;
        Some(Lease::new(self.clone(), d, buf))
    }

    /// Set the waiter bit of `room`; the value to wait on (§5.1).
    pub(crate) fn room_wait_word(&self) -> u32 {
        self.inner.ring.room_wait_word()
    }

    /// The last look of a sender about to wait for room (as `send_until`).
    pub(crate) fn send_last_look(&self, msg: &[u8]) -> Result<u64, SendError> {
        let id = self
            .inner
            .ring
            .send_looking(msg, 0, now_ms())
            .map_err(SendError::from_core)?;
        self.wake_parked();
        self.sent(id)
    }
}

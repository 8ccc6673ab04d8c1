//! `Queue`: create and open queue files, and the public operations on them.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::clock::{boot_id, now_ms, pid_alive, unix_ms};
use crate::error::{Error, Result, SendError};
use crate::layout::*;
use crate::lease::Lease;
use crate::ring::{DeadReason, Delivery, Nacked, Params, Receipt, Ring, SlotInfo, SWEEP_STEP};
use crate::slot::St;
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering::*};
use crate::wait::{futex_wait, futex_wake_all};

/// How a queue is made. Read back from the file by [`Queue::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
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
        }
    }
}

impl Config {
    /// A configuration with `slots` slots of `slot_size` bytes, defaults elsewhere.
    pub fn new(slots: u32, slot_size: u32) -> Config {
        Config {
            slots,
            slot_size,
            ..Config::default()
        }
    }
    /// Set the visibility timeout.
    pub fn visibility_timeout(mut self, d: Duration) -> Config {
        self.visibility_timeout = d;
        self
    }
    /// Set max receives.
    pub fn max_receives(mut self, n: u32) -> Config {
        self.max_receives = n;
        self
    }
    /// Set the file mode.
    pub fn mode(mut self, mode: u32) -> Config {
        self.mode = mode;
        self
    }
    /// Turn payload checksums on or off.
    pub fn checksums(mut self, on: bool) -> Config {
        self.checksums = on;
        self
    }
    /// Set the claim timeout.
    pub fn claim_timeout(mut self, d: Duration) -> Config {
        self.claim_timeout = d;
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

    fn file_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.slots) * slot_stride(self.slot_size) as u64
    }
}

/// What `stats` reports: a scan of every slot plus the header's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Number of slots.
    pub capacity: u64,
    /// Slots with no message.
    pub free: u64,
    /// Messages visible now.
    pub visible: u64,
    /// Messages leased to a receiver.
    pub in_flight: u64,
    /// Messages sent with a delay (or nacked with one) not yet visible.
    pub delayed: u64,
    /// Dead messages.
    pub dead: u64,
    /// Slots a sender is writing.
    pub writing: u64,
    /// Abandoned claims waiting for their owner to go.
    pub abandoned: u64,
    /// Slots with a transition in flight or corrupt words.
    pub other: u64,
    /// Sends that returned Ok.
    pub sent: u64,
    /// Acks.
    pub acked: u64,
    /// Deliveries of messages received before.
    pub redelivered: u64,
    /// Messages dead-lettered at max receives.
    pub dead_lettered: u64,
    /// Age of the oldest visible message.
    pub oldest_visible_age: Option<Duration>,
}

/// A dead message, read without changing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Message id.
    pub id: u64,
    /// Slot and generation (redrive and purge check them).
    pub receipt: Receipt,
    /// Deliveries before it died.
    pub receives: u32,
    /// When it died, host clock milliseconds.
    pub died_ms: u64,
    /// Why.
    pub reason: DeadReason,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A message read without leasing it (`peek`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peeked {
    /// Message id.
    pub id: u64,
    /// Deliveries so far.
    pub receives: u32,
    /// Send time, host clock milliseconds.
    pub sent_ms: u64,
    /// The payload.
    pub payload: Vec<u8>,
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
    fn shared(&self) -> &Shared {
        self.at(OFF_SHARED)
    }
    fn slot_count(&self) -> u32 {
        self.n
    }
    fn slot(&self, i: u32) -> &SlotWords {
        assert!(i < self.n);
        self.at(HEADER_LEN + i as usize * self.stride)
    }
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
}

/// A queue file, mapped. `Send + Sync`: threads share one `Queue` and compete
/// exactly as processes do.
pub struct Queue {
    ring: Ring<MapMemory>,
    path: PathBuf,
    file: File,
    config: Config,
    identity: u64,
    spin_tries: u32,
}

thread_local! {
    static RECEIVES: Cell<u32> = const { Cell::new(0) };
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> Error + 'p {
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

/// The queue's identity: its creation time in Unix milliseconds (high 44
/// bits, enough until the year 2527) and its header checksum (low 20 bits
/// folded in). Stable for the file's life, different for a file created again
/// at the same path.
fn identity_of(b: &[u8; OFF_SHARED]) -> u64 {
    let created = le64(b, OFF_CREATED_MS);
    let crc = u64::from(le32(b, OFF_HEADER_CRC));
    (created << 20) ^ crc
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
    let flags = if cfg.checksums { FLAG_CHECKSUMS } else { 0 };
    b[OFF_FLAGS..OFF_FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
    b[OFF_SLOT_COUNT..OFF_SLOT_COUNT + 4].copy_from_slice(&cfg.slots.to_le_bytes());
    b[OFF_SLOT_SIZE..OFF_SLOT_SIZE + 4].copy_from_slice(&cfg.slot_size.to_le_bytes());
    b[OFF_SLOT_STRIDE..OFF_SLOT_STRIDE + 4]
        .copy_from_slice(&(slot_stride(cfg.slot_size) as u32).to_le_bytes());
    b[OFF_MAX_RECEIVES..OFF_MAX_RECEIVES + 4].copy_from_slice(&cfg.max_receives.to_le_bytes());
    b[OFF_VISIBILITY_MS..OFF_VISIBILITY_MS + 8]
        .copy_from_slice(&(cfg.visibility_timeout.as_millis() as u64).to_le_bytes());
    b[OFF_CLAIM_MS..OFF_CLAIM_MS + 8]
        .copy_from_slice(&(cfg.claim_timeout.as_millis() as u64).to_le_bytes());
    b[OFF_CREATED_MS..OFF_CREATED_MS + 8].copy_from_slice(&unix_ms().to_le_bytes());
    b[OFF_FILE_LEN..OFF_FILE_LEN + 8].copy_from_slice(&cfg.file_len().to_le_bytes());
    let crc = crc32fast::hash(&b[..CRC_COVERED]);
    b[OFF_HEADER_CRC..OFF_HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
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
    if flags & !FLAG_CHECKSUMS != 0 {
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

/// Whether a READY slot's message is visible: its time has come, or it was
/// sent without a delay (as the receive path judges it, ring.rs `visible`).
fn visible_now(info: &SlotInfo, now: u64) -> bool {
    info.time_ms <= now || info.time_ms <= info.sent_ms
}

/// How long `open` waits for a concurrent creator to finish the header.
const INIT_WAIT: Duration = Duration::from_secs(2);

impl Queue {
    /// Create a new queue file at `path`. Fails with `AlreadyExists` if there
    /// is a file there. The file is preallocated, so a full disk fails here
    /// rather than with SIGBUS later.
    pub fn create(path: impl AsRef<Path>, config: &Config) -> Result<Queue> {
        let path = path.as_ref();
        config.validate()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(config.mode)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                    path: path.to_path_buf(),
                },
                _ => Error::Io {
                    op: "create",
                    path: path.to_path_buf(),
                    source: e,
                },
            })?;
        match Self::init(path, file, config) {
            Ok(q) => Ok(q),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    fn init(path: &Path, file: File, config: &Config) -> Result<Queue> {
        // The umask may have cleared bits of the mode; set exactly what was asked.
        file.set_permissions(std::fs::Permissions::from_mode(config.mode))
            .map_err(io_err("chmod", path))?;
        let len = config.file_len();
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
        let map = MmapOptions::new()
            .map_raw(&file)
            .map_err(io_err("mmap", path))?;
        let mem = MapMemory {
            map,
            n: config.slots,
            stride: slot_stride(config.slot_size),
        };
        for i in 0..config.slots {
            let w = mem.slot(i);
            w.state.store(crate::slot::pack_state(0, St::Free), Relaxed);
            w.clock.store(crate::slot::pack_clock(0, 0), Relaxed);
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
        Ok(Self::from_parts(
            path,
            file,
            mem,
            config.clone(),
            identity_of(&header),
        ))
    }

    fn from_parts(path: &Path, file: File, mem: MapMemory, config: Config, identity: u64) -> Queue {
        let params = Params {
            slot_size: config.slot_size,
            max_receives: config.max_receives,
            visibility_ms: config.visibility_timeout.as_millis() as u64,
            claim_ms: config.claim_timeout.as_millis() as u64,
            checksums: config.checksums,
            pid: std::process::id(),
            is_alive: pid_alive,
        };
        Queue {
            ring: Ring::new(mem, params),
            path: path.to_path_buf(),
            file,
            config,
            identity,
            spin_tries: 200,
        }
    }

    /// Open an existing queue file; its configuration is read from the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Queue> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
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
            })?;
        let started = Instant::now();
        let header = loop {
            let len = file.metadata().map_err(io_err("stat", path))?.len();
            let mut b = [0u8; OFF_SHARED];
            let got = if len >= HEADER_LEN as u64 {
                file.read_exact_at(&mut b, 0)
                    .map_err(io_err("read header", path))?;
                decode_header(&b, len)
            } else if len == 0 || (len as usize) < OFF_SHARED {
                Err(HeaderError::Uninitialised)
            } else {
                file.read_exact_at(&mut b, 0)
                    .map_err(io_err("read header", path))?;
                match decode_header(&b, len) {
                    Err(HeaderError::Uninitialised) => Err(HeaderError::Uninitialised),
                    Err(e) => Err(e),
                    Ok(_) => Err(HeaderError::Corrupt(format!(
                        "file is {len} bytes, shorter than its header"
                    ))),
                }
            };
            match got {
                Ok(h) => break h,
                Err(HeaderError::Uninitialised) if started.elapsed() < INIT_WAIT => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(HeaderError::Uninitialised) => {
                    return Err(Error::NotInitialised {
                        path: path.to_path_buf(),
                    })
                }
                Err(HeaderError::BadMagic) => {
                    return Err(Error::NotAQueue {
                        path: path.to_path_buf(),
                    })
                }
                Err(HeaderError::Version(found)) => {
                    return Err(Error::Incompatible {
                        path: path.to_path_buf(),
                        found,
                        supported: FORMAT_VERSION,
                    })
                }
                Err(HeaderError::Corrupt(what)) => {
                    return Err(Error::Corrupt {
                        path: path.to_path_buf(),
                        what,
                    })
                }
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
        let mem = MapMemory {
            map,
            n: config.slots,
            stride: slot_stride(config.slot_size),
        };
        let q = Self::from_parts(path, file, mem, config, header.identity);
        q.check_boot()?;
        Ok(q)
    }

    /// Open the queue at `path`, creating it with `config` if there is none.
    /// An existing file keeps its own configuration.
    pub fn open_or_create(path: impl AsRef<Path>, config: &Config) -> Result<Queue> {
        let path = path.as_ref();
        match Queue::create(path, config) {
            Err(Error::AlreadyExists { .. }) => Queue::open(path),
            other => other,
        }
    }

    /// After a reboot the clock words are meaningless: reset them (§7).
    fn check_boot(&self) -> Result<()> {
        let host = boot_id();
        let sh = self.ring.shared();
        let same =
            || sh.boot_id[0].load(Acquire) == host[0] && sh.boot_id[1].load(Acquire) == host[1];
        if same() {
            return Ok(());
        }
        let fd = self.file.as_raw_fd();
        // SAFETY: a valid fd we own; flock takes a kernel lock (not in the
        // mapping) that the kernel drops if we die.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(Error::Io {
                op: "lock",
                path: self.path.clone(),
                source: io::Error::last_os_error(),
            });
        }
        if !same() {
            self.ring.reset_clocks();
            sh.boot_id[0].store(host[0], Release);
            sh.boot_id[1].store(host[1], Release);
        }
        // SAFETY: as above; unlocking a lock we hold.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A number that names this queue file for its whole life: the same in
    /// every process that opens it, different for a queue created again at
    /// the same path (it is derived from the creation time and the header).
    /// Message ids are unique within one identity, so `(identity, id)` names
    /// a message across queues (the bridge uses it for de-duplication).
    pub fn identity(&self) -> u64 {
        self.identity
    }

    /// The queue's configuration (as read from the file).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The lock-free core (for the tool and tests).
    #[doc(hidden)]
    pub fn ring(&self) -> &Ring<MapMemory> {
        &self.ring
    }

    /// Record `pid` instead of this process as the owner of the claims and
    /// leases this handle takes. `recover` returns a lease whose owner is gone;
    /// a short-lived helper (such as `shmq recv` run from a script) names the
    /// long-lived process that really holds the work.
    pub fn set_owner_pid(&mut self, pid: u32) {
        self.ring.set_pid(pid);
    }

    /// How many times a blocking receive polls before it parks (default 200).
    pub fn set_spin_tries(&mut self, tries: u32) {
        self.spin_tries = tries;
    }

    // ----------------------------------------------------------------- send

    /// Send a message, visible at once. Returns its id. A full queue or an
    /// oversize message hands the message back in the error.
    pub fn send<T: AsRef<[u8]>>(&self, msg: T) -> Result<u64, SendError<T>> {
        self.send_delayed(msg, Duration::ZERO)
    }

    /// Send a message that becomes visible after `delay`.
    pub fn send_delayed<T: AsRef<[u8]>>(
        &self,
        msg: T,
        delay: Duration,
    ) -> Result<u64, SendError<T>> {
        match self
            .ring
            .send(msg.as_ref(), delay.as_millis() as u64, now_ms())
        {
            Ok(id) => {
                if delay.is_zero() {
                    self.wake_parked();
                }
                Ok(id)
            }
            Err(error) => Err(SendError {
                message: msg,
                error,
            }),
        }
    }

    /// Wake parked receivers, if any (§6). One load when nobody is parked.
    pub(crate) fn wake_parked(&self) {
        let park = &self.ring.shared().park;
        // SYNC POINT: SeqCst load after the SeqCst publish commit, against the
        // receiver's SeqCst CAS of the waiter bit before its last look.
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
        self.ring.try_receive(now_ms(), vt, buf, periodic, budget)
    }

    fn vt_ms(&self, visibility: Option<Duration>) -> u64 {
        let d = visibility.unwrap_or(self.config.visibility_timeout);
        (d.as_millis() as u64).clamp(1, MAX_TIMEOUT_MS)
    }

    /// Lease one visible message, if there is one, without waiting.
    pub fn try_receive(&self) -> Option<Lease<'_>> {
        let mut buf = Vec::new();
        let d = self.try_receive_into(&mut buf, None)?;
        Some(Lease::new(self, d, buf))
    }

    /// Lease one message, waiting up to `wait` for one to become visible.
    pub fn receive(&self, wait: Duration) -> Option<Lease<'_>> {
        let mut buf = Vec::new();
        let d = self.receive_into(&mut buf, wait, None)?;
        Some(Lease::new(self, d, buf))
    }

    /// Like [`try_receive`](Self::try_receive), with the payload copied into
    /// `buf` (no allocation once `buf` has the capacity) and an optional lease
    /// length instead of the queue's visibility timeout.
    pub fn try_receive_into(
        &self,
        buf: &mut Vec<u8>,
        visibility: Option<Duration>,
    ) -> Option<Delivery> {
        self.try_once(self.vt_ms(visibility), buf, SWEEP_STEP)
    }

    /// Like [`receive`](Self::receive), into `buf`. Spins briefly, then parks
    /// on the queue's futex word until a sender wakes it or `wait` passes.
    pub fn receive_into(
        &self,
        buf: &mut Vec<u8>,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Option<Delivery> {
        let vt = self.vt_ms(visibility);
        let start = Instant::now();
        // Spin with exponential backoff between polls (yielding the CPU once
        // the backoff is long), then park.
        let backoff = crossbeam_utils::Backoff::new();
        for _ in 0..self.spin_tries {
            if let Some(d) = self.try_once(vt, buf, SWEEP_STEP) {
                return Some(d);
            }
            if start.elapsed() >= wait {
                return None;
            }
            backoff.snooze();
        }
        let park = &self.ring.shared().park;
        let n = u64::from(self.ring.slot_count());
        loop {
            if let Some(d) = self.try_once(vt, buf, SWEEP_STEP) {
                return Some(d);
            }
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return None;
            }
            let w = park.load(SeqCst);
            if w & 1 == 0 && park.compare_exchange(w, w | 1, SeqCst, Relaxed).is_err() {
                continue;
            }
            // SYNC POINT (§6): the waiter bit is set (SeqCst) before this last
            // look; a sender publishing after it will see the bit and wake us.
            fence(SeqCst);
            // Before sleeping, finish the sweep lap (bounded by the slot count).
            if let Some(d) = self.try_once(vt, buf, n) {
                return Some(d);
            }
            let now = now_ms();
            let due = self.ring.shared().sweep_due.load(Relaxed);
            let until_sweep = Duration::from_millis(due.saturating_sub(now).max(1));
            futex_wait(park, w | 1, left.min(until_sweep));
        }
    }

    // ------------------------------------------------- ack, nack, extend

    /// Delete the message the receipt leases. `LeaseLost` if the lease is over.
    pub fn ack(&self, receipt: Receipt) -> Result<()> {
        self.ring.ack(receipt, now_ms())
    }

    /// Release the lease: the message is visible again after `delay` (or dead
    /// if it reached max receives).
    pub fn nack(&self, receipt: Receipt, delay: Duration) -> Result<Nacked> {
        let r = self
            .ring
            .nack(receipt, delay.as_millis() as u64, now_ms())?;
        if r == Nacked::Requeued && delay.is_zero() {
            self.wake_parked();
        }
        Ok(r)
    }

    /// Extend the lease to `timeout` from now. Returns the new deadline in
    /// host clock milliseconds.
    pub fn extend(&self, receipt: Receipt, timeout: Duration) -> Result<u64> {
        let ms = (timeout.as_millis() as u64).clamp(1, MAX_TIMEOUT_MS);
        self.ring.extend(receipt, ms, now_ms())
    }

    // ------------------------------------------------------- dead letters

    /// Every dead message, oldest id first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for i in 0..self.ring.slot_count() {
            if let Some(info) = self.ring.peek(i, &mut buf) {
                if info.state == Some(St::Dead) {
                    out.push(DeadLetter {
                        id: info.id,
                        receipt: Receipt {
                            slot: i,
                            gen: info.gen,
                        },
                        receives: info.receives,
                        died_ms: info.time_ms,
                        reason: DeadReason::from_code(info.reason),
                        payload: buf.clone(),
                    });
                }
            }
        }
        out.sort_by_key(|d| d.id);
        out
    }

    fn find_dead(&self, id: u64) -> Option<(u32, u64)> {
        (0..self.ring.slot_count()).find_map(|i| {
            let info = self.ring.info(i);
            (info.state == Some(St::Dead) && !info.pending && !info.corrupt && info.id == id)
                .then_some((i, info.gen))
        })
    }

    /// Make the dead message `id` visible again, with its receive count reset.
    pub fn redrive(&self, id: u64) -> Result<()> {
        let (i, gen) = self.find_dead(id).ok_or(Error::NoSuchMessage { id })?;
        if self.ring.redrive(i, Some(gen), now_ms())? {
            self.wake_parked();
            Ok(())
        } else {
            Err(Error::NoSuchMessage { id })
        }
    }

    /// Redrive up to `limit` dead messages, oldest first. Returns how many.
    pub fn redrive_all(&self, limit: usize) -> Result<usize> {
        let mut done = 0;
        for d in self.dead_letters().into_iter().take(limit) {
            if self
                .ring
                .redrive(d.receipt.slot, Some(d.receipt.gen), now_ms())?
            {
                done += 1;
            }
        }
        if done > 0 {
            self.wake_parked();
        }
        Ok(done)
    }

    /// Delete the dead message `id`.
    pub fn purge(&self, id: u64) -> Result<()> {
        let (i, gen) = self.find_dead(id).ok_or(Error::NoSuchMessage { id })?;
        if self.ring.purge(i, Some(gen), now_ms())? {
            Ok(())
        } else {
            Err(Error::NoSuchMessage { id })
        }
    }

    /// Delete up to `limit` dead messages. Returns how many.
    pub fn purge_all(&self, limit: usize) -> Result<usize> {
        let mut done = 0;
        for i in 0..self.ring.slot_count() {
            if done >= limit {
                break;
            }
            if self.ring.purge(i, None, now_ms())? {
                done += 1;
            }
        }
        Ok(done)
    }

    // -------------------------------------------------------------- reading

    /// Visible messages, oldest id first, read without leasing them.
    pub fn peek(&self, limit: usize) -> Vec<Peeked> {
        let now = now_ms();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for i in 0..self.ring.slot_count() {
            if let Some(info) = self.ring.peek(i, &mut buf) {
                if info.state == Some(St::Ready) && visible_now(&info, now) {
                    out.push(Peeked {
                        id: info.id,
                        receives: info.receives,
                        sent_ms: info.sent_ms,
                        payload: buf.clone(),
                    });
                }
            }
        }
        out.sort_by_key(|p| p.id);
        out.truncate(limit);
        out
    }

    /// A snapshot of slot `i`; `None` if there is no such slot.
    pub fn slot_info(&self, i: u32) -> Option<SlotInfo> {
        (i < self.ring.slot_count()).then(|| self.ring.info(i))
    }

    /// Counts by state (a scan of every slot) and the header's counters.
    pub fn stats(&self) -> Stats {
        let now = now_ms();
        let mut st = Stats {
            capacity: u64::from(self.ring.slot_count()),
            ..Stats::default()
        };
        let mut oldest: Option<u64> = None;
        for i in 0..self.ring.slot_count() {
            let info = self.ring.info(i);
            if info.pending || info.corrupt {
                st.other += 1;
                continue;
            }
            match info.state {
                Some(St::Free) => st.free += 1,
                Some(St::Writing) => st.writing += 1,
                Some(St::Ready) if visible_now(&info, now) => {
                    st.visible += 1;
                    oldest = Some(oldest.map_or(info.sent_ms, |o| o.min(info.sent_ms)));
                }
                Some(St::Ready) => st.delayed += 1,
                Some(St::Leased) => st.in_flight += 1,
                Some(St::Dead) => st.dead += 1,
                Some(St::Abandoned) => st.abandoned += 1,
                None => st.other += 1,
            }
        }
        let sh = self.ring.shared();
        st.sent = sh.sent.load(Relaxed);
        st.acked = sh.acked.load(Relaxed);
        st.redelivered = sh.redelivered.load(Relaxed);
        st.dead_lettered = sh.dead_lettered.load(Relaxed);
        st.oldest_visible_age = oldest.map(|t| Duration::from_millis(now.saturating_sub(t)));
        st
    }
}

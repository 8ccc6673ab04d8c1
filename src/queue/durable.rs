//! Durable queues (docs/design.md §12): the file's side of group commit
//! (`fdatasync`, the futex, the clock), `sync`, and the checks a durable
//! queue's file must pass.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use super::{io_err, Queue};
use crate::clock::now_ms;
use crate::error::{Error, Result, SendError};
use crate::ring::SyncOps;
use crate::sync::AtomicU32;
use crate::wait::futex_wait;

/// The file's sync: `fdatasync` of the queue file (or, in tests built with
/// the `failpoints` feature, the hook a power-cut simulator installed).
pub(crate) struct FileSync<'a> {
    pub(crate) file: &'a File,
    pub(crate) path: &'a Path,
}

impl SyncOps for FileSync<'_> {
    fn sync(&self) -> std::result::Result<(), i32> {
        #[cfg(all(feature = "failpoints", not(loom)))]
        if let Some(r) = crate::failpoint::sync_hook(self.path) {
            return r.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
        }
        let _ = self.path;
        fdatasync(self.file)
    }
    fn park(&self, word: &AtomicU32, expected: u32, ms: u64) {
        futex_wait(word, expected, Duration::from_millis(ms));
    }
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// `fdatasync(fd)`, retried on EINTR. It writes back every dirty page of the
/// file, those dirtied through a shared mapping included (msync(MS_SYNC)
/// is the same call on Linux).
pub(crate) fn fdatasync(file: &File) -> std::result::Result<(), i32> {
    loop {
        // SAFETY: a valid fd the caller's `File` owns for the call.
        if unsafe { libc::fdatasync(file.as_raw_fd()) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e.raw_os_error().unwrap_or(libc::EIO));
        }
    }
}

/// The name of the memory-only file system `file` is on (tmpfs, ramfs),
/// or `None` for any other.
pub(crate) fn volatile_fs(file: &File) -> Option<&'static str> {
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a valid, writable statfs.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return None;
    }
    // f_type's width differs between architectures; the magics fit 32 bits.
    match st.f_type as u64 as u32 {
        0x0102_1994 => Some("tmpfs"),
        0x8584_58f6 => Some("ramfs"),
        _ => None,
    }
}

/// Refuse a durable queue on a memory-only file system (§12.4).
pub(crate) fn check_storage(file: &File, path: &Path) -> Result<()> {
    match volatile_fs(file) {
        Some(fs) => Err(Error::VolatileStorage {
            path: path.to_path_buf(),
            fs,
        }),
        None => Ok(()),
    }
}

/// Write zeros over the first `len` bytes of a new durable queue's file,
/// so that its blocks are written extents and a later sync writes data
/// only, not extent conversions (§12.4). By 4 KiB `pwrite`s: larger writes
/// leave the page cache holding the file in large folios (up to 1 MiB on
/// kernels that make them), and a store through the mapping dirties its
/// whole folio, which every sync then writes back whole.
pub(crate) fn write_through(file: &File, path: &Path, len: u64) -> Result<()> {
    let zeros = vec![0u8; 4096];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(io_err("write the file through", path))?;
        at += n as u64;
    }
    Ok(())
}

/// Ask the kernel not to read ahead around faults of a durable queue's
/// mapping, so that pages it faults in come as single 4 KiB folios (a sync
/// writes back whole folios; see [`write_through`]). Advice only: an error
/// changes nothing that matters for correctness.
pub(crate) fn advise_random(map: &memmap2::MmapRaw) {
    // SAFETY: the address and length are those of a live mapping we own;
    // MADV_RANDOM changes only the kernel's read-ahead for it.
    unsafe {
        libc::madvise(map.as_mut_ptr().cast(), map.len(), libc::MADV_RANDOM);
    }
}

/// `fsync` the directory holding `path`, so that a new queue's name
/// survives a power cut (§12.4).
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let d = File::open(dir).map_err(io_err("open the directory to sync it", path))?;
    d.sync_all().map_err(io_err("sync the directory of", path))
}

impl Queue {
    /// Whether this queue is durable (`Config::durable`): its sends return
    /// only once the message is on stable storage.
    pub fn is_durable(&self) -> bool {
        self.inner.config.durable
    }

    fn file_sync(&self) -> FileSync<'_> {
        FileSync {
            file: &self.inner.file,
            path: &self.inner.path,
        }
    }

    /// Make every message sent so far (by any process) durable: returns
    /// once a sync that began after the call completed. Concurrent callers
    /// and durable senders, in any process, share one `fdatasync` (group
    /// commit, docs/design.md §12). For a queue that is not durable, this
    /// is how a producer that batches makes a batch durable; on a durable
    /// queue every send already is.
    ///
    /// Acks, nacks, dead-letterings and redrives are never synced on their
    /// own: they ride on the next sync, and a power cut before it can undo
    /// them (an acked message is then delivered again, which at-least-once
    /// allows; a sent one is never lost).
    ///
    /// # Errors
    ///
    /// [`Error::SyncFailed`] if the sync failed, now or before (the queue
    /// records it; `shmq recover` clears it).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// let q = Queue::create(dir.path().join("events.q"), &Config::default())?;
    /// for i in 0..100 {
    ///     q.send(&format!("event {i}"))?;
    /// }
    /// q.sync()?; // all 100 are on disk now
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync(&self) -> Result<()> {
        let ring = &self.inner.ring;
        if let Some(errno) = ring.sync_failure() {
            return Err(self.sync_failed(errno));
        }
        let target = ring.sync_target();
        ring.wait_synced(target, &self.file_sync())
            .map_err(|errno| self.sync_failed(errno))
    }

    pub(crate) fn sync_failed(&self, errno: i32) -> Error {
        Error::SyncFailed {
            path: self.inner.path.clone(),
            errno,
        }
    }

    /// The error of a failed sync this queue recorded, if any: durable
    /// sends and [`sync`](Self::sync) fail until
    /// [`clear_sync_failure`](Self::clear_sync_failure) (`shmq recover`)
    /// clears it.
    pub fn sync_failure(&self) -> Option<io::Error> {
        self.inner
            .ring
            .sync_failure()
            .map(io::Error::from_raw_os_error)
    }

    /// Clear a recorded sync failure (§12.3): write every page of the file
    /// again (an atomic no-op write per page, safe while other processes
    /// use the queue), sync, and clear the failure only if that sync
    /// succeeds. `Ok(false)`: there was none. `shmq recover` calls this.
    ///
    /// # Errors
    ///
    /// [`Error::SyncFailed`] if the sync failed again (the failure stays).
    pub fn clear_sync_failure(&self) -> Result<bool> {
        let mem = self.inner.ring.memory();
        self.inner
            .ring
            .clear_sync_failure(&|| mem.redirty(), &self.file_sync())
            .map_err(|errno| self.sync_failed(errno))
    }

    /// Before a durable send: refuse if a sync failed (nothing is sent).
    pub(crate) fn durable_refuses(&self) -> std::result::Result<(), SendError> {
        if self.inner.config.durable {
            if let Some(errno) = self.inner.ring.sync_failure() {
                return Err(SendError::SyncFailed { sent: None, errno });
            }
        }
        Ok(())
    }

    /// After a durable queue's publish of `id` (or of a batch ending with
    /// it): wait until a sync covers it.
    pub(crate) fn durable_wait(&self, id: u64) -> std::result::Result<u64, SendError> {
        #[cfg(shmq_mutation = "durable_no_wait")]
        return Ok(id);
        #[allow(unreachable_code)]
        {
            let ring = &self.inner.ring;
            let target = ring.sync_target();
            ring.wait_synced(target, &self.file_sync())
                .map(|()| id)
                .map_err(|errno| SendError::SyncFailed {
                    sent: Some(id),
                    errno,
                })
        }
    }
}

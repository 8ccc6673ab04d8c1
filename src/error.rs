//! Typed errors. Each message says what went wrong and, where the library
//! knows, what to do about it; the command-line tool adds advice of its own.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in shmq, but a send (see [`SendError`]).
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// A system call failed.
    Io {
        /// What was being done ("open", "mmap", "preallocate", ...).
        op: &'static str,
        /// The queue file.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// `create` found a file already there.
    AlreadyExists {
        /// The queue file.
        path: PathBuf,
    },
    /// `open` found no file.
    NotFound {
        /// The path that was opened.
        path: PathBuf,
    },
    /// The file does not start with shmq's magic bytes.
    NotAQueue {
        /// The file.
        path: PathBuf,
    },
    /// The file is a queue of a format version this build does not read.
    Incompatible {
        /// The queue file.
        path: PathBuf,
        /// The file's format version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The creator has not finished writing the header (or died while doing so).
    NotInitialised {
        /// The queue file.
        path: PathBuf,
    },
    /// The file's bytes contradict themselves.
    Corrupt {
        /// The queue file.
        path: PathBuf,
        /// What is inconsistent.
        what: String,
    },
    /// A configuration value is out of range.
    InvalidConfig(String),
    /// `open` refused a file it does not trust: owned by another user, or
    /// writable by every user (see [`OpenOptions`](crate::OpenOptions)).
    Untrusted {
        /// The queue file.
        path: PathBuf,
        /// Why it is not trusted.
        why: String,
    },
    /// `open_or_create` found a queue whose configuration differs from the
    /// one asked for.
    ConfigMismatch {
        /// The queue file.
        path: PathBuf,
        /// The first setting that differs (`slots`, `slot_size`, ...).
        field: &'static str,
        /// Its value in the file.
        found: String,
        /// The value asked for.
        wanted: String,
    },
    /// A duration (a nack delay, a lease extension) outside its range; the
    /// operation changed nothing.
    OutOfRange {
        /// Which duration.
        what: &'static str,
        /// The duration given.
        got: Duration,
        /// The shortest allowed.
        min: Duration,
        /// The longest allowed.
        max: Duration,
    },
    /// Every slot holds a message; nothing was sent (a batch send).
    Full,
    /// The message is larger than the queue's slot size (a batch send).
    TooLarge {
        /// The message's length in bytes.
        len: usize,
        /// The queue's slot size.
        max: usize,
    },
    /// The lease this receipt names is over: acked, released, or expired and
    /// given to another receiver.
    LeaseLost,
    /// The sender stalled past the claim timeout; its message was not sent.
    ClaimExpired,
    /// Another process kept changing the same word; the operation gave up.
    Contended,
    /// A receipt is another queue's, or names a slot the queue does not have.
    BadReceipt,
    /// The queue file was removed or replaced since this handle opened it;
    /// nothing was sent (see [`Queue::is_orphaned`](crate::Queue::is_orphaned)).
    Orphaned,
    /// No dead message has this id.
    NoSuchMessage {
        /// The id asked for.
        id: u64,
    },
    /// A dead letter that was quarantined (a corrupt slot, or a claim that
    /// `recover --force-abandoned` closed) holds no message known to have
    /// been sent whole: its slot may still show an older, acked message.
    /// It can be inspected and purged, not redriven.
    NotRedrivable {
        /// The dead letter's id, as its slot shows it.
        id: u64,
        /// Why it is dead.
        reason: crate::DeadReason,
    },
    /// A sync of the queue file to stable storage failed, now or earlier
    /// (docs/design.md §12.3). The failure is recorded in the file: durable
    /// sends and `sync` fail until `shmq recover` rewrites and syncs the
    /// file.
    SyncFailed {
        /// The queue file.
        path: PathBuf,
        /// The error `fdatasync` returned (EIO, ENOSPC, ...).
        errno: i32,
    },
    /// A durable queue on a file system that keeps files in memory only
    /// (tmpfs, ramfs): a reboot or power cut loses it, so durability
    /// would be a lie.
    VolatileStorage {
        /// The queue file.
        path: PathBuf,
        /// The file system's name.
        fs: &'static str,
    },
}

/// The name of an errno value, for messages ("EIO (Input/output error)").
pub(crate) fn errno_text(errno: i32) -> String {
    let name = match errno {
        libc::EIO => "EIO",
        libc::ENOSPC => "ENOSPC",
        libc::EDQUOT => "EDQUOT",
        libc::EROFS => "EROFS",
        libc::EBADF => "EBADF",
        libc::EINVAL => "EINVAL",
        _ => "errno",
    };
    format!("{name} ({})", io::Error::from_raw_os_error(errno))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::AlreadyExists { path } => write!(
                f,
                "{} already exists; open it, remove it, or choose another path",
                path.display()
            ),
            Error::NotFound { path } => {
                write!(f, "{} does not exist; create the queue first", path.display())
            }
            Error::NotAQueue { path } => write!(f, "{} is not a shmq queue file (bad magic bytes)", path.display()),
            Error::Incompatible { path, found, supported } if found < supported => write!(
                f,
                "{} has format version {found}, which this build (format {supported}) no longer reads; \
                 drain it with the shmq that created it, remove it, and create the queue again",
                path.display()
            ),
            Error::Incompatible { path, found, supported } => write!(
                f,
                "{} has format version {found}, newer than this build reads ({supported}); use a newer shmq",
                path.display()
            ),
            Error::NotInitialised { path } => write!(
                f,
                "{} is not initialised: its creator has not finished (or died); retry later",
                path.display()
            ),
            Error::Corrupt { path, what } => write!(
                f,
                "{} is corrupt: {what}",
                path.display()
            ),
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::Untrusted { path, why } => write!(
                f,
                "{} is not trusted: {why}; fix its owner or mode, or open it with OpenOptions that allow it",
                path.display()
            ),
            Error::ConfigMismatch { path, field, found, wanted } => write!(
                f,
                "{} exists with {field} {found}, not the {wanted} asked for; open it as it is or create the queue elsewhere",
                path.display()
            ),
            Error::OutOfRange { what, got, min, max } => write!(
                f,
                "{what} of {got:?} is out of range: it must be {min:?} ..= {max:?}"
            ),
            Error::Full => write!(f, "queue is full: every slot holds a message; retry after consumers catch up"),
            Error::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the slot size of {max} bytes")
            }
            Error::LeaseLost => write!(
                f,
                "lease lost: the message was acked, released, or its lease expired and it went to another receiver"
            ),
            Error::ClaimExpired => write!(
                f,
                "send stalled past the claim timeout and was abandoned; the message was not sent, send it again"
            ),
            Error::Contended => write!(f, "gave up after repeated interference on one slot; retry"),
            Error::BadReceipt => write!(f, "the receipt is not one of this queue's (another queue's, or a slot it does not have)"),
            Error::Orphaned => write!(
                f,
                "the queue file was removed or replaced since this handle opened it; nothing was sent: open the queue again"
            ),
            Error::NoSuchMessage { id } => write!(f, "no dead message with id {id}"),
            Error::NotRedrivable { id, reason } => write!(
                f,
                "dead message {id} was quarantined ({}): its slot holds no message known to have been sent whole, so it cannot be redriven; inspect it, then purge it",
                reason.name()
            ),
            Error::SyncFailed { path, errno } => write!(
                f,
                "syncing {} to stable storage failed: {}; messages sent since the last good sync may not be on disk, and durable sends fail until `shmq recover {}` rewrites and syncs the file (check the disk and its free space first)",
                path.display(),
                errno_text(*errno),
                path.display()
            ),
            Error::VolatileStorage { path, fs } => write!(
                f,
                "{} is on {fs}, which keeps files in memory: a durable queue there would not survive a reboot; put it on a disk file system (ext4, xfs, ...) or create it without durable",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a send failed. The message was borrowed by the send, so the caller
/// still has it and can retry it as it is. Exactly the failures a send can
/// have: a `match` needs no catch-all.
///
/// `SendError` is `'static`, `Send` and `Sync`, so `?` turns it into a
/// `Box<dyn Error>`, an `anyhow::Error`, an [`Error`] or an [`io::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Every slot holds a message (or, for a waiting send, still did when
    /// its wait ended). Retry after consumers catch up, or wait with
    /// [`Queue::send_timeout`](crate::Queue::send_timeout).
    Full,
    /// The message is larger than the queue's slot size.
    TooLarge {
        /// The message's length in bytes.
        len: usize,
        /// The queue's slot size.
        max: usize,
    },
    /// The delay is longer than [`MAX_DELAY`](crate::MAX_DELAY).
    DelayOutOfRange {
        /// The delay given.
        delay: Duration,
        /// The longest delay accepted.
        max: Duration,
    },
    /// The sender stalled (stopped, descheduled) past the claim timeout; the
    /// message was not sent: send it again.
    ClaimExpired,
    /// Another process kept changing the same word; nothing was sent: retry.
    Contended,
    /// The queue file was removed or replaced since this handle opened it
    /// ([`Queue::is_orphaned`](crate::Queue::is_orphaned)): nothing was
    /// sent. Open the queue again.
    Orphaned,
    /// A durable queue could not make the message durable: a sync of the
    /// file failed, now or earlier (docs/design.md §12.3).
    SyncFailed {
        /// `Some(id)`: the message was sent and may be delivered, but is
        /// not known to be on disk (sending it again may deliver it twice).
        /// `None`: the queue had recorded a failed sync, so nothing was
        /// sent; an operator must run `shmq recover` first.
        sent: Option<u64>,
        /// The error `fdatasync` returned.
        errno: i32,
    },
}

impl SendError {
    /// Whether the queue was full (retry later).
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full)
    }

    /// The send error the core's error stands for.
    pub(crate) fn from_core(e: Error) -> SendError {
        match e {
            Error::Full => SendError::Full,
            Error::TooLarge { len, max } => SendError::TooLarge { len, max },
            Error::ClaimExpired => SendError::ClaimExpired,
            // The core's send fails only in the ways above and with
            // `Contended` (a CAS retry bound); nothing else reaches here.
            _ => SendError::Contended,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SendError::Full => Error::Full.fmt(f),
            SendError::TooLarge { len, max } => Error::TooLarge { len, max }.fmt(f),
            SendError::DelayOutOfRange { delay, max } => write!(
                f,
                "send delay of {delay:?} is out of range: it must be at most {max:?}"
            ),
            SendError::ClaimExpired => Error::ClaimExpired.fmt(f),
            SendError::Contended => Error::Contended.fmt(f),
            SendError::Orphaned => Error::Orphaned.fmt(f),
            SendError::SyncFailed { sent: Some(id), errno } => write!(
                f,
                "message {id} was sent but syncing it to stable storage failed: {}; it may be delivered, or lost in a power cut; durable sends fail until `shmq recover` rewrites and syncs the file",
                errno_text(errno)
            ),
            SendError::SyncFailed { sent: None, errno } => write!(
                f,
                "nothing was sent: an earlier sync of this durable queue failed ({}); run `shmq recover` on the queue (after checking the disk) to rewrite and sync the file",
                errno_text(errno)
            ),
        }
    }
}

impl std::error::Error for SendError {}

impl From<SendError> for Error {
    fn from(e: SendError) -> Error {
        match e {
            SendError::Full => Error::Full,
            SendError::TooLarge { len, max } => Error::TooLarge { len, max },
            SendError::DelayOutOfRange { delay, max } => Error::OutOfRange {
                what: "send delay",
                got: delay,
                min: Duration::ZERO,
                max,
            },
            SendError::ClaimExpired => Error::ClaimExpired,
            SendError::Contended => Error::Contended,
            SendError::Orphaned => Error::Orphaned,
            SendError::SyncFailed { errno, .. } => Error::Io {
                op: "sync a durable send",
                path: PathBuf::new(),
                source: io::Error::from_raw_os_error(errno),
            },
        }
    }
}

impl From<SendError> for io::Error {
    fn from(e: SendError) -> io::Error {
        let kind = match e {
            SendError::Full => io::ErrorKind::WouldBlock,
            SendError::TooLarge { .. } | SendError::DelayOutOfRange { .. } => {
                io::ErrorKind::InvalidInput
            }
            SendError::ClaimExpired => io::ErrorKind::TimedOut,
            SendError::Contended => io::ErrorKind::Interrupted,
            SendError::Orphaned => io::ErrorKind::NotFound,
            SendError::SyncFailed { errno, .. } => io::Error::from_raw_os_error(errno).kind(),
        };
        io::Error::new(kind, e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Error::NotFound { .. } | Error::NoSuchMessage { .. } | Error::Orphaned => {
                io::ErrorKind::NotFound
            }
            Error::Full => io::ErrorKind::WouldBlock,
            Error::InvalidConfig(_)
            | Error::OutOfRange { .. }
            | Error::TooLarge { .. }
            | Error::BadReceipt
            | Error::NotRedrivable { .. }
            | Error::ConfigMismatch { .. } => io::ErrorKind::InvalidInput,
            Error::NotAQueue { .. } | Error::Incompatible { .. } | Error::Corrupt { .. } => {
                io::ErrorKind::InvalidData
            }
            Error::Untrusted { .. } => io::ErrorKind::PermissionDenied,
            Error::SyncFailed { errno, .. } => io::Error::from_raw_os_error(*errno).kind(),
            Error::VolatileStorage { .. } => io::ErrorKind::Unsupported,
            Error::ClaimExpired => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// A string that is not a receipt (`QUEUE-SLOT-GEN-ID`, as a receipt's `Display`
/// writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseReceiptError {
    pub(crate) input: String,
    pub(crate) what: &'static str,
}

impl fmt::Display for ParseReceiptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a receipt ({}); a receipt reads QUEUE-SLOT-GEN-ID (hexadecimal), as printed by a receive",
            self.input, self.what
        )
    }
}

impl std::error::Error for ParseReceiptError {}

/// `Result` with shmq's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

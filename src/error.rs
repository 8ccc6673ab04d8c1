//! Typed errors. Each message says what went wrong and what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in shmq.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// A system call failed.
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// `create` found a file already there.
    AlreadyExists { path: PathBuf },
    /// `open` found no file.
    NotFound { path: PathBuf },
    /// The file does not start with shmq's magic bytes.
    NotAQueue { path: PathBuf },
    /// The file is a queue of a format version this build does not read.
    Incompatible {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The creator has not finished writing the header (or died while doing so).
    NotInitialised { path: PathBuf },
    /// The file's bytes contradict themselves.
    Corrupt { path: PathBuf, what: String },
    /// A configuration value is out of range.
    InvalidConfig(String),
    /// Every slot holds a message; nothing was sent.
    Full,
    /// The message is larger than the queue's slot size.
    TooLarge { len: usize, max: usize },
    /// The lease this receipt names is over: acked, released, or expired and
    /// given to another receiver.
    LeaseLost,
    /// The sender stalled past the claim timeout; its message was not sent.
    ClaimExpired,
    /// Another process kept changing the same word; the operation gave up.
    Contended,
    /// A receipt names a slot the queue does not have.
    BadReceipt,
    /// No dead message has this id.
    NoSuchMessage { id: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::AlreadyExists { path } => write!(
                f,
                "{} already exists; open it, remove it, or use open-or-create",
                path.display()
            ),
            Error::NotFound { path } => {
                write!(f, "{} does not exist; create it first (shmq create)", path.display())
            }
            Error::NotAQueue { path } => write!(f, "{} is not a shmq queue file (bad magic bytes)", path.display()),
            Error::Incompatible { path, found, supported } => write!(
                f,
                "{} has format version {found}, this build reads version {supported}; use a matching shmq",
                path.display()
            ),
            Error::NotInitialised { path } => write!(
                f,
                "{} is not initialised: its creator has not finished (or died); retry, or remove the file and create it again",
                path.display()
            ),
            Error::Corrupt { path, what } => write!(
                f,
                "{} is corrupt: {what}; run `shmq recover` on it, or recreate it",
                path.display()
            ),
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
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
            Error::BadReceipt => write!(f, "the receipt names a slot this queue does not have"),
            Error::NoSuchMessage { id } => write!(f, "no dead message with id {id}"),
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

/// A failed send, handing the message back.
pub struct SendError<T> {
    /// The message, untouched.
    pub message: T,
    /// Why: `Full`, `TooLarge`, `ClaimExpired` or `Contended`.
    pub error: Error,
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        self.message
    }
    /// Whether the queue was full (retry later).
    pub fn is_full(&self) -> bool {
        matches!(self.error, Error::Full)
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> From<SendError<T>> for Error {
    fn from(e: SendError<T>) -> Error {
        e.error
    }
}

/// `Result` with shmq's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

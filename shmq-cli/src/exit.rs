//! Exit status and error messages: every failure becomes one line on stderr,
//! `shmq: <what went wrong>; <what to do>`, and one of the codes documented
//! once, in `shmq --help`.

use std::io::{self, Write};
use std::path::Path;

/// The exit status section of `shmq --help` (and of the man page).
pub const EXIT_STATUS: &str = "\
Exit status:
  0   success (peek, inspect, ls and dlq list with nothing to show too)
  1   any other error: I/O, permissions, stdout closed or broken
  2   usage: bad arguments, or a value out of its range
  3   not found: no queue file at PATH, no dead message with that id,
      or a receipt naming a slot the queue does not have
  4   the file is corrupt, not a shmq queue, or of another format version
  5   empty or timed out: recv got no message within --wait
  6   full: every slot holds a message
  7   lease lost: the receipt's lease is over (acked, released or expired)
  8   recover (without --apply) found slots to repair
  9   too large: the message is longer than the queue's slot size
  10  already exists: create found a file at PATH
  11  in use: rm found processes that map the queue file (see --force)

Errors go to stderr as one line, `shmq: <what went wrong>; <what to do>`.
Results go to stdout; --json prints one compact JSON object per line,
with every character a terminal acts on (C0 and C1 controls, DEL, bidi
overrides and isolates, U+2028/U+2029) escaped as \\uXXXX.

Durations: a number and a unit (ms, s, m, h), decimals and compounds
allowed: 250ms, 1.5s, 1m30s, 2h. A value outside its range (shown in each
command's --help) is an error, never clamped.

Commands that only read (stat, peek, inspect, ls, dlq list, dlq peek) need
read access to the queue file; the others need write access.";

/// The exit codes of `shmq --help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Other = 1,
    Usage = 2,
    NotFound = 3,
    Corrupt = 4,
    Empty = 5,
    Full = 6,
    LeaseLost = 7,
    NeedsRepair = 8,
    TooLarge = 9,
    Exists = 10,
    InUse = 11,
}

/// Why a command failed.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    /// The whole message, without the `shmq: ` prefix; empty: print nothing.
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// Print the message and return the exit status.
    pub fn report(self) -> u8 {
        if !self.message.is_empty() {
            let _ = writeln!(io::stderr().lock(), "shmq: {}", self.message);
        }
        self.code as u8
    }
}

/// The exit code for a library error.
pub fn code_of(e: &shmq::Error) -> Code {
    use shmq::Error as E;
    match e {
        E::NotFound { .. } | E::NoSuchMessage { .. } | E::BadReceipt => Code::NotFound,
        E::NotAQueue { .. }
        | E::Incompatible { .. }
        | E::NotInitialised { .. }
        | E::Corrupt { .. } => Code::Corrupt,
        E::InvalidConfig(_)
        | E::OutOfRange { .. }
        | E::NotRedrivable { .. }
        | E::VolatileStorage { .. } => Code::Usage,
        E::Full => Code::Full,
        E::LeaseLost => Code::LeaseLost,
        E::TooLarge { .. } => Code::TooLarge,
        E::AlreadyExists { .. } => Code::Exists,
        _ => Code::Other,
    }
}

/// The message for a library error: what went wrong, in the tool's words
/// (the library's own text speaks of its functions), and what to do, naming
/// the tool's commands and flags.
fn message(e: &shmq::Error) -> String {
    use shmq::Error as E;
    match e {
        E::Io { op, path, source } => {
            let what_to_do = match source.raw_os_error() {
                Some(libc::EACCES | libc::EPERM | libc::EROFS) => {
                    "check the file's permissions (stat, peek, inspect, ls and dlq list|peek need only read access)"
                }
                Some(libc::ENOSPC | libc::EDQUOT) => {
                    "free some space, or create a queue with fewer --slots or a smaller --slot-size"
                }
                _ => "check the path and its permissions",
            };
            format!("cannot {op} {}: {source}; {what_to_do}", path.display())
        }
        E::NotFound { path } => format!(
            "{} does not exist; create it with `shmq create {} --slots N --slot-size BYTES`",
            path.display(),
            path.display()
        ),
        E::AlreadyExists { path } => format!(
            "{} already exists; remove it first with `shmq rm {}`, or create the queue at another path",
            path.display(),
            path.display()
        ),
        E::NotInitialised { path } => format!(
            "{} is not initialised: its creator has not finished, or died; retry, and if it stays so remove it with `shmq rm --force {}` and create it again",
            path.display(),
            path.display()
        ),
        E::Corrupt { path, what } => format!(
            "{} is corrupt: {what}; its header cannot be trusted: move the file aside and run `shmq create` again",
            path.display()
        ),
        E::NotAQueue { path } => format!(
            "{} is not a shmq queue file (no magic bytes); check the path (`shmq ls DIR` lists the queue files of a directory)",
            path.display()
        ),
        E::Incompatible { path, found, supported } => format!(
            "{} has format version {found}, this shmq reads version {supported}; use the shmq release that created it",
            path.display()
        ),
        E::InvalidConfig(what) => {
            format!("invalid configuration: {what}; see `shmq create --help` for the ranges")
        }
        E::OutOfRange { .. } => format!("{e}; use a value in the range that --help shows"),
        E::Full => "the queue is full: every slot holds a message; retry after consumers ack, or create a queue with more --slots".into(),
        E::TooLarge { len, max } => format!(
            "the message is {len} bytes, longer than the queue's slot size of {max} bytes; send a smaller one, or create a queue with a larger --slot-size"
        ),
        E::LeaseLost => "lease lost: the message was acked, given back, or its lease expired; if nobody acked it, it is (or will be) delivered again: receive it anew".into(),
        E::BadReceipt => "the receipt is not one of this queue's (another queue's, or a slot it does not have); use a receipt that `shmq recv` printed for this queue".into(),
        E::NoSuchMessage { id } => format!(
            "no dead message has id {id}; `shmq dlq list PATH` shows the dead messages and their ids"
        ),
        E::NotRedrivable { id, .. } => format!(
            "{e}; `shmq dlq peek PATH --id {id}` shows it, `shmq dlq purge PATH --id {id}` removes it"
        ),
        E::Contended => "another process kept changing the same slot; try again".into(),
        E::ClaimExpired => "the send stalled past the queue's claim timeout and was abandoned; the message was not sent: send it again".into(),
        E::ConfigMismatch { .. } => format!("{e}; `shmq stat PATH` shows the queue's configuration"),
        E::VolatileStorage { path, fs } => format!(
            "{} is on {fs}, which keeps files in memory only, so a durable queue there would not survive a reboot; create it on a disk file system (`stat -f DIR` shows the type), or without --durable",
            path.display()
        ),
        E::SyncFailed { path, errno } => format!(
            "syncing {} to disk failed ({}); messages sent since the last good sync may not be on disk; check the disk (dmesg) and its free space, then run `shmq recover --apply {}`",
            path.display(),
            io::Error::from_raw_os_error(*errno),
            path.display()
        ),
        _ => e.to_string(),
    }
}

impl From<shmq::Error> for Failure {
    fn from(e: shmq::Error) -> Failure {
        Failure::new(code_of(&e), message(&e))
    }
}

impl From<shmq::SendError> for Failure {
    fn from(e: shmq::SendError) -> Failure {
        match e {
            // The library's text already says what happened and what to do.
            shmq::SendError::SyncFailed { .. } => Failure::new(Code::Other, e.to_string()),
            _ => Failure::from(shmq::Error::from(e)),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // The reader went away (`shmq peek | head`): nothing to say.
            return Failure::new(Code::Other, "");
        }
        Failure::new(
            Code::Other,
            format!("cannot write the output: {e}; check where stdout goes"),
        )
    }
}

/// A failure to open `path` for writing, told as such: which access the
/// verb needs.
pub fn needs_write(path: &Path, e: shmq::Error) -> Failure {
    match &e {
        shmq::Error::Io { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS)
            ) =>
        {
            Failure::new(
                Code::Other,
                format!(
                    "cannot open {} for writing: {source}; this command changes the queue and needs write access \
                     (stat, peek, inspect, ls and dlq list|peek need only read access)",
                    path.display()
                ),
            )
        }
        _ => Failure::from(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_says_what_to_do() {
        let errors = [
            shmq::Error::LeaseLost,
            shmq::Error::Full,
            shmq::Error::BadReceipt,
            shmq::Error::NoSuchMessage { id: 3 },
            shmq::Error::TooLarge { len: 9, max: 8 },
            shmq::Error::InvalidConfig("slots must be 1..".into()),
            shmq::Error::Contended,
            shmq::Error::ClaimExpired,
            shmq::Error::NotFound { path: "/q".into() },
            shmq::Error::NotAQueue { path: "/q".into() },
            shmq::Error::AlreadyExists { path: "/q".into() },
        ];
        for e in errors {
            let f = Failure::from(e);
            assert!(f.message.contains("; "), "no advice in {:?}", f.message);
        }
    }

    #[test]
    fn codes_match_the_help() {
        assert_eq!(code_of(&shmq::Error::Full), Code::Full);
        assert_eq!(code_of(&shmq::Error::LeaseLost), Code::LeaseLost);
        assert_eq!(
            code_of(&shmq::Error::NotFound { path: "/q".into() }),
            Code::NotFound
        );
        assert_eq!(
            code_of(&shmq::Error::Corrupt {
                path: "/q".into(),
                what: "x".into()
            }),
            Code::Corrupt
        );
        assert_eq!(
            code_of(&shmq::Error::TooLarge { len: 9, max: 8 }),
            Code::TooLarge
        );
        assert_eq!(
            code_of(&shmq::Error::AlreadyExists { path: "/q".into() }),
            Code::Exists
        );
        assert_eq!(code_of(&shmq::Error::Contended), Code::Other);
        for (code, n) in [
            (Code::NeedsRepair, 8),
            (Code::TooLarge, 9),
            (Code::Exists, 10),
            (Code::InUse, 11),
        ] {
            assert_eq!(code as u8, n);
            assert!(
                EXIT_STATUS.contains(&format!("\n  {n}  ")),
                "{n} in the table"
            );
        }
    }
}

//! Exit status and error messages: every failure becomes one line on stderr,
//! `shmq: <what went wrong>; <what to do>`, and one of the codes documented
//! in `--help`.

use std::io::{self, Write};
use std::process::ExitCode;

/// The exit status section of every `--help`, as a literal (for `concat!`).
macro_rules! exit_status_help {
    () => {
        "\
Exit status:
  0  success (peek, inspect and dlq list with nothing to show succeed too)
  1  any other error
  2  usage: bad arguments or configuration values
  3  not found: no queue file at PATH, no dead message with that id,
     or a receipt naming a slot the queue does not have
  4  the file is corrupt, not a shmq queue, or of another format version
  5  empty or timed out: recv found no message within --wait
  6  full: every slot holds a message
  7  lease lost: the receipt's lease is over (acked, released or expired)

Errors are printed to stderr as `shmq: <what went wrong>; <what to do>`.
Durations are written 500ms, 30s, 5m or 2h."
    };
}

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
    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            let _ = writeln!(io::stderr().lock(), "shmq: {}", self.message);
        }
        ExitCode::from(self.code as u8)
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
        E::InvalidConfig(_) | E::OutOfRange { .. } => Code::Usage,
        E::Full => Code::Full,
        E::LeaseLost => Code::LeaseLost,
        _ => Code::Other,
    }
}

/// What to do, for the library errors whose message does not already say.
fn advice(e: &shmq::Error) -> Option<&'static str> {
    use shmq::Error as E;
    Some(match e {
        E::Io { .. } => "check the path, its permissions and the free space",
        E::NotFound { .. } => "create it with `shmq create PATH`",
        E::AlreadyExists { .. } => "remove it first (`rm`) to start afresh",
        E::NotInitialised { .. } => {
            "if it stays so, its creator died: remove the file and run `shmq create` again"
        }
        E::Corrupt { .. } => {
            "its header cannot be trusted: move the file aside and run `shmq create` again"
        }
        E::ConfigMismatch { .. } => "`shmq stat PATH` shows the queue's configuration",
        E::NotAQueue { .. } => "check the path (`shmq create` makes a queue file)",
        E::InvalidConfig(_) => "see `shmq create --help` for the ranges",
        E::TooLarge { .. } => "send a smaller message, or create a queue with a larger --slot-size",
        E::LeaseLost => "if nobody acked it, it is (or will be) delivered again: receive it anew",
        E::BadReceipt => "use a receipt that `shmq recv` printed for this queue",
        E::NoSuchMessage { .. } => "`shmq dlq list` shows the dead messages and their ids",
        _ => return None,
    })
}

impl From<shmq::Error> for Failure {
    fn from(e: shmq::Error) -> Failure {
        let message = match advice(&e) {
            Some(what_to_do) => format!("{e}; {what_to_do}"),
            None => e.to_string(),
        };
        Failure::new(code_of(&e), message)
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
        assert_eq!(code_of(&shmq::Error::Contended), Code::Other);
    }
}

//! `shmq`: the command-line tool for shmq queue files.
//!
//! One file per verb under `command/`; this file holds only the argument
//! tree, the dispatch and the exit status.
//!
//! `main` is our own C `main` (`no_main`), not Rust's: Rust's start-up
//! quietly reopens a closed stdout on /dev/null, after which
//! `shmq recv --ack >&-` would "write" each message and ack it. We make the
//! same repair (so a queue file can never become fd 1) but remember that
//! stdout was closed, and every write to it fails (see `output::RawStdout`).
#![cfg_attr(not(test), no_main)]

mod command;
mod duration;
mod exit;
mod json;
mod output;

use std::ffi::OsString;
use std::io::{self, Write};

use clap::{Parser, Subcommand};

use exit::{Code, Failure};

/// Operate shmq queue files: a durable, lock-free message queue that
/// processes share through a memory-mapped file.
#[derive(Parser)]
#[command(name = "shmq", version, after_help = exit::EXIT_STATUS, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new queue file.
    Create(command::create::Args),
    /// Show a queue's counts, counters and configuration; with several
    /// queues or --watch, a table (one row per queue).
    #[command(after_help = command::stat::AFTER_HELP)]
    Stat(command::stat::Args),
    /// List the queue files in a directory, one line each.
    Ls(command::ls::Args),
    /// List slots one by one: state, message id, receives, time, holder.
    Inspect(command::inspect::Args),
    /// Read visible messages without leasing them.
    Peek(command::peek::Args),
    /// Send a message (from the argument or stdin) and print its id.
    Send(command::send::Args),
    /// Receive messages: one, --count N, or --follow until interrupted.
    #[command(after_help = command::recv::AFTER_HELP)]
    Recv(command::recv::Args),
    /// Delete a received message for good, by its receipt.
    Ack(command::ack::Args),
    /// Give a received message back (visible again, or after --delay).
    Nack(command::nack::Args),
    /// Keep a lease longer (a heartbeat for long work).
    Extend(command::extend::Args),
    /// Dead letters: list, peek, redrive or purge them.
    #[command(subcommand)]
    Dlq(command::dlq::Dlq),
    /// Delete every visible message (delayed, leased and dead ones stay).
    Purge(command::purge::Args),
    /// Remove a queue file, unless processes have it mapped.
    Rm(command::rm::Args),
    /// Scan the file after a crash, classify every slot, and (with --apply)
    /// repair what is safe.
    #[command(after_help = command::recover::AFTER_HELP)]
    Recover(command::recover::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(command::completions::Args),
    /// Print the man page (roff), generated from this command's help.
    Man(command::completions::ManArgs),
}

/// Parse the command line; clap's errors get our prefix and exit code 2.
fn parse(args: Vec<OsString>) -> Result<Cli, u8> {
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            // --help and --version: to stdout, success.
            let text = e.render().to_string();
            let ok = output::RawStdout.write_all(text.as_bytes()).is_ok();
            Err(if ok { 0 } else { Code::Other as u8 })
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `shmq` or `shmq dlq` alone: the help, to stderr, as usage.
            let _ = write!(io::stderr().lock(), "{}", e.render());
            Err(Code::Usage as u8)
        }
        Err(e) => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let _ = write!(io::stderr().lock(), "shmq: {text}");
            Err(Code::Usage as u8)
        }
    }
}

/// The process's entry point (see the module docs for why it is C's).
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    output::sanitize_standard_fds();
    // As Rust's start-up does: a write to a pipe without a reader returns
    // EPIPE instead of killing us (so a message in hand is given back).
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let args = (0..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: the C runtime passes `argc` valid NUL-terminated
            // strings in `argv`, alive for the whole process.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            std::ffi::OsStr::from_bytes(arg.to_bytes()).to_owned()
        })
        .collect();
    libc::c_int::from(run(args))
}

fn run(args: Vec<OsString>) -> u8 {
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result: Result<(), Failure> = match cli.command {
        Command::Create(a) => command::create::run(a),
        Command::Stat(a) => command::stat::run(a),
        Command::Ls(a) => command::ls::run(a),
        Command::Inspect(a) => command::inspect::run(a),
        Command::Peek(a) => command::peek::run(a),
        Command::Send(a) => command::send::run(a),
        Command::Recv(a) => command::recv::run(a),
        Command::Ack(a) => command::ack::run(a),
        Command::Nack(a) => command::nack::run(a),
        Command::Extend(a) => command::extend::run(a),
        Command::Dlq(a) => command::dlq::run(a),
        Command::Purge(a) => command::purge::run(a),
        Command::Rm(a) => command::rm::run(a),
        Command::Recover(a) => command::recover::run(a),
        Command::Completions(a) => command::completions::run(a),
        Command::Man(a) => command::completions::man(a),
    };
    match result {
        Ok(()) => 0,
        Err(f) => f.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_argument_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_exit_2() {
        let args = ["shmq", "frobnicate"].map(OsString::from).to_vec();
        assert_eq!(run(args), 2);
    }
}

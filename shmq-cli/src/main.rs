//! `shmq`: the command-line tool for shmq queue files.
//!
//! One file per verb under `command/`; this file holds only the argument
//! tree, the dispatch and the exit status.

#[macro_use]
mod exit;
mod command;
mod duration;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use exit::Failure;

const EXIT_STATUS: &str = exit_status_help!();

/// Operate shmq queue files: a durable, lock-free message queue that
/// processes share through a memory-mapped file.
#[derive(Parser)]
#[command(name = "shmq", version, after_help = EXIT_STATUS, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new queue file.
    #[command(after_help = EXIT_STATUS)]
    Create(command::create::Args),
    /// Show counts by state and the queue's counters.
    #[command(after_help = EXIT_STATUS)]
    Stat(command::stat::Args),
    /// List slots one by one: state, message id, receives, deadline, holder.
    #[command(after_help = EXIT_STATUS)]
    Inspect(command::inspect::Args),
    /// Scan the file after a crash, classify every slot, and (with --apply)
    /// repair what is safe.
    #[command(after_help = command::recover::AFTER_HELP)]
    Recover(command::recover::Args),
    /// Dead letters: list, peek, redrive or purge them.
    #[command(subcommand)]
    Dlq(command::dlq::Dlq),
    /// Read visible messages without leasing them.
    #[command(after_help = EXIT_STATUS)]
    Peek(command::peek::Args),
    /// Send a message (from the argument or stdin) and print its id.
    #[command(after_help = EXIT_STATUS)]
    Send(command::send::Args),
    /// Receive one message: payload to stdout, receipt to stderr.
    #[command(after_help = command::recv::AFTER_HELP)]
    Recv(command::recv::Args),
    /// Delete a received message for good, by its receipt.
    #[command(after_help = EXIT_STATUS)]
    Ack(command::ack::Args),
    /// Give a received message back (visible again, or after --delay).
    #[command(after_help = EXIT_STATUS)]
    Nack(command::nack::Args),
    /// Keep a lease longer (a heartbeat for long work).
    #[command(after_help = EXIT_STATUS)]
    Extend(command::extend::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Failure> = match cli.command {
        Command::Create(a) => command::create::run(a),
        Command::Stat(a) => command::stat::run(a),
        Command::Inspect(a) => command::inspect::run(a),
        Command::Recover(a) => command::recover::run(a),
        Command::Dlq(a) => command::dlq::run(a),
        Command::Peek(a) => command::peek::run(a),
        Command::Send(a) => command::send::run(a),
        Command::Recv(a) => command::recv::run(a),
        Command::Ack(a) => command::ack::run(a),
        Command::Nack(a) => command::nack::run(a),
        Command::Extend(a) => command::extend::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
}

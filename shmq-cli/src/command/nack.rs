//! `shmq nack`: give a received message back, by its receipt.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use shmq::{Nacked, Receipt};

use crate::duration;
use crate::exit::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// The receipt `QUEUE-SLOT-GEN-ID` that `shmq recv` printed.
    pub receipt: Receipt,
    /// Make it visible again only after this long: 0 ..= 12h.
    #[arg(long, default_value = "0", value_parser = duration::delay, value_name = "DURATION")]
    pub delay: Duration,
    /// Print the result as one JSON object: receipt, outcome (requeued or
    /// dead-lettered).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let outcome = match q.nack(a.receipt, a.delay)? {
        Nacked::Requeued => "requeued",
        Nacked::DeadLettered => "dead-lettered",
    };
    if a.json {
        return output::print_json(&json!({"receipt": a.receipt.to_string(), "outcome": outcome}));
    }
    if outcome == "dead-lettered" {
        let _ = writeln!(
            io::stderr().lock(),
            "message dead-lettered: it had reached max receives (`shmq dlq list {}` shows it)",
            a.path.display()
        );
    }
    Ok(())
}

//! `shmq nack`: give a received message back, by its receipt.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use shmq::{Nacked, Receipt};

use crate::duration;
use crate::exit::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// The receipt `SLOT:GEN` that `shmq recv` printed.
    pub receipt: Receipt,
    /// Make it visible again only after this long.
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    pub delay: Duration,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let what = match q.nack(a.receipt, a.delay)? {
        Nacked::Requeued => "requeued",
        Nacked::DeadLettered => "dead-lettered (it had reached max receives)",
    };
    writeln!(io::stdout().lock(), "{what}")?;
    Ok(())
}

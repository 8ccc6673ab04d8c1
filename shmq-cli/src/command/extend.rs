//! `shmq extend`: keep a lease longer, by its receipt.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use shmq::{now_ms, Receipt};

use crate::duration::{self, human_ms};
use crate::exit::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// The receipt `SLOT:GEN` that `shmq recv` printed.
    pub receipt: Receipt,
    /// The new lease length, from now.
    #[arg(long, value_parser = duration::parse)]
    pub timeout: Duration,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let deadline = q.extend(a.receipt, a.timeout)?;
    writeln!(
        io::stdout().lock(),
        "lease extended: expires in {}",
        human_ms(deadline.saturating_sub(now_ms()))
    )?;
    Ok(())
}

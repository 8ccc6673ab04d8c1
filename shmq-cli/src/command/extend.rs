//! `shmq extend`: keep a lease longer, by its receipt.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use shmq::Receipt;

use crate::duration::{self, mono_to_unix_ms};
use crate::exit::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// The receipt `QUEUE-SLOT-GEN-ID` that `shmq recv` printed.
    pub receipt: Receipt,
    /// The new lease length, from now: 1ms ..= 12h.
    #[arg(long, value_parser = duration::lease, value_name = "DURATION")]
    pub timeout: Duration,
    /// Print the result as one JSON object: receipt, deadline_unix_ms.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let deadline = q.extend(a.receipt, a.timeout)?;
    if a.json {
        output::print_json(&json!({
            "receipt": a.receipt.to_string(),
            "deadline_unix_ms": mono_to_unix_ms(deadline),
        }))?;
    }
    Ok(())
}

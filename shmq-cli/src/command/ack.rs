//! `shmq ack`: delete a received message for good, by its receipt.

use std::path::PathBuf;

use serde_json::json;
use shmq::Receipt;

use crate::exit::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// The receipt `QUEUE-SLOT-GEN-ID` that `shmq recv` printed.
    pub receipt: Receipt,
    /// Print the result as one JSON object: receipt, acked.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    q.ack(a.receipt)?;
    if a.json {
        output::print_json(&json!({"receipt": a.receipt.to_string(), "acked": true}))?;
    }
    Ok(())
}

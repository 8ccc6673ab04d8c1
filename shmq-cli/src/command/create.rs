//! `shmq create`: make a new queue file.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use shmq::{Config, Queue};

use crate::duration;
use crate::exit::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Where to create the queue file (it must not exist).
    pub path: PathBuf,
    /// Number of message slots (the capacity), 1 to 16777216.
    #[arg(long)]
    pub slots: u32,
    /// Largest payload in bytes, 8 to 16777216.
    #[arg(long)]
    pub slot_size: u32,
    /// How long a received message stays leased before it is redelivered.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    pub visibility_timeout: Duration,
    /// Deliveries without an ack after which a message is dead-lettered.
    #[arg(long, default_value_t = 5)]
    pub max_receives: u32,
    /// Permission bits of the file, in octal.
    #[arg(long, default_value = "0600", value_parser = parse_mode)]
    pub mode: u32,
    /// Do not store and check a CRC-32 of each payload.
    #[arg(long)]
    pub no_checksums: bool,
    /// How long a sender may hold a claimed slot before it is abandoned.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    pub claim_timeout: Duration,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0o");
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{text:?} is not an octal permission mode like 0600"))
}

pub fn run(a: Args) -> Result<(), Failure> {
    let config = Config::default()
        .slots(a.slots)
        .slot_size(a.slot_size)
        .visibility_timeout(a.visibility_timeout)
        .max_receives(a.max_receives)
        .mode(a.mode)
        .checksums(!a.no_checksums)
        .claim_timeout(a.claim_timeout);
    let q = Queue::create(&a.path, &config)?;
    let len = std::fs::metadata(q.path()).map(|m| m.len()).unwrap_or(0);
    writeln!(
        io::stdout().lock(),
        "created {}: {} slots of {} bytes ({len} bytes on disk)",
        a.path.display(),
        a.slots,
        a.slot_size
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("17777").is_err());
    }
}

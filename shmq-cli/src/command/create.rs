//! `shmq create`: make a new queue file.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use shmq::{Config, Queue};

use crate::duration;
use crate::exit::Failure;
use crate::output;

/// Files at least this large get a spinner on a terminal (preallocating
/// and initialising them takes seconds).
const PROGRESS_FROM_BYTES: u64 = 256 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// Where to create the queue file (it must not exist).
    pub path: PathBuf,
    /// Number of message slots (the capacity): 1 ..= 16777216.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub slots: u32,
    /// Largest payload in bytes: 8 ..= 16777216 (16 MiB).
    #[arg(long, value_parser = clap::value_parser!(u32).range(8..=16_777_216))]
    pub slot_size: u32,
    /// How long a received message stays leased before it is redelivered:
    /// 1ms ..= 12h.
    #[arg(long, default_value = "30s", value_parser = duration::lease, value_name = "DURATION")]
    pub visibility_timeout: Duration,
    /// Deliveries without an ack after which a message is dead-lettered:
    /// 1 ..= 65535.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub max_receives: u32,
    /// Permission bits of the file, in octal (0644 lets others watch it).
    #[arg(long, default_value = "0600", value_parser = parse_mode)]
    pub mode: u32,
    /// Do not store and check a checksum (CRC-32C or CRC-32) of each payload.
    #[arg(long)]
    pub no_checksums: bool,
    /// How long a sender may hold a claimed slot before it is abandoned:
    /// 1ms ..= 12h.
    #[arg(long, default_value = "2s", value_parser = duration::lease, value_name = "DURATION")]
    pub claim_timeout: Duration,
    /// Make every send return only once its message is on disk (fdatasync,
    /// shared by concurrent senders). Needs a disk file system: tmpfs
    /// (/dev/shm) is refused.
    #[arg(long)]
    pub durable: bool,
    /// Print the new queue as one JSON object: path, slots, slot_size,
    /// file_bytes, identity.
    #[arg(long)]
    pub json: bool,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0o");
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{text:?} is not an octal permission mode like 0600"))
}

/// The file size `create` makes (the layout's: a 4 KiB header, and per slot
/// 64 bytes of words and the payload rounded up to 64 bytes), for the
/// spinner's decision only.
fn file_bytes(slots: u32, slot_size: u32) -> u64 {
    4096 + u64::from(slots) * (64 + u64::from(slot_size).div_ceil(64) * 64)
}

pub fn run(a: Args) -> Result<(), Failure> {
    let config = Config::default()
        .slots(a.slots)
        .slot_size(a.slot_size)
        .visibility_timeout(a.visibility_timeout)
        .max_receives(a.max_receives)
        .mode(a.mode)
        .checksums(!a.no_checksums)
        .claim_timeout(a.claim_timeout)
        .durable(a.durable);
    let big = file_bytes(a.slots, a.slot_size) >= PROGRESS_FROM_BYTES;
    let spinner = if big && io::stderr().is_terminal() {
        let s = ProgressBar::new_spinner();
        s.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
        );
        s.set_message(format!(
            "creating {} ({} MiB)",
            a.path.display(),
            file_bytes(a.slots, a.slot_size) >> 20
        ));
        s.enable_steady_tick(Duration::from_millis(100));
        s
    } else {
        ProgressBar::hidden()
    };
    let made = Queue::create(&a.path, &config);
    spinner.finish_and_clear();
    let q = made?;
    let len = std::fs::metadata(q.path()).map(|m| m.len()).unwrap_or(0);
    if a.json {
        return output::print_json(&json!({
            "path": a.path.display().to_string(),
            "slots": a.slots,
            "slot_size": a.slot_size,
            "file_bytes": len,
            "identity": format!("{:016x}", q.identity()),
        }));
    }
    let _ = writeln!(
        io::stderr().lock(),
        "created {}: {} slots of {} bytes ({len} bytes on disk)",
        a.path.display(),
        a.slots,
        a.slot_size
    );
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

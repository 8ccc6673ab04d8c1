//! `shmq send`: send a message from the argument or stdin (or one per line
//! of stdin) and print each id.

use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use shmq::Queue;

use crate::duration;
use crate::exit::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// The message; without it, stdin (all of it) is the message.
    #[arg(conflicts_with = "lines")]
    pub payload: Option<OsString>,
    /// Send each line of stdin as its own message (without its newline).
    #[arg(long)]
    pub lines: bool,
    /// Make the message visible only after this long.
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    pub delay: Duration,
}

fn send_one(q: &Queue, msg: &[u8], delay: Duration) -> Result<u64, shmq::Error> {
    q.send_delayed(msg, delay).map_err(shmq::Error::from)
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let mut out = io::stdout().lock();
    if !a.lines {
        let msg = match a.payload {
            Some(p) => p.into_vec(),
            None => {
                let mut b = Vec::new();
                io::stdin().lock().read_to_end(&mut b)?;
                b
            }
        };
        let id = send_one(&q, &msg, a.delay)?;
        writeln!(out, "{id}")?;
        return Ok(());
    }
    for (n, line) in io::stdin().lock().split(b'\n').enumerate() {
        let line = line?;
        match send_one(&q, &line, a.delay) {
            Ok(id) => writeln!(out, "{id}")?,
            Err(e) => {
                let mut f = Failure::from(e);
                f.message = format!(
                    "line {} was not sent: {} (the lines before it were sent: their ids are on stdout)",
                    n + 1,
                    f.message
                );
                return Err(f);
            }
        }
    }
    Ok(())
}

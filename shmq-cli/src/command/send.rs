//! `shmq send`: send a message from the argument or stdin (or one per line
//! of stdin) and print each id.

use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::duration;
use crate::exit::Failure;
use crate::output::{self, Out};

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
    /// Make the message visible only after this long: 0 ..= 12h.
    #[arg(long, default_value = "0", value_parser = duration::delay, value_name = "DURATION")]
    pub delay: Duration,
    /// Print each id as a JSON object {"id": N} (one per line).
    #[arg(long)]
    pub json: bool,
}

fn print_id(out: &mut Out, id: u64, json: bool) -> Result<(), Failure> {
    if json {
        out.json(&json!({ "id": id }))
    } else {
        writeln!(out, "{id}")?;
        Ok(())
    }
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let mut out = Out::new();
    if !a.lines {
        let msg = match a.payload {
            Some(p) => p.into_vec(),
            None => {
                let mut b = Vec::new();
                io::stdin().lock().read_to_end(&mut b)?;
                b
            }
        };
        let id = q.send_delayed(&msg, a.delay)?;
        print_id(&mut out, id, a.json)?;
        return out.finish();
    }
    for (n, line) in io::stdin().lock().split(b'\n').enumerate() {
        let line = line?;
        match q.send_delayed(&line, a.delay) {
            Ok(id) => print_id(&mut out, id, a.json)?,
            Err(e) => {
                // The ids of what was sent come out before the error.
                out.finish()?;
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
    out.finish()
}

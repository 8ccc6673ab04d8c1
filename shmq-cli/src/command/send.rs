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
    // Never hold more of stdin than one slot and a byte: `cat /dev/zero |
    // shmq send q` fails TooLarge at once instead of growing without bound.
    let max = q.config().slot_size as usize;
    if !a.lines {
        let msg = match a.payload {
            Some(p) => p.into_vec(),
            None => {
                let mut b = Vec::new();
                io::stdin()
                    .lock()
                    .take(max as u64 + 1)
                    .read_to_end(&mut b)?;
                if b.len() > max {
                    let mut f = Failure::from(shmq::Error::TooLarge { len: b.len(), max });
                    f.message = format!(
                        "stdin holds more than the queue's slot size of {max} bytes (read no further); send a smaller message, or create a queue with a larger --slot-size"
                    );
                    return Err(f);
                }
                b
            }
        };
        let id = q.send_delayed(&msg, a.delay)?;
        print_id(&mut out, id, a.json)?;
        return out.finish();
    }
    let mut input = io::stdin().lock();
    let mut n = 0usize;
    while let Some(line) = read_line_bounded(&mut input, max)? {
        n += 1;
        match q.send_delayed(&line, a.delay) {
            Ok(id) => print_id(&mut out, id, a.json)?,
            Err(e) => {
                // The ids of what was sent come out before the error.
                out.finish()?;
                let mut f = Failure::from(e);
                f.message = format!(
                    "line {} was not sent: {} (the lines before it were sent: their ids are on stdout)",
                    n,
                    f.message
                );
                return Err(f);
            }
        }
    }
    out.finish()
}

/// The next line of `input` without its newline, holding at most `max + 1`
/// bytes of it: a longer line is returned cut at `max + 1` bytes (so that the
/// send fails TooLarge), and its rest is skipped up to the newline, unread
/// into memory. `None` at the end of input.
fn read_line_bounded(input: &mut impl BufRead, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(any.then_some(line));
        }
        any = true;
        let (chunk, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(at) => (&buf[..at], Some(at + 1)),
            None => (buf, None),
        };
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = end.unwrap_or(buf.len());
        input.consume(used);
        if end.is_some() {
            return Ok(Some(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_line_bounded;

    #[test]
    fn lines_are_cut_past_the_slot_size_and_their_rest_skipped() {
        let mut input = std::io::Cursor::new(b"ab\n0123456789\nlast".to_vec());
        let mut lines = Vec::new();
        while let Some(l) = read_line_bounded(&mut input, 4).unwrap() {
            lines.push(l);
        }
        assert_eq!(lines, [b"ab".to_vec(), b"01234".to_vec(), b"last".to_vec()]);
        let mut empty = std::io::Cursor::new(Vec::new());
        assert_eq!(read_line_bounded(&mut empty, 4).unwrap(), None);
        let mut blank = std::io::Cursor::new(b"\n".to_vec());
        assert_eq!(read_line_bounded(&mut blank, 4).unwrap(), Some(Vec::new()));
    }
}

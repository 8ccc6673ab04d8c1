//! `shmq stat`: counts by state, the counters, and the configuration.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use shmq::{Queue, Stats};

use crate::duration::{self, human_ms};
use crate::exit::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// Print JSON (with --watch: one line per refresh).
    #[arg(long)]
    pub json: bool,
    /// Refresh until interrupted (in place on a terminal).
    #[arg(long)]
    pub watch: bool,
    /// Time between refreshes with --watch.
    #[arg(long, default_value = "1s", value_parser = duration::parse, requires = "watch")]
    pub interval: Duration,
    /// Stop after this many refreshes with --watch (0: never).
    #[arg(long, default_value_t = 0, requires = "watch")]
    pub count: u64,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    if !a.watch {
        let st = q.stats();
        return if a.json {
            output::print_json(&to_json(&q, &st))
        } else {
            let mut out = io::stdout().lock();
            out.write_all(text(&q, &st).as_bytes())?;
            Ok(())
        };
    }
    let tty = io::stdout().is_terminal() && !a.json;
    let mut shown_lines = 0;
    let mut n = 0u64;
    loop {
        let st = q.stats();
        let mut out = io::stdout().lock();
        if a.json {
            serde_json::to_writer(&mut out, &to_json(&q, &st)).map_err(io::Error::from)?;
            writeln!(out)?;
        } else {
            let body = text(&q, &st);
            if tty && shown_lines > 0 {
                // Cursor up over the last block, then clear to the end.
                write!(out, "\x1b[{shown_lines}A\x1b[J")?;
            } else if n > 0 {
                writeln!(out)?;
            }
            out.write_all(body.as_bytes())?;
            shown_lines = body.lines().count();
        }
        out.flush()?;
        drop(out);
        n += 1;
        if a.count != 0 && n >= a.count {
            return Ok(());
        }
        std::thread::sleep(a.interval);
    }
}

fn text(q: &Queue, st: &Stats) -> String {
    let c = q.config();
    let oldest = st
        .oldest_visible_age
        .map(|d| format!("   (oldest {})", human_ms(d.as_millis() as u64)))
        .unwrap_or_default();
    format!(
        "queue         {}\n\
         capacity      {} slots of {} bytes\n\
         visible       {}{oldest}\n\
         in flight     {}\n\
         delayed       {}\n\
         dead          {}\n\
         free          {}\n\
         writing       {}\n\
         abandoned     {}\n\
         other         {}\n\
         counters      sent {}, acked {}, redelivered {}, dead-lettered {}\n\
         config        visibility {}, max receives {}, claim timeout {}, checksums {}\n",
        q.path().display(),
        st.capacity,
        c.slot_size,
        st.visible,
        st.in_flight,
        st.delayed,
        st.dead,
        st.free,
        st.writing,
        st.abandoned,
        st.other,
        st.sent,
        st.acked,
        st.redelivered,
        st.dead_lettered,
        human_ms(c.visibility_timeout.as_millis() as u64),
        c.max_receives,
        human_ms(c.claim_timeout.as_millis() as u64),
        if c.checksums { "on" } else { "off" },
    )
}

fn to_json(q: &Queue, st: &Stats) -> Value {
    let c = q.config();
    json!({
        "path": q.path().display().to_string(),
        "capacity": st.capacity,
        "slot_size": c.slot_size,
        "visible": st.visible,
        "in_flight": st.in_flight,
        "delayed": st.delayed,
        "dead": st.dead,
        "free": st.free,
        "writing": st.writing,
        "abandoned": st.abandoned,
        "other": st.other,
        "sent": st.sent,
        "acked": st.acked,
        "redelivered": st.redelivered,
        "dead_lettered": st.dead_lettered,
        "oldest_visible_age_ms": st.oldest_visible_age.map(|d| d.as_millis() as u64),
        "visibility_timeout_ms": c.visibility_timeout.as_millis() as u64,
        "max_receives": c.max_receives,
        "claim_timeout_ms": c.claim_timeout.as_millis() as u64,
        "checksums": c.checksums,
        "mode": format!("{:04o}", c.mode),
    })
}

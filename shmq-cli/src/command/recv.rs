//! `shmq recv`: receive one message. The payload goes raw to stdout; without
//! --ack the receipt `SLOT:GEN` goes to stderr, for `shmq ack PATH RECEIPT`.

/// Extra help: who holds a lease taken by this short-lived process.
pub const AFTER_HELP: &str = concat!(
    "\
Without --ack the lease outlives this process: it ends at its deadline, or
with `shmq ack|nack PATH RECEIPT`. The lease is recorded as held by the
process that ran `shmq recv` (its parent, such as the script's shell), so
`shmq recover --apply` returns the message early only once that process is
gone.

",
    exit_status_help!()
);

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::duration::{self, human_ms};
use crate::exit::{Code, Failure};
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// Ack the message once it is written out (delete it).
    #[arg(long)]
    pub ack: bool,
    /// Wait this long for a message to become visible.
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    pub wait: Duration,
    /// Lease the message for this long instead of the queue's visibility
    /// timeout.
    #[arg(long, value_parser = duration::parse)]
    pub visibility: Option<Duration>,
    /// Print one JSON object (payload, id, receipt...) instead of raw bytes.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    if !a.ack {
        // The lease outlives us: the caller holds it.
        // SAFETY: getppid has no preconditions and cannot fail.
        let parent = unsafe { libc::getppid() };
        q.set_owner_pid(parent as u32);
    }
    let mut payload = Vec::new();
    let got = if a.wait.is_zero() {
        q.try_receive_into(&mut payload, a.visibility)
    } else {
        q.receive_into(&mut payload, a.wait, a.visibility)
    };
    let Some(d) = got else {
        let what = if a.wait.is_zero() {
            "the queue has no visible message; retry later, or wait for one with --wait 5s".into()
        } else {
            format!(
                "no message became visible within {}; retry later, or wait longer with --wait",
                human_ms(a.wait.as_millis() as u64)
            )
        };
        return Err(Failure::new(Code::Empty, what));
    };
    let written = if a.json {
        let Value::Object(mut m) = json!({
            "id": d.id,
            "receipt": d.receipt.to_string(),
            "receives": d.receives,
            "deadline_ms": d.deadline_ms,
            "sent_ms": d.sent_ms,
            "len": payload.len(),
            "acked": a.ack,
        }) else {
            unreachable!("json! of an object literal is an object")
        };
        output::payload_fields(&mut m, &payload);
        output::print_json(&Value::Object(m))
    } else {
        let mut out = io::stdout().lock();
        out.write_all(&payload)
            .and_then(|()| out.flush())
            .map_err(Failure::from)
    };
    if let Err(f) = written {
        // Nobody got the message: give it back at once.
        let _ = q.nack(d.receipt, Duration::ZERO);
        return Err(f);
    }
    if a.ack {
        q.ack(d.receipt)?;
    } else if !a.json {
        writeln!(io::stderr().lock(), "{}", d.receipt)?;
    }
    Ok(())
}

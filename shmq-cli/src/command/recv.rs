//! `shmq recv`: receive messages. One by default (payload raw on stdout);
//! `--count N` or `--follow` for a stream, framed as JSON lines (`--json`)
//! or newline-terminated payloads (`--lines`).
//!
//! Nothing is lost on the way out: with `--ack` a message is acked only
//! after its output was written in full to stdout (one `write(2)` per
//! message, no buffer in between); if the write fails (stdout closed, the
//! reader gone) the lease is given back at once and nothing is acked.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use shmq::{Delivery, Queue};

use crate::duration::{self, human_ms, mono_to_unix_ms};
use crate::exit::{Code, Failure};
use crate::json;
use crate::output::{self, RawStdout};

/// Extra help: the stream forms, the ack rule, and the shell pattern.
pub const AFTER_HELP: &str = "\
Output: one message by default, its payload raw on stdout and (without
--ack) its receipt QUEUE-SLOT-GEN-ID on stderr. With --json, one JSON object per
message and line, keys in this order: id, receipt, receives, len,
encoding (utf-8 or base64), payload, sent_unix_ms, deadline_unix_ms,
acked. With --lines, each payload and a newline (a payload that contains
a newline is given back and recv stops: use --json). --count and --follow
need --json or --lines.

--ack acks a message only after its output was written to stdout in full;
if stdout is closed or its reader is gone, the message is given back
(visible again at once), nothing is acked, and recv exits 1. Data that a
reader took from the pipe and then dropped is not ours to know: to act on
each message before it is deleted, receive without --ack and ack after the
work succeeded:

  shmq recv Q --json --follow | while read -r m; do
    work \"$(jq -r .payload <<<\"$m\")\" && shmq ack Q \"$(jq -r .receipt <<<\"$m\")\"
  done

The same without jq (the receipt holds no quotes):

  r=${m#*\\\"receipt\\\":\\\"}; shmq ack Q \"${r%%\\\"*}\"

A message whose work fails is delivered again after the lease (the
queue's visibility timeout or --visibility); `shmq nack Q RECEIPT` gives it
back at once.

--follow ends on SIGINT or SIGTERM (exit 0, after the message in hand is
written and acked), after --count messages, or once no message came for
--wait. Exit 5 when no message at all was received, unless a signal
ended it.

Without --ack a lease outlives this process and names no process: the
work is done by whoever called `shmq recv` (a script, perhaps through a
wrapper such as `timeout` or `xargs`), which shmq cannot name. The lease
comes back when its visibility timeout passes, unless acked, nacked or
extended with its receipt first. (A library consumer's leases name its
process and come back at once if it dies.)";

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// Ack each message once its output is written (delete it).
    #[arg(long)]
    pub ack: bool,
    /// Receive up to N messages, then stop (also with --follow).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Keep receiving until SIGINT/SIGTERM (or --count, or --wait idle).
    #[arg(long)]
    pub follow: bool,
    /// How long to wait for each message: 0 ..= 12h (default 0, no wait;
    /// with --follow, stop once no message came for this long).
    #[arg(long, value_parser = duration::wait, value_name = "DURATION")]
    pub wait: Option<Duration>,
    /// Lease each message for this long instead of the queue's visibility
    /// timeout: 1ms ..= 12h.
    #[arg(long, value_parser = duration::lease, value_name = "DURATION")]
    pub visibility: Option<Duration>,
    /// One JSON object per message and line (receipt included).
    #[arg(long, conflicts_with = "lines")]
    pub json: bool,
    /// Each payload followed by a newline.
    #[arg(long)]
    pub lines: bool,
}

/// The queue a signal shuts down (its waits end; see `Queue::shutdown`).
static STOP: OnceLock<Queue> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    // OnceLock::get is an atomic load; shutdown is async-signal-safe.
    if let Some(q) = STOP.get() {
        q.shutdown();
    }
}

/// SIGINT and SIGTERM end the receive loop (a second one kills).
fn stop_on_signals(q: &Queue) {
    let _ = STOP.set(q.clone());
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handler only loads an atomic and calls the
        // async-signal-safe Queue::shutdown.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

enum Format {
    Raw,
    Lines,
    Json,
}

/// The bytes that go to stdout for one message.
fn render(format: &Format, d: &Delivery, payload: &[u8], ack: bool) -> Vec<u8> {
    match format {
        Format::Raw => payload.to_vec(),
        Format::Lines => {
            let mut v = Vec::with_capacity(payload.len() + 1);
            v.extend_from_slice(payload);
            v.push(b'\n');
            v
        }
        Format::Json => {
            let mut m = output::object(json!({
                "id": d.id,
                "receipt": d.receipt.to_string(),
                "receives": d.receives,
                "len": payload.len(),
            }));
            output::payload_fields(&mut m, payload);
            m.insert("sent_unix_ms".into(), json!(mono_to_unix_ms(d.sent_ms)));
            m.insert(
                "deadline_unix_ms".into(),
                json!(mono_to_unix_ms(d.deadline_ms)),
            );
            m.insert("acked".into(), json!(ack));
            json::line(&m)
        }
    }
}

pub fn run(a: Args) -> Result<(), Failure> {
    let format = if a.json {
        Format::Json
    } else if a.lines {
        Format::Lines
    } else {
        Format::Raw
    };
    let many = a.follow || a.count.is_some_and(|n| n > 1);
    if many && matches!(format, Format::Raw) {
        return Err(Failure::new(
            Code::Usage,
            "--count and --follow need --json or --lines (raw payloads have no boundaries); add one",
        ));
    }
    let q = output::open(&a.path)?;
    if !a.ack {
        // The leases outlive us: our caller holds them, and shmq cannot
        // name it (a parent may be a wrapper such as `timeout` or `xargs`).
        // They come back when their visibility timeout passes.
        q.set_anonymous_leases(true);
    }
    if a.follow {
        stop_on_signals(&q);
    }
    let limit = a.count.unwrap_or(if a.follow { u64::MAX } else { 1 });
    let vis = a.visibility.map(shmq::Visibility::new).transpose()?;
    let mut payload = Vec::new();
    let mut got = 0u64;
    // A signal ends the loop between messages, even while messages keep
    // coming (a receive after the shutdown may still find one).
    while got < limit && !q.is_shut_down() {
        let d = match (a.follow, a.wait) {
            (false, None) => q.try_receive_into(&mut payload, vis),
            (_, Some(w)) if w.is_zero() => q.try_receive_into(&mut payload, vis),
            (_, Some(w)) => q.receive_into(&mut payload, w, vis),
            (true, None) => loop {
                if q.is_shut_down() {
                    break None;
                }
                if let Some(d) = q.receive_into(&mut payload, Duration::from_secs(3600), vis) {
                    break Some(d);
                }
            },
        };
        let Some(d) = d else { break };
        if matches!(format, Format::Lines) && payload.contains(&b'\n') {
            let _ = q.nack(d.receipt, Duration::ZERO);
            return Err(Failure::new(
                Code::Other,
                format!(
                    "message {} contains a newline, which --lines cannot frame; it was given back; receive it with --json",
                    d.id
                ),
            ));
        }
        let bytes = render(&format, &d, &payload, a.ack);
        if let Err(e) = RawStdout.write_all(&bytes) {
            // Nobody got the message: give it back at once, ack nothing.
            let _ = q.nack(d.receipt, Duration::ZERO);
            return Err(Failure::new(
                Code::Other,
                format!(
                    "cannot write to stdout ({e}); message {} was given back, not acked; check where stdout goes",
                    d.id
                ),
            ));
        }
        if a.ack {
            if let Err(e) = q.ack(d.receipt) {
                let mut f = Failure::from(e);
                f.message = format!(
                    "message {} was written but not acked: {}; it will be delivered again (lease it longer with --visibility)",
                    d.id, f.message
                );
                return Err(f);
            }
        } else if !matches!(format, Format::Json) {
            let _ = writeln!(io::stderr().lock(), "{}", d.receipt);
        }
        got += 1;
    }
    if got == 0 && !q.is_shut_down() {
        let what = match a.wait {
            None | Some(Duration::ZERO) => {
                "the queue has no visible message; retry later, or wait for one with --wait 5s"
                    .to_owned()
            }
            Some(w) => format!(
                "no message became visible within {}; retry later, or wait longer with --wait",
                human_ms(crate::duration::millis(w))
            ),
        };
        return Err(Failure::new(Code::Empty, what));
    }
    Ok(())
}

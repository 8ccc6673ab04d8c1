//! `shmq dlq list|peek|redrive|purge`: the dead-letter workflow (inspect,
//! fix, replay or drop).

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};
use shmq::DeadLetter;

use crate::duration::{ago_ms, human_ms, unix_ms};
use crate::exit::Failure;
use crate::output::{self, Out};

#[derive(Subcommand)]
pub enum Dlq {
    /// List dead messages, oldest id first: id, receives, reason, when it
    /// died, and the start of the payload; then those moved to the
    /// dead-letter queue (DIED reads `moved`).
    List(ListArgs),
    /// Show dead messages' payloads; with --id, that payload raw on stdout.
    Peek(PeekArgs),
    /// Make dead messages visible again (receive count reset).
    Redrive(ChangeArgs),
    /// Delete dead messages for good.
    Purge(ChangeArgs),
    /// Name a dead-letter queue: from now on messages that die here are
    /// moved there (with a 32-byte envelope: source identity, id, receive
    /// count, reason, send time) instead of staying here. Its slots must
    /// hold this queue's plus 32 bytes; created so if it does not exist.
    Attach(AttachArgs),
    /// Stop moving dead messages to a dead-letter queue.
    Detach(DetachArgs),
}

#[derive(clap::Args)]
pub struct AttachArgs {
    /// The queue file.
    pub path: PathBuf,
    /// The dead-letter queue file (created with this queue's slot count
    /// and slot size + 32 if it does not exist).
    pub dlq: PathBuf,
}

#[derive(clap::Args)]
pub struct DetachArgs {
    /// The queue file.
    pub path: PathBuf,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// The queue file (read access is enough).
    pub path: PathBuf,
    /// Show at most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON object per dead message and line, payloads in full; keys
    /// in this order: id, receipt, receives, reason, died_unix_ms,
    /// died_ago_ms, len, encoding (utf-8 or base64), payload, and for a
    /// message moved to the dead-letter queue `"moved": true` (its receipt
    /// and time of death null).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct PeekArgs {
    /// The queue file (read access is enough).
    pub path: PathBuf,
    /// Only this message: its payload goes to stdout as raw bytes.
    #[arg(long)]
    pub id: Option<u64>,
    /// Show at most this many.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// One JSON object per dead message and line (keys as `dlq list`).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
pub struct ChangeArgs {
    /// The queue file.
    pub path: PathBuf,
    /// The dead message with this id.
    #[arg(long)]
    pub id: Option<u64>,
    /// Every dead message (oldest first, up to --limit).
    #[arg(long)]
    pub all: bool,
    /// With --all: at most this many.
    #[arg(long, requires = "all")]
    pub limit: Option<usize>,
    /// Print the result as one JSON object: {"redriven": N} or
    /// {"purged": N}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: Dlq) -> Result<(), Failure> {
    match cmd {
        Dlq::List(a) => list(a),
        Dlq::Peek(a) => peek(a),
        Dlq::Redrive(a) => change(a, true),
        Dlq::Purge(a) => change(a, false),
        Dlq::Attach(a) => attach(a),
        Dlq::Detach(a) => {
            output::open(&a.path)?.clear_dead_letter_queue();
            Ok(())
        }
    }
}

fn attach(a: AttachArgs) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let cfg = q.config();
    let want = shmq::Config::default()
        .slots(cfg.slots)
        .slot_size(cfg.slot_size + shmq::DeadLetterEnvelope::LEN as u32);
    let dlq = match shmq::Queue::open(&a.dlq) {
        Ok(d) => d,
        Err(shmq::Error::NotFound { .. }) => shmq::Queue::create(&a.dlq, &want)?,
        Err(e) => return Err(e.into()),
    };
    q.set_dead_letter_queue(&dlq)?;
    Ok(())
}

/// Up to `limit` messages the queue at `q` moved to its dead-letter
/// queue (those visible there, oldest first): (envelope, payload).
fn moved(q: &shmq::QueueView, limit: usize) -> Vec<(shmq::DeadLetterEnvelope, Vec<u8>)> {
    let Some(path) = q.dead_letter_queue_path() else {
        return Vec::new();
    };
    let Ok(dlq) = shmq::QueueView::open(&path) else {
        return Vec::new();
    };
    dlq.peek(limit)
        .into_iter()
        .filter_map(|m| {
            let (env, payload) = shmq::DeadLetterEnvelope::parse(&m.payload)?;
            (env.source == q.identity()).then(|| (env, payload.to_vec()))
        })
        .collect()
}

fn list(a: ListArgs) -> Result<(), Failure> {
    let q = output::view(&a.path)?;
    // At most --limit payloads held, whatever the queue holds.
    let dead = q.dead_letters_up_to(a.limit);
    let there = moved(&q, a.limit - dead.len());
    let mut out = Out::new();
    if a.json {
        for d in &dead {
            out.json(&to_json(d))?;
        }
        for (env, payload) in &there {
            out.json(&moved_json(env, payload))?;
        }
        return out.finish();
    }
    writeln!(
        out,
        "{:>10}  {:>4}  {:<12}  {:<12}  {:>6}  PAYLOAD",
        "ID", "RECV", "REASON", "DIED", "LEN"
    )?;
    for d in &dead {
        writeln!(
            out,
            "{:>10}  {:>4}  {:<12}  {:<12}  {:>6}  {}",
            d.id,
            d.receives,
            d.reason.name(),
            format!("{} ago", human_ms(ago_ms(d.died_at))),
            d.payload.len(),
            output::escaped(&d.payload, Some(48))
        )?;
    }
    for (env, payload) in &there {
        writeln!(
            out,
            "{:>10}  {:>4}  {:<12}  {:<12}  {:>6}  {}",
            env.id,
            env.receives,
            env.reason.name(),
            "moved",
            payload.len(),
            output::escaped(payload, Some(48))
        )?;
    }
    out.finish()
}

/// A message moved to the dead-letter queue, as `dlq list --json` shows it:
/// the keys of a dead letter here, with no receipt and no time of death
/// (the envelope keeps the send time), and `"moved": true`.
fn moved_json(env: &shmq::DeadLetterEnvelope, payload: &[u8]) -> Value {
    let mut m = output::object(json!({
        "id": env.id,
        "receipt": Value::Null,
        "receives": env.receives,
        "reason": env.reason.name(),
        "died_unix_ms": Value::Null,
        "died_ago_ms": Value::Null,
        "len": payload.len(),
    }));
    output::payload_fields(&mut m, payload);
    m.insert("moved".into(), json!(true));
    Value::Object(m)
}

fn peek(a: PeekArgs) -> Result<(), Failure> {
    let q = output::view(&a.path)?;
    if let Some(id) = a.id {
        // Only this message's payload is copied.
        let d = q
            .find_dead_letter(id)
            .ok_or(shmq::Error::NoSuchMessage { id })?;
        let mut out = Out::new();
        if a.json {
            out.json(&to_json(&d))?;
        } else {
            out.write_all(&d.payload)?;
        }
        return out.finish();
    }
    let dead = q.dead_letters_up_to(a.limit);
    let mut out = Out::new();
    if a.json {
        for d in &dead {
            out.json(&to_json(d))?;
        }
        return out.finish();
    }
    for d in &dead {
        writeln!(
            out,
            "id {} ({}, {} receives): {}",
            d.id,
            d.reason.name(),
            d.receives,
            output::escaped(&d.payload, None)
        )?;
    }
    out.finish()
}

fn change(a: ChangeArgs, redrive: bool) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let n = match a.id {
        Some(id) => {
            if redrive {
                q.redrive(id)?;
            } else {
                q.purge(id)?;
            }
            1
        }
        None => {
            let limit = a.limit.unwrap_or(usize::MAX);
            if redrive {
                // Dead here, then those moved to the dead-letter queue.
                let here = q.redrive_all(limit)?;
                here + q.redrive_from_dead_letter_queue(limit - here)?
            } else {
                q.purge_all(limit)?
            }
        }
    };
    let verb = if redrive { "redriven" } else { "purged" };
    if a.json {
        return output::print_json(&json!({ verb: n }));
    }
    let _ = writeln!(
        io::stderr().lock(),
        "{verb} {n} dead message{}",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}

fn to_json(d: &DeadLetter) -> Value {
    let mut m = output::object(json!({
        "id": d.id,
        "receipt": d.receipt.to_string(),
        "receives": d.receives,
        "reason": d.reason.name(),
        "died_unix_ms": unix_ms(d.died_at),
        "died_ago_ms": ago_ms(d.died_at),
        "len": d.payload.len(),
    }));
    output::payload_fields(&mut m, &d.payload);
    Value::Object(m)
}

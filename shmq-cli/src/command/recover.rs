//! `shmq recover`: the command-line face of [`shmq::recover`].

use std::io::{self, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use shmq::now_ms;
use shmq::recover::{self, Finding, Options, Report};

use crate::exit::{Code, Failure};
use crate::json;
use crate::output::{self, RawStdout};

/// Files with at least this many slots get a progress bar on a terminal
/// (a scan of 2^22 slots takes about a second; smaller ones are quick).
const PROGRESS_FROM_SLOTS: u32 = 1 << 22;

pub const AFTER_HELP: &str = "\
Every slot is classified as free, visible, delayed, leased-live,
leased-dead (its holder process is gone), lease-expired, writing,
claim-expired, abandoned, dead or corrupt. Acked messages are free
slots.

Without --apply nothing changes (but write access is needed). With --apply,
recover returns leases of dead holders and expired leases to visible (or
dead-letters them at max receives), abandons expired claims and frees them
once their sender is gone, and quarantines corrupt slots as dead (reason
corrupt). It never deletes a message.

A durable queue whose sync to disk failed (EIO, ENOSPC) refuses durable
sends. recover reports it; with --apply it writes every page of the file
again and syncs it, and clears the failure only if that sync succeeds
(check the disk and its free space first).

recover is safe while other processes use the queue: it takes no lock and
needs no exclusive access. Each repair is one of the queue's own lock-free
transitions, a compare-and-swap from the exact words it read, so if
another process changes the slot first the repair simply does not happen.
It is idempotent (a second --apply repairs nothing) and safe to interrupt
(each slot is consistent after every step; run it again to finish).
Holder liveness is checked by pid: run it in the same pid namespace as the
processes that use the queue. A lease taken by `shmq recv` without --ack
is held by the process that ran it (its parent).

Without --apply, recover exits 8 when it found slots to repair (0 when
there is nothing to repair), so a cron job can tell.

Findings are printed as they are found, never held, so recover takes the
same memory for a queue of any size (and stops when stdout goes away).
--json prints one JSON object per line: one per finding, in slot order
(keys: slot, class, id, receives, owner_pid, action, repairable, done),
then a summary, always the last line and the only one with a counts key
(keys: path, slots, applied, force_abandoned, counts (by class),
to_repair, repaired, sync_failed (errno or null), sync_cleared): `shmq recover --json Q | tail -n 1`.";

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// Repair what is safe (without it, only report).
    #[arg(long)]
    pub apply: bool,
    /// Also quarantine (as dead, reason recovered) abandoned claims whose
    /// sender is still alive but stalled.
    #[arg(long)]
    pub force_abandoned: bool,
    /// Print the report as JSON lines: each finding as it is found, then a
    /// summary line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    // Even a dry run opens the file for writing: a writer's open resets
    // the clocks after a reboot, and the scan runs on the core's own reads.
    let q = output::open(&a.path)?;
    let slots = q.config().slots;
    let bar = if !a.json && slots >= PROGRESS_FROM_SLOTS && io::stderr().is_terminal() {
        let bar = ProgressBar::new(u64::from(slots));
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} slots ({eta})")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(if a.apply { "repairing" } else { "scanning" });
        bar
    } else {
        ProgressBar::hidden()
    };
    let options = Options {
        apply: a.apply,
        force_abandoned: a.force_abandoned,
    };
    // A recorded sync failure first: with --apply, rewrite and sync.
    let sync_failed = q.sync_failure().and_then(|e| e.raw_os_error());
    let sync_cleared = match sync_failed {
        Some(_) if a.apply => {
            q.clear_sync_failure()?;
            true
        }
        _ => false,
    };
    // Each finding is written as it is made and not kept, so the tool's
    // memory does not grow with the queue. A failed write (stdout closed,
    // the reader gone) ends the pass after that slot.
    let mut out = io::BufWriter::with_capacity(64 * 1024, AroundBar(&bar));
    let mut failed: Option<Failure> = None;
    let mut any = false;
    let report = recover::run_queue_each(
        &q,
        now_ms(),
        options,
        |done| bar.set_position(u64::from(done)),
        |f| {
            let wrote = if a.json {
                json::write(&mut out, &finding_json(&f)).and_then(|()| out.write_all(b"\n"))
            } else {
                let first = !any;
                any = true;
                finding_text(&mut out, &f, first)
            };
            match wrote {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e.into());
                    ControlFlow::Break(())
                }
            }
        },
    );
    bar.finish_and_clear();
    if let Some(f) = failed {
        return Err(f);
    }
    if a.json {
        let mut v = Map::new();
        v.insert("path".into(), json!(a.path.display().to_string()));
        v.extend(summary_json(&report));
        v.insert("sync_failed".into(), json!(sync_failed));
        v.insert("sync_cleared".into(), json!(sync_cleared));
        json::write(&mut out, &Value::Object(v))?;
        out.write_all(b"\n")?;
    } else {
        summary_text(&mut out, &a, &report)?;
        if let Some(errno) = sync_failed {
            let e = io::Error::from_raw_os_error(errno);
            if sync_cleared {
                writeln!(out, "a sync had failed ({e}): every page rewritten and synced; durable sends work again")?;
            } else {
                writeln!(out, "a sync failed ({e}): durable sends fail; check the disk, then run again with --apply to rewrite and sync the file")?;
            }
        }
    }
    out.flush()?;
    if !a.apply && (report.to_repair() > 0 || sync_failed.is_some()) {
        // The report is out; the status says "something to repair".
        return Err(Failure::new(Code::NeedsRepair, ""));
    }
    Ok(())
}

/// Stdout, unbuffered, for the report: each write (a buffer's worth) hides
/// the progress bar while it runs, so lines and bar do not mix on one
/// terminal (with the bar hidden, a plain write).
struct AroundBar<'a>(&'a ProgressBar);

impl Write for AroundBar<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.suspend(|| RawStdout.write(b))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn finding_text(out: &mut impl Write, f: &Finding, first: bool) -> io::Result<()> {
    if first {
        writeln!(out, "findings:")?;
    }
    let pid = if f.holder != 0 {
        format!(", holder {}", f.holder)
    } else {
        String::new()
    };
    writeln!(
        out,
        "  slot {} ({}, id {}{pid}): {}",
        f.slot,
        f.class.name(),
        f.id,
        f.action
    )?;
    for step in &f.done {
        writeln!(out, "    done: {step}")?;
    }
    Ok(())
}

fn summary_text(out: &mut impl Write, a: &Args, r: &Report) -> io::Result<()> {
    writeln!(out, "scanned {} slots of {}", r.slots, a.path.display())?;
    for (class, n) in r.counts().filter(|(_, n)| *n > 0) {
        writeln!(out, "  {:<14} {n}", class.name())?;
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if a.apply {
        let n = r.repaired();
        writeln!(out, "repaired {n} slot{}", plural(n))?;
    } else {
        let n = r.to_repair();
        if n == 0 {
            writeln!(out, "nothing to repair")?;
        } else {
            writeln!(
                out,
                "{n} slot{} to repair; run again with --apply to repair {}",
                plural(n),
                if n == 1 { "it" } else { "them" }
            )?;
        }
    }
    Ok(())
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "slot": f.slot,
        "class": f.class.name(),
        "id": f.id,
        "receives": f.receives,
        "holder": f.holder,
        "action": f.action,
        "repairable": f.repairable,
        "done": f.done,
    })
}

fn summary_json(r: &Report) -> Map<String, Value> {
    let counts: Map<String, Value> = r
        .counts()
        .map(|(c, n)| (c.name().to_owned(), json!(n)))
        .collect();
    output::object(json!({
        "slots": r.slots,
        "applied": r.options.apply,
        "force_abandoned": r.options.force_abandoned,
        "counts": counts,
        "to_repair": r.to_repair(),
        "repaired": r.repaired(),
    }))
}

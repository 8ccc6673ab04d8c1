//! A consumer killed mid-work: its messages come back at once and another
//! consumer finishes them.
//!
//! `cargo run --release --example crash` (add `--quick` for a short run).
//!
//! Consumer A leases a batch of jobs and is SIGKILLed while it holds them:
//! no ack, no nack, no cleanup. Its leases name its process (a registration
//! in the queue file); the next sweep of a receiver finds that process gone
//! and returns the jobs without waiting for their visibility timeout.
//! Consumer B, working through the rest, receives A's jobs (delivery 2) and
//! acks them. The summary checks every job: acked, none lost.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use shmq::{now_ms, Config, Queue};

/// Jobs consumer A takes before it "crashes".
const BATCH: usize = 5;

fn main() -> Res {
    if let Some((role, name, dir, _)) = role() {
        return match role.as_str() {
            "batch" => take_batch_and_hang(&name, &dir),
            "worker" => serve(&name, &dir, "jobs.q", true, |job| {
                if job.receives() > 1 {
                    println!(
                        "  [{name}] message {}: delivery {}, its earlier holder is gone; done",
                        job.id(),
                        job.receives()
                    );
                }
                std::thread::sleep(ms(10));
                Ok(Outcome::Ack)
            }),
            other => Err(format!("unknown role {other}").into()),
        };
    }
    run()
}

/// Lease a batch of jobs and work on them "forever" (until killed).
fn take_batch_and_hang(name: &str, dir: &Path) -> Res {
    let q = Queue::open(dir.join("jobs.q"))?;
    let mut journal = Journal::open(dir, name)?;
    let mut leases = Vec::new();
    while leases.len() < BATCH {
        if let Some(lease) = q.receive(Duration::from_secs(10)) {
            journal.delivered(&lease)?;
            leases.push(lease);
        } else {
            return Err("no job within 10 s".into());
        }
    }
    let ids: Vec<String> = leases.iter().map(|l| l.id().to_string()).collect();
    println!(
        "  [{name}] leased messages {}; working on them...",
        ids.join(", ")
    );
    for l in &leases {
        journal.log(format_args!("H {} {}", l.id(), now_ms()))?;
    }
    loop {
        std::thread::sleep(ms(100));
    }
}

fn run() -> Res {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let vt = pick(ms(500), ms(3000));
    let q = Queue::create(
        dir.join("jobs.q"),
        &Config::default()
            .slots(256)
            .slot_size(128)
            .visibility_timeout(vt),
    )?;
    let jobs = pick(30, 60);
    let mut sent = Vec::new();
    for n in 1..=jobs {
        sent.push(q.send(&format!("job {n}"))?);
    }
    println!(
        "crash: {jobs} jobs queued; visibility timeout {} ms",
        vt.as_millis()
    );
    let mut procs = Procs::new(dir);
    procs.start("batch", "consumer-a", &[])?;
    wait_for(
        "consumer A to hold its batch",
        Duration::from_secs(10),
        || {
            Ok(deliveries(dir, "consumer-a")?
                .iter()
                .filter(|d| d.held)
                .count()
                == BATCH)
        },
    )?;
    procs.start("worker", "consumer-b", &[])?;
    std::thread::sleep(pick(ms(100), ms(500)));

    let held: Vec<u64> = deliveries(dir, "consumer-a")?
        .iter()
        .map(|d| d.id)
        .collect();
    let pid = procs.kill("consumer-a")?;
    let killed = Instant::now();
    let s = q.stats();
    println!(
        "SIGKILL consumer A (pid {pid}) while it holds {} leases. In flight: {} ({} of them the dead consumer's: \
         the next sweep finds their holder gone and returns them); acked so far: {}",
        held.len(),
        s.in_flight,
        held.len(),
        s.acked
    );
    let mut last = Instant::now();
    wait_for("every job to be acked", Duration::from_secs(30), || {
        let s = q.stats();
        let done = s.acked == jobs;
        if done || last.elapsed() >= pick(ms(100), ms(500)) {
            println!(
                "  t+{:>4} ms  acked {:>2}  waiting {:>2}  in flight {}",
                killed.elapsed().as_millis(),
                s.acked,
                s.visible,
                s.in_flight
            );
            last = Instant::now();
        }
        Ok(done)
    })?;
    procs.stop_all()?;

    let ds = deliveries(dir, "consumer-")?;
    let a = audit(&sent, &q, &ds);
    let recovered = ds
        .iter()
        .filter(|d| {
            d.worker == "consumer-b"
                && held.contains(&d.id)
                && d.receives >= 2
                && matches!(d.end, Some(('A', _)))
        })
        .count();
    println!(
        "{} jobs sent, {} acked, {} lost; {} of the {} jobs the killed consumer held were delivered again to consumer B and acked",
        a.sent,
        a.acked,
        a.lost.len(),
        recovered,
        held.len()
    );
    summary(&[
        ("sent", a.sent.to_string()),
        ("acked", a.acked.to_string()),
        ("queue_acked", q.stats().acked.to_string()),
        ("held", held.len().to_string()),
        ("recovered", recovered.to_string()),
        ("redelivered", q.stats().redelivered.to_string()),
        ("lost", a.lost.len().to_string()),
        ("overlaps", a.overlaps.to_string()),
        ("double_acks", a.double_acks.to_string()),
        ("strangers", a.strangers.to_string()),
    ]);
    if !a.clean() {
        return Err(format!("audit failed: {a:?}").into());
    }
    Ok(())
}

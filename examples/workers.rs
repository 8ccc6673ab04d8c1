//! Competing consumers: add workers until the queue keeps up.
//!
//! `cargo run --release --example workers` (add `--quick` for a short run).
//!
//! A producer sends jobs at a steady 100 a second; one worker process
//! handles 50 a second. With one worker the queue grows; a second worker
//! matches the producer and the depth holds steady; with five the backlog
//! falls to nothing. The workers share nothing but the queue file, and the
//! queue hands each job to exactly one of them at a time: every worker
//! journals what it leased and when, and at the end the parent checks that
//! no job was ever leased by two workers at once, that each was acked
//! exactly once, and that none was lost. (A job whose lease expired before
//! its ack is delivered again, as it should be; such repeats are counted
//! separately.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmq::{Config, Queue};

/// Time one job takes a worker: 50 jobs a second per worker.
const WORK: Duration = Duration::from_millis(20);
/// Time between two sends: 100 jobs a second.
const TICK: Duration = Duration::from_millis(10);

fn main() -> Res {
    if let Some((role, name, dir, _)) = role() {
        if role != "worker" {
            return Err(format!("unknown role {role}").into());
        }
        return serve(&name, &dir, "jobs.q", true, |_job| {
            std::thread::sleep(WORK);
            Ok(Outcome::Ack)
        });
    }
    produce()
}

fn produce() -> Res {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let vt = pick(ms(500), ms(2000));
    let q = Queue::create(
        dir.join("jobs.q"),
        &Config::default()
            .slots(4096)
            .slot_size(128)
            .visibility_timeout(vt),
    )?;
    let phase = pick(ms(1000), ms(3000));
    let every = pick(ms(100), ms(250));
    let per = pick(2, 5);
    println!(
        "workers: {} jobs/s in, {} jobs/s per worker; depth sampled every {} ms, one # per {per} jobs waiting",
        Duration::from_secs(1).as_nanos() / TICK.as_nanos(),
        Duration::from_secs(1).as_nanos() / WORK.as_nanos(),
        every.as_millis()
    );
    let mut procs = Procs::new(dir);
    let mut sent = Vec::new();
    let mut depth_at = Vec::new();
    let start = Instant::now();
    let mut next_send = start;
    let mut next_sample = start;
    let mut max_depth = 0;
    for (workers, why) in [
        (1, "1 worker: half the rate jobs come in at"),
        (2, "2 workers: as fast as jobs come in"),
        (5, "5 workers: more than enough"),
    ] {
        for k in procs.running("worker").len() + 1..=workers {
            procs.start("worker", &format!("worker-{k}"), &[])?;
        }
        println!("-- {why}");
        let until = Instant::now() + phase;
        while Instant::now() < until {
            let now = Instant::now();
            if now >= next_send {
                sent.push(q.send(&format!("job {}", sent.len() + 1))?);
                next_send += TICK;
            }
            if now >= next_sample {
                let s = q.stats();
                max_depth = max_depth.max(s.visible);
                let line = format!(
                    "t={:>4.1}s  workers {workers}  depth {:>4} (+{} in flight)  {}",
                    start.elapsed().as_secs_f64(),
                    s.visible,
                    s.in_flight,
                    bar(s.visible, per)
                );
                println!("{}", line.trim_end());
                next_sample += every;
            }
            let wake = next_send.min(next_sample);
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
        depth_at.push(q.stats().visible);
    }
    println!("-- the producer stops; the workers finish what is left");
    wait_for("the queue to drain", Duration::from_secs(30), || {
        let s = q.stats();
        Ok(s.visible + s.in_flight + s.delayed == 0)
    })?;
    procs.stop_all()?;

    let ds = deliveries(dir, "worker")?;
    let a = audit(&sent, &q, &ds);
    println!(
        "depth at the end of each phase: {} with 1 worker, {} with 2, {} with 5",
        depth_at[0], depth_at[1], depth_at[2]
    );
    let mut per_worker: Vec<(String, usize)> = Vec::new();
    for d in ds.iter().filter(|d| matches!(d.end, Some(('A', _)))) {
        match per_worker.iter_mut().find(|(w, _)| *w == d.worker) {
            Some((_, n)) => *n += 1,
            None => per_worker.push((d.worker.clone(), 1)),
        }
    }
    let shares: Vec<String> = per_worker.iter().map(|(w, n)| format!("{w} {n}")).collect();
    println!("jobs acked per worker: {}", shares.join(", "));
    println!(
        "{} jobs sent, {} acked; leased by two workers at once: {}; acked twice: {}; lost: {}; delivered again after a lease expired: {}",
        a.sent,
        a.acked,
        a.overlaps,
        a.double_acks,
        a.lost.len(),
        a.repeats
    );
    summary(&[
        ("sent", a.sent.to_string()),
        ("acked", a.acked.to_string()),
        ("queue_acked", q.stats().acked.to_string()),
        ("lost", a.lost.len().to_string()),
        ("overlaps", a.overlaps.to_string()),
        ("double_acks", a.double_acks.to_string()),
        ("strangers", a.strangers.to_string()),
        ("duplicates", a.repeats.to_string()),
        ("workers", per_worker.len().to_string()),
        ("max_depth", max_depth.to_string()),
        ("depth_1", depth_at[0].to_string()),
        ("depth_2", depth_at[1].to_string()),
        ("depth_5", depth_at[2].to_string()),
    ]);
    if !a.clean() {
        return Err(format!("audit failed: {a:?}").into());
    }
    Ok(())
}

//! Kill -9 the bridges at random while messages flow, and restart the NATS
//! server once in the middle: every message sent Ok on A arrives on B (lost
//! 0); duplicates are counted and printed. SHMQ_BRIDGE_KILLS sets the number
//! of kills (default 200; scripts/bridge-torture.sh runs 2,000).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmq::{Config, Queue};
use support::*;

const MAX_MESSAGES: usize = 2_000_000;

#[test]
fn kill_9_the_bridges_and_restart_the_server_lose_nothing() {
    let kills: usize = std::env::var("SHMQ_BRIDGE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed = std::env::var("SHMQ_BRIDGE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("torture: {kills} kills, seed {seed} (SHMQ_BRIDGE_SEED to replay the schedule)");
    let mut rng = fastrand::Rng::with_seed(seed);

    let mut nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (pa, pb) = (dir.path().join("a.q"), dir.path().join("b.q"));
    // A: a receive count high enough that no kill schedule dead-letters a
    // message locally (every message must cross).
    let qa = Arc::new(
        Queue::create(
            &pa,
            &Config::default()
                .slots(8192)
                .slot_size(128)
                .max_receives(60_000),
        )
        .expect("A"),
    );
    let qb = Queue::create(&pb, &Config::default().slots(8192).slot_size(128)).expect("B");
    let mut out = Bridge::start(
        &out_args(&pa, &nats.url(), "TORTURE"),
        &dir.path().join("out.log"),
    );
    // The in-bridge pauses 100 us after each local send and each answer to
    // JetStream, so kills land between its steps (see torture_pause).
    let mut inb = Bridge::start_with_env(
        &in_args(&pb, &nats.url(), "TORTURE"),
        &dir.path().join("in.log"),
        &[("SHMQ_BRIDGE_TORTURE_PAUSE_US", "100")],
    );
    let counter = Counter::start(&pb, MAX_MESSAGES);

    // The producer: a steady flow (about 4,000 messages/s) for as long as
    // the kills last.
    let sent = Arc::new(AtomicU64::new(0));
    let halt = Arc::new(AtomicBool::new(false));
    let producer = {
        let (qa, sent, halt) = (qa.clone(), sent.clone(), halt.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut k = 0u64;
            while !halt.load(Relaxed) && (k as usize) < MAX_MESSAGES {
                let due = start + Duration::from_micros(k * 250);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                match qa.send(&payload(k)) {
                    Ok(_) => {
                        k += 1;
                        sent.store(k, Relaxed);
                    }
                    Err(e) if e.is_full() => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("send on A: {e}"),
                }
            }
        })
    };

    let started = Instant::now();
    for i in 0..kills {
        // Kill after the flow has moved on by a random number of messages
        // (or a random time, whichever comes first), so kills land in every
        // phase: starting up, pulling, publishing, acking.
        let progress = rng.u64(0..300);
        let cap = Duration::from_millis(rng.u64(5..250));
        let from = counter.total.load(Relaxed);
        let t0 = Instant::now();
        while counter.total.load(Relaxed) < from + progress && t0.elapsed() < cap {
            std::thread::sleep(Duration::from_millis(1));
        }
        match rng.u8(0..5) {
            0 | 1 => out.restart(),
            2 | 3 => inb.restart(),
            _ => {
                out.kill9();
                inb.kill9();
                out.restart();
                inb.restart();
            }
        }
        if i == kills / 2 {
            nats.restart();
            println!("torture: nats-server restarted after {} kills", i + 1);
        }
    }
    halt.store(true, Relaxed);
    producer.join().expect("producer");
    let n = sent.load(Relaxed) as usize;
    let kill_time = started.elapsed();
    assert!(n > 0);
    // Leases on A come back after 1 s, JetStream redelivers after 1 s: a
    // message still missing after 20 s without progress is lost.
    wait_for_all(&counter, n, Duration::from_secs(20));
    let (lost, dups) = counter.tally(n);
    println!(
        "torture: {kills} kills in {:.1} s, 1 server restart; sent {n}, arrived {}, lost {lost}, duplicates {dups}",
        kill_time.as_secs_f64(),
        n - lost
    );
    assert_eq!(lost, 0, "messages sent Ok on A never arrived on B");
    assert!(out.running() && inb.running(), "the bridges keep running");
    assert_eq!(qa.stats().dead, 0, "nothing dead on A");
    assert_eq!(qb.stats().dead, 0, "nothing dead on B");
}

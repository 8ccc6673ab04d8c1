//! Orders that must survive a power cut: a durable queue.
//!
//! `cargo run --release --example durable [-- DIR]` (add `--quick` for a
//! short run). DIR must be on a disk file system (ext4, xfs, ...): a
//! durable queue refuses tmpfs. By default the queues go in
//! `target/durable-example` under the current directory (or
//! `/var/tmp/shmq-durable-example` if that is on tmpfs).
//!
//! 1. Eight checkout handlers (threads of this process and of a second
//!    process) each send orders to a durable queue: every `send` returns
//!    only once the order is on disk. They share `fdatasync`s: the queue
//!    counts how many sends each sync served.
//! 2. A fulfilment worker receives and acks every order.
//! 3. A batch producer on a queue that is *not* durable sends a batch, then
//!    makes all of it durable with one `sync()`.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use shmq::{Config, Error, Queue};

const HANDLERS_PER_PROCESS: u64 = 4;

fn main() -> Res {
    if let Some((role, _name, dir, rest)) = role() {
        return match role.as_str() {
            "handlers" => {
                let first: u64 = rest.first().ok_or("no first handler")?.parse()?;
                handlers(&dir, first).map(|_| ())
            }
            other => Err(format!("unknown role {other}").into()),
        };
    }
    match std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        Some(dir) => run(Path::new(&dir)),
        // The default: under target/, or /var/tmp where target/ is on tmpfs.
        None => match run(Path::new("target/durable-example")) {
            Err(e) if e.to_string().contains("keeps files in memory") => {
                run(Path::new("/var/tmp/shmq-durable-example"))
            }
            other => other,
        },
    }
}

fn orders_per_handler() -> u64 {
    pick(100, 1000)
}

fn run(dir: &Path) -> Res {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("orders.q");
    let _ = std::fs::remove_file(&path);
    let cfg = Config::default().slots(16_384).slot_size(256).durable(true);
    let q = match Queue::create(&path, &cfg) {
        Err(e @ Error::VolatileStorage { .. }) => {
            return Err(format!(
                "{e}\n(give a directory on a disk: cargo run --example durable -- DIR)"
            )
            .into());
        }
        other => other?,
    };
    println!("durable queue {} ({} slots)", path.display(), cfg.slots);

    // 1. Handlers here and in a second process, at once.
    let mut procs = Procs::new(dir);
    procs.start(
        "handlers",
        "handlers-b",
        &[HANDLERS_PER_PROCESS.to_string()],
    )?;
    let mine = handlers(dir, 0)?;
    procs.join("handlers-b")?;
    let total = 2 * HANDLERS_PER_PROCESS * orders_per_handler();
    let st = q.stats();
    let mut lat = mine;
    lat.sort_unstable();
    let pct = |p: usize| Duration::from_nanos(lat[(lat.len() - 1) * p / 100]);
    println!(
        "{total} durable sends by {} handlers in 2 processes; this process's: p50 {:?}, p99 {:?}",
        2 * HANDLERS_PER_PROCESS,
        pct(50),
        pct(99)
    );
    println!(
        "{} syncs served {} durable sends: {:.1} sends per fdatasync (group commit)",
        st.syncs,
        st.durable_waits,
        st.durable_waits as f64 / st.syncs.max(1) as f64
    );

    // 2. The fulfilment worker.
    let mut acked = 0u64;
    while let Some(order) = q.receive(ms(200)) {
        order.ack()?;
        acked += 1;
    }
    println!("fulfilment acked {acked} orders");

    // 3. A batch producer on a queue that is not durable.
    let events = dir.join("events.q");
    let _ = std::fs::remove_file(&events);
    let ev = Queue::create(&events, &Config::default().slots(1024).slot_size(64))?;
    let before = ev.stats().syncs;
    for i in 0..500u32 {
        ev.send(&format!("event {i}"))?;
    }
    ev.sync()?;
    let batch_syncs = ev.stats().syncs - before;
    println!("500 events sent, then one sync() made them durable ({batch_syncs} sync)");

    summary(&[
        ("sent", total.to_string()),
        ("acked", acked.to_string()),
        ("lost", total.saturating_sub(acked).to_string()),
        ("syncs", st.syncs.to_string()),
        ("durable_waits", st.durable_waits.to_string()),
        ("batch_syncs", batch_syncs.to_string()),
    ]);
    Ok(())
}

/// Run `HANDLERS_PER_PROCESS` handler threads, numbered from `first`, each
/// sending its orders durably; returns every send's latency in ns.
fn handlers(dir: &Path, first: u64) -> Res<Vec<u64>> {
    let q = Queue::open(dir.join("orders.q"))?;
    let failed = AtomicU64::new(0);
    let lat = std::thread::scope(|s| {
        let hs: Vec<_> = (first..first + HANDLERS_PER_PROCESS)
            .map(|h| {
                let (q, failed) = (&q, &failed);
                s.spawn(move || {
                    let mut lat = Vec::new();
                    for n in 0..orders_per_handler() {
                        let order = format!("order={h}-{n} total=42.00");
                        let t = Instant::now();
                        match q.send_blocking(&order) {
                            Ok(_) => lat.push(t.elapsed().as_nanos() as u64),
                            Err(e) => {
                                eprintln!("handler {h}: {e}");
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("a handler thread"))
            .collect::<Vec<u64>>()
    });
    match failed.load(Ordering::Relaxed) {
        0 => Ok(lat),
        n => Err(format!("{n} sends failed").into()),
    }
}

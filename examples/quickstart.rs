//! One producer process and one consumer process on a temporary queue file.
//!
//! `cargo run --release --example quickstart`: the parent creates the queue,
//! starts itself again as the consumer, sends ten orders, and waits for the
//! consumer to ack them all.

use std::process::Command;
use std::time::{Duration, Instant};

use shmq::{Config, Queue};

const ORDERS: u64 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let (Some(role), Some(path)) = (args.next(), args.next()) {
        if role == "consumer" {
            return consume(&path);
        }
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("orders.q");
    let q = Queue::create(
        &path,
        &Config::default()
            .slots(64)
            .slot_size(256)
            .visibility_timeout(Duration::from_secs(5)),
    )?;
    println!(
        "producer: created {} (64 slots of 256 bytes)",
        path.display()
    );

    let mut consumer = Command::new(std::env::current_exe()?)
        .arg("consumer")
        .arg(&path)
        .spawn()?;
    for n in 1..=ORDERS {
        let t = Instant::now();
        let id = q.send(&format!("order #{n}"))?;
        println!(
            "producer: sent order #{n} as message {id} in {:?}",
            t.elapsed()
        );
    }
    let status = consumer.wait()?;
    let stats = q.stats();
    println!(
        "producer: consumer exited ({status}); sent {}, acked {}, left in queue {}",
        stats.sent,
        stats.acked,
        stats.visible + stats.in_flight
    );
    if !status.success() || stats.acked != ORDERS {
        return Err("not every order was acked".into());
    }
    Ok(())
}

fn consume(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::open(path)?;
    let mut done = 0;
    while done < ORDERS {
        let Some(lease) = q.receive(Duration::from_secs(10)) else {
            return Err("consumer: no message within 10 s".into());
        };
        println!(
            "consumer: received message {} ({:?}), delivery {}",
            lease.id(),
            String::from_utf8_lossy(lease.payload()),
            lease.receives()
        );
        lease.ack()?;
        done += 1;
    }
    println!("consumer: acked {done} orders, exiting");
    Ok(())
}

//! Order through a full queue (design.md §5.1, §5.2): one producer
//! retrying `Full` as fast as it can, one consumer acking each message,
//! 1024 slots. Every message must arrive once, in exactly the order sent,
//! and every one from the main path (none from the sweep). Before the fix
//! a send that found the queue full used up a ticket, `fill` ran a lap
//! ahead and receivers jumped over messages that the sweep then delivered
//! up to a lap late (30,000 of 1,000,000 out of order).
//! The run: `SHMQ_ORDER_MESSAGES=1000000 cargo test --release
//! --test order -- --nocapture` (the default is 200,000, 20,000 in debug
//! builds, where the same mechanism showed within the first 10,000).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmq::{Config, Queue};

fn messages() -> u64 {
    std::env::var("SHMQ_ORDER_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        })
}

fn create(dir: &std::path::Path) -> Queue {
    let cfg = Config::default()
        .slots(1024)
        .slot_size(64)
        .visibility_timeout(Duration::from_secs(600));
    Queue::create(dir.join("q"), &cfg).unwrap()
}

/// Send `0..n` in order, retrying `Full` at once; returns the retries.
fn produce(q: &Queue, n: u64) -> u64 {
    let mut full = 0u64;
    for k in 0..n {
        while q.send(&k.to_le_bytes()).is_err() {
            full += 1;
            std::hint::spin_loop();
        }
    }
    full
}

/// Receive and ack `n` messages; checks order, redeliveries and the path
/// they came by.
fn consume_in_order(q: &Queue, n: u64) {
    let (mut next, mut late, mut buf) = (0u64, 0u64, Vec::new());
    let start = Instant::now();
    while next < n {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "stalled at {next}"
        );
        let Some(d) = q.try_receive_into(&mut buf, None) else {
            continue;
        };
        let k = u64::from_le_bytes(buf[..8].try_into().unwrap());
        if k != next {
            late += 1;
        }
        next = next.max(k + 1);
        q.ack(d.receipt).unwrap();
    }
    let st = q.stats();
    let swept = q.ring().sweep_deliveries();
    eprintln!(
        "{n} messages in {:?}, {late} out of order, redelivered {}, {swept} from the sweep",
        start.elapsed(),
        st.redelivered
    );
    assert_eq!(st.redelivered, 0);
    assert_eq!(late, 0, "messages out of send order");
    assert_eq!(
        swept, 0,
        "messages delivered by the sweep, not the main path"
    );
    assert_eq!(st.acked, n);
}

#[test]
fn a_queue_that_fills_again_and_again_keeps_send_order() {
    let n = messages();
    let dir = tempfile::tempdir().unwrap();
    let q = create(dir.path());
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || produce(&q, n))
    };
    consume_in_order(&q, n);
    let full = producer.join().unwrap();
    eprintln!("{full} Full retries");
    assert!(full > 0, "the queue filled");
}

/// The same with the producer in another process (its own reading of
/// `fill`, its own clock reads), as the issue reported it.
#[test]
fn a_producer_process_filling_the_queue_keeps_send_order() {
    let n = messages();
    let dir = tempfile::tempdir().unwrap();
    let q = create(dir.path());
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "producer", "--nocapture"])
        .env("SHMQ_ORDER_PATH", dir.path().join("q"))
        .env("SHMQ_ORDER_MESSAGES", n.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    consume_in_order(&q, n);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let full: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("full "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("the producer's report: {text}"));
    eprintln!("{full} Full retries");
    assert!(full > 0, "the queue filled");
}

#[test]
#[ignore = "entry point of the producer process of the test above"]
fn producer() {
    let Ok(path) = std::env::var("SHMQ_ORDER_PATH") else {
        return;
    };
    let q = Queue::open(path).unwrap();
    let full = produce(&q, messages());
    println!("full {full}");
}

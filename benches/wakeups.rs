//! How fast waiters come back, in wall time (a measurement, not a gate; the
//! targets are in BENCHMARKS.md):
//!
//! - `shutdown`: four receivers parked on an empty queue (and one `incoming`
//!   iterator); the time from `shutdown()` to the last of them returning.
//!   Target: within 10 ms.
//! - `room`: a sender parked in `send_timeout` on a full queue; the time from
//!   the ack that frees a slot (taken just before the ack call) to the
//!   sender's return with its message sent.
//!
//! - `dead`: a consumer process holding a lease with a 30 s visibility
//!   timeout is SIGKILLed (and reaped, as its parent would); the time from
//!   the kill to another process's blocked `receive` returning the message.
//!   The lease names the dead process's registration, which the sweep finds
//!   gone (design.md §7.4). Target: 250 ms at p99, whatever the visibility
//!   timeout.
//!
//! `cargo bench --bench wakeups` prints p50, p99 and max over the rounds
//! (`SHMQ_WAKEUP_ROUNDS`, default 200; `dead` runs at most 100).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use shmq::{Config, Queue};

fn rounds() -> usize {
    std::env::var("SHMQ_WAKEUP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Wait until `cond` holds (a parked waiter has set its futex bit), then
/// a little longer so the waiter is asleep in the kernel, not about to be.
fn settle(cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waiter never parked"
        );
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(2));
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<10} rounds {:>4}  p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
        v.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn shutdown_rounds(n: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("w.q");
    Queue::create(&path, &Config::default().slots(64)).expect("create");
    (0..n)
        .map(|_| {
            let q = Queue::open(&path).expect("open");
            let (tx, rx) = mpsc::channel();
            let mut waiters: Vec<_> = (0..4)
                .map(|_| {
                    let (q, tx) = (q.clone(), tx.clone());
                    thread::spawn(move || {
                        assert!(q.receive(Duration::from_secs(60)).is_none());
                        tx.send(Instant::now()).unwrap();
                    })
                })
                .collect();
            waiters.push({
                let q = q.clone();
                thread::spawn(move || {
                    assert_eq!(q.incoming().count(), 0);
                    tx.send(Instant::now()).unwrap();
                })
            });
            settle(|| q.ring().park_word() & 1 == 1);
            let t = Instant::now();
            q.shutdown();
            let last = rx.iter().take(5).max().unwrap();
            for w in waiters {
                w.join().unwrap();
            }
            last.duration_since(t)
        })
        .collect()
}

fn room_rounds(n: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = Queue::create(dir.path().join("r.q"), &Config::default().slots(4)).expect("create");
    (0..n)
        .map(|_| {
            while q.send("fill").is_ok() {}
            let sender = {
                let q = q.clone();
                thread::spawn(move || {
                    q.send_timeout("more", Duration::from_secs(60))
                        .expect("room was made");
                    Instant::now()
                })
            };
            settle(|| q.ring().room_word() & 1 == 1);
            let lease = q.try_receive().expect("a message");
            let t = Instant::now();
            lease.ack().expect("ack");
            let woke = sender.join().unwrap();
            while let Some(l) = q.try_receive() {
                l.ack().expect("ack");
            }
            woke.duration_since(t)
        })
        .collect()
}

/// The child of a `dead` round: lease the message, say so, hold it.
fn hold(path: &str) -> ! {
    use std::io::Write;
    let q = Queue::open(path).expect("open");
    let _lease = q.receive(Duration::from_secs(10)).expect("a message");
    let mut out = std::io::stdout().lock();
    writeln!(out, "HELD").expect("stdout");
    out.flush().expect("flush");
    loop {
        thread::park();
    }
}

fn dead_rounds(n: usize) -> Vec<Duration> {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("d.q");
    let q = Queue::create(
        &path,
        &Config::default()
            .slots(64)
            .visibility_timeout(Duration::from_secs(30)),
    )
    .expect("create");
    (0..n)
        .map(|_| {
            q.send(b"job").expect("send");
            let mut kid = std::process::Command::new(std::env::current_exe().expect("exe"))
                .env("SHMQ_WAKEUP_HOLD", &path)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut line = String::new();
            std::io::BufReader::new(kid.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("the child's report");
            assert_eq!(line.trim(), "HELD");
            let t = Instant::now();
            kid.kill().expect("SIGKILL");
            kid.wait().expect("reap");
            let lease = q
                .receive(Duration::from_secs(20))
                .expect("the dead holder's message");
            let took = t.elapsed();
            lease.ack().expect("ack");
            took
        })
        .collect()
}

fn main() {
    if let Ok(path) = std::env::var("SHMQ_WAKEUP_HOLD") {
        hold(&path);
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass
    // nothing: run a couple of rounds only then.
    let n = if std::env::args().any(|a| a == "--bench") {
        rounds()
    } else {
        2
    };
    report("shutdown", shutdown_rounds(n));
    report("room", room_rounds(n));
    report("dead", dead_rounds(n.min(100)));
}

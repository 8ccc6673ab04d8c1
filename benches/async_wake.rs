//! Async wake-up harness (harness = false; hdrhistogram, no criterion).
//!
//! ```text
//! cargo bench --features tokio --bench async_wake -- [wakeup] [idle] [--samples N]
//! ```
//!
//! - `wakeup`: wake-up latency of a receiver asleep on an empty queue, from
//!   a send in another process (this one) to the moment the receiver has
//!   the lease, for three receivers in three child processes, each on its
//!   own queue, in alternating blocks of the same run: the blocking
//!   `receive_into` with spin tries 0 (asleep in FUTEX_WAIT when the
//!   message comes), `receive_async` in a tokio current-thread runtime, and
//!   `receive_async` in a task of a 2-worker multi-thread runtime. The
//!   sender writes its CLOCK_MONOTONIC time into the message and sends one
//!   message every 300 µs, so every receiver is asleep when it comes; the
//!   receiver records `now - sent`. `--samples` per receiver (default
//!   20 000).
//! - `idle`: a child process with 1 000 tasks awaiting `receive_async` on
//!   an empty queue and 100 tasks awaiting `send_async` on a full one, for
//!   10 s: its CPU time (all threads, /proc/PID/stat ticks and
//!   /proc/PID/task/*/schedstat ns) and its threads' voluntary context
//!   switches (wake-ups).
//!
//! Every figure is printed for people and as a `RESULT {json}` line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hdrhistogram::Histogram;
use shmq::{Config, Queue};

const CHILD: &str = "SHMQ_ASYNC_BENCH_CHILD";

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram")
}

/// "p50 p99 p99.9 max count" in ns.
fn summary(h: &Histogram<u64>) -> String {
    format!(
        "{} {} {} {} {}",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    )
}

fn report(name: &str, s: &str) {
    let v: Vec<u64> = s.split(' ').map(|w| w.parse().expect("number")).collect();
    println!(
        "{name:<40} p50 {:>7} ns  p99 {:>8} ns  p99.9 {:>8} ns  max {:>9} ns  n {}",
        v[0], v[1], v[2], v[3], v[4]
    );
    println!(
        "RESULT {{\"name\":\"{name}\",\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{},\"n\":{}}}",
        v[0], v[1], v[2], v[3], v[4]
    );
}

fn spawn(role: &str, args: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.env(CHILD, role).stdout(Stdio::piped());
    for (k, v) in args {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child")
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"))
}

fn child_line(child: &mut Child) -> String {
    let out = child.stdout.as_mut().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("child line");
    line.trim().to_string()
}

fn queue(dir: &Path, name: &str, slots: u32) -> PathBuf {
    let p = dir.join(name);
    drop(Queue::create(&p, &Config::default().slots(slots).slot_size(64)).expect("create queue"));
    p
}

/// Record `now - sent` for one message; false for the quit message.
fn record(h: &mut Histogram<u64>, payload: &[u8]) -> bool {
    let now = now_ns();
    let sent = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    if sent == 0 {
        return false;
    }
    h.record(now.saturating_sub(sent).max(1)).expect("record");
    true
}

// ----------------------------------------------------------------- wake-up

fn wake_child_blocking() {
    let q = Queue::open(env("QUEUE")).expect("open");
    q.set_spin_tries(0);
    let mut h = hist();
    loop {
        let Some(lease) = q.receive(Duration::from_secs(60)) else {
            continue;
        };
        let go_on = record(&mut h, lease.payload());
        lease.ack().expect("ack");
        if !go_on {
            break;
        }
    }
    println!("{}", summary(&h));
}

async fn wake_async(q: Queue) -> String {
    let mut h = hist();
    loop {
        let lease = q.receive_async().await.expect("not shut down");
        let go_on = record(&mut h, lease.payload());
        lease.ack().expect("ack");
        if !go_on {
            break;
        }
    }
    summary(&h)
}

fn wake_child_async(multi: bool) {
    let q = Queue::open(env("QUEUE")).expect("open");
    let s = if multi {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async { tokio::spawn(wake_async(q)).await.expect("task") })
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(wake_async(q))
    };
    println!("{s}");
}

fn wakeup(samples: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let kinds = [
        ("blocking", "blocking receive (spin tries 0)"),
        ("async-ct", "receive_async, current-thread runtime"),
        ("async-mt", "receive_async, multi-thread runtime"),
    ];
    let mut peers: Vec<(Child, Queue)> = kinds
        .iter()
        .map(|(role, _)| {
            let qp = queue(dir.path(), &format!("{role}.q"), 1024);
            let child = spawn(role, &[("QUEUE", qp.display().to_string())]);
            (child, Queue::open(&qp).expect("open"))
        })
        .collect();
    let gap = Duration::from_micros(300);
    let block = 500.min(samples);
    let mut msg = [0u8; 64];
    // Let the children start and go to sleep.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..samples.div_ceil(block) {
        for (_, q) in &peers {
            for _ in 0..block {
                std::thread::sleep(gap);
                msg[..8].copy_from_slice(&now_ns().to_le_bytes());
                q.send(&msg).expect("send");
            }
        }
    }
    for ((child, q), (_, name)) in peers.iter_mut().zip(kinds) {
        q.send(&[0u8; 64]).expect("quit");
        let s = child_line(child);
        child.wait().expect("child");
        report(&format!("wake-up, {name}"), &s);
    }
}

// ------------------------------------------------------------------- idle

fn idle_child() {
    let (recv, room) = (
        Queue::open(env("QUEUE")).expect("open"),
        Queue::open(env("FULL")).expect("open"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let q = recv.clone();
            tasks.push(tokio::spawn(async move {
                if let Some(l) = q.receive_async().await {
                    l.ack().expect("ack");
                }
            }));
        }
        for _ in 0..100 {
            let q = room.clone();
            tasks.push(tokio::spawn(async move {
                let _ = q.send_async(b"more").await;
            }));
        }
        // Every task has polled once and waits.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        println!("waiting");
        // Until the parent kills us: nothing here wakes on its own.
        std::future::pending::<()>().await;
        drop(tasks);
    });
}

/// (ticks of the whole process, ns on CPU and voluntary switches summed
/// over its threads).
fn proc_cpu(pid: u32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the comm.
    let ticks = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    let (mut ns, mut vol) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let task = task.expect("task").path();
        let Ok(sched) = std::fs::read_to_string(task.join("schedstat")) else {
            continue;
        };
        ns += sched
            .split(' ')
            .next()
            .expect("ns")
            .parse::<u64>()
            .expect("number");
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        vol += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map(|v| v.trim().parse::<u64>().expect("number"))
            .unwrap_or(0);
    }
    (ticks, ns, vol)
}

fn idle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let qp = queue(dir.path(), "idle.q", 1024);
    let fp = queue(dir.path(), "full.q", 16);
    let full = Queue::open(&fp).expect("open");
    while full.send(b"fill").is_ok() {}
    let mut child = spawn(
        "idle",
        &[
            ("QUEUE", qp.display().to_string()),
            ("FULL", fp.display().to_string()),
        ],
    );
    assert_eq!(child_line(&mut child), "waiting");
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id();
    let (t0, ns0, v0) = proc_cpu(pid);
    std::thread::sleep(Duration::from_secs(10));
    let (t1, ns1, v1) = proc_cpu(pid);
    // SAFETY: sysconf with a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let tick_pct = (t1 - t0) as f64 / hz / 10.0 * 100.0;
    let ns_pct = (ns1 - ns0) as f64 / 1e10 * 100.0;
    println!(
        "1000 receive + 100 send tasks waiting, 10 s: {} ticks ({tick_pct:.1}% CPU), {} us on CPU ({ns_pct:.4}%), {} wake-ups",
        t1 - t0,
        (ns1 - ns0) / 1000,
        v1 - v0
    );
    println!(
        "RESULT {{\"name\":\"shmq async idle 10s\",\"ticks\":{},\"cpu_ns\":{},\"wakeups\":{},\"pct\":{ns_pct:.5}}}",
        t1 - t0,
        ns1 - ns0,
        v1 - v0
    );
    child.kill().expect("kill");
    child.wait().expect("child");
}

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("blocking") => return wake_child_blocking(),
        Ok("async-ct") => return wake_child_async(false),
        Ok("async-mt") => return wake_child_async(true),
        Ok("idle") => return idle_child(),
        _ => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut samples = 20_000u64;
    let mut what = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--samples" => samples = it.next().expect("N").parse().expect("N"),
            "--bench" => {}
            w if !w.starts_with('-') => what.push(w.to_string()),
            _ => {}
        }
    }
    let want = |w: &str| what.is_empty() || what.iter().any(|x| x == w);
    if want("wakeup") {
        wakeup(samples);
    }
    if want("idle") {
        idle();
    }
}

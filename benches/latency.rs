//! Latency harness (harness = false; hdrhistogram, no criterion).
//!
//! ```text
//! cargo bench --bench latency -- [all|pingpong|rates|idle|wakeup]... [--samples N] [--secs S]
//! ```
//!
//! - `pingpong`: two processes, two queues; the parent sends on `ping`, the
//!   child answers on `pong`; one-way latency = round trip / 2, per sample,
//!   over `--samples` round trips (default 1 000 000) after a warm-up.
//!   Modes: `spin` (both sides loop on `try_receive_into`), `park` (both
//!   sides call `receive_into` with a wait: the default blocking receive,
//!   which spins 200 tries and then parks on the futex) and `futex`
//!   (`receive_into` with `set_spin_tries(0)`: every receive that finds the
//!   queue empty parks, so each hop is a futex wake).
//! - `rates`: one-way latency at fixed offered rates. The producer sends
//!   message i at its intended time t0 + i / rate (busy-waiting until then)
//!   and writes that intended time into the message; the consumer (spinning)
//!   records `now - intended`. A producer that falls behind schedule keeps
//!   the intended times, so stalls count against every message they delay
//!   (coordinated omission corrected). `--secs` per rate (default 2).
//! - `idle`: a consumer parked in `receive_into` on an empty queue for 10 s;
//!   its CPU time from /proc/PID/stat (ticks) and /proc/PID/schedstat (ns),
//!   and its voluntary context switches (wake-ups) from /proc/PID/status.
//! - `wakeup`: wake-up latency of a parked consumer (spin tries 0, so it is
//!   asleep in FUTEX_WAIT when the message comes) against a bare futex
//!   wait/wake between two processes, alternating blocks in the same run:
//!   the sender writes its clock into the message (or a shared word) and
//!   the woken side records `now - sent`.
//!
//! Every figure is printed for people and as a `RESULT {json}` line for
//! scripts/bench-compare.sh. Times are CLOCK_MONOTONIC nanoseconds, which
//! all processes on the host share.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use hdrhistogram::Histogram;
use memmap2::MmapMut;
use shmq::{Config, Queue};

const CHILD: &str = "SHMQ_LAT_CHILD";

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

/// "p50 p99 p99.9 p99.99 max count" in ns.
fn summary(h: &Histogram<u64>) -> String {
    format!(
        "{} {} {} {} {} {}",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max(),
        h.len()
    )
}

fn report(name: &str, s: &str) {
    let v: Vec<u64> = s.split(' ').map(|w| w.parse().expect("number")).collect();
    println!(
        "{name:<34} p50 {:>8} ns  p99 {:>8} ns  p99.9 {:>8} ns  p99.99 {:>9} ns  max {:>10} ns  n {}",
        v[0], v[1], v[2], v[3], v[4], v[5]
    );
    println!(
        "RESULT {{\"name\":\"{name}\",\"p50\":{},\"p99\":{},\"p999\":{},\"p9999\":{},\"max\":{},\"n\":{}}}",
        v[0], v[1], v[2], v[3], v[4], v[5]
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

fn queue(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    drop(Queue::create(&p, &Config::default().slots(1024).slot_size(64)).expect("create queue"));
    p
}

// ------------------------------------------------------------ ping-pong

fn recv(q: &Queue, buf: &mut Vec<u8>, mode: &str) -> shmq::Delivery {
    if mode == "spin" {
        loop {
            if let Some(d) = q.try_receive_into(buf, None) {
                return d;
            }
            std::hint::spin_loop();
        }
    }
    loop {
        if let Some(d) = q.receive_into(buf, Duration::from_secs(10), None) {
            return d;
        }
    }
}

fn open(path: &str, mode: &str) -> Queue {
    let q = Queue::open(path).expect("open");
    if mode == "futex" {
        q.set_spin_tries(0);
    }
    q
}

fn pong_child() {
    let mode = env("MODE");
    let ping = open(&env("PING"), &mode);
    let pong = open(&env("PONG"), &mode);
    let mut buf = Vec::with_capacity(64);
    loop {
        let d = recv(&ping, &mut buf, &mode);
        let quit = buf[0] == 0xFF;
        pong.send(buf.as_slice()).expect("send pong");
        ping.ack(d.receipt).expect("ack");
        if quit {
            return;
        }
    }
}

fn pingpong(mode: &str, samples: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ping_p = queue(dir.path(), "ping.q");
    let pong_p = queue(dir.path(), "pong.q");
    let mut child = spawn(
        "pong",
        &[
            ("MODE", mode.to_string()),
            ("PING", ping_p.display().to_string()),
            ("PONG", pong_p.display().to_string()),
        ],
    );
    let ping = open(&ping_p.display().to_string(), mode);
    let pong = open(&pong_p.display().to_string(), mode);
    let mut buf = Vec::with_capacity(64);
    let msg = [1u8; 64];
    let mut h = hist();
    let warm = (samples / 10).max(1000);
    let mut pending = None;
    for i in 0..warm + samples {
        let t0 = now_ns();
        ping.send(&msg).expect("send ping");
        // Ack the previous answer after this send, as the echo side does:
        // answer first, then ack.
        if let Some(rc) = pending.take() {
            pong.ack(rc).expect("ack");
        }
        let d = recv(&pong, &mut buf, mode);
        let t1 = now_ns();
        pending = Some(d.receipt);
        if i >= warm {
            h.record(((t1 - t0) / 2).max(1)).expect("record");
        }
    }
    ping.send(&[0xFFu8; 64]).expect("quit");
    recv(&pong, &mut buf, mode);
    child.wait().expect("child");
    report(&format!("shmq pingpong one-way {mode}"), &summary(&h));
}

// ------------------------------------------------------------ fixed rates

fn rate_consumer() {
    let q = Queue::open(env("QUEUE")).expect("open");
    let n: u64 = env("COUNT").parse().expect("count");
    let mut buf = Vec::with_capacity(64);
    let mut h = hist();
    let mut got = 0;
    while got < n {
        if let Some(d) = q.try_receive_into(&mut buf, None) {
            let now = now_ns();
            let intended = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
            q.ack(d.receipt).expect("ack");
            h.record(now.saturating_sub(intended).max(1))
                .expect("record");
            got += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    println!("{}", summary(&h));
}

fn rates(secs: u64) {
    let mut best = None;
    for rate in [10_000u64, 100_000, 200_000, 500_000, 1_000_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let qp = queue(dir.path(), "rate.q");
        let n = rate * secs;
        let mut child = spawn(
            "rate",
            &[
                ("QUEUE", qp.display().to_string()),
                ("COUNT", n.to_string()),
            ],
        );
        let q = Queue::open(&qp).expect("open");
        std::thread::sleep(Duration::from_millis(50));
        let period = 1_000_000_000 / rate;
        let mut msg = [0u8; 64];
        let t0 = now_ns() + 1_000_000;
        for i in 0..n {
            let intended = t0 + i * period;
            while now_ns() < intended {
                std::hint::spin_loop();
            }
            msg[..8].copy_from_slice(&intended.to_le_bytes());
            while q.send(&msg).is_err() {
                std::hint::spin_loop();
            }
        }
        let s = child_line(&mut child);
        child.wait().expect("child");
        report(&format!("shmq one-way at {rate} msg/s"), &s);
        let p99: u64 = s.split(' ').nth(1).expect("p99").parse().expect("number");
        if p99 < 10_000 {
            best = Some(rate);
        }
    }
    match best {
        Some(r) => println!("highest offered rate with p99 < 10 us: {r} msg/s"),
        None => println!("highest offered rate with p99 < 10 us: none of those tried"),
    }
    println!(
        "RESULT {{\"name\":\"shmq best rate p99<10us\",\"rate\":{}}}",
        best.unwrap_or(0)
    );
}

// ------------------------------------------------------------------- idle

fn idle_child() {
    let q = Queue::open(env("QUEUE")).expect("open");
    let mut buf = Vec::new();
    println!("parked");
    let _ = q.receive_into(&mut buf, Duration::from_secs(60), None);
}

fn proc_cpu(pid: u32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the comm.
    let ticks = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    let sched = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("schedstat");
    let ns = sched
        .split(' ')
        .next()
        .expect("ns")
        .parse()
        .expect("number");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let vol = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .map(|v| v.trim().parse().expect("number"))
        .unwrap_or(0);
    (ticks, ns, vol)
}

fn idle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let qp = queue(dir.path(), "idle.q");
    let mut child = spawn("idle", &[("QUEUE", qp.display().to_string())]);
    assert_eq!(child_line(&mut child), "parked");
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
        "parked consumer, 10 s: {} ticks ({tick_pct:.1}% CPU), {} us on CPU ({ns_pct:.4}%), {} wake-ups",
        t1 - t0,
        (ns1 - ns0) / 1000,
        v1 - v0
    );
    println!(
        "RESULT {{\"name\":\"shmq idle 10s\",\"ticks\":{},\"cpu_ns\":{},\"wakeups\":{},\"pct\":{ns_pct:.5}}}",
        t1 - t0,
        ns1 - ns0,
        v1 - v0
    );
    Queue::open(&qp).expect("open").send(b"bye").expect("send");
    child.wait().expect("child");
}

// ----------------------------------------------------------------- wake-up

#[repr(C)]
struct Bare {
    word: AtomicU32,
    _pad: u32,
    sent: AtomicU64,
}

fn bare_map(path: &Path, create: bool) -> MmapMut {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)
        .expect("futex file");
    if create {
        f.set_len(4096).expect("size");
    }
    // SAFETY: a private bench file touched only through the atomics of `Bare`.
    unsafe { MmapMut::map_mut(&f) }.expect("map")
}

fn bare(map: &MmapMut) -> &Bare {
    // SAFETY: 4096 bytes, page-aligned; `Bare` is atomics only.
    unsafe { &*(map.as_ptr() as *const Bare) }
}

fn futex(word: &AtomicU32, op: i32, val: u32) {
    let ts = libc::timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    // SAFETY: a valid aligned u32 in a shared mapping and a valid timespec
    // (ignored by FUTEX_WAKE).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            &ts as *const libc::timespec,
        );
    }
}

fn wake_child_shmq() {
    let q = Queue::open(env("QUEUE")).expect("open");
    q.set_spin_tries(0);
    let mut buf = Vec::new();
    let mut h = hist();
    loop {
        let Some(d) = q.receive_into(&mut buf, Duration::from_secs(60), None) else {
            continue;
        };
        let now = now_ns();
        q.ack(d.receipt).expect("ack");
        let sent = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
        if sent == 0 {
            break;
        }
        h.record(now.saturating_sub(sent).max(1)).expect("record");
    }
    println!("{}", summary(&h));
}

fn wake_child_futex() {
    let map = bare_map(Path::new(&env("BARE")), false);
    let b = bare(&map);
    let mut h = hist();
    let mut seen = b.word.load(SeqCst);
    loop {
        while b.word.load(SeqCst) == seen {
            futex(&b.word, libc::FUTEX_WAIT, seen);
        }
        let now = now_ns();
        seen = b.word.load(SeqCst);
        let sent = b.sent.load(SeqCst);
        if sent == 0 {
            break;
        }
        h.record(now.saturating_sub(sent).max(1)).expect("record");
    }
    println!("{}", summary(&h));
}

fn wakeup(samples: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let qp = queue(dir.path(), "wake.q");
    let bp = dir.path().join("bare.futex");
    let map = bare_map(&bp, true);
    let b = bare(&map);
    let mut shmq_child = spawn("wake-shmq", &[("QUEUE", qp.display().to_string())]);
    let mut futex_child = spawn("wake-futex", &[("BARE", bp.display().to_string())]);
    let q = Queue::open(&qp).expect("open");
    let gap = Duration::from_micros(300);
    let block = 1000.min(samples);
    let mut msg = [0u8; 64];
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..samples.div_ceil(block) {
        for _ in 0..block {
            std::thread::sleep(gap);
            msg[..8].copy_from_slice(&now_ns().to_le_bytes());
            q.send(&msg).expect("send");
        }
        for _ in 0..block {
            std::thread::sleep(gap);
            b.sent.store(now_ns(), SeqCst);
            b.word.fetch_add(1, SeqCst);
            futex(&b.word, libc::FUTEX_WAKE, i32::MAX as u32);
        }
    }
    q.send(&[0u8; 64]).expect("quit");
    b.sent.store(0, SeqCst);
    b.word.fetch_add(1, SeqCst);
    futex(&b.word, libc::FUTEX_WAKE, i32::MAX as u32);
    let s = child_line(&mut shmq_child);
    let f = child_line(&mut futex_child);
    shmq_child.wait().expect("child");
    futex_child.wait().expect("child");
    report("shmq parked consumer wake-up", &s);
    report("bare futex wait/wake wake-up", &f);
}

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("pong") => return pong_child(),
        Ok("rate") => return rate_consumer(),
        Ok("idle") => return idle_child(),
        Ok("wake-shmq") => return wake_child_shmq(),
        Ok("wake-futex") => return wake_child_futex(),
        _ => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut samples = 1_000_000u64;
    let mut secs = 2u64;
    let mut what = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--samples" => samples = it.next().expect("N").parse().expect("N"),
            "--secs" => secs = it.next().expect("S").parse().expect("S"),
            "--bench" => {}
            w if !w.starts_with('-') => what.push(w.to_string()),
            _ => {}
        }
    }
    let all = what.is_empty() || what.iter().any(|w| w == "all");
    let want = |w: &str| all || what.iter().any(|x| x == w);
    if want("pingpong") {
        for mode in ["spin", "park", "futex"] {
            pingpong(mode, samples);
        }
    }
    if want("rates") {
        rates(secs);
    }
    if want("wakeup") {
        wakeup((samples / 50).clamp(1000, 20_000));
    }
    if want("idle") {
        idle();
    }
}

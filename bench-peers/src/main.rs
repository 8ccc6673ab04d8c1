//! shmq against the queues a user would pick instead, in one harness.
//!
//! ```text
//! peers throughput PEER SIZE BATCH     1 producer, 1 consumer; msg/s
//! peers pingpong PEER SAMPLES          round trip / 2 percentiles
//! peers rate PEER RATE SECS            one-way latency at a fixed offered rate
//! peers durable PEER PRODUCERS MODE    durable sends/s and latency (durable.rs)
//! peers prealloc SAMPLES               sync after writing into fallocated or
//!                                      written-through blocks (durable.rs)
//! peers probe                          the placement of the two vCPUs now
//!                                      (probe.rs; scripts/bench-paired.sh)
//! peers list                           the peers
//! ```
//!
//! Every cross-process peer runs its consumer (or echo side) in a child
//! process: this binary run again with `PEER_CHILD` set. The timer starts
//! after the child reported ready and stops when it reported that it has
//! received (and, where the peer has acks, acked) every message. Each
//! throughput figure is the median of 5 runs sized to about 0.4 s each
//! (`PEERS_RUNS` and `PEERS_SECS` change both: scripts/bench-paired.sh
//! makes one run of 0.25 s, so that a pair fits in one vCPU placement).
//! Results are printed as `RESULT {json}` lines for scripts/bench-compare.sh.
//!
//! Peers:
//! - `shmq`: one lease and one ack per message (`send`/`try_receive_into`/
//!   `ack`, or `send_batch`/`receive_batch`/`ack_batch` for batches);
//! - `rtrb`, `crossbeam`: in-process SPSC / MPMC rings between two threads
//!   (ceilings: no process boundary, no leases, no durability);
//! - `shm-ring`: a minimal SPSC ring in a shared file mapping, written here
//!   (speed of light across processes: no leases, no acks, no crash safety);
//! - `iceoryx2`: publish-subscribe over shared memory, no loss (safe
//!   overflow off, backpressure retry);
//! - `ipmpsc`: shared-memory MPSC ring (bincode framing);
//! - `posixmq`: POSIX message queue (one syscall per send and per receive);
//! - `uds`: Unix domain stream socket, fixed-size frames;
//! - `redis`: Redis Streams with a consumer group: XADD, XREADGROUP, XACK
//!   (needs REDIS_PORT: a redis-server on 127.0.0.1).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

mod durable;
mod probe;
mod shmring;

const CHILD: &str = "PEER_CHILD";
const SLOTS: usize = 1024;

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"))
}
fn env_n(k: &str) -> usize {
    env(k).parse().expect("number")
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ------------------------------------------------------------ children

struct Peer {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Peer {
    fn spawn(role: &str, vars: &[(&str, String)]) -> Peer {
        let mut cmd = Command::new(std::env::current_exe().expect("exe"));
        cmd.env(CHILD, role).stdout(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Peer { child, out }
    }
    fn expect(&mut self, what: &str) {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("child line");
        assert_eq!(line.trim(), what, "child said {line:?}");
    }
    /// Wait for the child's "done", take the time since `start`, reap it.
    fn done(mut self, start: Instant) -> Duration {
        self.expect("done");
        let e = start.elapsed();
        self.finish();
        e
    }

    fn finish(mut self) {
        let st = self.child.wait().expect("wait child");
        assert!(st.success(), "child failed: {st}");
    }
}

fn say(what: &str) {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{what}").expect("stdout");
    o.flush().expect("flush");
}

/// Where the cross-process peers put their files.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shmq-peers")
        .tempdir()
        .expect("temp dir")
}

// ------------------------------------------------------------ throughput

/// One run: move `n` messages of `size` bytes in batches of `batch`.
/// Returns the elapsed time.
fn run_once(peer: &str, size: usize, batch: usize, n: usize) -> Duration {
    let dir = scratch();
    let vars = |extra: Vec<(&'static str, String)>| {
        let mut v = vec![
            ("PEER", peer.to_string()),
            ("SIZE", size.to_string()),
            ("BATCH", batch.to_string()),
            ("N", n.to_string()),
        ];
        v.extend(extra);
        v
    };
    let msg = vec![0x5Au8; size];
    match peer {
        "shmq" => {
            let p = dir.path().join("q");
            let q = shmq::Queue::create(&p, &shmq::Config::default().slots(SLOTS as u32).slot_size(size as u32))
                .expect("create");
            let mut c = Peer::spawn("consume", &vars(vec![("PATH", p.display().to_string())]));
            c.expect("ready");
            let t = Instant::now();
            let msgs = vec![msg.as_slice(); batch];
            let mut ids = Vec::new();
            let mut left = n;
            // SHMQ_PEERS_NEVER_FULL=1: the producer keeps the queue at most
            // half full (looking at the O(1) depth estimate every 64
            // sends), so that no send finds it full: the baseline against
            // which a queue that is full most of the time is compared.
            let never_full = std::env::var("SHMQ_PEERS_NEVER_FULL").is_ok_and(|v| v == "1");
            let mut full = 0u64;
            while left > 0 {
                let k = left.min(batch);
                if never_full && left % 64 == 0 {
                    while q.depth_estimate() > SLOTS as u64 / 2 {
                        std::hint::spin_loop();
                    }
                }
                if batch == 1 {
                    while q.send(&msg).is_err() {
                        full += 1;
                        std::hint::spin_loop();
                    }
                } else {
                    let mut sent = 0;
                    while sent < k {
                        let r = q.send_batch(&msgs[sent..k], &mut ids);
                        sent += ids.len();
                        if r.is_err() {
                            full += 1;
                            std::hint::spin_loop();
                        }
                    }
                }
                left -= k;
            }
            let took = c.done(t);
            if std::env::var("SHMQ_PEERS_COUNT_FULL").is_ok_and(|v| v == "1") {
                eprintln!("full retries {full} of {n} sends");
            }
            took
        }
        "shm-ring" => {
            let p = dir.path().join("ring");
            let r = shmring::Ring::create(&p, SLOTS, size);
            let mut c = Peer::spawn("consume", &vars(vec![("PATH", p.display().to_string())]));
            c.expect("ready");
            let t = Instant::now();
            let mut left = n;
            while left > 0 {
                let k = left.min(batch);
                r.push_batch(&msg, k);
                left -= k;
            }
            c.done(t)
        }
        "posixmq" => {
            let name = format!("/shmq-peers-{}", std::process::id());
            let _ = posixmq::remove_queue(&name);
            let mq = posixmq::OpenOptions::writeonly()
                .create_new()
                .max_msg_len(size)
                .capacity(10)
                .open(&name)
                .expect("mq_open (is /proc/sys/fs/mqueue/msg_max >= 10?)");
            let mut c = Peer::spawn("consume", &vars(vec![("PATH", name.clone())]));
            c.expect("ready");
            let t = Instant::now();
            for _ in 0..n {
                mq.send(0, &msg).expect("mq_send");
            }
            let e = c.done(t);
            let _ = posixmq::remove_queue(&name);
            e
        }
        "uds" => {
            let p = dir.path().join("sock");
            let l = UnixListener::bind(&p).expect("bind");
            let mut c = Peer::spawn("consume", &vars(vec![("PATH", p.display().to_string())]));
            let (mut s, _) = l.accept().expect("accept");
            c.expect("ready");
            let frame = msg.repeat(batch);
            let t = Instant::now();
            let mut left = n;
            while left > 0 {
                let k = left.min(batch);
                s.write_all(&frame[..k * size]).expect("write");
                left -= k;
            }
            c.done(t)
        }
        "ipmpsc" => {
            let p = dir.path().join("ipmpsc");
            let buf = ipmpsc::SharedRingBuffer::create(
                p.to_str().expect("utf-8 path"),
                (SLOTS * (size + 16)) as u32,
            )
            .expect("create ipmpsc");
            let tx = ipmpsc::Sender::new(buf);
            let mut c = Peer::spawn("consume", &vars(vec![("PATH", p.display().to_string())]));
            c.expect("ready");
            let t = Instant::now();
            for _ in 0..n {
                tx.send(&msg.as_slice()).expect("ipmpsc send");
            }
            c.done(t)
        }
        "iceoryx2" => ice::throughput(size, n, vars(vec![])),
        "redis" => redis_peer::throughput(size, batch, n, vars(vec![])),
        "rtrb" => inproc::rtrb(size, batch, n),
        "crossbeam" => inproc::crossbeam(size, n),
        other => panic!("unknown peer {other}"),
    }
}

fn consume_child() {
    let peer = env("PEER");
    let (size, batch, n) = (env_n("SIZE"), env_n("BATCH"), env_n("N"));
    match peer.as_str() {
        "shmq" => {
            let q = shmq::Queue::open(env("PATH")).expect("open");
            say("ready");
            // SHMQ_PEERS_WORK=K: K spin pauses of "work" per message, so
            // that the consumer is the slower side and the queue is full
            // most of the time (with SHMQ_PEERS_NEVER_FULL unset).
            let work: u32 = std::env::var("SHMQ_PEERS_WORK")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut got = 0;
            if batch == 1 {
                let mut buf = Vec::with_capacity(size);
                while got < n {
                    if let Some(d) = q.try_receive_into(&mut buf, None) {
                        assert_eq!(buf.len(), size);
                        for _ in 0..work {
                            std::hint::spin_loop();
                        }
                        q.ack(d.receipt).expect("ack");
                        got += 1;
                    }
                }
            } else {
                let (mut bufs, mut ds, mut failed) = (Vec::new(), Vec::new(), Vec::new());
                while got < n {
                    let k = q.receive_batch(&mut bufs, &mut ds, batch, Duration::ZERO, None);
                    if k > 0 {
                        assert_eq!(q.ack_batch(ds.iter().map(|d| d.receipt), &mut failed), k);
                        got += k;
                    }
                }
            }
        }
        "shm-ring" => {
            let r = shmring::Ring::open(Path::new(&env("PATH")));
            say("ready");
            let mut buf = vec![0u8; size * batch];
            let mut got = 0;
            while got < n {
                got += r.pop_batch(&mut buf, batch);
            }
        }
        "posixmq" => {
            let mq = posixmq::OpenOptions::readonly()
                .open(&env("PATH"))
                .expect("mq open");
            say("ready");
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                let (_, len) = mq.recv(&mut buf).expect("mq_receive");
                assert_eq!(len, size);
            }
        }
        "uds" => {
            let mut s = UnixStream::connect(env("PATH")).expect("connect");
            say("ready");
            let mut buf = vec![0u8; size * batch];
            let mut left = n;
            while left > 0 {
                let k = left.min(batch);
                s.read_exact(&mut buf[..k * size]).expect("read");
                left -= k;
            }
        }
        "ipmpsc" => {
            let buf = ipmpsc::SharedRingBuffer::open(&env("PATH")).expect("open ipmpsc");
            let mut rx = ipmpsc::Receiver::new(buf);
            say("ready");
            for _ in 0..n {
                let mut ctx = rx.zero_copy_context();
                let m: &[u8] = ctx.recv().expect("ipmpsc recv");
                assert_eq!(m.len(), size);
            }
        }
        "iceoryx2" => ice::consume(size, n),
        "redis" => redis_peer::consume(size, batch, n),
        other => panic!("unknown peer {other}"),
    }
    say("done");
}

fn throughput(peer: &str, size: usize, batch: usize) {
    // Size the runs: a sizing run, then PEERS_RUNS runs (default 5) of
    // about PEERS_SECS seconds (default 0.4).
    let runs: usize = std::env::var("PEERS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(5);
    let secs: f64 = std::env::var("PEERS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.4);
    // The sizing run must itself last long enough: 20,000 messages take
    // 0.2 ms on the bare ring, a time its start dominates, and runs sized
    // from it lasted 7-50 ms and gave 7-47 M msg/s where runs of 0.25 s in
    // the same placement gave 80-95 (scripts/bench-paired.sh, first run).
    // So ten times more messages until the sizing run takes 20 ms.
    let mut probe_n = 20_000;
    let rate = loop {
        let took = run_once(peer, size, batch, probe_n).as_secs_f64();
        if took >= 0.02 || probe_n >= 20_000_000 {
            break probe_n as f64 / took;
        }
        probe_n *= 10;
    };
    let n = ((rate * secs) as usize).clamp(5_000, 200_000_000);
    let mut rates: Vec<f64> = (0..runs)
        .map(|_| n as f64 / run_once(peer, size, batch, n).as_secs_f64())
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    let med = rates[runs / 2];
    println!(
        "{peer:<10} {size:>5} B  batch {batch:>2}  {:>12.0} msg/s  ({:.0} .. {:.0}, n {n})",
        med,
        rates[0],
        rates[runs - 1]
    );
    println!(
        "RESULT {{\"kind\":\"throughput\",\"peer\":\"{peer}\",\"size\":{size},\"batch\":{batch},\"msgs_per_s\":{med:.0},\"min\":{:.0},\"max\":{:.0},\"n\":{n}}}",
        rates[0], rates[runs - 1]
    );
}

// ------------------------------------------------------------ ping-pong

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram")
}

/// One side of a ping-pong: send one 64-byte message, wait for one.
trait Hop {
    fn send(&mut self, msg: &[u8]);
    fn recv(&mut self, buf: &mut [u8]);
}

fn pingpong(peer: &str, samples: usize) {
    let dir = scratch();
    let size = 64;
    let vars = |extra: Vec<(&'static str, String)>| {
        let mut v = vec![("PEER", peer.to_string()), ("N", samples.to_string())];
        v.extend(extra);
        v
    };
    let warm = (samples / 10).max(1000);
    let total = warm + samples;
    let vars_n = |extra: Vec<(&'static str, String)>| {
        let mut v = vars(extra);
        v[1].1 = total.to_string();
        v
    };
    let (mut hop, child): (Box<dyn Hop>, Peer) = match peer {
        "shmq" => {
            let a = dir.path().join("a");
            let b = dir.path().join("b");
            let cfg = shmq::Config::default().slots(SLOTS as u32).slot_size(size as u32);
            let qa = shmq::Queue::create(&a, &cfg).expect("create");
            let qb = shmq::Queue::create(&b, &cfg).expect("create");
            let mut c = Peer::spawn(
                "echo",
                &vars_n(vec![
                    ("A", a.display().to_string()),
                    ("B", b.display().to_string()),
                ]),
            );
            c.expect("ready");
            (Box::new(ShmqHop::new(qa, qb)), c)
        }
        "shm-ring" => {
            let a = dir.path().join("a");
            let b = dir.path().join("b");
            let ra = shmring::Ring::create(&a, SLOTS, size);
            let rb = shmring::Ring::create(&b, SLOTS, size);
            let mut c = Peer::spawn(
                "echo",
                &vars_n(vec![
                    ("A", a.display().to_string()),
                    ("B", b.display().to_string()),
                ]),
            );
            c.expect("ready");
            (Box::new(RingHop(ra, rb)), c)
        }
        "uds" => {
            let p = dir.path().join("sock");
            let l = UnixListener::bind(&p).expect("bind");
            let mut c = Peer::spawn("echo", &vars_n(vec![("A", p.display().to_string())]));
            let (s, _) = l.accept().expect("accept");
            c.expect("ready");
            (Box::new(UdsHop(s)), c)
        }
        "posixmq" => {
            let a = format!("/shmq-peers-a-{}", std::process::id());
            let b = format!("/shmq-peers-b-{}", std::process::id());
            let mk = |name: &str| {
                let _ = posixmq::remove_queue(name);
                posixmq::OpenOptions::readwrite()
                    .create_new()
                    .max_msg_len(size)
                    .capacity(10)
                    .open(name)
                    .expect("mq_open")
            };
            let (qa, qb) = (mk(&a), mk(&b));
            let mut c = Peer::spawn("echo", &vars_n(vec![("A", a.clone()), ("B", b.clone())]));
            c.expect("ready");
            let _ = posixmq::remove_queue(&a);
            let _ = posixmq::remove_queue(&b);
            (Box::new(MqHop(qa, qb)), c)
        }
        "iceoryx2" => ice::pingpong_parent(&vars_n(vec![])),
        other => panic!("no ping-pong for {other}"),
    };
    let msg = [1u8; 64];
    let mut buf = [0u8; 64];
    let mut h = hist();
    for i in 0..total {
        let t0 = now_ns();
        hop.send(&msg);
        hop.recv(&mut buf);
        let t1 = now_ns();
        if i >= warm {
            h.record(((t1 - t0) / 2).max(1)).expect("record");
        }
    }
    drop(hop);
    child.finish();
    let q = |x: f64| h.value_at_quantile(x);
    println!(
        "{peer:<10} one-way p50 {:>7} ns  p99 {:>7} ns  p99.9 {:>8} ns  p99.99 {:>9} ns  max {:>10} ns  n {}",
        q(0.5),
        q(0.99),
        q(0.999),
        q(0.9999),
        h.max(),
        h.len()
    );
    println!(
        "RESULT {{\"kind\":\"pingpong\",\"peer\":\"{peer}\",\"p50\":{},\"p99\":{},\"p999\":{},\"p9999\":{},\"max\":{},\"n\":{}}}",
        q(0.5),
        q(0.99),
        q(0.999),
        q(0.9999),
        h.max(),
        h.len()
    );
}

fn echo_child() {
    let peer = env("PEER");
    let n = env_n("N");
    // The echo side of each peer receives on A and answers on B.
    let mut hop: Box<dyn Hop> = match peer.as_str() {
        "shmq" => Box::new(ShmqHop::new(
            shmq::Queue::open(env("B")).expect("open"),
            shmq::Queue::open(env("A")).expect("open"),
        )),
        "shm-ring" => Box::new(RingHop(
            shmring::Ring::open(Path::new(&env("B"))),
            shmring::Ring::open(Path::new(&env("A"))),
        )),
        "uds" => Box::new(UdsHop(UnixStream::connect(env("A")).expect("connect"))),
        "posixmq" => {
            let o = |name: String| {
                posixmq::OpenOptions::readwrite()
                    .open(&name)
                    .expect("mq open")
            };
            Box::new(MqHop(o(env("B")), o(env("A"))))
        }
        "iceoryx2" => ice::pingpong_child(),
        other => panic!("no ping-pong for {other}"),
    };
    say("ready");
    let mut buf = [0u8; 64];
    for _ in 0..n {
        hop.recv(&mut buf);
        hop.send(&buf);
    }
}

/// shmq in spin mode: `try_receive_into` in a loop. Each message received
/// is acked right after the next send (answer first, then ack), as the
/// latency harness in benches/latency.rs does.
struct ShmqHop {
    tx: shmq::Queue,
    rx: shmq::Queue,
    buf: Vec<u8>,
    pending: Option<shmq::Receipt>,
}
impl ShmqHop {
    fn new(tx: shmq::Queue, rx: shmq::Queue) -> ShmqHop {
        ShmqHop {
            tx,
            rx,
            buf: Vec::with_capacity(64),
            pending: None,
        }
    }
}
impl Hop for ShmqHop {
    fn send(&mut self, msg: &[u8]) {
        self.tx.send(msg).expect("send");
        if let Some(rc) = self.pending.take() {
            self.rx.ack(rc).expect("ack");
        }
    }
    fn recv(&mut self, out: &mut [u8]) {
        loop {
            if let Some(d) = self.rx.try_receive_into(&mut self.buf, None) {
                out.copy_from_slice(&self.buf);
                self.pending = Some(d.receipt);
                return;
            }
            std::hint::spin_loop();
        }
    }
}

struct RingHop(shmring::Ring, shmring::Ring);
impl Hop for RingHop {
    fn send(&mut self, msg: &[u8]) {
        self.0.push_batch(msg, 1);
    }
    fn recv(&mut self, out: &mut [u8]) {
        while self.1.pop_batch(out, 1) == 0 {}
    }
}

struct UdsHop(UnixStream);
impl Hop for UdsHop {
    fn send(&mut self, msg: &[u8]) {
        self.0.write_all(msg).expect("write");
    }
    fn recv(&mut self, out: &mut [u8]) {
        self.0.read_exact(out).expect("read");
    }
}

struct MqHop(posixmq::PosixMq, posixmq::PosixMq);
impl Hop for MqHop {
    fn send(&mut self, msg: &[u8]) {
        self.0.send(0, msg).expect("mq_send");
    }
    fn recv(&mut self, out: &mut [u8]) {
        self.1.recv(out).expect("mq_receive");
    }
}

// ------------------------------------------------------------ fixed rates

/// One-way latency at a fixed offered rate, coordinated omission corrected:
/// message i is due at t0 + i / rate; the producer busy-waits until then and
/// writes the due time into the message; the consumer (busy-polling) records
/// now - due. Same harness for shmq and the bare ring, so the ring's figures
/// show what the machine itself allows.
fn rate(peer: &str, rate: u64, secs: u64) {
    let dir = scratch();
    let n = rate * secs;
    let path = dir.path().join("q");
    enum Tx {
        Shmq(shmq::Queue),
        Ring(shmring::Ring),
    }
    let tx = match peer {
        "shmq" => Tx::Shmq(
            shmq::Queue::create(&path, &shmq::Config::default().slots(SLOTS as u32).slot_size(64)).expect("create"),
        ),
        "shm-ring" => Tx::Ring(shmring::Ring::create(&path, SLOTS, 64)),
        other => panic!("no rate test for {other}"),
    };
    let mut c = Peer::spawn(
        "rate",
        &[
            ("PEER", peer.to_string()),
            ("PATH", path.display().to_string()),
            ("N", n.to_string()),
        ],
    );
    c.expect("ready");
    let period = 1_000_000_000 / rate;
    let mut msg = [0u8; 64];
    let t0 = now_ns() + 1_000_000;
    for i in 0..n {
        let due = t0 + i * period;
        while now_ns() < due {
            std::hint::spin_loop();
        }
        msg[..8].copy_from_slice(&due.to_le_bytes());
        match &tx {
            Tx::Shmq(q) => {
                while q.send(&msg).is_err() {
                    std::hint::spin_loop();
                }
            }
            Tx::Ring(r) => r.push_batch(&msg, 1),
        }
    }
    let mut line = String::new();
    c.out.read_line(&mut line).expect("child summary");
    c.finish();
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|w| w.parse().expect("number"))
        .collect();
    println!(
        "{peer:<10} at {rate:>8} msg/s: p50 {:>9} ns  p99 {:>10} ns  p99.9 {:>10} ns  max {:>11} ns  n {}",
        v[0], v[1], v[2], v[4], v[5]
    );
    println!(
        "RESULT {{\"kind\":\"rate\",\"peer\":\"{peer}\",\"rate\":{rate},\"p50\":{},\"p99\":{},\"p999\":{},\"p9999\":{},\"max\":{},\"n\":{}}}",
        v[0], v[1], v[2], v[3], v[4], v[5]
    );
}

fn rate_child() {
    let peer = env("PEER");
    let n = env_n("N");
    let mut h = hist();
    let mut record = |m: &[u8]| {
        let now = now_ns();
        let due = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
        h.record(now.saturating_sub(due).max(1)).expect("record");
    };
    if peer == "shmq" {
        let q = shmq::Queue::open(env("PATH")).expect("open");
        say("ready");
        let mut buf = Vec::with_capacity(64);
        let mut got = 0;
        while got < n {
            if let Some(d) = q.try_receive_into(&mut buf, None) {
                record(&buf);
                q.ack(d.receipt).expect("ack");
                got += 1;
            }
        }
    } else {
        let r = shmring::Ring::open(Path::new(&env("PATH")));
        say("ready");
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < n {
            if r.pop_batch(&mut buf, 1) == 1 {
                record(&buf);
                got += 1;
            }
        }
    }
    let q = |x: f64| h.value_at_quantile(x);
    say(&format!(
        "{} {} {} {} {} {}",
        q(0.5),
        q(0.99),
        q(0.999),
        q(0.9999),
        h.max(),
        h.len()
    ));
}

// ------------------------------------------------------------ in-process

mod inproc {
    use super::*;

    fn run<const N: usize>(batch: usize, n: usize, rtrb_ring: bool) -> Duration {
        let item = [0x5Au8; N];
        if rtrb_ring {
            let (mut p, mut c) = rtrb::RingBuffer::<[u8; N]>::new(SLOTS);
            let items = vec![item; batch];
            std::thread::scope(|s| {
                let h = s.spawn(move || {
                    let mut out = vec![[0u8; N]; batch];
                    let mut got = 0;
                    while got < n {
                        if batch == 1 {
                            if let Ok(v) = c.pop() {
                                std::hint::black_box(&v);
                                got += 1;
                            }
                        } else {
                            let want = batch.min(n - got);
                            let (done, _) = c.pop_partial_slice(&mut out[..want]);
                            got += done.len();
                        }
                    }
                });
                let t = Instant::now();
                let mut left = n;
                while left > 0 {
                    if batch == 1 {
                        if p.push(item).is_ok() {
                            left -= 1;
                        }
                    } else {
                        let k = left.min(batch);
                        let (pushed, _) = p.push_partial_slice(&items[..k]);
                        left -= pushed.len();
                    }
                }
                h.join().expect("consumer");
                t.elapsed()
            })
        } else {
            let q = crossbeam_queue::ArrayQueue::<[u8; N]>::new(SLOTS);
            std::thread::scope(|s| {
                let h = s.spawn(|| {
                    let mut got = 0;
                    while got < n {
                        if let Some(v) = q.pop() {
                            std::hint::black_box(&v);
                            got += 1;
                        }
                    }
                });
                let t = Instant::now();
                let mut left = n;
                while left > 0 {
                    if q.push(item).is_ok() {
                        left -= 1;
                    }
                }
                h.join().expect("consumer");
                t.elapsed()
            })
        }
    }

    fn dispatch(size: usize, batch: usize, n: usize, rtrb_ring: bool) -> Duration {
        match size {
            64 => run::<64>(batch, n, rtrb_ring),
            1024 => run::<1024>(batch, n, rtrb_ring),
            4096 => run::<4096>(batch, n, rtrb_ring),
            s => panic!("size {s} not built in"),
        }
    }

    pub fn rtrb(size: usize, batch: usize, n: usize) -> Duration {
        dispatch(size, batch, n, true)
    }

    pub fn crossbeam(size: usize, n: usize) -> Duration {
        dispatch(size, 1, n, false)
    }
}

// ------------------------------------------------------------ iceoryx2

mod ice {
    use super::*;
    use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
    use iceoryx2::prelude::*;

    type Pub = iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()>;
    type Sub = iceoryx2::port::subscriber::Subscriber<ipc::Service, [u8], ()>;

    fn node() -> Node<ipc::Service> {
        NodeBuilder::new()
            .create::<ipc::Service>()
            .expect("iceoryx2 node")
    }

    fn service(
        node: &Node<ipc::Service>,
        name: &str,
    ) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>
    {
        node.service_builder(&ServiceName::new(name).expect("service name"))
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(SLOTS)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
            .expect("iceoryx2 service")
    }

    fn publisher(
        s: &iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>,
        size: usize,
    ) -> Pub {
        s.publisher_builder()
            .initial_max_slice_len(size)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .expect("publisher")
    }

    fn subscriber(
        s: &iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>,
    ) -> Sub {
        s.subscriber_builder()
            .buffer_size(SLOTS)
            .create()
            .expect("subscriber")
    }

    fn publish(p: &Pub, msg: &[u8]) {
        let s = p.loan_slice_uninit(msg.len()).expect("loan");
        let s = s.write_from_slice(msg);
        s.send().expect("iceoryx2 send");
    }

    fn name(tag: &str) -> String {
        format!("shmq-peers/{}/{tag}", std::process::id())
    }

    pub fn throughput(size: usize, n: usize, mut vars: Vec<(&str, String)>) -> Duration {
        let node = node();
        let svc_name = name("tput");
        let svc = service(&node, &svc_name);
        let p = publisher(&svc, size);
        vars.push(("SVC", svc_name));
        let mut c = Peer::spawn("consume", &vars);
        c.expect("ready");
        let msg = vec![0x5Au8; size];
        let t = Instant::now();
        for _ in 0..n {
            publish(&p, &msg);
        }
        c.done(t)
    }

    pub fn consume(size: usize, n: usize) {
        let node = node();
        let svc = service(&node, &env("SVC"));
        let s = subscriber(&svc);
        say("ready");
        let mut got = 0;
        while got < n {
            if let Some(m) = s.receive().expect("receive") {
                assert_eq!(m.payload().len(), size);
                got += 1;
            }
        }
    }

    pub struct IceHop {
        _node: Node<ipc::Service>,
        p: Pub,
        s: Sub,
    }
    impl Hop for IceHop {
        fn send(&mut self, msg: &[u8]) {
            publish(&self.p, msg);
        }
        fn recv(&mut self, out: &mut [u8]) {
            loop {
                if let Some(m) = self.s.receive().expect("receive") {
                    out.copy_from_slice(m.payload());
                    return;
                }
                std::hint::spin_loop();
            }
        }
    }

    fn hop(to: &str, from: &str) -> IceHop {
        let node = node();
        let st = service(&node, to);
        let sf = service(&node, from);
        let p = publisher(&st, 64);
        let s = subscriber(&sf);
        IceHop { _node: node, p, s }
    }

    pub fn pingpong_parent(vars: &[(&str, String)]) -> (Box<dyn Hop>, Peer) {
        let (a, b) = (name("a"), name("b"));
        let h = hop(&a, &b);
        let mut v = vars.to_vec();
        v.push(("A", a));
        v.push(("B", b));
        let mut c = Peer::spawn("echo", &v);
        c.expect("ready");
        // Let the ports connect before the first sample.
        std::thread::sleep(Duration::from_millis(100));
        (Box::new(h), c)
    }

    pub fn pingpong_child() -> Box<dyn Hop> {
        Box::new(hop(&env("B"), &env("A")))
    }
}

// ------------------------------------------------------------ redis

mod redis_peer {
    use super::*;

    fn conn() -> redis::Connection {
        let url = format!("redis://127.0.0.1:{}/", env("REDIS_PORT"));
        redis::Client::open(url)
            .expect("redis url")
            .get_connection()
            .expect("connect to redis-server")
    }

    pub fn throughput(
        size: usize,
        batch: usize,
        n: usize,
        mut vars: Vec<(&str, String)>,
    ) -> Duration {
        let mut con = conn();
        let key = format!("shmq-peers:{}:{}", std::process::id(), now_ns());
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg("g")
            .arg("$")
            .arg("MKSTREAM")
            .query(&mut con)
            .expect("XGROUP CREATE");
        vars.push(("KEY", key.clone()));
        let mut c = Peer::spawn("consume", &vars);
        c.expect("ready");
        let msg = vec![0x5Au8; size];
        let t = Instant::now();
        let mut left = n;
        while left > 0 {
            let k = left.min(batch);
            if k == 1 {
                let _: String = redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("m")
                    .arg(&msg[..])
                    .query(&mut con)
                    .expect("XADD");
            } else {
                let mut p = redis::pipe();
                for _ in 0..k {
                    p.cmd("XADD").arg(&key).arg("*").arg("m").arg(&msg[..]);
                }
                let _: Vec<String> = p.query(&mut con).expect("XADD pipeline");
            }
            left -= k;
        }
        let e = c.done(t);
        let _: () = redis::cmd("DEL").arg(&key).query(&mut con).expect("DEL");
        e
    }

    pub fn consume(size: usize, batch: usize, n: usize) {
        let mut con = conn();
        let key = env("KEY");
        say("ready");
        let mut got = 0;
        while got < n {
            // Reply: [[key, [[id, [field, value]], ...]]] or nil on timeout.
            let v: redis::Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("COUNT")
                .arg(batch)
                .arg("BLOCK")
                .arg(100)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .query(&mut con)
                .expect("XREADGROUP");
            let mut ids: Vec<Vec<u8>> = Vec::new();
            collect_ids(&v, size, &mut ids);
            if ids.is_empty() {
                continue;
            }
            let acked: usize = redis::cmd("XACK")
                .arg(&key)
                .arg("g")
                .arg(&ids)
                .query(&mut con)
                .expect("XACK");
            assert_eq!(acked, ids.len());
            got += ids.len();
        }
    }

    fn items(v: &redis::Value) -> &[redis::Value] {
        match v {
            redis::Value::Array(a) => a,
            _ => &[],
        }
    }

    fn bytes(v: &redis::Value) -> Option<&[u8]> {
        match v {
            redis::Value::BulkString(b) => Some(b),
            _ => None,
        }
    }

    fn collect_ids(v: &redis::Value, size: usize, ids: &mut Vec<Vec<u8>>) {
        for stream in items(v) {
            let s = items(stream);
            if s.len() < 2 {
                continue;
            }
            for entry in items(&s[1]) {
                let e = items(entry);
                let id = bytes(&e[0]).expect("id");
                let fields = items(&e[1]);
                assert_eq!(bytes(&fields[1]).expect("payload").len(), size);
                ids.push(id.to_vec());
            }
        }
    }
}

// ------------------------------------------------------------ main

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("consume") => return consume_child(),
        Ok("echo") => return echo_child(),
        Ok("rate") => return rate_child(),
        Ok("durable") => return durable::child(),
        Ok("probe") => return probe::child(),
        _ => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match a(0) {
        "throughput" => throughput(a(1), a(2).parse().expect("SIZE"), a(3).parse().unwrap_or(1)),
        "pingpong" => pingpong(a(1), a(2).parse().unwrap_or(1_000_000)),
        "rate" => rate(a(1), a(2).parse().expect("RATE"), a(3).parse().unwrap_or(2)),
        "durable" => durable::run(
            a(1),
            a(2).parse().expect("PRODUCERS"),
            durable::Mode::parse(a(3)),
        ),
        "prealloc" => durable::prealloc(a(1).parse().unwrap_or(2000)),
        "probe" => {
            probe::run();
        }
        "list" => {
            println!("shmq shm-ring iceoryx2 ipmpsc posixmq uds redis rtrb crossbeam");
            println!("durable: fdatasync-raw sqlite redis shmq shmq-refaulted");
        }
        _ => {
            eprintln!("usage: peers throughput PEER SIZE BATCH | peers pingpong PEER SAMPLES | peers rate PEER RATE SECS | peers durable PEER PRODUCERS threads|processes | peers prealloc SAMPLES | peers probe | peers list");
            std::process::exit(2);
        }
    }
}

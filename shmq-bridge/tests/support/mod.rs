//! Test plumbing: a real nats-server with JetStream on a free loopback port,
//! bridge processes that can be killed with SIGKILL, and a consumer that
//! counts what arrives on a queue.
#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmq::Queue;

/// Poll `cond` every few milliseconds until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Wait until the first `n` numbers have all arrived on `counter`, or until
/// none has arrived for `stall` (then the caller's tally shows what is lost).
pub fn wait_for_all(counter: &Counter, n: usize, stall: Duration) {
    let mut last = (counter.unique(n), Instant::now());
    loop {
        let now = counter.unique(n);
        if now == n {
            return;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > stall {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A nats-server with JetStream, on loopback, storing in a temp dir; killed
/// on drop.
pub struct Nats {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Nats {
    pub fn start() -> Nats {
        match Command::new("nats-server").arg("--version").output() {
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "nats-server is not installed: these tests need a real server; \
                 install it with `apt-get install -y nats-server` (Debian, 2.9 or newer)"
            ),
            Err(e) => panic!("cannot run nats-server: {e}"),
            Ok(_) => {}
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut n = Nats {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            port,
        };
        n.spawn();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .expect("log file");
        let child = Command::new("nats-server")
            .args(["-js", "-sd"])
            .arg(self.dir.path().join("store"))
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(20), "nats-server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Freeze the server (SIGSTOP) for `d`, then let it go on (SIGCONT):
    /// connections stay up, but nothing is answered meanwhile. `d` is the
    /// length of the fault, not a wait for some state.
    pub fn freeze(&mut self, d: Duration) {
        let pid = self.child.as_ref().expect("running").id() as libc::pid_t;
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(d);
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }

    /// Stop the server (SIGTERM, as a service manager does) and start it
    /// again on the same port with the same store.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own, unreaped child.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            c.wait().expect("reap nats-server");
        }
        self.spawn();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A bridge process (`shmq-bridge ARGS`), stderr and stdout appended to a
/// log file; SIGKILLed on drop.
pub struct Bridge {
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Bridge {
    pub fn start(args: &[String], log: &Path) -> Bridge {
        Bridge::start_with_env(args, log, &[])
    }

    /// Start with extra environment variables (kept across restarts).
    pub fn start_with_env(args: &[String], log: &Path, env: &[(&str, &str)]) -> Bridge {
        let mut b = Bridge {
            child: None,
            args: args.to_vec(),
            log: log.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shmq-bridge"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start shmq-bridge");
        self.child = Some(child);
    }

    /// SIGKILL, reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// SIGTERM; the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        c.wait().ok()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last JSON status line the bridge printed.
    pub fn last_status(&self) -> serde_json::Value {
        let text = self.log_text();
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("a status line");
        serde_json::from_str(line).expect("a JSON status line")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn s(x: &str) -> String {
    x.to_string()
}

/// `out` arguments for tests: short leases so a killed bridge's leases come
/// back quickly.
pub fn out_args(queue: &Path, url: &str, stream: &str) -> Vec<String> {
    vec![
        s("out"),
        s("--queue"),
        queue.display().to_string(),
        s("--server"),
        url.to_string(),
        s("--stream"),
        s(stream),
        s("--subject"),
        format!("{}.msgs", stream.to_lowercase()),
        s("--visibility"),
        s("1s"),
        s("--publish-timeout"),
        s("2s"),
        s("--retry-delay"),
        s("50ms"),
        s("--retry-delay-max"),
        s("500ms"),
        s("--status-every"),
        s("1s"),
    ]
}

/// `in` arguments for tests: a short ack wait, unlimited deliveries unless
/// the test says otherwise.
pub fn in_args(queue: &Path, url: &str, stream: &str) -> Vec<String> {
    vec![
        s("in"),
        s("--queue"),
        queue.display().to_string(),
        s("--server"),
        url.to_string(),
        s("--stream"),
        s(stream),
        s("--consumer"),
        s("b"),
        s("--ack-wait"),
        s("1s"),
        s("--max-deliver"),
        s("0"),
        s("--status-every"),
        s("1s"),
    ]
}

/// The payload of test message `k`: `m` and its number, padded.
pub fn payload(k: u64) -> Vec<u8> {
    format!("m{k:010}-{}", "x".repeat((k % 40) as usize)).into_bytes()
}

/// The number in a payload made by [`payload`].
pub fn number(p: &[u8]) -> Option<u64> {
    let t = std::str::from_utf8(p).ok()?;
    t.strip_prefix('m')?.get(..10)?.parse().ok()
}

/// A thread that receives from a queue, acks, and counts each message by its
/// number; `poison` payloads are nacked instead (until the queue kills them).
pub struct Counter {
    pub seen: Arc<Mutex<Vec<u32>>>,
    pub total: Arc<AtomicU64>,
    pub poison_seen: Arc<AtomicU64>,
    halt: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Counter {
    pub fn start(path: &Path, n: usize) -> Counter {
        let q = Queue::open(path).expect("open the receiving queue");
        let seen = Arc::new(Mutex::new(vec![0u32; n]));
        let total = Arc::new(AtomicU64::new(0));
        let poison_seen = Arc::new(AtomicU64::new(0));
        let halt = Arc::new(AtomicBool::new(false));
        let handle = {
            let (seen, total, poison_seen, halt) = (
                seen.clone(),
                total.clone(),
                poison_seen.clone(),
                halt.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                while !halt.load(Relaxed) {
                    let Some(d) = q.receive_into(&mut buf, Duration::from_millis(50), None) else {
                        continue;
                    };
                    if buf.starts_with(b"poison") {
                        poison_seen.fetch_add(1, Relaxed);
                        let _ = q.nack(d.receipt, Duration::ZERO);
                        continue;
                    }
                    let k = number(&buf).expect("a test payload") as usize;
                    seen.lock().unwrap()[k] += 1;
                    total.fetch_add(1, Relaxed);
                    q.ack(d.receipt).expect("ack on the receiving queue");
                }
            })
        };
        Counter {
            seen,
            total,
            poison_seen,
            halt,
            handle: Some(handle),
        }
    }

    /// How many distinct numbers below `upto` arrived.
    pub fn unique(&self, upto: usize) -> usize {
        self.seen.lock().unwrap()[..upto]
            .iter()
            .filter(|c| **c > 0)
            .count()
    }

    /// (lost, duplicates) among the first `upto` numbers.
    pub fn tally(&self, upto: usize) -> (usize, u64) {
        let seen = self.seen.lock().unwrap();
        let lost = seen[..upto].iter().filter(|c| **c == 0).count();
        let dups = seen[..upto]
            .iter()
            .map(|c| u64::from(c.saturating_sub(1)))
            .sum();
        (lost, dups)
    }

    pub fn stop(&mut self) {
        self.halt.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("counter thread");
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop();
    }
}

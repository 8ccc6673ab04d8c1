//! Child processes for the cross-process benches: the bench binary runs
//! itself again with `SHMQ_BENCH_CHILD` set, and parent and children meet in
//! a small control file (a few atomics and futex words) next to the queue.
//!
//! A run: the parent stores the message count and bumps `epoch` (futex wake);
//! producers send their share; consumers receive, optionally spin for the
//! per-message work, ack, and add to `consumed` until it reaches the count;
//! each child then adds one to `done` (futex wake). The parent times from the
//! epoch bump to the last `done`, so a run's time includes two futex wake-ups
//! (tens of microseconds), negligible against runs of thousands of messages.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use shmq::{Config, Queue};

pub const CHILD_ENV: &str = "SHMQ_BENCH_CHILD";

/// The control block, at the start of the control file.
#[repr(C)]
struct Ctl {
    /// Futex: bumped by the parent to start a run (or to quit).
    epoch: AtomicU32,
    /// Futex: children that finished the current run.
    done: AtomicU32,
    quit: AtomicU32,
    _pad: u32,
    /// Messages in the current run.
    target: AtomicU64,
    /// Messages consumed (acked) in the current run.
    consumed: AtomicU64,
}

pub struct CtlMap {
    map: MmapMut,
}

impl CtlMap {
    fn create(path: &Path) -> CtlMap {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .expect("control file");
        f.set_len(4096).expect("size control file");
        Self::map(&f)
    }
    fn open(path: &Path) -> CtlMap {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("control file");
        Self::map(&f)
    }
    fn map(f: &std::fs::File) -> CtlMap {
        // SAFETY: the control file is private to this bench run; the parent
        // and its children only touch it through the atomics of `Ctl`.
        let map = unsafe { MmapMut::map_mut(f) }.expect("map control file");
        CtlMap { map }
    }
    fn ctl(&self) -> &Ctl {
        // SAFETY: the mapping is 4096 bytes, page-aligned, and `Ctl` is a
        // repr(C) struct of atomics for which every bit pattern is valid.
        unsafe { &*(self.map.as_ptr() as *const Ctl) }
    }
}

pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: a valid aligned u32 in a shared mapping, a valid timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: a valid aligned u32; FUTEX_WAKE only uses the address.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// One cross-process configuration.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub producers: u32,
    pub consumers: u32,
    pub batch: usize,
    pub size: usize,
    /// Busy work per message in a consumer, nanoseconds.
    pub work_ns: u64,
    pub slots: u32,
}

/// A running set of child processes around one queue.
pub struct Fleet {
    _dir: tempfile::TempDir,
    ctl: CtlMap,
    children: Vec<Child>,
    epoch: u32,
    spec: Spec,
}

impl Fleet {
    pub fn start(spec: Spec) -> Fleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let qpath = dir.path().join("bench.q");
        let cpath = dir.path().join("bench.ctl");
        let cfg = Config::default()
            .slots(spec.slots)
            .slot_size(spec.size.max(8) as u32);
        drop(Queue::create(&qpath, &cfg).expect("create queue"));
        let ctl = CtlMap::create(&cpath);
        let exe = std::env::current_exe().expect("current exe");
        let mut children = Vec::new();
        let roles = (0..spec.producers)
            .map(|i| ("producer", i))
            .chain((0..spec.consumers).map(|i| ("consumer", i)));
        for (role, idx) in roles {
            let child = Command::new(&exe)
                .env(CHILD_ENV, role)
                .env("SHMQ_BENCH_QUEUE", &qpath)
                .env("SHMQ_BENCH_CTL", &cpath)
                .env(
                    "SHMQ_BENCH_SPEC",
                    format!(
                        "{} {} {} {} {} {} {idx}",
                        spec.producers,
                        spec.consumers,
                        spec.batch,
                        spec.size,
                        spec.work_ns,
                        spec.slots
                    ),
                )
                .spawn()
                .expect("spawn child");
            children.push(child);
        }
        Fleet {
            _dir: dir,
            ctl,
            children,
            epoch: 0,
            spec,
        }
    }

    /// Move `n` messages from the producers to the consumers; the wall time.
    pub fn run(&mut self, n: u64) -> Duration {
        let c = self.ctl.ctl();
        let all = self.spec.producers + self.spec.consumers;
        c.target.store(n, SeqCst);
        c.consumed.store(0, SeqCst);
        c.done.store(0, SeqCst);
        let start = Instant::now();
        self.epoch = self.epoch.wrapping_add(1);
        c.epoch.store(self.epoch, SeqCst);
        futex_wake(&c.epoch);
        loop {
            let d = c.done.load(SeqCst);
            if d >= all {
                break;
            }
            futex_wait(&c.done, d, Duration::from_millis(100));
            if start.elapsed() > Duration::from_secs(120) {
                panic!(
                    "bench run stuck: {d}/{all} children done, spec {:?}",
                    self.spec
                );
            }
        }
        start.elapsed()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let c = self.ctl.ctl();
        c.quit.store(1, SeqCst);
        self.epoch = self.epoch.wrapping_add(1);
        c.epoch.store(self.epoch, SeqCst);
        futex_wake(&c.epoch);
        for ch in &mut self.children {
            let _ = ch.wait();
        }
    }
}

/// Spin for `ns` nanoseconds (the consumer's simulated work).
pub fn busy(ns: u64) {
    if ns == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_nanos(ns);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// If this process is a bench child, run its role and exit.
pub fn child_main() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let q = Queue::open(PathBuf::from(
        std::env::var("SHMQ_BENCH_QUEUE").expect("queue"),
    ))
    .expect("open queue");
    let ctl = CtlMap::open(Path::new(&std::env::var("SHMQ_BENCH_CTL").expect("ctl")));
    let spec: Vec<u64> = std::env::var("SHMQ_BENCH_SPEC")
        .expect("spec")
        .split(' ')
        .map(|w| w.parse().expect("number"))
        .collect();
    let (producers, batch, size, work_ns, idx) =
        (spec[0], spec[2] as usize, spec[3], spec[4], spec[6]);
    let c = ctl.ctl();
    let mut seen = 0u32;
    let msg = vec![0xA5u8; size as usize];
    let msgs: Vec<&[u8]> = vec![msg.as_slice(); batch];
    let (mut ids, mut bufs, mut got, mut failed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    loop {
        while c.epoch.load(SeqCst) == seen {
            futex_wait(&c.epoch, seen, Duration::from_millis(100));
        }
        seen = c.epoch.load(SeqCst);
        if c.quit.load(SeqCst) != 0 {
            std::process::exit(0);
        }
        let n = c.target.load(SeqCst);
        if role == "producer" {
            let mut share = n / producers + u64::from(idx < n % producers);
            while share > 0 {
                let k = share.min(batch as u64) as usize;
                let mut sent = 0;
                while sent < k {
                    if batch == 1 {
                        // The single-message API, as a user without batches calls it.
                        match q.send(msgs[0]) {
                            Ok(_) => sent += 1,
                            Err(_) => std::thread::yield_now(),
                        }
                        continue;
                    }
                    let r = q.send_batch(&msgs[sent..k], &mut ids);
                    sent += ids.len();
                    if r.is_err() {
                        std::thread::yield_now();
                    }
                }
                share -= k as u64;
            }
        } else {
            let mut idle = 0u32;
            while c.consumed.load(SeqCst) < n {
                // Non-blocking receives; an empty queue spins a little, then
                // yields the core (2/2 and 4/4 outnumber the cores here).
                let got_n = q.receive_batch(&mut bufs, &mut got, batch, Duration::ZERO, None);
                if got_n == 0 {
                    idle += 1;
                    if idle > 64 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                    continue;
                }
                idle = 0;
                for _ in 0..got_n {
                    busy(work_ns);
                }
                let acked = q.ack_batch(got.iter().map(|d| d.receipt), &mut failed);
                assert_eq!(acked, got_n, "acks failed: {failed:?}");
                c.consumed.fetch_add(got_n as u64, SeqCst);
            }
        }
        c.done.fetch_add(1, SeqCst);
        futex_wake(&c.done);
    }
}

//! Durable sends (issue 13): each send returns only once its message is on
//! stable storage; shmq's durable queue against what a user would pick
//! instead, in one harness.
//!
//! ```text
//! peers durable PEER PRODUCERS MODE    sends/s, per-send p50/p99; MODE threads|processes
//! peers prealloc SAMPLES               64 B record + fdatasync into fallocated,
//!                                      written-through and growing files, by
//!                                      pwrite and through a mapping
//! ```
//!
//! **Window.** Every producer opens its own handle first (file descriptor,
//! connection, queue handle; threads share one `shmq::Queue`, as the crate
//! intends), then all start together on a CLOCK_MONOTONIC deadline: a
//! warm-up of `DURABLE_WARM_MS` (default 300) and a measured window of
//! `DURABLE_SECS` (default 2). A send is counted, and its latency (call to
//! return) recorded, when it starts inside the window; rate = counted sends
//! / window. Producers send back to back, 64-byte messages, nobody
//! consumes. In processes mode the producers are this binary run again
//! (`PEER_CHILD=durable`): each reports its count and histograms on stdout.
//!
//! **Peers.**
//! - `fdatasync-raw`: the limit. Producers append 64 B records with
//!   `pwrite` to one file (a 32 MiB ring, written through with zeros and
//!   synced before the run, so that a sync flushes data, not extent
//!   conversions) and make them durable by group commit done by hand: after
//!   its write a producer needs a sync that *started* after the write
//!   returned; whoever finds no sync running becomes the leader, calls
//!   `fdatasync` once for everything written so far, and wakes the others
//!   (futex on a word in a shared mapping, so threads and processes use the
//!   same code). With one producer each sync covers one record: the row's
//!   send p50 is "one write + fdatasync", the baseline of the 1.3x target.
//!   The row also reports the `fdatasync` calls alone.
//! - `sqlite`: rusqlite (bundled SQLite), WAL, `synchronous=FULL`, a table
//!   queue in the design of goqite and litequeue (a row per message with a
//!   visibility deadline that a receive would select on and update, then
//!   delete; indexed for that select). Send = one autocommit `INSERT`. Each
//!   producer its own connection, `busy_timeout` 30 s. No consumer runs.
//! - `redis`: `LPUSH` on one list; redis-server (started by
//!   scripts/durable-bench.sh, `REDIS_PORT`) with `appendonly yes`,
//!   `appendfsync always`. Each producer its own connection.
//! - `shmq`: a queue created with `Config::durable(true)` (262 144 slots
//!   of 64 B: room for every send, `DURABLE_SHMQ_SLOTS`); each producer
//!   calls `send`. The row also reports the queue's own count of syncs and
//!   of the durable waits they served (`Stats`), warm-up included.
//! - `shmq-refaulted`: the same queue, but its file's page cache dropped
//!   after creation (closed, `POSIX_FADV_DONTNEED`, opened again), so that
//!   the mapping faults it back in 4 KiB folios whatever creation left:
//!   the control for how many bytes a sync writes back. Before shmq wrote
//!   durable files through by 4 KiB writes (main 84570c8) it did so by
//!   1 MiB writes, which left 1 MiB folios that every sync wrote back
//!   whole; this row measured the fix. Not a thing a user does.
//!
//! Each row also reports what the block device under `DURABLE_DIR` wrote
//! during the window, per send (/sys/dev/block/MAJ:MIN/stat; the whole
//! device, so other writers on the machine count too): it shows how many
//! bytes each sync writes back.
//!
//! Files go under `DURABLE_DIR` (default /var/tmp), which must be on a disk
//! file system: tmpfs is refused. Output: a human line and a
//! `RESULT {json}` line (with the histograms, so that the script can merge
//! rounds).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{env, hist, now_ns, CHILD};

/// Message size.
const MSG: usize = 64;
/// The raw peer's ring: offsets wrap at this size.
const RAW_RING: u64 = 32 << 20;
/// The shmq queue's slots (64-byte slot size, so 128 bytes each: 32 MiB),
/// unless `DURABLE_SHMQ_SLOTS` says otherwise: room for every send of a
/// window, since nobody consumes.
const SHMQ_SLOTS: u32 = 1 << 18;
/// statfs f_type of tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Threads,
    Processes,
}

impl Mode {
    pub fn parse(s: &str) -> Mode {
        match s {
            "threads" => Mode::Threads,
            "processes" => Mode::Processes,
            other => panic!("MODE is threads or processes, not {other:?}"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Threads => "threads",
            Mode::Processes => "processes",
        }
    }
}

fn env_or(k: &str, default: u64) -> u64 {
    std::env::var(k).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| panic!("{k}: a number"))
    })
}

/// The directory for the files: `DURABLE_DIR`, default /var/tmp; refused
/// when it is tmpfs (nothing there is ever on stable storage).
fn durable_dir() -> tempfile::TempDir {
    let base = std::env::var("DURABLE_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = tempfile::Builder::new()
        .prefix("shmq-durable")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("temp dir in {base}: {e}"));
    let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a NUL-terminated path, st a writable statfs.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statfs {base}");
    assert!(
        st.f_type as i64 != TMPFS_MAGIC,
        "{base} is tmpfs: set DURABLE_DIR to a directory on a disk file system"
    );
    dir
}

fn fdatasync(f: &File) {
    // SAFETY: a valid open descriptor.
    let rc = unsafe { libc::fdatasync(f.as_raw_fd()) };
    assert_eq!(rc, 0, "fdatasync: {}", std::io::Error::last_os_error());
}

/// Write `len` bytes of zeros through to the disk and sync them.
fn write_zeros(f: &File, len: u64) {
    write_zeros_by(f, len, 1 << 20);
}

/// The same, `chunk` bytes per `pwrite`.
fn write_zeros_by(f: &File, len: u64, chunk: usize) {
    let chunk = vec![0u8; chunk];
    let mut off = 0;
    while off < len {
        let k = (len - off).min(chunk.len() as u64) as usize;
        f.write_all_at(&chunk[..k], off).expect("write zeros");
        off += k as u64;
    }
    f.sync_all().expect("fsync");
}

// ------------------------------------------------------------ producers

/// Where the producers find what the parent set up: handed to threads as
/// they are and to processes as environment variables.
type Vars = Vec<(String, String)>;

fn var<'a>(vars: &'a Vars, k: &str) -> &'a str {
    vars.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{k} not set up"))
}

/// One producer's handle on the peer.
trait Producer {
    /// One durable send: returns once `msg` is on stable storage.
    fn send(&mut self, msg: &[u8]);
    /// The sync calls this producer made (as leader) since `since_ns`:
    /// only the raw peer knows them.
    fn syncs(&mut self, _since_ns: u64) -> Option<Histogram<u64>> {
        None
    }
}

/// What the parent set up for one run; dropping it removes the files.
struct Target {
    vars: Vars,
    /// Threads share one queue handle.
    shmq: Option<shmq::Queue>,
    _dir: tempfile::TempDir,
    _ctl: Option<tempfile::NamedTempFile>,
}

fn set_up(peer: &str) -> Target {
    let dir = durable_dir();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let mut vars: Vars = Vec::new();
    let mut queue = None;
    let mut ctl = None;
    match peer {
        "fdatasync-raw" => {
            let data = at("raw.dat");
            let f = File::create(&data).expect("create raw file");
            write_zeros(&f, RAW_RING);
            // The control words live in a shared mapping on tmpfs where
            // there is one: they are not part of what is made durable.
            let ctl_dir = if Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                dir.path().to_path_buf()
            };
            let c = tempfile::Builder::new()
                .prefix("shmq-durable-ctl")
                .tempfile_in(ctl_dir)
                .expect("control file");
            c.as_file().set_len(4096).expect("size control file");
            vars.push(("DATA".into(), data));
            vars.push(("CTL".into(), c.path().display().to_string()));
            ctl = Some(c);
        }
        "sqlite" => {
            let db = at("queue.db");
            let c = sqlite_open(&db);
            c.execute_batch(
                "CREATE TABLE queue (
                    id INTEGER PRIMARY KEY,
                    queue TEXT NOT NULL,
                    body BLOB NOT NULL,
                    created INTEGER NOT NULL,   -- ms since the epoch
                    timeout INTEGER NOT NULL,   -- visible when timeout <= now
                    received INTEGER NOT NULL DEFAULT 0
                 );
                 CREATE INDEX queue_ready ON queue (queue, timeout, created);",
            )
            .expect("schema");
            vars.push(("DB".into(), db));
        }
        "redis" => {
            let key = format!("shmq-durable:{}:{}", std::process::id(), now_ns());
            vars.push(("REDIS_PORT".into(), env("REDIS_PORT")));
            vars.push(("KEY".into(), key));
        }
        "shmq" | "shmq-refaulted" => {
            let path = at("queue.shmq");
            let slots = env_or("DURABLE_SHMQ_SLOTS", SHMQ_SLOTS as u64) as u32;
            let cfg = shmq::Config::default()
                .slots(slots)
                .slot_size(MSG as u32)
                .durable(true);
            let t0 = Instant::now();
            let mut q = shmq::Queue::create(&path, &cfg).expect("create durable queue");
            eprintln!(
                "shmq: durable queue of {slots} slots created in {:.1} ms",
                t0.elapsed().as_secs_f64() * 1e3
            );
            if peer == "shmq-refaulted" {
                // Unmapped and clean, the file's pages can be dropped; the
                // queue opened again faults them back in 4 KiB folios.
                drop(q);
                let f = File::open(&path).expect("open queue file");
                // SAFETY: a valid descriptor; offset 0 and length 0 mean
                // the whole file.
                let rc =
                    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
                assert_eq!(rc, 0, "posix_fadvise");
                q = shmq::Queue::open(&path).expect("open durable queue");
            }
            vars.push(("QUEUE".into(), path));
            queue = Some(q);
        }
        other => panic!(
            "unknown durable peer {other} (fdatasync-raw, sqlite, redis, shmq, shmq-refaulted)"
        ),
    }
    Target {
        vars,
        shmq: queue,
        _dir: dir,
        _ctl: ctl,
    }
}

/// A producer's own handle. `shared` is the parent's queue, for threads.
fn producer(peer: &str, vars: &Vars, shared: Option<&shmq::Queue>) -> Box<dyn Producer> {
    match peer {
        "fdatasync-raw" => Box::new(Raw::open(vars)),
        "sqlite" => Box::new(Sqlite::open(vars)),
        "redis" => Box::new(Redis::open(vars)),
        "shmq" | "shmq-refaulted" => Box::new(Shmq(match shared {
            Some(q) => q.clone(),
            None => shmq::Queue::open(var(vars, "QUEUE")).expect("open durable queue"),
        })),
        other => panic!("unknown durable peer {other}"),
    }
}

/// Send back to back until `end`; count and time the sends that start at
/// or after `start`.
fn produce(p: &mut dyn Producer, start: u64, end: u64) -> Tally {
    let msg = [0x5Au8; MSG];
    let mut t = Tally {
        sends: 0,
        hist: hist(),
        syncs: None,
    };
    loop {
        let t0 = now_ns();
        if t0 >= end {
            break;
        }
        p.send(&msg);
        if t0 >= start {
            t.hist.record((now_ns() - t0).max(1)).expect("record");
            t.sends += 1;
        }
    }
    t.syncs = p.syncs(start);
    t
}

/// What producers measured.
struct Tally {
    sends: u64,
    hist: Histogram<u64>,
    syncs: Option<Histogram<u64>>,
}

/// Sectors the device wrote between `start` and `end` (the parent sleeps
/// through the window).
fn device_window(dev: &Device, start: u64, end: u64) -> Option<u64> {
    let sleep_until = |t: u64| {
        let now = now_ns();
        if t > now {
            std::thread::sleep(Duration::from_nanos(t - now));
        }
    };
    sleep_until(start);
    let a = dev.sectors_written();
    sleep_until(end);
    Some(dev.sectors_written()? - a?)
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.sends += o.sends;
        self.hist.add(&o.hist).expect("merge histograms");
        if let Some(b) = o.syncs {
            if let Some(a) = &mut self.syncs {
                a.add(&b).expect("merge histograms");
            } else {
                self.syncs = Some(b);
            }
        }
    }
}

fn hist_text(h: &Histogram<u64>) -> String {
    let v: Vec<String> = h
        .iter_recorded()
        .map(|b| format!("{}:{}", b.value_iterated_to(), b.count_at_value()))
        .collect();
    v.join(" ")
}

fn hist_parse(s: &str) -> Histogram<u64> {
    let mut h = hist();
    for w in s.split_whitespace() {
        let (v, c) = w.split_once(':').expect("value:count");
        h.record_n(v.parse().expect("value"), c.parse().expect("count"))
            .expect("record");
    }
    h
}

fn hist_json(h: &Histogram<u64>) -> String {
    let v: Vec<String> = h
        .iter_recorded()
        .map(|b| format!("[{},{}]", b.value_iterated_to(), b.count_at_value()))
        .collect();
    format!("[{}]", v.join(","))
}

// ------------------------------------------------------------ the run

/// `peers durable PEER PRODUCERS MODE`
pub fn run(peer: &str, producers: usize, mode: Mode) {
    assert!(producers >= 1, "PRODUCERS >= 1");
    let warm = env_or("DURABLE_WARM_MS", 300) * 1_000_000;
    let secs = env_or("DURABLE_SECS", 2);
    let window = secs * 1_000_000_000;
    let target = set_up(peer);
    let dev = Device::of(target._dir.path());
    let counts = |q: &shmq::Queue| {
        let st = q.stats();
        (st.syncs, st.durable_waits)
    };
    let before = target.shmq.as_ref().map(counts);
    let (tally, sectors) = match mode {
        Mode::Threads => {
            let ready = Barrier::new(producers + 1);
            let go = Barrier::new(producers + 1);
            let times: OnceLock<(u64, u64)> = OnceLock::new();
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..producers)
                    .map(|_| {
                        s.spawn(|| {
                            let mut p = producer(peer, &target.vars, target.shmq.as_ref());
                            ready.wait();
                            go.wait();
                            let (start, end) = *times.get().expect("times set");
                            produce(&mut *p, start, end)
                        })
                    })
                    .collect();
                ready.wait();
                let now = now_ns();
                times
                    .set((now + warm, now + warm + window))
                    .expect("set once");
                go.wait();
                let (start, end) = *times.get().expect("times set");
                let sectors = device_window(&dev, start, end);
                let mut all = hs.into_iter().map(|h| h.join().expect("producer"));
                let mut t = all.next().expect("one producer");
                all.for_each(|o| t.add(o));
                (t, sectors)
            })
        }
        Mode::Processes => {
            let mut kids: Vec<Kid> = (0..producers)
                .map(|_| Kid::spawn(peer, &target.vars))
                .collect();
            for k in &mut kids {
                k.expect_ready();
            }
            let now = now_ns();
            let (start, end) = (now + warm, now + warm + window);
            for k in &mut kids {
                k.go(start, end);
            }
            let sectors = device_window(&dev, start, end);
            let mut all = kids.into_iter().map(Kid::result);
            let mut t = all.next().expect("one producer");
            all.for_each(|o| t.add(o));
            (t, sectors)
        }
    };
    // shmq's own count of syncs and of the waits they served, warm-up
    // included: its group commit's batch size.
    let shmq_syncs = target.shmq.as_ref().map(counts).zip(before).map(|(b, a)| {
        let (syncs, waits) = (b.0 - a.0, b.1 - a.1);
        (syncs, waits as f64 / syncs.max(1) as f64)
    });
    report(peer, producers, mode, secs, &tally, sectors);
    if let Some((syncs, per)) = shmq_syncs {
        println!("  shmq stats: {syncs} syncs, {per:.1} durable waits per sync");
        println!("RESULT {{\"kind\":\"shmq_syncs\",\"peer\":\"{peer}\",\"producers\":{producers},\"mode\":\"{}\",\"syncs\":{syncs},\"waits_per_sync\":{per:.2}}}", mode.name());
    }
    drop(target);
}

/// Print the human line and the RESULT line; `sectors`: what the device
/// wrote during the window.
fn report(peer: &str, producers: usize, mode: Mode, secs: u64, t: &Tally, sectors: Option<u64>) {
    let h = &t.hist;
    let rate = t.sends as f64 / secs as f64;
    let q = |h: &Histogram<u64>, x: f64| h.value_at_quantile(x);
    let us = |ns: u64| ns as f64 / 1e3;
    let mut line = format!(
        "durable {peer:<14} {producers:>2} {:<9} {rate:>10.0} sends/s  p50 {:>9.1} us  p99 {:>9.1} us  max {:>9.1} us  n {}",
        mode.name(),
        us(q(h, 0.5)),
        us(q(h, 0.99)),
        us(h.max()),
        t.sends
    );
    let mut json = format!(
        "{{\"kind\":\"durable\",\"peer\":\"{peer}\",\"producers\":{producers},\"mode\":\"{}\",\"secs\":{secs},\"sends\":{},\"per_s\":{rate:.1},\"p50\":{},\"p99\":{},\"max\":{},\"hist\":{}",
        mode.name(),
        t.sends,
        q(h, 0.5),
        q(h, 0.99),
        h.max(),
        hist_json(h)
    );
    if let Some(sec) = sectors {
        let kib = sec as f64 / 2.0;
        line += &format!("  device {:.1} KiB/send", kib / t.sends.max(1) as f64);
        json += &format!(",\"device_kib\":{kib:.1}");
    }
    if peer == "sqlite" {
        json += &format!(",\"version\":\"{}\"", rusqlite::version());
    }
    if let Some(s) = &t.syncs {
        line += &format!(
            "  | {} syncs, {:.1} sends/sync, fdatasync p50 {:.1} us p99 {:.1} us",
            s.len(),
            t.sends as f64 / s.len().max(1) as f64,
            us(q(s, 0.5)),
            us(q(s, 0.99))
        );
        json += &format!(
            ",\"syncs\":{},\"sync_p50\":{},\"sync_p99\":{},\"sync_hist\":{}",
            s.len(),
            q(s, 0.5),
            q(s, 0.99),
            hist_json(s)
        );
    }
    println!("{line}");
    println!("RESULT {json}}}");
}

// ------------------------------------------------------------ processes

/// A producer process: this binary with `PEER_CHILD=durable`.
struct Kid {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Kid {
    fn spawn(peer: &str, vars: &Vars) -> Kid {
        let mut cmd = Command::new(std::env::current_exe().expect("exe"));
        cmd.env(CHILD, "durable")
            .env("PEER", peer)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn producer");
        let stdin = child.stdin.take().expect("stdin");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Kid { child, stdin, out }
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).expect("producer line");
        l.trim_end().to_string()
    }
    fn expect_ready(&mut self) {
        let l = self.line();
        assert_eq!(l, "ready", "producer said {l:?}");
    }
    fn go(&mut self, start: u64, end: u64) {
        writeln!(self.stdin, "go {start} {end}").expect("go");
        self.stdin.flush().expect("flush");
    }
    fn result(mut self) -> Tally {
        let sends: u64 = self
            .line()
            .strip_prefix("sends ")
            .expect("sends line")
            .parse()
            .expect("sends");
        let hist = hist_parse(self.line().strip_prefix("hist").expect("hist line"));
        let syncs = self.line();
        let syncs = syncs.strip_prefix("syncs").map(hist_parse);
        let st = self.child.wait().expect("wait producer");
        assert!(st.success(), "producer failed: {st}");
        Tally { sends, hist, syncs }
    }
}

/// `PEER_CHILD=durable`: one producer process.
pub fn child() {
    let peer = env("PEER");
    let keys = ["DATA", "CTL", "DB", "REDIS_PORT", "KEY", "QUEUE"];
    let vars: Vars = keys
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let mut p = producer(&peer, &vars, None);
    super::say("ready");
    let mut l = String::new();
    std::io::stdin().read_line(&mut l).expect("go line");
    let w: Vec<u64> = l
        .strip_prefix("go ")
        .expect("go")
        .split_whitespace()
        .map(|x| x.parse().expect("ns"))
        .collect();
    let t = produce(&mut *p, w[0], w[1]);
    let syncs = match &t.syncs {
        Some(s) => format!("syncs {}", hist_text(s)),
        None => "none".into(),
    };
    super::say(&format!(
        "sends {}\nhist {}\n{syncs}",
        t.sends,
        hist_text(&t.hist)
    ));
}

// ------------------------------------------------------------ fdatasync-raw

/// The group commit's shared words, in a 4 KiB shared mapping (zeros at
/// creation). Generations count syncs and wrap; they are compared by
/// wrapping difference.
#[repr(C)]
struct Ctl {
    /// Next byte offset to append at (modulo `RAW_RING`).
    next: AtomicU64,
    /// Generation of the last sync started: a leader increments it right
    /// before its fdatasync.
    started: AtomicU32,
    /// Generation of the last sync completed: a leader stores its
    /// generation right after its fdatasync returned.
    done: AtomicU32,
    /// 1 while a leader holds the sync, 0 otherwise.
    syncing: AtomicU32,
    /// Bumped each time a leader lets go; waiters sleep on it (futex).
    event: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Ctl>() <= 4096);

struct Raw {
    file: File,
    map: memmap2::MmapMut,
    syncs: Vec<(u64, u64)>,
}

impl Raw {
    fn open(vars: &Vars) -> Raw {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(var(vars, "DATA"))
            .expect("open raw file");
        let cf = OpenOptions::new()
            .read(true)
            .write(true)
            .open(var(vars, "CTL"))
            .expect("open control file");
        // SAFETY: the control file is private to this run; the processes
        // of this run touch it only through the atomics of `Ctl`.
        let map = unsafe { memmap2::MmapMut::map_mut(&cf) }.expect("map control file");
        assert!(map.len() >= std::mem::size_of::<Ctl>());
        Raw {
            file,
            map,
            syncs: Vec::new(),
        }
    }

    fn ctl(&self) -> &Ctl {
        // SAFETY: the mapping is page-aligned and at least size_of::<Ctl>()
        // long (checked in open); Ctl is atomics only, for which any bit
        // pattern (zeros at creation) is valid, and shared access to
        // atomics is what they are for.
        unsafe { &*(self.map.as_ptr() as *const Ctl) }
    }
}

/// Whether generation `g` is at or past `target` (wrapping).
fn reached(g: u32, target: u32) -> bool {
    g.wrapping_sub(target) as i32 >= 0
}

fn futex_wait(w: &AtomicU32, seen: u32) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    // SAFETY: `w` is a live, aligned u32 for the duration of the call;
    // FUTEX_WAIT (shared, not private: other processes wait on the same
    // word) only reads it; the timeout is a valid relative timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
        )
    };
}

fn futex_wake_all(w: &AtomicU32) {
    // SAFETY: as in futex_wait; FUTEX_WAKE does not touch the word.
    unsafe { libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

impl Producer for Raw {
    fn send(&mut self, msg: &[u8]) {
        let c = self.ctl();
        let off = c.next.fetch_add(msg.len() as u64, SeqCst) % RAW_RING;
        self.file.write_all_at(msg, off).expect("pwrite");
        // The write has returned: any sync that starts from now on covers
        // it, so the next generation after the one started so far does.
        let target = c.started.load(SeqCst).wrapping_add(1);
        let mut lead = None;
        loop {
            let ev = c.event.load(SeqCst);
            if reached(c.done.load(SeqCst), target) {
                break;
            }
            if c.syncing.swap(1, SeqCst) == 0 {
                if !reached(c.done.load(SeqCst), target) {
                    let g = c.started.fetch_add(1, SeqCst).wrapping_add(1);
                    let t0 = now_ns();
                    fdatasync(&self.file);
                    lead = Some((t0, now_ns() - t0));
                    c.done.store(g, SeqCst);
                }
                c.syncing.store(0, SeqCst);
                c.event.fetch_add(1, SeqCst);
                futex_wake_all(&c.event);
            } else {
                futex_wait(&c.event, ev);
            }
        }
        if let Some(s) = lead {
            self.syncs.push(s);
        }
    }

    fn syncs(&mut self, since_ns: u64) -> Option<Histogram<u64>> {
        let mut h = hist();
        for &(at, took) in &self.syncs {
            if at >= since_ns {
                h.record(took.max(1)).expect("record");
            }
        }
        Some(h)
    }
}

// ------------------------------------------------------------ sqlite

fn sqlite_open(path: &str) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("open sqlite");
    c.busy_timeout(Duration::from_secs(30))
        .expect("busy_timeout");
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    c.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    c
}

struct Sqlite(rusqlite::Connection);

impl Sqlite {
    fn open(vars: &Vars) -> Sqlite {
        Sqlite(sqlite_open(var(vars, "DB")))
    }
}

impl Producer for Sqlite {
    fn send(&mut self, msg: &[u8]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        self.0
            .prepare_cached(
                "INSERT INTO queue (queue, body, created, timeout) VALUES ('bench', ?1, ?2, ?2)",
            )
            .expect("prepare")
            .execute(rusqlite::params![msg, now])
            .expect("insert");
    }
}

// ------------------------------------------------------------ redis

struct Redis {
    con: redis::Connection,
    key: String,
}

impl Redis {
    fn open(vars: &Vars) -> Redis {
        let url = format!("redis://127.0.0.1:{}/", var(vars, "REDIS_PORT"));
        let con = redis::Client::open(url)
            .expect("redis url")
            .get_connection()
            .expect("connect to redis-server");
        Redis {
            con,
            key: var(vars, "KEY").to_string(),
        }
    }
}

impl Producer for Redis {
    fn send(&mut self, msg: &[u8]) {
        let _: i64 = redis::cmd("LPUSH")
            .arg(&self.key)
            .arg(msg)
            .query(&mut self.con)
            .expect("LPUSH");
    }
}

// ------------------------------------------------------------ shmq

struct Shmq(shmq::Queue);

impl Producer for Shmq {
    fn send(&mut self, msg: &[u8]) {
        loop {
            match self.0.send(msg) {
                Ok(_) => return,
                Err(shmq::SendError::Contended | shmq::SendError::ClaimExpired) => continue,
                Err(e) if e.is_full() => {
                    panic!("durable queue full: raise DURABLE_SHMQ_SLOTS")
                }
                Err(e) => panic!("shmq send: {e}"),
            }
        }
    }
}

// ------------------------------------------------------------ device

/// Sectors (512 B) written to the block device that holds `dir`, as the
/// kernel counts them in /sys/dev/block/MAJ:MIN/stat (field 7). Whole
/// device: other writers on the machine count too. None where the file is
/// not there (no block device behind the file system).
struct Device(Option<PathBuf>);

impl Device {
    fn of(dir: &Path) -> Device {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(dir).expect("stat dir").dev();
        let (maj, min) = (libc::major(dev), libc::minor(dev));
        let p = PathBuf::from(format!("/sys/dev/block/{maj}:{min}/stat"));
        Device(p.exists().then_some(p))
    }
    fn sectors_written(&self) -> Option<u64> {
        let s = std::fs::read_to_string(self.0.as_ref()?).ok()?;
        s.split_whitespace().nth(6)?.parse().ok()
    }
}

// ------------------------------------------------------------ prealloc

/// How a `peers prealloc` file was prepared and how a record reaches it.
struct Variant {
    name: &'static str,
    file: File,
    /// Shared mapping of the file, for the variants that store through one
    /// (as shmq does); None: `pwrite`.
    map: Option<memmap2::MmapMut>,
    /// Offset of record i: a block of its own, or appended.
    stride: u64,
    prep: Option<Duration>,
    hist: Histogram<u64>,
    sectors: u64,
}

/// `peers prealloc SAMPLES`: what `fdatasync` costs after a 64-byte record
/// lands in a block never written since the file was prepared, by how the
/// file was prepared and how the record is written:
///
/// - `fallocated`: `posix_fallocate` + fsync: unwritten extents, so the
///   sync must also commit each extent's conversion to written (a journal
///   commit besides the data);
/// - `written-1m`: zeros written through by 1 MiB `pwrite`s + fsync (what
///   shmq does at creation); the page cache then holds the file in large
///   folios (up to 1 MiB each, where the kernel does large folios);
/// - `written-4k`: the same by 4 KiB `pwrite`s: 4 KiB folios;
/// - `grown`: nothing; each record is appended (the sync commits the new
///   size, and a new block every 64 records);
///
/// each with the record written by `pwrite` (`-pwrite`), and the prepared
/// ones also stored through a shared mapping (`-mmap`, as shmq does): a
/// store dirties its whole folio, and writeback writes the whole folio.
/// The variants take turns sample by sample; the sectors the device wrote
/// are counted around each sync (whole device: other writers count too),
/// and the preparation of each file is timed.
pub fn prealloc(samples: u64) {
    let dir = durable_dir();
    let dev = Device::of(dir.path());
    let len = samples * 4096;
    let open = |name: &str| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join(name))
            .expect("create")
    };
    let fallocated = |name: &str| {
        let f = open(name);
        let t0 = Instant::now();
        // SAFETY: a valid descriptor; 0..len is a valid range (len fits
        // off_t for any sample count this takes).
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len as libc::off_t) };
        assert_eq!(
            rc,
            0,
            "posix_fallocate: {}",
            std::io::Error::from_raw_os_error(rc)
        );
        f.sync_all().expect("fsync");
        (f, Some(t0.elapsed()))
    };
    let written = |name: &str, chunk: usize| {
        let f = open(name);
        let t0 = Instant::now();
        write_zeros_by(&f, len, chunk);
        (f, Some(t0.elapsed()))
    };
    let variant = |name, (file, prep): (File, Option<Duration>), mapped: bool, stride| {
        // SAFETY: the file is private to this run and only this thread
        // writes it, through this mapping.
        let map = mapped.then(|| unsafe { memmap2::MmapMut::map_mut(&file) }.expect("map"));
        Variant {
            name,
            file,
            map,
            stride,
            prep,
            hist: hist(),
            sectors: 0,
        }
    };
    let mut vs = vec![
        variant("fallocated-pwrite", fallocated("fp"), false, 4096),
        variant("fallocated-mmap", fallocated("fm"), true, 4096),
        variant("written-1m-pwrite", written("w1p", 1 << 20), false, 4096),
        variant("written-1m-mmap", written("w1m", 1 << 20), true, 4096),
        variant("written-4k-pwrite", written("w4p", 4096), false, 4096),
        variant("written-4k-mmap", written("w4m", 4096), true, 4096),
        variant("grown-pwrite", (open("g"), None), false, MSG as u64),
    ];
    let msg = [0xA5u8; MSG];
    let k = vs.len();
    for i in 0..samples {
        for j in 0..k {
            // Rotate which file goes first, so none always follows another.
            let v = &mut vs[(i as usize + j) % k];
            let off = i * v.stride;
            let s0 = dev.sectors_written();
            let t = now_ns();
            match &mut v.map {
                Some(m) => m[off as usize..off as usize + MSG].copy_from_slice(&msg),
                None => v.file.write_all_at(&msg, off).expect("pwrite"),
            }
            fdatasync(&v.file);
            v.hist.record((now_ns() - t).max(1)).expect("record");
            if let (Some(a), Some(b)) = (s0, dev.sectors_written()) {
                v.sectors += b - a;
            }
        }
    }
    let dev_known = dev.0.is_some();
    for v in &vs {
        let h = &v.hist;
        let q = |x: f64| h.value_at_quantile(x);
        let kib = v.sectors as f64 / 2.0 / h.len() as f64;
        let prep = v.prep.map_or(String::new(), |d| {
            format!(
                "  prepared {:.1} MiB in {:.1} ms",
                len as f64 / (1 << 20) as f64,
                d.as_secs_f64() * 1e3
            )
        });
        println!(
            "prealloc {:<18} 64 B + fdatasync: p50 {:>8.1} us  p99 {:>8.1} us  max {:>8.1} us  device {:>7.1} KiB/sync  n {}{prep}",
            v.name,
            q(0.5) as f64 / 1e3,
            q(0.99) as f64 / 1e3,
            h.max() as f64 / 1e3,
            kib,
            h.len()
        );
        println!(
            "RESULT {{\"kind\":\"prealloc\",\"variant\":\"{}\",\"p50\":{},\"p99\":{},\"max\":{},\"n\":{},\"prep_ms\":{},\"bytes\":{len},\"device_kib_per_sync\":{}}}",
            v.name,
            q(0.5),
            q(0.99),
            h.max(),
            h.len(),
            v.prep
                .map_or("null".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3)),
            if dev_known { format!("{kib:.1}") } else { "null".into() }
        );
    }
}

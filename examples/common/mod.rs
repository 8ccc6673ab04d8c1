//! What the examples share: roles, child processes, journals, the audit and
//! the live display. Not an example itself: cargo builds `examples/*.rs` and
//! `examples/*/main.rs`, and this directory has no `main.rs`.
//!
//! Every example is one binary that plays several parts. Started plainly it
//! is the parent: it creates the queues in a temporary directory and tells
//! the story. Started as `<exe> --role ROLE NAME DIR ARGS..` it is one of
//! the processes the parent spawned (a consumer, a worker). The processes
//! share nothing but the queue files and that directory.
//!
//! Each consumer keeps a journal, `DIR/NAME.journal`: one line per event,
//! each written with a single `write(2)`, so a SIGKILL loses nothing already
//! written. The parent reads every journal at the end and checks, message by
//! message, what happened ([`audit`]).
//!
//! | line                        | meaning                                           |
//! |-----------------------------|---------------------------------------------------|
//! | `D id receives at deadline` | leased (delivery number `receives`) until `deadline` |
//! | `E id at deadline`          | lease extended to `deadline`                       |
//! | `A id at`                   | acked (`at` is taken *before* the ack call)        |
//! | `N id at`                   | nacked: visible again later                        |
//! | `X id at`                   | nacked at max receives: dead-lettered              |
//! | `L id at`                   | the lease was lost (it expired under us)           |
//! | `H id at`                   | holding the lease on purpose until killed          |
//!
//! Times are [`shmq::now_ms`], the clock the queue itself uses, so journal
//! times and lease deadlines compare directly across processes.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use shmq::{now_ms, Error, Lease, Nacked, Queue};

/// The examples' result type.
pub type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

const PARENT_ENV: &str = "SHMQ_EXAMPLE_PARENT";
const QUICK_ENV: &str = "SHMQ_EXAMPLE_QUICK";

/// Short mode (for the tests): `--quick` on the command line or
/// `SHMQ_EXAMPLE_QUICK=1`. Children inherit it through the environment.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick") || std::env::var(QUICK_ENV).is_ok_and(|v| v == "1")
}

/// `quick` or `normal`, whichever mode this run is in.
pub fn pick<T>(quick_value: T, normal_value: T) -> T {
    if quick() {
        quick_value
    } else {
        normal_value
    }
}

/// Milliseconds as a `Duration`.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Started as a child? Then `(role, name, dir, rest of the arguments)`.
/// Also arranges for the child to die with its parent, so that a parent
/// killed by a test's timeout leaves no process behind.
pub fn role() -> Option<(String, String, PathBuf, Vec<String>)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("--role") || args.len() < 4 {
        return None;
    }
    die_with_parent();
    // A SIGTERM that arrives before `serve` is ready to handle it waits,
    // pending, instead of killing the process mid-start.
    stop_signals(libc::SIG_BLOCK);
    Some((
        args[1].clone(),
        args[2].clone(),
        PathBuf::from(&args[3]),
        args[4..].to_vec(),
    ))
}

/// Block or unblock SIGTERM and SIGINT for this thread (threads spawned
/// later inherit the mask).
fn stop_signals(how: libc::c_int) {
    // SAFETY: sigemptyset/sigaddset fill a sigset_t we own with valid signal
    // numbers; pthread_sigmask reads it and changes only this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

fn die_with_parent() {
    // SAFETY: PR_SET_PDEATHSIG takes one argument, a valid signal number;
    // SIGKILL is one. It only changes this process's own attributes.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let parent: Option<i32> = std::env::var(PARENT_ENV).ok().and_then(|v| v.parse().ok());
    // SAFETY: getppid has no arguments and cannot fail.
    let ppid = unsafe { libc::getppid() };
    if parent.is_some_and(|p| p != ppid) {
        // The parent died before the death signal was armed.
        std::process::exit(1);
    }
}

/// A marker file: how the parent flips a switch in its children ("the
/// warehouse is slow", "the bug is fixed").
pub fn flag(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.flag"))
}

/// Set (create) or clear (remove) a flag.
pub fn set_flag(dir: &Path, name: &str, on: bool) -> Res {
    let p = flag(dir, name);
    if on {
        File::create(p)?;
    } else if let Err(e) = fs::remove_file(p) {
        if e.kind() != io::ErrorKind::NotFound {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Whether a flag is set.
pub fn has_flag(dir: &Path, name: &str) -> bool {
    flag(dir, name).exists()
}

/// Poll `cond` every few milliseconds until it holds; an error naming `what`
/// if it does not within `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> Res<bool>) -> Res {
    let start = Instant::now();
    while !cond()? {
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        std::thread::sleep(ms(5));
    }
    Ok(())
}

// ------------------------------------------------------------- processes

struct Kid {
    name: String,
    child: Child,
}

/// The parent's child processes, by name. Dropping it kills and reaps the
/// ones still running.
pub struct Procs {
    dir: PathBuf,
    kids: Vec<Kid>,
    started: usize,
}

impl Procs {
    /// No children yet; they will share `dir`.
    pub fn new(dir: &Path) -> Procs {
        Procs {
            dir: dir.to_path_buf(),
            kids: Vec::new(),
            started: 0,
        }
    }

    /// How many processes were started in all.
    pub fn started(&self) -> usize {
        self.started
    }

    /// Start this executable again as `role` named `name`. Returns its pid.
    pub fn start(&mut self, role: &str, name: &str, args: &[String]) -> Res<u32> {
        let child = Command::new(std::env::current_exe()?)
            .args(["--role", role, name])
            .arg(&self.dir)
            .args(args)
            .env(PARENT_ENV, std::process::id().to_string())
            .env(QUICK_ENV, if quick() { "1" } else { "0" })
            .spawn()?;
        let pid = child.id();
        self.started += 1;
        self.kids.push(Kid {
            name: name.to_string(),
            child,
        });
        Ok(pid)
    }

    /// Names of the children still running whose names start with `prefix`.
    pub fn running(&self, prefix: &str) -> Vec<String> {
        self.kids
            .iter()
            .filter(|k| k.name.starts_with(prefix))
            .map(|k| k.name.clone())
            .collect()
    }

    /// The pid of child `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.kids
            .iter()
            .find(|k| k.name == name)
            .map(|k| k.child.id())
    }

    fn take(&mut self, name: &str) -> Res<Kid> {
        let i = self
            .kids
            .iter()
            .position(|k| k.name == name)
            .ok_or_else(|| format!("no process named {name}"))?;
        Ok(self.kids.remove(i))
    }

    /// Send SIGTERM to child `name`, as a service manager would.
    fn terminate(&self, name: &str) -> Res {
        let pid = self
            .pid(name)
            .ok_or_else(|| format!("no process named {name}"))?;
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet (so
        // it cannot have been reused) and a valid signal number.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// Ask `name` to stop (SIGTERM: it finishes or gives back the message
    /// in hand and exits); wait for it. An error if it fails or does not
    /// exit within 10 s.
    pub fn stop(&mut self, name: &str) -> Res {
        self.terminate(name)?;
        self.wait_exit(name)
    }

    /// Wait for child `name` to finish its work and exit successfully, at
    /// most 10 s.
    pub fn join(&mut self, name: &str) -> Res {
        self.wait_exit(name)
    }

    /// Wait for child `name` to exit successfully, at most 10 s.
    fn wait_exit(&mut self, name: &str) -> Res {
        let mut kid = self.take(name)?;
        let start = Instant::now();
        loop {
            if let Some(status) = kid.child.try_wait()? {
                if !status.success() {
                    return Err(format!("{name} exited with {status}").into());
                }
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = kid.child.kill();
                let _ = kid.child.wait();
                return Err(format!("{name} did not stop within 10 s").into());
            }
            std::thread::sleep(ms(5));
        }
    }

    /// Stop every child (all at once, then wait for each).
    pub fn stop_all(&mut self) -> Res {
        for k in &self.kids {
            self.terminate(&k.name)?;
        }
        while let Some(k) = self.kids.first() {
            let name = k.name.clone();
            self.wait_exit(&name)?;
        }
        Ok(())
    }

    /// SIGKILL `name`: no chance to clean up, its leases stay taken until
    /// they expire. Returns its pid.
    pub fn kill(&mut self, name: &str) -> Res<u32> {
        let mut kid = self.take(name)?;
        let pid = kid.child.id();
        // From here on the consumer acts no more: a lease it held may be
        // given to another consumer at once (the audit's overlap rule).
        KILLED
            .lock()
            .map_err(|_| "a poisoned lock")?
            .insert(name.to_owned(), shmq::now_ms());
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet (so
        // it cannot have been reused) and a valid signal number.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        kid.child.wait()?;
        Ok(pid)
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for k in &mut self.kids {
            let _ = k.child.kill();
            let _ = k.child.wait();
        }
    }
}

// --------------------------------------------------------------- journal

/// A consumer's journal: one line per event, one `write` per line.
pub struct Journal(File);

impl Journal {
    /// Create (or append to) `DIR/NAME.journal`.
    pub fn open(dir: &Path, name: &str) -> Res<Journal> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.journal")))?;
        Ok(Journal(f))
    }

    /// Record a delivery: `D id receives now deadline`.
    pub fn delivered(&mut self, lease: &Lease) -> Res {
        let d = lease.delivery();
        self.log(format_args!(
            "D {} {} {} {}",
            d.id,
            d.receives,
            now_ms(),
            d.deadline_ms
        ))
    }

    /// Append one line.
    pub fn log(&mut self, line: std::fmt::Arguments<'_>) -> Res {
        let mut s = line.to_string();
        s.push('\n');
        self.0.write_all(s.as_bytes())?;
        Ok(())
    }
}

/// One delivery of one message to one consumer, as its journal tells it.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// The consumer.
    pub worker: String,
    /// Message id.
    pub id: u64,
    /// Delivery number (1 = first).
    pub receives: u32,
    /// When the consumer had the lease.
    pub at: u64,
    /// The lease deadline, after any extends.
    pub deadline: u64,
    /// How it ended (`A`, `N`, `X`, `L`), and when; `None` if the consumer
    /// died holding it (or holds it still).
    pub end: Option<(char, u64)>,
    /// The consumer held it on purpose, waiting to be killed.
    pub held: bool,
}

/// The consumers this process killed, and when (clock ms, just before the
/// SIGKILL): their leases are over from then on, since the queue returns a
/// dead holder's leases at once.
static KILLED: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

impl Delivered {
    /// When the lease was over at the latest: the ack or nack if it went
    /// through, else its deadline, or its consumer's death if that came
    /// first.
    pub fn lease_end(&self) -> u64 {
        match self.end {
            Some(('A' | 'N' | 'X', t)) => t,
            _ => {
                let killed = KILLED
                    .lock()
                    .ok()
                    .and_then(|k| k.get(&self.worker).copied());
                killed.map_or(self.deadline, |t| t.min(self.deadline))
            }
        }
    }
}

/// Every delivery in the journals of consumers whose names start with
/// `prefix`, in journal order per consumer.
pub fn deliveries(dir: &Path, prefix: &str) -> Res<Vec<Delivered>> {
    let mut out = Vec::new();
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".journal"))
        .collect();
    names.sort();
    for file in names {
        let worker = file.trim_end_matches(".journal").to_string();
        let text = fs::read_to_string(dir.join(&file))?;
        let mut open: HashMap<u64, usize> = HashMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let num = |k: usize| -> Res<u64> {
                Ok(f.get(k)
                    .ok_or_else(|| format!("{file}: short line {line:?}"))?
                    .parse()?)
            };
            let id = num(1)?;
            match f[0] {
                "D" => {
                    open.insert(id, out.len());
                    out.push(Delivered {
                        worker: worker.clone(),
                        id,
                        receives: num(2)? as u32,
                        at: num(3)?,
                        deadline: num(4)?,
                        end: None,
                        held: false,
                    });
                }
                "E" | "H" | "A" | "N" | "X" | "L" => {
                    let i = *open
                        .get(&id)
                        .ok_or_else(|| format!("{file}: {line:?} before its delivery"))?;
                    match f[0] {
                        "E" => out[i].deadline = num(3)?,
                        "H" => out[i].held = true,
                        k => {
                            out[i].end = Some((k.chars().next().unwrap_or('?'), num(2)?));
                            open.remove(&id);
                        }
                    }
                }
                _ => return Err(format!("{file}: unknown line {line:?}").into()),
            }
        }
    }
    Ok(out)
}

// -------------------------------------------------------------- consumer

/// What a handler decided about a message.
pub enum Outcome {
    /// Done: ack it.
    Ack,
    /// Failed: nack it, visible again after the delay (dead at max receives).
    Retry(Duration, String),
    /// The lease was lost during the work (a heartbeat failed): leave it.
    Lost,
}

/// The message a handler is working on.
pub struct Job<'a> {
    lease: &'a mut Lease,
    journal: &'a mut Journal,
}

impl Job<'_> {
    /// The payload as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(self.lease.payload()).unwrap_or("<not utf-8>")
    }
    /// Message id.
    pub fn id(&self) -> u64 {
        self.lease.id()
    }
    /// Delivery number, this one included.
    pub fn receives(&self) -> u32 {
        self.lease.receives()
    }
    /// The value of `key=` in the payload (see [`field`]).
    pub fn field(&self, key: &str) -> Option<&str> {
        field(self.text(), key)
    }
    /// Heartbeat: keep the lease `timeout` longer. False if it was lost.
    pub fn extend(&mut self, timeout: Duration) -> Res<bool> {
        match self.lease.extend(timeout) {
            Ok(()) => {
                let d = self.lease.delivery();
                self.journal
                    .log(format_args!("E {} {} {}", d.id, now_ms(), d.deadline_ms))?;
                Ok(true)
            }
            Err(Error::LeaseLost) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    /// Hold the lease and do nothing more, until this process is killed
    /// (a worker that hangs or crashes mid-job).
    pub fn hold_until_killed(&mut self) -> Res {
        self.journal
            .log(format_args!("H {} {}", self.lease.id(), now_ms()))?;
        loop {
            std::thread::sleep(ms(50));
        }
    }
}

/// The value of `key=` in a payload of space-separated `key=value` words.
pub fn field<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// A consumer process: lease messages from `DIR/queue` one at a time, hand
/// each to `handle`, and ack or nack it as the handler decides, journaling
/// every step, until SIGTERM or SIGINT: a signal thread shuts the queue
/// handle down, `incoming` ends after the message in hand is settled, and
/// no lease is left to time out. With `verbose`, retries, dead letters and
/// lost leases are printed.
pub fn serve(
    name: &str,
    dir: &Path,
    queue: &str,
    verbose: bool,
    mut handle: impl FnMut(&mut Job<'_>) -> Res<Outcome>,
) -> Res {
    let q = Queue::open(dir.join(queue))?;
    let max = q.config().max_receives;
    let mut journal = Journal::open(dir, name)?;
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])?;
    let stopper = q.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stopper.shutdown();
        }
    });
    // Handled from here on (a signal that came earlier is delivered now).
    stop_signals(libc::SIG_UNBLOCK);
    for mut lease in q.incoming() {
        journal.delivered(&lease)?;
        let outcome = handle(&mut Job {
            lease: &mut lease,
            journal: &mut journal,
        })?;
        let id = lease.id();
        let at = now_ms();
        match outcome {
            Outcome::Ack => match lease.ack() {
                Ok(()) => journal.log(format_args!("A {id} {at}"))?,
                Err(Error::LeaseLost) => {
                    journal.log(format_args!("L {id} {at}"))?;
                    if verbose {
                        println!("  [{name}] message {id}: lease expired before the ack; it will be redelivered");
                    }
                }
                Err(e) => return Err(e.into()),
            },
            Outcome::Retry(delay, why) => {
                let receives = lease.receives();
                match lease.nack(delay) {
                    Ok(Nacked::Requeued) => {
                        journal.log(format_args!("N {id} {at}"))?;
                        if verbose {
                            println!(
                                "  [{name}] message {id}: {why}; nack, retry in {} ms (delivery {receives} of {max})",
                                delay.as_millis()
                            );
                        }
                    }
                    Ok(Nacked::DeadLettered) => {
                        journal.log(format_args!("X {id} {at}"))?;
                        if verbose {
                            println!(
                                "  [{name}] message {id}: {why}; delivery {receives} of {max}: dead-lettered"
                            );
                        }
                    }
                    Err(Error::LeaseLost) => journal.log(format_args!("L {id} {at}"))?,
                    Err(e) => return Err(e.into()),
                }
            }
            Outcome::Lost => journal.log(format_args!("L {id} {at}"))?,
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- audit

/// What happened to every message sent, from the journals and the queue.
#[derive(Debug, Default)]
pub struct Audit {
    /// Messages sent (`send` returned Ok).
    pub sent: usize,
    /// Of those, acked (a consumer's ack went through).
    pub acked: usize,
    /// Of those, dead now (in the dead-letter list).
    pub in_dlq: usize,
    /// Of those, neither acked nor dead: lost. Must be empty.
    pub lost: Vec<u64>,
    /// Deliveries in all the journals.
    pub deliveries: usize,
    /// Deliveries beyond the first of each message (retries, redeliveries
    /// after a timeout or a crash, redrives).
    pub repeats: usize,
    /// Deliveries that began while another consumer's lease on the same
    /// message was still live. Must be 0.
    pub overlaps: usize,
    /// Messages acked more than once. Must be 0.
    pub double_acks: usize,
    /// Delivered ids that were never sent. Must be 0.
    pub strangers: usize,
}

impl Audit {
    /// Fold another queue's audit into this one (for a total row).
    pub fn add(&mut self, a: &Audit) {
        self.sent += a.sent;
        self.acked += a.acked;
        self.in_dlq += a.in_dlq;
        self.lost.extend(&a.lost);
        self.deliveries += a.deliveries;
        self.repeats += a.repeats;
        self.overlaps += a.overlaps;
        self.double_acks += a.double_acks;
        self.strangers += a.strangers;
    }

    /// No message lost, none leased twice at once, none acked twice.
    pub fn clean(&self) -> bool {
        self.lost.is_empty() && self.overlaps == 0 && self.double_acks == 0 && self.strangers == 0
    }
}

/// Check every id in `sent` against the journals' `deliveries` and the dead
/// letters of `q`: each must have been acked exactly once or be dead now,
/// and no two leases on one message may have overlapped in time.
pub fn audit(sent: &[u64], q: &Queue, deliveries: &[Delivered]) -> Audit {
    let dead: BTreeSet<u64> = q.dead_letters().into_iter().map(|d| d.id).collect();
    let sent_set: BTreeSet<u64> = sent.iter().copied().collect();
    let mut by_id: BTreeMap<u64, Vec<&Delivered>> = BTreeMap::new();
    for d in deliveries {
        by_id.entry(d.id).or_default().push(d);
    }
    let mut a = Audit {
        sent: sent.len(),
        deliveries: deliveries.len(),
        ..Audit::default()
    };
    for (id, ds) in &mut by_id {
        if !sent_set.contains(id) {
            a.strangers += 1;
        }
        a.repeats += ds.len() - 1;
        let acks = ds
            .iter()
            .filter(|d| matches!(d.end, Some(('A', _))))
            .count();
        if acks > 1 {
            a.double_acks += 1;
        }
        // A lease may begin only after the previous one ended: acked or
        // nacked (journal time taken before the call), or past its deadline.
        ds.sort_by_key(|d| d.at);
        let mut busy_until = 0;
        for d in ds.iter() {
            if d.at < busy_until {
                a.overlaps += 1;
            }
            busy_until = busy_until.max(d.lease_end());
        }
    }
    for id in sent {
        let acked = by_id
            .get(id)
            .is_some_and(|ds| ds.iter().any(|d| matches!(d.end, Some(('A', _)))));
        if acked {
            a.acked += 1;
        } else if dead.contains(id) {
            a.in_dlq += 1;
        } else {
            a.lost.push(*id);
        }
    }
    a
}

// --------------------------------------------------------------- numbers

/// Latency samples.
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Record one.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }
    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// The `p`-th percentile (0..=100); zero if empty.
    pub fn pct(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.0.clone();
        v.sort();
        let k = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[k.min(v.len() - 1)]
    }
}

/// A duration in microseconds, one decimal.
pub fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_nanos() as f64 / 1000.0)
}

/// Lay out rows under a header: first column left-aligned, the rest right.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = " ".repeat(width[i] - c.chars().count());
            if i == 0 {
                s.push_str(&format!("{c}{pad}"));
            } else {
                s.push_str(&format!("  {pad}{c}"));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out
}

/// Print the machine-checkable last line: `SUMMARY key=value ...`.
pub fn summary(pairs: &[(&str, String)]) {
    let words: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("SUMMARY {}", words.join(" "));
}

/// A depth bar, one `#` per `per` messages, at most 50.
pub fn bar(n: u64, per: u64) -> String {
    "#".repeat((n / per.max(1)).min(50) as usize)
}

// ------------------------------------------------------------------ live

/// Live output: on a terminal, a block of lines redrawn in place with event
/// lines scrolling above it; otherwise plain lines, one after another.
pub struct Live {
    tty: bool,
    drawn: usize,
    block: Vec<String>,
}

impl Live {
    /// Decide by whether stdout is a terminal.
    pub fn new() -> Live {
        Live {
            tty: io::stdout().is_terminal(),
            drawn: 0,
            block: Vec::new(),
        }
    }

    /// Whether output is redrawn in place.
    pub fn tty(&self) -> bool {
        self.tty
    }

    fn erase(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.drawn > 0 {
            // Cursor up to the first line of the block, then clear to the end.
            write!(out, "\r\x1b[{}A\x1b[J", self.drawn)?;
            self.drawn = 0;
        }
        Ok(())
    }

    fn draw(&mut self, out: &mut impl Write) -> io::Result<()> {
        for l in &self.block {
            writeln!(out, "{l}")?;
        }
        self.drawn = self.block.len();
        Ok(())
    }

    /// A line that stays: printed above the live block.
    pub fn event(&mut self, line: impl std::fmt::Display) -> Res {
        let mut out = io::stdout().lock();
        if self.tty {
            self.erase(&mut out)?;
            writeln!(out, "{line}")?;
            self.draw(&mut out)?;
        } else {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        Ok(())
    }

    /// Replace the live block (on a terminal: redraw it in place; otherwise
    /// nothing is printed, call [`Live::plain`] for a plain line).
    pub fn update(&mut self, block: Vec<String>) -> Res {
        self.block = block;
        if self.tty {
            let mut out = io::stdout().lock();
            self.erase(&mut out)?;
            self.draw(&mut out)?;
            out.flush()?;
        }
        Ok(())
    }

    /// A status line for non-terminal output (nothing on a terminal, where
    /// the block shows the same).
    pub fn plain(&mut self, line: impl std::fmt::Display) -> Res {
        if !self.tty {
            println!("{line}");
        }
        Ok(())
    }

    /// Leave the block on screen as it is and stop redrawing it.
    pub fn finish(&mut self) {
        self.drawn = 0;
        self.block.clear();
    }
}

//! What the torture tests share: a seeded random generator, child processes
//! (the test binary re-executes itself in a role), journals written with one
//! `write(2)` per record, self-checking payloads, and percentiles.
//!
//! Not a test itself: cargo builds `tests/*.rs`, and this directory is a
//! module each torture test includes with `mod support;`.
//!
//! # Roles
//!
//! Every torture test binary has a test named `child` that does nothing
//! unless the environment variable [`ROLE_ENV`] is set. The parent spawns
//! `<test binary> child --exact --nocapture` with the role (and its
//! parameters) in the environment; the child runs the role inside that test
//! and leaves with `std::process::exit`, so libtest never reports on it. A
//! child dies with its parent (PR_SET_PDEATHSIG), so a parent killed by a
//! timeout leaves no process behind.
//!
//! A child may also run one step removed from the test: behind a wrapper
//! program ([`spawn_via`]: `timeout`, `sh -c`, `env`) or as the forked child
//! of a launcher that exits at once. Its parent is then the wrapper or the
//! launcher, which may die first; the test makes itself a subreaper
//! ([`become_subreaper`]) so that such a child is adopted by the test, not by
//! init, and the child watches its lineage ([`Lineage`]) and arms its death
//! signal once the test is its parent. [`kill_marked`] finds and kills every
//! process of a run by an environment variable they all carry.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that names a child's role.
pub const ROLE_ENV: &str = "SHMQ_TORTURE_ROLE";
const PARENT_ENV: &str = "SHMQ_TORTURE_PARENT";
/// Set in a child started through a wrapper ([`spawn_via`]): its parent is
/// the wrapper, so [`role`] arms no death signal and checks no parent; the
/// child uses a [`Lineage`] instead.
const VIA_ENV: &str = "SHMQ_TORTURE_VIA";

// ------------------------------------------------------------------ random

/// SplitMix64: small, fast, and good enough to pick victims and bytes. Every
/// run prints its seed; the same seed replays the same choices (the kernel's
/// scheduling still differs from run to run).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// The seed of this run: `SHMQ_SEED` if set, else one from the clock. Printed,
/// so a failing run names the seed that replays its choices.
pub fn seed(what: &str) -> u64 {
    let seed = std::env::var("SHMQ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            t ^ u64::from(std::process::id()) << 32
        });
    eprintln!("{what}: SHMQ_SEED={seed}");
    seed
}

/// A numeric environment variable, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A string environment variable a child needs (its parent always sets it).
pub fn env_str(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child started without {name}"))
}

// --------------------------------------------------------------- children

/// The role this process was started in, if it is a child. Arms the death
/// signal first, so the child never outlives its parent.
pub fn role() -> Option<String> {
    let role = std::env::var(ROLE_ENV).ok()?;
    if std::env::var_os(VIA_ENV).is_some() {
        return Some(role);
    }
    // SAFETY: PR_SET_PDEATHSIG takes one argument, a valid signal number;
    // SIGKILL is one. It changes only this process's own attributes.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let parent: Option<i32> = std::env::var(PARENT_ENV).ok().and_then(|v| v.parse().ok());
    // SAFETY: getppid has no arguments and cannot fail.
    let ppid = unsafe { libc::getppid() };
    if parent.is_some_and(|p| p != ppid) {
        // The parent died before the death signal was armed.
        std::process::exit(1);
    }
    Some(role)
}

/// Start this test binary again as a child in `role`, with `envs`, its
/// stdout and stderr appended to `log`.
pub fn spawn(role: &str, envs: &[(&str, String)], log: &Path) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    child_command(&mut cmd, role, envs, log);
    cmd.spawn().expect("spawn a child")
}

/// Start this test binary as a child in `role` behind `wrapper`, a program
/// and its first arguments, to which the binary and its arguments are
/// appended (`["timeout", "1h"]`). The child's parent is the wrapper, unless
/// the wrapper executes the binary in its own place (`env`). The wrapper
/// dies with the test (its death signal is armed before it starts); the
/// child watches its lineage with [`Lineage::new`].
pub fn spawn_via(wrapper: &[&str], role: &str, envs: &[(&str, String)], log: &Path) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..]).arg(exe).env(VIA_ENV, "1");
    child_command(&mut cmd, role, envs, log);
    // SAFETY: the closure runs in the forked child before exec and makes one
    // async-signal-safe system call; PR_SET_PDEATHSIG takes a valid signal
    // number, and the setting survives the exec of the wrapper.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        })
    };
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn a child behind {wrapper:?}: {e}"))
}

/// The arguments, environment and output of a child in `role`.
fn child_command(cmd: &mut Command, role: &str, envs: &[(&str, String)], log: &Path) {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("child log");
    let err = out.try_clone().expect("child log");
    // Each child leads its own process group: a child stopped with SIGSTOP
    // (the zombie trials) must not leave the parent's group with a stopped
    // member, which the kernel answers with SIGHUP to the whole group once
    // that group is orphaned (a run started in the background of a shell
    // that has exited). A group of its own is never orphaned while the
    // parent lives; if the parent dies, the death signal ends the child.
    cmd.process_group(0)
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(PARENT_ENV, std::process::id().to_string())
        .env_remove("SHMQ_FAILPOINT")
        .env_remove("SHMQ_FAILPOINT_SKIP")
        .env_remove("SHMQ_FAILPOINT_ACTION")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in envs {
        cmd.env(k, v);
    }
}

/// Make this process a child subreaper (PR_SET_CHILD_SUBREAPER): a
/// descendant whose parent dies (a forked worker whose launcher exited, a
/// worker whose wrapper was killed) becomes this process's child, so the
/// test can kill it by pid and reap it, and the pid cannot be reused before
/// it has. A process-wide setting, harmless to the other tests of a binary.
pub fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one argument, 0 or 1; it changes
    // only this process's own attributes.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
    assert_eq!(
        rc,
        0,
        "PR_SET_CHILD_SUBREAPER: {}",
        std::io::Error::last_os_error()
    );
}

/// How a child one step removed from the test (behind a wrapper, or forked
/// by a launcher) makes sure it never outlives the test. While its parent
/// is the wrapper or the launcher, that process's death signal covers it:
/// if the test dies, the wrapper dies and the child is adopted by another
/// process. Once the test has adopted it (the wrapper or launcher exited),
/// it arms its own death signal. Adopted by anyone else, it exits. Call
/// [`Lineage::check`] once per unit of work.
pub struct Lineage {
    /// The test's pid.
    supervisor: i32,
    /// The wrapper's or the launcher's pid.
    between: i32,
    armed: bool,
}

impl Lineage {
    /// For a child started by [`spawn_via`]: its parent now is the wrapper,
    /// or the test itself if the wrapper executed the child in its place.
    pub fn new() -> Lineage {
        // SAFETY: getppid has no arguments and cannot fail.
        let between = unsafe { libc::getppid() };
        let mut l = Lineage::with(between);
        l.check();
        l
    }

    /// For the child of a `fork()` this process is about to make: made in
    /// the parent before the fork (it reads the environment), checked in
    /// the child, whose parent is this process until it exits.
    pub fn of_fork_child() -> Lineage {
        Lineage::with(std::process::id() as i32)
    }

    /// For a child started by [`spawn`], whose death signal [`role`] armed.
    pub fn armed() -> Lineage {
        Lineage {
            supervisor: 0,
            between: 0,
            armed: true,
        }
    }

    fn with(between: i32) -> Lineage {
        let supervisor = std::env::var(PARENT_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("child started without {PARENT_ENV}"));
        Lineage {
            supervisor,
            between,
            armed: false,
        }
    }

    /// Exit (`_exit(1)`) if neither the test nor the wrapper or launcher is
    /// this process's parent; arm the death signal once the test is. One
    /// `getppid` until armed, nothing after.
    pub fn check(&mut self) {
        if self.armed {
            return;
        }
        // SAFETY: getppid has no arguments and cannot fail.
        let ppid = unsafe { libc::getppid() };
        if ppid == self.supervisor {
            // SAFETY: as in `role`: a valid signal number, this process's own
            // attribute.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
            // SAFETY: as above.
            if unsafe { libc::getppid() } != self.supervisor {
                // The test died between the two calls.
                // SAFETY: _exit ends the process at once; nothing is borrowed.
                unsafe { libc::_exit(1) };
            }
            self.armed = true;
        } else if ppid != self.between {
            // Adopted by another process than the test: the test is gone.
            // SAFETY: as above.
            unsafe { libc::_exit(1) };
        }
    }
}

/// SIGKILL `pid`, a process this one adopted (see [`become_subreaper`]) or
/// otherwise has as an unreaped child, and reap it. `Ok(())` if the kill
/// ended it; otherwise how it had ended on its own.
pub fn kill9_pid(pid: i32) -> Result<(), String> {
    // SAFETY: kill(2) with our unreaped child's pid, which the kernel cannot
    // have given to another process yet.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let st = waitpid(pid)?;
    if libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL {
        Ok(())
    } else {
        Err(describe_status(st))
    }
}

/// Reap the child `pid` (blocking); its wait status.
fn waitpid(pid: i32) -> Result<i32, String> {
    loop {
        let mut st = 0;
        // SAFETY: waitpid with a valid pointer to an int it writes.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            return Ok(st);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("waitpid({pid}): {e}"));
        }
    }
}

/// A wait status in words.
pub fn describe_status(st: i32) -> String {
    if libc::WIFSIGNALED(st) {
        format!("killed by signal {}", libc::WTERMSIG(st))
    } else if libc::WIFEXITED(st) {
        format!("exit code {}", libc::WEXITSTATUS(st))
    } else {
        format!("wait status {st:#x}")
    }
}

/// State letter and parent pid of `pid`, from `/proc/PID/stat`; `None` if
/// there is no such process.
pub fn proc_state(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `comm` (in parentheses) may hold spaces and parentheses: the fields
    // after it start after the last ')'.
    let mut f = s[s.rfind(')')? + 1..].split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// SIGKILL `pid` if it is still a live child of `parent` (a worker behind a
/// wrapper: not this process's child, so one this process cannot reap and
/// whose pid the kernel may reuse once the wrapper has). Whether the signal
/// was sent.
pub fn kill9_child_of(pid: i32, parent: i32) -> bool {
    signal_pinned(pid, |p| {
        proc_state(p).is_some_and(|(state, ppid)| ppid == parent && state != 'Z')
    })
}

/// SIGKILL `pid` if `is_it(pid)` holds, without a pid-reuse race: the pid
/// is pinned by a pidfd first, so if the process `is_it` looked at (in
/// `/proc`) is another than the one pinned, the pinned one is dead and the
/// signal fails with ESRCH. On a kernel without pidfds (before 5.3) it
/// checks and kills, with the race that leaves.
fn signal_pinned(pid: i32, is_it: impl Fn(i32) -> bool) -> bool {
    // SAFETY: pidfd_open takes a pid and flags 0 (plain integers) and returns
    // a new file descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        let nosys = std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS);
        // SAFETY: kill(2) with a pid just checked; see above for the race.
        return nosys && is_it(pid) && unsafe { libc::kill(pid, libc::SIGKILL) } == 0;
    }
    // SAFETY: pidfd_send_signal with the fd just opened, a valid signal, no
    // siginfo (null is allowed) and flags 0.
    let sent = is_it(pid)
        && unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        } == 0;
    // SAFETY: closing the fd we opened, once.
    unsafe { libc::close(fd) };
    sent
}

/// SIGKILL every process whose environment holds `key=value` (every process
/// a run starts carries it: wrappers, launchers, workers, whoever their
/// parent is by now), then reap those that end as this process's children.
/// How many it killed. For the end of a run (which expects 0: everything
/// was killed in order before) and for a guard that runs on panic; it never
/// touches another run's processes.
pub fn kill_marked(key: &str, value: &str) -> usize {
    let entry = format!("{key}={value}").into_bytes();
    let me = std::process::id() as i32;
    let marked = |pid: i32| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|e| e.split(|&b| b == 0).any(|v| v == entry.as_slice()))
    };
    let pids = || -> Vec<i32> {
        std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .filter(|&pid| pid != me)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut killed: Vec<i32> = Vec::new();
    // Until no marked process is left: a killed one shows its environment
    // until it has exited; a wrapper's child may be found after the wrapper.
    wait_until(Duration::from_secs(10), Duration::from_millis(1), || {
        let mut any = false;
        for pid in pids().into_iter().filter(|&p| marked(p)) {
            any = true;
            if !killed.contains(&pid) && signal_pinned(pid, marked) {
                killed.push(pid);
            }
        }
        !any
    });
    // Reap what ends as our zombie (a worker whose wrapper died first is
    // adopted by us); a zombie whose parent is none of ours (init) is that
    // parent's to reap.
    for &pid in &killed {
        wait_until(
            Duration::from_secs(10),
            Duration::from_millis(1),
            || match proc_state(pid) {
                None => true,
                Some(('Z', ppid)) if ppid == me => {
                    let _ = waitpid(pid);
                    true
                }
                Some(('Z', ppid)) => !killed.contains(&ppid),
                Some(_) => false,
            },
        );
    }
    killed.len()
}

/// SIGKILL `child` and reap it. Returns how it ended: `Ok(())` if the kill
/// did it, `Err(status)` if it had already exited on its own.
pub fn kill9(child: &mut Child) -> Result<(), std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(st) = child.try_wait().expect("try_wait") {
        return Err(st);
    }
    // SAFETY: kill(2) with a pid we spawned and have not reaped (try_wait
    // just said it runs), so the pid cannot have been reused.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let st = child.wait().expect("wait");
    if st.signal() == Some(libc::SIGKILL) {
        Ok(())
    } else {
        Err(st)
    }
}

/// The last `n` bytes of a child's log, for failure messages.
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let from = text.len().saturating_sub(n);
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// Poll `cond` until it holds or `timeout` passes; whether it held. The
/// pause between polls is `poll` (a condition wait with a deadline, not a
/// sleep that hopes something has happened).
pub fn wait_until(timeout: Duration, poll: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(poll);
    }
}

// ---------------------------------------------------------------- journals

/// An append-only journal: one `write(2)` of one whole line per record, no
/// user-space buffer, so a SIGKILL can never leave half a record (and the
/// reader still skips a torn last line, should a kernel ever produce one).
pub struct Journal(File);

impl Journal {
    pub fn create(path: &Path) -> Journal {
        Journal(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("journal {}: {e}", path.display())),
        )
    }

    pub fn log(&mut self, line: std::fmt::Arguments<'_>) {
        let mut s = line.to_string();
        s.push('\n');
        let n = self.0.write(s.as_bytes()).expect("journal write");
        assert_eq!(n, s.len(), "a short journal write");
    }
}

/// The records of a journal, each split on spaces; a last line without its
/// newline (torn) is dropped.
pub fn read_journal(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect()
}

/// Every file in `dir` whose name starts with `prefix`, sorted.
pub fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- payloads

/// FNV-1a, 32 bits: the payloads' own checksum, independent of the queue's
/// CRC-32, so a payload the queue should have caught but delivered is seen.
pub fn fnv32(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| {
        (h ^ u32::from(x)).wrapping_mul(0x0100_0193)
    })
}

/// The message a producer sends: `KEY|filler|checksum`, where `KEY` is
/// `producer.incarnation.sequence`, the filler (0 to 47 bytes) is derived
/// from the key, and the checksum is [`fnv32`] of everything before it, in
/// hex. At most 96 bytes for keys below 10^9 each.
pub fn make_payload(key: &str) -> Vec<u8> {
    let h = fnv32(key.as_bytes());
    let n = (h % 48) as usize;
    let mut v = Vec::with_capacity(key.len() + n + 10);
    v.extend_from_slice(key.as_bytes());
    v.push(b'|');
    v.extend((0..n).map(|i| b'a' + ((h >> (i % 24)) as u8 ^ i as u8) % 26));
    v.push(b'|');
    let c = fnv32(&v);
    v.extend_from_slice(format!("{c:08x}").as_bytes());
    v
}

/// The key of a well-formed payload; `None` if any byte is wrong.
pub fn check_payload(p: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(p).ok()?;
    let key = s.split('|').next()?;
    (make_payload(key) == p).then(|| key.to_owned())
}

// ------------------------------------------------------------------ numbers

/// The `p`-th percentile (0..=100) of `v` (sorted here), nearest rank.
pub fn percentile(v: &mut [u64], p: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// `p50 / p99 / max` of `v` in milliseconds, or `n/a`.
pub fn summary(v: &mut [u64]) -> String {
    match (percentile(v, 50.0), percentile(v, 99.0), v.iter().max()) {
        (Some(a), Some(b), Some(m)) => {
            format!("p50 {a} ms, p99 {b} ms, max {m} ms (n = {})", v.len())
        }
        _ => "n/a (no samples)".to_owned(),
    }
}

/// A watchdog for the current process: [`Watchdog::start`] an operation,
/// [`Watchdog::done`] when it returns; a thread checks every 10 ms and, if
/// one operation has run longer than `limit`, writes `HANG <op> <ms>` to
/// `journal` and leaves the process with exit code [`HANG_EXIT`].
pub struct Watchdog {
    since: std::sync::Arc<std::sync::atomic::AtomicU64>,
    op: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Exit code of a process whose watchdog caught a hang.
pub const HANG_EXIT: i32 = 86;

impl Watchdog {
    pub fn new(limit: Duration, journal: PathBuf, names: &'static [&'static str]) -> Watchdog {
        use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
        use std::sync::Arc;
        let since = Arc::new(AtomicU64::new(0));
        let op = Arc::new(AtomicU64::new(0));
        let (s, o) = (since.clone(), op.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(10));
            let t = s.load(Relaxed);
            if t != 0
                && shmq::now_ms().saturating_sub(t)
                    > u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)
            {
                let name = names.get(o.load(Relaxed) as usize).unwrap_or(&"?");
                Journal::create(&journal).log(format_args!(
                    "HANG {name} {}",
                    shmq::now_ms().saturating_sub(t)
                ));
                // SAFETY: _exit ends the process at once; nothing is borrowed.
                unsafe { libc::_exit(HANG_EXIT) };
            }
        });
        Watchdog { since, op }
    }
    pub fn start(&self, op: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.op.store(op as u64, Relaxed);
        self.since.store(shmq::now_ms(), Relaxed);
    }
    pub fn done(&self) {
        self.since.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

// ------------------------------------------------------------ disk dirs

/// Whether `p` is on a file system that keeps files in memory only (tmpfs,
/// ramfs), where a durable queue is refused.
pub fn on_memory_fs(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a writable statfs.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && matches!(st.f_type as u64 as u32, 0x0102_1994 | 0x8584_58f6)
}

/// A directory on a disk file system, for durable queues: the build
/// directory's, else /var/tmp, else the system's temporary directory.
/// Panics, saying why, if every one is in memory.
pub fn disk_parent() -> PathBuf {
    let candidates = [
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        PathBuf::from("/var/tmp"),
        std::env::temp_dir(),
    ];
    candidates
        .iter()
        .find(|c| c.is_dir() && !on_memory_fs(c))
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no disk file system among {candidates:?}: durable queues refuse tmpfs and ramfs"
            )
        })
}

/// A new temporary directory under [`disk_parent`].
pub fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(disk_parent()).expect("a temporary directory on disk")
}

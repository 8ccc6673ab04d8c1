//! What the tool's tests share: running the built binary, queues in
//! temporary directories, and bounded waits.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_shmq");

/// Run `shmq args...` with `stdin` as its standard input.
pub fn shmq_with(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the shmq binary");
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait for shmq")
}

pub fn shmq(args: &[&str]) -> Output {
    shmq_with(args, b"")
}

/// Run a shell script (`sh -c`) with `$SHMQ` set to the binary and `$Q` to
/// the queue's path.
pub fn sh(shell: &str, script: &str, q: &str) -> Output {
    Command::new(shell)
        .args(["-c", script])
        .env("SHMQ", BIN)
        .env("Q", q)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the shell")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success and return stdout.
pub fn ok(args: &[&str]) -> String {
    let o = shmq(args);
    assert_eq!(code(&o), 0, "shmq {args:?} failed: {}", stderr(&o));
    stdout(&o)
}

/// Parse each line of `text` as one JSON object.
pub fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            assert!(!l.starts_with(' '), "compact JSON: {l:?}");
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .collect()
}

/// Run with `--json` among `args`: the one JSON line stdout holds.
pub fn json(args: &[&str]) -> Value {
    let out = ok(args);
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    assert!(out.ends_with('\n'), "newline-terminated: {out:?}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("shmq {args:?}: {e}: {out}"))
}

/// Assert the exit code and the error line format `shmq: <what>; <do>`;
/// nothing on stdout.
pub fn fails(args: &[&str], want: i32) -> String {
    let o = shmq(args);
    let err = stderr(&o);
    assert_eq!(code(&o), want, "shmq {args:?}: {err}");
    assert!(
        err.starts_with("shmq: ") && err.contains("; "),
        "error line not in the documented form: {err:?}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err
}

/// Wait for `cond`, polling, for at most `limit`.
pub fn poll_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub struct Q {
    pub dir: TempDir,
    pub path: PathBuf,
}

impl Q {
    pub fn p(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }
    /// `shmq stat --json` of this queue.
    pub fn stat(&self) -> Value {
        json(&["stat", self.p(), "--json"])
    }
}

/// A new queue made by `shmq create` with `extra` options.
pub fn create(slots: u32, extra: &[&str]) -> Q {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("test.q");
    let slots = slots.to_string();
    let mut args = vec![
        "create",
        path.to_str().unwrap(),
        "--slots",
        &slots,
        "--slot-size",
        "64",
    ];
    args.extend_from_slice(extra);
    let o = shmq(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        o.stdout.is_empty(),
        "create prints its result only with --json"
    );
    Q { dir, path }
}

/// The receipt `shmq recv` (raw, without --ack) printed on stderr.
pub fn receipt_of(o: &Output) -> String {
    let r = stderr(o).trim().to_owned();
    let parts: Vec<&str> = r.split('-').collect();
    assert!(
        parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && u64::from_str_radix(p, 16).is_ok()),
        "stderr is not a receipt QUEUE-SLOT-GEN-ID: {r:?}"
    );
    r
}

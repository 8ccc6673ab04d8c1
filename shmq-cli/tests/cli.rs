//! The `shmq` tool, run as a user would: the built binary on files in a
//! temporary directory, checked by its stdout, stderr, JSON and exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_shmq");

/// Run `shmq args...` with `stdin` as its standard input.
fn shmq_with(args: &[&str], stdin: &[u8]) -> Output {
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

fn shmq(args: &[&str]) -> Output {
    shmq_with(args, b"")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success and return stdout.
fn ok(args: &[&str]) -> String {
    let o = shmq(args);
    assert_eq!(code(&o), 0, "shmq {args:?} failed: {}", stderr(&o));
    stdout(&o)
}

/// Run with `--json` expected among `args`; parse stdout.
fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("shmq {args:?}: {e}: {out}"))
}

/// Assert the exit code and the error line format `shmq: <what>; <do>`.
fn fails(args: &[&str], want: i32) -> String {
    let o = shmq(args);
    let err = stderr(&o);
    assert_eq!(code(&o), want, "shmq {args:?}: {err}");
    assert!(
        err.starts_with("shmq: ") && err.contains("; "),
        "error line not in the documented form: {err:?}"
    );
    err
}

/// Wait for `cond`, polling, for at most `limit`.
fn poll_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Q {
    _dir: TempDir,
    path: PathBuf,
}

impl Q {
    fn p(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }
}

/// A new queue made by `shmq create` with `extra` options.
fn create(slots: u32, extra: &[&str]) -> Q {
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
    ok(&args);
    Q { _dir: dir, path }
}

fn receipt_of(o: &Output) -> String {
    let r = stderr(o).trim().to_owned();
    assert!(
        r.split_once(':')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u64>().is_ok()),
        "stderr is not a receipt SLOT:GEN: {r:?}"
    );
    r
}

#[test]
fn create_send_recv_ack_round_trip() {
    let q = create(8, &[]);
    let st = json(&["stat", q.p(), "--json"]);
    assert_eq!(st["capacity"], 8);
    assert_eq!(st["slot_size"], 64);
    assert_eq!(st["free"], 8);
    assert_eq!(st["mode"], "0600");

    let id = ok(&["send", q.p(), "hello"]);
    assert_eq!(id.trim(), "0");
    let got = shmq(&["recv", q.p()]);
    assert_eq!(code(&got), 0, "{}", stderr(&got));
    assert_eq!(got.stdout, b"hello", "payload raw on stdout");
    let receipt = receipt_of(&got);

    let st = json(&["stat", q.p(), "--json"]);
    assert_eq!(st["in_flight"], 1);
    ok(&["ack", q.p(), &receipt]);
    let st = json(&["stat", q.p(), "--json"]);
    assert_eq!(
        (st["acked"].as_u64(), st["in_flight"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(st["sent"], 1);
}

#[test]
fn send_reads_stdin_whole_or_one_message_per_line() {
    let q = create(8, &[]);
    let ids = stdout(&shmq_with(
        &["send", q.p(), "--lines"],
        b"one\ntwo\n\nfour\n",
    ));
    assert_eq!(
        ids, "0\n1\n2\n3\n",
        "one id per line, empty lines are messages"
    );
    let whole = shmq_with(&["send", q.p()], b"a\nb");
    assert_eq!(stdout(&whole), "4\n");

    let peeked = json(&["peek", q.p(), "--json", "--limit", "10"]);
    let payloads: Vec<&str> = peeked
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads, ["one", "two", "", "four", "a\nb"]);
    // Peeking leased nothing.
    assert_eq!(json(&["stat", q.p(), "--json"])["visible"], 5);
    let first = shmq(&["recv", q.p(), "--ack"]);
    assert_eq!(first.stdout, b"one");
    assert!(first.stderr.is_empty(), "no receipt with --ack");
}

#[test]
fn missing_file_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.q");
    let err = fails(&["stat", missing.to_str().unwrap()], 3);
    assert!(err.contains("shmq create"), "says what to do: {err}");
    fails(&["recv", missing.to_str().unwrap()], 3);
}

#[test]
fn garbage_and_truncated_files_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"this is not a queue file\n".repeat(400)).unwrap();
    fails(&["stat", garbage.to_str().unwrap()], 4);
    fails(&["recover", garbage.to_str().unwrap()], 4);

    let q = create(4, &[]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&q.path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 64).unwrap();
    let err = fails(&["stat", q.p()], 4);
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn empty_recv_exits_5_but_empty_peek_is_fine() {
    let q = create(4, &[]);
    fails(&["recv", q.p(), "--wait", "0s"], 5);
    fails(&["recv", q.p(), "--wait", "50ms"], 5);
    assert_eq!(json(&["peek", q.p(), "--json"]), Value::Array(vec![]));
    assert_eq!(ok(&["peek", q.p()]), "");
}

#[test]
fn send_to_a_full_queue_exits_6() {
    let q = create(2, &[]);
    ok(&["send", q.p(), "a"]);
    ok(&["send", q.p(), "b"]);
    let err = fails(&["send", q.p(), "c"], 6);
    assert!(err.contains("full"), "{err}");
    // With --lines the ids sent before the failure are on stdout.
    let q = create(2, &[]);
    let o = shmq_with(&["send", q.p(), "--lines"], b"x\ny\nz\n");
    assert_eq!(code(&o), 6);
    assert_eq!(stdout(&o), "0\n1\n");
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));
}

#[test]
fn a_stale_receipt_exits_7() {
    let q = create(4, &[]);
    ok(&["send", q.p(), "m"]);
    let got = shmq(&["recv", q.p()]);
    let receipt = receipt_of(&got);
    ok(&["ack", q.p(), &receipt]);
    let err = fails(&["ack", q.p(), &receipt], 7);
    assert!(err.contains("lease lost"), "{err}");
    fails(&["nack", q.p(), &receipt], 7);
    fails(&["extend", q.p(), &receipt, "--timeout", "1m"], 7);
    fails(&["ack", q.p(), "99:1"], 3);
}

#[test]
fn receipts_work_across_processes_for_extend_and_nack() {
    let q = create(4, &[]);
    ok(&["send", q.p(), "work"]);
    let receipt = receipt_of(&shmq(&["recv", q.p(), "--visibility", "1h"]));
    assert!(ok(&["extend", q.p(), &receipt, "--timeout", "2h"]).contains("expires in"));
    assert_eq!(ok(&["nack", q.p(), &receipt]).trim(), "requeued");
    let again = json(&["recv", q.p(), "--json", "--ack"]);
    assert_eq!(again["payload"], "work");
    assert_eq!(again["receives"], 2);
    assert_eq!(again["acked"], true);
}

#[test]
fn usage_errors_exit_2_and_help_documents_the_exit_codes() {
    let q = create(4, &[]);
    assert_eq!(code(&shmq(&["frobnicate"])), 2);
    assert_eq!(
        code(&shmq(&["recv", q.p(), "--wait", "5"])),
        2,
        "a duration needs a unit"
    );
    assert_eq!(code(&shmq(&["ack", q.p(), "not-a-receipt"])), 2);
    assert_eq!(code(&shmq(&["dlq", "redrive", q.p()])), 2, "--id or --all");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.q");
    let bad = bad.to_str().unwrap();
    fails(&["create", bad, "--slots", "0", "--slot-size", "64"], 2);

    let help = ok(&["--help"]);
    for line in [
        "Exit status",
        "3  not found",
        "4  the file is corrupt",
        "5  empty",
        "6  full",
        "7  lease lost",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}:\n{help}");
    }
    let help = ok(&["recover", "--help"]);
    assert!(
        help.contains("safe while other processes use the queue"),
        "{help}"
    );
    assert!(help.contains("7  lease lost"), "{help}");
}

#[test]
fn dead_letters_can_be_listed_peeked_redriven_and_purged() {
    let q = create(8, &["--max-receives", "1"]);
    ok(&["send", q.p(), "poison"]);
    let first = shmq(&["recv", q.p(), "--visibility", "100ms"]);
    assert_eq!(first.stdout, b"poison");
    // Its lease expires at max receives; the next receiver's sweep
    // dead-letters it instead of delivering it again.
    let mut dead = Value::Null;
    poll_until(Duration::from_secs(10), "the message to die", || {
        let o = shmq(&["recv", q.p(), "--wait", "0s"]);
        assert_eq!(code(&o), 5, "delivered past max receives: {:?}", o.stdout);
        dead = json(&["dlq", "list", q.p(), "--json"]);
        dead.as_array().unwrap().len() == 1
    });
    let id = dead[0]["id"].as_u64().unwrap().to_string();
    assert_eq!(dead[0]["reason"], "max-receives");
    assert_eq!(dead[0]["payload"], "poison");
    assert!(ok(&["dlq", "list", q.p()]).contains("poison"));
    let raw = shmq(&["dlq", "peek", q.p(), "--id", &id]);
    assert_eq!(raw.stdout, b"poison");
    fails(&["dlq", "peek", q.p(), "--id", "12345"], 3);
    fails(&["dlq", "redrive", q.p(), "--id", "12345"], 3);

    assert_eq!(
        json(&["dlq", "redrive", q.p(), "--id", &id, "--json"])["redriven"],
        1
    );
    assert_eq!(
        json(&["dlq", "list", q.p(), "--json"]),
        Value::Array(vec![])
    );
    let again = shmq(&["recv", q.p(), "--ack"]);
    assert_eq!(
        (code(&again), again.stdout.as_slice()),
        (0, b"poison".as_slice())
    );
    let st = json(&["stat", q.p(), "--json"]);
    assert_eq!(
        (st["dead"].as_u64(), st["dead_lettered"].as_u64()),
        (Some(0), Some(1))
    );

    // Purge: dead-letter one more through a nack at max receives.
    ok(&["send", q.p(), "junk"]);
    let receipt = receipt_of(&shmq(&["recv", q.p()]));
    assert!(ok(&["nack", q.p(), &receipt]).contains("dead-lettered"));
    assert_eq!(
        ok(&["dlq", "purge", q.p(), "--all"]).trim(),
        "purged 1 message"
    );
    assert_eq!(json(&["stat", q.p(), "--json"])["dead"], 0);
}

/// Run `shmq recv` (no ack) from a shell that then exits: a consumer that
/// died holding a lease (`shmq recv` records its parent as the holder).
/// Returns the shell's pid.
fn crashed_consumer(path: &Path) -> u32 {
    let child = Command::new("sh")
        .args([
            "-c",
            "\"$0\" recv \"$1\"; exit $?",
            BIN,
            path.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    pid
}

#[test]
fn recover_returns_a_dead_consumers_lease_once() {
    let q = create(16, &["--visibility-timeout", "1h"]);
    ok(&["send", q.p(), "important"]);
    ok(&["send", q.p(), "waiting"]);
    let pid = crashed_consumer(&q.path);

    let scan = json(&["recover", q.p(), "--json"]);
    assert_eq!(scan["counts"]["leased-dead"], 1, "{scan}");
    assert_eq!(scan["counts"]["visible"], 1);
    assert_eq!(scan["counts"]["free"], 14);
    assert_eq!(scan["to_repair"], 1);
    assert_eq!(scan["repaired"], 0);
    assert_eq!(scan["findings"][0]["owner_pid"], pid);
    assert_eq!(scan["findings"][0]["class"], "leased-dead");
    let text = ok(&["recover", q.p()]);
    assert!(
        text.contains("--apply"),
        "a dry run says how to repair: {text}"
    );
    // The dry run changed nothing: the lease is still held for an hour.
    assert_eq!(json(&["stat", q.p(), "--json"])["in_flight"], 1);

    let applied = json(&["recover", q.p(), "--apply", "--json"]);
    assert_eq!(applied["repaired"], 1, "{applied}");
    assert_eq!(json(&["stat", q.p(), "--json"])["visible"], 2);
    let again = json(&["recover", q.p(), "--apply", "--json"]);
    assert_eq!(
        again["repaired"], 0,
        "the second run changes nothing: {again}"
    );
    assert_eq!(again["to_repair"], 0);
    assert_eq!(again["findings"], Value::Array(vec![]));

    // Both messages are deliverable again, the returned one a second time.
    let mut got: Vec<(String, u64)> = (0..2)
        .map(|_| {
            let m = json(&["recv", q.p(), "--json", "--ack"]);
            (
                m["payload"].as_str().unwrap().to_owned(),
                m["receives"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("important".to_owned(), 2), ("waiting".to_owned(), 1)]
    );
}

#[test]
fn inspect_and_watch_show_each_slot_and_each_refresh() {
    let q = create(4, &[]);
    ok(&["send", q.p(), "a"]);
    ok(&["send", q.p(), "b", "--delay", "1h"]);
    let slots = json(&["inspect", q.p(), "--json"]);
    let classes: Vec<&str> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["visible", "delayed"], "free slots are left out");
    assert_eq!(
        json(&["inspect", q.p(), "--json", "--all"])
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let delayed = json(&["inspect", q.p(), "--json", "--state", "delayed"]);
    assert_eq!(delayed[0]["id"], 1);
    assert!(delayed[0]["time_from_now_ms"].as_i64().unwrap() > 3_000_000);
    let table = ok(&["inspect", q.p(), "--state", "ready"]);
    assert_eq!(
        table.lines().count(),
        3,
        "header and two ready slots:\n{table}"
    );
    assert_eq!(code(&shmq(&["inspect", q.p(), "--state", "bogus"])), 2);

    let watch = ok(&[
        "stat",
        q.p(),
        "--watch",
        "--json",
        "--count",
        "2",
        "--interval",
        "10ms",
    ]);
    let lines: Vec<Value> = watch
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["delayed"], 1);
}

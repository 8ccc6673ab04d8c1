//! Every documented pipeline, run: `recv` streams into `while read`, `jq`,
//! `xargs`, and "process then ack"; and no message is acked that did not
//! leave the process (closed or broken stdout).

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn send_lines(q: &Q, text: &str) {
    let o = shmq_with(&["send", q.p(), "--lines"], text.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn count_takes_up_to_n_and_lines_end_each_payload() {
    let q = create(16, &[]);
    send_lines(&q, "a\nb\nc\nd\n");
    let o = shmq(&["recv", q.p(), "--lines", "--count", "3", "--ack"]);
    assert_eq!((code(&o), stdout(&o)), (0, "a\nb\nc\n".to_owned()));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    // Fewer than N visible: what there is, exit 0.
    let o = shmq(&["recv", q.p(), "--json", "--count", "5", "--ack"]);
    assert_eq!(code(&o), 0);
    assert_eq!(lines(&stdout(&o)).len(), 1);
    let st = q.stat();
    assert_eq!(
        (st["acked"].as_u64(), st["free"].as_u64()),
        (Some(4), Some(16))
    );
}

#[test]
fn while_read_sees_every_line_and_ack_happens_after_the_write() {
    let q = create(16, &[]);
    send_lines(&q, "one\ntwo\nthree\n");
    // The issue's loop: the body runs for each message (newline-terminated).
    let o = sh(
        "sh",
        r#""$SHMQ" recv "$Q" --lines --ack --count 3 | while read -r line; do echo "got [$line]"; done"#,
        q.p(),
    );
    assert_eq!(
        stdout(&o),
        "got [one]\ngot [two]\ngot [three]\n",
        "{}",
        stderr(&o)
    );
    assert_eq!(q.stat()["acked"], 3);
}

#[test]
fn xargs_and_jq_consume_the_streams() {
    let q = create(16, &[]);
    send_lines(&q, "x1\nx2\nx3\n");
    let o = sh(
        "sh",
        r#""$SHMQ" recv "$Q" --lines --ack --follow --wait 200ms | xargs -n 1 echo item"#,
        q.p(),
    );
    assert_eq!(stdout(&o), "item x1\nitem x2\nitem x3\n", "{}", stderr(&o));
    if Command::new("jq").arg("--version").output().is_err() {
        eprintln!("jq is not installed: its half of this test is skipped");
        return;
    }
    send_lines(&q, "{\"n\": 1}\n{\"n\": 2}\n");
    let o = sh(
        "sh",
        r#""$SHMQ" recv "$Q" --json --ack --count 2 | jq -r '.payload | fromjson | .n'"#,
        q.p(),
    );
    assert_eq!(stdout(&o), "1\n2\n", "{}", stderr(&o));
}

/// The documented "process then ack" loop: a message whose work fails is
/// not acked and stays leased (to be delivered again after its lease).
fn process_then_ack(shell: &str, script: &str) {
    let q = create(16, &["--visibility-timeout", "1h"]);
    send_lines(&q, "good1\nfail\ngood2\n");
    let o = sh(shell, script, q.p());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "done good1\ndone good2\n", "{}", stderr(&o));
    let st = q.stat();
    assert_eq!(
        (st["acked"].as_u64(), st["in_flight"].as_u64()),
        (Some(2), Some(1)),
        "the failed one is still leased: {st}"
    );
    let held = lines(&ok(&["inspect", q.p(), "--json", "--state", "leased"]));
    assert_eq!(held.len(), 1);
    let peeked = ok(&["peek", q.p()]);
    assert_eq!(peeked, "", "and not visible until its lease ends");
}

#[test]
fn process_then_ack_with_jq() {
    if Command::new("jq").arg("--version").output().is_err() {
        eprintln!("jq is not installed: skipped (the shell-only form is tested)");
        return;
    }
    process_then_ack(
        "bash",
        r#"
        work() { [ "$1" != fail ] && echo "done $1"; }
        "$SHMQ" recv "$Q" --json --follow --wait 200ms | while read -r m; do
          work "$(jq -r .payload <<<"$m")" && "$SHMQ" ack "$Q" "$(jq -r .receipt <<<"$m")"
        done
        exit 0
        "#,
    );
}

#[test]
fn process_then_ack_in_plain_sh() {
    // No jq: the receipt (and here the payload) cut out with parameter
    // expansion, as `shmq recv --help` shows.
    process_then_ack(
        "sh",
        r#"
        work() { [ "$1" != fail ] && echo "done $1"; }
        "$SHMQ" recv "$Q" --json --follow --wait 200ms | while read -r m; do
          r=${m#*\"receipt\":\"}; r=${r%%\"*}
          p=${m#*\"payload\":\"}; p=${p%%\"*}
          work "$p" && "$SHMQ" ack "$Q" "$r"
        done
        exit 0
        "#,
    );
}

#[test]
fn a_closed_stdout_acks_nothing_and_gives_the_message_back() {
    let q = create(8, &[]);
    ok(&["send", q.p(), "precious"]);
    let o = sh("sh", r#""$SHMQ" recv "$Q" --ack >&-"#, q.p());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("shmq: cannot write to stdout") && err.contains("given back, not acked"),
        "{err}"
    );
    let st = q.stat();
    assert_eq!(
        (st["acked"].as_u64(), st["visible"].as_u64()),
        (Some(0), Some(1)),
        "{st}"
    );
    let o = sh(
        "sh",
        r#""$SHMQ" recv "$Q" --json --follow --ack >&-"#,
        q.p(),
    );
    assert_eq!(code(&o), 1);
    assert_eq!(q.stat()["visible"], 1);
}

#[test]
fn a_broken_pipe_acks_nothing_and_gives_the_message_back() {
    let q = create(8, &[]);
    send_lines(&q, "m1\nm2\n");
    // A pipe whose reader is already gone: the first write fails (EPIPE).
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe(2) returned two fresh descriptors that we now own.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let o = Command::new(BIN)
        .args(["recv", q.p(), "--lines", "--count", "2", "--ack"])
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("given back, not acked"),
        "{}",
        stderr(&o)
    );
    let st = q.stat();
    assert_eq!(
        (st["acked"].as_u64(), st["visible"].as_u64()),
        (Some(0), Some(2)),
        "{st}"
    );
}

#[test]
fn a_payload_with_a_newline_is_not_framed_by_lines() {
    let q = create(8, &[]);
    ok(&["send", q.p(), "two\nlines"]);
    let o = shmq(&["recv", q.p(), "--lines", "--ack"]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("--json"), "{}", stderr(&o));
    assert_eq!(q.stat()["visible"], 1, "given back");
    let m = json(&["recv", q.p(), "--json", "--ack"]);
    assert_eq!(m["payload"], "two\nlines");
}

#[test]
fn follow_stops_on_sigterm_after_acking_what_it_wrote() {
    let q = create(16, &[]);
    let mut child = Command::new(BIN)
        .args(["recv", q.p(), "--json", "--follow", "--ack"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // A watchdog: a hang fails the test instead of blocking it.
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(30));
        // SAFETY: kill(2) with a pid and a signal number; at worst ESRCH.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    for payload in ["first", "second"] {
        ok(&["send", q.p(), payload]);
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        got.push(lines(&line).remove(0)["payload"].clone());
    }
    assert_eq!(got, ["first", "second"]);
    // Each line came out before its ack: wait for the second ack.
    poll_until(Duration::from_secs(10), "two acks", || {
        q.stat()["acked"] == 2
    });
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM ends --follow cleanly");
    drop(watchdog);
    let st = q.stat();
    assert_eq!(
        (st["in_flight"].as_u64(), st["visible"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn follow_with_wait_stops_when_idle_and_without_ack_prints_receipts() {
    let q = create(16, &[]);
    send_lines(&q, "a\nb\n");
    let o = shmq(&["recv", q.p(), "--json", "--follow", "--wait", "100ms"]);
    assert_eq!(code(&o), 0);
    let got = lines(&stdout(&o));
    assert_eq!(got.len(), 2);
    assert!(
        o.stderr.is_empty(),
        "with --json the receipt is on stdout only"
    );
    for m in &got {
        assert_eq!(m["acked"], false);
        ok(&["ack", q.p(), m["receipt"].as_str().unwrap()]);
    }
    assert_eq!(q.stat()["acked"], 2);
    // --lines without --ack: receipts on stderr, one per message.
    send_lines(&q, "c\nd\n");
    let o = shmq(&["recv", q.p(), "--lines", "--count", "2"]);
    assert_eq!(stdout(&o), "c\nd\n");
    let receipts: Vec<String> = stderr(&o).lines().map(str::to_owned).collect();
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    for r in &receipts {
        ok(&["ack", q.p(), r]);
    }
    // Nothing at all within --wait: exit 5.
    fails(&["recv", q.p(), "--json", "--follow", "--wait", "50ms"], 5);
}

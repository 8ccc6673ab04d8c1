//! The tool's memory does not grow with the queue (issue 9, item 10).
//!
//! Each verb runs under a data-size limit (`ulimit -d`, RLIMIT_DATA: the
//! heap and private mappings, not the queue file's shared mapping) several
//! times smaller than what the queue holds. A verb that copied every slot
//! before applying `--limit`, or held every finding before printing, runs
//! out of memory and aborts; a verb that stops at the limit or streams
//! succeeds. A control run of a verb that must copy everything shows the
//! limit bites in this environment.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use shmq::{Config, Queue};

/// The data-size limit for the verbs, in KiB (the tool needs well under
/// 1 MiB of its own).
const DATA_KIB: u32 = 4 * 1024;

/// `shmq args...` under the data-size limit.
fn limited(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -d {DATA_KIB} || exit 99; exec \"$0\" \"$@\""
        ))
        .arg(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run sh")
}

/// Assert that `args` succeeded under the limit; its stdout.
fn ok_limited(args: &[&str]) -> String {
    let o = limited(args);
    assert!(
        o.status.success(),
        "shmq {args:?} under ulimit -d {DATA_KIB}: {:?}: {}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

/// Whether the limit stops a verb that copies every dead payload (16 MiB):
/// false where the kernel does not enforce RLIMIT_DATA.
fn limit_bites(q: &str) -> bool {
    let o = limited(&["dlq", "list", q, "--json", "--limit", "100000"]);
    assert_ne!(
        o.status.code(),
        Some(99),
        "ulimit -d failed: {}",
        stderr(&o)
    );
    if o.status.success() {
        eprintln!("ulimit -d {DATA_KIB} is not enforced here: skipped");
    }
    !o.status.success()
}

const SLOT: u32 = 16 * 1024;
const EACH: u32 = 1024;

/// A queue of `EACH` dead and then `EACH` visible messages of a full slot
/// each (16 MiB of payloads apiece); dead ids are 0..EACH.
fn full_queue() -> Q {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.q");
    let q = Queue::create(&path, &Config::default().slots(2 * EACH).slot_size(SLOT)).unwrap();
    let payload = |n: u32| vec![b'a' + (n % 26) as u8; SLOT as usize];
    for n in 0..EACH {
        q.send(&payload(n)).unwrap();
    }
    while let Some(l) = q.try_receive() {
        l.dead_letter().unwrap();
    }
    for n in 0..EACH {
        q.send(&payload(n)).unwrap();
    }
    Q { dir, path }
}

#[test]
fn peek_and_dead_letters_hold_only_what_they_show() {
    let q = full_queue();
    if !limit_bites(q.p()) {
        return;
    }
    let shown = lines(&ok_limited(&["peek", q.p(), "--json", "--limit", "1"]));
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["id"], EACH, "the oldest visible message");
    assert_eq!(shown[0]["len"], SLOT);

    let dead = lines(&ok_limited(&[
        "dlq",
        "list",
        q.p(),
        "--json",
        "--limit",
        "1",
    ]));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], 0, "the oldest dead message");
    let text = ok_limited(&["dlq", "list", q.p(), "--limit", "2"]);
    assert_eq!(text.lines().count(), 3, "a header and two rows: {text}");

    let peeked = lines(&ok_limited(&[
        "dlq",
        "peek",
        q.p(),
        "--json",
        "--limit",
        "1",
    ]));
    assert_eq!((peeked.len(), &peeked[0]["id"]), (1, &0.into()));

    // By id: the last one, whole and raw.
    let last = (EACH - 1).to_string();
    let raw = limited(&["dlq", "peek", q.p(), "--id", &last]);
    assert!(raw.status.success(), "{:?}: {}", raw.status, stderr(&raw));
    assert_eq!(raw.stdout.len(), SLOT as usize);
    assert!(raw
        .stdout
        .iter()
        .all(|&b| b == b'a' + ((EACH - 1) % 26) as u8));
    let by_id = lines(&ok_limited(&[
        "dlq",
        "peek",
        q.p(),
        "--id",
        &last,
        "--json",
    ]));
    assert_eq!(by_id[0]["id"], EACH - 1);
    let missing = limited(&["dlq", "peek", q.p(), "--id", "999999"]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));

    // Redriving every dead message copies none of their payloads.
    let redriven = lines(&ok_limited(&["dlq", "redrive", q.p(), "--all", "--json"]));
    assert_eq!(redriven[0]["redriven"], EACH);
}

#[test]
fn recover_streams_its_findings() {
    // 2^14 expired leases: 2^14 findings, one JSON line each (held as
    // JSON values, they took about 16 MiB).
    const N: u32 = 1 << 14;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.q");
    let q = Queue::create(&path, &Config::default().slots(N).slot_size(8)).unwrap();
    let p = path.to_str().unwrap();
    for _ in 0..N {
        q.send(b"x").unwrap();
    }
    let mut buf = Vec::new();
    while q
        .try_receive_into(
            &mut buf,
            Some(shmq::Visibility::new(Duration::from_millis(1)).unwrap()),
        )
        .is_some()
    {}
    poll_until(Duration::from_secs(30), "every lease to expire", || {
        q.stats().expired_leases == u64::from(N)
    });
    // The control: this queue holds little; use the dead letters of another.
    let big = full_queue();
    if !limit_bites(big.p()) {
        return;
    }

    let o = limited(&["recover", p, "--json"]);
    assert_eq!(o.status.code(), Some(8), "{:?}: {}", o.status, stderr(&o));
    let out = lines(&stdout(&o));
    assert_eq!(
        out.len(),
        N as usize + 1,
        "a line per finding and a summary"
    );
    assert!(out[..N as usize]
        .iter()
        .enumerate()
        .all(|(i, f)| f["slot"] == i && f["class"] == "lease-expired"));
    let summary = &out[N as usize];
    assert_eq!(summary["counts"]["lease-expired"], N, "{summary}");
    assert_eq!(summary["to_repair"], N);

    let applied = lines(&ok_limited(&["recover", p, "--apply", "--json"]));
    assert_eq!(applied.len(), N as usize + 1);
    assert_eq!(applied[N as usize]["repaired"], N);
    assert_eq!(q.stats().visible, u64::from(N));

    let text = limited(&["recover", p]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
}

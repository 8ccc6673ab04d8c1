//! The `shmq` tool, run as a user would: the built binary on files in a
//! temporary directory, checked by its stdout, stderr, JSON and exit codes.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[test]
fn create_send_recv_ack_round_trip() {
    let q = create(8, &[]);
    let st = q.stat();
    assert_eq!(st["capacity"], 8);
    assert_eq!(st["slot_size"], 64);
    assert_eq!(st["free"], 8);
    assert_eq!(st["mode"], "0600");

    let id = ok(&["send", q.p(), "hello"]);
    assert_eq!(id, "0\n");
    let got = shmq(&["recv", q.p()]);
    assert_eq!(code(&got), 0, "{}", stderr(&got));
    assert_eq!(got.stdout, b"hello", "payload raw on stdout");
    let receipt = receipt_of(&got);

    assert_eq!(q.stat()["in_flight"], 1);
    assert_eq!(ok(&["ack", q.p(), &receipt]), "", "ack is silent");
    let st = q.stat();
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
    let whole = shmq_with(&["send", q.p(), "--json"], b"a\nb");
    assert_eq!(stdout(&whole), "{\"id\":4}\n");

    let peeked = lines(&ok(&["peek", q.p(), "--json", "--limit", "10"]));
    let payloads: Vec<&str> = peeked
        .iter()
        .map(|m| m["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads, ["one", "two", "", "four", "a\nb"]);
    // Peeking leased nothing.
    assert_eq!(q.stat()["visible"], 5);
    let first = shmq(&["recv", q.p(), "--ack"]);
    assert_eq!(first.stdout, b"one");
    assert!(first.stderr.is_empty(), "no receipt with --ack");
}

#[test]
fn json_is_one_compact_line_with_keys_in_the_documented_order() {
    let q = create(8, &[]);
    ok(&["send", q.p(), r#"{"order": 42}"#]);
    shmq_with(&["send", q.p()], b"\xff\x00bin");
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let peeked = lines(&ok(&["peek", q.p(), "--json"]));
    assert_eq!(
        keys(&peeked[0]),
        [
            "id",
            "receives",
            "sent_unix_ms",
            "age_ms",
            "len",
            "encoding",
            "payload"
        ]
    );
    assert_eq!(peeked[0]["payload"], r#"{"order": 42}"#);
    assert_eq!(peeked[0]["encoding"], "utf-8");
    assert_eq!(peeked[1]["encoding"], "base64");
    assert_eq!(peeked[1]["payload"], "/wBiaW4=");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let sent = peeked[0]["sent_unix_ms"].as_u64().unwrap();
    assert!(
        now.abs_diff(sent) < 60_000,
        "wall-clock ms: {sent} vs {now}"
    );
    // Text shows JSON payloads as they are, without escaped quotes.
    let text = ok(&["peek", q.p()]);
    assert!(text.contains(r#": {"order": 42}"#), "{text}");
    assert!(text.contains(r"\xff\u{0}bin"), "{text}");

    let st = q.stat();
    assert_eq!(
        keys(&st),
        [
            "path",
            "capacity",
            "slot_size",
            "visible",
            "expired_leases",
            "delayed",
            "in_flight",
            "dead",
            "free",
            "writing",
            "abandoned",
            "other",
            "sent",
            "acked",
            "redelivered",
            "dead_lettered",
            "redriven",
            "oldest_visible_age_ms",
            "oldest_unfinished_age_ms",
            "visibility_timeout_ms",
            "max_receives",
            "claim_timeout_ms",
            "checksums",
            "mode",
            "identity",
            "clocks_current",
            "dead_letter_queue",
            "durable",
            "syncs",
            "durable_waits",
            "sync_failed"
        ]
    );
    let m = json(&["recv", q.p(), "--json"]);
    assert_eq!(
        keys(&m),
        [
            "id",
            "receipt",
            "receives",
            "len",
            "encoding",
            "payload",
            "sent_unix_ms",
            "deadline_unix_ms",
            "acked"
        ]
    );
    let r = m["receipt"].as_str().unwrap();
    let ext = json(&["extend", q.p(), r, "--timeout", "1h", "--json"]);
    assert_eq!(keys(&ext), ["receipt", "deadline_unix_ms"]);
    assert!(ext["deadline_unix_ms"].as_u64().unwrap() > now + 3_000_000);
    assert_eq!(
        json(&["nack", q.p(), r, "--json"]),
        serde_json::json!({"receipt": r, "outcome": "requeued"})
    );
    let m = json(&["recv", q.p(), "--json"]);
    let r = m["receipt"].as_str().unwrap();
    assert_eq!(
        json(&["ack", q.p(), r, "--json"]),
        serde_json::json!({"receipt": r, "acked": true})
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("new.q");
    let made = json(&[
        "create",
        p.to_str().unwrap(),
        "--slots",
        "2",
        "--slot-size",
        "8",
        "--json",
    ]);
    assert_eq!(
        keys(&made),
        ["path", "slots", "slot_size", "file_bytes", "identity"]
    );
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
    let err = fails(&["stat", garbage.to_str().unwrap()], 4);
    assert!(err.contains("shmq ls DIR"), "{err}");
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
    fails(&["recv", q.p()], 5);
    fails(&["recv", q.p(), "--wait", "0s"], 5);
    fails(&["recv", q.p(), "--wait", "50ms"], 5);
    fails(
        &["recv", q.p(), "--wait", "0.05s", "--json", "--count", "3"],
        5,
    );
    assert_eq!(ok(&["peek", q.p(), "--json"]), "");
    assert_eq!(ok(&["peek", q.p()]), "");
}

#[test]
fn send_to_a_full_queue_exits_6() {
    let q = create(2, &[]);
    ok(&["send", q.p(), "a"]);
    ok(&["send", q.p(), "b"]);
    let err = fails(&["send", q.p(), "c"], 6);
    assert!(err.contains("full") && err.contains("--slots"), "{err}");
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
    // Another queue's receipt (its identity differs): refused, not taken
    // for this queue's lease.
    let other = create(4, &[]);
    ok(&["send", other.p(), "m"]);
    let theirs = receipt_of(&shmq(&["recv", other.p()]));
    let err = fails(&["ack", q.p(), &theirs], 3);
    assert!(err.contains("receipt"), "{err}");
    ok(&["ack", other.p(), &theirs]);
}

#[test]
fn too_large_exits_9_and_an_existing_file_exits_10() {
    let q = create(4, &[]);
    let err = fails(&["send", q.p(), &"x".repeat(65)], 9);
    assert!(err.contains("--slot-size"), "{err}");
    let err = fails(&["create", q.p(), "--slots", "4", "--slot-size", "64"], 10);
    assert!(err.contains("shmq rm"), "advice names the verb: {err}");
    assert!(!err.contains("open-or-create"), "{err}");
}

#[test]
fn receipts_work_across_processes_for_extend_and_nack() {
    let q = create(4, &[]);
    ok(&["send", q.p(), "work"]);
    let receipt = receipt_of(&shmq(&["recv", q.p(), "--visibility", "1h"]));
    assert_eq!(ok(&["extend", q.p(), &receipt, "--timeout", "2h"]), "");
    let nacked = shmq(&["nack", q.p(), &receipt]);
    assert_eq!((code(&nacked), stdout(&nacked)), (0, String::new()));
    let again = json(&["recv", q.p(), "--json", "--ack"]);
    assert_eq!(again["payload"], "work");
    assert_eq!(again["receives"], 2);
    assert_eq!(again["acked"], true);
}

#[test]
fn durations_are_compound_and_decimal_and_ranges_are_errors() {
    let q = create(4, &[]);
    ok(&["send", q.p(), "m", "--delay", "0.2s"]);
    ok(&["send", q.p(), "later", "--delay", "1h30m"]);
    let m = json(&[
        "recv",
        q.p(),
        "--json",
        "--wait",
        "1.5s",
        "--visibility",
        "1m30s",
    ]);
    let lease_ms = m["deadline_unix_ms"].as_u64().unwrap() - m["sent_unix_ms"].as_u64().unwrap();
    assert!((85_000..=95_000).contains(&lease_ms), "{lease_ms}");
    let delayed = lines(&ok(&["inspect", q.p(), "--json", "--state", "delayed"]));
    assert!(delayed[0]["time_from_now_ms"].as_i64().unwrap() > 5_000_000);
    for (args, range) in [
        (vec!["recv", q.p(), "--visibility", "13h"], "1ms ..= 12h"),
        (vec!["recv", q.p(), "--visibility", "0"], "1ms ..= 12h"),
        (
            vec!["send", q.p(), "x", "--delay", "18446744073709551615ms"],
            "0 ..= 12h",
        ),
        (vec!["send", q.p(), "x", "--delay", "12h1ms"], "0 ..= 12h"),
        (
            vec!["extend", q.p(), "1-0-1-0", "--timeout", "13h"],
            "1ms ..= 12h",
        ),
        (
            vec!["nack", q.p(), "1-0-1-0", "--delay", "1d"],
            "unknown unit",
        ),
        (vec!["recv", q.p(), "--wait", "5"], "has no unit"),
        (
            vec!["create", q.p(), "--slots", "0", "--slot-size", "64"],
            "1..=16777216",
        ),
        (
            vec!["create", q.p(), "--slots", "1", "--slot-size", "7"],
            "8..=16777216",
        ),
        (
            vec![
                "create",
                q.p(),
                "--slots",
                "1",
                "--slot-size",
                "8",
                "--max-receives",
                "65536",
            ],
            "1..=65535",
        ),
    ] {
        let o = shmq(&args);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert!(err.starts_with("shmq: "), "{err}");
        assert!(err.contains(range), "{args:?} names the range: {err}");
    }
}

/// Bytes a terminal acts on: ESC [ 2 J (clear the screen), CSI (U+009B,
/// the one-character form of ESC [), RIGHT-TO-LEFT OVERRIDE (U+202E) and
/// DEL. `--json` must escape every one of them, so the lines are plain
/// printable ASCII, and still decode to the payload as sent.
#[test]
fn json_output_passes_no_terminal_control_sequences() {
    let payload = "a\u{1b}[2Jb\u{9b}31mc\u{202e}d\u{7f}e\u{2028}f\u{2066}g";
    let q = create(8, &["--max-receives", "1"]);
    let id = ok(&["send", q.p(), payload]);
    let id = id.trim();
    let printable = |what: &str, out: &str| {
        assert!(
            out.bytes().all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
            "{what}: raw control bytes in {:?}",
            out.as_bytes()
        );
        for v in lines(out) {
            assert_eq!(v["payload"], payload, "{what} decodes to the payload");
        }
    };
    printable("peek --json", &ok(&["peek", q.p(), "--json"]));
    let got = ok(&["recv", q.p(), "--json"]);
    printable("recv --json", &got);
    // Its one receive failed: it is dead now.
    let receipt = lines(&got)[0]["receipt"].as_str().unwrap().to_owned();
    shmq(&["nack", q.p(), &receipt]);
    let listed = ok(&["dlq", "list", q.p(), "--json"]);
    assert_eq!(lines(&listed).len(), 1, "dead: {listed}");
    printable("dlq list --json", &listed);
    printable("dlq peek --json", &ok(&["dlq", "peek", q.p(), "--json"]));
    printable(
        "dlq peek --id --json",
        &ok(&["dlq", "peek", q.p(), "--id", id, "--json"]),
    );
}

#[test]
fn dead_letters_can_be_listed_peeked_redriven_and_purged() {
    let q = create(8, &["--max-receives", "1"]);
    ok(&["send", q.p(), "poison"]);
    let first = shmq(&["recv", q.p(), "--visibility", "100ms"]);
    assert_eq!(first.stdout, b"poison");
    // Its lease expires at max receives; the next receiver's sweep
    // dead-letters it instead of delivering it again.
    let mut dead = Vec::new();
    poll_until(Duration::from_secs(10), "the message to die", || {
        let o = shmq(&["recv", q.p()]);
        assert_eq!(code(&o), 5, "delivered past max receives: {:?}", o.stdout);
        dead = lines(&ok(&["dlq", "list", q.p(), "--json"]));
        dead.len() == 1
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
    assert_eq!(ok(&["dlq", "list", q.p(), "--json"]), "");
    let again = shmq(&["recv", q.p(), "--ack"]);
    assert_eq!(
        (code(&again), again.stdout.as_slice()),
        (0, b"poison".as_slice())
    );
    let st = q.stat();
    assert_eq!(
        (st["dead"].as_u64(), st["dead_lettered"].as_u64()),
        (Some(0), Some(1))
    );

    // Purge: dead-letter one more through a nack at max receives.
    ok(&["send", q.p(), "junk"]);
    let receipt = receipt_of(&shmq(&["recv", q.p()]));
    let nacked = shmq(&["nack", q.p(), &receipt]);
    assert_eq!(stdout(&nacked), "", "results only on stdout");
    assert!(stderr(&nacked).contains("dead-lettered"));
    let purged = shmq(&["dlq", "purge", q.p(), "--all"]);
    assert_eq!(
        (code(&purged), stdout(&purged), stderr(&purged)),
        (0, String::new(), "purged 1 dead message\n".to_owned())
    );
    assert_eq!(q.stat()["dead"], 0);
}

/// Run `shmq recv` (no ack) from a shell that then exits: a consumer that
/// died holding a lease. `shmq recv`'s leases name no process (its caller
/// does the work, and shmq cannot name it), so the lease comes back when
/// its visibility timeout passes. Returns the shell's pid.
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
fn recover_exits_8_while_there_is_something_to_repair() {
    let q = create(16, &["--visibility-timeout", "100ms"]);
    ok(&["send", q.p(), "important"]);
    ok(&["send", q.p(), "waiting"]);
    assert_eq!(code(&shmq(&["recover", q.p()])), 0, "nothing to repair: 0");
    crashed_consumer(&q.path);
    std::thread::sleep(Duration::from_millis(200));

    let o = shmq(&["recover", q.p(), "--json"]);
    assert_eq!(code(&o), 8, "a dry run that finds work exits 8");
    assert!(
        o.stderr.is_empty(),
        "the report is the message: {}",
        stderr(&o)
    );
    // JSON lines: the finding, then the summary.
    let scan = lines(&stdout(&o));
    assert_eq!(scan.len(), 2, "{scan:?}");
    let (finding, summary) = (&scan[0], &scan[1]);
    assert_eq!(summary["path"], q.p());
    assert_eq!(summary["counts"]["lease-expired"], 1, "{summary}");
    assert_eq!(summary["counts"]["visible"], 1);
    assert_eq!(summary["counts"]["free"], 14);
    assert_eq!(summary["to_repair"], 1);
    assert_eq!(summary["repaired"], 0);
    assert_eq!(finding["holder"], 0, "shmq recv's leases are anonymous");
    assert_eq!(finding["class"], "lease-expired");
    assert_eq!(finding["repairable"], true);
    assert_eq!(finding["done"], Value::Array(vec![]));
    let text = shmq(&["recover", q.p()]);
    assert_eq!(code(&text), 8);
    assert!(
        stdout(&text).contains("--apply"),
        "a dry run says how to repair: {}",
        stdout(&text)
    );
    // The dry run changed nothing: the slot still holds the expired lease.
    assert_eq!(q.stat()["expired_leases"], 1);

    let applied = lines(&ok(&["recover", q.p(), "--apply", "--json"]));
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert_eq!(
        applied[0]["done"][0], "returned expired lease to visible",
        "{applied:?}"
    );
    assert_eq!(applied[1]["repaired"], 1, "{applied:?}");
    assert_eq!(q.stat()["visible"], 2);
    let again = json(&["recover", q.p(), "--apply", "--json"]);
    assert_eq!(again["repaired"], 0, "the second run changes nothing");
    assert_eq!(again["to_repair"], 0);
    assert!(
        again.get("findings").is_none(),
        "findings are lines of their own"
    );
    assert_eq!(code(&shmq(&["recover", q.p()])), 0);

    // Both messages are deliverable again, the returned one a second time.
    let mut got: Vec<(String, u64)> =
        lines(&ok(&["recv", q.p(), "--json", "--ack", "--count", "2"]))
            .iter()
            .map(|m| {
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
fn inspect_shows_each_slot() {
    let q = create(4, &[]);
    ok(&["send", q.p(), "a"]);
    ok(&["send", q.p(), "b", "--delay", "1h"]);
    let slots = lines(&ok(&["inspect", q.p(), "--json"]));
    let classes: Vec<&str> = slots.iter().map(|s| s["class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["visible", "delayed"], "free slots are left out");
    assert_eq!(lines(&ok(&["inspect", q.p(), "--json", "--all"])).len(), 4);
    let delayed = lines(&ok(&["inspect", q.p(), "--json", "--state", "delayed"]));
    assert_eq!(delayed[0]["id"], 1);
    assert!(delayed[0]["time_from_now_ms"].as_i64().unwrap() > 3_000_000);
    let table = ok(&["inspect", q.p(), "--state", "ready"]);
    assert_eq!(
        table.lines().count(),
        3,
        "header and two ready slots:\n{table}"
    );
    assert_eq!(code(&shmq(&["inspect", q.p(), "--state", "bogus"])), 2);
}

/// An endless stdin (`cat /dev/zero | shmq send q`, or one endless line with
/// `--lines`) fails TooLarge (exit 9) after reading one slot's worth, instead
/// of growing without bound; nothing is sent.
#[test]
fn an_endless_stdin_fails_too_large_without_reading_it_all() {
    let q = create(4, &[]);
    for script in [
        r#"head -c 100000000 /dev/zero | "$SHMQ" send "$Q""#,
        r#"head -c 100000000 /dev/zero | "$SHMQ" send --lines "$Q""#,
    ] {
        let o = sh("sh", script, q.p());
        assert_eq!(code(&o), 9, "{script}: {}", stderr(&o));
    }
    assert_eq!(q.stat()["sent"], 0);
}

/// `shmq dlq attach` names (and creates) a dead-letter queue: a message
/// that dies moves there with its envelope, `shmq stat` names it, and
/// `shmq dlq redrive --all` brings it back.
#[test]
fn an_attached_dead_letter_queue_takes_the_dead_and_gives_them_back() {
    let q = create(8, &["--max-receives", "1"]);
    let dlq = q.dir.path().join("test.dlq");
    let dlq = dlq.to_str().unwrap();
    ok(&["dlq", "attach", q.p(), dlq]);
    ok(&["send", q.p(), "poison"]);
    let receipt = receipt_of(&shmq(&["recv", q.p()]));
    ok(&["nack", q.p(), &receipt]);
    assert_eq!(q.stat()["dead"], 0, "moved, not kept");
    assert_eq!(q.stat()["dead_letter_queue"], dlq);
    let moved = json(&["stat", dlq, "--json"]);
    assert_eq!(moved["visible"], 1);
    let listed = json(&["dlq", "list", q.p(), "--json"]);
    assert_eq!(
        (&listed["payload"], &listed["moved"], &listed["reason"]),
        (&json!("poison"), &json!(true), &json!("max-receives"))
    );
    let redriven = json(&["dlq", "redrive", q.p(), "--all", "--json"]);
    assert_eq!(redriven["redriven"], 1);
    let got = json(&["recv", q.p(), "--json", "--ack"]);
    assert_eq!(got["payload"], "poison");
    ok(&["dlq", "detach", q.p()]);
    assert_eq!(q.stat()["dead_letter_queue"], Value::Null);
}

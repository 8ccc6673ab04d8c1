//! The operator's verbs: ls, stat of many queues and --watch, purge, rm
//! (refused while mapped), and watching with read access only.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
fn ls_lists_queue_files_by_their_magic() {
    let a = create(8, &[]);
    let dir = a.dir.path();
    let b = dir.join("orders");
    ok(&[
        "create",
        b.to_str().unwrap(),
        "--slots",
        "4",
        "--slot-size",
        "8",
    ]);
    std::fs::write(dir.join("notes.q"), b"not a queue").unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    ok(&["send", a.p(), "x"]);
    ok(&["send", a.p(), "y"]);
    let leased = shmq(&["recv", a.p()]);
    assert_eq!(code(&leased), 0);
    ok(&["send", b.to_str().unwrap(), "z", "--delay", "1h"]);

    let rows = lines(&ok(&["ls", dir.to_str().unwrap(), "--json"]));
    let names: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [b.to_str().unwrap(), a.p()],
        "queue files only, sorted by name"
    );
    let keys: Vec<&String> = rows[1].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "path",
            "capacity",
            "depth",
            "delayed",
            "in_flight",
            "dead",
            "oldest_visible_age_ms"
        ]
    );
    assert_eq!(
        (rows[1]["depth"].as_u64(), rows[1]["in_flight"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(rows[1]["oldest_visible_age_ms"].is_u64());
    assert_eq!(rows[0]["delayed"], 1);
    assert!(rows[0]["oldest_visible_age_ms"].is_null());
    let text = ok(&["ls", dir.to_str().unwrap()]);
    assert_eq!(
        text.lines().count(),
        3,
        "a header and one line each:\n{text}"
    );
    assert!(text.starts_with("QUEUE"), "{text}");
    // An empty directory: nothing, success.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(ok(&["ls", empty.path().to_str().unwrap()]), "");
}

#[test]
fn stat_takes_many_queues_and_watch_prints_timestamped_lines_with_rates() {
    let a = create(8, &[]);
    let b = create(8, &[]);
    ok(&["send", a.p(), "1"]);
    let both = lines(&ok(&["stat", a.p(), b.p(), "--json"]));
    assert_eq!(
        (both[0]["visible"].as_u64(), both[1]["visible"].as_u64()),
        (Some(1), Some(0))
    );
    let table = ok(&["stat", a.p(), b.p()]);
    assert_eq!(table.lines().count(), 3, "{table}");

    let watch = lines(&ok(&[
        "stat",
        a.p(),
        b.p(),
        "--watch",
        "--json",
        "--count",
        "2",
        "--interval",
        "10ms",
    ]));
    assert_eq!(watch.len(), 4, "one line per queue per refresh");
    let keys: Vec<&String> = watch[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "time_unix_ms",
            "path",
            "visible",
            "delayed",
            "in_flight",
            "dead",
            "oldest_visible_age_ms",
            "sent",
            "acked",
            "redelivered",
            "sent_per_s",
            "acked_per_s",
            "redelivered_per_s"
        ]
    );
    assert!(
        watch[0]["sent_per_s"].is_null(),
        "no rate on the first refresh"
    );
    assert!(watch[2]["sent_per_s"].is_number(), "a rate afterwards");
    assert!(watch[2]["time_unix_ms"].as_u64() >= watch[0]["time_unix_ms"].as_u64());

    let text = ok(&[
        "stat",
        a.p(),
        "--watch",
        "--count",
        "2",
        "--interval",
        "10ms",
    ]);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    for row in &rows {
        let (time, rest) = row.split_once(' ').unwrap();
        assert!(time.ends_with('Z') && time.contains('T'), "RFC 3339: {row}");
        assert!(
            rest.contains("depth=1") && rest.contains("sent/s="),
            "{row}"
        );
    }
    assert!(!text.contains('\x1b'), "no terminal codes when piped");
}

#[test]
fn watch_follows_sends_and_acks_as_rates() {
    let q = create(64, &[]);
    let mut child = Command::new(BIN)
        .args([
            "stat",
            q.p(),
            "--watch",
            "--json",
            "--interval",
            "50ms",
            "--count",
            "400",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let first = lines(&line).remove(0);
    assert_eq!(first["sent"], 0);
    let o = shmq_with(&["send", q.p(), "--lines"], "m\n".repeat(10).as_bytes());
    assert_eq!(code(&o), 0);
    // Some later refresh shows the ten sends as a positive rate.
    let mut seen = false;
    for _ in 0..200 {
        line.clear();
        out.read_line(&mut line).unwrap();
        let v = lines(&line).remove(0);
        if v["sent"] == 10 && v["sent_per_s"].as_f64().unwrap() > 0.0 {
            seen = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "the sends appeared as a rate");
}

#[test]
fn purge_deletes_visible_messages_only_and_asks_for_yes() {
    let q = create(16, &[]);
    let o = shmq_with(&["send", q.p(), "--lines"], b"a\nb\nc\n");
    assert_eq!(code(&o), 0);
    ok(&["send", q.p(), "later", "--delay", "1h"]);
    let held = shmq(&["recv", q.p(), "--visibility", "1h"]);
    assert_eq!(held.stdout, b"a");
    let err = fails(&["purge", q.p()], 2);
    assert!(err.contains("--yes") && err.contains("2 visible"), "{err}");
    assert_eq!(q.stat()["visible"], 2, "nothing without --yes");
    assert_eq!(json(&["purge", q.p(), "--yes", "--json"])["purged"], 2);
    let st = q.stat();
    assert_eq!(
        (
            st["visible"].as_u64(),
            st["delayed"].as_u64(),
            st["in_flight"].as_u64()
        ),
        (Some(0), Some(1), Some(1)),
        "{st}"
    );
    let o = shmq(&["purge", q.p(), "--yes"]);
    assert_eq!(
        (code(&o), stdout(&o), stderr(&o)),
        (0, String::new(), "purged 0 messages\n".into())
    );
}

/// Whether process `pid` maps `path` (its /proc maps name it).
fn maps(pid: u32, path: &std::path::Path) -> bool {
    let name = path.canonicalize().unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .is_ok_and(|m| m.lines().any(|l| l.ends_with(name.to_str().unwrap())))
}

#[test]
fn rm_refuses_while_a_process_maps_the_queue_then_removes() {
    let q = create(4, &[]);
    let mut holder = Command::new(BIN)
        .args(["recv", q.p(), "--json", "--follow"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = holder.id();
    poll_until(
        Duration::from_secs(10),
        "the follower to map the queue",
        || maps(pid, &q.path),
    );
    let err = fails(&["rm", q.p()], 11);
    assert!(
        err.contains(&format!("pid {pid} (shmq)")) && err.contains("--force"),
        "{err}"
    );
    assert!(q.path.exists());
    // SAFETY: kill(2) with our child's pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert_eq!(
        holder.wait().unwrap().code(),
        Some(0),
        "SIGTERM ends --follow: 0"
    );
    assert_eq!(ok(&["rm", q.p()]), "");
    assert!(!q.path.exists());
    fails(&["rm", q.p()], 3);

    // --force removes a mapped one; rm never removes other files.
    let q = create(4, &[]);
    let mut holder = Command::new(BIN)
        .args(["recv", q.p(), "--json", "--follow"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = holder.id();
    poll_until(
        Duration::from_secs(10),
        "the follower to map the queue",
        || maps(pid, &q.path),
    );
    let gone = json(&["rm", q.p(), "--force", "--json"]);
    assert_eq!(gone["mapped_by"], serde_json::json!([pid]));
    assert!(!q.path.exists());
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    holder.wait().unwrap();
    let other = q.dir.path().join("notes.txt");
    std::fs::write(&other, b"keep me").unwrap();
    fails(&["rm", other.to_str().unwrap()], 4);
    fails(&["rm", other.to_str().unwrap(), "--force"], 4);
    assert!(other.exists());
}

/// Run `shmq args...` as a user who may only read the queue file: as
/// `nobody` through setpriv when we are root (root ignores file modes),
/// otherwise as ourselves on a file made read-only.
fn as_reader(args: &[&str]) -> std::process::Output {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(args)
            .output()
            .expect("setpriv (util-linux) runs")
    } else {
        Command::new(BIN).args(args).output().unwrap()
    }
}

#[test]
fn observers_need_read_access_only() {
    let q = create(8, &["--max-receives", "1"]);
    ok(&["send", q.p(), "visible"]);
    ok(&["send", q.p(), "dies"]);
    let m = json(&["recv", q.p(), "--json"]);
    ok(&["nack", q.p(), m["receipt"].as_str().unwrap()]);
    // Readable by all, writable by none; the directory searchable.
    std::fs::set_permissions(&q.path, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(q.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = q.dir.path().to_str().unwrap();
    for args in [
        vec!["stat", q.p(), "--json"],
        vec!["peek", q.p(), "--json"],
        vec!["inspect", q.p(), "--json"],
        vec!["dlq", "list", q.p(), "--json"],
        vec!["dlq", "peek", q.p(), "--json"],
        vec!["ls", dir, "--json"],
    ] {
        let o = as_reader(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert!(!o.stdout.is_empty(), "{args:?} showed nothing");
    }
    let st = lines(&stdout(&as_reader(&["stat", q.p(), "--json"]))).remove(0);
    assert_eq!(
        (st["visible"].as_u64(), st["dead"].as_u64()),
        (Some(1), Some(1))
    );
    for args in [
        vec!["send", q.p(), "x"],
        vec!["recv", q.p()],
        vec!["purge", q.p(), "--yes"],
        vec!["dlq", "purge", q.p(), "--all"],
        vec!["recover", q.p()],
    ] {
        let o = as_reader(&args);
        let err = stderr(&o);
        assert_eq!(code(&o), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("shmq: cannot open") && err.contains("needs write access"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(q.stat()["visible"], 1, "the readers changed nothing");
}

#[test]
fn watch_on_a_terminal_redraws_a_table_in_place() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script (util-linux) is not installed: skipped");
        return;
    }
    let q = create(8, &[]);
    ok(&["send", q.p(), "m"]);
    // `script` runs the command on a pseudo-terminal and copies its output.
    let cmd = format!("{BIN} stat {} --watch --count 3 --interval 10ms", q.p());
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let screen = stdout(&o);
    assert!(
        screen.contains("SENT/s") && screen.contains("REDELIV/s"),
        "{screen}"
    );
    // The table is 3 lines (time, header, one queue): redrawn twice.
    assert_eq!(screen.matches("\x1b[3A\x1b[J").count(), 2, "{screen:?}");
}

#[test]
fn create_shows_progress_only_when_it_is_long() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script (util-linux) is not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let on_a_terminal = |name: &str, slots: &str, size: &str| {
        let path = dir.path().join(name);
        let cmd = format!(
            "{BIN} create {} --slots {slots} --slot-size {size}",
            path.display()
        );
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", stdout(&o));
        stdout(&o)
    };
    // 256 MiB: a spinner while the file is made, then the one line.
    let big = on_a_terminal("big.q", "16", "16777216");
    assert!(
        big.contains("creating") && big.contains("256 MiB"),
        "{big:?}"
    );
    assert!(big.ends_with("bytes on disk)\r\n"), "{big:?}");
    // Small: only the line.
    let small = on_a_terminal("small.q", "16", "64");
    assert!(
        small.starts_with("created ") && !small.contains("creating"),
        "{small:?}"
    );
    // Piped, even a big one is quiet.
    let path = dir.path().join("piped.q");
    let o = shmq(&[
        "create",
        path.to_str().unwrap(),
        "--slots",
        "16",
        "--slot-size",
        "16777216",
    ]);
    assert!(stderr(&o).starts_with("created ") && !stderr(&o).contains("creating"));
}

/// A durable queue, as an operator meets one: created with --durable on a
/// disk, its syncs in `stat`; a failed sync (written into the file here, as
/// the library records it) shown by `stat`, refusing sends with a message
/// that says what to do, reported by `recover` (exit 8) and cleared by
/// `recover --apply`; and tmpfs refused.
#[test]
fn a_durable_queue_shows_its_syncs_and_a_failed_sync_until_recover() {
    // A disk file system: the build directory (durable queues refuse tmpfs).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("orders.q");
    let p = path.to_str().unwrap();
    ok(&[
        "create",
        p,
        "--slots",
        "8",
        "--slot-size",
        "64",
        "--durable",
    ]);
    ok(&["send", p, "order 1"]);
    let st = json(&["stat", p, "--json"]);
    assert_eq!(st["durable"], true);
    assert!(st["syncs"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["sync_failed"], Value::Null);
    assert!(ok(&["stat", p]).contains("durable: sends return once on disk"));

    // The failure as the library records it: bit 63 of `done` (offset
    // 1032) and the errno (offset 1048), EIO.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut done = [0u8; 8];
        f.read_exact_at(&mut done, 1032).unwrap();
        let done = u64::from_le_bytes(done) | 1 << 63;
        f.write_all_at(&done.to_le_bytes(), 1032).unwrap();
        f.write_all_at(&5u64.to_le_bytes(), 1048).unwrap();
    }
    assert_eq!(json(&["stat", p, "--json"])["sync_failed"], 5);
    let text = ok(&["stat", p]);
    assert!(
        text.contains("SYNC FAILED") && text.contains("shmq recover --apply"),
        "{text}"
    );
    let err = fails(&["send", p, "order 2"], 1);
    assert!(
        err.contains("nothing was sent") && err.contains("shmq recover"),
        "{err}"
    );
    let report = shmq(&["recover", p]);
    assert_eq!(code(&report), 8, "a sync failure is something to repair");
    assert!(
        stdout(&report).contains("run again with --apply"),
        "{}",
        stdout(&report)
    );
    let summary = lines(&ok(&["recover", p, "--apply", "--json"]));
    let last = summary.last().unwrap();
    assert_eq!(
        (last["sync_failed"].as_i64(), last["sync_cleared"].as_bool()),
        (Some(5), Some(true))
    );
    assert_eq!(json(&["stat", p, "--json"])["sync_failed"], Value::Null);
    ok(&["send", p, "order 2"]);
    assert_eq!(code(&shmq(&["recover", p])), 0);

    // tmpfs is refused, with what to do (where /dev/shm is one).
    let shm_is_tmpfs = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"/dev/shm") && f.get(2) == Some(&"tmpfs")
        });
    if shm_is_tmpfs {
        let t = tempfile::tempdir_in("/dev/shm").unwrap();
        let q = t.path().join("q");
        let o = shmq(&[
            "create",
            q.to_str().unwrap(),
            "--slots",
            "4",
            "--slot-size",
            "8",
            "--durable",
        ]);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(stderr(&o).contains("disk file system"), "{}", stderr(&o));
        assert!(!q.exists(), "nothing left behind");
    } else {
        eprintln!("no tmpfs at /dev/shm here: the refusal is not tried");
    }
}

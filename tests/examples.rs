//! The examples, run as a user runs them (in short mode), with the counts in
//! their `SUMMARY` line checked; never their timings.
//!
//! The example binaries are built once, by the same cargo that runs this
//! test, in the same profile; then each runs as a process of its own (which
//! starts its own child processes) under a deadline.
//!
//! The checker the examples use (journals, audit) is tested here too, on
//! made-up journals, so that a "lost=0" from an example means something.

#[path = "../examples/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use shmq::{Config, Queue};

const EXAMPLES: [&str; 6] = ["checkout", "workers", "poison", "crash", "demo", "durable"];
/// Far above what any example takes in short mode (the demo: about 10 s).
const DEADLINE: Duration = Duration::from_secs(120);

/// Build the examples (a no-op when they are up to date) and return the
/// path of each, from cargo's own report of what it built.
fn built() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        // This test runs as TARGET/PROFILE/deps/examples-HASH.
        let exe = std::env::current_exe().expect("test executable path");
        let profile = exe
            .parent()
            .and_then(|deps| deps.parent())
            .and_then(|p| p.file_name())
            .and_then(|p| p.to_str())
            .expect("profile directory")
            .to_string();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--message-format=json", "-p", "shmq"])
            .args([
                "--manifest-path",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            ]);
        for e in EXAMPLES {
            cmd.args(["--example", e]);
        }
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(out.status.success(), "cargo build of the examples failed");
        let mut found = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if !line.contains(r#""reason":"compiler-artifact""#)
                || !line.contains(r#""kind":["example"]"#)
            {
                continue;
            }
            if let Some(rest) = line.split(r#""executable":""#).nth(1) {
                let path = PathBuf::from(rest.split('"').next().unwrap_or(""));
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_string();
                found.insert(name, path);
            }
        }
        found
    })
}

/// Run example `name` with `--quick`; its output must end well and hold one
/// `SUMMARY` line, returned as a map.
fn run_quick(name: &str) -> Summary {
    let exe = built()
        .get(name)
        .unwrap_or_else(|| panic!("cargo did not report building example {name}"))
        .clone();
    let child = Command::new(&exe)
        .arg("--quick")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("wait for the example"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our child, not yet reaped (the
            // waiting thread is still blocked on it); its own children die
            // with it (they arm PR_SET_PDEATHSIG).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("example {name} did not finish within {DEADLINE:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("SUMMARY "))
        .collect();
    assert_eq!(lines.len(), 1, "one SUMMARY line from {name}:\n{stdout}");
    let map = lines[0]
        .trim_start_matches("SUMMARY ")
        .split(' ')
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Summary {
        name: name.to_string(),
        map,
        output: stdout.into_owned(),
    }
}

struct Summary {
    name: String,
    map: HashMap<String, String>,
    output: String,
}

impl Summary {
    fn n(&self, key: &str) -> u64 {
        self.map
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "{}: no count {key} in the summary:\n{}",
                    self.name, self.output
                )
            })
    }

    /// Nothing lost, nothing leased twice at once, nothing acked twice; and
    /// the acks in the consumers' journals are the acks the queue counted.
    fn assert_clean(&self) {
        for key in ["lost", "overlaps", "double_acks", "strangers"] {
            assert_eq!(self.n(key), 0, "{}: {key}\n{}", self.name, self.output);
        }
        assert_eq!(
            self.n("acked"),
            self.n("queue_acked"),
            "{}: journal acks vs the queue's ack counter\n{}",
            self.name,
            self.output
        );
    }
}

#[test]
fn checkout_every_order_reaches_every_service_or_the_dead_letters() {
    let s = run_quick("checkout");
    s.assert_clean();
    let orders = s.n("orders");
    let bad = s.n("bad_orders");
    assert!(orders > 0 && bad > 0 && s.n("flaky_orders") > 0);
    assert_eq!(s.n("sent"), 3 * orders, "three queues per order");
    assert_eq!(s.n("email_acked"), orders, "email was down, nothing lost");
    assert_eq!(
        s.n("warehouse_acked"),
        orders,
        "warehouse was slow, nothing lost"
    );
    assert_eq!(s.n("analytics_dead"), bad, "only the bad orders die");
    assert_eq!(s.n("analytics_acked"), orders - bad, "flaky orders retried");
    assert_eq!(s.n("acked") + s.n("dead"), s.n("sent"));
}

#[test]
fn durable_orders_from_two_processes_share_syncs_and_all_arrive() {
    let s = run_quick("durable");
    assert_eq!(s.n("lost"), 0);
    assert_eq!(s.n("acked"), s.n("sent"));
    assert_eq!(
        s.n("durable_waits"),
        s.n("sent"),
        "every send waited for a sync"
    );
    assert!(s.n("syncs") >= 1 && s.n("syncs") <= s.n("sent"));
    assert_eq!(s.n("batch_syncs"), 1, "one sync() for the batch");
}

#[test]
fn workers_each_job_done_once_by_one_worker_at_a_time() {
    let s = run_quick("workers");
    s.assert_clean();
    assert!(s.n("sent") > 0);
    assert_eq!(s.n("acked"), s.n("sent"));
    assert!(s.n("workers") >= 2, "more than one worker did the work");
}

#[test]
fn poison_is_dead_lettered_then_redriven_and_done() {
    let s = run_quick("poison");
    s.assert_clean();
    assert_eq!(s.n("sent"), 40);
    assert_eq!(s.n("acked"), 40);
    assert_eq!(s.n("dead_lettered"), 1);
    assert_eq!(s.n("redriven"), 1);
    assert_eq!(s.n("dlq"), 0);
    assert_eq!(
        s.n("poison_deliveries"),
        3 + 1,
        "max receives, then once more"
    );
}

#[test]
fn crash_a_killed_consumers_leases_go_to_another() {
    let s = run_quick("crash");
    s.assert_clean();
    assert_eq!(s.n("sent"), 30);
    assert_eq!(s.n("acked"), 30);
    assert_eq!(s.n("held"), 5);
    assert_eq!(s.n("recovered"), 5, "all the killed consumer's jobs");
    assert!(s.n("redelivered") >= 5);
}

#[test]
fn demo_accounts_for_every_message() {
    let s = run_quick("demo");
    s.assert_clean();
    let orders = s.n("orders");
    let bad = s.n("bad_orders");
    assert!(orders > 0 && bad > 0);
    assert_eq!(s.n("sent"), 3 * orders);
    assert_eq!(s.n("email_acked"), orders);
    assert_eq!(s.n("warehouse_acked"), orders);
    assert_eq!(s.n("analytics_acked"), orders - bad);
    assert_eq!(s.n("analytics_dead"), bad);
    assert_eq!(s.n("dlq"), bad, "the poison email was redriven");
    assert_eq!(s.n("redriven"), 1);
    assert_eq!(s.n("dead_lettered"), bad + 1);
    assert_eq!(s.n("acked") + s.n("dlq"), s.n("sent"));
    assert!(s.n("crashed_redelivery") >= 2);
    // Retries of flaky orders, of bad ones, of the poison email, and the
    // killed worker's order at least.
    let least = s.n("flaky_orders") + 2 * bad + 2 + 1;
    assert!(s.n("redelivered") >= least, "redelivered >= {least}");
}

// ------------------------------------------------- the checker itself

fn journal_dir(journals: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in journals {
        std::fs::write(dir.path().join(format!("{name}.journal")), text).unwrap();
    }
    dir
}

fn empty_queue(dir: &tempfile::TempDir) -> Queue {
    Queue::create(
        dir.path().join("q"),
        &Config::default().slots(8).slot_size(64).max_receives(1),
    )
    .unwrap()
}

#[test]
fn audit_passes_sequential_leases_and_counts_repeats() {
    // w1 let message 1's lease expire at 200; w2 took it at 250 and acked.
    // Message 2 was leased by w2 and never acked: lost, as far as the
    // journals and the (empty) dead letters can tell.
    let dir = journal_dir(&[
        ("w1", "D 1 1 100 200\n"),
        ("w2", "D 2 1 80 180\nD 1 2 250 350\nA 1 260\n"),
    ]);
    let ds = common::deliveries(dir.path(), "w").unwrap();
    let a = common::audit(&[1, 2], &empty_queue(&dir), &ds);
    assert_eq!((a.overlaps, a.double_acks, a.strangers), (0, 0, 0), "{a:?}");
    assert_eq!((a.acked, a.repeats, a.deliveries), (1, 1, 3));
    assert_eq!(a.lost, vec![2]);
    assert!(!a.clean());
}

#[test]
fn audit_catches_two_live_leases_on_one_message() {
    // w2 leased message 1 at 150, before w1's lease (deadline 200) ended.
    let dir = journal_dir(&[
        ("w1", "D 1 1 100 200\nL 1 210\n"),
        ("w2", "D 1 2 150 250\nA 1 160\n"),
    ]);
    let a = common::audit(
        &[1],
        &empty_queue(&dir),
        &common::deliveries(dir.path(), "w").unwrap(),
    );
    assert_eq!(a.overlaps, 1);
    assert!(!a.clean());
}

#[test]
fn audit_catches_a_double_ack_and_a_stranger() {
    let dir = journal_dir(&[(
        "w1",
        "D 1 1 100 200\nA 1 110\nD 1 2 120 220\nA 1 130\nD 9 1 1 2\n",
    )]);
    let a = common::audit(
        &[1],
        &empty_queue(&dir),
        &common::deliveries(dir.path(), "w").unwrap(),
    );
    assert_eq!((a.double_acks, a.strangers), (1, 1));
    assert!(!a.clean());
}

#[test]
fn audit_counts_a_dead_letter_as_accounted_for() {
    let dir = journal_dir(&[]);
    let q = empty_queue(&dir);
    let id = q.send(b"x").unwrap();
    q.receive(Duration::from_secs(1))
        .unwrap()
        .nack(Duration::ZERO)
        .unwrap();
    let a = common::audit(&[id], &q, &[]);
    assert_eq!((a.in_dlq, a.acked), (1, 0));
    assert!(a.clean(), "{a:?}");
}

#[test]
fn journal_lines_out_of_order_are_an_error() {
    let dir = journal_dir(&[("w1", "A 1 100\n")]);
    assert!(common::deliveries(dir.path(), "w").is_err());
}

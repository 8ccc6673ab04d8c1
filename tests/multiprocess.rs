//! Real processes on one queue file. The test binary re-executes itself: the
//! ignored test `child` is the entry point of every child role.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmq::{Config, Nacked, Queue, Receipt};

const ROLE: &str = "SHMQ_TEST_ROLE";

fn spawn(role: &str, args: &[&str]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env("SHMQ_TEST_ARGS", args.join("\u{1f}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The first stdout line starting with `tag`, read with a deadline.
fn line_with(child: &mut Child, tag: &str) -> String {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tag = tag.to_string();
    std::thread::spawn(move || {
        // libtest prints "test child ... " before the child's own output, on
        // the same line: look for the tag anywhere.
        // Keep draining after the tag, so the child never writes to a closed pipe.
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(at) = line.find(&tag) {
                let _ = tx.send(line[at..].to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("child reported in time")
}

fn wait_ok(mut child: Child) {
    let st = child.wait().unwrap();
    assert!(st.success(), "child failed: {st}");
}

fn msg(v: u64) -> Vec<u8> {
    let mut m = v.to_le_bytes().to_vec();
    m.extend_from_slice(&crc32fast::hash(&v.to_le_bytes()).to_le_bytes());
    m
}

fn unmsg(b: &[u8]) -> u64 {
    assert_eq!(b.len(), 12, "payload length");
    let v = u64::from_le_bytes(b[..8].try_into().unwrap());
    assert_eq!(
        crc32fast::hash(&b[..8]).to_le_bytes(),
        b[8..12],
        "payload intact"
    );
    v
}

#[test]
#[ignore = "entry point of the child processes of this file's tests"]
fn child() {
    let role = std::env::var(ROLE).expect("run by the tests in this file only");
    // Die with the test that started us, even if it panics.
    // SAFETY: prctl(PR_SET_PDEATHSIG, SIGKILL) takes a valid signal number and
    // affects only this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let args: Vec<String> = std::env::var("SHMQ_TEST_ARGS")
        .unwrap()
        .split('\u{1f}')
        .map(String::from)
        .collect();
    let q = Queue::open(&args[0]).unwrap();
    let mut stdout = std::io::stdout();
    match role.as_str() {
        "produce" => {
            let (from, count): (u64, u64) = (args[1].parse().unwrap(), args[2].parse().unwrap());
            for v in from..from + count {
                let m = msg(v);
                loop {
                    match q.send(&m) {
                        Ok(_) => break,
                        Err(e) if e.is_full() => {
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                }
            }
        }
        "consume" => {
            // Ack until the producers are done and the queue stays empty.
            let (journal, done) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
            let mut out = std::fs::File::create(&journal).unwrap();
            let mut buf = Vec::new();
            loop {
                match q.receive_into(&mut buf, Duration::from_millis(100), None) {
                    Some(d) => {
                        let v = unmsg(&buf);
                        q.ack(d.receipt).unwrap();
                        out.write_all(format!("{v}\n").as_bytes()).unwrap();
                    }
                    None if done.exists() && q.stats().visible == 0 => break,
                    None => {}
                }
            }
        }
        "hold" => {
            let l = q
                .receive(Duration::from_secs(30))
                .expect("a message to hold");
            writeln!(
                stdout,
                "HELD {} {} {}",
                l.id(),
                l.receipt(),
                l.delivery().deadline_ms
            )
            .unwrap();
            stdout.flush().unwrap();
            // Hold the lease until killed.
            loop {
                std::thread::park();
            }
        }
        "ack" => {
            let rc: Receipt = args[1].parse().unwrap();
            let verdict = match q.ack(rc) {
                Ok(()) => "OK".to_string(),
                Err(shmq::Error::LeaseLost) => "LEASE_LOST".to_string(),
                Err(e) => format!("ERR {e}"),
            };
            writeln!(stdout, "ACK {verdict}").unwrap();
        }
        "nack-until-dead" => {
            let mut n = 0;
            loop {
                let l = q
                    .receive(Duration::from_secs(10))
                    .expect("message comes back after nack");
                n += 1;
                if l.nack(Duration::ZERO).unwrap() == Nacked::DeadLettered {
                    break;
                }
            }
            writeln!(stdout, "DEAD after {n}").unwrap();
        }
        "receive-ack" => {
            let l = q
                .receive(Duration::from_secs(10))
                .expect("redriven message");
            writeln!(stdout, "GOT {} {}", l.id(), l.receives()).unwrap();
            l.ack().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn producer_and_consumer_processes_deliver_every_message_and_ack_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let done = dir.path().join("producers-done");
    Queue::create(&path, &Config::default().slots(128).slot_size(64)).unwrap();
    const PER: u64 = 3_000;
    let consumers: Vec<(Child, PathBuf)> = (0..3)
        .map(|k| {
            let j = dir.path().join(format!("consumer-{k}"));
            (spawn("consume", &[p(&path), p(&j), p(&done)]), j)
        })
        .collect();
    let producers: Vec<Child> = (0..3u64)
        .map(|k| {
            spawn(
                "produce",
                &[p(&path), &(k * PER).to_string(), &PER.to_string()],
            )
        })
        .collect();
    for c in producers {
        wait_ok(c);
    }
    std::fs::write(&done, b"").unwrap();
    let mut acked: HashMap<u64, u32> = HashMap::new();
    for (c, journal) in consumers {
        wait_ok(c);
        for line in std::fs::read_to_string(journal).unwrap().lines() {
            *acked.entry(line.parse().unwrap()).or_default() += 1;
        }
    }
    let missing: Vec<u64> = (0..3 * PER)
        .filter(|v| !acked.contains_key(v))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lost messages, e.g. {missing:?}");
    assert!(
        acked.values().all(|&n| n == 1),
        "an ack succeeded twice for one message"
    );
    assert_eq!(acked.len() as u64, 3 * PER);
    let st = Queue::open(&path).unwrap().stats();
    assert_eq!((st.sent, st.acked, st.free), (3 * PER, 3 * PER, 128));
}

/// A consumer SIGKILLed holding a lease with a 30 s visibility timeout:
/// its lease names its process (a registration in the file), which the
/// next sweep finds gone, so the message comes back long before the
/// deadline (design.md §7.4), and the dead consumer's receipt is stale.
#[test]
fn a_killed_consumers_lease_comes_back_at_once_and_its_receipt_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = Queue::create(
        &path,
        &Config::default()
            .slots(8)
            .slot_size(64)
            .visibility_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    let id = q.send(b"important").unwrap();
    let mut holder = spawn("hold", &[p(&path)]);
    let held = line_with(&mut holder, "HELD ");
    let parts: Vec<&str> = held.split(' ').collect();
    assert_eq!(parts[1].parse::<u64>().unwrap(), id);
    let (receipt, deadline): (Receipt, u64) =
        (parts[2].parse().unwrap(), parts[3].parse().unwrap());
    // While the holder lives, its lease stays its own: receives that sweep
    // the ring (several laps of the 200 ms sweep interval) get nothing.
    let live = std::time::Instant::now();
    while live.elapsed() < Duration::from_millis(800) {
        assert!(
            q.try_receive().is_none(),
            "a live holder's lease came back early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = std::time::Instant::now();
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();

    let again = q
        .receive(Duration::from_secs(20))
        .expect("redelivered once its holder is gone");
    eprintln!("kill -> redelivery: {:?}", killed.elapsed());
    assert!(
        shmq::now_ms() < deadline,
        "returned early, not at the dead consumer's deadline"
    );
    assert_eq!(
        (again.id(), again.receives(), again.payload()),
        (id, 2, &b"important"[..])
    );
    assert_ne!(again.receipt(), receipt);

    let mut stale = spawn("ack", &[p(&path), &receipt.to_string()]);
    assert_eq!(line_with(&mut stale, "ACK "), "ACK LEASE_LOST");
    wait_ok(stale);
    again.ack().unwrap();
    assert_eq!(q.stats().free, 8);
}

#[test]
fn a_message_nacked_max_receives_times_dies_and_can_be_redriven_and_acked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = Queue::create(
        &path,
        &Config::default().slots(8).slot_size(64).max_receives(3),
    )
    .unwrap();
    let id = q.send(b"poison").unwrap();
    let mut nacker = spawn("nack-until-dead", &[p(&path)]);
    assert_eq!(line_with(&mut nacker, "DEAD"), "DEAD after 3");
    wait_ok(nacker);
    let dead = q.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].receives), (id, 3));
    q.redrive(id).unwrap();
    let mut receiver = spawn("receive-ack", &[p(&path)]);
    assert_eq!(line_with(&mut receiver, "GOT "), format!("GOT {id} 1"));
    wait_ok(receiver);
    let st = q.stats();
    assert_eq!((st.acked, st.dead, st.dead_lettered, st.free), (1, 0, 1, 8));
}

#[test]
fn a_receiver_parked_in_another_process_is_woken_by_a_send() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = Queue::create(&path, &Config::default().slots(8).slot_size(64)).unwrap();
    let receiver = spawn("receive-ack", &[p(&path)]);
    // Wait (bounded) until the child has parked: the waiter bit of the futex word.
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = std::fs::File::open(&path).unwrap();
    let parked = || {
        let mut b = [0u8; 4];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, 512).unwrap();
        b[0] & 1 == 1
    };
    while !parked() {
        assert!(Instant::now() < deadline, "receiver never parked");
        std::thread::yield_now();
    }
    q.send(b"wake").unwrap();
    let mut receiver = receiver;
    assert!(line_with(&mut receiver, "GOT ").starts_with("GOT 0 1"));
    wait_ok(receiver);
}

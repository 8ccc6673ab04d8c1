//! Programs users write against the public API alone: a worker pool that
//! hands leases to threads, helpers that return leases, a producer with
//! backpressure, a graceful shutdown, poison messages rejected at once, and
//! the error conversions `?` needs. Each one fails to compile or fails its
//! assertions if the API regresses. The cross-process cases re-execute this
//! test binary as a child (the ignored test `child`).

use std::collections::HashSet;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use shmq::{Config, DeadReason, Error, Lease, Nacked, Queue, Receipt, SendError};

fn tmp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// Poll `cond` until it holds, for at most `limit`.
fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        thread::yield_now();
    }
}

// ------------------------------------------------------------- ownership

/// A helper that returns a lease: needs `Lease` without a borrow of a local.
fn next_job(path: &std::path::Path) -> Option<Lease> {
    let q = Queue::open(path).ok()?;
    q.receive(Duration::from_secs(1))
}

/// A struct that keeps a lease beside its queue.
struct Worker {
    queue: Queue,
    current: Option<Lease>,
}

#[test]
fn a_worker_pool_hands_leases_to_threads_and_acks_there() {
    let (_d, path) = tmp("jobs.q");
    let q = Queue::create(&path, &Config::default().slots(64)).unwrap();
    const JOBS: u64 = 500;
    // More jobs than slots: the producer waits for room as workers ack.
    let producer = {
        let q = q.clone();
        thread::spawn(move || {
            for n in 0..JOBS {
                q.send_blocking(&n.to_le_bytes()).unwrap();
            }
        })
    };
    // One receiving thread hands each lease to one of four workers.
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = mpsc::channel::<Lease>();
        senders.push(tx);
        let done = done_tx.clone();
        workers.push(thread::spawn(move || {
            for lease in rx {
                let n = u64::from_le_bytes(lease.payload().try_into().unwrap());
                lease.ack().expect("the lease is still ours");
                done.send(n).unwrap();
            }
        }));
    }
    drop(done_tx);
    let mut k = 0;
    while k < JOBS as usize {
        let lease = q.receive(Duration::from_secs(5)).expect("a job");
        senders[k % 4].send(lease).unwrap();
        k += 1;
    }
    drop(senders);
    producer.join().unwrap();
    for w in workers {
        w.join().unwrap();
    }
    let got: HashSet<u64> = done_rx.iter().collect();
    assert_eq!(got.len(), JOBS as usize, "every job once");
    let st = q.stats();
    assert_eq!((st.acked, st.in_flight, st.visible), (JOBS, 0, 0));
}

#[test]
fn leases_are_returned_from_functions_and_stored_beside_their_queue() {
    let (_d, path) = tmp("q");
    let q = Queue::create(&path, &Config::default()).unwrap();
    q.send("one").unwrap();
    q.send("two").unwrap();
    let lease = next_job(&path).expect("a lease outlives the handle that received it");
    // The handle that received it is gone; the lease keeps the mapping.
    assert_eq!(lease.payload(), b"one");
    lease.ack().unwrap();
    let mut w = Worker {
        queue: q.clone(),
        current: None,
    };
    w.current = w.queue.try_receive();
    assert_eq!(w.current.as_ref().unwrap().payload(), b"two");
    w.current.take().unwrap().ack().unwrap();
    assert_eq!(q.stats().acked, 2);
    // Debug names the queue, not its mapping.
    let shown = format!("{q:?}");
    assert!(shown.contains("Queue") && shown.contains("path"), "{shown}");
}

// ------------------------------------------------------ errors and `?`

fn produce_boxed(q: &Queue, buf: &[u8]) -> Result<u64, Box<dyn StdError>> {
    Ok(q.send(buf)?)
}

fn produce_io(q: &Queue, buf: &[u8]) -> std::io::Result<u64> {
    Ok(q.send(buf)?)
}

fn produce_shmq(q: &Queue, buf: &[u8]) -> shmq::Result<u64> {
    Ok(q.send(buf)?)
}

fn produce_send_sync(q: &Queue, buf: &[u8]) -> Result<u64, Box<dyn StdError + Send + Sync>> {
    Ok(q.send(buf)?)
}

#[test]
fn question_mark_works_with_boxed_io_and_shmq_errors() {
    let (_d, path) = tmp("q");
    let q = Queue::create(&path, &Config::default().slots(4).slot_size(8)).unwrap();
    let msg = b"12345678".to_vec();
    assert!(produce_boxed(&q, &msg).is_ok());
    assert!(produce_io(&q, &msg).is_ok());
    assert!(produce_shmq(&q, &msg).is_ok());
    assert!(produce_send_sync(&q, &msg).is_ok());
    // Full now: each form carries the same failure.
    let boxed = produce_boxed(&q, &msg).unwrap_err();
    assert_eq!(boxed.downcast_ref::<SendError>(), Some(&SendError::Full));
    let io = produce_io(&q, &msg).unwrap_err();
    assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);
    assert!(matches!(produce_shmq(&q, &msg), Err(Error::Full)));
    // The message was borrowed: still here to retry.
    assert_eq!(msg, b"12345678");
    // Exhaustive match, no catch-all: a new variant breaks this test.
    let described = match q.send(b"123456789").unwrap_err() {
        SendError::Full => "full",
        SendError::TooLarge { .. } => "too large",
        SendError::DelayOutOfRange { .. } => "delay",
        SendError::ClaimExpired => "claim expired",
        SendError::Contended => "contended",
        SendError::Orphaned => "orphaned",
        SendError::SyncFailed { .. } => "sync failed",
    };
    assert_eq!(described, "too large");
    // Receipts parse with a real error type.
    let bad = "7".parse::<Receipt>().unwrap_err();
    assert!(bad.to_string().contains("QUEUE-SLOT-GEN-ID"), "{bad}");
    let _: &dyn StdError = &bad;
}

#[test]
fn durations_out_of_range_are_refused_never_clamped_or_wrapped() {
    let (_d, path) = tmp("q");
    let q = Queue::create(&path, &Config::default()).unwrap();
    let max = shmq::MAX_DELAY;
    for bad in [max + Duration::from_millis(1), Duration::MAX] {
        assert_eq!(
            q.send_delayed("x", bad),
            Err(SendError::DelayOutOfRange { delay: bad, max })
        );
    }
    assert_eq!(q.stats().sent, 0, "nothing was sent");
    q.send_delayed("at the bound", max).unwrap();
    assert!(q.try_receive().is_none(), "12 h away, not visible now");
    q.send("now").unwrap();
    let mut lease = q.try_receive().unwrap();
    let rc = lease.receipt();
    for bad in [
        Duration::ZERO,
        shmq::MAX_LEASE + Duration::from_millis(1),
        Duration::MAX,
    ] {
        assert!(
            matches!(lease.extend(bad), Err(Error::OutOfRange { .. })),
            "extend {bad:?}"
        );
    }
    lease.extend(shmq::MAX_LEASE).unwrap();
    assert!(lease.remaining() > Duration::from_secs(11 * 3600));
    match q.nack(rc, Duration::MAX) {
        Err(e @ Error::OutOfRange { .. }) => {
            assert!(e.to_string().contains("nack delay"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // The refused nack left the lease as it was.
    assert_eq!(q.stats().in_flight, 1);
    assert_eq!(lease.nack(max).unwrap(), Nacked::Requeued);
    // A receive's own lease length is a `Visibility`, refused out of range
    // when it is made, so no receive can clamp one.
    for bad in [
        Duration::ZERO,
        Duration::from_micros(999),
        shmq::MAX_LEASE + Duration::from_millis(1),
        Duration::MAX,
    ] {
        match shmq::Visibility::new(bad) {
            Err(e @ Error::OutOfRange { .. }) => {
                assert!(e.to_string().contains("visibility timeout"), "{e}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    for good in [Duration::from_millis(1), shmq::MAX_LEASE] {
        assert_eq!(shmq::Visibility::new(good).unwrap().get(), good);
    }
}

// ------------------------------------------------------- poison at once

#[test]
fn a_poison_message_is_dead_lettered_at_once_and_can_be_redriven() {
    let (_d, path) = tmp("q");
    let q = Queue::create(&path, &Config::default().max_receives(5)).unwrap();
    let id = q.send("not json").unwrap();
    q.send("fine").unwrap();
    let poison = q.try_receive().unwrap();
    assert_eq!(poison.id(), id);
    poison.dead_letter().unwrap();
    let dead = q.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].reason), (id, DeadReason::Rejected));
    assert_eq!(dead[0].receives, 1, "no retries burned");
    assert!(dead[0].died_at.elapsed().unwrap() < Duration::from_secs(60));
    // Its receipt is spent; the other message flows.
    let fine = q.try_receive().unwrap();
    assert_eq!(fine.payload(), b"fine");
    // By receipt, from another handle.
    let other = Queue::open(&path).unwrap();
    other.dead_letter(fine.receipt()).unwrap();
    assert!(matches!(fine.ack(), Err(Error::LeaseLost)));
    assert_eq!(q.stats().dead, 2);
    q.redrive(id).unwrap();
    assert_eq!(q.try_receive().unwrap().payload(), b"not json");
}

#[test]
fn nack_batch_releases_every_lease_and_reports_the_stale_ones() {
    let (_d, path) = tmp("q");
    let q = Queue::create(&path, &Config::default().max_receives(2)).unwrap();
    let mut ids = Vec::new();
    q.send_batch(&["a", "b", "c"], &mut ids).unwrap();
    let leases: Vec<Lease> = (0..3).map(|_| q.try_receive().unwrap()).collect();
    let receipts: Vec<Receipt> = leases.iter().map(Lease::receipt).collect();
    q.ack(receipts[1]).unwrap();
    let mut failed = Vec::new();
    let n = q
        .nack_batch(receipts.iter().copied(), Duration::ZERO, &mut failed)
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(failed.len(), 1);
    assert!(matches!(failed[0], (rc, Error::LeaseLost) if rc == receipts[1]));
    let again: Vec<Vec<u8>> = (0..2)
        .map(|_| q.try_receive().unwrap().take_payload())
        .collect();
    assert_eq!(again, [b"a".to_vec(), b"c".to_vec()]);
    assert!(matches!(
        q.nack_batch(receipts, Duration::MAX, &mut failed),
        Err(Error::OutOfRange { .. })
    ));
}

// ------------------------------------------------------ config safety

#[test]
fn open_or_create_refuses_a_queue_made_with_another_config() {
    let (_d, path) = tmp("q");
    let asked = Config::default().slot_size(1024);
    Queue::create(&path, &Config::default().slot_size(64)).unwrap();
    let e = Queue::open_or_create(&path, &asked).unwrap_err();
    assert!(
        e.to_string()
            .contains("slot_size 64, not the 1024 asked for"),
        "{e}"
    );
}

// ------------------------------------------------------- backpressure

/// getrusage(RUSAGE_THREAD): CPU time this thread used so far.
fn thread_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD and a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0);
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(us(ru.ru_utime) + us(ru.ru_stime))
}

#[test]
fn a_producer_waiting_for_room_sleeps_and_resumes_on_an_ack() {
    let (_d, path) = tmp("q");
    let q = Queue::create(&path, &Config::default().slots(2)).unwrap();
    q.send("a").unwrap();
    q.send("b").unwrap();
    let producer = {
        let q = q.clone();
        thread::spawn(move || {
            let cpu = thread_cpu();
            let start = Instant::now();
            let id = q.send_timeout("c", Duration::from_secs(30));
            (id, start.elapsed(), thread_cpu() - cpu)
        })
    };
    // Let it wait a while (it reports nothing while it waits: check the
    // futex word's waiter bit, which it sets before it sleeps).
    eventually(Duration::from_secs(10), "the producer to park", || {
        q.ring().room_word() & 1 == 1
    });
    thread::sleep(Duration::from_millis(300));
    q.try_receive().unwrap().ack().unwrap();
    let (id, waited, cpu) = producer.join().unwrap();
    id.expect("sent once a slot was freed");
    assert!(
        waited >= Duration::from_millis(300),
        "it waited: {waited:?}"
    );
    assert!(
        cpu < waited / 4,
        "a waiting sender sleeps: {cpu:?} of CPU in {waited:?}"
    );
    // The timeout form gives up with Full.
    let t = Instant::now();
    assert_eq!(
        q.send_timeout("d", Duration::from_millis(50)),
        Err(SendError::Full)
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
}

#[test]
fn an_ack_in_another_process_wakes_a_waiting_sender() {
    let (_d, path) = tmp("q");
    let q = Queue::create(&path, &Config::default().slots(4)).unwrap();
    for n in 0..4u8 {
        q.send(&[n]).unwrap();
    }
    let mut child = spawn("ack-after-park", &path);
    let t = Instant::now();
    let id = q.send_timeout("fifth", Duration::from_secs(60));
    let waited = t.elapsed();
    id.expect("the other process's ack made room");
    assert!(child.wait().unwrap().success());
    assert!(waited < Duration::from_secs(60));
    assert_eq!(q.stats().acked, 1);
}

// ------------------------------------------------------ request/reply

/// A service in another process answers requests on a second queue. The
/// client waits for each answer by polling `try_receive` (as a caller
/// bound by latency does: the path that polls the published head, §5.2)
/// for the first half, and by `receive` with a timeout (spinning, then
/// parking) for the second. Every answer comes, in order, to the request it
/// answers, and both queues end with every message acked.
#[test]
fn a_service_in_another_process_answers_every_request() {
    const N: u32 = 20_000;
    let (_d, path) = tmp("requests");
    let cfg = Config::default().slots(64);
    let requests = Queue::create(&path, &cfg).unwrap();
    let answers = Queue::create(path.with_extension("answers"), &cfg).unwrap();
    let mut child = spawn("answer-requests", &path);
    for k in 0..N {
        requests.send(&format!("request {k}")).unwrap();
        let answer = if k < N / 2 {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(lease) = answers.try_receive() {
                    break lease;
                }
                assert!(Instant::now() < deadline, "no answer to request {k}");
                std::hint::spin_loop();
            }
        } else {
            answers
                .receive(Duration::from_secs(30))
                .unwrap_or_else(|| panic!("no answer to request {k}"))
        };
        assert_eq!(
            answer.payload(),
            format!("answer to request {k}").as_bytes()
        );
        answer.ack().unwrap();
    }
    requests.send("stop").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(requests.stats().acked, u64::from(N) + 1);
    assert_eq!(answers.stats().acked, u64::from(N));
    assert!(answers.try_receive().is_none());
}

/// The service of `a_service_in_another_process_answers_every_request`.
fn answer_requests(requests: Queue) {
    let path = std::env::var("SHMQ_PROGRAMS_PATH").unwrap();
    let answers = Queue::open(std::path::Path::new(&path).with_extension("answers")).unwrap();
    loop {
        let request = requests
            .receive(Duration::from_secs(30))
            .expect("a request within 30 s");
        if request.payload() == b"stop" {
            request.ack().unwrap();
            return;
        }
        let body = std::str::from_utf8(request.payload()).unwrap();
        answers.send(&format!("answer to {body}")).unwrap();
        request.ack().unwrap();
    }
}

// ----------------------------------------------------------- shutdown

#[test]
fn shutdown_wakes_every_waiter_of_the_handle_and_its_clones() {
    let (_d, path) = tmp("q");
    let q = Queue::create(&path, &Config::default().slots(1)).unwrap();
    let receivers: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || {
                let t = Instant::now();
                let got = q.receive(Duration::from_secs(60));
                (got.is_none(), t.elapsed())
            })
        })
        .collect();
    let iterating = {
        let q = q.clone();
        thread::spawn(move || q.incoming().count())
    };
    eventually(Duration::from_secs(10), "receivers to park", || {
        q.ring().park_word() & 1 == 1
    });
    let t = Instant::now();
    q.shutdown();
    for r in receivers {
        let (none, waited) = r.join().unwrap();
        assert!(none);
        assert!(
            waited < Duration::from_secs(30),
            "returned well before its wait"
        );
    }
    assert_eq!(iterating.join().unwrap(), 0, "incoming ended");
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(q.is_shut_down());
    // Waits return at once now; what does not wait still works.
    assert!(q.receive(Duration::from_secs(60)).is_none());
    q.send("after").unwrap();
    assert_eq!(
        q.send_timeout("full", Duration::from_secs(60)),
        Err(SendError::Full)
    );
    let lease = q.try_receive().expect("non-blocking receive still works");
    lease.ack().unwrap();
    // Another handle of the same file is not shut down.
    let other = Queue::open(&path).unwrap();
    assert!(!other.is_shut_down());
}

#[test]
fn a_worker_stopped_by_sigterm_acks_or_nacks_what_it_holds() {
    let (_d, path) = tmp("q");
    let q = Queue::create(
        &path,
        &Config::default().visibility_timeout(Duration::from_secs(60)),
    )
    .unwrap();
    for n in 0..20u8 {
        q.send(&[n]).unwrap();
    }
    let child = spawn("worker-until-sigterm", &path);
    // The worker acks one message, then holds the next while it "works".
    eventually(
        Duration::from_secs(20),
        "the worker to hold a lease",
        || q.stats().acked >= 1 && q.stats().in_flight == 1,
    );
    // SAFETY: kill(2) with a pid we spawned and a valid signal.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "clean exit on SIGTERM: {:?}",
        out.status
    );
    let st = q.stats();
    assert_eq!(st.in_flight, 0, "nothing left to time out: {st:?}");
    assert_eq!(st.acked + st.visible, 20, "{st:?}");
}

// ------------------------------------------------------ child processes

fn spawn(role: &str, path: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SHMQ_PROGRAMS_ROLE", role)
        .env("SHMQ_PROGRAMS_PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "entry point of the child processes of this file's tests"]
fn child() {
    let Ok(role) = std::env::var("SHMQ_PROGRAMS_ROLE") else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG, SIGKILL) affects only this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let q = Queue::open(std::env::var("SHMQ_PROGRAMS_PATH").unwrap()).unwrap();
    match role.as_str() {
        "ack-after-park" => {
            // Ack one message once the parent waits for room.
            eventually(Duration::from_secs(30), "the parent to park", || {
                q.ring().room_word() & 1 == 1
            });
            q.try_receive().unwrap().ack().unwrap();
        }
        "worker-until-sigterm" => worker_until_sigterm(q),
        "answer-requests" => answer_requests(q),
        "daemon" => daemonize_and_hold(q),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// A daemon as users write one: open the queue, fork, let the parent exit,
/// and work in the child with the handle it inherited. The child takes a
/// lease, reports its pid and the lease, and holds it until killed.
fn daemonize_and_hold(q: Queue) {
    // SAFETY: fork(2); the child only uses the queue, writes to stdout and
    // parks (this process runs one test thread).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid > 0 {
        // The parent: exits at once, as a daemon's launcher does. Its handle
        // is dropped here, which ends its registration.
        drop(q);
        std::process::exit(0);
    }
    let lease = q
        .receive(Duration::from_secs(30))
        .expect("a message to hold");
    // Straight to the descriptor: std's stdout lock may have been held by
    // another thread of the parent when it forked.
    let line = format!("HELD {} {}\n", std::process::id(), lease.receipt());
    // SAFETY: write(2) of a valid buffer to descriptor 1.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
    loop {
        std::thread::park();
    }
}

/// A worker as the examples write it: a signal thread shuts the queue
/// handle down; the loop finishes or gives back the lease in hand.
fn worker_until_sigterm(q: Queue) {
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT]).unwrap();
    let stopper = q.clone();
    thread::spawn(move || {
        if signals.forever().next().is_some() {
            stopper.shutdown();
        }
    });
    let mut first = true;
    for lease in q.incoming() {
        if first {
            lease.ack().unwrap();
            first = false;
            continue;
        }
        // "Work" until told to stop, then give the message back.
        while !q.is_shut_down() {
            thread::sleep(Duration::from_millis(5));
        }
        lease.nack(Duration::ZERO).unwrap();
    }
}

// ------------------------------------------------------ orphaned handles

#[test]
fn a_handle_whose_file_was_removed_or_replaced_refuses_to_send() {
    let (_d, path) = tmp("q");
    let old = Queue::create(&path, &Config::default()).unwrap();
    old.send("before").unwrap();
    assert!(!old.is_orphaned());
    // Replaced: removed, and a new queue created at the same path.
    std::fs::remove_file(&path).unwrap();
    let new = Queue::create(&path, &Config::default()).unwrap();
    // Within 100 ms of the removal every send through the old handle fails.
    let start = Instant::now();
    loop {
        match old.send("lost?") {
            Err(SendError::Orphaned) => break,
            // The orphan fills up before the next look at the file: that
            // is no loss (the send failed), keep trying.
            Ok(_) | Err(SendError::Full) => assert!(
                start.elapsed() < Duration::from_millis(500),
                "still sending into a removed file"
            ),
            Err(e) => panic!("{e}"),
        }
        thread::yield_now();
    }
    assert!(old.is_orphaned());
    let mut ids = Vec::new();
    assert!(matches!(
        old.send_batch(&["x"], &mut ids),
        Err(Error::Orphaned)
    ));
    // What it held can still be drained; the new queue works.
    let drained: Vec<Vec<u8>> = std::iter::from_fn(|| old.try_receive())
        .map(|mut l| l.take_payload())
        .collect();
    assert!(drained.iter().any(|p| p == b"before"));
    new.send("after").unwrap();
    assert!(!new.is_orphaned());
    assert_eq!(new.try_receive().unwrap().payload(), b"after");
    // Removed without a replacement: orphaned too.
    std::fs::remove_file(&path).unwrap();
    assert!(new.is_orphaned());
    assert_eq!(new.send("x"), Err(SendError::Orphaned));
}

/// A daemon forks after `open` and its parent exits (issue 9, item 1): the
/// child's lease must name the child, not the parent. Named after the
/// parent, it would be judged gone as soon as the parent exits and given to
/// another consumer while the child still works on it. It stays the
/// child's while the child lives, and comes back once the child dies.
#[test]
fn a_daemon_that_forks_after_open_keeps_its_leases_until_it_dies() {
    use std::io::BufRead;
    let (_d, path) = tmp("daemon");
    let q = Queue::create(
        &path,
        &Config::default()
            .slots(4)
            .slot_size(64)
            .visibility_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    q.send(b"job").unwrap();
    let mut launcher = spawn("daemon", &path);
    let held = std::io::BufReader::new(launcher.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        // The line may follow libtest's "test child ... " on one line.
        .find_map(|l| l.find("HELD ").map(|at| l[at..].to_owned()))
        .expect("the daemon's report");
    assert!(launcher.wait().unwrap().success(), "the launcher exits");
    let parts: Vec<&str> = held.split(' ').collect();
    let daemon: i32 = parts[1].parse().unwrap();
    // Whatever happens below, the daemon does not outlive the test.
    struct Reap(i32);
    impl Drop for Reap {
        fn drop(&mut self) {
            // SAFETY: kill(2) of the daemon this test started.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _reap = Reap(daemon);
    let receipt: shmq::Receipt = parts[2].parse().unwrap();
    // The launcher is gone; the daemon holds the lease. Several sweep laps
    // (200 ms apart at most) must leave it alone.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        assert!(
            q.try_receive().is_none(),
            "the daemon's lease was judged by its exited parent"
        );
        thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) of the daemon this test started (its pid was
    // reported by the daemon itself; it is our grandchild, not reaped by
    // anyone yet, as it still holds the lease).
    unsafe { libc::kill(daemon, libc::SIGKILL) };
    let again = q
        .receive(Duration::from_secs(20))
        .expect("the dead daemon's job comes back");
    assert_eq!(again.payload(), b"job");
    assert_ne!(again.receipt(), receipt);
    again.ack().unwrap();
}

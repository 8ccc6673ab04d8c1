//! The async API in the programs tokio users write: a service with many
//! consumer tasks, cancellation at random points, graceful shutdown, a
//! producer with backpressure, and wakes that cross processes. The test
//! binary re-executes itself for the other process (the ignored test
//! `child` is its entry point), as tests/multiprocess.rs does.
#![cfg(feature = "tokio")]

use std::collections::HashSet;
use std::future::{poll_fn, Future};
use std::io::{BufRead, BufReader, Write};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_core::FusedStream;
use futures_util::StreamExt;
use shmq::{Config, Queue, SendError};

const ROLE: &str = "SHMQ_ASYNC_TEST_ROLE";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn queue(dir: &tempfile::TempDir, cfg: &Config) -> Queue {
    Queue::create(dir.path().join("q"), cfg).unwrap()
}

/// Wait (yielding to the runtime) until `cond` holds; fail at `limit`.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Poll `fut` exactly once from the calling task.
async fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = pin!(fut);
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// A future that is ready on its `n`th poll (waking itself in between):
/// cancels the other branch of a `select!` after a chosen number of polls.
async fn polls(n: u32) {
    for _ in 1..n {
        tokio::task::yield_now().await;
    }
}

/// xorshift64*: a seeded generator (no dependency), so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("SHMQ_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("SHMQ_TEST_SEED={seed}");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn value(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload.try_into().expect("8-byte payload"))
}

#[test]
fn cancelled_receives_and_sends_at_random_points_lose_and_duplicate_nothing() {
    const N: u64 = 20_000;
    const CONSUMERS: u64 = 6;
    let dir = tempfile::tempdir().unwrap();
    // Few slots, so the producer waits for room too; a visibility timeout
    // far beyond the test, so a lease left behind would never come back.
    let q = queue(
        &dir,
        &Config::default()
            .slots(16)
            .slot_size(64)
            .visibility_timeout(Duration::from_secs(600)),
    );
    let seed_rng = Arc::new(Mutex::new(Rng::seeded()));
    let seen = Arc::new(Mutex::new(vec![0u32; N as usize]));
    let received = Arc::new(AtomicU64::new(0));
    let cancelled = Arc::new(AtomicU64::new(0));
    let send_cancelled = Arc::new(AtomicU64::new(0));
    runtime().block_on(async {
        let producer = tokio::spawn({
            let (q, cancelled) = (q.clone(), send_cancelled.clone());
            let mut rng = Rng(seed_rng.lock().unwrap().next() | 1);
            async move {
                for v in 0..N {
                    let m = v.to_le_bytes();
                    if rng.below(4) == 0 {
                        // Now and then the consumers find the queue empty.
                        tokio::task::yield_now().await;
                    }
                    // Retry the same message until one send completes: a
                    // cancelled send must have sent nothing.
                    loop {
                        let r = match rng.below(3) {
                            0 => Ok(q.send_async(&m).await),
                            1 => tokio::time::timeout(
                                Duration::from_micros(rng.below(300)),
                                q.send_async(&m),
                            )
                            .await
                            .map_err(|_| ()),
                            _ => tokio::select! {
                                r = q.send_async(&m) => Ok(r),
                                _ = polls(1 + rng.below(3) as u32) => Err(()),
                            },
                        };
                        match r {
                            Ok(r) => {
                                r.expect("send");
                                break;
                            }
                            Err(()) => {
                                cancelled.fetch_add(1, SeqCst);
                            }
                        }
                    }
                }
            }
        });
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let q = q.clone();
                let (seen, received, cancelled) =
                    (seen.clone(), received.clone(), cancelled.clone());
                let mut rng = Rng(seed_rng.lock().unwrap().next() | 1);
                tokio::spawn(async move {
                    let mut stream = q.incoming_stream();
                    while received.load(SeqCst) < N {
                        // Each way a tokio program drops a receive midway.
                        let got = match rng.below(5) {
                            0 => match poll_once(q.receive_async()).await {
                                Poll::Ready(l) => l,
                                Poll::Pending => None,
                            },
                            1 => tokio::time::timeout(
                                Duration::from_micros(rng.below(2000)),
                                q.receive_async(),
                            )
                            .await
                            .ok()
                            .flatten(),
                            2 => tokio::select! {
                                l = q.receive_async() => l,
                                _ = polls(1 + rng.below(4) as u32) => None,
                            },
                            3 => tokio::select! {
                                l = stream.next() => l,
                                _ = polls(1 + rng.below(4) as u32) => None,
                            },
                            _ => tokio::time::timeout(Duration::from_millis(20), stream.next())
                                .await
                                .ok()
                                .flatten(),
                        };
                        match got {
                            Some(lease) => {
                                let v = value(lease.payload());
                                seen.lock().unwrap()[v as usize] += 1;
                                received.fetch_add(1, SeqCst);
                                lease.ack().expect("ack by the holder");
                            }
                            None => {
                                cancelled.fetch_add(1, SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(25), async {
            producer.await.unwrap();
            for c in consumers {
                c.await.unwrap();
            }
        })
        .await
        .expect("every message received in time (a leaked lease never comes back)");
    });
    let seen = seen.lock().unwrap();
    let missing: Vec<usize> = (0..seen.len()).filter(|&v| seen[v] == 0).collect();
    let twice: Vec<usize> = (0..seen.len()).filter(|&v| seen[v] > 1).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    assert!(twice.is_empty(), "received more than once: {twice:?}");
    let st = q.stats();
    assert_eq!(st.in_flight, 0, "{st:?}");
    assert_eq!(st.visible, 0, "{st:?}");
    assert_eq!((st.sent, st.acked, st.redelivered), (N, N, 0), "{st:?}");
    let (rc, sc) = (cancelled.load(SeqCst), send_cancelled.load(SeqCst));
    println!("cancelled receives {rc}, cancelled sends {sc}");
    // A floor that says the cancellations were exercised, not a rate: on
    // this 2-vCPU machine a run cancels 1,850-3,500 receives (the same
    // spread at the session's start, aa91fde), so 2,000 failed about one
    // run in six.
    assert!(rc >= 1_000, "only {rc} receives were cancelled");
    assert!(sc >= 500, "only {sc} sends were cancelled");
}

#[test]
fn graceful_shutdown_ends_the_streams_and_the_leases_in_hand_are_acked() {
    const WORKERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, &Config::default().slots(256).slot_size(64));
    for v in 0..100u64 {
        q.send(&v.to_le_bytes()).unwrap();
    }
    let release = Arc::new(AtomicBool::new(false));
    let holding = Arc::new(AtomicU64::new(0));
    runtime().block_on(async {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let mut leases = q.incoming_stream();
                let (release, holding) = (release.clone(), holding.clone());
                tokio::spawn(async move {
                    let mut done = 0;
                    while let Some(lease) = leases.next().await {
                        // Slow work, still going when the shutdown comes.
                        holding.fetch_add(1, SeqCst);
                        while !release.load(SeqCst) {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        lease.ack().unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        until(
            "every worker holding a lease",
            Duration::from_secs(10),
            || holding.load(SeqCst) == WORKERS as u64,
        )
        .await;
        assert_eq!(q.stats().in_flight, WORKERS as u64);
        q.shutdown();
        release.store(true, SeqCst);
        let done: usize = tokio::time::timeout(Duration::from_secs(10), async {
            let mut sum = 0;
            for w in workers {
                sum += w.await.unwrap();
            }
            sum
        })
        .await
        .expect("streams end at shutdown");
        assert_eq!(done, WORKERS, "each worker finished the lease it held");
        // Later waits return at once.
        assert!(q.receive_async().await.is_none());
        let mut ended = q.incoming_stream();
        assert!(ended.is_terminated());
        assert!(ended.next().await.is_none());
    });
    let st = q.stats();
    assert_eq!(st.in_flight, 0, "no lease left to time out: {st:?}");
    assert_eq!(st.acked, WORKERS as u64);
    assert_eq!(
        st.visible,
        100 - WORKERS as u64,
        "the rest wait for the next run"
    );
}

#[test]
fn send_async_on_a_full_queue_resumes_when_a_consumer_acks() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, &Config::default().slots(4).slot_size(64));
    runtime().block_on(async {
        for v in 0..4u64 {
            q.send_async(&v.to_le_bytes()).await.unwrap();
        }
        // Full: a send with a deadline waits it out and sends nothing.
        let t = Instant::now();
        let late = tokio::time::timeout(Duration::from_millis(50), q.send_async(b"late")).await;
        assert!(late.is_err(), "no room, so the send waited");
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(q.stats().sent, 4, "a cancelled send sent nothing");
        // A producer task waits for room ...
        let producer = tokio::spawn({
            let q = q.clone();
            async move { q.send_async(&4u64.to_le_bytes()).await }
        });
        let mut producer = pin!(producer);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), producer.as_mut())
                .await
                .is_err(),
            "still waiting while the queue is full"
        );
        // ... until a consumer acks.
        let first = q.try_receive().unwrap();
        let acked = value(first.payload());
        first.ack().unwrap();
        let id = tokio::time::timeout(Duration::from_secs(10), producer)
            .await
            .expect("the ack woke the waiting send")
            .unwrap()
            .unwrap();
        assert!(id >= 4);
        // Backpressure end to end: 500 messages through 4 slots.
        const M: u64 = 500;
        let consumer = tokio::spawn({
            let mut leases = q.incoming_stream();
            async move {
                let mut got = Vec::new();
                while let Some(lease) = leases.next().await {
                    got.push(value(lease.payload()));
                    lease.ack().unwrap();
                    if got.len() as u64 == M + 4 {
                        break;
                    }
                }
                got
            }
        });
        for v in 5..M + 5 {
            q.send_async(&v.to_le_bytes()).await.unwrap();
        }
        let got = tokio::time::timeout(Duration::from_secs(20), consumer)
            .await
            .expect("consumer done")
            .unwrap();
        let set: HashSet<u64> = got.iter().copied().collect();
        assert_eq!(set.len(), got.len(), "no duplicates");
        let sent: HashSet<u64> = (0..M + 5).filter(|&v| v != acked).collect();
        assert_eq!(set, sent);
        // After a shutdown a send waiting for room gives up with `Full`.
        while q.send(b"fill").is_ok() {}
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.send_async(b"never").await }
        });
        tokio::task::yield_now().await;
        q.shutdown();
        let r = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("shutdown ends the wait")
            .unwrap();
        assert!(matches!(r, Err(SendError::Full)), "{r:?}");
    });
}

#[test]
fn ping_pong_between_a_thread_and_a_task_never_waits_for_the_sweep() {
    // One message at a time, nothing else on the queue: a wake lost between
    // the task's look and its sleep would leave it asleep until the sweep
    // deadline (1 s; visibility 60 s), with nothing else to wake it.
    const ROUNDS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let q = queue(
        &dir,
        &Config::default()
            .slots(8)
            .slot_size(64)
            .visibility_timeout(Duration::from_secs(60)),
    );
    let acked = Arc::new(AtomicU64::new(0));
    let producer = std::thread::spawn({
        let (q, acked) = (q.clone(), acked.clone());
        let mut rng = Rng::seeded();
        move || {
            for k in 0..ROUNDS {
                // Spin a while (the send should race the task's poll),
                // then yield (not to starve the task on a busy machine).
                let mut spins = 0u32;
                while acked.load(SeqCst) < k {
                    if spins < 20_000 {
                        spins += 1;
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                // Land the send at a random point of the task's next poll.
                for _ in 0..rng.below(400) {
                    std::hint::spin_loop();
                }
                q.send(&k.to_le_bytes()).unwrap();
            }
        }
    });
    let slowest = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut slowest = Duration::ZERO;
            for k in 0..ROUNDS {
                let t = Instant::now();
                let lease = tokio::time::timeout(Duration::from_secs(10), q.receive_async())
                    .await
                    .expect("woken")
                    .unwrap();
                slowest = slowest.max(t.elapsed());
                assert_eq!(value(lease.payload()), k);
                lease.ack().unwrap();
                acked.fetch_add(1, SeqCst);
            }
            slowest
        });
    producer.join().unwrap();
    println!("slowest round {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "a round took {slowest:?}"
    );
}

// ------------------------------------------------------- other processes

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
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The child's stdout lines that start with `tag` (libtest prints its own
/// text before the child's on the same line: look anywhere in the line).
fn lines_with(child: &mut Child, tag: &str) -> std::sync::mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tag = tag.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(at) = line.find(&tag) {
                let _ = tx.send(line[at..].to_string());
            }
        }
    });
    rx
}

#[test]
#[ignore = "entry point of the child processes of this file's tests"]
fn child() {
    let role = std::env::var(ROLE).expect("run by the tests in this file only");
    // SAFETY: prctl(PR_SET_PDEATHSIG, SIGKILL) takes a valid signal number and
    // affects only this process: die with the test that started us.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let args: Vec<String> = std::env::var("SHMQ_TEST_ARGS")
        .unwrap()
        .split('\u{1f}')
        .map(String::from)
        .collect();
    match role.as_str() {
        // Sends or acks one message per command read from stdin.
        "peer" => {
            let q = Queue::open(&args[0]).unwrap();
            for line in std::io::stdin().lock().lines() {
                match line.unwrap().as_str() {
                    "send" => {
                        q.send(b"from the child").unwrap();
                    }
                    "ack" => q.try_receive().expect("a message").ack().unwrap(),
                    _ => break,
                }
            }
        }
        "threads" => waiter_threads_child(&args[0]),
        other => panic!("unknown role {other}"),
    }
}

/// `fut`, counting its polls in `polls`.
async fn counting_polls<F: Future>(polls: Arc<AtomicU64>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        let r = fut.as_mut().poll(cx);
        polls.fetch_add(1, SeqCst);
        r
    })
    .await
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_send_or_an_ack_in_another_process_wakes_the_awaiting_task() {
    let dir = tempfile::tempdir().unwrap();
    // Visibility 60 s: the sweep interval is 1 s, so a receive woken only by
    // the sweep deadline would take about half a second on average.
    let q = queue(
        &dir,
        &Config::default()
            .slots(4)
            .slot_size(64)
            .visibility_timeout(Duration::from_secs(60)),
    );
    let path = q.path().to_str().unwrap().to_string();
    let mut peer = spawn("peer", &[&path]);
    let mut stdin = peer.stdin.take().unwrap();
    let mut tell = |cmd: &str| {
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    };
    let (mut recv_lat, mut room_lat) = (Vec::new(), Vec::new());
    runtime().block_on(async {
        for _ in 0..15 {
            // A task waits: its first poll found nothing ...
            let polls = Arc::new(AtomicU64::new(0));
            let task = tokio::spawn(counting_polls(polls.clone(), {
                let q = q.clone();
                async move { q.receive_async().await }
            }));
            until("the first poll", Duration::from_secs(10), || {
                polls.load(SeqCst) == 1
            })
            .await;
            // ... and the child's send wakes it: the only waker it left is
            // with the waiter thread, so the second poll comes from the
            // futex wake (or the sweep deadline, a second later).
            let t = Instant::now();
            tell("send");
            let lease = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("woken")
                .unwrap()
                .unwrap();
            recv_lat.push(t.elapsed());
            assert_eq!(lease.payload(), b"from the child");
            assert_eq!(polls.load(SeqCst), 2, "one wake, no polling");
            lease.ack().unwrap();
        }
        for v in 0..4u64 {
            q.send(&v.to_le_bytes()).unwrap();
        }
        for v in 0..15u64 {
            // Full: a send waits ...
            let polls = Arc::new(AtomicU64::new(0));
            let task = tokio::spawn(counting_polls(polls.clone(), {
                let q = q.clone();
                async move { q.send_async(&(100 + v).to_le_bytes()).await }
            }));
            until("the first poll", Duration::from_secs(10), || {
                polls.load(SeqCst) == 1
            })
            .await;
            // ... and the child's ack frees a slot and wakes it.
            let t = Instant::now();
            tell("ack");
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("woken")
                .unwrap()
                .unwrap();
            room_lat.push(t.elapsed());
            assert_eq!(polls.load(SeqCst), 2, "one wake, no polling");
        }
    });
    tell("quit");
    assert!(peer.wait().unwrap().success());
    let (r, s) = (median(recv_lat), median(room_lat));
    println!("median wake: receive {r:?}, send {s:?}");
    // Well before the waits that would end without a futex wake: the sweep
    // deadline (1 s) for a receive, the room re-check (100 ms) for a send.
    assert!(r < Duration::from_millis(200), "receive woken after {r:?}");
    assert!(s < Duration::from_millis(30), "send woken after {s:?}");
    assert_eq!(q.stats().in_flight, 0);
}

/// Names of this process's threads that are shmq waiter threads.
fn waiter_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| c.starts_with("shmq-") && c.ends_with("-wait"))
        .collect()
}

/// Wait until `n` waiter threads run (a thread names itself when it starts).
fn threads_at_least(n: usize) {
    let t = Instant::now();
    while waiter_threads().len() < n && t.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn waiter_threads_child(dir: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut report = String::new();
    for cancel in [false, true] {
        let path = std::path::Path::new(dir).join(format!("q-{cancel}"));
        let q = Queue::create(&path, &Config::default().slots(1)).unwrap();
        let started = rt.block_on(async {
            // A receive that waits, then completes or is dropped.
            let mut fut = pin!(q.receive_async());
            assert!(poll_once(fut.as_mut()).await.is_pending());
            threads_at_least(1);
            if !cancel {
                q.send("m").unwrap();
                fut.await.unwrap().ack().unwrap();
            }
            // A send that waits for room, then completes or is dropped.
            q.send("fill").unwrap();
            let clone = q.clone();
            let mut fut = pin!(clone.send_async("m"));
            assert!(poll_once(fut.as_mut()).await.is_pending());
            threads_at_least(2);
            if !cancel {
                q.try_receive().unwrap().ack().unwrap();
                fut.await.unwrap();
            }
            waiter_threads().len()
        });
        drop(q);
        let t = Instant::now();
        while !waiter_threads().is_empty() && t.elapsed() < Duration::from_secs(4) {
            std::thread::sleep(Duration::from_millis(5));
        }
        report += &format!(
            " cancel={cancel} started={started} left={} after_ms={}",
            waiter_threads().len(),
            t.elapsed().as_millis()
        );
    }
    println!("THREADS{report}");
}

#[test]
fn waiter_threads_start_on_demand_and_exit_with_the_last_handle() {
    // In a process of its own: other tests' threads would be counted here.
    let dir = tempfile::tempdir().unwrap();
    let mut c = spawn("threads", &[dir.path().to_str().unwrap()]);
    let rx = lines_with(&mut c, "THREADS");
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("report");
    assert!(c.wait().unwrap().success());
    println!("{line}");
    // Both threads ran; none is left once the handle's last clone is gone,
    // whether the waits completed or were cancelled (a thread asleep for a
    // cancelled task lets the handle go at its next timeout, at most 1 s),
    // before the idle exit (5 s) would have ended them anyway.
    for part in line.split(" cancel=").skip(1) {
        assert!(part.contains("started=2 "), "{line}");
        assert!(part.contains("left=0 "), "{line}");
    }
}

//! The bridges against a real nats-server: end to end through two queue
//! files, the headers and the de-duplication key, dead letters on the
//! receiving side, backpressure, exit codes.

mod support;

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use shmq::{Config, Queue};
use support::*;

fn send_all(q: &Queue, range: std::ops::Range<u64>) {
    for k in range {
        let p = payload(k);
        loop {
            match q.send(&p) {
                Ok(_) => break,
                Err(e) if e.is_full() => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("send on A: {e}"),
            }
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Whether the consumer `b` of `stream` has nothing pending and nothing
/// unacked.
fn consumer_idle(url: &str, stream: &str) -> bool {
    rt().block_on(async {
        let Ok(c) = async_nats::connect(url).await else {
            return false;
        };
        let js = jetstream::new(c);
        let Ok(s) = js.get_stream(stream).await else {
            return false;
        };
        let Ok(mut cons) = s
            .get_consumer::<jetstream::consumer::pull::Config>("b")
            .await
        else {
            return false;
        };
        match cons.info().await {
            Ok(i) => i.num_pending == 0 && i.num_ack_pending == 0,
            Err(_) => false,
        }
    })
}

#[test]
fn every_message_sent_on_a_arrives_on_b() {
    const N: usize = 20_000;
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (pa, pb) = (dir.path().join("a.q"), dir.path().join("b.q"));
    let qa = Queue::create(
        &pa,
        &Config::default()
            .slots(4096)
            .slot_size(128)
            .max_receives(1000),
    )
    .expect("A");
    let qb = Queue::create(&pb, &Config::default().slots(4096).slot_size(128)).expect("B");
    let mut out = Bridge::start(
        &out_args(&pa, &nats.url(), "E2E"),
        &dir.path().join("out.log"),
    );
    let mut inb = Bridge::start(
        &in_args(&pb, &nats.url(), "E2E"),
        &dir.path().join("in.log"),
    );
    let counter = Counter::start(&pb, N);
    send_all(&qa, 0..N as u64);
    wait_for_all(&counter, N, Duration::from_secs(20));
    let (lost, dups) = counter.tally(N);
    println!("end to end: sent {N}, lost {lost}, duplicates {dups}");
    assert_eq!(lost, 0);
    wait_until(Duration::from_secs(10), "A drained", || {
        let st = qa.stats();
        st.visible + st.in_flight + st.delayed == 0
    });
    assert_eq!(qa.stats().dead, 0, "nothing dead on A");
    assert_eq!(qb.stats().dead, 0, "nothing dead on B");
    assert!(consumer_idle(&nats.url(), "E2E"));
    // SIGTERM: both stop cleanly, exit 0, with a final status line.
    assert!(out.stop().expect("out ran").success(), "{}", out.log_text());
    assert!(inb.stop().expect("in ran").success(), "{}", inb.log_text());
    let last = out.log_text();
    let line = last
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a status line");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON status");
    assert_eq!(v["bridge"], "out");
    assert!(v["acked"].as_u64().expect("acked") >= N as u64);
    assert_eq!(v["lag"], 0);
}

/// The same two bridge processes, never restarted, carry on across a
/// server restart: messages sent before, during and after it all arrive.
#[test]
fn the_bridges_reconnect_by_themselves_after_a_server_restart() {
    const N: usize = 3000;
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (pa, pb) = (dir.path().join("a.q"), dir.path().join("b.q"));
    let qa = Queue::create(
        &pa,
        &Config::default()
            .slots(4096)
            .slot_size(128)
            .max_receives(1000),
    )
    .expect("A");
    Queue::create(&pb, &Config::default().slots(4096).slot_size(128)).expect("B");
    let mut out = Bridge::start(
        &out_args(&pa, &nats.url(), "RESTART"),
        &dir.path().join("out.log"),
    );
    let mut inb = Bridge::start(
        &in_args(&pb, &nats.url(), "RESTART"),
        &dir.path().join("in.log"),
    );
    let counter = Counter::start(&pb, N);
    send_all(&qa, 0..1000);
    wait_until(Duration::from_secs(30), "the first 1000 on B", || {
        counter.unique(1000) == 1000
    });
    send_all(&qa, 1000..2000);
    nats.restart();
    send_all(&qa, 2000..N as u64);
    wait_for_all(&counter, N, Duration::from_secs(20));
    let (lost, dups) = counter.tally(N);
    println!("server restart: sent {N}, lost {lost}, duplicates {dups}");
    assert_eq!(lost, 0, "out: {}\nin: {}", out.log_text(), inb.log_text());
    assert!(
        out.running() && inb.running(),
        "the same processes carried on"
    );
    assert!(
        out.log_text().contains("disconnected"),
        "the out-bridge saw the restart"
    );
    assert!(
        inb.log_text().contains("disconnected"),
        "the in-bridge saw the restart"
    );
}

/// A server that stops answering (SIGSTOP) for 3 s: the out-bridge extends
/// the leases of publishes waiting for their ack (lease 1 s), then, at the
/// publish timeout (2 s), nacks them on A; A delivers them again and they
/// are published again, and when the server wakes it stores each message
/// once: the second publish is a duplicate it drops. Nothing is lost.
#[test]
fn slow_publish_acks_extend_leases_then_nack_and_the_stream_drops_the_republish() {
    const N: usize = 4000;
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (pa, pb) = (dir.path().join("a.q"), dir.path().join("b.q"));
    let qa = std::sync::Arc::new(
        Queue::create(
            &pa,
            &Config::default()
                .slots(4096)
                .slot_size(128)
                .max_receives(1000),
        )
        .expect("A"),
    );
    Queue::create(&pb, &Config::default().slots(4096).slot_size(128)).expect("B");
    let mut out = Bridge::start(
        &out_args(&pa, &nats.url(), "FROZEN"),
        &dir.path().join("out.log"),
    );
    let _in = Bridge::start(
        &in_args(&pb, &nats.url(), "FROZEN"),
        &dir.path().join("in.log"),
    );
    let counter = Counter::start(&pb, N);
    send_all(&qa, 0..1000);
    wait_until(Duration::from_secs(30), "the first 1000 on B", || {
        counter.unique(1000) == 1000
    });
    // Keep messages coming while the server is frozen.
    let producer = {
        let qa = qa.clone();
        std::thread::spawn(move || {
            for k in 1000..N as u64 {
                send_all(&qa, k..k + 1);
                std::thread::sleep(Duration::from_micros(1000));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    nats.freeze(Duration::from_secs(3));
    producer.join().expect("producer");
    wait_for_all(&counter, N, Duration::from_secs(20));
    let (lost, dups) = counter.tally(N);
    assert!(out.stop().expect("ran").success());
    let st = out.last_status();
    println!("frozen server: lost {lost}, duplicates on B {dups}, out-bridge {st}");
    assert_eq!(lost, 0);
    assert!(st["extended"].as_u64().unwrap() > 0, "leases were extended");
    assert!(
        st["publish_failed"].as_u64().unwrap() > 0,
        "publishes timed out"
    );
    assert!(st["nacked"].as_u64().unwrap() > 0, "and were nacked on A");
    assert!(
        st["duplicates"].as_u64().unwrap() > 0,
        "the stream dropped republished ids"
    );
    assert!(
        qa.stats().redelivered > 0,
        "A delivered the nacked messages again"
    );
    assert_eq!(qa.stats().dead, 0);
}

#[test]
fn published_messages_carry_headers_and_the_dedup_key() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let pa = dir.path().join("a.q");
    let qa = Queue::create(&pa, &Config::default().slots(64).slot_size(128)).expect("A");
    let _out = Bridge::start(
        &out_args(&pa, &nats.url(), "HDR"),
        &dir.path().join("out.log"),
    );
    let ids: Vec<u64> = (0..3)
        .map(|k| qa.send(&payload(k)).expect("send"))
        .collect();
    wait_until(Duration::from_secs(20), "A drained", || {
        qa.stats().acked == 3
    });
    let url = nats.url();
    rt().block_on(async {
        let js = jetstream::new(async_nats::connect(&url).await.expect("connect"));
        let s = js
            .get_stream("HDR")
            .await
            .expect("the out-bridge made the stream");
        let info = &s.cached_info().config;
        assert_eq!(
            info.retention,
            jetstream::stream::RetentionPolicy::WorkQueue
        );
        assert!(info.duplicate_window >= Duration::from_secs(60));
        let c: jetstream::consumer::PullConsumer = s
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some("check".into()),
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut batch = c.fetch().max_messages(3).messages().await.expect("fetch");
        let mut k = 0;
        while let Some(m) = batch.next().await {
            let m = m.expect("message");
            let h = m.headers.as_ref().expect("headers");
            let get = |n: &str| h.get(n).map(|v| v.to_string()).unwrap_or_default();
            let want_id = format!("{:x}-{}", qa.identity(), ids[k]);
            assert_eq!(get("Nats-Msg-Id"), want_id);
            assert_eq!(get("Shmq-Id"), ids[k].to_string());
            assert_eq!(get("Shmq-Receives"), "1");
            assert_eq!(get("Shmq-Queue"), pa.display().to_string());
            assert!(get("Shmq-Sent-Unix-Ms").parse::<u64>().expect("a time") > 1_600_000_000_000);
            assert_eq!(&m.payload[..], &payload(k as u64)[..]);
            m.ack().await.expect("ack");
            k += 1;
        }
        assert_eq!(k, 3);
        // Published again with the same id (a bridge killed between the
        // publish ack and the local ack does this): the stream drops it.
        let again = jetstream::message::PublishMessage::build()
            .payload(payload(0).into())
            .message_id(format!("{:x}-{}", qa.identity(), ids[0]));
        let ack = js
            .send_publish("hdr.msgs", again)
            .await
            .expect("publish")
            .await
            .expect("ack");
        assert!(ack.duplicate, "the same Nats-Msg-Id is a duplicate");
    });
}

/// A message the consumers on B always fail crosses once and dies once on
/// B, while the rest arrive.
#[test]
fn a_poison_message_is_dead_lettered_exactly_once_on_b() {
    const N: usize = 500;
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (pa, pb) = (dir.path().join("a.q"), dir.path().join("b.q"));
    let qa = Queue::create(&pa, &Config::default().slots(1024).slot_size(128)).expect("A");
    let qb = Queue::create(
        &pb,
        &Config::default().slots(1024).slot_size(128).max_receives(3),
    )
    .expect("B");
    let _out = Bridge::start(
        &out_args(&pa, &nats.url(), "POISON"),
        &dir.path().join("out.log"),
    );
    let _in = Bridge::start(
        &in_args(&pb, &nats.url(), "POISON"),
        &dir.path().join("in.log"),
    );
    let counter = Counter::start(&pb, N);
    send_all(&qa, 0..N as u64 / 2);
    qa.send(b"poison: always fails").expect("send the poison");
    send_all(&qa, N as u64 / 2..N as u64);
    wait_until(
        Duration::from_secs(60),
        "every message on B and the poison dead",
        || counter.unique(N) == N && qb.stats().dead == 1,
    );
    wait_until(Duration::from_secs(20), "the consumer idle", || {
        consumer_idle(&nats.url(), "POISON")
    });
    let dead = qb.dead_letters();
    assert_eq!(dead.len(), 1, "one dead message on B");
    assert_eq!(dead[0].payload, b"poison: always fails");
    assert_eq!(dead[0].receives, 3, "B's max receives");
    assert_eq!(
        counter
            .poison_seen
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(qa.stats().dead, 0);
    let (lost, _) = counter.tally(N);
    assert_eq!(lost, 0);
}

fn envelopes(q: &Queue) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(d) = q.try_receive_into(&mut buf, None) {
        let end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an envelope");
        let head = String::from_utf8(buf[..end].to_vec()).expect("text head");
        assert!(head.starts_with("SHMQ-DEAD/1\r\n"), "{head}");
        out.push((head, buf[end + 4..].to_vec()));
        q.ack(d.receipt).expect("ack");
    }
    out
}

/// A full B answers Nak with a delay; on JetStream's last delivery the
/// message goes to the dead-letter queue with its reason, each once.
#[test]
fn a_full_queue_naks_then_dead_letters_at_max_deliver() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (pa, pb, pd) = (
        dir.path().join("a.q"),
        dir.path().join("b.q"),
        dir.path().join("dead.q"),
    );
    let qa = Queue::create(&pa, &Config::default().slots(64).slot_size(128)).expect("A");
    let qb = Queue::create(&pb, &Config::default().slots(4).slot_size(128))
        .expect("B (4 slots, no consumer)");
    let mut args = in_args(&pb, &nats.url(), "FULL");
    args.retain(|a| a != "--max-deliver" && a != "0");
    args.extend(
        [
            "--max-deliver",
            "3",
            "--full-delay",
            "50ms",
            "--dead-letters",
        ]
        .map(s)
        .into_iter()
        .chain([
            pd.display().to_string(),
            s("--create-slots"),
            s("64"),
            s("--create-slot-size"),
            s("1024"),
        ]),
    );
    let _out = Bridge::start(
        &out_args(&pa, &nats.url(), "FULL"),
        &dir.path().join("out.log"),
    );
    let inb = Bridge::start(&args, &dir.path().join("in.log"));
    send_all(&qa, 0..10);
    wait_until(Duration::from_secs(30), "4 on B and 6 dead letters", || {
        qb.stats().visible == 4
            && Queue::open(&pd)
                .map(|d| d.stats().visible == 6)
                .unwrap_or(false)
    });
    wait_until(Duration::from_secs(20), "the consumer idle", || {
        consumer_idle(&nats.url(), "FULL")
    });
    let dead = envelopes(&Queue::open(&pd).expect("dead-letter queue"));
    assert_eq!(dead.len(), 6, "{}", inb.log_text());
    let mut numbers: Vec<u64> = dead
        .iter()
        .map(|(_, p)| number(p).expect("payload"))
        .collect();
    let mut on_b: Vec<u64> = qb
        .peek(10)
        .iter()
        .map(|p| number(&p.payload).expect("payload"))
        .collect();
    numbers.append(&mut on_b);
    numbers.sort();
    assert_eq!(
        numbers,
        (0..10).collect::<Vec<_>>(),
        "each message once, on B or dead"
    );
    for (head, _) in &dead {
        assert!(
            head.contains("\r\nReason: local queue full at max deliver\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nDelivered: 3\r\n"), "{head}");
        assert!(head.contains("\r\nNats-Msg-Id: "), "{head}");
        assert!(head.contains("\r\nShmq-Id: "), "{head}");
    }
}

/// A message larger than B's slots can never go in: dead-lettered at once.
#[test]
fn a_message_too_large_for_b_is_dead_lettered_once() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (pa, pb, pd) = (
        dir.path().join("a.q"),
        dir.path().join("b.q"),
        dir.path().join("dead.q"),
    );
    let qa = Queue::create(&pa, &Config::default().slots(64).slot_size(512)).expect("A");
    Queue::create(&pb, &Config::default().slots(64).slot_size(64)).expect("B");
    Queue::create(&pd, &Config::default().slots(64).slot_size(1024)).expect("dead letters");
    let mut args = in_args(&pb, &nats.url(), "BIG");
    args.extend([s("--dead-letters"), pd.display().to_string()]);
    let _out = Bridge::start(
        &out_args(&pa, &nats.url(), "BIG"),
        &dir.path().join("out.log"),
    );
    let _in = Bridge::start(&args, &dir.path().join("in.log"));
    let counter = Counter::start(&pb, 10);
    send_all(&qa, 0..5);
    let big = format!("m{:010}-{}", 5, "y".repeat(200));
    qa.send(big.as_bytes()).expect("send the large one");
    send_all(&qa, 6..10);
    let qd = Queue::open(&pd).expect("dead letters");
    wait_until(Duration::from_secs(30), "9 on B and 1 dead letter", || {
        counter.unique(10) == 9 && qd.stats().visible == 1
    });
    wait_until(Duration::from_secs(20), "the consumer idle", || {
        consumer_idle(&nats.url(), "BIG")
    });
    let dead = envelopes(&qd);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].0.contains("exceed the local slot size of 64"),
        "{}",
        dead[0].0
    );
    assert_eq!(dead[0].1, big.as_bytes());
    assert_eq!(counter.seen.lock().unwrap()[5], 0);
}

fn run_bridge(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmq-bridge"))
        .args(args)
        .output()
        .expect("run shmq-bridge");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_say_what_failed() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.q");
    let url = nats.url();
    let (code, err) = run_bridge(&[
        "out",
        "--queue",
        missing.to_str().unwrap(),
        "--server",
        &url,
        "--stream",
        "X",
        "--subject",
        "x",
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("shmq create"), "{err}");

    // A stream that exists on another subject: JetStream's answer, code 4.
    let pa = dir.path().join("a.q");
    Queue::create(&pa, &Config::default().slots(16).slot_size(64)).expect("A");
    let mut first = Bridge::start(&out_args(&pa, &url, "TAKEN"), &dir.path().join("out.log"));
    let first_log = dir.path().join("out.log");
    wait_until(Duration::from_secs(20), "the first bridge up", || {
        std::fs::read_to_string(&first_log)
            .unwrap_or_default()
            .contains("shmq-bridge out:")
    });
    let (code, err) = run_bridge(&[
        "out",
        "--queue",
        pa.to_str().unwrap(),
        "--server",
        &url,
        "--stream",
        "TAKEN",
        "--subject",
        "other",
    ]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--subject"), "{err}");
    assert!(first.stop().expect("ran").success());

    let (code, _) = run_bridge(&["out", "--queue", "a.q"]);
    assert_eq!(code, Some(2), "missing arguments are a usage error");
    let _ = Path::new("unused");
}

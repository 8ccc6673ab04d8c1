//! A single-thread loop for profilers (valgrind --tool=callgrind, perf):
//! `profile single N SIZE` runs send -> try_receive_into -> ack N times;
//! `profile batch N SIZE` runs send_batch -> receive_batch -> ack_batch of
//! 64 messages N / 64 times. Default queue config (checksums on).

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("single");
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let size: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir().expect("temp dir");
    let q = shmq::Queue::create(
        dir.path().join("p.q"),
        &shmq::Config::default().slots(1024).slot_size(size as u32),
    )
    .expect("create");
    let msg = vec![7u8; size];
    let t = Instant::now();
    if mode == "batch" {
        let msgs = vec![msg.as_slice(); 64];
        let (mut ids, mut bufs, mut got, mut failed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n / 64 {
            q.send_batch(&msgs, &mut ids).expect("send");
            let k = q.receive_batch(&mut bufs, &mut got, 64, Duration::ZERO, None);
            assert_eq!(q.ack_batch(got.iter().map(|d| d.receipt), &mut failed), k);
        }
    } else {
        let mut buf = Vec::with_capacity(size);
        for _ in 0..n {
            q.send(msg.as_slice()).expect("send");
            let d = q.try_receive_into(&mut buf, None).expect("receive");
            q.ack(d.receipt).expect("ack");
        }
    }
    let e = t.elapsed();
    println!(
        "{mode} {size} B: {n} messages in {e:?}, {:.0} ns/message",
        e.as_nanos() as f64 / n as f64
    );
}

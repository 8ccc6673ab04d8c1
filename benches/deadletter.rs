//! Cost of dead-lettering, with max receives 1:
//!
//! - `nack_at_max_receives`: N messages, each delivered once, are nacked;
//!   each nack dead-letters at once (time per nack);
//! - `expired_lease_swept`: N leases with a 20 ms deadline expire (untimed
//!   40 ms pause); empty receives then sweep the queue, and the sweep
//!   dead-letters every expired lease it passes (time per dead letter,
//!   including a `stats()` scan every lap to see when all N are dead).
//!
//! Each iteration ends with the dead messages purged (untimed).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use shmq::{Config, Nacked, Queue};

const N: usize = 4096;

fn deadletter(c: &mut Criterion) {
    let mut group = c.benchmark_group("deadletter");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(3))
        .measurement_time(Duration::from_millis(10))
        .throughput(Throughput::Elements(N as u64));
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = Config::default()
        .slots(N as u32)
        .slot_size(64)
        .visibility_timeout(Duration::from_millis(4))
        .max_receives(1);
    let q = Queue::create(dir.path().join("bench.q"), &cfg).expect("create");
    let msg = [7u8; 64];
    let mut buf = Vec::with_capacity(64);
    let mut receipts = Vec::with_capacity(N);
    group.bench_function("nack_at_max_receives", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                receipts.clear();
                for _ in 0..N {
                    q.send(&msg).expect("send");
                    // A long lease: the nacks below must find it held.
                    let d = q
                        .try_receive_into(
                            &mut buf,
                            Some(shmq::Visibility::new(Duration::from_secs(60)).unwrap()),
                        )
                        .expect("receive");
                    receipts.push(d.receipt);
                }
                let start = Instant::now();
                for &rc in &receipts {
                    let r = q.nack(rc, Duration::ZERO).expect("nack");
                    debug_assert_eq!(r, Nacked::DeadLettered);
                }
                total += start.elapsed();
                assert_eq!(q.purge_all(usize::MAX).expect("purge"), N);
            }
            total
        })
    });
    group.bench_function("expired_lease_swept", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let before = q.stats().dead_lettered;
                for _ in 0..N {
                    q.send(&msg).expect("send");
                    q.try_receive_into(
                        &mut buf,
                        Some(shmq::Visibility::new(Duration::from_millis(20)).unwrap()),
                    )
                    .expect("receive");
                }
                std::thread::sleep(Duration::from_millis(40));
                let start = Instant::now();
                let mut tries = 0u64;
                loop {
                    assert!(q.try_receive_into(&mut buf, None).is_none());
                    tries += 1;
                    if tries % (N as u64 / 32) == 0 && q.stats().dead_lettered >= before + N as u64
                    {
                        break;
                    }
                    assert!(tries < 10_000_000, "the sweep did not dead-letter");
                }
                total += start.elapsed();
                assert_eq!(q.purge_all(usize::MAX).expect("purge"), N);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, deadletter);
criterion_main!(benches);

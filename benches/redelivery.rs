//! Cost of redelivering expired leases: N messages are leased with a 20 ms
//! lease and left to expire (untimed: a 40 ms pause, past the deadline plus
//! the 10 ms sweep interval); the timed part receives all N again, each found by the sweep
//! (docs/design.md §5.3: takeover of an expired lease), and acks them.
//! Time per redelivered message (receive + ack).

use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use shmq::{Config, Queue};

fn redelivery(c: &mut Criterion) {
    let mut group = c.benchmark_group("redeliver_expired");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(3))
        .measurement_time(Duration::from_millis(10));
    for n in [1024usize, 4096] {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = Config::default()
            .slots(n as u32)
            .slot_size(64)
            .visibility_timeout(Duration::from_millis(4))
            .max_receives(1000);
        let q = Queue::create(dir.path().join("bench.q"), &cfg).expect("create");
        let msg = [7u8; 64];
        let mut buf = Vec::with_capacity(64);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("messages", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..n {
                        q.send(&msg).expect("send");
                    }
                    for _ in 0..n {
                        q.try_receive_into(
                            &mut buf,
                            Some(shmq::Visibility::new(Duration::from_millis(20)).unwrap()),
                        )
                        .expect("first delivery");
                    }
                    std::thread::sleep(Duration::from_millis(40));
                    let start = Instant::now();
                    let mut got = 0;
                    while got < n {
                        if let Some(d) = q.try_receive_into(&mut buf, None) {
                            debug_assert!(d.receives >= 2);
                            q.ack(d.receipt).expect("ack");
                            got += 1;
                        }
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, redelivery);
criterion_main!(benches);

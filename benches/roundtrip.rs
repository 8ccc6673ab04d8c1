//! Single-thread cost of send -> receive -> ack on one queue file.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmq::{Config, Queue};

fn roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_receive_ack");
    for size in [64usize, 1024, 4096] {
        let dir = tempfile::tempdir().expect("temp dir");
        let q = Queue::create(dir.path().join("bench.q"), &Config::new(1024, 4096)).expect("create");
        let msg = vec![7u8; size];
        let mut buf = Vec::with_capacity(size);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                q.send(msg.as_slice()).expect("send");
                let d = q.try_receive_into(&mut buf, None).expect("receive");
                q.ack(d.receipt).expect("ack");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);

//! Single-thread cost of send -> receive -> ack on one queue file, for
//! payloads of 64 B, 1 KiB and 4 KiB: one message at a time (with payload
//! checksums on, the default, and off), and in batches of 8 and 64 through
//! `send_batch` / `receive_batch` / `ack_batch` (time per message).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmq::{Config, Queue};

const SIZES: [usize; 3] = [64, 1024, 4096];

fn roundtrip(c: &mut Criterion) {
    for checksums in [true, false] {
        let name = if checksums {
            "send_receive_ack"
        } else {
            "send_receive_ack_nocrc"
        };
        let mut group = c.benchmark_group(name);
        for size in SIZES {
            let dir = tempfile::tempdir().expect("temp dir");
            let cfg = Config::default()
                .slots(1024)
                .slot_size(4096)
                .checksums(checksums);
            let q = Queue::create(dir.path().join("bench.q"), &cfg).expect("create");
            let msg = vec![7u8; size];
            let mut buf = Vec::with_capacity(size);
            group.throughput(Throughput::Bytes(size as u64));
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
}

/// The owned-lease form (`try_receive` -> `Lease` -> `lease.ack()`, which
/// clones the queue handle and allocates the payload per message) beside
/// the buffer-reusing form above, 64 B: what owning a lease costs.
fn roundtrip_lease(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_lease_ack");
    let dir = tempfile::tempdir().expect("temp dir");
    let q = Queue::create(
        dir.path().join("bench.q"),
        &Config::default().slots(1024).slot_size(4096),
    )
    .expect("create");
    let msg = vec![7u8; 64];
    group.throughput(Throughput::Bytes(64));
    group.bench_function("64", |b| {
        b.iter(|| {
            q.send(msg.as_slice()).expect("send");
            q.try_receive().expect("receive").ack().expect("ack");
        })
    });
    group.finish();
}

fn roundtrip_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_receive_ack_batch");
    for size in SIZES {
        for batch in [8usize, 64] {
            let dir = tempfile::tempdir().expect("temp dir");
            let q = Queue::create(
                dir.path().join("bench.q"),
                &Config::default().slots(1024).slot_size(4096),
            )
            .expect("create");
            let msg = vec![7u8; size];
            let msgs = vec![msg.as_slice(); batch];
            let (mut ids, mut bufs, mut got, mut failed) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            group.throughput(Throughput::Bytes((size * batch) as u64));
            let id = BenchmarkId::new(format!("{size}B"), format!("batch{batch}"));
            group.bench_function(id, |b| {
                b.iter(|| {
                    q.send_batch(&msgs, &mut ids).expect("send");
                    let n = q.receive_batch(&mut bufs, &mut got, batch, Duration::ZERO, None);
                    assert_eq!(n, batch);
                    let acked = q.ack_batch(got.iter().map(|d| d.receipt), &mut failed);
                    assert_eq!(acked, batch);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, roundtrip, roundtrip_lease, roundtrip_batch);
criterion_main!(benches);

//! Competing consumers: one producer process, 1, 2, 4 and 8 consumer
//! processes, each spending 10 µs of busy work per message before its ack.
//! Ideal scaling is consumers x 100k msg/s until the cores run out: on a
//! 2-core machine it flattens at 2 (and the producer takes its share).

mod common;

use std::time::Duration;

use common::{Fleet, Spec};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

fn consumers(c: &mut Criterion) {
    let mut group = c.benchmark_group("competing_consumers_10us");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for n in [1u32, 2, 4, 8] {
        let mut fleet = Fleet::start(Spec {
            producers: 1,
            consumers: n,
            batch: 1,
            size: 64,
            work_ns: 10_000,
            slots: 1024,
        });
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| fleet.run(iters))
        });
    }
    group.finish();
}

fn main() {
    common::child_main();
    let mut c = Criterion::default().configure_from_args();
    consumers(&mut c);
    c.final_summary();
}

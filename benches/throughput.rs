//! Cross-process throughput: P producer processes and C consumer processes
//! on one queue file, batches of 1, 8 and 64, payloads of 64 B, 1 KiB and
//! 4 KiB. Every message is sent, leased, and acked (one lease and one ack per
//! message; with batches, `send_batch` / `receive_batch` / `ack_batch`).
//!
//! The bench binary re-executes itself for the children (benches/common).
//! On a 2-core machine 2/2 and 4/4 oversubscribe the cores: those figures say
//! how shmq behaves when processes outnumber cores, not how it scales.
//!
//! `SHMQ_BENCH_QUICK=1` runs only 1/1 (batches 1 and 64, 64 B).

mod common;

use std::time::Duration;

use common::{Fleet, Spec};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

fn throughput(c: &mut Criterion) {
    let quick = std::env::var_os("SHMQ_BENCH_QUICK").is_some();
    let topologies: &[(u32, u32)] = if quick {
        &[(1, 1)]
    } else {
        &[(1, 1), (2, 2), (4, 4)]
    };
    let batches: &[usize] = if quick { &[1, 64] } else { &[1, 8, 64] };
    let sizes: &[usize] = if quick { &[64] } else { &[64, 1024, 4096] };
    for &(p, cons) in topologies {
        let mut group = c.benchmark_group(format!("xproc_{p}p{cons}c"));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_millis(1500))
            .throughput(Throughput::Elements(1));
        for &size in sizes {
            for &batch in batches {
                let mut fleet = Fleet::start(Spec {
                    producers: p,
                    consumers: cons,
                    batch,
                    size,
                    work_ns: 0,
                    slots: 1024,
                });
                group.bench_function(
                    BenchmarkId::new(format!("{size}B"), format!("batch{batch}")),
                    |b| b.iter_custom(|iters| fleet.run(iters)),
                );
            }
        }
        group.finish();
    }
}

fn main() {
    common::child_main();
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c);
    c.final_summary();
}

//! The cost of one message checksum (what a send computes and a receive
//! verifies, `message_crc` in src/ring/mod.rs), for payloads of 8 B to
//! 64 KiB, under each candidate:
//!
//! - `crc32fast+seal`: CRC-32 (IEEE) of the payload by crc32fast, XORed with
//!   a splitmix64 mix of the id and the length: format 2's checksum for
//!   payloads over 256 bytes (and for all sizes before issue 15).
//! - `crc32c+seal`: the same with CRC-32C (Castagnoli) by the crc32c crate
//!   (the SSE4.2 `crc32` instruction on x86_64, chosen at run time; a table
//!   elsewhere).
//! - `crc32c(id,len,payload)`: CRC-32C of the id and the length (12 bytes,
//!   little-endian) followed by the payload, by the crc32c crate: the seal
//!   folded into the CRC, two calls.
//! - `sse42-inline`: the same value as the previous one, computed by an
//!   inlined loop of `crc32` instructions (x86_64 with SSE4.2 only): what
//!   the crate's per-call overhead costs on short payloads. Format 2's
//!   checksum for payloads up to 256 bytes.
//!
//! The candidates are copied here (`message_crc` is private to the
//! library); the effect on a whole send -> receive -> ack is `cargo bench
//! --bench roundtrip` (below the noise of a shared VM: BENCHMARKS.md counts
//! its instructions instead). Each payload size is one group, so the candidates alternate
//! within a run. The id changes every iteration, as it does in a queue.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

// 128, 384 and 512 place the crossing of the two fastest candidates.
const SIZES: [usize; 9] = [8, 64, 128, 256, 384, 512, 1024, 4096, 65536];

/// The seal of format 2 (a copy of src/ring/mod.rs's).
fn seal(id: u64, len: u32) -> u32 {
    let mut x = id ^ (u64::from(len) << 40 | u64::from(len)) ^ 0x5348_4d51_0000_0001;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x ^ (x >> 32)) as u32
}

fn crc32fast_seal(id: u64, p: &[u8]) -> u32 {
    crc32fast::hash(p) ^ seal(id, p.len() as u32)
}

fn crc32c_seal(id: u64, p: &[u8]) -> u32 {
    crc32c::crc32c(p) ^ seal(id, p.len() as u32)
}

fn header(id: u64, len: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..8].copy_from_slice(&id.to_le_bytes());
    h[8..].copy_from_slice(&len.to_le_bytes());
    h
}

fn crc32c_prefixed(id: u64, p: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header(id, p.len() as u32)), p)
}

/// The loop of `crc32c_sse42` in src/ring/mod.rs.
#[cfg(target_arch = "x86_64")]
fn sse42_inline(id: u64, p: &[u8]) -> u32 {
    // The intrinsics are safe to call here from Rust 1.86 on, unsafe before.
    #[allow(unused_unsafe)]
    #[target_feature(enable = "sse4.2")]
    unsafe fn run(id: u64, p: &[u8]) -> u32 {
        use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
        let mut words = p.chunks_exact(8);
        // SAFETY: the intrinsics need SSE4.2, which the caller checked.
        unsafe {
            let mut c = _mm_crc32_u64(u64::from(u32::MAX), id);
            c = u64::from(_mm_crc32_u32(c as u32, p.len() as u32));
            for w in &mut words {
                let mut b = [0u8; 8];
                b.copy_from_slice(w);
                c = _mm_crc32_u64(c, u64::from_le_bytes(b));
            }
            let mut c = c as u32;
            for &b in words.remainder() {
                c = _mm_crc32_u8(c, b);
            }
            !c
        }
    }
    assert!(is_x86_feature_detected!("sse4.2"));
    // SAFETY: SSE4.2 is present (checked on the line above).
    unsafe { run(id, p) }
}

/// One candidate at one size. Generic, so that the candidate is called
/// directly (and may be inlined), as `message_crc` is in the ring.
fn one<M, F>(group: &mut criterion::BenchmarkGroup<'_, M>, name: &str, payload: &[u8], f: F)
where
    M: criterion::measurement::Measurement,
    F: Fn(u64, &[u8]) -> u32,
{
    let mut id = 1u64;
    group.bench_with_input(BenchmarkId::from_parameter(name), payload, |b, p| {
        b.iter(|| {
            id = id.wrapping_add(1);
            f(black_box(id), black_box(p))
        })
    });
}

fn checksum(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    let sse42 = is_x86_feature_detected!("sse4.2");
    for size in SIZES {
        let payload: Vec<u8> = (0..size).map(|i| (i * 131 + 7) as u8).collect();
        let mut group = c.benchmark_group(format!("checksum/{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        one(&mut group, "crc32fast+seal", &payload, crc32fast_seal);
        one(&mut group, "crc32c+seal", &payload, crc32c_seal);
        one(
            &mut group,
            "crc32c(id,len,payload)",
            &payload,
            crc32c_prefixed,
        );
        #[cfg(target_arch = "x86_64")]
        if sse42 {
            assert_eq!(sse42_inline(9, &payload), crc32c_prefixed(9, &payload));
            one(&mut group, "sse42-inline", &payload, sse42_inline);
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = checksum
}
criterion_main!(benches);

//! Corrupt files (issue 3, torture item 4).
//!
//! - Every byte of a small queue file (4 slots of 64 bytes: 4608 bytes)
//!   flipped in turn, twice (all bits, then the lowest bit): open, recover
//!   twice, receive, ack/nack/extend, send, peek, stats and the dead-letter
//!   calls. No panic, no hang (a watchdog aborts a case that takes more than
//!   10 s), and the second recover pass changes nothing. A flipped byte in
//!   the checked part of the header (0..68) makes `open` refuse the file.
//! - A seeded random variant: many words of the file overwritten at once
//!   with random or plausible values (`SHMQ_FUZZ_CASES`, default 2 000).
//! - Truncating the file under a process that maps it: the process dies of
//!   SIGBUS on its next touch of a page past the new end; `open` refuses the
//!   short file; restoring the length gives zero pages, which recover
//!   quarantines (the messages in them are gone).
//!
//! The same exercise runs under libFuzzer in `fuzz/` (cargo fuzz).

mod support;

#[path = "support/exercise.rs"]
mod exercise;

/// Bytes before slot 0: the header page and the process registration
/// table (docs/design.md §2).
const HEADER_LEN: usize = 36864;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use exercise::{baseline, exercise};
use shmq::{recover, Config, Error, Queue};
use support::*;

/// Aborts the process, naming the case, if one case runs longer than 10 s.
fn watchdog() -> Arc<AtomicU64> {
    let case = Arc::new(AtomicU64::new(0));
    let c = case.clone();
    std::thread::spawn(move || {
        let mut last = u64::MAX;
        loop {
            std::thread::sleep(Duration::from_secs(10));
            let now = c.load(Relaxed);
            if now == last && now != u64::MAX {
                eprintln!("HANG: case {now} ran for more than 10 s");
                std::process::abort();
            }
            last = now;
        }
    });
    case
}

#[test]
fn every_byte_flipped_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    assert_eq!(base.len(), HEADER_LEN + 4 * 128);
    let path = dir.path().join("case.q");
    let progress = watchdog();
    let (mut refused, mut repaired, mut delivered) = (0, 0, 0);
    // Every byte of the header page and of the slots; of the registration
    // table (zero but for the entries of the processes that used the
    // queue), the first two entries and the last.
    let bytes_flipped: Vec<usize> = (0..4096 + 64).chain(HEADER_LEN - 32..base.len()).collect();
    for (pass, mask) in [0xffu8, 0x01].into_iter().enumerate() {
        for &at in &bytes_flipped {
            progress.store((pass * base.len() + at) as u64, Relaxed);
            let mut bytes = base.clone();
            bytes[at] ^= mask;
            let out = std::panic::catch_unwind(|| exercise(&path, &bytes, true))
                .unwrap_or_else(|_| panic!("byte {at} ^ {mask:#04x}: panicked"));
            if at < 68 {
                assert!(
                    out.refused.is_some(),
                    "byte {at} ^ {mask:#04x} of the checked header was accepted"
                );
            }
            refused += u64::from(out.refused.is_some());
            repaired += u64::from(out.repaired > 0);
            delivered += out.delivered as u64;
        }
    }
    progress.store(u64::MAX, Relaxed);
    eprintln!(
        "byte flips: {} cases, {refused} refused by open, {repaired} repaired by recover, \
         {delivered} messages delivered; no panic, no hang, recover idempotent",
        2 * bytes_flipped.len()
    );
}

/// Random multi-word damage, seeded (`SHMQ_SEED` replays a run).
fn random_cases(cases: u64) {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path());
    let path = dir.path().join("case.q");
    let seed = seed("random file damage");
    let mut rng = Rng::new(seed);
    let progress = watchdog();
    let words = base.len() / 8;
    for case in 0..cases {
        progress.store(case, Relaxed);
        let mut bytes = base.clone();
        for _ in 0..rng.range(1, 16) {
            // Mostly the mutable header words (bytes 128..1024: cursors,
            // counters, futex words, the full-queue hint, the published
            // head) and the slot control words.
            let w = match rng.below(4) {
                0 => 16 + rng.below(112) as usize,
                1 | 2 => HEADER_LEN / 8 + rng.below((words - HEADER_LEN / 8) as u64) as usize,
                _ => rng.below(words as u64) as usize,
            };
            let old = u64::from_le_bytes(bytes[w * 8..w * 8 + 8].try_into().unwrap());
            let new = match rng.below(5) {
                0 => rng.next_u64(),
                1 => old ^ (1 << rng.below(64)),
                2 => old.wrapping_add(rng.range(1, 3)),
                3 => (old & !0xff) | rng.below(8),
                _ => old.wrapping_sub(rng.range(1, 3) << 8),
            };
            bytes[w * 8..w * 8 + 8].copy_from_slice(&new.to_le_bytes());
        }
        std::panic::catch_unwind(|| exercise(&path, &bytes, case % 8 == 0))
            .unwrap_or_else(|_| panic!("case {case} of seed {seed} panicked"));
    }
    progress.store(u64::MAX, Relaxed);
    eprintln!("random file damage: {cases} cases (seed {seed}), no panic, no hang");
}

#[test]
fn random_damage_short() {
    random_cases(2000);
}

#[test]
#[ignore = "long form: scripts/torture-long.sh"]
fn random_damage_long() {
    random_cases(env_u64("SHMQ_FUZZ_CASES", 200_000));
}

// ---------------------------------------------------------------- truncation

#[test]
fn child() {
    let Some(role) = role() else { return };
    assert_eq!(role, "truncated");
    let dir = PathBuf::from(env_str("T_DIR"));
    let q = Queue::open(dir.join("q")).unwrap();
    Journal::create(&dir.join("ready")).log(format_args!("ready"));
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(1),
        || { dir.join("go").exists() }
    ));
    // Every slot is past the new end of the file: this touches one.
    let _ = q.send(&b"into the void"[..]);
    let _ = q.stats();
    std::process::exit(0);
}

#[test]
fn truncating_the_file_under_a_process_kills_it_with_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = Queue::create(&path, &Config::default().slots(4).slot_size(64)).unwrap();
    q.send(&b"kept in the header page? no: in slot 0"[..])
        .unwrap();
    drop(q);
    let len = std::fs::metadata(&path).unwrap().len();
    let log = dir.path().join("child.out");
    let mut kid = spawn(
        "truncated",
        &[("T_DIR", dir.path().display().to_string())],
        &log,
    );
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(1),
        || { dir.path().join("ready").exists() }
    ));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(HEADER_LEN as u64).unwrap();
    std::fs::write(dir.path().join("go"), "").unwrap();
    let st = kid.wait().unwrap();
    assert_eq!(
        st.signal(),
        Some(libc::SIGBUS),
        "{st}: {}",
        tail(&log, 2000)
    );

    // open refuses the short file...
    match Queue::open(&path) {
        Err(Error::Corrupt { what, .. }) => assert!(what.contains("header says"), "{what}"),
        other => panic!("open of a truncated file: {:?}", other.map(|_| ())),
    }
    // ...and, the length restored, sees zero pages: corrupt slots, which
    // recover quarantines; the message that was in slot 0 is gone.
    f.set_len(len).unwrap();
    let q = Queue::open(&path).unwrap();
    let rep = recover::apply(&q, shmq::now_ms(), false);
    assert_eq!(rep.count(recover::Class::Corrupt), 4);
    assert!(q.try_receive().is_none());
    assert_eq!(q.dead_letters().len(), 4);
    assert_eq!(q.purge_all(10).unwrap(), 4);
    q.send(&b"works again"[..]).unwrap();
    assert_eq!(q.try_receive().unwrap().payload(), b"works again");
}

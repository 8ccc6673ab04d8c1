//! libFuzzer target: a queue file built from arbitrary bytes, then open,
//! recover twice (the second pass must change nothing), receive, ack, nack,
//! extend, send, peek, stats and the dead-letter calls (the exercise of
//! tests/corrupt.rs). A panic, a hang (libFuzzer's -timeout) or, under
//! AddressSanitizer (cargo fuzz's default), a memory error is a finding.
//!
//! The input's first byte picks the mode; its bit 1 adds a blocking receive
//! that parks on the futex word for up to 1 ms (slow, so not every time).
//! - even: patch mode. The rest is a list of (offset u16 LE, value u8)
//!   triples written over a valid 4-slot queue file whose slots hold a
//!   leased, a dead, a visible and a delayed message, so the damage gets
//!   past the header checksum into the slot and cursor words.
//! - odd: raw mode. The rest is the whole file, header included (the
//!   header parser and the length checks). A file shorter than 128 bytes or
//!   with a zero version word would make `open` wait 2 s for its creator
//!   (NotInitialised); those are skipped.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/exercise.rs"]
mod exercise;

struct Env {
    _dir: PathBuf,
    path: PathBuf,
    base: Vec<u8>,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("shmq-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fuzz dir");
        let base = exercise::baseline(&dir);
        Env {
            path: dir.join("case.q"),
            _dir: dir,
            base,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        let mut b = env.base.clone();
        for t in rest.chunks_exact(3) {
            let off = usize::from(u16::from_le_bytes([t[0], t[1]])) % b.len();
            b[off] = t[2];
        }
        b
    } else {
        if rest.len() < 128 || rest[8..12] == [0, 0, 0, 0] {
            return;
        }
        rest.to_vec()
    };
    exercise::exercise(&env.path, &bytes, mode & 2 != 0);
});

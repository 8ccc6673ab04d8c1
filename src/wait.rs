//! Parking on a futex word in the mapping (docs/design.md §6).
//!
//! The futex calls omit `FUTEX_PRIVATE_FLAG`: the word lives in a shared file
//! mapping, and the kernel keys shared futexes by the backing page, so waiters
//! and wakers in different processes meet.

use crate::sync::AtomicU32;
use std::time::Duration;

/// Sleep while `*word == expected`, at most `timeout`. Returns on a wake, a
/// timeout, a signal, or at once if the word already differs.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned 4-byte atomic for the duration of the
    // call (it borrows the mapping); `ts` is a valid relative timeout; the
    // remaining arguments are ignored by FUTEX_WAIT.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wake every waiter parked on `word`.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned 4-byte atomic; FUTEX_WAKE only reads
    // the address to find waiters; i32::MAX wakes all of them.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

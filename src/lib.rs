//! shmq: a durable, lock-free message queue that processes on one host share
//! through a memory-mapped file, with no broker.
//!
//! Linux only: it parks on futex(2) words and reads Linux's clock and boot id.
//!
//! Senders put messages into fixed-size slots of the file; receivers lease
//! them for a visibility timeout and ack (delete), nack (release) or extend
//! the lease. A message not acked by its deadline is redelivered; after
//! `max_receives` deliveries it is dead-lettered, kept for inspection,
//! redrive or purge. Any process can be killed at any instruction: a message
//! whose send returned `Ok` is never lost, and nothing stays stuck.
//!
//! ```
//! use shmq::{Config, Queue};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("orders.q");
//! let q = Queue::create(&path, &Config::default().slots(1024).slot_size(256))?;
//! let id = q.send(b"order 42").unwrap();
//!
//! // Another process would call Queue::open(&path) and receive the same way.
//! let lease = q.receive(Duration::from_secs(1)).expect("a message");
//! assert_eq!(lease.payload(), b"order 42");
//! assert_eq!(lease.id(), id);
//! lease.ack()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The file format, the protocol and its crash analysis are in
//! `docs/design.md`.
//!
//! # Features
//!
//! No feature is on by default. The `shmq` command-line tool is its own
//! crate, `shmq-cli`.
//!
//! - `tokio`: async receive and send (`Queue::receive_async`,
//!   `Queue::send_async`, `Queue::incoming_stream`, a `futures_core::Stream`),
//!   cancellation-safe, waiting on the queue's futex words through one
//!   waiter thread per handle and word rather than a thread per task. Works
//!   with any executor; named for the runtime its tests use.
//! - `failpoints`: named crash points that abort (or stop) the process where
//!   the `SHMQ_FAILPOINT` environment variable says, for the crash tests
//!   (`cargo test --features failpoints --test failpoints`). Never enable it
//!   in production.
//!
//! The loom models of the lock-free core are not a feature: they build with
//! `RUSTFLAGS="--cfg loom"` (see `loom-tests/`).
#![deny(unsafe_op_in_unsafe_fn)]
// Under loom only the core is compiled; the file-backed parts that use the
// rest of it are not.
#![cfg_attr(loom, allow(dead_code, unused_imports))]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "shmq supports Linux only: it uses futex(2), CLOCK_MONOTONIC_COARSE and /proc/sys/kernel/random/boot_id"
);

#[cfg(all(feature = "tokio", not(loom)))]
mod asynk;
mod batch;
mod clock;
mod error;
mod failpoint;
mod layout;
#[cfg(not(loom))]
mod lease;
#[cfg(not(loom))]
mod observe;
#[cfg(not(loom))]
mod open;
#[cfg(not(loom))]
mod queue;
#[cfg(not(loom))]
pub mod recover;
mod registry;
mod ring;
mod slot;
mod sync;
#[cfg(not(loom))]
mod wait;

#[cfg(all(feature = "tokio", not(loom)))]
pub use asynk::{IncomingStream, ReceiveFuture, SendFuture};
pub use clock::now_ms;
pub use error::{Error, ParseReceiptError, Result, SendError};
#[cfg(not(loom))]
pub use lease::Lease;
#[cfg(not(loom))]
pub use observe::{is_queue_file, QueueView};
#[cfg(not(loom))]
pub use open::OpenOptions;
#[cfg(not(loom))]
pub use queue::{
    Config, DeadLetter, DeadLetterEnvelope, Incoming, Peeked, Queue, Stats, Visibility, MAX_DELAY,
    MAX_LEASE,
};
pub use ring::{DeadReason, Delivery, Nacked, Receipt};

// The README's code is compiled (not run: it uses /dev/shm and waits for
// messages) with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The core and its test plumbing, for the `shmq` tool, the loom models and
/// the tests: not part of the supported API, and may change in any release.
#[doc(hidden)]
pub mod internal {
    pub use crate::clock::{boot_id, pid_alive};
    pub use crate::failpoint::FAILPOINTS;
    #[cfg(all(feature = "failpoints", not(loom)))]
    pub use crate::failpoint::{set_point_hook, set_sync_hook, PointHook, SyncHook};
    pub use crate::layout::{HeapMemory, Memory};
    #[cfg(not(loom))]
    pub use crate::queue::MapMemory;
    pub use crate::registry::{
        boot_tag, new_table, register, reset_all, unregister, verdict, Identity, Verdict,
        VerdictCache, CACHE_MS, ENTRIES, ENTRY_WORDS, TABLE_WORDS,
    };
    #[cfg(not(loom))]
    pub use crate::registry::{fork_epoch, os_probe, Registration};
    pub use crate::ring::{no_wake, Params, Ring, SlotInfo, SyncOps, SYNC_FAILED};
    pub use crate::slot::St;
}

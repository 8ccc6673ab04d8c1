//! shmq: a durable, lock-free message queue that processes on one host share
//! through a memory-mapped file, with no broker.
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
#![deny(unsafe_op_in_unsafe_fn)]
// Under loom only the core is compiled; the file-backed parts that use the
// rest of it are not.
#![cfg_attr(loom, allow(dead_code, unused_imports))]
#![warn(clippy::undocumented_unsafe_blocks)]

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
mod queue;
#[cfg(not(loom))]
pub mod recover;
mod ring;
mod slot;
mod sync;
#[cfg(not(loom))]
mod wait;

#[cfg(all(feature = "tokio", not(loom)))]
pub use asynk::{IncomingStream, ReceiveFuture, SendFuture};
pub use clock::{boot_id, now_ms, pid_alive};
pub use error::{Error, ParseReceiptError, Result, SendError};
pub use failpoint::FAILPOINTS;
pub use layout::{HeapMemory, Memory};
#[cfg(not(loom))]
pub use lease::Lease;
#[cfg(not(loom))]
pub use queue::{
    Config, DeadLetter, Incoming, MapMemory, Peeked, Queue, Stats, MAX_DELAY, MAX_LEASE,
};
pub use ring::{no_wake, DeadReason, Delivery, Nacked, Params, Receipt, Ring, SlotInfo, GRACE_MS};
pub use slot::St;

//! `Lease`: a received message and the right to ack, nack or extend it.

use std::time::Duration;

use crate::clock::now_ms;
use crate::error::Result;
use crate::queue::Queue;
use crate::ring::{Delivery, Nacked, Receipt};

/// A message leased to this receiver until its deadline.
///
/// Dropping a `Lease` without acking it does nothing: as with SQS, the
/// message stays invisible until the deadline and is then redelivered. Call
/// [`nack`](Lease::nack) to give it back at once.
pub struct Lease<'q> {
    queue: &'q Queue,
    delivery: Delivery,
    payload: Vec<u8>,
}

impl<'q> Lease<'q> {
    pub(crate) fn new(queue: &'q Queue, delivery: Delivery, payload: Vec<u8>) -> Lease<'q> {
        Lease {
            queue,
            delivery,
            payload,
        }
    }

    /// The message bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Take the message bytes (the lease stays usable through its receipt).
    pub fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.payload)
    }

    /// The message id: unique in this queue, increasing in send order.
    pub fn id(&self) -> u64 {
        self.delivery.id
    }

    /// Deliveries of this message so far, this one included.
    pub fn receives(&self) -> u32 {
        self.delivery.receives
    }

    /// The copyable token naming this lease, for ack/nack/extend from
    /// anywhere.
    pub fn receipt(&self) -> Receipt {
        self.delivery.receipt
    }

    /// Everything the receive reported.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Time left until the lease expires (zero if it has).
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.delivery.deadline_ms.saturating_sub(now_ms()))
    }

    /// How long ago the message was sent.
    pub fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.delivery.sent_ms))
    }

    /// Delete the message for good.
    pub fn ack(self) -> Result<()> {
        self.queue.ack(self.delivery.receipt)
    }

    /// Give the message back: visible again after `delay` (zero: at once),
    /// or dead-lettered if it has reached max receives.
    pub fn nack(self, delay: Duration) -> Result<Nacked> {
        self.queue.nack(self.delivery.receipt, delay)
    }

    /// Keep the lease for `timeout` from now (a heartbeat for long work).
    pub fn extend(&mut self, timeout: Duration) -> Result<()> {
        self.delivery.deadline_ms = self.queue.extend(self.delivery.receipt, timeout)?;
        Ok(())
    }
}

impl std::fmt::Debug for Lease<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("delivery", &self.delivery)
            .field("len", &self.payload.len())
            .finish()
    }
}

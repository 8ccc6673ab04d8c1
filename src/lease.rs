//! `Lease`: a received message and the right to ack, nack, extend or
//! dead-letter it.

use std::time::{Duration, SystemTime};

use crate::clock::{now_ms, wall_time};
use crate::error::Result;
use crate::queue::Queue;
use crate::ring::{Delivery, Nacked, Receipt};

/// A message leased to this receiver until its deadline.
///
/// A `Lease` owns what it needs to finish: a clone of its [`Queue`] handle
/// (a reference count, no system call), the payload and the receipt. It can
/// move to another thread or task, be returned from a function or stored in
/// a struct, and be acked there.
///
/// Dropping a `Lease` without acking it does nothing: as with SQS, the
/// message stays invisible until the deadline and is then redelivered. Call
/// [`nack`](Lease::nack) to give it back at once.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use shmq::{Config, Lease, Queue};
/// use std::time::Duration;
///
/// fn next_job(q: &Queue) -> Option<Lease> {
///     q.receive(Duration::from_millis(100))
/// }
///
/// let q = Queue::create(dir.path().join("jobs.q"), &Config::default())?;
/// q.send("thumbnail 7")?;
/// let lease = next_job(&q).expect("a job");
/// let worker = std::thread::spawn(move || {
///     assert_eq!(lease.payload(), b"thumbnail 7");
///     lease.ack()
/// });
/// worker.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lease {
    queue: Queue,
    delivery: Delivery,
    payload: Vec<u8>,
}

impl Lease {
    pub(crate) fn new(queue: Queue, delivery: Delivery, payload: Vec<u8>) -> Lease {
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
    /// anywhere: another handle, another process (`Display` and `FromStr`
    /// turn it into text and back).
    pub fn receipt(&self) -> Receipt {
        self.delivery.receipt
    }

    /// Everything the receive reported.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The queue this lease came from.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Time left until the lease expires (zero if it has).
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.delivery.deadline_ms.saturating_sub(now_ms()))
    }

    /// How long ago the message was sent.
    pub fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.delivery.sent_ms))
    }

    /// When the message was sent, on the wall clock.
    pub fn sent_at(&self) -> SystemTime {
        wall_time(self.delivery.sent_ms)
    }

    /// Delete the message for good.
    ///
    /// # Errors
    ///
    /// [`Error::LeaseLost`](crate::Error::LeaseLost) if the lease expired and
    /// the message went to another receiver (it will be, or was, processed
    /// again: at-least-once).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// q.send("done soon")?;
    /// let lease = q.try_receive().unwrap();
    /// lease.ack()?;
    /// assert_eq!(q.stats().acked, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ack(self) -> Result<()> {
        self.queue.ack(self.delivery.receipt)
    }

    /// Give the message back: visible again after `delay` (zero: at once),
    /// or dead-lettered if it has reached max receives.
    ///
    /// # Errors
    ///
    /// As [`ack`](Lease::ack), and
    /// [`Error::OutOfRange`](crate::Error::OutOfRange) for a delay over
    /// [`MAX_DELAY`](crate::MAX_DELAY).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// use shmq::Nacked;
    /// use std::time::Duration;
    /// q.send("retry me")?;
    /// let lease = q.try_receive().unwrap();
    /// assert_eq!(lease.nack(Duration::ZERO)?, Nacked::Requeued);
    /// assert_eq!(q.try_receive().unwrap().receives(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn nack(self, delay: Duration) -> Result<Nacked> {
        self.queue.nack(self.delivery.receipt, delay)
    }

    /// Keep the lease for `timeout` from now (a heartbeat for long work).
    ///
    /// # Errors
    ///
    /// As [`ack`](Lease::ack), and
    /// [`Error::OutOfRange`](crate::Error::OutOfRange) for a timeout outside
    /// 1 ms ..= [`MAX_LEASE`](crate::MAX_LEASE).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// use std::time::Duration;
    /// q.send("long job")?;
    /// let mut lease = q.try_receive().unwrap();
    /// lease.extend(Duration::from_secs(600))?;
    /// assert!(lease.remaining() > Duration::from_secs(590));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend(&mut self, timeout: Duration) -> Result<()> {
        self.delivery.deadline_ms = self.queue.extend(self.delivery.receipt, timeout)?;
        Ok(())
    }

    /// Dead-letter the message now, whatever its receive count: it can never
    /// succeed (AMQP's `basic.reject` without requeue). It is kept with
    /// reason [`DeadReason::Rejected`](crate::DeadReason::Rejected) for
    /// inspection, redrive or purge.
    ///
    /// # Errors
    ///
    /// As [`ack`](Lease::ack).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// use shmq::DeadReason;
    /// q.send("not json")?;
    /// q.try_receive().unwrap().dead_letter()?;
    /// let dead = q.dead_letters();
    /// assert_eq!(dead[0].reason, DeadReason::Rejected);
    /// assert_eq!(dead[0].receives, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dead_letter(self) -> Result<()> {
        self.queue.dead_letter(self.delivery.receipt)
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("delivery", &self.delivery)
            .field("len", &self.payload.len())
            .finish()
    }
}

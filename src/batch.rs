//! Batches: send, receive and ack many messages in one call.
//!
//! A batch is a sequence of the single-message transitions of
//! docs/design.md §4-§5, not one atomic step: each message is claimed,
//! published, leased and acked on its own, so every crash case of §7 is
//! unchanged, and a batch can be cut short (a full queue, a lost lease) after
//! any message. What a batch saves are the shared words around the
//! transitions ([`Ring::send_many`], [`Ring::receive_many`],
//! [`Ring::ack_many`]):
//!
//! - one clock read for the whole batch instead of one per message;
//! - `send_batch`: the tickets of the batch with one `fill` update, one
//!   `sent` update, one §5.1 re-check of `rcur`, one check of the park word
//!   (§6) and at most one `FUTEX_WAKE`, after the last publish;
//! - `receive_batch`: the first message is received as `receive_into` does
//!   (sweep step, spin, park); the rest are leased from consecutive tickets
//!   of the main path (§5.2) with one advance of `rcur` for all of them, and
//!   only while messages are visible;
//! - `ack_batch`: one update of the `acked` counter.
//!
//! [`Ring::send_many`]: crate::Ring::send_many
//! [`Ring::receive_many`]: crate::Ring::receive_many
//! [`Ring::ack_many`]: crate::Ring::ack_many
#![cfg(not(loom))]

use std::time::Duration;

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::layout::MAX_TIMEOUT_MS;
use crate::queue::Queue;
use crate::ring::{Delivery, Receipt};

impl Queue {
    /// Send every message of `msgs`, in order, each visible at once.
    ///
    /// `ids` is cleared, then receives the id of each message sent. On error
    /// the messages `msgs[..ids.len()]` were sent (and stay sent) and
    /// `msgs[ids.len()]` failed with the returned error (`Full`, `TooLarge`,
    /// `ClaimExpired`); the rest were not tried. Parked receivers are woken
    /// once, after the last publish.
    ///
    /// # Errors
    ///
    /// [`Error::Full`], [`Error::TooLarge`], [`Error::ClaimExpired`] or
    /// [`Error::Contended`] for the first message that was not sent. On a
    /// durable queue the batch shares one sync, and [`Error::SyncFailed`]
    /// says it failed: `ids` then lists the messages that were sent but are
    /// not known to be on disk (empty if the queue had recorded a failed
    /// sync before, and nothing was sent).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let q = shmq::Queue::create(dir.path().join("q"), &shmq::Config::default())?;
    /// use std::time::Duration;
    /// let mut ids = Vec::new();
    /// q.send_batch(&["a", "b", "c"], &mut ids)?;
    /// let (mut bufs, mut got) = (Vec::new(), Vec::new());
    /// let n = q.receive_batch(&mut bufs, &mut got, 64, Duration::ZERO, None);
    /// assert_eq!(n, 3);
    /// assert_eq!(bufs[2], b"c");
    /// let mut failed = Vec::new();
    /// assert_eq!(q.ack_batch(got.iter().map(|d| d.receipt), &mut failed), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch<T: AsRef<[u8]>>(&self, msgs: &[T], ids: &mut Vec<u64>) -> Result<()> {
        let now = now_ms();
        if !self.file_ok(now, false) {
            ids.clear();
            return Err(Error::Orphaned);
        }
        if let Err(crate::SendError::SyncFailed { errno, .. }) = self.durable_refuses() {
            ids.clear();
            return Err(self.sync_failed(errno));
        }
        let outcome = self.ring().send_many(msgs, now, ids);
        if let Some(&last) = ids.last() {
            self.wake_parked();
            // One durable wait for the batch: the sync covers every publish.
            if let Err(crate::SendError::SyncFailed { errno, .. }) = self.sent(last) {
                return Err(self.sync_failed(errno));
            }
        }
        outcome
    }

    /// Lease up to `max` messages.
    ///
    /// Waits up to `wait` for the first one, as
    /// [`receive_into`](Queue::receive_into) does (zero: do not wait, as
    /// [`try_receive_into`](Queue::try_receive_into)); then takes the messages
    /// that are visible at once, without waiting, until `max`. `got` is
    /// cleared and receives one [`Delivery`] per message; the payload of
    /// `got[k]` is in `bufs[k]` (`bufs` grows to the largest batch seen and
    /// its buffers are reused, so a steady loop does not allocate). Returns
    /// the number of messages, `got.len()`. `visibility` overrides the
    /// queue's visibility timeout for these leases.
    pub fn receive_batch(
        &self,
        bufs: &mut Vec<Vec<u8>>,
        got: &mut Vec<Delivery>,
        max: usize,
        wait: Duration,
        visibility: Option<crate::Visibility>,
    ) -> usize {
        got.clear();
        if max == 0 {
            return 0;
        }
        if bufs.is_empty() {
            bufs.push(Vec::new());
        }
        let first = if wait.is_zero() {
            self.try_receive_into(&mut bufs[0], visibility)
        } else {
            self.receive_into(&mut bufs[0], wait, visibility)
        };
        let Some(d) = first else { return 0 };
        got.push(d);
        let vt = self.vt_ms(visibility);
        let now = now_ms();
        while got.len() < max {
            let want = max - got.len();
            if self.ring().receive_many(now, vt, bufs, got, want) > 0 {
                continue;
            }
            // The next ticket's slot holds no visible message: the single
            // main path steps over it (sweep budget 0: the first receive
            // already took this call's sweep step).
            let k = got.len();
            if bufs.len() == k {
                bufs.push(Vec::new());
            }
            match self.ring().try_receive(now, vt, &mut bufs[k], false, 0) {
                Some(d) => got.push(d),
                None => break,
            }
        }
        got.len()
    }

    /// Ack every receipt. Returns how many were acked; `failed` is cleared,
    /// then receives each receipt whose ack failed with its error (typically
    /// `LeaseLost`: the lease expired and the message was or will be
    /// delivered again). A failure does not stop the rest of the batch.
    pub fn ack_batch(
        &self,
        receipts: impl IntoIterator<Item = Receipt>,
        failed: &mut Vec<(Receipt, Error)>,
    ) -> usize {
        failed.clear();
        self.ring().ack_many(receipts, now_ms(), failed)
    }

    /// Nack every receipt with the same `delay` (see [`Queue::nack`]).
    /// Returns how many were released (requeued or, at max receives,
    /// dead-lettered); `failed` is cleared, then receives each receipt whose
    /// nack failed with its error. A failure does not stop the rest.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for a delay over [`MAX_DELAY`](crate::MAX_DELAY),
    /// before any receipt is touched.
    pub fn nack_batch(
        &self,
        receipts: impl IntoIterator<Item = Receipt>,
        delay: Duration,
        failed: &mut Vec<(Receipt, Error)>,
    ) -> Result<usize> {
        failed.clear();
        let ms = u64::try_from(delay.as_millis())
            .ok()
            .filter(|ms| *ms <= MAX_TIMEOUT_MS)
            .ok_or(Error::OutOfRange {
                what: "nack delay",
                got: delay,
                min: Duration::ZERO,
                max: crate::MAX_DELAY,
            })?;
        let now = now_ms();
        let mut released = 0;
        let mut requeued_now = false;
        for rc in receipts {
            match self.ring().nack(rc, ms, now) {
                Ok(r) => {
                    released += 1;
                    requeued_now |= r == crate::Nacked::Requeued && ms == 0;
                    if r == crate::Nacked::DeadLettered {
                        self.move_dead_letters(Some(rc.slot));
                    }
                }
                Err(e) => failed.push((rc, e)),
            }
        }
        if requeued_now {
            self.wake_parked();
        }
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Error, Queue};
    use std::time::{Duration, Instant};

    fn queue(slots: u32) -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().expect("temp dir");
        let q = Queue::create(
            dir.path().join("b.q"),
            &Config::default().slots(slots).slot_size(64),
        )
        .expect("create");
        (dir, q)
    }

    #[test]
    fn batch_round_trip_keeps_order_and_payloads() {
        let (_d, q) = queue(64);
        let msgs: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        let mut ids = Vec::new();
        q.send_batch(&msgs, &mut ids).expect("send");
        assert_eq!(ids.len(), 20);
        let (mut bufs, mut got) = (Vec::new(), Vec::new());
        assert_eq!(
            q.receive_batch(&mut bufs, &mut got, 8, Duration::ZERO, None),
            8
        );
        assert_eq!(
            q.receive_batch(&mut bufs, &mut got, 64, Duration::ZERO, None),
            12
        );
        for (k, d) in got.iter().enumerate() {
            assert_eq!(d.id, ids[8 + k]);
            assert_eq!(bufs[k], msgs[8 + k]);
        }
        let mut failed = Vec::new();
        assert_eq!(q.ack_batch(got.iter().map(|d| d.receipt), &mut failed), 12);
        assert!(failed.is_empty());
        // A receipt acked twice is reported, and does not stop the batch.
        let again = [got[0].receipt, got[1].receipt];
        assert_eq!(q.ack_batch(again, &mut failed), 0);
        assert_eq!(failed.len(), 2);
        assert!(matches!(failed[0].1, Error::LeaseLost));
        assert_eq!(q.stats().acked, 12);
        assert_eq!(q.stats().in_flight, 8);
    }

    #[test]
    fn send_batch_stops_at_full_and_reports_what_was_sent() {
        let (_d, q) = queue(4);
        let msgs = [b"a", b"b", b"c", b"d", b"e", b"f"];
        let mut ids = Vec::new();
        let err = q.send_batch(&msgs, &mut ids).expect_err("full");
        assert!(matches!(err, Error::Full));
        assert_eq!(ids.len(), 4);
        assert_eq!(q.stats().visible, 4);
    }

    #[test]
    fn receive_batch_waits_for_a_send_batch_from_another_thread() {
        let (_d, q) = queue(64);
        let q2 = Queue::open(q.path()).expect("open");
        q2.set_spin_tries(0);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let (mut bufs, mut got) = (Vec::new(), Vec::new());
                let start = Instant::now();
                let n = q2.receive_batch(&mut bufs, &mut got, 4, Duration::from_secs(10), None);
                (n, start.elapsed())
            });
            // Let the receiver park (it parks with or without this pause;
            // the pause only makes the wake path the likely one).
            std::thread::sleep(Duration::from_millis(20));
            let mut ids = Vec::new();
            q.send_batch(&[b"x", b"y"], &mut ids).expect("send");
            let (n, waited) = h.join().expect("receiver");
            assert!(n >= 1);
            assert!(waited < Duration::from_secs(5), "woken, not timed out");
        });
    }
}

//! Operations on a lease by its receipt (docs/design.md §3, §4): ack,
//! nack, extend, reject, and dead-lettering at max receives.

use super::*;

impl<M: Memory> Ring<M> {
    pub(super) fn dead_letter(&self, i: u32, s: u64, now: u64) -> bool {
        self.kill(i, s, now, DeadReason::MaxReceives)
    }

    /// LEASED -> DEAD with `reason` (in the state code: one CAS, nothing
    /// written after it), counted in `dead_lettered`.
    pub(super) fn kill(&self, i: u32, s: u64, now: u64, reason: DeadReason) -> bool {
        failpoint!("deadletter.before");
        let ok = self.cas(i, s, dead_code(reason.code()), now).is_ok();
        if ok {
            self.mem.shared().dead_lettered.fetch_add(1, Relaxed);
        }
        ok
    }

    // ------------------------------------------------- ack, nack, extend

    /// Slot `rc.slot`'s state word if `rc` is still the current lease: the
    /// same queue, LEASED at the receipt's generation, holding the
    /// receipt's message. The id is read after the state word; a caller
    /// then CASes from exactly that word, so the id belonged to it (the
    /// message in a slot changes only through a claim, which changes the
    /// word).
    pub(super) fn held(&self, rc: Receipt) -> Result<u64> {
        if rc.slot >= self.n || rc.queue != self.p.identity {
            return Err(Error::BadReceipt);
        }
        match self.read(rc.slot) {
            #[cfg(not(any(shmq_mutation = "no_gen_fence", shmq_mutation = "receipt_no_id")))]
            View::Valid {
                s,
                st: St::Leased,
                gen,
                ..
            } if gen == rc.gen && self.w(rc.slot).msg_id.load(Acquire) == rc.id => Ok(s),
            // Mutants (design.md §10): any lease of the slot passes for
            // ours; the generation alone (no id) names the lease.
            #[cfg(shmq_mutation = "no_gen_fence")]
            View::Valid {
                s, st: St::Leased, ..
            } => Ok(s),
            #[cfg(shmq_mutation = "receipt_no_id")]
            View::Valid {
                s,
                st: St::Leased,
                gen,
                ..
            } if gen == rc.gen => Ok(s),
            _ => Err(Error::LeaseLost),
        }
    }

    /// Delete the message for good.
    pub fn ack(&self, rc: Receipt, now: u64) -> Result<()> {
        self.free_lease(rc, now)?;
        self.mem.shared().acked.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Ack every receipt; one update of the `acked` counter for the batch.
    /// Returns how many were acked; each receipt whose ack failed is pushed
    /// to `failed` with its error, and does not stop the rest.
    pub fn ack_many(
        &self,
        receipts: impl IntoIterator<Item = Receipt>,
        now: u64,
        failed: &mut Vec<(Receipt, Error)>,
    ) -> usize {
        let mut acked = 0;
        for rc in receipts {
            match self.free_lease(rc, now) {
                Ok(()) => acked += 1,
                Err(e) => failed.push((rc, e)),
            }
        }
        if acked > 0 {
            self.mem.shared().acked.fetch_add(acked as u64, Relaxed);
        }
        acked
    }

    /// The ack transition, LEASED -> FREE, without the counter.
    pub(super) fn free_lease(&self, rc: Receipt, now: u64) -> Result<()> {
        for _ in 0..CAS_RETRIES {
            let s = self.held(rc)?;
            failpoint!("ack.before");
            if self.transition(rc.slot, s, St::Free, now).is_ok() {
                return Ok(());
            }
            // An extend from another handle moved the time, or the lease
            // was lost: `held` tells which.
        }
        Err(Error::Contended)
    }

    /// Release the lease: visible again after `delay_ms`, or dead at max receives.
    pub fn nack(&self, rc: Receipt, delay_ms: u64, now: u64) -> Result<Nacked> {
        for _ in 0..CAS_RETRIES {
            let s = self.held(rc)?;
            if Self::receives_of_lease(self.aux(rc.slot), s) >= self.p.max_receives {
                if self.dead_letter(rc.slot, s, now) {
                    return Ok(Nacked::DeadLettered);
                }
                continue;
            }
            failpoint!("nack.before");
            if self
                .transition(rc.slot, s, St::Ready, now + delay_ms)
                .is_ok()
            {
                if delay_ms == 0 {
                    self.signal_return();
                } else {
                    self.note_due(now + delay_ms);
                }
                return Ok(Nacked::Requeued);
            }
        }
        Err(Error::Contended)
    }

    /// Dead-letter the leased message at once, whatever its receive count
    /// (reason `Rejected`): LEASED -> DEAD, the same transition as a nack at
    /// max receives (§3).
    pub fn reject(&self, rc: Receipt, now: u64) -> Result<()> {
        for _ in 0..CAS_RETRIES {
            let s = self.held(rc)?;
            if self.kill(rc.slot, s, now, DeadReason::Rejected) {
                return Ok(());
            }
            // An extend moved the time, or the lease was lost: look again;
            // `held` tells which.
        }
        Err(Error::Contended)
    }

    /// Move the lease deadline to `now + timeout_ms`. Returns the deadline.
    pub fn extend(&self, rc: Receipt, timeout_ms: u64, now: u64) -> Result<u64> {
        let deadline = now + timeout_ms;
        for _ in 0..CAS_RETRIES {
            let s = self.held(rc)?;
            // The time only: the generation (and so every copy of the
            // receipt) stays valid. SYNC POINT: a takeover CASes this same
            // word, so exactly one of us wins (§4 Extend).
            #[cfg(not(shmq_mutation = "extend_no_cas"))]
            if self
                .w(rc.slot)
                .state
                .compare_exchange(s, with_time(s, deadline), SeqCst, Acquire)
                .is_ok()
            {
                return Ok(deadline);
            }
            // Mutant (design.md §10): a plain store over whatever the word
            // holds now, a takeover included.
            #[cfg(shmq_mutation = "extend_no_cas")]
            {
                self.w(rc.slot).state.store(with_time(s, deadline), SeqCst);
                return Ok(deadline);
            }
        }
        Err(Error::Contended)
    }
}

//! Operations on a lease by its receipt (docs/design.md §3, §4): ack,
//! nack, extend, reject, and dead-lettering at max receives.

use super::*;

impl<M: Memory> Ring<M> {
    pub(super) fn dead_letter(&self, i: u32, s: u64, c: u64, now: u64) -> bool {
        self.kill(i, s, c, now, DeadReason::MaxReceives)
    }

    /// LEASED -> DEAD with `reason`, counted in `dead_lettered`.
    pub(super) fn kill(&self, i: u32, s: u64, c: u64, now: u64, reason: DeadReason) -> bool {
        // Mutant (design.md §10): side data written before the reservation.
        #[cfg(shmq_mutation = "reason_before_reserve")]
        self.w(i).reason.store(reason.code(), Relaxed);
        let ok = self
            .transition(i, s, c, St::Dead, now, |w, g1| {
                failpoint!("deadletter.inside");
                w.reason.store(reason.code(), Relaxed);
                w.owner.store(owner_word(self.pid(), g1), Relaxed);
            })
            .is_ok();
        if ok {
            self.mem.shared().dead_lettered.fetch_add(1, Relaxed);
        }
        ok
    }

    // ------------------------------------------------- ack, nack, extend

    /// The slot's words if `rc` is still the current lease.
    pub(super) fn held(&self, rc: Receipt) -> Result<(u64, u64, u64)> {
        if rc.slot >= self.n {
            return Err(Error::BadReceipt);
        }
        match self.read(rc.slot) {
            #[cfg(not(shmq_mutation = "no_gen_fence"))]
            View::AtRest {
                s,
                c,
                st: St::Leased,
                gen,
                time,
            } if gen == rc.gen => Ok((s, c, time)),
            // Mutant (design.md §10): any lease of the slot passes for ours.
            #[cfg(shmq_mutation = "no_gen_fence")]
            View::AtRest {
                s,
                c,
                st: St::Leased,
                time,
                ..
            } => Ok((s, c, time)),
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
            let (s, c, _) = self.held(rc)?;
            match self.transition(rc.slot, s, c, St::Free, now, |w, _| {
                failpoint!("ack.inside");
                w.reason.store(0, Relaxed);
            }) {
                Ok(_) => return Ok(()),
                // An extend from another handle moved the clock: look again.
                Err(Step::Raced) => continue,
                Err(Step::Aborted) => return Err(Error::LeaseLost),
            }
        }
        Err(Error::Contended)
    }

    /// Release the lease: visible again after `delay_ms`, or dead at max receives.
    pub fn nack(&self, rc: Receipt, delay_ms: u64, now: u64) -> Result<Nacked> {
        for _ in 0..CAS_RETRIES {
            let (s, c, _) = self.held(rc)?;
            if self.w(rc.slot).receives.load(Relaxed) >= self.p.max_receives {
                if self.dead_letter(rc.slot, s, c, now) {
                    return Ok(Nacked::DeadLettered);
                }
                continue;
            }
            match self.transition(rc.slot, s, c, St::Ready, now + delay_ms, |_, _| {
                failpoint!("nack.inside");
            }) {
                Ok(_) => {
                    if delay_ms == 0 {
                        self.signal_return();
                    } else {
                        self.note_due(now + delay_ms);
                    }
                    return Ok(Nacked::Requeued);
                }
                Err(Step::Raced) => continue,
                Err(Step::Aborted) => return Err(Error::LeaseLost),
            }
        }
        Err(Error::Contended)
    }

    /// Dead-letter the leased message at once, whatever its receive count
    /// (reason `Rejected`): LEASED -> DEAD, the same transition as a nack at
    /// max receives (§3).
    pub fn reject(&self, rc: Receipt, now: u64) -> Result<()> {
        for _ in 0..CAS_RETRIES {
            let (s, c, _) = self.held(rc)?;
            if self.kill(rc.slot, s, c, now, DeadReason::Rejected) {
                return Ok(());
            }
            // Lost the reservation (an extend moved the clock) or the commit
            // (aborted after a stall): look again; `held` tells which.
        }
        Err(Error::Contended)
    }

    /// Move the lease deadline to `now + timeout_ms`. Returns the deadline.
    pub fn extend(&self, rc: Receipt, timeout_ms: u64, now: u64) -> Result<u64> {
        let deadline = now + timeout_ms;
        for _ in 0..CAS_RETRIES {
            let (_, c, _) = self.held(rc)?;
            // Clock only: the generation (and so every copy of the receipt)
            // stays valid. SYNC POINT: a takeover must CAS this same word
            // first (§4 Extend), so exactly one of us wins.
            #[cfg(not(shmq_mutation = "extend_no_cas"))]
            if self
                .w(rc.slot)
                .clock
                .compare_exchange(c, pack_clock(deadline, rc.gen), AcqRel, Acquire)
                .is_ok()
            {
                return Ok(deadline);
            }
            // Mutant (design.md §10): a plain store over whatever the clock
            // holds now, a takeover's reservation included.
            #[cfg(shmq_mutation = "extend_no_cas")]
            {
                let _ = c;
                self.w(rc.slot)
                    .clock
                    .store(pack_clock(deadline, rc.gen), Release);
                return Ok(deadline);
            }
        }
        Err(Error::Contended)
    }
}

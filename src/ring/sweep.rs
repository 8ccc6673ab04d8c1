//! The sweep (docs/design.md §5.3) and what it shares with the main path:
//! examining a slot, visibility, the lease transition, expiry and
//! abandoned claims.

use super::*;

impl<M: Memory> Ring<M> {
    /// §5.3: advance the sweep cursor by up to `budget` slots, repairing what
    /// it passes and leasing the first message it can.
    pub(super) fn sweep(
        &self,
        now: u64,
        budget: u64,
        vt: u64,
        buf: &mut Vec<u8>,
    ) -> Option<Delivery> {
        let sh = self.mem.shared();
        let due = sh.sweep_due.load(SeqCst);
        if now < due {
            return None;
        }
        let n = u64::from(self.n);
        for _ in 0..budget.min(n) {
            let k = sh.sweep_cursor.fetch_add(1, Relaxed);
            let i = (k % n) as u32;
            let got = self.try_take(i, now, vt, buf, Pass::Sweep);
            if k % n == n - 1 {
                self.end_lap(due, now);
            }
            if got.is_some() {
                self.swept.fetch_add(1, Relaxed);
                return got;
            }
        }
        None
    }

    /// The end of a sweep lap: schedule the next round at the earliest time
    /// the lap saw (or one interval from now), unless a message became
    /// visible behind the cursors meanwhile (then sweep on at once).
    pub(super) fn end_lap(&self, due_seen: u64, now: u64) {
        let sh = self.mem.shared();
        let next = sh
            .sweep_next
            .swap(u64::MAX, SeqCst)
            .min(now + self.sweep_interval_ms);
        let _ = sh
            .sweep_due
            .compare_exchange(due_seen, next, SeqCst, SeqCst);
        // SYNC POINT: SeqCst against `signal_return` (store pending, then due).
        if sh.sweep_pending.swap(0, SeqCst) != 0 {
            sh.sweep_due.store(0, SeqCst);
        }
    }

    /// Something in the queue changes at time `t` (a delayed message becomes
    /// visible, a lease expires): make sure a sweep round starts by then.
    pub(super) fn note_due(&self, t: u64) {
        let sh = self.mem.shared();
        // Loads first: the RMWs are needed only when `t` is the new earliest.
        // SYNC POINT: the SeqCst RMWs pair with `end_lap`'s SeqCst swap of
        // `sweep_next` and CAS of `sweep_due`: a time noted before the swap
        // is folded into the next due time, one noted after stays for the
        // next lap, and one that lowers `sweep_due` after the lap read it
        // makes the lap's CAS fail (§5.3).
        if t < sh.sweep_next.load(Relaxed) {
            sh.sweep_next.fetch_min(t, SeqCst);
        }
        if t < sh.sweep_due.load(Relaxed) {
            sh.sweep_due.fetch_min(t, SeqCst);
        }
    }

    /// A message became visible behind the cursors: make the sweep run a full
    /// lap from now on (§5.3).
    pub(super) fn signal_return(&self) {
        let sh = self.mem.shared();
        sh.sweep_pending.store(1, SeqCst);
        sh.sweep_due.store(0, SeqCst);
    }

    /// Examine slot `i` once and take what it offers. On the main path only
    /// READY messages (and corrupt slots) are handled; the sweep also repairs.
    pub(super) fn try_take(
        &self,
        i: u32,
        now: u64,
        vt: u64,
        buf: &mut Vec<u8>,
        pass: Pass,
    ) -> Option<Delivery> {
        let sweeping = pass == Pass::Sweep;
        match self.read(i) {
            View::Valid {
                s,
                st: St::Ready | St::Leased | St::Writing,
                time,
                ..
            } if sweeping && time > now.saturating_add(TIME_AHEAD_MAX_MS) => {
                // A time no transition writes: the slot would otherwise be
                // stuck for as long as the forged time says (§8).
                self.quarantine(i, s, now);
                None
            }
            View::Valid {
                s,
                st: St::Ready,
                time,
                ..
            } if self.visible(i, time, now) && self.on_this_pass(i, pass) => {
                let seen = self.aux(i);
                self.lease(i, s, seen, now, vt, buf)
            }
            View::Valid {
                s,
                st: St::Leased,
                time,
                ..
            } if sweeping && time <= now => self.expire(i, s, now, vt, buf),
            // A lease whose holder is gone comes back at once, whatever
            // its deadline (§5.3, dead holders).
            View::Valid {
                s,
                st: St::Leased,
                gen,
                ..
            } if sweeping && self.lease_holder_gone(i, gen, now) => self.expire(i, s, now, vt, buf),
            View::Valid {
                s,
                st: St::Writing,
                time,
                ..
            } if sweeping && time <= now => {
                self.abandon(i, s, now);
                None
            }
            View::Valid {
                s,
                st: St::Abandoned,
                gen,
                ..
            } if sweeping => {
                if !self.claimer_lives(i, gen, now) {
                    let _ = self.transition(i, s, St::Free, now);
                }
                None
            }
            View::Corrupt { s } => {
                self.quarantine(i, s, now);
                None
            }
            // A dead letter to move to the dead-letter queue (§5.5).
            View::Valid {
                st: St::Dead,
                reason,
                gen,
                ..
            } if sweeping
                && (reason == DeadReason::MaxReceives.code()
                    || reason == DeadReason::Rejected.code())
                && self.collect_dead.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                self.note_dead(i, gen);
                None
            }
            // A live lease: the next lap comes by its deadline, and within
            // `HOLDER_CHECK_MS` while it is held, to see whether its holder
            // died (§7.4).
            View::Valid {
                st: St::Leased,
                time,
                ..
            } if sweeping => {
                self.note_due(time.min(now + HOLDER_CHECK_MS));
                None
            }
            View::Valid {
                st: St::Ready | St::Writing,
                time,
                ..
            } if sweeping => {
                self.note_due(time);
                None
            }
            _ => None,
        }
    }

    /// Whether the lease of generation `gen` in slot `i` names a holder
    /// that is gone (its registration judged dead, §7.4). A lease that names
    /// nobody (its holder died before its `aux` CAS, or took it anonymously)
    /// waits for its deadline.
    pub(super) fn lease_holder_gone(&self, i: u32, gen: u64, now: u64) -> bool {
        let a = self.aux(i);
        aux_is_for(a, gen) && self.holder_gone(aux_holder(a), now)
    }

    /// Whether the claim of an ABANDONED slot (generation `gen`, one past
    /// its claim) names a claimer that still lives: then its late writes
    /// could still land in the slot, which must not be reused (§7). A claim
    /// whose claimer is not named (it died, or stalled, before its `aux`
    /// CAS, which precedes every write into the slot) writes nothing more.
    pub(super) fn claimer_lives(&self, i: u32, gen: u64, now: u64) -> bool {
        // SYNC POINT: the load half of the Dekker pair in `set_aux`.
        let a = dekker_load(&self.w(i).aux);
        // Named as nobody (holder 0: the table was full) is still named: a
        // claimer that cannot be judged is presumed alive.
        aux_is_for(a, prev_gen(gen)) && !self.holder_gone(aux_holder(a), now)
    }

    /// Whether a READY message with clock time `time` is visible to a
    /// receiver whose clock reading is `now`. A message sent without a delay
    /// is visible at once, even to a receiver that read the clock a tick
    /// before the sender did: its visible time equals its send time.
    pub(super) fn visible(&self, i: u32, time: u64, now: u64) -> bool {
        time <= now || time <= self.w(i).sent_ms.load(Relaxed)
    }

    /// Whether the READY message in slot `i` is this pass's to lease. The
    /// main path at ticket `r` leases ticket `r`'s message, or an older one
    /// that came back to the slot (a nack, an expired lease, a redrive); a
    /// newer one (a later lap's ticket, sent after everything between `r`
    /// and it) waits for `rcur` to reach its own ticket, so that the main
    /// path delivers in ticket order (§5.2). The id was stored (Release) by
    /// the claim of the generation the state word just read, or a later
    /// one, and then the lease CAS from that state fails.
    pub(super) fn on_this_pass(&self, i: u32, pass: Pass) -> bool {
        match pass {
            Pass::Sweep => self.behind_main_path(i),
            #[cfg(not(shmq_mutation = "main_takes_newer"))]
            Pass::Main(r) => self.w(i).msg_id.load(Acquire) <= r,
            // Mutant (design.md §10): the main path leases whatever is READY.
            #[cfg(shmq_mutation = "main_takes_newer")]
            Pass::Main(_) => true,
        }
    }

    /// Whether the message in slot `i` is one the main path will not reach:
    /// its id (its ticket) is behind `rcur`, or is no ticket ever handed out.
    /// The sweep leaves the others to the main path, so that in a busy queue
    /// it keeps moving (and finds expired leases) instead of stopping at every
    /// fresh message (§5.3).
    pub(super) fn behind_main_path(&self, i: u32) -> bool {
        let sh = self.mem.shared();
        let id = self.w(i).msg_id.load(Relaxed);
        id < sh.rcur.load(Relaxed) || id >= sh.fill.load(Relaxed)
    }

    /// READY (or expired LEASED) `s` -> LEASED, then name this process as
    /// the holder in `aux` (read as `seen` before) with the receive count
    /// one higher, then copy the message out.
    pub(super) fn lease(
        &self,
        i: u32,
        s: u64,
        seen: u64,
        now: u64,
        vt: u64,
        buf: &mut Vec<u8>,
    ) -> Option<Delivery> {
        let before = if s & 0xF == St::Leased.code() {
            Self::receives_of_lease(seen, s)
        } else {
            aux_receives(seen)
        };
        let deadline = now + vt;
        let me = self.lessee();
        let g1 = self.transition(i, s, St::Leased, deadline).ok()?;
        failpoint!("receive.after_lease");
        let receives = before.saturating_add(1);
        // If the lease is lost before this CAS, the copy's re-check below
        // finds out.
        self.set_aux(i, g1, seen, receives, me);
        if before > 0 {
            self.mem.shared().redelivered.fetch_add(1, Relaxed);
        }
        let w = self.w(i);
        let len = w.len.load(Relaxed) as usize;
        if len > self.p.slot_size as usize {
            self.quarantine_held(i, g1, now);
            return None;
        }
        read_payload(self.mem.payload(i), len, buf);
        let id = w.msg_id.load(Relaxed);
        let sent_ms = w.sent_ms.load(Relaxed);
        // The lease may have expired while we copied (a long copy, a short
        // lease, a descheduled receiver), been taken over, acked, and the
        // slot reused by a sender writing another message over the one we
        // were copying. Re-check the generation after the copy, as `peek`'s
        // seqlock does: a copy made while the lease was lost is not
        // delivered (the message is someone else's now), so a torn mix of
        // two messages never is, with or without checksums.
        // SYNC POINT: this fence(Acquire) after the payload loads pairs with
        // the reusing sender's fence(Release) after its claim: if any load
        // above saw its payload, the state load below sees its claim.
        fence(Acquire);
        #[cfg(not(shmq_mutation = "lease_no_recheck"))]
        if gen_of(w.state.load(Relaxed)) != g1 {
            return None;
        }
        // Mutant (design.md §10, tests/powercut.rs): no checksum check.
        #[cfg(shmq_mutation = "receive_no_crc")]
        let checked = false;
        #[cfg(not(shmq_mutation = "receive_no_crc"))]
        let checked = self.p.checksums;
        if checked && message_crc(id, buf) != w.crc.load(Relaxed) {
            self.quarantine_held(i, g1, now);
            return None;
        }
        Some(Delivery {
            receipt: Receipt {
                queue: self.p.identity,
                slot: i,
                gen: g1,
                id,
            },
            id,
            receives,
            deadline_ms: deadline,
            sent_ms,
        })
    }

    /// A lease we just took turned out to hold a corrupt message.
    pub(super) fn quarantine_held(&self, i: u32, gen: u64, now: u64) {
        if let View::Valid {
            s,
            st: St::Leased,
            gen: g,
            ..
        } = self.read(i)
        {
            if g == gen {
                let _ = self.cas(i, s, dead_code(DeadReason::Corrupt.code()), now);
            }
        }
    }

    /// Deliveries of a message whose state word `s` is a lease, from its
    /// `aux` word `a`: `aux` counts that lease if its holder wrote it, and
    /// if the holder died before, the lease still counts.
    pub(super) fn receives_of_lease(a: u64, s: u64) -> u32 {
        let r = aux_receives(a);
        if aux_is_for(a, gen_of(s)) {
            r
        } else {
            r.saturating_add(1)
        }
    }

    /// An expired lease: redeliver it, or dead-letter it at max receives.
    pub(super) fn expire(
        &self,
        i: u32,
        s: u64,
        now: u64,
        vt: u64,
        buf: &mut Vec<u8>,
    ) -> Option<Delivery> {
        let seen = self.aux(i);
        let before = Self::receives_of_lease(seen, s);
        if before >= self.p.max_receives {
            self.dead_letter(i, s, now);
            return None;
        }
        self.lease(i, s, seen, now, vt, buf)
    }

    /// An expired claim: WRITING -> ABANDONED; straight on to FREE if the
    /// claimer is gone (or was never named).
    /// Returns whether the claim was abandoned by this call.
    pub(super) fn abandon(&self, i: u32, s: u64, now: u64) -> bool {
        let Ok(g1) = self.transition(i, s, St::Abandoned, now) else {
            return false;
        };
        if !self.claimer_lives(i, g1, now) {
            let _ = self.transition(i, pack_state(St::Abandoned, g1, now), St::Free, now);
        }
        true
    }
}

//! Dead letters (redrive, purge), inspection and repair (docs/design.md
//! §3, §7): snapshots of a slot, `recover`'s steps, the reboot reset.

use super::*;

impl<M: Memory> Ring<M> {
    /// DEAD -> READY with the receive count reset. `gen`, if given, must match.
    pub fn redrive(&self, i: u32, gen: Option<u64>, now: u64) -> Result<bool> {
        self.leave_dead(i, gen, now, St::Ready)
    }

    /// DEAD -> FREE. `gen`, if given, must match.
    pub fn purge(&self, i: u32, gen: Option<u64>, now: u64) -> Result<bool> {
        self.leave_dead(i, gen, now, St::Free)
    }

    pub(super) fn leave_dead(&self, i: u32, want: Option<u64>, now: u64, to: St) -> Result<bool> {
        if i >= self.n {
            return Err(Error::BadReceipt);
        }
        for _ in 0..CAS_RETRIES {
            let View::Valid {
                s,
                st: St::Dead,
                gen,
                reason,
                ..
            } = self.read(i)
            else {
                return Ok(false);
            };
            if want.is_some_and(|g| g != gen) {
                return Ok(false);
            }
            // A quarantine keeps the slot's words as they were: a corrupt
            // slot's, or an abandoned claim's, which may still be those of
            // the slot's previous message, acked long ago. Redriving it
            // would deliver that message again (issue 9, item 4): such dead
            // letters are inspected and purged, never redriven.
            if to == St::Ready
                && (reason == DeadReason::Corrupt.code() || reason == DeadReason::Recovered.code())
            {
                return Err(Error::NotRedrivable {
                    id: self.w(i).msg_id.load(Relaxed),
                    reason: DeadReason::from_code(reason),
                });
            }
            // A claim that `recover --force-abandoned` quarantined (reason
            // Recovered) still belongs to its stalled sender: if that sender
            // resumes, it writes its message words and payload into the slot
            // before its publish fails. Freeing or redriving the slot while
            // the sender lives would let those late writes land in the next
            // message to use the slot (§7, stopped processes), so it stays
            // dead until the sender is gone. The quarantine was one CAS on
            // from ABANDONED, itself one on from the claim: `aux` names the
            // claimer for `gen - 2`. Regression test: tests/failpoints.rs,
            // a_forced_hole_that_is_purged_and_reused_*.
            // (A claimer named as nobody cannot be judged: purging its
            // quarantined claim is the operator's call that it is gone.)
            if reason == DeadReason::Recovered.code()
                && aux_holder(self.aux(i)) != 0
                && self.claimer_lives(i, prev_gen(gen), now)
            {
                return Ok(false);
            }
            if to == St::Ready {
                failpoint!("redrive.before");
            } else {
                failpoint!("purge.before");
            }
            // A redriven message starts its receive count again: `aux` is
            // written (receives 0, no holder) for the new generation before
            // the message is visible (the loom model
            // `redrive_against_receive` found a receiver counting the old
            // deliveries when it came after).
            let seen = self.aux(i);
            #[cfg(not(shmq_mutation = "redrive_aux_after"))]
            if to == St::Ready && !self.set_aux_ahead(i, s, seen, 0, 0) {
                continue;
            }
            if let Ok(_g1) = self.transition(i, s, to, now) {
                // Mutant (design.md §10): reset the count after the message
                // is visible again.
                #[cfg(shmq_mutation = "redrive_aux_after")]
                if to == St::Ready {
                    self.set_aux(i, _g1, seen, 0, 0);
                }
                if to == St::Ready {
                    self.signal_return();
                    self.mem.shared().redriven.fetch_add(1, Relaxed);
                }
                return Ok(true);
            }
        }
        Err(Error::Contended)
    }

    // -------------------------------------------------- inspection, repair

    /// A best-effort snapshot of slot `i` (`i < slot_count`).
    pub fn info(&self, i: u32) -> SlotInfo {
        slot_info(self.w(i), i)
    }

    /// Copy the message in slot `i` without leasing it (a seqlock read, §4).
    /// `None` if the slot holds no message or changed while being read.
    pub fn peek(&self, i: u32, buf: &mut Vec<u8>) -> Option<SlotInfo> {
        let w = self.w(i);
        let s1 = w.state.load(Acquire);
        let info = self.info(i);
        if info.corrupt || !matches!(info.state, Some(St::Ready | St::Leased | St::Dead)) {
            return None;
        }
        let len = info.len as usize;
        if len > self.p.slot_size as usize {
            return None;
        }
        read_payload(self.mem.payload(i), len, buf);
        // SYNC POINT: pairs with the sender's fence(Release) after its claim.
        fence(Acquire);
        if w.state.load(Relaxed) != s1 || gen_of(s1) != info.gen {
            return None;
        }
        Some(info)
    }

    /// One repair step for `recover`: quarantine a corrupt slot, expire an
    /// overdue lease or claim, return a lease whose holder is gone, reclaim
    /// an abandoned slot whose claimer is gone, or (`force_abandoned`)
    /// quarantine an abandoned slot whose claimer lives. Returns what it did.
    pub fn repair(&self, i: u32, now: u64, force_abandoned: bool) -> Option<&'static str> {
        failpoint!("recover.before");
        match self.read(i) {
            View::Corrupt { s } => self
                .quarantine(i, s, now)
                .then_some("quarantined corrupt slot"),
            View::Valid {
                s,
                st: St::Ready | St::Leased | St::Writing,
                time,
                ..
            } if time > now.saturating_add(TIME_AHEAD_MAX_MS) => self
                .quarantine(i, s, now)
                .then_some("quarantined slot with a time no transition writes"),
            View::Valid {
                s,
                st: St::Leased,
                time,
                gen,
                ..
            } => {
                let a = self.aux(i);
                let holder_gone = aux_is_for(a, gen) && self.holder_gone(aux_holder(a), now);
                if time > now && !holder_gone {
                    return None;
                }
                if Self::receives_of_lease(a, s) >= self.p.max_receives {
                    return self.dead_letter(i, s, now).then_some(if time <= now {
                        "dead-lettered expired lease at max receives"
                    } else {
                        "dead-lettered lease of a dead process at max receives"
                    });
                }
                // Count the delivery whose holder never wrote `aux`, before
                // the message is visible again: complete the holder's write.
                if !aux_is_for(a, gen)
                    && !self.set_aux_while(
                        i,
                        s,
                        a,
                        pack_aux(aux_receives(a).saturating_add(1), 0, gen),
                    )
                {
                    return None;
                }
                self.transition(i, s, St::Ready, now).ok()?;
                self.signal_return();
                Some(if time <= now {
                    "returned expired lease to visible"
                } else {
                    "returned lease of a dead process to visible"
                })
            }
            View::Valid {
                s,
                st: St::Writing,
                time,
                ..
            } if time <= now => self.abandon(i, s, now).then_some("abandoned expired claim"),
            View::Valid {
                s,
                st: St::Abandoned,
                gen,
                ..
            } => {
                if !self.claimer_lives(i, gen, now) {
                    self.transition(i, s, St::Free, now)
                        .ok()
                        .map(|_| "reclaimed abandoned claim")
                } else if force_abandoned {
                    self.cas(i, s, dead_code(DeadReason::Recovered.code()), now)
                        .ok()
                        .map(|_| "quarantined abandoned claim of a live process")
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Set every slot's time to 0 after a reboot (§7): every lease and claim
    /// is expired and every delayed message visible. Each slot by a CAS
    /// from the word read, which races correctly with any process already
    /// working on the queue: a slot that changed meanwhile carries a time of
    /// this boot and is left alone. Corrupt slots are left to the next
    /// receiver's quarantine.
    pub fn reset_clocks(&self) {
        for i in 0..self.n {
            let w = self.w(i);
            let s = w.state.load(Acquire);
            if let View::Valid { time, .. } = View::classify(s) {
                if time != 0 {
                    #[cfg(not(shmq_mutation = "reset_store"))]
                    let _ = w
                        .state
                        .compare_exchange(s, with_time(s, 0), SeqCst, Relaxed);
                    // Mutant (design.md §10): a plain store of the word read.
                    #[cfg(shmq_mutation = "reset_store")]
                    w.state.store(with_time(s, 0), SeqCst);
                }
            }
        }
        let sh = self.mem.shared();
        // A power cut may have kept an older `fill` than the slots it wrote
        // (different pages of the file, §12.5): raise it past every id a
        // slot holds, acked ones included, so that no later send reuses an
        // id (one still in the queue is safe anyway: its slot is busy).
        let mut top = 0u64;
        for i in 0..self.n {
            let w = self.w(i);
            if let View::Valid { .. } = View::classify(w.state.load(Acquire)) {
                let id = w.msg_id.load(Acquire);
                if id < 1 << 62 {
                    top = top.max(id + 1);
                }
            }
        }
        sh.fill.fetch_max(top, SeqCst);
        sh.sweep_due.store(0, SeqCst);
        sh.sweep_pending.store(1, SeqCst);
        sh.full_hint.store(0, SeqCst);
        // The published head may be a newer page than `fill`: zero it, and
        // the next send stores it again (a receiver reading 0 loads `fill`).
        sh.head.store(0, SeqCst);
        // The syncer's deadline is a time of the old boot (§12.2).
        self.mem.durability().syncer.store(0, SeqCst);
    }
}

/// A snapshot of one slot's words (shared with the read-only view of
/// `observe.rs`, which has no `Ring`).
pub(crate) fn slot_info(w: &SlotWords, i: u32) -> SlotInfo {
    // Relaxed loads and Acquire fences only: the read-only mapping of
    // `observe.rs` promises nothing else. SYNC POINT: the fence after the
    // state load pairs with the Release of the CAS that wrote it, so the
    // words read after it are at least as new; the one after `aux` with
    // its CAS.
    let s = w.state.load(Relaxed);
    fence(Acquire);
    let a = w.aux.load(Relaxed);
    fence(Acquire);
    let view = View::classify(s);
    let (state, reason, gen) = match view {
        View::Valid {
            st, reason, gen, ..
        } => (Some(st), reason, gen),
        View::Corrupt { .. } => (None, 0, gen_of(s)),
    };
    // A claim's `aux` is written for the claim generation; an abandon bumps
    // the generation once more.
    let holder_current =
        aux_is_for(a, gen) || (state == Some(St::Abandoned) && aux_is_for(a, prev_gen(gen)));
    SlotInfo {
        slot: i,
        state,
        corrupt: matches!(view, View::Corrupt { .. }),
        gen,
        time_ms: time_of(s),
        id: w.msg_id.load(Relaxed),
        len: w.len.load(Relaxed),
        receives: aux_receives(a),
        sent_ms: w.sent_ms.load(Relaxed),
        holder: aux_holder(a),
        holder_current,
        reason,
    }
}

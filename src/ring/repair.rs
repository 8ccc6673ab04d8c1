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
            let View::AtRest {
                s,
                c,
                st: St::Dead,
                gen,
                ..
            } = self.read(i)
            else {
                return Ok(false);
            };
            if want.is_some_and(|g| g != gen) {
                return Ok(false);
            }
            // A claim that `recover --force-abandoned` quarantined (reason
            // Recovered) still belongs to its stalled sender: if that sender
            // resumes, it writes its message words and payload into the slot
            // before its publish fails. Freeing or redriving the slot while
            // the sender lives would let those late writes land in the next
            // message to use the slot (§7, stopped processes), so it stays
            // dead until the sender is gone. Regression test:
            // tests/failpoints.rs, a_forced_hole_that_is_purged_and_reused_*.
            let w = self.w(i);
            if w.reason.load(Relaxed) == DeadReason::Recovered.code()
                && (self.p.is_alive)((w.owner.load(Relaxed) >> 32) as u32)
            {
                return Ok(false);
            }
            let done = self.transition(i, s, c, to, now, |w, _| {
                if to == St::Ready {
                    failpoint!("redrive.inside");
                    w.receives.store(0, Relaxed);
                } else {
                    failpoint!("purge.inside");
                }
                w.reason.store(0, Relaxed);
            });
            match done {
                Ok(_) => {
                    if to == St::Ready {
                        self.signal_return();
                        self.mem.shared().redriven.fetch_add(1, Relaxed);
                    }
                    return Ok(true);
                }
                Err(Step::Raced) => continue,
                Err(Step::Aborted) => return Ok(false),
            }
        }
        Err(Error::Contended)
    }

    // -------------------------------------------------- inspection, repair

    /// A best-effort snapshot of slot `i` (`i < slot_count`).
    pub fn info(&self, i: u32) -> SlotInfo {
        let w = self.w(i);
        let view = self.read(i);
        let (s, c) = match view {
            View::AtRest { s, c, .. } | View::Pending { s, c, .. } | View::Corrupt { s, c } => {
                (s, c)
            }
        };
        let gen = gen_of(s);
        let state = match view {
            View::Corrupt { .. } => St::from_bits(s & 0xff),
            View::AtRest { st, .. } | View::Pending { st, .. } => Some(st),
        };
        let owner = w.owner.load(Relaxed);
        // A claim's owner is written for the claim generation; the publish
        // (and an abandon) bump the generation once more.
        let owner_gen = owner & 0xffff_ffff;
        let owner_current =
            owner_gen == gen & 0xffff_ffff || owner_gen == gen.wrapping_sub(1) & 0xffff_ffff;
        SlotInfo {
            slot: i,
            state,
            pending: matches!(view, View::Pending { .. }),
            corrupt: matches!(view, View::Corrupt { .. }),
            gen,
            time_ms: time_of(c),
            id: w.msg_id.load(Relaxed),
            len: w.len.load(Relaxed),
            receives: w.receives.load(Relaxed),
            sent_ms: w.sent_ms.load(Relaxed),
            owner_pid: (owner >> 32) as u32,
            owner_current,
            reason: w.reason.load(Relaxed),
        }
    }

    /// Copy the message in slot `i` without leasing it (a seqlock read, §4).
    /// `None` if the slot holds no message or changed while being read.
    pub fn peek(&self, i: u32, buf: &mut Vec<u8>) -> Option<SlotInfo> {
        let w = self.w(i);
        let s1 = w.state.load(Acquire);
        let info = self.info(i);
        if info.pending
            || info.corrupt
            || !matches!(info.state, Some(St::Ready | St::Leased | St::Dead))
        {
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

    /// One repair step for `recover`: abort a stale pending transition,
    /// quarantine a corrupt slot, expire an overdue lease or claim, reclaim an
    /// abandoned slot whose owner is gone, or (`force_abandoned`) quarantine
    /// an abandoned slot whose owner lives. Returns what it did.
    pub fn repair(&self, i: u32, now: u64, force_abandoned: bool) -> Option<&'static str> {
        failpoint!("recover.inside");
        match self.read(i) {
            View::Corrupt { s, c } => self
                .quarantine(i, s, c, now)
                .then_some("quarantined corrupt slot"),
            View::Pending { s, st, time, .. } if time.saturating_add(GRACE_MS) < now => self
                .abort(i, s, st)
                .then_some("aborted stale pending transition"),
            View::AtRest {
                s,
                c,
                st: St::Leased,
                time,
                ..
            } if time <= now => {
                if self.w(i).receives.load(Relaxed) >= self.p.max_receives {
                    self.dead_letter(i, s, c, now)
                        .then_some("dead-lettered expired lease at max receives")
                } else {
                    self.transition(i, s, c, St::Ready, now, |_, _| ())
                        .ok()
                        .map(|_| {
                            self.signal_return();
                            "returned expired lease to visible"
                        })
                }
            }
            View::AtRest {
                s,
                c,
                st: St::Leased,
                gen,
                ..
            } => {
                let owner = self.w(i).owner.load(Relaxed);
                let pid = (owner >> 32) as u32;
                let known = owner & 0xffff_ffff == gen & 0xffff_ffff && pid != 0;
                if known
                    && !(self.p.is_alive)(pid)
                    && self.w(i).receives.load(Relaxed) >= self.p.max_receives
                {
                    self.dead_letter(i, s, c, now)
                        .then_some("dead-lettered lease of a dead process at max receives")
                } else if known && !(self.p.is_alive)(pid) {
                    self.transition(i, s, c, St::Ready, now, |_, _| ())
                        .ok()
                        .map(|_| {
                            self.signal_return();
                            "returned lease of a dead process to visible"
                        })
                } else {
                    None
                }
            }
            View::AtRest {
                s,
                c,
                st: St::Writing,
                time,
                ..
            } if time <= now => self
                .abandon(i, s, c, now)
                .then_some("abandoned expired claim"),
            View::AtRest {
                s,
                c,
                st: St::Abandoned,
                gen,
                ..
            } => {
                let owner = self.w(i).owner.load(Relaxed);
                let pid = (owner >> 32) as u32;
                let current = owner & 0xffff_ffff == gen.wrapping_sub(1) & 0xffff_ffff;
                if !current || !(self.p.is_alive)(pid) {
                    self.transition(i, s, c, St::Free, now, |_, _| ())
                        .ok()
                        .map(|_| "reclaimed abandoned claim")
                } else if force_abandoned {
                    self.transition(i, s, c, St::Dead, now, |w, _| {
                        w.reason.store(DeadReason::Recovered.code(), Relaxed);
                    })
                    .ok()
                    .map(|_| "quarantined abandoned claim of a live process")
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Reset every clock to 0 after a reboot (§7): every lease and claim is
    /// expired and every delayed message visible. Pending transitions are
    /// aborted. Call only with exclusive access to the file.
    pub fn reset_clocks(&self) {
        for i in 0..self.n {
            let w = self.w(i);
            let s = w.state.load(Acquire);
            let c = w.clock.load(Acquire);
            match View::classify(s, c) {
                View::AtRest { gen, .. } => w.clock.store(pack_clock(0, gen), Release),
                View::Pending { st, gen, .. } => {
                    let g1 = next_gen(gen);
                    w.clock.store(pack_clock(0, g1), Release);
                    w.state.store(pack_state(g1, st), Release);
                }
                View::Corrupt { .. } => {}
            }
        }
        let sh = self.mem.shared();
        sh.sweep_due.store(0, SeqCst);
        sh.sweep_pending.store(1, SeqCst);
        sh.full_hint.store(0, SeqCst);
    }
}

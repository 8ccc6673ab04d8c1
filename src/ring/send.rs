//! Send (docs/design.md §5.1): tickets, claims, the full-queue hint,
//! waiting for room, the write and the publish, the re-check of `rcur`.

use super::*;

impl<M: Memory> Ring<M> {
    /// Send `msg`, visible from `now + delay_ms`. Returns the message id.
    pub fn send(&self, msg: &[u8], delay_ms: u64, now: u64) -> Result<u64> {
        self.send_with(msg, delay_ms, now, true)
    }

    /// A sender found the queue full and is about to wait for room: set the
    /// waiter bit of `room` and return the value to park on. The caller then
    /// sends with [`send_looking`](Self::send_looking) once more and parks
    /// only if that fails `Full` (§5.1, waiting for room).
    pub fn room_wait_word(&self) -> u32 {
        let room = &self.mem.shared().room;
        // SYNC POINT: the waiter bit, set (SeqCst RMW, or found set by a
        // SeqCst load) before `send_looking` loads the slots, against the
        // freer's commit then load of `room` in `note_freed`.
        let mut w = dekker_load32(room);
        for _ in 0..CAS_RETRIES {
            if w & 1 != 0 {
                return w;
            }
            match room.compare_exchange(w, w | 1, SeqCst, SeqCst) {
                Ok(_) => return w | 1,
                Err(x) => w = x,
            }
        }
        // A hostile writer keeps changing the word: parking on a stale value
        // returns at once, and the caller's wait is bounded anyway.
        w
    }

    /// The `park` futex word (for tests).
    pub fn park_word(&self) -> u32 {
        self.mem.shared().park.load(SeqCst)
    }

    /// The next ticket, `fill` (for models and tests).
    pub fn fill_word(&self) -> u64 {
        self.mem.shared().fill.load(SeqCst)
    }

    /// The published head, `head` (for models and tests).
    pub fn head_word(&self) -> u64 {
        self.mem.shared().head.load(SeqCst)
    }

    /// The `room` futex word (for models and tests).
    pub fn room_word(&self) -> u32 {
        self.mem.shared().room.load(SeqCst)
    }

    /// Wake every sender waiting for room (a shutdown of the waiting handle).
    pub fn wake_room_waiters(&self) {
        let room = &self.mem.shared().room;
        // Bump the sequence keeping the waiter bit: parked senders of every
        // process return from their futex wait, look, and park again.
        room.fetch_add(2, SeqCst);
        (self.p.wake)(room);
    }

    /// `send`, looking at the slots even when the full-queue hint says the
    /// queue is full. A sender about to wait for room calls this after it
    /// set the waiter bit of `room` (§5.1, waiting for room): the look at
    /// every slot is the load half of its Dekker pair with `note_freed`.
    pub fn send_looking(&self, msg: &[u8], delay_ms: u64, now: u64) -> Result<u64> {
        self.send_with(msg, delay_ms, now, false)
    }

    pub(super) fn send_with(
        &self,
        msg: &[u8],
        delay_ms: u64,
        now: u64,
        trust_hint: bool,
    ) -> Result<u64> {
        self.check_len(msg)?;
        if trust_hint && self.full_without_credit(now) {
            return Err(Error::Full);
        }
        let sh = self.mem.shared();
        // Before the ticket: a receiver that moves `rcur` past it does so
        // after this load (§5.1). SeqCst: ordered before the ticket's
        // SeqCst `fetch_add`, which the receiver's SeqCst load of `fill`
        // follows, which its increment of `skips` follows.
        let skips = sh.skips.load(SeqCst);
        let (t, i, g) = self.take_slot(now)?;
        self.spend_credits(1);
        self.write_and_publish(t, i, g, msg, delay_ms, now)?;
        // Right after the publish: a receiver polling `head` learns of the
        // message as early as one polling `fill` learned of the ticket.
        self.store_head(t.saturating_add(1));
        sh.sent.fetch_add(1, Relaxed);
        if delay_ms > 0 {
            self.note_due(now + delay_ms);
        } else {
            self.recheck_rcur(skips, t);
        }
        self.prefetch_next(i);
        Ok(t)
    }

    /// Prefetch for writing the control line and the first payload line of
    /// the slot after slot `i`, the one the next ticket takes, which this
    /// process's next send most likely claims (§5.1): the receiver's ack
    /// left them in its core, and the claim's CAS would otherwise wait for
    /// them. In the file the payload follows the control line (§2), so the
    /// second line is the one 64 bytes on (elsewhere, as on the heap of
    /// the tests, a hint about some other line, which costs nothing). Not
    /// on a one-slot ring, whose next slot is the one just published,
    /// which the receiver is about to lease.
    pub(super) fn prefetch_next(&self, i: u32) {
        if self.n > 1 {
            let next = if i + 1 >= self.n { 0 } else { i + 1 };
            let control = &self.w(next).state;
            let at = std::ptr::from_ref(control).cast::<u8>();
            prefetch(at, For::Write);
            prefetch(at.wrapping_add(crate::layout::SLOT_HEADER_LEN), For::Write);
        }
    }

    /// §5.2, the published head: after the publish of ticket `next - 1`,
    /// tell receivers that poll `head` that tickets below `next` were
    /// taken. A plain Release store: it retires into the store buffer and
    /// takes the line from the polling receivers without holding this
    /// sender up, where an RMW on a line they poll would wait for it.
    /// Loaded first: a later ticket stored by another sender needs no
    /// store (and is not moved back).
    pub(super) fn store_head(&self, next: u64) {
        let head = &self.mem.shared().head;
        if head.load(Relaxed) < next {
            // SYNC POINT: Release, with the receiver's Acquire load of
            // `head`: a receiver that sees `next` also sees this send's
            // ticket in `fill` and its publish in the slot (§5.2).
            head.store(next, Release);
        }
    }

    /// Send the messages of `msgs` in order, each visible at once, pushing
    /// each id into `ids` (cleared first). The tickets of the batch are
    /// taken with one `fill` update (as many as there are free slots in a
    /// row; the rest as `send` takes them), and the `sent` counter, the
    /// full-queue credits and the §5.1 re-check of `rcur` are done once,
    /// after the last publish. Each message is still claimed and published
    /// on its own (§4), so a batch cut short by an error has sent exactly
    /// `msgs[..ids.len()]`.
    pub fn send_many<T: AsRef<[u8]>>(
        &self,
        msgs: &[T],
        now: u64,
        ids: &mut Vec<u64>,
    ) -> Result<()> {
        ids.clear();
        if self.full_without_credit(now) {
            return match msgs.first() {
                Some(m) => self.check_len(m.as_ref()).and(Err(Error::Full)),
                None => Ok(()),
            };
        }
        let sh = self.mem.shared();
        // Before the block's tickets, as in `send`.
        let skips = sh.skips.load(SeqCst);
        let n = u64::from(self.n);
        let max = self.p.slot_size as usize;
        let fit = msgs.iter().take_while(|m| m.as_ref().len() <= max).count() as u64;
        // The block: as many tickets as there are free slots in a row from
        // the next ticket on (looked at before taking them, so that a busy
        // slot costs no ticket and ids stay aligned with the ring).
        let f = sh.fill.load(SeqCst);
        let block = (0..fit.min(n))
            .take_while(|j| self.is_free((f.wrapping_add(*j) % n) as u32))
            .count() as u64;
        // SeqCst as in `take_slot`.
        let mut next = if block > 0 {
            sh.fill.fetch_add(block, SeqCst)
        } else {
            0
        };
        // A hostile `fill` near the top only shortens the block.
        let end = next.saturating_add(block);
        if block > 0 {
            self.fill_next.store(end, Relaxed);
        }
        let mut outcome = Ok(());
        for m in msgs {
            let m = m.as_ref();
            let step = self.check_len(m).and_then(|()| {
                // The block's next ticket whose slot is free; past the block,
                // a ticket as `send` takes one. Either way ids keep increasing.
                let mut claimed = None;
                while claimed.is_none() && next < end {
                    let i = (next % n) as u32;
                    claimed = self.claim(i, now).map(|g| (next, i, g));
                    next += 1;
                }
                let (t, i, g) = match claimed {
                    Some(c) => c,
                    None => self.take_slot(now)?,
                };
                self.write_and_publish(t, i, g, m, 0, now).map(|()| t)
            });
            match step {
                Ok(t) => ids.push(t),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if let Some(&first) = ids.first() {
            self.store_head(ids[ids.len() - 1].saturating_add(1));
            self.spend_credits(ids.len() as u64);
            sh.sent.fetch_add(ids.len() as u64, Relaxed);
            // The load of `rcur` follows every publish commit of the batch,
            // so one re-check with the smallest id covers them all (§5.1).
            #[cfg(not(shmq_mutation = "batch_rewind_last"))]
            self.recheck_rcur(skips, first);
            // Mutant (design.md §10): re-check with the batch's last id.
            #[cfg(shmq_mutation = "batch_rewind_last")]
            self.recheck_rcur(skips, ids[ids.len() - 1]);
            self.prefetch_next((ids[ids.len() - 1] % u64::from(self.n)) as u32);
        }
        outcome
    }

    pub(super) fn check_len(&self, msg: &[u8]) -> Result<()> {
        let max = self.p.slot_size as usize;
        if msg.len() > max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max,
            });
        }
        Ok(())
    }

    /// Claim slot `i` if it is free (§4: FREE -> WRITING), then name this
    /// process as its claimer in `aux`. Returns the claim generation.
    /// Quarantines the slot if its word is corrupt.
    pub(super) fn claim(&self, i: u32, now: u64) -> Option<u64> {
        match self.read(i) {
            View::Valid {
                s, st: St::Free, ..
            } => {
                // Before the claim: a first use registers this process
                // (system calls), which must not stretch the claim.
                let me = self.claimer();
                let seen = self.aux(i);
                let g1 = self
                    .transition(i, s, St::Writing, now + self.p.claim_ms)
                    .ok()?;
                failpoint!("send.before_owner");
                // The claimer must be named before it writes anything into
                // the slot: an ABANDONED claim is freed only once its named
                // claimer is gone, or when no claimer is named (§7). If the
                // slot moved on before our `aux` CAS, it is not ours.
                // Mutant (design.md §10): a claim that names no claimer.
                #[cfg(not(shmq_mutation = "claim_no_owner"))]
                if !self.set_aux(i, g1, seen, 0, me) {
                    return None;
                }
                Some(g1)
            }
            View::Corrupt { s } => {
                self.quarantine(i, s, now);
                None
            }
            _ => None,
        }
    }

    /// §5.1: find a free slot from the next ticket on, take the tickets up
    /// to it with one CAS of `fill`, and claim it. A ticket is taken only
    /// for a slot seen free, so a full queue costs no ticket (and a send
    /// that fails `Full` leaves `fill` as it found it). Returns (ticket,
    /// slot, claim generation), or `Full` when a whole lap of slots was
    /// busy.
    pub(super) fn take_slot(&self, now: u64) -> Result<(u64, u32, u64)> {
        let sh = self.mem.shared();
        let n = u64::from(self.n);
        let mut hinted = false;
        // Start from this process's guess of the next ticket, not a load of
        // `fill`: the CAS below checks it, and fails with the real value if
        // the guess is wrong.
        let mut f = self.fill_next.load(Relaxed);
        for _ in 0..CAS_RETRIES {
            let Some(j) = self.find_free(f, now) else {
                if hinted {
                    // Mutant (design.md §10): a send that finds the queue
                    // full still uses up a ticket.
                    #[cfg(shmq_mutation = "full_burns_ticket")]
                    sh.fill.fetch_add(1, SeqCst);
                    return Err(Error::Full);
                }
                // SYNC POINT (§5.1, full queue): store the hint, then look at
                // every slot once more, against a freeing commit followed by
                // a load of the hint (`note_freed`). Store-then-load on both
                // sides: either the freer sees the hint and credits it, or
                // this second look sees the free slot.
                // Swaps rather than stores, here and below: the same
                // instruction on x86 (a SeqCst store is an `xchg`), and loom
                // 0.7 let this thread's later load read a credit a freer's
                // CAS wrote before this store, which C++ coherence forbids.
                sh.full_hint.swap(full_hint_at(now), SeqCst);
                hinted = true;
                f = sh.fill.load(SeqCst);
                #[cfg(shmq_mutation = "full_hint_no_second_look")]
                return Err(Error::Full);
                #[cfg(not(shmq_mutation = "full_hint_no_second_look"))]
                continue;
            };
            if std::mem::take(&mut hinted) {
                // The second look found a free slot: the hint is void, and
                // so are any credits freers gave it meanwhile (they may count
                // this slot, while another freed slot went uncounted because
                // its freer saw no hint). Dropping it costs only a look.
                sh.full_hint.swap(0, SeqCst);
            }
            // Mutant (design.md §10): a slot still in use ends the send.
            #[cfg(shmq_mutation = "send_no_step_over")]
            if j > 0 {
                return Err(Error::Full);
            }
            // The tickets up to the free slot's in one step. If other
            // senders took tickets meanwhile, look again from where they
            // left `fill`.
            let t = f.wrapping_add(j);
            // SeqCst: part of the Dekker pair of §6 (a parked receiver that
            // sees the publish must also see the ticket). No other ordering
            // is needed: the slot's own CASes order the message.
            if let Err(now_f) = sh
                .fill
                .compare_exchange(f, t.wrapping_add(1), SeqCst, SeqCst)
            {
                f = now_f;
                continue;
            }
            self.fill_next.store(t.wrapping_add(1), Relaxed);
            let i = (t % n) as u32;
            if let Some(g) = self.claim(i, now) {
                return Ok((t, i, g));
            }
            // A sender holding an older ticket of this slot (taken a lap or
            // more ago, then stalled) claimed it first: ticket `t` stays
            // without a message, and receivers step over it like any ticket
            // a walk passes. Look again.
            f = t.wrapping_add(1);
        }
        // Other senders kept taking the tickets we looked at (or a foreign
        // writer keeps changing `fill`): lock-free, so each failure was
        // someone else's progress; give the message back.
        Err(Error::Contended)
    }

    /// Whether slot `i` is FREE and at rest.
    pub(super) fn is_free(&self, i: u32) -> bool {
        matches!(self.read(i), View::Valid { st: St::Free, .. })
    }

    /// The distance from ticket `f` to the first ticket whose slot is free,
    /// looking at one lap of slots; `None` if every slot is in use.
    pub(super) fn find_free(&self, f: u64, now: u64) -> Option<u64> {
        let n = u64::from(self.n);
        (0..n).find(|j| {
            let i = (f.wrapping_add(*j) % n) as u32;
            match self.read(i) {
                View::Valid { st: St::Free, .. } => true,
                View::Corrupt { s } => {
                    self.quarantine(i, s, now);
                    false
                }
                _ => false,
            }
        })
    }

    /// Whether a sender found every slot in use within the last
    /// [`FULL_HINT_MS`] and no slot was freed since that no later send took
    /// (the hint's credits are 0): then a send fails `Full` at once, without
    /// a ticket. A hint only: a freer killed between its commit and
    /// `note_freed` leaves a credit out, so the hint expires; a hostile value
    /// can only make sends fail `Full` for as long as it is rewritten.
    pub(super) fn full_without_credit(&self, now: u64) -> bool {
        // No pairing: a hint read, right or stale. (SeqCst, like every access
        // to the hint, so that all of them sit in the one order the Dekker
        // pair of `take_slot` and `note_freed` is argued in; free on x86.)
        let h = self.mem.shared().full_hint.load(SeqCst);
        let Some(t) = (h >> HINT_CREDIT_BITS).checked_sub(1) else {
            return false;
        };
        h & HINT_CREDIT_MASK == 0 && t <= now && now <= t.saturating_add(FULL_HINT_MS)
    }

    /// A send claimed `k` slots: take `k` credits off the full-queue hint,
    /// if it has any (§5.1). Only a queue that was full has credits.
    pub(super) fn spend_credits(&self, k: u64) {
        // The count needs only the RMWs' single modification order of this
        // one word; nothing else is published through it (SeqCst as in
        // `full_without_credit`).
        let hint = &self.mem.shared().full_hint;
        let mut h = hint.load(SeqCst);
        for _ in 0..CAS_RETRIES {
            let credits = h & HINT_CREDIT_MASK;
            if h == 0 || credits == 0 {
                return;
            }
            match hint.compare_exchange(h, h - credits.min(k), SeqCst, SeqCst) {
                Ok(_) => return,
                Err(x) => h = x,
            }
        }
    }

    /// A slot became FREE: if a sender left the full-queue hint, give it a
    /// credit, so that the next send tries instead of failing (§5.1); with
    /// many credits the queue is no longer full, and the hint is dropped.
    /// SYNC POINT: SeqCst load after the SeqCst commit that freed the slot,
    /// against the sender's store of the hint then second look.
    pub(super) fn note_freed(&self) {
        self.credit_hint();
        // SYNC POINT (§5.1, waiting for room): SeqCst load after the SeqCst
        // commit that freed the slot, against a waiting sender's SeqCst RMW
        // of the waiter bit followed by its look at every slot
        // (`send_looking`): either it sees this slot free or we see its bit.
        // The same line as the hint just loaded: no extra line transfer.
        // Mutant (design.md §10): the freer never looks at `room`.
        #[cfg(not(shmq_mutation = "room_no_wake"))]
        {
            let room = &self.mem.shared().room;
            let w = dekker_load32(room);
            if w & 1 != 0 {
                self.wake_room(w);
            }
        }
    }

    /// Clear the waiter bit of `room` (seen as `w`), bump its sequence and
    /// wake every sender parked on it. A CAS loses only to another waker or
    /// a new waiter, either of which leaves the word changed, so the parked
    /// senders' futex wait returns anyway.
    pub(super) fn wake_room(&self, w: u32) {
        let room = &self.mem.shared().room;
        // SYNC POINT: SeqCst like the waiter's RMW of the bit.
        if room
            .compare_exchange(w, w.wrapping_add(2) & !1, SeqCst, Relaxed)
            .is_ok()
        {
            (self.p.wake)(room);
        }
    }

    /// Give the full-queue hint a credit for a freed slot (see `note_freed`).
    pub(super) fn credit_hint(&self) {
        let hint = &self.mem.shared().full_hint;
        let mut h = dekker_load(hint);
        // The credit CAS needs only the hint word's modification order; the
        // load above is the Dekker half.
        for _ in 0..CAS_RETRIES {
            if h == 0 {
                return;
            }
            let credits = h & HINT_CREDIT_MASK;
            let new = if credits + 1 >= HINT_DROP_CREDITS {
                0
            } else {
                h + 1
            };
            match hint.compare_exchange(h, new, SeqCst, SeqCst) {
                Ok(_) => return,
                Err(x) => h = x,
            }
        }
    }

    /// Write the message into claimed slot `i` (claim generation `g`) and
    /// publish it: WRITING -> READY, visible from `now + delay_ms`.
    pub(super) fn write_and_publish(
        &self,
        t: u64,
        i: u32,
        g: u64,
        msg: &[u8],
        delay_ms: u64,
        now: u64,
    ) -> Result<()> {
        failpoint!("send.after_claim");
        let w = self.w(i);
        // Release: pairs with the Acquire load in `holds_published` and
        // `on_this_pass`, which must see the claim when they see this id.
        w.msg_id.store(t, Release);
        w.len.store(msg.len() as u32, Relaxed);
        w.sent_ms.store(now, Relaxed);
        let crc = if self.p.checksums {
            message_crc(t, msg)
        } else {
            0
        };
        w.crc.store(crc, Relaxed);
        // SYNC POINT: pairs with the fence(Acquire) of `peek`'s seqlock read
        // and of the lease's re-check: a reader that sees any payload word
        // below also sees our claim.
        fence(Release);
        write_payload(self.mem.payload(i), msg);
        failpoint!("send.before_publish");

        // Publish: WRITING -> READY, from exactly the word our claim wrote.
        let s = pack_state(St::Writing, g, now + self.p.claim_ms);
        if self.transition(i, s, St::Ready, now + delay_ms).is_err() {
            self.release_abandoned(i, g, now);
            return Err(Error::ClaimExpired);
        }
        Ok(())
    }

    /// §5.1 after publishing ticket `t` (the smallest of a batch): if
    /// receivers already walked past it, move `rcur` back to it. `skips` is
    /// the `skips` counter read before the ticket was taken: unless it moved
    /// since, no receiver stepped over any ticket meanwhile, and `rcur` (a
    /// line the receivers write on every receive) is not read at all.
    /// SYNC POINT: SeqCst load of `skips` after the SeqCst publish
    /// commit(s), against the receiver's `skips` increment then state load
    /// (`receive_main`). One of the two sees the other.
    pub(super) fn recheck_rcur(&self, skips: u64, t: u64) {
        let sh = self.mem.shared();
        if dekker_load(&sh.skips) == skips {
            return;
        }
        let rcur = &sh.rcur;
        let mut r = rcur.load(SeqCst);
        for _ in 0..CAS_RETRIES {
            if r <= t {
                break;
            }
            match rcur.compare_exchange(r, t, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now_r) => r = now_r,
            }
        }
    }

    /// After a failed publish: our claim was abandoned. Free the slot, which
    /// nobody else frees while we live (§7).
    pub(super) fn release_abandoned(&self, i: u32, claim_gen: u64, now: u64) {
        if let View::Valid {
            s,
            st: St::Abandoned,
            gen,
            ..
        } = self.read(i)
        {
            let a = self.w(i).aux.load(Acquire);
            if gen == next_gen(claim_gen)
                && aux_is_for(a, claim_gen)
                && aux_holder(a) == self.claimer()
            {
                let _ = self.transition(i, s, St::Free, now);
            }
        }
    }
}

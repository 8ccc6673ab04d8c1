//! Receive, main path (docs/design.md §5.2): `rcur`, the paced wait for
//! the newest ticket, batches.

use super::*;

/// What a caught-up receiver learns from the published head (§5.2).
enum HeadLook {
    /// Nothing was published since this process last looked.
    Nothing,
    /// Every ticket below this one was taken: a lower bound of `fill`.
    Upto(u64),
    /// `head` cannot tell: load `fill`.
    LoadFill,
}

impl<M: Memory> Ring<M> {
    /// Lease one visible message (or an expired lease) into `buf`.
    ///
    /// `sweep_first`: take a sweep step before the main path (receivers do this
    /// every few receives so that a busy queue still finds returned messages).
    /// `sweep_budget`: slots to sweep when the main path is empty.
    pub fn try_receive(
        &self,
        now: u64,
        visibility_ms: u64,
        buf: &mut Vec<u8>,
        sweep_first: bool,
        sweep_budget: u64,
    ) -> Option<Delivery> {
        if sweep_first {
            if let Some(d) = self.sweep(now, SWEEP_STEP, visibility_ms, buf) {
                return Some(d);
            }
        }
        if let Some(d) = self.receive_main(now, visibility_ms, buf) {
            return Some(d);
        }
        self.sweep(now, sweep_budget, visibility_ms, buf)
    }

    /// §5.2: follow the senders' tickets.
    pub(super) fn receive_main(&self, now: u64, vt: u64, buf: &mut Vec<u8>) -> Option<Delivery> {
        let sh = self.mem.shared();
        let n = u64::from(self.n);
        for _ in 0..2 * n + 8 {
            let r = sh.rcur.load(SeqCst);
            let mut f = self.fill_seen.load(Relaxed);
            if r >= f {
                // Caught up with our last reading: the published head
                // first (§5.2), the senders' `fill` when it cannot tell.
                match self.look_at_head(r, now) {
                    HeadLook::Nothing => return None,
                    HeadLook::Upto(h) => f = h,
                    HeadLook::LoadFill => {}
                }
            }
            if r >= f {
                f = self.load_fill(now);
                if r > f {
                    // Ahead of every ticket: only a foreign write does that
                    // (receivers never pass `fill`). Bring it back, or the
                    // main path would skip the next messages sent (§8).
                    let _ = sh.rcur.compare_exchange(r, f, SeqCst, Relaxed);
                    self.fill_seen.store(0, Relaxed);
                    return None;
                }
                if r == f {
                    return None;
                }
            }
            // More than two laps behind: only a foreign write of `rcur` or
            // `fill` gets here (a ticket is taken only for a slot seen free,
            // §5.1). Older positions hold nothing the last lap does not;
            // a message jumped over is the sweep's (late, never lost). Within
            // two laps the receiver steps, which keeps ticket order.
            if f - r > 2 * n {
                if sh.rcur.compare_exchange(r, f - n, SeqCst, Relaxed).is_ok() {
                    self.note_skip();
                }
                continue;
            }
            let i = (r % n) as u32;
            if let Some(d) = self.try_take(i, now, vt, buf, Pass::Main(r)) {
                // A message other than ticket r's (a returned one that sat in
                // the slot) leaves ticket r unleased: that is a skip too.
                if sh.rcur.compare_exchange(r, r + 1, SeqCst, Relaxed).is_ok() && d.id != r {
                    self.note_skip();
                }
                return Some(d);
            }
            // The newest ticket's slot is still being claimed or written:
            // its sender publishes in a moment. With nothing beyond it,
            // stepping over it would only make the sender move `rcur` back
            // (§5.1). Wait a little for the publish, looking at the slot
            // only every few pauses (each look takes the line from the
            // writing sender); then report the main path empty. The next
            // ticket taken makes the slot one to step over.
            if r + 1 == f && self.in_flight(i) {
                // `f` may be this process's stale reading: look at `fill`
                // before waiting on a ticket that may not be the newest.
                let f2 = self.load_fill(now);
                if f2 != f {
                    continue;
                }
                if self.wait_publish(i) {
                    continue;
                }
                return None;
            }
            // SYNC POINT (§5.1): advance, count the skip, then look again,
            // against the sender's publish commit then load of `skips`. One
            // of us sees the other.
            if sh.rcur.compare_exchange(r, r + 1, SeqCst, Relaxed).is_ok() {
                #[cfg(not(shmq_mutation = "no_skip_mark"))]
                if !self.holds_published(i, r) {
                    self.note_skip();
                }
                if let Some(d) = self.try_take(i, now, vt, buf, Pass::Main(r)) {
                    return Some(d);
                }
            }
        }
        None
    }

    /// Whether slot `i` holds ticket `t`'s own message, published (READY,
    /// LEASED or DEAD, at rest): then nobody will publish ticket `t` again,
    /// and stepping over it needs no count in `skips` (§5.2). This is the
    /// common step with competing receivers: another receiver leased the
    /// message and has not advanced `rcur` yet.
    ///
    /// The id is read between two reads of the state word: a sender that
    /// claims the slot meanwhile changes the state before it stores its id
    /// (Release), so an id read from a newer claim is caught by the second
    /// read (Acquire on the id, then the state).
    pub(super) fn holds_published(&self, i: u32, t: u64) -> bool {
        let View::Valid {
            s,
            st: St::Ready | St::Leased | St::Dead,
            ..
        } = self.read(i)
        else {
            return false;
        };
        let w = self.w(i);
        w.msg_id.load(Acquire) == t && dekker_load(&w.state) == s
    }

    /// §5.2, polling the published head: what a caught-up receiver at
    /// ticket `r` learns without a load of `fill`. It loaded `fill` in
    /// this clock tick (`now`) and this process has sent nothing since
    /// that it has not seen (a process that sends, then receives, sees its
    /// message), and `head` is trusted (it moved whenever `fill` did, see
    /// [`load_fill`](Self::load_fill)); otherwise `LoadFill`. Then `head`
    /// unchanged since this process last read it means nothing was
    /// published since (`Nothing`); changed, with `r < head <= r + N`,
    /// every ticket below it was taken (its sender stored it after taking
    /// its ticket, Release, read here with Acquire), so `fill >= head`
    /// (`Upto`); any other value (a store of an older ticket by a slower
    /// sender, a foreign write) says nothing (`LoadFill`). `Nothing` only
    /// delays: a message whose sender stores no `head` (a build before
    /// it) or at a later ticket than one whose sender died is found at
    /// the next tick, or at once by a receiver about to park, which calls
    /// [`look_at_fill`](Self::look_at_fill) first (§6).
    fn look_at_head(&self, r: u64, now: u64) -> HeadLook {
        if self.fill_looked_ms.load(Relaxed) != now
            || self.fill_next.load(Relaxed) > r
            || !self.head_trusted.load(Relaxed)
        {
            return HeadLook::LoadFill;
        }
        let h = self.mem.shared().head.load(Acquire);
        if h == self.head_seen.load(Relaxed) {
            return HeadLook::Nothing;
        }
        self.head_seen.store(h, Relaxed);
        #[cfg(not(shmq_mutation = "head_unbounded"))]
        let within = h > r && h - r <= u64::from(self.n);
        // Mutant (design.md §10): any value of `head` above `rcur` counts.
        #[cfg(shmq_mutation = "head_unbounded")]
        let within = h > r;
        if within {
            // The message is most likely ticket `r`'s: start the transfer
            // of its first payload line now, beside the control line's that
            // the look at the slot starts, rather than after the lease CAS.
            let control = std::ptr::from_ref(&self.w((r % u64::from(self.n)) as u32).state);
            let payload = control
                .cast::<u8>()
                .wrapping_add(crate::layout::SLOT_HEADER_LEN);
            prefetch(payload, For::Read);
            self.fill_seen.store(h, Relaxed);
            HeadLook::Upto(h)
        } else {
            HeadLook::LoadFill
        }
    }

    /// Load `fill` (SeqCst) for a caught-up receiver, noting the reading
    /// and the clock tick, and `head` before it: a publish whose `head`
    /// store this load of `head` missed took its ticket before the `head`
    /// store, so either the load of `fill` sees the ticket or the next
    /// look at `head` sees the change. `head` stays trusted only while it
    /// moves whenever `fill` does: senders that store no `head` (builds
    /// before it) move `fill` alone, and then every look loads `fill`
    /// until `head` moves again.
    fn load_fill(&self, now: u64) -> u64 {
        let sh = self.mem.shared();
        #[cfg(not(shmq_mutation = "head_after_fill"))]
        let (h, f) = (sh.head.load(Acquire), sh.fill.load(SeqCst));
        // Mutant (design.md §10): `head` loaded after `fill`.
        #[cfg(shmq_mutation = "head_after_fill")]
        let (f, h) = (sh.fill.load(SeqCst), sh.head.load(Acquire));
        self.fill_seen.store(f, Relaxed);
        self.fill_looked_ms.store(now, Relaxed);
        self.head_seen.store(h, Relaxed);
        // Loads and stores, not swaps (an `xchg` is a locked instruction):
        // these words are this process's, and threads racing on them only
        // blur the heuristic for a tick.
        let fill_moved = self.fill_at_look.load(Relaxed) != f;
        let head_moved = self.head_at_look.load(Relaxed) != h;
        self.fill_at_look.store(f, Relaxed);
        self.head_at_look.store(h, Relaxed);
        if head_moved {
            self.head_trusted.store(true, Relaxed);
        } else if fill_moved {
            self.head_trusted.store(false, Relaxed);
        }
        f
    }

    /// Make the next receive of this process load `fill` whatever the
    /// clock says: a receiver about to park calls this before its last
    /// look, whose load of `fill` is the load half of the §6 Dekker pair.
    pub fn look_at_fill(&self) {
        self.fill_looked_ms.store(u64::MAX, Relaxed);
    }

    /// A receiver moved `rcur` past a ticket it did not lease (§5.2).
    /// SYNC POINT: SeqCst RMW after the `rcur` CAS and before the re-check
    /// load of the slot, against the sender's publish then load of `skips`
    /// (`recheck_rcur`).
    pub(super) fn note_skip(&self) {
        self.mem.shared().skips.fetch_add(1, SeqCst);
    }

    /// Wait up to [`PUBLISH_WAIT_LOOKS`] looks, a few spin pauses apart, for
    /// slot `i` to stop being in flight. A sender publishes within about a
    /// hundred nanoseconds of taking its ticket, so this bounds the wait at
    /// a few microseconds, spent only when a sender is mid-send (or died
    /// there, until the next ticket is taken).
    pub(super) fn wait_publish(&self, i: u32) -> bool {
        for _ in 0..PUBLISH_WAIT_LOOKS {
            for _ in 0..PUBLISH_WAIT_PAUSES {
                spin_hint();
            }
            if !self.in_flight(i) {
                return true;
            }
        }
        false
    }

    /// Whether slot `i` is being claimed or written: FREE (a sender holds
    /// its ticket and has not claimed yet) or WRITING.
    pub(super) fn in_flight(&self, i: u32) -> bool {
        matches!(
            self.read(i),
            View::Valid {
                st: St::Free | St::Writing,
                ..
            }
        )
    }

    /// §5.2 for a batch: lease the messages of consecutive tickets from
    /// `rcur` while their slots hold visible READY messages, at most `max`,
    /// then advance `rcur` over all of them with one CAS. Each lease is the
    /// single transition of §4. Deliveries are pushed to `got` and the
    /// payload of `got[k]` is copied into `bufs[k]` (grown as needed).
    /// Returns how many were leased; 0 when the next ticket's slot holds
    /// anything else, which the single-message path then steps over.
    ///
    /// Skipping only slots it leased itself, the advance hides nothing
    /// from other receivers: a leased slot holds no other message, and no
    /// sender publishes into it while the lease lasts.
    pub fn receive_many(
        &self,
        now: u64,
        vt: u64,
        bufs: &mut Vec<Vec<u8>>,
        got: &mut Vec<Delivery>,
        max: usize,
    ) -> usize {
        let sh = self.mem.shared();
        let n = u64::from(self.n);
        let r = sh.rcur.load(SeqCst);
        let mut f = self.fill_seen.load(Relaxed);
        if r >= f {
            f = sh.fill.load(SeqCst);
            self.fill_seen.store(f, Relaxed);
        }
        if r >= f || f - r > n {
            return 0;
        }
        let want = (f - r).min(max as u64);
        let mut k = 0u64;
        // Whether a leased message was not its ticket's own (a returned one
        // sitting in the slot): the advance then passes a ticket unleased,
        // which counts as a skip (§5.2).
        let mut foreign = false;
        while k < want {
            let i = ((r + k) % n) as u32;
            let View::Valid {
                s,
                st: St::Ready,
                time,
                ..
            } = self.read(i)
            else {
                break;
            };
            if !self.visible(i, time, now) || !self.on_this_pass(i, Pass::Main(r + k)) {
                break;
            }
            let at = got.len();
            if bufs.len() <= at {
                bufs.resize_with(at + 1, Vec::new);
            }
            let seen = self.aux(i);
            let Some(d) = self.lease(i, s, seen, now, vt, &mut bufs[at]) else {
                break;
            };
            foreign |= d.id != r + k;
            got.push(d);
            k += 1;
        }
        if k > 0 {
            #[cfg(not(shmq_mutation = "batch_skip_one_more"))]
            let to = r + k;
            // Mutant (design.md §10): advance over one ticket more than was
            // leased.
            #[cfg(shmq_mutation = "batch_skip_one_more")]
            let to = r + k + 1;
            if sh.rcur.compare_exchange(r, to, SeqCst, Relaxed).is_ok() && foreign {
                self.note_skip();
            }
        }
        k as usize
    }
}

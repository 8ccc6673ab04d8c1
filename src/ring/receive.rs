//! Receive, main path (docs/design.md §5.2): `rcur`, the paced wait for
//! the newest ticket, batches.

use super::*;

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
                // Caught up with our last reading. Slot first (§5.2): the
                // slot of ticket `r` holding ticket `r`'s message, READY,
                // says `fill > r` without a look at the senders' line.
                if self.holds_ready(r) {
                    f = r + 1;
                } else if self.fill_looked_recently(r, now) {
                    // The next message is most likely ticket `r`'s: wait a
                    // little if its sender is writing it, else report the
                    // main path empty without a load of `fill`.
                    let i = (r % n) as u32;
                    if self.writing(i) && self.wait_publish(i) {
                        continue;
                    }
                    return None;
                }
            }
            if r >= f {
                // Read the senders' word.
                f = sh.fill.load(SeqCst);
                self.fill_seen.store(f, Relaxed);
                self.fill_looked_ms.store(now, Relaxed);
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
                let f2 = sh.fill.load(SeqCst);
                self.fill_seen.store(f2, Relaxed);
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

    /// Whether the slot of ticket `t` holds ticket `t`'s own message, READY
    /// (§5.2, slot first): then ticket `t` was taken, and `fill > t`. The
    /// id is read (Acquire) after the state word (SeqCst); it was stored
    /// by the claim of the generation read or of a later one, and in the
    /// latter case the lease CAS from the state read fails. The id is what
    /// keeps `rcur` at or below `fill`: a message returned to the slot
    /// (an older id) says nothing about ticket `t`. A forged id only makes
    /// the receiver lease a READY message at `rcur` and move `rcur` past
    /// `fill`, which the next receive brings back (§8).
    pub(super) fn holds_ready(&self, t: u64) -> bool {
        let i = (t % u64::from(self.n)) as u32;
        matches!(self.read(i), View::Valid { st: St::Ready, .. })
            && self.w(i).msg_id.load(Acquire) == t
    }

    /// Whether a caught-up receiver at ticket `r` may skip its load of
    /// `fill` (§5.2, slot first): it loaded `fill` in this clock tick
    /// (`now`), and this process has sent nothing since that it has not
    /// seen (so a process that sends and then receives sees its message).
    /// Skipping only delays: it leases nothing and moves nothing, and a
    /// message at a later ticket than `r` (ticket `r`'s sender died before
    /// its claim, or a walk stepped over a slot freed meanwhile) is found
    /// at the next tick's look, or at once by a receiver about to park,
    /// which calls [`look_at_fill`](Self::look_at_fill) first (§6).
    fn fill_looked_recently(&self, r: u64, now: u64) -> bool {
        self.fill_looked_ms.load(Relaxed) == now && self.fill_next.load(Relaxed) <= r
    }

    /// Make the next receive of this process load `fill` whatever the
    /// clock says: a receiver about to park calls this before its last
    /// look, whose load of `fill` is the load half of the §6 Dekker pair.
    pub fn look_at_fill(&self) {
        self.fill_looked_ms.store(u64::MAX, Relaxed);
    }

    /// Whether slot `i` is claimed and being written (WRITING).
    fn writing(&self, i: u32) -> bool {
        matches!(
            self.read(i),
            View::Valid {
                st: St::Writing,
                ..
            }
        )
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

//! A dead-letter queue that is a queue (docs/design.md §5.5): a queue can
//! name another queue file; a message that dies (max receives, or
//! rejected) is sent there with an envelope, then freed here.

use super::*;

/// Bytes of the envelope before a moved message's payload.
const ENVELOPE_LEN: usize = 32;

/// Where a message in a dead-letter queue came from. A message a queue
/// moves to its dead-letter queue (see [`Queue::set_dead_letter_queue`]) is
/// these 32 bytes followed by its payload:
///
/// ```text
/// offset  size  field
///      0     8  source     the source queue's identity (Queue::identity)
///      8     8  id         the message's id in the source queue
///     16     4  receives   deliveries in the source queue
///     20     4  reason     why it died (DeadReason::code)
///     24     8  sent       when it was sent, Unix milliseconds
/// ```
///
/// All little-endian. A crash between the move's send and its removal from
/// the source leaves the message in the source too; the next move sends it
/// again, so a dead-letter queue may hold a message twice, with the same
/// `(source, id)` (at-least-once, never a loss).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetterEnvelope {
    /// The source queue's identity.
    pub source: u64,
    /// The message's id in the source queue.
    pub id: u64,
    /// How many times the source queue delivered it.
    pub receives: u32,
    /// Why it died.
    pub reason: DeadReason,
    /// When it was sent to the source queue, Unix milliseconds.
    pub sent_unix_ms: u64,
}

impl DeadLetterEnvelope {
    /// Bytes of the envelope.
    pub const LEN: usize = ENVELOPE_LEN;

    /// Split a message of a dead-letter queue into its envelope and the
    /// original payload; `None` if it is too short or names no reason a
    /// move writes.
    pub fn parse(msg: &[u8]) -> Option<(DeadLetterEnvelope, &[u8])> {
        if msg.len() < ENVELOPE_LEN {
            return None;
        }
        let (head, payload) = msg.split_at(ENVELOPE_LEN);
        let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().unwrap_or([0; 4]));
        let reason = DeadReason::from_code(u32_at(20));
        if !matches!(reason, DeadReason::MaxReceives | DeadReason::Rejected) {
            return None;
        }
        Some((
            DeadLetterEnvelope {
                source: u64_at(0),
                id: u64_at(8),
                receives: u32_at(16),
                reason,
                sent_unix_ms: u64_at(24),
            },
            payload,
        ))
    }

    fn write(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.source.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.receives.to_le_bytes());
        out.extend_from_slice(&self.reason.code().to_le_bytes());
        out.extend_from_slice(&self.sent_unix_ms.to_le_bytes());
        out.extend_from_slice(payload);
    }
}

/// A handle's reading of the words naming its dead-letter queue.
#[derive(Default)]
pub(super) struct Cache {
    /// The sequence word as last read (0: nothing read yet or named).
    seq: AtomicU64Local,
    /// The dead-letter queue, open, if one is named and could be opened.
    queue: std::sync::Mutex<Option<Queue>>,
}

/// How many times a reader retries a seqlock read that a writer overlapped.
const READS: usize = 64;

impl Queue {
    /// Name `dlq` as this queue's dead-letter queue, for every process
    /// that uses this queue (the name lives in the file, as SQS's redrive
    /// policy): from now on a message that dies here (at max receives, or
    /// rejected) is sent to `dlq` with a [`DeadLetterEnvelope`] and then
    /// freed here, so dead letters no longer take this queue's slots. When
    /// `dlq` is full (or gone), a message stays dead here, as without one,
    /// and is moved by a later pass. `dlq` is an ordinary queue: consume
    /// it, inspect it, and [`redrive_from_dead_letter_queue`] moves its
    /// messages back.
    ///
    /// [`redrive_from_dead_letter_queue`]: Self::redrive_from_dead_letter_queue
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, DeadLetterEnvelope, Queue};
    /// let q = Queue::create(dir.path().join("orders.q"), &Config::default().max_receives(1))?;
    /// let dlq = Queue::create(dir.path().join("orders.dlq"), &Config::default().slot_size(4096 + 32))?;
    /// q.set_dead_letter_queue(&dlq)?;
    /// let id = q.send("poison")?;
    /// q.try_receive().unwrap().nack(std::time::Duration::ZERO)?; // dies
    /// let dead = dlq.try_receive().unwrap();
    /// let (env, payload) = DeadLetterEnvelope::parse(dead.payload()).unwrap();
    /// assert_eq!((env.source, env.id, payload), (q.identity(), id, &b"poison"[..]));
    /// assert!(q.dead_letters().is_empty(), "moved, not kept here");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `dlq` is this queue, if its slots are
    /// smaller than this queue's plus the 32-byte envelope, or if its path
    /// (relative to this queue's directory when they share one) is longer
    /// than 256 bytes or not UTF-8.
    pub fn set_dead_letter_queue(&self, dlq: &Queue) -> Result<()> {
        if dlq.identity() == self.identity() {
            return Err(Error::InvalidConfig(
                "a queue cannot be its own dead-letter queue".into(),
            ));
        }
        let need = self.inner.config.slot_size as usize + ENVELOPE_LEN;
        if (dlq.inner.config.slot_size as usize) < need {
            return Err(Error::InvalidConfig(format!(
                "the dead-letter queue's slot size is {}, and must be at least {need} \
                 (this queue's {} plus the {ENVELOPE_LEN}-byte envelope)",
                dlq.inner.config.slot_size, self.inner.config.slot_size
            )));
        }
        let name = relative_name(&self.inner.path, &dlq.inner.path)?;
        self.write_dlq_words(dlq.identity(), name.as_bytes());
        self.refresh_dlq();
        Ok(())
    }

    /// Stop moving dead letters to a dead-letter queue (for every process
    /// that uses this queue); they stay dead here again.
    pub fn clear_dead_letter_queue(&self) {
        self.write_dlq_words(0, b"");
        self.refresh_dlq();
    }

    /// The path of the dead-letter queue this queue names, if any.
    pub fn dead_letter_queue_path(&self) -> Option<PathBuf> {
        let (identity, name) = self.read_dlq_words()?;
        (identity != 0).then(|| resolve(&self.inner.path, &name))
    }

    /// Move messages of the dead-letter queue that came from this queue
    /// back here, at most `limit`, oldest first: each is sent here as a new
    /// message (its payload without the envelope, its receive count
    /// starting again) and then acked there. Messages of other queues are
    /// left where they are. Returns how many moved; 0 without a dead-letter
    /// queue. Stops early when this queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Contended`] and the like from the dead-letter queue's acks.
    pub fn redrive_from_dead_letter_queue(&self, limit: usize) -> Result<usize> {
        let Some(dlq) = self.dlq() else {
            return Ok(0);
        };
        let mut moved = 0;
        // Leases of messages left there (other queues', unreadable ones, or
        // those this queue had no room for), given back at the end so that
        // the loop does not take them again.
        let mut left = Vec::new();
        let capacity = dlq.inner.config.slots as usize;
        for _ in 0..capacity {
            if moved == limit {
                break;
            }
            let Some(lease) = dlq.try_receive() else {
                break;
            };
            let ours = DeadLetterEnvelope::parse(lease.payload())
                .filter(|(env, _)| env.source == self.identity());
            match ours {
                Some((_, payload)) => match self.send(payload) {
                    Ok(_) => {
                        lease.ack()?;
                        moved += 1;
                    }
                    Err(_) => {
                        left.push(lease);
                        break;
                    }
                },
                None => left.push(lease),
            }
        }
        for lease in left {
            let _ = lease.nack(Duration::ZERO);
        }
        if moved > 0 {
            self.wake_parked();
        }
        Ok(moved)
    }

    /// Move the dead letters this handle dead-lettered or its sweep passed
    /// to the dead-letter queue, if one is named (§5.5). Called after every
    /// receive and after a nack or reject that killed a message; costs one
    /// load of the header's sequence word when no queue is named.
    pub(crate) fn move_dead_letters(&self, slot: Option<u32>) {
        if self.follow_name() == 0 || (slot.is_none() && !self.inner.ring.has_dead()) {
            return;
        }
        let Some(dlq) = self.opened_dlq() else {
            return;
        };
        let mut buf = Vec::new();
        if let Some(i) = slot {
            self.move_one(&dlq, i, &mut buf);
        }
        for (i, _) in self.inner.ring.take_dead() {
            self.move_one(&dlq, i, &mut buf);
        }
    }

    /// Send slot `i`'s dead letter to `dlq`, then free the slot here. A
    /// crash between the two leaves it here, dead, for the next pass: a
    /// duplicate there at worst, never a loss. A dead letter that does not
    /// fit, or a full `dlq`, leaves it here. From a durable queue, the send
    /// there is synced before the purge here.
    fn move_one(&self, dlq: &Queue, i: u32, buf: &mut Vec<u8>) {
        let mut payload = Vec::new();
        let Some(info) = self.inner.ring.peek(i, &mut payload) else {
            return;
        };
        let reason = DeadReason::from_code(info.reason);
        if info.state != Some(St::Dead)
            || !matches!(reason, DeadReason::MaxReceives | DeadReason::Rejected)
        {
            return;
        }
        DeadLetterEnvelope {
            source: self.identity(),
            id: info.id,
            receives: info.receives,
            reason,
            sent_unix_ms: crate::clock::wall_time(info.sent_ms)
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, millis),
        }
        .write(&payload, buf);
        failpoint!("deadletter.before_move");
        if dlq.send(buf.as_slice()).is_err() {
            return;
        }
        // A durable queue purges only what is on disk there (§12.5): a power
        // cut must not keep the purge here and lose the send there.
        if self.inner.config.durable && !dlq.is_durable() && dlq.sync().is_err() {
            return;
        }
        failpoint!("deadletter.after_move");
        let _ = self.inner.ring.purge(i, Some(info.gen), now_ms());
    }

    /// The dead-letter queue, open (opened on first use and when the name
    /// changes), if one is named and it opens.
    fn dlq(&self) -> Option<Queue> {
        self.follow_name();
        self.opened_dlq()
    }

    /// The dead-letter queue as last opened.
    fn opened_dlq(&self) -> Option<Queue> {
        self.inner.dlq.queue.lock().ok()?.clone()
    }

    /// Load the header's sequence word (one Relaxed load) and, if it moved
    /// since this handle last read the name, read it again. Returns the
    /// word: 0 when no dead-letter queue was ever named.
    fn follow_name(&self) -> u64 {
        let seq = self
            .inner
            .ring
            .memory()
            .dead_letter_queue()
            .seq
            .load(Relaxed);
        if seq != self.inner.dlq.seq.load(LocalOrdering::Relaxed) {
            self.refresh_dlq();
        }
        seq
    }

    /// Read the name again and open the queue it names.
    fn refresh_dlq(&self) {
        let words = self.inner.ring.memory().dead_letter_queue();
        let seq = words.seq.load(Acquire);
        let opened = self.read_dlq_words().and_then(|(identity, name)| {
            if identity == 0 {
                return None;
            }
            let q = Queue::open(resolve(&self.inner.path, &name)).ok()?;
            (q.identity() == identity).then_some(q)
        });
        self.inner.ring.collect_dead(opened.is_some());
        if let Ok(mut g) = self.inner.dlq.queue.lock() {
            *g = opened;
        }
        self.inner.dlq.seq.store(seq, LocalOrdering::Relaxed);
    }

    /// The named queue's identity and name, read whole (a seqlock read);
    /// `None` if nothing was ever named, or a writer keeps writing.
    fn read_dlq_words(&self) -> Option<(u64, String)> {
        read_name(self.inner.ring.memory().dead_letter_queue())
    }

    /// Write the words naming the dead-letter queue (a seqlock write).
    fn write_dlq_words(&self, identity: u64, name: &[u8]) {
        write_name(self.inner.ring.memory().dead_letter_queue(), identity, name);
    }
}

/// The named queue's identity and name, read whole (a seqlock read, with
/// Relaxed loads and fences only, as a read-only mapping allows); `None` if
/// nothing was ever named, or a writer keeps writing.
pub(crate) fn read_name(w: &crate::layout::DeadLetterQueueWords) -> Option<(u64, String)> {
    {
        for _ in 0..READS {
            // SYNC POINT: the fence after this load pairs with the writer's
            // Release store of the even sequence; the fence before the
            // second load pairs with its Release fence after the odd one (a
            // seqlock).
            let s1 = w.seq.load(Relaxed);
            fence(Acquire);
            if s1 == 0 {
                return None;
            }
            if s1 % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let identity = w.identity.load(Relaxed);
            let len = (w.len.load(Relaxed) as usize).min(w.path.len() * 8);
            let mut bytes: Vec<u8> = w
                .path
                .iter()
                .flat_map(|x| x.load(Relaxed).to_le_bytes())
                .collect();
            bytes.truncate(len);
            fence(Acquire);
            if w.seq.load(Relaxed) != s1 {
                continue;
            }
            // A name that is not UTF-8 names nothing this build opens.
            return Some((identity, String::from_utf8(bytes).ok()?));
        }
        None
    }
}

/// Write the words naming the dead-letter queue (a seqlock write).
fn write_name(w: &crate::layout::DeadLetterQueueWords, identity: u64, name: &[u8]) {
    {
        let mut s = w.seq.load(Acquire);
        // An odd word is another writer's, or a dead writer's: take it
        // over by moving to the next odd value.
        let odd = loop {
            let next = if s % 2 == 0 { s + 1 } else { s + 2 };
            match w.seq.compare_exchange(s, next, AcqRel, Acquire) {
                Ok(_) => break next,
                Err(x) => s = x,
            }
        };
        fence(Release);
        w.identity.store(identity, Relaxed);
        w.len.store(name.len() as u64, Relaxed);
        for (k, word) in w.path.iter().enumerate() {
            let mut b = [0u8; 8];
            for (j, byte) in b.iter_mut().enumerate() {
                *byte = name.get(k * 8 + j).copied().unwrap_or(0);
            }
            word.store(u64::from_le_bytes(b), Relaxed);
        }
        // SYNC POINT: Release pairs with the reader's Acquire fence.
        w.seq.store(odd + 1, Release);
    }
}

/// The name to store for `dlq` seen from the queue at `source`: its file
/// name when both share a directory, its absolute path otherwise.
fn relative_name(source: &Path, dlq: &Path) -> Result<String> {
    let dir = |p: &Path| {
        p.parent().map(|d| {
            std::fs::canonicalize(if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            })
        })
    };
    let same_dir = match (dir(source), dir(dlq)) {
        (Some(Ok(a)), Some(Ok(b))) => a == b,
        _ => false,
    };
    let name = if same_dir {
        dlq.file_name().map(PathBuf::from)
    } else {
        std::fs::canonicalize(dlq).ok()
    };
    let name = name
        .and_then(|n| n.to_str().map(str::to_owned))
        .ok_or_else(|| {
            Error::InvalidConfig(format!(
                "the dead-letter queue's path {} is not UTF-8",
                dlq.display()
            ))
        })?;
    if name.len() > 256 {
        return Err(Error::InvalidConfig(format!(
            "the dead-letter queue's path is {} bytes, longer than 256; put it beside the queue",
            name.len()
        )));
    }
    Ok(name)
}

/// The path a stored name names, seen from the queue at `source`.
pub(crate) fn resolve(source: &Path, name: &str) -> PathBuf {
    let name = Path::new(name);
    if name.is_absolute() {
        return name.to_path_buf();
    }
    source
        .parent()
        .map_or_else(|| name.to_path_buf(), |d| d.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_and_refuses_what_no_move_writes() {
        let env = DeadLetterEnvelope {
            source: 0x1122_3344_5566_7788,
            id: 42,
            receives: 5,
            reason: DeadReason::Rejected,
            sent_unix_ms: 1_700_000_000_000,
        };
        let mut buf = Vec::new();
        env.write(b"payload", &mut buf);
        assert_eq!(buf.len(), DeadLetterEnvelope::LEN + 7);
        assert_eq!(
            DeadLetterEnvelope::parse(&buf),
            Some((env, &b"payload"[..]))
        );
        assert_eq!(DeadLetterEnvelope::parse(&buf[..31]), None);
        let mut bad = buf.clone();
        bad[20] = 2; // reason corrupt: a quarantine, never moved
        assert_eq!(DeadLetterEnvelope::parse(&bad), None);
    }
}

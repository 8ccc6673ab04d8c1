//! Byte layout of a queue file (docs/design.md §2) and the memory the core
//! runs on.
//!
//! ```text
//! offset  size  field                    offset  size  field
//!      0     8  magic                       128    16  boot_id
//!      8     4  version (written last)      144     8  sweep_due_ms
//!     12     4  flags                       152     8  sweep_cursor
//!     16     4  slot_count                  160     8  sweep_pending
//!                                            168     8  sweep_next
//!     20     4  slot_size                   256     8  fill      (senders)
//!     24     4  slot_stride                 264     8  sent
//!     28     4  max_receives                384     8  rcur      (receivers)
//!     32     8  visibility_timeout_ms       512     4  park      (futex)
//!     40     8  claim_timeout_ms            640    32  acked, redelivered, dead_lettered,
//!                                                       redriven
//!                                            768     8  full_hint
//!                                            776     8  skips
//!                                            784     4  room      (futex)
//!     48     8  created_unix_ms            1024   128  durability words (§12)
//!     56     8  file_len                   2048   512  (dead-letter queue, reserved)
//!     64     4  header_crc                 4096 32768  registration table
//!                                          36864     -  slots
//! ```
//!
//! The immutable part (0..128) is read with plain byte copies and validated by
//! `queue.rs`; the mutable part is [`Shared`] and every slot is a [`SlotWords`]
//! followed by its payload words.

use crate::sync::{AtomicU32, AtomicU64};

pub(crate) const MAGIC: [u8; 8] = *b"SHMQ\x00FMQ";
pub(crate) const FORMAT_VERSION: u32 = 2;
/// Where the durability words live ([`DurabilityWords`], docs/design.md §12).
pub(crate) const OFF_DURABILITY: usize = 1024;
/// Where the dead-letter queue's name will live (zero until used).
pub(crate) const OFF_DEAD_LETTER_QUEUE: usize = 2048;
/// The process registration table: `REGISTRY_ENTRIES` entries of
/// `REGISTRY_ENTRY_WORDS` 8-byte words (docs/design.md §7.4).
pub(crate) const OFF_REGISTRY: usize = 4096;
pub(crate) const REGISTRY_ENTRIES: usize = 1024;
pub(crate) const REGISTRY_ENTRY_WORDS: usize = 4;
pub(crate) const REGISTRY_WORDS: usize = REGISTRY_ENTRIES * REGISTRY_ENTRY_WORDS;
/// Bytes before slot 0: the header page and the registration table.
pub(crate) const HEADER_LEN: usize = OFF_REGISTRY + REGISTRY_WORDS * 8;

pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_FLAGS: usize = 12;
pub(crate) const OFF_SLOT_COUNT: usize = 16;
pub(crate) const OFF_SLOT_SIZE: usize = 20;
pub(crate) const OFF_SLOT_STRIDE: usize = 24;
pub(crate) const OFF_MAX_RECEIVES: usize = 28;
pub(crate) const OFF_VISIBILITY_MS: usize = 32;
pub(crate) const OFF_CLAIM_MS: usize = 40;
pub(crate) const OFF_CREATED_MS: usize = 48;
pub(crate) const OFF_FILE_LEN: usize = 56;
pub(crate) const OFF_HEADER_CRC: usize = 64;
/// The CRC covers bytes `0..CRC_COVERED` (with the version word as written).
pub(crate) const CRC_COVERED: usize = 64;
/// 8 random bytes drawn at creation, folded into the queue's identity so
/// that two queues created in the same millisecond with the same
/// configuration still differ (receipts and dead-letter envelopes name a
/// queue by its identity).
pub(crate) const OFF_NONCE: usize = 72;
pub(crate) const OFF_SHARED: usize = 128;

pub(crate) const FLAG_CHECKSUMS: u32 = 1;
/// The queue is durable: sends return once on stable storage (§12).
pub(crate) const FLAG_DURABLE: u32 = 2;

/// Size of a slot's control words.
pub(crate) const SLOT_HEADER_LEN: usize = 64;
pub(crate) const MAX_SLOTS: u32 = 1 << 24;
pub(crate) const MIN_SLOT_SIZE: u32 = 8;
pub(crate) const MAX_SLOT_SIZE: u32 = 16 << 20;
pub(crate) const MAX_RECEIVES_LIMIT: u32 = 65_535;
pub(crate) const MAX_TIMEOUT_MS: u64 = 12 * 3600 * 1000;

/// Bytes a slot takes for a payload capacity of `slot_size`.
pub(crate) const fn slot_stride(slot_size: u32) -> usize {
    SLOT_HEADER_LEN + (slot_size as usize).div_ceil(64) * 64
}

/// The header's mutable words, at offset 128. Roles sit 128 bytes apart.
/// Even the padding is atomics: another process may write any byte of the
/// mapping, and a shared reference may only cover bytes that tolerate that.
#[repr(C)]
pub struct Shared {
    /// Host boot id the clock words refer to (two little-endian halves).
    pub(crate) boot_id: [AtomicU64; 2],
    /// Clock time from which a sweep round may run (§5.3).
    pub(crate) sweep_due: AtomicU64,
    /// Monotonic slot counter of the sweep; used modulo the slot count.
    pub(crate) sweep_cursor: AtomicU64,
    /// Non-zero: a message became visible behind the cursors; sweep a full lap.
    pub(crate) sweep_pending: AtomicU64,
    /// Earliest future time the current sweep lap saw (a lease deadline, a
    /// delayed message); the next round starts no later (§5.3).
    pub(crate) sweep_next: AtomicU64,
    _pad0: [AtomicU64; 10],
    /// Senders' ticket counter; a ticket is a message id (§5.1).
    pub(crate) fill: AtomicU64,
    /// Counter: sends that returned Ok.
    pub(crate) sent: AtomicU64,
    _pad1: [AtomicU64; 14],
    /// Receivers' cursor over tickets (§5.2). Alone on its line: senders
    /// read it after every publish, so nothing else written per message
    /// may share it.
    pub(crate) rcur: AtomicU64,
    _pad2: [AtomicU64; 15],
    /// Futex word: `seq << 1 | has_waiters` (§6).
    pub(crate) park: AtomicU32,
    _pad3: [AtomicU32; 31],
    /// Counter: acks.
    pub(crate) acked: AtomicU64,
    /// Counter: deliveries of a message received before.
    pub(crate) redelivered: AtomicU64,
    /// Counter: messages that died at max receives.
    pub(crate) dead_lettered: AtomicU64,
    /// Counter: dead messages redriven (made visible again). With `sent`,
    /// `acked` and `dead_lettered` it gives the depth estimate of
    /// `Queue::depth_estimate`. Zero padding before it existed.
    pub(crate) redriven: AtomicU64,
    _pad4: [AtomicU64; 12],
    /// `t + 1` when a sender found every slot busy at clock time `t`; 0
    /// when a slot was freed since (§5.1). A hint: trusted for at most
    /// `FULL_HINT_MS`. Every send and every freeing commit load it, and it
    /// is written only when the queue fills, so it has a line of its own.
    pub(crate) full_hint: AtomicU64,
    /// Counter: times a receiver moved `rcur` past a ticket without
    /// leasing that ticket's message (§5.2). A sender publishing a ticket
    /// reloads `rcur` only when this moved during its send (§5.1). Written
    /// rarely, read by every send: it shares `full_hint`'s line.
    pub(crate) skips: AtomicU64,
    /// Futex word for senders waiting for room (`send_timeout`):
    /// `seq << 1 | has_waiters`, as `park` (§6). Every freeing commit loads
    /// it right after the full-queue hint, so it shares the hint's line.
    pub(crate) room: AtomicU32,
    _pad5a: AtomicU32,
    _pad5: [AtomicU64; 13],
    /// The ticket after the latest one published, as its sender last
    /// stored it (a plain Release store after its send, never an RMW):
    /// a caught-up receiver polls this instead of `fill` (§5.2, polling
    /// the published head). Written by every send, read only by caught-up
    /// receivers, so it has a line pair of its own. A hint: a receiver
    /// trusts it only as a lower bound of `fill` within one lap of `rcur`.
    pub(crate) head: AtomicU64,
    _pad6: [AtomicU64; 15],
}

/// The dead-letter queue a queue names, at `OFF_DEAD_LETTER_QUEUE`
/// (docs/design.md §5.5): written under a sequence word (odd while being
/// written), read as a seqlock.
#[repr(C)]
pub struct DeadLetterQueueWords {
    /// 0: never named; odd: being written; even: `identity`, `len` and
    /// `path` are whole.
    pub(crate) seq: AtomicU64,
    /// The dead-letter queue's identity (0: none named).
    pub(crate) identity: AtomicU64,
    /// Length of `path` in bytes (at most 256).
    pub(crate) len: AtomicU64,
    /// The dead-letter queue's path, relative to this queue's directory
    /// unless it starts with `/`; UTF-8 bytes, little-endian words.
    pub(crate) path: [AtomicU64; 32],
}

/// The group-commit words at `OFF_DURABILITY` (docs/design.md §12): two
/// cache lines, written only by durable senders and syncers.
#[repr(C)]
pub struct DurabilityWords {
    /// Epoch of the latest sync begun.
    pub(crate) begun: AtomicU64,
    /// Epoch of the latest sync completed; bit 63 (`SYNC_FAILED`): a sync
    /// failed, sticky until `recover` clears it.
    pub(crate) done: AtomicU64,
    /// The syncer's role: `holder << 36 | deadline_s`; 0: nobody.
    pub(crate) syncer: AtomicU64,
    /// The errno of the failed sync (informative: `done`'s bit decides).
    pub(crate) errno: AtomicU64,
    /// Futex word for durable waiters: `seq << 1 | has_waiters` (§6).
    pub(crate) wake: AtomicU32,
    _pad0: AtomicU32,
    /// Counter: syncs completed.
    pub(crate) syncs: AtomicU64,
    /// Counter: durable waits (durable sends and batches, `sync` calls).
    pub(crate) waits: AtomicU64,
    _pad1: [AtomicU64; 9],
}

impl DurabilityWords {
    pub(crate) fn zero() -> DurabilityWords {
        DurabilityWords {
            begun: AtomicU64::new(0),
            done: AtomicU64::new(0),
            syncer: AtomicU64::new(0),
            errno: AtomicU64::new(0),
            wake: AtomicU32::new(0),
            _pad0: AtomicU32::new(0),
            syncs: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            _pad1: std::array::from_fn(|_| Default::default()),
        }
    }
}

/// A slot's control words: one cache line (§2).
#[repr(C)]
pub struct SlotWords {
    /// `time_ms << 24 | gen << 4 | code`: every transition is one CAS of
    /// this word (§3, §4).
    pub(crate) state: AtomicU64,
    /// `receives << 48 | holder << 20 | tag`: the receive count and the
    /// claimer or lease holder, written (by CAS) right after the transition
    /// whose generation `tag` names (§3).
    pub(crate) aux: AtomicU64,
    /// The message id (the send ticket).
    pub(crate) msg_id: AtomicU64,
    /// Payload length in bytes; validated against the slot size on every read.
    pub(crate) len: AtomicU32,
    /// The message checksum (when checksums are on; design.md §8).
    pub(crate) crc: AtomicU32,
    /// Clock time of the send, in ms.
    pub(crate) sent_ms: AtomicU64,
    _reserved: [AtomicU64; 3],
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SlotWords>() == SLOT_HEADER_LEN);
    assert!(align_of::<SlotWords>() == 8);
    assert!(offset_of!(SlotWords, aux) == 8);
    assert!(offset_of!(SlotWords, msg_id) == 16);
    assert!(offset_of!(SlotWords, len) == 24);
    assert!(offset_of!(SlotWords, crc) == 28);
    assert!(offset_of!(SlotWords, sent_ms) == 32);
    assert!(OFF_SHARED + offset_of!(Shared, sweep_due) == 144);
    assert!(OFF_SHARED + offset_of!(Shared, sweep_pending) == 160);
    assert!(OFF_SHARED + offset_of!(Shared, sweep_next) == 168);
    assert!(OFF_SHARED + offset_of!(Shared, fill) == 256);
    assert!(OFF_SHARED + offset_of!(Shared, rcur) == 384);
    assert!(OFF_SHARED + offset_of!(Shared, park) == 512);
    assert!(OFF_SHARED + offset_of!(Shared, acked) == 640);
    assert!(OFF_SHARED + offset_of!(Shared, dead_lettered) == 656);
    assert!(OFF_SHARED + offset_of!(Shared, redriven) == 664);
    assert!(OFF_SHARED + offset_of!(Shared, full_hint) == 768);
    assert!(OFF_SHARED + offset_of!(Shared, skips) == 776);
    assert!(OFF_SHARED + offset_of!(Shared, room) == 784);
    assert!(OFF_SHARED + offset_of!(Shared, head) == 896);
    assert!(OFF_SHARED + size_of::<Shared>() <= OFF_DURABILITY);
    assert!(OFF_DURABILITY < OFF_DEAD_LETTER_QUEUE && OFF_DEAD_LETTER_QUEUE + 512 <= OFF_REGISTRY);
    assert!(HEADER_LEN == 36864 && HEADER_LEN % 4096 == 0);
    assert!(size_of::<DeadLetterQueueWords>() <= 512);
    assert!(size_of::<DurabilityWords>() == 128);
    assert!(OFF_DURABILITY + offset_of!(DurabilityWords, wake) == 1056);
    assert!(OFF_DURABILITY + offset_of!(DurabilityWords, syncs) == 1064);
    assert!(align_of::<Shared>() == 8);
};

/// Where the core's words live: the file mapping, or heap memory for loom
/// models and unit tests. Implementations guarantee `i < slot_count()`
/// indexes a real slot; the core never passes a larger index.
pub trait Memory {
    /// The header's mutable words.
    fn shared(&self) -> &Shared;
    /// Number of slots.
    fn slot_count(&self) -> u32;
    /// Slot `i`'s control words; `i < slot_count()`.
    fn slot(&self, i: u32) -> &SlotWords;
    /// Slot `i`'s payload, as 8-byte words; `i < slot_count()`.
    fn payload(&self, i: u32) -> &[AtomicU64];
    /// The process registration table's words (`REGISTRY_WORDS` of them).
    fn registry(&self) -> &[AtomicU64];
    /// The words naming the dead-letter queue.
    fn dead_letter_queue(&self) -> &DeadLetterQueueWords;
    /// The group-commit words.
    fn durability(&self) -> &DurabilityWords;
}

fn zero_shared() -> Shared {
    Shared {
        boot_id: [AtomicU64::new(0), AtomicU64::new(0)],
        sweep_due: AtomicU64::new(0),
        sweep_cursor: AtomicU64::new(0),
        sweep_pending: AtomicU64::new(0),
        sweep_next: AtomicU64::new(0),
        _pad0: std::array::from_fn(|_| Default::default()),
        fill: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        _pad1: std::array::from_fn(|_| Default::default()),
        rcur: AtomicU64::new(0),
        _pad2: std::array::from_fn(|_| Default::default()),
        park: AtomicU32::new(0),
        _pad3: std::array::from_fn(|_| Default::default()),
        acked: AtomicU64::new(0),
        redelivered: AtomicU64::new(0),
        dead_lettered: AtomicU64::new(0),
        redriven: AtomicU64::new(0),
        _pad4: std::array::from_fn(|_| Default::default()),
        full_hint: AtomicU64::new(0),
        skips: AtomicU64::new(0),
        room: AtomicU32::new(0),
        _pad5a: AtomicU32::new(0),
        _pad5: std::array::from_fn(|_| Default::default()),
        head: AtomicU64::new(0),
        _pad6: std::array::from_fn(|_| Default::default()),
    }
}

impl SlotWords {
    fn free() -> SlotWords {
        SlotWords {
            state: AtomicU64::new(crate::slot::pack_state(crate::slot::St::Free, 0, 0)),
            aux: AtomicU64::new(0),
            msg_id: AtomicU64::new(0),
            len: AtomicU32::new(0),
            crc: AtomicU32::new(0),
            sent_ms: AtomicU64::new(0),
            _reserved: std::array::from_fn(|_| Default::default()),
        }
    }
}

/// The heap memory's registration table: the file's size, except under loom,
/// where every atomic is an object the model tracks (four entries).
#[cfg(not(loom))]
const HEAP_REGISTRY_WORDS: usize = REGISTRY_WORDS;
#[cfg(loom)]
const HEAP_REGISTRY_WORDS: usize = 4 * REGISTRY_ENTRY_WORDS;

/// The core's words on the heap: what loom models and unit tests run on.
pub struct HeapMemory {
    shared: Shared,
    dlq: DeadLetterQueueWords,
    durability: DurabilityWords,
    registry: Vec<AtomicU64>,
    slots: Vec<SlotWords>,
    payload: Vec<AtomicU64>,
    words_per_slot: usize,
}

impl HeapMemory {
    /// `slots` free slots of `slot_size` payload bytes each.
    pub fn new(slots: u32, slot_size: u32) -> HeapMemory {
        let words_per_slot = (slot_size as usize).div_ceil(8);
        HeapMemory {
            shared: zero_shared(),
            dlq: DeadLetterQueueWords {
                seq: AtomicU64::new(0),
                identity: AtomicU64::new(0),
                len: AtomicU64::new(0),
                path: std::array::from_fn(|_| AtomicU64::new(0)),
            },
            durability: DurabilityWords::zero(),
            registry: (0..HEAP_REGISTRY_WORDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            slots: (0..slots).map(|_| SlotWords::free()).collect(),
            payload: (0..slots as usize * words_per_slot)
                .map(|_| AtomicU64::new(0))
                .collect(),
            words_per_slot,
        }
    }
}

impl Memory for HeapMemory {
    fn shared(&self) -> &Shared {
        &self.shared
    }
    fn slot_count(&self) -> u32 {
        self.slots.len() as u32
    }
    fn slot(&self, i: u32) -> &SlotWords {
        &self.slots[i as usize]
    }
    fn payload(&self, i: u32) -> &[AtomicU64] {
        let at = i as usize * self.words_per_slot;
        &self.payload[at..at + self.words_per_slot]
    }
    fn registry(&self) -> &[AtomicU64] {
        &self.registry
    }
    fn dead_letter_queue(&self) -> &DeadLetterQueueWords {
        &self.dlq
    }
    fn durability(&self) -> &DurabilityWords {
        &self.durability
    }
}

/// One memory shared by several rings: each ring is one process's view of
/// the file (its own `fill_seen`, `fill_next`, ...), as loom models and
/// ring tests need to model processes, not threads of one process.
impl<M: Memory> Memory for std::sync::Arc<M> {
    fn shared(&self) -> &Shared {
        (**self).shared()
    }
    fn slot_count(&self) -> u32 {
        (**self).slot_count()
    }
    fn slot(&self, i: u32) -> &SlotWords {
        (**self).slot(i)
    }
    fn payload(&self, i: u32) -> &[AtomicU64] {
        (**self).payload(i)
    }
    fn registry(&self) -> &[AtomicU64] {
        (**self).registry()
    }
    fn dead_letter_queue(&self) -> &DeadLetterQueueWords {
        (**self).dead_letter_queue()
    }
    fn durability(&self) -> &DurabilityWords {
        (**self).durability()
    }
}

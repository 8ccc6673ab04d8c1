//! The speed of light across processes: a minimal single-producer,
//! single-consumer ring of fixed-size slots in a shared file mapping.
//! No leases, no acks, no crash safety, no validation of the other side:
//! only what any cross-process queue must do (copy in, publish an index,
//! copy out, publish an index).
//!
//! Layout: `head` (producer's count) at byte 0, `tail` (consumer's count) at
//! byte 128, then `cap` slots of `stride = round_up(size, 64)` bytes from
//! byte 256. Each side caches the other's index and reloads it only when the
//! cached value says full (producer) or empty (consumer).

use std::cell::Cell;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::*};

use memmap2::MmapMut;

const HDR: usize = 256;

pub struct Ring {
    map: MmapMut,
    cap: u64,
    size: usize,
    stride: usize,
    /// Producer: its own head and the last tail it saw.
    head: Cell<u64>,
    seen_tail: Cell<u64>,
    /// Consumer: its own tail and the last head it saw.
    tail: Cell<u64>,
    seen_head: Cell<u64>,
}

fn stride(size: usize) -> usize {
    size.div_ceil(64) * 64
}

impl Ring {
    pub fn create(path: &Path, cap: usize, size: usize) -> Ring {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .expect("create ring file");
        f.set_len((HDR + cap * stride(size)) as u64).expect("size");
        drop(f);
        Self::open_with(path, cap, size)
    }

    /// The peers always use 1024 slots of 64..=4096 bytes; the size is
    /// read back from the file length.
    pub fn open(path: &Path) -> Ring {
        let len = std::fs::metadata(path).expect("stat").len() as usize;
        let cap = crate::SLOTS;
        let size = (len - HDR) / cap;
        Self::open_with(path, cap, size)
    }

    fn open_with(path: &Path, cap: usize, size: usize) -> Ring {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open ring file");
        // SAFETY: a bench-private file; the two sides touch disjoint slots
        // as the head/tail protocol below orders them.
        let map = unsafe { MmapMut::map_mut(&f) }.expect("map");
        Ring {
            map,
            cap: cap as u64,
            size,
            stride: stride(size),
            head: Cell::new(0),
            seen_tail: Cell::new(0),
            tail: Cell::new(0),
            seen_head: Cell::new(0),
        }
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: offsets 0 and 128 are inside the mapping and 8-aligned.
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU64) }
    }

    fn slot(&self, i: u64) -> *mut u8 {
        let off = HDR + (i % self.cap) as usize * self.stride;
        // SAFETY: in bounds: i % cap < cap slots of `stride` bytes.
        unsafe { self.map.as_ptr().add(off) as *mut u8 }
    }

    /// Write `k` copies of `msg` (waiting for room), then publish them.
    pub fn push_batch(&self, msg: &[u8], k: usize) {
        let h = self.head.get();
        let k = k as u64;
        while h + k - self.seen_tail.get() > self.cap {
            // SYNC POINT: pairs with the consumer's Release store of tail.
            self.seen_tail.set(self.word(128).load(Acquire));
            std::hint::spin_loop();
        }
        for j in 0..k {
            // SAFETY: slot h + j is free (the consumer's tail is past it)
            // and only the producer writes it until head moves past it.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.slot(h + j), msg.len()) };
        }
        self.head.set(h + k);
        // SYNC POINT: pairs with the consumer's Acquire load of head.
        self.word(0).store(h + k, Release);
    }

    /// Copy up to `max` messages into `out` (`size` bytes each); 0 if empty.
    pub fn pop_batch(&self, out: &mut [u8], max: usize) -> usize {
        let t = self.tail.get();
        if self.seen_head.get() == t {
            // SYNC POINT: pairs with the producer's Release store of head.
            self.seen_head.set(self.word(0).load(Acquire));
            if self.seen_head.get() == t {
                std::hint::spin_loop();
                return 0;
            }
        }
        let k = (self.seen_head.get() - t).min(max as u64);
        let size = self.size.min(out.len());
        for j in 0..k {
            let dst = &mut out[j as usize * size..(j as usize + 1) * size];
            // SAFETY: slot t + j was published by head and is not written
            // again until tail moves past it.
            unsafe { std::ptr::copy_nonoverlapping(self.slot(t + j), dst.as_mut_ptr(), size) };
        }
        self.tail.set(t + k);
        // SYNC POINT: pairs with the producer's Acquire load of tail.
        self.word(128).store(t + k, Release);
        k as usize
    }
}

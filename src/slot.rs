//! The two atomic words that carry a slot's life: packing and validation.
//!
//! `state` = `gen << 8 | st` and `clock` = `time_ms << 24 | tag`
//! (docs/design.md §3). Nothing here touches memory: these are pure functions
//! over `u64`s read once from the mapping, so a hostile value can only make
//! them return `None`.

/// Bits of the generation kept in `state`.
pub(crate) const GEN_BITS: u32 = 56;
pub(crate) const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
/// Bits of the generation kept as the clock word's tag.
pub(crate) const TAG_BITS: u32 = 24;
pub(crate) const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Largest time the clock word can hold (40 bits of milliseconds).
pub(crate) const TIME_MAX: u64 = (1 << (64 - TAG_BITS)) - 1;

/// Where a slot is in its life. Built only by `St::from_bits`, never by a cast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum St {
    /// No message; a sender may claim it.
    Free,
    /// Claimed by a sender that is writing the payload.
    Writing,
    /// Holds a message that is visible from the clock time on.
    Ready,
    /// Leased to a receiver until the clock time.
    Leased,
    /// Dead-lettered (or quarantined): kept for inspection, redrive or purge.
    Dead,
    /// A claim whose deadline passed; freed once its owner is gone.
    Abandoned,
}

impl St {
    /// Every state, in the order of their bits.
    pub const ALL: [St; 6] = [
        St::Free,
        St::Writing,
        St::Ready,
        St::Leased,
        St::Dead,
        St::Abandoned,
    ];

    pub(crate) const fn bits(self) -> u64 {
        match self {
            St::Free => 1,
            St::Writing => 2,
            St::Ready => 3,
            St::Leased => 4,
            St::Dead => 5,
            St::Abandoned => 6,
        }
    }

    pub(crate) const fn from_bits(b: u64) -> Option<St> {
        match b {
            1 => Some(St::Free),
            2 => Some(St::Writing),
            3 => Some(St::Ready),
            4 => Some(St::Leased),
            5 => Some(St::Dead),
            6 => Some(St::Abandoned),
            _ => None,
        }
    }

    /// Lower-case name, as the CLI and the docs spell it.
    pub const fn name(self) -> &'static str {
        match self {
            St::Free => "free",
            St::Writing => "writing",
            St::Ready => "ready",
            St::Leased => "leased",
            St::Dead => "dead",
            St::Abandoned => "abandoned",
        }
    }
}

#[inline]
pub(crate) const fn pack_state(gen: u64, st: St) -> u64 {
    ((gen & GEN_MASK) << 8) | st.bits()
}

#[inline]
pub(crate) const fn gen_of(state: u64) -> u64 {
    state >> 8
}

#[inline]
pub(crate) const fn next_gen(gen: u64) -> u64 {
    (gen + 1) & GEN_MASK
}

#[inline]
pub(crate) const fn pack_clock(time_ms: u64, gen: u64) -> u64 {
    let t = if time_ms > TIME_MAX {
        TIME_MAX
    } else {
        time_ms
    };
    (t << TAG_BITS) | (gen & TAG_MASK)
}

#[inline]
pub(crate) const fn time_of(clock: u64) -> u64 {
    clock >> TAG_BITS
}

/// One slot's two control words, read once and classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// No transition in flight: `clock` belongs to `gen`.
    AtRest {
        s: u64,
        c: u64,
        gen: u64,
        st: St,
        time: u64,
    },
    /// Between reserve and commit (§4): `clock` already belongs to `gen + 1`.
    Pending {
        s: u64,
        c: u64,
        gen: u64,
        st: St,
        time: u64,
    },
    /// A value no protocol step writes.
    Corrupt { s: u64, c: u64 },
}

impl View {
    #[inline]
    pub(crate) fn classify(s: u64, c: u64) -> View {
        let gen = gen_of(s);
        let Some(st) = St::from_bits(s & 0xff) else {
            return View::Corrupt { s, c };
        };
        let tag = c & TAG_MASK;
        let time = time_of(c);
        if tag == gen & TAG_MASK {
            View::AtRest {
                s,
                c,
                gen,
                st,
                time,
            }
        } else if tag == next_gen(gen) & TAG_MASK {
            View::Pending {
                s,
                c,
                gen,
                st,
                time,
            }
        } else {
            View::Corrupt { s, c }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_word_round_trips_every_state() {
        for st in St::ALL {
            let s = pack_state(GEN_MASK, st);
            assert_eq!(St::from_bits(s & 0xff), Some(st));
            assert_eq!(gen_of(s), GEN_MASK);
        }
        assert_eq!(next_gen(GEN_MASK), 0, "generation wraps within 56 bits");
    }

    #[test]
    fn classify_tells_rest_pending_and_corrupt_apart() {
        let s = pack_state(41, St::Leased);
        assert!(matches!(
            View::classify(s, pack_clock(7, 41)),
            View::AtRest {
                time: 7,
                gen: 41,
                ..
            }
        ));
        assert!(matches!(
            View::classify(s, pack_clock(7, 42)),
            View::Pending { .. }
        ));
        assert!(matches!(
            View::classify(s, pack_clock(7, 40)),
            View::Corrupt { .. }
        ));
        assert!(
            matches!(View::classify(0, 0), View::Corrupt { .. }),
            "an all-zero slot is corrupt"
        );
        assert!(matches!(
            View::classify(41 << 8 | 9, pack_clock(1, 41)),
            View::Corrupt { .. }
        ));
    }

    #[test]
    fn clock_saturates_instead_of_overflowing_into_the_tag() {
        let c = pack_clock(u64::MAX, 5);
        assert_eq!(time_of(c), TIME_MAX);
        assert_eq!(c & TAG_MASK, 5);
    }
}

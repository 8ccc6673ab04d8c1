//! The two atomic words that carry a slot's life: packing and validation.
//!
//! `state` = `time_ms << 24 | gen << 4 | code` and `aux` = `receives << 48
//! | holder << 20 | tag` (docs/design.md §3). Nothing here touches memory:
//! these are pure functions over `u64`s read once from the mapping, so a
//! hostile value can only make them return `None` or `Corrupt`.

/// Bits of the state word that hold the state code.
const CODE_BITS: u32 = 4;
/// Bits of the generation in the state word. Under loom 3, so that a model
/// reaches a generation that wraps (§9).
#[cfg(not(loom))]
pub(crate) const GEN_BITS: u32 = 20;
#[cfg(loom)]
pub(crate) const GEN_BITS: u32 = 3;
pub(crate) const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
/// Where the time starts in the state word (the generation field is 20 bits
/// wide in the file whatever `GEN_BITS` uses of it).
const TIME_SHIFT: u32 = 24;
/// Largest time the state word can hold (40 bits of milliseconds).
pub(crate) const TIME_MAX: u64 = (1 << (64 - TIME_SHIFT)) - 1;

/// Bits of the generation an `aux` word's tag keeps (all of them).
const TAG_BITS: u32 = 20;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Largest holder an `aux` word can name.
pub(crate) const HOLDER_MAX: u32 = (1 << 28) - 1;
/// Largest receive count an `aux` word can hold.
pub(crate) const RECEIVES_MAX: u32 = 0xFFFF;

/// Where a slot is in its life. Built only by `St::from_code`, never by a cast.
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
    /// Every state.
    pub const ALL: [St; 6] = [
        St::Free,
        St::Writing,
        St::Ready,
        St::Leased,
        St::Dead,
        St::Abandoned,
    ];

    /// The state code of a state other than `Dead` (whose codes carry the
    /// reason: [`dead_code`]).
    pub(crate) const fn code(self) -> u64 {
        match self {
            St::Free => 1,
            St::Writing => 2,
            St::Ready => 3,
            St::Leased => 4,
            St::Dead => 5,
            St::Abandoned => 6,
        }
    }

    /// The state and, for `Dead`, the reason code (1 max receives, 2
    /// corrupt, 3 recovered, 4 rejected) a state code stands for.
    pub(crate) const fn from_code(b: u64) -> Option<(St, u32)> {
        match b {
            1 => Some((St::Free, 0)),
            2 => Some((St::Writing, 0)),
            3 => Some((St::Ready, 0)),
            4 => Some((St::Leased, 0)),
            5 => Some((St::Dead, 1)),
            6 => Some((St::Abandoned, 0)),
            7 => Some((St::Dead, 2)),
            8 => Some((St::Dead, 3)),
            9 => Some((St::Dead, 4)),
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

/// The state code of DEAD with reason code `reason` (an unknown reason
/// counts as max receives).
pub(crate) const fn dead_code(reason: u32) -> u64 {
    match reason {
        2 => 7,
        3 => 8,
        4 => 9,
        _ => 5,
    }
}

/// A state word: `code` (see [`St::code`], [`dead_code`]), generation
/// `gen` (reduced to `GEN_BITS`), `time_ms` (saturated at 40 bits).
#[inline]
pub(crate) const fn pack(code: u64, gen: u64, time_ms: u64) -> u64 {
    let t = if time_ms > TIME_MAX {
        TIME_MAX
    } else {
        time_ms
    };
    (t << TIME_SHIFT) | ((gen & GEN_MASK) << CODE_BITS) | code
}

/// A state word for a state other than DEAD.
#[inline]
pub(crate) const fn pack_state(st: St, gen: u64, time_ms: u64) -> u64 {
    pack(st.code(), gen, time_ms)
}

#[inline]
pub(crate) const fn gen_of(state: u64) -> u64 {
    (state >> CODE_BITS) & GEN_MASK
}

#[inline]
pub(crate) const fn time_of(state: u64) -> u64 {
    state >> TIME_SHIFT
}

#[inline]
pub(crate) const fn next_gen(gen: u64) -> u64 {
    (gen + 1) & GEN_MASK
}

#[inline]
pub(crate) const fn prev_gen(gen: u64) -> u64 {
    gen.wrapping_sub(1) & GEN_MASK
}

/// The same state word with another time (an extend; the reboot reset).
#[inline]
pub(crate) const fn with_time(state: u64, time_ms: u64) -> u64 {
    pack(state & ((1 << CODE_BITS) - 1), gen_of(state), time_ms)
}

/// An `aux` word: the receive count, the holder (claimer or lease holder,
/// 0 for none) and the generation it was written for.
#[inline]
pub(crate) const fn pack_aux(receives: u32, holder: u32, gen: u64) -> u64 {
    let r = if receives > RECEIVES_MAX {
        RECEIVES_MAX
    } else {
        receives
    };
    ((r as u64) << 48) | (((holder & HOLDER_MAX) as u64) << TAG_BITS) | (gen & TAG_MASK)
}

#[inline]
pub(crate) const fn aux_receives(aux: u64) -> u32 {
    (aux >> 48) as u32
}

#[inline]
pub(crate) const fn aux_holder(aux: u64) -> u32 {
    ((aux >> TAG_BITS) as u32) & HOLDER_MAX
}

/// Whether `aux` was written for generation `gen`.
#[inline]
pub(crate) const fn aux_is_for(aux: u64, gen: u64) -> bool {
    aux & TAG_MASK == gen & GEN_MASK
}

/// One slot's state word, read once and classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// A state some transition writes.
    Valid {
        s: u64,
        gen: u64,
        st: St,
        time: u64,
        /// Why a DEAD message died (reason code); 0 otherwise.
        reason: u32,
    },
    /// A value no transition writes.
    Corrupt { s: u64 },
}

impl View {
    #[inline]
    pub(crate) fn classify(s: u64) -> View {
        let Some((st, reason)) = St::from_code(s & ((1 << CODE_BITS) - 1)) else {
            return View::Corrupt { s };
        };
        // Generation bits above `GEN_BITS` (the loom build) or the unused
        // bits of the field are never written by a transition.
        if (s >> CODE_BITS) & ((1 << (TIME_SHIFT - CODE_BITS)) - 1) & !GEN_MASK != 0 {
            return View::Corrupt { s };
        }
        View::Valid {
            s,
            gen: gen_of(s),
            st,
            time: time_of(s),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_word_round_trips_every_state() {
        for st in St::ALL {
            let s = pack_state(st, GEN_MASK, 77);
            match View::classify(s) {
                View::Valid {
                    st: got, gen, time, ..
                } => assert_eq!((got, gen, time), (st, GEN_MASK, 77)),
                v => panic!("{v:?}"),
            }
        }
        assert_eq!(next_gen(GEN_MASK), 0, "generation wraps within its bits");
        for reason in 1..=4 {
            match View::classify(pack(dead_code(reason), 3, 9)) {
                View::Valid {
                    st: St::Dead,
                    reason: r,
                    ..
                } => assert_eq!(r, reason),
                v => panic!("{v:?}"),
            }
        }
    }

    #[test]
    fn codes_no_transition_writes_are_corrupt() {
        assert!(
            matches!(View::classify(0), View::Corrupt { .. }),
            "an all-zero slot is corrupt"
        );
        for code in [0, 10, 11, 15] {
            assert!(matches!(
                View::classify(pack(code, 1, 1)),
                View::Corrupt { .. }
            ));
        }
    }

    #[test]
    fn time_saturates_instead_of_overflowing_into_the_generation() {
        let s = pack_state(St::Leased, 5, u64::MAX);
        assert_eq!(time_of(s), TIME_MAX);
        assert_eq!(gen_of(s), 5);
        assert_eq!(gen_of(with_time(s, 3)), 5);
        assert_eq!(time_of(with_time(s, 3)), 3);
    }

    #[test]
    fn aux_round_trips_and_saturates() {
        let a = pack_aux(70_000, HOLDER_MAX, 0xABCDE);
        assert_eq!(aux_receives(a), RECEIVES_MAX);
        assert_eq!(aux_holder(a), HOLDER_MAX);
        assert!(aux_is_for(a, 0xABCDE));
        assert!(!aux_is_for(a, 0xABCDF));
        let b = pack_aux(3, 4242, 7);
        assert_eq!((aux_receives(b), aux_holder(b)), (3, 4242));
    }
}

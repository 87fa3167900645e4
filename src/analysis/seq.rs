//! Wrapping 32-bit TCP sequence numbers (RFC 9293 §3.4): every comparison is made modulo 2^32,
//! through the signed distance `a.wrapping_sub(b) as i32`, never with `<` on raw numbers.
//!
//! Two numbers compare correctly as long as they are less than 2^31 apart, which TCP's window
//! rules guarantee for any two numbers of one connection that matter at the same time.

use std::fmt;

/// A TCP sequence (or acknowledgment) number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// This number plus `n`, wrapping at 2^32.
    pub fn plus(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// This number minus `n`, wrapping at 2^32.
    pub fn minus(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }

    /// The signed distance `self − other`, in −2^31 .. 2^31.
    pub fn delta(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self` comes strictly before `other` (Wireshark's `LT_SEQ`).
    pub fn before(self, other: SeqNumber) -> bool {
        self.delta(other) < 0
    }

    /// `self` comes before or is `other` (`LE_SEQ`).
    pub fn before_eq(self, other: SeqNumber) -> bool {
        self.delta(other) <= 0
    }

    /// `self` comes strictly after `other` (`GT_SEQ`).
    pub fn after(self, other: SeqNumber) -> bool {
        self.delta(other) > 0
    }

    /// `self` comes after or is `other` (`GE_SEQ`).
    pub fn after_eq(self, other: SeqNumber) -> bool {
        self.delta(other) >= 0
    }

    /// True when `start <= self < start + len` in sequence space (a receive-window check).
    pub fn in_window(self, start: SeqNumber, len: u32) -> bool {
        self.0.wrapping_sub(start.0) < len
    }

    /// The later of two numbers.
    pub fn latest(self, other: SeqNumber) -> SeqNumber {
        if self.after_eq(other) { self } else { other }
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_at_two_to_the_32() {
        let near = SeqNumber(u32::MAX - 1);
        assert_eq!(near.plus(3), SeqNumber(1));
        assert!(near.before(SeqNumber(1)));
        assert!(SeqNumber(1).after(near));
        assert_eq!(SeqNumber(1).delta(near), 3);
        assert_eq!(SeqNumber(0).minus(1), SeqNumber(u32::MAX));
        assert!(SeqNumber(5).in_window(near, 10));
        assert!(!SeqNumber(8).in_window(near, 10));
    }

    proptest! {
        #[test]
        fn adding_moves_forward(a: u32, n in 1u32..(1 << 31)) {
            let a = SeqNumber(a);
            let b = a.plus(n);
            prop_assert!(b.after(a));
            prop_assert!(a.before(b));
            prop_assert!(a.before_eq(b) && b.after_eq(a));
            prop_assert_eq!(b.delta(a), n as i32);
            prop_assert_eq!(a.delta(b), (n as i32).wrapping_neg());
            prop_assert_eq!(b.minus(n), a);
            prop_assert_eq!(a.latest(b), b);
            prop_assert_eq!(b.latest(a), b);
        }

        #[test]
        fn exactly_one_order_holds(a: u32, b: u32) {
            let (a, b) = (SeqNumber(a), SeqNumber(b));
            let orders = [a.before(b), a == b, a.after(b)];
            // Numbers exactly 2^31 apart are ambiguous: both read as "before" the other.
            if a.0.wrapping_sub(b.0) != 1 << 31 {
                prop_assert_eq!(orders.iter().filter(|x| **x).count(), 1);
                prop_assert_eq!(a.before(b), b.after(a));
            }
        }

        #[test]
        fn window_check_agrees_with_64_bit_arithmetic(start: u32, off: u32, len: u32) {
            let s = SeqNumber(start).plus(off);
            let wide = u64::from(off) < u64::from(len);
            prop_assert_eq!(s.in_window(SeqNumber(start), len), wide);
        }

        #[test]
        fn across_the_wrap_order_is_kept(below in 1u32..100_000, above in 0u32..100_000) {
            // `below` before 2^32, `above` after it: the later raw number is the smaller one.
            let x = SeqNumber(0u32.wrapping_sub(below));
            let y = SeqNumber(above);
            prop_assert!(x.before(y));
            prop_assert_eq!(y.delta(x), (below + above) as i32);
        }
    }
}

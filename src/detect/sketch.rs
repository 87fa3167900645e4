//! Fixed-size summaries the detectors keep: a sliding window of counts, a heavy-hitter list
//! and a distinct-count bitmap. None of them allocates after construction.

use std::hash::{BuildHasher, Hash};

/// Sub-buckets per window.
const BUCKETS: usize = 10;

/// Counts over a sliding window of capture time, in ten sub-buckets.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    width: i64,
    slide: Slide,
}

impl Window {
    /// A window `span_ns` long (at least ten nanoseconds).
    pub fn new(span_ns: i64) -> Self {
        Window {
            width: Slide::width(span_ns),
            slide: Slide::default(),
        }
    }

    /// Adds `n` at time `t`; times older than the window are dropped.
    pub fn add(&mut self, t: i64, n: u32) {
        self.slide.add(self.width, t, n);
    }

    /// The count over the window ending at `t`.
    pub fn sum(&mut self, t: i64) -> u32 {
        self.slide.sum(self.width, t)
    }

    /// Window length in seconds.
    pub fn secs(&self) -> f64 {
        (self.width * BUCKETS as i64) as f64 / 1e9
    }
}

/// A [`Window`] without its sub-bucket width, which the caller passes to each call (48 bytes
/// instead of 56, for the TIME_WAIT detector's one per host, all of the same width).
#[derive(Clone, Copy, Debug)]
pub struct Slide {
    buckets: [u32; BUCKETS],
    head: i64,
}

impl Default for Slide {
    fn default() -> Self {
        Slide {
            buckets: [0; BUCKETS],
            head: i64::MIN,
        }
    }
}

impl Slide {
    /// The sub-bucket width of a window `span_ns` long.
    pub const fn width(span_ns: i64) -> i64 {
        let w = span_ns / BUCKETS as i64;
        if w > 1 { w } else { 1 }
    }

    fn advance(&mut self, width: i64, t: i64) {
        let b = t.div_euclid(width);
        if self.head == i64::MIN || b.saturating_sub(self.head) >= BUCKETS as i64 {
            self.buckets = [0; BUCKETS];
            self.head = b;
        } else {
            while self.head < b {
                self.head += 1;
                self.buckets[self.head.rem_euclid(BUCKETS as i64) as usize] = 0;
            }
        }
    }

    /// Adds `n` at time `t` to sub-buckets `width` long; times older than the window are
    /// dropped.
    pub fn add(&mut self, width: i64, t: i64, n: u32) {
        self.advance(width, t);
        let b = t.div_euclid(width);
        // Saturating: with a 1 ns bucket (`--syn-window` under 20 ns) the bucket numbers span
        // the whole i64 range.
        if self.head.saturating_sub(b) < BUCKETS as i64 {
            let slot = &mut self.buckets[b.rem_euclid(BUCKETS as i64) as usize];
            *slot = slot.saturating_add(n);
        }
    }

    /// The count over the window of sub-buckets `width` long ending at `t`.
    pub fn sum(&mut self, width: i64, t: i64) -> u32 {
        self.advance(width, t);
        self.buckets.iter().fold(0u32, |a, b| a.saturating_add(*b))
    }
}

/// The `N` most frequent keys (space-saving algorithm: counts are upper bounds, exact while
/// fewer than `N` distinct keys were seen).
#[derive(Clone, Copy, Debug)]
pub struct TopK<K: Copy + Eq, const N: usize> {
    items: [Option<(K, u32)>; N],
    total: u32,
}

impl<K: Copy + Eq, const N: usize> Default for TopK<K, N> {
    fn default() -> Self {
        TopK {
            items: [None; N],
            total: 0,
        }
    }
}

impl<K: Copy + Eq, const N: usize> TopK<K, N> {
    /// Counts one occurrence of `k`.
    pub fn add(&mut self, k: K) {
        self.total = self.total.saturating_add(1);
        if let Some((_, c)) = self.items.iter_mut().flatten().find(|(x, _)| *x == k) {
            *c = c.saturating_add(1);
            return;
        }
        if let Some(slot) = self.items.iter_mut().find(|s| s.is_none()) {
            *slot = Some((k, 1));
            return;
        }
        // Replace the smallest, inheriting its count (space-saving).
        if let Some(min) = self.items.iter_mut().flatten().min_by_key(|(_, c)| *c) {
            *min = (k, min.1.saturating_add(1));
        }
    }

    /// Keys by count, largest first.
    pub fn sorted(&self) -> Vec<(K, u32)> {
        let mut v: Vec<(K, u32)> = self.items.iter().flatten().copied().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v
    }

    /// The most frequent key's share of everything counted (0 when empty).
    pub fn top_share(&self) -> f64 {
        let top = self.items.iter().flatten().map(|(_, c)| *c).max();
        match top {
            Some(c) if self.total > 0 => f64::from(c.min(self.total)) / f64::from(self.total),
            _ => 0.0,
        }
    }

    /// Occurrences counted.
    pub fn total(&self) -> u32 {
        self.total
    }
}

/// Bits in the distinct-count bitmap.
const BITS: usize = 8192;

/// Distinct count by linear counting over an 8192-bit map (1 KiB): exact-ish below a few
/// hundred, within a few percent up to about 20 000, saturating beyond.
#[derive(Clone, Debug)]
pub struct Distinct {
    map: Box<[u64; BITS / 64]>,
    hasher: foldhash::fast::FixedState,
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct {
            map: Box::new([0; BITS / 64]),
            hasher: foldhash::fast::FixedState::with_seed(0x7c9f_1e55),
        }
    }
}

impl Distinct {
    /// Records one key.
    pub fn add<T: Hash>(&mut self, k: &T) {
        let h = self.hasher.hash_one(k) as usize % BITS;
        self.map[h / 64] |= 1 << (h % 64);
    }

    /// The estimated number of distinct keys.
    pub fn estimate(&self) -> u64 {
        let set: u32 = self.map.iter().map(|w| w.count_ones()).sum();
        let zero = BITS as f64 - f64::from(set);
        if zero < 1.0 {
            // Saturated: report the largest estimate the map can give.
            return (BITS as f64 * (BITS as f64).ln()) as u64;
        }
        (-(BITS as f64) * (zero / BITS as f64).ln()).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides() {
        let mut w = Window::new(1_000_000_000);
        w.add(0, 5);
        w.add(500_000_000, 3);
        assert_eq!(w.sum(900_000_000), 8);
        // The first bucket (0..100 ms) leaves the window at 1.0 s.
        assert_eq!(w.sum(1_000_000_000), 3);
        assert_eq!(w.sum(1_600_000_000), 0);
        w.add(100, 1); // too old now: dropped
        assert_eq!(w.sum(1_600_000_000), 0);
    }

    #[test]
    fn topk_finds_heavy_hitters() {
        let mut t: TopK<u32, 4> = TopK::default();
        for i in 0..100u32 {
            t.add(7);
            t.add(i + 100);
        }
        assert_eq!(t.sorted()[0].0, 7);
        assert!(t.sorted()[0].1 >= 100);
        assert_eq!(t.total(), 200);
    }

    #[test]
    fn distinct_estimates() {
        let mut d = Distinct::default();
        for i in 0..1000u32 {
            d.add(&i);
            d.add(&i);
        }
        let e = d.estimate();
        assert!((950..=1050).contains(&e), "{e}");
    }
}

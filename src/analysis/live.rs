//! The live connections of the flow table: a slab of connections and an open-addressing index
//! of their slots, built so that a connection can be brought into the cache ahead of its
//! packet ([`LiveTable::prefetch_index`], then [`LiveTable::prefetch_slot`]).
//!
//! The table holds more connections than the cache, so a lookup and the first touch of the
//! connection cost two or three dependent cache misses per packet (the index, then the
//! connection), about a fifth of the analysing thread's time. The index is 8 bytes a slot
//! (hash tag and slot number, linear probing), so the line a key probes first is known from
//! its hash alone, and a slot's address from its number alone: both can be prefetched
//! packets ahead without reading anything else.

use super::conn::Conn;
use super::flow::Key;
use std::hash::BuildHasher;

/// A live connection and its key.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) key: Key,
    pub(super) conn: Conn,
}

/// Connections per slab chunk: the slab grows a chunk (about 90 KiB) at a time, and a
/// connection never moves.
const CHUNK_BITS: u32 = 7;
const CHUNK: usize = 1 << CHUNK_BITS;

/// An empty index entry.
const EMPTY: u64 = u64::MAX;

/// Live connections by key.
#[derive(Debug)]
pub(super) struct LiveTable {
    /// Linear-probing index: the key hash's high 32 bits (which also give the home position)
    /// over the slot number; [`EMPTY`] when free. At most half full.
    index: Vec<u64>,
    len: usize,
    hasher: foldhash::fast::RandomState,
    /// Chunks of [`CHUNK`] slots (the last one may be shorter).
    chunks: Vec<Vec<Option<Live>>>,
    /// Slots freed, reused first.
    free: Vec<u32>,
    /// Per slot: the capture time (ns) from which the sweep must look at its connection
    /// ([`LiveTable::set_wake`]; `i64::MAX` when free). The sweep reads this dense array, not
    /// every connection's slot.
    wake: Vec<i64>,
}

impl LiveTable {
    pub(super) fn new() -> Self {
        LiveTable {
            index: Vec::new(),
            len: 0,
            hasher: foldhash::fast::RandomState::default(),
            chunks: Vec::new(),
            free: Vec::new(),
            wake: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hash of `k`, for the other calls.
    #[inline]
    pub(super) fn hash(&self, k: &Key) -> u64 {
        self.hasher.hash_one(k)
    }

    /// The home position of hash tag `tag` in an index of `mask + 1` entries.
    #[inline]
    fn home(tag: u64, mask: usize) -> usize {
        tag as usize & mask
    }

    fn mask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }

    /// Slot `i`, if the slab has it.
    #[inline]
    fn slot(&self, i: u32) -> Option<&Option<Live>> {
        let i = i as usize;
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    /// Slot `i`, which the slab has (the index or the free list gave it).
    #[inline]
    fn slot_mut(&mut self, i: u32) -> &mut Option<Live> {
        let i = i as usize;
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }

    /// The connection in slot `i`.
    #[inline]
    fn at(&self, i: u32) -> Option<&Live> {
        self.slot(i)?.as_ref()
    }

    /// The index position and slot of the connection with key `k` (hash `h`).
    #[inline]
    fn position(&self, h: u64, k: &Key) -> Option<(usize, u32)> {
        if self.index.is_empty() {
            return None;
        }
        let (tag, mask) = (h >> 32, self.mask());
        let mut p = Self::home(tag, mask);
        loop {
            let e = *self.index.get(p)?;
            if e == EMPTY {
                return None;
            }
            if e >> 32 == tag && self.at(e as u32).is_some_and(|l| l.key == *k) {
                return Some((p, e as u32));
            }
            p = (p + 1) & mask;
        }
    }

    /// The slot of the connection with key `k` (hash `h`).
    #[inline]
    pub(super) fn find(&self, h: u64, k: &Key) -> Option<u32> {
        self.position(h, k).map(|(_, s)| s)
    }

    /// The slot and the connection with key `k` (hash `h`): [`LiveTable::find`], then the
    /// slot read by the same steps as the probe's (which the compiler reuses) rather than by
    /// [`LiveTable::get_mut`]'s.
    #[inline]
    pub(super) fn find_mut(&mut self, h: u64, k: &Key) -> Option<(u32, &mut Live)> {
        let (_, s) = self.position(h, k)?;
        // The same steps as `at`, so that the compiler reuses what it read there.
        let i = s as usize;
        let chunk = self.chunks.get_mut(i >> CHUNK_BITS)?;
        chunk.get_mut(i & (CHUNK - 1))?.as_mut().map(|l| (s, l))
    }

    /// The connection in slot `i`, which [`LiveTable::find`] or [`LiveTable::insert`] gave.
    #[inline]
    pub(super) fn get_mut(&mut self, i: u32) -> &mut Live {
        self.slot_mut(i)
            .as_mut()
            .expect("a slot the index holds is occupied")
    }

    /// Adds a connection whose key (hash `h`) is not held; its slot.
    pub(super) fn insert(&mut self, h: u64, live: Live) -> u32 {
        if (self.len + 1) * 2 > self.index.len() {
            self.grow();
        }
        let s = match self.free.pop() {
            Some(s) => {
                *self.slot_mut(s) = Some(live);
                s
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let n = (self.chunks.len() - 1) * CHUNK;
                let last = self.chunks.last_mut().expect("a chunk was just ensured");
                last.push(Some(live));
                // A slot per live connection: fewer than --max-connections.
                (n + last.len() - 1) as u32
            }
        };
        self.place(h >> 32 << 32 | u64::from(s));
        self.len += 1;
        // Looked at by the next sweep until its owner says when ([`LiveTable::set_wake`]).
        match self.wake.get_mut(s as usize) {
            Some(w) => *w = i64::MIN,
            None => self.wake.push(i64::MIN),
        }
        s
    }

    /// From capture time `t` (ns) on, the sweep looks at the connection in slot `i` (which
    /// [`LiveTable::find`] or [`LiveTable::insert`] gave); never later than it may be due.
    #[inline]
    pub(super) fn set_wake(&mut self, i: u32, t: i64) {
        if let Some(w) = self.wake.get_mut(i as usize) {
            *w = t;
        }
    }

    /// The connections the sweep at capture time `now` (ns) looks at, with their slots, in slot
    /// order.
    pub(super) fn waking(&self, now: i64) -> impl Iterator<Item = (u32, &Live)> {
        self.wake
            .iter()
            .enumerate()
            .filter(move |&(_, &w)| w <= now)
            .filter_map(|(i, _)| Some((i as u32, self.at(i as u32)?)))
    }

    /// Puts an entry at the first free position from its home.
    fn place(&mut self, e: u64) {
        let mask = self.mask();
        let mut p = Self::home(e >> 32, mask);
        while self.index[p] != EMPTY {
            p = (p + 1) & mask;
        }
        self.index[p] = e;
    }

    /// Doubles the index (at least 64 entries).
    fn grow(&mut self) {
        let n = (self.index.len() * 2).max(64);
        let old = std::mem::replace(&mut self.index, vec![EMPTY; n]);
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            self.place(e);
        }
    }

    /// Takes the connection with key `k` (hash `h`) out.
    pub(super) fn remove(&mut self, h: u64, k: &Key) -> Option<Live> {
        let (p, s) = self.position(h, k)?;
        // Backward-shift deletion (Knuth's Algorithm R): entries after the hole that may
        // live in it move up, so every probe still ends at an empty entry.
        let mask = self.mask();
        let mut hole = p;
        let mut j = p;
        loop {
            j = (j + 1) & mask;
            let e = self.index[j];
            if e == EMPTY {
                break;
            }
            let home = Self::home(e >> 32, mask);
            // The entry stays when its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.index[hole] = e;
                hole = j;
            }
        }
        self.index[hole] = EMPTY;
        self.len -= 1;
        self.free.push(s);
        self.set_wake(s, i64::MAX);
        self.slot_mut(s).take()
    }

    /// The connections, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Live> {
        self.chunks.iter().flatten().flatten()
    }

    /// Step one of two of a prefetch: brings the index line that a lookup of hash `h` starts
    /// in into the cache.
    #[inline]
    pub(super) fn prefetch_index(&self, h: u64) {
        if let Some(e) = self.index.get(Self::home(h >> 32, self.mask())) {
            prefetch(std::ptr::from_ref(e).cast(), 1);
        }
    }

    /// Step two: brings the connection that a lookup of hash `h` will find into the cache
    /// ([`LiveTable::by_tag`]). A tag shared with another key only wastes the hint.
    #[inline]
    pub(super) fn prefetch_slot(&self, h: u64) {
        if let Some(slot) = self.by_tag(h) {
            prefetch(std::ptr::from_ref(slot).cast(), size_of::<Option<Live>>());
        }
    }

    /// The slot of the first index entry with the tag of hash `h`, touching no connection:
    /// the one a lookup of `h` reads first.
    #[inline]
    fn by_tag(&self, h: u64) -> Option<&Option<Live>> {
        if self.index.is_empty() {
            return None;
        }
        let (tag, mask) = (h >> 32, self.mask());
        let mut p = Self::home(tag, mask);
        // The index is at most half full: a few steps at most, in practice.
        for _ in 0..8 {
            let e = *self.index.get(p)?;
            if e == EMPTY {
                return None;
            }
            if e >> 32 == tag {
                // The slot number is the entry's low half (the high half is the tag).
                return self.slot(e as u32);
            }
            p = (p + 1) & mask;
        }
        None
    }
}

/// Asks the CPU to bring the `len` bytes at `p` into the cache. Only a hint: it reads nothing
/// into the program and never faults, whatever `p` is.
#[inline]
#[allow(unsafe_code)]
pub(crate) fn prefetch(p: *const i8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let mut off = 0;
        while off < len {
            // SAFETY: a prefetch has no effect on the program's state and cannot fault, for
            // any address; `wrapping_add` keeps the pointer arithmetic defined.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::flow::tests::seg;

    /// The slot size docs/performance.md counts per live connection (and its wake time, 8
    /// bytes more).
    #[test]
    fn a_live_slot_is_720_bytes() {
        assert_eq!(size_of::<Option<Live>>(), 720);
    }

    /// Inserts, removes and looks up keys against a model map, with the table's hashes and
    /// with hashes that put every key on one of five home positions (long probe runs, the
    /// backward shifts of removal across the index's end).
    #[test]
    fn behaves_like_a_map() {
        for colliding in [false, true] {
            let mut t = LiveTable::new();
            let mut model = std::collections::HashMap::new();
            let hash = |t: &LiveTable, p: u16| {
                let k = Key::of(&seg(p));
                let h = if colliding {
                    (u64::from(p % 5) | 0xffff_fff0) << 32
                } else {
                    t.hash(&k)
                };
                (k, h)
            };
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            let mut fetched_checked = 0;
            for step in 0..20_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let p = (x % 600) as u16;
                let (k, h) = hash(&t, p);
                if (x >> 20) % 3 < 2 && !model.contains_key(&p) {
                    let conn = Conn::new(step, &seg(p), false);
                    let s = t.insert(h, Live { key: k, conn });
                    model.insert(p, step);
                    assert_eq!(t.find(h, &k), Some(s));
                    // The prefetch fetches the slot the lookup reads when that is within its
                    // 8 probe steps (the tags here are distinct unless colliding).
                    let (p, _) = t.position(h, &k).expect("just inserted");
                    if !colliding
                        && p.wrapping_sub(LiveTable::home(h >> 32, t.mask())) & t.mask() < 8
                    {
                        let fetched = t.by_tag(h).and_then(Option::as_ref).map(|l| l.key);
                        assert_eq!(fetched, Some(k));
                        fetched_checked += 1;
                    }
                } else {
                    let got = t.remove(h, &k).map(|l| l.conn.id);
                    assert_eq!(got, model.remove(&p));
                    assert_eq!(t.find(h, &k), None);
                }
                assert_eq!(t.len(), model.len());
            }
            for p in 0..600u16 {
                let (k, h) = hash(&t, p);
                let got = t.find(h, &k).map(|s| t.get_mut(s).conn.id);
                assert_eq!(got, model.get(&p).copied());
            }
            assert_eq!(t.iter().count(), model.len());
            assert!(colliding || fetched_checked > 1000);
        }
    }
}

//! tcpdump's relative sequence numbers (`tcp_seq_hash` in print-tcp.c), with bounded memory.
//!
//! tcpdump keys a table by the address/port pair in a canonical order (lower port first;
//! equal ports: lower address first). An ACK-bearing segment that finds no entry, or that
//! carries SYN, stores its own seq and `ack - 1` as the two directions' bases and is printed
//! absolute; later ACK-bearing segments print `seq - base` and `ack - base`. tcpdump never
//! forgets an entry; here the table holds at most [`SeqTable::CAPACITY`] conversations of each
//! address family in two generations: when the young generation is full the old one is dropped, so only
//! conversations idle for a whole generation are forgotten (their next ACK prints absolute,
//! as for a conversation tcpdump had not seen).

use foldhash::HashMap;
use std::hash::Hash;

/// An IPv4 conversation: both addresses in one word, and `port_hi << 16 | port_lo`. Kept
/// apart from IPv6 so the common entry is 24 bytes, not 64: the lookup's cost is the cache
/// miss on its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct V4Key {
    addrs: u64,
    ports: u32,
}

/// An IPv6 conversation: the two addresses and the ports as for [`V4Key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct V6Key {
    src: u128,
    dst: u128,
    ports: u32,
}

/// A conversation key of either family.
#[derive(Clone, Copy)]
enum Conv {
    V4(V4Key),
    V6(V6Key),
}

/// One family's table in two generations: when the young one is full the old one is dropped.
#[derive(Debug)]
struct Generations<K> {
    young: HashMap<K, (u32, u32)>,
    old: HashMap<K, (u32, u32)>,
}

impl<K> Default for Generations<K> {
    fn default() -> Self {
        Generations {
            young: HashMap::default(),
            old: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq + Copy> Generations<K> {
    /// The stored bases, moving an old entry to the young generation.
    fn get(&mut self, key: K) -> Option<(u32, u32)> {
        match self.young.get(&key) {
            Some(v) => Some(*v),
            None => self.old.remove(&key).inspect(|v| self.insert(key, *v)),
        }
    }

    fn insert(&mut self, key: K, v: (u32, u32)) {
        if self.young.len() >= SeqTable::CAPACITY / 2 && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, v);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// The relative sequence number table.
#[derive(Debug, Default)]
pub struct SeqTable {
    v4: Generations<V4Key>,
    v6: Generations<V6Key>,
}

/// What the table says about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rel {
    /// The seq to print.
    pub seq: u32,
    /// The ack to print.
    pub ack: u32,
    /// The key was stored reversed (the segment goes from the higher port).
    pub rev: bool,
    /// Base of the canonical "source" direction.
    pub th_seq: u32,
    /// Base of the canonical "destination" direction.
    pub th_ack: u32,
}

impl SeqTable {
    /// Conversations remembered at most per address family (both generations together).
    pub const CAPACITY: usize = 1 << 18;

    /// Looks up (or records) the bases for an ACK-bearing segment, as tcpdump does.
    #[allow(clippy::too_many_arguments)]
    pub fn relative(
        &mut self,
        v6: bool,
        src: &[u8],
        dst: &[u8],
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        syn: bool,
    ) -> Rel {
        let rev = sport > dport || (sport == dport && src > dst);
        let (a, b) = if rev { (dst, src) } else { (src, dst) };
        let ports = if rev {
            u32::from(dport) << 16 | u32::from(sport)
        } else {
            u32::from(sport) << 16 | u32::from(dport)
        };
        // Fixed-size reads: a copy of a 4-or-16-byte slice into one buffer costs a `memcpy`
        // call and a stalled read-back. Other lengths do not occur (the printer passes the
        // header's address fields); they are zero-padded or cut to fit.
        let conv = match (v6, <[u8; 4]>::try_from(a), <[u8; 4]>::try_from(b)) {
            (false, Ok(a), Ok(b)) => Conv::V4(V4Key {
                addrs: u64::from(u32::from_be_bytes(a)) << 32 | u64::from(u32::from_be_bytes(b)),
                ports,
            }),
            _ => Conv::V6(V6Key {
                src: addr_word(a),
                dst: addr_word(b),
                ports,
            }),
        };
        let found = match conv {
            Conv::V4(k) => self.v4.get(k),
            Conv::V6(k) => self.v6.get(k),
        };
        match found {
            Some((th_seq, th_ack)) if !syn => {
                let (s, a) = if rev {
                    (seq.wrapping_sub(th_ack), ack.wrapping_sub(th_seq))
                } else {
                    (seq.wrapping_sub(th_seq), ack.wrapping_sub(th_ack))
                };
                Rel {
                    seq: s,
                    ack: a,
                    rev,
                    th_seq,
                    th_ack,
                }
            }
            _ => {
                let v = if rev {
                    (ack.wrapping_sub(1), seq)
                } else {
                    (seq, ack.wrapping_sub(1))
                };
                match conv {
                    Conv::V4(k) => self.v4.insert(k, v),
                    Conv::V6(k) => self.v6.insert(k, v),
                }
                Rel {
                    seq,
                    ack,
                    rev,
                    th_seq: v.0,
                    th_ack: v.1,
                }
            }
        }
    }
}

/// An address's bytes as a big-endian number: 16 bytes exactly, else zero-padded or cut.
fn addr_word(a: &[u8]) -> u128 {
    match <[u8; 16]>::try_from(a) {
        Ok(b) => u128::from_be_bytes(b),
        Err(_) => {
            let mut b = [0u8; 16];
            let n = a.len().min(16);
            b[..n].copy_from_slice(&a[..n]);
            u128::from_be_bytes(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synack_sets_bases_and_later_segments_are_relative() {
        let mut t = SeqTable::default();
        let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        // SYN-ACK from the server (port 80 < 40000: not reversed).
        let r = t.relative(false, &s, &c, 80, 40000, 5000, 1001, true);
        assert_eq!((r.seq, r.ack), (5000, 1001));
        let r = t.relative(false, &c, &s, 40000, 80, 1001, 5001, false);
        assert_eq!((r.seq, r.ack), (1, 1));
        let r = t.relative(false, &s, &c, 80, 40000, 5001, 1011, false);
        assert_eq!((r.seq, r.ack), (1, 11));
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = SeqTable::default();
        for i in 0..(SeqTable::CAPACITY as u32 + 10) {
            t.relative(false, &i.to_be_bytes(), &[1, 1, 1, 1], 1, 2, 0, 0, false);
        }
        assert!(t.v4.len() <= SeqTable::CAPACITY);
        // The oldest conversations were forgotten, the newest were not.
        let r = t.relative(false, &0u32.to_be_bytes(), &[1, 1, 1, 1], 1, 2, 5, 5, false);
        assert_eq!((r.seq, r.ack), (5, 5));
        let last = SeqTable::CAPACITY as u32 + 9;
        let r = t.relative(false, &last.to_be_bytes(), &[1, 1, 1, 1], 1, 2, 5, 5, false);
        assert_eq!((r.seq, r.ack), (5, 6));
    }
}

//! tcpdump's relative sequence numbers (`tcp_seq_hash` in print-tcp.c), with bounded memory.
//!
//! tcpdump keys a table by the address/port pair in a canonical order (lower port first;
//! equal ports: lower address first). An ACK-bearing segment that finds no entry, or that
//! carries SYN, stores its own seq and `ack - 1` as the two directions' bases and is printed
//! absolute; later ACK-bearing segments print `seq - base` and `ack - base`. tcpdump never
//! forgets an entry; here the table holds at most [`SeqTable::CAPACITY`] conversations in two
//! generations: when the young generation is full the old one is dropped, so only
//! conversations idle for a whole generation are forgotten (their next ACK prints absolute,
//! as for a conversation tcpdump had not seen).

use foldhash::HashMap;

type Map = HashMap<Key, (u32, u32)>;

/// A canonical conversation key: addresses (v4 in the first 4 bytes) and `port_hi << 16 | port_lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    port: u32,
}

/// The relative sequence number table.
#[derive(Debug, Default)]
pub struct SeqTable {
    young: Map,
    old: Map,
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
    /// Conversations remembered at most (both generations together).
    pub const CAPACITY: usize = 1 << 18;

    fn fresh() -> Map {
        Map::default()
    }

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
        let mut key = Key {
            v6,
            src: [0; 16],
            dst: [0; 16],
            port: 0,
        };
        let (a, b) = if rev { (dst, src) } else { (src, dst) };
        key.src[..a.len().min(16)].copy_from_slice(&a[..a.len().min(16)]);
        key.dst[..b.len().min(16)].copy_from_slice(&b[..b.len().min(16)]);
        key.port = if rev {
            u32::from(dport) << 16 | u32::from(sport)
        } else {
            u32::from(sport) << 16 | u32::from(dport)
        };
        let found = match self.young.get(&key) {
            Some(v) => Some(*v),
            None => self.old.remove(&key).inspect(|v| {
                self.insert(key, *v);
            }),
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
                self.insert(key, v);
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

    fn insert(&mut self, key: Key, v: (u32, u32)) {
        if self.young.len() >= Self::CAPACITY / 2 && !self.young.contains_key(&key) {
            self.old = std::mem::replace(&mut self.young, Self::fresh());
        }
        self.young.insert(key, v);
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
        assert!(t.young.len() + t.old.len() <= SeqTable::CAPACITY);
    }
}

//! The flow table: connections keyed by their canonical 4-tuple, ids in first-seen order.
//!
//! Memory is bounded by live connections: a connection is summarised and freed when its close
//! is over (2 MSL after TIME_WAIT began, or a short linger after a RST), when it has been idle
//! for the idle timeout, when a new SYN takes its 4-tuple, or when the table is full (the least
//! recently active are evicted, in batches, and counted).

use super::conn::Conn;
use super::{AnalysisConfig, AnalysisStats, ConnSummary, EndReason, PacketInfo};
use crate::capture::Timestamp;
use crate::decode::Segment;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Canonical 4-tuple: the lower (address, port) first. Addresses are kept as plain integers
/// (IPv4 in the low bits, with the family beside them): hashing and comparing them is cheaper
/// than `IpAddr`'s enum, and this lookup runs once per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    addr: [u64; 4],
    port: [u16; 2],
    v6: bool,
}

impl Hash for Key {
    // Word by word: the derived hash feeds the array through the byte-slice path.
    fn hash<H: Hasher>(&self, h: &mut H) {
        let [a, b, c, d] = self.addr;
        h.write_u64(a ^ c.rotate_left(32));
        h.write_u64(b);
        h.write_u64(d);
        h.write_u64(
            u64::from(self.port[0]) << 32 | u64::from(self.port[1]) << 1 | u64::from(self.v6),
        );
    }
}

/// An address as two 64-bit words, and whether it is IPv6.
fn words(ip: IpAddr) -> ([u64; 2], bool) {
    match ip {
        IpAddr::V4(a) => ([0, u64::from(a.to_bits())], false),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            ([(b >> 64) as u64, b as u64], true)
        }
    }
}

impl Key {
    fn of(seg: &Segment) -> Key {
        let (a, v6) = words(seg.src);
        let (b, _) = words(seg.dst);
        let (lo, hi) = if (a, seg.sport) <= (b, seg.dport) {
            ((a, seg.sport), (b, seg.dport))
        } else {
            ((b, seg.dport), (a, seg.sport))
        };
        Key {
            addr: [lo.0[0], lo.0[1], hi.0[0], hi.0[1]],
            port: [lo.1, hi.1],
            v6,
        }
    }
}

/// How often (capture time) expired connections are looked for.
const SWEEP_NS: i64 = 1_000_000_000;

/// Live connections.
#[derive(Debug)]
pub struct FlowTable {
    map: HashMap<Key, Conn, foldhash::fast::RandomState>,
    cfg: AnalysisConfig,
    next_id: u64,
    last_sweep: Option<Timestamp>,
    scratch: Vec<(i64, u64, Key)>,
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: AnalysisConfig) -> Self {
        FlowTable {
            map: HashMap::default(),
            cfg,
            next_id: 0,
            last_sweep: None,
            scratch: Vec::new(),
        }
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No connections held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn packet(
        &mut self,
        seg: &Segment,
        info: &mut PacketInfo,
        ended: &mut Vec<ConnSummary>,
        stats: &mut AnalysisStats,
    ) {
        let two_msl = self.cfg.msl_ns.saturating_mul(2);
        *info = PacketInfo {
            number: seg.number,
            ts: seg.ts,
            two_msl_ns: two_msl,
            ..PacketInfo::default()
        };
        match self.last_sweep {
            None => self.last_sweep = Some(seg.ts),
            Some(t) if seg.ts.0.saturating_sub(t.0) >= SWEEP_NS => {
                self.sweep(seg.ts, ended, stats);
                self.last_sweep = Some(seg.ts);
            }
            _ => {}
        }
        let key = Key::of(seg);
        // One lookup per packet; only a full table costs a second one (to evict first).
        if self.map.len() >= self.cfg.max_connections.max(1) && !self.map.contains_key(&key) {
            self.evict(ended, stats);
        }
        let conn = match self.map.entry(key) {
            Entry::Occupied(o) => {
                let conn = o.into_mut();
                if conn.starts_new(seg) {
                    // A new SYN takes the 4-tuple: the old connection ends here.
                    let old = std::mem::replace(conn, Conn::new(self.next_id, seg, true));
                    self.next_id += 1;
                    stats.connections += 1;
                    ended.push(old.summary(EndReason::Replaced));
                }
                conn
            }
            Entry::Vacant(v) => {
                let id = self.next_id;
                self.next_id += 1;
                stats.connections += 1;
                v.insert(Conn::new(id, seg, false))
            }
        };
        conn.segment(seg, info);
        stats.peak_live = stats.peak_live.max(self.map.len() as u64);
    }

    /// Frees closed-and-expired and idle connections.
    fn sweep(&mut self, now: Timestamp, ended: &mut Vec<ConnSummary>, stats: &mut AnalysisStats) {
        let two_msl = self.cfg.msl_ns.saturating_mul(2);
        let (linger, idle) = (self.cfg.reset_linger_ns, self.cfg.idle_ns);
        self.scratch.clear();
        for (k, c) in &self.map {
            if c.expiry(two_msl, linger).is_some_and(|t| now.0 >= t) {
                self.scratch.push((0, c.id, *k));
            } else if now.0.saturating_sub(c.last_ts.0) >= idle {
                self.scratch.push((1, c.id, *k));
            }
        }
        self.scratch.sort_unstable_by_key(|e| e.1);
        for &(why, _, k) in &self.scratch {
            if let Some(c) = self.map.remove(&k) {
                let reason = if why == 1 {
                    stats.idle_expired += 1;
                    EndReason::Idle
                } else if c.reset {
                    EndReason::Reset
                } else {
                    EndReason::Closed
                };
                ended.push(c.summary(reason));
            }
        }
    }

    /// Evicts the least recently active sixteenth of the table.
    fn evict(&mut self, ended: &mut Vec<ConnSummary>, stats: &mut AnalysisStats) {
        self.scratch.clear();
        self.scratch
            .extend(self.map.iter().map(|(k, c)| (c.last_ts.0, c.id, *k)));
        let n = (self.scratch.len() / 16).max(1);
        if n < self.scratch.len() {
            self.scratch.select_nth_unstable_by_key(n, |e| (e.0, e.1));
        }
        self.scratch.truncate(n);
        self.scratch.sort_unstable_by_key(|e| e.1);
        for &(_, _, k) in &self.scratch {
            if let Some(c) = self.map.remove(&k) {
                stats.evicted += 1;
                ended.push(c.summary(EndReason::Evicted));
            }
        }
    }

    /// Ends every connection, in id order.
    pub(crate) fn finish(&mut self, ended: &mut Vec<ConnSummary>) {
        // Sort ids and keys, not whole connections: each is removed as it is summarised.
        self.scratch.clear();
        self.scratch
            .extend(self.map.iter().map(|(k, c)| (0, c.id, *k)));
        self.scratch.sort_unstable_by_key(|e| e.1);
        for &(_, _, k) in &self.scratch {
            let Some(c) = self.map.remove(&k) else {
                continue;
            };
            let reason = match (c.ended_at, c.reset) {
                (Some(_), true) => EndReason::Reset,
                (Some(_), false) => EndReason::Closed,
                (None, _) => EndReason::EndOfCapture,
            };
            ended.push(c.summary(reason));
        }
        self.scratch = Vec::new();
        self.map = HashMap::default();
    }
}

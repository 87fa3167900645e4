//! The flow table: connections keyed by their canonical 4-tuple, ids in first-seen order.
//!
//! Memory is bounded by live connections: a connection is summarised and freed when its close
//! is over, when it has been idle for the idle timeout, when a new SYN takes its 4-tuple, or
//! when the table is full (the least recently active are evicted, in batches, and counted).
//! A close is over a short linger after the RST, or after the last FIN's ACK (Zeek's
//! `tcp_reset_delay` / `tcp_close_delay`); a FIN-closed connection then leaves its record and
//! a small [`Tail`] that answers late packets until 2 MSL after the close (Linux replaces a
//! socket in TIME_WAIT by an `inet_timewait_sock` the same way).

use super::conn::{Conn, Tail};
use super::live::{Live, LiveTable};
use super::slots::Slots;
use super::{AnalysisConfig, AnalysisStats, ConnSummary, EndReason, PacketInfo};
use crate::capture::Timestamp;
use crate::decode::Segment;
use hashbrown::HashTable;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

/// Canonical 4-tuple: the lower (address, port) first. Addresses are kept as plain integers
/// (IPv4 in the low bits, with the family beside them): hashing and comparing them is cheaper
/// than `IpAddr`'s enum, and this lookup runs once per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    addr: [u64; 4],
    /// The lower end's port in the high 16 bits: one 32-bit word, written and compared
    /// whole (a key built with two 16-bit stores and compared with a 32-bit load stalled the
    /// load until the stores reached the cache).
    ports: u32,
    v6: bool,
}

impl Hash for Key {
    // Word by word: the derived hash feeds the array through the byte-slice path.
    fn hash<H: Hasher>(&self, h: &mut H) {
        let [a, b, c, d] = self.addr;
        h.write_u64(a ^ c.rotate_left(32));
        h.write_u64(b);
        h.write_u64(d);
        h.write_u64(u64::from(self.ports) << 1 | u64::from(self.v6));
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
    pub(super) fn of(seg: &Segment) -> Key {
        let (a, v6) = words(seg.src);
        let (b, _) = words(seg.dst);
        let (lo, hi) = if (a, seg.sport) <= (b, seg.dport) {
            ((a, seg.sport), (b, seg.dport))
        } else {
            ((b, seg.dport), (a, seg.sport))
        };
        Key {
            addr: [lo.0[0], lo.0[1], hi.0[0], hi.0[1]],
            ports: u32::from(lo.1) << 16 | u32::from(hi.1),
            v6,
        }
    }
}

/// A packet's connection key and its hash in the live table ([`FlowTable::key`]), worked out
/// once per packet: first to prefetch the connection, then to find it. Built ahead, in a
/// batch, the key is also read from memory written long before, not from stores still on
/// their way (a 16-byte load of a key just built by 8-byte stores waits for them).
#[derive(Clone, Copy, Debug)]
pub struct FlowKey {
    key: Key,
    hash: u64,
}

/// A tail's key in its slot: an IPv4 key whole (16 bytes instead of 40), an IPv6 key as its
/// place in [`Tails::v6_keys`].
#[derive(Clone, Copy, Debug)]
struct SlotKey {
    lo: u32,
    hi: u32,
    /// The lower end's port in the high 16 bits.
    ports: u32,
    /// [`V4`], or the IPv6 key's index.
    v6: u32,
}

const V4: u32 = u32::MAX;

impl SlotKey {
    /// The key, whole.
    fn key(&self, v6_keys: &Slots<Key>) -> Key {
        if self.v6 == V4 {
            Key {
                addr: [0, u64::from(self.lo), 0, u64::from(self.hi)],
                ports: self.ports,
                v6: false,
            }
        } else {
            v6_keys[self.v6]
        }
    }

    fn is(&self, k: &Key, v6_keys: &Slots<Key>) -> bool {
        if k.v6 {
            self.v6 != V4 && v6_keys[self.v6] == *k
        } else {
            // An IPv4 key's addresses are below 2^32 (`words`).
            self.v6 == V4
                && u64::from(self.lo) == k.addr[1]
                && u64::from(self.hi) == k.addr[3]
                && self.ports == k.ports
        }
    }
}

/// Tails per slab chunk: the slab grows a chunk (576 KiB) at a time, never by doubling.
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Slot `i` of a chunked slab.
fn slot_in(chunks: &[Vec<(SlotKey, Tail)>], i: u32) -> &(SlotKey, Tail) {
    let i = i as usize;
    &chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
}

/// Slot `i` of a chunked slab, to overwrite.
fn slot_in_mut(chunks: &mut [Vec<(SlotKey, Tail)>], i: u32) -> &mut (SlotKey, Tail) {
    let i = i as usize;
    &mut chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
}

/// Closed connections whose record is out, keyed like the live ones, with a queue of when
/// each must be looked at again, so the sweep does not visit every tail every second.
///
/// Memory per tail: its 144-byte slot ([`SlotKey`] and [`Tail`]; an IPv6 key takes 40 bytes
/// more) in a chunked slab, a 4-byte slot in the hash index (positions into the slab, hashed
/// through the key they point to), and an 8-byte queue entry.
#[derive(Debug)]
struct Tails {
    /// Chunks of [`CHUNK`] slots (the last one may be shorter); slot `i` is
    /// `chunks[i / CHUNK][i % CHUNK]`.
    chunks: Vec<Vec<(SlotKey, Tail)>>,
    /// The IPv6 tails' keys.
    v6_keys: Slots<Key>,
    /// Which slots hold a tail (a bit per slot).
    used: Vec<u64>,
    /// Slots freed, reused first.
    free: Vec<u32>,
    /// Slot numbers of the tails, by key.
    index: HashTable<u32>,
    /// Not the live table's hasher type: a second use of that one made the per-packet hash an
    /// out-of-line call.
    hasher: foldhash::quality::RandomState,
    /// Time-bucketed wake-ups, earliest first: the capture second ([`Tails::bucket`]) in the
    /// high 32 bits, the slot in the low 32. A tail has one in the second of its `due` (or
    /// later while a saturated time keeps it); entries of tails gone or moved since are
    /// dropped when they come up.
    queue: BinaryHeap<Reverse<u64>>,
    /// The first tail's due second: buckets count seconds from 2^31 before it.
    origin: Option<i64>,
    len: usize,
    two_msl: i64,
    idle: i64,
}

impl Tails {
    fn new(cfg: &AnalysisConfig) -> Tails {
        Tails {
            chunks: Vec::new(),
            v6_keys: Slots::default(),
            used: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::quality::RandomState::default(),
            queue: BinaryHeap::new(),
            origin: None,
            len: 0,
            two_msl: cfg.msl_ns.saturating_mul(2),
            idle: cfg.idle_ns,
        }
    }

    /// The sweep frees a tail as it frees a whole connection: 2 MSL after the close, or idle.
    fn gone(t: &Tail, now: i64, two_msl: i64, idle: i64) -> bool {
        now >= t.ended_at().saturating_add(two_msl) || now.saturating_sub(t.last_ts.0) >= idle
    }

    /// No later than the first time `gone` holds.
    fn due(t: &Tail, two_msl: i64, idle: i64) -> i64 {
        t.ended_at()
            .saturating_add(two_msl)
            .min(t.last_ts.0.saturating_add(idle))
    }

    /// The queue's bucket of time `t`: whole seconds from 2^31 s before the first tail's due
    /// second, clamped to 32 bits (times beyond ±68 years of it share the end buckets, which
    /// the sweep then looks at again each time).
    fn bucket(&self, t: i64) -> u64 {
        let rel = t
            .div_euclid(SWEEP_NS)
            .saturating_sub(self.origin.unwrap_or(0))
            .saturating_add(1 << 31);
        rel.clamp(0, i64::from(u32::MAX)) as u64
    }

    fn slot(&self, i: u32) -> &(SlotKey, Tail) {
        slot_in(&self.chunks, i)
    }

    fn is_used(&self, i: u32) -> bool {
        self.used
            .get(i as usize / 64)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    fn find(&self, k: &Key) -> Option<(u64, u32)> {
        if self.len == 0 {
            return None;
        }
        let h = self.hasher.hash_one(k);
        let i = *self
            .index
            .find(h, |&i| self.slot(i).0.is(k, &self.v6_keys))?;
        Some((h, i))
    }

    fn contains_key(&self, k: &Key) -> bool {
        self.find(k).is_some()
    }

    /// Frees slot `i`, whose key hashes to `h`; its tail.
    fn take(&mut self, h: u64, i: u32) -> Tail {
        if let Ok(e) = self.index.find_entry(h, |&j| j == i) {
            e.remove();
        }
        self.used[i as usize / 64] &= !(1 << (i % 64));
        self.free.push(i);
        let v6 = self.slot(i).0.v6;
        if v6 != V4 {
            self.v6_keys.free(v6);
        }
        self.len -= 1;
        self.slot(i).1
    }

    fn remove(&mut self, k: &Key) -> Option<Tail> {
        let (h, i) = self.find(k)?;
        Some(self.take(h, i))
    }

    /// Adds the tail of a connection not held here.
    fn insert(&mut self, k: Key, t: Tail) {
        let due = Self::due(&t, self.two_msl, self.idle);
        self.origin.get_or_insert(due.div_euclid(SWEEP_NS));
        let sk = if k.v6 {
            // Below 2^32 - 1 ([`V4`]): one per tail held.
            let j = self.v6_keys.insert(k);
            SlotKey {
                lo: 0,
                hi: 0,
                ports: 0,
                v6: j,
            }
        } else {
            SlotKey {
                lo: k.addr[1] as u32,
                hi: k.addr[3] as u32,
                ports: k.ports,
                v6: V4,
            }
        };
        let i = match self.free.pop() {
            Some(i) => {
                *slot_in_mut(&mut self.chunks, i) = (sk, t);
                i
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                    self.used.resize(self.chunks.len() * CHUNK / 64, 0);
                }
                let n = (self.chunks.len() - 1) * CHUNK;
                let last = self.chunks.last_mut().expect("a chunk was just ensured");
                last.push((sk, t));
                // A slot per tail held: 2^32 of them would need 700 GB.
                (n + last.len() - 1) as u32
            }
        };
        self.used[i as usize / 64] |= 1 << (i % 64);
        let h = self.hasher.hash_one(k);
        let (chunks, v6_keys, hasher) = (&self.chunks, &self.v6_keys, &self.hasher);
        self.index.insert_unique(h, i, |&j| {
            hasher.hash_one(slot_in(chunks, j).0.key(v6_keys))
        });
        self.len += 1;
        self.queue
            .push(Reverse(self.bucket(due) << 32 | u64::from(i)));
        if self.queue.len() > 2 * self.len + 1024 {
            // Late packets leave stale entries behind: start again from the tails.
            let v: Vec<Reverse<u64>> = (0..self.chunks.iter().map(Vec::len).sum::<usize>())
                .map(|i| i as u32)
                .filter(|&i| self.is_used(i))
                .map(|i| {
                    let due = Self::due(&self.slot(i).1, self.two_msl, self.idle);
                    Reverse(self.bucket(due) << 32 | u64::from(i))
                })
                .collect();
            self.queue = BinaryHeap::from(v);
        }
    }

    /// Frees the tails the sweep at `now` frees.
    fn expire(&mut self, now: i64) {
        let (two_msl, idle) = (self.two_msl, self.idle);
        let nb = self.bucket(now);
        let mut again = Vec::new();
        while let Some(&Reverse(e)) = self.queue.peek() {
            if e >> 32 > nb {
                break;
            }
            self.queue.pop();
            let i = e as u32;
            if !self.is_used(i) {
                continue;
            }
            let (k, t) = self.slot(i);
            if Self::gone(t, now, two_msl, idle) {
                let h = self.hasher.hash_one(k.key(&self.v6_keys));
                self.take(h, i);
                continue;
            }
            let due = Self::due(t, two_msl, idle);
            if due <= now {
                // Early only when a time saturates: looked at again at the next sweep.
                if now < i64::MAX {
                    again.push(self.bucket(now + 1) << 32 | u64::from(i));
                }
            } else if self.bucket(due) == e >> 32 {
                // Due later in this second.
                again.push(e);
            }
        }
        self.queue.extend(again.into_iter().map(Reverse));
    }

    fn iter(&self) -> impl Iterator<Item = (Key, &Tail)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter(|&(i, _)| self.is_used(i as u32))
            .map(|(_, (k, t))| (k.key(&self.v6_keys), t))
    }
}

/// The analysis's timers as the sweep uses them, worked out once (2 MSL is a product).
#[derive(Clone, Copy, Debug)]
struct Timers {
    two_msl: i64,
    reset_linger: i64,
    close_linger: i64,
    idle: i64,
}

impl Timers {
    fn new(cfg: &AnalysisConfig) -> Self {
        Timers {
            two_msl: cfg.msl_ns.saturating_mul(2),
            reset_linger: cfg.reset_linger_ns,
            close_linger: cfg.close_linger_ns,
            idle: cfg.idle_ns,
        }
    }

    /// When the sweep must look at `c` next ([`Conn::wake`]).
    #[inline]
    fn wake(&self, c: &Conn) -> i64 {
        c.wake(
            self.two_msl,
            self.reset_linger,
            self.close_linger,
            self.idle,
        )
    }
}

/// A new SYN takes the 4-tuple of `conn`: the old connection ends here and a new one, with id
/// `next_id`, starts in its place. The next id after it.
#[cold]
#[inline(never)]
fn replace(
    conn: &mut Conn,
    next_id: u64,
    seg: &Segment,
    info: &mut PacketInfo,
    ended: &mut Vec<ConnSummary>,
    stats: &mut AnalysisStats,
) -> u64 {
    let old = std::mem::replace(conn, Conn::new(next_id, seg, true));
    stats.connections += 1;
    if old.emitted {
        info.replaced = Some((old.id, old.last_ts));
    } else {
        ended.push(old.summary(EndReason::Replaced));
    }
    next_id + 1
}

/// How often (capture time) expired connections are looked for.
const SWEEP_NS: i64 = 1_000_000_000;

/// What the sweep does to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    /// Its close is over (2 MSL, or the reset linger): record (if not out yet) and free.
    Expired,
    /// Idle for the idle timeout: record (if not out yet) and free.
    Idle,
    /// Closed and the close linger is over: record, keep a tail.
    Linger,
}

/// Live connections.
#[derive(Debug)]
pub struct FlowTable {
    /// Open connections, and closed ones inside their close linger.
    live: LiveTable,
    /// Closed connections whose record is out, until 2 MSL after the close.
    tails: Tails,
    cfg: AnalysisConfig,
    timers: Timers,
    next_id: u64,
    last_sweep: Option<Timestamp>,
    /// No sweep is due before this capture time (ns): `last_sweep` plus [`SWEEP_NS`], or
    /// `i64::MIN` before the first packet. One comparison per packet instead of the sweep
    /// test ([`FlowTable::sweep_if_due`]).
    next_sweep: i64,
    scratch: Vec<(i64, u64, Key)>,
    due: Vec<(u64, Key, Due)>,
    /// [`FlowTable::finish_some`] has begun: `scratch` holds the connections still to end.
    finishing: bool,
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: AnalysisConfig) -> Self {
        FlowTable {
            live: LiveTable::new(),
            tails: Tails::new(&cfg),
            timers: Timers::new(&cfg),
            cfg,
            next_id: 0,
            last_sweep: None,
            next_sweep: i64::MIN,
            scratch: Vec::new(),
            due: Vec::new(),
            finishing: false,
        }
    }

    /// Connections held (closed ones waiting out TIME_WAIT included).
    pub fn len(&self) -> usize {
        self.live.len() + self.tails.len
    }

    /// No connections held.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.tails.len == 0
    }

    /// The table's key and hash of the connection of `seg`, for [`FlowTable::prefetch`] and
    /// [`FlowTable::packet`].
    #[inline]
    pub fn key(&self, seg: &Segment) -> FlowKey {
        let key = Key::of(seg);
        FlowKey {
            key,
            hash: self.live.hash(&key),
        }
    }

    /// Asks the CPU to bring a connection into the cache ahead of its packet, given the
    /// packet's [`FlowTable::hash`]: `step` 0 fetches the part of the index its lookup reads,
    /// `step` 1 (a few packets later, when that has arrived) the connection itself. Only a
    /// hint: it changes nothing.
    #[inline]
    pub fn prefetch(&self, key: &FlowKey, step: u8) {
        if step == 0 {
            self.live.prefetch_index(key.hash);
        } else {
            self.live.prefetch_slot(key.hash);
        }
    }

    fn remove(&mut self, k: &Key) -> Option<Live> {
        let h = self.live.hash(k);
        self.live.remove(h, k)
    }

    /// Analyses `seg`, whose [`FlowTable::key`] is `fk`.
    #[inline]
    pub(crate) fn packet(
        &mut self,
        seg: &Segment,
        fk: &FlowKey,
        info: &mut PacketInfo,
        ended: &mut Vec<ConnSummary>,
        stats: &mut AnalysisStats,
    ) {
        *info = PacketInfo {
            number: seg.number,
            ts: seg.ts,
            two_msl_ns: self.timers.two_msl,
            ..PacketInfo::default()
        };
        if seg.ts.0 >= self.next_sweep {
            self.sweep_if_due(seg.ts, ended, stats);
        }
        // Most packets belong to a live connection that goes on: that path is kept short, the
        // others are out of line.
        let Some((slot, live)) = self.live.find_mut(fk.hash, &fk.key) else {
            return self.packet_unheld(seg, fk, info, ended, stats);
        };
        let conn = &mut live.conn;
        let before = conn.last_ts;
        if conn.starts_new(seg) {
            self.next_id = replace(conn, self.next_id, seg, info, ended, stats);
        } else if conn.emitted {
            stats.time_wait_packets += 1;
            info.after_record = true;
        }
        conn.segment(seg, info);
        // Until its close, a connection's wake time is its last packet plus the idle timeout:
        // while its clock goes forward, the time set before stays early enough (a sweep that
        // comes too early sets it again), so only a close or a clock gone back needs a new one.
        if conn.ended_at.is_some() || conn.last_ts < before {
            let wake = self.timers.wake(conn);
            self.live.set_wake(slot, wake);
        }
    }

    /// Sweeps when a sweep is due at `now`: a second (capture time) after the last one.
    #[inline(never)]
    fn sweep_if_due(
        &mut self,
        now: Timestamp,
        ended: &mut Vec<ConnSummary>,
        stats: &mut AnalysisStats,
    ) {
        match self.last_sweep {
            None => self.last_sweep = Some(now),
            Some(t) if now.0.saturating_sub(t.0) >= SWEEP_NS => {
                self.sweep(now, ended, stats);
                self.last_sweep = Some(now);
            }
            _ => {}
        }
        // Before it, `now - last >= SWEEP_NS` cannot hold (when the sum overflows, only
        // `i64::MAX` comes here and is tested as above).
        if let Some(t) = self.last_sweep {
            self.next_sweep = t.0.checked_add(SWEEP_NS).unwrap_or(i64::MAX);
        }
    }

    /// [`FlowTable::packet`] for a packet whose connection is not live: a new connection, or a
    /// late packet of a closed one whose record is out (its tail).
    #[inline(never)]
    fn packet_unheld(
        &mut self,
        seg: &Segment,
        fk: &FlowKey,
        info: &mut PacketInfo,
        ended: &mut Vec<ConnSummary>,
        stats: &mut AnalysisStats,
    ) {
        let (key, h) = (fk.key, fk.hash);
        // Only a new connection in a full table costs a second lookup (to evict first).
        if self.len() >= self.cfg.max_connections.max(1) && !self.tails.contains_key(&key) {
            self.evict(ended, stats);
        }
        let tail = self.tails.remove(&key).map(|t| Conn::from_tail(&t, seg));
        match tail {
            Some(mut c) if !c.starts_new(seg) => {
                // A late packet of a closed connection: analysed by the same code, then
                // packed again.
                stats.time_wait_packets += 1;
                info.after_record = true;
                c.segment(seg, info);
                match Tail::of(&c) {
                    Some(t) => {
                        self.tails.insert(key, t);
                    }
                    None => {
                        let wake = self.timers.wake(&c);
                        let s = self.live.insert(h, Live { key, conn: c });
                        self.live.set_wake(s, wake);
                    }
                }
                return;
            }
            Some(ref c) => {
                // Its record is out: only its TIME_WAIT ends here.
                info.replaced = Some((c.id, c.last_ts));
            }
            None => {}
        }
        let id = self.next_id;
        self.next_id += 1;
        stats.connections += 1;
        let conn = Conn::new(id, seg, tail.is_some());
        let slot = self.live.insert(h, Live { key, conn });
        let conn = &mut self.live.get_mut(slot).conn;
        conn.segment(seg, info);
        let wake = self.timers.wake(conn);
        self.live.set_wake(slot, wake);
        // Only a new connection makes the table hold more.
        stats.peak_live = stats.peak_live.max(self.len() as u64);
    }

    /// Frees closed-and-expired and idle connections; emits the records of closed ones whose
    /// linger is over and keeps their tails.
    fn sweep(&mut self, now: Timestamp, ended: &mut Vec<ConnSummary>, stats: &mut AnalysisStats) {
        let Timers {
            two_msl,
            reset_linger: linger,
            close_linger,
            idle,
        } = self.timers;
        self.due.clear();
        // Connections looked at but not due (their wake time was an early guess) get theirs.
        let mut rewake = Vec::new();
        for (slot, l) in self.live.waking(now.0) {
            let c = &l.conn;
            let due = if c.expiry(two_msl, linger).is_some_and(|t| now.0 >= t) {
                Due::Expired
            } else if now.0.saturating_sub(c.last_ts.0) >= idle {
                Due::Idle
            } else if !c.emitted
                && !c.reset
                && c.ended_at
                    .is_some_and(|t| now.0 >= t.0.saturating_add(close_linger))
            {
                Due::Linger
            } else {
                rewake.push((slot, self.timers.wake(c)));
                continue;
            };
            self.due.push((c.id, l.key, due));
        }
        for (slot, t) in rewake {
            self.live.set_wake(slot, t);
        }
        self.due.sort_unstable_by_key(|e| e.0);
        let due = std::mem::take(&mut self.due);
        for &(_, k, due) in &due {
            match due {
                Due::Linger => {
                    let h = self.live.hash(&k);
                    let Some(i) = self.live.find(h, &k) else {
                        continue;
                    };
                    let c = &mut self.live.get_mut(i).conn;
                    c.emitted = true;
                    ended.push(c.summary(EndReason::Closed));
                    if let Some(t) = Tail::of(c) {
                        self.remove(&k);
                        self.tails.insert(k, t);
                    } else {
                        let wake = self.timers.wake(&self.live.get_mut(i).conn);
                        self.live.set_wake(i, wake);
                    }
                }
                Due::Expired | Due::Idle => {
                    let Some(l) = self.remove(&k) else {
                        continue;
                    };
                    let c = &l.conn;
                    if c.emitted {
                        continue;
                    }
                    let reason = if due == Due::Idle {
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
        self.due = due;
        self.tails.expire(now.0);
    }

    /// Evicts the least recently active sixteenth of the table (tails included: their
    /// records are out already).
    fn evict(&mut self, ended: &mut Vec<ConnSummary>, stats: &mut AnalysisStats) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(
            self.live
                .iter()
                .map(|l| (l.conn.last_ts.0, l.conn.id, l.key)),
        );
        scratch.extend(self.tails.iter().map(|(k, t)| (t.last_ts.0, t.id(), k)));
        let n = (scratch.len() / 16).max(1);
        if n < scratch.len() {
            scratch.select_nth_unstable_by_key(n, |e| (e.0, e.1));
        }
        scratch.truncate(n);
        scratch.sort_unstable_by_key(|e| e.1);
        for &(_, _, k) in &scratch {
            if let Some(l) = self.remove(&k) {
                if !l.conn.emitted {
                    stats.evicted += 1;
                    ended.push(l.conn.summary(EndReason::Evicted));
                }
            } else {
                self.tails.remove(&k);
            }
        }
        self.scratch = scratch;
    }

    /// Ends every connection, in id order.
    pub(crate) fn finish(&mut self, ended: &mut Vec<ConnSummary>) {
        while self.finish_some(ended, usize::MAX) {}
    }

    /// Ends up to `max` of the connections still held, in id order, and says whether any are
    /// left: called until it says none, with nothing else in between, it ends them all as
    /// [`FlowTable::finish`] does, without their summaries all existing at once (a capture
    /// cut short can end with millions open).
    pub(crate) fn finish_some(&mut self, ended: &mut Vec<ConnSummary>, max: usize) -> bool {
        if !self.finishing {
            // Sort ids and keys, not whole connections: each is removed as it is summarised.
            // Highest id first, so that each chunk is taken from the end.
            self.finishing = true;
            self.scratch.clear();
            self.scratch.extend(
                self.live
                    .iter()
                    .filter(|l| !l.conn.emitted)
                    .map(|l| (0, l.conn.id, l.key)),
            );
            self.scratch.sort_unstable_by_key(|e| Reverse(e.1));
        }
        for _ in 0..max {
            let Some((_, _, k)) = self.scratch.pop() else {
                break;
            };
            let Some(l) = self.remove(&k) else {
                continue;
            };
            let c = &l.conn;
            let reason = match (c.ended_at, c.reset) {
                (Some(_), true) => EndReason::Reset,
                (Some(_), false) => EndReason::Closed,
                (None, _) => EndReason::EndOfCapture,
            };
            ended.push(c.summary(reason));
        }
        if !self.scratch.is_empty() {
            return true;
        }
        self.finishing = false;
        self.scratch = Vec::new();
        self.due = Vec::new();
        self.live = LiveTable::new();
        self.tails = Tails::new(&self.cfg);
        false
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::decode::{OptionSummary, TcpFlags};

    /// An IPv4 segment from 10.0.0.1:`port` to 10.0.0.2:80.
    pub(in crate::analysis) fn seg(port: u16) -> Segment {
        Segment {
            number: 1,
            ts: Timestamp(0),
            src: IpAddr::from([10, 0, 0, 1]),
            dst: IpAddr::from([10, 0, 0, 2]),
            sport: port,
            dport: 80,
            seq: 1,
            ack: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window: 1000,
            payload_len: 0,
            options: OptionSummary::default(),
            ttl: 64,
        }
    }

    /// The sweep looks only at connections whose wake time has come: each connection must
    /// still end at the first sweep where the idle rule (`now - last >= idle`) holds, also
    /// after a packet that moved its last time back, and at the ends of the time range.
    #[test]
    fn sweeps_end_idle_connections_on_time() {
        const S: i64 = 1_000_000_000;
        for base in [0, -5 * S, i64::MAX - 400 * S, i64::MIN + 10 * S] {
            let cfg = AnalysisConfig {
                idle_ns: 10 * S,
                ..AnalysisConfig::default()
            };
            let mut t = FlowTable::new(cfg);
            let (mut info, mut ended, mut stats) = Default::default();
            let mut feed = |t: &mut FlowTable, port: u16, ts: i64| {
                let mut s = seg(port);
                s.ts = Timestamp(ts);
                let k = t.key(&s);
                t.packet(&s, &k, &mut info, &mut ended, &mut stats);
                std::mem::take(&mut ended)
            };
            // Port 1 last seen at base + 3 s (after a packet at base + 5 s: time went back);
            // port 2 at base + 4 s; port 3 keeps the clock going, a packet a second; port 4
            // has a packet a second from base + 6 s to base + 9 s (its wake time is not moved
            // on by each packet).
            feed(&mut t, 1, base + 5 * S);
            feed(&mut t, 1, base + 3 * S);
            feed(&mut t, 2, base + 4 * S);
            let mut gone = Vec::new();
            for sec in 6..=20 {
                let mut ended = feed(&mut t, 3, base + sec * S);
                if sec <= 9 {
                    ended.extend(feed(&mut t, 4, base + sec * S));
                }
                for c in ended {
                    gone.push((c.id, sec, c.end));
                }
            }
            // The idle rule, worked out here: ends at the first sweep at or after last + 10 s.
            assert_eq!(
                gone,
                vec![
                    (0, 13, EndReason::Idle),
                    (1, 14, EndReason::Idle),
                    (3, 19, EndReason::Idle)
                ],
                "base {base}"
            );
        }
    }

    /// A run ending with more connections open than one chunk ends them all, each once, in
    /// id order across the chunks, never more than a chunk at a time, also when freed slots
    /// were reused so that the table's order is not the id order.
    #[test]
    fn finish_ends_open_connections_in_id_order_a_chunk_at_a_time() {
        const S: i64 = 1_000_000_000;
        let cfg = AnalysisConfig {
            idle_ns: 10 * S,
            ..AnalysisConfig::default()
        };
        let mut t = FlowTable::new(cfg);
        let (mut info, mut ended, mut stats) = Default::default();
        let mut open = std::collections::BTreeSet::new();
        let mut feed = |t: &mut FlowTable, ports: std::ops::RangeInclusive<u16>, ts: i64| {
            for port in ports {
                let mut s = seg(port);
                s.ts = Timestamp(ts);
                let k = t.key(&s);
                t.packet(&s, &k, &mut info, &mut ended, &mut stats);
                open.insert(info.conn);
                for c in ended.drain(..) {
                    assert!(open.remove(&c.id));
                }
            }
        };
        // The first 3000 go idle and free their slots; later connections take them.
        feed(&mut t, 1..=3000, 0);
        feed(&mut t, 3001..=6000, 20 * S);
        feed(&mut t, 1..=3000, 21 * S);
        feed(&mut t, 6001..=9500, 22 * S);
        let open: Vec<u64> = open.into_iter().collect();
        assert_eq!(open.len(), 9500);
        let mut ended = Vec::new();
        let mut got = Vec::new();
        let mut chunks = 0;
        loop {
            let more = t.finish_some(&mut ended, 1000);
            assert!(ended.len() <= 1000);
            chunks += 1;
            for c in ended.drain(..) {
                assert_eq!(c.end, EndReason::EndOfCapture);
                got.push(c.id);
            }
            if !more {
                break;
            }
        }
        assert_eq!(got, open);
        assert_eq!(chunks, 10);
        assert_eq!(t.len(), 0);
        t.finish(&mut ended);
        assert!(ended.is_empty());
    }

    /// The slot size docs/performance.md counts per connection in TIME_WAIT.
    #[test]
    fn a_tail_slot_is_144_bytes() {
        assert_eq!(size_of::<(SlotKey, Tail)>(), 144);
    }

    #[test]
    fn slot_keys_give_the_key_back() {
        let v6 = Key {
            addr: [1, 2, 3, 4],
            ports: 80 << 16 | 40000,
            v6: true,
        };
        let v4 = Key {
            addr: [0, 0x0a00_0001, 0, 0xffff_ffff],
            ports: 65535 << 16,
            v6: false,
        };
        let mut keys = Slots::default();
        let at = keys.insert(v6);
        let s4 = SlotKey {
            lo: 0x0a00_0001,
            hi: 0xffff_ffff,
            ports: 65535 << 16,
            v6: V4,
        };
        let s6 = SlotKey {
            lo: 0,
            hi: 0,
            ports: 0,
            v6: at,
        };
        assert_eq!(s4.key(&keys), v4);
        assert_eq!(s6.key(&keys), v6);
        assert!(s4.is(&v4, &keys) && s6.is(&v6, &keys));
        assert!(!s4.is(&v6, &keys) && !s6.is(&v4, &keys));
    }
}

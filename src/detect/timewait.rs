//! TIME_WAIT buildup per host.
//!
//! A side enters TIME_WAIT when, having sent the first FIN (or in a simultaneous close), it
//! acknowledges the peer's FIN (the analysis's transition). It stays 2 MSL (`--msl`, 30 s →
//! 60 s, Linux's fixed TCP_TIMEWAIT_LEN) and leaves early when a new SYN takes the 4-tuple.
//! Per host: the number held over time, its peak and when, the entry rate, which role closed
//! first (a server that closes first collects TIME_WAIT, the classic cause), and for client
//! roles the local ports tied up per destination against the ephemeral range the ports fall
//! in (port exhaustion risk). A finding fires when one host holds `--time-wait-threshold`.

use super::sketch::Slide;
use super::{DetectConfig, Figures, Finding, FindingKind, MAX_KEYS, NS_PER_SEC, round2};
use crate::analysis::slots::Slots;
use crate::analysis::{ConnSummary, EndReason, Side};
use crate::capture::Timestamp;
use crate::report::ndjson::Rfc3339;
use hashbrown::HashTable;
use serde::Serialize;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

/// One side of one connection in TIME_WAIT: 24 bytes, in entry order in [`TimeWait::ring`].
#[derive(Clone, Copy, Debug)]
struct Tw {
    /// When its 2 MSL is over.
    at: i64,
    id: u64,
    /// Index in `hosts`, the side in [`SIDE_BIT`]; [`GONE`] once it left early (replaced).
    host: u32,
    /// Index in `dests` when it was counted there, else [`NO_DEST`].
    dest: u32,
}

const SIDE_BIT: u32 = 1 << 31;
const GONE: u32 = u32::MAX;
const NO_DEST: u32 = u32::MAX;

/// A destination `addr:port` in 20 bytes (a `SocketAddr` takes 32 for the IPv6 flow label and
/// scope, which addresses from packets do not have).
type Addr = (IpAddr, u16);

fn addr(a: SocketAddr) -> Addr {
    (a.ip(), a.port())
}

/// Local ports one host holds in TIME_WAIT toward one destination (client role): 28 bytes.
#[derive(Clone, Copy, Debug)]
struct Dest {
    host: u32,
    /// 0: a free slot.
    n: u32,
    addr: Addr,
}

const _: () = assert!(std::mem::size_of::<Dest>() == 28);

/// Sub-bucket width of the entry rate's 1 s window.
const RATE_WIDTH: i64 = Slide::width(NS_PER_SEC);

/// One host's TIME_WAIT figures: 168 bytes (was 208), one per host for the whole run.
#[derive(Debug)]
struct Host {
    ip: IpAddr,
    above: bool,
    /// `first_above` is set.
    was_above: bool,
    port_min: u16,
    port_max: u16,
    dest_peak_addr: Option<Addr>,
    now: u32,
    peak: u32,
    peak_rate: u32,
    dest_peak: u32,
    episodes: u32,
    peak_ts: Timestamp,
    // Every entry counts as one or the other: entered = as_server + as_client.
    as_server: u64,
    as_client: u64,
    first_entry: Timestamp,
    last_entry: Timestamp,
    rate: Slide,
    first_above: Timestamp,
    last_above: Timestamp,
}

const _: () = assert!(std::mem::size_of::<Host>() == 168);

impl Host {
    fn new(ip: IpAddr, ts: Timestamp) -> Host {
        Host {
            ip,
            now: 0,
            peak: 0,
            peak_ts: ts,
            as_server: 0,
            as_client: 0,
            first_entry: ts,
            last_entry: ts,
            rate: Slide::default(),
            peak_rate: 0,
            port_min: u16::MAX,
            port_max: 0,
            dest_peak: 0,
            dest_peak_addr: None,
            above: false,
            was_above: false,
            first_above: ts,
            last_above: ts,
            episodes: 0,
        }
    }

    /// Entries into TIME_WAIT.
    fn entered(&self) -> u64 {
        self.as_server.saturating_add(self.as_client)
    }

    /// When it first held the threshold.
    fn first_above(&self) -> Option<Timestamp> {
        self.was_above.then_some(self.first_above)
    }
}

/// What the time_wait_buildup detector measured for one host.
#[derive(Clone, Debug, Serialize)]
pub struct TimeWaitFigures {
    /// Most connections held in TIME_WAIT at once.
    pub peak_time_wait: u32,
    /// When.
    pub peak_time: Rfc3339,
    /// Connections that entered TIME_WAIT on this host.
    pub entered: u64,
    /// Of those, where the host was the server (it closed first).
    pub as_server: u64,
    /// Of those, where the host was the client.
    pub as_client: u64,
    /// Highest entries per second (over a 1 s sliding window).
    pub peak_entry_rate: u32,
    /// Mean entries per second between the first and the last entry.
    pub mean_entry_rate: f64,
    /// TIME_WAIT length used, seconds.
    pub time_wait_s: f64,
    /// Times the count crossed the threshold.
    pub episodes: u32,
    /// Client role: lowest and highest local port seen in TIME_WAIT.
    pub client_port_min: Option<u16>,
    /// See `client_port_min`.
    pub client_port_max: Option<u16>,
    /// Client role: the ephemeral range those ports suggest, in ports (Linux 32768–60999,
    /// IANA 49152–65535, else the span seen).
    pub ephemeral_range: Option<u32>,
    /// Client role: most local ports held in TIME_WAIT toward one destination.
    pub peak_ports_to_one_destination: u32,
    /// That destination.
    pub destination: Option<SocketAddr>,
    /// peak_ports_to_one_destination / ephemeral_range.
    pub port_share: Option<f64>,
}

/// The detector.
///
/// Memory: per side in TIME_WAIT one 24-byte [`Tw`] in entry order plus a 4-byte slot in a
/// hash index of them; per host one `Host` (at most [`MAX_KEYS`]), per (host, destination) with
/// ports in TIME_WAIT one `Dest` (at most [`MAX_KEYS`] at once). Indexes are `u32` positions,
/// hashed through what they point to, so no key is stored twice.
#[derive(Debug)]
pub struct TimeWait {
    cfg: DetectConfig,
    hasher: foldhash::fast::RandomState,
    hosts: Vec<Host>,
    host_index: HashTable<u32>,
    /// Entries in TIME_WAIT order (each leaves 2 MSL after it came, in this order), and those
    /// that left early, until they come up or `compact` drops them.
    ring: VecDeque<Tw>,
    /// Sequence number of `ring[0]`: an entry's sequence number is its position plus this.
    base: u32,
    /// Sequence numbers of the entries still in TIME_WAIT, by (connection id, side).
    live: HashTable<u32>,
    dests: Slots<Dest>,
    dest_index: HashTable<u32>,
    fired: Vec<u32>,
}

fn range_of(lo: u16, hi: u16) -> u32 {
    if lo >= 32768 && hi <= 60999 {
        60999 - 32768 + 1
    } else if lo >= 49152 {
        65535 - 49152 + 1
    } else {
        u32::from(hi - lo) + 1
    }
}

/// Most sides followed in TIME_WAIT at once whatever `--max-connections` says: positions in
/// the ring stay below 2^32 (the ring holds at most twice the live entries plus 1024).
const MAX_FOLLOWED: usize = 1 << 30;

impl TimeWait {
    /// An empty detector.
    pub fn new(cfg: DetectConfig) -> Self {
        TimeWait {
            cfg,
            hasher: foldhash::fast::RandomState::default(),
            hosts: Vec::new(),
            host_index: HashTable::new(),
            ring: VecDeque::new(),
            base: 0,
            live: HashTable::new(),
            dests: Slots::default(),
            dest_index: HashTable::new(),
            fired: Vec::new(),
        }
    }

    fn tw_hash(&self, id: u64, side: u32) -> u64 {
        self.hasher.hash_one((id, side))
    }

    /// The entry with sequence number `seq`.
    fn at_seq(ring: &VecDeque<Tw>, base: u32, seq: u32) -> &Tw {
        &ring[seq.wrapping_sub(base) as usize]
    }

    /// Where (connection id, side bit) sits in `ring`, if it is in TIME_WAIT.
    fn find(&self, id: u64, side: u32) -> Option<u32> {
        let (ring, base) = (&self.ring, self.base);
        self.live
            .find(self.tw_hash(id, side), |&q| {
                let e = Self::at_seq(ring, base, q);
                e.id == id && e.host & SIDE_BIT == side
            })
            .copied()
    }

    /// `side` of connection `id`, at `host` talking to `peer`, entered TIME_WAIT at `ts`.
    pub(crate) fn enter(
        &mut self,
        id: u64,
        side: Side,
        host: SocketAddr,
        peer: SocketAddr,
        ts: Timestamp,
    ) {
        let side_bit = if side.index() == 0 { 0 } else { SIDE_BIT };
        // At most --max-connections TIME_WAITs are followed at once: they outlive the flow
        // table's connections, so its bound does not hold them.
        if self.find(id, side_bit).is_some()
            || self.live.len() >= self.cfg.max_tracked.clamp(1, MAX_FOLLOWED)
        {
            return;
        }
        let ip = host.ip();
        let hh = self.hasher.hash_one(ip);
        let hosts = &self.hosts;
        let hi = match self.host_index.find(hh, |&i| hosts[i as usize].ip == ip) {
            Some(&i) => i,
            None if self.hosts.len() >= MAX_KEYS => return,
            None => {
                let i = self.hosts.len() as u32;
                self.hosts.push(Host::new(ip, ts));
                let (hosts, hasher) = (&self.hosts, &self.hasher);
                self.host_index
                    .insert_unique(hh, i, |&j| hasher.hash_one(hosts[j as usize].ip));
                i
            }
        };
        let h = &mut self.hosts[hi as usize];
        h.now += 1;
        h.last_entry = ts;
        h.rate.add(RATE_WIDTH, ts.0, 1);
        h.peak_rate = h.peak_rate.max(h.rate.sum(RATE_WIDTH, ts.0));
        if h.now > h.peak {
            h.peak = h.now;
            h.peak_ts = ts;
        }
        let dest = if side == Side::Client {
            h.as_client += 1;
            h.port_min = h.port_min.min(host.port());
            h.port_max = h.port_max.max(host.port());
            Some(peer)
        } else {
            h.as_server += 1;
            None
        };
        if h.now >= self.cfg.time_wait_threshold.max(1) {
            if !h.above {
                h.above = true;
                h.episodes += 1;
                if !h.was_above {
                    h.was_above = true;
                    h.first_above = ts;
                    self.fired.push(hi);
                }
            }
            h.last_above = ts;
        }
        let di = dest.map_or(NO_DEST, |d| self.count_dest(hi, d));
        let seq = self.base.wrapping_add(self.ring.len() as u32);
        self.ring.push_back(Tw {
            at: ts.0.saturating_add(self.cfg.two_msl_ns),
            id,
            host: hi | side_bit,
            dest: di,
        });
        let (ring, base, hasher) = (&self.ring, self.base, &self.hasher);
        self.live
            .insert_unique(self.tw_hash(id, side_bit), seq, |&q| {
                let e = Self::at_seq(ring, base, q);
                hasher.hash_one((e.id, e.host & SIDE_BIT))
            });
        let len = self.ring.len();
        super::compact(&mut self.ring, self.live.len(), |e| e.host != GONE);
        if self.ring.len() != len {
            self.reindex();
        }
    }

    /// Counts a port of host `hi` in TIME_WAIT toward `d`; its `dests` index, or [`NO_DEST`]
    /// when [`MAX_KEYS`] pairs are counted already.
    fn count_dest(&mut self, hi: u32, d: SocketAddr) -> u32 {
        let d = addr(d);
        let dh = self.hasher.hash_one((hi, d));
        let dests = &self.dests;
        let di = match self.dest_index.find(dh, |&i| {
            let e = &dests[i];
            e.host == hi && e.addr == d
        }) {
            Some(&i) => i,
            None if self.dest_index.len() >= MAX_KEYS => return NO_DEST,
            None => {
                let slot = Dest {
                    host: hi,
                    addr: d,
                    n: 0,
                };
                let i = self.dests.insert(slot);
                let (dests, hasher) = (&self.dests, &self.hasher);
                self.dest_index.insert_unique(dh, i, |&j| {
                    let e = &dests[j];
                    hasher.hash_one((e.host, e.addr))
                });
                i
            }
        };
        let n = &mut self.dests[di].n;
        *n += 1;
        let n = *n;
        let h = &mut self.hosts[hi as usize];
        if n > h.dest_peak {
            h.dest_peak = n;
            h.dest_peak_addr = Some(d);
        }
        di
    }

    /// The live entries' sequence numbers after `ring` was compacted.
    fn reindex(&mut self) {
        self.live.clear();
        let (ring, base, hasher) = (&self.ring, self.base, &self.hasher);
        for (i, e) in ring.iter().enumerate() {
            let seq = base.wrapping_add(i as u32);
            self.live
                .insert_unique(hasher.hash_one((e.id, e.host & SIDE_BIT)), seq, |&q| {
                    let e = Self::at_seq(ring, base, q);
                    hasher.hash_one((e.id, e.host & SIDE_BIT))
                });
        }
    }

    /// The entry at sequence number `seq` leaves TIME_WAIT at `at`.
    fn leave(&mut self, seq: u32, at: Timestamp) {
        let e = Self::at_seq(&self.ring, self.base, seq);
        let (id, host, dest) = (e.id, e.host, e.dest);
        let hash = self.tw_hash(id, host & SIDE_BIT);
        if let Ok(o) = self.live.find_entry(hash, |&q| q == seq) {
            o.remove();
        }
        let h = &mut self.hosts[(host & !SIDE_BIT) as usize];
        if h.above {
            h.last_above = at;
        }
        h.now = h.now.saturating_sub(1);
        if h.above && h.now < self.cfg.time_wait_threshold / 2 {
            h.above = false;
        }
        if dest != NO_DEST {
            let d = &mut self.dests[dest];
            d.n -= 1;
            if d.n == 0 {
                let dh = self.hasher.hash_one((d.host, d.addr));
                if let Ok(o) = self.dest_index.find_entry(dh, |&i| i == dest) {
                    o.remove();
                }
                self.dests.free(dest);
            }
        }
    }

    /// Connections whose 2 MSL is over leave TIME_WAIT.
    pub(crate) fn advance(&mut self, now: Timestamp) {
        while let Some(&e) = self.ring.front() {
            if e.at > now.0 {
                break;
            }
            if e.host != GONE {
                self.leave(self.base, Timestamp(e.at));
            }
            self.ring.pop_front();
            self.base = self.base.wrapping_add(1);
        }
    }

    /// When [`TimeWait::advance`] next has work: the time the first entry leaves.
    pub(crate) fn next_due(&self) -> i64 {
        self.ring.front().map_or(i64::MAX, |e| e.at)
    }

    /// A connection ended: a new connection on its 4-tuple ends TIME_WAIT early.
    pub(crate) fn conn_end(&mut self, c: &ConnSummary) {
        if c.end == EndReason::Replaced {
            self.replaced(c.id, c.last_ts);
        }
    }

    /// A new connection took the 4-tuple of connection `id`, last active at `at`.
    pub(crate) fn replaced(&mut self, id: u64, at: Timestamp) {
        if self.live.is_empty() {
            return;
        }
        for side in [0, SIDE_BIT] {
            if let Some(seq) = self.find(id, side) {
                self.leave(seq, at);
                let pos = seq.wrapping_sub(self.base) as usize;
                self.ring[pos].host = GONE;
            }
        }
    }

    pub(crate) fn take_fired(&mut self, out: &mut Vec<Finding>) {
        for i in std::mem::take(&mut self.fired) {
            let h = &self.hosts[i as usize];
            out.push(self.finding(h, h.last_entry));
        }
    }

    pub(crate) fn findings(&self, end: Timestamp, out: &mut Vec<Finding>) {
        let mut v: Vec<&Host> = self.hosts.iter().filter(|h| h.was_above).collect();
        v.sort_by_key(|h| h.ip);
        out.extend(v.into_iter().map(|h| {
            let last = if h.above { end } else { h.last_above };
            self.finding(h, last)
        }));
    }

    fn finding(&self, h: &Host, last: Timestamp) -> Finding {
        let thr = f64::from(self.cfg.time_wait_threshold.max(1));
        let over = (f64::from(h.peak) - thr) / thr;
        let conf = (0.6 + 0.35 * over.clamp(0.0, 1.0)).min(0.95);
        let span = h.last_entry.0.saturating_sub(h.first_entry.0) as f64 / 1e9;
        let entered = h.entered();
        let mean = if span > 0.0 {
            entered as f64 / span
        } else {
            entered as f64
        };
        let client = h.as_client > 0;
        let range = client.then(|| range_of(h.port_min, h.port_max));
        let share = range.map(|r| f64::from(h.dest_peak) / f64::from(r));
        let tw_s = self.cfg.two_msl_ns as f64 / 1e9;
        let mut ev = vec![format!(
            "peak {} connections in TIME_WAIT (threshold {}), {} entered at up to {}/s (mean {:.1}/s), each held {:.0} s",
            h.peak, self.cfg.time_wait_threshold, entered, h.peak_rate, mean, tw_s
        )];
        let srv_share = h.as_server as f64 / entered.max(1) as f64;
        ev.push(if srv_share >= 0.5 {
            format!(
                "{:.0}% as the server: the server closes first (the classic cause; let clients close, or keep connections alive)",
                srv_share * 100.0
            )
        } else {
            format!(
                "{:.0}% as the client: the client closes first",
                (1.0 - srv_share) * 100.0
            )
        });
        let dest = h.dest_peak_addr.map(|(ip, port)| SocketAddr::new(ip, port));
        if let (Some(r), Some(s), Some(d)) = (range, share, dest) {
            ev.push(format!(
                "up to {} local ports toward {} in TIME_WAIT, {:.1}% of a {}-port ephemeral range (ports {}–{} seen){}",
                h.dest_peak,
                d,
                s * 100.0,
                r,
                h.port_min,
                h.port_max,
                if s >= 0.5 {
                    ": port exhaustion risk"
                } else {
                    ""
                }
            ));
        }
        let figures = TimeWaitFigures {
            peak_time_wait: h.peak,
            peak_time: Rfc3339(h.peak_ts),
            entered,
            as_server: h.as_server,
            as_client: h.as_client,
            peak_entry_rate: h.peak_rate,
            mean_entry_rate: round2(mean),
            time_wait_s: tw_s,
            episodes: h.episodes,
            client_port_min: client.then_some(h.port_min),
            client_port_max: client.then_some(h.port_max),
            ephemeral_range: range,
            peak_ports_to_one_destination: h.dest_peak,
            destination: dest,
            port_share: share.map(|s| (s * 10000.0).round() / 10000.0),
        };
        Finding {
            kind: FindingKind::TimeWaitBuildup,
            subject: h.ip.to_string(),
            first_time: h.first_above().unwrap_or(h.first_entry),
            last_time: last,
            confidence: conf,
            evidence: ev,
            figures: Figures::TimeWait(Box::new(figures)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The counts the detector keeps, recomputed from a plain list of who is in TIME_WAIT.
    #[derive(Default)]
    struct Model {
        /// (id, side, host, destination, leaves at), in entry order.
        live: Vec<(u64, Side, IpAddr, Option<SocketAddr>, i64)>,
        peak: HashMap<IpAddr, (u32, i64)>,
        dest_peak: HashMap<IpAddr, u32>,
    }

    impl Model {
        fn enter(&mut self, cap: usize, e: (u64, Side, IpAddr, Option<SocketAddr>, i64), ts: i64) {
            if self.live.iter().any(|l| (l.0, l.1) == (e.0, e.1)) || self.live.len() >= cap {
                return;
            }
            self.live.push(e);
            let n = self.live.iter().filter(|l| l.2 == e.2).count() as u32;
            let p = self.peak.entry(e.2).or_insert((0, ts));
            if n > p.0 {
                *p = (n, ts);
            }
            if let Some(d) = e.3 {
                let n = self
                    .live
                    .iter()
                    .filter(|l| l.2 == e.2 && l.3 == Some(d))
                    .count();
                let p = self.dest_peak.entry(e.2).or_default();
                *p = (*p).max(n as u32);
            }
        }
    }

    /// Random entries, early leaves (enough to compact the ring) and expiries: every host's
    /// peak, its time and the per-destination peak match the model's.
    #[test]
    fn counts_match_a_plain_list() {
        let cfg = DetectConfig {
            two_msl_ns: 5000,
            max_tracked: 20_000,
            ..DetectConfig::default()
        };
        let mut tw = TimeWait::new(cfg);
        let mut m = Model::default();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut ts = 0i64;
        for id in 0..40_000u64 {
            ts += rnd(3) as i64;
            tw.advance(Timestamp(ts));
            m.live.retain(|l| l.4 > ts);
            let ip = IpAddr::from([10, 0, 0, rnd(6) as u8]);
            let dst = SocketAddr::from(([10, 1, 0, rnd(4) as u8], 80));
            let side = if rnd(2) == 0 {
                Side::Client
            } else {
                Side::Server
            };
            let host = SocketAddr::new(ip, 40000 + rnd(1000) as u16);
            tw.enter(id, side, host, dst, Timestamp(ts));
            let dest = (side == Side::Client).then_some(dst);
            m.enter(cfg.max_tracked, (id, side, ip, dest, ts + 5000), ts);
            if rnd(10) > 0 {
                // Mostly replaced at once: the ring fills with entries that left early.
                let old = id - rnd(id.min(1) + 1);
                tw.replaced(old, Timestamp(ts));
                m.live.retain(|l| l.0 != old);
            }
        }
        assert!(tw.ring.len() < 2 * tw.live.len() + 1100);
        assert_eq!(tw.live.len(), m.live.len());
        for h in &tw.hosts {
            let n = m.live.iter().filter(|l| l.2 == h.ip).count() as u32;
            assert_eq!(h.now, n, "{}", h.ip);
            assert_eq!((h.peak, h.peak_ts.0), m.peak[&h.ip], "{}", h.ip);
            assert_eq!(h.dest_peak, m.dest_peak.get(&h.ip).copied().unwrap_or(0));
        }
        assert_eq!(tw.hosts.len(), m.peak.len());
    }
}

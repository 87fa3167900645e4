//! TIME_WAIT buildup per host.
//!
//! A side enters TIME_WAIT when, having sent the first FIN (or in a simultaneous close), it
//! acknowledges the peer's FIN (the analysis's transition). It stays 2 MSL (`--msl`, 30 s →
//! 60 s, Linux's fixed TCP_TIMEWAIT_LEN) and leaves early when a new SYN takes the 4-tuple.
//! Per host: the number held over time, its peak and when, the entry rate, which role closed
//! first (a server that closes first collects TIME_WAIT, the classic cause), and for client
//! roles the local ports tied up per destination against the ephemeral range the ports fall
//! in (port exhaustion risk). A finding fires when one host holds `--time-wait-threshold`.

use super::sketch::Window;
use super::{DetectConfig, Figures, Finding, FindingKind, MAX_KEYS, NS_PER_SEC, round2};
use crate::analysis::{ConnSummary, EndReason, Side};
use crate::capture::Timestamp;
use crate::report::ndjson::Rfc3339;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, Debug)]
struct Entry {
    host: IpAddr,
    /// The peer, when the host was the client (its local port is then ephemeral).
    dest: Option<SocketAddr>,
}

#[derive(Debug)]
struct Host {
    now: u32,
    peak: u32,
    peak_ts: Timestamp,
    entered: u64,
    as_server: u64,
    as_client: u64,
    first_entry: Timestamp,
    last_entry: Timestamp,
    rate: Window,
    peak_rate: u32,
    port_min: u16,
    port_max: u16,
    dest_peak: u32,
    dest_peak_addr: Option<SocketAddr>,
    above: bool,
    first_above: Option<Timestamp>,
    last_above: Timestamp,
    episodes: u32,
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
#[derive(Debug)]
pub struct TimeWait {
    cfg: DetectConfig,
    hosts: HashMap<IpAddr, Host, foldhash::fast::RandomState>,
    live: HashMap<(u64, u8), Entry, foldhash::fast::RandomState>,
    queue: VecDeque<(i64, u64, u8)>,
    dests: HashMap<(IpAddr, SocketAddr), u32, foldhash::fast::RandomState>,
    fired: Vec<IpAddr>,
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

impl TimeWait {
    /// An empty detector.
    pub fn new(cfg: DetectConfig) -> Self {
        TimeWait {
            cfg,
            hosts: HashMap::default(),
            live: HashMap::default(),
            queue: VecDeque::new(),
            dests: HashMap::default(),
            fired: Vec::new(),
        }
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
        let key = (id, side.index() as u8);
        // At most --max-connections TIME_WAITs are followed at once: they outlive the flow
        // table's connections, so its bound does not hold them.
        if self.live.contains_key(&key) || self.live.len() >= self.cfg.max_tracked.max(1) {
            return;
        }
        let ip = host.ip();
        if !self.hosts.contains_key(&ip) && self.hosts.len() >= MAX_KEYS {
            return;
        }
        let h = self.hosts.entry(ip).or_insert_with(|| Host {
            now: 0,
            peak: 0,
            peak_ts: ts,
            entered: 0,
            as_server: 0,
            as_client: 0,
            first_entry: ts,
            last_entry: ts,
            rate: Window::new(NS_PER_SEC),
            peak_rate: 0,
            port_min: u16::MAX,
            port_max: 0,
            dest_peak: 0,
            dest_peak_addr: None,
            above: false,
            first_above: None,
            last_above: ts,
            episodes: 0,
        });
        h.now += 1;
        h.entered += 1;
        h.last_entry = ts;
        h.rate.add(ts.0, 1);
        h.peak_rate = h.peak_rate.max(h.rate.sum(ts.0));
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
                if h.first_above.is_none() {
                    h.first_above = Some(ts);
                    self.fired.push(ip);
                }
            }
            h.last_above = ts;
        }
        if let Some(d) = dest
            && (self.dests.contains_key(&(ip, d)) || self.dests.len() < MAX_KEYS)
        {
            let n = self.dests.entry((ip, d)).or_insert(0);
            *n += 1;
            if *n > h.dest_peak {
                h.dest_peak = *n;
                h.dest_peak_addr = Some(d);
            }
        }
        self.live.insert(key, Entry { host: ip, dest });
        self.queue
            .push_back((ts.0.saturating_add(self.cfg.two_msl_ns), id, key.1));
        let live = &self.live;
        super::compact(&mut self.queue, live.len(), |e| {
            live.contains_key(&(e.1, e.2))
        });
    }

    fn leave(&mut self, key: (u64, u8), at: Timestamp) {
        let Some(e) = self.live.remove(&key) else {
            return;
        };
        if let Some(h) = self.hosts.get_mut(&e.host) {
            if h.above {
                h.last_above = at;
            }
            h.now = h.now.saturating_sub(1);
            if h.above && h.now < self.cfg.time_wait_threshold / 2 {
                h.above = false;
            }
        }
        if let Some(d) = e.dest
            && let Some(n) = self.dests.get_mut(&(e.host, d))
        {
            *n -= 1;
            if *n == 0 {
                self.dests.remove(&(e.host, d));
            }
        }
    }

    /// Connections whose 2 MSL is over leave TIME_WAIT.
    pub(crate) fn advance(&mut self, now: Timestamp) {
        while let Some(&(at, id, side)) = self.queue.front() {
            if at > now.0 {
                break;
            }
            self.queue.pop_front();
            self.leave((id, side), Timestamp(at));
        }
    }

    /// A connection ended: a new connection on its 4-tuple ends TIME_WAIT early.
    pub(crate) fn conn_end(&mut self, c: &ConnSummary) {
        if c.end == EndReason::Replaced {
            self.replaced(c.id, c.last_ts);
        }
    }

    /// A new connection took the 4-tuple of connection `id`, last active at `at`.
    pub(crate) fn replaced(&mut self, id: u64, at: Timestamp) {
        self.leave((id, 0), at);
        self.leave((id, 1), at);
    }

    pub(crate) fn take_fired(&mut self, out: &mut Vec<Finding>) {
        for ip in std::mem::take(&mut self.fired) {
            if let Some(h) = self.hosts.get(&ip) {
                out.push(self.finding(ip, h, h.last_entry));
            }
        }
    }

    pub(crate) fn findings(&self, end: Timestamp, out: &mut Vec<Finding>) {
        let mut v: Vec<(&IpAddr, &Host)> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.first_above.is_some())
            .collect();
        v.sort_by_key(|(ip, _)| **ip);
        out.extend(v.into_iter().map(|(ip, h)| {
            let last = if h.above { end } else { h.last_above };
            self.finding(*ip, h, last)
        }));
    }

    fn finding(&self, ip: IpAddr, h: &Host, last: Timestamp) -> Finding {
        let thr = f64::from(self.cfg.time_wait_threshold.max(1));
        let over = (f64::from(h.peak) - thr) / thr;
        let conf = (0.6 + 0.35 * over.clamp(0.0, 1.0)).min(0.95);
        let span = h.last_entry.0.saturating_sub(h.first_entry.0) as f64 / 1e9;
        let mean = if span > 0.0 {
            h.entered as f64 / span
        } else {
            h.entered as f64
        };
        let client = h.as_client > 0;
        let range = client.then(|| range_of(h.port_min, h.port_max));
        let share = range.map(|r| f64::from(h.dest_peak) / f64::from(r));
        let tw_s = self.cfg.two_msl_ns as f64 / 1e9;
        let mut ev = vec![format!(
            "peak {} connections in TIME_WAIT (threshold {}), {} entered at up to {}/s (mean {:.1}/s), each held {:.0} s",
            h.peak, self.cfg.time_wait_threshold, h.entered, h.peak_rate, mean, tw_s
        )];
        let srv_share = h.as_server as f64 / h.entered.max(1) as f64;
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
        if let (Some(r), Some(s), Some(d)) = (range, share, h.dest_peak_addr) {
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
            entered: h.entered,
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
            destination: h.dest_peak_addr,
            port_share: share.map(|s| (s * 10000.0).round() / 10000.0),
        };
        Finding {
            kind: FindingKind::TimeWaitBuildup,
            subject: ip.to_string(),
            first_time: h.first_above.unwrap_or(h.first_entry),
            last_time: last,
            confidence: conf,
            evidence: ev,
            figures: Figures::TimeWait(Box::new(figures)),
        }
    }
}

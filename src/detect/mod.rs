//! Cross-connection detectors: half-open SYN floods ([`synflood`]), TIME_WAIT buildup
//! ([`timewait`]) and SYN-cookie replies ([`cookies`]).
//!
//! [`Detectors`] is the front the pipeline calls: [`Detectors::packet`] once per analysed TCP
//! packet (after [`crate::analysis::Analyzer::packet`]), [`Detectors::connection`] once per
//! ended connection (it sets the summary's `syn_cookie`), and [`Detectors::finish`] at the end.
//! New findings are announced through [`Detectors::drain_fired`]; the complete list, with the
//! figures measured over the whole run, comes from [`Detectors::findings`] after `finish`.
//!
//! Memory: one small record per connection whose SYN was seen (freed when the analysis ends
//! the connection, so bounded by `--max-connections`), fixed-size sliding windows per server
//! port and per host (maps capped at [`MAX_KEYS`] entries), and fixed-size sketches per
//! finding. Nothing is allocated per packet (maps and queues grow amortised).

pub mod cookies;
pub mod sketch;
pub mod synflood;
pub mod timewait;

use crate::analysis::slots::Slots;
use crate::analysis::{ConnSummary, Kind, NS_PER_SEC, PacketInfo, Side, TcpState};
use crate::capture::Timestamp;
use crate::decode::{Segment, TcpFlags};
use crate::report::ndjson::{NsString, Rfc3339};
use hashbrown::HashTable;
use serde::Serialize;
use serde::ser::SerializeStruct;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;

pub use cookies::{CookieSignals, CookieVerdict};

/// Most server ports, hosts or destinations a detector keeps state for; beyond it new keys
/// are not tracked (and counted in [`Detectors::untracked`]).
pub const MAX_KEYS: usize = 65_536;

/// The detectors' thresholds and timers (command-line flags, see docs/detectors.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectConfig {
    /// Sliding window for SYN rates (`--syn-window`, 1 s).
    pub window_ns: i64,
    /// A handshake not complete this long after its SYN has failed (`--syn-grace`, 3 s).
    pub grace_ns: i64,
    /// Failed, never-retransmitted SYNs to one port within one window that make a flood
    /// (`--syn-flood-threshold`, 10).
    pub syn_flood_threshold: u32,
    /// A flood episode ends after this long without such a SYN (10 s).
    pub hold_ns: i64,
    /// How long a server keeps a half-open connection (`--half-open-timeout`, 63 s: Linux's
    /// 5 SYN-ACK retries at 1, 2, 4, 8, 16 s, then 32 s).
    pub half_open_timeout_ns: i64,
    /// Connections in TIME_WAIT on one host that make a buildup (`--time-wait-threshold`, 200).
    pub time_wait_threshold: u32,
    /// TIME_WAIT length, 2 MSL (`--msl`, 30 s → 60 s, Linux's fixed TCP_TIMEWAIT_LEN).
    pub two_msl_ns: i64,
    /// Connections judged to be SYN-cookie replies that make a per-port finding
    /// (`--syn-cookie-min`, 3).
    pub cookie_min: u32,
    /// Most connections tracked at once (`--max-connections`).
    pub max_tracked: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            window_ns: NS_PER_SEC,
            grace_ns: 3 * NS_PER_SEC,
            syn_flood_threshold: 10,
            hold_ns: 10 * NS_PER_SEC,
            half_open_timeout_ns: 63 * NS_PER_SEC,
            time_wait_threshold: 200,
            two_msl_ns: 60 * NS_PER_SEC,
            cookie_min: 3,
            max_tracked: crate::analysis::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The contract's finding kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Half-open SYN flood against one server port.
    SynFlood,
    /// Many connections in TIME_WAIT on one host.
    TimeWaitBuildup,
    /// A server port answering with SYN cookies.
    SynCookies,
}

impl FindingKind {
    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::SynFlood => "syn_flood",
            FindingKind::TimeWaitBuildup => "time_wait_buildup",
            FindingKind::SynCookies => "syn_cookies",
        }
    }
}

/// What a detector measured, per kind.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Figures {
    /// See [`synflood::FloodFigures`].
    SynFlood(Box<synflood::FloodFigures>),
    /// See [`timewait::TimeWaitFigures`].
    TimeWait(Box<timewait::TimeWaitFigures>),
    /// See [`cookies::CookieFigures`].
    SynCookies(Box<cookies::CookieFigures>),
}

/// One finding: the contract fields plus the measured figures.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Which detector.
    pub kind: FindingKind,
    /// `addr:port` (syn_flood, syn_cookies) or `addr` (time_wait_buildup).
    pub subject: String,
    /// When it began (capture time).
    pub first_time: Timestamp,
    /// When it ended, or the last evidence.
    pub last_time: Timestamp,
    /// 0 to 1.
    pub confidence: f64,
    /// The signals behind it, one short sentence each.
    pub evidence: Vec<String>,
    /// The numbers measured.
    pub figures: Figures,
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Finding", 9)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("subject", &self.subject)?;
        st.serialize_field("first_time", &Rfc3339(self.first_time))?;
        st.serialize_field("first_time_ns", &NsString(self.first_time))?;
        st.serialize_field("last_time", &Rfc3339(self.last_time))?;
        st.serialize_field("last_time_ns", &NsString(self.last_time))?;
        st.serialize_field("confidence", &round2(self.confidence))?;
        st.serialize_field("evidence", &self.evidence)?;
        st.serialize_field("figures", &self.figures)?;
        st.end()
    }
}

/// Rounds to two decimals (confidences and ratios are estimates).
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The handshake options the detectors compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SynOpts {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack: bool,
    pub tsval: Option<u32>,
    /// SYN: ECE and CWR (ECN setup); SYN-ACK: ECE.
    pub ecn: bool,
}

impl SynOpts {
    fn of(seg: &Segment) -> Self {
        let o = &seg.options;
        let ecn = if seg.flags.ack() {
            seg.flags.has(TcpFlags::ECE)
        } else {
            seg.flags.has(TcpFlags::ECE | TcpFlags::CWR)
        };
        SynOpts {
            mss: o.mss,
            wscale: o.wscale,
            sack: o.sack_permitted,
            tsval: o.timestamps.map(|t| t.0),
            ecn,
        }
    }

    /// A compact signature of which options were present (and the MSS), for uniformity checks.
    fn signature(&self) -> u32 {
        u32::from(self.mss.unwrap_or(0))
            | u32::from(self.wscale.map_or(0xff, |w| w)) << 16
            | u32::from(self.sack) << 24
            | u32::from(self.tsval.is_some()) << 25
    }
}

/// What the detectors know of one connection whose client SYN was seen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Track {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub syn_ts: Timestamp,
    pub syn: SynOpts,
    pub syn_ttl: u8,
    pub syn_window: u16,
    pub synack: Option<SynOpts>,
    pub synack_ts: Timestamp,
    /// Client SYN retransmissions.
    pub syn_retx: u8,
    /// SYN-ACK resends not prompted by a SYN retransmission (the server's timer).
    pub synack_timer_retx: u8,
    /// Bit i: a timer resend came about 2^i s after the previous try (bit 7: other).
    pub backoff: u8,
    /// A SYN retransmission arrived since the last SYN-ACK.
    pub syn_retx_pending: bool,
    /// The client acknowledged (final ACK or data): the handshake completed.
    pub completed: bool,
    pub completed_ts: Timestamp,
    pub src_rst: bool,
    pub srv_rst: bool,
    /// Counted in its server port's half-open population.
    pub half_open: bool,
    /// Counted as half-open with server state (its SYN-ACK was resent).
    pub stateful: bool,
    /// Resolved by the flood detector (grace over or the connection ended).
    pub resolved: bool,
    /// The flood episode slot (index, serial) this attempt was counted in.
    pub episode: Option<(u32, u32)>,
    /// What was already added to the episode at resolution.
    pub counted_retx: u8,
    pub counted_backoff: u8,
    pub counted_src_rst: bool,
    pub counted_srv_rst: bool,
}

impl Track {
    fn new(seg: &Segment) -> Self {
        Track {
            client: SocketAddr::new(seg.src, seg.sport),
            server: SocketAddr::new(seg.dst, seg.dport),
            syn_ts: seg.ts,
            syn: SynOpts::of(seg),
            syn_ttl: seg.ttl,
            syn_window: seg.window,
            synack: None,
            synack_ts: seg.ts,
            syn_retx: 0,
            synack_timer_retx: 0,
            backoff: 0,
            syn_retx_pending: false,
            completed: false,
            completed_ts: seg.ts,
            src_rst: false,
            srv_rst: false,
            half_open: false,
            stateful: false,
            resolved: false,
            episode: None,
            counted_retx: 0,
            counted_backoff: 0,
            counted_src_rst: false,
            counted_srv_rst: false,
        }
    }
}

/// The tracks by connection id: each in a reused slot with its id, found through a table of
/// 4-byte slot numbers. A map holding the 160-byte entries themselves spreads them over all its
/// buckets, up to twice as many as entries: 5.2 MB at ~20k handshakes on the 5M workload, where
/// the slots touch 3.2 MB.
#[derive(Debug, Default)]
struct Tracks {
    slots: Slots<(u64, Track)>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Tracks {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn find(&self, id: u64) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(id), |&i| slots[i].0 == id)
            .copied()
    }

    fn get(&self, id: &u64) -> Option<&Track> {
        self.find(*id).map(|i| &self.slots[i].1)
    }

    fn get_mut(&mut self, id: &u64) -> Option<&mut Track> {
        self.find(*id).map(|i| &mut self.slots[i].1)
    }

    fn contains_key(&self, id: &u64) -> bool {
        self.find(*id).is_some()
    }

    /// Tracks `t` as `id`, in place of the track `id` had.
    fn insert(&mut self, id: u64, t: Track) {
        if let Some(old) = self.get_mut(&id) {
            *old = t;
            return;
        }
        let i = self.slots.insert((id, t));
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hasher.hash_one(id), i, |&j| hasher.hash_one(slots[j].0));
    }

    fn remove(&mut self, id: &u64) -> Option<Track> {
        let slots = &self.slots;
        let (i, _) = self
            .index
            .find_entry(self.hasher.hash_one(*id), |&i| slots[i].0 == *id)
            .ok()?
            .remove();
        self.slots.free(i);
        Some(self.slots[i].1)
    }

    fn iter(&self) -> impl Iterator<Item = (&u64, &Track)> {
        self.index.iter().map(|&i| {
            let (id, t) = &self.slots[i];
            (id, t)
        })
    }

    fn keys(&self) -> impl Iterator<Item = &u64> {
        self.iter().map(|(id, _)| id)
    }
}

/// Bit for a SYN-ACK resend interval: 2^i seconds within ±25 % gives bit i (0..=6), else 7.
fn backoff_bit(ns: i64) -> u8 {
    let s = ns as f64 / 1e9;
    for i in 0..7u8 {
        let t = f64::from(1u32 << i);
        if (s - t).abs() <= t * 0.25 {
            return 1 << i;
        }
    }
    0x80
}

/// Drops the entries of a timer queue whose connection is gone, once the queue holds more than
/// twice `live` (the most entries it can need) plus slack. Queues drain only as capture time
/// advances, so a burst, or a clock that went backwards, would otherwise keep one entry per
/// packet. Amortised O(1) per push.
pub(crate) fn compact<T>(q: &mut VecDeque<T>, live: usize, keep: impl FnMut(&T) -> bool) {
    if q.len() > 2 * live + 1024 {
        q.retain(keep);
    }
}

/// The least length at which `half_open_q` is cleaned out.
const HALF_OPEN_LIMIT_MIN: usize = 1024;

/// Drops the entries of a timer queue that `keep` says are dead once the queue is longer than
/// `limit`, then sets `limit` to half as much again as what is left (at least
/// [`HALF_OPEN_LIMIT_MIN`]): the queue, and its ring, follow its live entries rather than a
/// bound on them, and a clean-out of `n` entries comes after at least `n / 3` pushes since the
/// last, however many stay (amortised O(1) per push). Returns whether it cleaned.
pub(crate) fn compact_past<T>(
    q: &mut VecDeque<T>,
    limit: &mut usize,
    keep: impl FnMut(&T) -> bool,
) -> bool {
    if q.len() <= *limit {
        return false;
    }
    q.retain(keep);
    let n = q.len();
    *limit = n + n / 2 + HALF_OPEN_LIMIT_MIN;
    true
}

/// The detectors, fed by the pipeline.
#[derive(Debug)]
pub struct Detectors {
    cfg: DetectConfig,
    now: Timestamp,
    tracks: Tracks,
    /// Handshakes waiting for their grace time: (SYN time, connection id), in SYN order.
    pending: VecDeque<(i64, u64)>,
    /// Half-open connections waiting for the half-open timeout: (expiry, connection id).
    half_open_q: VecDeque<(i64, u64)>,
    /// `half_open_q` is cleaned out when longer than this.
    half_open_limit: usize,
    /// When the first entry of one of the timer queues (`pending`, `half_open_q`, the
    /// TIME_WAIT detector's) comes due ([`Detectors::first_due`]): before it, moving the clock
    /// has nothing to do, and most packets look at this one number instead of three queues.
    next_due: i64,
    flood: synflood::SynFlood,
    tw: timewait::TimeWait,
    cookies: cookies::SynCookies,
    fired: Vec<Finding>,
    findings: Vec<Finding>,
    untracked: u64,
    last_verdict: Option<CookieVerdict>,
    /// A detector was called in a way that can fire a finding since the last
    /// [`Detectors::collect_fired`]: only then does the per-packet path collect.
    may_fire: bool,
}

impl Detectors {
    /// Detectors with these thresholds.
    pub fn new(cfg: DetectConfig) -> Self {
        Detectors {
            cfg,
            now: Timestamp(i64::MIN),
            tracks: Tracks::default(),
            pending: VecDeque::new(),
            half_open_q: VecDeque::new(),
            half_open_limit: HALF_OPEN_LIMIT_MIN,
            next_due: i64::MAX,
            flood: synflood::SynFlood::new(cfg),
            tw: timewait::TimeWait::new(cfg),
            cookies: cookies::SynCookies::new(cfg),
            fired: Vec::new(),
            findings: Vec::new(),
            untracked: 0,
            last_verdict: None,
            may_fire: false,
        }
    }

    /// The thresholds in use.
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// Takes one analysed TCP packet (call after the analysis of `seg`).
    pub fn packet(&mut self, seg: &Segment, info: &PacketInfo) {
        self.advance(seg.ts);
        if let Some((old, at)) = info.replaced {
            // A closed connection whose record is already out (see `conn_end`).
            self.tw.replaced(old, at);
        }
        let Some(from) = info.from else { return };
        let k = &info.kinds;
        let id = info.conn;
        let fl = seg.flags;
        if from == Side::Client && k.contains(Kind::HandshakeSyn) {
            if self.tracks.len() >= self.cfg.max_tracked.max(1) {
                self.untracked += 1;
            } else {
                self.tracks.insert(id, Track::new(seg));
                self.pending.push_back((seg.ts.0, id));
                let tracks = &self.tracks;
                compact(&mut self.pending, tracks.len(), |e| {
                    tracks.contains_key(&e.1)
                });
                self.next_due = self.first_due();
            }
        } else if let Some(t) = self
            .needs_track(from, seg, info)
            .then(|| self.tracks.get_mut(&id))
            .flatten()
        {
            if from == Side::Client {
                if k.contains(Kind::SynRetransmission) {
                    t.syn_retx = t.syn_retx.saturating_add(1);
                    t.syn_retx_pending = true;
                } else if fl.rst() {
                    if !t.completed && !t.src_rst {
                        t.src_rst = true;
                        self.flood.half_open_end(t, seg.ts);
                    }
                } else if fl.ack() && !fl.syn() && !t.completed {
                    t.completed = true;
                    t.completed_ts = seg.ts;
                    self.flood.half_open_end(t, seg.ts);
                }
            } else if k.contains(Kind::HandshakeSynack) {
                t.synack = Some(SynOpts::of(seg));
                t.synack_ts = seg.ts;
                t.syn_retx_pending = false;
                self.cookies.on_synack(t, seg);
                // One timer per half-open period: a SYN-ACK resent with a new ISN while
                // half-open already has its timer (the earliest one ends the period).
                if !t.completed && !t.src_rst && !t.half_open {
                    self.flood.half_open_begin(t, seg.ts);
                    if t.half_open {
                        self.half_open_q.push_back((
                            seg.ts.0.saturating_add(self.cfg.half_open_timeout_ns),
                            id,
                        ));
                        let tracks = &self.tracks;
                        compact_past(&mut self.half_open_q, &mut self.half_open_limit, |e| {
                            tracks.contains_key(&e.1)
                        });
                        self.next_due = self.first_due();
                    }
                }
            } else if k.contains(Kind::SynackRetransmission) {
                if t.syn_retx_pending {
                    t.syn_retx_pending = false;
                } else {
                    t.synack_timer_retx = t.synack_timer_retx.saturating_add(1);
                    if let Some((_, gap)) = info.attempt {
                        t.backoff |= backoff_bit(gap);
                    }
                    self.flood.stateful(t, seg.ts);
                }
            } else if fl.rst() && !t.srv_rst && !t.completed {
                t.srv_rst = true;
                self.flood.half_open_end(t, seg.ts);
            }
        }
        if info.transitions().any(|tr| tr.to == TcpState::TimeWait) {
            self.time_wait(seg, info, from);
        }
        if self.may_fire {
            self.collect_fired();
        }
    }

    /// The TIME_WAIT transitions of a packet, which few packets have. Out of line: inlined,
    /// the work it does for every such transition was hoisted in front of the loop over
    /// transitions and done for every packet.
    #[cold]
    #[inline(never)]
    fn time_wait(&mut self, seg: &Segment, info: &PacketInfo, from: Side) {
        for tr in info.transitions() {
            if tr.to == TcpState::TimeWait {
                let (host, peer) = if (tr.side == Side::Client) == (from == Side::Client) {
                    (
                        SocketAddr::new(seg.src, seg.sport),
                        SocketAddr::new(seg.dst, seg.dport),
                    )
                } else {
                    (
                        SocketAddr::new(seg.dst, seg.dport),
                        SocketAddr::new(seg.src, seg.sport),
                    )
                };
                self.tw.enter(info.conn, tr.side, host, peer, seg.ts);
                self.may_fire = true;
            }
        }
        self.next_due = self.first_due();
    }

    /// Whether a packet that starts no track can change its connection's track. Most packets
    /// cannot (data and ACKs after the handshake; the server's payload sizes are kept by the
    /// analysis, [`ConnSummary::server_payload`]), and skipping the lookup for them saves a
    /// cache miss per packet. Mirrors the branches of [`Detectors::packet`]: once the client
    /// has acknowledged, its packets only count SYN retransmissions, and the server's only
    /// SYN-ACKs.
    fn needs_track(&self, from: Side, seg: &Segment, info: &PacketInfo) -> bool {
        let k = &info.kinds;
        match from {
            Side::Client => !info.client_acked || k.contains(Kind::SynRetransmission),
            Side::Server => {
                k.contains(Kind::HandshakeSynack)
                    || k.contains(Kind::SynackRetransmission)
                    || (seg.flags.rst() && !info.client_acked)
            }
        }
    }

    /// Takes one ended connection; sets its `syn_cookie` verdict.
    pub fn connection(&mut self, c: &mut ConnSummary) {
        self.last_verdict = None;
        if let Some(mut t) = self.tracks.remove(&c.id) {
            if !t.resolved {
                self.flood.resolve(&mut t, self.now, false);
            }
            if t.half_open {
                self.flood.half_open_end(&mut t, self.now);
            }
            self.flood.conn_end(&t);
            let in_flood = self.flood.flood_covers(t.server, t.syn_ts);
            let v = self
                .cookies
                .verdict(&t, &c.server_payload, in_flood, self.now);
            if let Some(v) = v {
                c.syn_cookie = v.cookie;
            }
            self.last_verdict = v;
        }
        self.tw.conn_end(c);
        self.collect_fired();
    }

    /// The SYN-cookie verdict of the connection last passed to [`Detectors::connection`], when
    /// it had a handshake to judge.
    pub fn last_verdict(&self) -> Option<CookieVerdict> {
        self.last_verdict
    }

    /// Moves the detectors' clock to `now`: handshakes past their grace time are judged,
    /// half-open and TIME_WAIT connections past their timers leave.
    fn advance(&mut self, now: Timestamp) {
        if now <= self.now {
            return;
        }
        self.now = now;
        if now.0 < self.next_due {
            return;
        }
        let grace = self.cfg.grace_ns;
        while let Some(&(syn_ts, id)) = self.pending.front() {
            if syn_ts.saturating_add(grace) > now.0 {
                break;
            }
            self.pending.pop_front();
            if let Some(t) = self.tracks.get_mut(&id)
                && !t.resolved
            {
                self.flood.resolve(t, now, false);
                self.may_fire = true;
            }
        }
        while let Some(&(at, id)) = self.half_open_q.front() {
            if at > now.0 {
                break;
            }
            self.half_open_q.pop_front();
            if let Some(t) = self.tracks.get_mut(&id)
                && t.half_open
            {
                self.flood.half_open_end(t, Timestamp(at));
            }
        }
        self.tw.advance(now);
        self.next_due = self.first_due();
    }

    /// When [`Detectors::advance`] next has work: the earliest time at which the first entry
    /// of a timer queue is due. Only the first entries count, as `advance` looks at nothing
    /// else; so this is worked out again whenever a queue changes.
    fn first_due(&self) -> i64 {
        let pending = self.pending.front().map_or(i64::MAX, |&(syn_ts, _)| {
            syn_ts.saturating_add(self.cfg.grace_ns)
        });
        let half_open = self.half_open_q.front().map_or(i64::MAX, |&(at, _)| at);
        pending.min(half_open).min(self.tw.next_due())
    }

    fn collect_fired(&mut self) {
        self.may_fire = false;
        self.flood.take_fired(&mut self.fired);
        self.tw.take_fired(&mut self.fired);
        self.cookies.take_fired(&mut self.fired);
    }

    /// Whether findings fired since the last [`Detectors::drain_fired`].
    pub fn has_fired(&self) -> bool {
        !self.fired.is_empty()
    }

    /// Findings that fired since the last call (figures as known at that moment).
    pub fn drain_fired(&mut self) -> std::vec::Drain<'_, Finding> {
        self.fired.drain(..)
    }

    /// The capture ended (call before the analysis ends its connections). Handshakes still in
    /// their grace time are judged now on a port where at least `--syn-flood-threshold` of them
    /// are incomplete and at most 5 % completed (a flood captured until it stopped); elsewhere
    /// they are left unjudged.
    pub fn end_of_capture(&mut self) {
        let now = self.now;
        let mut young: Vec<(i64, u64)> = self
            .tracks
            .iter()
            .filter(|(_, t)| !t.resolved)
            .map(|(id, t)| (t.syn_ts.0, *id))
            .collect();
        young.sort_unstable();
        let mut per: HashMap<SocketAddr, (u32, u32), foldhash::fast::RandomState> =
            HashMap::default();
        for (_, id) in &young {
            if let Some(t) = self.tracks.get(id) {
                let e = per.entry(t.server).or_default();
                if t.completed {
                    e.0 += 1;
                } else if !t.srv_rst {
                    e.1 += 1;
                }
            }
        }
        let thr = self.cfg.syn_flood_threshold.max(1);
        for (_, id) in young {
            if let Some(t) = self.tracks.get_mut(&id) {
                let (done, open) = per.get(&t.server).copied().unwrap_or_default();
                let early = open >= thr && done * 20 <= done + open;
                self.flood.resolve(t, now, early);
            }
        }
        self.collect_fired();
    }

    /// Ends the run: judges what is still pending (handshakes younger than the grace time at
    /// the end of the capture are not counted as failed) and builds every finding. Call after
    /// the analysis has ended every connection.
    pub fn finish(&mut self) {
        let now = self.now;
        let ids: Vec<u64> = self.tracks.keys().copied().collect();
        for id in ids {
            if let Some(mut t) = self.tracks.remove(&id) {
                if !t.resolved {
                    self.flood.resolve(&mut t, now, false);
                }
                self.flood.conn_end(&t);
            }
        }
        self.collect_fired();
        self.findings.clear();
        self.flood.findings(&mut self.findings);
        self.tw.findings(now, &mut self.findings);
        self.cookies.findings(&mut self.findings);
        self.findings
            .sort_by(|a, b| (a.first_time, a.kind.as_str()).cmp(&(b.first_time, b.kind.as_str())));
    }

    /// Every finding, by first time (complete after [`Detectors::finish`]).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// SYNs not tracked because `--max-connections` handshakes were already tracked.
    pub fn untracked(&self) -> u64 {
        self.untracked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `n` entries (entry `i` dies once `i + life` have been pushed), cleaning out as the
    /// half-open queue does; returns (entries examined by clean-outs, longest queue).
    fn run(n: u64, life: u64) -> (u64, usize) {
        let mut q = VecDeque::new();
        let mut limit = HALF_OPEN_LIMIT_MIN;
        let (mut examined, mut longest) = (0, 0);
        for i in 0..n {
            q.push_back(i);
            longest = longest.max(q.len());
            let len = q.len() as u64;
            if compact_past(&mut q, &mut limit, |&e| e + life > i) {
                examined += len;
            }
        }
        (examined, longest)
    }

    /// The half-open queue stays within 1.5x its live entries plus slack, and clean-outs cost
    /// O(1) per push, whether entries die soon, late or never (a crafted capture).
    #[test]
    fn half_open_queue_follows_its_live_entries_at_o1_per_push() {
        const N: u64 = 200_000;
        for life in [10, 1_000, 20_000, N] {
            let (examined, longest) = run(N, life);
            let live = life.min(N) as usize;
            assert!(
                longest <= live + live / 2 + HALF_OPEN_LIMIT_MIN + 1,
                "life {life}: {longest}"
            );
            assert!(
                examined <= 3 * N + 3 * HALF_OPEN_LIMIT_MIN as u64,
                "life {life}: {examined}"
            );
        }
    }
}

//! Half-open SYN flood per server `addr:port`.
//!
//! Every client SYN starts an attempt. Once its grace time has passed (`--syn-grace`, 3 s) the
//! attempt is judged: completed (the client acknowledged), refused (the server reset it), or
//! failed. A failed attempt whose SYN was never retransmitted is *suspect*: real clients
//! retransmit an unanswered SYN after 1 s (Linux, macOS) or 3 s (Windows) and answer a SYN-ACK
//! with an ACK, or with a RST when they did not send the SYN (spoofed address of a live host).
//! Suspect attempts are counted per port over a sliding window of SYN time (`--syn-window`,
//! 1 s); when the window holds `--syn-flood-threshold` of them an episode is confirmed and the
//! finding fires. The episode grows while suspects keep coming and ends 10 s after the last.
//!
//! Measured per episode: SYN and failure rates (peak over the window), the half-open
//! population (SYN-ACKed, neither acknowledged nor reset, younger than `--half-open-timeout`)
//! and its peak, completion ratio, distinct sources (linear-counting bitmap), top sources
//! (space-saving), SYN-ACK resends by the server's timer and their backoff, RSTs from the
//! server and from sources, legitimate clients that retried and failed, and uniformity of TTL,
//! window and options among suspect SYNs (spoofing tools send identical SYNs).

use super::sketch::{Distinct, TopK, Window};
use super::{DetectConfig, Figures, Finding, FindingKind, MAX_KEYS, Track, round2};
use crate::capture::Timestamp;
use crate::report::ndjson::Rfc3339;
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Seconds of per-second half-open maxima kept to seed a new episode's peak.
const HO_SECS: usize = 8;

/// One server port.
#[derive(Debug)]
struct Service {
    /// Attempts by SYN time (judged ones: the clock is the judged SYN's time).
    syns: Window,
    suspects: Window,
    /// The current or last episode slot.
    slot: Option<usize>,
    half_open_now: u32,
    /// Half-open connections whose SYN-ACK the server resent: it holds state for them.
    stateful_now: u32,
    /// Per-second maxima of the half-open population: (second, max, max with state).
    ho_max: [(i64, u32, u32); HO_SECS],
}

impl Service {
    /// Raises this second's maxima of the half-open populations to their current sizes.
    fn note_second(&mut self, now: Timestamp) {
        let sec = now.secs();
        let e = &mut self.ho_max[sec.rem_euclid(HO_SECS as i64) as usize];
        if e.0 != sec {
            *e = (sec, 0, 0);
        }
        e.1 = e.1.max(self.half_open_now);
        e.2 = e.2.max(self.stateful_now);
    }
}

/// The service's episode slot, while `now` is still within it (its hold and grace time).
fn open_slot<'a>(
    slots: &'a mut [Slot],
    slot: Option<usize>,
    now: Timestamp,
    cfg: &DetectConfig,
) -> Option<&'a mut Slot> {
    let s = slots.get_mut(slot?)?;
    (now.0 <= s.last.0.saturating_add(cfg.hold_ns + cfg.grace_ns)).then_some(s)
}

/// An episode, confirmed or still a candidate.
#[derive(Debug)]
struct Slot {
    service: SocketAddr,
    serial: u32,
    confirmed: bool,
    first: Timestamp,
    last: Timestamp,
    detected_at: Timestamp,
    attempts: u32,
    completed: u32,
    suspects: u32,
    legit_failed: u32,
    legit_retried: u32,
    answered: u32,
    half_open: u32,
    unanswered: u32,
    src_rst: u32,
    victim_rst: u32,
    /// Suspects that got a SYN-ACK and never answered it (no ACK, no RST).
    silent: u32,
    synack_retx: u32,
    backoff: [u32; 8],
    peak_syn_rate: f64,
    peak_suspect_rate: f64,
    peak_half_open: u32,
    peak_half_open_ts: Timestamp,
    peak_stateful: u32,
    provisional: u32,
    /// Suspects answered by a SYN-ACK the server never resent.
    never_resent: u32,
    sources: Distinct,
    top: TopK<IpAddr, 8>,
    ttl: TopK<u8, 4>,
    window: TopK<u16, 4>,
    opts: TopK<u32, 4>,
}

impl Slot {
    fn new(service: SocketAddr, serial: u32, t: Timestamp) -> Self {
        Slot {
            service,
            serial,
            confirmed: false,
            first: t,
            last: t,
            detected_at: t,
            attempts: 0,
            completed: 0,
            suspects: 0,
            legit_failed: 0,
            legit_retried: 0,
            answered: 0,
            half_open: 0,
            unanswered: 0,
            src_rst: 0,
            victim_rst: 0,
            silent: 0,
            synack_retx: 0,
            backoff: [0; 8],
            peak_syn_rate: 0.0,
            peak_suspect_rate: 0.0,
            peak_half_open: 0,
            peak_half_open_ts: t,
            peak_stateful: 0,
            provisional: 0,
            never_resent: 0,
            sources: Distinct::default(),
            top: TopK::default(),
            ttl: TopK::default(),
            window: TopK::default(),
            opts: TopK::default(),
        }
    }

    fn add_backoff(&mut self, bits: u8) {
        for (i, n) in self.backoff.iter_mut().enumerate() {
            if bits & (1 << i) != 0 {
                *n += 1;
            }
        }
    }
}

/// One source and its suspect SYNs.
#[derive(Clone, Debug, Serialize)]
pub struct TopSource {
    /// Source address.
    pub addr: IpAddr,
    /// Suspect SYNs from it (an upper bound once more than 8 sources were seen).
    pub syns: u32,
}

/// What the syn_flood detector measured over one episode.
#[derive(Clone, Debug, Serialize)]
pub struct FloodFigures {
    /// When the episode was confirmed (capture time).
    pub detected_at: Rfc3339,
    /// Highest SYN rate (all new SYNs to the port) over the sliding window, per second.
    pub peak_syn_rate: f64,
    /// Highest rate of suspect SYNs over the window, per second.
    pub peak_failed_rate: f64,
    /// Largest half-open population (SYN-ACKed, not yet acknowledged, reset or timed out).
    pub peak_half_open: u32,
    /// When it was reached.
    pub peak_half_open_time: Rfc3339,
    /// Largest population of half-open connections whose SYN-ACK the server resent (it holds
    /// state for them: its SYN queue, as `ss state syn-recv` counts it).
    pub peak_half_open_stateful: u32,
    /// Suspect SYNs answered by a SYN-ACK that was never resent (stateless: SYN cookies).
    pub synacks_never_resent: u32,
    /// Suspect SYNs judged at the end of the capture before their grace time was over.
    pub judged_at_end: u32,
    /// Handshakes attempted during the episode.
    pub attempts: u32,
    /// Of those, completed.
    pub completed: u32,
    /// completed / attempts.
    pub completion_ratio: f64,
    /// Failed and never retransmitted SYNs.
    pub suspect_syns: u32,
    /// Distinct suspect source addresses (estimate).
    pub distinct_sources: u64,
    /// The heaviest suspect sources.
    pub top_sources: Vec<TopSource>,
    /// Attempts the server answered with a SYN-ACK.
    pub synacks: u32,
    /// Attempts left half-open (SYN-ACKed, never acknowledged nor reset).
    pub half_open: u32,
    /// Attempts never answered in the capture.
    pub unanswered: u32,
    /// SYN-ACK resends by the server's timer.
    pub synack_retransmissions: u32,
    /// Resend intervals seen, in seconds (1, 2, 4 … is Linux's backoff).
    pub synack_backoff_s: Vec<u32>,
    /// Attempts the server reset.
    pub victim_rsts: u32,
    /// Attempts whose source answered the SYN-ACK with a RST.
    pub source_rsts: u32,
    /// Suspects that got a SYN-ACK and never answered it.
    pub silent_sources: u32,
    /// Clients that retransmitted their SYN and still failed.
    pub legit_failed: u32,
    /// Clients that needed SYN retransmissions to get through.
    pub legit_retried: u32,
    /// Share of suspect SYNs carrying the most common TTL, window and option set.
    pub ttl_top_share: f64,
    /// See `ttl_top_share`.
    pub window_top_share: f64,
    /// See `ttl_top_share`.
    pub options_top_share: f64,
    /// The most common TTL of suspect SYNs.
    pub ttl_top: Option<u8>,
    /// No SYN-ACK and no server RST seen: only the client-to-server direction was captured
    /// (or the server answered nothing).
    pub one_way: bool,
}

/// The detector.
#[derive(Debug)]
pub struct SynFlood {
    cfg: DetectConfig,
    services: HashMap<SocketAddr, Service, foldhash::fast::RandomState>,
    slots: Vec<Slot>,
    fired: Vec<usize>,
    untracked: u64,
}

impl SynFlood {
    /// An empty detector.
    pub fn new(cfg: DetectConfig) -> Self {
        SynFlood {
            cfg,
            services: HashMap::default(),
            slots: Vec::new(),
            fired: Vec::new(),
            untracked: 0,
        }
    }

    /// The state of port `s` (None when too many ports are tracked).
    fn service<'a>(
        services: &'a mut HashMap<SocketAddr, Service, foldhash::fast::RandomState>,
        untracked: &mut u64,
        window_ns: i64,
        s: SocketAddr,
    ) -> Option<&'a mut Service> {
        if !services.contains_key(&s) && services.len() >= MAX_KEYS {
            *untracked += 1;
            return None;
        }
        Some(services.entry(s).or_insert_with(|| Service {
            syns: Window::new(window_ns),
            suspects: Window::new(window_ns),
            slot: None,
            half_open_now: 0,
            stateful_now: 0,
            ho_max: [(i64::MIN, 0, 0); HO_SECS],
        }))
    }

    /// A SYN-ACK made `t` half-open.
    pub(crate) fn half_open_begin(&mut self, t: &mut Track, now: Timestamp) {
        if t.half_open {
            return;
        }
        let Some(svc) = Self::service(
            &mut self.services,
            &mut self.untracked,
            self.cfg.window_ns,
            t.server,
        ) else {
            return;
        };
        t.half_open = true;
        svc.half_open_now += 1;
        svc.note_second(now);
        let n = svc.half_open_now;
        if let Some(slot) = open_slot(&mut self.slots, svc.slot, now, &self.cfg)
            && n > slot.peak_half_open
        {
            slot.peak_half_open = n;
            slot.peak_half_open_ts = now;
        }
    }

    /// The server resent the SYN-ACK of half-open `t` on its timer: it keeps state for it.
    pub(crate) fn stateful(&mut self, t: &mut Track, now: Timestamp) {
        if !t.half_open || t.stateful {
            return;
        }
        let Some(svc) = self.services.get_mut(&t.server) else {
            return;
        };
        t.stateful = true;
        svc.stateful_now += 1;
        svc.note_second(now);
        if let Some(slot) = open_slot(&mut self.slots, svc.slot, now, &self.cfg) {
            slot.peak_stateful = slot.peak_stateful.max(svc.stateful_now);
        }
    }

    /// `t` left the half-open population (acknowledged, reset, timed out or ended).
    pub(crate) fn half_open_end(&mut self, t: &mut Track, _now: Timestamp) {
        if !t.half_open {
            return;
        }
        t.half_open = false;
        if let Some(svc) = self.services.get_mut(&t.server) {
            svc.half_open_now = svc.half_open_now.saturating_sub(1);
            if t.stateful {
                svc.stateful_now = svc.stateful_now.saturating_sub(1);
            }
        }
        t.stateful = false;
    }

    /// Judges an attempt (grace time over, or the connection ended first). `early`: judge it
    /// even within its grace time (end of capture on a port where nothing completes).
    pub(crate) fn resolve(&mut self, t: &mut Track, now: Timestamp, early: bool) {
        t.resolved = true;
        let ts = t.syn_ts;
        let in_grace = now.0 < ts.0.saturating_add(self.cfg.grace_ns);
        let failed = !t.completed && !t.srv_rst;
        // An attempt cut short by the end of the connection or capture is not a failure.
        if failed && in_grace && !early {
            return;
        }
        let suspect = failed && t.syn_retx == 0;
        let (hold, thr) = (self.cfg.hold_ns, self.cfg.syn_flood_threshold.max(1));
        let Some(svc) = Self::service(
            &mut self.services,
            &mut self.untracked,
            self.cfg.window_ns,
            t.server,
        ) else {
            return;
        };
        svc.syns.add(ts.0, 1);
        if suspect {
            svc.suspects.add(ts.0, 1);
        }
        let syn_rate = f64::from(svc.syns.sum(ts.0)) / svc.syns.secs();
        let n_suspect = svc.suspects.sum(ts.0);
        let suspect_rate = f64::from(n_suspect) / svc.suspects.secs();
        let active = svc
            .slot
            .and_then(|i| self.slots.get(i))
            .is_some_and(|s| s.suspects > 0 && ts.0 <= s.last.0.saturating_add(hold));
        if suspect && !active {
            let recent = |e: &&(i64, u32, u32)| now.secs().saturating_sub(e.0) < HO_SECS as i64;
            let seed = svc
                .ho_max
                .iter()
                .filter(recent)
                .max_by_key(|e| e.1)
                .copied();
            let seed_stateful = svc.ho_max.iter().filter(recent).map(|e| e.2).max();
            let idx = match svc.slot {
                Some(i) if !self.slots[i].confirmed => {
                    let serial = self.slots[i].serial.wrapping_add(1);
                    self.slots[i] = Slot::new(t.server, serial, ts);
                    i
                }
                _ => {
                    self.slots.push(Slot::new(t.server, 0, ts));
                    self.slots.len() - 1
                }
            };
            svc.slot = Some(idx);
            let s = &mut self.slots[idx];
            if let Some((sec, n, _)) = seed {
                s.peak_half_open = n;
                s.peak_half_open_ts = Timestamp::from_parts(sec, 0);
            }
            s.peak_stateful = seed_stateful.unwrap_or(0);
        }
        let Some(idx) = svc.slot else { return };
        let slot = &mut self.slots[idx];
        if ts.0 > slot.last.0.saturating_add(hold) || ts < slot.first {
            return;
        }
        t.episode = Some((idx as u32, slot.serial));
        t.counted_retx = t.synack_timer_retx;
        t.counted_backoff = t.backoff;
        t.counted_src_rst = t.src_rst;
        t.counted_srv_rst = t.srv_rst;
        slot.attempts += 1;
        slot.peak_syn_rate = slot.peak_syn_rate.max(syn_rate);
        if t.completed {
            slot.completed += 1;
            if t.syn_retx > 0 {
                slot.legit_retried += 1;
            }
        } else if failed && t.syn_retx > 0 {
            slot.legit_failed += 1;
        }
        let answered = t.synack.is_some();
        if answered {
            slot.answered += 1;
        }
        if failed && !answered {
            slot.unanswered += 1;
        }
        if answered && failed && !t.src_rst {
            slot.half_open += 1;
        }
        slot.src_rst += u32::from(t.src_rst);
        slot.victim_rst += u32::from(t.srv_rst);
        slot.synack_retx += u32::from(t.synack_timer_retx);
        slot.add_backoff(t.backoff);
        if suspect {
            slot.suspects += 1;
            slot.provisional += u32::from(in_grace);
            slot.never_resent += u32::from(answered && t.synack_timer_retx == 0);
            slot.last = slot.last.max(ts);
            slot.peak_suspect_rate = slot.peak_suspect_rate.max(suspect_rate);
            let ip = t.client.ip();
            slot.sources.add(&ip);
            slot.top.add(ip);
            slot.ttl.add(t.syn_ttl);
            slot.window.add(t.syn_window);
            slot.opts.add(t.syn.signature());
            if answered && !t.src_rst {
                slot.silent += 1;
            }
        }
        if !slot.confirmed && n_suspect >= thr {
            slot.confirmed = true;
            slot.detected_at = now;
            self.fired.push(idx);
        }
    }

    /// Adds what happened to an attempt after it was judged (late SYN-ACK resends, RSTs).
    pub(crate) fn conn_end(&mut self, t: &Track) {
        let Some((idx, serial)) = t.episode else {
            return;
        };
        let Some(slot) = self.slots.get_mut(idx as usize) else {
            return;
        };
        if slot.serial != serial {
            return;
        }
        slot.synack_retx += u32::from(t.synack_timer_retx.saturating_sub(t.counted_retx));
        slot.add_backoff(t.backoff & !t.counted_backoff);
        if t.src_rst && !t.counted_src_rst {
            slot.src_rst += 1;
            if t.synack.is_some() && slot.half_open > 0 && !t.completed {
                slot.half_open -= 1;
            }
        }
        if t.srv_rst && !t.counted_srv_rst {
            slot.victim_rst += 1;
        }
    }

    /// True when a confirmed episode on `server` covers `ts` (within one window).
    pub(crate) fn flood_covers(&self, server: SocketAddr, ts: Timestamp) -> bool {
        let w = self.cfg.window_ns;
        self.slots.iter().any(|s| {
            s.confirmed
                && s.service == server
                && ts.0 >= s.first.0.saturating_sub(w)
                && ts.0 <= s.last.0.saturating_add(w)
        })
    }

    pub(crate) fn take_fired(&mut self, out: &mut Vec<Finding>) {
        for i in std::mem::take(&mut self.fired) {
            if let Some(s) = self.slots.get(i) {
                out.push(self.finding(s));
            }
        }
    }

    pub(crate) fn findings(&self, out: &mut Vec<Finding>) {
        out.extend(
            self.slots
                .iter()
                .filter(|s| s.confirmed)
                .map(|s| self.finding(s)),
        );
    }

    fn finding(&self, s: &Slot) -> Finding {
        let completion = if s.attempts > 0 {
            f64::from(s.completed) / f64::from(s.attempts)
        } else {
            0.0
        };
        let one_way = s.answered == 0 && s.victim_rst == 0;
        let sources = s.sources.estimate().min(u64::from(s.suspects));
        let backoff: Vec<u32> = (0..7)
            .filter(|i| s.backoff[*i] > 0)
            .map(|i| 1u32 << i)
            .collect();
        let thr = f64::from(self.cfg.syn_flood_threshold.max(1));
        let ratio = f64::from(s.suspects) / thr;
        let mut conf = 0.5 + 0.3 * (ratio.max(1.0).log10() / 2.0).min(1.0);
        let spoof_sources = sources as f64 >= 0.5 * f64::from(s.suspects);
        let uniform = s.ttl.top_share() >= 0.9 && s.opts.top_share() >= 0.9;
        if s.half_open > 0 {
            conf += 0.1;
        }
        if s.synack_retx > 0 {
            conf += 0.05;
        }
        if spoof_sources || uniform {
            conf += 0.05;
        }
        if completion < 0.5 {
            conf += 0.05;
        }
        if one_way {
            conf = conf.min(0.75);
        }
        if 2 * s.provisional > s.suspects {
            conf = conf.min(0.7);
        }
        let conf = conf.min(0.99);
        let mut ev = Vec::new();
        ev.push(format!(
            "{} SYNs from {} sources failed without a SYN retransmission (peak {:.0}/s over {} s); {} of {} handshakes completed ({:.0}%)",
            s.suspects,
            sources,
            s.peak_suspect_rate,
            self.cfg.window_ns as f64 / 1e9,
            s.completed,
            s.attempts,
            completion * 100.0
        ));
        ev.push(format!(
            "peak SYN rate {:.0}/s; peak half-open {}",
            s.peak_syn_rate, s.peak_half_open
        ));
        if one_way {
            ev.push(
                "no SYN-ACK or RST from the server seen: one direction captured (or nothing answered); \
                 the half-open count and the server's behaviour cannot be measured"
                    .to_string(),
            );
        } else {
            let mut line = format!(
                "server answered {} SYNs, {} left half-open, {} SYN-ACK resends",
                s.answered, s.half_open, s.synack_retx
            );
            if !backoff.is_empty() {
                let b: Vec<String> = backoff.iter().map(|x| format!("{x} s")).collect();
                line.push_str(&format!(" (backoff {})", b.join(", ")));
            }
            if s.victim_rst > 0 {
                line.push_str(&format!(", {} RSTs from the server", s.victim_rst));
            }
            ev.push(line);
        }
        if s.never_resent > 0 {
            ev.push(format!(
                "{} SYN-ACKs to suspect sources were never resent: the server answered them without state (SYN cookies); {} half-open with state at most",
                s.never_resent, s.peak_stateful
            ));
        }
        if s.provisional > 0 {
            ev.push(format!(
                "{} SYNs judged at the end of the capture, less than {} s after they were sent, because no handshake on the port completed then",
                s.provisional,
                self.cfg.grace_ns as f64 / 1e9
            ));
        }
        if s.silent > 0 {
            ev.push(format!(
                "{} sources never answered their SYN-ACK (spoofed or dropped)",
                s.silent
            ));
        }
        if s.src_rst > 0 {
            ev.push(format!(
                "{} sources sent a RST after their SYN (live hosts answering a SYN-ACK they did not ask for: spoofed addresses)",
                s.src_rst
            ));
        }
        if uniform || spoof_sources {
            ev.push(format!(
                "suspect SYNs alike: TTL {} on {:.0}%, window on {:.0}%, options on {:.0}%; {} distinct sources for {} SYNs",
                s.ttl.sorted().first().map_or(0, |x| x.0),
                s.ttl.top_share() * 100.0,
                s.window.top_share() * 100.0,
                s.opts.top_share() * 100.0,
                sources,
                s.suspects
            ));
        }
        if s.legit_failed > 0 || s.legit_retried > 0 {
            ev.push(format!(
                "legitimate clients: {} retried their SYN and failed, {} needed retries",
                s.legit_failed, s.legit_retried
            ));
        }
        let figures = FloodFigures {
            detected_at: Rfc3339(s.detected_at),
            peak_syn_rate: round2(s.peak_syn_rate),
            peak_failed_rate: round2(s.peak_suspect_rate),
            peak_half_open: s.peak_half_open,
            peak_half_open_time: Rfc3339(s.peak_half_open_ts),
            peak_half_open_stateful: s.peak_stateful,
            synacks_never_resent: s.never_resent,
            judged_at_end: s.provisional,
            attempts: s.attempts,
            completed: s.completed,
            completion_ratio: round2(completion),
            suspect_syns: s.suspects,
            distinct_sources: sources,
            top_sources: s
                .top
                .sorted()
                .into_iter()
                .map(|(addr, syns)| TopSource { addr, syns })
                .collect(),
            synacks: s.answered,
            half_open: s.half_open,
            unanswered: s.unanswered,
            synack_retransmissions: s.synack_retx,
            synack_backoff_s: backoff,
            victim_rsts: s.victim_rst,
            source_rsts: s.src_rst,
            silent_sources: s.silent,
            legit_failed: s.legit_failed,
            legit_retried: s.legit_retried,
            ttl_top_share: round2(s.ttl.top_share()),
            window_top_share: round2(s.window.top_share()),
            options_top_share: round2(s.opts.top_share()),
            ttl_top: s.ttl.sorted().first().map(|x| x.0),
            one_way,
        };
        Finding {
            kind: FindingKind::SynFlood,
            subject: s.service.to_string(),
            first_time: s.first,
            last_time: s.last,
            confidence: conf,
            evidence: ev,
            figures: Figures::SynFlood(Box::new(figures)),
        }
    }
}

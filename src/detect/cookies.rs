//! SYN-cookie replies: a verdict per connection, a finding per server port.
//!
//! A server in SYN-cookie mode keeps no state for the SYN: it encodes what it must remember
//! (MSS class, and with timestamps the client's window scale, SACK and ECN) in its ISN and
//! TSval. That leaves traces a capture can see (Linux net/ipv4/syncookies.c):
//! - the cookie SYN-ACK is never resent by the server's timer, even when no final ACK comes;
//! - without client timestamps the cookie SYN-ACK carries only MSS, although the client
//!   offered SACK and window scaling (which the same server offers in other handshakes);
//! - the server's segments are sized by the cookie MSS table (IPv4 536, 1300, 1440, 1460;
//!   IPv6 1220, 1420, 1440, 8940): the largest entry not above the client's MSS;
//! - where the server's TSval has no per-connection random offset (Linux tcp_timestamps=2,
//!   older kernels: detected as one clock across connections), its low 6 bits encode the
//!   client's window scale (4 bits, 0xf = none), SACK and ECN;
//! - cookies follow a SYN flood on the port (Linux syncookies=1 sends them on queue overflow).
//!
//! The signals are combined as log-likelihood ratios from a prior of about 12 %; the verdict is
//! "cookie" at a posterior of at least 0.5, and its confidence is the posterior of the verdict.

use super::{DetectConfig, Figures, Finding, FindingKind, MAX_KEYS, Track, round2};
use crate::analysis::ServerPayload;
use crate::capture::Timestamp;
use crate::decode::Segment;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

/// The signals behind a verdict, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieSignals(pub u16);

impl CookieSignals {
    /// The server resent the SYN-ACK on its own timer (against: it kept state).
    pub const SYNACK_RESENT: u16 = 1;
    /// No final ACK for over 1 s, and the server never resent its SYN-ACK.
    pub const NO_RESEND: u16 = 2;
    /// Client offered SACK / window scaling without timestamps; the SYN-ACK has only MSS.
    pub const OPTIONS_DROPPED: u16 = 4;
    /// Client offered SACK / window scaling without timestamps; the SYN-ACK kept them
    /// (against).
    pub const OPTIONS_KEPT: u16 = 8;
    /// The server's segments stop exactly at the cookie MSS table entry below the client's MSS.
    pub const MSS_AT_TABLE: u16 = 16;
    /// The server sent segments larger than the cookie MSS allows (against).
    pub const MSS_ABOVE_TABLE: u16 = 32;
    /// The SYN-ACK TSval's low 6 bits encode the client's options on a shared TS clock.
    pub const TSVAL_ENCODES: u16 = 64;
    /// The TSval's low 6 bits do not encode them on a shared TS clock (against).
    pub const TSVAL_PLAIN: u16 = 128;
    /// A SYN flood was under way on the port.
    pub const FLOOD: u16 = 256;

    const NAMES: [(u16, &'static str); 9] = [
        (Self::SYNACK_RESENT, "synack_resent"),
        (Self::NO_RESEND, "no_synack_resend"),
        (Self::OPTIONS_DROPPED, "options_dropped"),
        (Self::OPTIONS_KEPT, "options_kept"),
        (Self::MSS_AT_TABLE, "mss_at_cookie_table"),
        (Self::MSS_ABOVE_TABLE, "mss_above_cookie_table"),
        (Self::TSVAL_ENCODES, "tsval_encodes_options"),
        (Self::TSVAL_PLAIN, "tsval_plain"),
        (Self::FLOOD, "syn_flood_on_port"),
    ];

    /// True when the bit is set.
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// The names of the bits set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .filter(move |(b, _)| self.has(*b))
            .map(|(_, n)| *n)
    }
}

impl Serialize for CookieSignals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// One connection's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CookieVerdict {
    /// The SYN-ACK came from a SYN cookie.
    pub cookie: bool,
    /// The probability of the verdict given the signals.
    pub confidence: f64,
    /// The signals seen.
    pub signals: CookieSignals,
}

/// Linux's cookie MSS tables.
const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// The cookie MSS for a client MSS: the largest table entry not above it (the smallest entry
/// when all are above).
pub fn cookie_mss(v6: bool, client_mss: u16) -> u16 {
    let t = if v6 { &MSS_V6 } else { &MSS_V4 };
    t.iter()
        .rev()
        .copied()
        .find(|m| *m <= client_mss)
        .unwrap_or(t[0])
}

/// What the server's TSval low 6 bits hold in a Linux cookie for these negotiated options.
pub fn cookie_ts_bits(syn: (Option<u8>, bool), synack_has_ws: bool, sack: bool, ecn: bool) -> u32 {
    let ws = match (syn.0, synack_has_ws) {
        (Some(w), true) => u32::from(w & 0xf),
        _ => 0xf,
    };
    ws | u32::from(sack && syn.1) << 4 | u32::from(ecn) << 5
}

/// One server host's TCP timestamp clock, to tell whether TSvals share one clock across
/// connections (no per-connection offset).
#[derive(Clone, Copy, Debug, Default)]
struct TsClock {
    ref_ns: i64,
    ref_val: u32,
    set: bool,
    consistent: u32,
    inconsistent: u32,
}

impl TsClock {
    fn observe(&mut self, ts: Timestamp, val: u32) {
        if !self.set {
            *self = TsClock {
                ref_ns: ts.0,
                ref_val: val,
                set: true,
                ..*self
            };
            return;
        }
        // Linux's TS clock ticks in milliseconds; a cookie TSval is rounded down by < 64.
        // Saturating: capture times can be anything (hostile or broken clocks).
        let ms = ts.0.saturating_sub(self.ref_ns) / 1_000_000;
        let predicted = self.ref_val.wrapping_add(ms as u32);
        let diff = val.wrapping_sub(predicted) as i32;
        let tol = 200 + (ms.unsigned_abs() / 50) as i64;
        if i64::from(diff).abs() <= tol {
            self.consistent += 1;
        } else {
            self.inconsistent += 1;
        }
    }

    fn shared(&self) -> bool {
        self.consistent >= 2 && self.consistent >= 4 * self.inconsistent
    }
}

#[derive(Debug, Default)]
struct Port {
    synacks: u32,
    /// SYN-ACKs with SACK or window scaling: the server has them enabled.
    offers_ext: u32,
    judged: u32,
    cookies: u32,
    conf_sum: f64,
    signals: [u32; 9],
    first: Option<Timestamp>,
    last: Timestamp,
    fired: bool,
}

/// What the syn_cookies detector measured for one server port.
#[derive(Clone, Debug, Serialize)]
pub struct CookieFigures {
    /// Connections with a SYN and a SYN-ACK that were judged.
    pub judged: u32,
    /// Of those, judged cookie replies.
    pub cookie_connections: u32,
    /// Mean confidence of the cookie verdicts.
    pub mean_confidence: f64,
    /// How many cookie verdicts each signal took part in (by name: a stable JSON order).
    pub signals: BTreeMap<&'static str, u32>,
    /// The server's TSvals run on one clock across connections (the TSval test applies).
    pub shared_ts_clock: bool,
}

/// The detector.
#[derive(Debug)]
pub struct SynCookies {
    cfg: DetectConfig,
    ports: HashMap<SocketAddr, Port, foldhash::fast::RandomState>,
    clocks: HashMap<IpAddr, TsClock, foldhash::fast::RandomState>,
    fired: Vec<SocketAddr>,
}

impl SynCookies {
    /// An empty detector.
    pub fn new(cfg: DetectConfig) -> Self {
        SynCookies {
            cfg,
            ports: HashMap::default(),
            clocks: HashMap::default(),
            fired: Vec::new(),
        }
    }

    /// The server's first SYN-ACK of a tracked connection.
    pub(crate) fn on_synack(&mut self, t: &Track, seg: &Segment) {
        if self.ports.len() < MAX_KEYS || self.ports.contains_key(&t.server) {
            let p = self.ports.entry(t.server).or_default();
            p.synacks += 1;
            if seg.options.sack_permitted || seg.options.wscale.is_some() {
                p.offers_ext += 1;
            }
        }
        if let Some((val, _)) = seg.options.timestamps
            && (self.clocks.len() < MAX_KEYS || self.clocks.contains_key(&seg.src))
        {
            self.clocks.entry(seg.src).or_default().observe(seg.ts, val);
        }
    }

    /// Judges a connection when it ends; None without both SYN and SYN-ACK.
    pub(crate) fn verdict(
        &mut self,
        t: &Track,
        srv: &ServerPayload,
        in_flood: bool,
        now: Timestamp,
    ) -> Option<CookieVerdict> {
        let sa = t.synack?;
        let mut sig = 0u16;
        let mut llr: f64 = -2.0;
        if t.synack_timer_retx > 0 {
            sig |= CookieSignals::SYNACK_RESENT;
            llr -= 6.0;
        } else {
            let waited = if t.completed {
                t.completed_ts.0.saturating_sub(t.synack_ts.0)
            } else {
                now.0.saturating_sub(t.synack_ts.0)
            };
            if waited >= 3_500_000_000 {
                sig |= CookieSignals::NO_RESEND;
                llr += 3.0;
            } else if waited >= 1_200_000_000 {
                sig |= CookieSignals::NO_RESEND;
                llr += 1.5;
            }
        }
        let port = self.ports.get(&t.server);
        let syn = t.syn;
        if syn.tsval.is_none() && (syn.sack || syn.wscale.is_some()) {
            if sa.sack || sa.wscale.is_some() {
                sig |= CookieSignals::OPTIONS_KEPT;
                llr -= 4.0;
            } else if sa.tsval.is_none() {
                sig |= CookieSignals::OPTIONS_DROPPED;
                llr += if port.is_some_and(|p| p.offers_ext > 0) {
                    4.0
                } else {
                    1.0
                };
            }
        }
        let v6 = t.server.is_ipv6();
        let cmss = syn.mss.unwrap_or(if v6 { 1220 } else { 536 });
        let table = cookie_mss(v6, cmss);
        let ts_both = syn.tsval.is_some() && sa.tsval.is_some();
        let overhead = if ts_both { 12 } else { 0 };
        let own = sa.mss.unwrap_or(u16::MAX);
        if srv.max > 0 {
            let limit = u32::from(table).saturating_sub(overhead);
            if srv.max > limit {
                sig |= CookieSignals::MSS_ABOVE_TABLE;
                llr -= 5.0;
            } else if table < cmss.min(own) && srv.max == limit && srv.at_max >= 2 {
                sig |= CookieSignals::MSS_AT_TABLE;
                llr += 3.0;
            }
        }
        if let Some(val) = sa.tsval
            && syn.tsval.is_some()
            && self.clocks.get(&t.server.ip()).is_some_and(|c| c.shared())
        {
            let want = cookie_ts_bits((syn.wscale, syn.sack), sa.wscale.is_some(), sa.sack, sa.ecn);
            // The ECN bit depends on the server's tcp_ecn setting: compare the other five.
            if val & 0x1f == want & 0x1f {
                sig |= CookieSignals::TSVAL_ENCODES;
                llr += 3.0;
            } else {
                sig |= CookieSignals::TSVAL_PLAIN;
                llr -= 4.0;
            }
        }
        if in_flood {
            sig |= CookieSignals::FLOOD;
            llr += 1.5;
        }
        let p = 1.0 / (1.0 + (-llr).exp());
        let v = CookieVerdict {
            cookie: p >= 0.5,
            confidence: round2(if p >= 0.5 { p } else { 1.0 - p }),
            signals: CookieSignals(sig),
        };
        if let Some(port) = self.ports.get_mut(&t.server) {
            port.judged += 1;
            if v.cookie {
                port.cookies += 1;
                port.conf_sum += v.confidence;
                for (i, (b, _)) in CookieSignals::NAMES.iter().enumerate() {
                    if sig & b != 0 {
                        port.signals[i] += 1;
                    }
                }
                port.first = Some(port.first.map_or(t.synack_ts, |f| f.min(t.synack_ts)));
                port.last = port.last.max(t.synack_ts);
                if !port.fired && port.cookies >= self.cfg.cookie_min.max(1) {
                    port.fired = true;
                    self.fired.push(t.server);
                }
            }
        }
        Some(v)
    }

    pub(crate) fn take_fired(&mut self, out: &mut Vec<Finding>) {
        for s in std::mem::take(&mut self.fired) {
            if let Some(p) = self.ports.get(&s) {
                out.push(self.finding(s, p));
            }
        }
    }

    pub(crate) fn findings(&self, out: &mut Vec<Finding>) {
        let mut v: Vec<(&SocketAddr, &Port)> = self.ports.iter().filter(|(_, p)| p.fired).collect();
        v.sort_by_key(|(s, _)| **s);
        out.extend(v.into_iter().map(|(s, p)| self.finding(*s, p)));
    }

    fn finding(&self, s: SocketAddr, p: &Port) -> Finding {
        let n = p.cookies.max(1);
        let mean = p.conf_sum / f64::from(n);
        let conf = mean * (1.0 - 0.5f64.powi(n as i32));
        let shared = self.clocks.get(&s.ip()).is_some_and(|c| c.shared());
        let signals: BTreeMap<&'static str, u32> = CookieSignals::NAMES
            .iter()
            .zip(p.signals)
            .filter(|(_, c)| *c > 0)
            .map(|((_, name), c)| (*name, c))
            .collect();
        let mut names: Vec<(&&str, &u32)> = signals.iter().collect();
        names.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = names.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let ev = vec![
            format!(
                "{} of {} judged handshakes look like SYN-cookie replies (mean confidence {:.2})",
                p.cookies, p.judged, mean
            ),
            format!("signals: {}", list.join(", ")),
            if shared {
                "server TSvals share one clock: the TSval option bits were checked".to_string()
            } else {
                "server TSvals have per-connection offsets or too few samples: TSval bits not checked"
                    .to_string()
            },
        ];
        Finding {
            kind: FindingKind::SynCookies,
            subject: s.to_string(),
            first_time: p.first.unwrap_or(p.last),
            last_time: p.last,
            confidence: conf,
            evidence: ev,
            figures: Figures::SynCookies(Box::new(CookieFigures {
                judged: p.judged,
                cookie_connections: p.cookies,
                mean_confidence: round2(mean),
                signals,
                shared_ts_clock: shared,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_mss_table() {
        assert_eq!(cookie_mss(false, 1460), 1460);
        assert_eq!(cookie_mss(false, 1400), 1300);
        assert_eq!(cookie_mss(false, 65495), 1460);
        assert_eq!(cookie_mss(false, 500), 536);
        assert_eq!(cookie_mss(true, 1440), 1440);
        assert_eq!(cookie_mss(true, 1400), 1220);
        assert_eq!(cookie_mss(true, 65476), 8940);
    }

    #[test]
    fn ts_bits_follow_linux() {
        // wscale 7, SACK, no ECN: 0b01_0111.
        assert_eq!(cookie_ts_bits((Some(7), true), true, true, false), 0x17);
        // No window scaling: 0xf.
        assert_eq!(cookie_ts_bits((None, false), false, false, false), 0xf);
        assert_eq!(cookie_ts_bits((Some(7), true), false, true, true), 0x3f);
    }

    #[test]
    fn shared_clock_is_recognised() {
        let mut c = TsClock::default();
        for i in 0..5i64 {
            c.observe(Timestamp(i * 1_000_000_000), 1000 + (i as u32) * 1000);
        }
        assert!(c.shared());
        let mut r = TsClock::default();
        for i in 0..5i64 {
            r.observe(
                Timestamp(i * 1_000_000_000),
                (i as u32).wrapping_mul(0x9e37_79b9),
            );
        }
        assert!(!r.shared());
    }
}

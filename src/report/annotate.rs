//! The annotation line printed after each tcpdump line, and `--explain`'s arithmetic line.
//!
//! ```text
//!     ↳ handshake 2/3: server SYN_RECEIVED (client SYN_SENT) · SYN→SYN-ACK 0.412 ms
//!       = ack 1001 = client ISN 1000 + 1: the SYN consumes one sequence number
//! ```
//! Text is formatted into one reused buffer (no allocation per packet once it has grown).
//! Colour (ANSI) only when asked for, i.e. when standard output is a terminal.

use crate::analysis::{
    ALL_KINDS, Kind, LostHint, PacketInfo, RstCheck, Side, TcpState, Transition,
};
use crate::report::tcpdump::{CUR_TEXT, Cur, CurBuf, Sink, dec};
use std::io::{self, Write};

const RESET: &str = "\x1b[0m";
const CYAN: &str = "\x1b[36m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const DIM: &str = "\x1b[2m";

/// Writes annotation lines.
#[derive(Debug)]
pub struct Annotator {
    buf: Vec<u8>,
    /// The line of a packet with no kind and no state change (84% of them), written
    /// through a cursor: no capacity check per piece (the longest is 57 bytes).
    quiet: CurBuf,
    explain: bool,
    color: bool,
}

/// Formats a duration given in nanoseconds for people: `0.412 ms`, `12.3 ms`, `1.00 s`.
///
/// The text is `format!("{:.3} ms", ns as f64 / 1e6)` (or `.1`, `.0` ms, `.2` s by size),
/// written without `fmt`: the annotated mode prints ~60k of these per million packets and
/// float formatting cost more than the rest of the annotation.
#[derive(Clone, Copy)]
pub struct Dur(pub i64);

impl Dur {
    /// Appends the text to `out`.
    pub fn push(self, out: &mut Vec<u8>) {
        let mut buf = [0u8; DUR_MAX];
        out.extend_from_slice(self.text(&mut buf));
    }

    /// The text (ASCII), written into `buf`.
    fn text(self, buf: &mut [u8; DUR_MAX]) -> &[u8] {
        let ns = self.0;
        // unsigned_abs: i64::MIN (a saturated time difference) has no i64 absolute value.
        let abs = ns.unsigned_abs();
        let (v, decimals, unit) = if abs < 1_000_000 {
            (ns as f64 / 1e6, 3, " ms")
        } else if abs < 100_000_000 {
            (ns as f64 / 1e6, 1, " ms")
        } else if abs < 1_000_000_000 {
            (ns as f64 / 1e6, 0, " ms")
        } else {
            (ns as f64 / 1e9, 2, " s")
        };
        let scaled = round_scaled(v, 10u64.pow(decimals));
        let mut len = 0;
        let mut put = |b: &[u8]| {
            if let Some(dst) = buf.get_mut(len..len + b.len()) {
                dst.copy_from_slice(b);
                len += b.len();
            }
        };
        // `fmt` prints the sign of a negative value that rounds to zero too (`-0.000`).
        if ns < 0 {
            put(b"-");
        }
        let unit_div = 10u128.pow(decimals);
        let mut ibuf = itoa::Buffer::new();
        put(ibuf.format(scaled / unit_div).as_bytes());
        if decimals > 0 {
            put(b".");
            let frac = ibuf.format(scaled % unit_div).as_bytes();
            for _ in frac.len()..decimals as usize {
                put(b"0");
            }
            put(frac);
        }
        put(unit.as_bytes());
        buf.get(..len).unwrap_or_default()
    }
}

/// The longest [`Dur`] text: `-9223372036.85 s` is 16 bytes.
const DUR_MAX: usize = 24;

/// `|v| * scale` rounded to the nearest integer, ties to even, computed exactly from the
/// bits of `v` as `fmt`'s `{:.N}` rounds the exact binary value (finite `v`, `|v| < 2^64`).
fn round_scaled(v: f64, scale: u64) -> u128 {
    let bits = v.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, exp) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | 1u64 << 52, exp_bits - 1075)
    };
    let num = u128::from(mant) * u128::from(scale);
    if exp >= 0 {
        // |v| < 2^64 keeps this shift small.
        return num << exp.min(11);
    }
    let shift = exp.unsigned_abs();
    // num < 2^63 * 2^10: below half of 2^shift, it rounds to 0.
    if shift > 120 {
        return 0;
    }
    let q = num >> shift;
    let rest = num - (q << shift);
    let half = 1u128 << (shift - 1);
    if rest > half || (rest == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0; DUR_MAX];
        f.write_str(std::str::from_utf8(self.text(&mut buf)).unwrap_or_default())
    }
}

impl Annotator {
    /// `explain` adds the arithmetic line; `color` adds ANSI colours.
    pub fn new(explain: bool, color: bool) -> Self {
        Annotator {
            buf: Vec::with_capacity(256),
            quiet: [0; CUR_TEXT + 32],
            explain,
            color,
        }
    }

    /// Writes the annotation of one packet (one line, two with `--explain` on handshake, close
    /// and RST packets).
    pub fn write(&mut self, out: &mut dyn Write, info: &PacketInfo) -> io::Result<()> {
        if is_quiet(info) {
            let mut w = Cur::new(&mut self.quiet);
            quiet_line(&mut w, info);
            return out.write_all(w.text());
        }
        self.buf.clear();
        self.compose(info)?;
        out.write_all(&self.buf)
    }

    /// Formats the annotation into the internal buffer and returns it (with its newlines).
    pub fn format(&mut self, info: &PacketInfo) -> &str {
        self.buf.clear();
        let _ = self.compose(info);
        // Only `str` pieces were appended.
        std::str::from_utf8(&self.buf).unwrap_or_default()
    }

    /// Appends text (the hot path avoids `write!`, whose `fmt` machinery costs more than the
    /// rest of the line).
    #[inline]
    fn s(&mut self, text: &str) {
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// Appends an integer in decimal.
    #[inline]
    fn n(&mut self, v: impl Into<u32>) {
        dec(&mut self.buf, v);
    }

    /// Appends `client` or `server`: both six bytes, so a fixed-size copy.
    #[inline]
    fn side(&mut self, side: Side) {
        self.buf.extend_from_slice(match side {
            Side::Client => b"client",
            Side::Server => b"server",
        });
    }

    fn paint(&mut self, color: &'static str) {
        if self.color {
            self.buf.extend_from_slice(color.as_bytes());
        }
    }

    fn compose(&mut self, p: &PacketInfo) -> io::Result<()> {
        let who = p.from.unwrap_or(Side::Client);
        // Most packets have no kind and change no state: only the progress part below, with
        // no colour and no `--explain` line; written without walking the cases.
        if is_quiet(p) {
            self.s("    ↳ ");
            let mut first = true;
            self.progress(p, &mut first);
            self.buf.push(b'\n');
            return Ok(());
        }
        let k = Kinds::of(p);
        let peer = who.peer();
        self.s("    ↳ ");
        let mut headline = true;
        if k.contains(Kind::SplitHandshake) {
            self.paint(CYAN);
            self.s("split handshake 4/4: ");
            self.side(who);
            self.s(" ACKs ");
            self.side(peer);
            self.s("'s SYN-ACK instead of sending its own");
            self.transitions(p);
            self.rtt(" · SYN-ACK→ACK ", p.rtt_ns);
        } else if k.contains(Kind::SimultaneousOpen) {
            self.paint(CYAN);
            match p.open_step {
                Some(2) => {
                    self.s("simultaneous open 2/4: ");
                    self.side(who);
                    self.s(" sends its own SYN, not a SYN-ACK");
                    self.transitions(p);
                    self.s(" (");
                    self.side(peer);
                    self.s(" ");
                    self.s(st(p, peer).as_str());
                    self.s("): both sides are opening, so each must answer the other's SYN");
                }
                n => {
                    let n = n.unwrap_or(3);
                    self.s("simultaneous open ");
                    self.n(n);
                    self.s("/4: ");
                    self.side(who);
                    self.s(" SYN-ACK of ");
                    self.side(peer);
                    self.s("'s SYN");
                    self.transitions(p);
                    if n == 3 {
                        self.s(" (");
                        self.side(peer);
                        self.s(" ");
                        self.s(st(p, peer).as_str());
                        self.s(")");
                        self.rtt(" · SYN→SYN-ACK ", p.rtt_ns);
                    } else {
                        self.rtt(" · SYN-ACK→SYN-ACK ", p.rtt_ns);
                    }
                }
            }
        } else if k.contains(Kind::HandshakeSyn) {
            self.paint(CYAN);
            self.s("handshake 1/3: client ");
            self.s(st(p, Side::Client).as_str());
        } else if k.contains(Kind::SynRetransmission) || k.contains(Kind::SynackRetransmission) {
            self.paint(YELLOW);
            let what = if k.contains(Kind::SynRetransmission) {
                "SYN"
            } else {
                "SYN-ACK"
            };
            let (n, gap) = p.attempt.unwrap_or((2, 0));
            self.s(what);
            self.s(" retransmission: try ");
            self.n(n);
            self.s(", ");
            Dur(gap).push(&mut self.buf);
            self.s(" after the previous one");
            match p.lost_hint {
                Some(LostHint::SynAckLostAfterTap) if what == "SYN" => {
                    self.s(" · the SYN-ACK seen here never reached the client")
                }
                Some(LostHint::SynAckLostAfterTap) => {
                    self.s(" · answers a repeated SYN: the SYN-ACK was lost after this point")
                }
                Some(LostHint::FinalAckLostAfterTap) => {
                    self.s(" · the client's ACK seen here never reached the server")
                }
                Some(LostHint::NoAnswerSeen) => self.s(" · no answer seen yet"),
                None => {}
            }
        } else if k.contains(Kind::HandshakeSynack) {
            self.paint(CYAN);
            self.s("handshake 2/3: server ");
            self.s(st(p, Side::Server).as_str());
            self.s(" (client ");
            self.s(st(p, Side::Client).as_str());
            self.s(")");
            self.rtt(" · SYN→SYN-ACK ", p.rtt_ns);
        } else if k.contains(Kind::HandshakeAck) {
            self.paint(CYAN);
            self.s("handshake 3/3: client ");
            self.s(st(p, Side::Client).as_str());
            self.s(", server ");
            self.s(st(p, Side::Server).as_str());
            self.rtt(" · SYN-ACK→ACK ", p.rtt_ns);
        } else if k.contains(Kind::Refused) {
            self.paint(RED);
            self.s("refused: server answered the SYN with RST → client ");
            self.s(st(p, Side::Client).as_str());
        } else if k.contains(Kind::Rst) {
            self.paint(RED);
            let verdict = match p.rst {
                Some(RstCheck::Exact) => "valid: seq is the next expected",
                Some(RstCheck::InWindow) => {
                    "in window but not exact: RFC 5961 challenge ACK, state kept"
                }
                Some(RstCheck::OutOfWindow) => "out of window: ignored",
                Some(RstCheck::RefusalInvalid) => "does not ACK the SYN: ignored",
                Some(RstCheck::RefusalValid) => "valid",
                Some(RstCheck::Unknown) | None => "receiver's position unknown",
            };
            self.s("RST by ");
            self.side(who);
            self.s(" to ");
            self.side(peer);
            self.s(" (");
            self.s(verdict);
            self.s(")");
            if p.rst_peer_unreachable {
                let peer = peer.as_str();
                self.s(" · after keep-alives ");
                self.s(peer);
                self.s(" never answered: ");
                self.s(peer);
                self.s(" is unreachable, so this RST most likely never arrives and ");
                self.s(peer);
                self.s(" keeps its state");
            }
            self.transitions(p);
        } else if k.contains(Kind::Fin) || k.contains(Kind::CloseAck) {
            self.paint(GREEN);
            let (n, total) = p.close_step.unwrap_or((1, 0));
            self.s("close ");
            self.n(n);
            if total == 0 {
                // The peer's answer decides: ACK then FIN (4 steps) or FIN+ACK (3).
                self.s("/?");
            } else {
                self.s("/");
                self.n(total);
            }
            self.s(": ");
            self.side(who);
            if k.contains(Kind::Fin) && p.explain.acked_fin.is_some() {
                self.s(" FIN+ACK of ");
                self.side(peer);
                self.s("'s FIN");
            } else if p.simultaneous_fin {
                self.s(" FIN, ");
                self.side(peer);
                self.s("'s FIN not yet acknowledged (simultaneous close)");
            } else if k.contains(Kind::Fin) {
                self.s(" FIN");
            } else {
                self.s(" ACKs ");
                self.side(peer);
                self.s("'s FIN");
            }
            self.transitions(p);
        } else if p.transitions().next().is_some() {
            self.side(who);
            self.transitions(p);
        } else {
            headline = false;
        }
        if headline {
            self.paint(RESET);
        }
        // Wireshark's kinds and the rest, most telling first.
        let mut first = !headline;
        for kind in p.kinds.as_slice() {
            let phrase = match kind {
                // A simultaneous opener's SYN-ACK repeats its SYN's seq.
                Kind::Retransmission if k.contains(Kind::SimultaneousOpen) => {
                    "tshark: retransmission (same seq as its SYN)"
                }
                Kind::Retransmission
                    if k.contains(Kind::FastRetransmission)
                        || k.contains(Kind::SpuriousRetransmission)
                        || k.contains(Kind::SynRetransmission)
                        || k.contains(Kind::SynackRetransmission) =>
                {
                    continue;
                }
                Kind::Retransmission => "retransmission",
                Kind::FastRetransmission => "fast retransmission (after duplicate ACKs)",
                Kind::SpuriousRetransmission => "spurious retransmission (already acknowledged)",
                Kind::OutOfOrder => "out-of-order",
                Kind::LostSegment => "previous segment not captured",
                Kind::AckLostSegment => "ACKs a segment that was not captured",
                Kind::ZeroWindow => "zero window: the receiver's buffer is full",
                Kind::ZeroWindowProbe if p.linux_zwp => {
                    "zero-window probe (Linux style: no data, seq = next − 1; tshark says keep-alive)"
                }
                Kind::ZeroWindowProbe => "zero-window probe",
                Kind::ZeroWindowProbeAck => "zero-window probe ACK",
                Kind::WindowUpdate => "window update",
                Kind::WindowFull => "window full: the receiver's window is used up",
                Kind::KeepAlive if p.linux_zwp => continue,
                Kind::KeepAlive => "keep-alive",
                Kind::KeepAliveAck => "keep-alive ACK",
                Kind::Midstream => "mid-stream: handshake not captured",
                Kind::PortReuse => "port reuse: a new connection on an earlier 4-tuple",
                Kind::SynWithData => "SYN carries data (TCP Fast Open)",
                Kind::BadHandshakeAck => "ack is not the peer's ISN + 1",
                Kind::DuplicateAck => {
                    self.sep(&mut first);
                    self.paint(YELLOW);
                    let (n, frame) = p.dup_ack.unwrap_or((1, 0));
                    self.s("duplicate ACK #");
                    self.n(n);
                    self.s(" of frame ");
                    self.buf
                        .extend_from_slice(itoa::Buffer::new().format(frame).as_bytes());
                    self.paint(RESET);
                    continue;
                }
                _ => continue,
            };
            self.sep(&mut first);
            let warn = !matches!(kind, Kind::WindowUpdate | Kind::Midstream | Kind::PortReuse);
            if warn {
                self.paint(YELLOW);
            }
            self.buf.extend_from_slice(phrase.as_bytes());
            if warn {
                self.paint(RESET);
            }
        }
        if !headline || p.close_step.is_some() || p.payload > 0 {
            self.progress(p, &mut first);
        }
        self.buf.push(b'\n');
        if self.explain {
            self.explain_line(p)?;
        }
        Ok(())
    }

    fn sep(&mut self, first: &mut bool) {
        if !*first {
            self.s(" · ");
        }
        *first = false;
    }

    /// `lead` and the duration, when there is one.
    fn rtt(&mut self, lead: &str, ns: Option<i64>) {
        if let Some(ns) = ns {
            self.s(lead);
            Dur(ns).push(&mut self.buf);
        }
    }

    /// Data or ACK progress in relative numbers.
    fn progress(&mut self, p: &PacketInfo, first: &mut bool) {
        let who = p.from.unwrap_or(Side::Client);
        if p.payload > 0 {
            self.sep(first);
            self.side(who);
            self.s(" data ");
            self.n(p.rel_seq);
            self.s(":");
            self.n(p.rel_seq.wrapping_add(p.payload));
            self.s(" (");
            self.n(p.payload);
            self.s(" B)");
        } else if *first {
            self.sep(first);
            self.side(who);
            match p.rel_ack {
                Some(a) => {
                    self.s(" ACK ");
                    self.n(a);
                }
                None => self.s(" segment, no ACK"),
            }
        }
    }

    /// ` → client FIN_WAIT_2, server LAST_ACK`: each changed side's new state, in the order
    /// the sides changed; a side passing through a state shows it (`server CLOSING → TIME_WAIT`).
    fn transitions(&mut self, p: &PacketInfo) {
        let mut lead = " → ";
        let ts: [Option<Transition>; 4] = p.transitions;
        let mut printed = [false; 2];
        for t in ts.iter().flatten() {
            let i = t.side.index();
            if printed[i] {
                continue;
            }
            printed[i] = true;
            self.s(lead);
            self.side(t.side);
            let mut arrow = " ";
            let mut to = t.to;
            for x in ts.iter().flatten().filter(|x| x.side == t.side) {
                self.s(arrow);
                self.s(x.to.as_str());
                arrow = " → ";
                to = x.to;
            }
            if to == TcpState::TimeWait {
                self.s(" for 2MSL = ");
                Dur(p.two_msl_ns).push(&mut self.buf);
            }
            lead = ", ";
        }
    }

    fn explain_line(&mut self, p: &PacketInfo) -> io::Result<()> {
        let k = Kinds::of(p);
        let e = &p.explain;
        let who = p.from.unwrap_or(Side::Client);
        let peer = who.peer();
        let start = self.buf.len();
        self.paint(DIM);
        let body = self.buf.len();
        if k.contains(Kind::SplitHandshake) {
            write!(
                self.buf,
                "      = ack {} = {peer} ISN {} + 1: this ACK acknowledges the {peer}'s SYN, whose SYN-ACK acknowledged the {who}'s SYN",
                e.ack,
                opt(e.peer_isn)
            )?;
            if let Some(own) = e.own_isn {
                write!(self.buf, "; seq {} = {who} ISN {own} + 1", e.seq)?;
            }
        } else if k.contains(Kind::SimultaneousOpen) && p.open_step == Some(2) {
            write!(
                self.buf,
                "      = seq {} is the {who}'s ISN; a SYN without ACK acknowledges nothing, so each side answers the other's SYN with a SYN-ACK (RFC 9293 §3.5, Figure 7)",
                e.seq
            )?;
        } else if k.contains(Kind::SimultaneousOpen) {
            write!(
                self.buf,
                "      = ack {} = {peer} ISN {} + 1: the SYN consumes one sequence number; seq {} is the {who}'s ISN, as on its SYN (so tshark calls this a retransmission)",
                e.ack,
                opt(e.peer_isn),
                e.seq
            )?;
            if p.open_step == Some(4) {
                self.s(
                    "; both sides now have the other's SYN and an ACK of their own: ESTABLISHED",
                );
            }
        } else if k.contains(Kind::HandshakeSyn) {
            write!(
                self.buf,
                "      = seq {} is the client's ISN; the SYN consumes one sequence number, so the client's first data byte will be {}",
                e.seq,
                e.seq.wrapping_add(1)
            )?;
        } else if k.contains(Kind::HandshakeSynack) {
            match e.peer_isn {
                Some(isn) => write!(
                    self.buf,
                    "      = ack {} = client ISN {isn} + 1: the SYN consumes one sequence number; seq {} is the server's ISN",
                    e.ack, e.seq
                )?,
                None => write!(
                    self.buf,
                    "      = seq {} is the server's ISN; ack {} should be the client's ISN + 1 (SYN not captured)",
                    e.seq, e.ack
                )?,
            }
        } else if k.contains(Kind::HandshakeAck) {
            write!(
                self.buf,
                "      = ack {} = server ISN {} + 1",
                e.ack,
                opt(e.peer_isn)
            )?;
            if let Some(own) = e.own_isn {
                write!(self.buf, ", seq {} = client ISN {own} + 1", e.seq)?;
            }
            self.s(": each SYN consumes one sequence number");
        } else if k.contains(Kind::Refused)
            || (k.contains(Kind::Rst) && matches!(p.rst, Some(RstCheck::RefusalInvalid)))
        {
            write!(
                self.buf,
                "      = RST ack {} vs client ISN {} + 1: a RST in SYN_SENT is acceptable only if it ACKs the SYN (RFC 9293 §3.10.7.3)",
                e.ack,
                opt(e.peer_isn)
            )?;
        } else if k.contains(Kind::Rst) {
            match e.rst_expected {
                Some((exp, w)) => write!(
                    self.buf,
                    "      = RST seq {} vs the receiver's next expected {exp} (window {w}): exact → reset; in window → challenge ACK; outside → ignored (RFC 5961 §3.2)",
                    e.seq
                )?,
                None => write!(
                    self.buf,
                    "      = RST seq {}: nothing seen from the receiver yet, so its expected number is unknown",
                    e.seq
                )?,
            }
        } else if k.contains(Kind::Fin) || k.contains(Kind::CloseAck) {
            let mut sep = "      = ";
            if let Some(fin) = e.acked_fin {
                write!(
                    self.buf,
                    "{sep}ack {} = FIN seq {fin} + 1: the FIN consumes one sequence number",
                    e.ack
                )?;
                sep = "; ";
            }
            if k.contains(Kind::Fin) {
                let fin = e.seq.wrapping_add(p.payload);
                write!(
                    self.buf,
                    "{sep}FIN at seq {fin}: its ACK must be {}",
                    fin.wrapping_add(1)
                )?;
                if p.close_step.is_some_and(|(_, t)| t == 0) {
                    self.s(
                        "; \"?\": 4 steps if the peer ACKs and sends its FIN separately, 3 if one FIN+ACK does both",
                    );
                }
            }
            if p.transitions().any(|t| t.to == TcpState::TimeWait) {
                write!(
                    self.buf,
                    "; TIME_WAIT lasts 2 MSL ({}) so a lost final ACK can be sent again and old duplicates die out (RFC 9293 §3.6)",
                    Dur(p.two_msl_ns)
                )?;
            }
        }
        if self.buf.len() == body {
            self.buf.truncate(start);
        } else {
            self.paint(RESET);
            self.buf.push(b'\n');
        }
        Ok(())
    }
}

/// The line of a packet [`is_quiet`] accepts, as `compose` writes it (the progress part
/// alone).
#[inline(always)]
fn quiet_line(w: &mut Cur<'_>, p: &PacketInfo) {
    w.extend_from_slice("    ↳ ".as_bytes());
    w.put(
        match p.from.unwrap_or(Side::Client) {
            Side::Client => *b"client",
            Side::Server => *b"server",
        },
        6,
    );
    if p.payload > 0 {
        w.put(*b" data \0\0", 6);
        dec(w, p.rel_seq);
        w.put([b':'], 1);
        dec(w, p.rel_seq.wrapping_add(p.payload));
        w.put(*b" (", 2);
        dec(w, p.payload);
        w.put(*b" B)\n", 4);
    } else {
        match p.rel_ack {
            Some(a) => {
                w.put(*b" ACK \0\0\0", 5);
                dec(w, a);
                w.put([b'\n'], 1);
            }
            None => w.extend_from_slice(b" segment, no ACK\n"),
        }
    }
}

/// A packet with no kind and no state change: its annotation is the progress part alone.
fn is_quiet(p: &PacketInfo) -> bool {
    p.kinds.is_empty() && p.transitions.iter().all(Option::is_none)
}

/// The packet's kinds as a bit set: the many membership tests per line cost one AND each
/// instead of a scan of the list.
#[derive(Clone, Copy)]
struct Kinds(u64);

const _: () = assert!(ALL_KINDS.len() <= 64);

impl Kinds {
    fn of(p: &PacketInfo) -> Self {
        Kinds(u64::from(p.kinds.bits()))
    }

    fn contains(self, k: Kind) -> bool {
        self.0 & 1u64 << (k.index() & 63) != 0
    }
}

fn st(p: &PacketInfo, side: Side) -> TcpState {
    match side {
        Side::Client => p.states.0,
        Side::Server => p.states.1,
    }
}

struct Opt(Option<u32>);
impl std::fmt::Display for Opt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("?"),
        }
    }
}
fn opt(v: Option<u32>) -> Opt {
    Opt(v)
}

#[cfg(test)]
mod tests {
    use super::Dur;

    /// What `Dur` printed when it used `fmt`'s float formatting: the truth the hand-written
    /// text must match byte for byte.
    fn by_fmt(ns: i64) -> String {
        let ms = ns as f64 / 1e6;
        let abs = ns.unsigned_abs();
        if abs < 1_000_000 {
            format!("{ms:.3} ms")
        } else if abs < 100_000_000 {
            format!("{ms:.1} ms")
        } else if abs < 1_000_000_000 {
            format!("{ms:.0} ms")
        } else {
            format!("{:.2} s", ns as f64 / 1e9)
        }
    }

    #[test]
    fn dur_matches_fmt_at_edges_and_ties() {
        let mut cases = vec![0, 1, -1, i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1];
        for edge in [1_000_000i64, 100_000_000, 1_000_000_000] {
            for d in -3..=3 {
                cases.push(edge + d);
                cases.push(-(edge + d));
            }
        }
        // Halfway between two printed values: `fmt` rounds the binary value, ties to even.
        for k in 0..2000i64 {
            cases.push(k * 1_000_000 + 500_000);
            cases.push(k * 100_000 + 50_000);
            cases.push(k * 1000 + 500);
            cases.push(k * 10_000_000 + 5_000_000);
            cases.push(-(k * 1_000_000 + 500_000));
        }
        for ns in cases {
            assert_eq!(Dur(ns).to_string(), by_fmt(ns), "ns = {ns}");
        }
    }

    #[test]
    fn dur_matches_fmt_on_spread_values() {
        // A fixed xorshift walk over every magnitude, both signs.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ns = (x >> (x % 63)) as i64 * if x & 1 == 0 { 1 } else { -1 };
            assert_eq!(Dur(ns).to_string(), by_fmt(ns), "ns = {ns}");
        }
    }
}

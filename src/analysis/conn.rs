//! One connection: both endpoints' RFC 9293 states, Wireshark's per-direction analysis and
//! Zeek's summary, updated packet by packet.
//!
//! Transitions are attached to the packet that causes or proves them, as seen from the capture
//! point: a side's own packet proves what it received (an ACK of the peer's SYN or FIN moves
//! the sender to ESTABLISHED, CLOSE_WAIT, CLOSING or TIME_WAIT), and an ACK moves its receiver
//! (SYN_RECEIVED → ESTABLISHED, FIN_WAIT_1 → FIN_WAIT_2, CLOSING → TIME_WAIT, LAST_ACK → CLOSED).
//! So the client's ESTABLISHED shows on handshake step 3, its own ACK.

use super::state::ALL_STATES;
use super::zeek::Zeek;
use super::{
    CloseKind, ConnSummary, EndReason, Handshake, Initiator, Kind, LostHint, PacketInfo, RstCheck,
    SeqNumber, ServerPayload, Side, SideCounts, TcpState, Transition, ZeekHistory,
};
use crate::capture::Timestamp;
use crate::decode::Segment;
use std::net::SocketAddr;

/// Wireshark's `lastsegmentflags` bits we need.
const LAST_KEEP_ALIVE: u8 = 1;
const LAST_ZWP: u8 = 2;
/// Unanswered keep-alives after which the peer counts as unreachable (Linux's
/// `tcp_keepalive_probes` can be set as low as 1; 2 avoids reading one lost probe as a dead path).
const KEEPALIVES_LOST: u8 = 2;
/// Wireshark's out-of-order threshold when the handshake RTT is unknown.
const OOO_DEFAULT_NS: i64 = 3_000_000;
/// Wireshark's fast-retransmission window after the last duplicate ACK.
const FAST_RT_NS: i64 = 20_000_000;

/// One direction's state.
#[derive(Clone, Copy, Debug, Default)]
struct Half {
    /// ISN from this side's SYN.
    isn: Option<SeqNumber>,
    /// SYNs (or SYN-ACKs) sent, and when the last one was.
    syn_tries: u32,
    /// SYN-ACKs sent (a side of a simultaneous open sends a SYN, then a SYN-ACK).
    synacks: u32,
    last_syn_ts: Timestamp,
    /// Window scale offered on the SYN.
    wscale: WScale,
    /// Base for relative numbers (Wireshark: ISN, or first seq − 1, or peer's ack − 1).
    base: Option<SeqNumber>,
    // Wireshark's tcp_analyze_seq_flow_info_t; like Wireshark, 0 means "not set yet" (its
    // zero-initialised fields are compared as they are, which some flags depend on).
    nextseq: SeqNumber,
    nextseq_ts: Timestamp,
    maxseqtobeacked: SeqNumber,
    lastack: SeqNumber,
    lastack_ts: Timestamp,
    window: u16,
    is_first_ack: bool,
    /// Unsigned as in Wireshark: its "-1" (after an ACKed unseen segment) reads as >= 2.
    dupacknum: u32,
    lastnondupack: u64,
    last_flags: u8,
    // RFC 9293
    state: TcpState,
    fin_seq: Option<SeqNumber>,
    fin_acked: bool,
    got_peer_fin: bool,
    /// Keep-alives sent since the peer's last packet.
    unanswered_keepalives: u8,
}

impl Half {
    /// Wireshark's `win_scale`: -1 unknown, -2 no scaling, else the shift.
    fn win_scale(&self, peer: &Half) -> i8 {
        // The two markers are the largest values: the larger of both sides' says if either is.
        match self.wscale.max(peer.wscale) {
            WScale::NO_SYN => -1,
            WScale::NO_OPTION => -2,
            _ => self.wscale.0 as i8,
        }
    }
}

/// A window scale offer in one byte: the shift (at most 14), or one of two markers above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct WScale(u8);

impl WScale {
    /// No SYN seen.
    const NO_SYN: WScale = WScale(0xff);
    /// A SYN without the option.
    const NO_OPTION: WScale = WScale(0xfe);
}

impl Default for WScale {
    fn default() -> Self {
        WScale::NO_SYN
    }
}

/// The handshake's RTTs in nanoseconds, with one presence byte for all: three
/// `Option<i64>`s take 48 bytes, this 32. Set on the handshake, read by the analysis and
/// the summary.
#[derive(Clone, Copy, Debug, Default)]
struct Rtts {
    v: [i64; 3],
    /// Bit `i` set: `v[i]` holds a value.
    set: u8,
}

/// [`Rtts`] slots.
const SYN_SYNACK: usize = 0;
const SYNACK_ACK: usize = 1;
/// Wireshark's initial RTT (`irtt`): the most recent SYN to the first ACK without SYN.
const IRTT: usize = 2;

impl Rtts {
    fn get(&self, i: usize) -> Option<i64> {
        if self.set & 1 << i != 0 {
            self.v.get(i).copied()
        } else {
            None
        }
    }

    fn put(&mut self, i: usize, x: i64) {
        if let Some(v) = self.v.get_mut(i) {
            *v = x;
            self.set |= 1 << i;
        }
    }
}

/// A tracked connection.
#[derive(Clone, Debug)]
pub struct Conn {
    pub(crate) id: u64,
    client: SocketAddr,
    server: SocketAddr,
    first_ts: Timestamp,
    pub(crate) last_ts: Timestamp,
    /// The first and the last packet's numbers.
    numbers: (u64, u64),
    /// Client, server: `segment` works on both in place, beside `steps`.
    h: [Half; 2],
    steps: Steps,
    counts: [SideCounts; 2],
    first_packet: bool,
    midstream: bool,
    port_reuse: bool,
    /// When the close finished (both sides done) or a RST ended it.
    pub(crate) ended_at: Option<Timestamp>,
    pub(crate) reset: bool,
    /// Its record is out (the close linger is over) but it could not be made a [`Tail`]:
    /// later packets are still analysed here and counted apart.
    pub(crate) emitted: bool,
    zeek: Zeek,
    /// See [`PacketInfo::client_acked`].
    client_acked: bool,
    server_payload: ServerPayload,
}

/// The handshake's and the close's progress: what Wireshark's analysis and the RFC 9293 steps
/// read and write besides the two halves. Apart from [`Conn`]'s other fields so that its
/// methods can take both halves of `Conn::h` by reference and work on them in place.
#[derive(Clone, Copy, Debug)]
struct Steps {
    syn_seen: bool,
    synack_seen: bool,
    synack_ts: Timestamp,
    ack_seen: bool,
    refused: bool,
    syn_since_synack: bool,
    /// The server sent its own SYN while the client's was unanswered (RFC 9293 Figure 7).
    simultaneous: bool,
    syn_rtx: u32,
    synack_rtx: u32,
    mru_syn_ts: Option<Timestamp>,
    /// SYN→SYN-ACK, SYN-ACK→ACK and the initial RTT ([`Rtts`]).
    rtts: Rtts,
    close_steps: u8,
    close_total: u8,
    close: CloseKind,
    initiator: Option<Initiator>,
}

fn set_state(h: &mut Half, side: Side, to: TcpState, info: &mut PacketInfo) {
    if h.state != to {
        info.push_transition(Transition {
            side,
            from: h.state,
            to,
        });
        h.state = to;
        match to {
            TcpState::TimeWait => info.kinds.push(Kind::TimeWait),
            TcpState::CloseWait => info.kinds.push(Kind::CloseWait),
            _ => {}
        }
    }
}

fn ns_between(a: Timestamp, b: Timestamp) -> i64 {
    b.0.saturating_sub(a.0)
}

/// Wireshark keeps these time differences unsigned: time running backwards is "long ago".
fn within(delta: i64, limit: i64) -> bool {
    (0..limit).contains(&delta)
}

impl Conn {
    /// Starts a connection at its first packet. The client is the SYN's sender, or the SYN-ACK's
    /// receiver; with neither, the side with the higher port (servers listen on the lower,
    /// well-known or registered port; clients use ephemeral ports), the sender on a tie.
    pub(crate) fn new(id: u64, seg: &Segment, port_reuse: bool) -> Conn {
        let src = SocketAddr::new(seg.src, seg.sport);
        let dst = SocketAddr::new(seg.dst, seg.dport);
        let sender_is_client = if seg.flags.syn() {
            !seg.flags.ack()
        } else {
            seg.sport >= seg.dport
        };
        let (client, server) = if sender_is_client {
            (src, dst)
        } else {
            (dst, src)
        };
        let mut c = Conn {
            id,
            client,
            server,
            first_ts: seg.ts,
            numbers: (seg.number, seg.number),
            last_ts: seg.ts,
            h: [Half::default(); 2],
            steps: Steps {
                syn_seen: false,
                synack_seen: false,
                synack_ts: seg.ts,
                ack_seen: false,
                refused: false,
                syn_since_synack: false,
                simultaneous: false,
                syn_rtx: 0,
                synack_rtx: 0,
                mru_syn_ts: None,
                rtts: Rtts::default(),
                close_steps: 0,
                close_total: 0,
                close: CloseKind::None,
                initiator: None,
            },
            counts: [SideCounts::default(); 2],
            first_packet: true,
            midstream: !seg.flags.syn(),
            port_reuse,
            ended_at: None,
            reset: false,
            emitted: false,
            zeek: Zeek::default(),
            client_acked: false,
            server_payload: ServerPayload::default(),
        };
        if c.midstream {
            // Without a handshake both sides are assumed open.
            c.h[0].state = TcpState::Established;
            c.h[1].state = TcpState::Established;
        }
        c
    }

    /// Which side sent `seg`.
    pub(crate) fn side_of(&self, seg: &Segment) -> Side {
        if seg.sport == self.client.port() && seg.src == self.client.ip() {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// True when `seg` starts a new connection on this 4-tuple (Wireshark's rule: a SYN
    /// without ACK whose seq differs from the sender's base sequence number).
    pub(crate) fn starts_new(&self, seg: &Segment) -> bool {
        if !seg.flags.syn() || seg.flags.ack() {
            return false;
        }
        let h = &self.h[self.side_of(seg).index()];
        h.base.is_some_and(|b| b != SeqNumber(seg.seq))
    }

    /// True once the close or a RST finished the connection; `until` is when it may be freed.
    pub(crate) fn expiry(&self, two_msl: i64, reset_linger: i64) -> Option<i64> {
        let at = self.ended_at?;
        let tw = self.h.iter().any(|h| h.state == TcpState::TimeWait);
        let linger = if self.reset && !tw {
            reset_linger
        } else {
            two_msl
        };
        Some(at.0.saturating_add(linger))
    }

    /// The capture time (ns) from which a sweep may find it due: expired (`expiry`), idle for
    /// `idle`, or closed for `close_linger` with its record not out. Never later than the
    /// first time the sweep's own tests hold (saturating sums only round down here).
    pub(crate) fn wake(
        &self,
        two_msl: i64,
        reset_linger: i64,
        close_linger: i64,
        idle: i64,
    ) -> i64 {
        let mut t = self.last_ts.0.saturating_add(idle);
        if let Some(e) = self.expiry(two_msl, reset_linger) {
            t = t.min(e);
        }
        if !self.emitted
            && !self.reset
            && let Some(e) = self.ended_at
        {
            t = t.min(e.0.saturating_add(close_linger));
        }
        t
    }

    /// Analyses one segment of this connection.
    pub(crate) fn segment(&mut self, seg: &Segment, info: &mut PacketInfo) {
        let from = self.side_of(seg);
        let fi = from.index();
        // The sender's and the receiver's halves, worked on in place.
        let [client, server] = &mut self.h;
        let (f, r) = match from {
            Side::Client => (client, server),
            Side::Server => (server, client),
        };
        let p = &mut self.steps;
        let fl = seg.flags;
        let seq = SeqNumber(seg.seq);
        let ack = SeqNumber(seg.ack);
        self.last_ts = seg.ts;
        self.numbers.1 = seg.number;
        info.conn = self.id;
        info.from = Some(from);
        info.payload = seg.payload_len;
        info.explain.seq = seg.seq;
        info.explain.ack = seg.ack;
        if self.first_packet {
            self.first_packet = false;
            if self.midstream {
                info.kinds.push(Kind::Midstream);
            }
            if self.port_reuse {
                info.kinds.push(Kind::PortReuse);
            }
        }

        // Wireshark step 0: bases for relative numbers; window scale offers.
        if fl.syn() {
            f.wscale = seg
                .options
                .wscale
                .map_or(WScale::NO_OPTION, |w| WScale(w.min(14)));
            f.is_first_ack = true;
        }
        if f.base.is_none() {
            f.base = Some(if fl.syn() { seq } else { seq.minus(1) });
        }
        if r.base.is_none() && fl.ack() {
            r.base = Some(ack.minus(1));
        }
        info.rel_seq = seq.delta(f.base.unwrap_or(seq)) as u32;
        info.rel_ack = fl.ack().then(|| ack.delta(r.base.unwrap_or(ack)) as u32);
        info.scaled_window = if fl.syn() {
            Some(u64::from(seg.window))
        } else {
            match f.win_scale(r) {
                -1 => None,
                -2 => Some(u64::from(seg.window)),
                s => Some(u64::from(seg.window) << s),
            }
        };
        // Initial RTT: most recent SYN to the first ACK without SYN.
        if fl.syn() && !fl.ack() {
            p.mru_syn_ts = Some(seg.ts);
        } else if fl.ack()
            && !fl.syn()
            && p.rtts.get(IRTT).is_none()
            && let Some(t) = p.mru_syn_ts
        {
            p.rtts.put(IRTT, ns_between(t, seg.ts));
        }

        // A RST is checked against the sender's next sequence number before this packet.
        let pre_nextseq = f.nextseq;
        p.wireshark(f, r, seg, info);
        r.unanswered_keepalives = 0;
        if info.kinds.contains(Kind::KeepAlive) && !info.linux_zwp {
            f.unanswered_keepalives = f.unanswered_keepalives.saturating_add(1);
        }
        if fl.rst() {
            p.rst(from, f, r, seg, pre_nextseq, info);
        } else {
            p.rfc(from, f, r, seg, info);
        }
        let done = |h: &Half| {
            h.fin_seq.is_some() && matches!(h.state, TcpState::TimeWait | TcpState::Closed)
        };
        if self.ended_at.is_none() && (fl.rst() || done(f) && done(r)) {
            self.ended_at = Some(seg.ts);
            self.reset = fl.rst();
        }
        self.zeek.packet(
            from == Side::Client,
            fl,
            seg.seq,
            seg.ack,
            seg.payload_len,
            seg.window,
        );

        let counts = &mut self.counts[fi];
        counts.packets += 1;
        counts.bytes += u64::from(seg.payload_len);
        let k = &info.kinds;
        // tshark's retransmission on a simultaneous opener's SYN-ACK (its SYN's seq again) is
        // the first SYN-ACK to the kernel, which does not count it.
        if (k.contains(Kind::Retransmission) || k.contains(Kind::OutOfOrder))
            && !k.contains(Kind::SimultaneousOpen)
        {
            counts.retransmissions += 1;
        }
        if k.contains(Kind::DuplicateAck) {
            counts.dup_acks += 1;
        }
        if k.contains(Kind::ZeroWindow) {
            counts.zero_windows += 1;
        }
        info.client_acked = self.client_acked;
        if from == Side::Client {
            if k.contains(Kind::HandshakeSyn) {
                self.client_acked = false;
                self.server_payload = ServerPayload::new(seg.options.mss);
            } else if fl.ack() && !fl.syn() && !fl.rst() && !k.contains(Kind::SynRetransmission) {
                self.client_acked = true;
            }
        } else if seg.payload_len > 0 && !fl.syn() && !fl.rst() {
            self.server_payload.add(seg.payload_len);
        }
        info.explain.own_isn = f.isn.map(|s| s.0);
        info.explain.peer_isn = r.isn.map(|s| s.0);
        info.states = (self.h[0].state, self.h[1].state);
    }
}

impl Steps {
    /// Wireshark's `tcp_analyze_sequence_number`, in its order (notes/peers.md §3.2).
    fn wireshark(&self, f: &mut Half, r: &mut Half, seg: &Segment, info: &mut PacketInfo) {
        let fl = seg.flags;
        let now = seg.ts;
        let seq = SeqNumber(seg.seq);
        let ack = SeqNumber(seg.ack);
        let len = seg.payload_len;
        let win = seg.window;
        let no_sfr = !fl.syn() && !fl.fin() && !fl.rst();
        // Sequence space wraps: a jumbogram's length can be near 2^32.
        let nextseq_this = seq.plus(len.wrapping_add(u32::from(fl.syn()) + u32::from(fl.fin())));
        let k = &mut info.kinds;
        let mut this_flags = 0u8;
        let mut zwp = false;
        let mut keep_alive = false;
        let at_next = f.nextseq == seq;
        let same_ack = f.lastack == ack;
        let next_set = f.nextseq.0 != 0;

        'fwd: {
            // 1. Zero-window probe: one byte at the next seq while the peer's window is 0.
            if len == 1 && at_next && r.window == 0 {
                k.push(Kind::ZeroWindowProbe);
                this_flags |= LAST_ZWP;
                zwp = true;
                break 'fwd;
            }
            // 2. Zero window.
            if win == 0 && no_sfr {
                k.push(Kind::ZeroWindow);
            }
            // 3. Previous segment not captured.
            if next_set && seq.after(f.nextseq) && !fl.rst() {
                k.push(Kind::LostSegment);
            }
            // 4. Keep-alive: 0 or 1 byte at next seq − 1.
            if len <= 1 && no_sfr && seq == f.nextseq.minus(1) {
                k.push(Kind::KeepAlive);
                this_flags |= LAST_KEEP_ALIVE;
                keep_alive = true;
                if len == 0 && r.window == 0 {
                    // Linux probes a zero window this way (tcp_xmit_probe_skb, snd_una − 1).
                    k.push(Kind::ZeroWindowProbe);
                    info.linux_zwp = true;
                }
            }
            // 5. Window update.
            if len == 0 && win != 0 && f.window != win && at_next && same_ack && no_sfr {
                k.push(Kind::WindowUpdate);
            }
            // 6. Window full: the segment ends exactly at the receiver's right window edge.
            let rs = r.win_scale(f);
            if len > 0 && no_sfr && rs != -1 {
                let shift = if r.is_first_ack || rs == -2 {
                    0
                } else {
                    rs as u32
                };
                let edge = r.lastack.plus(u32::from(r.window) << shift);
                if seq.plus(len) == edge {
                    k.push(Kind::WindowFull);
                }
            }
            let unchanged = f.window == win;
            // 7. Keep-alive ACK.
            if len == 0
                && win != 0
                && unchanged
                && at_next
                && same_ack
                && no_sfr
                && r.last_flags & LAST_KEEP_ALIVE != 0
            {
                k.push(Kind::KeepAliveAck);
                break 'fwd;
            }
            // 8. Zero-window-probe ACK.
            if len == 0
                && win == 0
                && unchanged
                && at_next
                && same_ack
                && no_sfr
                && r.last_flags & LAST_ZWP != 0
            {
                k.push(Kind::ZeroWindowProbeAck);
                break 'fwd;
            }
            // 9. Duplicate ACK.
            if len == 0 && win != 0 && unchanged && at_next && same_ack && no_sfr {
                f.dupacknum = if f.dupacknum == u32::MAX {
                    1
                } else {
                    f.dupacknum + 1
                };
                info.dup_ack = Some((f.dupacknum, f.lastnondupack));
                k.push(Kind::DuplicateAck);
            }
        }
        // finished_fwd (Wireshark stores and compares the ack field whatever the ACK flag)
        if f.lastack != ack {
            f.lastnondupack = seg.number;
            f.dupacknum = 0;
        }
        // 10. ACKed unseen segment, as tshark 4.0.17 does it (found with probe captures,
        // scripts/make-analysis-probes.py): an ACK beyond the peer's highest contiguous seq is
        // flagged when that mark lags the peer's highest seq (the mark then catches up);
        // otherwise only if the peer's dup-ACK counter is 0, which is then set to "-1", so the
        // same hole is reported once until the peer's own ACK number moves.
        if fl.ack() && r.maxseqtobeacked.0 != 0 && ack.after(r.maxseqtobeacked) {
            if r.maxseqtobeacked.before(r.nextseq) {
                r.maxseqtobeacked = r.nextseq;
                k.push(Kind::AckLostSegment);
            } else {
                if r.dupacknum == 0 {
                    k.push(Kind::AckLostSegment);
                }
                r.dupacknum = u32::MAX;
            }
        }
        // 11. Retransmission family.
        if (len > 0 || fl.syn() || fl.fin()) && !keep_alive {
            let mut not_adv = next_set && seq.before(f.nextseq);
            if len > 1 && f.nextseq.minus(1) == seq {
                not_adv = false;
            }
            if len > 0 && r.lastack.0 != 0 && seq.plus(len).before_eq(r.lastack) {
                k.push(Kind::SpuriousRetransmission);
                k.push(Kind::Retransmission);
            } else if not_adv
                && r.dupacknum >= 2
                && r.lastack == seq
                && within(ns_between(r.lastack_ts, now), FAST_RT_NS)
            {
                k.push(Kind::FastRetransmission);
                k.push(Kind::Retransmission);
            } else if not_adv
                && within(
                    ns_between(f.nextseq_ts, now),
                    self.rtts.get(IRTT).unwrap_or(OOO_DEFAULT_NS),
                )
                && f.nextseq != nextseq_this
            {
                k.push(Kind::OutOfOrder);
            } else if not_adv {
                k.push(Kind::Retransmission);
            }
        }
        // 12. Book-keeping.
        if !zwp && (!next_set || nextseq_this.after(f.nextseq)) {
            f.nextseq = nextseq_this;
            f.nextseq_ts = now;
        }
        if !zwp && (f.maxseqtobeacked.0 == 0 || f.maxseqtobeacked == seq) {
            f.maxseqtobeacked = f.nextseq;
        }
        f.window = win;
        f.lastack = ack;
        f.lastack_ts = now;
        if fl.ack() && !fl.syn() {
            f.is_first_ack = false;
        }
        f.last_flags = this_flags;
    }

    /// RFC 9293 states, handshake and close steps of a segment without RST.
    fn rfc(
        &mut self,
        from: Side,
        f: &mut Half,
        r: &mut Half,
        seg: &Segment,
        info: &mut PacketInfo,
    ) {
        let fl = seg.flags;
        let now = seg.ts;
        let seq = SeqNumber(seg.seq);
        let ack = SeqNumber(seg.ack);
        let to = from.peer();
        let mut close_step = false;
        if fl.ack() {
            // Handshake 3/3: the ACK of the SYN-ACK moves both sides to ESTABLISHED.
            if r.state == TcpState::SynReceived
                && !fl.syn()
                && let Some(isn) = r.isn
            {
                if ack == isn.plus(1) {
                    if self.simultaneous {
                        // SYN, SYN, SYN-ACK and now a plain ACK of that SYN-ACK: its sender
                        // (in SYN_SENT, RFC 9293 §3.10.7.3) and the SYN-ACK's sender are open.
                        info.kinds.push(Kind::SplitHandshake);
                        info.open_step = Some(4);
                    } else {
                        info.kinds.push(Kind::HandshakeAck);
                    }
                    if f.isn.is_some_and(|i| seq != i.plus(1)) {
                        info.kinds.push(Kind::BadHandshakeAck);
                    }
                    set_state(r, to, TcpState::Established, info);
                    if matches!(f.state, TcpState::SynSent | TcpState::Closed) {
                        set_state(f, from, TcpState::Established, info);
                    }
                    if !self.ack_seen && self.syn_seen {
                        self.ack_seen = true;
                        let rtt = ns_between(self.synack_ts, now);
                        self.rtts.put(SYNACK_ACK, rtt);
                        info.rtt_ns = Some(rtt);
                    }
                } else {
                    info.kinds.push(Kind::BadHandshakeAck);
                }
            }
            // The peer's FIN is acknowledged: its sender moves on.
            if let Some(fs) = r.fin_seq {
                if !r.fin_acked && ack.after(fs) {
                    r.fin_acked = true;
                    info.explain.acked_fin = Some(fs.0);
                    close_step = true;
                    if !fl.fin() {
                        info.kinds.push(Kind::CloseAck);
                    }
                    match r.state {
                        // Simultaneous close: this ACK's sender sent its own FIN earlier, and
                        // in-order delivery brought that FIN first: FIN_WAIT_1 → CLOSING →
                        // TIME_WAIT, not FIN_WAIT_2.
                        TcpState::FinWait1 if f.fin_seq.is_some() && !r.got_peer_fin => {
                            r.got_peer_fin = true;
                            set_state(r, to, TcpState::Closing, info);
                            set_state(r, to, TcpState::TimeWait, info);
                        }
                        TcpState::FinWait1 => set_state(r, to, TcpState::FinWait2, info),
                        TcpState::Closing => set_state(r, to, TcpState::TimeWait, info),
                        TcpState::LastAck => set_state(r, to, TcpState::Closed, info),
                        _ => {}
                    }
                }
                // ... and the ACK's sender proves it received that FIN.
                if !f.got_peer_fin && ack.after(fs) {
                    f.got_peer_fin = true;
                    match f.state {
                        TcpState::Established | TcpState::SynReceived => {
                            set_state(f, from, TcpState::CloseWait, info)
                        }
                        TcpState::FinWait1 => set_state(f, from, TcpState::Closing, info),
                        TcpState::FinWait2 => set_state(f, from, TcpState::TimeWait, info),
                        _ => {}
                    }
                }
            }
        }
        if fl.syn() {
            self.syn(from, f, r, seg, info);
        }
        if fl.fin() && f.fin_seq.is_none() {
            let fin_at = seq.plus(seg.payload_len.wrapping_add(u32::from(fl.syn())));
            f.fin_seq = Some(fin_at);
            info.kinds.push(Kind::Fin);
            close_step = true;
            match f.state {
                TcpState::CloseWait => set_state(f, from, TcpState::LastAck, info),
                TcpState::Established | TcpState::SynReceived | TcpState::SynSent => {
                    set_state(f, from, TcpState::FinWait1, info)
                }
                _ => {}
            }
            match self.initiator {
                None => self.initiator = Some(Initiator::Side(from)),
                Some(Initiator::Side(s)) if s != from && !f.got_peer_fin => {
                    self.initiator = Some(Initiator::Simultaneous);
                    self.close = CloseKind::Simultaneous;
                    info.simultaneous_fin = true;
                    self.close_total = 4;
                }
                _ => {}
            }
            if self.close == CloseKind::None {
                self.close = CloseKind::HalfClose;
            }
        }
        if close_step {
            self.close_steps = self.close_steps.saturating_add(1);
            if self.close_steps == 2 && self.close_total == 0 {
                // A FIN that also acknowledges the first FIN merges steps 2 and 3.
                self.close_total = if fl.fin() { 3 } else { 4 };
            }
            info.close_step = Some((self.close_steps, self.close_total));
            if f.fin_seq.is_some() && r.fin_seq.is_some() && self.close == CloseKind::HalfClose {
                self.close = if self.close_total == 3 {
                    CloseKind::ThreeWay
                } else {
                    CloseKind::FourWay
                };
            }
        }
    }

    fn syn(
        &mut self,
        from: Side,
        f: &mut Half,
        r: &mut Half,
        seg: &Segment,
        info: &mut PacketInfo,
    ) {
        let fl = seg.flags;
        let now = seg.ts;
        let seq = SeqNumber(seg.seq);
        let ack = SeqNumber(seg.ack);
        let retry = f.syn_tries > 0 && f.isn == Some(seq);
        // A side's first SYN-ACK after its own SYN is no retransmission: simultaneous open.
        let simultaneous_synack = fl.ack() && self.simultaneous && f.synacks == 0;
        if retry && !simultaneous_synack {
            // Tries of this kind (SYN or SYN-ACK): a simultaneous opener sends both.
            let sent = if fl.ack() {
                f.synacks
            } else {
                f.syn_tries - f.synacks
            };
            info.attempt = Some((sent + 1, ns_between(f.last_syn_ts, now)));
        }
        if !fl.ack() {
            if retry {
                self.syn_rtx += 1;
                info.kinds.push(Kind::SynRetransmission);
                info.lost_hint = Some(if self.synack_seen {
                    LostHint::SynAckLostAfterTap
                } else {
                    LostHint::NoAnswerSeen
                });
                self.syn_since_synack = true;
            } else if f.syn_tries == 0
                && r.state == TcpState::SynSent
                && r.isn.is_some()
                && !self.synack_seen
            {
                // The peer's SYN is unanswered and this side sends its own SYN instead of a
                // SYN-ACK: both are opening (RFC 9293 §3.5, Figure 7), or a split handshake.
                info.kinds.push(Kind::SimultaneousOpen);
                info.open_step = Some(2);
                f.isn = Some(seq);
                self.simultaneous = true;
                set_state(f, from, TcpState::SynSent, info);
            } else {
                info.kinds.push(Kind::HandshakeSyn);
                f.isn = Some(seq);
                self.syn_seen = true;
                set_state(f, from, TcpState::SynSent, info);
            }
            if seg.payload_len > 0 {
                info.kinds.push(Kind::SynWithData);
            }
        } else {
            if simultaneous_synack {
                self.simultaneous_synack(from, f, r, seg, info);
            } else if retry {
                self.synack_rtx += 1;
                info.kinds.push(Kind::SynackRetransmission);
                info.lost_hint = Some(if self.ack_seen {
                    LostHint::FinalAckLostAfterTap
                } else if self.syn_since_synack {
                    LostHint::SynAckLostAfterTap
                } else {
                    LostHint::NoAnswerSeen
                });
            } else {
                info.kinds.push(Kind::HandshakeSynack);
                f.isn = Some(seq);
                if r.isn.is_some_and(|i| ack != i.plus(1)) {
                    info.kinds.push(Kind::BadHandshakeAck);
                }
                if !self.synack_seen && r.syn_tries > 0 {
                    let rtt = ns_between(r.last_syn_ts, now);
                    self.rtts.put(SYN_SYNACK, rtt);
                    info.rtt_ns = Some(rtt);
                }
                self.synack_seen = true;
                self.synack_ts = now;
                if r.state == TcpState::Closed {
                    // The SYN was not captured: its sender must be in SYN_SENT.
                    r.state = TcpState::SynSent;
                }
                if f.state == TcpState::Closed {
                    // Answering a SYN proves the server was listening.
                    f.state = TcpState::Listen;
                }
                set_state(f, from, TcpState::SynReceived, info);
            }
            self.syn_since_synack = false;
            f.synacks += 1;
        }
        f.syn_tries += 1;
        f.last_syn_ts = now;
    }

    /// A side's SYN-ACK in a simultaneous open: it got the peer's SYN (→ SYN_RECEIVED). The
    /// second of the two also shows that its sender has the first (sent earlier, delivered in
    /// order), and its ACK opens the first's sender: both are ESTABLISHED.
    fn simultaneous_synack(
        &mut self,
        from: Side,
        f: &mut Half,
        r: &mut Half,
        seg: &Segment,
        info: &mut PacketInfo,
    ) {
        let now = seg.ts;
        let acks_peer = r.isn.is_some_and(|i| SeqNumber(seg.ack) == i.plus(1));
        info.kinds.push(Kind::SimultaneousOpen);
        if !acks_peer {
            info.kinds.push(Kind::BadHandshakeAck);
        }
        if f.isn.is_some_and(|i| i != SeqNumber(seg.seq)) {
            // A SYN-ACK must repeat the sender's SYN (same ISN).
            info.kinds.push(Kind::BadHandshakeAck);
        }
        set_state(f, from, TcpState::SynReceived, info);
        if r.synacks == 0 {
            info.open_step = Some(3);
            let rtt = ns_between(r.last_syn_ts, now);
            self.rtts.put(SYN_SYNACK, rtt);
            info.rtt_ns = Some(rtt);
            self.synack_seen = true;
            self.synack_ts = now;
            return;
        }
        info.open_step = Some(4);
        if acks_peer && r.state == TcpState::SynReceived {
            set_state(r, from.peer(), TcpState::Established, info);
        }
        set_state(f, from, TcpState::Established, info);
        if !self.ack_seen {
            self.ack_seen = true;
            let rtt = ns_between(self.synack_ts, now);
            self.rtts.put(SYNACK_ACK, rtt);
            info.rtt_ns = Some(rtt);
        }
    }

    /// A RST: its acceptability and the states it ends. `pre_nextseq` is the sender's next
    /// sequence number before this packet.
    fn rst(
        &mut self,
        from: Side,
        f: &mut Half,
        r: &mut Half,
        seg: &Segment,
        pre_nextseq: SeqNumber,
        info: &mut PacketInfo,
    ) {
        let fl = seg.flags;
        let seq = SeqNumber(seg.seq);
        let ack = SeqNumber(seg.ack);
        info.kinds.push(Kind::Rst);
        let refusal = r.state == TcpState::SynSent && !self.synack_seen;
        let check = if refusal {
            // RFC 9293 §3.10.7.3: in SYN-SENT a RST is acceptable if its ACK acks the SYN.
            if fl.ack() && r.isn.is_some_and(|i| ack == i.plus(1)) {
                RstCheck::RefusalValid
            } else {
                RstCheck::RefusalInvalid
            }
        } else {
            // RFC 5961 §3.2: exact match resets; in-window draws a challenge ACK.
            let nz = |s: SeqNumber| (s.0 != 0).then_some(s);
            let expected = nz(pre_nextseq).or(nz(r.lastack));
            match expected {
                None => RstCheck::Unknown,
                Some(e) => {
                    info.explain.rst_expected = Some((e.0, 0));
                    if seq == e {
                        RstCheck::Exact
                    } else {
                        let (lo, w) = match nz(r.lastack) {
                            Some(la) => {
                                let s = r.win_scale(f);
                                let s = if s > 0 { s as u32 } else { 0 };
                                (la, (u32::from(r.window) << s).max(1))
                            }
                            None => (e, 1),
                        };
                        info.explain.rst_expected = Some((e.0, w));
                        if seq.in_window(lo, w) {
                            RstCheck::InWindow
                        } else {
                            RstCheck::OutOfWindow
                        }
                    }
                }
            }
        };
        info.rst = Some(check);
        if refusal && check.accepted() && from == Side::Server {
            info.kinds.push(Kind::Refused);
            self.refused = true;
        }
        set_state(f, from, TcpState::Closed, info);
        // A RST sent after keep-alives the peer never answered: the path or the peer is gone
        // (Linux sends it when tcp_keepalive_probes run out), so it most likely never arrives
        // and the peer keeps its state. The capture point is on the sender's side of the break.
        let unreachable = f.unanswered_keepalives >= KEEPALIVES_LOST;
        info.rst_peer_unreachable = unreachable;
        if check.accepted()
            && !unreachable
            && r.state != TcpState::Closed
            && r.state != TcpState::Listen
        {
            set_state(r, from.peer(), TcpState::Closed, info);
        }
        let closed_by_fins = f.fin_seq.is_some() && r.fin_seq.is_some();
        if !closed_by_fins {
            // close_initiator stays the first FIN's sender (or null): a RST is an abort.
            self.close = CloseKind::Reset;
        }
    }
}

impl Conn {
    /// The end-of-connection record.
    pub(crate) fn summary(&self, end: EndReason) -> ConnSummary {
        let (c, s, p) = (&self.h[0], &self.h[1], &self.steps);
        let handshake = if p.ack_seen {
            Handshake::Complete
        } else if p.refused {
            Handshake::Refused
        } else if p.syn_seen && !p.synack_seen && self.counts[1].packets == 0 {
            Handshake::Unanswered
        } else if p.syn_seen || p.synack_seen {
            Handshake::Incomplete
        } else {
            Handshake::NotSeen
        };
        let tw = |h: &Half| h.state == TcpState::TimeWait;
        let time_wait_on = match (tw(c), tw(s)) {
            (true, true) => Some("both"),
            (true, false) => Some("client"),
            (false, true) => Some("server"),
            (false, false) => None,
        };
        ConnSummary {
            id: self.id,
            client: self.client,
            server: self.server,
            first_ts: self.first_ts,
            first_packet: self.numbers.0,
            last_packet: self.numbers.1,
            last_ts: self.last_ts,
            client_state: c.state,
            server_state: s.state,
            handshake,
            syn_synack_ns: p.rtts.get(SYN_SYNACK),
            synack_ack_ns: p.rtts.get(SYNACK_ACK),
            syn_retransmissions: p.syn_rtx,
            synack_retransmissions: p.synack_rtx,
            client_counts: self.counts[0],
            server_counts: self.counts[1],
            close: p.close,
            close_initiator: p.initiator,
            time_wait_on,
            zeek_conn_state: self.zeek.conn_state(),
            zeek_history: ZeekHistory::from_str(self.zeek.history()),
            midstream: self.midstream,
            port_reuse: self.port_reuse,
            end,
            syn_cookie: false,
            server_payload: self.server_payload,
        }
    }
}

/// A time as an exact offset from a base in 31 bits: nanoseconds within ±1.07 s, else whole
/// microseconds within ±17.9 min (every offset of a µs-resolution capture); the low bit says
/// which. `None` when neither holds exactly.
fn pack_time(t: i64, base: i64) -> Option<i32> {
    const LIM: i64 = 1 << 30;
    let d = t.checked_sub(base)?;
    if (-LIM..LIM).contains(&d) {
        Some((d as i32) << 1)
    } else if d % 1000 == 0 && (-LIM..LIM).contains(&(d / 1000)) {
        Some(((d / 1000) as i32) << 1 | 1)
    } else {
        None
    }
}

fn unpack_time(v: i32, base: i64) -> i64 {
    let d = i64::from(v >> 1);
    base.wrapping_add(if v & 1 == 1 { d * 1000 } else { d })
}

/// One direction of a [`Tail`]: Wireshark's sequence analysis and the RFC 9293 state, packed.
#[derive(Clone, Copy, Debug)]
struct TailHalf {
    isn: u32,
    base: u32,
    nextseq: u32,
    maxseqtobeacked: u32,
    lastack: u32,
    fin_seq: u32,
    dupacknum: u32,
    lastnondupack: u32,
    /// Offsets from the tail's `last_ts` ([`pack_time`]).
    nextseq_ts: i32,
    lastack_ts: i32,
    last_syn_ts: i32,
    window: u16,
    syn_tries: u8,
    synacks: u8,
    /// As [`WScale`]: 0xff no SYN seen, 0xfe SYN without the option, else the shift.
    wscale: u8,
    /// State (bits 0-3), `last_flags` (4-5), unanswered keep-alives up to 3 (6-7: only
    /// "at least 2" is ever asked).
    packed: u8,
    /// `isn`, `base`, `fin_seq` set; `is_first_ack`, `fin_acked`, `got_peer_fin`.
    bits: u8,
}

const H_ISN: u8 = 1;
const H_BASE: u8 = 2;
const H_FIN: u8 = 4;
const H_FIRST_ACK: u8 = 8;
const H_FIN_ACKED: u8 = 16;
const H_GOT_FIN: u8 = 32;

impl TailHalf {
    fn pack(h: &Half, base: i64) -> Option<TailHalf> {
        let flag = |b: bool, f: u8| if b { f } else { 0 };
        Some(TailHalf {
            isn: h.isn.map_or(0, |s| s.0),
            base: h.base.map_or(0, |s| s.0),
            nextseq: h.nextseq.0,
            maxseqtobeacked: h.maxseqtobeacked.0,
            lastack: h.lastack.0,
            fin_seq: h.fin_seq.map_or(0, |s| s.0),
            dupacknum: h.dupacknum,
            lastnondupack: u32::try_from(h.lastnondupack).ok()?,
            nextseq_ts: pack_time(h.nextseq_ts.0, base)?,
            lastack_ts: pack_time(h.lastack_ts.0, base)?,
            // Only read on a repeated SYN, which needs an earlier one (0 until then).
            last_syn_ts: if h.syn_tries == 0 {
                0
            } else {
                pack_time(h.last_syn_ts.0, base)?
            },
            window: h.window,
            syn_tries: u8::try_from(h.syn_tries).ok()?,
            synacks: u8::try_from(h.synacks).ok()?,
            wscale: h.wscale.0,
            packed: h.state as u8 | h.last_flags << 4 | h.unanswered_keepalives.min(3) << 6,
            bits: flag(h.isn.is_some(), H_ISN)
                | flag(h.base.is_some(), H_BASE)
                | flag(h.fin_seq.is_some(), H_FIN)
                | flag(h.is_first_ack, H_FIRST_ACK)
                | flag(h.fin_acked, H_FIN_ACKED)
                | flag(h.got_peer_fin, H_GOT_FIN),
        })
    }

    fn unpack(&self, base: i64) -> Half {
        let opt = |f: u8, v: u32| (self.bits & f != 0).then_some(SeqNumber(v));
        let state = self.packed & 15;
        Half {
            isn: opt(H_ISN, self.isn),
            syn_tries: u32::from(self.syn_tries),
            synacks: u32::from(self.synacks),
            last_syn_ts: Timestamp(if self.syn_tries == 0 {
                0
            } else {
                unpack_time(self.last_syn_ts, base)
            }),
            wscale: WScale(self.wscale),
            base: opt(H_BASE, self.base),
            nextseq: SeqNumber(self.nextseq),
            nextseq_ts: Timestamp(unpack_time(self.nextseq_ts, base)),
            maxseqtobeacked: SeqNumber(self.maxseqtobeacked),
            lastack: SeqNumber(self.lastack),
            lastack_ts: Timestamp(unpack_time(self.lastack_ts, base)),
            window: self.window,
            is_first_ack: self.bits & H_FIRST_ACK != 0,
            dupacknum: self.dupacknum,
            lastnondupack: u64::from(self.lastnondupack),
            last_flags: self.packed >> 4 & 3,
            state: ALL_STATES
                .into_iter()
                .find(|&s| s as u8 == state)
                .unwrap_or_default(),
            fin_seq: opt(H_FIN, self.fin_seq),
            fin_acked: self.bits & H_FIN_ACKED != 0,
            got_peer_fin: self.bits & H_GOT_FIN != 0,
            unanswered_keepalives: self.packed >> 6,
        }
    }
}

/// A closed connection whose record is out, kept until 2 MSL after its close (Linux's
/// `inet_timewait_sock`): exactly what later packets need to be analysed as before —
/// which side is the client, both sides' states and Wireshark sequence analysis, the
/// handshake and close progress. Counts and Zeek's history went out with the record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tail {
    h: [TailHalf; 2],
    /// The last packet's time: the base of every packed time.
    pub(crate) last_ts: Timestamp,
    id: u32,
    ended_at: i32,
    /// The handshake RTT (`irtt`) if known, else the last SYN's time (`mru_syn_ts`).
    rtt: i32,
    close_steps: u8,
    close_total: u8,
    /// 0: none, 1 + side, 3: simultaneous.
    initiator: u8,
    bits: u8,
}

const T_CLIENT_LO: u8 = 1;
const T_SYN: u8 = 2;
const T_SYNACK: u8 = 4;
const T_ACK: u8 = 8;
const T_SYN_SINCE: u8 = 16;
const T_SIMULTANEOUS: u8 = 32;
const T_IRTT: u8 = 64;
const T_MRU_SYN: u8 = 128;

/// Whether the client is the lower (address, port) of the two: with the segment, this gives
/// both addresses back without storing them.
fn client_is_lo(client: SocketAddr, server: SocketAddr) -> bool {
    (client.ip(), client.port()) <= (server.ip(), server.port())
}

impl Tail {
    /// The tail of a closed connection, or `None` when a number does not fit exactly (then the
    /// connection is kept whole).
    pub(crate) fn of(c: &Conn) -> Option<Tail> {
        let (base, p) = (c.last_ts.0, &c.steps);
        let ended_at = c.ended_at?;
        // The SYN-ACK's time is only read before the handshake's ACK.
        if c.reset || !p.ack_seen && (p.syn_seen || p.synack_seen || p.simultaneous) {
            return None;
        }
        let flag = |b: bool, f: u8| if b { f } else { 0 };
        let irtt = p.rtts.get(IRTT);
        let rtt = match (irtt, p.mru_syn_ts) {
            (Some(d), _) => pack_time(d, 0)?,
            (None, Some(t)) => pack_time(t.0, base)?,
            (None, None) => 0,
        };
        Some(Tail {
            h: [
                TailHalf::pack(&c.h[0], base)?,
                TailHalf::pack(&c.h[1], base)?,
            ],
            last_ts: c.last_ts,
            id: u32::try_from(c.id).ok()?,
            ended_at: pack_time(ended_at.0, base)?,
            rtt,
            close_steps: p.close_steps,
            close_total: p.close_total,
            initiator: match p.initiator {
                None => 0,
                Some(Initiator::Side(s)) => 1 + s.index() as u8,
                Some(Initiator::Simultaneous) => 3,
            },
            bits: flag(client_is_lo(c.client, c.server), T_CLIENT_LO)
                | flag(p.syn_seen, T_SYN)
                | flag(p.synack_seen, T_SYNACK)
                | flag(p.ack_seen, T_ACK)
                | flag(p.syn_since_synack, T_SYN_SINCE)
                | flag(p.simultaneous, T_SIMULTANEOUS)
                | flag(irtt.is_some(), T_IRTT)
                | flag(irtt.is_none() && p.mru_syn_ts.is_some(), T_MRU_SYN),
        })
    }

    /// Connection id.
    pub(crate) fn id(&self) -> u64 {
        u64::from(self.id)
    }

    /// When the close finished.
    pub(crate) fn ended_at(&self) -> i64 {
        unpack_time(self.ended_at, self.last_ts.0)
    }

    /// Client and server addresses, given a segment of this connection.
    fn ends(&self, seg: &Segment) -> (SocketAddr, SocketAddr) {
        let src = SocketAddr::new(seg.src, seg.sport);
        let dst = SocketAddr::new(seg.dst, seg.dport);
        if client_is_lo(src, dst) == (self.bits & T_CLIENT_LO != 0) {
            (src, dst)
        } else {
            (dst, src)
        }
    }
}

impl Conn {
    /// The connection a tail was, as far as later packets can tell (what only the record
    /// needed starts from zero). `seg` is a packet of it.
    pub(crate) fn from_tail(t: &Tail, seg: &Segment) -> Conn {
        let base = t.last_ts.0;
        let (client, server) = t.ends(seg);
        let bit = |f: u8| t.bits & f != 0;
        let mut rtts = Rtts::default();
        if bit(T_IRTT) {
            rtts.put(IRTT, unpack_time(t.rtt, 0));
        }
        Conn {
            id: t.id(),
            client,
            server,
            first_ts: t.last_ts,
            // The record is out: the numbers are not reported again.
            numbers: (seg.number, seg.number),
            last_ts: t.last_ts,
            h: [t.h[0].unpack(base), t.h[1].unpack(base)],
            steps: Steps {
                syn_seen: bit(T_SYN),
                synack_seen: bit(T_SYNACK),
                synack_ts: t.last_ts,
                ack_seen: bit(T_ACK),
                refused: false,
                syn_since_synack: bit(T_SYN_SINCE),
                simultaneous: bit(T_SIMULTANEOUS),
                syn_rtx: 0,
                synack_rtx: 0,
                mru_syn_ts: bit(T_MRU_SYN).then(|| Timestamp(unpack_time(t.rtt, base))),
                rtts,
                close_steps: t.close_steps,
                close_total: t.close_total,
                close: CloseKind::None,
                initiator: match t.initiator {
                    0 => None,
                    1 => Some(Initiator::Side(Side::Client)),
                    2 => Some(Initiator::Side(Side::Server)),
                    _ => Some(Initiator::Simultaneous),
                },
            },
            counts: [SideCounts::default(); 2],
            first_packet: false,
            midstream: false,
            port_reuse: false,
            ended_at: Some(Timestamp(t.ended_at())),
            reset: false,
            emitted: true,
            zeek: Zeek::default(),
            // The record is out: the detectors hold nothing more of this connection.
            client_acked: false,
            server_payload: ServerPayload::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tail is what keeps memory bounded by open connections (docs/performance.md).
    #[test]
    fn a_tail_is_small() {
        assert!(size_of::<Tail>() <= 128, "{}", size_of::<Tail>());
    }

    #[test]
    fn packed_times_are_exact_or_refused() {
        let base = 1_700_000_000_123_456_789;
        for d in [
            0,
            1,
            -1,
            (1 << 30) - 1,
            -(1 << 30),
            5_000_000_000,
            -1_000_000_000_000,
        ] {
            let v = pack_time(base + d, base).expect("fits");
            assert_eq!(unpack_time(v, base), base + d, "{d}");
        }
        // Not a whole µs beyond ±1.07 s, or beyond ±17.9 min: refused, never rounded.
        assert_eq!(pack_time(base + 5_000_000_001, base), None);
        assert_eq!(pack_time(base + 1_100_000_000_000, base), None);
        assert_eq!(pack_time(i64::MAX, i64::MIN), None);
    }
}

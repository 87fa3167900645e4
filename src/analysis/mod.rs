//! Flow table and per-connection TCP analysis.
//!
//! [`Analyzer::packet`] takes each decoded [`Segment`] in capture order, finds (or starts) its
//! connection in the flow table and returns a [`PacketInfo`]: the annotation kinds, the state
//! transitions of both endpoints and the numbers the reports print. Connections that end (closed
//! and past the close linger, reset, idle, evicted, replaced by a new connection on the same
//! 4-tuple) are summarised as [`ConnSummary`] and freed; [`Analyzer::drain_ended`] hands them
//! out. A closed connection leaves a small tail until 2 MSL after its close, for late packets.
//! Nothing is kept per packet, and no allocation happens per packet.
//!
//! Three views are kept side by side for every connection:
//! - RFC 9293 states of both endpoints (`conn.rs`), each change attached to the packet that
//!   causes or proves it;
//! - Wireshark's `tcp.analysis.*` flags, same definitions and order (`conn.rs`, `wireshark`);
//! - Zeek's `conn_state` and `history` ([`zeek`]).

mod conn;
mod flow;
pub mod kind;
mod live;
pub mod seq;
pub(crate) mod slots;
pub mod state;
pub mod zeek;

use crate::capture::Timestamp;
use crate::decode::Segment;
pub use conn::Conn;
pub use flow::{FlowKey, FlowTable};
pub use kind::{ALL_KINDS, Kind, KindList};
pub(crate) use live::prefetch;
pub use seq::SeqNumber;
pub use state::{Side, TcpState, Transition};
use std::net::SocketAddr;

/// Limits and timers of the analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnalysisConfig {
    /// Maximum segment lifetime in nanoseconds; TIME_WAIT lasts 2 MSL.
    pub msl_ns: i64,
    /// A connection idle this long (capture time) is summarised and freed.
    pub idle_ns: i64,
    /// How long a reset connection is kept for stray packets (Zeek's `tcp_reset_delay`).
    pub reset_linger_ns: i64,
    /// How long a FIN-closed connection is kept whole after its close (Zeek's
    /// `tcp_close_delay`); then its record goes out and a small tail answers late packets
    /// until 2 MSL after the close.
    pub close_linger_ns: i64,
    /// Most connections held at once; beyond it the least recently active are evicted.
    pub max_connections: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            msl_ns: 30 * NS_PER_SEC,
            idle_ns: 300 * NS_PER_SEC,
            reset_linger_ns: 5 * NS_PER_SEC,
            close_linger_ns: 5 * NS_PER_SEC,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Nanoseconds per second.
pub const NS_PER_SEC: i64 = 1_000_000_000;

/// Connections tracked at once by default: about 0.45 GB at the measured ~1.8 KB per
/// connection under a SYN flood (docs/performance.md, "Memory per live connection"), so a
/// spoofed SYN flood cannot take the machine's memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 250_000;

/// How the handshake went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Handshake {
    /// SYN, SYN-ACK and the final ACK were all seen (or a simultaneous open or split
    /// handshake finished: both SYNs and what acknowledges them).
    Complete,
    /// The server answered the SYN with a RST.
    Refused,
    /// Only SYNs: nothing came back.
    Unanswered,
    /// Started but not finished (e.g. SYN-ACK without final ACK, or a SYN-ACK without SYN).
    Incomplete,
    /// No SYN was captured (mid-stream).
    #[default]
    NotSeen,
}

impl Handshake {
    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            Handshake::Complete => "complete",
            Handshake::Refused => "refused",
            Handshake::Unanswered => "unanswered",
            Handshake::Incomplete => "incomplete",
            Handshake::NotSeen => "not_seen",
        }
    }
}

/// How the connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CloseKind {
    /// Not closed (open at the end, or never established).
    #[default]
    None,
    /// FIN, ACK, FIN, ACK.
    FourWay,
    /// FIN, FIN+ACK, ACK: the passive side's ACK and FIN merged.
    ThreeWay,
    /// Both FINs crossed (CLOSING on both sides).
    Simultaneous,
    /// Only one side sent a FIN.
    HalfClose,
    /// Ended by a RST.
    Reset,
}

impl CloseKind {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseKind::None => "none",
            CloseKind::FourWay => "four_way",
            CloseKind::ThreeWay => "three_way",
            CloseKind::Simultaneous => "simultaneous",
            CloseKind::HalfClose => "half_close",
            CloseKind::Reset => "reset",
        }
    }
}

/// Who started the FIN close (a RST abort has no initiator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// One side.
    Side(Side),
    /// Both FINs before either was acknowledged.
    Simultaneous,
}

impl Initiator {
    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::Side(s) => s.as_str(),
            Initiator::Simultaneous => "simultaneous",
        }
    }
}

/// Why a connection record was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Closed, and TIME_WAIT (2 MSL of capture time) is over.
    Closed,
    /// Reset, and the linger time is over.
    Reset,
    /// No packet for the idle timeout.
    Idle,
    /// Evicted to stay under the connection limit.
    Evicted,
    /// A new connection took the 4-tuple.
    Replaced,
    /// Still held when the capture ended.
    EndOfCapture,
}

impl EndReason {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Reset => "reset",
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::Replaced => "replaced",
            EndReason::EndOfCapture => "end_of_capture",
        }
    }
}

/// How acceptable a RST is to its receiver (RFC 9293 §3.10.7, RFC 5961 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RstCheck {
    /// seq is exactly the receiver's next expected number: the connection is reset.
    Exact,
    /// In the window but not exact: RFC 5961 says answer with a challenge ACK, keep the state.
    InWindow,
    /// Outside the window: ignored.
    OutOfWindow,
    /// A RST answering a SYN whose ACK acknowledges the SYN (ack = ISN + 1): refused.
    RefusalValid,
    /// A RST answering a SYN whose ACK does not acknowledge the SYN: ignored by the client.
    RefusalInvalid,
    /// Receiver's expected number unknown (nothing seen from it yet): assumed valid.
    Unknown,
}

impl RstCheck {
    /// The receiver acts on this RST.
    pub fn accepted(self) -> bool {
        matches!(
            self,
            RstCheck::Exact | RstCheck::RefusalValid | RstCheck::Unknown
        )
    }
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RstCheck::Exact => "valid",
            RstCheck::InWindow => "in_window_not_exact",
            RstCheck::OutOfWindow => "out_of_window",
            RstCheck::RefusalValid => "valid",
            RstCheck::RefusalInvalid => "bad_ack",
            RstCheck::Unknown => "unchecked",
        }
    }
}

/// What the handshake retransmission tells about the packet lost after the capture point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostHint {
    /// The SYN-ACK was seen here but the client sent its SYN again: the SYN-ACK was lost
    /// between the capture point and the client.
    SynAckLostAfterTap,
    /// The client's final ACK was seen here but the server sent its SYN-ACK again: the ACK was
    /// lost between the capture point and the server.
    FinalAckLostAfterTap,
    /// No answer seen here (lost before the capture point, or never sent).
    NoAnswerSeen,
}

/// The numbers `--explain` spells out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Explain {
    /// Raw seq of this packet.
    pub seq: u32,
    /// Raw ack of this packet.
    pub ack: u32,
    /// The sender's ISN, if known.
    pub own_isn: Option<u32>,
    /// The receiver's ISN, if known.
    pub peer_isn: Option<u32>,
    /// The raw seq of the FIN this packet acknowledges, if it acknowledges one.
    pub acked_fin: Option<u32>,
    /// For a RST: the receiver's next expected seq and its window.
    pub rst_expected: Option<(u32, u32)>,
}

/// Everything the analysis says about one packet; reused from packet to packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketInfo {
    /// The frame number.
    pub number: u64,
    /// Capture time.
    pub ts: Timestamp,
    /// Connection id (first-seen order, from 0, like Wireshark's `tcp.stream`).
    pub conn: u64,
    /// Who sent it.
    pub from: Option<Side>,
    /// The annotation kinds.
    pub kinds: KindList,
    /// State changes this packet causes or proves (at most 4).
    pub transitions: [Option<Transition>; 4],
    /// Both endpoints' states after the packet (client, server).
    pub states: (TcpState, TcpState),
    /// seq relative to the sender's ISN (Wireshark's relative numbers).
    pub rel_seq: u32,
    /// ack relative to the receiver's ISN, when ACK is set.
    pub rel_ack: Option<u32>,
    /// The window in bytes after scaling, when the scale is known (not on SYNs).
    pub scaled_window: Option<u64>,
    /// Duplicate ACK: its number (1, 2, …) and the frame it duplicates.
    pub dup_ack: Option<(u32, u64)>,
    /// SYN / SYN-ACK retransmission: try number (2 for the first resend) and ns since the
    /// previous try.
    pub attempt: Option<(u32, i64)>,
    /// Which handshake packet was lost after the capture point, on a handshake retransmission.
    pub lost_hint: Option<LostHint>,
    /// Handshake timing in ns: SYN→SYN-ACK on the SYN-ACK, SYN-ACK→ACK on the final ACK.
    pub rtt_ns: Option<i64>,
    /// Step of a simultaneous open or split handshake (2, 3 or 4 of 4).
    pub open_step: Option<u8>,
    /// Close step: (number, total) with total 0 when not yet known (the first FIN).
    pub close_step: Option<(u8, u8)>,
    /// This FIN crossed the peer's unacknowledged FIN: a simultaneous close.
    pub simultaneous_fin: bool,
    /// A RST's acceptability.
    pub rst: Option<RstCheck>,
    /// A RST sent after unanswered keep-alives: the peer is unreachable, so the RST most
    /// likely never reaches it and the peer's state is left as it was.
    pub rst_peer_unreachable: bool,
    /// Linux's zero-length zero-window probe (seq = next − 1), which Wireshark calls keep-alive.
    pub linux_zwp: bool,
    /// Payload bytes.
    pub payload: u32,
    /// Numbers for `--explain`.
    pub explain: Explain,
    /// 2 MSL in ns (for the TIME_WAIT text).
    pub two_msl_ns: i64,
    /// The connection's record is already out (it closed, and the close linger is over):
    /// this packet is analysed but counted in [`AnalysisStats::time_wait_packets`], not in
    /// the record.
    pub after_record: bool,
    /// This SYN took the 4-tuple of a closed connection whose record is already out: that
    /// connection's id and last packet time (its TIME_WAIT ends here).
    pub replaced: Option<(u64, Timestamp)>,
    /// Before this packet, the client had acknowledged since its last handshake SYN (an ACK
    /// without SYN or RST, not a SYN retransmission). The detectors read it here instead of
    /// looking up their own record of the connection on every packet. Not kept once the
    /// connection's record is out ([`PacketInfo::after_record`]): the detectors forgot it then.
    pub client_acked: bool,
}

impl PacketInfo {
    /// The transitions that happened.
    pub fn transitions(&self) -> impl Iterator<Item = &Transition> {
        self.transitions.iter().flatten()
    }
    /// Records a transition (ignored when the list is full).
    fn push_transition(&mut self, t: Transition) {
        if let Some(slot) = self.transitions.iter_mut().find(|s| s.is_none()) {
            *slot = Some(t);
        }
    }
}

/// Per-side totals of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideCounts {
    /// Packets sent.
    pub packets: u64,
    /// Payload bytes sent (retransmissions included).
    pub bytes: u64,
    /// Retransmission-family packets (retransmission, fast, spurious, out-of-order).
    pub retransmissions: u64,
    /// Duplicate ACKs sent.
    pub dup_acks: u64,
    /// Zero-window advertisements sent.
    pub zero_windows: u64,
}

/// Zeek's history letters, fixed capacity.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZeekHistory {
    buf: [u8; 32],
    len: u8,
}

impl ZeekHistory {
    /// As text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
    fn from_str(s: &str) -> Self {
        let mut h = ZeekHistory {
            buf: [0; 32],
            len: 0,
        };
        let n = s.len().min(32);
        h.buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        h.len = n as u8;
        h
    }
}

/// The end-of-connection record.
#[derive(Clone, Copy, Debug)]
pub struct ConnSummary {
    /// Connection id.
    pub id: u64,
    /// Client address and port.
    pub client: SocketAddr,
    /// Server address and port.
    pub server: SocketAddr,
    /// First packet.
    pub first_ts: Timestamp,
    /// Last packet.
    pub last_ts: Timestamp,
    /// The first packet's number.
    pub first_packet: u64,
    /// The last packet's number.
    pub last_packet: u64,
    /// Final client state.
    pub client_state: TcpState,
    /// Final server state.
    pub server_state: TcpState,
    /// Handshake result.
    pub handshake: Handshake,
    /// SYN→SYN-ACK time (ns).
    pub syn_synack_ns: Option<i64>,
    /// SYN-ACK→ACK time (ns).
    pub synack_ack_ns: Option<i64>,
    /// SYN retransmissions seen (either side's, after a simultaneous open).
    pub syn_retransmissions: u32,
    /// SYN-ACK retransmissions seen (either side's, after a simultaneous open).
    pub synack_retransmissions: u32,
    /// Client totals.
    pub client_counts: SideCounts,
    /// Server totals.
    pub server_counts: SideCounts,
    /// How it closed.
    pub close: CloseKind,
    /// Who closed first.
    pub close_initiator: Option<Initiator>,
    /// Who reached TIME_WAIT: `client`, `server` or `both`.
    pub time_wait_on: Option<&'static str>,
    /// Zeek's conn_state.
    pub zeek_conn_state: &'static str,
    /// Zeek's history.
    pub zeek_history: ZeekHistory,
    /// Seen without its handshake.
    pub midstream: bool,
    /// Started on a 4-tuple an earlier connection of this capture used.
    pub port_reuse: bool,
    /// Why the record was emitted.
    pub end: EndReason,
    /// The server's SYN-ACK came from a SYN cookie (set by the detectors, `crate::detect`).
    pub syn_cookie: bool,
    /// The server's largest payloads (the SYN-cookie detector's MSS evidence).
    pub server_payload: ServerPayload,
}

/// The server's largest payload no larger than the MSS of the client's handshake SYN (536
/// without the option), and how many packets carried it, counted since that SYN. Kept by the
/// connection, whose record every packet touches anyway, for the SYN-cookie detector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerPayload {
    /// The client SYN's MSS.
    pub cap: u32,
    /// Largest payload of at most `cap` bytes (0: none).
    pub max: u32,
    /// Packets with `max` bytes.
    pub at_max: u32,
}

impl ServerPayload {
    /// Starts again at a client's handshake SYN announcing `mss`.
    pub(crate) fn new(mss: Option<u16>) -> Self {
        ServerPayload {
            cap: u32::from(mss.unwrap_or(536)),
            max: 0,
            at_max: 0,
        }
    }

    /// A server packet (not SYN, not RST) with `len` payload bytes.
    pub(crate) fn add(&mut self, len: u32) {
        if len <= self.cap {
            if len > self.max {
                self.max = len;
                self.at_max = 1;
            } else if len == self.max {
                self.at_max += 1;
            }
        }
    }
}

/// Analysis-wide counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnalysisStats {
    /// TCP packets analysed.
    pub packets: u64,
    /// Connections started.
    pub connections: u64,
    /// Connections evicted by the connection limit.
    pub evicted: u64,
    /// Connections ended by the idle timeout.
    pub idle_expired: u64,
    /// Most connections held at once (closed ones waiting out TIME_WAIT included).
    pub peak_live: u64,
    /// Packets that came after their connection's record went out (closed connections
    /// waiting out TIME_WAIT: retransmitted FINs and ACKs, RSTs, stray segments).
    pub time_wait_packets: u64,
    /// Packets per annotation kind, in [`ALL_KINDS`] order.
    pub kinds: [u64; ALL_KINDS.len()],
}

/// Connections ended per [`Analyzer::finish_some`] call.
pub const FINISH_CHUNK: usize = 4096;

/// The flow table plus the per-packet analysis: the pipeline's entry point.
#[derive(Debug)]
pub struct Analyzer {
    table: FlowTable,
    info: PacketInfo,
    ended: Vec<ConnSummary>,
    stats: AnalysisStats,
}

impl Analyzer {
    /// A new, empty analyzer.
    pub fn new(cfg: AnalysisConfig) -> Self {
        Analyzer {
            table: FlowTable::new(cfg),
            info: PacketInfo::default(),
            ended: Vec::new(),
            stats: AnalysisStats::default(),
        }
    }

    /// Analyses one TCP segment (in capture order).
    pub fn packet(&mut self, seg: &Segment) -> &PacketInfo {
        let key = self.table.key(seg);
        self.packet_keyed(seg, &key)
    }

    /// [`Analyzer::packet`] for a segment whose [`Analyzer::flow_key`] is known.
    #[inline]
    pub fn packet_keyed(&mut self, seg: &Segment, key: &FlowKey) -> &PacketInfo {
        self.table
            .packet(seg, key, &mut self.info, &mut self.ended, &mut self.stats);
        self.stats.packets += 1;
        for k in self.info.kinds.as_slice() {
            self.stats.kinds[k.index()] += 1;
        }
        &self.info
    }

    /// The flow table's key of the connection of `seg` ([`FlowTable::key`]).
    #[inline]
    pub fn flow_key(&self, seg: &Segment) -> FlowKey {
        self.table.key(seg)
    }

    /// A hint that a packet with this [`Analyzer::flow_key`] comes soon
    /// ([`FlowTable::prefetch`]). Changes nothing.
    #[inline]
    pub fn prefetch(&self, key: &FlowKey, step: u8) {
        self.table.prefetch(key, step);
    }

    /// Whether connections ended since the last [`Analyzer::drain_ended`].
    #[inline]
    pub fn has_ended(&self) -> bool {
        !self.ended.is_empty()
    }

    /// The connections that ended since the last call, in the order they ended.
    pub fn drain_ended(&mut self) -> std::vec::Drain<'_, ConnSummary> {
        self.ended.drain(..)
    }

    /// Ends every connection still held (end of capture), in id order.
    pub fn finish(&mut self) {
        self.table.finish(&mut self.ended);
    }

    /// Ends the next (at most [`FINISH_CHUNK`]) connections still held, in id order, and says
    /// whether any are left. Called until it says none, draining [`Analyzer::drain_ended`]
    /// after each call and analysing nothing in between, it ends the same connections in the
    /// same order as [`Analyzer::finish`], a chunk at a time: the summaries of a capture cut
    /// short with millions of connections open never all exist at once.
    pub fn finish_some(&mut self) -> bool {
        self.table.finish_some(&mut self.ended, FINISH_CHUNK)
    }

    /// Analysis-wide counts.
    pub fn stats(&self) -> &AnalysisStats {
        &self.stats
    }

    /// Connections currently held.
    pub fn live(&self) -> usize {
        self.table.len()
    }
}

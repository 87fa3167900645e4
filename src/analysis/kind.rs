//! Annotation kinds: one snake_case name each, the same in text and JSON.

use serde::Serialize;

/// What the analysis says about one packet. Wireshark's kinds keep Wireshark's definitions
/// (see `docs/analysis.md`); the others are tcplens's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Handshake step 1: the client's SYN.
    HandshakeSyn,
    /// Handshake step 2: the server's SYN-ACK.
    HandshakeSynack,
    /// Handshake step 3: the client's ACK of the SYN-ACK.
    HandshakeAck,
    /// Simultaneous open (RFC 9293 §3.5, Figure 7): the server's own SYN sent while the
    /// client's SYN is unanswered, and the SYN-ACK each side then sends.
    SimultaneousOpen,
    /// Split handshake (SYN, SYN, SYN-ACK, ACK): after a simultaneous-open start, the ACK of
    /// the one SYN-ACK that completes the open.
    SplitHandshake,
    /// The client sent its SYN again (same ISN).
    SynRetransmission,
    /// The server sent its SYN-ACK again.
    SynackRetransmission,
    /// The server answered the SYN with a RST.
    Refused,
    /// A SYN carries data (TCP Fast Open).
    SynWithData,
    /// A handshake ACK number is not the peer's ISN + 1.
    BadHandshakeAck,
    /// Wireshark: retransmission (also set on fast and spurious ones).
    Retransmission,
    /// Wireshark: fast retransmission.
    FastRetransmission,
    /// Wireshark: spurious retransmission.
    SpuriousRetransmission,
    /// Wireshark: out-of-order.
    OutOfOrder,
    /// Wireshark: previous segment not captured.
    LostSegment,
    /// Wireshark: ACKed segment that was not captured.
    AckLostSegment,
    /// Wireshark: duplicate ACK.
    DuplicateAck,
    /// Wireshark: zero window.
    ZeroWindow,
    /// Wireshark: zero-window probe (also Linux's zero-length probe, see the docs).
    ZeroWindowProbe,
    /// Wireshark: ACK of a zero-window probe.
    ZeroWindowProbeAck,
    /// Wireshark: window update.
    WindowUpdate,
    /// Wireshark: the receiver's window is full.
    WindowFull,
    /// Wireshark: keep-alive.
    KeepAlive,
    /// Wireshark: ACK of a keep-alive.
    KeepAliveAck,
    /// A side's first FIN.
    Fin,
    /// The first ACK of a FIN.
    CloseAck,
    /// A side enters CLOSE_WAIT (the passive closer).
    CloseWait,
    /// A side enters TIME_WAIT (the active closer).
    TimeWait,
    /// A RST.
    Rst,
    /// A new connection on a 4-tuple an earlier connection used.
    PortReuse,
    /// The first packet of a connection whose handshake was not captured.
    Midstream,
}

/// Every kind, in the order used for counts.
pub const ALL_KINDS: [Kind; 31] = [
    Kind::HandshakeSyn,
    Kind::HandshakeSynack,
    Kind::HandshakeAck,
    Kind::SimultaneousOpen,
    Kind::SplitHandshake,
    Kind::SynRetransmission,
    Kind::SynackRetransmission,
    Kind::Refused,
    Kind::SynWithData,
    Kind::BadHandshakeAck,
    Kind::Retransmission,
    Kind::FastRetransmission,
    Kind::SpuriousRetransmission,
    Kind::OutOfOrder,
    Kind::LostSegment,
    Kind::AckLostSegment,
    Kind::DuplicateAck,
    Kind::ZeroWindow,
    Kind::ZeroWindowProbe,
    Kind::ZeroWindowProbeAck,
    Kind::WindowUpdate,
    Kind::WindowFull,
    Kind::KeepAlive,
    Kind::KeepAliveAck,
    Kind::Fin,
    Kind::CloseAck,
    Kind::CloseWait,
    Kind::TimeWait,
    Kind::Rst,
    Kind::PortReuse,
    Kind::Midstream,
];

impl Kind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HandshakeSyn => "handshake_syn",
            Kind::HandshakeSynack => "handshake_synack",
            Kind::HandshakeAck => "handshake_ack",
            Kind::SimultaneousOpen => "simultaneous_open",
            Kind::SplitHandshake => "split_handshake",
            Kind::SynRetransmission => "syn_retransmission",
            Kind::SynackRetransmission => "synack_retransmission",
            Kind::Refused => "refused",
            Kind::SynWithData => "syn_with_data",
            Kind::BadHandshakeAck => "bad_handshake_ack",
            Kind::Retransmission => "retransmission",
            Kind::FastRetransmission => "fast_retransmission",
            Kind::SpuriousRetransmission => "spurious_retransmission",
            Kind::OutOfOrder => "out_of_order",
            Kind::LostSegment => "lost_segment",
            Kind::AckLostSegment => "ack_lost_segment",
            Kind::DuplicateAck => "duplicate_ack",
            Kind::ZeroWindow => "zero_window",
            Kind::ZeroWindowProbe => "zero_window_probe",
            Kind::ZeroWindowProbeAck => "zero_window_probe_ack",
            Kind::WindowUpdate => "window_update",
            Kind::WindowFull => "window_full",
            Kind::KeepAlive => "keep_alive",
            Kind::KeepAliveAck => "keep_alive_ack",
            Kind::Fin => "fin",
            Kind::CloseAck => "close_ack",
            Kind::CloseWait => "close_wait",
            Kind::TimeWait => "time_wait",
            Kind::Rst => "rst",
            Kind::PortReuse => "port_reuse",
            Kind::Midstream => "midstream",
        }
    }

    /// Position in [`ALL_KINDS`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The Wireshark field this kind mirrors (`tcp.analysis.<name>`), if any.
    pub fn wireshark_field(self) -> Option<&'static str> {
        Some(match self {
            Kind::Retransmission => "tcp.analysis.retransmission",
            Kind::FastRetransmission => "tcp.analysis.fast_retransmission",
            Kind::SpuriousRetransmission => "tcp.analysis.spurious_retransmission",
            Kind::OutOfOrder => "tcp.analysis.out_of_order",
            Kind::LostSegment => "tcp.analysis.lost_segment",
            Kind::AckLostSegment => "tcp.analysis.ack_lost_segment",
            Kind::DuplicateAck => "tcp.analysis.duplicate_ack",
            Kind::ZeroWindow => "tcp.analysis.zero_window",
            Kind::ZeroWindowProbe => "tcp.analysis.zero_window_probe",
            Kind::ZeroWindowProbeAck => "tcp.analysis.zero_window_probe_ack",
            Kind::WindowUpdate => "tcp.analysis.window_update",
            Kind::WindowFull => "tcp.analysis.window_full",
            Kind::KeepAlive => "tcp.analysis.keep_alive",
            Kind::KeepAliveAck => "tcp.analysis.keep_alive_ack",
            _ => return None,
        })
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Capacity of [`KindList`]: more kinds than any packet can get at once.
const KIND_CAP: usize = 12;

/// A small fixed-capacity list of kinds: no allocation per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindList {
    items: [Kind; KIND_CAP],
    len: u8,
    /// The kinds held, a bit each ([`Kind::index`]): the analysis asks "is this kind set?"
    /// several times per packet, and a bit test is cheaper than a scan of `items`.
    bits: u32,
}

const _: () = assert!(ALL_KINDS.len() <= 32);

impl Default for KindList {
    fn default() -> Self {
        KindList {
            items: [Kind::Midstream; KIND_CAP],
            len: 0,
            bits: 0,
        }
    }
}

impl KindList {
    /// Adds a kind once (a repeated push is ignored, as is one past the capacity).
    #[inline]
    pub fn push(&mut self, k: Kind) {
        if !self.contains(k) && usize::from(self.len) < KIND_CAP {
            self.items[usize::from(self.len)] = k;
            self.len += 1;
            self.bits |= Self::bit(k);
        }
    }
    /// True when `k` is in the list.
    #[inline]
    pub fn contains(&self, k: Kind) -> bool {
        self.bits & Self::bit(k) != 0
    }
    /// The kinds as a bit set: bit [`Kind::index`] for each.
    #[inline]
    pub fn bits(&self) -> u32 {
        self.bits
    }
    #[inline]
    fn bit(k: Kind) -> u32 {
        1 << (k.index() & 31)
    }
    /// The kinds, in the order they were found.
    pub fn as_slice(&self) -> &[Kind] {
        &self.items[..usize::from(self.len)]
    }
    /// No kinds.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Empties the list.
    pub fn clear(&mut self) {
        self.len = 0;
        self.bits = 0;
    }
}

impl Serialize for KindList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_are_exact() {
        let contract = [
            "retransmission",
            "fast_retransmission",
            "spurious_retransmission",
            "out_of_order",
            "lost_segment",
            "ack_lost_segment",
            "duplicate_ack",
            "zero_window",
            "zero_window_probe",
            "zero_window_probe_ack",
            "window_update",
            "window_full",
            "keep_alive",
            "keep_alive_ack",
            "handshake_syn",
            "handshake_synack",
            "handshake_ack",
            "syn_retransmission",
            "synack_retransmission",
            "refused",
            "fin",
            "close_ack",
            "rst",
            "port_reuse",
            "midstream",
            "time_wait",
        ];
        let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
        for c in contract {
            assert!(names.contains(&c), "{c} missing");
        }
        for (i, k) in ALL_KINDS.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }

    #[test]
    fn list_keeps_order_and_ignores_repeats() {
        let mut l = KindList::default();
        l.push(Kind::Retransmission);
        l.push(Kind::FastRetransmission);
        l.push(Kind::Retransmission);
        assert_eq!(
            l.as_slice(),
            &[Kind::Retransmission, Kind::FastRetransmission]
        );
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"["retransmission","fast_retransmission"]"#
        );
    }
}

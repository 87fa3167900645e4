//! Per-state unit tests of the analysis, smoltcp style: packet templates changed with struct
//! update syntax, `#[track_caller]` helpers, and sequence numbers just below 2^32 by default so
//! every test crosses the wrap. Expected behaviour comes from RFC 9293 (states, SYN/FIN
//! consuming one number, RST acceptability), RFC 5961 §3 (exact RST) and Wireshark's
//! documented flag definitions (notes/peers.md §3.2), never from running tcplens.

use std::net::{IpAddr, Ipv4Addr};
use tcplens::analysis::{
    AnalysisConfig, Analyzer, ConnSummary, EndReason, Handshake, Kind, LostHint, PacketInfo,
    RstCheck, Side, TcpState,
};
use tcplens::capture::Timestamp;
use tcplens::decode::{OptionSummary, Segment, TcpFlags};

use TcpState::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
const CPORT: u16 = 49152;
const SPORT: u16 = 443;
/// Client ISN: the SYN and the first bytes cross 2^32.
const REMOTE_SEQ: u32 = u32::MAX - 1;
/// Server ISN, also near the wrap.
const LOCAL_SEQ: u32 = u32::MAX - 300;
const MS: i64 = 1_000_000;

const S: u16 = TcpFlags::SYN;
const A: u16 = TcpFlags::ACK;
const F: u16 = TcpFlags::FIN;
const R: u16 = TcpFlags::RST;
const P: u16 = TcpFlags::PSH;

/// A client→server segment.
fn c2s() -> Segment {
    Segment {
        number: 0,
        ts: Timestamp(0),
        src: CLIENT,
        dst: SERVER,
        sport: CPORT,
        dport: SPORT,
        seq: REMOTE_SEQ,
        ack: 0,
        flags: TcpFlags(0),
        window: 64000,
        payload_len: 0,
        options: OptionSummary::default(),
        ttl: 64,
    }
}

/// A server→client segment.
fn s2c() -> Segment {
    Segment {
        src: SERVER,
        dst: CLIENT,
        sport: SPORT,
        dport: CPORT,
        seq: LOCAL_SEQ,
        window: 65000,
        ..c2s()
    }
}

fn cseq(off: u32) -> u32 {
    REMOTE_SEQ.wrapping_add(off)
}
fn sseq(off: u32) -> u32 {
    LOCAL_SEQ.wrapping_add(off)
}

struct Net {
    a: Analyzer,
    now: i64,
    n: u64,
    ended: Vec<ConnSummary>,
}

impl Net {
    fn new() -> Net {
        Net::with(AnalysisConfig::default())
    }
    fn with(cfg: AnalysisConfig) -> Net {
        Net {
            a: Analyzer::new(cfg),
            now: 1_700_000_000_000_000_000,
            n: 0,
            ended: Vec::new(),
        }
    }
    /// Sends `seg` `gap_ms` after the previous packet.
    #[track_caller]
    fn send(&mut self, gap_ms: i64, seg: Segment) -> PacketInfo {
        self.now += gap_ms * MS;
        self.n += 1;
        let seg = Segment {
            number: self.n,
            ts: Timestamp(self.now),
            ..seg
        };
        let info = *self.a.packet(&seg);
        self.ended.extend(self.a.drain_ended());
        info
    }
    fn finish(&mut self) -> Vec<ConnSummary> {
        self.a.finish();
        self.ended.extend(self.a.drain_ended());
        std::mem::take(&mut self.ended)
    }
    /// SYN, SYN-ACK, ACK (1 ms apart).
    fn handshake(&mut self) {
        self.send(
            0,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        self.send(
            1,
            Segment {
                flags: TcpFlags(S | A),
                ack: cseq(1),
                ..s2c()
            },
        );
        self.send(
            1,
            Segment {
                flags: TcpFlags(A),
                seq: cseq(1),
                ack: sseq(1),
                ..c2s()
            },
        );
    }
}

#[track_caller]
fn has(p: &PacketInfo, k: Kind) {
    assert!(
        p.kinds.contains(k),
        "{k:?} missing in {:?}",
        p.kinds.as_slice()
    );
}
#[track_caller]
fn lacks(p: &PacketInfo, k: Kind) {
    assert!(
        !p.kinds.contains(k),
        "{k:?} unexpected in {:?}",
        p.kinds.as_slice()
    );
}
#[track_caller]
fn states(p: &PacketInfo, client: TcpState, server: TcpState) {
    assert_eq!(p.states, (client, server));
}

mod closed_and_listen {
    use super::*;

    #[test]
    fn syn_moves_client_to_syn_sent() {
        let mut n = Net::new();
        let p = n.send(
            0,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        has(&p, Kind::HandshakeSyn);
        // Nothing shows the server listening until it answers.
        states(&p, SynSent, Closed);
        assert_eq!(p.from, Some(Side::Client));
        assert_eq!(p.conn, 0);
    }

    #[test]
    fn syn_with_data_is_fast_open() {
        let mut n = Net::new();
        let p = n.send(
            0,
            Segment {
                flags: TcpFlags(S),
                payload_len: 100,
                ..c2s()
            },
        );
        has(&p, Kind::SynWithData);
    }
}

mod syn_sent {
    use super::*;

    #[test]
    fn syn_retransmissions_are_numbered_with_backoff() {
        let mut n = Net::new();
        n.send(
            0,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        let p2 = n.send(
            1000,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        let p3 = n.send(
            2000,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        has(&p2, Kind::SynRetransmission);
        assert_eq!(p2.attempt, Some((2, 1000 * MS)));
        assert_eq!(p3.attempt, Some((3, 2000 * MS)));
        assert_eq!(p3.lost_hint, Some(LostHint::NoAnswerSeen));
        // Wireshark: a SYN whose seq is below nextseq does not advance: a retransmission.
        has(&p2, Kind::Retransmission);
        let c = n.finish();
        assert_eq!(c.len(), 1, "same ISN: same connection");
        assert_eq!(c[0].handshake, Handshake::Unanswered);
        assert_eq!(c[0].syn_retransmissions, 2);
        assert_eq!(
            (c[0].zeek_conn_state, c[0].zeek_history.as_str()),
            ("S0", "S")
        );
    }

    #[test]
    fn rst_acking_the_syn_refuses() {
        // RFC 9293 §3.10.7.3: in SYN-SENT a RST is acceptable if its ACK acknowledges the SYN.
        let mut n = Net::new();
        n.send(
            0,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        let p = n.send(
            1,
            Segment {
                flags: TcpFlags(R | A),
                seq: 0,
                ack: cseq(1),
                window: 0,
                ..s2c()
            },
        );
        has(&p, Kind::Refused);
        has(&p, Kind::Rst);
        assert_eq!(p.rst, Some(RstCheck::RefusalValid));
        states(&p, Closed, Closed);
        let c = n.finish();
        assert_eq!(c[0].handshake, Handshake::Refused);
        assert_eq!(c[0].zeek_conn_state, "REJ");
    }

    #[test]
    fn rst_with_wrong_ack_is_ignored() {
        let mut n = Net::new();
        n.send(
            0,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        let p = n.send(
            1,
            Segment {
                flags: TcpFlags(R | A),
                seq: 0,
                ack: cseq(0),
                ..s2c()
            },
        );
        lacks(&p, Kind::Refused);
        assert_eq!(p.rst, Some(RstCheck::RefusalInvalid));
        assert_eq!(p.states.0, SynSent);
    }

    #[test]
    fn synack_must_ack_isn_plus_one() {
        let mut n = Net::new();
        n.send(
            0,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        let p = n.send(
            1,
            Segment {
                flags: TcpFlags(S | A),
                ack: cseq(5),
                ..s2c()
            },
        );
        has(&p, Kind::BadHandshakeAck);
    }
}

mod syn_received {
    use super::*;

    #[test]
    fn synack_then_ack_establish_both() {
        let mut n = Net::new();
        n.send(
            0,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        let p2 = n.send(
            3,
            Segment {
                flags: TcpFlags(S | A),
                ack: cseq(1),
                ..s2c()
            },
        );
        has(&p2, Kind::HandshakeSynack);
        states(&p2, SynSent, SynReceived);
        let t = p2.transitions().next().unwrap();
        assert_eq!((t.side, t.from, t.to), (Side::Server, Listen, SynReceived));
        assert_eq!(p2.rtt_ns, Some(3 * MS));
        assert_eq!(p2.rel_ack, Some(1));
        let p3 = n.send(
            2,
            Segment {
                flags: TcpFlags(A),
                seq: cseq(1),
                ack: sseq(1),
                ..c2s()
            },
        );
        has(&p3, Kind::HandshakeAck);
        lacks(&p3, Kind::BadHandshakeAck);
        states(&p3, Established, Established);
        assert_eq!(p3.rtt_ns, Some(2 * MS));
        assert_eq!((p3.rel_seq, p3.rel_ack), (1, Some(1)));
        assert_eq!(n.finish()[0].handshake, Handshake::Complete);
    }

    #[test]
    fn repeated_syn_after_synack_means_synack_lost() {
        let mut n = Net::new();
        n.send(
            0,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        n.send(
            1,
            Segment {
                flags: TcpFlags(S | A),
                ack: cseq(1),
                ..s2c()
            },
        );
        let p = n.send(
            1000,
            Segment {
                flags: TcpFlags(S),
                ..c2s()
            },
        );
        assert_eq!(p.lost_hint, Some(LostHint::SynAckLostAfterTap));
        let q = n.send(
            1,
            Segment {
                flags: TcpFlags(S | A),
                ack: cseq(1),
                ..s2c()
            },
        );
        has(&q, Kind::SynackRetransmission);
        assert_eq!(q.lost_hint, Some(LostHint::SynAckLostAfterTap));
    }

    #[test]
    fn synack_resent_after_ack_means_ack_lost() {
        let mut n = Net::new();
        n.handshake();
        let p = n.send(
            1000,
            Segment {
                flags: TcpFlags(S | A),
                ack: cseq(1),
                ..s2c()
            },
        );
        has(&p, Kind::SynackRetransmission);
        assert_eq!(p.attempt, Some((2, 1001 * MS)));
        assert_eq!(p.lost_hint, Some(LostHint::FinalAckLostAfterTap));
    }
}

/// RFC 9293 §3.5, Figure 7: both sides send a SYN; each goes SYN-SENT → SYN-RECEIVED on the
/// other's SYN and answers with a SYN-ACK repeating its own ISN; each goes ESTABLISHED when
/// its SYN is acknowledged. The client stays the sender of the first SYN.
mod simultaneous_open {
    use super::*;

    fn syn(from: Segment) -> Segment {
        Segment {
            flags: TcpFlags(S),
            ..from
        }
    }
    /// Client SYN-ACK: seq is its ISN again, ack the server's ISN + 1.
    fn client_synack() -> Segment {
        Segment {
            flags: TcpFlags(S | A),
            ack: sseq(1),
            ..c2s()
        }
    }
    fn server_synack() -> Segment {
        Segment {
            flags: TcpFlags(S | A),
            ack: cseq(1),
            ..s2c()
        }
    }

    #[test]
    fn figure_7_crossing_syns() {
        let mut n = Net::new();
        // 2. A: SYN-SENT --> <SEQ=100><CTL=SYN>
        let p1 = n.send(0, syn(c2s()));
        has(&p1, Kind::HandshakeSyn);
        states(&p1, SynSent, Closed);
        // 3. B sends its own SYN before A's arrives: B is in SYN-SENT too.
        let p2 = n.send(1, syn(s2c()));
        has(&p2, Kind::SimultaneousOpen);
        lacks(&p2, Kind::HandshakeSyn);
        assert_eq!(p2.open_step, Some(2));
        states(&p2, SynSent, SynSent);
        let t = p2.transitions().next().unwrap();
        assert_eq!((t.side, t.from, t.to), (Side::Server, Closed, SynSent));
        // 5. A got B's SYN: SYN-RECEIVED, <SEQ=100><ACK=301><CTL=SYN,ACK>.
        let p3 = n.send(2, client_synack());
        has(&p3, Kind::SimultaneousOpen);
        lacks(&p3, Kind::SynackRetransmission);
        lacks(&p3, Kind::HandshakeSynack);
        lacks(&p3, Kind::BadHandshakeAck);
        assert_eq!(p3.open_step, Some(3));
        assert_eq!(p3.attempt, None);
        states(&p3, SynReceived, SynSent);
        assert_eq!(p3.rtt_ns, Some(2 * MS), "B's SYN → A's SYN-ACK");
        // Wireshark: a SYN-ACK whose seq (the ISN again) is below nextseq is a retransmission.
        has(&p3, Kind::Retransmission);
        // 6./7. B's SYN-ACK: B had A's SYN (SYN-RECEIVED) and A's SYN-ACK was sent before,
        // so B is ESTABLISHED; it acknowledges A's SYN, so A is ESTABLISHED.
        let p4 = n.send(3, server_synack());
        has(&p4, Kind::SimultaneousOpen);
        lacks(&p4, Kind::SynackRetransmission);
        assert_eq!(p4.open_step, Some(4));
        states(&p4, Established, Established);
        let ts: Vec<_> = p4.transitions().map(|t| (t.side, t.from, t.to)).collect();
        assert_eq!(
            ts,
            [
                (Side::Server, SynSent, SynReceived),
                (Side::Client, SynReceived, Established),
                (Side::Server, SynReceived, Established),
            ]
        );
        assert_eq!(p4.rtt_ns, Some(3 * MS));
        // Data flows; no more transitions.
        let p5 = n.send(
            1,
            Segment {
                flags: TcpFlags(A | P),
                seq: cseq(1),
                ack: sseq(1),
                payload_len: 10,
                ..c2s()
            },
        );
        assert_eq!(p5.transitions().count(), 0);
        lacks(&p5, Kind::HandshakeAck);
        let c = n.finish();
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].client.port(),
            CPORT,
            "the first SYN's sender is the client"
        );
        assert_eq!(c[0].handshake, Handshake::Complete);
        assert_eq!(
            (c[0].client_state, c[0].server_state),
            (Established, Established)
        );
        assert_eq!(
            (c[0].syn_retransmissions, c[0].synack_retransmissions),
            (0, 0)
        );
        assert_eq!(c[0].client_counts.retransmissions, 0);
        // Zeek: a responder SYN without ACK establishes both ends; SYN-ACKs repeating the SYN's
        // seq add no letter (notes/peers.md §5.2).
        assert_eq!(
            (c[0].zeek_conn_state, c[0].zeek_history.as_str()),
            ("S1", "SsD")
        );
    }

    #[test]
    fn second_synack_may_come_from_the_client() {
        // Seen from a point in the middle both SYN-ACKs cross too; either may come first.
        let mut n = Net::new();
        n.send(0, syn(c2s()));
        n.send(1, syn(s2c()));
        let p3 = n.send(1, server_synack());
        states(&p3, SynSent, SynReceived);
        let p4 = n.send(1, client_synack());
        states(&p4, Established, Established);
        has(&p4, Kind::SimultaneousOpen);
        assert_eq!(n.finish()[0].handshake, Handshake::Complete);
    }

    #[test]
    fn split_handshake_syn_syn_synack_ack() {
        // Suricata's "4whs": the server answers the SYN with a bare SYN, the client (SYN-SENT
        // gets a SYN: SYN-RECEIVED) sends a SYN-ACK, the server (SYN-SENT gets an ACK of its
        // SYN: ESTABLISHED, RFC 9293 §3.10.7.3) ACKs it, which opens the client.
        let mut n = Net::new();
        n.send(0, syn(c2s()));
        let p2 = n.send(1, syn(s2c()));
        has(&p2, Kind::SimultaneousOpen);
        let p3 = n.send(1, client_synack());
        states(&p3, SynReceived, SynSent);
        let p4 = n.send(
            1,
            Segment {
                flags: TcpFlags(A),
                seq: sseq(1),
                ack: cseq(1),
                ..s2c()
            },
        );
        has(&p4, Kind::SplitHandshake);
        lacks(&p4, Kind::HandshakeAck);
        lacks(&p4, Kind::BadHandshakeAck);
        assert_eq!(p4.open_step, Some(4));
        states(&p4, Established, Established);
        assert_eq!(p4.rtt_ns, Some(MS));
        let c = n.finish();
        assert_eq!(c[0].handshake, Handshake::Complete);
        assert_eq!(c[0].client.port(), CPORT);
    }

    #[test]
    fn resent_synack_is_a_synack_retransmission() {
        let mut n = Net::new();
        n.send(0, syn(c2s()));
        n.send(1, syn(s2c()));
        n.send(1, client_synack());
        let p4 = n.send(200, client_synack());
        has(&p4, Kind::SynackRetransmission);
        lacks(&p4, Kind::SimultaneousOpen);
        assert_eq!(
            p4.attempt,
            Some((2, 200 * MS)),
            "the second SYN-ACK, not the third SYN"
        );
        states(&p4, SynReceived, SynSent);
        let c = n.finish();
        assert_eq!(c[0].synack_retransmissions, 1);
        assert_eq!(c[0].syn_retransmissions, 0);
        assert_eq!(c[0].handshake, Handshake::Incomplete);
    }

    #[test]
    fn server_syn_after_its_synack_is_not_a_simultaneous_open() {
        let mut n = Net::new();
        n.send(0, syn(c2s()));
        n.send(1, server_synack());
        let p3 = n.send(1, syn(s2c()));
        lacks(&p3, Kind::SimultaneousOpen);
    }
}

mod established {
    use super::*;

    fn data(off: u32, len: u32) -> Segment {
        Segment {
            flags: TcpFlags(P | A),
            seq: cseq(off),
            ack: sseq(1),
            payload_len: len,
            ..c2s()
        }
    }
    fn ack_from_server(ack_off: u32) -> Segment {
        Segment {
            flags: TcpFlags(A),
            seq: sseq(1),
            ack: cseq(ack_off),
            ..s2c()
        }
    }

    #[test]
    fn data_across_the_wrap_is_in_order() {
        let mut n = Net::new();
        n.handshake();
        // REMOTE_SEQ + 1 + 100 crosses 2^32.
        let p = n.send(1, data(1, 100));
        assert!(p.kinds.is_empty(), "{:?}", p.kinds.as_slice());
        assert_eq!(p.rel_seq, 1);
        let q = n.send(1, data(101, 100));
        assert!(q.kinds.is_empty());
        assert_eq!(q.rel_seq, 101);
    }

    #[test]
    fn resent_data_is_a_retransmission_and_a_gap_is_a_lost_segment() {
        let mut n = Net::new();
        n.handshake();
        n.send(1, data(1, 100));
        // iRTT is 2 ms here: resent 50 ms later is not out-of-order.
        let p = n.send(50, data(1, 100));
        has(&p, Kind::Retransmission);
        let q = n.send(1, data(301, 100));
        has(&q, Kind::LostSegment);
        // The hole filled soon after the highest segment: out-of-order (within iRTT).
        let r = n.send(1, data(101, 200));
        has(&r, Kind::OutOfOrder);
        lacks(&r, Kind::Retransmission);
    }

    #[test]
    fn duplicate_acks_then_fast_retransmission() {
        let mut n = Net::new();
        n.handshake();
        n.send(1, data(1, 100));
        n.send(1, data(101, 100));
        let first = n.send(1, ack_from_server(101));
        lacks(&first, Kind::DuplicateAck);
        let d1 = n.send(1, ack_from_server(101));
        let d2 = n.send(1, ack_from_server(101));
        has(&d1, Kind::DuplicateAck);
        assert_eq!(d1.dup_ack, Some((1, first.number)));
        assert_eq!(d2.dup_ack, Some((2, first.number)));
        // Within 20 ms of the last duplicate ACK, at the acked seq: fast retransmission.
        let fr = n.send(5, data(101, 100));
        has(&fr, Kind::FastRetransmission);
        has(&fr, Kind::Retransmission);
    }

    #[test]
    fn data_already_acknowledged_is_spurious() {
        let mut n = Net::new();
        n.handshake();
        n.send(1, data(1, 100));
        n.send(1, ack_from_server(101));
        let p = n.send(300, data(1, 100));
        has(&p, Kind::SpuriousRetransmission);
    }

    #[test]
    fn acking_unseen_data() {
        let mut n = Net::new();
        n.handshake();
        n.send(1, data(1, 100));
        let p = n.send(1, ack_from_server(501));
        has(&p, Kind::AckLostSegment);
    }

    #[test]
    fn zero_window_probe_and_its_ack_then_window_update() {
        let mut n = Net::new();
        n.handshake();
        n.send(1, data(1, 100));
        let zw = n.send(
            1,
            Segment {
                window: 0,
                ..ack_from_server(101)
            },
        );
        has(&zw, Kind::ZeroWindow);
        let probe = n.send(200, data(101, 1));
        has(&probe, Kind::ZeroWindowProbe);
        let pa = n.send(
            1,
            Segment {
                window: 0,
                ..ack_from_server(101)
            },
        );
        has(&pa, Kind::ZeroWindowProbeAck);
        let wu = n.send(100, ack_from_server(101));
        has(&wu, Kind::WindowUpdate);
    }

    #[test]
    fn linux_style_zero_window_probe_is_also_keep_alive() {
        let mut n = Net::new();
        n.handshake();
        n.send(1, data(1, 100));
        n.send(
            1,
            Segment {
                window: 0,
                ..ack_from_server(101)
            },
        );
        let probe = n.send(
            200,
            Segment {
                flags: TcpFlags(A),
                seq: cseq(100),
                ack: sseq(1),
                ..c2s()
            },
        );
        has(&probe, Kind::KeepAlive);
        has(&probe, Kind::ZeroWindowProbe);
        assert!(probe.linux_zwp);
    }

    #[test]
    fn keep_alive_and_its_ack() {
        // Linux's first keep-alive comes after 2 hours: keep the connection that long.
        let mut n = Net::with(AnalysisConfig {
            idle_ns: 3 * 3_600_000 * MS,
            ..AnalysisConfig::default()
        });
        n.handshake();
        n.send(1, data(1, 100));
        n.send(1, ack_from_server(101));
        let ka = n.send(
            7_200_000,
            Segment {
                flags: TcpFlags(A),
                seq: cseq(100),
                ack: sseq(1),
                ..c2s()
            },
        );
        has(&ka, Kind::KeepAlive);
        lacks(&ka, Kind::Retransmission);
        let kaa = n.send(1, ack_from_server(101));
        has(&kaa, Kind::KeepAliveAck);
        lacks(&kaa, Kind::DuplicateAck);
    }
}

mod closing {
    use super::*;

    fn fin_from_client(off: u32, ack: u32) -> Segment {
        Segment {
            flags: TcpFlags(F | A),
            seq: cseq(off),
            ack: sseq(ack),
            ..c2s()
        }
    }
    fn fin_from_server(off: u32, ack: u32) -> Segment {
        Segment {
            flags: TcpFlags(F | A),
            seq: sseq(off),
            ack: cseq(ack),
            ..s2c()
        }
    }

    #[test]
    fn four_way_close_client_first() {
        let mut n = Net::new();
        n.handshake();
        let f1 = n.send(1, fin_from_client(1, 1));
        has(&f1, Kind::Fin);
        states(&f1, FinWait1, Established);
        // The FIN consumes one number: its ACK is seq + 1.
        let a2 = n.send(
            1,
            Segment {
                flags: TcpFlags(A),
                seq: sseq(1),
                ack: cseq(2),
                ..s2c()
            },
        );
        has(&a2, Kind::CloseAck);
        has(&a2, Kind::CloseWait);
        states(&a2, FinWait2, CloseWait);
        let f3 = n.send(1, fin_from_server(1, 2));
        states(&f3, FinWait2, LastAck);
        let a4 = n.send(
            1,
            Segment {
                flags: TcpFlags(A),
                seq: cseq(2),
                ack: sseq(2),
                ..c2s()
            },
        );
        has(&a4, Kind::TimeWait);
        states(&a4, TimeWait, Closed);
        assert_eq!(a4.close_step, Some((4, 4)));
        let c = &n.finish()[0];
        assert_eq!(c.close_initiator.map(|i| i.as_str()), Some("client"));
        assert_eq!(c.time_wait_on, Some("client"));
        assert_eq!(c.close.as_str(), "four_way");
        assert_eq!(
            (c.zeek_conn_state, c.zeek_history.as_str()),
            ("SF", "ShAFaf")
        );
    }

    #[test]
    fn three_way_close_server_first() {
        let mut n = Net::new();
        n.handshake();
        let f1 = n.send(1, fin_from_server(1, 1));
        states(&f1, Established, FinWait1);
        // FIN+ACK: the client's ACK of the server's FIN and its own FIN in one segment.
        let f2 = n.send(1, fin_from_client(1, 2));
        states(&f2, LastAck, FinWait2);
        assert_eq!(f2.close_step, Some((2, 3)));
        let a3 = n.send(
            1,
            Segment {
                flags: TcpFlags(A),
                seq: sseq(2),
                ack: cseq(2),
                ..s2c()
            },
        );
        states(&a3, Closed, TimeWait);
        let c = &n.finish()[0];
        assert_eq!(c.close.as_str(), "three_way");
        assert_eq!(c.time_wait_on, Some("server"));
    }

    #[test]
    fn simultaneous_close_goes_through_closing() {
        let mut n = Net::new();
        n.handshake();
        n.send(1, fin_from_client(1, 1));
        // The server's FIN crosses: it does not acknowledge the client's FIN.
        let f2 = n.send(0, fin_from_server(1, 1));
        states(&f2, FinWait1, FinWait1);
        let a3 = n.send(
            1,
            Segment {
                flags: TcpFlags(A),
                seq: cseq(2),
                ack: sseq(2),
                ..c2s()
            },
        );
        assert_eq!(a3.states.0, Closing);
        // RFC 9293 Figure 5: the server got the client's FIN before this ACK (sent earlier by
        // the same side), so it went FIN-WAIT-1 → CLOSING → TIME-WAIT, never FIN-WAIT-2.
        let server_path: Vec<TcpState> = a3
            .transitions()
            .filter(|t| t.side == Side::Server)
            .map(|t| t.to)
            .collect();
        assert_eq!(server_path, [Closing, TimeWait]);
        assert!(f2.simultaneous_fin);
        assert_eq!(f2.close_step, Some((2, 4)));
        let a4 = n.send(
            0,
            Segment {
                flags: TcpFlags(A),
                seq: sseq(2),
                ack: cseq(2),
                ..s2c()
            },
        );
        states(&a4, TimeWait, TimeWait);
        let c = &n.finish()[0];
        assert_eq!(c.close_initiator.map(|i| i.as_str()), Some("simultaneous"));
        assert_eq!(c.time_wait_on, Some("both"));
    }

    #[test]
    fn time_wait_ends_after_two_msl() {
        let mut n = Net::with(AnalysisConfig {
            msl_ns: 1000 * MS,
            ..AnalysisConfig::default()
        });
        n.handshake();
        n.send(1, fin_from_client(1, 1));
        n.send(1, fin_from_server(1, 2));
        n.send(
            1,
            Segment {
                flags: TcpFlags(A),
                seq: cseq(2),
                ack: sseq(2),
                ..c2s()
            },
        );
        assert_eq!(n.a.live(), 1);
        // Another connection's packets move capture time past 2 MSL.
        n.send(
            2500,
            Segment {
                flags: TcpFlags(S),
                sport: 50000,
                ..c2s()
            },
        );
        assert_eq!(n.ended.len(), 1);
        assert_eq!(n.ended[0].end, EndReason::Closed);
        assert_eq!(n.a.live(), 1);
    }
}

mod reset {
    use super::*;

    #[test]
    fn exact_rst_closes_both() {
        let mut n = Net::new();
        n.handshake();
        let p = n.send(
            1,
            Segment {
                flags: TcpFlags(R),
                seq: cseq(1),
                ..c2s()
            },
        );
        assert_eq!(p.rst, Some(RstCheck::Exact));
        states(&p, Closed, Closed);
        assert_eq!(n.finish()[0].zeek_conn_state, "RSTO");
    }

    #[test]
    fn in_window_rst_draws_a_challenge_and_keeps_state() {
        // RFC 5961 §3.2: in the window but not exactly at RCV.NXT.
        let mut n = Net::new();
        n.handshake();
        let p = n.send(
            1,
            Segment {
                flags: TcpFlags(R),
                seq: sseq(500),
                ..s2c()
            },
        );
        assert_eq!(p.rst, Some(RstCheck::InWindow));
        states(&p, Established, Closed);
    }

    #[test]
    fn out_of_window_rst_is_ignored() {
        let mut n = Net::new();
        n.handshake();
        let p = n.send(
            1,
            Segment {
                flags: TcpFlags(R),
                seq: sseq(1 << 30),
                ..s2c()
            },
        );
        assert_eq!(p.rst, Some(RstCheck::OutOfWindow));
        assert_eq!(p.states.0, Established);
    }
}

mod flow_table {
    use super::*;

    #[test]
    fn new_isn_after_close_is_port_reuse() {
        let mut n = Net::new();
        n.handshake();
        n.send(
            1,
            Segment {
                flags: TcpFlags(R),
                seq: cseq(1),
                ..c2s()
            },
        );
        let p = n.send(
            100,
            Segment {
                flags: TcpFlags(S),
                seq: 12345,
                ..c2s()
            },
        );
        has(&p, Kind::PortReuse);
        assert_eq!(p.conn, 1);
        assert_eq!(n.ended[0].end, EndReason::Replaced);
    }

    #[test]
    fn midstream_client_is_the_higher_port() {
        let mut n = Net::new();
        let p = n.send(
            0,
            Segment {
                flags: TcpFlags(P | A),
                payload_len: 10,
                ack: sseq(1),
                ..s2c()
            },
        );
        has(&p, Kind::Midstream);
        assert_eq!(p.from, Some(Side::Server));
        let c = &n.finish()[0];
        assert_eq!(c.handshake, Handshake::NotSeen);
        assert_eq!(c.client.port(), CPORT);
    }

    #[test]
    fn ids_in_first_seen_order_and_eviction_is_counted() {
        let mut n = Net::with(AnalysisConfig {
            max_connections: 2,
            ..AnalysisConfig::default()
        });
        for (i, port) in [1000u16, 1001, 1002].into_iter().enumerate() {
            let p = n.send(
                1,
                Segment {
                    flags: TcpFlags(S),
                    sport: port,
                    ..c2s()
                },
            );
            assert_eq!(p.conn, i as u64);
        }
        assert_eq!(n.a.stats().evicted, 1);
        assert_eq!(n.ended[0].end, EndReason::Evicted);
        assert_eq!(n.ended[0].id, 0);
    }
}

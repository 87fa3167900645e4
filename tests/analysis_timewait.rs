//! Closed connections in TIME_WAIT after their record went out (the close linger, Zeek's
//! `tcp_close_delay`, is over): late packets — a retransmitted FIN, a re-sent last ACK, a RST,
//! a stray data segment — hit the connection's compact tail, and a new SYN on the 4-tuple
//! starts a new connection. The reference for every packet is the same capture analysed with
//! the connection kept whole until 2 MSL (a close linger longer than the capture), which is
//! the analysis checked against tshark and kernel captures in the other tests; here each
//! packet's annotations, transitions, states and numbers must be the same, and each
//! connection's record must go out exactly once.

use std::net::{IpAddr, Ipv4Addr};
use tcplens::analysis::{
    AnalysisConfig, AnalysisStats, Analyzer, ConnSummary, EndReason, Kind, PacketInfo, TcpState,
};
use tcplens::capture::Timestamp;
use tcplens::decode::{OptionSummary, Segment, TcpFlags};
use tcplens::detect::{DetectConfig, Detectors, FindingKind};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
/// Both ISNs near 2^32: relative numbers cross the wrap.
const CISN: u32 = u32::MAX - 1;
const SISN: u32 = u32::MAX - 300;
const MS: i64 = 1_000_000;
const SEC: i64 = 1_000 * MS;

const S: u16 = TcpFlags::SYN;
const A: u16 = TcpFlags::ACK;
const F: u16 = TcpFlags::FIN;
const R: u16 = TcpFlags::RST;

/// A segment `at_ms` after the start, from the client (or the server), port `cport`.
fn seg(at_ms: i64, from_client: bool, cport: u16, flags: u16, seq: u32, ack: u32) -> Segment {
    let (src, dst, sport, dport) = if from_client {
        (CLIENT, SERVER, cport, 443)
    } else {
        (SERVER, CLIENT, 443, cport)
    };
    Segment {
        number: 0,
        ts: Timestamp(1_700_000_000 * SEC + at_ms * MS),
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        flags: TcpFlags(flags),
        window: if from_client { 502 } else { 509 },
        payload_len: 0,
        options: OptionSummary {
            wscale: (flags & S != 0).then_some(7),
            ..OptionSummary::default()
        },
        ttl: 64,
    }
}

fn c(off: u32) -> u32 {
    CISN.wrapping_add(off)
}
fn s(off: u32) -> u32 {
    SISN.wrapping_add(off)
}

/// A connection from `cport` starting at `t` ms: handshake, 100 bytes each way, then a close
/// the client starts (FIN, FIN-ACK, ACK: the client ends in TIME_WAIT). Ends 10 ms after `t`.
fn connection(t: i64, cport: u16) -> Vec<Segment> {
    let data = |at, from_client, seq, ack| Segment {
        payload_len: 100,
        ..seg(at, from_client, cport, A, seq, ack)
    };
    vec![
        seg(t, true, cport, S, c(0), 0),
        seg(t + 1, false, cport, S | A, s(0), c(1)),
        seg(t + 2, true, cport, A, c(1), s(1)),
        data(t + 3, true, c(1), s(1)),
        data(t + 4, false, s(1), c(101)),
        seg(t + 5, true, cport, A, c(101), s(101)),
        seg(t + 6, true, cport, F | A, c(101), s(101)),
        seg(t + 7, false, cport, F | A, s(101), c(102)),
        seg(t + 8, true, cport, A, c(102), s(102)),
    ]
}

struct Run {
    infos: Vec<PacketInfo>,
    records: Vec<ConnSummary>,
    /// For each record, the number of packets analysed before it went out.
    out_after: Vec<usize>,
    stats: AnalysisStats,
}

/// Analyses `segs` (numbered from 1) with the given close linger.
fn run(segs: &[Segment], close_linger_ns: i64) -> Run {
    let mut a = Analyzer::new(AnalysisConfig {
        close_linger_ns,
        ..AnalysisConfig::default()
    });
    let mut r = Run {
        infos: Vec::new(),
        records: Vec::new(),
        out_after: Vec::new(),
        stats: AnalysisStats::default(),
    };
    for (i, sg) in segs.iter().enumerate() {
        let sg = Segment {
            number: i as u64 + 1,
            ..*sg
        };
        r.infos.push(*a.packet(&sg));
        for c in a.drain_ended() {
            r.records.push(c);
            r.out_after.push(i + 1);
        }
    }
    a.finish();
    for c in a.drain_ended() {
        r.records.push(c);
        r.out_after.push(segs.len());
    }
    r.stats = *a.stats();
    r
}

/// Runs `segs` with the default close linger and with the connection kept whole; every packet
/// must be analysed alike. Returns both runs (tails, whole).
#[track_caller]
fn both(segs: &[Segment]) -> (Run, Run) {
    let tails = run(segs, AnalysisConfig::default().close_linger_ns);
    let whole = run(segs, i64::MAX);
    for (i, (t, w)) in tails.infos.iter().zip(&whole.infos).enumerate() {
        let t = PacketInfo {
            after_record: false,
            replaced: None,
            // A hint for the detectors, which hold nothing of a connection once its record is
            // out: a tail does not keep it.
            client_acked: if t.after_record {
                w.client_acked
            } else {
                t.client_acked
            },
            ..*t
        };
        assert_eq!(format!("{t:?}"), format!("{w:?}"), "packet {}", i + 1);
    }
    assert!(whole.infos.iter().all(|i| !i.after_record));
    let ids = |r: &Run| {
        let mut v: Vec<u64> = r.records.iter().map(|c| c.id).collect();
        v.sort_unstable();
        v
    };
    let t_ids = ids(&tails);
    assert_eq!(t_ids, ids(&whole), "the same connections");
    assert!(t_ids.windows(2).all(|w| w[0] != w[1]), "one record each");
    (tails, whole)
}

/// The close ends at packet 9 (10 ms in); `late` come `at` ms in.
fn closed_then(late: &[Segment]) -> Vec<Segment> {
    let mut v = connection(0, 40000);
    v.extend_from_slice(late);
    v
}

#[test]
fn record_goes_out_after_the_close_linger_with_the_connection_whole() {
    // A packet 6 s after the close lets the sweep run; the record is the whole connection's.
    let late = [seg(6_010, true, 40000, A, c(102), s(102))];
    let (t, w) = both(&closed_then(&late));
    assert_eq!(t.records.len(), 1);
    assert_eq!(
        t.out_after,
        [10],
        "out when the late packet comes, before it is analysed"
    );
    assert!(t.infos[9].after_record);
    assert_eq!(t.stats.time_wait_packets, 1);
    let (rec, whole) = (&t.records[0], &w.records[0]);
    assert_eq!(rec.end, EndReason::Closed);
    assert_eq!(rec.client_state, TcpState::TimeWait);
    assert_eq!(rec.server_state, TcpState::Closed);
    assert_eq!(
        rec.client_counts.packets, 6,
        "the late ACK is not in the record"
    );
    assert_eq!(whole.client_counts.packets, 7);
    // The record is the one the connection alone gives (no late packet at all).
    let alone = run(&connection(0, 40000), i64::MAX);
    assert_eq!(format!("{rec:?}"), format!("{:?}", alone.records[0]));
    assert_eq!(w.stats.time_wait_packets, 0);
}

#[test]
fn fin_retransmitted_ten_seconds_after_the_close() {
    // The server's FIN again (its ACK was lost after the capture point), and the client's
    // TIME_WAIT answer: the same annotations as on the whole connection.
    let late = [
        seg(10_010, false, 40000, F | A, s(101), c(102)),
        seg(10_011, true, 40000, A, c(102), s(102)),
        seg(20_010, false, 40000, F | A, s(101), c(102)),
        seg(20_011, true, 40000, A, c(102), s(102)),
    ];
    let (t, _) = both(&closed_then(&late));
    let fin = &t.infos[9];
    assert!(fin.kinds.contains(Kind::Retransmission), "{:?}", fin.kinds);
    assert_eq!(fin.states, (TcpState::TimeWait, TcpState::Closed));
    assert_eq!(fin.rel_seq, 101);
    assert!(t.infos[10].kinds.contains(Kind::DuplicateAck));
    assert_eq!(
        t.infos[12].dup_ack.map(|d| d.0),
        Some(2),
        "the counter lives in the tail"
    );
    assert!(t.infos[9..].iter().all(|i| i.after_record && i.conn == 0));
    assert_eq!(t.stats.time_wait_packets, 4);
    assert_eq!(t.records.len(), 1);
}

#[test]
fn rst_and_stray_data_in_time_wait() {
    let stray = Segment {
        payload_len: 50,
        ..seg(12_000, false, 40000, A, s(102), c(102))
    };
    let late = [
        stray,
        seg(12_001, true, 40000, A, c(102), s(102)),
        seg(15_000, true, 40000, R, c(102), 0),
        seg(16_000, false, 40000, R | A, s(152), c(102)),
    ];
    let (t, _) = both(&closed_then(&late));
    let rst = &t.infos[11];
    assert!(rst.kinds.contains(Kind::Rst));
    assert!(rst.transitions().any(|tr| tr.to == TcpState::Closed));
    assert_eq!(t.stats.time_wait_packets, 4);
    assert_eq!(t.records.len(), 1);
    assert_eq!(t.records[0].end, EndReason::Closed);
}

#[test]
fn new_syn_on_the_four_tuple_starts_a_new_connection() {
    let mut late = vec![seg(20_000, true, 40000, S, c(5_000_000), 0)];
    // The new connection closes too; a packet after the linger flushes it.
    late.push(seg(20_001, false, 40000, S | A, s(9_000), c(5_000_001)));
    late.push(seg(20_002, true, 40000, A, c(5_000_001), s(9_001)));
    let (t, w) = both(&closed_then(&late));
    let syn = &t.infos[9];
    assert!(syn.kinds.contains(Kind::PortReuse) && syn.kinds.contains(Kind::HandshakeSyn));
    assert_eq!(syn.conn, 1);
    assert!(!syn.after_record);
    assert_eq!(
        syn.replaced.map(|r| r.0),
        Some(0),
        "connection 0's TIME_WAIT ends here"
    );
    assert_eq!(t.stats.time_wait_packets, 0);
    assert_eq!(t.stats.connections, 2);
    let old = t.records.iter().find(|r| r.id == 0).unwrap();
    assert_eq!(
        old.end,
        EndReason::Closed,
        "its record went out at the linger"
    );
    assert_eq!(t.out_after[0], 10);
    let old_whole = w.records.iter().find(|r| r.id == 0).unwrap();
    assert_eq!(old_whole.end, EndReason::Replaced);
    assert!(t.records.iter().find(|r| r.id == 1).unwrap().port_reuse);
}

#[test]
fn after_two_msl_a_packet_starts_a_new_connection() {
    let late = [
        seg(30_000, true, 40000, A, c(102), s(102)),
        seg(60_020, false, 40000, F | A, s(101), c(102)),
    ];
    let (t, _) = both(&closed_then(&late));
    assert!(t.infos[9].after_record);
    let p = &t.infos[10];
    assert!(!p.after_record);
    assert_eq!(p.conn, 1);
    assert!(p.kinds.contains(Kind::Midstream));
    assert_eq!(t.stats.time_wait_packets, 1);
}

#[test]
fn fin_retransmitted_within_the_linger_stays_in_the_record() {
    // Linux retransmits a FIN after 200 ms+: within the linger, as before this change.
    let late = [
        seg(220, false, 40000, F | A, s(101), c(102)),
        seg(221, true, 40000, A, c(102), s(102)),
    ];
    let (t, w) = both(&closed_then(&late));
    assert_eq!(t.stats.time_wait_packets, 0);
    assert_eq!(format!("{:?}", t.records[0]), format!("{:?}", w.records[0]));
    assert_eq!(t.records[0].server_counts.packets, 4);
}

#[test]
fn many_connections_keep_their_order_and_tails_free_at_two_msl() {
    // 300 connections, one every 200 ms, on distinct ports: each record once, in order.
    let mut segs = Vec::new();
    for i in 0..300 {
        segs.extend(connection(i * 200, 10_000 + i as u16));
    }
    segs.push(seg(200_000, true, 9, S, 1, 0));
    let (t, w) = both(&segs);
    let ids: Vec<u64> = t.records.iter().map(|r| r.id).collect();
    assert_eq!(ids, (0..301).collect::<Vec<_>>());
    assert_eq!(t.stats.peak_live, w.stats.peak_live);
    assert!(t.records[..300].iter().all(|r| r.end == EndReason::Closed));
    // The first connection's record goes out ~5 s after its close, not at 2 MSL.
    let first = t.out_after[0];
    assert!(t.infos[first - 1].ts.0 - t.infos[8].ts.0 < 7 * SEC);
}

/// The TIME_WAIT detector sees a new SYN on a tail's 4-tuple end that TIME_WAIT early, as it
/// sees a `replaced` record on a whole connection.
#[test]
fn time_wait_detector_sees_the_reuse() {
    // Ten connections from one client, each closed by the client, then each port reused
    // 10 s after its close: the client holds at most ten TIME_WAITs, and zero once reused.
    let mut segs = Vec::new();
    for i in 0..10u16 {
        segs.extend(connection(i64::from(i) * 20, 40000 + i));
    }
    for i in 0..10u16 {
        let t = 10_200 + i64::from(i) * 20;
        segs.push(seg(t, true, 40000 + i, S, c(7_000_000), 0));
        segs.push(seg(t + 1, false, 40000 + i, S | A, s(7_000), c(7_000_001)));
        segs.push(seg(t + 2, true, 40000 + i, A, c(7_000_001), s(7_001)));
        segs.push(seg(t + 3, true, 40000 + i, F | A, c(7_000_001), s(7_001)));
        segs.push(seg(t + 4, false, 40000 + i, F | A, s(7_001), c(7_000_002)));
        segs.push(seg(t + 5, true, 40000 + i, A, c(7_000_002), s(7_002)));
    }
    let findings = |close_linger_ns| {
        let mut a = Analyzer::new(AnalysisConfig {
            close_linger_ns,
            ..AnalysisConfig::default()
        });
        let mut d = Detectors::new(DetectConfig {
            time_wait_threshold: 10,
            ..DetectConfig::default()
        });
        for (i, sg) in segs.iter().enumerate() {
            let sg = Segment {
                number: i as u64 + 1,
                ..*sg
            };
            d.packet(&sg, a.packet(&sg));
            for mut c in a.drain_ended() {
                d.connection(&mut c);
            }
        }
        d.end_of_capture();
        a.finish();
        for mut c in a.drain_ended() {
            d.connection(&mut c);
        }
        d.finish();
        let f: Vec<String> = d
            .findings()
            .iter()
            .filter(|f| f.kind == FindingKind::TimeWaitBuildup)
            .map(|f| serde_json::to_string(f).unwrap())
            .collect();
        f
    };
    let whole = findings(i64::MAX);
    assert_eq!(whole.len(), 1, "ten TIME_WAITs at once on the client");
    assert_eq!(findings(AnalysisConfig::default().close_linger_ns), whole);
}

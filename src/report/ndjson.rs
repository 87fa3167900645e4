//! `--ndjson` records (`packet`, `connection`, `summary`) and the connection objects of `--json`.
//!
//! Names follow /work/shared/CONTRACT.md. Timestamps are RFC 3339 strings with nanoseconds plus
//! the integer nanoseconds since the epoch written as a string (JSON numbers lose precision
//! past 2^53). Packet records are serialised into one reused buffer.

use crate::analysis::{
    ALL_KINDS, AnalysisStats, ConnSummary, KindList, PacketInfo, Side, SideCounts, TcpState,
    Transition,
};
use crate::capture::Timestamp;
use crate::decode::{Segment, TcpFlags};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;

/// A timestamp as RFC 3339 with nine fractional digits, UTC.
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(pub Timestamp);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_nanosecond(i128::from(self.0.0)) {
            Ok(t) => write!(f, "{t:.9}"),
            Err(_) => write!(f, "{}", self.0.0),
        }
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Integer nanoseconds since the epoch, as a JSON string.
#[derive(Clone, Copy, Debug)]
pub struct NsString(pub Timestamp);

impl Serialize for NsString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.0)
    }
}

/// TCP flags as tcpdump prints them (`S.`, `FP.`, `none`).
#[derive(Clone, Copy, Debug)]
pub struct FlagStr(pub TcpFlags);

impl fmt::Display for FlagStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ORDER: [(u16, char); 8] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        if self.0.0 & 0xff == 0 {
            return f.write_str("none");
        }
        for (bit, c) in ORDER {
            if self.0.has(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for FlagStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
struct TransitionRec {
    side: Side,
    from: TcpState,
    to: TcpState,
}

struct Transitions<'a>(&'a [Option<Transition>; 4]);

impl Serialize for Transitions<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for t in self.0.iter().flatten() {
            seq.serialize_element(&TransitionRec {
                side: t.side,
                from: t.from,
                to: t.to,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct DupAck {
    number: u32,
    frame: u64,
}

#[derive(Serialize)]
struct PacketRec<'a> {
    r#type: &'static str,
    number: u64,
    ts: Rfc3339,
    ts_ns: NsString,
    connection: u64,
    direction: &'static str,
    src: SocketAddr,
    dst: SocketAddr,
    flags: FlagStr,
    seq: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<u32>,
    rel_seq: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rel_ack: Option<u32>,
    payload_len: u32,
    window: u16,
    scaled_window: Option<u64>,
    annotations: &'a KindList,
    transitions: Transitions<'a>,
    client_state: TcpState,
    server_state: TcpState,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_ack: Option<DupAck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since_previous_attempt_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake_rtt_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rst_check: Option<&'static str>,
}

#[derive(Serialize)]
struct Counts {
    packets: u64,
    bytes: u64,
    retransmissions: u64,
    dup_acks: u64,
    zero_windows: u64,
}

impl From<SideCounts> for Counts {
    fn from(c: SideCounts) -> Self {
        Counts {
            packets: c.packets,
            bytes: c.bytes,
            retransmissions: c.retransmissions,
            dup_acks: c.dup_acks,
            zero_windows: c.zero_windows,
        }
    }
}

/// A connection object, as in `connection` records and the `--json` document.
#[derive(Serialize)]
pub struct ConnRecord<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<&'static str>,
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
    client_state: TcpState,
    server_state: TcpState,
    handshake: &'static str,
    close: &'static str,
    close_initiator: Option<&'static str>,
    time_wait_on: Option<&'static str>,
    syn_cookie: bool,
    zeek_conn_state: &'static str,
    zeek_history: &'a str,
    first_ts: Rfc3339,
    first_ts_ns: NsString,
    last_ts: Rfc3339,
    last_ts_ns: NsString,
    duration_ns: i64,
    syn_synack_ns: Option<i64>,
    synack_ack_ns: Option<i64>,
    syn_retransmissions: u32,
    synack_retransmissions: u32,
    client_sent: Counts,
    server_sent: Counts,
    midstream: bool,
    port_reuse: bool,
    end: &'static str,
}

impl<'a> ConnRecord<'a> {
    /// The object for `c`; `typed` adds `"type": "connection"`.
    pub fn new(c: &'a ConnSummary, typed: bool) -> Self {
        ConnRecord {
            r#type: typed.then_some("connection"),
            id: c.id,
            client: c.client,
            server: c.server,
            client_state: c.client_state,
            server_state: c.server_state,
            handshake: c.handshake.as_str(),
            close: c.close.as_str(),
            close_initiator: c.close_initiator.map(|i| i.as_str()),
            time_wait_on: c.time_wait_on,
            syn_cookie: false,
            zeek_conn_state: c.zeek_conn_state,
            zeek_history: c.zeek_history.as_str(),
            first_ts: Rfc3339(c.first_ts),
            first_ts_ns: NsString(c.first_ts),
            last_ts: Rfc3339(c.last_ts),
            last_ts_ns: NsString(c.last_ts),
            duration_ns: c.last_ts.0.saturating_sub(c.first_ts.0),
            syn_synack_ns: c.syn_synack_ns,
            synack_ack_ns: c.synack_ack_ns,
            syn_retransmissions: c.syn_retransmissions,
            synack_retransmissions: c.synack_retransmissions,
            client_sent: c.client_counts.into(),
            server_sent: c.server_counts.into(),
            midstream: c.midstream,
            port_reuse: c.port_reuse,
            end: c.end.as_str(),
        }
    }
}

/// Annotation counts as a `{kind: count}` object (non-zero only).
pub struct KindCounts<'a>(pub &'a AnalysisStats);

impl Serialize for KindCounts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for k in ALL_KINDS {
            let n = self.0.kinds[k.index()];
            if n > 0 {
                m.serialize_entry(k.as_str(), &n)?;
            }
        }
        m.end()
    }
}

/// Analysis statistics as a JSON object.
#[derive(Serialize)]
pub struct StatsRec<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<&'static str>,
    packets: u64,
    tcp_packets: u64,
    connections: u64,
    evicted: u64,
    idle_expired: u64,
    peak_live_connections: u64,
    annotations: KindCounts<'a>,
}

impl<'a> StatsRec<'a> {
    /// `packets` counts every frame read; `typed` adds `"type": "summary"`.
    pub fn new(packets: u64, a: &'a AnalysisStats, typed: bool) -> Self {
        StatsRec {
            r#type: typed.then_some("summary"),
            packets,
            tcp_packets: a.packets,
            connections: a.connections,
            evicted: a.evicted,
            idle_expired: a.idle_expired,
            peak_live_connections: a.peak_live,
            annotations: KindCounts(a),
        }
    }
}

/// Streams ndjson records.
#[derive(Debug, Default)]
pub struct NdjsonWriter {
    buf: Vec<u8>,
}

impl NdjsonWriter {
    /// A writer with an empty buffer.
    pub fn new() -> Self {
        NdjsonWriter {
            buf: Vec::with_capacity(1024),
        }
    }

    fn emit<T: Serialize>(&mut self, out: &mut dyn Write, rec: &T) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, rec)?;
        self.buf.push(b'\n');
        out.write_all(&self.buf)
    }

    /// One `packet` record.
    pub fn packet(&mut self, out: &mut dyn Write, seg: &Segment, p: &PacketInfo) -> io::Result<()> {
        let rec = PacketRec {
            r#type: "packet",
            number: seg.number,
            ts: Rfc3339(seg.ts),
            ts_ns: NsString(seg.ts),
            connection: p.conn,
            direction: match p.from {
                Some(Side::Server) => "server_to_client",
                _ => "client_to_server",
            },
            src: SocketAddr::new(seg.src, seg.sport),
            dst: SocketAddr::new(seg.dst, seg.dport),
            flags: FlagStr(seg.flags),
            seq: seg.seq,
            ack: seg.flags.ack().then_some(seg.ack),
            rel_seq: p.rel_seq,
            rel_ack: p.rel_ack,
            payload_len: seg.payload_len,
            window: seg.window,
            scaled_window: p.scaled_window,
            annotations: &p.kinds,
            transitions: Transitions(&p.transitions),
            client_state: p.states.0,
            server_state: p.states.1,
            duplicate_ack: p.dup_ack.map(|(number, frame)| DupAck { number, frame }),
            attempt: p.attempt.map(|a| a.0),
            since_previous_attempt_ns: p.attempt.map(|a| a.1),
            handshake_rtt_ns: p.rtt_ns,
            rst_check: p.rst.map(|r| r.as_str()),
        };
        self.emit(out, &rec)
    }

    /// One `connection` record.
    pub fn connection(&mut self, out: &mut dyn Write, c: &ConnSummary) -> io::Result<()> {
        self.emit(out, &ConnRecord::new(c, true))
    }

    /// The final `summary` record.
    pub fn summary(
        &mut self,
        out: &mut dyn Write,
        packets: u64,
        a: &AnalysisStats,
    ) -> io::Result<()> {
        self.emit(out, &StatsRec::new(packets, a, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_flags_format() {
        // 2023-11-14T22:13:20.000000001Z is 1700000000 s + 1 ns (date from `date -u -d @1700000000`).
        let t = Timestamp(1_700_000_000_000_000_001);
        assert_eq!(Rfc3339(t).to_string(), "2023-11-14T22:13:20.000000001Z");
        assert_eq!(
            serde_json::to_string(&NsString(t)).unwrap(),
            "\"1700000000000000001\""
        );
        assert_eq!(
            FlagStr(TcpFlags(TcpFlags::SYN | TcpFlags::ACK)).to_string(),
            "S."
        );
        assert_eq!(
            FlagStr(TcpFlags(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK)).to_string(),
            "FP."
        );
        assert_eq!(FlagStr(TcpFlags(0)).to_string(), "none");
    }
}

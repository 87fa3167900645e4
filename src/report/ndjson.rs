//! `--ndjson`: one JSON object per line, each with `type` — `packet` per TCP packet as it is
//! read, `connection` when a connection ends, each detector `finding` (complete, at the end of
//! the run), `summary` last.
//!
//! Names follow /work/shared/CONTRACT.md; the objects shared with `--json` are in
//! [`super::json`]. Records are serialised into one reused buffer (no allocation per packet once
//! it has grown).

use super::json::{
    ConnRecord, DocHead, FindingJson, InputRec, StatsRec, key, kind_list_schema, num, rfc3339,
    rst_check_schema, schema_of, side_schema, socket, state_schema, string,
};
pub use super::json::{FlagStr, NsString, Rfc3339};
use crate::analysis::{KindList, PacketInfo, Side, TcpState, Transition};
use crate::decode::{Segment, TcpFlags};
use crate::detect::Finding;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;
use serde::ser::SerializeSeq;
use std::io::{self, Write};
use std::net::SocketAddr;

/// `"type": "packet"`.
#[derive(Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum PacketTag {
    // Built by the reference serialiser in the tests; the schema needs the type.
    #[cfg_attr(not(test), expect(dead_code))]
    Packet,
}

/// `"type": "connection"`.
#[derive(Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ConnectionTag {
    Connection,
}

/// `"type": "finding"`.
#[derive(Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum FindingTag {
    Finding,
}

/// `"type": "summary"`.
#[derive(Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum SummaryTag {
    Summary,
}

/// One state change in a packet record.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
struct TransitionRec {
    /// Whose state changed.
    #[schemars(schema_with = "side_schema")]
    side: Side,
    /// Before.
    #[schemars(schema_with = "state_schema")]
    from: TcpState,
    /// After.
    #[schemars(schema_with = "state_schema")]
    to: TcpState,
}

/// The packet's state changes, in order.
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

fn transitions_schema(g: &mut SchemaGenerator) -> Schema {
    let item = g.subschema_for::<TransitionRec>();
    json_schema!({
        "type": "array",
        "items": item,
        "maxItems": 4,
        "description": "state changes this packet causes or proves"
    })
}

/// A duplicate ACK's place in its series.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
struct DupAck {
    /// 1 for the first duplicate, 2 for the second, …
    number: u32,
    /// The packet it duplicates.
    frame: u64,
}

/// TSval and TSecr.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
struct TsOpt {
    /// TSval.
    tsval: u32,
    /// TSecr.
    tsecr: u32,
}

/// The TCP options tcplens reads (absent ones are left out).
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
struct OptionsRec<'a> {
    /// Maximum segment size.
    #[serde(skip_serializing_if = "Option::is_none")]
    mss: Option<u16>,
    /// Window scale shift count.
    #[serde(skip_serializing_if = "Option::is_none")]
    wscale: Option<u8>,
    /// SACK permitted.
    #[serde(skip_serializing_if = "is_false")]
    sack_permitted: bool,
    /// Timestamps.
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamps: Option<TsOpt>,
    /// SACK blocks as [left, right] (at most 4).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    sack: &'a [(u32, u32)],
    /// TCP Fast Open.
    #[serde(skip_serializing_if = "is_false")]
    fast_open: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl<'a> OptionsRec<'a> {
    #[cfg(test)]
    fn new(o: &'a crate::decode::OptionSummary) -> Self {
        OptionsRec {
            mss: o.mss,
            wscale: o.wscale,
            sack_permitted: o.sack_permitted,
            timestamps: o.timestamps.map(|(tsval, tsecr)| TsOpt { tsval, tsecr }),
            sack: o.sack.get(..usize::from(o.sack_count)).unwrap_or(&o.sack),
            fast_open: o.fast_open,
        }
    }
}

fn direction_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": ["client_to_server", "server_to_client"] })
}

// The schema, and the reference `write_packet` is tested against.
/// A `packet` record.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PacketRec<'a> {
    r#type: PacketTag,
    /// 1-based, as tcpdump `-#` counts (frames that passed the filter).
    number: u64,
    /// Capture time.
    ts: Rfc3339,
    /// Capture time, ns.
    ts_ns: NsString,
    /// The connection id.
    connection: u64,
    /// Who sent it.
    #[schemars(schema_with = "direction_schema")]
    direction: &'static str,
    /// Source `addr:port`.
    src: SocketAddr,
    /// Destination `addr:port`.
    dst: SocketAddr,
    /// TCP flags as tcpdump prints them.
    flags: FlagStr,
    /// Raw sequence number.
    seq: u32,
    /// Raw acknowledgment number (absent without ACK).
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<u32>,
    /// seq relative to the sender's ISN (Wireshark's relative numbers).
    rel_seq: u32,
    /// ack relative to the receiver's ISN (absent without ACK).
    #[serde(skip_serializing_if = "Option::is_none")]
    rel_ack: Option<u32>,
    /// Payload bytes (from the IP lengths).
    payload_len: u32,
    /// The window field.
    window: u16,
    /// The window in bytes after scaling; null while the scale is unknown.
    scaled_window: Option<u64>,
    /// IPv4 TTL or IPv6 hop limit.
    ttl: u8,
    /// TCP options.
    options: OptionsRec<'a>,
    /// The annotation kinds, the same words as the text output.
    #[schemars(schema_with = "kind_list_schema")]
    annotations: &'a KindList,
    /// State changes this packet causes or proves.
    #[schemars(schema_with = "transitions_schema")]
    transitions: Transitions<'a>,
    /// The client's state after the packet.
    #[schemars(schema_with = "state_schema")]
    client_state: TcpState,
    /// The server's state after the packet.
    #[schemars(schema_with = "state_schema")]
    server_state: TcpState,
    /// Duplicate ACK number and the packet it duplicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_ack: Option<DupAck>,
    /// SYN / SYN-ACK retransmission: try number (2 for the first resend).
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    /// SYN / SYN-ACK retransmission: ns since the previous try.
    #[serde(skip_serializing_if = "Option::is_none")]
    since_previous_attempt_ns: Option<i64>,
    /// SYN→SYN-ACK time on the SYN-ACK, SYN-ACK→ACK time on the final ACK (ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake_rtt_ns: Option<i64>,
    /// A RST's acceptability to its receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rst_check_schema")]
    rst_check: Option<&'static str>,
}

impl<'a> PacketRec<'a> {
    /// The record of one packet.
    #[cfg(test)]
    fn new(seg: &'a Segment, p: &'a PacketInfo) -> Self {
        PacketRec {
            r#type: PacketTag::Packet,
            number: seg.number,
            ts: Rfc3339(seg.ts),
            ts_ns: NsString(seg.ts),
            connection: p.conn,
            direction: direction(p),
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
            ttl: seg.ttl,
            options: OptionsRec::new(&seg.options),
            annotations: &p.kinds,
            transitions: Transitions(&p.transitions),
            client_state: p.states.0,
            server_state: p.states.1,
            duplicate_ack: p.dup_ack.map(|(number, frame)| DupAck { number, frame }),
            attempt: p.attempt.map(|a| a.0),
            since_previous_attempt_ns: p.attempt.map(|a| a.1),
            handshake_rtt_ns: p.rtt_ns,
            rst_check: p.rst.map(|r| r.as_str()),
        }
    }
}

fn direction(p: &PacketInfo) -> &'static str {
    match p.from {
        Some(Side::Server) => "server_to_client",
        _ => "client_to_server",
    }
}

/// `"S."`, as [`FlagStr`] prints it.
fn flags(out: &mut Vec<u8>, f: TcpFlags) {
    const ORDER: [(u16, u8); 8] = [
        (TcpFlags::FIN, b'F'),
        (TcpFlags::SYN, b'S'),
        (TcpFlags::RST, b'R'),
        (TcpFlags::PSH, b'P'),
        (TcpFlags::ACK, b'.'),
        (TcpFlags::URG, b'U'),
        (TcpFlags::ECE, b'E'),
        (TcpFlags::CWR, b'W'),
    ];
    if f.0 & 0xff == 0 {
        out.extend_from_slice(b"\"none\"");
        return;
    }
    out.push(b'"');
    for (bit, c) in ORDER {
        if f.has(bit) {
            out.push(c);
        }
    }
    out.push(b'"');
}

/// The bytes serde_json writes for [`PacketRec`], and a newline.
fn write_packet(out: &mut Vec<u8>, seg: &Segment, p: &PacketInfo) {
    out.extend_from_slice(b"{\"type\":\"packet\",\"number\":");
    num(out, seg.number);
    out.extend_from_slice(b",\"ts\":");
    rfc3339(out, seg.ts.0);
    out.extend_from_slice(b",\"ts_ns\":\"");
    num(out, seg.ts.0);
    out.extend_from_slice(b"\",\"connection\":");
    num(out, p.conn);
    out.extend_from_slice(b",\"direction\":");
    string(out, direction(p));
    out.extend_from_slice(b",\"src\":");
    socket(out, seg.src, seg.sport);
    out.extend_from_slice(b",\"dst\":");
    socket(out, seg.dst, seg.dport);
    out.extend_from_slice(b",\"flags\":");
    flags(out, seg.flags);
    out.extend_from_slice(b",\"seq\":");
    num(out, seg.seq);
    if seg.flags.ack() {
        out.extend_from_slice(b",\"ack\":");
        num(out, seg.ack);
    }
    out.extend_from_slice(b",\"rel_seq\":");
    num(out, p.rel_seq);
    if let Some(a) = p.rel_ack {
        out.extend_from_slice(b",\"rel_ack\":");
        num(out, a);
    }
    out.extend_from_slice(b",\"payload_len\":");
    num(out, seg.payload_len);
    out.extend_from_slice(b",\"window\":");
    num(out, seg.window);
    out.extend_from_slice(b",\"scaled_window\":");
    match p.scaled_window {
        Some(w) => num(out, w),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"ttl\":");
    num(out, seg.ttl);
    out.extend_from_slice(b",\"options\":{");
    let o = &seg.options;
    let mut sep = false;
    let mut field = |out: &mut Vec<u8>, k: &str| {
        if sep {
            out.push(b',');
        }
        sep = true;
        key(out, k);
    };
    if let Some(mss) = o.mss {
        field(out, "mss");
        num(out, mss);
    }
    if let Some(ws) = o.wscale {
        field(out, "wscale");
        num(out, ws);
    }
    if o.sack_permitted {
        field(out, "sack_permitted");
        out.extend_from_slice(b"true");
    }
    if let Some((tsval, tsecr)) = o.timestamps {
        field(out, "timestamps");
        out.extend_from_slice(b"{\"tsval\":");
        num(out, tsval);
        out.extend_from_slice(b",\"tsecr\":");
        num(out, tsecr);
        out.push(b'}');
    }
    let sack = o.sack.get(..usize::from(o.sack_count)).unwrap_or(&o.sack);
    if !sack.is_empty() {
        field(out, "sack");
        out.push(b'[');
        for (i, (l, r)) in sack.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            num(out, *l);
            out.push(b',');
            num(out, *r);
            out.push(b']');
        }
        out.push(b']');
    }
    if o.fast_open {
        field(out, "fast_open");
        out.extend_from_slice(b"true");
    }
    out.extend_from_slice(b"},\"annotations\":[");
    for (i, k) in p.kinds.as_slice().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, k.as_str());
    }
    out.extend_from_slice(b"],\"transitions\":[");
    for (i, t) in p.transitions.iter().flatten().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"side\":");
        string(out, t.side.as_str());
        out.extend_from_slice(b",\"from\":");
        string(out, t.from.as_str());
        out.extend_from_slice(b",\"to\":");
        string(out, t.to.as_str());
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"client_state\":");
    string(out, p.states.0.as_str());
    out.extend_from_slice(b",\"server_state\":");
    string(out, p.states.1.as_str());
    if let Some((number, frame)) = p.dup_ack {
        out.extend_from_slice(b",\"duplicate_ack\":{\"number\":");
        num(out, number);
        out.extend_from_slice(b",\"frame\":");
        num(out, frame);
        out.push(b'}');
    }
    if let Some((n, gap)) = p.attempt {
        out.extend_from_slice(b",\"attempt\":");
        num(out, n);
        out.extend_from_slice(b",\"since_previous_attempt_ns\":");
        num(out, gap);
    }
    if let Some(rtt) = p.rtt_ns {
        out.extend_from_slice(b",\"handshake_rtt_ns\":");
        num(out, rtt);
    }
    if let Some(r) = p.rst {
        out.extend_from_slice(b",\"rst_check\":");
        string(out, r.as_str());
    }
    out.extend_from_slice(b"}\n");
}

/// A `connection` record.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ConnLine<'a> {
    r#type: ConnectionTag,
    #[serde(flatten)]
    conn: &'a ConnRecord<'a>,
}

impl<'a> ConnLine<'a> {
    /// The `connection` record of `conn`.
    pub fn new(conn: &'a ConnRecord<'a>) -> Self {
        ConnLine {
            r#type: ConnectionTag::Connection,
            conn,
        }
    }
}

/// The bytes serde_json writes for [`ConnLine`], and a newline.
pub fn write_connection(out: &mut Vec<u8>, c: &ConnRecord<'_>) {
    out.extend_from_slice(b"{\"type\":\"connection\",");
    c.write_members(out);
    out.extend_from_slice(b"}\n");
}

/// A `finding` record.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FindingLine<'a> {
    r#type: FindingTag,
    #[serde(flatten)]
    finding: FindingJson<'a>,
}

/// The `summary` record: the document's statistics and inputs.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SummaryLine<'a> {
    r#type: SummaryTag,
    #[serde(flatten)]
    head: DocHead,
    /// The inputs read.
    inputs: &'a [InputRec],
    #[serde(flatten)]
    stats: StatsRec<'a>,
}

/// Any `--ndjson` line (the shape of the schema; records are written one by one).
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "tcplens --ndjson record")]
pub enum NdjsonRecord<'a> {
    /// `packet`.
    Packet(PacketRec<'a>),
    /// `connection`.
    Connection(ConnLine<'a>),
    /// `finding`.
    Finding(FindingLine<'a>),
    /// `summary`.
    Summary(SummaryLine<'a>),
}

/// The JSON Schema of one `--ndjson` line.
pub fn ndjson_schema() -> Schema {
    schema_of::<NdjsonRecord<'static>>()
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

    /// One `packet` record, written by hand: serde_json's `collect_str` and the `fmt` of
    /// addresses and times cost several times the rest of the run. The bytes are the ones
    /// serde_json writes for [`PacketRec`] (a test compares the two).
    pub fn packet(&mut self, out: &mut dyn Write, seg: &Segment, p: &PacketInfo) -> io::Result<()> {
        self.buf.clear();
        write_packet(&mut self.buf, seg, p);
        out.write_all(&self.buf)
    }

    /// One `connection` record, written by hand: the bytes serde_json writes for [`ConnLine`]
    /// (a test compares the two).
    pub fn connection(&mut self, out: &mut dyn Write, c: &ConnRecord<'_>) -> io::Result<()> {
        self.buf.clear();
        write_connection(&mut self.buf, c);
        out.write_all(&self.buf)
    }

    /// One `finding` record.
    pub fn finding(&mut self, out: &mut dyn Write, f: &Finding) -> io::Result<()> {
        self.emit(
            out,
            &FindingLine {
                r#type: FindingTag::Finding,
                finding: FindingJson(f),
            },
        )
    }

    /// The final `summary` record.
    pub fn summary(
        &mut self,
        out: &mut dyn Write,
        stats: StatsRec<'_>,
        inputs: &[InputRec],
    ) -> io::Result<()> {
        self.emit(
            out,
            &SummaryLine {
                r#type: SummaryTag::Summary,
                head: DocHead::default(),
                inputs,
                stats,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Kind, RstCheck};
    use crate::capture::Timestamp;
    use crate::decode::OptionSummary;

    /// The hand-written packet record is byte for byte what serde_json writes for [`PacketRec`].
    #[test]
    fn packet_record_matches_serde() {
        let mut seg = Segment {
            number: 1,
            ts: Timestamp(1_700_000_000_123_456_789),
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.168.255.254".parse().unwrap(),
            sport: 40000,
            dport: 80,
            seq: 4_294_967_295,
            ack: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window: 65535,
            payload_len: 0,
            options: OptionSummary::default(),
            ttl: 64,
        };
        let mut p = PacketInfo::default();
        let mut cases = Vec::new();
        cases.push((seg, p));
        seg.ts = Timestamp(-1);
        seg.flags = TcpFlags(0);
        seg.src = "::ffff:1.2.3.4".parse().unwrap();
        seg.dst = "2001:db8::1".parse().unwrap();
        p.from = Some(Side::Server);
        p.rel_ack = Some(7);
        p.scaled_window = Some(1 << 40);
        cases.push((seg, p));
        seg.ts = Timestamp(i64::MIN);
        seg.flags = TcpFlags(0xff);
        seg.options = OptionSummary {
            mss: Some(1460),
            wscale: Some(14),
            sack_permitted: true,
            timestamps: Some((0, u32::MAX)),
            sack: [(1, 2), (3, 4), (5, 6), (7, 8)],
            sack_count: 3,
            fast_open: true,
        };
        p.kinds.push(Kind::Retransmission);
        p.kinds.push(Kind::DuplicateAck);
        p.transitions[0] = Some(Transition {
            side: Side::Client,
            from: TcpState::SynSent,
            to: TcpState::Established,
        });
        p.transitions[1] = Some(Transition {
            side: Side::Server,
            from: TcpState::FinWait1,
            to: TcpState::TimeWait,
        });
        p.dup_ack = Some((3, u64::MAX));
        p.attempt = Some((2, -5));
        p.rtt_ns = Some(i64::MAX);
        p.rst = Some(RstCheck::InWindow);
        cases.push((seg, p));
        seg.ts = Timestamp(i64::MAX);
        seg.options.sack_count = 200;
        seg.flags = TcpFlags(TcpFlags::ACK | TcpFlags::PSH);
        cases.push((seg, p));
        for (seg, p) in &cases {
            let mut want = serde_json::to_vec(&PacketRec::new(seg, p)).unwrap();
            want.push(b'\n');
            let mut got = Vec::new();
            write_packet(&mut got, seg, p);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }
}

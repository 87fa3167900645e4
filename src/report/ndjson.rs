//! `--ndjson`: one JSON object per line, each with `type` — `packet` per TCP packet as it is
//! read, `connection` when a connection ends, each detector `finding` (complete, at the end of
//! the run), `summary` last.
//!
//! Names follow /work/shared/CONTRACT.md; the objects shared with `--json` are in
//! [`super::json`]. Records are serialised into one reused buffer (no allocation per packet once
//! it has grown).

use super::json::{
    ConnRecord, DocHead, FindingJson, InputRec, StatsRec, kind_list_schema, rst_check_schema,
    schema_of, side_schema, state_schema,
};
pub use super::json::{FlagStr, NsString, Rfc3339};
use crate::analysis::{KindList, PacketInfo, Side, TcpState, Transition};
use crate::decode::{OptionSummary, Segment};
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
    fn new(o: &'a OptionSummary) -> Self {
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

/// A `connection` record.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ConnLine<'a> {
    r#type: ConnectionTag,
    #[serde(flatten)]
    conn: &'a ConnRecord<'a>,
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

    /// One `packet` record.
    pub fn packet(&mut self, out: &mut dyn Write, seg: &Segment, p: &PacketInfo) -> io::Result<()> {
        let rec = PacketRec {
            r#type: PacketTag::Packet,
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
        };
        self.emit(out, &rec)
    }

    /// One `connection` record.
    pub fn connection(&mut self, out: &mut dyn Write, c: &ConnRecord<'_>) -> io::Result<()> {
        self.emit(
            out,
            &ConnLine {
                r#type: ConnectionTag::Connection,
                conn: c,
            },
        )
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

//! The JSON objects shared by `--json` and `--ndjson`, the streaming `--json` document writer and
//! the JSON Schemas (draft 2020-12) of both forms.
//!
//! Contract names (/work/shared/CONTRACT.md) are kept exactly. The `--json` document is written
//! as the run goes: its head and each connection as the connection ends, then `findings`, `stats`
//! and `inputs` when the run ends, so memory stays bounded by live connections:
//!
//! ```text
//! {"tool":"tcplens","version":"…","schema_version":1,"connections":[
//! {…},
//! {…}
//! ],"findings":[…],"stats":{…},"inputs":[{…}]}
//! ```
//! Timestamps are RFC 3339 strings with nanoseconds plus the integer nanoseconds since the epoch
//! as a string (JSON numbers lose precision past 2^53).

use crate::analysis::slots::Slots;
use crate::analysis::{
    ALL_KINDS, AnalysisStats, CloseKind, ConnSummary, EndReason, Handshake, Kind, KindList,
    PacketInfo, RstCheck, Side, SideCounts, TcpState, Transition, state::ALL_STATES,
};
use crate::capture::file::CaptureInfo;
use crate::capture::{CaptureError, Linktype, Timestamp};
use crate::decode::TcpFlags;
use crate::detect::{Finding, FindingKind};
use crate::stats::{DECODE_KINDS, Stats, kind_name};
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde::Serialize;
use serde::ser::SerializeMap;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU64;

/// The tool's name, first field of the document and of the `summary` record.
pub const TOOL: &str = "tcplens";
/// The tool's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Version of the JSON layout: raised when a field is renamed or removed or changes meaning.
pub const SCHEMA_VERSION: u32 = 1;
/// State changes kept per connection; a connection that changes state more often is marked
/// `state_history_truncated` (only crafted captures get near it).
const HISTORY_CAP: usize = 32;

// ---------------------------------------------------------------------------------------------
// Scalars

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

impl JsonSchema for Rfc3339 {
    fn schema_name() -> Cow<'static, str> {
        "Rfc3339".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z$",
            "description": "UTC time, RFC 3339 with nine fractional digits"
        })
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

impl JsonSchema for NsString {
    fn schema_name() -> Cow<'static, str> {
        "NsString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^-?[0-9]{1,19}$",
            "description": "nanoseconds since 1970-01-01T00:00:00Z, an integer written as a string"
        })
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

impl JsonSchema for FlagStr {
    fn schema_name() -> Cow<'static, str> {
        "Flags".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(none|F?S?R?P?\\.?U?E?W?)$",
            "description": "TCP flags as tcpdump prints them: F S R P . (ACK) U E W, or none"
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas of the names the analysis defines (generated from its lists where it has them).

fn names_schema(names: &[&str], description: &str) -> Schema {
    json_schema!({ "type": "string", "enum": names, "description": description })
}

fn nullable_names_schema(names: &[&str], description: &str) -> Schema {
    let mut all: Vec<serde_json::Value> = names.iter().map(|n| (*n).into()).collect();
    all.push(serde_json::Value::Null);
    json_schema!({ "enum": all, "description": description })
}

/// The RFC 9293 state names.
pub(crate) fn state_schema(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = ALL_STATES.iter().map(|s| s.as_str()).collect();
    names_schema(&names, "RFC 9293 state")
}

/// `client` or `server`.
pub(crate) fn side_schema(_: &mut SchemaGenerator) -> Schema {
    let names = [Side::Client.as_str(), Side::Server.as_str()];
    names_schema(&names, "client or server")
}

/// An array of annotation kind names.
pub(crate) fn kind_list_schema(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
    json_schema!({
        "type": "array",
        "items": { "type": "string", "enum": names },
        "uniqueItems": true,
        "description": "annotation kinds, the same words as the text output"
    })
}

/// An object with a count for every item of `names`.
fn counts_schema(names: &[&str], description: &str) -> Schema {
    let props: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| {
            (
                (*n).to_string(),
                serde_json::json!({"type": "integer", "minimum": 0}),
            )
        })
        .collect();
    json_schema!({
        "type": "object",
        "properties": props,
        "required": names,
        "additionalProperties": false,
        "description": description
    })
}

fn annotation_counts_schema(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
    counts_schema(
        &names,
        "packets carrying each annotation kind (every kind, zeros included)",
    )
}

fn handshake_schema(_: &mut SchemaGenerator) -> Schema {
    let all = [
        Handshake::Complete,
        Handshake::Refused,
        Handshake::Unanswered,
        Handshake::Incomplete,
        Handshake::NotSeen,
    ];
    let names: Vec<&str> = all.iter().map(|h| h.as_str()).collect();
    names_schema(&names, "how the handshake went")
}

fn close_schema(_: &mut SchemaGenerator) -> Schema {
    let all = [
        CloseKind::None,
        CloseKind::FourWay,
        CloseKind::ThreeWay,
        CloseKind::Simultaneous,
        CloseKind::HalfClose,
        CloseKind::Reset,
    ];
    let names: Vec<&str> = all.iter().map(|c| c.as_str()).collect();
    names_schema(&names, "how the connection closed")
}

fn initiator_schema(_: &mut SchemaGenerator) -> Schema {
    nullable_names_schema(
        &["client", "server", "simultaneous"],
        "who sent the first FIN (simultaneous: both before either was acknowledged); null without a FIN",
    )
}

fn time_wait_schema(_: &mut SchemaGenerator) -> Schema {
    nullable_names_schema(
        &["client", "server", "both"],
        "which side ended in TIME_WAIT, null for neither",
    )
}

fn end_schema(_: &mut SchemaGenerator) -> Schema {
    let all = [
        EndReason::Closed,
        EndReason::Reset,
        EndReason::Idle,
        EndReason::Evicted,
        EndReason::Replaced,
        EndReason::EndOfCapture,
    ];
    let names: Vec<&str> = all.iter().map(|e| e.as_str()).collect();
    names_schema(&names, "why the connection record was written")
}

pub(crate) fn rst_check_schema(_: &mut SchemaGenerator) -> Schema {
    let all = [
        RstCheck::Exact,
        RstCheck::InWindow,
        RstCheck::OutOfWindow,
        RstCheck::RefusalValid,
        RstCheck::RefusalInvalid,
        RstCheck::Unknown,
    ];
    let mut names: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names_schema(
        &names,
        "how acceptable a RST is to its receiver (RFC 9293, RFC 5961)",
    )
}

fn zeek_state_schema(_: &mut SchemaGenerator) -> Schema {
    names_schema(
        &[
            "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR",
            "OTH",
        ],
        "Zeek's conn_state",
    )
}

// ---------------------------------------------------------------------------------------------
// Hand-written JSON: the bytes serde_json writes, without its `Serializer` machinery and the
// `fmt` of numbers, addresses and times (several times the cost on the hot records). Keys and
// the analysis' names need no escaping; tests compare the output with serde_json's.

/// Appends an integer in decimal.
#[inline]
pub(crate) fn num(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends an integer, or `null`.
#[inline]
fn opt_num(out: &mut Vec<u8>, v: Option<impl itoa::Integer>) {
    match v {
        Some(v) => num(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `true` or `false`.
#[inline]
fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Appends `"key":` (`k` needs no escaping).
#[inline]
pub(crate) fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `"text"` (`text` needs no escaping).
#[inline]
pub(crate) fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// Appends `"text"` or `null` (`text` needs no escaping).
#[inline]
fn opt_string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(t) => string(out, t),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends any text as a JSON string, escaped as serde_json escapes it.
fn escaped(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends two digits.
#[inline]
fn two(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&[b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8]);
}

/// `"2024-05-01T12:00:00.123456789Z"`, as [`Rfc3339`] prints it (an i64 of nanoseconds is
/// always within years 1677..2262, so the year has four digits).
pub(crate) fn rfc3339(out: &mut Vec<u8>, ns: i64) {
    let sec = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000) as u32;
    let (y, m, d) = crate::report::tstamp::civil(sec.div_euclid(86_400));
    let tod = sec.rem_euclid(86_400) as u32;
    out.push(b'"');
    num(out, y);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, tod / 3600);
    out.push(b':');
    two(out, tod / 60 % 60);
    out.push(b':');
    two(out, tod % 60);
    out.push(b'.');
    let mut digits = [b'0'; 9];
    let mut f = frac;
    for c in digits.iter_mut().rev() {
        *c = b'0' + (f % 10) as u8;
        f /= 10;
    }
    out.extend_from_slice(&digits);
    out.extend_from_slice(b"Z\"");
}

/// `"ns"`: integer nanoseconds as a string, as [`NsString`] writes them.
#[inline]
pub(crate) fn ns_string(out: &mut Vec<u8>, ns: i64) {
    out.push(b'"');
    num(out, ns);
    out.push(b'"');
}

/// `"addr:port"`, as `SocketAddr`'s `Display` (and so serde) writes it.
pub(crate) fn socket(out: &mut Vec<u8>, ip: IpAddr, port: u16) {
    match ip {
        IpAddr::V4(a) => {
            out.push(b'"');
            crate::report::tcpdump::ipv4(out, a.octets());
            out.push(b':');
            num(out, port);
            out.push(b'"');
        }
        IpAddr::V6(_) => socket_addr(out, &SocketAddr::new(ip, port)),
    }
}

/// `"addr:port"` of a `SocketAddr`, as its `Display` (and so serde) writes it.
pub(crate) fn socket_addr(out: &mut Vec<u8>, a: &SocketAddr) {
    match a {
        SocketAddr::V4(v4) => socket(out, IpAddr::V4(*v4.ip()), v4.port()),
        // Rare enough to leave to std, whose text (RFC 5952, `::ffff:a.b.c.d`, a scope id) is
        // the reference.
        SocketAddr::V6(v6) => {
            let _ = write!(out, "\"{v6}\"");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-connection notes gathered from the packets (the analysis summarises the rest).

/// One state change of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StateChange {
    /// The packet that causes or proves the change.
    packet: u64,
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

/// What the JSON reports keep per live connection beyond [`ConnSummary`]: 112 bytes (was
/// 376 with `u64` counts and `Option<u64>` packet numbers), so that the notes of the ~20k
/// connections the 5M-packet workload holds open at once stay a few MB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnNotes {
    /// Packets per annotation kind while every count fits in a byte; see `wide`.
    kinds: [u8; ALL_KINDS.len()],
    /// [`RST_BY`], [`RST_BY_SERVER`], [`TRUNCATED`].
    flags: u8,
    /// Every kind's count, once one passed `u8::MAX` (long connections' duplicate ACKs or
    /// retransmissions); `kinds` is then stale.
    wide: Option<Box<[u64; ALL_KINDS.len()]>>,
    // Packet numbers count from 1, so 0 is free to mean "none" (`NonZeroU64`: 8 bytes).
    syn_packet: Option<NonZeroU64>,
    synack_packet: Option<NonZeroU64>,
    handshake_ack_packet: Option<NonZeroU64>,
    client_fin_packet: Option<NonZeroU64>,
    server_fin_packet: Option<NonZeroU64>,
    rst_packet: Option<NonZeroU64>,
    history: Vec<Change>,
}

/// An entry of a connection's state history: 8 bytes where a [`StateChange`] takes 16, since
/// the packet is given as the distance from the first change's (from 0 for the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Change {
    /// Packets since the first change.
    delta: u32,
    side: Side,
    from: TcpState,
    to: TcpState,
    /// Not a change: a distance past `u32::MAX`, whose upper half this `delta` is (the next
    /// entry holds the change and the lower half).
    carry: bool,
}

impl Change {
    /// A change at packet `number`, after the changes `h`; the distance's upper half first
    /// (as a carry) when it has one.
    fn push(h: &mut Vec<Change>, number: u64, t: &Transition) {
        let d = number.wrapping_sub(changes(h).next().map_or(0, |c| c.packet));
        let mut c = Change {
            delta: (d >> 32) as u32,
            side: t.side,
            from: t.from,
            to: t.to,
            carry: true,
        };
        if c.delta != 0 {
            h.push(c);
        }
        c.delta = d as u32;
        c.carry = false;
        h.push(c);
    }
}

/// The state changes of a history, in order, with their packet numbers.
fn changes(h: &[Change]) -> impl Iterator<Item = StateChange> + '_ {
    // The first change's packet (0 before it), and a carry's upper half for the next entry.
    let (mut first, mut high) = (0u64, 0u64);
    h.iter().enumerate().filter_map(move |(i, c)| {
        if c.carry {
            high = u64::from(c.delta) << 32;
            return None;
        }
        let packet = first.wrapping_add(high | u64::from(c.delta));
        // The first change is entry 0, or entry 1 after a carry.
        if i == usize::from(h[0].carry) {
            first = packet;
        }
        high = 0;
        Some(StateChange {
            packet,
            side: c.side,
            from: c.from,
            to: c.to,
        })
    })
}

/// A connection's state changes, serialised as [`StateChange`]s.
struct History<'a>(&'a [Change]);

impl Serialize for History<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(changes(self.0))
    }
}

fn history_schema(g: &mut SchemaGenerator) -> Schema {
    let item = g.subschema_for::<StateChange>();
    json_schema!({ "type": "array", "items": item })
}

const _: () = assert!(std::mem::size_of::<ConnNotes>() == 112);

/// [`ConnNotes::flags`]: a RST was seen, and `rst_by` is known.
const RST_BY: u8 = 1;
/// [`ConnNotes::flags`]: the first RST came from the server.
const RST_BY_SERVER: u8 = 2;
/// [`ConnNotes::flags`]: more state changes happened than `history` holds.
const TRUNCATED: u8 = 4;

/// State changes of an ordinary connection from SYN to the end of its close (five per side):
/// the history's first allocation, so it is the only one.
const HISTORY_USUAL: usize = 10;

/// What a packet adds to its connection's notes: its annotation kinds and state changes. Most
/// packets have neither, and add nothing.
#[derive(Clone, Copy, Debug)]
pub struct NoteDetail {
    kinds: KindList,
    from: Side,
    open_step: Option<u8>,
    transitions: [Option<Transition>; 4],
}

impl NoteDetail {
    /// The packet's detail; `None` when it has no annotation kind and no state change.
    #[inline]
    pub fn of(p: &PacketInfo) -> Option<Self> {
        if p.kinds.is_empty() && p.transitions.iter().all(Option::is_none) {
            return None;
        }
        Some(NoteDetail {
            kinds: p.kinds,
            from: p.from.unwrap_or(Side::Client),
            open_step: p.open_step,
            transitions: p.transitions,
        })
    }
}

impl ConnNotes {
    #[cfg(test)]
    fn packet(&mut self, p: &PacketInfo) {
        if let Some(d) = NoteDetail::of(p) {
            self.annotate(p.number, &d);
        }
    }

    /// Counts packet `number`'s annotation kinds and keeps its state changes.
    #[inline]
    fn annotate(&mut self, number: u64, p: &NoteDetail) {
        let from = p.from;
        let number = NonZeroU64::new(number);
        for k in p.kinds.as_slice() {
            self.count(k.index());
            let slot = match k {
                Kind::HandshakeSyn => &mut self.syn_packet,
                Kind::HandshakeSynack => &mut self.synack_packet,
                Kind::HandshakeAck | Kind::SplitHandshake => &mut self.handshake_ack_packet,
                // Simultaneous open: the first SYN-ACK, and the second that completes it.
                Kind::SimultaneousOpen if p.open_step == Some(3) => &mut self.synack_packet,
                Kind::SimultaneousOpen if p.open_step == Some(4) => &mut self.handshake_ack_packet,
                Kind::Fin if from == Side::Client => &mut self.client_fin_packet,
                Kind::Fin => &mut self.server_fin_packet,
                Kind::Rst => {
                    if self.rst_packet.is_none() {
                        self.flags |= RST_BY;
                        if from == Side::Server {
                            self.flags |= RST_BY_SERVER;
                        }
                    }
                    &mut self.rst_packet
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = number;
            }
        }
        for t in p.transitions.iter().flatten() {
            // Carries aside (only past 2^32 packets), the entries are the changes.
            let full = self.history.len() >= HISTORY_CAP
                && self.history.iter().filter(|c| !c.carry).count() >= HISTORY_CAP;
            if full {
                self.flags |= TRUNCATED;
                continue;
            }
            if self.history.capacity() == 0 {
                self.history.reserve_exact(HISTORY_USUAL);
            }
            Change::push(&mut self.history, number.map_or(0, NonZeroU64::get), t);
        }
    }

    /// Counts one packet of kind `i`.
    #[inline]
    fn count(&mut self, i: usize) {
        if let Some(w) = &mut self.wide {
            w[i] += 1;
            return;
        }
        let Some(n) = self.kinds.get_mut(i) else {
            return;
        };
        match n.checked_add(1) {
            Some(m) => *n = m,
            None => {
                let mut w = Box::new(self.kinds.map(u64::from));
                w[i] += 1;
                self.wide = Some(w);
            }
        }
    }

    /// Packets of each kind, in [`ALL_KINDS`]' order.
    fn counts(&self) -> [u64; ALL_KINDS.len()] {
        match &self.wide {
            Some(w) => **w,
            None => self.kinds.map(u64::from),
        }
    }

    /// Who sent the first RST.
    fn rst_by(&self) -> Option<Side> {
        (self.flags & RST_BY != 0).then_some(if self.flags & RST_BY_SERVER != 0 {
            Side::Server
        } else {
            Side::Client
        })
    }
}

/// Ids the index may span beyond twice its live notes before the oldest live ones move to the
/// map.
const SLAB_SLACK: usize = 1024;

/// The most ids the index spans with `live` notes in it. An id costs 4 bytes there, so the
/// bound is loose: only connections that outlive some thousands of newer ones move to the
/// map.
fn slab_span(live: usize) -> usize {
    2 * live + SLAB_SLACK
}

/// No notes at this id ([`ConnTracker::ids`]).
const NONE: u32 = u32::MAX;

/// Notes of the live connections, by connection id; a connection's notes leave with it.
///
/// The notes sit in [`Slots`], reused as connections end, so they take the room of the most
/// connections noted at once and no more (112 bytes each). Ids are handed out densely in
/// first-seen order, so a connection's slot is found in a ring of `u32` positions indexed by
/// `id - base` (no hashing). Most packets carry no annotation and change no state: they are
/// not noted at all (a connection's first and last packet numbers are in its summary).
///
/// Connections do not end in id order: a long-lived one would hold the ring's front while
/// newer ones come and go, so when the ring spans more than [`slab_span`] ids the oldest
/// live ones move to a map. Memory stays bounded by the live connections.
#[derive(Debug, Default)]
pub struct ConnTracker {
    /// The slot of the notes of ids `base..base + ids.len()`, or [`NONE`].
    ids: VecDeque<u32>,
    /// The id of `ids[0]`.
    base: u64,
    /// Ids in the ring with notes.
    live: usize,
    /// The notes.
    notes: Slots<ConnNotes>,
    /// Slots of the notes of live connections older than `base`.
    old: HashMap<u64, u32, foldhash::fast::RandomState>,
}

impl ConnTracker {
    /// Adds one analysed packet to its connection's notes.
    pub fn packet(&mut self, p: &PacketInfo) {
        if let Some(d) = NoteDetail::of(p) {
            self.note(p.conn, p.number, &d);
        }
    }

    /// Adds packet `number` of connection `conn`, with its detail ([`NoteDetail::of`]), to the
    /// connection's notes.
    pub fn note(&mut self, conn: u64, number: u64, detail: &NoteDetail) {
        let slot = match conn.checked_sub(self.base) {
            Some(i) => self.ring_slot(conn, i),
            None => match self.old.get(&conn) {
                Some(&s) => s,
                None => {
                    let s = self.notes.insert(ConnNotes::default());
                    self.old.insert(conn, s);
                    s
                }
            },
        };
        self.notes[slot].annotate(number, detail);
    }

    /// The slot of `conn`, `i` ids past `base`, in the ring; a new one if it had none.
    fn ring_slot(&mut self, conn: u64, i: u64) -> u32 {
        let mut i = usize::try_from(i).unwrap_or(usize::MAX);
        // A new id is the next one (ids without packets aside), so this does not happen; if it
        // did, the ring would start afresh at `conn` rather than grow to it.
        if i > self.ids.len() + SLAB_SLACK {
            while let Some(s) = self.ids.pop_front() {
                if s != NONE {
                    self.old.insert(self.base, s);
                }
                self.base += 1;
            }
            self.live = 0;
            self.base = conn;
            i = 0;
        }
        if i >= self.ids.len() {
            self.ids.resize(i + 1, NONE);
        }
        match self.ids.get_mut(i) {
            Some(s) if *s == NONE => {
                self.live += 1;
                *s = self.notes.insert(ConnNotes::default());
                *s
            }
            Some(s) => *s,
            // Not reached: the ring was resized to hold `i`.
            None => self.notes.insert(ConnNotes::default()),
        }
    }

    /// Removes and returns the notes of a connection that ended.
    pub fn take(&mut self, id: u64) -> ConnNotes {
        let i = id
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok());
        let slot = match i.map(|i| self.ids.get_mut(i)) {
            Some(Some(s)) if *s != NONE => {
                self.live -= 1;
                Some(std::mem::replace(s, NONE))
            }
            Some(_) => None,
            // Ids below the ring.
            None => self.old.remove(&id),
        };
        while self.ids.front() == Some(&NONE) {
            self.ids.pop_front();
            self.base += 1;
        }
        while self.ids.len() > slab_span(self.live) {
            if let Some(s) = self.ids.pop_front().filter(|&s| s != NONE) {
                self.live -= 1;
                self.old.insert(self.base, s);
            }
            self.base += 1;
        }
        match slot {
            Some(s) => {
                self.notes.free(s);
                std::mem::take(&mut self.notes[s])
            }
            None => ConnNotes::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

/// One side's totals.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Counts {
    /// Packets sent.
    packets: u64,
    /// Payload bytes sent (retransmissions included).
    bytes: u64,
    /// Packets in the retransmission family (retransmission, fast, spurious, out-of-order;
    /// SYN and SYN-ACK retransmissions included).
    retransmissions: u64,
    /// Duplicate ACKs sent.
    dup_acks: u64,
    /// Zero-window advertisements sent.
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

/// A count for every annotation kind.
struct AnnotationCounts<'a>(&'a [u64; ALL_KINDS.len()]);

impl Serialize for AnnotationCounts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(ALL_KINDS.len()))?;
        for (k, n) in ALL_KINDS.iter().zip(self.0) {
            m.serialize_entry(k.as_str(), n)?;
        }
        m.end()
    }
}

/// A connection's count for every annotation kind.
struct NoteCounts<'a>(&'a ConnNotes);

impl Serialize for NoteCounts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(ALL_KINDS.len()))?;
        for (k, n) in ALL_KINDS.iter().zip(self.0.counts()) {
            m.serialize_entry(k.as_str(), &n)?;
        }
        m.end()
    }
}

/// A connection object: the `connections` items of `--json` and the `connection` records of
/// `--ndjson` (which add `"type": "connection"`).
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ConnRecord<'a> {
    /// Connection id: first-seen order from 0, like Wireshark's `tcp.stream`.
    id: u64,
    /// The client, `addr:port` (IPv6 as `[addr]:port`): the side that sent the first SYN, or
    /// the likelier one when none was seen.
    client: SocketAddr,
    /// The server, `addr:port`.
    server: SocketAddr,
    /// The client's final state.
    #[schemars(schema_with = "state_schema")]
    client_state: TcpState,
    /// The server's final state.
    #[schemars(schema_with = "state_schema")]
    server_state: TcpState,
    /// How the handshake went.
    #[schemars(schema_with = "handshake_schema")]
    handshake: &'static str,
    /// Who started the FIN close.
    #[schemars(schema_with = "initiator_schema")]
    close_initiator: Option<&'static str>,
    /// Who ended in TIME_WAIT.
    #[schemars(schema_with = "time_wait_schema")]
    time_wait_on: Option<&'static str>,
    /// True when the server's SYN-ACK came from a SYN cookie (judged by the syn_cookies
    /// detector).
    syn_cookie: bool,
    /// Zeek's conn_state.
    #[schemars(schema_with = "zeek_state_schema")]
    zeek_conn_state: &'static str,
    /// Zeek's history letters.
    zeek_history: &'a str,
    /// How it closed.
    #[schemars(schema_with = "close_schema")]
    close: &'static str,
    /// Why the record was written.
    #[schemars(schema_with = "end_schema")]
    end: &'static str,
    /// First packet's time.
    first_ts: Rfc3339,
    /// First packet's time, ns.
    first_ts_ns: NsString,
    /// Last packet's time.
    last_ts: Rfc3339,
    /// Last packet's time, ns.
    last_ts_ns: NsString,
    /// last_ts − first_ts in ns.
    duration_ns: i64,
    /// Number of the connection's first packet.
    first_packet: u64,
    /// Number of the connection's last packet.
    last_packet: u64,
    /// The first SYN's packet number.
    syn_packet: Option<u64>,
    /// The first SYN-ACK's packet number.
    synack_packet: Option<u64>,
    /// The handshake's final ACK's packet number.
    handshake_ack_packet: Option<u64>,
    /// SYN→SYN-ACK time in ns.
    syn_synack_ns: Option<i64>,
    /// SYN-ACK→ACK time in ns.
    synack_ack_ns: Option<i64>,
    /// SYN retransmissions.
    syn_retransmissions: u32,
    /// SYN-ACK retransmissions.
    synack_retransmissions: u32,
    /// The client's first FIN's packet number.
    client_fin_packet: Option<u64>,
    /// The server's first FIN's packet number.
    server_fin_packet: Option<u64>,
    /// The first RST's packet number.
    rst_packet: Option<u64>,
    /// Who sent the first RST.
    #[schemars(schema_with = "rst_by_schema")]
    rst_by: Option<Side>,
    /// Seen without its handshake.
    midstream: bool,
    /// Started on a 4-tuple an earlier connection of this capture used.
    port_reuse: bool,
    /// What the client sent.
    client_sent: Counts,
    /// What the server sent.
    server_sent: Counts,
    /// Packets of this connection carrying each annotation kind.
    #[schemars(schema_with = "annotation_counts_schema")]
    annotations: NoteCounts<'a>,
    /// Both sides' state changes in packet order.
    #[schemars(schema_with = "history_schema")]
    state_history: History<'a>,
    /// More state changes happened than are listed.
    state_history_truncated: bool,
}

fn rst_by_schema(_: &mut SchemaGenerator) -> Schema {
    nullable_names_schema(&["client", "server"], "who sent the first RST")
}

impl<'a> ConnRecord<'a> {
    /// The object for `c`, with the notes gathered from its packets.
    pub fn new(c: &'a ConnSummary, n: &'a ConnNotes) -> Self {
        ConnRecord {
            id: c.id,
            client: c.client,
            server: c.server,
            client_state: c.client_state,
            server_state: c.server_state,
            handshake: c.handshake.as_str(),
            close_initiator: c.close_initiator.map(|i| i.as_str()),
            time_wait_on: c.time_wait_on,
            syn_cookie: c.syn_cookie,
            zeek_conn_state: c.zeek_conn_state,
            zeek_history: c.zeek_history.as_str(),
            close: c.close.as_str(),
            end: c.end.as_str(),
            first_ts: Rfc3339(c.first_ts),
            first_ts_ns: NsString(c.first_ts),
            last_ts: Rfc3339(c.last_ts),
            last_ts_ns: NsString(c.last_ts),
            duration_ns: c.last_ts.0.saturating_sub(c.first_ts.0),
            first_packet: c.first_packet,
            last_packet: c.last_packet,
            syn_packet: n.syn_packet.map(NonZeroU64::get),
            synack_packet: n.synack_packet.map(NonZeroU64::get),
            handshake_ack_packet: n.handshake_ack_packet.map(NonZeroU64::get),
            syn_synack_ns: c.syn_synack_ns,
            synack_ack_ns: c.synack_ack_ns,
            syn_retransmissions: c.syn_retransmissions,
            synack_retransmissions: c.synack_retransmissions,
            client_fin_packet: n.client_fin_packet.map(NonZeroU64::get),
            server_fin_packet: n.server_fin_packet.map(NonZeroU64::get),
            rst_packet: n.rst_packet.map(NonZeroU64::get),
            rst_by: n.rst_by(),
            midstream: c.midstream,
            port_reuse: c.port_reuse,
            client_sent: c.client_counts.into(),
            server_sent: c.server_counts.into(),
            annotations: NoteCounts(n),
            state_history: History(&n.history),
            state_history_truncated: n.flags & TRUNCATED != 0,
        }
    }
}

impl Counts {
    /// Appends the object, as serde_json writes it.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"packets\":");
        num(out, self.packets);
        out.extend_from_slice(b",\"bytes\":");
        num(out, self.bytes);
        out.extend_from_slice(b",\"retransmissions\":");
        num(out, self.retransmissions);
        out.extend_from_slice(b",\"dup_acks\":");
        num(out, self.dup_acks);
        out.extend_from_slice(b",\"zero_windows\":");
        num(out, self.zero_windows);
        out.push(b'}');
    }
}

impl ConnRecord<'_> {
    /// Appends the object, the bytes serde_json writes for it (a test compares the two).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        self.write_members(out);
        out.push(b'}');
    }

    /// Appends the members without the braces (`--ndjson` puts `type` first).
    pub(crate) fn write_members(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\"id\":");
        num(out, self.id);
        out.extend_from_slice(b",\"client\":");
        socket_addr(out, &self.client);
        out.extend_from_slice(b",\"server\":");
        socket_addr(out, &self.server);
        out.extend_from_slice(b",\"client_state\":");
        string(out, self.client_state.as_str());
        out.extend_from_slice(b",\"server_state\":");
        string(out, self.server_state.as_str());
        out.extend_from_slice(b",\"handshake\":");
        string(out, self.handshake);
        out.extend_from_slice(b",\"close_initiator\":");
        opt_string(out, self.close_initiator);
        out.extend_from_slice(b",\"time_wait_on\":");
        opt_string(out, self.time_wait_on);
        out.extend_from_slice(b",\"syn_cookie\":");
        boolean(out, self.syn_cookie);
        out.extend_from_slice(b",\"zeek_conn_state\":");
        string(out, self.zeek_conn_state);
        out.extend_from_slice(b",\"zeek_history\":");
        escaped(out, self.zeek_history);
        out.extend_from_slice(b",\"close\":");
        string(out, self.close);
        out.extend_from_slice(b",\"end\":");
        string(out, self.end);
        out.extend_from_slice(b",\"first_ts\":");
        rfc3339(out, self.first_ts.0.0);
        out.extend_from_slice(b",\"first_ts_ns\":");
        ns_string(out, self.first_ts_ns.0.0);
        out.extend_from_slice(b",\"last_ts\":");
        rfc3339(out, self.last_ts.0.0);
        out.extend_from_slice(b",\"last_ts_ns\":");
        ns_string(out, self.last_ts_ns.0.0);
        out.extend_from_slice(b",\"duration_ns\":");
        num(out, self.duration_ns);
        out.extend_from_slice(b",\"first_packet\":");
        num(out, self.first_packet);
        out.extend_from_slice(b",\"last_packet\":");
        num(out, self.last_packet);
        out.extend_from_slice(b",\"syn_packet\":");
        opt_num(out, self.syn_packet);
        out.extend_from_slice(b",\"synack_packet\":");
        opt_num(out, self.synack_packet);
        out.extend_from_slice(b",\"handshake_ack_packet\":");
        opt_num(out, self.handshake_ack_packet);
        out.extend_from_slice(b",\"syn_synack_ns\":");
        opt_num(out, self.syn_synack_ns);
        out.extend_from_slice(b",\"synack_ack_ns\":");
        opt_num(out, self.synack_ack_ns);
        out.extend_from_slice(b",\"syn_retransmissions\":");
        num(out, self.syn_retransmissions);
        out.extend_from_slice(b",\"synack_retransmissions\":");
        num(out, self.synack_retransmissions);
        out.extend_from_slice(b",\"client_fin_packet\":");
        opt_num(out, self.client_fin_packet);
        out.extend_from_slice(b",\"server_fin_packet\":");
        opt_num(out, self.server_fin_packet);
        out.extend_from_slice(b",\"rst_packet\":");
        opt_num(out, self.rst_packet);
        out.extend_from_slice(b",\"rst_by\":");
        opt_string(out, self.rst_by.map(Side::as_str));
        out.extend_from_slice(b",\"midstream\":");
        boolean(out, self.midstream);
        out.extend_from_slice(b",\"port_reuse\":");
        boolean(out, self.port_reuse);
        out.extend_from_slice(b",\"client_sent\":");
        self.client_sent.write_json(out);
        out.extend_from_slice(b",\"server_sent\":");
        self.server_sent.write_json(out);
        out.extend_from_slice(b",\"annotations\":{");
        let counts = self.annotations.0.counts();
        for (i, (k, n)) in ALL_KINDS.iter().zip(&counts).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            key(out, k.as_str());
            num(out, *n);
        }
        out.extend_from_slice(b"},\"state_history\":[");
        for (i, t) in changes(self.state_history.0).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"packet\":");
            num(out, t.packet);
            out.extend_from_slice(b",\"side\":");
            string(out, t.side.as_str());
            out.extend_from_slice(b",\"from\":");
            string(out, t.from.as_str());
            out.extend_from_slice(b",\"to\":");
            string(out, t.to.as_str());
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"state_history_truncated\":");
        boolean(out, self.state_history_truncated);
    }
}

// ---------------------------------------------------------------------------------------------
// Findings

/// A detector's finding as JSON: [`Finding`]'s own serialisation, described for the schema.
/// (A field added to `Finding` makes the output fail the strict schema until it is described
/// here.)
pub struct FindingJson<'a>(pub &'a Finding);

impl Serialize for FindingJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl JsonSchema for FindingJson<'_> {
    fn schema_name() -> Cow<'static, str> {
        "Finding".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let kinds = [
            FindingKind::SynFlood,
            FindingKind::TimeWaitBuildup,
            FindingKind::SynCookies,
        ]
        .map(|k| k.as_str());
        let time = g.subschema_for::<Rfc3339>();
        let ns = g.subschema_for::<NsString>();
        json_schema!({
            "description": "What a detector found (docs/detectors.md).",
            "type": "object",
            "properties": {
                "kind": { "type": "string", "enum": kinds, "description": "which detector" },
                "subject": {
                    "type": "string",
                    "description": "addr:port (syn_flood, syn_cookies) or addr (time_wait_buildup), IPv6 as [addr]:port"
                },
                "first_time": time, "first_time_ns": ns,
                "last_time": time, "last_time_ns": ns,
                "confidence": { "type": "number", "minimum": 0, "maximum": 1 },
                "evidence": {
                    "type": "array",
                    "items": { "type": "string" },
                    "description": "the signals behind it, one short sentence each"
                },
                "figures": {
                    "type": "object",
                    "description": "the numbers measured; their names depend on the kind (docs/detectors.md)"
                }
            },
            "required": ["kind", "subject", "first_time", "first_time_ns", "last_time",
                         "last_time_ns", "confidence", "evidence", "figures"],
            "additionalProperties": false
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Frame counts for a set of decode kinds.
struct DecodeCounts<'a> {
    stats: &'a Stats,
    problems: bool,
}

impl Serialize for DecodeCounts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, problem) in DECODE_KINDS {
            if problem == self.problems {
                m.serialize_entry(kind_name(k), &self.stats.count_of(k))?;
            }
        }
        m.end()
    }
}

fn decode_names(problems: bool) -> Vec<&'static str> {
    DECODE_KINDS
        .iter()
        .filter(|(_, p)| *p == problems)
        .map(|(k, _)| kind_name(*k))
        .collect()
}

fn packets_by_kind_schema(_: &mut SchemaGenerator) -> Schema {
    counts_schema(
        &decode_names(false),
        "frames by what they are (decoded without problems)",
    )
}

fn decode_problems_schema(_: &mut SchemaGenerator) -> Schema {
    counts_schema(
        &decode_names(true),
        "frames that could not be decoded fully, by problem",
    )
}

/// Run-wide statistics: the document's `stats`, and the `summary` record's fields.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StatsRec<'a> {
    /// Frames that passed the filter.
    packets: u64,
    /// Frames by what they are.
    #[schemars(schema_with = "packets_by_kind_schema")]
    packets_by_kind: DecodeCounts<'a>,
    /// Frames that could not be decoded fully, by problem.
    #[schemars(schema_with = "decode_problems_schema")]
    decode_problems: DecodeCounts<'a>,
    /// TCP packets analysed.
    tcp_packets: u64,
    /// Connections seen.
    connections: u64,
    /// Connections evicted by the connection limit.
    evicted: u64,
    /// Connections ended by the idle timeout.
    idle_expired: u64,
    /// Most connections held at once (closed ones waiting out TIME_WAIT included).
    peak_live_connections: u64,
    /// TCP packets that came after their connection's record (closed connections waiting
    /// out TIME_WAIT); analysed, but not counted in any connection record.
    time_wait_packets: u64,
    /// Packets carrying each annotation kind.
    #[schemars(schema_with = "annotation_counts_schema")]
    annotations: AnnotationCounts<'a>,
}

impl<'a> StatsRec<'a> {
    /// From the decode counts and the analysis counts.
    pub fn new(decode: &'a Stats, a: &'a AnalysisStats) -> Self {
        StatsRec {
            packets: decode.packets,
            packets_by_kind: DecodeCounts {
                stats: decode,
                problems: false,
            },
            decode_problems: DecodeCounts {
                stats: decode,
                problems: true,
            },
            tcp_packets: a.packets,
            connections: a.connections,
            evicted: a.evicted,
            idle_expired: a.idle_expired,
            peak_live_connections: a.peak_live,
            time_wait_packets: a.time_wait_packets,
            annotations: AnnotationCounts(&a.kinds),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// What kind of error ended reading early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input is damaged, cut short or no capture at all (exit status 2).
    Damaged,
    /// The input could not be opened or read (exit status 1).
    Io,
    /// A capture variant tcplens cannot read (exit status 1).
    UnsupportedFormat,
    /// The filter failed (exit status 1).
    Filter,
}

/// Why an input was not read completely.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct InputError {
    /// What kind of error.
    kind: ErrorKind,
    /// The whole message, as printed on standard error.
    message: String,
    /// The input's name.
    file: String,
    /// The 1-based number the frame at the damage would have had (damage only).
    packet: Option<u64>,
    /// Byte offset of the damaged record's header from the start of the input (damage only).
    offset: Option<u64>,
    /// What is wrong, without the position.
    detail: String,
}

impl InputError {
    /// From a capture error.
    pub fn capture(e: &CaptureError) -> Self {
        let (kind, file, packet, offset, detail) = match e {
            CaptureError::Damaged {
                path,
                packet,
                offset,
                detail,
            } => (
                ErrorKind::Damaged,
                path,
                Some(*packet),
                Some(*offset),
                detail.clone(),
            ),
            CaptureError::Io { path, source } => {
                (ErrorKind::Io, path, None, None, source.to_string())
            }
            CaptureError::NotACapture { path, detail } => (
                ErrorKind::UnsupportedFormat,
                path,
                None,
                None,
                detail.clone(),
            ),
        };
        InputError {
            kind,
            message: e.to_string(),
            file: file.clone(),
            packet,
            offset,
            detail,
        }
    }

    /// A filter that failed while the input was read.
    pub fn filter(file: &str, e: &anyhow::Error) -> Self {
        InputError {
            kind: ErrorKind::Filter,
            message: format!("{e:#}"),
            file: file.to_string(),
            packet: None,
            offset: None,
            detail: format!("{e:#}"),
        }
    }
}

/// A link type.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
struct LinktypeRec {
    /// The LINKTYPE_ value.
    id: u16,
    /// tcpdump's DLT name, when tcplens knows it.
    name: Option<&'static str>,
}

/// Where the frames came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A capture file.
    File,
    /// A capture on standard input.
    Stdin,
    /// A live interface.
    Live,
}

/// What the pipeline counted of an input while reading it.
#[derive(Clone, Copy, Debug, Default)]
pub struct InputCounts {
    /// Frames read from the input.
    pub read: u64,
    /// Captured bytes read.
    pub bytes: u64,
    /// Frames that passed the filter.
    pub matched: u64,
    /// First frame's time.
    pub first: Option<Timestamp>,
    /// Last frame's time.
    pub last: Option<Timestamp>,
    /// Reading stopped at the `-c` count.
    pub stopped_by_count: bool,
}

/// One input: the items of `inputs`.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct InputRec {
    /// The file name (`-` for standard input) or the interface.
    file: String,
    /// Where the frames came from.
    source: SourceKind,
    /// `pcap` or `pcapng`; null for live capture or an unreadable header.
    #[schemars(schema_with = "format_schema")]
    format: Option<&'static str>,
    /// Link types declared by the input, in the order first declared.
    link_types: Vec<LinktypeRec>,
    /// Largest snapshot length declared (0: no limit); null when none was declared.
    snaplen: Option<u32>,
    /// Frames read.
    packets_read: u64,
    /// Captured bytes read.
    bytes_read: u64,
    /// Frames that passed the filter.
    packets_matched: u64,
    /// First frame's time.
    first_ts: Option<Rfc3339>,
    /// First frame's time, ns.
    first_ts_ns: Option<NsString>,
    /// Last frame's time.
    last_ts: Option<Rfc3339>,
    /// Last frame's time, ns.
    last_ts_ns: Option<NsString>,
    /// last_ts − first_ts in ns.
    duration_ns: Option<i64>,
    /// The input was read to its end without error.
    complete: bool,
    /// Reading stopped at the `-c` count (the rest was not read, but nothing was wrong).
    stopped_by_count: bool,
    /// Why reading stopped early; null when it did not.
    error: Option<InputError>,
}

fn format_schema(_: &mut SchemaGenerator) -> Schema {
    nullable_names_schema(&["pcap", "pcapng"], "the capture file format")
}

impl InputRec {
    /// Describes an input; `capture` is what the file reader found (None for live capture or
    /// an unreadable header), `live_linktype` the live interface's link type (None for files), `n` what the pipeline counted, `error` why reading stopped early.
    pub fn new(
        name: &str,
        capture: Option<&CaptureInfo>,
        live_linktype: Option<Linktype>,
        n: InputCounts,
        error: Option<InputError>,
    ) -> Self {
        let source = match (live_linktype, name) {
            (Some(_), _) => SourceKind::Live,
            (None, "-") => SourceKind::Stdin,
            (None, _) => SourceKind::File,
        };
        let linktypes: Vec<Linktype> = match (capture, live_linktype) {
            (Some(c), _) => c.linktypes.clone(),
            (None, Some(l)) => vec![l],
            (None, None) => Vec::new(),
        };
        InputRec {
            file: name.to_string(),
            source,
            format: capture.map(|c| c.format.name()),
            link_types: linktypes
                .into_iter()
                .map(|l| LinktypeRec {
                    id: l.0,
                    name: l.name(),
                })
                .collect(),
            snaplen: capture.and_then(|c| c.snaplen),
            packets_read: n.read,
            bytes_read: n.bytes,
            packets_matched: n.matched,
            first_ts: n.first.map(Rfc3339),
            first_ts_ns: n.first.map(NsString),
            last_ts: n.last.map(Rfc3339),
            last_ts_ns: n.last.map(NsString),
            duration_ns: n.first.zip(n.last).map(|(a, b)| b.0.saturating_sub(a.0)),
            complete: error.is_none() && !n.stopped_by_count,
            stopped_by_count: n.stopped_by_count,
            error,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The document

/// The fields before `connections`.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DocHead {
    /// Always `tcplens`.
    #[schemars(schema_with = "tool_schema")]
    tool: &'static str,
    /// tcplens's version.
    version: &'static str,
    /// The layout's version (this schema's).
    #[schemars(schema_with = "schema_version_schema")]
    schema_version: u32,
}

fn tool_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "const": TOOL })
}

fn schema_version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "const": SCHEMA_VERSION })
}

impl Default for DocHead {
    /// tcplens's name and version, this layout's version.
    fn default() -> Self {
        DocHead {
            tool: TOOL,
            version: VERSION,
            schema_version: SCHEMA_VERSION,
        }
    }
}

/// The fields after `connections`.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DocTail<'a> {
    /// What the detectors found, in the order they fired.
    findings: Vec<FindingJson<'a>>,
    /// Run-wide statistics.
    stats: StatsRec<'a>,
    /// The inputs read (one per run today).
    inputs: &'a [InputRec],
}

/// The shape of the `--json` document (the writer streams it: see [`DocWriter`]).
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(title = "tcplens --json document")]
pub struct JsonDocument<'a> {
    #[serde(flatten)]
    head: DocHead,
    /// Every connection, in the order they ended.
    connections: Vec<ConnRecord<'a>>,
    #[serde(flatten)]
    tail: DocTail<'a>,
}

/// Connection objects gathered before they are handed to the output: a 48 MB document then
/// goes out in large writes, which the caller's `BufWriter` passes on without copying.
const DOC_CHUNK: usize = 64 * 1024;

/// Streams the `--json` document: head, connections as they end, tail at the end.
#[derive(Debug, Default)]
pub struct DocWriter {
    buf: Vec<u8>,
    started: bool,
    connections: u64,
}

impl DocWriter {
    /// A writer that has written nothing yet.
    pub fn new() -> Self {
        DocWriter {
            buf: Vec::with_capacity(DOC_CHUNK + 4096),
            started: false,
            connections: 0,
        }
    }

    /// The fields before the connections, once.
    fn head(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        // Serialising three constant fields into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &DocHead::default());
        // `{…}` becomes `{…,"connections":[`.
        self.buf.pop();
        self.buf.extend_from_slice(b",\"connections\":[");
    }

    /// Starts the next item of `connections`.
    fn item(&mut self) {
        self.head();
        if self.connections > 0 {
            self.buf.push(b',');
        }
        self.buf.push(b'\n');
        self.connections += 1;
    }

    /// Writes one connection (handed to `out` once [`DOC_CHUNK`] bytes have gathered).
    pub fn connection(&mut self, out: &mut dyn Write, c: &ConnRecord<'_>) -> io::Result<()> {
        self.item();
        c.write_json(&mut self.buf);
        if self.buf.len() >= DOC_CHUNK {
            out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes to `out` everything before the next connection's object, which the caller writes
    /// at the end of `out` later ([`crate::report::analysis::Ended`]).
    pub fn connection_deferred(&mut self, out: &mut Vec<u8>) {
        self.item();
        out.extend_from_slice(&self.buf);
        self.buf.clear();
    }

    /// Ends the document.
    pub fn finish(
        &mut self,
        out: &mut dyn Write,
        findings: &[Finding],
        stats: StatsRec<'_>,
        inputs: &[InputRec],
    ) -> io::Result<()> {
        self.head();
        let tail = DocTail {
            findings: findings.iter().map(FindingJson).collect(),
            stats,
            inputs,
        };
        let at = self.buf.len();
        self.buf.extend_from_slice(b"\n],");
        serde_json::to_writer(&mut self.buf, &tail)?;
        // `],{"findings":…}` becomes `],"findings":…}`.
        self.buf.remove(at + 3);
        self.buf.push(b'\n');
        out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
}

/// The JSON Schema of the `--json` document.
pub fn document_schema() -> Schema {
    let mut s = generator().into_root_schema_for::<JsonDocument<'static>>();
    s.insert(
        "description".into(),
        format!("tcplens --json document, schema_version {SCHEMA_VERSION}").into(),
    );
    s
}

/// Builds a JSON Schema with the same settings as [`document_schema`].
pub(crate) fn schema_of<T: JsonSchema>() -> Schema {
    generator().into_root_schema_for::<T>()
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

    #[test]
    fn empty_document_is_one_valid_object() {
        let mut out = Vec::new();
        let stats = Stats::default();
        let a = AnalysisStats::default();
        let mut w = DocWriter::new();
        w.finish(&mut out, &[], StatsRec::new(&stats, &a), &[])
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["tool"], "tcplens");
        assert_eq!(v["connections"], serde_json::json!([]));
        assert_eq!(v["findings"], serde_json::json!([]));
        assert_eq!(v["inputs"], serde_json::json!([]));
    }

    /// Byte-sized kind counts move to `u64`s when one passes 255: every count stays the number
    /// of packets fed, and the other notes are kept.
    #[test]
    fn kind_counts_past_a_byte_stay_exact() {
        let mut n = ConnNotes::default();
        let mut p = PacketInfo {
            from: Some(Side::Server),
            ..PacketInfo::default()
        };
        p.kinds.push(Kind::Rst);
        p.number = 7;
        n.packet(&p);
        p.kinds = KindList::default();
        p.kinds.push(Kind::DuplicateAck);
        p.kinds.push(Kind::Retransmission);
        for number in 8..8 + 70_000 {
            p.number = number;
            n.packet(&p);
            if number % 3 == 0 {
                let mut q = p;
                q.kinds = KindList::default();
                q.kinds.push(Kind::OutOfOrder);
                n.packet(&q);
            }
        }
        let want = |k: Kind| match k {
            Kind::Rst => 1,
            Kind::DuplicateAck | Kind::Retransmission => 70_000,
            Kind::OutOfOrder => (8..8 + 70_000u64).filter(|x| x % 3 == 0).count() as u64,
            _ => 0,
        };
        for (k, got) in ALL_KINDS.iter().zip(n.counts()) {
            assert_eq!(got, want(*k), "{}", k.as_str());
        }
        assert_eq!(n.rst_packet, NonZeroU64::new(7));
        assert_eq!(n.rst_by(), Some(Side::Server));
        // Below a byte nothing moves.
        let mut m = ConnNotes::default();
        for number in 1..=255 {
            p.number = number;
            m.packet(&p);
        }
        assert!(m.wide.is_none());
        assert_eq!(m.counts()[Kind::DuplicateAck.index()], 255);
        p.number = 256;
        m.packet(&p);
        assert!(m.wide.is_some());
        assert_eq!(m.counts()[Kind::DuplicateAck.index()], 256);
        assert_eq!(m.rst_by(), None);
    }

    /// The 8-byte history entries give back every packet number, however far apart (carries
    /// past 2^32), and the history still stops at `HISTORY_CAP` changes.
    #[test]
    fn history_keeps_exact_packet_numbers() {
        use crate::analysis::Transition;
        let numbers = [
            0,
            1,
            5,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            1 << 32,
            (1 << 40) + 3,
            (1 << 40) + 3,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut n = ConnNotes::default();
        let mut p = PacketInfo::default();
        let states = [TcpState::SynSent, TcpState::Established, TcpState::FinWait1];
        let mut want = Vec::new();
        for i in 0..HISTORY_CAP + 5 {
            let number = numbers.get(i).copied().unwrap_or(u64::MAX);
            let (side, from, to) = (
                [Side::Client, Side::Server][i % 2],
                states[i % 3],
                states[(i + 1) % 3],
            );
            p.transitions[0] = Some(Transition { side, from, to });
            n.annotate(number, &NoteDetail::of(&p).unwrap());
            if i < HISTORY_CAP {
                // Number 0 is no packet number: the history keeps it as given.
                want.push(StateChange {
                    packet: number,
                    side,
                    from,
                    to,
                });
            }
        }
        assert_eq!(changes(&n.history).collect::<Vec<_>>(), want);
        assert!(n.history.iter().any(|c| c.carry));
        assert_eq!(n.flags & TRUNCATED, TRUNCATED);
        let mut m = ConnNotes::default();
        for i in 0..HISTORY_CAP as u64 {
            m.annotate(i + 1, &NoteDetail::of(&p).unwrap());
        }
        assert_eq!(m.flags & TRUNCATED, 0);
        assert_eq!(changes(&m.history).count(), HISTORY_CAP);
        // A first change past 2^32 (a carry first), then changes near it and far from it.
        let first = (1 << 33) + 7;
        let numbers = [first, first + 5, first + (1 << 32) + 1, first + 6, u64::MAX];
        let mut m = ConnNotes::default();
        for &number in &numbers {
            m.annotate(number, &NoteDetail::of(&p).unwrap());
        }
        assert!(m.history[0].carry);
        let got: Vec<u64> = changes(&m.history).map(|c| c.packet).collect();
        assert_eq!(got, numbers);
    }

    /// The slab gives every connection the notes a plain map by id gives, whatever order
    /// connections end in, and stays within its bound while a long-lived connection holds its
    /// front.
    #[test]
    fn tracker_matches_a_map_by_id() {
        use crate::analysis::Transition;
        let mut t = ConnTracker::default();
        let mut model: HashMap<u64, ConnNotes> = HashMap::new();
        let mut live: Vec<u64> = Vec::new();
        let mut next_id = 0u64;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut taken = 0;
        for number in 1..=200_000u64 {
            let mut p = PacketInfo {
                number,
                ..PacketInfo::default()
            };
            match rand(10) {
                // A new connection (id 0 never ends: it holds the slab's front).
                0 => {
                    p.conn = next_id;
                    next_id += 1;
                    live.push(p.conn);
                }
                // One ends.
                1 if live.len() > 1 => {
                    let id = live.swap_remove(1 + rand(live.len() as u64 - 1) as usize);
                    assert_eq!(t.take(id), model.remove(&id).unwrap_or_default(), "id {id}");
                    assert!(t.ids.len() <= slab_span(t.live));
                    taken += 1;
                    continue;
                }
                _ if live.is_empty() => continue,
                _ => p.conn = live[rand(live.len() as u64) as usize],
            }
            if rand(4) == 0 {
                p.kinds
                    .push(ALL_KINDS[rand(ALL_KINDS.len() as u64) as usize]);
                p.from = Some(Side::Server);
            }
            if rand(4) == 0 {
                p.transitions[0] = Some(Transition {
                    side: Side::Client,
                    from: TcpState::SynSent,
                    to: TcpState::Established,
                });
            }
            t.packet(&p);
            model.entry(p.conn).or_default().packet(&p);
        }
        assert!(taken > 10_000 && !t.old.is_empty());
        for id in live {
            assert_eq!(t.take(id), model.remove(&id).unwrap_or_default(), "id {id}");
        }
        assert!(t.ids.is_empty() && t.old.is_empty());
        // An id far past the slab starts it afresh; the notes before it are kept.
        let mut p = PacketInfo {
            number: 1,
            conn: next_id,
            ..PacketInfo::default()
        };
        p.kinds.push(Kind::HandshakeSyn);
        t.packet(&p);
        p.conn = next_id + 1_000_000;
        p.number = 2;
        p.kinds = KindList::default();
        p.kinds.push(Kind::Rst);
        t.packet(&p);
        assert!(t.ids.len() == 1);
        assert_eq!(t.take(next_id).syn_packet, NonZeroU64::new(1));
        assert_eq!(t.take(next_id + 1_000_000).rst_packet, NonZeroU64::new(2));
    }
}

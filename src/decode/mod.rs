//! Decode stage: link layer, IP and TCP headers of a [`Frame`], without copying the payload.
//!
//! No function here panics on any input: every read of untrusted bytes is length-checked.
//! A frame that is not TCP, or whose headers are cut or malformed, is classified by
//! [`Kind`] so the statistics can show it.

pub mod ip;
pub mod link;
pub mod tcp;

use crate::capture::{Frame, Timestamp};
use ip::{IpBody, IpInfo};
use link::{LinkError, LinkView, NetType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TCP header flags, as the 8 low bits of byte 13 plus the AE bit (RFC 3168 NS / AccECN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u16 = 0x001;
    /// Synchronize sequence numbers.
    pub const SYN: u16 = 0x002;
    /// Reset the connection.
    pub const RST: u16 = 0x004;
    /// Push function.
    pub const PSH: u16 = 0x008;
    /// Acknowledgment field is significant.
    pub const ACK: u16 = 0x010;
    /// Urgent pointer field is significant.
    pub const URG: u16 = 0x020;
    /// ECN-Echo.
    pub const ECE: u16 = 0x040;
    /// Congestion Window Reduced.
    pub const CWR: u16 = 0x080;
    /// Accurate ECN (formerly NS).
    pub const AE: u16 = 0x100;

    /// True when every bit of `mask` is set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }
    /// SYN set.
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    /// ACK set.
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
    /// FIN set.
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    /// RST set.
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
}

/// The TCP options the analysis uses, gathered once while decoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionSummary {
    /// Maximum segment size.
    pub mss: Option<u16>,
    /// Window scale shift count.
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// Timestamps: (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (left, right); only the first `sack_count` are valid.
    pub sack: [(u32, u32); 4],
    /// How many SACK blocks the option carried (at most 4 are kept).
    pub sack_count: u8,
    /// A TCP Fast Open option was present.
    pub fast_open: bool,
}

/// What the analysis needs of one TCP segment: owned, `Copy`, no payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The frame number (1-based).
    pub number: u64,
    /// Capture time.
    pub ts: Timestamp,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Raw sequence number.
    pub seq: u32,
    /// Raw acknowledgment number (meaningful when ACK is set).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// Payload length from the IP length fields (not the captured length), cut to what the
    /// frame's wire length holds: bytes the capture point never saw are not part of the
    /// segment (Wireshark's reported length; tcpdump still prints the IP-derived length).
    pub payload_len: u32,
    /// The options the analysis reads.
    pub options: OptionSummary,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// How a frame was classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A TCP segment whose header (options included) was read.
    Tcp,
    /// TCP, but the header is cut by the snapshot length.
    TcpTruncated,
    /// TCP with an impossible header length (data offset < 5 or beyond the IP payload).
    TcpBadHeader,
    /// A later IP fragment of a TCP datagram (no TCP header in it).
    TcpFragment,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// Another IP protocol.
    OtherIp,
    /// ARP.
    Arp,
    /// Another ether type.
    OtherLink,
    /// A link type we do not decode.
    UnsupportedLinktype,
    /// The link or IP header is cut or malformed.
    Malformed,
}

/// Zero-copy view of the network layer, for the printers.
#[derive(Clone, Copy, Debug)]
pub struct NetView<'a> {
    /// From the network header to the end of the captured frame.
    pub bytes: &'a [u8],
    /// The on-the-wire length of that part (what tcpdump passes to `ip_print`).
    pub wire_len: u32,
    /// The transport protocol the IP header names, when it could be read (6 for TCP).
    pub proto: Option<u8>,
}

/// A decoded frame.
#[derive(Clone, Copy, Debug)]
pub struct Decoded<'a> {
    /// The classification.
    pub kind: Kind,
    /// The segment, for [`Kind::Tcp`].
    pub segment: Option<Segment>,
    /// The link header, when the link type is supported and its header was read.
    pub link: Option<LinkView<'a>>,
    /// The network layer, when the link layer names IP (v4 or v6).
    pub net: Option<NetView<'a>>,
}

impl Decoded<'_> {
    /// Nothing decoded: a malformed frame, what [`decode_into`] starts from. (A function,
    /// not a constant: a constant is copied whole from static memory, padding and all.)
    #[inline(always)]
    pub fn empty() -> Self {
        Decoded {
            kind: Kind::Malformed,
            segment: None,
            link: None,
            net: None,
        }
    }

    /// True when libpcap's `tcp` (or `ip6 protochain 6`) would call this frame TCP: the IP
    /// header names TCP, whatever is wrong further in.
    pub fn is_tcp(&self) -> bool {
        self.net.is_some_and(|n| n.proto == Some(ip::PROTO_TCP))
    }
}

fn addr(version: u8, b: &[u8; 16]) -> IpAddr {
    if version == 4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*b))
    }
}

/// Decodes one frame. Never panics; every frame gets a [`Kind`].
pub fn decode<'a>(frame: &Frame<'a>) -> Decoded<'a> {
    let mut d = Decoded::empty();
    decode_into(frame, &mut d);
    d
}

/// [`decode`] into `d`, which must be as [`Decoded::empty`]: the hot path builds the large
/// `Decoded` in place (returned by value it was copied out, ~50 instructions a packet).
#[inline(always)]
pub fn decode_into<'a>(frame: &Frame<'a>, d: &mut Decoded<'a>) {
    let data = frame.data;
    let (off, net) = match link::parse(frame.linktype, data, &mut d.link) {
        Ok(x) => x,
        Err(LinkError::Unsupported) => {
            d.kind = Kind::UnsupportedLinktype;
            return;
        }
        Err(LinkError::Malformed) => return,
    };
    let bytes = data.get(off..).unwrap_or(&[]);
    // The wire length is at least what was captured, whatever the record header claims.
    let wire_len = frame
        .origlen
        .max(data.len() as u32)
        .saturating_sub(off as u32);
    let version = bytes.first().map(|b| b >> 4);
    let info = match (net, version) {
        (NetType::Ipv4, Some(4)) | (NetType::IpN, Some(4)) => ip::ipv4(bytes, wire_len),
        (NetType::Ipv6, Some(6)) | (NetType::IpN, Some(6)) => ip::ipv6(bytes, wire_len),
        (NetType::Arp, _) => {
            d.kind = Kind::Arp;
            return;
        }
        (NetType::Other, _) => {
            d.kind = Kind::OtherLink;
            return;
        }
        _ => None,
    };
    let Some(info) = info else {
        // Version mismatch or a header shorter than the fixed part: still note a readable
        // protocol field, which libpcap's filter would test.
        let proto = match version {
            Some(4) => bytes.get(9).copied(),
            Some(6) => bytes.get(6).copied(),
            _ => None,
        };
        d.net = Some(NetView {
            bytes,
            wire_len,
            proto,
        });
        return;
    };
    let proto = match info.body {
        IpBody::Transport { proto, .. } | IpBody::LaterFragment { proto } => Some(proto),
        IpBody::Bad { proto } => proto,
    };
    d.net = Some(NetView {
        bytes,
        wire_len,
        proto,
    });
    d.kind = match info.body {
        IpBody::Bad { .. } => Kind::Malformed,
        IpBody::LaterFragment { proto } => match proto {
            ip::PROTO_TCP => Kind::TcpFragment,
            ip::PROTO_UDP => Kind::Udp,
            ip::PROTO_ICMP | ip::PROTO_ICMPV6 => Kind::Icmp,
            _ => Kind::OtherIp,
        },
        IpBody::Transport {
            proto: ip::PROTO_TCP,
            offset,
            len,
        } => {
            // An IP length beyond the frame's wire length ("truncated-ip"): only what the
            // capture point saw counts.
            let seen = len.min(wire_len.saturating_sub(offset as u32));
            let tcp = bytes.get(offset..).unwrap_or(&[]);
            tcp_segment(frame, &info, tcp, len, seen, &mut d.segment)
        }
        IpBody::Transport { proto, .. } => match proto {
            ip::PROTO_UDP => Kind::Udp,
            ip::PROTO_ICMP | ip::PROTO_ICMPV6 => Kind::Icmp,
            _ => Kind::OtherIp,
        },
    };
}

/// Reads a TCP header from `tcp` (captured bytes from the TCP header on, possibly more than
/// the segment when the frame is padded) with `len` the segment length by the IP header and
/// `seen` the part of it within the frame's wire length; stores the segment in `out`.
// Inlined and stored through `out`: built in place in the caller's `Decoded`, the segment is
// neither copied from a temporary (~35 instructions a packet) nor read back from a
// just-written stack copy (a stalled store-to-load forward that cost more than the parse).
#[inline(always)]
fn tcp_segment(
    frame: &Frame<'_>,
    info: &IpInfo,
    tcp: &[u8],
    len: u32,
    seen: u32,
    out: &mut Option<Segment>,
) -> Kind {
    let Some(h) = tcp.get(..20) else {
        return Kind::TcpTruncated;
    };
    let hlen = usize::from(h[12] >> 4) * 4;
    if hlen < 20 || hlen as u32 > len {
        return Kind::TcpBadHeader;
    }
    let Some(opts) = tcp.get(20..hlen) else {
        return Kind::TcpTruncated;
    };
    let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let seg = out.insert(Segment {
        number: frame.number,
        ts: frame.ts,
        src: addr(info.version, &info.src),
        dst: addr(info.version, &info.dst),
        sport: u16::from_be_bytes([h[0], h[1]]),
        dport: u16::from_be_bytes([h[2], h[3]]),
        seq: be32(4),
        ack: be32(8),
        flags: TcpFlags(u16::from(h[13]) | (u16::from(h[12] & 1) << 8)),
        window: u16::from_be_bytes([h[14], h[15]]),
        payload_len: seen.saturating_sub(hlen as u32),
        options: OptionSummary::default(),
        ttl: info.ttl,
    });
    tcp::summarize_into(opts, &mut seg.options);
    Kind::Tcp
}

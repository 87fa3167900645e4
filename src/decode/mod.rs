//! Decode stage: link layer, IP and TCP headers of a [`Frame`], without copying the payload.
//!
//! No function here panics on any input: every read of untrusted bytes is length-checked.
//! A frame that is not TCP, or whose headers are cut or malformed, is classified by
//! [`Kind`] so the statistics can show it.

use crate::capture::{Frame, Linktype, Timestamp};
use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use std::net::IpAddr;

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
    /// Payload length from the IP length fields (not the captured length).
    pub payload_len: u32,
    /// The options the analysis reads.
    pub options: OptionSummary,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// How a frame was classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A TCP segment whose header was read.
    Tcp,
    /// TCP, but the header is cut by the snapshot length.
    TcpTruncated,
    /// TCP with an impossible header length.
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

/// A decoded frame.
#[derive(Clone, Debug)]
pub struct Decoded<'a> {
    /// The classification.
    pub kind: Kind,
    /// The segment, for [`Kind::Tcp`].
    pub segment: Option<Segment>,
    /// The sliced packet, for the printers.
    pub sliced: Option<LaxSlicedPacket<'a>>,
}

/// Decodes one frame.
pub fn decode<'a>(frame: &Frame<'a>) -> Decoded<'a> {
    let data = frame.data;
    let sliced = match frame.linktype {
        Linktype::ETHERNET => LaxSlicedPacket::from_ethernet(data).ok(),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => LaxSlicedPacket::from_ip(data).ok(),
        _ => {
            return Decoded {
                kind: Kind::UnsupportedLinktype,
                segment: None,
                sliced: None,
            };
        }
    };
    let Some(sliced) = sliced else {
        return Decoded {
            kind: Kind::Malformed,
            segment: None,
            sliced: None,
        };
    };
    let (src, dst, ttl, kind) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
                h.ttl(),
                None,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
                h.hop_limit(),
                None,
            )
        }
        _ => (
            IpAddr::from([0u8; 4]),
            IpAddr::from([0u8; 4]),
            0,
            Some(Kind::OtherLink),
        ),
    };
    if let Some(kind) = kind {
        return Decoded {
            kind,
            segment: None,
            sliced: Some(sliced),
        };
    }
    let segment = match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let flags = TcpFlags(u16::from(tcp.slice()[13]) | (u16::from(tcp.ns()) << 8));
            Some(Segment {
                number: frame.number,
                ts: frame.ts,
                src,
                dst,
                sport: tcp.source_port(),
                dport: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags,
                window: tcp.window_size(),
                payload_len: tcp.payload().len() as u32,
                options: OptionSummary::default(),
                ttl,
            })
        }
        _ => None,
    };
    Decoded {
        kind: if segment.is_some() {
            Kind::Tcp
        } else {
            Kind::OtherIp
        },
        segment,
        sliced: Some(sliced),
    }
}

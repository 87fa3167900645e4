//! IPv4 and IPv6 headers: where the transport header starts and how long the transport
//! segment is by the IP length fields, following tcpdump's `ip_print` / `ip6_print` rules.

/// IPv6 extension headers walked before giving up (tcpdump walks the whole chain; real
/// packets carry a handful).
pub const MAX_EXT_HEADERS: usize = 8;

/// IPv6 Hop-by-Hop options.
pub const NH_HOPOPTS: u8 = 0;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;
/// IPv6 routing header.
pub const NH_ROUTING: u8 = 43;
/// IPv6 fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// ICMP.
pub const PROTO_ICMP: u8 = 1;
/// ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// IPv6 destination options.
pub const NH_DSTOPTS: u8 = 60;

/// What the IP layer holds, as far as a transport decoder is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpBody {
    /// The transport header starts at `offset` (from the IP header) and the segment is `len`
    /// bytes long by the IP length fields.
    Transport {
        /// Transport protocol number.
        proto: u8,
        /// Offset of the transport header from the start of the IP header.
        offset: usize,
        /// Transport segment length by the IP length fields.
        len: u32,
    },
    /// A fragment other than the first: no transport header in it.
    LaterFragment {
        /// Transport protocol number.
        proto: u8,
    },
    /// The IP header is cut or malformed; `proto` is the protocol field when it was read.
    Bad {
        /// Protocol field, when captured.
        proto: Option<u8>,
    },
}

/// The parts of an IP header the decoder needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// 4 or 6.
    pub version: u8,
    /// Source address bytes (v4 uses the first 4).
    pub src: [u8; 16],
    /// Destination address bytes.
    pub dst: [u8; 16],
    /// TTL or hop limit.
    pub ttl: u8,
    /// What follows.
    pub body: IpBody,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Decodes an IPv4 header. `bytes` runs from the IP header to the end of the captured frame,
/// `wire_len` is the on-the-wire length of the same part.
pub fn ipv4(bytes: &[u8], wire_len: u32) -> Option<IpInfo> {
    let h = bytes.get(..20)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let mut info = IpInfo {
        version: 4,
        src: [0; 16],
        dst: [0; 16],
        ttl: h[8],
        body: IpBody::Bad { proto: Some(h[9]) },
    };
    info.src[..4].copy_from_slice(&h[12..16]);
    info.dst[..4].copy_from_slice(&h[16..20]);
    let proto = h[9];
    let hlen = usize::from(h[0] & 0x0f) * 4;
    if wire_len < 20 || hlen < 20 {
        return Some(info);
    }
    let mut len = u32::from(be16(h, 2)?);
    if len < hlen as u32 {
        if len != 0 {
            return Some(info);
        }
        // total length 0: a TSO / big-TCP send captured on the sender; use the wire length.
        len = wire_len;
    }
    let off = be16(h, 6)?;
    info.body = if off & 0x1fff != 0 {
        IpBody::LaterFragment { proto }
    } else if bytes.len() < hlen {
        IpBody::Bad { proto: Some(proto) }
    } else {
        IpBody::Transport {
            proto,
            offset: hlen,
            len: len - hlen as u32,
        }
    };
    Some(info)
}

/// Decodes an IPv6 header and walks its extension headers (at most [`MAX_EXT_HEADERS`]).
pub fn ipv6(bytes: &[u8], wire_len: u32) -> Option<IpInfo> {
    let h = bytes.get(..40)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let mut info = IpInfo {
        version: 6,
        src: h[8..24].try_into().ok()?,
        dst: h[24..40].try_into().ok()?,
        ttl: h[7],
        body: IpBody::Bad { proto: Some(h[6]) },
    };
    if wire_len < 40 {
        return Some(info);
    }
    let plen = u32::from(be16(h, 4)?);
    // Payload length 0 without a jumbo option: like a v4 TSO send, use what is on the wire.
    let total = if plen != 0 { plen + 40 } else { wire_len };
    let mut nh = h[6];
    let mut off = 40usize;
    for _ in 0..=MAX_EXT_HEADERS {
        match nh {
            NH_HOPOPTS | NH_DSTOPTS | NH_ROUTING => {
                let (Some(&next), Some(&l)) = (bytes.get(off), bytes.get(off + 1)) else {
                    return Some(info);
                };
                nh = next;
                off += (usize::from(l) + 1) * 8;
            }
            NH_FRAGMENT => {
                let (Some(&next), Some(fo)) = (bytes.get(off), be16(bytes, off + 2)) else {
                    return Some(info);
                };
                if fo & 0xfff8 != 0 {
                    info.body = IpBody::LaterFragment { proto: next };
                    return Some(info);
                }
                nh = next;
                off += 8;
            }
            proto => {
                info.body = match (total as usize).checked_sub(off) {
                    Some(len) if off <= bytes.len() => IpBody::Transport {
                        proto,
                        offset: off,
                        len: len as u32,
                    },
                    _ => IpBody::Bad { proto: Some(proto) },
                };
                return Some(info);
            }
        }
    }
    Some(info)
}

//! Link layer: finds where the network header starts and what it is, for every supported
//! link type, and keeps a view of the link header for `-e` printing.

use crate::capture::Linktype;

/// At most this many 802.1Q / 802.1ad tags are walked; a deeper stack is classified as
/// malformed (tcpdump walks any number, real traffic has at most two).
pub const MAX_VLAN: usize = 8;

/// Ethernet II header length.
pub const ETHER_HDRLEN: usize = 14;
/// Linux cooked capture v1 header length.
pub const SLL_HDRLEN: usize = 16;
/// Linux cooked capture v2 header length.
pub const SLL2_HDRLEN: usize = 20;

/// IPv4 ether type.
pub const ETHERTYPE_IP: u16 = 0x0800;
/// IPv6 ether type.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// ARP ether type.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// 802.1Q VLAN tag.
pub const ETHERTYPE_8021Q: u16 = 0x8100;
/// 802.1ad (QinQ) service tag.
pub const ETHERTYPE_8021QINQ: u16 = 0x88a8;
/// Pre-standard QinQ tag.
pub const ETHERTYPE_8021Q9100: u16 = 0x9100;
/// Pre-standard QinQ tag.
pub const ETHERTYPE_8021Q9200: u16 = 0x9200;

/// What the link layer says the network layer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetType {
    /// IPv4 by ether type or address family; the printer still checks the version nibble.
    Ipv4,
    /// IPv6 by ether type or address family.
    Ipv6,
    /// Raw IP: the version nibble decides (RAW, IPV4, IPV6 link types, as tcpdump's `ipN_print`).
    IpN,
    /// ARP.
    Arp,
    /// Anything else.
    Other,
}

/// One VLAN tag: the tag protocol identifier that introduced it and the tag control information.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanTag {
    /// TPID (0x8100, 0x88a8, 0x9100, 0x9200).
    pub tpid: u16,
    /// Priority (3 bits), DEI (1 bit), VLAN id (12 bits).
    pub tci: u16,
}

/// A zero-copy view of the link header.
#[derive(Clone, Copy, Debug)]
pub struct LinkView<'a> {
    /// The link type.
    pub linktype: Linktype,
    /// The link header bytes, VLAN tags included (empty for raw IP).
    pub header: &'a [u8],
    /// VLAN tags, outermost first; only the first `nvlan` are valid.
    pub vlans: [VlanTag; MAX_VLAN],
    /// Number of VLAN tags.
    pub nvlan: u8,
    /// The final ether type, or the NULL/LOOP address family.
    pub ethertype: u32,
}

impl<'a> LinkView<'a> {
    fn new(linktype: Linktype, header: &'a [u8], ethertype: u32) -> Self {
        LinkView {
            linktype,
            header,
            vlans: [VlanTag::default(); MAX_VLAN],
            nvlan: 0,
            ethertype,
        }
    }

    /// The VLAN tags actually present.
    pub fn tags(&self) -> &[VlanTag] {
        &self.vlans[..usize::from(self.nvlan)]
    }
}

/// Why the link layer could not be walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The link type is not one we decode.
    Unsupported,
    /// The link header is cut short or its tag stack is too deep.
    Malformed,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Walks the link header into `out`: returns the offset of the network header and its type
/// (`out` is left alone on error).
// Inlined for untagged Ethernet carrying IP, what most frames are: the same result as the
// general walk, written straight into the caller's `Decoded`. (Returned by value, the view
// was built on the stack in three small stores and copied out in wide loads that could not
// be forwarded from them: the front thread's most stalled instruction.)
#[inline(always)]
pub fn parse<'a>(
    linktype: Linktype,
    data: &'a [u8],
    out: &mut Option<LinkView<'a>>,
) -> Result<(usize, NetType), LinkError> {
    if linktype == Linktype::ETHERNET
        && let Some(header) = data.get(..ETHER_HDRLEN)
    {
        let t = u16::from_be_bytes([header[12], header[13]]);
        let net = match t {
            ETHERTYPE_IP => Some(NetType::Ipv4),
            ETHERTYPE_IPV6 => Some(NetType::Ipv6),
            _ => None,
        };
        if let Some(net) = net {
            *out = Some(LinkView::new(linktype, header, u32::from(t)));
            return Ok((ETHER_HDRLEN, net));
        }
    }
    let (view, off, net) = parse_general(linktype, data)?;
    *out = Some(view);
    Ok((off, net))
}

/// [`parse`] for every link type and header.
fn parse_general(
    linktype: Linktype,
    data: &[u8],
) -> Result<(LinkView<'_>, usize, NetType), LinkError> {
    match linktype {
        Linktype::ETHERNET => ethernet(data),
        Linktype::LINUX_SLL => sll(data, linktype, SLL_HDRLEN, 14),
        Linktype::LINUX_SLL2 => sll(data, linktype, SLL2_HDRLEN, 0),
        Linktype::NULL | Linktype::LOOP => {
            let b = data.get(..4).ok_or(LinkError::Malformed)?;
            let mut family = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            // tcpdump reads the family in host order and swaps it when the upper half is set:
            // both byte orders are accepted (this is the little-endian host reading).
            if family & 0xffff_0000 != 0 {
                family = family.swap_bytes();
            }
            let net = match family {
                2 => NetType::Ipv4,
                24 | 28 | 30 => NetType::Ipv6,
                _ => NetType::Other,
            };
            Ok((LinkView::new(linktype, b, family), 4, net))
        }
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => {
            Ok((LinkView::new(linktype, &[], 0), 0, NetType::IpN))
        }
        _ => Err(LinkError::Unsupported),
    }
}

fn ether_net(t: u16) -> NetType {
    match t {
        ETHERTYPE_IP => NetType::Ipv4,
        ETHERTYPE_IPV6 => NetType::Ipv6,
        ETHERTYPE_ARP => NetType::Arp,
        _ => NetType::Other,
    }
}

fn is_vlan_tpid(t: u16) -> bool {
    matches!(
        t,
        ETHERTYPE_8021Q | ETHERTYPE_8021QINQ | ETHERTYPE_8021Q9100 | ETHERTYPE_8021Q9200
    )
}

fn ethernet(data: &[u8]) -> Result<(LinkView<'_>, usize, NetType), LinkError> {
    let t = be16(data, 12).ok_or(LinkError::Malformed)?;
    let view = LinkView::new(Linktype::ETHERNET, &[], 0);
    vlan_stack(data, view, ETHER_HDRLEN, t, is_vlan_tpid)
}

/// Walks the VLAN tags from `off` while `is_tag(ether type)`, then finishes the view (its header
/// runs to the end of the last tag).
fn vlan_stack<'a>(
    data: &'a [u8],
    mut view: LinkView<'a>,
    mut off: usize,
    mut t: u16,
    is_tag: fn(u16) -> bool,
) -> Result<(LinkView<'a>, usize, NetType), LinkError> {
    while is_tag(t) {
        let n = usize::from(view.nvlan);
        if n == MAX_VLAN {
            return Err(LinkError::Malformed);
        }
        let tci = be16(data, off).ok_or(LinkError::Malformed)?;
        let inner = be16(data, off + 2).ok_or(LinkError::Malformed)?;
        view.vlans[n] = VlanTag { tpid: t, tci };
        view.nvlan += 1;
        t = inner;
        off += 4;
    }
    view.header = data.get(..off).ok_or(LinkError::Malformed)?;
    view.ethertype = u32::from(t);
    Ok((view, off, ether_net(t)))
}

fn sll(
    data: &[u8],
    linktype: Linktype,
    hdrlen: usize,
    proto_at: usize,
) -> Result<(LinkView<'_>, usize, NetType), LinkError> {
    let header = data.get(..hdrlen).ok_or(LinkError::Malformed)?;
    let t = be16(header, proto_at).ok_or(LinkError::Malformed)?;
    let view = LinkView::new(linktype, header, 0);
    // tcpdump's SLL printers follow 802.1Q tags only (not 802.1ad).
    vlan_stack(data, view, hdrlen, t, |t| t == ETHERTYPE_8021Q)
}

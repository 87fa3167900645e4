//! End-of-run statistics: packets by kind.

use crate::decode::Kind;
use std::io::{self, Write};

/// Packet counts by decode result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every frame read.
    pub packets: u64,
    /// Frames by kind, in [`Kind`] order.
    pub by_kind: Vec<(Kind, u64)>,
}

impl Stats {
    /// Counts one frame.
    pub fn count(&mut self, kind: Kind) {
        self.packets += 1;
        match self.by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.by_kind.push((kind, 1)),
        }
    }

    /// Frames of one kind.
    pub fn count_of(&self, kind: Kind) -> u64 {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Writes the statistics as text (to standard error in text modes).
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{} packets read", self.packets)?;
        for (kind, problem) in DECODE_KINDS {
            let n = self.count_of(kind);
            if n > 0 {
                let note = if problem { " (not fully decoded)" } else { "" };
                writeln!(out, "  {n} {}{note}", kind_name(kind))?;
            }
        }
        Ok(())
    }
}

/// Every decode kind with whether it is a decode problem (a frame not decoded fully), in
/// [`Kind`] order.
pub const DECODE_KINDS: [(Kind, bool); 11] = [
    (Kind::Tcp, false),
    (Kind::TcpTruncated, true),
    (Kind::TcpBadHeader, true),
    (Kind::TcpFragment, false),
    (Kind::Udp, false),
    (Kind::Icmp, false),
    (Kind::OtherIp, false),
    (Kind::Arp, false),
    (Kind::OtherLink, false),
    (Kind::UnsupportedLinktype, true),
    (Kind::Malformed, true),
];

/// The snake_case name of a decode kind, as the JSON reports write it.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Tcp => "tcp",
        Kind::TcpTruncated => "tcp_truncated",
        Kind::TcpBadHeader => "tcp_bad_header",
        Kind::TcpFragment => "tcp_fragment",
        Kind::Udp => "udp",
        Kind::Icmp => "icmp",
        Kind::OtherIp => "other_ip",
        Kind::Arp => "arp",
        Kind::OtherLink => "other_link",
        Kind::UnsupportedLinktype => "unsupported_linktype",
        Kind::Malformed => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once() {
        let names: Vec<&str> = DECODE_KINDS.iter().map(|(k, _)| kind_name(*k)).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        let mut s = Stats::default();
        s.count(Kind::Udp);
        s.count(Kind::Udp);
        assert_eq!(s.count_of(Kind::Udp), 2);
        assert_eq!(s.count_of(Kind::Tcp), 0);
    }
}

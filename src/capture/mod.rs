//! Capture stage: turns a pcap / pcapng file, standard input or a live interface into
//! [`Frame`]s. Nothing downstream knows which file format or source a frame came from.

pub mod file;
#[cfg(feature = "live")]
pub mod live;
#[cfg(unix)]
mod mapped;
#[cfg(target_os = "linux")]
mod sigbus;

use std::fmt;

/// A link-layer header type (the `LINKTYPE_*` registry), kept open so unknown values survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Linktype(pub u16);

impl Linktype {
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    pub const NULL: Linktype = Linktype(0);
    /// Ethernet II / 802.3.
    pub const ETHERNET: Linktype = Linktype(1);
    /// Raw IPv4 or IPv6, told apart by the version nibble.
    pub const RAW: Linktype = Linktype(101);
    /// OpenBSD loopback: like NULL, but the family is big-endian.
    pub const LOOP: Linktype = Linktype(108);
    /// Linux cooked capture, version 1 (16-byte header).
    pub const LINUX_SLL: Linktype = Linktype(113);
    /// Raw IPv4.
    pub const IPV4: Linktype = Linktype(228);
    /// Raw IPv6.
    pub const IPV6: Linktype = Linktype(229);
    /// Linux cooked capture, version 2 (20-byte header; `tcpdump -i any`).
    pub const LINUX_SLL2: Linktype = Linktype(276);

    /// The DLT name tcpdump uses for this link type, when it is one we know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NULL => "NULL",
            Self::ETHERNET => "EN10MB",
            Self::RAW => "RAW",
            Self::LOOP => "LOOP",
            Self::LINUX_SLL => "LINUX_SLL",
            Self::IPV4 => "IPV4",
            Self::IPV6 => "IPV6",
            Self::LINUX_SLL2 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

impl fmt::Display for Linktype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "linktype {}", self.0),
        }
    }
}

/// A capture timestamp: nanoseconds since the Unix epoch (negative before 1970).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Builds a timestamp from seconds and nanoseconds, saturating far outside 1677..2262.
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(i64::from(nanos)),
        )
    }
    /// Whole seconds since the epoch (rounded towards minus infinity).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }
    /// Nanoseconds within the second, 0..1e9.
    pub fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(1_000_000_000) as u32
    }
}

/// How finely the source states its timestamps; tcpdump prints microseconds unless asked for
/// nanoseconds, whatever the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Microseconds or coarser.
    Micro,
    /// Finer than microseconds.
    Nano,
}

/// One captured frame, borrowed from the reader's buffer until the callback returns.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// 1-based position in the input, as tcpdump's `-#` counts.
    pub number: u64,
    /// When the frame was captured.
    pub ts: Timestamp,
    /// The link type of the interface it was captured on.
    pub linktype: Linktype,
    /// The interface index within the capture (pcapng), 0 for pcap and live.
    pub iface: u32,
    /// The length of the frame on the wire (at least `data.len()` in sane captures).
    pub origlen: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// What the capture stage could not do, with enough detail to find the spot in the file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The input could not be opened or read. The cause is the error's source, which `{:#}`
    /// (as `main` prints errors) appends once.
    #[error("{path}")]
    Io {
        /// The input's name (`-` for standard input).
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input is a capture variant tcplens cannot read (input that is no capture at all, or
    /// is empty, is [`CaptureError::Damaged`] at packet 1, offset 0).
    #[error("{path}: unsupported capture format: {detail}")]
    NotACapture {
        /// The input's name.
        path: String,
        /// Which variant.
        detail: String,
    },
    /// The input is damaged, ends early or is no capture at all; every frame before `packet`
    /// was delivered.
    #[error("{path}: {detail} at packet {packet}, byte offset {offset}")]
    Damaged {
        /// The input's name.
        path: String,
        /// The 1-based number the frame at the damage would have had.
        packet: u64,
        /// Byte offset from the start of the input of the damaged record's or block's first
        /// byte (its header), 0 for a bad file header.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

impl CaptureError {
    /// True when the error means the input was cut short or corrupt, rather than unreadable.
    pub fn is_damage(&self) -> bool {
        matches!(self, CaptureError::Damaged { .. })
    }
}

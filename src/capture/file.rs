//! Offline input: classic pcap (µs / ns / "modified", either byte order) and pcapng (several
//! sections in either byte order, several interfaces, per-interface link type, `if_tsresol`
//! and `if_tsoffset`, Enhanced and Simple Packet Blocks), from a file or a pipe.
//!
//! Reading streams through pcap-parser's `PcapReaderIterator`. Before a block is handed to
//! pcap-parser, its framing (lengths, trailer, captured length) is checked here against limits
//! libpcap also applies, and the buffer only grows to a length that passed those checks. So a
//! corrupt length is reported as damage at the right packet and byte offset, it never makes us
//! allocate more than [`MAX_BLOCK`] bytes, and pcap-parser never sees a block it mis-frames.
//! Damage stops reading; every frame before it has been delivered.

use super::mapped::{CHUNK, Mapped, prefetch_ahead};
use super::{CaptureError, Frame, Linktype, Precision, Timestamp};
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{Block, PcapBlockOwned};
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// The reader's starting buffer; it grows (to at most [`MAX_BLOCK`]) only for larger records.
const INITIAL_BUF: usize = 1 << 16;
/// The largest pcapng block accepted, as libpcap's `INITIAL_MAX_BLOCKSIZE` (16 MiB).
pub const MAX_BLOCK: usize = 16 << 20;
/// libpcap's `MAXIMUM_SNAPLEN`: no record may hold more bytes on most link types.
const MAXIMUM_SNAPLEN: u32 = 262_144;
/// More interfaces than this in one pcapng section is taken as damage (bounds the table).
const MAX_IFACES: usize = 1 << 16;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BOM: u32 = 0x1A2B_3C4D;

/// The file format, found from the magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap.
    Pcap,
    /// pcapng.
    Pcapng,
}

impl Format {
    /// The format's usual name: `pcap` or `pcapng`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

/// What has been read so far: cheap counters kept for the reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureInfo {
    /// The file format.
    pub format: Format,
    /// Distinct link types of the declared interfaces, in the order first declared.
    pub linktypes: Vec<Linktype>,
    /// The largest snapshot length declared by the pcap header or the pcapng interfaces;
    /// `Some(0)` when a pcapng interface declares no limit, `None` before any declaration.
    pub snaplen: Option<u32>,
    /// Frames delivered.
    pub packets: u64,
    /// Captured bytes delivered (the sum of the frames' `data.len()`).
    pub bytes: u64,
    /// Timestamp of the first frame delivered.
    pub first_ts: Option<Timestamp>,
    /// Timestamp of the last frame delivered.
    pub last_ts: Option<Timestamp>,
    /// The file header (or first section) is big-endian: libpcap compiles filters for it.
    pub big_endian: bool,
}

#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: Linktype,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    ts_offset: i64,
    /// Captured bytes allowed per packet (the declared snapshot length, or libpcap's maximum).
    max_caplen: u32,
}

/// Classic pcap header fields the framing needs.
#[derive(Clone, Copy, Debug)]
struct PcapHead {
    big_endian: bool,
    /// 16, or 24 in the "modified" format.
    record_header: usize,
    /// Records longer than this are damage (libpcap's maximum for the link type).
    max_caplen: u32,
    /// Records longer than this are cut to it, as libpcap does.
    snapshot: u32,
}

/// Where the reader is in the stream's framing.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Pcap(PcapHead),
    /// pcapng; the flag is the current section's byte order.
    Pcapng {
        big_endian: bool,
    },
}

/// What the framing check found about the next block.
enum Next {
    /// The whole block (this many bytes) is buffered; hand it to pcap-parser.
    Parse(usize),
    /// The whole block (this many bytes) is buffered and is of a kind we skip.
    Skip(usize),
    /// At least this many bytes must be buffered to go on.
    Need(usize),
}

/// A whole block in the buffer: its length, and whether pcap-parser should parse it.
struct Whole {
    len: usize,
    parse: bool,
}

/// A capture file or stream being read.
pub struct FileSource {
    path: String,
    reader: Box<dyn PcapReaderIterator + Send>,
    read_error: Arc<Mutex<Option<io::Error>>>,
    layout: Layout,
    precision: Precision,
    buf_cap: usize,
    ifaces: Vec<Iface>,
    info: CaptureInfo,
    /// One bit per 16-bit link type, so recording distinct link types stays O(1).
    linktype_seen: Box<[u64; 1024]>,
    /// A classic pcap regular file, mapped: its records are walked in the map, not read.
    map: Option<Mapped>,
}

impl FileSource {
    /// Opens `path` (`-` is standard input) and reads its header. The records of a classic
    /// pcap regular file are then walked in a memory map of it (`mapped.rs`), not read.
    pub fn open(path: &str) -> Result<Self, CaptureError> {
        Self::open_chunked(path, CHUNK)
    }

    /// [`FileSource::open`], walking a mapped file `chunk` bytes at a time (tests use small
    /// chunks, so that records straddle their ends).
    fn open_chunked(path: &str, chunk: usize) -> Result<Self, CaptureError> {
        if path == "-" {
            return Self::from_reader(path, Box::new(io::stdin()));
        }
        let file = std::fs::File::open(path).map_err(|source| CaptureError::Io {
            path: path.to_string(),
            source,
        })?;
        let map = Mapped::new(&file, path, chunk);
        let mut source = Self::from_reader(path, Box::new(file))?;
        if matches!(source.layout, Layout::Pcap(_)) {
            source.map = map;
        }
        Ok(source)
    }

    /// Reads a capture from any byte stream; `name` is used in messages.
    ///
    /// The stream may deliver any number of bytes per `read` (a pipe may give one at a time).
    pub fn from_reader(name: &str, input: Box<dyn Read + Send>) -> Result<Self, CaptureError> {
        let read_error = Arc::new(Mutex::new(None));
        let mut input = Input {
            inner: input,
            error: Arc::clone(&read_error),
        };
        let damaged = |detail: String| CaptureError::Damaged {
            path: name.to_string(),
            packet: 1,
            offset: 0,
            detail,
        };
        let io_err = |source| CaptureError::Io {
            path: name.to_string(),
            source,
        };
        // pcap-parser sniffs the format with a single read(), so read the whole file header (for
        // pcapng the whole first block) ourselves, then hand it over in front of the rest.
        let mut head = vec![0u8; 24];
        let got = read_full(&mut input, &mut head[..4]).map_err(io_err)?;
        let magic = head.get(..got).unwrap_or_default();
        let (format, big_endian, nano, modified) = match magic {
            [0x0a, 0x0d, 0x0d, 0x0a] => (Format::Pcapng, false, false, false),
            [0xd4, 0xc3, 0xb2, 0xa1] => (Format::Pcap, false, false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (Format::Pcap, true, false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (Format::Pcap, false, true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (Format::Pcap, true, true, false),
            [0x34, 0xcd, 0xb2, 0xa1] => (Format::Pcap, false, false, true),
            [0xa1, 0xb2, 0xcd, 0x34] => {
                return Err(CaptureError::NotACapture {
                    path: name.to_string(),
                    detail: "big-endian \"modified\" pcap (magic a1b2cd34) is not supported"
                        .to_string(),
                });
            }
            [] => {
                return Err(damaged(
                    "empty input, not a pcap or pcapng capture".to_string(),
                ));
            }
            _ => {
                return Err(damaged(format!(
                    "not a pcap or pcapng capture (first bytes {})",
                    hex(magic)
                )));
            }
        };
        let mut capacity = INITIAL_BUF;
        let layout = match format {
            Format::Pcap => {
                let got = 4 + read_full(&mut input, &mut head[4..]).map_err(io_err)?;
                if got < 24 {
                    return Err(damaged(format!(
                        "pcap file header cut short ({got} of 24 bytes)"
                    )));
                }
                let u32_at = |at| read_u32(&head, at, big_endian).unwrap_or(0);
                let linktype = Linktype((u32_at(20) & 0xffff) as u16);
                let max_caplen = max_snaplen_for(linktype);
                let snaplen = u32_at(16);
                Layout::Pcap(PcapHead {
                    big_endian,
                    record_header: if modified { 24 } else { 16 },
                    max_caplen,
                    snapshot: if snaplen == 0 || snaplen > max_caplen {
                        max_caplen
                    } else {
                        snaplen
                    },
                })
            }
            Format::Pcapng => {
                head.truncate(12);
                let got = 4 + read_full(&mut input, &mut head[4..]).map_err(io_err)?;
                if got < 12 {
                    return Err(damaged(format!(
                        "pcapng section header cut short ({got} of 28 bytes)"
                    )));
                }
                let big_endian = match read_u32(&head, 8, false) {
                    Some(BOM) => false,
                    Some(0x4D3C_2B1A) => true,
                    _ => {
                        return Err(damaged(format!(
                            "not a pcapng capture (byte-order magic {})",
                            hex(head.get(8..12).unwrap_or_default())
                        )));
                    }
                };
                let len = read_u32(&head, 4, big_endian).unwrap_or(0);
                if let Err(detail) = check_block_len(SHB, len) {
                    return Err(damaged(detail));
                }
                let len = len as usize;
                // `take` + `read_to_end` grows `head` with the bytes that arrive, not by `len`.
                let rest = (len - 12) as u64;
                let got = 12
                    + (&mut input)
                        .take(rest)
                        .read_to_end(&mut head)
                        .map_err(io_err)?;
                if got < len {
                    return Err(damaged(format!(
                        "pcapng section header cut short ({got} of {len} bytes)"
                    )));
                }
                capacity = capacity.max(len.next_power_of_two());
                Layout::Pcapng { big_endian }
            }
        };
        let stream = io::Cursor::new(head).chain(input);
        let reader = pcap_parser::create_reader(capacity, stream).map_err(|e| {
            damaged(format!(
                "unreadable {} header ({})",
                format.name(),
                e.to_owned_vec()
            ))
        })?;
        Ok(FileSource {
            path: name.to_string(),
            reader,
            read_error,
            layout,
            precision: if nano {
                Precision::Nano
            } else {
                Precision::Micro
            },
            buf_cap: capacity,
            ifaces: Vec::new(),
            info: CaptureInfo {
                big_endian: match layout {
                    Layout::Pcap(h) => h.big_endian,
                    Layout::Pcapng { big_endian } => big_endian,
                },
                format,
                linktypes: Vec::new(),
                snaplen: None,
                packets: 0,
                bytes: 0,
                first_ts: None,
                last_ts: None,
            },
            linktype_seen: Box::new([0; 1024]),
            map: None,
        })
    }

    /// The format found from the magic bytes.
    pub fn format(&self) -> Format {
        self.info.format
    }

    /// The finest timestamp precision seen so far.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// What has been read so far.
    pub fn info(&self) -> &CaptureInfo {
        &self.info
    }

    /// Calls `f` for every frame in order until the input ends or `f` breaks.
    ///
    /// On damage, every frame before it has been passed to `f` and the error says where. Calling
    /// `run` again after a break goes on with the next frame.
    pub fn run<F>(&mut self, mut f: F) -> Result<(), CaptureError>
    where
        F: FnMut(&Frame<'_>) -> ControlFlow<()>,
    {
        loop {
            if let (Layout::Pcap(h), Some(&iface), true) =
                (self.layout, self.ifaces.first(), self.map.is_some())
            {
                return self.mapped_records(h, iface, &mut f);
            }
            if let (Layout::Pcap(h), Some(&iface)) = (self.layout, self.ifaces.first())
                && self.pcap_records(h, iface, &mut f).is_break()
            {
                return Ok(());
            }
            let Some(Whole { len, parse }) = self.next_block()? else {
                return Ok(());
            };
            if !parse {
                self.reader.consume_noshift(len);
                continue;
            }
            // A classic pcap record after the file header (which declared the interface): the
            // framing check made sure it is whole, so `pcap_records` delivers it.
            if matches!(self.layout, Layout::Pcap(_)) && !self.ifaces.is_empty() {
                continue;
            }
            let flow = match self.reader.next() {
                Ok((parsed, block)) if parsed == len => on_block(
                    &block,
                    &mut self.layout,
                    &mut self.ifaces,
                    &mut self.info,
                    &mut self.linktype_seen,
                    &mut self.precision,
                    &mut f,
                ),
                Ok((parsed, _)) => Err(format!(
                    "block framing disagrees with the parser ({len} vs {parsed} bytes)"
                )),
                Err(e) => Err(format!("malformed block ({})", e.to_owned_vec())),
            };
            match flow {
                Ok(flow) => {
                    // Not `consume`: it moves the unread rest of the buffer to the front each
                    // time half the buffer is read, copying the input a second time; `refill`
                    // moves only the partial block left when more input is needed.
                    self.reader.consume_noshift(len);
                    if flow.is_break() {
                        return Ok(());
                    }
                }
                Err(detail) => return Err(self.damaged(detail)),
            }
        }
    }

    /// Delivers the classic pcap records that are whole in the buffer, consuming them; stops at
    /// the first one that is not whole or breaks the framing rules, which [`next_block`]
    /// (refill, damage) then handles. One read of the buffer and one consume for many records,
    /// the framing read once per record: the per-record path cost ~200 instructions a packet.
    ///
    /// [`next_block`]: Self::next_block
    fn pcap_records<F>(&mut self, h: PcapHead, iface: Iface, f: &mut F) -> ControlFlow<()>
    where
        F: FnMut(&Frame<'_>) -> ControlFlow<()>,
    {
        let data = self.reader.data();
        let mut at = 0;
        let mut flow = ControlFlow::Continue(());
        while let Some(rest) = data.get(at..) {
            let Ok(Next::Parse(len)) = pcap_record(h, rest) else {
                break;
            };
            let Some(rec) = rest.get(..len) else { break };
            at += len;
            flow = deliver_record(&mut self.info, h, iface, rec, f);
            if flow.is_break() {
                break;
            }
        }
        self.reader.consume_noshift(at);
        flow
    }

    /// Delivers the records of a mapped classic pcap file from where the walk stands (after the
    /// file header, which was read) to the end or a break, as [`pcap_records`] and
    /// [`next_block`] do for read input: the same framing, the same damage messages and offsets.
    ///
    /// [`pcap_records`]: Self::pcap_records
    /// [`next_block`]: Self::next_block
    fn mapped_records<F>(
        &mut self,
        h: PcapHead,
        iface: Iface,
        f: &mut F,
    ) -> Result<(), CaptureError>
    where
        F: FnMut(&Frame<'_>) -> ControlFlow<()>,
    {
        let consumed = self.reader.consumed();
        let Some(m) = self.map.as_mut() else {
            return Ok(());
        };
        let mut at = *m.at.get_or_insert(consumed);
        let mut ahead = at;
        let done = 'walk: loop {
            let data = m.bytes();
            let need = loop {
                prefetch_ahead(data, &mut ahead, at);
                let rest = data.get(at..).unwrap_or_default();
                let len = match pcap_record(h, rest) {
                    Ok(Next::Parse(len)) => len,
                    // `pcap_record` never skips.
                    Ok(Next::Need(n) | Next::Skip(n)) => break n,
                    Err(detail) => break 'walk Err(detail),
                };
                let Some(rec) = rest.get(..len) else {
                    break len;
                };
                at += len;
                if deliver_record(&mut self.info, h, iface, rec, f).is_break() {
                    break 'walk Ok(());
                }
            };
            match m.extend(at, need) {
                Ok(true) => {}
                Ok(false) => {
                    let have = m.bytes().len().saturating_sub(at);
                    break if have == 0 {
                        Ok(())
                    } else {
                        Err(format!(
                            "file ends inside a record ({have} of {need} bytes)"
                        ))
                    };
                }
                Err(source) => {
                    m.at = Some(at);
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        };
        m.at = Some(at);
        done.map_err(|detail| CaptureError::Damaged {
            path: self.path.clone(),
            packet: self.info.packets + 1,
            offset: at as u64,
            detail,
        })
    }

    /// Makes sure the next block is whole in the buffer; `None` at a clean end of input.
    fn next_block(&mut self) -> Result<Option<Whole>, CaptureError> {
        loop {
            let data = self.reader.data();
            let first = self.reader.consumed() == 0;
            let need = match frame(self.layout, first, data, &self.ifaces) {
                Ok(Next::Need(n)) => n,
                Ok(Next::Parse(len)) => return Ok(Some(Whole { len, parse: true })),
                Ok(Next::Skip(len)) => return Ok(Some(Whole { len, parse: false })),
                Err(detail) => return Err(self.damaged(detail)),
            };
            let have = data.len();
            if self.reader.reader_exhausted() {
                if have == 0 {
                    return Ok(None);
                }
                let what = match self.layout {
                    Layout::Pcap(_) => "record",
                    Layout::Pcapng { .. } => "block",
                };
                return Err(self.damaged(format!(
                    "file ends inside a {what} ({have} of {need} bytes)"
                )));
            }
            if need > self.buf_cap && have == self.buf_cap {
                // Grow only once the buffer is full of real data, so a length field alone never
                // sizes an allocation; `need` passed the framing limits (at most MAX_BLOCK).
                let cap = need.next_power_of_two().min(self.buf_cap * 2);
                if !self.reader.grow(cap) {
                    return Err(self.damaged(format!("cannot buffer a {need}-byte block")));
                }
                self.buf_cap = cap;
            }
            if self.reader.refill().is_err() {
                let source = self
                    .read_error
                    .lock()
                    .ok()
                    .and_then(|mut e| e.take())
                    .unwrap_or_else(|| io::Error::other("read failed"));
                return Err(CaptureError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        }
    }

    fn damaged(&self, detail: String) -> CaptureError {
        CaptureError::Damaged {
            path: self.path.clone(),
            packet: self.info.packets + 1,
            // Nothing of the damaged block has been consumed: this is its first byte.
            offset: self.reader.consumed() as u64,
            detail,
        }
    }
}

/// Checks the framing of the block at the start of `data` (the buffered, unconsumed input).
fn frame(layout: Layout, first: bool, data: &[u8], ifaces: &[Iface]) -> Result<Next, String> {
    match layout {
        Layout::Pcap(h) => {
            if first {
                // The file header, already checked when opening.
                return Ok(Next::Parse(24));
            }
            pcap_record(h, data)
        }
        Layout::Pcapng { big_endian } => {
            let Some(btype) = read_u32(data, 0, big_endian) else {
                return Ok(Next::Need(12));
            };
            // A section header states its own byte order.
            let big_endian = if btype == SHB {
                match read_u32(data, 8, false) {
                    None => return Ok(Next::Need(12)),
                    Some(BOM) => false,
                    Some(0x4D3C_2B1A) => true,
                    Some(_) => return Err("section header with a bad byte-order magic".into()),
                }
            } else {
                big_endian
            };
            let Some(len) = read_u32(data, 4, big_endian) else {
                return Ok(Next::Need(12));
            };
            check_block_len(btype, len)?;
            let len = len as usize;
            let (Some(trailer), Some(body)) =
                (read_u32(data, len - 4, big_endian), data.get(8..len - 4))
            else {
                return Ok(Next::Need(len));
            };
            if trailer as usize != len {
                return Err(format!(
                    "block lengths differ ({len} at the start, {trailer} at the end)"
                ));
            }
            match btype {
                SHB | IDB => Ok(Next::Parse(len)),
                EPB => {
                    let if_id = read_u32(body, 0, big_endian).unwrap_or(0);
                    let caplen = read_u32(body, 12, big_endian).unwrap_or(0);
                    let room = len - 32;
                    if caplen as usize > room {
                        return Err(format!(
                            "captured length {caplen} does not fit in its {len}-byte block"
                        ));
                    }
                    let iface = ifaces.get(if_id as usize).ok_or_else(|| {
                        format!(
                            "packet for interface {if_id}, but the section declares {}",
                            plural(ifaces.len(), "interface")
                        )
                    })?;
                    if caplen > iface.max_caplen {
                        return Err(format!(
                            "captured length {caplen} exceeds the interface's snapshot length of {}",
                            iface.max_caplen
                        ));
                    }
                    Ok(Next::Parse(len))
                }
                SPB => {
                    let iface = ifaces
                        .first()
                        .ok_or("simple packet block before any interface description")?;
                    let origlen = read_u32(body, 0, big_endian).unwrap_or(0);
                    let caplen = origlen.min(iface.max_caplen);
                    if caplen as usize > len - 16 {
                        return Err(format!(
                            "simple packet block of {len} bytes too short for {caplen} captured bytes"
                        ));
                    }
                    Ok(Next::Parse(len))
                }
                // Statistics, name resolution, secrets, custom and unknown blocks: not needed.
                _ => Ok(Next::Skip(len)),
            }
        }
    }
}

/// The length rules every pcapng block obeys, plus each parsed type's minimum.
/// The framing of the classic pcap record at the start of `data`.
#[inline]
fn pcap_record(h: PcapHead, data: &[u8]) -> Result<Next, String> {
    let hdr = h.record_header;
    let Some(caplen) = read_u32(data, 8, h.big_endian) else {
        return Ok(Next::Need(hdr));
    };
    if caplen > h.max_caplen {
        return Err(format!(
            "captured length {caplen} exceeds the maximum of {}",
            h.max_caplen
        ));
    }
    let len = hdr + caplen as usize;
    Ok(if data.len() < len {
        Next::Need(len)
    } else {
        Next::Parse(len)
    })
}

fn check_block_len(btype: u32, len: u32) -> Result<(), String> {
    let min = match btype {
        SHB => 28,
        IDB => 20,
        EPB => 32,
        SPB => 16,
        _ => 12,
    };
    if len < min {
        Err(format!("block length {len} is less than {min}"))
    } else if !len.is_multiple_of(4) {
        Err(format!("block length {len} is not a multiple of 4"))
    } else if len as usize > MAX_BLOCK {
        Err(format!(
            "block length {len} exceeds the maximum of {MAX_BLOCK}"
        ))
    } else {
        Ok(())
    }
}

/// Turns one parsed block into a frame for `f`, or updates the interface table.
#[allow(clippy::too_many_arguments)]
fn on_block<F>(
    block: &PcapBlockOwned<'_>,
    layout: &mut Layout,
    ifaces: &mut Vec<Iface>,
    info: &mut CaptureInfo,
    linktype_seen: &mut [u64; 1024],
    precision: &mut Precision,
    f: &mut F,
) -> Result<ControlFlow<()>, String>
where
    F: FnMut(&Frame<'_>) -> ControlFlow<()>,
{
    let (iface_id, iface, ts, origlen, data) = match block {
        PcapBlockOwned::LegacyHeader(hdr) => {
            let Layout::Pcap(h) = *layout else {
                return Err("pcap header inside a pcapng file".into());
            };
            let units_per_sec = if hdr.is_nanosecond_precision() {
                1_000_000_000
            } else {
                1_000_000
            };
            let iface = Iface {
                linktype: Linktype((hdr.network.0 & 0xffff) as u16),
                units_per_sec,
                ts_offset: 0,
                max_caplen: h.snapshot,
            };
            declare(iface, hdr.snaplen, ifaces, info, linktype_seen);
            return Ok(ControlFlow::Continue(()));
        }
        PcapBlockOwned::Legacy(b) => {
            let i = *ifaces.first().ok_or("record before the file header")?;
            let (ts, data) = legacy_frame(i, b.ts_sec, b.ts_usec, b.data);
            (0, i, ts, b.origlen, data)
        }
        PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
            if shb.major_version != 1 {
                return Err(format!(
                    "pcapng version {}.{} is not supported",
                    shb.major_version, shb.minor_version
                ));
            }
            *layout = Layout::Pcapng {
                big_endian: shb.big_endian(),
            };
            ifaces.clear();
            return Ok(ControlFlow::Continue(()));
        }
        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
            if ifaces.len() >= MAX_IFACES {
                return Err(format!("more than {MAX_IFACES} interfaces in one section"));
            }
            let units_per_sec = tsresol_units(idb.if_tsresol)
                .ok_or_else(|| format!("unsupported if_tsresol {:#04x}", idb.if_tsresol))?;
            if units_per_sec > 1_000_000 {
                *precision = Precision::Nano;
            }
            let big_endian = matches!(layout, Layout::Pcapng { big_endian: true });
            let linktype = Linktype((idb.linktype.0 & 0xffff) as u16);
            let max = max_snaplen_for(linktype);
            let iface = Iface {
                linktype,
                units_per_sec,
                ts_offset: if_tsoffset(&idb.options, big_endian),
                max_caplen: if idb.snaplen == 0 || idb.snaplen > max {
                    max
                } else {
                    idb.snaplen
                },
            };
            declare(iface, idb.snaplen, ifaces, info, linktype_seen);
            return Ok(ControlFlow::Continue(()));
        }
        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
            // The framing check made sure the interface exists.
            let i = *ifaces
                .get(epb.if_id as usize)
                .ok_or("packet for an undeclared interface")?;
            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            let secs = i64::try_from(raw / i.units_per_sec).unwrap_or(i64::MAX);
            let frac = (u128::from(raw % i.units_per_sec) * 1_000_000_000
                / u128::from(i.units_per_sec)) as u32;
            let ts = Timestamp::from_parts(secs.saturating_add(i.ts_offset), frac);
            (epb.if_id, i, ts, epb.origlen, epb.packet_data())
        }
        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
            let i = *ifaces.first().ok_or("packet before any interface")?;
            // pcap-parser takes `origlen` bytes; the spec says min(origlen, snaplen).
            let caplen = spb.origlen.min(i.max_caplen) as usize;
            let data = spb
                .data
                .get(..caplen)
                .ok_or("simple packet block too short")?;
            // No timestamp in an SPB: libpcap reports the interface's offset alone.
            (
                0,
                i,
                Timestamp::from_parts(i.ts_offset, 0),
                spb.origlen,
                data,
            )
        }
        PcapBlockOwned::NG(_) => return Ok(ControlFlow::Continue(())),
    };
    Ok(deliver(info, iface_id, iface, ts, origlen, data, f))
}

/// A classic pcap record's timestamp, and its data cut to the snapshot length.
fn legacy_frame(i: Iface, ts_sec: u32, ts_frac: u32, data: &[u8]) -> (Timestamp, &[u8]) {
    // No division per packet: classic pcap has only these two units.
    let scale = match i.units_per_sec {
        1_000_000 => 1000,
        1_000_000_000 => 1,
        u => 1_000_000_000 / u,
    };
    let frac = u64::from(ts_frac) * scale;
    let ts = Timestamp(i64::from(ts_sec) * 1_000_000_000 + frac as i64);
    // libpcap delivers at most the snapshot length of an over-long record.
    (ts, data.get(..i.max_caplen as usize).unwrap_or(data))
}

/// Delivers one classic pcap record (`rec`: its header and data, as [`pcap_record`] framed it),
/// read or mapped alike.
#[inline]
fn deliver_record<F>(
    info: &mut CaptureInfo,
    h: PcapHead,
    iface: Iface,
    rec: &[u8],
    f: &mut F,
) -> ControlFlow<()>
where
    F: FnMut(&Frame<'_>) -> ControlFlow<()>,
{
    let word = |i| read_u32(rec, i, h.big_endian).unwrap_or(0);
    let body = rec.get(h.record_header..).unwrap_or_default();
    let (ts, body) = legacy_frame(iface, word(0), word(4), body);
    deliver(info, 0, iface, ts, word(12), body, f)
}

/// Counts a frame and hands it to `f`.
fn deliver<F>(
    info: &mut CaptureInfo,
    iface_id: u32,
    iface: Iface,
    ts: Timestamp,
    origlen: u32,
    data: &[u8],
    f: &mut F,
) -> ControlFlow<()>
where
    F: FnMut(&Frame<'_>) -> ControlFlow<()>,
{
    info.packets += 1;
    info.bytes += data.len() as u64;
    if info.first_ts.is_none() {
        info.first_ts = Some(ts);
    }
    info.last_ts = Some(ts);
    let frame = Frame {
        number: info.packets,
        ts,
        linktype: iface.linktype,
        iface: iface_id,
        origlen,
        data,
    };
    f(&frame)
}

/// Adds an interface to the section's table and to the run's counters.
fn declare(
    iface: Iface,
    snaplen: u32,
    ifaces: &mut Vec<Iface>,
    info: &mut CaptureInfo,
    seen: &mut [u64; 1024],
) {
    ifaces.push(iface);
    let lt = usize::from(iface.linktype.0);
    let (word, bit) = (lt / 64, 1u64 << (lt % 64));
    if let Some(w) = seen.get_mut(word)
        && *w & bit == 0
    {
        *w |= bit;
        info.linktypes.push(iface.linktype);
    }
    // pcapng's 0 means "no limit", which no other declaration can exceed.
    info.snaplen = Some(match info.snaplen {
        None => snaplen,
        Some(0) => 0,
        Some(_) if snaplen == 0 => 0,
        Some(s) => s.max(snaplen),
    });
}

/// libpcap's `max_snaplen_for_dlt`: the most bytes one record may hold on a link type.
fn max_snaplen_for(linktype: Linktype) -> u32 {
    match linktype.0 {
        249 => 1024 * 1024,     // USBPCAP
        279 => 8 * 1024 * 1024, // EBHSCR
        _ => MAXIMUM_SNAPLEN,
    }
}

/// The `if_tsoffset` option in the section's byte order (pcap-parser reads it little-endian).
fn if_tsoffset(options: &[pcap_parser::PcapNGOption<'_>], big_endian: bool) -> i64 {
    options
        .iter()
        .find(|o| o.code == pcap_parser::OptionCode::IfTsoffset)
        .and_then(|o| o.value().get(..8))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, |b| {
            if big_endian {
                i64::from_be_bytes(b)
            } else {
                i64::from_le_bytes(b)
            }
        })
}

/// Units per second for an `if_tsresol` value: 10^n, or 2^n with the high bit set.
fn tsresol_units(tsresol: u8) -> Option<u64> {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n).filter(|_| n < 64)
    }
}

/// A u32 at `at` in the given byte order, if the bytes are there.
fn read_u32(data: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// The byte source handed to pcap-parser: retries interrupted reads and keeps the real error,
/// which pcap-parser would flatten into `ReadError`.
struct Input {
    inner: Box<dyn Read + Send>,
    error: Arc<Mutex<Option<io::Error>>>,
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = e.kind();
                    if let Ok(mut slot) = self.error.lock() {
                        *slot = Some(e);
                    }
                    return Err(kind.into());
                }
                ok => return ok,
            }
        }
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(bytes: &[u8]) -> Result<FileSource, CaptureError> {
        FileSource::from_reader("t", Box::new(io::Cursor::new(bytes.to_vec())))
    }

    #[test]
    fn tsresol_powers_of_ten_and_two() {
        assert_eq!(tsresol_units(6), Some(1_000_000));
        assert_eq!(tsresol_units(9), Some(1_000_000_000));
        assert_eq!(tsresol_units(19), Some(10_000_000_000_000_000_000));
        assert_eq!(tsresol_units(20), None);
        // pcap-parser's build_ts_resolution returns None for every 2^-n (notes §1.4 item 4).
        assert_eq!(tsresol_units(0x80 | 20), Some(1 << 20));
        assert_eq!(tsresol_units(0x80 | 63), Some(1 << 63));
        assert_eq!(tsresol_units(0x80 | 64), None);
    }

    #[test]
    fn block_length_rules() {
        assert!(check_block_len(EPB, 32).is_ok());
        assert!(check_block_len(EPB, 28).is_err());
        assert!(check_block_len(0x1234, 12).is_ok());
        assert!(check_block_len(0x1234, 8).is_err());
        assert!(check_block_len(0x1234, 14).is_err());
        assert!(check_block_len(0x1234, MAX_BLOCK as u32).is_ok());
        assert!(check_block_len(0x1234, MAX_BLOCK as u32 + 4).is_err());
    }

    #[test]
    fn read_u32_never_reads_past_the_end() {
        assert_eq!(read_u32(&[1, 0, 0, 0], 0, false), Some(1));
        assert_eq!(read_u32(&[0, 0, 0, 1], 0, true), Some(1));
        assert_eq!(read_u32(&[0, 0, 0], 0, false), None);
        assert_eq!(read_u32(&[0; 8], usize::MAX - 1, false), None);
    }

    /// A first section header claiming 4 GB or 16 MiB is damage at offset 0, not a big read.
    #[test]
    fn first_section_header_length() {
        let mut shb = vec![0x0a, 0x0d, 0x0d, 0x0a];
        shb.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        shb.extend_from_slice(&BOM.to_le_bytes());
        let e = open(&shb).err().unwrap();
        assert_eq!(
            e.to_string(),
            "t: block length 4294967280 exceeds the maximum of 16777216 at packet 1, byte offset 0"
        );
        shb[4..8].copy_from_slice(&(MAX_BLOCK as u32).to_le_bytes());
        let e = open(&shb).err().unwrap();
        assert!(
            e.to_string().contains("cut short (12 of 16777216 bytes)"),
            "{e}"
        );
    }

    /// What a source gave: every frame (copied), how it ended, and the counters.
    type Outcome = (
        Vec<(u64, i64, u16, u32, u32, Vec<u8>)>,
        String,
        Option<CaptureInfo>,
    );

    fn outcome(opened: Result<FileSource, CaptureError>) -> Outcome {
        let mut src = match opened {
            Ok(src) => src,
            Err(e) => return (Vec::new(), e.to_string(), None),
        };
        let mut frames = Vec::new();
        let end = src.run(|f| {
            let data = f.data.to_vec();
            frames.push((f.number, f.ts.0, f.linktype.0, f.iface, f.origlen, data));
            ControlFlow::Continue(())
        });
        let end = end.map_or_else(|e| e.to_string(), |()| "ok".to_string());
        (frames, end, Some(src.info().clone()))
    }

    /// The file read with `read()`, as a pipe would give it.
    fn by_read(path: &str) -> Outcome {
        let file = std::fs::File::open(path).unwrap();
        outcome(FileSource::from_reader(path, Box::new(file)))
    }

    /// Mapped with chunks of `chunk` bytes; asserts the file was mapped.
    fn by_map(path: &str, chunk: usize) -> Outcome {
        let src = FileSource::open_chunked(path, chunk);
        if let Ok(src) = &src {
            assert!(src.map.is_some(), "{path} not mapped");
        }
        outcome(src)
    }

    /// The classic pcap files under testdata, good and damaged.
    fn pcap_files() -> Vec<std::path::PathBuf> {
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")];
        let mut files = Vec::new();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "pcap") {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    }

    /// Chunks of one byte (every record straddles a chunk end), one page and a bit more, and
    /// the real size.
    const CHUNKS: [usize; 4] = [1, 4096, 4096 * 3 + 100, CHUNK];

    /// Every classic pcap file under testdata gives the same frames, end (damage message,
    /// packet and offset) and counters mapped as read with `read()`.
    #[test]
    fn mapped_reads_like_read() {
        let files = pcap_files();
        assert!(files.len() > 50, "testdata not found");
        let mut frames = 0;
        for path in &files {
            let path = path.to_str().unwrap();
            let want = by_read(path);
            frames += want.0.len();
            for chunk in CHUNKS {
                let got = by_map(path, chunk);
                assert!(
                    got == want,
                    "{path}, chunk {chunk}: {} vs {}",
                    got.1,
                    want.1
                );
            }
        }
        assert!(frames > 10_000, "only {frames} frames read");
    }

    /// Cut points: every byte of the first `head`, and `spread` points over the whole file.
    fn cuts(len: usize, head: usize, spread: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = (0..head.min(len)).collect();
        cuts.extend((0..spread).map(|i| len * i / spread));
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    }

    /// Captures cut short at many points give the same frames and the same damage (message,
    /// packet, offset) mapped as read.
    #[test]
    fn truncated_copies_fail_alike() {
        let dir = tempfile::tempdir().unwrap();
        let cut_path = dir.path().join("cut.pcap");
        let cut = cut_path.to_str().unwrap();
        let mut compared = 0;
        for path in pcap_files() {
            let bytes = std::fs::read(&path).unwrap();
            // The larger captures add length, not new framing.
            if bytes.len() > 64 * 1024 {
                continue;
            }
            std::fs::write(cut, &bytes).unwrap();
            let file = std::fs::OpenOptions::new().write(true).open(cut).unwrap();
            for at in cuts(bytes.len(), 120, 40).into_iter().rev() {
                file.set_len(at as u64).unwrap();
                let want = by_read(cut);
                for chunk in [1, 4096] {
                    let got = by_map(cut, chunk);
                    assert!(
                        got == want,
                        "{} cut at {at}, chunk {chunk}: {} vs {}",
                        path.display(),
                        got.1,
                        want.1
                    );
                }
                compared += 1;
            }
        }
        assert!(compared > 3_000, "only {compared} cuts");
    }

    /// A pcap record larger than the chunk is walked whole; cut short, or claiming more than
    /// libpcap allows, it is the same damage as through `read()`.
    #[test]
    fn records_larger_than_the_chunk() {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        for w in [0u32, 0, 0, 1] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        let caplen = 200_000u32;
        for w in [7u32, 8, caplen, caplen] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend((0..caplen).map(|i| i as u8));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pcap");
        let path = path.to_str().unwrap();
        let mut claim = f.clone();
        claim[24 + 8..24 + 12].copy_from_slice(&(MAXIMUM_SNAPLEN + 1).to_le_bytes());
        let cases = [f.clone(), f[..f.len() - 5].to_vec(), claim];
        for (i, bytes) in cases.iter().enumerate() {
            std::fs::write(path, bytes).unwrap();
            let want = by_read(path);
            match i {
                0 => assert_eq!((want.0.len(), want.0[0].5.len()), (1, caplen as usize)),
                1 => assert!(want.1.contains("file ends inside a record"), "{}", want.1),
                _ => assert!(want.1.contains("exceeds the maximum"), "{}", want.1),
            }
            for chunk in [4096, CHUNK] {
                let got = by_map(path, chunk);
                assert!(
                    got == want,
                    "case {i}, chunk {chunk}: {} vs {}",
                    got.1,
                    want.1
                );
            }
        }
    }

    /// The test capture with several records, and where its first record ends.
    fn small_capture() -> (Vec<u8>, Outcome, usize) {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/synthetic/tcp-le-us.pcap");
        let bytes = std::fs::read(&src).unwrap();
        let whole = by_read(src.to_str().unwrap());
        assert!(whole.0.len() > 3 && whole.1 == "ok");
        let first = 24 + 16 + read_u32(&bytes, 24 + 8, false).unwrap() as usize;
        (bytes, whole, first)
    }

    /// A file that grows while it is read (tcpdump -w still writing it): mapped, as read, the
    /// walk goes on up to the end it finds when it gets there.
    #[test]
    fn file_growing_while_read() {
        let (bytes, whole, first) = small_capture();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.pcap");
        let path = path.to_str().unwrap();
        for chunk in [None, Some(1), Some(CHUNK)] {
            std::fs::write(path, &bytes[..first]).unwrap();
            let mut src = match chunk {
                Some(c) => FileSource::open_chunked(path, c),
                None => FileSource::from_reader(path, Box::new(std::fs::File::open(path).unwrap())),
            }
            .unwrap();
            assert_eq!(src.map.is_some(), chunk.is_some());
            let mut got = Vec::new();
            src.run(|f| {
                if f.number == 1 {
                    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
                    io::Write::write_all(&mut file, &bytes[first..]).unwrap();
                }
                got.push((f.number, f.ts.0, f.data.to_vec()));
                ControlFlow::Continue(())
            })
            .unwrap();
            let want: Vec<_> = whole.0.iter().map(|f| (f.0, f.1, f.5.clone())).collect();
            assert_eq!(got, want, "chunk {chunk:?}");
        }
    }

    /// A mapped file cut short while it is read, past the bytes already checked: the walk
    /// ends as a read of the short file would have (no SIGBUS).
    #[test]
    fn file_shrinking_while_mapped() {
        let (bytes, _, first) = small_capture();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinking.pcap");
        let path = path.to_str().unwrap();
        let short = dir.path().join("short.pcap");
        let short = short.to_str().unwrap();
        // One-byte chunks: only the first record has been checked when the file shrinks.
        for cut in [first, first + 1, first + 20, bytes.len() - 1] {
            std::fs::write(short, &bytes[..cut]).unwrap();
            let want = by_read(short);
            std::fs::write(path, &bytes).unwrap();
            let mut src = FileSource::open_chunked(path, 1).unwrap();
            let mut got = Vec::new();
            let end = src.run(|f| {
                if f.number == 1 {
                    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                    file.set_len(cut as u64).unwrap();
                }
                let data = f.data.to_vec();
                got.push((f.number, f.ts.0, f.linktype.0, f.iface, f.origlen, data));
                ControlFlow::Continue(())
            });
            let end = end.map_or_else(|e| e.to_string(), |()| "ok".to_string());
            assert!(
                (&got, &end) == (&want.0, &want.1.replace(short, path)),
                "cut {cut}: {end} vs {}",
                want.1
            );
        }
    }

    /// A break and a second `run` go on with the next record, mapped as read.
    #[test]
    fn break_and_resume_mapped() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/synthetic/tcp-le-us.pcap");
        let path = src.to_str().unwrap();
        let whole = by_read(path);
        for chunk in [1, CHUNK] {
            let mut src = FileSource::open_chunked(path, chunk).unwrap();
            let mut got = Vec::new();
            for _ in 0..whole.0.len() + 1 {
                src.run(|f| {
                    got.push(f.number);
                    ControlFlow::Break(())
                })
                .unwrap();
            }
            let want: Vec<_> = whole.0.iter().map(|f| f.0).collect();
            assert_eq!(got, want, "chunk {chunk}");
        }
    }

    /// A FIFO and a pcapng file are read with `read()`, never mapped.
    #[cfg(unix)]
    #[test]
    fn fifo_and_pcapng_are_read_not_mapped() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/synthetic/tcp-le-us.pcap");
        let bytes = std::fs::read(&src).unwrap();
        let want = by_read(src.to_str().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
        };
        let src = FileSource::open(fifo.to_str().unwrap()).unwrap();
        assert!(src.map.is_none());
        let got = outcome(Ok(src));
        writer.join().unwrap();
        assert!(got.0 == want.0 && got.1 == "ok", "{}", got.1);
        let ng = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/synthetic/tcp-be-ns.pcapng");
        assert!(
            FileSource::open(ng.to_str().unwrap())
                .unwrap()
                .map
                .is_none()
        );
    }

    #[test]
    fn big_endian_modified_pcap_is_unsupported() {
        let mut h = vec![0xa1, 0xb2, 0xcd, 0x34];
        h.resize(24, 0);
        assert!(matches!(open(&h), Err(CaptureError::NotACapture { .. })));
    }
}

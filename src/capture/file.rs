//! Offline input: classic pcap (µs / ns, either byte order) and pcapng (several sections and
//! interfaces, per-interface link type, `if_tsresol` and `if_tsoffset`), from a file or a pipe.
//!
//! Reading streams through pcap-parser's `PcapReaderIterator` with a bounded buffer, so a
//! multi-GB file is never held in memory and no allocation is sized by an untrusted length.

use super::{CaptureError, Frame, Linktype, Precision, Timestamp};
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{Block, PcapBlockOwned, PcapError};
use std::io::{self, Read};
use std::ops::ControlFlow;

const INITIAL_BUF: usize = 1 << 20;
/// The largest block we accept; a corrupt length beyond it is damage, not a reason to allocate.
const MAX_BUF: usize = 64 << 20;

/// The file format, found from the magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap.
    Pcap,
    /// pcapng.
    Pcapng,
}

#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: Linktype,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    ts_offset: i64,
}

/// A capture file or stream being read.
pub struct FileSource {
    path: String,
    reader: Box<dyn PcapReaderIterator + Send>,
    format: Format,
    precision: Precision,
    buf_cap: usize,
    ifaces: Vec<Iface>,
    packets: u64,
}

impl FileSource {
    /// Opens `path` (`-` is standard input) and reads its header.
    pub fn open(path: &str) -> Result<Self, CaptureError> {
        let input: Box<dyn Read + Send> = if path == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(
                std::fs::File::open(path).map_err(|source| CaptureError::Io {
                    path: path.to_string(),
                    source,
                })?,
            )
        };
        Self::from_reader(path, input)
    }

    /// Reads a capture from any byte stream; `name` is used in messages.
    pub fn from_reader(name: &str, mut input: Box<dyn Read + Send>) -> Result<Self, CaptureError> {
        let io_err = |source| CaptureError::Io {
            path: name.to_string(),
            source,
        };
        // pcap-parser sniffs the format with a single read(); on a pipe that may return only a
        // few bytes, so read the whole file header ourselves first.
        let mut head = vec![0u8; 24];
        let got = read_full(&mut input, &mut head).map_err(io_err)?;
        head.truncate(got);
        let format = match head.get(0..4) {
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => Format::Pcapng,
            Some(
                [0xa1, 0xb2, 0xc3, 0xd4]
                | [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x4d, 0x3c, 0xb2, 0xa1],
            ) => Format::Pcap,
            _ => {
                return Err(CaptureError::NotACapture {
                    path: name.to_string(),
                    detail: if head.is_empty() {
                        "the input is empty".to_string()
                    } else {
                        format!("unknown magic {}", hex(&head[..head.len().min(4)]))
                    },
                });
            }
        };
        if head.len() < 24 {
            return Err(CaptureError::Damaged {
                path: name.to_string(),
                packet: 1,
                offset: 0,
                detail: format!("file header cut short ({} of 24 bytes)", head.len()),
            });
        }
        if format == Format::Pcapng {
            // The whole section header block must be in the first read too.
            let le = head[8..12] == [0x4d, 0x3c, 0x2b, 0x1a];
            let raw = [head[4], head[5], head[6], head[7]];
            let len = if le {
                u32::from_le_bytes(raw)
            } else {
                u32::from_be_bytes(raw)
            } as usize;
            if (28..=MAX_BUF).contains(&len) && len > head.len() {
                let start = head.len();
                head.resize(len, 0);
                let got = read_full(&mut input, &mut head[start..]).map_err(io_err)?;
                head.truncate(start + got);
            }
        }
        let precision = match head[0..4] {
            [0xa1, 0xb2, 0x3c, 0x4d] | [0x4d, 0x3c, 0xb2, 0xa1] => Precision::Nano,
            _ => Precision::Micro,
        };
        let stream: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(input));
        let reader = pcap_parser::create_reader(INITIAL_BUF, stream).map_err(|e| {
            CaptureError::NotACapture {
                path: name.to_string(),
                detail: e.to_string(),
            }
        })?;
        Ok(FileSource {
            path: name.to_string(),
            reader,
            format,
            precision,
            buf_cap: INITIAL_BUF,
            ifaces: Vec::new(),
            packets: 0,
        })
    }

    /// The format found from the magic bytes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The finest timestamp precision seen so far.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Calls `f` for every frame in order until the input ends or `f` breaks.
    ///
    /// On damage, every frame before it has been passed to `f` and the error says where.
    pub fn run<F>(&mut self, mut f: F) -> Result<(), CaptureError>
    where
        F: FnMut(&Frame<'_>) -> ControlFlow<()>,
    {
        loop {
            match self.reader.next() {
                Ok((len, block)) => {
                    let flow = handle_block(
                        &block,
                        &mut self.ifaces,
                        &mut self.precision,
                        &mut self.packets,
                        &mut f,
                    );
                    match flow {
                        Ok(flow) => {
                            self.reader.consume(len);
                            if flow.is_break() {
                                return Ok(());
                            }
                        }
                        Err(detail) => {
                            return Err(self.damaged(detail));
                        }
                    }
                }
                Err(PcapError::Eof) => return Ok(()),
                Err(PcapError::Incomplete(_)) => {
                    if let Err(e) = self.reader.refill() {
                        let detail = e.to_string();
                        return Err(self.damaged(format!("read error: {detail}")));
                    }
                }
                Err(PcapError::BufferTooSmall) => {
                    if self.buf_cap >= MAX_BUF || !self.reader.grow(self.buf_cap * 2) {
                        let cap = self.buf_cap;
                        return Err(self.damaged(format!("record larger than {cap} bytes")));
                    }
                    self.buf_cap *= 2;
                    if let Err(e) = self.reader.refill() {
                        let detail = e.to_string();
                        return Err(self.damaged(format!("read error: {detail}")));
                    }
                }
                Err(PcapError::UnexpectedEof) => {
                    return Err(self.damaged("file ends inside a record".to_string()));
                }
                Err(e) => {
                    let detail = e.to_string();
                    return Err(self.damaged(format!("unreadable record ({detail})")));
                }
            }
        }
    }

    fn damaged(&self, detail: String) -> CaptureError {
        CaptureError::Damaged {
            path: self.path.clone(),
            packet: self.packets + 1,
            offset: self.reader.consumed() as u64,
            detail,
        }
    }
}

/// Turns one block into a frame for `f`, or updates the interface table.
fn handle_block<F>(
    block: &PcapBlockOwned<'_>,
    ifaces: &mut Vec<Iface>,
    precision: &mut Precision,
    packets: &mut u64,
    f: &mut F,
) -> Result<ControlFlow<()>, String>
where
    F: FnMut(&Frame<'_>) -> ControlFlow<()>,
{
    let (iface_id, iface, ts, origlen, data) = match block {
        PcapBlockOwned::LegacyHeader(hdr) => {
            let nano = hdr.is_nanosecond_precision();
            ifaces.clear();
            ifaces.push(Iface {
                linktype: Linktype((hdr.network.0 & 0xffff) as u16),
                units_per_sec: if nano { 1_000_000_000 } else { 1_000_000 },
                ts_offset: 0,
            });
            return Ok(ControlFlow::Continue(()));
        }
        PcapBlockOwned::Legacy(b) => {
            let i = *ifaces.first().ok_or("record before the file header")?;
            let frac = u64::from(b.ts_usec) * (1_000_000_000 / i.units_per_sec);
            let ts = Timestamp(
                i64::from(b.ts_sec) * 1_000_000_000 + i64::try_from(frac).unwrap_or(i64::MAX),
            );
            (0, i, ts, b.origlen, b.data)
        }
        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
            ifaces.clear();
            return Ok(ControlFlow::Continue(()));
        }
        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
            let units = tsresol_units(idb.if_tsresol).ok_or("unsupported if_tsresol")?;
            if units > 1_000_000 {
                *precision = Precision::Nano;
            }
            ifaces.push(Iface {
                linktype: Linktype((idb.linktype.0 & 0xffff) as u16),
                units_per_sec: units,
                ts_offset: idb.if_tsoffset,
            });
            return Ok(ControlFlow::Continue(()));
        }
        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
            let i = *ifaces
                .get(epb.if_id as usize)
                .ok_or("packet for an undeclared interface")?;
            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            let secs = (raw / i.units_per_sec) as i64;
            let frac = (u128::from(raw % i.units_per_sec) * 1_000_000_000
                / u128::from(i.units_per_sec)) as u32;
            let ts = Timestamp::from_parts(secs.saturating_add(i.ts_offset), frac);
            (epb.if_id, i, ts, epb.origlen, epb.packet_data())
        }
        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
            let i = *ifaces.first().ok_or("packet before any interface")?;
            (0, i, Timestamp(0), spb.origlen, spb.packet_data())
        }
        PcapBlockOwned::NG(_) => return Ok(ControlFlow::Continue(())),
    };
    *packets += 1;
    let frame = Frame {
        number: *packets,
        ts,
        linktype: iface.linktype,
        iface: iface_id,
        origlen,
        data,
    };
    Ok(f(&frame))
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

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

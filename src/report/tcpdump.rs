//! The line `tcpdump -n` prints for a TCP packet, byte for byte.

use crate::capture::Frame;
use crate::config::LineFormat;
use crate::decode::{Decoded, Segment, TcpFlags};
use std::io::{self, Write};
use std::net::IpAddr;

/// Prints tcpdump lines; keeps the little state tcpdump keeps (relative sequence bases).
pub struct TcpdumpPrinter {
    fmt: LineFormat,
}

impl TcpdumpPrinter {
    /// A printer with the given flags.
    pub fn new(fmt: LineFormat) -> Self {
        TcpdumpPrinter { fmt }
    }

    /// Writes the packet's line (without a trailing newline).
    pub fn write_line(
        &mut self,
        out: &mut dyn Write,
        frame: &Frame<'_>,
        d: &Decoded<'_>,
    ) -> io::Result<()> {
        let Some(s) = &d.segment else { return Ok(()) };
        if self.fmt.number {
            write!(out, "{:5}  ", frame.number)?;
        }
        let secs = frame.ts.secs().rem_euclid(86_400);
        write!(
            out,
            "{:02}:{:02}:{:02}.{:06} ",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            frame.ts.subsec_nanos() / 1000
        )?;
        let v = if s.src.is_ipv4() { "IP" } else { "IP6" };
        write!(out, "{v} ")?;
        addr(out, s.src, s.sport)?;
        out.write_all(b" > ")?;
        addr(out, s.dst, s.dport)?;
        write!(out, ": Flags [{}]", flags(s.flags))?;
        rest(out, s)
    }
}

fn addr(out: &mut dyn Write, a: IpAddr, port: u16) -> io::Result<()> {
    write!(out, "{a}.{port}")
}

fn flags(f: TcpFlags) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (TcpFlags::FIN, 'F'),
        (TcpFlags::SYN, 'S'),
        (TcpFlags::RST, 'R'),
        (TcpFlags::PSH, 'P'),
        (TcpFlags::ACK, '.'),
        (TcpFlags::URG, 'U'),
        (TcpFlags::ECE, 'E'),
        (TcpFlags::CWR, 'W'),
    ] {
        if f.has(bit) {
            s.push(c);
        }
    }
    if s.is_empty() { "none".into() } else { s }
}

fn rest(out: &mut dyn Write, s: &Segment) -> io::Result<()> {
    if s.payload_len > 0 || s.flags.syn() || s.flags.fin() || s.flags.rst() {
        write!(out, ", seq {}", s.seq)?;
        if s.payload_len > 0 {
            write!(out, ":{}", s.seq.wrapping_add(s.payload_len))?;
        }
    }
    if s.flags.ack() {
        write!(out, ", ack {}", s.ack)?;
    }
    write!(out, ", win {}, length {}", s.window, s.payload_len)
}

//! The lines `tcpdump -n` (4.99) prints for a TCP packet, byte for byte.
//!
//! This follows tcpdump's printers (print-ether.c, print-sll.c, print-null.c, print-raw.c,
//! print-ip.c, print-ip6.c, print-ip6opts.c, print-frag6.c, print-rt6.c, print-tcp.c,
//! print-mptcp.c, util-print.c) step by step, including their truncation behaviour: a read
//! past the captured bytes ends the packet with ` [|proto]`, like tcpdump's longjmp.
//!
//! Deliberate difference: tcpdump goes on after `length N` with the application-layer
//! decoders (DNS, HTTP, BGP, SSH, …); this printer stops there. TCP-level trailers are kept:
//! ` [|tcp]`, ` [remaining caplen(…) < header length(…)]`, and the `-v` RST payload
//! ` [RST …]`.

use super::seqtable::SeqTable;
use super::tstamp::Clock;
use crate::capture::{Frame, Linktype};
use crate::config::LineFormat;
use crate::decode::link::{self, LinkView};
use crate::decode::{Decoded, NetView};
use std::io::{self, Write};

/// A read past the captured bytes: tcpdump longjmps out and prints ` [|proto]`.
struct Trunc;

type R = Result<(), Trunc>;

/// How the TCP option loop stops early.
enum Stop {
    /// `goto bad`: `[bad opt]`.
    Bad,
    /// `goto trunc` (an `ND_TCHECK`): ` [|tcp]` and `>` inside the option list.
    Local,
    /// A `GET_` macro ran off the data: longjmp.
    Jump,
}

impl From<Trunc> for Stop {
    fn from(_: Trunc) -> Self {
        Stop::Jump
    }
}

fn u8_at(b: &[u8], at: usize) -> Result<u8, Trunc> {
    b.get(at).copied().ok_or(Trunc)
}

fn be16(b: &[u8], at: usize) -> Result<u16, Trunc> {
    Ok(u16::from_be_bytes([u8_at(b, at)?, u8_at(b, at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Result<u32, Trunc> {
    Ok(u32::from_be_bytes([
        u8_at(b, at)?,
        u8_at(b, at + 1)?,
        u8_at(b, at + 2)?,
        u8_at(b, at + 3)?,
    ]))
}

fn be64(b: &[u8], at: usize) -> Result<u64, Trunc> {
    Ok(u64::from(be32(b, at)?) << 32 | u64::from(be32(b, at + 4)?))
}

fn bytes<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], Trunc> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(Trunc)
}

/// One's complement sum of big-endian 16-bit words (RFC 1071), not yet folded.
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum and complements it: 0 means the checksum is correct.
fn cksum_result(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// tcpdump's `in_cksum_shouldbe`: the value the checksum field should have held.
fn shouldbe(field: u16, computed: u16) -> u16 {
    let mut s = u32::from(field) + u32::from(computed);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Where text pieces go: a piece is stored with one fixed-size write and cut to its length.
///
/// Lines are made of many short pieces: a fixed-size store is a few moves where a
/// variable-size one is a `memcpy` call, and writing digits straight into the output avoids
/// reading back a just-written stack array (a stalled store-to-load forward).
pub(crate) trait Sink: Write {
    /// Appends the first `keep` (at most `N`) bytes of `bytes`.
    fn put<const N: usize>(&mut self, bytes: [u8; N], keep: usize);
}

impl Sink for Vec<u8> {
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N], keep: usize) {
        self.extend_from_slice(&bytes);
        self.truncate(self.len() - N + keep.min(N));
    }
}

/// The longest text a [`Cur`] takes (its position is kept below this by a mask).
pub(crate) const CUR_TEXT: usize = 512;

/// A [`Cur`]'s array: the text and room for the spill of a fixed-size store.
pub(crate) type CurBuf = [u8; CUR_TEXT + 32];

/// A cursor in a fixed array, for lines whose longest text is known in advance (the
/// common tcpdump line, the quiet annotation): a piece is one store, where
/// `Vec::extend_from_slice` reloads the length and capacity, may call `reserve` and stores
/// the length back per piece. The position is masked below [`CUR_TEXT`], so every
/// fixed-size store is in bounds without a check; the lines written are far shorter, so the
/// mask never changes a position.
pub(crate) struct Cur<'a> {
    b: &'a mut CurBuf,
    at: usize,
}

impl<'a> Cur<'a> {
    /// A cursor at the start of `b`.
    pub(crate) fn new(b: &'a mut CurBuf) -> Self {
        Cur { b, at: 0 }
    }

    /// The text written.
    pub(crate) fn text(&self) -> &[u8] {
        self.b.get(..self.at).unwrap_or_default()
    }

    /// Appends bytes (a constant slice becomes a few moves).
    #[inline(always)]
    pub(crate) fn extend_from_slice(&mut self, s: &[u8]) {
        let at = self.at % CUR_TEXT;
        if let Some(d) = self.b.get_mut(at..at + s.len()) {
            d.copy_from_slice(s);
            self.at = at + s.len();
        }
    }
}

impl Sink for Cur<'_> {
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N], keep: usize) {
        const { assert!(N <= 32) };
        // Every caller keeps at most N (constants, or lengths bounded by construction); not
        // clamped here, as this runs ~25 times a line. A larger `keep` would only add bytes
        // of the array to the text: the position stays masked.
        debug_assert!(keep <= N);
        let at = self.at % CUR_TEXT;
        if let Some(d) = self.b.get_mut(at..at + N) {
            d.copy_from_slice(&bytes);
        }
        self.at = at + keep;
    }
}

impl Write for Cur<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The eight decimal digits of `x < 10^8`, one per byte, most significant in the lowest byte
/// (so `to_le_bytes` gives them in reading order): split 4+4, 2+2, 1+1 in parallel lanes of
/// one integer by multiplying by reciprocals, exact for these ranges.
#[inline(always)]
pub(super) fn digits8(x: u32) -> u64 {
    let y = u64::from(x / 10_000) | u64::from(x % 10_000) << 32;
    // Per 32-bit lane: v / 100 = v * 10486 >> 20 for v < 10^4.
    let hi = ((y * 10_486) >> 20) & 0x0000_007f_0000_007f;
    let y = hi | (y - hi * 100) << 16;
    // Per 16-bit lane: v / 10 = v * 103 >> 10 for v < 100.
    let hi = ((y * 103) >> 10) & 0x000f_000f_000f_000f;
    hi | (y - hi * 10) << 8
}

/// ASCII '0' in every byte.
pub(super) const ZEROS: u64 = 0x3030_3030_3030_3030;

/// `{}` of an integer without the `fmt` machinery (which cost more than the rest of a line):
/// all digits at once in one register ([`digits8`]), leading zeros shifted out, stored with
/// one fixed-size write.
#[inline(always)]
pub(super) fn dec(out: &mut impl Sink, n: impl Into<u32>) {
    let v: u32 = n.into();
    if v < 100_000_000 {
        let d = digits8(v);
        // The leading zero digits are the low zero bytes; "0" keeps its last digit.
        let zeros = (d.trailing_zeros() / 8).min(7);
        out.put(
            ((d | ZEROS) >> (8 * zeros)).to_le_bytes(),
            8 - zeros as usize,
        );
    } else {
        // 10^8 ..= u32::MAX: one or two leading digits, then eight.
        let hi = v / 100_000_000;
        let low = u128::from(digits8(v % 100_000_000) | ZEROS);
        let (head, len) = if hi >= 10 {
            (u128::from(0x3030 + ((hi / 10) | ((hi % 10) << 8))), 2)
        } else {
            (u128::from(0x30 + hi), 1)
        };
        out.put((head | low << (8 * len)).to_le_bytes(), len + 8);
    }
}

/// `{:x}` of a u16 (no leading zeros), after a `:` when `colon`, without the `fmt` machinery:
/// the nibbles spread one per byte, turned into digits by adding `'0'` (and `'a' - '0' - 10`
/// to those above 9) in every byte at once.
#[inline(always)]
fn hex16(out: &mut impl Sink, w: u16, colon: bool) {
    let w = u32::from(w);
    // Big-endian: the first digit in the top byte.
    let n = (w & 0xf000) << 12 | (w & 0x0f00) << 8 | (w & 0x00f0) << 4 | (w & 0x000f);
    let digits = n + 0x3030_3030 + (((n + 0x0606_0606) & 0x1010_1010) >> 4) * 0x27;
    let skip = (w.leading_zeros() - 16) / 4;
    let skip = skip.min(3);
    // Left-aligned behind the colon, whose byte is dropped (shifted out) without one.
    let text =
        (u64::from(b':') << 56 | u64::from(digits << (8 * skip)) << 24) << (8 * u32::from(!colon));
    out.put(text.to_be_bytes(), 4 - skip as usize + usize::from(colon));
}

/// Each octet's text followed by a dot, as little-endian bytes (`"7."`, `"42."`, `"255."`),
/// and the number of digits.
const OCTETS: [(u32, u8); 256] = {
    let mut t = [(0u32, 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u32;
        t[i] = if b >= 100 {
            let d = (b'0' as u32 + b / 100)
                | (b'0' as u32 + b / 10 % 10) << 8
                | (b'0' as u32 + b % 10) << 16;
            (d | (b'.' as u32) << 24, 3)
        } else if b >= 10 {
            (
                (b'0' as u32 + b / 10) | (b'0' as u32 + b % 10) << 8 | (b'.' as u32) << 16,
                2,
            )
        } else {
            ((b'0' as u32 + b) | (b'.' as u32) << 8, 1)
        };
        i += 1;
    }
    t
};

/// Dotted quad, written in place: two addresses per line made this a hot spot. The four
/// octets' texts are joined in one register and stored at once.
#[inline]
pub(crate) fn ipv4(out: &mut impl Sink, a: [u8; 4]) {
    let o = a.map(|b| OCTETS[usize::from(b)]);
    // Two octets (at most eight bytes with their dots) per 64-bit half, then one 128-bit
    // shift: a 128-bit shift by a variable amount is several instructions.
    let pair = |(d0, n0): (u32, u8), (d1, n1): (u32, u8)| {
        let first = u32::from(n0) + 1;
        (
            u64::from(d0) | u64::from(d1) << (8 * first),
            first + u32::from(n1) + 1,
        )
    };
    let (lo, lo_len) = pair(o[0], o[1]);
    let (hi, hi_len) = pair(o[2], o[3]);
    let text = u128::from(lo) | u128::from(hi) << (8 * lo_len);
    // Without the last octet's dot.
    out.put(text.to_le_bytes(), (lo_len + hi_len) as usize - 1);
}

/// tcpdump's `addrtostr6`: RFC 5952 style, with IPv4-mapped and IPv4-compatible tails.
fn ipv6(out: &mut impl Sink, a: [u8; 16]) {
    let w: [u16; 8] = std::array::from_fn(|i| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]));
    // The first longest run of zero groups; shortened to `::` from two groups on.
    let (mut best, mut best_len, mut run) = (0usize, 0usize, 0usize);
    for (i, &x) in w.iter().enumerate() {
        run = if x == 0 { run + 1 } else { 0 };
        if run > best_len {
            (best, best_len) = (i + 1 - run, run);
        }
    }
    if best_len < 2 {
        for (i, &x) in w.iter().enumerate() {
            hex16(out, x, i != 0);
        }
        return;
    }
    for (i, &x) in w.iter().enumerate().take(best) {
        hex16(out, x, i != 0);
    }
    out.put([b':'], 1);
    let after = best + best_len;
    if best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
        // IPv4-compatible `::a.b.c.d` and IPv4-mapped `::ffff:a.b.c.d`.
        if best_len == 5 {
            out.put(*b":ffff", 5);
        }
        out.put([b':'], 1);
        ipv4(out, [a[12], a[13], a[14], a[15]]);
        return;
    }
    if after == 8 {
        out.put([b':'], 1);
    }
    for &x in w.iter().skip(after) {
        hex16(out, x, true);
    }
}

fn mac(out: &mut Vec<u8>, m: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, &b) in m.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
    }
}

fn ethertype_name(t: u32) -> &'static str {
    match t as u16 {
        link::ETHERTYPE_IP => "IPv4",
        link::ETHERTYPE_IPV6 => "IPv6",
        link::ETHERTYPE_ARP => "ARP",
        link::ETHERTYPE_8021Q => "802.1Q",
        link::ETHERTYPE_8021Q9100 => "802.1Q-9100",
        link::ETHERTYPE_8021QINQ => "802.1Q-QinQ",
        link::ETHERTYPE_8021Q9200 => "802.1Q-9200",
        _ => "Unknown",
    }
}

fn tci(out: &mut Vec<u8>, tci: u16) {
    let _ = write!(out, "vlan {}, p {}", tci & 0xfff, tci >> 13);
    if tci & 0x1000 != 0 {
        out.extend_from_slice(b", DEI");
    }
}

/// tcpdump's `fn_print_char`.
fn print_char(out: &mut Vec<u8>, mut c: u8) {
    if !c.is_ascii() {
        c &= 0x7f;
        out.extend_from_slice(b"M-");
    }
    if !(0x20..0x7f).contains(&c) {
        c ^= 0x40;
        out.push(b'^');
    }
    out.push(c);
}

/// The time column through a cursor passed by value: a cursor whose address is never taken
/// stays in registers in [`TcpdumpPrinter::common`].
#[inline(never)]
fn time<'a>(clock: &mut Clock, mut w: Cur<'a>, ts: crate::capture::Timestamp) -> Cur<'a> {
    clock.write(&mut w, ts);
    w
}

/// One remembered IPv6 address text (see [`V6Names`]); one cache line.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct V6Name {
    addr: [u8; 16],
    /// [`ipv6`]'s text (at most 39 bytes), zero-padded.
    text: [u8; 40],
    /// The text's length; 0 for an empty slot.
    len: u8,
}

/// The texts of recently printed IPv6 addresses, direct-mapped by a hash of the address:
/// a conversation's two addresses recur on every line, and copying a stored text is ~10x
/// cheaper than [`ipv6`]'s zero-run search and eight groups (measured: ~300 instructions an
/// address). A slot holds exactly what [`ipv6`] wrote for its address.
struct V6Names(Box<[V6Name; V6Names::SLOTS]>);

impl V6Names {
    const SLOTS: usize = 256;

    fn new() -> Self {
        V6Names(Box::new(
            [V6Name {
                addr: [0; 16],
                text: [0; 40],
                len: 0,
            }; Self::SLOTS],
        ))
    }

    /// Writes `a`'s text at `w`, from its slot or formatted (and then stored).
    #[inline(always)]
    fn write<'a>(&mut self, mut w: Cur<'a>, a: [u8; 16]) -> Cur<'a> {
        let x = u128::from_ne_bytes(a);
        let h = ((x as u64) ^ (x >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = &mut self.0[(h >> 56) as usize % Self::SLOTS];
        if slot.len != 0 && slot.addr == a {
            let len = usize::from(slot.len);
            let (head, tail) = slot.text.split_at(32);
            if let (Ok(head), Ok(tail)) = (<[u8; 32]>::try_from(head), <[u8; 8]>::try_from(tail)) {
                w.put(head, len.min(32));
                w.put(tail, len.saturating_sub(32));
            }
            return w;
        }
        v6_miss(slot, w, a)
    }
}

/// [`V6Names::write`] for an address not in its slot: formats it and stores the text.
#[inline(never)]
fn v6_miss<'a>(slot: &mut V6Name, mut w: Cur<'a>, a: [u8; 16]) -> Cur<'a> {
    let start = w.at % CUR_TEXT;
    ipv6(&mut w, a);
    let text = w.b.get(start..w.at).unwrap_or_default();
    if let Some(t) = slot.text.get_mut(..text.len()) {
        t.copy_from_slice(text);
        slot.addr = a;
        slot.len = text.len() as u8;
    }
    w
}

/// For each flags byte: its letters and `]`, and how many bytes that is.
const FLAG_TEXT: [([u8; 16], u8); 256] = {
    let mut t = [([0u8; 16], 0u8); 256];
    let mut f = 0;
    while f < 256 {
        let (mut n, mut i) = (0, 0);
        while i < 8 {
            if f >> i & 1 != 0 {
                t[f].0[n] = b"FSRP.UEW"[i];
                n += 1;
            }
            i += 1;
        }
        t[f].0[n] = b']';
        t[f].1 = n as u8 + 1;
        f += 1;
    }
    t
};

/// A TCP/IP packet whose line has none of the rare parts (see [`TcpdumpPrinter::common`]).
#[derive(Clone, Copy)]
struct Common<'a> {
    v6: bool,
    src: &'a [u8],
    dst: &'a [u8],
    /// From the TCP header to the end of the IP payload (at least `hlen` bytes).
    tp: &'a [u8],
    /// The TCP header's length (20, or 32 with `nop,nop,TS`).
    hlen: u32,
    /// The segment's length by the IP header (at least `hlen`).
    length: u32,
}

/// The longest common line after the time column: `IP6 `, two IPv6 addresses with ports
/// (2 × 45 + 5), flags (16), seq (27), ack (16), win (11), urg (11), options (`, options [`,
/// at most 4 bytes of text per byte of the 40-byte option area (`nop,`), `]`), length (19),
/// the newline, and 32 bytes for the last fixed-size store: 401 bytes.
const COMMON_MAX: usize = 4 + 95 + 16 + 27 + 16 + 11 + 11 + (11 + 4 * 40 + 1) + 19 + 1 + 32;

/// Whether a TCP option area holds only options [`common_options_text`] prints: nop, and
/// mss, wscale, sackOK, SACK (at least one block) and timestamps at their proper lengths,
/// each inside the area. For these the general option walk (`tcp_options`) prints the name
/// and values and never `[bad opt]`, `[len N]` or a truncation.
#[inline(always)]
fn common_options(o: &[u8]) -> bool {
    // Most segments: no options, or nop, nop, timestamps.
    if matches!(o, [] | [1, 1, 8, 10, _, _, _, _, _, _, _, _]) {
        return true;
    }
    common_options_walk(o)
}

/// [`common_options`] for the other option areas.
fn common_options_walk(o: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&kind) = o.get(i) {
        let len = match (kind, o.get(i + 1)) {
            (1, _) => 1,
            (2, Some(4)) | (3, Some(3)) | (4, Some(2)) | (8, Some(10)) => usize::from(o[i + 1]),
            (5, Some(&l)) if l >= 10 && (l - 2) % 8 == 0 => usize::from(l),
            _ => return false,
        };
        if o.len() < i + len {
            return false;
        }
        i += len;
    }
    true
}

/// The option list of an area [`common_options`] accepted, as `tcp_options` prints it;
/// `base` is subtracted from SACK edges.
#[inline(always)]
fn common_options_text(w: &mut Cur<'_>, o: &[u8], base: u32) {
    if let &[1, 1, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3] = o {
        w.extend_from_slice(b"nop,nop,TS val ");
        dec(w, u32::from_be_bytes([v0, v1, v2, v3]));
        w.put(*b" ecr \0\0\0", 5);
        dec(w, u32::from_be_bytes([e0, e1, e2, e3]));
        return;
    }
    let at = |i: usize| o.get(i).copied().unwrap_or(0);
    let be32 = |i: usize| u32::from_be_bytes([at(i), at(i + 1), at(i + 2), at(i + 3)]);
    let mut i = 0;
    while i < o.len() {
        if i > 0 {
            w.put([b','], 1);
        }
        match at(i) {
            1 => {
                w.put(*b"nop\0", 3);
                i += 1;
            }
            2 => {
                w.put(*b"mss \0\0\0\0", 4);
                dec(w, u16::from_be_bytes([at(i + 2), at(i + 3)]));
                i += 4;
            }
            3 => {
                w.put(*b"wscale \0", 7);
                dec(w, at(i + 2));
                i += 3;
            }
            4 => {
                w.put(*b"sackOK\0\0", 6);
                i += 2;
            }
            8 => {
                w.put(*b"TS val \0", 7);
                dec(w, be32(i + 2));
                w.put(*b" ecr \0\0\0", 5);
                dec(w, be32(i + 6));
                i += 10;
            }
            5 => {
                let len = usize::from(at(i + 1));
                w.put(*b"sack \0\0\0", 5);
                dec(w, ((len - 2) / 8) as u32);
                w.put([b' '], 1);
                let mut b = i + 2;
                while b + 8 <= i + len {
                    w.put([b'{'], 1);
                    dec(w, be32(b).wrapping_sub(base));
                    w.put([b':'], 1);
                    dec(w, be32(b + 4).wrapping_sub(base));
                    w.put([b'}'], 1);
                    b += 8;
                }
                i += len;
            }
            // Not accepted by `common_options`.
            _ => break,
        }
    }
}

/// The longest time column (`-tttt`'s `YYYY-MM-DD HH:MM:SS.nnnnnnnnn `, epoch and delta
/// are shorter; `[Error converting time] ` is 24) plus a fixed-size store's spill.
const TIME_MAX: usize = 32 + 16;

/// The IP header a TCP header came in, for addresses, checksums and the sequence table.
#[derive(Clone, Copy)]
enum IpCtx<'a> {
    /// IPv4: the captured header (at least 20 bytes, options included when captured).
    V4(&'a [u8]),
    /// IPv6: the captured packet from the fixed header on (extension headers included).
    V6(&'a [u8]),
}

/// Prints tcpdump lines; keeps the little state tcpdump keeps (relative sequence bases, the
/// previous timestamp for `-ttt`).
pub struct TcpdumpPrinter {
    fmt: LineFormat,
    clock: Clock,
    seq: SeqTable,
    /// Where a line is formatted: the caller's buffer, lent for the line.
    buf: Vec<u8>,
    /// The line for [`write_packet`](Self::write_packet), reused.
    line: Vec<u8>,
    /// Where [`common`](Self::common) writes a line before it is appended.
    scratch: Box<CurBuf>,
    /// Texts of recent IPv6 addresses, for [`common`](Self::common).
    v6names: V6Names,
    /// tcpdump's `ndo_protocol`: named in ` [|proto]`.
    proto: &'static str,
    /// Interface index to name, read once for LINUX_SLL2 (tcpdump calls `if_indextoname`).
    ifnames: Option<Vec<(u32, String)>>,
}

impl TcpdumpPrinter {
    /// A printer with the given flags.
    pub fn new(fmt: LineFormat) -> Self {
        TcpdumpPrinter {
            fmt,
            clock: Clock::new(fmt.time, fmt.nano),
            seq: SeqTable::default(),
            buf: Vec::new(),
            line: Vec::with_capacity(512),
            scratch: Box::new([0; CUR_TEXT + 32]),
            v6names: V6Names::new(),
            proto: "",
            ifnames: None,
        }
    }

    /// Writes what tcpdump prints for the frame (newline included) when libpcap would call
    /// it TCP; returns whether anything was written. Call it for every frame: other frames
    /// cost nothing but still move the `-ttt` reference time, as in tcpdump.
    pub fn write_packet(
        &mut self,
        out: &mut dyn Write,
        frame: &Frame<'_>,
        d: &Decoded<'_>,
    ) -> io::Result<bool> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let printed = self.append_packet(&mut line, frame, d);
        let result = if printed {
            out.write_all(&line)
        } else {
            Ok(())
        };
        self.line = line;
        result.map(|()| printed)
    }

    /// As [`write_packet`](Self::write_packet), appending the line to `out` (no copy: the
    /// line is formatted in place at the end of `out`).
    pub fn append_packet(&mut self, out: &mut Vec<u8>, frame: &Frame<'_>, d: &Decoded<'_>) -> bool {
        let (true, Some(link), Some(net)) = (d.is_tcp(), &d.link, &d.net) else {
            self.clock.skip(frame.ts);
            return false;
        };
        if let Some(c) = self.common_fields(link, net) {
            self.common(out, frame, c);
            return true;
        }
        // The formatting code appends to `self.buf`: lend it `out` for the line (nothing in
        // it reads back what is already in the buffer).
        std::mem::swap(&mut self.buf, out);
        if self.fmt.number {
            let mut n = itoa::Buffer::new();
            let n = n.format(frame.number).as_bytes();
            // `{:5}`: right-aligned in five columns.
            self.buf
                .extend_from_slice(&b"     "[..5usize.saturating_sub(n.len())]);
            self.buf.extend_from_slice(n);
            self.buf.extend_from_slice(b"  ");
        }
        self.clock.write(&mut self.buf, frame.ts);
        self.proto = "";
        if self.link(frame, link, net).is_err() {
            let _ = write!(self.buf, " [|{}]", self.proto);
        }
        self.buf.push(b'\n');
        std::mem::swap(&mut self.buf, out);
        true
    }

    /// The fields of a line that has none of the rare parts, or None: no `-#`, `-e`, `-v`;
    /// a link type that prints nothing before the IP layer; an IPv4 header with nothing to
    /// say (not truncated, not a fragment) or an IPv6 header followed by TCP; a TCP header
    /// that is captured whole, whose options are all ones [`common_options`] takes. Over 90% of the
    /// packets of a capture are like this; [`common`](Self::common) prints them with every
    /// bound known in advance. Reads only: the clock and the sequence table are untouched.
    #[inline(always)]
    fn common_fields<'a>(&self, link: &LinkView<'a>, net: &NetView<'a>) -> Option<Common<'a>> {
        if self.fmt.number || self.fmt.link_header || self.fmt.verbose > 0 {
            return None;
        }
        let v6 = match link.linktype {
            Linktype::ETHERNET => link.ethertype as u16 == link::ETHERTYPE_IPV6,
            // The general path reads the SLL header's fields first (a short one is ` [|sll]`).
            Linktype::LINUX_SLL if link.nvlan == 0 && link.header.len() >= 16 => {
                link.ethertype as u16 == link::ETHERTYPE_IPV6
            }
            Linktype::LINUX_SLL | Linktype::LINUX_SLL2 => return None,
            Linktype::NULL | Linktype::LOOP => link.ethertype != 2,
            _ => net.bytes.first().map(|b| b >> 4) == Some(6),
        };
        let b = net.bytes;
        let (src, dst, tp, length) = if v6 {
            // ip6(): no extension header, a payload length that is set and captured whole
            // by the wire length.
            let h = b.get(..40)?;
            let payload = u32::from(u16::from_be_bytes([h[4], h[5]]));
            if h[0] >> 4 != 6 || h[6] != 6 || payload == 0 || net.wire_len < payload + 40 {
                return None;
            }
            let ip6 = b.get(..payload as usize + 40).unwrap_or(b);
            (&h[8..24], &h[24..40], ip6.get(40..)?, payload)
        } else {
            // ip(): version 4, a sane header length and total length, no fragment offset.
            let h = b.get(..20)?;
            let hlen = u32::from(h[0] & 0x0f) * 4;
            let total = u32::from(u16::from_be_bytes([h[2], h[3]]));
            if h[0] >> 4 != 4
                || hlen < 20
                || total < hlen
                || net.wire_len < total
                || u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0
            {
                return None;
            }
            let ip = b.get(..total as usize).unwrap_or(b);
            (
                &h[12..16],
                &h[16..20],
                ip.get(hlen as usize..)?,
                total - hlen,
            )
        };
        let hlen = u32::from(tp.get(12)? >> 4) * 4;
        let plain = hlen >= 20
            && hlen <= length
            && tp.len() >= hlen as usize
            && tp.get(20..hlen as usize).is_some_and(common_options);
        plain.then_some(Common {
            v6,
            src,
            dst,
            tp,
            hlen,
            length,
        })
    }

    /// Prints a line [`common_fields`](Self::common_fields) accepted, byte for byte as the
    /// general path (`link` … `tcp`) would, into room reserved once for the whole line.
    fn common(&mut self, out: &mut Vec<u8>, frame: &Frame<'_>, c: Common<'_>) {
        const { assert!(TIME_MAX + COMMON_MAX <= CUR_TEXT) };
        let tp = c.tp;
        let be16 = |at: usize| u16::from_be_bytes([tp[at], tp[at + 1]]);
        let be32 = |at: usize| u32::from_be_bytes([tp[at], tp[at + 1], tp[at + 2], tp[at + 3]]);
        let (sport, dport) = (be16(0), be16(2));
        let flags = tp[13];
        // The sequence table first: its lookup usually misses the cache, and the time and
        // address text, which do not need its answer, can be written while the miss is served
        // (written after them, the miss stalled the rest of the line, whose place in the buffer
        // depends on the numbers).
        let (mut seq, mut ack) = (be32(4), be32(8));
        let (mut rev, mut th_seq, mut th_ack) = (false, 0, 0);
        if !self.fmt.absolute && flags & 0x10 != 0 {
            let r = self.seq.relative(
                c.v6,
                c.src,
                c.dst,
                sport,
                dport,
                seq,
                ack,
                flags & 0x02 != 0,
            );
            (seq, ack, rev, th_seq, th_ack) = (r.seq, r.ack, r.rev, r.th_seq, r.th_ack);
        }
        let mut w = Cur::new(&mut self.scratch);
        match self.clock.fast(frame.ts) {
            Some(text) => w.put(text, 16),
            None => w = time(&mut self.clock, w, frame.ts),
        }
        if c.v6 {
            w.put(*b"IP6 ", 4);
            let (Ok(src), Ok(dst)) = (c.src.try_into(), c.dst.try_into()) else {
                return;
            };
            w = self.v6names.write(w, src);
            w.put([b'.'], 1);
            dec(&mut w, sport);
            w.put(*b" > ", 3);
            w = self.v6names.write(w, dst);
        } else {
            w.put(*b"IP ", 3);
            let (Ok(src), Ok(dst)) = (c.src.try_into(), c.dst.try_into()) else {
                return;
            };
            ipv4(&mut w, src);
            w.put([b'.'], 1);
            dec(&mut w, sport);
            w.put(*b" > ", 3);
            ipv4(&mut w, dst);
        }
        w.put([b'.'], 1);
        dec(&mut w, dport);
        if flags == 0 {
            w.put(*b": Flags [none", 13);
        } else {
            w.put(*b": Flags [", 9);
        }
        let (text, n) = FLAG_TEXT[usize::from(flags)];
        w.put(text, usize::from(n));
        let length = c.length - c.hlen;
        if length > 0 || flags & 0x07 != 0 {
            w.put(*b", seq \0\0", 6);
            dec(&mut w, seq);
            if length > 0 {
                w.put([b':'], 1);
                dec(&mut w, seq.wrapping_add(length));
            }
        }
        if flags & 0x10 != 0 {
            w.put(*b", ack \0\0", 6);
            dec(&mut w, ack);
        }
        w.put(*b", win \0\0", 6);
        dec(&mut w, be16(14));
        if flags & 0x20 != 0 {
            w.put(*b", urg \0\0", 6);
            dec(&mut w, be16(18));
        }
        if let Some(o) = tp.get(20..c.hlen as usize).filter(|o| !o.is_empty()) {
            w.extend_from_slice(b", options [");
            // SACK edges are relative to the base of the direction they acknowledge.
            common_options_text(&mut w, o, if rev { th_seq } else { th_ack });
            w.put([b']'], 1);
        }
        w.extend_from_slice(b", length ");
        dec(&mut w, length);
        w.put([b'\n'], 1);
        out.extend_from_slice(w.text());
    }

    fn link(&mut self, frame: &Frame<'_>, link: &LinkView<'_>, net: &NetView<'_>) -> R {
        let e = self.fmt.link_header;
        let orig = frame.origlen.max(frame.data.len() as u32);
        let h = link.header;
        match link.linktype {
            Linktype::ETHERNET => {
                self.proto = "ether";
                if e {
                    mac(&mut self.buf, h.get(6..12).ok_or(Trunc)?);
                    self.buf.extend_from_slice(b" > ");
                    mac(&mut self.buf, h.get(0..6).ok_or(Trunc)?);
                    self.buf.extend_from_slice(b", ");
                    for (i, t) in link.tags().iter().enumerate() {
                        let _ = write!(
                            self.buf,
                            "ethertype {} (0x{:04x})",
                            ethertype_name(u32::from(t.tpid)),
                            t.tpid
                        );
                        if i == 0 {
                            let _ = write!(self.buf, ", length {orig}: ");
                        } else {
                            self.buf.extend_from_slice(b", ");
                        }
                        tci(&mut self.buf, t.tci);
                        self.buf.extend_from_slice(b", ");
                    }
                    let _ = write!(
                        self.buf,
                        "ethertype {} (0x{:04x})",
                        ethertype_name(link.ethertype),
                        link.ethertype
                    );
                    if link.nvlan == 0 {
                        let _ = write!(self.buf, ", length {orig}: ");
                    } else {
                        self.buf.extend_from_slice(b", ");
                    }
                }
                self.ether_payload(link.ethertype, net)
            }
            Linktype::LINUX_SLL | Linktype::LINUX_SLL2 => {
                let v2 = link.linktype == Linktype::LINUX_SLL2;
                self.proto = if v2 { "sll2" } else { "sll" };
                let (pkttype, halen, addr, proto) = if v2 {
                    (
                        u16::from(u8_at(h, 10)?),
                        u16::from(u8_at(h, 11)?),
                        h.get(12..18),
                        be16(h, 0)?,
                    )
                } else {
                    (be16(h, 0)?, be16(h, 4)?, h.get(6..12), be16(h, 14)?)
                };
                let pk = match pkttype {
                    0 => "In",
                    1 => "B",
                    2 => "M",
                    3 => "P",
                    4 => "Out",
                    _ => "?",
                };
                if v2 {
                    let index = be32(h, 4)?;
                    let name = ifname(&mut self.ifnames, index);
                    let _ = write!(self.buf, "{name:<5} {pk:<3} ");
                    if e {
                        let _ = write!(self.buf, "ifindex {index} ");
                    }
                } else if e {
                    let _ = write!(self.buf, "{pk:>3} ");
                }
                if e {
                    if let (6, Some(a)) = (halen, addr) {
                        mac(&mut self.buf, a);
                        self.buf.push(b' ');
                    }
                    match proto {
                        4 => self.buf.extend_from_slice(b"802.2"),
                        1 => self.buf.extend_from_slice(b"802.3"),
                        p if p <= 1500 => {
                            let _ = write!(self.buf, "ethertype Unknown (0x{p:04x})");
                        }
                        p => {
                            let _ = write!(
                                self.buf,
                                "ethertype {} (0x{p:04x})",
                                ethertype_name(u32::from(p))
                            );
                        }
                    }
                    let _ = write!(self.buf, ", length {orig}: ");
                }
                for t in link.tags() {
                    if e {
                        tci(&mut self.buf, t.tci);
                        self.buf.extend_from_slice(b", ");
                    }
                    // tcpdump names the inner type here even without -e; the last tag's
                    // inner type is the final one.
                    let _ = write!(self.buf, "ethertype {}, ", ethertype_name(link.ethertype));
                }
                self.ether_payload(link.ethertype, net)
            }
            Linktype::NULL | Linktype::LOOP => {
                self.proto = "null";
                let family = link.ethertype;
                if e {
                    let name = match family {
                        2 => "IPv4",
                        24 | 28 | 30 => "IPv6",
                        _ => "Unknown",
                    };
                    let _ = write!(self.buf, "AF {name} ({family}), length {orig}: ");
                }
                match family {
                    2 => self.ip(net),
                    _ => self.ip6(net),
                }
            }
            _ => {
                self.proto = "raw";
                if e {
                    self.buf.extend_from_slice(b"ip: ");
                }
                match net.bytes.first().map(|b| b >> 4) {
                    Some(6) => self.ip6(net),
                    _ => self.ip(net),
                }
            }
        }
    }

    fn ether_payload(&mut self, ethertype: u32, net: &NetView<'_>) -> R {
        if ethertype as u16 == link::ETHERTYPE_IPV6 {
            self.ip6(net)
        } else {
            self.ip(net)
        }
    }

    /// `ip_print`.
    fn ip(&mut self, net: &NetView<'_>) -> R {
        self.proto = "ip";
        let b = net.bytes;
        let length = net.wire_len;
        let v = u8_at(b, 0)? >> 4;
        if v != 4 {
            if v == 6 {
                self.buf
                    .extend_from_slice(b"IP6, wrong link-layer encapsulation (invalid)");
            } else {
                let _ = write!(self.buf, "IP{v} (invalid)");
            }
            return Ok(());
        }
        if !self.fmt.link_header {
            self.buf.extend_from_slice(b"IP ");
        }
        if b.len() < 20 {
            return Err(Trunc);
        }
        if length < 20 {
            let _ = write!(self.buf, "truncated-ip {length}");
            return Ok(());
        }
        let hlen = u32::from(b[0] & 0x0f) * 4;
        if hlen < 20 {
            let _ = write!(self.buf, "bad-hlen {hlen}");
            return Ok(());
        }
        let total = u32::from(be16(b, 2)?);
        let len = total;
        if length < len {
            let _ = write!(self.buf, "truncated-ip - {} bytes missing! ", len - length);
        }
        // tcpdump 4.99 as distributed is built without GUESS_TSO: a total length of 0
        // (a TSO / big-TCP send seen on the sender) is "bad-len 0" (the decoder still uses
        // the wire length for the analysis).
        if len < hlen {
            let _ = write!(self.buf, "bad-len {len}");
            return Ok(());
        }
        let ip = b.get(..len as usize).unwrap_or(b);
        let len = len - hlen;
        let off = be16(ip, 6)?;
        let proto = u8_at(ip, 9)?;
        let src = bytes::<4>(ip, 12)?;
        let dst = bytes::<4>(ip, 16)?;
        if self.fmt.verbose > 0 {
            let tos = u8_at(ip, 1)?;
            let _ = write!(self.buf, "(tos 0x{tos:x}");
            match tos & 3 {
                1 => self.buf.extend_from_slice(b",ECT(1)"),
                2 => self.buf.extend_from_slice(b",ECT(0)"),
                3 => self.buf.extend_from_slice(b",CE"),
                _ => {}
            }
            let ttl = u8_at(ip, 8)?;
            if ttl >= 1 {
                let _ = write!(self.buf, ", ttl {ttl}");
            }
            let _ = write!(
                self.buf,
                ", id {}, offset {}, flags [",
                be16(ip, 4)?,
                (off & 0x1fff) * 8
            );
            let mut any = false;
            for (bit, name) in [(0x2000u16, "+"), (0x4000, "DF"), (0x8000, "rsvd")] {
                if off & bit != 0 {
                    if any {
                        self.buf.extend_from_slice(b", ");
                    }
                    self.buf.extend_from_slice(name.as_bytes());
                    any = true;
                }
            }
            if !any {
                self.buf.extend_from_slice(b"none");
            }
            let pname = match proto {
                6 => "TCP",
                17 => "UDP",
                1 => "ICMP",
                _ => "unknown",
            };
            let _ = write!(self.buf, "], proto {pname} ({proto}), length {total}");
            let mut truncated = false;
            if hlen > 20 {
                self.buf.extend_from_slice(b", options (");
                if self.ip_options(ip, hlen as usize)?.is_err() {
                    self.buf.extend_from_slice(b" [truncated-option]");
                    truncated = true;
                }
                self.buf.push(b')');
            }
            if let Some(h) = ip.get(..hlen as usize) {
                let sum = cksum_result(sum16(h, 0));
                if sum != 0 {
                    let field = be16(ip, 10)?;
                    let _ = write!(
                        self.buf,
                        ", bad cksum {field:x} (->{:x})!",
                        shouldbe(field, sum)
                    );
                }
            }
            self.buf.extend_from_slice(b")\n    ");
            if truncated {
                ipv4(&mut self.buf, src);
                self.buf.extend_from_slice(b" > ");
                ipv4(&mut self.buf, dst);
                self.buf.extend_from_slice(b": ");
                return Err(Trunc);
            }
        }
        if off & 0x1fff == 0 {
            if ip.len() < hlen as usize {
                let _ = write!(
                    self.buf,
                    " [remaining caplen({}) < header length({hlen})]",
                    ip.len()
                );
                return Err(Trunc);
            }
            let tcp = ip.get(hlen as usize..).unwrap_or(&[]);
            self.tcp(IpCtx::V4(ip), tcp, len, off & 0x2000 != 0)
        } else {
            ipv4(&mut self.buf, src);
            self.buf.extend_from_slice(b" > ");
            ipv4(&mut self.buf, dst);
            let _ = write!(self.buf, ": ip-proto-{proto}");
            Ok(())
        }
    }

    /// `ip_optprint`; the inner `Err(())` is tcpdump's "truncated option" (-1).
    fn ip_options(&mut self, ip: &[u8], hlen: usize) -> Result<Result<(), ()>, Trunc> {
        let mut cp = 20usize;
        let mut length = hlen - 20;
        let mut sep = "";
        while length > 0 {
            self.buf.extend_from_slice(sep.as_bytes());
            sep = ",";
            let code = u8_at(ip, cp)?;
            let name = match code {
                0 => "EOL",
                1 => "NOP",
                68 => "timestamp",
                130 => "security",
                7 => "RR",
                137 => "SSRR",
                131 => "LSRR",
                148 => "RA",
                82 => "traceroute",
                _ => "",
            };
            if name.is_empty() {
                let _ = write!(self.buf, "unknown {code}");
            } else {
                self.buf.extend_from_slice(name.as_bytes());
            }
            let olen = if code == 0 || code == 1 {
                1
            } else {
                let l = usize::from(u8_at(ip, cp + 1)?);
                if l < 2 {
                    let _ = write!(self.buf, " [bad length {l}]");
                    return Ok(Ok(()));
                }
                l
            };
            if olen > length {
                let _ = write!(self.buf, " [bad length {olen}]");
                return Ok(Ok(()));
            }
            let Some(o) = ip.get(cp..cp + olen) else {
                return Ok(Err(()));
            };
            match code {
                0 => return Ok(Ok(())),
                7 | 131 | 137 => {
                    if olen < 3 {
                        let _ = write!(self.buf, " [bad length {olen}]");
                    } else {
                        if (olen + 1) & 3 != 0 {
                            let _ = write!(self.buf, " [bad length {olen}]");
                        }
                        let ptr = usize::from(o[2]).wrapping_sub(1);
                        // A pointer byte of 0 makes ptr wrap, as tcpdump's u_int does.
                        if ptr < 3 || ptr.wrapping_add(1) & 3 != 0 || ptr > olen + 1 {
                            let _ = write!(self.buf, " [bad ptr {}]", o[2]);
                        }
                        let mut l = 3;
                        while l < olen {
                            // tcpdump checks the captured packet here, not the option's end.
                            let Ok(a) = bytes::<4>(ip, cp + l) else {
                                return Ok(Err(()));
                            };
                            self.buf.push(b' ');
                            ipv4(&mut self.buf, a);
                            if ptr > l {
                                self.buf.push(b',');
                            }
                            l += 4;
                        }
                    }
                }
                148 => {
                    if olen < 4 {
                        let _ = write!(self.buf, " [bad length {olen}]");
                    } else {
                        let v = be16(o, 2)?;
                        if v != 0 {
                            let _ = write!(self.buf, " value {v}");
                        }
                    }
                }
                68 if self.ip_ts(ip.get(cp..).unwrap_or(o), olen)?.is_err() => {
                    return Ok(Err(()));
                }
                _ => {}
            }
            cp += olen;
            length -= olen;
        }
        Ok(Ok(()))
    }

    /// `ip_printts`; `o` runs from the option to the end of the captured packet, which is what
    /// tcpdump bounds its reads by (an option whose length is no multiple of the entry size is
    /// read past its end).
    fn ip_ts(&mut self, o: &[u8], length: usize) -> Result<Result<(), ()>, Trunc> {
        if length < 4 {
            let _ = write!(self.buf, "[bad length {length}]");
            return Ok(Ok(()));
        }
        self.buf.extend_from_slice(b" TS{");
        let flag = o[3] & 0xf;
        // Timestamps only (flag 0) are 4 bytes each; with addresses (1, 3) 8.
        let hoplen = if flag != 0 { 8 } else { 4 };
        if (length - 4) & (hoplen - 1) != 0 {
            let _ = write!(self.buf, "[bad length {length}]");
        }
        let ptr = usize::from(o[2]).wrapping_sub(1);
        let mut len = 0;
        if ptr < 4 || (ptr.wrapping_sub(4)) & (hoplen - 1) != 0 || ptr > length + 1 {
            let _ = write!(self.buf, "[bad ptr {}]", o[2]);
        }
        match flag {
            0 => self.buf.extend_from_slice(b"TSONLY"),
            1 => self.buf.extend_from_slice(b"TS+ADDR"),
            3 => self.buf.extend_from_slice(b"PRESPEC"),
            f => {
                let _ = write!(self.buf, "[bad ts type {f}]");
            }
        }
        if matches!(flag, 0 | 1 | 3) {
            let mut ty = " ";
            len = 4;
            while len < length {
                if ptr == len {
                    ty = " ^ ";
                }
                if o.get(len..len + hoplen).is_none() {
                    return Ok(Err(()));
                }
                let _ = write!(self.buf, "{ty}{}@", be32(o, len + hoplen - 4)?);
                if hoplen == 8 {
                    ipv4(&mut self.buf, bytes::<4>(o, len)?);
                }
                ty = " ";
                len += hoplen;
            }
        }
        if ptr == len {
            self.buf.extend_from_slice(b" ^ ");
        }
        if o[3] >> 4 != 0 {
            let _ = write!(self.buf, " [{} hops not recorded]}} ", o[3] >> 4);
        } else {
            self.buf.push(b'}');
        }
        Ok(Ok(()))
    }

    /// `ip6_print`.
    fn ip6(&mut self, net: &NetView<'_>) -> R {
        self.proto = "ip6";
        let b = net.bytes;
        let length = net.wire_len;
        if b.len() < 40 {
            return Err(Trunc);
        }
        if length < 40 {
            let _ = write!(self.buf, "truncated-ip6 {length}");
            return Ok(());
        }
        if !self.fmt.link_header {
            self.buf.extend_from_slice(b"IP6 ");
        }
        if b[0] >> 4 != 6 {
            let _ = write!(self.buf, "version error: {} != 6", b[0] >> 4);
            return Ok(());
        }
        let mut payload_len = u32::from(be16(b, 4)?);
        let mut len = if payload_len != 0 {
            let l = payload_len + 40;
            if length < l {
                let _ = write!(self.buf, "truncated-ip6 - {} bytes missing!", l - length);
            }
            l
        } else {
            // tcpdump's u_int arithmetic: a wire length near 2^32 wraps (and is then cut short).
            length.wrapping_add(40)
        };
        let mut nh = b[6];
        if self.fmt.verbose > 0 {
            let flow = be32(b, 0)?;
            self.buf.push(b'(');
            if flow & 0x0ff0_0000 != 0 {
                let _ = write!(self.buf, "class 0x{:02x}, ", (flow & 0x0ff0_0000) >> 20);
            }
            if flow & 0x000f_ffff != 0 {
                let _ = write!(self.buf, "flowlabel 0x{:05x}, ", flow & 0x000f_ffff);
            }
            let _ = write!(
                self.buf,
                "hlim {}, next-header {} ({nh}) payload length: {payload_len}) ",
                b[7],
                ip6_proto_name(nh)
            );
        }
        let ip6 = b.get(..len as usize).unwrap_or(b);
        let snap = ip6.len();
        let src = bytes::<16>(ip6, 8)?;
        let dst = bytes::<16>(ip6, 24)?;
        let mut cp = 0usize;
        let mut advance = 40usize;
        let mut total_advance = 0u32;
        let mut found_ext = false;
        let mut found_jumbo = false;
        let mut found_hbh = false;
        let mut fragmented = false;
        let mut ph = 255u8;
        // Every extension header is at least 8 bytes, so the walk ends within the packet.
        while cp < snap && advance > 0 {
            if (len as usize) < advance {
                return Err(Trunc);
            }
            cp += advance;
            len -= advance as u32;
            total_advance += advance as u32;
            if cp == 40 && !matches!(nh, 6 | 17 | 33 | 132) {
                ipv6(&mut self.buf, src);
                self.buf.extend_from_slice(b" > ");
                ipv6(&mut self.buf, dst);
                self.buf.extend_from_slice(b": ");
            }
            match nh {
                0 => {
                    if found_hbh {
                        self.buf.extend_from_slice(
                            b"[The Hop-by-Hop Options header was already found] (invalid)",
                        );
                        return Ok(());
                    }
                    if ph != 255 {
                        self.buf.extend_from_slice(
                            b"[The Hop-by-Hop Options header don't follow the IPv6 header] (invalid)",
                        );
                        return Ok(());
                    }
                    self.proto = "hbhopt";
                    let hl = (usize::from(u8_at(ip6, cp + 1)?) + 1) << 3;
                    let Some(opts) = ip6.get(cp + 2..cp + hl) else {
                        return Err(Trunc);
                    };
                    self.buf.extend_from_slice(b"HBH ");
                    let ok = self.ip6_opts(opts, true, &mut found_jumbo, &mut payload_len)?;
                    if payload_len == 0 && !found_jumbo {
                        self.buf.extend_from_slice(
                            b"[No valid Jumbo Payload Hop-by-Hop option found] (invalid)",
                        );
                        return Ok(());
                    }
                    if !ok {
                        return Err(Trunc);
                    }
                    advance = hl;
                    found_ext = true;
                    found_hbh = true;
                    nh = u8_at(ip6, cp)?;
                }
                60 => {
                    self.proto = "dstopt";
                    let hl = (usize::from(u8_at(ip6, cp + 1)?) + 1) << 3;
                    let Some(opts) = ip6.get(cp + 2..cp + hl) else {
                        return Err(Trunc);
                    };
                    self.buf.extend_from_slice(b"DSTOPT ");
                    if self.fmt.verbose > 0 {
                        let (mut j, mut p) = (false, 1u32);
                        if !self.ip6_opts(opts, false, &mut j, &mut p)? {
                            return Err(Trunc);
                        }
                    }
                    advance = hl;
                    found_ext = true;
                    nh = u8_at(ip6, cp)?;
                }
                44 => {
                    self.proto = "frag6";
                    let offlg = be16(ip6, cp + 2)?;
                    let flen = (40 + u32::from(be16(ip6, 4)?))
                        .wrapping_sub(cp as u32)
                        .wrapping_sub(8);
                    if self.fmt.verbose > 0 {
                        let _ = write!(
                            self.buf,
                            "frag (0x{:08x}:{}|{flen})",
                            be32(ip6, cp + 4)?,
                            offlg & 0xfff8
                        );
                    } else {
                        let _ = write!(self.buf, "frag ({}|{flen})", offlg & 0xfff8);
                    }
                    if offlg & 0xfff8 != 0 {
                        return Ok(());
                    }
                    self.buf.push(b' ');
                    advance = 8;
                    if snap <= cp + advance {
                        return Ok(());
                    }
                    found_ext = true;
                    nh = u8_at(ip6, cp)?;
                    fragmented = true;
                }
                43 => {
                    self.proto = "rt6";
                    u8_at(ip6, cp)?;
                    match self.rt6(ip6, cp)? {
                        Some(a) => advance = a,
                        None => return Ok(()),
                    }
                    found_ext = true;
                    nh = u8_at(ip6, cp)?;
                }
                6 => {
                    if found_jumbo {
                        // A jumbo length near 2^32 wraps, as tcpdump's u_int does.
                        len = payload_len.wrapping_add(40);
                        if len < total_advance {
                            return Err(Trunc);
                        }
                        if length < len {
                            let _ =
                                write!(self.buf, "truncated-ip6 - {} bytes missing!", len - length);
                        }
                        len -= total_advance;
                    } else if payload_len == 0 {
                        if found_ext {
                            return Err(Trunc);
                        }
                        len = 0;
                    }
                    let tcp = ip6.get(cp..).unwrap_or(&[]);
                    let tcp = if found_jumbo {
                        b.get(cp..(payload_len as usize + 40).max(cp))
                            .unwrap_or(tcp)
                    } else if payload_len == 0 {
                        // tcpdump cuts the snapshot at the IPv6 header: no TCP byte is left.
                        &[]
                    } else {
                        tcp
                    };
                    let ctx = if found_jumbo { b } else { ip6 };
                    return self.tcp(IpCtx::V6(ctx), tcp, len, fragmented);
                }
                // Other protocols are never passed here (the frame would not be TCP).
                _ => return Ok(()),
            }
            ph = nh;
            self.proto = "ip6";
        }
        Ok(())
    }

    /// `ip6_opt_process`; returns false for tcpdump's "truncated" (-1).
    fn ip6_opts(
        &mut self,
        o: &[u8],
        hbh: bool,
        found_jumbo: &mut bool,
        payload_len: &mut u32,
    ) -> Result<bool, Trunc> {
        let v = self.fmt.verbose > 0;
        let len = o.len();
        if len == 0 {
            return Ok(true);
        }
        let mut seen_jumbo = false;
        let mut i = 0;
        while i < len {
            let t = o[i];
            let optlen = if t == 0 {
                1
            } else if i + 1 < len {
                usize::from(o[i + 1]) + 2
            } else {
                return Ok(false);
            };
            if i + optlen > len {
                return Ok(false);
            }
            match t {
                0 => {
                    if v {
                        self.buf.extend_from_slice(b"(pad1)");
                    }
                }
                1 => {
                    if len - i < 2 {
                        self.buf.extend_from_slice(b"(padn: trunc)");
                        return Ok(false);
                    }
                    if v {
                        self.buf.extend_from_slice(b"(padn)");
                    }
                }
                5 => {
                    if len - i < 4 {
                        self.buf.extend_from_slice(b"(rtalert: trunc)");
                        return Ok(false);
                    }
                    if o[i + 1] != 2 {
                        let _ = write!(self.buf, "(rtalert: invalid len {})", o[i + 1]);
                        return Ok(false);
                    }
                    if v {
                        let _ = write!(self.buf, "(rtalert: 0x{:04x}) ", be16(o, i + 2)?);
                    }
                }
                0xc2 => {
                    if len - i < 6 {
                        self.buf.extend_from_slice(b"(jumbo: trunc)");
                        return Ok(false);
                    }
                    if o[i + 1] != 4 {
                        let _ = write!(self.buf, "(jumbo: invalid len {})", o[i + 1]);
                        return Ok(false);
                    }
                    let jl = be32(o, i + 2)?;
                    if seen_jumbo {
                        if v {
                            let _ = write!(self.buf, "(jumbo: {jl} - already seen) ");
                        }
                    } else {
                        seen_jumbo = true;
                        if !hbh {
                            if v {
                                let _ =
                                    write!(self.buf, "(jumbo: {jl} - not a hop-by-hop option) ");
                            }
                        } else if *payload_len != 0 {
                            if v {
                                let _ = write!(self.buf, "(jumbo: {jl} - payload len != 0) ");
                            }
                        } else if jl < 65536 {
                            if v {
                                let _ = write!(self.buf, "(jumbo: {jl} - < 65536) ");
                            }
                        } else {
                            *found_jumbo = true;
                            *payload_len = jl;
                            if v {
                                let _ = write!(self.buf, "(jumbo: {jl}) ");
                            }
                        }
                    }
                }
                0xc9 => {
                    if len - i < 18 {
                        self.buf.extend_from_slice(b"(homeaddr: trunc)");
                        return Ok(false);
                    }
                    if o[i + 1] < 16 {
                        let _ = write!(self.buf, "(homeaddr: invalid len {})", o[i + 1]);
                        return Ok(false);
                    }
                    if v {
                        self.buf.extend_from_slice(b"(homeaddr: ");
                        ipv6(&mut self.buf, bytes::<16>(o, i + 2)?);
                        if o[i + 1] > 16 && !self.ip6_sopts(&o[i + 18..i + optlen]) {
                            return Ok(false);
                        }
                        self.buf.push(b')');
                    }
                }
                t => {
                    if len - i < 2 {
                        let _ = write!(self.buf, "(type {t}: trunc)");
                        return Ok(false);
                    }
                    if v {
                        let _ = write!(self.buf, "(opt_type 0x{t:02x}: len={})", o[i + 1]);
                    }
                }
            }
            i += optlen;
        }
        if v {
            self.buf.push(b' ');
        }
        Ok(true)
    }

    /// `ip6_sopt_print`.
    fn ip6_sopts(&mut self, o: &[u8]) -> bool {
        let len = o.len();
        let mut i = 0;
        while i < len {
            let optlen = if o[i] == 0 {
                1
            } else if i + 1 < len {
                usize::from(o[i + 1]) + 2
            } else {
                return false;
            };
            if i + optlen > len {
                return false;
            }
            match o[i] {
                0 => self.buf.extend_from_slice(b", pad1"),
                1 => {
                    if len - i < 2 {
                        self.buf.extend_from_slice(b", padn: trunc");
                        return false;
                    }
                    self.buf.extend_from_slice(b", padn");
                }
                t => {
                    if len - i < 2 {
                        let _ = write!(self.buf, ", sopt_type {t}: trunc)");
                        return false;
                    }
                    let _ = write!(self.buf, ", sopt_type 0x{t:02x}: len={}", o[i + 1]);
                }
            }
            i += optlen;
        }
        true
    }

    /// `rt6_print`: the header's length, or None when tcpdump stops (invalid).
    fn rt6(&mut self, ip6: &[u8], cp: usize) -> Result<Option<usize>, Trunc> {
        self.buf.extend_from_slice(b"RT6");
        let len = usize::from(u8_at(ip6, cp + 1)?);
        let _ = write!(self.buf, " (len={len}");
        let ty = u8_at(ip6, cp + 2)?;
        let _ = write!(self.buf, ", type={ty}");
        if ty == 0 {
            self.buf.extend_from_slice(b" [Deprecated]");
        }
        let _ = write!(self.buf, ", segleft={}", u8_at(ip6, cp + 3)?);
        let first = match ty {
            0 | 2 => {
                let rsv = be32(ip6, cp + 4)?;
                if rsv != 0 || self.fmt.verbose > 0 {
                    let _ = write!(self.buf, ", rsv=0x{rsv:x}");
                }
                cp + 8
            }
            4 => {
                let _ = write!(self.buf, ", last-entry={}", u8_at(ip6, cp + 4)?);
                let flags = u8_at(ip6, cp + 5)?;
                if flags != 0 || self.fmt.verbose > 0 {
                    let _ = write!(self.buf, ", flags=0x{flags:x}");
                }
                let _ = write!(self.buf, ", tag={:x}", be16(ip6, cp + 6)?);
                cp + 8
            }
            _ => {
                self.buf.extend_from_slice(b" (unknown type) (invalid)");
                return Ok(None);
            }
        };
        if len % 2 == 1 {
            let _ = write!(self.buf, " (invalid length {len}) (invalid)");
            return Ok(None);
        }
        for i in 0..len / 2 {
            let _ = write!(self.buf, ", [{i}]");
            ipv6(&mut self.buf, bytes::<16>(ip6, first + 16 * i)?);
        }
        self.buf.extend_from_slice(b") ");
        Ok(Some((len + 1) << 3))
    }

    /// `tcp_print`. `tp` holds the captured bytes from the TCP header to the end of the IP
    /// payload; `length` is the segment length by the IP header.
    fn tcp(&mut self, ip: IpCtx<'_>, tp: &[u8], length: u32, fragmented: bool) -> R {
        self.proto = "tcp";
        let (v6, src, dst, nxt_tcp): (bool, &[u8], &[u8], bool) = match ip {
            IpCtx::V4(h) => (
                false,
                h.get(12..16).ok_or(Trunc)?,
                h.get(16..20).ok_or(Trunc)?,
                true,
            ),
            IpCtx::V6(h) => (
                true,
                h.get(8..24).ok_or(Trunc)?,
                h.get(24..40).ok_or(Trunc)?,
                h.get(6) == Some(&6),
            ),
        };
        let addr = |out: &mut Vec<u8>, a: &[u8]| {
            if let Ok(a) = <[u8; 16]>::try_from(a) {
                ipv6(out, a);
            } else if let Ok(a) = <[u8; 4]>::try_from(a) {
                ipv4(out, a);
            }
        };
        if tp.len() < 4 {
            addr(&mut self.buf, src);
            self.buf.extend_from_slice(b" > ");
            addr(&mut self.buf, dst);
            self.buf.extend_from_slice(b": [|tcp]");
            return Ok(());
        }
        let sport = be16(tp, 0)?;
        let dport = be16(tp, 2)?;
        if nxt_tcp {
            addr(&mut self.buf, src);
            self.buf.push(b'.');
            dec(&mut self.buf, sport);
            self.buf.extend_from_slice(b" > ");
            addr(&mut self.buf, dst);
            self.buf.push(b'.');
            dec(&mut self.buf, dport);
            self.buf.extend_from_slice(b": ");
        } else {
            dec(&mut self.buf, sport);
            self.buf.extend_from_slice(b" > ");
            dec(&mut self.buf, dport);
            self.buf.extend_from_slice(b": ");
        }
        if tp.len() < 20 {
            self.buf.extend_from_slice(b" [|tcp]");
            return Ok(());
        }
        let hlen = u32::from(tp[12] >> 4) * 4;
        if hlen < 20 {
            let _ = write!(
                self.buf,
                " tcp {} [bad hdr length {hlen} - too short, < 20]",
                length.wrapping_sub(hlen)
            );
            return Ok(());
        }
        let mut seq = be32(tp, 4)?;
        let mut ack = be32(tp, 8)?;
        let win = be16(tp, 14)?;
        let urp = be16(tp, 18)?;
        let flags = tp[13];
        self.buf.extend_from_slice(b"Flags [");
        if flags == 0 {
            self.buf.extend_from_slice(b"none");
        }
        let (text, n) = FLAG_TEXT[usize::from(flags)];
        // Without the `]`.
        self.buf.put(text, usize::from(n) - 1);
        self.buf.push(b']');
        let (mut rev, mut th_seq, mut th_ack) = (false, 0, 0);
        if !self.fmt.absolute && flags & 0x10 != 0 {
            let r = self
                .seq
                .relative(v6, src, dst, sport, dport, seq, ack, flags & 0x02 != 0);
            (seq, ack, rev, th_seq, th_ack) = (r.seq, r.ack, r.rev, r.th_seq, r.th_ack);
        }
        if hlen > length {
            let _ = write!(self.buf, " [bad hdr length {hlen} - too long, > {length}]");
            return Ok(());
        }
        if self.fmt.verbose > 0
            && !fragmented
            && let Some(seg) = tp.get(..length as usize)
        {
            let sum = cksum_result(sum16(seg, self.pseudo(ip, length)));
            let field = be16(tp, 16)?;
            let _ = write!(self.buf, ", cksum 0x{field:04x}");
            if sum != 0 {
                let _ = write!(self.buf, " (incorrect -> 0x{:04x})", shouldbe(field, sum));
            } else {
                self.buf.extend_from_slice(b" (correct)");
            }
        }
        let length = length - hlen;
        if self.fmt.verbose > 1 || length > 0 || flags & 0x07 != 0 {
            self.buf.extend_from_slice(b", seq ");
            dec(&mut self.buf, seq);
            if length > 0 {
                self.buf.push(b':');
                dec(&mut self.buf, seq.wrapping_add(length));
            }
        }
        if flags & 0x10 != 0 {
            self.buf.extend_from_slice(b", ack ");
            dec(&mut self.buf, ack);
        }
        self.buf.extend_from_slice(b", win ");
        dec(&mut self.buf, win);
        if flags & 0x20 != 0 {
            self.buf.extend_from_slice(b", urg ");
            dec(&mut self.buf, urp);
        }
        if hlen > 20 {
            self.buf.extend_from_slice(b", options [");
            let mut ch = false;
            let r = self.tcp_options(tp, hlen, length, flags, rev, th_seq, th_ack, &mut ch);
            match r {
                Ok(()) => self.buf.push(b']'),
                Err(Stop::Bad) => {
                    self.buf.extend_from_slice(b"[bad opt]");
                    if ch {
                        self.buf.push(b']');
                    }
                    return Ok(());
                }
                Err(Stop::Local) => {
                    let _ = write!(self.buf, " [|{}]", self.proto);
                    if ch {
                        self.buf.push(b'>');
                    }
                    return Ok(());
                }
                Err(Stop::Jump) => return Err(Trunc),
            }
        }
        self.buf.extend_from_slice(b", length ");
        dec(&mut self.buf, length);
        if length == 0 {
            return Ok(());
        }
        if tp.len() < hlen as usize {
            let _ = write!(
                self.buf,
                " [remaining caplen({}) < header length({hlen})]",
                tp.len()
            );
            return Err(Trunc);
        }
        if flags & 0x04 != 0 && self.fmt.verbose > 0 {
            let data = &tp[hlen as usize..];
            let all = data.len() >= length as usize;
            self.buf
                .extend_from_slice(if all { b" [RST" } else { b" [!RST" });
            let mut n = length as usize;
            if n > 30 {
                n = 30;
                self.buf.push(b'+');
            }
            self.buf.push(b' ');
            for &c in data.iter().take(n) {
                print_char(&mut self.buf, c);
            }
            self.buf.push(b']');
        }
        Ok(())
    }

    /// The pseudo-header sum for the TCP checksum (final destination of a source route).
    fn pseudo(&self, ip: IpCtx<'_>, len: u32) -> u64 {
        match ip {
            IpCtx::V4(h) => {
                let dst = ip4_final_dst(h);
                let acc = sum16(h.get(12..16).unwrap_or(&[]), 0);
                let acc = sum16(&dst, acc);
                acc + 6 + u64::from(len as u16)
            }
            IpCtx::V6(h) => {
                let dst = ip6_final_dst(h);
                let acc = sum16(h.get(8..24).unwrap_or(&[]), 0);
                let acc = sum16(&dst, acc);
                acc + u64::from(len >> 16) + u64::from(len & 0xffff) + 6
            }
        }
    }

    /// The TCP option list, as print-tcp.c walks it.
    #[allow(clippy::too_many_arguments)]
    fn tcp_options(
        &mut self,
        tp: &[u8],
        hlen: u32,
        payload: u32,
        flags: u8,
        rev: bool,
        th_seq: u32,
        th_ack: u32,
        ch: &mut bool,
    ) -> Result<(), Stop> {
        // Most segments carry exactly nop, nop, timestamps: the loop below prints them the
        // same way, one option at a time.
        if let (32, Some(&[1, 1, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3])) = (hlen, tp.get(20..32)) {
            self.buf.extend_from_slice(b"nop,nop,TS val ");
            dec(&mut self.buf, u32::from_be_bytes([v0, v1, v2, v3]));
            self.buf.extend_from_slice(b" ecr ");
            dec(&mut self.buf, u32::from_be_bytes([e0, e1, e2, e3]));
            *ch = true;
            return Ok(());
        }
        let mut hl = hlen as usize - 20;
        let mut cp = 20usize;
        while hl > 0 {
            if *ch {
                self.buf.push(b',');
            }
            let opt = u8_at(tp, cp)?;
            cp += 1;
            let zerolen = opt == 0 || opt == 1;
            let len = if zerolen {
                1
            } else {
                let l = usize::from(u8_at(tp, cp)?);
                cp += 1;
                if l < 2 || l > hl {
                    return Err(Stop::Bad);
                }
                hl -= 1;
                l
            };
            hl -= 1;
            // LENCHECK: `l` data bytes must be inside the header and captured.
            let lencheck = |l: usize| -> Result<(), Stop> {
                if l > hl {
                    Err(Stop::Bad)
                } else if tp.len() < cp + l {
                    Err(Stop::Local)
                } else {
                    Ok(())
                }
            };
            let name = match opt {
                0 => "eol",
                1 => "nop",
                2 => "mss",
                3 => "wscale",
                4 => "sackOK",
                5 => "sack",
                6 => "echo",
                7 => "echoreply",
                8 => "TS",
                11 => "cc",
                12 => "ccnew",
                13 => "",
                19 => "md5",
                20 => "scps",
                28 => "uto",
                29 => "tcp-ao",
                30 => "mptcp",
                34 => "tfo",
                254 => "exp",
                _ => "?",
            };
            if name == "?" {
                let _ = write!(self.buf, "unknown-{opt}");
            } else {
                self.buf.extend_from_slice(name.as_bytes());
            }
            let mut datalen = 0usize;
            match opt {
                2 => {
                    datalen = 2;
                    lencheck(2)?;
                    let mss = be16(tp, cp)?;
                    self.buf.push(b' ');
                    dec(&mut self.buf, mss);
                }
                3 => {
                    datalen = 1;
                    lencheck(1)?;
                    let shift = u8_at(tp, cp)?;
                    self.buf.push(b' ');
                    dec(&mut self.buf, shift);
                }
                5 => {
                    datalen = len - 2;
                    if !datalen.is_multiple_of(8) {
                        self.buf.extend_from_slice(b" invalid sack");
                    } else {
                        self.buf.push(b' ');
                        dec(&mut self.buf, (datalen / 8) as u32);
                        self.buf.push(b' ');
                        let mut i = 0;
                        while i < datalen {
                            lencheck(i + 4)?;
                            let mut s = be32(tp, cp + i)?;
                            lencheck(i + 8)?;
                            let mut e = be32(tp, cp + i + 4)?;
                            let base = if rev { th_seq } else { th_ack };
                            s = s.wrapping_sub(base);
                            e = e.wrapping_sub(base);
                            self.buf.push(b'{');
                            dec(&mut self.buf, s);
                            self.buf.push(b':');
                            dec(&mut self.buf, e);
                            self.buf.push(b'}');
                            i += 8;
                        }
                    }
                }
                6 | 7 | 11 | 12 | 13 => {
                    datalen = 4;
                    lencheck(4)?;
                    let _ = write!(self.buf, " {}", be32(tp, cp)?);
                }
                8 => {
                    datalen = 8;
                    lencheck(8)?;
                    let (val, ecr) = (be32(tp, cp)?, be32(tp, cp + 4)?);
                    self.buf.extend_from_slice(b" val ");
                    dec(&mut self.buf, val);
                    self.buf.extend_from_slice(b" ecr ");
                    dec(&mut self.buf, ecr);
                }
                19 => {
                    datalen = 16;
                    lencheck(16)?;
                    // tcpdump built with libcrypto tries to verify; with no -M secret it
                    // cannot, and says why.
                    if tp.len() < hlen as usize + payload as usize {
                        self.buf.extend_from_slice(b" snaplen too short, ");
                    } else {
                        self.buf
                            .extend_from_slice(b" shared secret not supplied with -M, ");
                    }
                    self.buf.extend_from_slice(b"can't check - ");
                    for i in 0..16 {
                        let _ = write!(self.buf, "{:02x}", u8_at(tp, cp + i)?);
                    }
                }
                20 => {
                    datalen = 2;
                    lencheck(2)?;
                    let _ = write!(
                        self.buf,
                        " cap {:02x} id {}",
                        u8_at(tp, cp)?,
                        u8_at(tp, cp + 1)?
                    );
                }
                29 => {
                    datalen = len - 2;
                    if datalen < 2 {
                        self.buf.extend_from_slice(b" (invalid)");
                    } else {
                        lencheck(1)?;
                        let _ = write!(self.buf, " keyid {}", u8_at(tp, cp)?);
                        lencheck(2)?;
                        let _ = write!(self.buf, " rnextkeyid {}", u8_at(tp, cp + 1)?);
                        if datalen > 2 {
                            self.buf.extend_from_slice(b" mac 0x");
                            for i in 2..datalen {
                                lencheck(i + 1)?;
                                let _ = write!(self.buf, "{:02x}", u8_at(tp, cp + i)?);
                            }
                        }
                    }
                }
                28 => {
                    datalen = 2;
                    lencheck(2)?;
                    let v = u32::from(be16(tp, cp)?);
                    let _ = write!(self.buf, " 0x{v:x}");
                    let u = if v & 1 != 0 { (v >> 1) * 60 } else { v >> 1 };
                    let _ = write!(self.buf, " {u}");
                }
                30 => {
                    datalen = len - 2;
                    lencheck(datalen)?;
                    let o = tp.get(cp - 2..cp - 2 + len).unwrap_or(&[]);
                    if !self.mptcp(o, flags)? {
                        return Err(Stop::Bad);
                    }
                }
                34 => {
                    datalen = len - 2;
                    lencheck(datalen)?;
                    self.buf.push(b' ');
                    self.fastopen(tp.get(cp..cp + datalen).unwrap_or(&[]), false);
                }
                254 => {
                    datalen = len - 2;
                    lencheck(datalen)?;
                    if datalen < 2 {
                        return Err(Stop::Bad);
                    }
                    let magic = be16(tp, cp)?;
                    self.buf.push(b'-');
                    if magic == 0xf989 {
                        self.fastopen(tp.get(cp + 2..cp + datalen).unwrap_or(&[]), true);
                    } else {
                        let _ = write!(self.buf, "{magic:04x}");
                    }
                }
                0 | 1 | 4 => {}
                _ => {
                    datalen = len - 2;
                    if datalen > 0 {
                        self.buf.extend_from_slice(b" 0x");
                    }
                    for i in 0..datalen {
                        lencheck(i + 1)?;
                        let _ = write!(self.buf, "{:02x}", u8_at(tp, cp + i)?);
                    }
                }
            }
            cp += datalen;
            hl -= datalen;
            let mut seen = datalen + 1;
            if !zerolen {
                seen += 1;
            }
            if seen != len {
                let _ = write!(self.buf, "[len {len}]");
            }
            *ch = true;
            if opt == 0 {
                break;
            }
        }
        Ok(())
    }

    fn fastopen(&mut self, data: &[u8], exp: bool) {
        if exp {
            self.buf.extend_from_slice(b"tfo");
        }
        let n = data.len();
        if n == 0 {
            self.buf.extend_from_slice(b" cookiereq");
        } else if !n.is_multiple_of(2) || !(4..=16).contains(&n) {
            self.buf.extend_from_slice(b" (invalid)");
        } else {
            self.buf.extend_from_slice(b" cookie ");
            for b in data {
                let _ = write!(self.buf, "{b:02x}");
            }
        }
    }

    /// `mptcp_print`: `o` is the whole option (kind and length included, cut to what was
    /// captured). Returns false where tcpdump returns 0 (`[bad opt]`).
    fn mptcp(&mut self, o: &[u8], flags: u8) -> Result<bool, Trunc> {
        self.proto = "mptcp";
        let len = usize::from(u8_at(o, 1).unwrap_or(0));
        if len < 3 {
            return Ok(false);
        }
        let sub = (u8_at(o, 2)? >> 4).min(8);
        let names = [
            "capable",
            "join",
            "dss",
            "add-addr",
            "rem-addr",
            "prio",
            "fail",
            "fast-close",
            "unknown",
        ];
        let _ = write!(self.buf, " {len} {}", names[usize::from(sub)]);
        let (syn, ack) = (flags & 0x02 != 0, flags & 0x10 != 0);
        Ok(match sub {
            0 => {
                if !(((len == 12 || len == 4) && syn) || ((len == 20 || len == 22) && ack && !syn))
                {
                    return Ok(false);
                }
                let ver = u8_at(o, 2)? & 0xf;
                if ver > 1 {
                    let _ = write!(self.buf, " Unknown Version ({ver})");
                    return Ok(true);
                }
                let _ = write!(self.buf, " v{ver}");
                if u8_at(o, 3)? & 0x80 != 0 {
                    self.buf.extend_from_slice(b" csum");
                }
                if len == 12 || len >= 20 {
                    let _ = write!(self.buf, " {{0x{:x}", be64(o, 4)?);
                    if len >= 20 {
                        let _ = write!(self.buf, ",0x{:x}", be64(o, 12)?);
                    }
                    self.buf.push(b'}');
                }
                true
            }
            1 => {
                if !((len == 12 && syn) || (len == 16 && syn && ack) || (len == 24 && ack)) {
                    return Ok(false);
                }
                if len != 24 {
                    if u8_at(o, 2)? & 1 != 0 {
                        self.buf.extend_from_slice(b" backup");
                    }
                    let _ = write!(self.buf, " id {}", u8_at(o, 3)?);
                }
                match len {
                    12 => {
                        let _ = write!(
                            self.buf,
                            " token 0x{:x} nonce 0x{:x}",
                            be32(o, 4)?,
                            be32(o, 8)?
                        );
                    }
                    16 => {
                        let _ = write!(
                            self.buf,
                            " hmac 0x{:x} nonce 0x{:x}",
                            be64(o, 4)?,
                            be32(o, 12)?
                        );
                    }
                    _ => {
                        self.buf.extend_from_slice(b" hmac 0x");
                        for i in 0..20 {
                            let _ = write!(self.buf, "{:02x}", o.get(4 + i).copied().unwrap_or(0));
                        }
                    }
                }
                true
            }
            2 => self.mp_dss(o, len, syn)?,
            3 => {
                if ![8, 10, 16, 18, 20, 22, 28, 30].contains(&len) {
                    return Ok(false);
                }
                let echo = match u8_at(o, 2)? & 0xf {
                    6 => "v0-ip6",
                    4 => "v0-ip4",
                    1 => "v1-echo",
                    0 => "v1",
                    _ => "[bad version/echo]",
                };
                let _ = write!(self.buf, " {echo} id {}", u8_at(o, 3)?);
                if len <= 18 {
                    self.buf.push(b' ');
                    ipv4(&mut self.buf, bytes::<4>(o, 4)?);
                    if len == 10 || len == 18 {
                        let _ = write!(self.buf, ":{}", be16(o, 8)?);
                    }
                    if len == 16 {
                        let _ = write!(self.buf, " hmac 0x{:x}", be64(o, 8)?);
                    }
                    if len == 18 {
                        let _ = write!(self.buf, " hmac 0x{:x}", be64(o, 10)?);
                    }
                } else {
                    self.buf.push(b' ');
                    ipv6(&mut self.buf, bytes::<16>(o, 4)?);
                    if len == 22 || len == 30 {
                        let _ = write!(self.buf, ":{}", be16(o, 20)?);
                    }
                    if len == 28 {
                        let _ = write!(self.buf, " hmac 0x{:x}", be64(o, 20)?);
                    }
                    if len == 30 {
                        let _ = write!(self.buf, " hmac 0x{:x}", be64(o, 22)?);
                    }
                }
                true
            }
            4 => {
                if len < 4 {
                    return Ok(false);
                }
                self.buf.extend_from_slice(b" id");
                for i in 0..len - 3 {
                    let _ = write!(self.buf, " {}", u8_at(o, 3 + i)?);
                }
                true
            }
            5 => {
                if len != 3 && len != 4 {
                    return Ok(false);
                }
                if u8_at(o, 2)? & 1 != 0 {
                    self.buf.extend_from_slice(b" backup");
                } else {
                    self.buf.extend_from_slice(b" non-backup");
                }
                if len == 4 {
                    let _ = write!(self.buf, " id {}", u8_at(o, 3)?);
                }
                true
            }
            6 | 7 => {
                if len != 12 {
                    return Ok(false);
                }
                let what = if sub == 6 { "seq" } else { "key 0x" };
                if sub == 6 {
                    let _ = write!(self.buf, " {what} {}", be64(o, 4)?);
                } else {
                    let _ = write!(self.buf, " {what}{:x}", be64(o, 4)?);
                }
                true
            }
            _ => true,
        })
    }

    fn mp_dss(&mut self, o: &[u8], len: usize, syn: bool) -> Result<bool, Trunc> {
        if len < 4 || syn {
            return Ok(false);
        }
        let f = u8_at(o, 3)?;
        if f & 0x10 != 0 {
            self.buf.extend_from_slice(b" fin");
        }
        let mut p = 4usize;
        let mut rem = len - 4;
        if f & 0x01 != 0 {
            self.buf.extend_from_slice(b" ack ");
            if !self.mp_dss_number(o, &mut p, &mut rem, f & 0x02 != 0)? {
                return Ok(false);
            }
        }
        if f & 0x04 != 0 {
            self.buf.extend_from_slice(b" seq ");
            if !self.mp_dss_number(o, &mut p, &mut rem, f & 0x08 != 0)? {
                return Ok(false);
            }
            if rem < 4 {
                return Ok(false);
            }
            let _ = write!(self.buf, " subseq {}", be32(o, p)?);
            p += 4;
            rem -= 4;
            if rem < 2 {
                return Ok(false);
            }
            let _ = write!(self.buf, " len {}", be16(o, p)?);
            p += 2;
            rem -= 2;
            if rem >= 2 {
                let _ = write!(self.buf, " csum 0x{:x}", be16(o, p)?);
                rem -= 2;
            }
        }
        Ok(rem == 0)
    }

    /// A DSS data ACK or sequence number at `p`: 8 bytes when `wide`, else 4. `false` when the
    /// option has too few bytes left (tcpdump then prints `[bad opt]`).
    fn mp_dss_number(
        &mut self,
        o: &[u8],
        p: &mut usize,
        rem: &mut usize,
        wide: bool,
    ) -> Result<bool, Trunc> {
        let n = if wide { 8 } else { 4 };
        if *rem < n {
            return Ok(false);
        }
        let _ = if wide {
            write!(self.buf, "{}", be64(o, *p)?)
        } else {
            write!(self.buf, "{}", be32(o, *p)?)
        };
        *p += n;
        *rem -= n;
        Ok(true)
    }
}

/// The name of an interface index on this host (tcpdump's `if_indextoname`), or `?`.
fn ifname(cache: &mut Option<Vec<(u32, String)>>, index: u32) -> &str {
    let names = cache.get_or_insert_with(|| {
        let mut v = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
            for ent in dir.flatten().take(4096) {
                let idx = std::fs::read_to_string(ent.path().join("ifindex"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                if let (Some(i), Some(n)) = (idx, ent.file_name().to_str()) {
                    v.push((i, n.to_owned()));
                }
            }
        }
        v
    });
    names
        .iter()
        .find(|(i, _)| *i == index)
        .map_or("?", |(_, n)| n.as_str())
}

fn ip6_proto_name(nh: u8) -> &'static str {
    // tcpdump 4.99's `ipproto_values`: destination options (60) and "no next header" (59)
    // have no name there.
    match nh {
        0 => "Options",
        6 => "TCP",
        17 => "UDP",
        41 => "IPv6",
        43 => "Routing",
        44 => "Fragment",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        135 => "Mobility",
        _ => "unknown",
    }
}

/// `ip_finddst`: the last address of a loose or strict source route, else the destination.
fn ip4_final_dst(h: &[u8]) -> [u8; 4] {
    let dst = bytes::<4>(h, 16).unwrap_or([0; 4]);
    let hlen = usize::from(h.first().map_or(0, |b| b & 0x0f)) * 4;
    if hlen <= 20 {
        return dst;
    }
    let mut cp = 20;
    while cp < hlen {
        let Some(&tt) = h.get(cp) else { return dst };
        let len = match tt {
            0 => break,
            1 => 1,
            _ => match h.get(cp + 1) {
                Some(&l) if l >= 2 => usize::from(l),
                _ => break,
            },
        };
        if hlen - cp < len || h.len() < cp + len {
            return dst;
        }
        if (tt == 131 || tt == 137) && len >= 7 {
            return bytes::<4>(h, cp + len - 4).unwrap_or(dst);
        }
        cp += len;
    }
    dst
}

/// `ip6_finddst`: the final destination named by a routing header, else the destination.
fn ip6_final_dst(h: &[u8]) -> [u8; 16] {
    let mut dst = bytes::<16>(h, 24).unwrap_or([0; 16]);
    let mut nh = h.get(6).copied().unwrap_or(59);
    let mut cp = 40usize;
    for _ in 0..crate::decode::ip::MAX_EXT_HEADERS {
        match nh {
            0 | 60 | 135 | 62 => {
                let (Some(&n), Some(&l)) = (h.get(cp), h.get(cp + 1)) else {
                    break;
                };
                nh = n;
                cp += (usize::from(l) + 1) << 3;
            }
            44 => {
                let Some(&n) = h.get(cp) else { break };
                nh = n;
                cp += 8;
            }
            43 => {
                let (Some(&len), Some(&ty)) = (h.get(cp + 1), h.get(cp + 2)) else {
                    break;
                };
                match ty {
                    0 | 2 if len % 2 == 0 => {
                        for i in 0..usize::from(len / 2) {
                            match bytes::<16>(h, cp + 8 + 16 * i) {
                                Ok(a) => dst = a,
                                Err(_) => break,
                            }
                        }
                    }
                    4 if len % 2 == 0 => {
                        if let Ok(a) = bytes::<16>(h, cp + 8) {
                            dst = a;
                        }
                    }
                    _ => {}
                }
                break;
            }
            _ => break,
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(a: [u16; 8]) -> String {
        let mut b = [0u8; 16];
        for (i, w) in a.iter().enumerate() {
            b[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
        }
        let mut out = Vec::new();
        ipv6(&mut out, b);
        String::from_utf8(out).unwrap()
    }

    /// The previous `ipv6`, a plain transcription of tcpdump's `addrtostr6`: the truth the
    /// branch-light one must match.
    fn ipv6_reference(out: &mut Vec<u8>, a: [u8; 16]) {
        let mut w = [0u16; 8];
        for (i, x) in w.iter_mut().enumerate() {
            *x = u16::from_be_bytes([a[2 * i], a[2 * i + 1]]);
        }
        let (mut best, mut best_len) = (None::<usize>, 0usize);
        let (mut cur, mut cur_len) = (None::<usize>, 0usize);
        for (i, &x) in w.iter().enumerate() {
            if x == 0 {
                if cur.is_none() {
                    cur = Some(i);
                    cur_len = 1;
                } else {
                    cur_len += 1;
                }
            } else if let Some(c) = cur {
                if best.is_none() || cur_len > best_len {
                    best = Some(c);
                    best_len = cur_len;
                }
                cur = None;
            }
        }
        if let Some(c) = cur
            && (best.is_none() || cur_len > best_len)
        {
            best = Some(c);
            best_len = cur_len;
        }
        if best_len < 2 {
            best = None;
        }
        for i in 0..8 {
            if let Some(b) = best
                && i >= b
                && i < b + best_len
            {
                if i == b {
                    out.push(b':');
                }
                continue;
            }
            if i != 0 {
                out.push(b':');
            }
            if i == 6 && best == Some(0) && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
                ipv4(out, [a[12], a[13], a[14], a[15]]);
                return;
            }
            out.extend_from_slice(format!("{:x}", w[i]).as_bytes());
        }
        if best.is_some_and(|b| b + best_len == 8) {
            out.push(b':');
        }
    }

    #[test]
    fn ipv6_matches_the_reference_on_every_zero_pattern() {
        let (mut got, mut want) = (Vec::new(), Vec::new());
        // Each group from {0, 1, 0xffff, 0xabc}: every placement of zero runs, and the
        // IPv4-mapped and -compatible shapes.
        for code in 0..4u32.pow(8) {
            let w: [u16; 8] =
                std::array::from_fn(|i| [0, 1, 0xffff, 0xabc][(code >> (2 * i) & 3) as usize]);
            let mut a = [0u8; 16];
            for (i, x) in w.iter().enumerate() {
                a[2 * i..2 * i + 2].copy_from_slice(&x.to_be_bytes());
            }
            got.clear();
            want.clear();
            ipv6(&mut got, a);
            ipv6_reference(&mut want, a);
            assert_eq!(got, want, "{w:x?}");
        }
    }

    #[test]
    fn ipv6_text_follows_tcpdump() {
        assert_eq!(v6([0, 0, 0, 0, 0, 0, 0, 1]), "::1");
        assert_eq!(v6([0; 8]), "::");
        assert_eq!(v6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]), "2001:db8::1:0:0:1");
        assert_eq!(
            v6([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]),
            "::ffff:1.2.3.4"
        );
        // IPv4-compatible: std prints ::102:304, tcpdump ::1.2.3.4.
        assert_eq!(v6([0, 0, 0, 0, 0, 0, 0x0102, 0x0304]), "::1.2.3.4");
        assert_eq!(v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), "fe80::");
        assert_eq!(v6([1, 0, 2, 0, 3, 0, 4, 0]), "1:0:2:0:3:0:4:0");
    }

    /// The hand-written formatters against std's `fmt`, which they replace on the hot path.
    #[test]
    fn fast_formatters_match_std_fmt() {
        let mut out = Vec::new();
        for w in 0..=u16::MAX {
            out.clear();
            hex16(&mut out, w, false);
            assert_eq!(out, format!("{w:x}").as_bytes());
            out.clear();
            hex16(&mut out, w, true);
            assert_eq!(out, format!(":{w:x}").as_bytes());
        }
        for b in 0..=u8::MAX {
            let a = [b, 255 - b, b / 3, b.wrapping_mul(7)];
            out.clear();
            ipv4(&mut out, a);
            assert_eq!(
                out,
                format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]).as_bytes()
            );
            out.clear();
            mac(&mut out, &a);
            let want: Vec<String> = a.iter().map(|x| format!("{x:02x}")).collect();
            assert_eq!(out, want.join(":").as_bytes());
        }
        let mut edges = vec![0u32, u32::MAX];
        for p in 0..10 {
            let t = 10u32.pow(p);
            edges.extend([t - 1, t, t + 1, t.saturating_mul(5)]);
        }
        // A fixed xorshift walk over all magnitudes.
        let mut x: u32 = 0x9e37_79b9;
        let walk = (0..1_000_000).map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x >> (i % 32)
        });
        for n in edges.into_iter().chain(0..=u32::from(u16::MAX)).chain(walk) {
            out.clear();
            out.push(b'x');
            dec(&mut out, n);
            assert_eq!(out, format!("x{n}").as_bytes());
        }
    }

    #[test]
    fn checksum_helpers() {
        // RFC 1071 example words sum to 0xddf2; complement 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(cksum_result(sum16(&data, 0)), 0x220d);
        assert_eq!(shouldbe(0xffff, 0x0001), 0x0001);
    }

    #[test]
    fn print_char_escapes_like_tcpdump() {
        let mut out = Vec::new();
        for c in [b'a', 0x0a, 0xe9, 0x7f] {
            print_char(&mut out, c);
        }
        assert_eq!(out, b"a^JM-i^?");
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::capture::Timestamp;
    use crate::config::TimeFormat;
    use proptest::prelude::*;

    /// A valid Ethernet/IPv4/TCP frame with options and payload, to mutate.
    fn base() -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let ip = [
            0x46, 0, 0, 72, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 0,
        ];
        f.extend_from_slice(&ip);
        let tcp = [
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0x3f, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 5,
            0xb4, 30, 8, 0x20, 5, 0, 0, 0, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 8, 10,
        ];
        f.extend_from_slice(&tcp);
        f.extend_from_slice(b"abcd");
        f
    }

    proptest! {
        #[test]
        fn mutated_frames_never_panic(
            muts in proptest::collection::vec((0usize..80, any::<u8>()), 0..8),
            cut in 0usize..90,
            lt in prop::sample::select(vec![0u16, 1, 101, 108, 113, 228, 229, 276]),
            verbose in 0u8..3,
            e in any::<bool>(),
        ) {
            let mut data = base();
            for (i, b) in muts {
                if let Some(x) = data.get_mut(i) {
                    *x = b;
                }
            }
            data.truncate(cut);
            let frame = Frame {
                number: 1,
                ts: Timestamp(1),
                linktype: Linktype(lt),
                iface: 0,
                origlen: 90,
                data: &data,
            };
            let d = crate::decode::decode(&frame);
            let mut p = TcpdumpPrinter::new(LineFormat {
                time: TimeFormat::Delta,
                nano: false,
                absolute: false,
                number: true,
                link_header: e,
                verbose,
            });
            let mut out = Vec::new();
            p.write_packet(&mut out, &frame, &d).unwrap();
        }
    }
}

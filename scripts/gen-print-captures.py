#!/usr/bin/env python3
"""Writes small synthetic captures for the printer's golden tests into testdata/corpus/gen-*.

Covers what the public corpus lacks: LINUX_SLL2, NULL in both byte orders, LOOP, IPV4/IPV6
link types, 802.1Q and QinQ stacks, IPv6 extension headers (hop-by-hop, routing, destination
options, first and later fragments), IPv4 options and fragments, snaplen truncation inside
the options, bad data offsets, every TCP option kind tcpdump names, big-endian and nanosecond
pcap, and a pcapng with interfaces of different link types and resolutions. The expected text
always comes from tcpdump (scripts/make-goldens.sh), never from this script.
Deterministic: same bytes on every run. Standard library only.
"""
import os, struct, sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "corpus")

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF

def tcp(sport, dport, seq, ack, flags, win=65535, opts=b"", payload=b"", off=None, urg=0):
    if len(opts) % 4:
        opts += b"\0" * (4 - len(opts) % 4)
    doff = off if off is not None else (20 + len(opts)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, win, 0, urg) + opts + payload

def fix_tcp_v4(seg, src, dst):
    ph = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    c = csum(ph + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]

def ipv4(src, dst, payload, proto=6, ident=1, flags_off=0x4000, ttl=64, opts=b"", total=None, fix=True):
    src = bytes(src); dst = bytes(dst)
    if proto == 6 and fix and flags_off & 0x1FFF == 0:
        payload = fix_tcp_v4(payload, src, dst)
    ihl = 5 + len(opts) // 4
    tl = total if total is not None else ihl * 4 + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tl, ident, flags_off, ttl, proto, 0, src, dst) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload

def ipv6(src, dst, nh, payload, hlim=64, flow=0x12345, plen=None):
    pl = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", (6 << 28) | (0x20 << 20) | flow, pl, nh, hlim, bytes(src), bytes(dst)) + payload

def fix_tcp_v6(seg, src, dst):
    ph = bytes(src) + bytes(dst) + struct.pack("!IxxxB", len(seg), 6)
    c = csum(ph + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]

MAC1 = bytes.fromhex("020000000001"); MAC2 = bytes.fromhex("020000000002")
def eth(payload, etype=0x0800, tags=()):
    h = MAC2 + MAC1
    for tpid, tci in tags:
        h += struct.pack("!HH", tpid, tci)
    return h + struct.pack("!H", etype) + payload

def pcap(name, linktype, frames, nano=False, be=False, snaplen=65535):
    e = ">" if be else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    t = 1700000000
    for i, f in enumerate(frames):
        if isinstance(f, tuple):
            data, origlen = f
        else:
            data, origlen = f, len(f)
        frac = (i * 123457 + 1) % (10**9 if nano else 10**6)
        out += struct.pack(e + "IIII", t + i, frac, len(data), origlen) + data
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(out)

def pcapng(name, ifaces, frames):
    def block(btype, body):
        body += b"\0" * ((4 - len(body) % 4) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for lt, tsresol in ifaces:
        opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
        out += block(1, struct.pack("<HHI", lt, 0, 65535) + opts)
    for i, (ifid, data) in enumerate(frames):
        res = ifaces[ifid][1]
        ts = (1700000000 + i) * 10**res + (i * 7654321 + 3) % 10**res
        out += block(6, struct.pack("<IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data)
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(out)

A = [10, 0, 0, 1]; B = [10, 0, 0, 2]
A6 = bytes.fromhex("20010db8000000000000000000000001"); B6 = bytes.fromhex("20010db8000000000000000000000002")
MSS = b"\x02\x04\x05\xb4"; SACKOK = b"\x04\x02"; WS = b"\x01\x03\x03\x07"
TS = lambda a, b: b"\x01\x01\x08\x0a" + struct.pack("!II", a, b)

def handshake(mk):
    """A short conversation in both directions; mk(src, dst, tcpseg) builds the frame."""
    c, s = 1000, 5000
    return [
        mk(0, tcp(40000, 80, c, 0, 0x02, opts=MSS + SACKOK + TS(1, 0) + WS)),
        mk(1, tcp(80, 40000, s, c + 1, 0x12, opts=MSS + SACKOK + TS(2, 1) + WS)),
        mk(0, tcp(40000, 80, c + 1, s + 1, 0x10, opts=TS(3, 2))),
        mk(0, tcp(40000, 80, c + 1, s + 1, 0x18, opts=TS(4, 2), payload=b"hello\n")),
        mk(1, tcp(80, 40000, s + 1, c + 7, 0x10, opts=b"\x01\x01\x05\x0a" + struct.pack("!II", c + 20, c + 30))),
        mk(1, tcp(80, 40000, s + 1, c + 7, 0x11)),
        mk(0, tcp(40000, 80, c + 7, s + 2, 0x14, payload=b"reset\x01\xff")),
    ]

def v4(d, seg):
    return ipv4(A if d == 0 else B, B if d == 0 else A, seg)

def v6(d, seg):
    s, t = (A6, B6) if d == 0 else (B6, A6)
    return ipv6(s, t, 6, fix_tcp_v6(seg, s, t))

def main():
    os.makedirs(OUT, exist_ok=True)
    # Link types.
    pcap("gen-ether-vlan.pcap", 1, handshake(lambda d, s: eth(v4(d, s), tags=[(0x8100, 0x2064)])))
    pcap("gen-ether-qinq.pcap", 1, handshake(lambda d, s: eth(v6(d, s), 0x86DD, tags=[(0x88A8, 0x1C8), (0x8100, 0xB064)])))
    pcap("gen-ether-9100.pcap", 1, handshake(lambda d, s: eth(v4(d, s), tags=[(0x9100, 5), (0x8100, 6)])))
    def sll(d, s, v6p=False):
        p = v6(d, s) if v6p else v4(d, s)
        return struct.pack("!HHH8sH", 4 if d == 0 else 0, 1, 6, MAC1 + b"\0\0", 0x86DD if v6p else 0x0800) + p
    pcap("gen-sll.pcap", 113, handshake(lambda d, s: sll(d, s)), nano=True)
    pcap("gen-sll-vlan.pcap", 113, [struct.pack("!HHH8sH", 0, 1, 6, MAC1 + b"\0\0", 0x8100) + struct.pack("!HH", 7, 0x0800) + v4(d, s) for d, s in [(0, tcp(1, 2, 3, 4, 0x10))]])
    def sll2(d, s):
        return struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 4 if d == 0 else 0, 6, MAC1 + b"\0\0") + v4(d, s)
    pcap("gen-sll2.pcap", 276, handshake(sll2))
    pcap("gen-null-le.pcap", 0, handshake(lambda d, s: struct.pack("<I", 2) + v4(d, s)))
    pcap("gen-null-be-v6.pcap", 0, handshake(lambda d, s: struct.pack(">I", 30) + v6(d, s)), be=True)
    pcap("gen-loop.pcap", 108, handshake(lambda d, s: struct.pack(">I", 2) + v4(d, s)))
    pcap("gen-raw.pcap", 101, handshake(lambda d, s: v6(d, s) if d else v4(d, s)))
    pcap("gen-ipv4-lt.pcap", 228, handshake(v4), be=True)
    pcap("gen-ipv6-lt.pcap", 229, handshake(v6), nano=True, be=True)
    # libpcap refuses a pcapng whose interfaces differ in link type: vary the resolution.
    pcapng("gen-multi-iface.pcapng", [(1, 6), (1, 9), (1, 3)], [
        (0, eth(v4(0, tcp(40000, 80, 1, 0, 0x02, opts=MSS)))),
        (1, eth(v4(1, tcp(80, 40000, 9, 2, 0x12, opts=MSS)))),
        (2, eth(v4(0, tcp(40000, 80, 2, 10, 0x10)))),
        (0, eth(v4(0, tcp(40000, 80, 2, 10, 0x18, payload=b"abc")))),
    ])
    # IPv6 extension headers.
    seg = lambda: fix_tcp_v6(tcp(40000, 80, 7, 9, 0x18, payload=b"xyz"), A6, B6)
    hbh = bytes([60, 0, 1, 4, 0, 0, 0, 0])                      # HBH -> DSTOPT, PadN
    dst = bytes([43, 0, 0, 0, 1, 2, 0, 0])                      # DSTOPT -> RT, Pad1 x2 + PadN
    rt = bytes([44, 2, 0, 1, 0, 0, 0, 0]) + B6                  # type 0 routing -> FRAG
    frag0 = struct.pack("!BBHI", 6, 0, 0x0001, 0xABCD)          # first fragment, M set
    frag1 = struct.pack("!BBHI", 6, 0, 0x0100, 0xABCD)          # later fragment
    ext = [
        eth(ipv6(A6, B6, 0, bytes([6, 0, 1, 4, 0, 0, 0, 0]) + seg()), 0x86DD),
        eth(ipv6(A6, B6, 0, hbh + dst + rt + frag0 + seg()), 0x86DD),
        eth(ipv6(A6, B6, 44, frag1 + b"later-fragment-bytes"), 0x86DD),
        eth(ipv6(A6, B6, 60, bytes([6, 0, 0xC2, 4, 0, 1, 0, 0]) + seg()), 0x86DD),
        eth(ipv6(A6, B6, 43, bytes([6, 2, 4, 0, 0, 0, 0, 0]) + B6 + seg()), 0x86DD),
        eth(ipv6(bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1]), bytes(12) + bytes([192, 0, 2, 2]), 6,
                 tcp(1, 2, 3, 4, 0x10)), 0x86DD),
    ]
    pcap("gen-ipv6-ext.pcap", 1, ext)
    # IPv4 options, fragments, truncation, bad headers.
    rr = bytes([7, 11, 4]) + bytes(A) + bytes(8) + b"\x00"     # RR + EOL
    lsrr = bytes([1, 131, 7, 4]) + bytes([10, 9, 9, 9])         # NOP + LSRR
    v4misc = [
        eth(ipv4(A, B, tcp(40000, 80, 1, 0, 0x02, opts=MSS), opts=rr)),
        eth(ipv4(A, B, tcp(40000, 80, 1, 0, 0x02, opts=MSS), opts=lsrr)),
        eth(ipv4(A, B, tcp(40000, 80, 1, 0, 0x02, payload=b"A" * 16), flags_off=0x2000)),
        eth(ipv4(A, B, b"B" * 24, flags_off=0x0003)),
        eth(ipv4(A, B, tcp(40000, 80, 1, 2, 0x10, off=3))),
        eth(ipv4(A, B, tcp(40000, 80, 1, 2, 0x10, off=15))),
        eth(ipv4(A, B, tcp(40000, 80, 1, 2, 0x10), total=0)),
        eth(ipv4(A, B, tcp(40000, 80, 1, 2, 0x10), total=10)),
        eth(ipv4(A, B, tcp(40000, 80, 1, 2, 0xC2, opts=MSS, urg=7), ident=3) [:30]),
        eth(ipv4(A, B, tcp(40000, 80, 1, 2, 0x10) + b"\0" * 4)),
    ]
    pcap("gen-ipv4-misc.pcap", 1, v4misc)
    # TCP options tcpdump names, malformed ones, snaplen cuts.
    o = lambda opts, fl=0x10, pay=b"": eth(v4(0, tcp(40000, 80, 11, 22, fl, opts=opts, payload=pay)))
    md5 = bytes([19, 18]) + bytes(range(16))
    tfo = bytes([34, 10]) + bytes(range(8))
    opts = [
        o(b"\x22\x02", 0x02),                                   # tfo cookiereq
        o(tfo, 0x02),
        o(bytes([254, 8, 0xF9, 0x89]) + b"\x01\x02\x03\x04", 0x02),
        o(bytes([254, 6, 0x12, 0x34, 0, 0])),
        o(bytes([34, 5, 1, 2, 3])),                              # odd cookie: invalid
        o(md5 + b"\x00\x00", 0x18, b"data"),
        o(bytes([28, 4, 0x01, 0x2D]) + bytes([28, 4, 0x00, 0x3C])),
        o(bytes([29, 8, 1, 2, 0xAA, 0xBB, 0xCC, 0xDD])),
        o(bytes([29, 3, 1])),
        o(bytes([30, 12, 0x00, 0x81]) + bytes(range(8)), 0x02),  # MP_CAPABLE on SYN
        o(bytes([30, 8, 0x20, 0x05]) + struct.pack("!I", 77)),  # DSS ack
        o(bytes([30, 4, 0x51, 7])),                              # prio
        o(bytes([99, 4, 0xDE, 0xAD])),                           # unknown-99
        o(bytes([6, 6, 0, 0, 0, 9, 7, 6, 0, 0, 0, 8])),          # echo, echoreply
        o(bytes([11, 6, 0, 0, 0, 1, 13, 6, 0, 0, 0, 2])),        # cc, ccecho
        o(bytes([20, 4, 0xAB, 3])),                              # scps
        o(bytes([2, 3, 5, 0])),                                  # mss with len 3: bad opt
        o(bytes([1, 2, 9, 0])),                                  # len 9 > rest: bad opt
        o(bytes([4, 3, 0, 0])),                                  # sackOK [len 3]
        o(bytes([5, 7, 0, 0, 0, 1, 2, 0])),                      # invalid sack
        o(bytes([0, 1, 1, 1])),                                  # eol stops
        o(MSS + SACKOK + TS(1, 2) + WS, 0x02),
    ]
    pcap("gen-tcp-options.pcap", 1, opts)
    cut = [(f[:n], len(f)) for f, n in [(opts[-1], 60), (opts[-1], 47), (opts[5], 70), (opts[5], 40), (opts[5], 36)]]
    pcap("gen-snaplen.pcap", 1, cut, snaplen=70)
    print("wrote", len([f for f in os.listdir(OUT) if f.startswith("gen-")]), "captures to", OUT)

if __name__ == "__main__":
    sys.exit(main())

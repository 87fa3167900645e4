#!/usr/bin/env python3
"""Writes the small synthetic captures in testdata/synthetic/ (python3 standard library only).

    scripts/make-synthetic-captures.py            # write the captures
    scripts/make-synthetic-captures.py --goldens  # also run tcpdump / tshark on each capture

Good captures: le/be x us/ns pcap of a short Ethernet/IPv4 TCP exchange, an IPv6 one, the
"modified" (a1b2cd34) pcap, pcapng with two interfaces of different link types and a second
section in the other byte order, pcapng with if_tsoffset and Simple Packet Blocks.
Odd captures (odd-*): legal oddities libpcap reads to the end (zero-length records, records
longer than the snapshot length, blocks a reader must skip).
Bad captures (bad-*): one file per kind of damage. damage.tsv lists, for each, the packet number
the damaged record would have had and the byte offset of its header, as counted here while the
file is put together.

--goldens writes, next to each capture F:
  F.tcpdump.expected  stdout of `TZ=GMT0 tcpdump -# -n -tt --nano -xx -r F`, then
                      `## exit=N` and `## stderr=LINE` lines (tcpdump never prints `##`)
  F.tshark.expected   stdout of `tshark -r F -T fields -e frame.number -e frame.time_epoch
                      -e frame.interface_id -e frame.cap_len -e frame.len`, same trailer
The Rust tests read these files; they never run tcpdump or tshark themselves.
"""

import os
import struct
import subprocess
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "synthetic")

# ---------------------------------------------------------------- frames


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def tcp_segment(src_ip, dst_ip, sport, dport, seq, ack, flags, win, opts=b"", payload=b""):
    """A TCP header + payload with a valid checksum over the IPv4/IPv6 pseudo-header."""
    assert len(opts) % 4 == 0
    off = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, 0) + opts
    seg = hdr + payload
    if len(src_ip) == 4:
        pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(seg))
    else:
        pseudo = src_ip + dst_ip + struct.pack("!IxxxB", len(seg), 6)
    c = csum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ipv4(src, dst, ident, payload):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, 6, 0, src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def ipv6(src, dst, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), 6, 64, src, dst) + payload


def ether(payload, v6=False):
    dst = bytes.fromhex("020000000002")
    src = bytes.fromhex("020000000001")
    return dst + src + struct.pack("!H", 0x86DD if v6 else 0x0800) + payload


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def exchange(v6=False):
    """A short client/server TCP exchange as (direction, flags, seq, ack, options, payload)."""
    if v6:
        cli = bytes.fromhex("20010db8000000000000000000000001")
        srv = bytes.fromhex("20010db8000000000000000000000002")
    else:
        cli, srv = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 2])
    cport, sport = 51000, 80
    syn_opts = struct.pack("!BBH", 2, 4, 1460) + bytes([4, 2, 8, 10]) + struct.pack("!II", 1000, 0) + bytes([1, 3, 3, 7])
    synack_opts = struct.pack("!BBH", 2, 4, 1460) + bytes([4, 2, 8, 10]) + struct.pack("!II", 5000, 1000) + bytes([1, 3, 3, 7])
    req = b"GET / HTTP/1.0\r\n\r\n"
    resp = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    c_isn, s_isn = 1000000, 3000000000
    steps = [
        (0, SYN, c_isn, 0, syn_opts, b""),
        (1, SYN | ACK, s_isn, c_isn + 1, synack_opts, b""),
        (0, ACK, c_isn + 1, s_isn + 1, b"", b""),
        (0, PSH | ACK, c_isn + 1, s_isn + 1, b"", req),
        (1, ACK, s_isn + 1, c_isn + 1 + len(req), b"", b""),
        (1, PSH | ACK, s_isn + 1, c_isn + 1 + len(req), b"", resp),
        (1, FIN | ACK, s_isn + 1 + len(resp), c_isn + 1 + len(req), b"", b""),
        (0, ACK, c_isn + 1 + len(req), s_isn + 2 + len(resp), b"", b""),
        (0, FIN | ACK, c_isn + 1 + len(req), s_isn + 2 + len(resp), b"", b""),
        (1, ACK, s_isn + 2 + len(resp), c_isn + 2 + len(req), b"", b""),
    ]
    frames = []
    for i, (d, flags, seq, ack, opts, payload) in enumerate(steps):
        src, dst, sp, dp = (cli, srv, cport, sport) if d == 0 else (srv, cli, sport, cport)
        seg = tcp_segment(src, dst, sp, dp, seq, ack, flags, 64240 if d == 0 else 65160, opts, payload)
        ip = ipv6(src, dst, seg) if v6 else ipv4(src, dst, 0x1000 + i, seg)
        frames.append(ip)
    return frames


V4 = exchange()
V6 = exchange(v6=True)
ETH4 = [ether(f) for f in V4]
ETH6 = [ether(f, v6=True) for f in V6]

BASE = 1700000000  # 2023-11-14T22:13:20Z


def times_ns(n, start_frac=123456789, step_ns=1_234_567_891):
    """n timestamps in ns, irregular so every digit matters."""
    return [BASE * 10**9 + start_frac + i * step_ns + (i * i * 7919) for i in range(n)]


# ---------------------------------------------------------------- pcap


def pcap_header(bo, magic=0xA1B2C3D4, snaplen=262144, linktype=1, major=2, minor=4):
    return struct.pack(bo + "IHHiIII", magic, major, minor, 0, 0, snaplen, linktype)


def pcap_record(bo, ts_sec, ts_frac, data, caplen=None, origlen=None):
    caplen = len(data) if caplen is None else caplen
    origlen = len(data) if origlen is None else origlen
    return struct.pack(bo + "IIII", ts_sec, ts_frac, caplen, origlen) + data


def pcap_file(bo, nano, frames, snaplen=262144, linktype=1, ts=None):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    ts = ts or times_ns(len(frames))
    out = pcap_header(bo, magic, snaplen, linktype)
    for t, f in zip(ts, frames):
        sec, ns = divmod(t, 10**9)
        out += pcap_record(bo, sec, ns if nano else ns // 1000, f)
    return out


def modified_pcap(frames):
    """Alexey Kuznetsov's patched-libpcap format: 24-byte records (ifindex, protocol, type)."""
    out = pcap_header("<", 0xA1B2CD34, 262144, 1)
    for t, f in zip(times_ns(len(frames)), frames):
        sec, ns = divmod(t, 10**9)
        out += struct.pack("<IIIIIHBB", sec, ns // 1000, len(f), len(f), 2, 0x0800, 0, 0) + f
    return out


# ---------------------------------------------------------------- pcapng


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def options(bo, opts):
    if not opts:
        return b""
    out = b""
    for code, val in opts:
        out += struct.pack(bo + "HH", code, len(val)) + pad4(val)
    return out + struct.pack(bo + "HH", 0, 0)


def block(bo, btype, body, length=None, trailer=None):
    n = 12 + len(body)
    length = n if length is None else length
    trailer = length if trailer is None else trailer
    return struct.pack(bo + "II", btype, length) + body + struct.pack(bo + "I", trailer)


def shb(bo, opts=()):
    body = struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options(bo, list(opts))
    return block(bo, 0x0A0D0D0A, body)


def idb(bo, linktype, snaplen=0, tsresol=None, tsoffset=None):
    opts = []
    if tsresol is not None:
        opts.append((9, bytes([tsresol])))
    if tsoffset is not None:
        opts.append((14, struct.pack(bo + "q", tsoffset)))
    body = struct.pack(bo + "HHI", linktype, 0, snaplen) + options(bo, opts)
    return block(bo, 1, body)


def epb(bo, if_id, units, data, caplen=None, origlen=None, length=None, trailer=None):
    caplen = len(data) if caplen is None else caplen
    origlen = len(data) if origlen is None else origlen
    body = struct.pack(bo + "IIIII", if_id, units >> 32, units & 0xFFFFFFFF, caplen, origlen) + pad4(data)
    return block(bo, 6, body, length, trailer)


def spb(bo, origlen, data):
    return block(bo, 3, struct.pack(bo + "I", origlen) + pad4(data))


def units_of(t_ns, tsresol, tsoffset=0):
    """Timestamp units for a ns time on an interface (if_tsresol byte, if_tsoffset seconds)."""
    t_ns -= tsoffset * 10**9
    if tsresol & 0x80:
        return (t_ns << (tsresol & 0x7F)) // 10**9
    return t_ns * 10 ** (tsresol) // 10**9


def two_interfaces():
    """Section 1 (LE): Ethernet us + RAW ns; section 2 (BE): RAW 2^-20 with if_tsoffset."""
    ts = times_ns(20)
    out = shb("<") + idb("<", 1, 262144) + idb("<", 101, 65535, tsresol=9)
    for i in range(10):
        if i % 2 == 0:
            out += epb("<", 0, units_of(ts[i], 6), ETH4[i])
        else:
            out += epb("<", 1, units_of(ts[i], 9), V4[i])
    # An interface statistics block, which must be skipped.
    out += block("<", 5, struct.pack("<III", 0, 0, 0))
    out += shb(">") + idb(">", 101, 0, tsresol=0x80 | 20, tsoffset=1000)
    for i in range(10):
        out += epb(">", 0, units_of(ts[10 + i], 0x80 | 20, 1000), V6[i])
    return out


def spb_tsoffset():
    """One section, one Ethernet interface (snaplen 96, if_tsoffset -3600), EPBs then SPBs."""
    ts = times_ns(10)
    out = shb("<") + idb("<", 1, 96, tsresol=3, tsoffset=-3600)
    for i in range(6):
        f = ETH4[i][:96]
        out += epb("<", 0, units_of(ts[i], 3, -3600), f, origlen=len(ETH4[i]))
    # SPBs: packet 7 fits the snaplen; packets 8-10 are cut to 96 bytes (caplen = min(origlen, snaplen)).
    for i in range(6, 10):
        out += spb("<", len(ETH4[i]), ETH4[i][:96])
    out += spb("<", len(ETH4[5]), ETH4[5][:96])
    return out


# ---------------------------------------------------------------- bad inputs

LE = "<"


def good_pcap_prefix(n):
    """A LE us pcap header and the first n records of the IPv4 exchange."""
    return pcap_file(LE, False, ETH4[:n])


def rec(i, **kw):
    sec, ns = divmod(times_ns(10)[i], 10**9)
    return pcap_record(LE, sec, ns // 1000, ETH4[i], **kw)


def ng_prefix(n):
    ts = times_ns(10)
    out = shb(LE) + idb(LE, 1, 262144)
    for i in range(n):
        out += epb(LE, 0, units_of(ts[i], 6), ETH4[i])
    return out


def ng_epb(i, **kw):
    return epb(LE, 0, units_of(times_ns(10)[i], 6), ETH4[i], **kw)


def bad_files():
    """name -> (bytes, packet, offset): the damaged record would be packet `packet` and its
    header starts at byte `offset` (counted here, where the file is put together)."""
    files = {}

    def add(name, prefix, rest, packet):
        files[name] = (prefix + rest, packet, len(prefix))

    # Not captures at all, or a file header cut short: packet 1, offset 0.
    add("bad-not-a-capture.pcap", b"", b"This is not a packet capture, just some text.\n" * 3, 1)
    add("bad-empty.pcap", b"", b"", 1)
    add("bad-short-header.pcap", b"", pcap_header(LE)[:10], 1)
    add("bad-short-header.pcapng", b"", shb(LE)[:20], 1)
    # tcpdump killed mid-write: record data cut short, then a record header cut short.
    add("bad-truncated-data.pcap", good_pcap_prefix(4), rec(4)[: 16 + 30], 5)
    add("bad-truncated-header.pcap", good_pcap_prefix(4), rec(4)[:7], 5)
    # Captured length larger than the rest of the file (record 4 claims 1400 bytes).
    add("bad-caplen-past-eof.pcap", good_pcap_prefix(3), rec(3, caplen=1400), 4)
    # Captured length larger than libpcap's maximum (262144): damage, however long the file.
    add("bad-caplen-over-max.pcap", good_pcap_prefix(3), rec(3, caplen=300000) + rec(4), 4)
    # A record claiming 4 GB: rejected without allocating it.
    add("bad-huge-caplen.pcap", good_pcap_prefix(2), rec(2, caplen=0xFFFFFFF0) + rec(3), 3)
    # pcapng block damage.
    add("bad-block-len-small.pcapng", ng_prefix(2), struct.pack("<II", 6, 8) + ng_epb(2), 3)
    n = len(ng_epb(2)) - 2
    add("bad-block-len-unaligned.pcapng", ng_prefix(2), ng_epb(2, length=n, trailer=n) + ng_epb(3), 3)
    add("bad-block-trailer.pcapng", ng_prefix(3), ng_epb(3, trailer=len(ng_epb(3)) + 4) + ng_epb(4), 4)
    add("bad-block-huge.pcapng", ng_prefix(2), struct.pack("<III", 6, 0xFFFFFFF0, 0) + ng_epb(2), 3)
    add("bad-epb-caplen-over-block.pcapng", ng_prefix(2), ng_epb(2, caplen=2000) + ng_epb(3), 3)
    t = times_ns(10)
    add(
        "bad-epb-caplen-over-snaplen.pcapng",
        shb(LE) + idb(LE, 1, 64) + epb(LE, 0, units_of(t[0], 6), ETH4[0][:64], origlen=len(ETH4[0])),
        epb(LE, 0, units_of(t[1], 6), ETH4[1]),
        2,
    )
    add("bad-epb-undeclared-iface.pcapng", ng_prefix(3), epb(LE, 1, units_of(t[3], 6), ETH4[3]) + ng_epb(4), 4)
    # Interfaces belong to their section: interface 1 of section 1 is gone in section 2.
    add(
        "bad-iface-from-previous-section.pcapng",
        shb(LE) + idb(LE, 1) + idb(LE, 1) + ng_epb(0) + epb(LE, 1, units_of(t[1], 6), ETH4[1])
        + shb(LE) + idb(LE, 1) + ng_epb(2),
        epb(LE, 1, units_of(t[3], 6), ETH4[3]),
        4,
    )
    add("bad-section-bom.pcapng", ng_prefix(2), shb(LE)[:8] + b"\x11\x22\x33\x44" + shb(LE)[12:] + ng_epb(2), 3)
    whole = ng_epb(4)
    add("bad-truncated.pcapng", ng_prefix(4), whole[: len(whole) - 40], 5)
    add("bad-spb-no-idb.pcapng", shb(LE), spb(LE, len(ETH4[0]), ETH4[0]), 1)
    return files


def odd_files():
    """Unusual but legal captures that libpcap reads to the end."""
    return {
        # Captured lengths above the file's snapshot length (64) but sane: libpcap delivers the
        # first 64 bytes of each such record and goes on.
        "odd-caplen-over-snaplen.pcap": pcap_header(LE, snaplen=64) + b"".join(rec(i) for i in range(5)),
        # Zero-length records in the middle (legal in pcap; tcpdump prints "[Invalid header...]").
        "odd-zero-length.pcap": good_pcap_prefix(2)
        + pcap_record(LE, BASE + 2, 500000, b"", 0, 0)
        + rec(2)
        + pcap_record(LE, BASE + 4, 0, b"", 0, 60)
        + rec(3),
        # Blocks a reader must skip: name resolution, custom, a 12-byte process information
        # block, an unknown type, interface statistics.
        "odd-extra-blocks.pcapng": shb(LE)
        + block(LE, 4, struct.pack("<HH", 0, 0))
        + idb(LE, 1)
        + ng_epb(0)
        + block(LE, 0x00000BAD, struct.pack("<I", 32473) + b"abcd")
        + block(LE, 0x80000001, b"")
        + ng_epb(1)
        + block(LE, 0x0BADBEEF, b"\xff" * 8)
        + block(LE, 5, struct.pack("<III", 0, 0, 0))
        + ng_epb(2),
    }


def good_files():
    files = {}
    for bo, bname in (("<", "le"), (">", "be")):
        for nano, tname in ((False, "us"), (True, "ns")):
            files["tcp-%s-%s.pcap" % (bname, tname)] = pcap_file(bo, nano, ETH4)
    files["tcp6-le-ns.pcap"] = pcap_file("<", True, ETH6)
    files["tcp-raw-be-us.pcap"] = pcap_file(">", False, V4, linktype=101)
    files["tcp-modified.pcap"] = modified_pcap(ETH4)
    files["two-interfaces.pcapng"] = two_interfaces()
    files["spb-tsoffset.pcapng"] = spb_tsoffset()
    # The same exchange as pcapng, big-endian, one section (tcpdump reads it too).
    ts = times_ns(10)
    out = shb(">") + idb(">", 1, 262144, tsresol=9)
    for i in range(10):
        out += epb(">", 0, units_of(ts[i], 9), ETH4[i])
    files["tcp-be-ns.pcapng"] = out
    return files


# ---------------------------------------------------------------- goldens


def run_tool(argv, name):
    env = dict(os.environ, TZ="GMT0", LC_ALL="C")
    p = subprocess.run(argv + [name], capture_output=True, env=env, timeout=60, cwd=OUT)
    out = p.stdout.decode("utf-8", "replace")
    trailer = "## exit=%d\n" % p.returncode
    for line in p.stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("reading from file") or "Running as user" in line:
            continue
        trailer += "## stderr=%s\n" % line
    return out + trailer


def write_goldens(names):
    tcpdump = ["tcpdump", "-#", "-n", "-tt", "--nano", "-xx", "-r"]
    tshark = ["tshark", "-T", "fields", "-e", "frame.number", "-e", "frame.time_epoch", "-e",
              "frame.interface_id", "-e", "frame.cap_len", "-e", "frame.len", "-r"]
    for name in names:
        path = os.path.join(OUT, name)
        for tool, argv in (("tcpdump", tcpdump), ("tshark", tshark)):
            with open(path + "." + tool + ".expected", "w") as f:
                f.write(run_tool(argv, name))


def main():
    os.makedirs(OUT, exist_ok=True)
    files = dict(good_files())
    files.update(odd_files())
    bad = bad_files()
    files.update({name: data for name, (data, _, _) in bad.items()})
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    with open(os.path.join(OUT, "damage.tsv"), "w") as f:
        f.write("# file\tpacket\toffset: where the damaged record is (1-based packet, byte offset of its header)\n")
        for name, (_, packet, offset) in sorted(bad.items()):
            f.write("%s\t%d\t%d\n" % (name, packet, offset))
    if "--goldens" in sys.argv[1:]:
        write_goldens(sorted(files))
    print("wrote %d captures to %s" % (len(files), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write testdata/analysis/ack-unseen-probes.pcap: tiny hand-made TCP conversations that pin
down how tshark 4.0 decides "ACKed segment that wasn't captured" (tcp.analysis.ack_lost_segment)
and "previous segment not captured". Each probe is its own connection (client port 40000 + n).
tshark's answer is stored by scripts/make-tshark-goldens.sh (testdata/tshark/ack-unseen-probes.tsv)
and compared frame by frame in tests/analysis_tshark.rs.

Each probe: after the handshake and 100 bytes from the client, the server ACKs beyond what the
client sent; then what the client (or server) does next decides whether a later ACK beyond is
flagged again.
"""
import os
import struct

FIN, SYN, ACK = 1, 2, 16
CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
C_ISN, S_ISN = 1000, 5000


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def packet(src, dst, sport, dport, seq, ack, flags, plen):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 1000, 0, 0) + b"x" * plen
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + tcp


START = [("c", 0, 0, SYN, 0), ("s", 0, 1, SYN | ACK, 0), ("c", 1, 1, ACK, 0),
         ("c", 1, 1, ACK, 100)]
# (direction, seq offset, ack offset, flags, payload length) after START.
PROBES = [
    # server ACKs exactly, then beyond; client sends the hole's end; server ACKs it
    [("s", 1, 101, ACK, 0), ("s", 1, 1549, ACK, 0), ("c", 1549, 1, ACK, 50), ("s", 1, 1599, ACK, 0)],
    # the same ACK twice (the second is a FIN)
    [("s", 1, 2000, ACK, 0), ("s", 1, 2000, ACK | FIN, 0)],
    # two holes in a row
    [("s", 1, 201, ACK, 0), ("c", 201, 1, ACK, 100), ("s", 1, 301, ACK, 0), ("s", 1, 1749, ACK, 0),
     ("c", 1749, 1, ACK, 50), ("s", 1, 1799, ACK, 0)],
    # after the flag: contiguous client data, then the same ACK
    [("s", 1, 2000, ACK, 0), ("c", 101, 1, ACK, 10), ("s", 1, 2000, ACK, 0)],
    # after the flag: a client pure ACK, then a higher ACK
    [("s", 1, 2000, ACK, 0), ("c", 101, 1, ACK, 0), ("s", 1, 2001, ACK, 0)],
    # nothing in between, a higher ACK
    [("s", 1, 2000, ACK, 0), ("s", 1, 2500, ACK, 0)],
    # the client's own ACK number moves in between
    [("s", 1, 2000, ACK, 10), ("c", 101, 11, ACK, 0), ("s", 11, 2500, ACK, 0)],
    # an exact ACK in between
    [("s", 1, 2000, ACK, 0), ("s", 1, 101, ACK, 0), ("s", 1, 2500, ACK, 0)],
    # contiguous client data in between
    [("s", 1, 2000, ACK, 0), ("c", 101, 1, ACK, 10), ("s", 1, 2500, ACK, 0)],
    # client data beyond a hole in between
    [("s", 1, 2000, ACK, 0), ("c", 2000, 1, ACK, 10), ("s", 1, 2500, ACK, 0)],
    # a client retransmission in between
    [("s", 1, 2000, ACK, 0), ("c", 1, 1, ACK, 100), ("s", 1, 2500, ACK, 0)],
    # a zero-length client segment beyond the hole
    [("s", 1, 2000, ACK, 0), ("c", 2000, 1, ACK, 0), ("s", 1, 2500, ACK, 0)],
    # the client ACKs server bytes never seen
    [("s", 1, 2000, ACK, 0), ("c", 101, 5, ACK, 0), ("s", 1, 2500, ACK, 0)],
    # server data with the same ACK, client contiguous data
    [("s", 1, 2000, ACK, 10), ("c", 101, 1, ACK, 10), ("s", 11, 2500, ACK, 0)],
    # client data after a small hole
    [("s", 1, 2000, ACK, 0), ("c", 111, 1, ACK, 10), ("s", 1, 2500, ACK, 0)],
    # two client segments, the second after a hole
    [("s", 1, 2000, ACK, 0), ("c", 101, 1, ACK, 10), ("c", 121, 1, ACK, 10), ("s", 1, 2500, ACK, 0)],
]


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "analysis",
                       "ack-unseen-probes.pcap")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))  # LINKTYPE_RAW
        t = 0
        for n, probe in enumerate(PROBES):
            sport = 40000 + n
            for d, so, ao, fl, plen in START + probe:
                if d == "c":
                    p = packet(CLIENT, SERVER, sport, 80, C_ISN + so, S_ISN + ao, fl, plen)
                else:
                    p = packet(SERVER, CLIENT, 80, sport, S_ISN + so, C_ISN + ao, fl, plen)
                t += 1000  # 1 ms apart: never out-of-order by time
                f.write(struct.pack("<IIII", t // 1000000, t % 1000000, len(p), len(p)))
                f.write(p)
    print("wrote", os.path.normpath(out))


if __name__ == "__main__":
    main()

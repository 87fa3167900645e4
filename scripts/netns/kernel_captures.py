#!/usr/bin/env python3
"""Produce TCP test captures from the running Linux kernel, plus ground truth.

Every scenario builds fresh network namespaces (tl-cli, tl-srv, and tl-rtr when
a router is needed) joined by veth pairs that carry only the private test
subnets 10.231.0.0/16 and fd00:231::/48. Applications are threads of this
process whose sockets are created inside the namespaces (setns on the calling
thread), so they can be synchronised exactly. Ground truth comes from the
applications (errno values), `ss` snapshots and `nstat` counters of each
namespace, nftables counters on the router, and `tcpdump -n -S -r` of the
written capture. Run through kernel-captures.sh (needs root).
"""

import argparse
import ctypes
import errno
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

NS_CLI, NS_SRV, NS_RTR = "tl-cli", "tl-srv", "tl-rtr"
ALL_NS = (NS_CLI, NS_SRV, NS_RTR)
CLONE_NEWNET = 0x40000000
APP_TIMEOUT = 15.0  # no socket call of an application may block longer
T0 = time.monotonic()

libc = ctypes.CDLL(None, use_errno=True)
_ORIG_NS = os.open("/proc/self/ns/net", os.O_RDONLY)
PIDFILE = None
KEEP_FILE_PIDS = []


def log_err(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, timeout=20, check=True, ns=None, capture=True):
    """Run a command (optionally in a namespace) with a hard time limit."""
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, timeout=timeout, capture_output=capture, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (r.returncode, " ".join(cmd), r.stderr))
    return r.stdout if capture else ""


class InNs:
    """Switch the calling thread into a named network namespace."""

    def __init__(self, ns):
        self.ns = ns

    def __enter__(self):
        fd = os.open("/run/netns/" + self.ns, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns %s: %s" % (self.ns, os.strerror(e)))
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        if libc.setns(_ORIG_NS, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back failed")


# ---------------------------------------------------------------- topology

def cleanup_ns():
    for ns in ALL_NS:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def ns_base(ns, syn_retries=3, synack_retries=3, syn_linear_timeouts=None):
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    sysctls = {
        "net.ipv4.tcp_syn_retries": syn_retries,
        "net.ipv4.tcp_synack_retries": synack_retries,
        "net.ipv6.conf.all.accept_dad": 0,
        "net.ipv6.conf.default.accept_dad": 0,
        "net.ipv6.conf.default.router_solicitations": 0,
    }
    if syn_linear_timeouts is not None:
        sysctls["net.ipv4.tcp_syn_linear_timeouts"] = syn_linear_timeouts
    for k, v in sysctls.items():
        run(["sysctl", "-qw", "%s=%s" % (k, v)], ns=ns)


# Fixed, high interface indexes: tcpdump prints an LINUX_SLL2 packet's interface
# by looking the ifindex up on the machine that *reads* the file, so indexes
# that no ordinary host has keep the printed text reproducible ("ifindex 4211").
IFINDEX = {"tlc0": 4211, "tls0": 4212, "tlr0": 4213, "tlr1": 4214}


def veth(ns_a, if_a, ns_b, if_b):
    run(["ip", "-n", ns_a, "link", "add", if_a, "index", str(IFINDEX[if_a]), "type", "veth",
         "peer", "name", if_b, "index", str(IFINDEX[if_b]), "netns", ns_b])
    for ns, ifn in ((ns_a, if_a), (ns_b, if_b)):
        # One MSS per packet on the wire: no GSO super-packets in captures.
        run(["ip", "-n", ns, "link", "set", ifn, "gso_max_segs", "1"])


def addr(ns, ifn, a):
    extra = ["nodad"] if ":" in a else []
    run(["ip", "-n", ns, "addr", "add", a, "dev", ifn] + extra)


def up(ns, ifn):
    run(["ip", "-n", ns, "link", "set", ifn, "up"])


class Topo:
    """Addresses of the client and server, and where the wire runs."""

    def __init__(self, routed, syn_retries=3, synack_retries=3, ipv6=True, syn_linear_timeouts=None):
        cleanup_ns()
        self.routed = routed
        nss = (NS_CLI, NS_SRV, NS_RTR) if routed else (NS_CLI, NS_SRV)
        for ns in nss:
            ns_base(ns, syn_retries, synack_retries, syn_linear_timeouts)
            if not ipv6:
                run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], ns=ns)
                run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], ns=ns)
        if routed == "relay":
            # Client and server share 10.231.3.0/24; tl-rtr has no addresses and
            # runs a userspace L2 relay (FrameRelay) that adds a fixed delay.
            veth(NS_CLI, "tlc0", NS_RTR, "tlr0")
            veth(NS_RTR, "tlr1", NS_SRV, "tls0")
            self.cli4, self.srv4 = "10.231.3.1", "10.231.3.2"
            self.cli6, self.srv6 = "fd00:231:3::1", "fd00:231:3::2"
            addr(NS_CLI, "tlc0", self.cli4 + "/24")
            addr(NS_SRV, "tls0", self.srv4 + "/24")
            for ns, ifn in ((NS_CLI, "tlc0"), (NS_RTR, "tlr0"), (NS_RTR, "tlr1"), (NS_SRV, "tls0")):
                up(ns, ifn)
            for ifn in ("tlr0", "tlr1"):
                run(["ip", "-n", NS_RTR, "link", "set", ifn, "promisc", "on"])
        elif not routed:
            veth(NS_CLI, "tlc0", NS_SRV, "tls0")
            self.cli4, self.srv4 = "10.231.0.1", "10.231.0.2"
            self.cli6, self.srv6 = "fd00:231::1", "fd00:231::2"
            addr(NS_CLI, "tlc0", self.cli4 + "/24")
            addr(NS_SRV, "tls0", self.srv4 + "/24")
            if ipv6:
                addr(NS_CLI, "tlc0", self.cli6 + "/64")
                addr(NS_SRV, "tls0", self.srv6 + "/64")
            up(NS_CLI, "tlc0")
            up(NS_SRV, "tls0")
        else:
            veth(NS_CLI, "tlc0", NS_RTR, "tlr0")
            veth(NS_RTR, "tlr1", NS_SRV, "tls0")
            self.cli4, self.srv4 = "10.231.1.1", "10.231.2.1"
            self.cli6, self.srv6 = "fd00:231:1::1", "fd00:231:2::1"
            addr(NS_CLI, "tlc0", self.cli4 + "/24")
            addr(NS_RTR, "tlr0", "10.231.1.254/24")
            addr(NS_RTR, "tlr1", "10.231.2.254/24")
            addr(NS_SRV, "tls0", self.srv4 + "/24")
            if ipv6:
                addr(NS_CLI, "tlc0", self.cli6 + "/64")
                addr(NS_RTR, "tlr0", "fd00:231:1::fe/64")
                addr(NS_RTR, "tlr1", "fd00:231:2::fe/64")
                addr(NS_SRV, "tls0", self.srv6 + "/64")
            for ns, ifn in ((NS_CLI, "tlc0"), (NS_RTR, "tlr0"), (NS_RTR, "tlr1"), (NS_SRV, "tls0")):
                up(ns, ifn)
            run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=NS_RTR)
            # Routes only for the test prefixes; the namespaces have no other links.
            run(["ip", "-n", NS_CLI, "route", "add", "10.231.2.0/24", "via", "10.231.1.254"])
            run(["ip", "-n", NS_SRV, "route", "add", "10.231.1.0/24", "via", "10.231.2.254"])
            if ipv6:
                run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], ns=NS_RTR)
                run(["ip", "-n", NS_CLI, "-6", "route", "add", "fd00:231:2::/64", "via", "fd00:231:1::fe"])
                run(["ip", "-n", NS_SRV, "-6", "route", "add", "fd00:231:1::/64", "via", "fd00:231:2::fe"])
        self.nss = nss
        time.sleep(0.3)  # let link-up noise (IPv6 MLD reports) pass before capturing

    def ips(self, fam):
        return (self.cli4, self.srv4) if fam == socket.AF_INET else (self.cli6, self.srv6)


def nft(ns, script):
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True,
                       capture_output=True, timeout=20)
    if p.returncode != 0:
        raise RuntimeError("nft failed: %s\n%s" % (p.stderr, script))


def nft_rules_with_counters(ns):
    """Rules of table inet tl with their counter values, as nft lists them."""
    out = run(["nft", "list", "table", "inet", "tl"], ns=ns, check=False)
    rules = []
    for line in out.splitlines():
        m = re.search(r"counter packets (\d+) bytes (\d+)", line)
        if m:
            rules.append({"rule": line.strip(), "packets": int(m.group(1))})
    return rules


# ---------------------------------------------------------------- VLAN via eBPF

def _bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(321, cmd, buf, 128)  # SYS_bpf on x86_64
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, "bpf(%d): %s" % (cmd, os.strerror(e)))
    return r


def _insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _bpf_load(prog):
    ins = ctypes.create_string_buffer(prog, len(prog))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(8192)
    attr = struct.pack("<IIQQIIQII16sII", 3, len(prog) // 8, ctypes.addressof(ins),
                       ctypes.addressof(lic), 1, 8192, ctypes.addressof(log), 0, 0, b"tl_vlan", 0, 0)
    try:
        return _bpf(5, attr)  # BPF_PROG_LOAD, BPF_PROG_TYPE_SCHED_CLS
    except OSError as e:
        raise OSError(e.errno, "%s\n%s" % (e, log.value.decode(errors="replace")))


def vlan_tag_link(ns, ifn, tags):
    """Push `tags` (list of (tpid, vid), innermost first) on egress of ifn and pop
    as many on ingress. The kernel has no 8021q module and no act_vlan, so this
    uses tcx eBPF programs calling bpf_skb_vlan_push/pop (helpers 18/19)."""
    push = _insn(0xBF, 6, 1)  # r6 = ctx
    for tpid, vid in tags:
        push += _insn(0xBF, 1, 6) + _insn(0xB7, 2, imm=socket.htons(tpid)) + _insn(0xB7, 3, imm=vid)
        push += _insn(0x85, imm=18)
    push += _insn(0xB7, 0, imm=0) + _insn(0x95)  # TC_ACT_OK
    pop = _insn(0xBF, 6, 1)
    for _ in tags:
        pop += _insn(0xBF, 1, 6) + _insn(0x85, imm=19)
    pop += _insn(0xB7, 0, imm=0) + _insn(0x95)
    fds = [_bpf_load(push), _bpf_load(pop)]
    with InNs(ns):
        idx = socket.if_nametoindex(ifn)
        _bpf(8, struct.pack("<IIII", idx, fds[0], 47, 0))  # BPF_PROG_ATTACH, BPF_TCX_EGRESS
        _bpf(8, struct.pack("<IIII", idx, fds[1], 46, 0))  # BPF_TCX_INGRESS
    for fd in fds:
        os.close(fd)  # the attachment holds its own reference; dies with the netns


# ---------------------------------------------------------------- delay relay

def _csum(data):
    if len(data) % 2:
        data += b"\0"
    t = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return (~t) & 0xFFFF


def _fix_tcp4_checksum(frame):
    """Frames read from a veth may carry only the partial (offloaded) TCP
    checksum; complete it before re-sending on the other link."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return frame
    ihl = (frame[14] & 0x0F) * 4
    tot = struct.unpack("!H", frame[16:18])[0]
    if ihl < 20 or 14 + tot > len(frame) or tot < ihl + 20:
        return frame
    seg = bytearray(frame[14 + ihl:14 + tot])
    seg[16:18] = b"\0\0"
    pseudo = frame[26:34] + struct.pack("!BBH", 0, 6, len(seg))
    seg[16:18] = struct.pack("!H", _csum(pseudo + bytes(seg)))
    return frame[:14 + ihl] + bytes(seg) + frame[14 + tot:]


class FrameRelay:
    """Userspace L2 relay between tlr0 and tlr1 in tl-rtr adding `delay` seconds
    each way (the kernel here has no netem). Bounded in frames and time."""

    def __init__(self, delay=0.02, max_frames=5000, max_seconds=60):
        self.delay, self.max_frames, self.max_seconds = delay, max_frames, max_seconds
        self.stop_evt = threading.Event()
        self.relayed = 0
        with InNs(NS_RTR):
            self.socks = []
            for ifn in ("tlr0", "tlr1"):
                so = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
                so.bind((ifn, 0))
                self.socks.append(so)
        self.t = thread(self._run)

    def _run(self):
        import select
        queue = []
        end = time.monotonic() + self.max_seconds
        while not self.stop_evt.is_set() and time.monotonic() < end and self.relayed < self.max_frames:
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                _, out, frame = queue.pop(0)
                out.send(frame)
            wait = min(0.005, max(0.0, queue[0][0] - now)) if queue else 0.005
            r, _, _ = select.select(self.socks, [], [], wait)
            for so in r:
                frame, a = so.recvfrom(65535)
                if a[2] == socket.PACKET_OUTGOING:
                    continue  # our own transmissions
                other = self.socks[1] if so is self.socks[0] else self.socks[0]
                queue.append((time.monotonic() + self.delay, other, _fix_tcp4_checksum(frame)))
                self.relayed += 1

    def stop(self):
        self.stop_evt.set()
        self.t.join(5)
        for so in self.socks:
            so.close()


# ---------------------------------------------------------------- capture

class Capture:
    """tcpdump (or dumpcap) writing to a file inside a namespace."""

    def __init__(self, ns, ifaces, path, filt="tcp", linktype=None, tool="tcpdump", extra=()):
        self.path, self.ns, self.ifaces, self.linktype, self.tool = path, ns, ifaces, linktype, tool
        if os.path.exists(path):
            os.unlink(path)
        if tool == "tcpdump":
            cmd = ["tcpdump", "-i", ifaces[0], "--immediate-mode", "-U", "-B", "16384", "-w", path] + list(extra)
            if linktype:
                cmd += ["-y", linktype]
        else:
            cmd = ["dumpcap", "-q", "-B", "16", "-w", path] + list(extra)
            for i in ifaces:
                cmd += ["-i", i]
        if filt and tool == "tcpdump":
            cmd += [filt]
        elif filt:
            cmd += ["-f", filt]
        self.errpath = path + ".stderr"
        self.errf = open(self.errpath, "w")
        self.p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdout=subprocess.DEVNULL,
                                  stderr=self.errf)
        if PIDFILE:
            with open(PIDFILE, "a") as f:
                f.write("%d\n" % self.p.pid)
        ready = "listening on" if tool == "tcpdump" else "Capturing on"
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            with open(self.errpath) as f:
                if ready in f.read():
                    break
            if self.p.poll() is not None:
                raise RuntimeError("capture died: " + open(self.errpath).read())
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("capture did not start: " + open(self.errpath).read())
        time.sleep(0.2)

    def stop(self):
        time.sleep(0.3)  # let the last packets reach the file
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        self.errf.close()
        with open(self.errpath) as f:
            err = f.read()
        os.unlink(self.errpath)
        if self.tool == "tcpdump":
            m = re.search(r"(\d+) packets? dropped by kernel", err)
            self.kernel_drops = int(m.group(1)) if m else None
        else:  # dumpcap: "Packets received/dropped on interface 'tlr0': 13/0 ..."
            drops = re.findall(r"received/dropped on interface '[^']*': \d+/(\d+)", err)
            self.kernel_drops = sum(int(d) for d in drops) if drops else None


# ---------------------------------------------------------------- truth helpers

SS_STATE = {
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECEIVED",
    "FIN-WAIT-1": "FIN_WAIT_1", "FIN-WAIT-2": "FIN_WAIT_2", "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK", "CLOSING": "CLOSING",
    "LISTEN": "LISTEN", "UNCONN": "CLOSED", "CLOSE": "CLOSED",
}


def ss_sockets(ns):
    out = run(["ss", "-tanoH"], ns=ns, check=False)
    socks = []
    for line in out.splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        timer = re.search(r"timer:\((\S+?)\)", line)
        socks.append({"state": SS_STATE.get(f[0], f[0]), "ss_state": f[0], "local": f[3],
                      "peer": f[4], "send_q": int(f[2]), "recv_q": int(f[1]),
                      "timer": timer.group(1) if timer else None})
    return socks


def ss_time_wait(ns):
    out = run(["ss", "-tanH", "state", "time-wait"], ns=ns, check=False)
    return [" ".join(l.split()) for l in out.splitlines() if l.strip()]


def nstat(ns):
    out = run(["nstat", "-asz"], ns=ns, check=False)
    vals = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 2 and f[1].isdigit():
            vals[f[0]] = int(f[1])
    return vals


def errname(e):
    # Python maps a kernel ETIMEDOUT to TimeoutError too; only its own timeout has no errno.
    en = getattr(e, "errno", None)
    if en is None:
        return "APP_TIMEOUT" if isinstance(e, socket.timeout) else str(e)
    return errno.errorcode.get(en, str(e))


def fmt_ep(ip, port):
    return ("[%s]:%d" % (ip, port)) if ":" in ip else ("%s:%d" % (ip, port))


TCPDUMP_RE = re.compile(
    r"IP6? (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\](?:, seq (\d+)(?::(\d+))?)?(?:, ack (\d+))?"
    r".*?length (\d+)")


def tcpdump_read(path, extra=()):
    """Packets as printed by the installed tcpdump (independent of tcplens)."""
    out = run(["tcpdump", "-n", "-S", "-r", path] + list(extra), check=True)
    lines = out.splitlines()
    pkts = []
    for i, line in enumerate(lines, 1):
        m = TCPDUMP_RE.search(line)
        if not m:
            pkts.append({"n": i, "tcp": False, "line": line})
            continue
        s, sp, d, dp, flags, seq, seq_end, ack, length = m.groups()
        pkts.append({"n": i, "tcp": True, "src": fmt_ep(s, int(sp)), "dst": fmt_ep(d, int(dp)),
                     "flags": flags, "seq": int(seq) if seq else None,
                     "seq_end": int(seq_end) if seq_end else (int(seq) if seq else None),
                     "ack": int(ack) if ack else None, "len": int(length), "line": line})
    return pkts


def capture_facts(pkts, cli, srv):
    """Per-direction packet facts read from tcpdump's output."""
    facts = {"packets": len(pkts), "tcp_packets": sum(1 for p in pkts if p["tcp"])}
    for side, ep in (("client", cli), ("server", srv)):
        mine = [p for p in pkts if p["tcp"] and p["src"] == ep]
        facts[side] = {
            "packets": len(mine),
            "syn": sum(1 for p in mine if "S" in p["flags"] and "." not in p["flags"]),
            "synack": sum(1 for p in mine if "S" in p["flags"] and "." in p["flags"]),
            "fin": sum(1 for p in mine if "F" in p["flags"]),
            "rst": sum(1 for p in mine if "R" in p["flags"]),
            "data_segments": sum(1 for p in mine if p["len"] > 0),
            "payload_bytes": sum(p["len"] for p in mine),
            "first_packet_numbers": {
                "syn": next((p["n"] for p in mine if "S" in p["flags"]), None),
                "fin": next((p["n"] for p in mine if "F" in p["flags"]), None),
                "rst": next((p["n"] for p in mine if "R" in p["flags"]), None),
            },
        }
    fins = [p for p in pkts if p["tcp"] and "F" in p["flags"]]
    facts["first_fin_from"] = None
    if fins:
        facts["first_fin_from"] = "client" if fins[0]["src"] == cli else "server"
    # Crossing FINs: each side's first FIN does not acknowledge the other's FIN.
    fc = next((p for p in fins if p["src"] == cli), None)
    fs = next((p for p in fins if p["src"] == srv), None)
    facts["fins_cross"] = None
    if fc and fs:
        facts["fins_cross"] = bool(fc["ack"] is not None and fs["ack"] is not None
                                   and fc["ack"] <= fs["seq_end"] and fs["ack"] <= fc["seq_end"])
    return facts


class Ctx:
    """One scenario run: endpoints, application events, ss snapshots."""

    def __init__(self, name, topo, fam, cport, sport):
        self.name, self.topo, self.fam = name, topo, fam
        self.cip, self.sip = topo.ips(fam)
        self.cport, self.sport = cport, sport
        self.cli, self.srv = fmt_ep(self.cip, cport), fmt_ep(self.sip, sport)
        self.events, self.snaps = [], []
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def ev(self, side, what, **kw):
        with self.lock:
            e = {"t": round(time.monotonic() - self.t0, 4), "side": side, "event": what}
            e.update(kw)
            self.events.append(e)

    def snap(self, moment):
        snap = {"moment": moment, "t": round(time.monotonic() - self.t0, 4)}
        for ns, role in ((NS_CLI, "client_ns"), (NS_SRV, "server_ns")):
            socks = [s for s in ss_sockets(ns)
                     if s["local"] in (self.cli, self.srv) or s["peer"] in (self.cli, self.srv)]
            snap[role] = socks
            snap[role + "_time_wait"] = [l for l in ss_time_wait(ns) if self.cli in l or self.srv in l]
        self.snaps.append(snap)
        return snap

    def state_of(self, snap, side):
        ns_key = "client_ns" if side == "client" else "server_ns"
        me, peer = (self.cli, self.srv) if side == "client" else (self.srv, self.cli)
        for s in snap[ns_key]:
            if s["local"] == me and s["peer"] == peer:
                return s["state"]
        return "CLOSED"

    def states_seen(self, side):
        seen = []
        for snap in self.snaps:
            st = self.state_of(snap, side)
            if not seen or seen[-1] != st:
                seen.append(st)
        return seen

    # sockets created inside the namespaces
    def listener(self, rcvbuf=None, port=None):
        with InNs(NS_SRV):
            s = socket.socket(self.fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((self.sip, port or self.sport))
        s.listen(16)
        s.settimeout(APP_TIMEOUT)
        return s

    def client_sock(self, cport=None, sndbuf=None):
        with InNs(NS_CLI):
            s = socket.socket(self.fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        s.bind((self.cip, cport or self.cport))
        s.settimeout(APP_TIMEOUT)
        return s


def recv_all(sock, ctx, side, limit=1 << 20):
    """Read until EOF or error; bounded by byte count and socket timeout."""
    total = 0
    while total < limit:
        try:
            b = sock.recv(65536)
        except OSError as e:
            ctx.ev(side, "recv_error", error=errname(e), bytes=total)
            return total, errname(e)
        if not b:
            ctx.ev(side, "recv_eof", bytes=total)
            return total, None
        total += len(b)
    return total, "LIMIT"


def thread(fn, *a):
    t = threading.Thread(target=fn, args=a, daemon=True)
    t.start()
    return t


def join(*ts):
    for t in ts:
        t.join(APP_TIMEOUT + 5)
        if t.is_alive():
            raise RuntimeError("application thread hung")


# ---------------------------------------------------------------- scenarios
# Each returns a dict merged into the truth file. Capture starts before and
# stops after the function.

def sc_clean_close(ctx, first="client", linger_ms=150):
    """Request/response, then `first` closes; the peer closes after linger_ms."""
    ls = ctx.listener()

    def server():
        c, _ = ls.accept()
        c.settimeout(APP_TIMEOUT)
        ctx.ev("server", "accept")
        req = c.recv(100)
        c.sendall(b"pong:" + req)
        if first == "server":
            time.sleep(0.05)
            ctx.ev("server", "close")
            c.close()
            return
        n, err = recv_all(c, ctx, "server")
        time.sleep(linger_ms / 1000)
        ctx.snap("server saw EOF, before its close")
        ctx.ev("server", "close")
        c.close()

    st = thread(server)
    s = ctx.client_sock()
    s.connect((ctx.sip, ctx.sport))
    ctx.ev("client", "connected")
    s.sendall(b"ping")
    resp = s.recv(100)
    ctx.ev("client", "recv", bytes=len(resp))
    if first == "client":
        time.sleep(0.05)
        ctx.ev("client", "close")
        s.close()
        time.sleep(0.03)
        ctx.snap("after client close")
    else:
        recv_all(s, ctx, "client")
        ctx.snap("client saw EOF, before its close")
        time.sleep(linger_ms / 1000)
        ctx.ev("client", "close")
        s.close()
    join(st)
    ls.close()
    time.sleep(0.2)
    ctx.snap("final")
    return {"app_close_order": [first, "server" if first == "client" else "client"]}


def sc_three_packet_close(ctx):
    """Client closes; server closes as soon as it reads EOF so its FIN can carry
    the (delayed) ACK of the client's FIN. Retries on fresh ports until the
    capture shows it, bounded."""
    results = []
    for attempt in range(3):
        cport = ctx.cport + attempt
        ls = ctx.listener(port=ctx.sport + attempt)

        def server():
            c, _ = ls.accept()
            c.settimeout(APP_TIMEOUT)
            c.recv(100)
            c.sendall(b"pong")
            recv_all(c, ctx, "server")
            c.close()
            ctx.ev("server", "close", attempt=attempt)

        st = thread(server)
        s = ctx.client_sock(cport=cport)
        s.connect((ctx.sip, ctx.sport + attempt))
        s.sendall(b"ping")
        s.recv(100)
        time.sleep(0.06)
        ctx.ev("client", "close", attempt=attempt)
        s.close()
        join(st)
        ls.close()
        time.sleep(0.15)
        results.append((cport, ctx.sport + attempt))
    return {"_attempts": results}


def sc_half_close(ctx):
    ls = ctx.listener()

    def server():
        c, _ = ls.accept()
        c.settimeout(APP_TIMEOUT)
        n, _ = recv_all(c, ctx, "server")
        for i in range(3):
            c.sendall(b"reply-chunk-%d:" % i + b"r" * 300)
            ctx.ev("server", "send_after_peer_fin", chunk=i)
            time.sleep(0.1)
            if i == 1:
                ctx.snap("half-closed: client FIN acked, server still sending")
        ctx.ev("server", "close")
        c.close()

    st = thread(server)
    s = ctx.client_sock()
    s.connect((ctx.sip, ctx.sport))
    s.sendall(b"request-body-" + b"q" * 200)
    ctx.ev("client", "shutdown_wr")
    s.shutdown(socket.SHUT_WR)
    n, err = recv_all(s, ctx, "client")
    ctx.ev("client", "close", received=n)
    s.close()
    join(st)
    ls.close()
    time.sleep(0.2)
    ctx.snap("final")
    return {"app_close_order": ["client (shutdown SHUT_WR)", "server"], "client_received_after_shutdown": n}


def sc_simultaneous(ctx, attempts=20, relay_delay=None):
    """Both sides call shutdown(SHUT_WR) after a barrier; repeat on fresh ports."""
    tried = []
    relay = FrameRelay(relay_delay) if relay_delay else None
    try:
        return _simultaneous(ctx, attempts, tried)
    finally:
        if relay:
            relay.stop()
            tried.append({"relay_frames": relay.relayed, "relay_delay_s": relay_delay})


def _simultaneous(ctx, attempts, tried):
    for attempt in range(attempts):
        cport, sport = ctx.cport + attempt, ctx.sport + attempt
        ls = ctx.listener(port=sport)
        bar = threading.Barrier(2, timeout=APP_TIMEOUT)

        def server():
            c, _ = ls.accept()
            c.settimeout(APP_TIMEOUT)
            c.recv(100)
            c.sendall(b"pong")
            bar.wait()
            c.shutdown(socket.SHUT_WR)
            recv_all(c, ctx, "server")
            time.sleep(0.05)
            c.close()

        st = thread(server)
        s = ctx.client_sock(cport=cport)
        s.connect((ctx.sip, sport))
        s.sendall(b"ping")
        s.recv(100)
        time.sleep(0.05)
        bar.wait()
        s.shutdown(socket.SHUT_WR)
        recv_all(s, ctx, "client")
        time.sleep(0.05)
        s.close()
        join(st)
        ls.close()
        time.sleep(0.1)
        cli, srv = fmt_ep(ctx.cip, cport), fmt_ep(ctx.sip, sport)
        tw_c = [l for l in ss_time_wait(NS_CLI) if cli in l]
        tw_s = [l for l in ss_time_wait(NS_SRV) if srv in l]
        tried.append({"attempt": attempt, "client": cli, "server": srv,
                      "time_wait_client": bool(tw_c), "time_wait_server": bool(tw_s)})
        if tw_c and tw_s:
            break
    return {"_sim_attempts": tried}


def sc_simultaneous_open(ctx, attempts=5, relay_delay=0.02):
    """RFC 9293 Figure 7: both sockets bound to fixed ports connect() to each other, released
    by one barrier; across the delay relay both SYNs cross. Repeated on fresh ports (bounded)
    until the capture shows both bare SYNs; then a request/response and a client-first close."""
    relay = FrameRelay(relay_delay)
    try:
        res = _simultaneous_open(ctx, attempts)
    finally:
        relay.stop()
    res["relay"] = {"relay_frames": relay.relayed, "relay_delay_s": relay_delay}
    return res


def _simultaneous_open(ctx, attempts):
    tried = []
    for attempt in range(attempts):
        cport, sport = ctx.cport + attempt, ctx.sport + attempt
        cli, srv = fmt_ep(ctx.cip, cport), fmt_ep(ctx.sip, sport)
        c = ctx.client_sock(cport=cport)
        with InNs(NS_SRV):
            s = socket.socket(ctx.fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ctx.sip, sport))
        s.settimeout(APP_TIMEOUT)
        bar = threading.Barrier(2, timeout=APP_TIMEOUT)
        result = {}

        def srv_connect():
            bar.wait()
            try:
                s.connect((ctx.cip, cport))
                result["server"] = None
            except OSError as e:
                result["server"] = errname(e)
            ctx.ev("server", "connect_result", error=result["server"])

        st = thread(srv_connect)
        bar.wait()
        try:
            c.connect((ctx.sip, sport))
            result["client"] = None
        except OSError as e:
            result["client"] = errname(e)
        ctx.ev("client", "connect_result", error=result["client"])
        join(st)
        ctx.cli, ctx.srv = cli, srv
        snap = ctx.snap("attempt %d: both connect() returned" % attempt)
        states = {"client": ctx.state_of(snap, "client"), "server": ctx.state_of(snap, "server")}
        ok = result["client"] is None and result["server"] is None
        if ok:
            c.sendall(b"ping")
            req = s.recv(100)
            s.sendall(b"pong:" + req)
            got = c.recv(100)
            ctx.ev("client", "recv", bytes=len(got))
            time.sleep(0.1)
            ctx.ev("client", "close")
            c.close()
            recv_all(s, ctx, "server")
            time.sleep(0.1)
            ctx.ev("server", "close")
            s.close()
        else:
            c.close()
            s.close()
        time.sleep(0.3)
        # tcpdump writes packet by packet (-U): read what it has so far.
        pkts = [p for p in tcpdump_read(ctx.cap_path) if p["tcp"] and cli in (p["src"], p["dst"])]
        syns = {p["src"] for p in pkts if p["flags"] == "S"}
        crossed = syns == {cli, srv}
        tried.append({"attempt": attempt, "client": cli, "server": srv,
                      "client_connect_error": result["client"],
                      "server_connect_error": result["server"],
                      "states_after_connect": states, "syns_crossed": crossed})
        if ok and crossed:
            break
    return {"_open_attempts": tried}


def sc_refused(ctx):
    s = ctx.client_sock()
    err = None
    try:
        s.connect((ctx.sip, ctx.sport))
    except OSError as e:
        err = errname(e)
    ctx.ev("client", "connect_result", error=err)
    s.close()
    ctx.snap("final")
    return {"client_error": err}


def sc_linger_abort(ctx):
    ls = ctx.listener()
    res = {}

    def server():
        c, _ = ls.accept()
        c.settimeout(APP_TIMEOUT)
        c.recv(100)
        c.sendall(b"pong")
        _, err = recv_all(c, ctx, "server")
        res["server_error"] = err
        c.close()

    st = thread(server)
    s = ctx.client_sock()
    s.connect((ctx.sip, ctx.sport))
    s.sendall(b"ping")
    s.recv(100)
    time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ctx.ev("client", "close_with_linger_1_0")
    s.close()
    join(st)
    ls.close()
    time.sleep(0.1)
    ctx.snap("final")
    return res


def sc_connect_via_router(ctx, rules, sets="", expect_error=False):
    """Connect through tl-rtr whose forward chain holds `rules`, exchange a little,
    close (client first, server 100 ms later)."""
    kw = dict(cli=ctx.cip, srv=ctx.sip, sport=ctx.sport)
    body = (sets.format(**kw) + "\n chain fw {\n  type filter hook forward priority 0;\n"
            + rules.format(**kw) + "\n }\n")
    nft(NS_RTR, "table inet tl {\n" + body + "}\n")
    ls = ctx.listener()
    res = {}

    def server():
        try:
            c, _ = ls.accept()
        except OSError as e:
            ctx.ev("server", "accept_error", error=errname(e))
            return
        c.settimeout(APP_TIMEOUT)
        ctx.ev("server", "accept")
        c.recv(100)
        c.sendall(b"pong")
        recv_all(c, ctx, "server")
        time.sleep(0.1)
        ctx.ev("server", "close")
        c.close()
        time.sleep(0.05)
        ctx.snap("just after server close")

    # When connect is expected to fail, nobody accepts (the listener still answers SYNs).
    st = None if expect_error else thread(server)
    s = ctx.client_sock()
    t = time.monotonic()
    try:
        s.connect((ctx.sip, ctx.sport))
        res["connect_seconds"] = round(time.monotonic() - t, 3)
        ctx.ev("client", "connected", after_s=res["connect_seconds"])
        s.sendall(b"ping")
        s.recv(100)
        time.sleep(0.05)
        ctx.ev("client", "close")
        s.close()
    except OSError as e:
        res["client_error"] = errname(e)
        res["connect_seconds"] = round(time.monotonic() - t, 3)
        ctx.ev("client", "connect_error", error=errname(e), after_s=res["connect_seconds"])
        s.close()
    if st:
        join(st)
    ls.close()
    time.sleep(1.0)
    ctx.snap("final")
    return res


def sc_keepalive(ctx, idle_s=3.6):
    ls = ctx.listener()

    def server():
        c, _ = ls.accept()
        c.settimeout(APP_TIMEOUT)
        c.recv(100)
        c.sendall(b"pong")
        recv_all(c, ctx, "server")
        time.sleep(0.1)
        c.close()

    st = thread(server)
    s = ctx.client_sock()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    s.connect((ctx.sip, ctx.sport))
    s.sendall(b"ping")
    s.recv(100)
    ctx.ev("client", "idle", seconds=idle_s)
    time.sleep(idle_s)
    ctx.snap("after idle (keep-alives exchanged)")
    ctx.ev("client", "close")
    s.close()
    join(st)
    ls.close()
    time.sleep(0.2)
    ctx.snap("final")
    return {"keepalive": {"TCP_KEEPIDLE": 1, "TCP_KEEPINTVL": 1, "TCP_KEEPCNT": 3, "idle_seconds": idle_s}}


def sc_keepalive_timeout(ctx):
    """Router silently drops everything after the exchange; client keep-alive
    (idle 1, interval 1, count 2) gives up with ETIMEDOUT."""
    nft(NS_RTR, "table inet tl {\n chain fw {\n  type filter hook forward priority 0;\n }\n}\n")
    ls = ctx.listener()
    res = {}
    done = threading.Event()

    def server():
        c, _ = ls.accept()
        c.settimeout(APP_TIMEOUT)
        c.recv(100)
        c.sendall(b"pong")
        done.wait(APP_TIMEOUT)
        ctx.ev("server", "still_open_when_client_gave_up")
        res["_server_sock"] = c

    st = thread(server)
    s = ctx.client_sock()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
    s.connect((ctx.sip, ctx.sport))
    s.sendall(b"ping")
    s.recv(100)
    time.sleep(0.1)
    nft(NS_RTR, "add rule inet tl fw tcp sport %d counter drop\nadd rule inet tl fw tcp dport %d counter drop\n"
        % (ctx.sport, ctx.sport))
    ctx.ev("router", "blackhole_installed")
    t = time.monotonic()
    _, err = recv_all(s, ctx, "client")
    res["client_error"] = err
    res["seconds_until_error"] = round(time.monotonic() - t, 3)
    s.close()
    time.sleep(0.1)
    ctx.snap("final (client gave up)")
    done.set()
    join(st)
    res.pop("_server_sock").close()
    ls.close()
    return res


def sc_zero_window(ctx, total=24000, stall_s=2.5):
    ls = ctx.listener(rcvbuf=2048)
    res = {}

    def server():
        c, _ = ls.accept()
        c.settimeout(APP_TIMEOUT)
        ctx.ev("server", "accept_then_stall", seconds=stall_s)
        time.sleep(stall_s)
        ctx.snap("receiver stalled (client send queue full, server recv queue full)")
        ctx.ev("server", "resume_reading")
        n, err = recv_all(c, ctx, "server")
        res["server_received"] = n
        c.close()

    st = thread(server)
    s = ctx.client_sock(sndbuf=4096)
    s.connect((ctx.sip, ctx.sport))
    t = time.monotonic()
    s.sendall(b"z" * total)
    ctx.ev("client", "sendall_done", bytes=total, seconds=round(time.monotonic() - t, 3))
    s.close()
    ctx.ev("client", "close")
    join(st)
    ls.close()
    time.sleep(0.2)
    ctx.snap("final")
    res["client_sent"] = total
    res["SO_RCVBUF_requested_server"] = 2048
    res["SO_SNDBUF_requested_client"] = 4096
    return res


def sc_loss(ctx, total=30000, drop_pkt=7):
    rule = ("  ip saddr %s tcp dport %d ct original packets %d counter drop"
            % (ctx.cip, ctx.sport, drop_pkt))
    nft(NS_RTR, "table inet tl {\n chain fw {\n  type filter hook forward priority 0;\n%s\n }\n}\n" % rule)
    ls = ctx.listener()
    res = {}

    def server():
        c, _ = ls.accept()
        c.settimeout(APP_TIMEOUT)
        n, _ = recv_all(c, ctx, "server")
        res["server_received"] = n
        c.sendall(b"ok")
        c.close()

    st = thread(server)
    s = ctx.client_sock()
    s.connect((ctx.sip, ctx.sport))
    s.sendall(b"d" * total)
    s.shutdown(socket.SHUT_WR)
    recv_all(s, ctx, "client")
    s.close()
    join(st)
    ls.close()
    time.sleep(0.2)
    ctx.snap("final")
    res["client_sent"] = total
    res["router_rule"] = rule.strip()
    return res


def sc_short_exchange(ctx):
    """Link-type coverage: connect, 5 bytes each way, client closes first."""
    return sc_clean_close(ctx, "client", linger_ms=60)


# ---------------------------------------------------------------- driver

SCENARIOS = []
SYSCTLS_RECORDED = ["net.ipv4.tcp_syn_retries", "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_syn_linear_timeouts",
                    "net.ipv4.tcp_timestamps", "net.ipv4.tcp_sack", "net.ipv4.tcp_window_scaling",
                    "net.ipv4.tcp_ecn", "net.ipv4.tcp_early_retrans", "net.ipv4.tcp_recovery"]


def scenario(name, fn, desc, routed=False, fam=socket.AF_INET, cport=40001, sport=5001,
             cap_ns=NS_CLI, cap_if="tlc0", linktype=None, tool="tcpdump", filt="tcp",
             cap_ifaces=None, extra=(), topo_kw=None, vlan=None, ext="pcap", also_srv=False, **kw):
    SCENARIOS.append(dict(name=name, fn=fn, desc=desc, routed=routed, fam=fam, cport=cport, sport=sport,
                          cap_ns=cap_ns, cap_if=cap_if, linktype=linktype, tool=tool, filt=filt,
                          cap_ifaces=cap_ifaces, extra=extra, topo_kw=topo_kw or {}, vlan=vlan, ext=ext,
                          also_srv=also_srv, kw=kw))


V4, V6 = socket.AF_INET, socket.AF_INET6
SYN_ONLY = "tcp flags & (syn|ack) == syn"

scenario("clean_close_client_first_v4", sc_clean_close, "Request/response, client closes first, server closes 150 ms after EOF (4-packet close).", first="client")
scenario("clean_close_client_first_v6", sc_clean_close, "IPv6 variant of clean_close_client_first.", fam=V6, first="client")
scenario("clean_close_server_first_v4", sc_clean_close, "Request/response, server closes first, client closes 150 ms after EOF.", first="server")
scenario("clean_close_server_first_v6", sc_clean_close, "IPv6 variant of clean_close_server_first.", fam=V6, first="server")
scenario("simultaneous_close_delay_v4", sc_simultaneous, "Simultaneous close across a 20 ms (each way) userspace L2 relay in tl-rtr: both sides call shutdown(SHUT_WR) released by one barrier, so the FINs cross on the wire. Captured on the client veth.",
         routed="relay", relay_delay=0.02, attempts=5, topo_kw={"ipv6": False})
scenario("three_packet_close_v4", sc_three_packet_close, "Client closes; server closes immediately on EOF so its FIN piggybacks the delayed ACK (FIN, FIN-ACK, ACK). Several connections on consecutive ports; the chosen one is in the truth file.")
scenario("half_close_v4", sc_half_close, "Client sends a request then shutdown(SHUT_WR); server sends three chunks 100 ms apart into the half-closed connection, then closes.")
scenario("near_simultaneous_close_v4", sc_simultaneous, "Both sides call shutdown(SHUT_WR) released by one barrier on a zero-latency veth, repeated on fresh ports (at most 10) until both sides end in TIME_WAIT. On this machine the FINs never crossed: the second shutdown always ran after the first FIN had been delivered, so this is an ordinary close with a FIN gap of tens of microseconds (see details.attempts). The truly simultaneous close is simultaneous_close_delay_v4.", attempts=10)
scenario("simultaneous_open_v4", sc_simultaneous_open, "RFC 9293 simultaneous open (Figure 7) across a 20 ms (each way) userspace L2 relay in tl-rtr: the client (10.231.3.1:40001) and the server (10.231.3.2:5001) bind fixed ports and connect() to each other, released by one barrier, so both SYNs cross; each answers the other's SYN with a SYN-ACK carrying its own ISN again. Then ping/pong and a client-first close. Captured on the client veth; retried on fresh ports (at most 5) until the capture shows both bare SYNs (see details.attempts).",
         routed="relay", topo_kw={"ipv6": False})
scenario("refused_v4", sc_refused, "Connect to a port with no listener: SYN answered by RST-ACK, ECONNREFUSED.")
scenario("refused_v6", sc_refused, "IPv6 variant of refused.", fam=V6)
scenario("linger_abort_v4", sc_linger_abort, "Client sets SO_LINGER {1,0} and closes: RST instead of FIN; server read gets ECONNRESET.")
scenario("lost_syn_v4", sc_connect_via_router, "Router drops the first two SYNs: the client retransmits SYN 1 s apart (kernel default tcp_syn_linear_timeouts=4 makes the first SYN retransmissions linear, not exponential), then the handshake completes; clean close client first.",
         routed=True, rules="  %s quota until 121 bytes counter drop" % SYN_ONLY)
scenario("lost_synack_v4", sc_connect_via_router, "Router drops the first two SYN-ACKs. Captured on the server veth (tls0) where the SYN-ACK retransmissions are visible; the client-side view is lost_synack_v4.client.pcap.",
         routed=True, rules="  tcp flags & (syn|ack) == syn|ack ct reply packets 1-2 counter drop", cap_ns=NS_SRV, cap_if="tls0", also_srv=True)
scenario("syn_timeout_v4", sc_connect_via_router, "Router drops every SYN; tcp_syn_retries=2 and tcp_syn_linear_timeouts=0 so the client sends 3 SYNs with exponential backoff (0, 1, 3 s) and connect() fails with ETIMEDOUT at about 7 s.",
         routed=True, rules="  %s counter drop" % SYN_ONLY, expect_error=True, topo_kw={"syn_retries": 2, "syn_linear_timeouts": 0})
scenario("syn_timeout_linear_v4", sc_connect_via_router, "As syn_timeout_v4 but with the kernel default tcp_syn_linear_timeouts=4: the time budget of tcp_syn_retries=2 (7 s) is spent on SYN retransmissions 1 s apart.",
         routed=True, rules="  %s counter drop" % SYN_ONLY, expect_error=True, topo_kw={"syn_retries": 2})
scenario("lost_final_ack_v4", sc_connect_via_router, "Client closes first; the router drops the client's final ACK (first pure ACK from the client after the server's FIN) so the server in LAST_ACK retransmits its FIN and the client (TIME_WAIT) ACKs again.",
         routed=True,
         sets=" set finseen {{ type ipv4_addr . inet_service; flags dynamic; timeout 60s; }}",
         rules="  ip saddr {srv} tcp sport {sport} tcp flags & fin == fin update @finseen {{ ip daddr . tcp dport }}\n"
               "  ip saddr . tcp sport @finseen tcp flags == ack quota until 53 bytes counter drop")
scenario("keepalive_v4", sc_keepalive, "Client sets SO_KEEPALIVE with TCP_KEEPIDLE=1, TCP_KEEPINTVL=1 and idles 3.6 s: keep-alive probes answered by the server; then clean close.")
scenario("keepalive_timeout_v4", sc_keepalive_timeout, "After an exchange the router drops all packets of the flow; client keep-alive (idle 1 s, interval 1 s, count 2) fails with ETIMEDOUT and the kernel sends a RST (captured on the client veth, dropped by the router).", routed=True)
scenario("zero_window_v4", sc_zero_window, "Server SO_RCVBUF=2048 and does not read for 2.5 s while the client sends 24000 bytes: window fills, zero window, persist (zero-window) probes with backoff, window update when the server resumes reading.")
scenario("loss_fast_retransmit_v4", sc_loss, "Client sends 30000 bytes through the router which drops one data segment (the 7th client packet of the flow): SACK duplicate ACKs and a fast retransmission.", routed=True)

scenario("linktype_ethernet_v4", sc_short_exchange, "Link-type coverage: Ethernet (veth), IPv4, unfiltered (ARP included).", filt=None, topo_kw={"ipv6": False})
scenario("linktype_ethernet_v6", sc_short_exchange, "Link-type coverage: Ethernet (veth), IPv6, unfiltered (neighbour discovery included).", fam=V6, filt=None)
scenario("linktype_sll2_v4", sc_short_exchange, "Link-type coverage: LINUX_SLL2 (tcpdump -i any).", cap_if="any", filt="tcp", topo_kw={"ipv6": False})
scenario("linktype_sll_v4", sc_short_exchange, "Link-type coverage: LINUX_SLL (tcpdump -i any -y LINUX_SLL).", cap_if="any", linktype="LINUX_SLL", filt="tcp", topo_kw={"ipv6": False})
scenario("linktype_vlan_v4", sc_short_exchange, "Link-type coverage: Ethernet with 802.1Q tag VID 100 on every frame (tcx eBPF vlan push/pop on both veth ends), unfiltered (ARP included).", filt=None, vlan=[(0x8100, 100)], topo_kw={"ipv6": False})
scenario("linktype_qinq_v4", sc_short_exchange, "Link-type coverage: QinQ, outer 802.1ad (0x88a8) VID 200, inner 802.1Q VID 10, unfiltered (ARP included).", filt=None, vlan=[(0x8100, 10), (0x88A8, 200)], topo_kw={"ipv6": False})
scenario("linktype_vlan_v6", sc_short_exchange, "Link-type coverage: 802.1Q VID 100 carrying IPv6.", fam=V6, filt="tcp", vlan=[(0x8100, 100)])
scenario("linktype_nano_v4", sc_short_exchange, "Link-type coverage: nanosecond-resolution pcap (tcpdump --time-stamp-precision nano).", extra=("--time-stamp-precision", "nano"), topo_kw={"ipv6": False})
scenario("linktype_pcapng_2if_v4", sc_short_exchange, "pcapng with two interfaces: dumpcap on both router veths (tlr0 towards the client, tlr1 towards the server); every packet appears twice, TTL 64 on one interface and 63 on the other.",
         routed=True, cap_ns=NS_RTR, tool="dumpcap", cap_ifaces=["tlr0", "tlr1"], ext="pcapng", topo_kw={"ipv6": False})


def write_truth(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


class CaptureIncomplete(Exception):
    """The capture tool itself reported losing packets."""


def do_scenario(sc, outdir):
    for attempt in range(3):
        try:
            return _do_scenario(sc, outdir)
        except CaptureIncomplete as e:
            log_err("   %s: %s, running it again" % (sc["name"], e))
    raise RuntimeError("capture kept dropping packets")


def _do_scenario(sc, outdir):
    name = sc["name"]
    log_err("== %s" % name)
    topo = Topo(sc["routed"], **sc["topo_kw"])
    try:
        if sc["vlan"]:
            vlan_tag_link(NS_CLI, "tlc0", sc["vlan"])
            vlan_tag_link(NS_SRV, "tls0", sc["vlan"])
        ctx = Ctx(name, topo, sc["fam"], sc["cport"], sc["sport"])
        before = {ns: nstat(ns) for ns in topo.nss}
        ctl = run(["sysctl"] + SYSCTLS_RECORDED, ns=NS_CLI, check=False)
        sc["_sysctls"] = dict(l.split(" = ", 1) for l in ctl.splitlines() if " = " in l)
        path = os.path.join(outdir, "%s.%s" % (name, sc["ext"]))
        ifaces = sc["cap_ifaces"] or [sc["cap_if"]]
        caps = [Capture(sc["cap_ns"], ifaces, path, filt=sc["filt"], linktype=sc["linktype"],
                        tool=sc["tool"], extra=sc["extra"])]
        ctx.cap_path = path
        side_path = None
        if sc["also_srv"]:
            side_path = os.path.join(outdir, "%s.client.pcap" % name)
            caps.append(Capture(NS_CLI, ["tlc0"], side_path, filt=sc["filt"]))
        try:
            res = sc["fn"](ctx, **sc["kw"])
        except BaseException:
            for c in caps:
                c.stop()
                os.unlink(c.path)  # no capture without its truth file
            raise
        for c in caps:
            c.stop()
            os.chmod(c.path, 0o644)
        if any(c.kernel_drops for c in caps):
            for c in caps:
                os.unlink(c.path)
            raise CaptureIncomplete("capture reported %s packets dropped by kernel"
                                    % [c.kernel_drops for c in caps])
        after = {ns: nstat(ns) for ns in topo.nss}
        router_rules = nft_rules_with_counters(NS_RTR) if topo.routed else None
        truth = build_truth(sc, ctx, res, path, side_path, before, after, router_rules, outdir)
        write_truth(os.path.join(outdir, name + ".truth.json"), truth)
    finally:
        cleanup_ns()


def nstat_delta(before, after):
    d = {}
    for k, v in after.items():
        if not (k.startswith("Tcp") or k.startswith("TcpExt")):
            continue
        if k in ("TcpRtoAlgorithm", "TcpRtoMin", "TcpRtoMax", "TcpMaxConn", "TcpCurrEstab"):
            continue
        dv = v - before.get(k, 0)
        if dv:
            d[k] = dv
    return d


def select_conn(path, cli, srv, outdir, name, ext):
    """Keep only one connection of a multi-attempt capture (tcpdump -w re-write)."""
    cport = cli.rsplit(":", 1)[1]
    tmp = path + ".all"
    os.replace(path, tmp)
    run(["tcpdump", "-r", tmp, "-w", path, "tcp port %s" % cport])
    os.unlink(tmp)


def build_truth(sc, ctx, res, path, side_path, before, after, router_rules, outdir):
    name = sc["name"]
    cli, srv = ctx.cli, ctx.srv
    extra_notes = []
    # Multi-attempt scenarios: choose the connection that shows the behaviour.
    if "_sim_attempts" in res:
        alltried = res.pop("_sim_attempts")
        tried = [t for t in alltried if "attempt" in t]
        relay = [t for t in alltried if "relay_frames" in t]
        if relay:
            res["relay"] = relay[0]
        good = [t for t in tried if t["time_wait_client"] and t["time_wait_server"]]
        chosen = good[0] if good else tried[-1]
        cli, srv = chosen["client"], chosen["server"]
        ctx.cli, ctx.srv = cli, srv
        select_conn(path, cli, srv, outdir, name, sc["ext"])
        res["attempts"] = tried
        res["simultaneous_close_achieved"] = bool(good)
        ctx.snap("final (chosen connection)")
    if "_open_attempts" in res:
        tried = res.pop("_open_attempts")
        good = [t for t in tried if t["syns_crossed"] and not t["client_connect_error"]
                and not t["server_connect_error"]]
        chosen = good[0] if good else tried[-1]
        cli, srv = chosen["client"], chosen["server"]
        ctx.cli, ctx.srv = cli, srv
        select_conn(path, cli, srv, outdir, name, sc["ext"])
        res["attempts"] = tried
        res["simultaneous_open_achieved"] = bool(good)
        res["client_connect_error"] = chosen["client_connect_error"]
        res["server_connect_error"] = chosen["server_connect_error"]
        res["states_after_connect"] = chosen["states_after_connect"]
        ctx.snap("final (chosen connection)")
    if "_attempts" in res:
        atts = res.pop("_attempts")
        allpkts = tcpdump_read(path)
        chosen, merged = None, []
        for cport, sport in atts:
            c, s = fmt_ep(ctx.cip, cport), fmt_ep(ctx.sip, sport)
            conn = [p for p in allpkts if p["tcp"] and c in (p["src"], p["dst"])]
            fins = [p for p in conn if "F" in p["flags"]]
            # 3-packet close: the server's FIN is the very next packet after the
            # client's FIN and it acknowledges the client's FIN.
            ok = False
            if len(fins) >= 2 and fins[0]["src"] == c:
                i = conn.index(fins[0])
                nxt = conn[i + 1] if i + 1 < len(conn) else None
                ok = bool(nxt is fins[1] and nxt["src"] == s and nxt["ack"] == fins[0]["seq_end"] + 1)
            merged.append({"client": c, "server": s, "fin_ack_merged": ok})
            if ok and chosen is None:
                chosen = (c, s)
        if chosen is None:
            chosen = (fmt_ep(ctx.cip, atts[0][0]), fmt_ep(ctx.sip, atts[0][1]))
        cli, srv = chosen
        ctx.cli, ctx.srv = cli, srv
        select_conn(path, cli, srv, outdir, name, sc["ext"])
        res["attempts"] = merged
        res["three_packet_close_achieved"] = any(m["fin_ack_merged"] for m in merged)
        ctx.snap("final (chosen connection)")
    pkts = tcpdump_read(path)
    facts = capture_facts(pkts, cli, srv)
    final = ctx.snaps[-1] if ctx.snaps else None
    cstate = ctx.state_of(final, "client") if final else None
    sstate = ctx.state_of(final, "server") if final else None
    tw_c = any("TIME_WAIT" == ctx.state_of(s, "client") for s in ctx.snaps)
    tw_s = any("TIME_WAIT" == ctx.state_of(s, "server") for s in ctx.snaps)
    time_wait_on = "both" if tw_c and tw_s else "client" if tw_c else "server" if tw_s else None
    if facts["client"]["syn"] == 0:
        handshake = "not_seen"
    elif facts["server"]["rst"] and not facts["server"]["synack"]:
        handshake = "refused"
    elif facts["server"]["synack"] == 0:
        handshake = "unanswered"
    else:
        handshake = "complete" if facts["client"]["packets"] > facts["client"]["syn"] else "incomplete"
    if facts["fins_cross"]:
        initiator = "simultaneous"
    else:
        initiator = facts["first_fin_from"]
    errors = {k: v for k, v in res.items() if k.endswith("_error")}
    truth = {
        "scenario": name,
        "description": sc["desc"],
        "kernel": os.uname().release,
        "sysctls_client_ns": sc.get("_sysctls"),
        "capture": {
            "file": os.path.basename(path),
            "namespace": sc["cap_ns"],
            "interfaces": sc["cap_ifaces"] or [sc["cap_if"]],
            "tool": sc["tool"] + ((" -y " + sc["linktype"]) if sc["linktype"] else ""),
            "filter": sc["filt"],
            "linktype": linktype_of(path),
            "packets": facts["packets"],
            "capture_tool_reported_drops": 0,
            "tcp_packets": facts["tcp_packets"],
        },
        "client": cli,
        "server": srv,
        "handshake": handshake,
        "close_initiator": initiator,
        "time_wait_on": time_wait_on,
        "client_final_state": cstate,
        "server_final_state": sstate,
        "client_states_seen": ctx.states_seen("client"),
        "server_states_seen": ctx.states_seen("server"),
        "app_errors": errors,
        "capture_facts": {k: v for k, v in facts.items() if k not in ("packets", "tcp_packets")},
        "nstat_delta": {("client_ns" if ns == NS_CLI else "server_ns" if ns == NS_SRV else "router_ns"):
                        nstat_delta(before[ns], after[ns]) for ns in after},
        "router_nft_rules": router_rules,
        "details": res,
        "ss_snapshots": ctx.snaps,
        "app_events": ctx.events,
        "tcpdump_n_S": [p["line"] for p in pkts],
    }
    if side_path:
        sp = tcpdump_read(side_path)
        truth["client_side_capture"] = {"file": os.path.basename(side_path), "packets": len(sp),
                                        "facts": capture_facts(sp, cli, srv),
                                        "tcpdump_n_S": [p["line"] for p in sp]}
    return truth


def linktype_of(path):
    out = subprocess.run(["tcpdump", "-r", path, "-c", "1"], capture_output=True, text=True, timeout=20)
    m = re.search(r"link-type (\S+)", out.stderr)
    if path.endswith(".pcapng"):
        cap = subprocess.run(["capinfos", "-E", path], capture_output=True, text=True, timeout=20)
        per_if = re.findall(r"Encapsulation = (.*)", cap.stdout)
        return {"first_interface": m.group(1) if m else None, "per_interface": per_if}
    return m.group(1) if m else None


def main():
    global PIDFILE
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("only", nargs="*")
    a = ap.parse_args()
    if a.list:
        for s in SCENARIOS:
            print(s["name"])
        return 0
    PIDFILE = a.pidfile
    os.makedirs(a.out, exist_ok=True)
    failed = []
    names = {s["name"] for s in SCENARIOS}
    for o in a.only:
        if o not in names:
            log_err("unknown scenario %s" % o)
            return 1
    for sc in SCENARIOS:
        if a.only and sc["name"] not in a.only:
            continue
        try:
            do_scenario(sc, a.out)
        except Exception as e:  # keep going; report at the end
            log_err("!! %s failed: %r" % (sc["name"], e))
            failed.append(sc["name"])
    if failed:
        log_err("failed scenarios: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup_ns()

#!/usr/bin/env python3
"""Real-kernel captures with ground truth for tcplens's cross-connection
detectors: SYN flood / half-open, SYN cookies, TIME_WAIT buildup, and a busy
but healthy negative control.

Builds on kernel_captures.py (namespaces, veths, captures, nstat/ss helpers)
but uses its own namespace names (tl-dcli, tl-dsrv, tl-drtr) so it never
collides with a run of that script. Spoofed SYNs are sent from tl-dcli with a
raw socket and carry source addresses from 10.231.1.128/25 only; the router
routes that range back to tl-dcli, whose nftables drops the replies, so the
spoofed "hosts" never answer. Ground truth comes from nstat counters and
ss samples of the namespaces, the applications, and `tcpdump -n -tt -S -v -r`
of the written capture. Run through detector-captures.sh (needs root).
"""

import argparse
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_captures as kc  # noqa: E402

kc.NS_CLI, kc.NS_SRV, kc.NS_RTR = "tl-dcli", "tl-dsrv", "tl-drtr"
kc.ALL_NS = (kc.NS_CLI, kc.NS_SRV, kc.NS_RTR)
NS_CLI, NS_SRV, NS_RTR = kc.ALL_NS
run, nft, InNs, log_err, fmt_ep = kc.run, kc.nft, kc.InNs, kc.log_err, kc.fmt_ep
V4, V6 = socket.AF_INET, socket.AF_INET6
APP_TIMEOUT = kc.APP_TIMEOUT
SNAPLEN = "128"
SPOOF_NET = "10.231.1.128/25"
IP_BIND_ADDRESS_NO_PORT = 24

SERVER_SYSCTLS = ["net.ipv4.tcp_syncookies", "net.ipv4.tcp_timestamps", "net.ipv4.tcp_max_syn_backlog",
                  "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_sack", "net.ipv4.tcp_window_scaling",
                  "net.ipv4.tcp_ecn", "net.core.somaxconn"]
CLIENT_SYSCTLS = ["net.ipv4.tcp_timestamps", "net.ipv4.tcp_sack", "net.ipv4.tcp_window_scaling",
                  "net.ipv4.tcp_ecn", "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_syn_linear_timeouts",
                  "net.ipv4.ip_local_port_range"]
# Linux's SYN-cookie MSS tables (net/ipv4/syncookies.c, net/ipv6/syncookies.c).
MSSTAB = {V4: [536, 1300, 1440, 1460], V6: [1220, 1420, 1440, 8940]}


def sysctl(ns, **kv):
    for k, v in kv.items():
        run(["sysctl", "-qw", "%s=%s" % (k.replace("__", "."), v)], ns=ns)


def sysctls_of(ns, names):
    out = run(["sysctl"] + names, ns=ns, check=False)
    return {k: " ".join(v.split()) for k, v in (l.split(" = ", 1) for l in out.splitlines() if " = " in l)}


def ss_count(ns, state):
    out = run(["ss", "-tanH", "state", state], ns=ns, check=False)
    return [" ".join(l.split()) for l in out.splitlines() if l.strip()]


class Sampler:
    """Counts sockets in one ss state per namespace every `every` s (bounded)."""

    def __init__(self, nss, state, every=0.25, max_samples=200):
        self.nss, self.state, self.every, self.max = nss, state, every, max_samples
        self.samples = {ns: [] for ns in nss}
        self.lines = {ns: [] for ns in nss}
        self.stop_evt = threading.Event()
        self.t = kc.thread(self._run)

    def _run(self):
        nxt = time.monotonic()
        for _ in range(self.max):
            if self.stop_evt.is_set():
                break
            for ns in self.nss:
                t = time.time()
                lines = ss_count(ns, self.state)
                self.samples[ns].append([t, len(lines)])
                self.lines[ns].append((t, lines))
            nxt += self.every
            self.stop_evt.wait(max(0.0, nxt - time.monotonic()))

    def stop(self):
        self.stop_evt.set()
        self.t.join(10)


def link_stats(ns):
    """Packet and drop counters of the namespace's veths (`ip -s -j link`)."""
    out = json.loads(run(["ip", "-s", "-j", "link", "show"], ns=ns) or "[]")
    return {l["ifname"]: {d + "_" + k: l["stats64"][d][k] for d in ("rx", "tx") for k in ("packets", "dropped")}
            for l in out if l["ifname"] != "lo"}


def softnet_drops():
    """Machine-wide input backlog drops (2nd column of /proc/net/softnet_stat)."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(l.split()[1], 16) for l in f if l.strip())


def ip_delta(before, after):
    return {k: v - before.get(k, 0) for k, v in after.items()
            if (k.startswith("Ip") or k.startswith("IpExt")) and v - before.get(k, 0)}


def netstat_counter(ns, name):
    """One TcpExt counter of a namespace, read in-process (fast, no fork)."""
    with InNs(ns):
        with open("/proc/thread-self/net/netstat") as f:
            lines = f.read().splitlines()
    for hdr, val in zip(lines[::2], lines[1::2]):
        keys, vals = hdr.split(), val.split()
        if keys and keys[0] == "TcpExt:" and name in keys:
            return int(vals[keys.index(name)])
    return None


# ---------------------------------------------------------------- applications

class Server:
    """Accept loop in tl-dsrv. Each connection: read a request line block,
    send `reply` bytes, then close first ("server") or after EOF ("client")."""

    def __init__(self, fam, ip, port, backlog, reply, close_first="client", max_conns=2000, think=0.0):
        with InNs(NS_SRV):
            self.ls = socket.socket(fam, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((ip, port))
        self.ls.listen(backlog)
        self.ls.settimeout(0.2)
        self.reply, self.close_first, self.max_conns, self.think = reply, close_first, max_conns, think
        self.conns, self.lock = [], threading.Lock()
        self.stop_evt = threading.Event()
        self.t = kc.thread(self._loop)

    def _loop(self):
        end = time.monotonic() + 300
        while not self.stop_evt.is_set() and time.monotonic() < end and len(self.conns) < self.max_conns:
            try:
                c, peer = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            rec = {"peer": fmt_ep(peer[0], peer[1]), "accept_epoch": round(time.time(), 6)}
            with self.lock:
                self.conns.append(rec)
            kc.thread(self._handle, c, rec)

    def _handle(self, c, rec):
        c.settimeout(APP_TIMEOUT)
        try:
            req = b""
            for _ in range(64):
                b = c.recv(4096)
                if not b:
                    break
                req += b
                if b"\r\n\r\n" in req:
                    break
            if self.think:
                time.sleep(self.think)  # "processing": keeps connections open concurrently
            c.sendall(b"x" * self.reply)
            if self.close_first == "client":
                for _ in range(64):
                    if not c.recv(4096):
                        break
            rec["served"] = True
        except OSError as e:
            rec["error"] = kc.errname(e)
        finally:
            c.close()

    def stop(self):
        self.stop_evt.set()
        self.t.join(5)
        self.ls.close()


def client_conn(fam, cip, sip, sport, cport=0, mss=None, reply=0, close_first="client",
                timeout=APP_TIMEOUT, on_connected=None):
    """One HTTP/1.0-like exchange from tl-dcli. Returns a record of what happened."""
    with InNs(NS_CLI):
        s = socket.socket(fam, socket.SOCK_STREAM)
    rec = {"connect_epoch": round(time.time(), 6)}
    keep = False
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not cport:
            s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        if mss:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        s.bind((cip, cport))
        s.settimeout(timeout)
        t = time.monotonic()
        try:
            s.connect((sip, sport))
        except OSError as e:
            rec.update(result="connect_failed", error=kc.errname(e),
                       connect_seconds=round(time.monotonic() - t, 3))
            rec["client"] = fmt_ep(cip, s.getsockname()[1])
            return rec
        rec["client"] = fmt_ep(*s.getsockname()[:2])
        rec["connect_seconds"] = round(time.monotonic() - t, 4)
        if on_connected:
            keep = on_connected(s, rec)
            return rec
        s.sendall(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
        got = 0
        while got < (reply if close_first == "client" else 1 << 20):
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
        rec["bytes"] = got
        rec["result"] = "completed" if got == reply else "short_reply"
    except OSError as e:
        rec.update(result="error", error=kc.errname(e))
    finally:
        if not keep:  # on_connected took the socket over
            rec["close_epoch"] = round(time.time(), 6)
            s.close()
    return rec


def tcp_csum4(src, dst, seg):
    return kc._csum(socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(seg)) + seg)


def spoofed_syn(src, dst, sport, dport, seq, ident, ttl=64, win=1024, mss=1460):
    """IPv4 SYN with only an MSS option: the uniform shape of a simple flooder."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 6 << 4, 0x02, win, 0, 0) + struct.pack("!BBH", 2, 4, mss)
    tcp = tcp[:16] + struct.pack("!H", tcp_csum4(src, dst, tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ident, 0x4000, ttl, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def syn_burst(dst, dport, count, seconds, seed):
    """Send `count` spoofed SYNs evenly over `seconds` from tl-dcli (raw socket,
    IP_HDRINCL). Unique (source, port) pairs, so none looks like a retransmission."""
    rnd = random.Random(seed)
    hosts = ["10.231.1.%d" % i for i in range(129, 254)]  # .254 is the router's own address
    pairs, seen = [], set()
    while len(pairs) < count:
        p = (rnd.choice(hosts), rnd.randrange(1024, 65536))
        if p not in seen:
            seen.add(p)
            pairs.append(p)
    with InNs(NS_CLI):
        rs = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent, t_first = 0, time.time()
    t0 = time.monotonic()
    try:
        for i, (src, sport) in enumerate(pairs):
            target = t0 + i * seconds / count
            now = time.monotonic()
            if now - t0 > seconds * 4 + 5:
                break  # hard time limit
            if target > now:
                time.sleep(target - now)
            rs.sendto(spoofed_syn(src, dst, sport, dport, rnd.getrandbits(32), rnd.getrandbits(16) or 1),
                      (dst, 0))
            sent += 1
    finally:
        rs.close()
    return {"sent": sent, "first_send_epoch": round(t_first, 6), "last_send_epoch": round(time.time(), 6),
            "hosts": hosts, "pairs": pairs[:sent]}


# ---------------------------------------------------------------- reading captures

PKT_RE = re.compile(
    r"^(\d+\.\d+) (IP6?) .*?(?:ttl (\d+)|hlim (\d+)).*?\) (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\]"
    r"(?:, cksum \S+(?: \([^)]*\))?)?(?:, seq (\d+)(?::(\d+))?)?(?:, ack (\d+))?, win (\d+)"
    r"(?:, urg \d+)?(?:, options \[([^\]]*)\])?, length (\d+)")


def parse_opts(s):
    o = {}
    if not s:
        return o
    for tok in s.split(","):
        tok = tok.strip()
        if tok.startswith("mss "):
            o["mss"] = int(tok[4:])
        elif tok == "sackOK":
            o["sackOK"] = True
        elif tok.startswith("wscale "):
            o["wscale"] = int(tok[7:])
        elif tok.startswith("TS val "):
            m = re.match(r"TS val (\d+) ecr (\d+)", tok)
            o["tsval"], o["tsecr"] = int(m.group(1)), int(m.group(2))
    return o


def read_pkts(path):
    """Every packet as tcpdump -n -tt -S -v prints it (independent of tcplens)."""
    out = run(["tcpdump", "-n", "-tt", "-S", "-v", "-r", path], timeout=120)
    recs = []
    for line in out.splitlines():
        if line[:1].isdigit():
            recs.append(line)
        elif recs:
            recs[-1] += " " + line.strip()
    pkts = []
    for i, r in enumerate(recs, 1):
        m = PKT_RE.match(r)
        if not m:
            pkts.append({"n": i, "tcp": False, "line": r})
            continue
        ts, ipv, ttl, hlim, s, sp, d, dp, fl, seq, seqe, ack, win, opts, ln = m.groups()
        pkts.append({"n": i, "tcp": True, "ts": float(ts), "ttl": int(ttl or hlim),
                     "src": fmt_ep(s, int(sp)), "dst": fmt_ep(d, int(dp)), "saddr": s, "sport": int(sp),
                     "daddr": d, "dport": int(dp), "flags": fl, "seq": int(seq) if seq else None,
                     "ack": int(ack) if ack else None, "win": int(win), "opts": parse_opts(opts),
                     "opts_text": opts, "len": int(ln)})
    return pkts


def is_syn(p):
    return "S" in p["flags"] and "." not in p["flags"]


def is_synack(p):
    return "S" in p["flags"] and "." in p["flags"]


def conns_by_client(pkts, srv):
    """Group packets of connections to `srv` by client endpoint."""
    conns = {}
    for p in pkts:
        if not p["tcp"]:
            continue
        if p["dst"] == srv:
            conns.setdefault(p["src"], []).append(p)
        elif p["src"] == srv:
            conns.setdefault(p["dst"], []).append(p)
    return conns


def cookie_ts_bits(tsval):
    low = tsval & 0x3F
    return {"wscale": low & 0xF, "sack": bool(low & 0x10), "ecn": bool(low & 0x20)}


def expected_cookie_mss(fam, client_mss):
    return max(m for m in MSSTAB[fam] if m <= client_mss) if client_mss >= MSSTAB[fam][0] else MSSTAB[fam][0]


def capture_info(path, pkts):
    tcpp = [p for p in pkts if p["tcp"]]
    first = tcpp[0]["ts"] if tcpp else None
    return {"file": os.path.basename(path), "linktype": kc.linktype_of(path), "snaplen": int(SNAPLEN),
            "packets": len(pkts), "tcp_packets": len(tcpp), "capture_tool_reported_drops": 0,
            "first_packet_epoch": first, "last_packet_epoch": tcpp[-1]["ts"] if tcpp else None,
            "size_bytes": os.path.getsize(path)}


def rel(t, t0):
    return None if t is None else round(t - t0, 6)


# ---------------------------------------------------------------- topology helpers

def routed_topo(ipv6=True, synack_retries=3):
    topo = kc.Topo(True, synack_retries=synack_retries, ipv6=ipv6)
    return topo


def spoof_sink(topo):
    """Route the spoofed range from the router back to tl-dcli, where nftables
    drops it: those 'hosts' never answer and never send RST."""
    run(["ip", "-n", NS_RTR, "route", "add", SPOOF_NET, "via", topo.cli4])
    nft(NS_CLI, "table inet tl {\n chain pre {\n  type filter hook prerouting priority -300;\n"
                "  ip daddr %s counter drop\n }\n}\n" % SPOOF_NET)


def nft_counter(ns, table_rule_substr):
    for r in kc.nft_rules_with_counters(ns):
        if table_rule_substr in r["rule"]:
            return r["packets"]
    return None


class Run:
    """Capture + nstat bracket around one scenario body."""

    def __init__(self, name, outdir, cap_ns, cap_if, nss):
        self.name, self.outdir, self.nss = name, outdir, nss
        self.path = os.path.join(outdir, name + ".pcap")
        self.before = {ns: kc.nstat(ns) for ns in nss}
        self.links_before = {ns: link_stats(ns) for ns in nss}
        self.softnet_before = softnet_drops()
        self.cap = kc.Capture(cap_ns, [cap_if], self.path, filt="tcp", extra=("-s", SNAPLEN))
        self.cap_ns, self.cap_if = cap_ns, cap_if

    def finish(self):
        self.stop_requested = time.time()
        self.cap.stop()
        os.chmod(self.path, 0o644)
        if self.cap.kernel_drops:
            os.unlink(self.path)
            raise kc.CaptureIncomplete("capture reported %s packets dropped by kernel" % self.cap.kernel_drops)
        self.after = {ns: kc.nstat(ns) for ns in self.nss}
        self.links_after = {ns: link_stats(ns) for ns in self.nss}
        self.softnet_after = softnet_drops()
        self.pkts = read_pkts(self.path)
        self.info = capture_info(self.path, self.pkts)
        self.info.update(namespace=self.cap_ns, interface=self.cap_if, filter="tcp",
                         tool="tcpdump -i %s --immediate-mode -U -B 16384 -s %s" % (self.cap_if, SNAPLEN),
                         capture_ran_until_epoch=round(self.stop_requested + 0.3, 3))
        self.t0 = self.info["first_packet_epoch"]
        return self.pkts

    def abort(self):
        self.cap.stop()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def nstat_delta(self):
        role = {NS_CLI: "client_ns", NS_SRV: "server_ns", NS_RTR: "router_ns"}
        return {role[ns]: kc.nstat_delta(self.before[ns], self.after[ns]) for ns in self.nss}

    def other_deltas(self):
        role = {NS_CLI: "client_ns", NS_SRV: "server_ns", NS_RTR: "router_ns"}
        links = {}
        for ns in self.nss:
            for ifn, a in self.links_after[ns].items():
                b = self.links_before[ns].get(ifn, {})
                links["%s/%s" % (role[ns], ifn)] = {k: v - b.get(k, 0) for k, v in a.items()}
        return {"ip_nstat_delta": {role[ns]: ip_delta(self.before[ns], self.after[ns]) for ns in self.nss},
                "link_stats_delta": links,
                "machine_softnet_backlog_drops_delta": self.softnet_after - self.softnet_before}


def base_truth(name, desc, r, server):
    return {"scenario": name, "description": desc, "kernel": os.uname().release,
            "capture": r.info, "server": server, "nstat_delta": r.nstat_delta(), **r.other_deltas(),
            "sysctls": {"server_ns": sysctls_of(NS_SRV, SERVER_SYSCTLS),
                        "client_ns": sysctls_of(NS_CLI, CLIENT_SYSCTLS)}}


def samples_rel(samples, t0):
    return [[round(t - t0, 3), n] for t, n in samples]


# ---------------------------------------------------------------- scenario 1: syncookies=2

CLIENT_VARIANTS = [  # name, timestamps, sack, window_scaling, ecn
    ("ts_sack_ws", 1, 1, 1, 2), ("ts_sack_ws_ecn", 1, 1, 1, 1), ("ts_sack", 1, 1, 0, 2),
    ("ts_ws", 1, 0, 1, 2), ("ts_only", 1, 0, 0, 2), ("sack_ws", 0, 1, 1, 2), ("sack_ws_ecn", 0, 1, 1, 1),
    ("sack", 0, 1, 0, 2), ("ws", 0, 0, 1, 2), ("none", 0, 0, 0, 2),
]
SPORT = 8080


def set_client_variant(v):
    _, ts, sack, ws, ecn = v
    sysctl(NS_CLI, net__ipv4__tcp_timestamps=ts, net__ipv4__tcp_sack=sack,
           net__ipv4__tcp_window_scaling=ws, net__ipv4__tcp_ecn=ecn)


def sc_cookies_always(name, outdir, fam, server_ts):
    desc = ("net.ipv4.tcp_syncookies=2 on the server (every SYN-ACK is a SYN cookie), server "
            "tcp_timestamps=%d, %s. For each client variant (client sysctls tcp_timestamps/tcp_sack/"
            "tcp_window_scaling/tcp_ecn) two connections: default MSS and TCP_MAXSEG 1400; each sends a "
            "request, the server replies 4000 bytes, the client closes first. Two more connections (client "
            "variants ts_sack_ws and none) have every client packet after the SYN dropped by the router, so "
            "the final ACK never arrives: the cookie SYN-ACK is never retransmitted. Captured on the server "
            "veth." % (server_ts, "IPv6" if fam == V6 else "IPv4"))
    topo = routed_topo(ipv6=(fam == V6))
    try:
        cip, sip = topo.ips(fam)
        srv = fmt_ep(sip, SPORT)
        sysctl(NS_SRV, net__ipv4__tcp_syncookies=2, net__ipv4__tcp_timestamps=server_ts)
        dropped = {41900: CLIENT_VARIANTS[0], 41901: CLIENT_VARIANTS[-1]}
        nft(NS_RTR, "table inet tl {\n chain fw {\n  type filter hook forward priority 0;\n"
                    "  tcp sport { %s } tcp flags & syn == 0 counter drop\n }\n}\n"
            % ", ".join(str(p) for p in dropped))
        server = Server(fam, sip, SPORT, 16, 4000, "client")
        r = Run(name, outdir, NS_SRV, "tls0", (NS_CLI, NS_SRV, NS_RTR))
        conns = []
        try:
            held = []

            def hold(s, rec):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                held.append(s)
                return True

            for cport, v in dropped.items():
                set_client_variant(v)
                rec = client_conn(fam, cip, sip, SPORT, cport=cport, on_connected=hold)
                rec.update(variant=v[0], mss_set=None, final_ack_dropped=True)
                conns.append(rec)
            t_hold = time.monotonic()
            for vi, v in enumerate(CLIENT_VARIANTS):
                set_client_variant(v)
                for mi, mss in enumerate((None, 1400)):
                    rec = client_conn(fam, cip, sip, SPORT, cport=41000 + vi * 10 + mi, mss=mss, reply=4000)
                    rec.update(variant=v[0], mss_set=mss, final_ack_dropped=False)
                    conns.append(rec)
                    time.sleep(0.05)
            # Keep the ACK-less connections open long enough that a normal
            # SYN_RECV would have retransmitted its SYN-ACK twice (1 s, 3 s).
            time.sleep(max(0.0, 4.5 - (time.monotonic() - t_hold)))
            for s in held:
                s.close()  # RST (linger 0), dropped by the router as well
            time.sleep(0.3)
            pkts = r.finish()
        except BaseException:
            r.abort()
            raise
        server.stop()
        truth = base_truth(name, desc, r, srv)
        truth["router_nft_rules"] = kc.nft_rules_with_counters(NS_RTR)
        truth["cookie_mss_table"] = MSSTAB[fam]
        truth["final_ack_dropped_connections_watched_s"] = round(
            r.info["capture_ran_until_epoch"] - min(c["connect_epoch"] for c in conns if c["final_ack_dropped"]), 2)
        variants = {v[0]: dict(zip(("timestamps", "sack", "window_scaling", "ecn"), v[1:])) for v in CLIENT_VARIANTS}
        truth["client_variants"] = variants
        by = conns_by_client(pkts, srv)
        out = []
        for rec in conns:
            cp = by.get(rec.get("client"), [])
            out.append(cookie_conn_facts(fam, server_ts, rec, cp, srv, variants[rec["variant"]], r.t0))
        truth["connections"] = out
        syns = sum(1 for p in pkts if p["tcp"] and p["dst"] == srv and is_syn(p))
        sa = sum(1 for p in pkts if p["tcp"] and p["src"] == srv and is_synack(p))
        nd = truth["nstat_delta"]["server_ns"]
        truth["summary"] = {
            "connections": len(out), "syns_seen": syns, "synacks_seen": sa,
            "every_synack_is_cookie": True,
            "nstat_server_SyncookiesSent": nd.get("TcpExtSyncookiesSent", 0),
            "nstat_server_SyncookiesRecv": nd.get("TcpExtSyncookiesRecv", 0),
            "nstat_server_SyncookiesFailed": nd.get("TcpExtSyncookiesFailed", 0),
            "completed": sum(1 for c in out if c["app_result"] == "completed"),
            "final_ack_dropped": sum(1 for c in out if c["final_ack_dropped"]),
            "synack_retransmissions": sum(c["synacks"] - 1 for c in out if c["synacks"] > 1),
            "tsval_low_bits_match_client_options": sum(1 for c in out if c.get("tsval_low6_matches_client")),
            "connections_with_cookie_ts": sum(1 for c in out if "cookie_tsval_low6" in c),
        }
        truth["server_accepted"] = server.conns
        return truth
    finally:
        kc.cleanup_ns()


def cookie_conn_facts(fam, server_ts, rec, cp, srv, variant, t0):
    syn = next((p for p in cp if p["dst"] == srv and is_syn(p)), None)
    synacks = [p for p in cp if p["src"] == srv and is_synack(p)]
    data = [p["len"] for p in cp if p["src"] == srv and p["len"] > 0]
    f = {"client": rec.get("client"), "variant": rec["variant"], "client_sysctls": variant,
         "mss_set": rec["mss_set"], "final_ack_dropped": rec["final_ack_dropped"],
         "app_result": rec.get("result", "held_open_then_rst" if rec["final_ack_dropped"] else None),
         "synack_was_cookie": True, "packets": len(cp), "synacks": len(synacks),
         "syn_time_rel": rel(syn["ts"], t0) if syn else None,
         "syn_options": syn["opts_text"] if syn else None,
         "synack_options": synacks[0]["opts_text"] if synacks else None,
         "client_packets_after_syn_seen_by_server": sum(1 for p in cp if p["dst"] == srv and not is_syn(p)),
         "server_data_segment_lengths": data}
    if syn and synacks:
        so, sa = syn["opts"], synacks[0]["opts"]
        cmss = so.get("mss")
        f["client_mss"] = cmss
        f["expected_cookie_mss"] = expected_cookie_mss(fam, cmss)
        # Options a non-cookie SYN-ACK of this server would carry for this SYN.
        f["client_offered"] = {"sackOK": "sackOK" in so, "wscale": so.get("wscale"), "ts": "tsval" in so,
                               "ecn": "E" in syn["flags"]}
        f["synack_carries"] = {"mss": sa.get("mss"), "sackOK": "sackOK" in sa, "wscale": sa.get("wscale"),
                               "ts": "tsval" in sa, "ece": "E" in synacks[0]["flags"]}
        if "tsval" in sa:
            bits = cookie_ts_bits(sa["tsval"])
            f["cookie_tsval_low6"] = sa["tsval"] & 0x3F
            f["cookie_tsval_decoded"] = bits
            want = {"wscale": so.get("wscale", 0xF) if "wscale" in so else 0xF, "sack": "sackOK" in so,
                    "ecn": "E" in syn["flags"]}
            f["tsval_low6_matches_client"] = bits == want
        ts_on = "tsval" in sa
        if data:
            f["server_max_segment_payload"] = max(data)
            f["server_mss_inferred"] = max(data) + (12 if ts_on else 0)
    return f


# ---------------------------------------------------------------- scenarios 2 and 3: SYN burst

def sc_flood(name, outdir, syncookies, burst=2000, burst_s=1.0, synack_retries=3):
    desc = ("Listener %s:%d with listen(8), net.ipv4.tcp_max_syn_backlog=16, tcp_synack_retries=%d, "
            "net.ipv4.tcp_syncookies=%d. A raw socket in the client namespace sends %d spoofed SYNs in ~%.1f s "
            "from %s (hosts .129-.253, 125 addresses; .254 is the router; unique source ports, TTL 64, window 1024, only an MSS option); their SYN-ACKs "
            "are routed back to the client namespace and dropped there, so they never answer. Legitimate "
            "clients from 10.231.1.1 (tcp_syn_retries=2) connect before, during and after the burst, each "
            "sending a request and reading a 2000-byte reply (server closes first). Captured on the server "
            "veth." % ("10.231.2.1", SPORT, synack_retries, syncookies, burst, burst_s, SPOOF_NET))
    topo = routed_topo(ipv6=False, synack_retries=synack_retries)
    try:
        sip, cip = topo.srv4, topo.cli4
        srv = fmt_ep(sip, SPORT)
        spoof_sink(topo)
        sysctl(NS_SRV, net__ipv4__tcp_syncookies=syncookies, net__ipv4__tcp_max_syn_backlog=16)
        sysctl(NS_CLI, net__ipv4__tcp_syn_retries=2)
        server = Server(V4, sip, SPORT, 8, 2000, "server")
        synrecv = Sampler((NS_SRV,), "syn-recv", every=0.25, max_samples=120)
        r = Run(name, outdir, NS_SRV, "tls0", (NS_CLI, NS_SRV, NS_RTR))
        legit, lock = [], threading.Lock()
        # (label, seconds after burst start); "after_late" follows the expiry of
        # the half-open entries (SYN-ACKs at 0, 1, 3, 7 s; dropped at 15 s).
        expiry = sum(2 ** i for i in range(synack_retries + 1))
        plan = [("before", -1.0), ("before", -0.5), ("during", 0.2), ("during", 0.5), ("during", 0.8),
                ("after_early", burst_s + 1.0), ("after_late", expiry + 2.0)]

        def legit_one(i, label, at, t_burst):
            delay = t_burst + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            c0 = netstat_counter(NS_SRV, "SyncookiesRecv")
            rec = client_conn(V4, cip, sip, SPORT, cport=42001 + i, reply=2000, close_first="server")
            c1 = netstat_counter(NS_SRV, "SyncookiesRecv")
            rec.update(label=label, planned_offset_s=at, server_SyncookiesRecv_delta=c1 - c0,
                       window_epoch=[rec["connect_epoch"], round(time.time(), 6)])
            with lock:
                legit.append(rec)

        try:
            t_burst = time.monotonic() + 1.5
            ths = [kc.thread(legit_one, i, lab, at, t_burst) for i, (lab, at) in enumerate(plan)]
            time.sleep(max(0.0, t_burst - time.monotonic()))
            b = syn_burst(sip, SPORT, burst, burst_s, seed=231 + syncookies)
            time.sleep(0.05)
            halfopen_after_burst = ss_count(NS_SRV, "syn-recv")
            for t in ths:
                t.join(expiry + 25)
            time.sleep(0.5)
            synrecv.stop()
            pkts = r.finish()
        except BaseException:
            synrecv.stop()
            r.abort()
            raise
        server.stop()
        truth = base_truth(name, desc, r, srv)
        truth["client_ns_nft_dropped_replies_to_spoofed"] = nft_counter(NS_CLI, "daddr")
        truth.update(flood_truth(pkts, srv, b, legit, halfopen_after_burst, synrecv, r.t0, truth))
        truth["server_accepted"] = server.conns
        return truth
    finally:
        kc.cleanup_ns()


def flood_truth(pkts, srv, b, legit, halfopen_after_burst, synrecv, t0, truth):
    spoofed = set(fmt_ep(a, p) for a, p in b["pairs"])
    by = conns_by_client(pkts, srv)
    sp_syn = sp_sa = sp_sa_retx = sp_answered = 0
    per_tuple_synacks = {}
    for ep in spoofed:
        cp = by.get(ep, [])
        syns = [p for p in cp if p["dst"] == srv and is_syn(p)]
        sas = [p for p in cp if p["src"] == srv and is_synack(p)]
        sp_syn += len(syns)
        sp_sa += 1 if sas else 0
        sp_sa_retx += max(0, len(sas) - 1)
        sp_answered += sum(1 for p in cp if p["dst"] == srv and not is_syn(p))
        if sas:
            per_tuple_synacks[ep] = [rel(p["ts"], t0) for p in sas]
    # Half-open request sockets (not cookies) for spoofed sources, from ss.
    ho_eps = set()
    for line in halfopen_after_burst:
        f = line.split()
        if len(f) >= 4:
            ho_eps.add(f[3])
    ho_spoofed = sorted(ep for ep in ho_eps if ep in spoofed)
    sp_syns_pk = [p for p in pkts if p["tcp"] and p["dst"] == srv and is_syn(p) and p["src"] in spoofed]
    ttls = sorted(set(p["ttl"] for p in sp_syns_pk))
    wins = sorted(set(p["win"] for p in sp_syns_pk))
    opts = sorted(set(p["opts_text"] or "" for p in sp_syns_pk))
    first = min((p["ts"] for p in sp_syns_pk), default=None)
    last = max((p["ts"] for p in sp_syns_pk), default=None)
    # Per-second activity at the server port, from the capture.
    hist = {}
    for p in pkts:
        if not p["tcp"]:
            continue
        sec = int(p["ts"] - t0)
        h = hist.setdefault(sec, [sec, 0, 0, 0, 0])
        if p["dst"] == srv and is_syn(p):
            h[1] += 1
        if p["src"] == srv and is_synack(p):
            h[2] += 1
        if p["src"] == srv and "R" in p["flags"]:
            h[3] += 1
        if p["dst"] == srv and "." in p["flags"] and not is_syn(p):
            h[4] += 1
    seen_sa = {}
    retx_sa = {}
    for p in pkts:
        if p["tcp"] and p["src"] == srv and is_synack(p):
            seen_sa[p["dst"]] = seen_sa.get(p["dst"], 0) + 1
            if seen_sa[p["dst"]] > 1:
                retx_sa[p["dst"]] = retx_sa.get(p["dst"], 0) + 1
    lg = []
    for rec in sorted(legit, key=lambda x: x["connect_epoch"]):
        cp = by.get(rec.get("client"), [])
        sas = [p for p in cp if p["src"] == srv and is_synack(p)]
        syns = [p for p in cp if p["dst"] == srv and is_syn(p)]
        rec = dict(rec)
        rec["window_rel"] = [rel(x, t0) for x in rec.pop("window_epoch")]
        rec.update(syns_seen=len(syns), synacks_seen=len(sas),
                   syn_times_rel=[rel(p["ts"], t0) for p in syns],
                   completed=rec.get("result") == "completed")
        if "server_SyncookiesRecv_delta" in rec:
            rec["synack_was_cookie"] = rec["server_SyncookiesRecv_delta"] == 1 if rec["completed"] else None
        lg.append(rec)
    # Windows of legit connections may overlap; a cookie verdict is only
    # certain when no other legit connection ran at the same time.
    no_cookies = truth["nstat_delta"]["server_ns"].get("TcpExtSyncookiesSent", 0) == 0
    for a in lg:
        others = [o for o in lg if o is not a and o["window_rel"][0] < a["window_rel"][1]
                  and a["window_rel"][0] < o["window_rel"][1]]
        a["cookie_verdict_unambiguous"] = no_cookies or not others
        if no_cookies and a["completed"]:
            a["synack_was_cookie"] = False
    rst_from_srv = sum(1 for p in pkts if p["tcp"] and p["src"] == srv and "R" in p["flags"])
    nd = truth["nstat_delta"]["server_ns"]
    return {
        "burst": {
            "spoofed_range": SPOOF_NET, "spoofed_hosts": b["hosts"], "distinct_spoofed_hosts": len(set(a for a, _ in b["pairs"])),
            "syns_sent": b["sent"], "unique_source_tuples": len(spoofed),
            "app_send_window_epoch": [b["first_send_epoch"], b["last_send_epoch"]],
            "app_send_window_rel": [rel(b["first_send_epoch"], t0), rel(b["last_send_epoch"], t0)],
            "capture_window_epoch": [first, last], "capture_window_rel": [rel(first, t0), rel(last, t0)],
            "spoofed_syns_in_capture": sp_syn, "spoofed_syn_ttls_at_server": ttls,
            "spoofed_syn_windows": wins, "spoofed_syn_options": opts,
            "spoofed_syn_retransmissions": 0,
            "spoofed_packets_other_than_syn_seen_by_server": sp_answered,
            "spoofed_tuples_answered_with_synack": sp_sa,
            "spoofed_synack_retransmissions": sp_sa_retx,
            "spoofed_tuples_never_answered_by_server": len(spoofed) - sp_sa,
            "spoofed_halfopen_request_sockets_after_burst": ho_spoofed,
            "spoofed_cookie_synacks": sp_sa - len(ho_spoofed),
            "spoofed_handshakes_completed": 0,
        },
        "synack_times_rel_of_halfopen_spoofed": {ep: per_tuple_synacks.get(ep) for ep in ho_spoofed},
        "totals_in_capture": {
            "syns_to_server": sum(1 for p in pkts if p["tcp"] and p["dst"] == srv and is_syn(p)),
            "synacks_from_server": sum(seen_sa.values()),
            "synack_retransmissions": sum(retx_sa.values()),
            "distinct_clients_answered_with_synack": len(seen_sa),
            "halfopen_never_completed": len(ho_spoofed),
            "legit_syn_retransmissions": sum(max(0, x["syns_seen"] - 1) for x in lg),
        },
        "server_rsts": rst_from_srv,
        "synack_retransmissions_total": sum(retx_sa.values()),
        "synack_retransmissions_per_client": retx_sa,
        "per_second": {"columns": ["second_rel", "syns_to_server", "synacks", "rsts_from_server",
                                   "acks_to_server"], "rows": [hist[k] for k in sorted(hist)]},
        "server_syn_recv_samples": samples_rel(synrecv.samples[NS_SRV], t0),
        "legit_connections": lg,
        "summary": {
            "legit_completed": sum(1 for x in lg if x["completed"]),
            "legit_failed": sum(1 for x in lg if not x["completed"]),
            "nstat_server": {k: nd.get("TcpExt" + k, 0) for k in (
                "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "ListenOverflows", "ListenDrops",
                "TCPReqQFullDrop", "TCPReqQFullDoCookies", "TCPTimeouts")},
            "nstat_server_TcpRetransSegs": nd.get("TcpRetransSegs", 0),
        },
    }


# ---------------------------------------------------------------- scenario 4: TIME_WAIT

def sc_timewait(name, outdir, close_first, conns=300, seconds=3.0, workers=4):
    desc = ("%d HTTP/1.0-like connections over ~%.0f s (%d client threads, ephemeral ports from "
            "connect()): the client sends a request, the server replies 500 bytes and %s. `ss -tan state "
            "time-wait` sampled every 0.25 s in both namespaces is the truth for TIME_WAIT counts. Direct veth, "
            "captured on the client veth." % (
                conns, seconds, workers,
                "closes first (server-closes-first, HTTP without keep-alive)" if close_first == "server"
                else "the client closes first after reading the reply; the server closes on EOF"))
    topo = kc.Topo(False, ipv6=False)
    try:
        cip, sip = topo.cli4, topo.srv4
        srv = fmt_ep(sip, SPORT)
        sysctl(NS_CLI, net__ipv4__ip_local_port_range="40000 40999")
        server = Server(V4, sip, SPORT, 128, 500, close_first)
        tw = Sampler((NS_CLI, NS_SRV), "time-wait", every=0.25, max_samples=int(seconds * 4) + 16)
        r = Run(name, outdir, NS_CLI, "tlc0", (NS_CLI, NS_SRV))
        recs, lock = [], threading.Lock()
        try:
            t_start = time.monotonic() + 0.3

            def worker(w):
                for k in range(conns // workers):
                    i = k * workers + w
                    delay = t_start + i * seconds / conns - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    rec = client_conn(V4, cip, sip, SPORT, reply=500, close_first=close_first)
                    with lock:
                        recs.append(rec)

            ths = [kc.thread(worker, w) for w in range(workers)]
            for t in ths:
                t.join(seconds + 30)
            time.sleep(2.5)
            tw.stop()
            pkts = r.finish()
        except BaseException:
            tw.stop()
            r.abort()
            raise
        server.stop()
        truth = base_truth(name, desc, r, srv)
        t0 = r.t0
        by = conns_by_client(pkts, srv)
        # Split each 4-tuple into connections at every client SYN with a new ISN:
        # a client port freed early can come back while the server still holds
        # the old connection in TIME_WAIT (the SYN then ends that TIME_WAIT).
        split = []
        for ep, cp in by.items():
            cur, isn = None, None
            for p in cp:
                if p["dst"] == srv and is_syn(p) and p["seq"] != isn:
                    isn, cur = p["seq"], []
                    split.append((ep, cur))
                if cur is not None:
                    cur.append(p)
        reused = {}
        for ep, _ in split:
            reused[ep] = reused.get(ep, 0) + 1
        first_fin = {"client": 0, "server": 0, None: 0}
        fins_t = []
        for ep, cp in split:
            fins = [p for p in cp if "F" in p["flags"]]
            first_fin[None if not fins else ("server" if fins[0]["src"] == srv else "client")] += 1
            if fins:
                fins_t.append(fins[0]["ts"])
        fins_t.sort()
        ports = sorted(int(x["client"].rsplit(":", 1)[1]) for x in recs if "client" in x)
        cs = samples_rel(tw.samples[NS_CLI], t0)
        ss_ = samples_rel(tw.samples[NS_SRV], t0)
        last_tw = {ns: tw.lines[ns][-1][1] for ns in (NS_CLI, NS_SRV)}
        tw_ports_client = sorted(int(l.split()[2].rsplit(":", 1)[1]) for l in last_tw[NS_CLI])
        tw_ports_server_peer = sorted(int(l.split()[3].rsplit(":", 1)[1]) for l in last_tw[NS_SRV])
        truth.update({
            "close_first_by_application": close_first,
            "time_wait_expected_on": "server_ns" if close_first == "server" else "client_ns",
            "time_wait_duration_s": 60,
            "client_ephemeral_port_range": sysctls_of(NS_CLI, ["net.ipv4.ip_local_port_range"])[
                "net.ipv4.ip_local_port_range"],
            "client_ports_used": ports,
            "distinct_client_ports_used": len(set(ports)),
            "client_ports_in_time_wait_at_last_sample": tw_ports_client,
            "server_time_wait_peer_ports_at_last_sample": tw_ports_server_peer,
            "connections": {"attempted": len(recs), "completed": sum(1 for x in recs if x.get("result") == "completed"),
                            "in_capture": len(split), "distinct_four_tuples": len(by),
                            "four_tuples_used_more_than_once": sum(1 for n in reused.values() if n > 1),
                            "connections_reusing_a_four_tuple": sum(n - 1 for n in reused.values()),
                            "first_fin_from": {str(k): v for k, v in first_fin.items() if v}},
            "time_wait_samples": {"client_ns": cs, "server_ns": ss_,
                                  "note": "[seconds relative to the first captured packet, sockets in TIME-WAIT]"},
            "time_wait_peak": {"client_ns": max((n for _, n in cs), default=0),
                               "server_ns": max((n for _, n in ss_), default=0)},
            "first_fin_window_rel": [rel(fins_t[0], t0), rel(fins_t[-1], t0)] if fins_t else None,
            "time_wait_entry_rate_per_s": round(len(fins_t) / max(1e-6, fins_t[-1] - fins_t[0]), 1) if len(fins_t) > 1 else None,
            "app_connections": sorted(recs, key=lambda x: x["connect_epoch"])[:5],
            "app_connections_note": "first 5 client records shown; all completed unless connections.completed says otherwise",
        })
        return truth
    finally:
        kc.cleanup_ns()


# ---------------------------------------------------------------- scenario 5: busy, healthy

def sc_busy(name, outdir, conns=400, seconds=3.0, workers=48, hosts=16, think=0.2):
    desc = ("Negative control: %d short connections from %d client addresses (10.231.1.1-%d) with %d "
            "client threads over ~%.0f s to a listener with listen(128) and the default tcp_syncookies=1; "
            "request, the server 'works' %.1f s then sends a 1000-byte reply, client closes first, so ~%d "
            "connections are open at once. No flood, no spoofing: every SYN is answered once, every handshake "
            "completes, no SYN cookies. Routed; captured on the server veth."
            % (conns, hosts, hosts, workers, seconds, think, round(conns / seconds * think)))
    topo = routed_topo(ipv6=False)
    try:
        sip = topo.srv4
        srv = fmt_ep(sip, SPORT)
        addrs = ["10.231.1.%d" % i for i in range(1, hosts + 1)]
        for a in addrs[1:]:
            run(["ip", "-n", NS_CLI, "addr", "add", a + "/24", "dev", "tlc0"])
        server = Server(V4, sip, SPORT, 128, 1000, "client", think=think)
        synrecv = Sampler((NS_SRV,), "syn-recv", every=0.25, max_samples=int(seconds * 4) + 16)
        estab = Sampler((NS_SRV,), "established", every=0.25, max_samples=int(seconds * 4) + 16)
        r = Run(name, outdir, NS_SRV, "tls0", (NS_CLI, NS_SRV, NS_RTR))
        recs, lock = [], threading.Lock()
        try:
            t_start = time.monotonic() + 0.3

            def worker(w):
                for k in range(conns // workers + 1):
                    i = k * workers + w
                    if i >= conns:
                        break
                    delay = t_start + i * seconds / conns - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    rec = client_conn(V4, addrs[i % hosts], sip, SPORT, reply=1000)
                    with lock:
                        recs.append(rec)

            ths = [kc.thread(worker, w) for w in range(workers)]
            for t in ths:
                t.join(seconds + 30)
            time.sleep(0.5)
            synrecv.stop()
            estab.stop()
            pkts = r.finish()
        except BaseException:
            synrecv.stop()
            estab.stop()
            r.abort()
            raise
        server.stop()
        truth = base_truth(name, desc, r, srv)
        t0 = r.t0
        by = conns_by_client(pkts, srv)
        syn_n = sum(1 for p in pkts if p["tcp"] and p["dst"] == srv and is_syn(p))
        sa = {}
        for p in pkts:
            if p["tcp"] and p["src"] == srv and is_synack(p):
                sa[p["dst"]] = sa.get(p["dst"], 0) + 1
        secs = {}
        for p in pkts:
            if p["tcp"] and p["dst"] == srv and is_syn(p):
                s = int(p["ts"] - t0)
                secs[s] = secs.get(s, 0) + 1
        nd = truth["nstat_delta"]["server_ns"]
        truth.update({
            "client_addresses": addrs,
            "connections": {"attempted": len(recs), "completed": sum(1 for x in recs if x.get("result") == "completed"),
                            "failed": [x for x in recs if x.get("result") != "completed"], "in_capture": len(by)},
            "syns_seen": syn_n, "synacks_seen": sum(sa.values()),
            "synack_retransmissions": sum(n - 1 for n in sa.values() if n > 1),
            "syns_per_second": [[k, secs[k]] for k in sorted(secs)],
            "distinct_sources": len(set(ep.rsplit(":", 1)[0] for ep in by)),
            "server_syn_recv_samples": samples_rel(synrecv.samples[NS_SRV], t0),
            "server_established_samples": samples_rel(estab.samples[NS_SRV], t0),
            "server_established_peak": max((n for _, n in estab.samples[NS_SRV]), default=0),
            "expected_detector_verdicts": {"syn_flood": False, "syn_cookies": False},
            "summary": {k: nd.get("TcpExt" + k, 0) for k in (
                "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "ListenOverflows", "ListenDrops",
                "TCPReqQFullDrop", "TCPReqQFullDoCookies")},
        })
        return truth
    finally:
        kc.cleanup_ns()


# ---------------------------------------------------------------- driver

SCENARIOS = [
    ("syncookies_always_v4_ts1", lambda n, o: sc_cookies_always(n, o, V4, 1)),
    ("syncookies_always_v4_ts2", lambda n, o: sc_cookies_always(n, o, V4, 2)),
    ("syncookies_always_v6_ts1", lambda n, o: sc_cookies_always(n, o, V6, 1)),
    ("syncookies_always_v6_ts2", lambda n, o: sc_cookies_always(n, o, V6, 2)),
    ("synflood_cookies_v4", lambda n, o: sc_flood(n, o, 1)),
    ("synflood_nocookies_v4", lambda n, o: sc_flood(n, o, 0)),
    ("timewait_server_first_v4", lambda n, o: sc_timewait(n, o, "server")),
    ("timewait_client_first_v4", lambda n, o: sc_timewait(n, o, "client")),
    ("busy_normal_v4", sc_busy),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("only", nargs="*")
    a = ap.parse_args()
    if a.list:
        for n, _ in SCENARIOS:
            print(n)
        return 0
    kc.PIDFILE = a.pidfile
    os.makedirs(a.out, exist_ok=True)
    names = {n for n, _ in SCENARIOS}
    for o in a.only:
        if o not in names:
            log_err("unknown scenario %s" % o)
            return 1
    failed = []
    for n, fn in SCENARIOS:
        if a.only and n not in a.only:
            continue
        for attempt in range(3):
            log_err("== %s" % n)
            try:
                truth = fn(n, a.out)
                kc.write_truth(os.path.join(a.out, n + ".truth.json"), truth)
                break
            except kc.CaptureIncomplete as e:
                log_err("   %s: %s, running it again" % (n, e))
            except Exception as e:  # keep going; report at the end
                log_err("!! %s failed: %r" % (n, e))
                import traceback
                traceback.print_exc()
                failed.append(n)
                break
        else:
            failed.append(n)
    if failed:
        log_err("failed scenarios: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        kc.cleanup_ns()

//! Live capture on a real (non-loopback) interface: a veth pair into a network namespace that the
//! test creates and removes itself. Runs only as root with `ip` available; elsewhere each test
//! says it was skipped. Addresses are in 10.233.0.0/16–10.235.0.0/16, one /24 per test and
//! process (so concurrent runs do not collide), inside the pair; every wait is bounded.

#![cfg(feature = "live")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A namespace joined to the host by a veth pair; removed on drop.
struct Pair {
    ns: String,
    host_if: String,
    /// The first three octets of the pair's /24.
    net: String,
    host_addr: String,
    ns_addr: String,
}

impl Pair {
    fn new(tag: u8) -> Option<Pair> {
        let id = std::process::id() % 10_000;
        let p = Pair {
            ns: format!("tlv{tag}-{id}"),
            host_if: format!("tlva{tag}{id}"),
            net: format!("10.{}.{}", 232 + u32::from(tag), id % 250),
            host_addr: format!("10.{}.{}.1", 232 + u32::from(tag), id % 250),
            ns_addr: format!("10.{}.{}.2", 232 + u32::from(tag), id % 250),
        };
        let ns_if = format!("tlvb{tag}{id}");
        let ok = ip(&["netns", "add", &p.ns])
            && ip(&[
                "link", "add", &p.host_if, "type", "veth", "peer", "name", &ns_if,
            ])
            && ip(&["link", "set", &ns_if, "netns", &p.ns])
            && ip(&[
                "addr",
                "add",
                &format!("{}/24", p.host_addr),
                "dev",
                &p.host_if,
            ])
            && ip(&["link", "set", &p.host_if, "up"])
            && ip(&[
                "-n",
                &p.ns,
                "addr",
                "add",
                &format!("{}/24", p.ns_addr),
                "dev",
                &ns_if,
            ])
            && ip(&["-n", &p.ns, "link", "set", &ns_if, "up"])
            && ip(&["-n", &p.ns, "link", "set", "lo", "up"]);
        ok.then_some(p)
    }

    /// A one-connection echo server inside the namespace (gone after 10 s at the latest).
    fn server(&self, port: u16) -> Child {
        let code = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('{}',{port}))\ns.listen(8)\ns.settimeout(10)\nprint('ready',flush=True)\n\
             c,_=s.accept()\nc.settimeout(10)\nc.sendall(c.recv(100))\nc.close()\n",
            self.ns_addr
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "python3", "-c", &code])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start server");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        child
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the host end.
        ip(&["netns", "del", &self.ns]);
        ip(&["link", "del", &self.host_if]);
    }
}

/// Starts `tcplens live`, waits for "listening on"; returns the child and the rest of its
/// standard error (collected by a thread).
fn start(args: &[&str]) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcplens live");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !line.contains("listening on") {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
            let _ = child.kill();
            panic!("tcplens live did not start: {line}");
        }
    }
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    (child, rest)
}

/// Waits at most `secs` for the child; kills it after that. Returns (status, stdout).
fn finish(mut child: Child, secs: u64) -> (Option<i32>, String) {
    // Read while waiting: a full pipe would block the capture.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().unwrap())
}

fn exchange(p: &Pair, port: u16) {
    let mut server = p.server(port);
    let mut c = TcpStream::connect_timeout(
        &format!("{}:{port}", p.ns_addr).parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    drop(c);
    let _ = server.wait();
}

#[test]
fn veth_capture_annotates_a_whole_connection() {
    if !is_root() {
        eprintln!("skipped veth_capture_annotates_a_whole_connection: needs root");
        return;
    }
    let Some(pair) = Pair::new(1) else {
        eprintln!("skipped veth_capture_annotates_a_whole_connection: cannot create netns/veth");
        return;
    };
    let (child, _) = start(&["live", "-i", &pair.host_if, "--duration", "5", "tcp"]);
    exchange(&pair, 5601);
    let (status, out) = finish(child, 20);
    assert_eq!(status, Some(0), "{out}");
    for want in [
        "handshake 1/3",
        "handshake 2/3",
        "handshake 3/3",
        "client data",
        "TIME_WAIT",
        "TCP connections (1)",
    ] {
        assert!(out.contains(want), "no \"{want}\" in:\n{out}");
    }
    assert!(out.contains(&format!("{}.5601", pair.ns_addr)), "{out}");
}

#[test]
fn interface_going_down_ends_the_capture_with_status_2() {
    if !is_root() {
        eprintln!("skipped interface_going_down_ends_the_capture_with_status_2: needs root");
        return;
    }
    let Some(pair) = Pair::new(2) else {
        eprintln!("skipped interface_going_down_ends_the_capture_with_status_2: no netns/veth");
        return;
    };
    let (child, stderr) = start(&["live", "-i", &pair.host_if, "tcp"]);
    exchange(&pair, 5602);
    std::thread::sleep(Duration::from_millis(300));
    assert!(ip(&["link", "del", &pair.host_if]));
    let (status, out) = finish(child, 20);
    let stderr = stderr.join().unwrap();
    assert_eq!(status, Some(2), "{out}\n{stderr}");
    assert!(stderr.contains("capture stopped"), "{stderr}");
    assert!(
        out.contains("TCP connections (1)"),
        "what was seen is reported:\n{out}"
    );
}

/// Sends `count` spoofed SYNs to `dst:port` from sources `net`.130–.229 (inside the pair's own
/// subnet), within about a second.
fn syn_burst(net: &str, dst: &str, port: u16, count: u32) {
    let code = format!(
        r#"
import socket, struct, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
dst = socket.inet_aton("{dst}")
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range({count}):
    src = socket.inet_aton("{net}.%d" % (130 + i % 100))
    sport = 20000 + i
    tcp = struct.pack("!HHIIBBHHH", sport, {port}, 1000 + i, 0, 0x50, 0x02, 1024, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xffff, 0, 64, 6, 0, src, dst)
    s.sendto(ip + tcp, ("{dst}", 0))
    time.sleep(0.002)
"#
    );
    let ok = Command::new("python3")
        .args(["-c", &code])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "SYN burst sender failed");
}

#[test]
fn syn_burst_raises_a_syn_flood_finding_live() {
    if !is_root() {
        eprintln!("skipped syn_burst_raises_a_syn_flood_finding_live: needs root");
        return;
    }
    let Some(pair) = Pair::new(3) else {
        eprintln!("skipped syn_burst_raises_a_syn_flood_finding_live: no netns/veth");
        return;
    };
    // SYN-ACKs to the spoofed sources go to the host end, which drops them (not its address):
    // they stay half-open and the server retransmits, as under a real flood.
    assert!(ip(&[
        "-n",
        &pair.ns,
        "route",
        "add",
        &format!("{}.128/25", pair.net),
        "via",
        &pair.host_addr
    ]));
    let mut server = pair.server(5603);
    let (child, _) = start(&["live", "-i", &pair.host_if, "--duration", "8", "tcp"]);
    syn_burst(&pair.net, &pair.ns_addr, 5603, 300);
    let (status, out) = finish(child, 30);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status, Some(0));
    let fired: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("!! finding"))
        .collect();
    assert!(
        fired
            .iter()
            .any(|l| l.contains("syn_flood") && l.contains(&format!("{}:5603", pair.ns_addr))),
        "no live syn_flood line; finding lines: {fired:?}"
    );
}

//! Live capture on a real (non-loopback) interface: a veth pair into a network namespace that the
//! test creates and removes itself. Runs only as root with `ip` available; elsewhere each test
//! says it was skipped. Addresses are in 10.232.0.0/16, inside the pair; every wait is bounded.

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
    host_addr: String,
    ns_addr: String,
}

impl Pair {
    fn new(tag: u8) -> Option<Pair> {
        let id = std::process::id() % 10_000;
        let p = Pair {
            ns: format!("tlv{tag}-{id}"),
            host_if: format!("tlva{tag}{id}"),
            host_addr: format!("10.232.{tag}.1"),
            ns_addr: format!("10.232.{tag}.2"),
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
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (status, out)
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
    let (child, _) = start(&["live", "-i", &pair.host_if, "--duration", "3", "tcp"]);
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
